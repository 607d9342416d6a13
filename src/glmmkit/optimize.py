"""Optimiser wrappers: derivative-free bound-constrained minimisation with a readable record.

The LMM objective lives over a handful of θ with lower bounds 0 on the diagonal
of Λ's templates; NLopt's BOBYQA (Powell's quadratic-model method, lme4's default
via nloptwrap) needs ~10–40 evaluations per parameter and handles the bounds, so
singular fits land exactly on the boundary instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OptimResult", "minimize_bobyqa", "minimize_with_restarts", "restart_record", "snap_to_zero_bounds"]

_NLOPT_MESSAGES = {
    1: "success",
    2: "stopval reached",
    3: "ftol reached",
    4: "xtol reached",
    5: "maximum number of evaluations reached",
    6: "maximum time reached",
    -1: "generic failure",
    -2: "invalid arguments",
    -3: "out of memory",
    -4: "roundoff errors limited progress",
    -5: "forced stop",
}


@dataclass
class OptimResult:
    """What an optimiser run produced.

    Attributes
    ----------
    x : ndarray
        The best point found.
    fun : float
        The objective's value there (inf when no finite value was found).
    n_evals : int
        Objective evaluations used.
    converged : bool
        Whether the optimiser reported convergence with a finite value.
    message : str
        The optimiser's own message.
    optimizer : str
        Which optimiser ran (e.g. ``"nlopt BOBYQA"``).
    on_boundary : list of int
        Indices of parameters at their lower bound.
    """

    x: np.ndarray
    fun: float
    n_evals: int
    converged: bool
    message: str
    optimizer: str
    on_boundary: list = field(default_factory=list)


def minimize_bobyqa(fun, x0, lower, *, upper=None, initial_step=0.75, ftol_abs=1e-10, ftol_rel=1e-12,
                    xtol_abs=1e-10, maxeval=100_000, resettle=True):
    """Minimise ``fun`` from ``x0`` subject to ``lower <= x <= upper`` with NLopt's BOBYQA.

    A non-finite objective value (a failed factorisation) is replaced by the
    value at the start, so that BOBYQA's quadratic model is not wrecked.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``.
    x0 : ndarray
        Starting point (clipped into the bounds).
    lower : ndarray
        Lower bounds (``-inf`` where free).
    upper : ndarray, optional
        Upper bounds (none when omitted).
    ftol_abs, ftol_rel, xtol_abs : float
        Stopping tolerances (NLopt's meaning).
    maxeval : int
        Most evaluations.
    initial_step : float or ndarray
        BOBYQA's first trust-region radius (per parameter).
    resettle : bool, default True
        When parameters were set to their zero bound (:func:`snap_to_zero_bounds`), run once more
        from there.

    Returns
    -------
    OptimResult
        The best point seen and its value, the evaluation count, whether BOBYQA converged, its
        message, and the parameters on their lower bound.
    """
    import nlopt

    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(lower, np.inf) if upper is None else np.asarray(upper, dtype=float)
    x0 = np.clip(x0, lower, upper)
    n = x0.shape[0]
    f0 = float(fun(x0))
    fallback = f0 if np.isfinite(f0) else 1e300
    best = {"x": x0.copy(), "f": f0 if np.isfinite(f0) else np.inf, "count": 1}

    def wrapped(x, grad):
        best["count"] += 1
        v = float(fun(x))
        if v < best["f"]:
            best["x"], best["f"] = x.copy(), v
        return v if np.isfinite(v) else fallback

    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
    opt.set_upper_bounds(np.where(np.isfinite(upper), upper, np.inf))
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    step = np.broadcast_to(np.asarray(initial_step, dtype=float), (n,)).copy()
    width = upper - lower
    # BOBYQA refuses a trust region wider than half the box
    step = np.where(np.isfinite(width) & (width > 0), np.minimum(step, 0.5 * width), step)
    opt.set_initial_step(step)
    try:
        opt.optimize(x0)
        code = opt.last_optimize_result()
    except nlopt.RoundoffLimited:
        code = -4
    x, fval = best["x"], best["f"]
    x, fval, extra = snap_to_zero_bounds(fun, x, fval, lower)
    if resettle and extra and np.any(x != best["x"]):
        # the run stopped while still crawling toward the bound: from the bound, once more
        again = minimize_bobyqa(fun, x, lower, upper=upper, initial_step=np.minimum(step, 0.1), ftol_abs=ftol_abs,
                                ftol_rel=ftol_rel, xtol_abs=xtol_abs, maxeval=maxeval, resettle=False)
        if again.fun <= fval:
            x, fval = again.x, again.fun
        extra += again.n_evals
    # stopping on maxeval/maxtime (codes 5, 6) is giving up, not converging
    converged = bool(np.isfinite(fval)) and (code in (1, 2, 3, 4) or code == -4)
    on_boundary = [int(i) for i in np.flatnonzero(np.isfinite(lower) & (x <= lower + 1e-10))]
    return OptimResult(np.asarray(x), fval, best["count"] + extra, converged, _NLOPT_MESSAGES.get(code, str(code)),
                       "nlopt BOBYQA", on_boundary)


#: how close to a zero lower bound a parameter must end for the zero to be tried (MixedModels.jl's
#: ``xtol_zero_abs``)
ZERO_SNAP = 1e-3


def snap_to_zero_bounds(fun, x, fval, lower, tol: float = ZERO_SNAP):
    """Set parameters that ended just above a lower bound of 0 to 0, when that does not raise the value.

    A variance whose optimum is 0 lies at the end of a flat valley: BOBYQA stops when the value no
    longer changes, anywhere from 1e-6 to 1e-3 above the bound, and where it stops depends on the
    rounding of each evaluation.  The bound itself is the optimum when its value is no higher; each
    such parameter is tried at 0, all together first, then one at a time.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``.
    x : numpy.ndarray
        The optimiser's best point.
    fval : float
        ``fun(x)``.
    lower : numpy.ndarray
        Lower bounds.
    tol : float, default ``ZERO_SNAP``
        Parameters in (0, tol) are tried at 0.

    Returns
    -------
    x : numpy.ndarray
        The point with the snapped parameters at 0 (``x`` when none helped).
    fval : float
        Its value.
    evals : int
        Evaluations spent.
    """
    near = np.flatnonzero((lower == 0.0) & (x > 0.0) & (x < tol))
    if near.size == 0 or not np.isfinite(fval):
        return x, fval, 0
    evals = 0
    for group in [near] + ([[i] for i in near] if near.size > 1 else []):
        z = x.copy()
        z[group] = 0.0
        fz = float(fun(z))
        evals += 1
        if np.isfinite(fz) and fz <= fval:
            x, fval = z, fz
            if len(group) == near.size:
                break
    return x, fval, evals


def _lbfgsb_numeric(fun, x0, lower, upper, maxeval):
    """scipy's L-BFGS-B with finite-difference gradients: a second, different optimiser."""
    from scipy.optimize import minimize

    upper = np.full_like(lower, np.inf) if upper is None else upper
    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, upper)]
    best = {"x": np.asarray(x0, dtype=float).copy(), "f": np.inf, "count": 0}

    def wrapped(x):
        best["count"] += 1
        v = float(fun(x))
        if v < best["f"]:
            best["x"], best["f"] = x.copy(), v
        return v if np.isfinite(v) else 1e300

    res = minimize(wrapped, x0, method="L-BFGS-B", bounds=bounds,
                   options={"maxfun": maxeval, "ftol": 1e-13, "gtol": 1e-7})
    x, fval = best["x"], best["f"]
    on_boundary = [int(i) for i in np.flatnonzero(np.isfinite(lower) & (x <= lower + 1e-10))]
    return OptimResult(x, fval, best["count"], bool(res.success and np.isfinite(fval)), str(res.message),
                       "scipy L-BFGS-B (numerical gradient)", on_boundary)


def restart_record(res: OptimResult, start: str, reason: str, chosen: bool) -> dict:
    """One entry of ``FitInfo.restarts``: what was tried, from where, why, and what it reached.

    Parameters
    ----------
    res : OptimResult
        The run's result (its ``fun`` a deviance).
    start : str
        Where it started (``"initial"``, ``"second start"``, ``"best point so far"``).
    reason : str
        Why it was run (``"first run"``, or what went wrong before it).
    chosen : bool
        Whether this run's point became the fit's.

    Returns
    -------
    dict
        Keys optimizer, start, reason, loglik (-fun / 2; NaN for a non-finite value), converged,
        n_evals, chosen.
    """
    return {"optimizer": res.optimizer, "start": start, "reason": reason,
            "loglik": -0.5 * float(res.fun) if np.isfinite(res.fun) else float("nan"),
            "converged": bool(res.converged), "n_evals": int(res.n_evals), "chosen": bool(chosen)}


def minimize_with_restarts(fun, x0, lower, *, upper=None, alt_start=None, initial_step=0.75, maxeval=100_000,
                           **kw):
    """BOBYQA, and when it ends badly (no convergence or no finite value) further tries.

    The tries, in order, each from the best point so far unless said: BOBYQA from
    ``alt_start`` (a second start, e.g. lme4's identity θ when the first was the
    moment start), BOBYQA restarted from the best point with a fresh trust region,
    and scipy's L-BFGS-B (a different method, as lme4's ``allFit``).  The run with the
    lowest value among those that converged wins (the lowest value overall if none
    did).  ``fun`` is a deviance: the records give the log-likelihood ``-fun / 2``.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``, the deviance to minimise.
    x0 : numpy.ndarray
        Starting point.
    lower : numpy.ndarray
        Lower bounds (``-inf`` where free).
    upper : numpy.ndarray, optional
        Upper bounds (none when omitted).
    alt_start : numpy.ndarray, optional
        A second starting point, tried when the first run ends badly (skipped when equal to ``x0``).
    initial_step : float or numpy.ndarray, default 0.75
        BOBYQA's first trust-region radius (per parameter).
    maxeval : int, default 100000
        Most evaluations per run.
    **kw
        Passed to :func:`minimize_bobyqa` (``ftol_abs``, ``ftol_rel``, ``xtol_abs``).

    Returns
    -------
    OptimResult
        With an extra attribute ``restarts``: the records of every run when there was
        more than one (the first included), else an empty list.
    """
    first = minimize_bobyqa(fun, x0, lower, upper=upper, initial_step=initial_step, maxeval=maxeval, **kw)
    first.restarts = []
    if first.converged and np.isfinite(first.fun):
        return first
    reason = "no finite value" if not np.isfinite(first.fun) else f"did not converge ({first.message})"
    runs = [(first, "initial", "first run")]
    if alt_start is not None and not np.allclose(alt_start, x0):
        runs.append((minimize_bobyqa(fun, alt_start, lower, upper=upper, initial_step=initial_step, maxeval=maxeval, **kw),
                     "second start", reason))
    best = min(runs, key=lambda r: r[0].fun if np.isfinite(r[0].fun) else np.inf)[0]
    if not best.converged:
        runs.append((minimize_bobyqa(fun, best.x, lower, upper=upper, initial_step=initial_step, maxeval=maxeval, **kw),
                     "best point so far", reason))
    if not any(r.converged for r, _, _ in runs):
        best = min(runs, key=lambda r: r[0].fun if np.isfinite(r[0].fun) else np.inf)[0]
        runs.append((_lbfgsb_numeric(fun, best.x, lower, upper, maxeval), "best point so far", reason))
    pool = [r for r in runs if r[0].converged] or runs
    chosen = min(pool, key=lambda r: r[0].fun if np.isfinite(r[0].fun) else np.inf)[0]
    out = OptimResult(chosen.x, chosen.fun, sum(r.n_evals for r, _, _ in runs), chosen.converged, chosen.message,
                      chosen.optimizer, chosen.on_boundary)
    out.restarts = [restart_record(r, start, why, r is chosen) for r, start, why in runs]
    return out
