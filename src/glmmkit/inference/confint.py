"""Confidence intervals in lme4's parameterisation: Wald and parametric bootstrap.

Rows are named as lme4's ``confint(fit, oldNames = FALSE)``: per random-effect
term ``sd_<term>|<group>`` and ``cor_<term2>.<term1>|<group>`` (the lower
triangle of the covariance, column by column), then ``sigma`` (models with a
residual), then the fixed effects.  Wald intervals exist for the fixed effects
only (NaN for the variance parameters, as lme4).  The parametric bootstrap
simulates responses from the fitted model (new random effects each time),
refits from the estimates and takes percentiles.  A model with a ``ziformula`` or
``dispformula`` adds rows ``zi~<name>`` and ``disp~<name>`` (glmmTMB's names) to the Wald and
profile intervals; random effects in the ``ziformula`` add ``zi~sd_<term>|<group>`` rows (NaN for
Wald, as the conditional SDs).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from .parameters import all_parameters, variance_parameters

__all__ = ["variance_parameters", "all_parameters", "confint"]


def _wald(fit, level):
    from scipy import stats  # imported here: scipy.stats costs ~0.8 s of glmmkit's import

    z = stats.norm.ppf(0.5 + level / 2.0)
    var = variance_parameters(fit)
    se = np.sqrt(np.diag(fit._vcov))
    lower = np.concatenate([np.full(len(var), np.nan), fit._beta - z * se])
    upper = np.concatenate([np.full(len(var), np.nan), fit._beta + z * se])
    out = pd.DataFrame({"lower": lower, "upper": upper}, index=list(var.index) + list(fit.x_names))
    from .profile import zero_part_variance_rows

    zi_var = [n for n, *_ in zero_part_variance_rows(fit)]
    if zi_var:  # the zero part's SDs: no Wald interval (NaN, as the conditional part's)
        out = pd.concat([out.iloc[: len(var)], pd.DataFrame({"lower": np.nan, "upper": np.nan}, index=zi_var),
                         out.iloc[len(var) :]])
    subs = getattr(getattr(fit, "_problem", None), "submodels", ())
    if subs:  # the zero-inflation and dispersion coefficients, under glmmTMB's confint names
        from ..results.submodels import part_table

        parts = [out]
        for sub in subs:
            t = part_table(fit, sub.part, level)
            parts.append(pd.DataFrame({"lower": t["ci_lower"].to_numpy(), "upper": t["ci_upper"].to_numpy()},
                                      index=[f"{sub.part}~{n}" for n in t.index]))
        out = pd.concat(parts)
    return out


def refit_response(fit, y_new):
    """The same model refitted to a new response vector: ``fit.refit(y_new)``, which shares nothing with ``fit``.

    Parameters
    ----------
    fit : fitted model
        The model to refit.
    y_new : array-like, shape (nobs,)
        The new response of the fitted (complete) rows, on the engine's scale (proportions for the binomial).

    Returns
    -------
    fitted model
        A new fit of the same class.
    """
    return fit.refit(np.asarray(y_new, dtype=float))


_WORKER_FIT = None  # the fit a forked bootstrap worker refits (inherited, not pickled)


def _boot_parameters(fit) -> pd.Series:
    """What a bootstrap replicate records: the variance parameters, the family's estimated own
    parameters (the negative binomial's ``theta``, a Gamma's ``shape``, ...) and the fixed effects."""
    values = fit.family_params if fit.has_family else {}
    names = [n for n in getattr(fit, "_psi_names", ()) if n in values]
    if not names:
        return all_parameters(fit)
    family = pd.Series([float(values[n]) for n in names], index=names, dtype=float)
    return pd.concat([variance_parameters(fit), family, fit.fixef])


def _one_replicate(seed_seq) -> np.ndarray:
    fit = _WORKER_FIT
    rng = np.random.default_rng(seed_seq)
    y_sim = fit._simulate_array(1, seed=rng)[:, 0]
    try:
        return _boot_parameters(refit_response(fit, y_sim)).to_numpy()
    except Exception:  # a failed refit (e.g. separation in a tiny binomial sample) is recorded as missing
        return np.full(len(_boot_parameters(fit)), np.nan)


def bootstrap_estimates(fit, n_boot: int, seed=None, progress: bool = True, n_jobs: int = 1) -> pd.DataFrame:
    """Parameters (lme4's names; a family's estimated parameters such as ``theta`` under their own
    names after the variance parameters) of ``n_boot`` refits to responses simulated from ``fit``.

    Replicate b draws from its own stream (``SeedSequence(seed).spawn``), so the result does
    not depend on ``n_jobs``; with ``n_jobs > 1`` forked worker processes share the work (Linux
    and macOS; elsewhere the replicates run in this process).

    Parameters
    ----------
    fit : fitted model
        The model whose responses are simulated and refitted.
    n_boot : int
        Number of replicates.
    seed : int or None
        Seed of the replicates' streams.
    progress : bool, default True
        Draw a progress bar on a terminal's standard error.
    n_jobs : int, default 1
        Worker processes.

    Returns
    -------
    DataFrame
        One row per replicate (NaN where a refit failed), one column per parameter.
    """
    import multiprocessing as mp

    from .._threads import single_blas_thread

    global _WORKER_FIT
    seeds = np.random.SeedSequence(seed).spawn(n_boot)
    show = progress and sys.stderr.isatty()
    rows = []
    _WORKER_FIT = fit
    try:
        with single_blas_thread():
            if n_jobs > 1 and _gnu_openmp_loaded():
                import warnings

                warnings.warn("GNU OpenMP is loaded in this process (numba's parallel kernels use it where libgomp "
                              "is installed), and a forked worker would be killed by it: the bootstrap runs its "
                              "replicates in this process (set NUMBA_THREADING_LAYER=tbb or workqueue to use n_jobs)",
                              RuntimeWarning, stacklevel=3)
                n_jobs = 1
            if n_jobs > 1 and "fork" in mp.get_all_start_methods():
                with mp.get_context("fork").Pool(n_jobs) as pool:
                    for b, row in enumerate(pool.imap(_one_replicate, seeds, chunksize=4)):
                        rows.append(row)
                        _progress(show, b + 1, n_boot)
            else:
                for b, s in enumerate(seeds):
                    rows.append(_one_replicate(s))
                    _progress(show, b + 1, n_boot)
    finally:
        _WORKER_FIT = None
    if show:
        sys.stderr.write("\n")
    return pd.DataFrame(rows, columns=_boot_parameters(fit).index)


def _gnu_openmp_loaded() -> bool:
    """True when GNU OpenMP's runtime is loaded here: it terminates a child forked after its first use."""
    from threadpoolctl import threadpool_info

    return any(i.get("internal_api") == "openmp" and "gomp" in str(i.get("filepath", "")) for i in threadpool_info())


def _progress(show, done, total):
    if show:
        bar = int(40 * done / total)
        sys.stderr.write(f"\rbootstrap [{'#' * bar}{'.' * (40 - bar)}] {done}/{total}")


def confint(fit, method: str = "wald", level: float = 0.95, n_boot: int = 500, seed=None,
            progress: bool = True, n_jobs: int = 1, parm=None) -> pd.DataFrame:
    """Confidence intervals (see :meth:`MixedModelFit.confint`); ``attrs`` records the method and level
    (the report names them).

    Parameters
    ----------
    fit : fitted model
        The fit whose parameters are covered.
    method : {"wald", "profile", "boot", "bootstrap"}, default "wald"
        How the intervals are found.
    level : float, default 0.95
        Coverage.
    n_boot : int, default 500
        Bootstrap replicates (method "boot").
    seed : int or None
        Bootstrap seed.
    progress : bool, default True
        Bootstrap progress bar.
    n_jobs : int, default 1
        Bootstrap worker processes.
    parm : str or list of str, optional
        The parameters to cover (default: all that the method covers).

    Returns
    -------
    DataFrame
        Columns lower and upper, one row per parameter.
    """
    out = _confint(fit, method, level, n_boot, seed, progress, n_jobs, parm)
    m = str(method).lower()
    out.attrs.update({"method": "boot" if m == "bootstrap" else m, "level": float(level)})
    if out.attrs["method"] == "boot":
        out.attrs["n_boot"] = int(n_boot)
    return out


def _confint(fit, method, level, n_boot, seed, progress, n_jobs, parm=None) -> pd.DataFrame:
    from ..exceptions import ArgumentError

    if not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    if parm is not None:
        wanted = [parm] if isinstance(parm, str) else list(parm)
        from .profile import submodel_rows, zero_part_variance_rows

        known = (list(all_parameters(fit).index) + [n for n, *_ in zero_part_variance_rows(fit)]
                 + [n for n, _ in submodel_rows(fit)])
        if str(method).lower() in ("boot", "bootstrap"):  # the bootstrap also covers the family's parameters
            known += [n for n in _boot_parameters(fit).index if n not in known]
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise ArgumentError(f"parm names unknown parameter(s) {unknown}; the parameters are {known}")
        if str(method).lower() == "profile" and fit.has_likelihood:
            from .profile import profile_confint

            return profile_confint(fit, level=level, which=wanted).loc[wanted]
        absent = [p for p in wanted
                  if p in {n for n, _ in submodel_rows(fit)} | {n for n, *_ in zero_part_variance_rows(fit)}]
        if absent and str(method).lower() in ("boot", "bootstrap"):
            from ..exceptions import NotAvailableError

            raise NotAvailableError(f"method={method!r} gives no interval for {absent} (the bootstrap covers the "
                                    "conditional part and the variance parameters); use method='wald' or 'profile'")
        return _confint(fit, method, level, n_boot, seed, progress, n_jobs).loc[wanted]
    m = str(method).lower()
    if m == "wald":
        return _wald(fit, level)
    if m in ("boot", "bootstrap"):
        if int(n_boot) < 10:
            raise ArgumentError(f"n_boot={n_boot} is too few bootstrap samples for an interval; use at least 100")
        draws = bootstrap_estimates(fit, int(n_boot), seed=seed, progress=progress, n_jobs=int(n_jobs))
        n_failed = int(draws.isna().all(axis=1).sum())
        if n_failed == len(draws):
            from ..exceptions import GlmmkitError

            raise GlmmkitError(f"every one of the {n_failed} bootstrap refits failed; no interval can be formed "
                               "(try method='wald' or 'profile')")
        if n_failed:
            import warnings

            from ..exceptions import ConvergenceWarning

            warnings.warn(f"{n_failed} of {len(draws)} bootstrap refits failed and are left out of the intervals",
                          ConvergenceWarning, stacklevel=3)
        alpha = (1.0 - level) / 2.0
        out = pd.DataFrame({"lower": draws.quantile(alpha), "upper": draws.quantile(1.0 - alpha)})
        out.attrs["n_failed"] = int(draws.isna().all(axis=1).sum())
        out.attrs["draws"] = draws
        return out
    if m == "profile":
        from .profile import profile_confint

        if not fit.has_likelihood:
            from ..exceptions import NotAvailableError

            raise NotAvailableError(f"profile intervals need a likelihood, which a {fit.method} fit does not have; "
                                    "use method='wald' or 'bootstrap', or refit with nagq=1 (Laplace)")

        return profile_confint(fit, level=level)
    raise ArgumentError(f"method must be 'wald', 'profile' or 'bootstrap', got {method!r}")
