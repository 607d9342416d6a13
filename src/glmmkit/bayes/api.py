"""``blmer`` and ``bglmer``: the front end of Bayesian fits (rstanarm's ``stan_lmer`` / ``stan_glmer``).

The model is built by the same pipeline as ``lmer`` / ``glmer`` (formula, frame, aliased columns,
structure), its posterior under rstanarm's default priors (``priors.default_priors``, overridable by
name) is sampled by NUTS (``sampler.sample``), and the draws are packaged into a ``BayesFit``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..exceptions import ArgumentError, FormulaError, SeparationWarning

__all__ = ["blmer", "bglmer"]


def _check_sampling(chains, draws, tune, target_accept, max_treedepth):
    for name, v, least in (("chains", chains, 1), ("draws", draws, 4), ("tune", tune, 0),
                           ("max_treedepth", max_treedepth, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
            raise ArgumentError(f"{name} must be a whole number of at least {least}, got {v!r}")
    if not 0.5 <= float(target_accept) < 1.0:
        raise ArgumentError(f"target_accept (Stan's adapt_delta) must be in [0.5, 1), got {target_accept!r}")


def _build(formula, data, family, link, weights, offset, priors, relmat=None):
    """(PosteriorModel, frame, kept) by glmer's / lmer's pipeline."""
    from ..families import get_family
    from ..formula import parse_formula
    from ..frame import build_model_frame, drop_aliased_columns
    from ..fitting.finish import check_grouping
    from ..structure import build_structure
    from .model import PosteriorModel

    fam = get_family(family, link)
    lmm = fam.name == "gaussian" and fam.link.name == "identity"
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group)")
    frame = build_model_frame(parsed, data, weights=weights, offset=offset, family=None if lmm else fam)
    for msg in frame.messages:
        warnings.warn(msg, stacklevel=3)
    wt = np.ones(frame.nobs) if frame.weights is None else np.asarray(frame.weights, dtype=float)
    if not lmm:
        fam.check_response(frame.y, wt, frame.response_name)
    X, kept, _ = drop_aliased_columns(frame.X, frame.x_names)
    structure = build_structure(frame, relmat=relmat)
    check_grouping(structure, frame.nobs, lmm=lmm)
    names = [frame.x_names[j] for j in kept]
    model = PosteriorModel(X, names, frame.y, wt, frame.offset, None if lmm else fam, structure, priors)
    if fam.name == "binomial" and not model.prior_set.proper:
        from ..inference.separation import separation_lp

        sep = separation_lp(X, frame.y, wt, names)
        if sep.separated:
            warnings.warn(f"{sep.message()} With an improper (flat) prior the posterior is improper too: give "
                          "the coefficients a proper prior (the default normal(0, 2.5) is one)", SeparationWarning,
                          stacklevel=3)
    return model, frame, kept


def _fit(formula, data, family, link, weights, offset, priors, chains, draws, tune, seed, target_accept,
         max_treedepth, n_jobs, progress, relmat=None):
    from .fit import BayesFit
    from .sampler import sample

    _check_sampling(chains, draws, tune, target_accept, max_treedepth)
    t0 = time.perf_counter()
    model, frame, kept = _build(formula, data, family, link, weights, offset, priors, relmat)
    from .sampler import nutpie_available

    if nutpie_available() and getattr(model.logp_and_grad, "numba_logp_and_grad", None) is None:
        warnings.warn(f"{model._numba_missing()}, so glmmkit's own numpy NUTS samples (slower than nutpie on "
                      "the compiled density)", RuntimeWarning, stacklevel=3)
    elif not nutpie_available():
        warnings.warn("nutpie is not installed, so glmmkit's own numpy NUTS samples (about 10x slower): "
                      "pip install 'glmmkit[bayes]' for the fast sampler", RuntimeWarning, stacklevel=3)
    rng = np.random.default_rng(seed)
    x0s = [model.initial_point(rng) for _ in range(int(chains))]
    result = sample(model.logp_and_grad, x0s, draws=int(draws), tune=int(tune), chains=int(chains),
                    seed=None if seed is None else int(rng.integers(2**31)), target_accept=float(target_accept),
                    max_treedepth=int(max_treedepth), n_jobs=n_jobs, progress=progress)
    settings = {"chains": int(chains), "draws": int(draws), "tune": int(tune), "seed": seed,
                "target_accept": float(target_accept), "max_treedepth": int(max_treedepth),
                "sampler": f"NUTS, {getattr(result, 'engine', 'numpy')} engine", "time_s": time.perf_counter() - t0}
    return BayesFit(model, result, frame, kept, formula, settings)


def blmer(formula, data, *, priors=None, weights=None, offset=None, relmat=None, chains: int = 4, draws: int = 1000,
          tune: int = 1000, seed=None, target_accept: float = 0.8, max_treedepth: int = 10, n_jobs=None,
          progress: bool = False):
    """A linear mixed model fitted by MCMC (rstanarm's ``stan_lmer``) under rstanarm's default priors.

    Parameters
    ----------
    formula : str
        lme4 formula with at least one random-effects term, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
        The data (rows with missing values in used columns are dropped and counted).
    priors : dict or PriorSet, optional
        Priors replacing rstanarm's defaults, by name: a coefficient (``"Days"``), ``"(Intercept)"``,
        ``"sigma"``, or a grouping factor for its ``decov`` prior (``glmmkit.priors.normal(0, 1)``, ...);
        a structured term's parameters by their draw names (``"sd|id"``, ``"rho|id"``, ``"range|site"``;
        see :mod:`glmmkit.bayes.structured` for their defaults).
    weights, offset : array-like or column name, optional
        Prior weights and an offset.
    relmat : dict, optional
        ``{factor: K}``: the random intercept ``(1 | factor)`` has covariance σ_g² K across the levels
        (a DataFrame labelled by level), as in :func:`glmmkit.lmer`.
    chains : int, default 4
        Independent chains (run in parallel where the sampler can).
    draws, tune : int, default 1000
        Draws kept per chain, and warm-up iterations (step size and mass matrix adaptation).
    seed : int, optional
        Makes the run reproducible.
    target_accept : float, default 0.8
        NUTS's target acceptance (Stan's ``adapt_delta``); raise it when there are divergences.
    max_treedepth : int, default 10
        NUTS's maximum tree depth.
    n_jobs : int, optional
        Parallel chains (default: as many as the sampler chooses).
    progress : bool, default False
        Show the sampler's progress.

    Returns
    -------
    BayesFit
    """
    return _fit(formula, data, "gaussian", None, weights, offset, priors, chains, draws, tune, seed, target_accept,
                max_treedepth, n_jobs, progress, relmat)


def bglmer(formula, data, family="binomial", link=None, *, priors=None, weights=None, offset=None, relmat=None,
           chains: int = 4, draws: int = 1000, tune: int = 1000, seed=None, target_accept: float = 0.8,
           max_treedepth: int = 10, n_jobs=None, progress: bool = False):
    """A generalized linear mixed model fitted by MCMC (rstanarm's ``stan_glmer``) under rstanarm's
    default priors.

    Parameters
    ----------
    formula : str
        lme4 formula (``cbind(successes, failures) ~ ...`` for binomial counts).
    data : pandas.DataFrame
        The data.
    family : str, default "binomial"
        gaussian, binomial, poisson, negative_binomial (NB2), gamma or beta.
    link : str, optional
        The family's link (its default otherwise).
    priors : dict or PriorSet, optional
        Priors replacing rstanarm's defaults, by name (see :func:`blmer`; ``"theta"`` / ``"shape"`` /
        ``"phi"`` for the family's parameter).
    weights, offset : array-like or column name, optional
        Prior weights (binomial: trials) and an offset.
    relmat : dict, optional
        Known relationship matrices by factor (see :func:`blmer`).
    chains, draws, tune, seed, target_accept, max_treedepth, n_jobs, progress
        As :func:`blmer`.

    Returns
    -------
    BayesFit
    """
    return _fit(formula, data, family, link, weights, offset, priors, chains, draws, tune, seed, target_accept,
                max_treedepth, n_jobs, progress, relmat)
