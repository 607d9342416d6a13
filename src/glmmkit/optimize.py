"""Optimiser wrappers: derivative-free bound-constrained minimisation with a readable record.

The LMM objective lives over a handful of θ with lower bounds 0 on the diagonal
of Λ's templates; NLopt's BOBYQA (Powell's quadratic-model method, lme4's default
via nloptwrap) needs ~10–40 evaluations per parameter and handles the bounds, so
singular fits land exactly on the boundary instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["OptimResult", "minimize_bobyqa"]

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
    fun : float
    n_evals : int
    converged : bool
    message : str
    optimizer : str
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


def minimize_bobyqa(fun, x0, lower, *, initial_step=0.75, ftol_abs=1e-10, ftol_rel=1e-12, xtol_abs=1e-10,
                    maxeval=100_000):
    """Minimise ``fun`` from ``x0`` subject to ``x >= lower`` with NLopt's BOBYQA.

    A non-finite objective value (a failed factorisation) is replaced by the
    value at the start, so that BOBYQA's quadratic model is not wrecked.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``.
    x0, lower : ndarray
    ftol_abs, ftol_rel, xtol_abs : float
        Stopping tolerances (NLopt's meaning).
    maxeval : int
    initial_step : float or ndarray
        BOBYQA's first trust-region radius (per parameter).

    Returns
    -------
    OptimResult
    """
    import nlopt

    x0 = np.asarray(x0, dtype=float)
    lower = np.asarray(lower, dtype=float)
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
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    opt.set_initial_step(np.broadcast_to(np.asarray(initial_step, dtype=float), (n,)).copy())
    try:
        opt.optimize(x0)
        code = opt.last_optimize_result()
    except nlopt.RoundoffLimited:
        code = -4
    x, fval = best["x"], best["f"]
    converged = bool(np.isfinite(fval)) and (code > 0 or code == -4)
    on_boundary = [int(i) for i in np.flatnonzero(np.isfinite(lower) & (x <= lower + 1e-10))]
    return OptimResult(np.asarray(x), fval, best["count"], converged, _NLOPT_MESSAGES.get(code, str(code)),
                       "nlopt BOBYQA", on_boundary)
