"""``glmer``: generalized linear mixed models by Laplace, AGQ, nAGQ = 0 or PQL.

The public entry point only: validate the options, build the frame and the
structure, check separation, and hand a ``GlmmProblem`` to the fitting layer
(``fitting.glmm.fit_glmm``: an ordered table of strategies; ``fitting.pql.fit_pql``).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from ._threads import single_blas_thread
from .exceptions import ArgumentError, FormulaError, IdentifiabilityWarning, RankDeficiencyWarning, SeparationWarning
from .families import ParametricFamily, get_family
from .fitting.glmm import GlmmProblem, fit_glmm, glm_start
from .fitting.pql import fit_pql
from .fitting.start import glm_irls
from .formula import parse_formula
from .frame import build_model_frame, drop_aliased_columns
from .inference.separation import SeparationResult, mle_certificate, separation_lp
from .fitting.finish import check_grouping, finish_fit
from .structure import build_structure
from .validate import binary_levels_message, check_glmm_weights, check_method, check_nagq, check_not_constant

__all__ = ["glmer", "glm_irls"]


def glmer(formula, data, family="binomial", *, link=None, nagq=1, method=None, weights=None, offset=None,
          family_params=None, olre=False, residual=None, relmat=None, ziformula=None, dispformula=None,
          data_name=None):
    """Fit a generalized linear mixed model.

    Parameters
    ----------
    formula : str
        lme4 formula; binomial responses may be 0/1, bool, a two-level factor
        (first level = failure), a proportion with ``weights=`` trials, or
        ``cbind(successes, failures)`` (expressions allowed inside).
    data : pandas.DataFrame
        One row per observation, with the columns the formulas name; rows with a missing
        value in any of them are dropped.
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"negative_binomial"`` (NB2, Var = μ + μ²/θ; alias
        ``"nbinom2"``), ``"nbinom1"`` (Var = μ(1 + φ)), ``"gamma"``, ``"inverse_gaussian"``,
        ``"beta"`` (Var = μ(1 − μ)/(1 + φ)), ``"student_t"``, or ``"gaussian"`` with a log or
        inverse link.  The parameters of the last six are estimated jointly with (θ, β) by the
        Laplace approximation with the observed information (as glmmTMB); ``fit.family_params``.
    link : str, optional
        logit, probit, cloglog, cauchit, log, identity, sqrt, inverse (as the
        family allows); the family's default (R's) link otherwise.
    nagq : int, default 1
        1: Laplace; 0: β estimated inside PIRLS (fast, lme4's nAGQ = 0); k > 1:
        adaptive Gauss-Hermite quadrature with k nodes per random effect (one
        grouping factor; any number of terms on it).
    method : None or "laplace" or "agq"
        Alias for the ``nagq`` choice, as the command line uses.
    weights, offset : array-like or column name, optional
        Prior weights (binomial: trials; other families: they multiply each row's
        log-likelihood, as glmmTMB's) and an offset on the linear-predictor scale.
    family_params : dict, optional
        Family parameters held fixed instead of estimated, e.g. ``{"df": 4}`` for the Student-t.
    olre : bool, default False
        Add an observation-level random effect ``(1 | .obs)``, the usual remedy for
        overdispersed Poisson or binomial data.
    relmat : dict, optional
        Known relationship matrices up to scale, ``{"animal": K}`` (see :func:`glmmkit.lmer`).
    ziformula : str, optional
        One-sided formula for the zero part (glmmTMB's): with a count family (poisson, nbinom1,
        negative_binomial) a zero-inflated model, p(0) = π + (1 − π) p₀(μ); with a truncated count
        (``"truncated_poisson"``, ``"truncated_nbinom1"``, ``"truncated_nbinom2"``) or a positive
        continuous family (gamma: glmmTMB's ``ziGamma``) a hurdle, p(0) = π.  logit π is linear in
        the formula's columns (``fit.fixef_zi``); ``"~ 1"`` for a constant.
    dispformula : str, optional
        One-sided formula for the family's dispersion on glmmTMB's log scale (log θ for NB2, log φ for
        NB1 and beta, log shape for Gamma, log σ for Gaussian and Student-t): ``fit.fixef_disp``.  ``"~ 1"`` is the
        default (one dispersion parameter, ``fit.family_params``).
    residual : None
        Residual correlation structures belong to Gaussian models (``lmer(..., residual=...)``);
        a GLMM has no residual to correlate, and asking raises an error that points to the
        G-side equivalent.
    data_name : str, optional
        Name of the data shown in the summary ("Data: ...").

    Returns
    -------
    GlmmFit
    """
    from .distributed import is_dask_frame

    if is_dask_frame(data):
        from .distributed import glmer_dask

        return glmer_dask(formula, data, family, link=link, nagq=nagq, method=method, weights=weights,
                          offset=offset, data_name=data_name, family_params=family_params, olre=olre,
                          residual=residual, relmat=relmat, ziformula=ziformula, dispformula=dispformula)
    t0 = time.perf_counter()
    if residual is not None:
        raise ArgumentError(
            f"residual={residual!r} is for Gaussian models (lmer); a {family if isinstance(family, str) else 'GLMM'} "
            "response has no residual to correlate: put the correlation on the linear predictor with a G-side "
            "term on an observation-level factor, e.g. ar1(0 + factor(visit) | Subject) (one effect per visit "
            "and subject)")
    fam = get_family(family, link, family_params)
    fam = _zero_and_dispersion(fam, ziformula, dispformula)
    parametric = isinstance(fam, ParametricFamily)
    if fam.name == "gaussian" and fam.link.name == "identity":
        raise ArgumentError("family='gaussian' with the identity link is a linear mixed model: use glmmkit.lmer(..., reml=False)")
    if olre:
        formula, data = _add_olre(formula, data)
    m = check_method(method)
    pql = m == "pql"
    if m == "laplace":
        nagq = 1
    nagq = check_nagq(nagq)
    if parametric and (nagq == 0 or pql):
        chosen = "method='pql'" if pql else "nagq=0"
        raise ArgumentError(
            f"{chosen} does not apply to the {fam.name} family: it is fitted by the Laplace approximation (nagq=1) "
            "or adaptive quadrature (nagq=k > 1), as its own parameters are estimated with the others"
        )
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(f"formula {formula!r} has no random-effects term such as (1 | group)")
    extra, what = _submodel_columns(ziformula, dispformula, data)
    frame = build_model_frame(parsed, data, weights=weights, offset=offset, family=fam, extra_columns=extra,
                              extra_what=what)
    messages = list(frame.messages)
    wt = np.ones(frame.nobs) if frame.weights is None else frame.weights
    fam.check_response(frame.y, wt, frame.response_name)
    check_glmm_weights(wt)
    check_not_constant(frame.y, frame.response_name, fam, wt)
    with single_blas_thread():
        X, kept, dropped = drop_aliased_columns(frame.X, frame.x_names)
    if dropped:
        msg = f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): {', '.join(dropped)}"
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=2)
        messages.append(msg)
    structure = build_structure(frame, relmat=relmat)
    check_grouping(structure, frame.nobs, lmm=False)
    unidentified = binary_levels_message(structure, frame.y, wt, fam)
    if unidentified:
        warnings.warn(unidentified, IdentifiabilityWarning, stacklevel=2)
        messages.append(unidentified)
    if nagq > 1:
        if len(structure.blocks) > 1:
            raise ArgumentError(
                f"nagq={nagq} (adaptive Gauss-Hermite quadrature) needs a single grouping factor; this model has "
                f"{len(structure.blocks)} ({', '.join(b.factor.name for b in structure.blocks)}), whose integral does "
                "not factor into per-level integrals: use nagq=1 (Laplace)"
            )
        K = structure.blocks[0].K
        if nagq**K > 20_000:
            raise ArgumentError(f"nagq={nagq} with {K} random effects per level needs {nagq}**{K} nodes; use fewer nodes")

    submodels = _submodels(ziformula, dispformula, frame, fam, wt)
    if nagq > 1 and any(sub.structure is not None for sub in submodels):
        raise ArgumentError(f"nagq={nagq}: with random effects in the ziformula the integral per level is over both "
                            "parts' effects; adaptive quadrature is not available for it: use nagq=1 (Laplace)")
    problem = GlmmProblem(frame=frame, structure=structure, X=X, wt=wt, family=fam, nagq=nagq, kept=kept,
                          dropped=dropped, data_name=data_name, messages=tuple(messages), submodels=submodels)
    with single_blas_thread():
        separation, beta0 = None, None
        if pql or not parametric:
            beta0 = glm_start(problem)
            if fam.name == "binomial" and not mle_certificate(X, frame.y, wt, frame.offset, beta0, fam):
                separation = separation_lp(X, frame.y, wt, [frame.x_names[j] for j in kept])
                if separation.separated:
                    warnings.warn(separation.message(), SeparationWarning, stacklevel=2)
                    problem = dataclasses.replace(problem, messages=problem.messages + (separation.message(),))
        fit = fit_pql(problem) if pql else fit_glmm(problem, beta0)
    if fam.name == "binomial":
        fit.separation = separation if separation is not None else SeparationResult("none")
    return finish_fit(fit, t0)


def _zero_and_dispersion(fam, ziformula, dispformula):
    """The family with its zero model (zero inflation or hurdle) when a ziformula is given; errors for
    formulas that do not apply to the family."""
    from .families import zero_model_family
    from .submodel import is_trivial

    if ziformula is not None and str(ziformula).replace(" ", "") in ("~0", "0"):
        ziformula = None  # glmmTMB's 'no zero inflation'
    if ziformula is not None:
        fam = zero_model_family(fam)
    if dispformula is not None and not is_trivial(dispformula):
        if getattr(fam, "disp_param", None) is None:
            raise ArgumentError(f"dispformula={dispformula!r} does not apply to the {fam.name} family, which has no "
                                "dispersion parameter (its variance is fixed by its mean); drop dispformula, or use "
                                "a family with one (negative_binomial, nbinom1, gamma, beta, student_t, ...)")
    return fam


def _submodel_columns(ziformula, dispformula, data):
    """Columns the sub-model formulas use (their missing rows are dropped with the formula's)."""
    from .frame import _used_variables
    from .submodel import one_sided

    cols, what = [], []
    for arg, f in (("ziformula", ziformula), ("dispformula", dispformula)):
        if f is None or str(f).replace(" ", "") in ("~0", "0"):
            continue
        text = one_sided(f, arg, random=arg == "ziformula")
        if "|" in text:  # random terms: their covariates and grouping factors
            from .formula import parse_formula

            parsed = parse_formula(f"y {text}")
            cols += sorted(_used_variables("~ " + parsed.fixed_rhs, data))
            for term in parsed.random:
                if term.lhs.strip() not in ("1", "0", "-1"):
                    cols += sorted(_used_variables("~ " + term.lhs, data))
                cols += list(term.factors)
            what.append(f"{arg}={f!r}")
            continue
        cols += sorted(_used_variables(text, data))
        what.append(f"{arg}={f!r}")
    return tuple(dict.fromkeys(cols)), " / ".join(what)


def _submodels(ziformula, dispformula, frame, fam, wt) -> tuple:
    """The ``SubModel`` of each formula given (none for '~ 1' dispersion, the family's own parameter)."""
    from .submodel import build_submodel, is_trivial

    out = []
    if ziformula is not None and str(ziformula).replace(" ", "") not in ("~0", "0"):
        out.append(build_submodel(ziformula, frame.data, "zi", fam))
        zeros = int(np.sum(frame.y == 0))
        if zeros == 0:
            msg = (f"ziformula={ziformula!r}: the response {frame.response_name!r} has no zeros in the "
                   f"{frame.nobs} complete rows, so the zero part is not identified (its probability goes to 0)")
            warnings.warn(msg, IdentifiabilityWarning, stacklevel=3)
    if dispformula is not None and not is_trivial(dispformula):
        out.append(build_submodel(dispformula, frame.data, "disp", fam))
    return tuple(out)


def _add_olre(formula: str, data):
    """The formula with ``+ (1 | .obs)`` and a copy of the data with the row index as ``.obs``."""
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise ArgumentError("olre=True needs data as a pandas DataFrame")
    if ".obs" in data.columns:
        raise ArgumentError("olre=True adds a column '.obs', which the data already has; rename it or write (1 | .obs) yourself")
    data = data.copy()
    data[".obs"] = pd.Categorical(np.arange(len(data)))
    return f"{formula} + (1 | .obs)", data
