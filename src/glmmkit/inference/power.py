"""Power by simulation (R's simr: ``powerSim``, ``powerCurve``, ``extend``).

Responses are simulated from the fit's own structure at its estimates (new random effects for
every simulation, lme4's ``simulate``), optionally with a fixed effect changed (simr's
``fixef(fit)["x"] <- value``: ``effect={"x": value}``) and with the design extended along a
grouping factor (new levels copy the rows of the existing ones in turn and get new random
effects; fewer levels keep the first ones).  Each response is refitted through the fit's own
problem (``refit``) and the fixed effect is tested; the power is the share of significant tests,
with a Clopper-Pearson interval (simr's ``binom.test``).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, NotAvailableError

__all__ = ["power", "PowerResult", "plot_power"]


@dataclass
class PowerResult:
    """Estimated power per design size.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns size (levels of ``along``; None without one), power, ci_lower, ci_upper, n_sim,
        n_significant, n_failed (refits that failed or gave no p-value; counted as not significant,
        as simr counts them as errors).
    test, method, along : str
        The coefficient tested (a name of ``fit.fixef``), the test (``"wald"``, ``"z"`` or ``"lrt"``)
        and the grouping variable extended (None without).
    alpha, level : float
        Significance level of each test, and the confidence level of the power intervals.
    pvalues : dict
        size -> array of the simulations' p-values (NaN for failures).
    """

    table: pd.DataFrame
    test: str
    method: str
    along: str | None
    alpha: float
    level: float
    pvalues: dict

    @property
    def power(self) -> pd.Series:
        """Estimated power per design size.

        Returns
        -------
        pandas.Series
            The ``power`` column (share of simulations significant at ``alpha``, in [0, 1]) indexed by
            ``size`` (None without ``along``).
        """
        return pd.Series(self.table["power"].to_numpy(), index=self.table["size"], name="power")

    def to_frame(self) -> pd.DataFrame:
        """The result table, as a copy the caller may change.

        Returns
        -------
        pandas.DataFrame
            A copy of :attr:`table` (size, power, ci_lower, ci_upper, n_sim, n_significant, n_failed).
        """
        return self.table.copy()

    def __repr__(self) -> str:
        return (f"Power for {self.test!r} ({self.method}, alpha = {self.alpha:g}, "
                f"{100 * self.level:g}% Clopper-Pearson intervals)\n{self.table.to_string(index=False)}")


def _clopper_pearson(k, n, level):
    from scipy import stats

    a = 1.0 - level
    lo = 0.0 if k == 0 else stats.beta.ppf(a / 2, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - a / 2, k + 1, n - k)
    return float(lo), float(hi)


def extend_data(data: pd.DataFrame, along: str, size: int) -> pd.DataFrame:
    """The rows of ``data`` with ``size`` levels of ``along`` (simr's ``extend(along=, n=)``).

    Parameters
    ----------
    data : pandas.DataFrame
        The data the model was fitted to.
    along : str
        Column of the grouping variable to extend (e.g. the subject column).
    size : int
        Number of levels wanted, at least 2.  Fewer than the data have: the first ``size`` levels
        (in order of appearance); more: new levels copy the rows of the existing ones in turn,
        labelled ``"<level>_<k>"``.

    Returns
    -------
    pandas.DataFrame
        The extended data with a fresh 0..n-1 index; ``along`` becomes a string column.

    Raises
    ------
    ArgumentError
        ``along`` is not a column, or ``size`` < 2.
    """
    if along not in data.columns:
        raise ArgumentError(f"along={along!r} is not a column of the data")
    col = data[along]
    levels = list(pd.unique(col.dropna()))
    n0 = len(levels)
    if size < 2:
        raise ArgumentError(f"sizes must be at least 2 levels of {along!r}, got {size}")
    parts = []
    for j in range(size):
        lev = levels[j % n0]
        rows = data[col == lev].copy()
        if j >= n0:
            rows[along] = f"{lev}_{j // n0}"
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True)
    out[along] = out[along].astype(str)
    return out


def _template(fit, data, along, size):
    """A fit whose problem has the extended design (its estimates are not used)."""
    import glmmkit as gk

    if along is None:
        return fit
    ext = extend_data(data, along, int(size))
    if fit.kind == "lmm":
        if getattr(fit, "_residual", None) is not None or fit.frame.weights is not None:
            raise NotAvailableError("power(along=...) does not extend fits with weights or a residual structure")
        return gk.lmer(fit.formula, ext, reml=fit.reml)
    if fit.kind == "glmm":
        return gk.glmer(fit.formula, ext, family=fit.family, nagq=fit.nagq)
    raise NotAvailableError("power() needs a fit with a likelihood (not PQL)")


def _simulate(fit, template, beta, rng):
    """One response on the template's rows from ``fit``'s θ, σ, family and ``beta``."""
    s = template.structure
    u = rng.standard_normal(s.q)
    b = s.b_of(s.templates(fit._theta), u) * (fit.sigma if fit.kind == "lmm" else 1.0)
    eta = template.frame.X[:, template._x_kept] @ beta + template.frame.offset + template._z @ b
    if fit.kind == "lmm":
        return eta + fit.sigma * rng.standard_normal(template.nobs)
    mu = fit.family.link.inverse(eta)
    return fit.family.simulate(mu, template._problem.wt, rng)


def _pvalue(template, y, test, method):
    if method in ("wald", "z"):
        refit = template.refit(y)
        if not refit.converged and not np.all(np.isfinite(refit._vcov)):
            return np.nan
        tab = refit.coef_table(ddf="z" if method == "z" or refit.kind != "lmm" else None)
        return float(tab.loc[test, "p_value"])
    from scipy import stats

    problem = template._problem.with_response(y)
    if template.kind == "lmm":
        problem = dataclasses.replace(problem, reml=False)
    names = [template.frame.x_names[j] for j in problem.kept]
    j = names.index(test)
    keep = [i for i in range(len(names)) if i != j]
    reduced = dataclasses.replace(problem, X=np.asarray(problem.X)[:, keep], kept=[problem.kept[i] for i in keep])
    full_fit = problem.fit()
    red_fit = reduced.fit()
    stat = max(2.0 * (full_fit.loglik - red_fit.loglik), 0.0)
    return float(stats.chi2.sf(stat, 1))


_WORK = None  # (fit, templates, beta, test, method) for forked workers


def _one(task):
    k, seed_seq = task
    fit, templates, beta, test, method = _WORK
    rng = np.random.default_rng(seed_seq)
    tpl = templates[k]
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = _simulate(fit, tpl, beta, rng)
            return _pvalue(tpl, y, test, method)
    except Exception:
        return np.nan


def power(fit, test: str, n_sim: int = 100, *, along: str | None = None, sizes=None, data=None,
          effect: dict | None = None, method: str = "wald", alpha: float = 0.05, level: float = 0.95,
          seed=None, n_jobs: int = 1, progress: bool = True) -> PowerResult:
    """Power of a test of one fixed effect by simulation (simr's ``powerSim`` / ``powerCurve``).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The model simulated from (its θ, σ, family parameters and fixed effects).
    test : str
        The fixed-effect coefficient tested (a name of ``fit.fixef``).
    n_sim : int
        Simulations per size.
    along : str, optional
        A grouping factor (a column of ``data``) whose number of levels varies (simr's ``along``).
    sizes : sequence of int, optional
        Numbers of levels of ``along`` (more than the data's: new levels, new random effects).
        Without ``along``: the fit's own design only.
    data : pandas.DataFrame, optional
        The data extended along ``along``: by default the fitted rows' used columns (``fit.frame.data``).
    effect : dict, optional
        Fixed effects changed before simulating, ``{"x": 0.0}`` (simr's ``fixef(fit)["x"] <- 0``).
    method : "wald", "z" or "lrt"
        Wald test (t with Satterthwaite df for LMMs, z for GLMMs), z for every fit, or a
        likelihood-ratio test against the model without the coefficient (ML for LMMs).
    alpha : float
        Significance level.
    level : float
        Confidence level of the Clopper-Pearson interval of the power.
    seed : int, optional
        Makes the result reproducible (independent of ``n_jobs``).
    n_jobs : int
        Worker processes (forked; Linux and macOS).
    progress : bool
        A progress line on a terminal (stderr) only.

    Returns
    -------
    PowerResult
        ``.table`` (size, power, ci_lower, ci_upper, n_sim, n_significant, n_failed), ``.power``.
    """
    global _WORK
    if not fit.has_likelihood:
        raise NotAvailableError("power() needs a fit with a likelihood (not PQL)")
    if test not in fit.x_names:
        raise ArgumentError(f"test={test!r} is not a fixed effect of the fit (they are {fit.x_names})")
    if method not in ("wald", "z", "lrt"):
        raise ArgumentError(f"method must be 'wald', 'z' or 'lrt', got {method!r}")
    beta = fit._beta.copy()
    for name, value in (effect or {}).items():
        if name not in fit.x_names:
            raise ArgumentError(f"effect names {name!r}, not a fixed effect of the fit ({fit.x_names})")
        beta[fit.x_names.index(name)] = float(value)
    if along is not None:
        if data is None:  # the used columns of the fitted rows
            data = fit.frame.data
        sizes = [int(s) for s in (sizes if sizes is not None else [data[along].nunique()])]
    else:
        if sizes is not None:
            raise ArgumentError("sizes needs along=, the grouping factor to extend")
        sizes = [None]
    templates = [_template(fit, data, along, s) for s in sizes]
    seeds = np.random.SeedSequence(seed).spawn(len(sizes) * int(n_sim))
    tasks = [(k, seeds[k * int(n_sim) + i]) for k in range(len(sizes)) for i in range(int(n_sim))]
    show = progress and sys.stderr.isatty()
    _WORK = (fit, templates, beta, test, method)
    results = []
    try:
        import multiprocessing as mp

        from .._threads import single_blas_thread

        from .confint import _gnu_openmp_loaded

        with single_blas_thread():
            if n_jobs > 1 and _gnu_openmp_loaded():
                import warnings

                warnings.warn("GNU OpenMP is loaded in this process and a forked worker would be killed by it: "
                              "power() runs its simulations in this process (set NUMBA_THREADING_LAYER=tbb or "
                              "workqueue to use n_jobs)", RuntimeWarning, stacklevel=2)
                n_jobs = 1
            if n_jobs > 1 and "fork" in mp.get_all_start_methods():
                with mp.get_context("fork").Pool(int(n_jobs)) as pool:
                    for i, p in enumerate(pool.imap(_one, tasks, chunksize=max(1, len(tasks) // (8 * n_jobs)))):
                        results.append(p)
                        _progress(show, i + 1, len(tasks))
            else:
                for i, t in enumerate(tasks):
                    results.append(_one(t))
                    _progress(show, i + 1, len(tasks))
    finally:
        _WORK = None
        if show:
            sys.stderr.write("\n")
    pv = np.asarray(results, dtype=float).reshape(len(sizes), int(n_sim))
    rows, pvalues = [], {}
    for s, p in zip(sizes, pv):
        sig = int(np.sum(p < alpha))
        lo, hi = _clopper_pearson(sig, int(n_sim), level)
        rows.append({"size": s, "power": sig / int(n_sim), "ci_lower": lo, "ci_upper": hi, "n_sim": int(n_sim),
                     "n_significant": sig, "n_failed": int(np.sum(np.isnan(p)))})
        pvalues[s] = p
    return PowerResult(pd.DataFrame(rows), test, method, along, float(alpha), float(level), pvalues)


def _progress(show, done, total):
    if show:
        sys.stderr.write(f"\rpower: {done}/{total} simulations")
        sys.stderr.flush()


def plot_power(result: PowerResult, ax=None):
    """simr's ``plot(powerCurve)``: power against size with its intervals and the 80% line.

    Parameters
    ----------
    result : PowerResult
        The output of ``power``.
    ax : matplotlib Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib Axes
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        raise ImportError("plot_power needs matplotlib: pip install 'glmmkit[plot]'") from None
    if ax is None:
        _, ax = plt.subplots()
    t = result.table
    x = np.arange(len(t)) if result.along is None else t["size"].to_numpy(dtype=float)
    p = t["power"].to_numpy()
    ax.errorbar(x, p, yerr=[p - t["ci_lower"].to_numpy(), t["ci_upper"].to_numpy() - p], fmt="o-", capsize=3)
    ax.axhline(0.8, ls="--", color="grey", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"levels of {result.along}" if result.along else "")
    ax.set_ylabel(f"power ({result.test}, alpha = {result.alpha:g})")
    return ax
