"""The optimisation policy every GLMM strategy shares.

One convergence test (``gradient_converged``), one boundary rule (``on_boundary``),
one bound probe (``probe_off_bound``), one L-BFGS-B policy with its curvature-scaled
rescue (``lbfgs``), a Newton iteration on an objective's own approximate Hessian
(``curvature_newton``), one pair of Hessian routines (from an exact gradient or from
values) and one Hessian → covariance step (``covariance_from_hessian``).  Every
optimiser run goes into a :class:`RunLog`, which becomes ``fit.optimizer_info.restarts``.

Warm starts are passed, never planted: routines that evaluate an objective at
trial points take a ``warm`` pair ``(get, set)`` that saves and restores the
objective's warm-start modes, so that every trial starts from the modes at the
estimate and the objective ends as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..optimize import OptimResult, restart_record

__all__ = ["RunLog", "gradient_tolerance", "free_mask", "free_gradient_norm", "gradient_converged",
           "on_boundary", "probe_off_bound", "BOUND_PROBES", "lbfgs", "hessian_from_gradient",
           "hessian_from_values", "covariance_from_hessian", "as_result", "LBFGS_OPTIONS", "metric_from_hessian", "metric_lbfgs",
           "newton_polish", "curvature_newton"]

#: L-BFGS-B's options on every Laplace path (one set: the paths used to differ in gtol)
LBFGS_OPTIONS = {"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20}

#: values tried for a θ that ends on its bound of 0 (see probe_off_bound); small ones matter: an
#: optimum at θ = 0.02 lowers the deviance by only ~c·θ² next to the bound
BOUND_PROBES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.5)


@dataclass
class RunLog:
    """Every optimiser run of one fit, in order (``fit.optimizer_info.restarts``).

    Attributes
    ----------
    runs : list of dict
        One record per run: optimizer, start, reason, loglik, converged, n_evals, chosen (and
        message for runs added by :meth:`add`).
    """

    runs: list = field(default_factory=list)

    def add(self, optimizer: str, start: str, reason: str, loglik: float, converged: bool, n_evals: int,
            chosen: bool, message: str) -> None:
        """Record one run from its parts.

        Parameters
        ----------
        optimizer : str
            The optimiser's name (e.g. ``"L-BFGS-B (exact gradient)"``).
        start : str
            Where it started (``"initial"``, ``"best point so far"``, ...).
        reason : str
            Why it was run.
        loglik : float
            The log-likelihood it reached (NaN recorded when not finite).
        converged : bool
            Whether it passed the convergence test.
        n_evals : int
            Objective evaluations it used.
        chosen : bool
            Whether its point became the fit's.
        message : str
            The optimiser's message.
        """
        self.runs.append({"optimizer": optimizer, "start": start, "reason": reason,
                          "loglik": float(loglik) if np.isfinite(loglik) else float("nan"),
                          "converged": bool(converged), "n_evals": int(n_evals), "chosen": bool(chosen),
                          "message": str(message)})

    def add_result(self, res: OptimResult, start: str, reason: str, chosen: bool) -> None:
        """Record one run from its ``OptimResult`` (see :func:`glmmkit.optimize.restart_record`).

        Parameters
        ----------
        res : OptimResult
            The run's result (its ``fun`` a deviance).
        start : str
            Where it started.
        reason : str
            Why it was run.
        chosen : bool
            Whether its point became the fit's.
        """
        self.runs.append(restart_record(res, start, reason, chosen))

    def extend(self, records) -> None:
        """Append records made elsewhere (e.g. ``minimize_with_restarts``'s ``restarts``).

        Parameters
        ----------
        records : iterable of dict
            Run records in the layout of :meth:`add`.
        """
        self.runs.extend(records)

    def any_chosen(self) -> bool:
        """Whether some recorded run is marked as the fit's.

        Returns
        -------
        bool
            True when a record has ``chosen`` set.
        """
        return any(r.get("chosen") for r in self.runs)


def as_result(res, optimizer: str, converged: bool) -> OptimResult:
    """scipy's OptimizeResult as an OptimResult (for the run log).

    Parameters
    ----------
    res : scipy.optimize.OptimizeResult
        A scipy run (``x``, ``fun``, ``nfev``, ``message``).
    optimizer : str
        The name to record.
    converged : bool
        The verdict of the shared convergence test (not scipy's ``success``).

    Returns
    -------
    OptimResult
        The same point, value, evaluation count and message.
    """
    return OptimResult(res.x, float(res.fun), int(res.nfev), converged, str(res.message), optimizer)


def gradient_tolerance(nobs: int) -> float:
    """Largest |gradient| of the deviance (free parameters) accepted at an optimum.

    Stopping rules on the relative change of the deviance can fire far from an optimum (an
    overflowing trial step right after the start, at |g| in the hundreds); a real optimum of a
    deviance of size ~n has |g| well below 1e-5 n.

    Parameters
    ----------
    nobs : int
        Number of observations.

    Returns
    -------
    float
        max(1, 1e-5 · nobs).
    """
    return max(1.0, 1e-5 * nobs)


def free_mask(x: np.ndarray, layout) -> np.ndarray:
    """Parameters not held on a bound of ``layout``.

    Parameters
    ----------
    x : numpy.ndarray
        The parameter vector.
    layout : ParameterLayout
        The parameters' blocks and bounds.

    Returns
    -------
    numpy.ndarray of bool
        True for the free parameters, the shape of ``x``.
    """
    return layout.free_mask(np.asarray(x, dtype=float))


def free_gradient_norm(grad, x, layout) -> float:
    """max |gradient| over the free parameters.

    Parameters
    ----------
    grad : numpy.ndarray or None
        Gradient of the deviance at ``x``.
    x : numpy.ndarray
        The parameter vector.
    layout : ParameterLayout
        The parameters' blocks and bounds.

    Returns
    -------
    float
        The largest absolute free component; inf when the gradient is missing or not finite.
    """
    if grad is None:
        return np.inf
    g = np.asarray(grad, dtype=float)[free_mask(x, layout)]
    gmax = float(np.max(np.abs(g), initial=0.0))
    return gmax if np.isfinite(gmax) else np.inf


def gradient_converged(fun_value, success: bool, grad, x, layout, nobs: int) -> bool:
    """The one convergence test of gradient-based runs.

    A finite deviance, and either the optimiser's own success with a gradient below
    ``gradient_tolerance`` or a gradient below 1e-3 whatever the optimiser said.

    Parameters
    ----------
    fun_value : float
        The deviance at ``x``.
    success : bool
        The optimiser's own verdict.
    grad : numpy.ndarray or None
        Gradient of the deviance at ``x``.
    x : numpy.ndarray
        The parameter vector.
    layout : ParameterLayout
        The parameters' blocks and bounds.
    nobs : int
        Number of observations (scales the tolerance).

    Returns
    -------
    bool
        True when the run counts as converged.
    """
    if not np.isfinite(fun_value):
        return False
    gmax = free_gradient_norm(grad, x, layout)
    return bool((success and gmax < gradient_tolerance(nobs)) or gmax < 1e-3)


def on_boundary(x, layout) -> list:
    """Names of the covariance parameters (every θ block) estimated on one of their finite bounds.

    Parameters
    ----------
    x : numpy.ndarray
        The parameter vector.
    layout : ParameterLayout
        The parameters' blocks and bounds.

    Returns
    -------
    list of str
        Parameter names within 1e-10 of a finite bound, in the blocks' order.
    """
    return [name for b in layout.blocks if b.probe for name in layout.at_bound(x, b.name, tol=1e-10)]


def probe_off_bound(fun, x, fx, layout, warm):
    """The best point with one bound θ moved off 0 that beats ``fx``, or None.

    A scalar term's deviance is even in its θ, so its gradient vanishes at θ = 0 and a line search
    that lands on the bound never leaves it; only trying values off the bound (``BOUND_PROBES``)
    shows whether the deviance falls there.  A correlated term's column whose diagonal is on 0 may
    point either way (``CovStructure.sign_flips``), so the probes try it negated too: the optimum
    across the boundary can lie on the other side.

    Parameters
    ----------
    fun : callable
        x -> deviance.
    x : numpy.ndarray
        The optimiser's point.
    fx : float
        The deviance at ``x``; a probe must beat it by 1e-8 · max(1, |fx|).
    layout : ParameterLayout
        The parameters' blocks, bounds and probe candidates.
    warm : tuple of callable
        ``(get, set)`` of the objective's warm-start modes: every trial starts from the modes at
        ``x``, and they are restored at the end.

    Returns
    -------
    numpy.ndarray or None
        The best probe point, or None when no probe lowers the deviance.
    """
    get_u, set_u = warm
    best_x, best_f = None, fx - 1e-8 * max(1.0, abs(fx))
    u_saved = get_u()
    for k in layout.probe_candidates(x):
        flips = layout.sign_flips(k)
        for value in BOUND_PROBES:
            if value >= layout.upper[k]:
                continue
            trials = [x.copy()]
            if flips.size and np.any(x[flips] != 0):
                trials.append(x.copy())
                trials[1][flips] = -x[flips]
            for trial in trials:
                trial[k] = value
                set_u(u_saved)
                f_trial = fun(trial)
                if f_trial < best_f:
                    best_x, best_f = trial, f_trial
    set_u(u_saved)
    return best_x


def _rescued_lbfgs(fun_grad, x, layout, warm):
    """L-BFGS-B on coordinates scaled by the curvature at ``x`` (diagonal of the Hessian by forward
    differences of the gradient).  L-BFGS-B's first step has unit length; when the deviance is badly
    scaled (a covariate in the hundreds, a huge variance) that step overflows, the line search fails
    and scipy stops at the start with |g| in the hundreds.  In curvature units a unit step is sensible."""
    from scipy.optimize import OptimizeResult, minimize

    get_u, set_u = warm
    u_saved = get_u()
    f0, g0 = fun_grad(x)
    k = x.shape[0]
    curv = np.ones(k)
    for j in range(k):
        set_u(u_saved)
        h = 1e-5 * max(1.0, abs(x[j]))
        step = x.copy()
        step[j] = x[j] + h if x[j] + h <= layout.upper[j] else x[j] - h
        _, g1 = fun_grad(step)
        curv[j] = abs((g1[j] - g0[j]) / (step[j] - x[j]))
    set_u(u_saved)
    ok = np.isfinite(curv) & (curv > 0)
    scale = np.where(ok, 1.0 / np.sqrt(np.where(ok, curv, 1.0)), 1.0)
    scale = np.clip(scale, 1e-6, 1e3)

    def fun(z):
        value, grad = fun_grad(z * scale)
        return value, grad * scale

    zb = [(None if lo is None else lo / sc, None if hi is None else hi / sc)
          for (lo, hi), sc in zip(layout.scipy_bounds(), scale)]
    res = minimize(fun, x / scale, jac=True, method="L-BFGS-B", bounds=zb, options=LBFGS_OPTIONS)
    return OptimizeResult(x=res.x * scale, fun=res.fun, jac=res.jac / scale, success=res.success,
                          message=f"{res.message} (curvature-scaled restart)", nfev=res.nfev + k + 1)


def metric_from_hessian(H, layout, scales):
    """A linear change of coordinates x = x_start + T z in which ``H`` (an approximate Hessian of the
    deviance, e.g. a fixed-effects model's) is the identity, for L-BFGS-B.

    L-BFGS-B starts from the identity as its inverse Hessian; where the parameters' curvatures differ
    by orders of magnitude and are strongly correlated (a zero-inflation intercept with its slopes, a
    count intercept with the dispersion) it spends most of its iterations learning that metric.  The
    unbounded coordinates with a positive curvature in ``H`` are mixed by the inverse Cholesky factor
    of their block of ``H``; every other coordinate (a bounded one: θ, ψ) is only scaled, by
    1/√H_jj where that is positive, else by ``scales``, so that the bounds stay a box in z.

    Parameters
    ----------
    H : numpy.ndarray, shape (k, k)
        The approximate Hessian (zero rows for the parameters it does not cover).
    layout : ParameterLayout
        The parameters' blocks and bounds.
    scales : numpy.ndarray, shape (k,)
        The scale of each coordinate without curvature in ``H`` (θ's; positive).

    Returns
    -------
    numpy.ndarray, shape (k, k), or None
        T; None where ``H`` is not finite or the mixed block has no positive curvature.
    """
    H = np.asarray(H, dtype=float)
    k = layout.size
    if H.shape != (k, k) or not np.all(np.isfinite(H)):
        return None
    diag = np.diagonal(H)
    mixed = np.isneginf(layout.lower) & np.isposinf(layout.upper) & (diag > 0)
    T = np.zeros((k, k))
    for j in np.flatnonzero(~mixed):
        T[j, j] = 1.0 / np.sqrt(diag[j]) if diag[j] > 0 else scales[j]
    if mixed.any():
        w, V = np.linalg.eigh(H[np.ix_(mixed, mixed)])
        if not w.max() > 0:
            return None
        # floored eigenvalues: a start far from the fixed-effects optimum may give an indefinite H
        L = np.linalg.cholesky((V * np.maximum(w, 1e-8 * w.max())) @ V.T)
        T[np.ix_(mixed, mixed)] = np.linalg.inv(L.T)
    return T if np.all(np.isfinite(T)) and np.all(np.diagonal(T) > 0) else None


def metric_lbfgs(fun_grad, x0, T, bounds, options=None):
    """L-BFGS-B in the coordinates z of x = x0 + T z (see ``metric_from_hessian``), the result in x.

    Parameters
    ----------
    fun_grad : callable
        x -> (deviance, gradient).
    x0 : numpy.ndarray, shape (k,)
        The start (z = 0).
    T : numpy.ndarray, shape (k, k)
        The metric; diagonal in the rows and columns of bounded coordinates.
    bounds : list of (float or None, float or None)
        scipy's bounds on x.
    options : dict, optional
        L-BFGS-B's options (``LBFGS_OPTIONS`` by default).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac`` (the gradient in x), ``success``, ``message``, ``nfev``.
    """
    from scipy.optimize import OptimizeResult, minimize

    diag = np.diagonal(T)
    zb = []
    for j, (lo, hi) in enumerate(bounds):
        if lo is None and hi is None:
            zb.append((None, None))
            continue
        zl = None if lo is None else (lo - x0[j]) / diag[j]
        zh = None if hi is None else (hi - x0[j]) / diag[j]
        zb.append((zl, zh))

    def fun(z):
        value, grad = fun_grad(x0 + T @ z)
        return value, T.T @ grad

    res = minimize(fun, np.zeros(x0.shape[0]), jac=True, method="L-BFGS-B", bounds=zb,
                   options=LBFGS_OPTIONS if options is None else options)
    x = x0 + T @ res.x
    for j, (lo, hi) in enumerate(bounds):  # bounds are exact on the scaled coordinates; clip rounding
        if lo is not None or hi is not None:
            x[j] = np.clip(x[j], -np.inf if lo is None else lo, np.inf if hi is None else hi)
    jac = np.linalg.solve(T.T, res.jac)
    return OptimizeResult(x=x, fun=res.fun, jac=jac, success=res.success, message=str(res.message),
                          nfev=res.nfev)


def lbfgs(fun_grad, x0, layout, nobs: int, warm, value=None, max_restarts: int = 3, metric=None):
    """L-BFGS-B on an exact gradient with the shared policy: a curvature-scaled restart when it stops
    with a large gradient, and a probe of every θ that ends on its bound (restart from the best probe).

    Parameters
    ----------
    fun_grad : callable
        x -> (deviance, gradient).
    x0 : ndarray
        Starting point.
    layout : ParameterLayout
        The parameters' blocks and bounds (the start is clipped into them).
    nobs : int
        Number of observations (scales the gradient tolerance).
    warm : (get, set)
        The objective's warm-start modes (see ``probe_off_bound``).
    value : callable, optional
        x -> deviance for the probes (defaults to the first item of ``fun_grad``).
    max_restarts : int, default 3
        Most restarts from a better bound probe.
    metric : numpy.ndarray, shape (k, k), optional
        T of ``metric_from_hessian``: the runs are made in the coordinates z of x = x_start + T z
        (the curvature-scaled rescue in its own).

    Returns
    -------
    scipy.optimize.OptimizeResult
        With ``nfev`` counting every evaluation.
    """
    from scipy.optimize import minimize

    bounds = layout.scipy_bounds()
    value = value or (lambda prm: fun_grad(prm)[0])
    x = layout.clip(x0)
    nfev = 0
    res = None
    for _ in range(max_restarts + 1):
        if metric is not None:
            res = metric_lbfgs(fun_grad, x, metric, bounds)
        else:
            res = minimize(fun_grad, x, jac=True, method="L-BFGS-B", bounds=bounds, options=LBFGS_OPTIONS)
        nfev += res.nfev
        if np.isfinite(res.fun) and free_gradient_norm(res.jac, res.x, layout) > gradient_tolerance(nobs):
            scaled = _rescued_lbfgs(fun_grad, res.x, layout, warm)
            nfev += scaled.nfev
            if np.isfinite(scaled.fun) and scaled.fun < res.fun:
                res = scaled
        if not np.isfinite(res.fun):
            break
        nfev += len(BOUND_PROBES) * len(layout.probe_candidates(res.x))
        best_x = probe_off_bound(value, res.x, res.fun, layout, warm)
        if best_x is None:
            break
        x = best_x
    res.nfev = nfev
    return res


#: largest Newton decrement (the squared step in the Hessian's metric, ~2 (Δx / SE)²) from which a step
#: updates ``curvature_newton``'s secant correction
SECANT_DECREMENT = 10.0
#: a Newton decrement below which a failed line search means an optimum flat to rounding, not a stall
ROUNDING_DECREMENT = 1e-6


def curvature_newton(fun_grad, x0, layout, curvature, f0=None, g0=None, maxit: int = 100,
                     decrement_tol: float = 1e-12):
    """Projected Newton iterations on an approximate Hessian that the objective recomputes at each point.

    Where the objective can give a good approximation of its Hessian at the point it has just
    evaluated (a GLMM's Laplace deviance: ``objective.curvature``), Newton's direction on it converges
    at the rate of the approximation's error, about an order of magnitude in the gradient per
    evaluation, from the start on: no evaluations spent learning the metric as L-BFGS-B does, and no
    unit-length first step (L-BFGS-B's rule, which overshoots a fixed effect whose curvature is of the
    order of the number of rows).  Near the optimum a symmetric secant correction learns the
    approximation's error from the steps, which makes the last steps superlinear.  Parameters on a bound with the gradient pushing outwards are held
    there; a step is projected onto the bounds and halved until the value drops by Armijo's rule.

    Parameters
    ----------
    fun_grad : callable
        x -> (deviance, gradient).
    x0 : numpy.ndarray, shape (k,)
        The start.
    layout : ParameterLayout
        The parameters' bounds.
    curvature : callable
        x -> approximate Hessian (k, k) at the point ``fun_grad`` evaluated last (it may read the
        objective's state there).
    f0, g0 : optional
        ``fun_grad(x0)`` when the caller has it.
    maxit : int, default 100
        Most Newton steps.
    decrement_tol : float, default 1e-12
        Stop once the Newton decrement g'B⁻¹g over the free parameters (the deviance the next step
        would gain, twice over) is below this.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x``, ``fun``, ``jac``, ``success`` (True when the decrement test stopped it), ``message``,
        ``nfev`` (every evaluation, the start's included when computed here), ``nit``.
    """
    from scipy.optimize import OptimizeResult

    lower, upper = layout.lower, layout.upper
    x = layout.clip(np.asarray(x0, dtype=float))
    nfev = 0
    if f0 is None or g0 is None:
        f0, g0 = fun_grad(x)
        nfev += 1
    f, g = float(f0), np.asarray(g0, dtype=float)

    def done(success, message, it):
        return OptimizeResult(x=x, fun=f, jac=g, success=success, message=message, nfev=nfev, nit=it)

    if not (np.isfinite(f) and np.all(np.isfinite(g))):
        return done(False, "the start's value or gradient is not finite", 0)
    C, secant = np.zeros((x.shape[0], x.shape[0])), None
    for it in range(maxit):
        B = np.asarray(curvature(x), dtype=float)
        if secant is not None:
            # the approximation's error, learned from the steps (Powell's symmetric Broyden update of
            # C in B = approximation + C, so that B s = y): Newton's rate within a few steps
            s_, y_ = secant
            r = y_ - (B + C) @ s_
            ss = float(s_ @ s_)
            if ss > 0 and np.all(np.isfinite(r)):
                C = C + (np.outer(r, s_) + np.outer(s_, r)) / ss - float(r @ s_) * np.outer(s_, s_) / ss**2
        B = B + C
        held = ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))
        free = ~held
        if not free.any():
            return done(True, "every parameter held on a bound", it)
        w, V = np.linalg.eigh(B[np.ix_(free, free)])
        if not (np.all(np.isfinite(w)) and w.max() > 0):
            return done(False, "the approximate Hessian is not usable", it)
        w = np.maximum(w, 1e-8 * w.max())  # an indefinite or singular approximation: floored eigenvalues
        d = np.zeros_like(x)
        d[free] = -(V @ ((V.T @ g[free]) / w))
        decrement = float(-g @ d)
        if decrement < decrement_tol:
            return done(True, f"Newton decrement {decrement:.2g} below {decrement_tol:g}", it)
        t = 1.0
        tiny = decrement < ROUNDING_DECREMENT
        for _ in range(3 if tiny else 40):
            xn = np.clip(x + t * d, lower, upper)
            with np.errstate(all="ignore"):
                fn, gn = fun_grad(xn)
            nfev += 1
            if not (np.isfinite(fn) and np.all(np.isfinite(gn))):
                t *= 0.5
                continue
            if fn <= f + 1e-4 * float(g @ (xn - x)):
                break
            # within the deviance's rounding (its mode is found to a relative 1e-10, which is ~1e-7 on a
            # deviance of 1000) values no longer order the points; a smaller gradient in B's metric does
            gfree = gn[free]
            if tiny and float(gfree @ (V @ ((V.T @ gfree) / w))) < decrement:
                break
            t *= 0.5
        else:
            if decrement < ROUNDING_DECREMENT:  # the deviance is flat to its rounding: an optimum
                return done(True, f"converged: no lower deviance within a Newton decrement of {decrement:.2g}", it)
            return done(False, "no step along Newton's direction lowers the deviance", it)
        # the secant update only from steps within a few standard errors of the optimum, where the
        # Hessian is nearly constant along the step (a first step from far away would spoil C)
        secant = (xn - x, np.asarray(gn, dtype=float) - g) if decrement < SECANT_DECREMENT else None
        x, f, g = xn, float(fn), np.asarray(gn, dtype=float)
    return done(False, f"{maxit} Newton steps without meeting the decrement test", maxit)


def _steps(x, h, layout):
    """Difference steps h·max(1, |x|), up (away from lower bounds) unless that crosses an upper bound."""
    steps = h * np.maximum(1.0, np.abs(x))
    if layout is not None:
        steps = np.where(x + steps > layout.upper, -steps, steps)
    return steps


def hessian_from_gradient(fun_grad, x, warm, h=1e-6, g0=None, layout=None, batch=None):
    """Forward differences of an exact gradient, symmetrised.

    k evaluations, plus one unless ``g0`` (the gradient at ``x`` the optimiser already has) is
    given; steps go up, away from the lower bounds (down where ``layout`` has an upper bound within
    the step); every evaluation starts from the warm-start modes at ``x``.

    Parameters
    ----------
    fun_grad : callable
        x -> (deviance, gradient).
    x : numpy.ndarray, shape (k,)
        The point.
    warm : tuple of callable
        ``(get, set)`` of the objective's warm-start modes.
    h : float, default 1e-6
        Relative step: h · max(1, |x_j|).
    g0 : numpy.ndarray, optional
        The gradient at ``x``, when known (recomputed when missing or not finite).
    layout : ParameterLayout, optional
        Bounds that steps must not cross upwards.
    batch : callable, optional
        points (k, k) -> (values, gradients) or None: ``fun_grad`` at every step at once, each from
        the warm start at ``x`` (``OneFactorParametric.gradients_near_mode``); the steps are taken one
        by one where it gives None.

    Returns
    -------
    H : ndarray, shape (k, k)
        The Hessian of the deviance.
    grad : ndarray, shape (k,)
        The gradient at ``x``.
    """
    get_u, set_u = warm
    k = x.shape[0]
    H = np.empty((k, k))
    u_saved = get_u()
    if g0 is None or not np.all(np.isfinite(g0)):
        _, g0 = fun_grad(x)
    steps = _steps(x, h, layout)
    together = None if batch is None else batch(x + np.diag(steps))
    if together is not None:
        set_u(u_saved)
        H = (together[1] - g0).T / steps
        return 0.5 * (H + H.T), g0
    for j in range(k):
        set_u(u_saved)
        e = np.zeros(k)
        e[j] = steps[j]
        _, g1 = fun_grad(x + e)
        H[:, j] = (g1 - g0) / e[j]
    set_u(u_saved)
    return 0.5 * (H + H.T), g0


def hessian_from_values(fun, x, h=1e-4, layout=None):
    """Forward-difference Hessian of ``fun`` at ``x``, and the gradient that comes with it.

    1 + k + k(k+1)/2 evaluations (central differences need 2k²), O(h) accurate, which is ample for
    standard errors.  Steps go up, away from the lower bounds (down where ``layout`` has an upper
    bound within the step).

    Parameters
    ----------
    fun : callable
        x -> deviance.
    x : numpy.ndarray, shape (k,)
        The point.
    h : float, default 1e-4
        Relative step: h · max(1, |x_j|).
    layout : ParameterLayout, optional
        Bounds that steps must not cross upwards.

    Returns
    -------
    H : ndarray, shape (k, k)
        The Hessian (NaN entries when the deviance is not finite at a step).
    grad : ndarray, shape (k,)
        One-sided second-order gradient from the same evaluations (for the convergence record).
    """
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite deviance gives a NaN Hessian, reported
        return _hessian_from_values(fun, x, _steps(x, h, layout))


def _hessian_from_values(fun, x, steps):
    k = x.shape[0]
    f0 = fun(x)
    f1 = np.array([fun(x + steps[i] * np.eye(k)[i]) for i in range(k)])
    H = np.empty((k, k))
    f2 = np.empty(k)
    for i in range(k):
        for j in range(i + 1):
            fij = fun(x + steps[i] * np.eye(k)[i] + steps[j] * np.eye(k)[j])
            H[i, j] = H[j, i] = (fij - f1[i] - f1[j] + f0) / (steps[i] * steps[j])
            if i == j:
                f2[i] = fij
    return H, (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * steps)


def newton_polish(fun, x, H, grad, layout, maxit: int = 3, step_tol: float = 1e-8, fx=None):
    """Newton steps on a derivative-free optimum, with the difference Hessian the fit computes anyway.

    BOBYQA stops when its quadratic model stops improving the value, which on a flat ridge (a
    zero-inflation intercept against its slopes, say) can leave the estimates a few 1e-3 from the
    optimum with a gradient near 1e-2.  From there Newton's method converges in one or two steps.
    A step is taken only over the free parameters, when H is positive definite there, when it stays
    inside the bounds and when it lowers the value.

    Parameters
    ----------
    fun : callable
        x -> deviance.
    x : numpy.ndarray, shape (k,)
        The derivative-free optimum.
    H, grad : numpy.ndarray
        ``hessian_from_values(fun, x, layout=layout)`` at ``x``.
    layout : ParameterLayout
        The parameters' blocks and bounds.
    maxit : int, default 3
        Most Newton steps.
    step_tol : float, default 1e-8
        Stop once the largest step component is below this.
    fx : float, optional
        ``fun(x)`` when the caller has it (else one evaluation finds it).

    Returns
    -------
    x : numpy.ndarray
        The polished point (``x`` itself when no step helped).
    H, grad : numpy.ndarray
        The Hessian and gradient at the returned point.
    steps : int
        Newton steps taken.
    """
    fx, taken = (fun(x) if fx is None else float(fx)), 0
    for _ in range(maxit):
        free = free_mask(x, layout)
        if not free.any() or not (np.all(np.isfinite(H[np.ix_(free, free)])) and np.all(np.isfinite(grad[free]))):
            break
        try:
            c = np.linalg.cholesky(H[np.ix_(free, free)])
        except np.linalg.LinAlgError:
            break
        step = np.zeros_like(x)
        step[free] = -np.linalg.solve(c.T, np.linalg.solve(c, grad[free]))
        xn = x + step
        if np.any(xn < layout.lower) or np.any(xn > layout.upper):
            break
        fn = fun(xn)
        if not (np.isfinite(fn) and fn < fx):
            break
        x, fx, taken = xn, fn, taken + 1
        H, grad = hessian_from_values(fun, x, layout=layout)
        if np.max(np.abs(step)) < step_tol:
            break
    return x, H, grad, taken


def central_jacobian(f, x0, rel: float = 1e-5):
    """f(x0) and the Jacobian of a vector function by central differences.

    The delta method's derivative where no analytic one exists (marginal effects, emmeans).

    Parameters
    ----------
    f : callable
        x -> 1-d array of m values.
    x0 : array-like, shape (k,)
        The point.
    rel : float, default 1e-5
        Relative step: rel · max(1, |x_j|).

    Returns
    -------
    f0 : ndarray, shape (m,)
        f(x0).
    J : ndarray, shape (m, k)
        ∂f_i/∂x_j.
    """
    x0 = np.asarray(x0, dtype=float)
    f0 = np.asarray(f(x0), dtype=float)
    J = np.empty((f0.shape[0], x0.shape[0]))
    for j in range(x0.shape[0]):  # one pair of evaluations per parameter
        h = rel * max(1.0, abs(x0[j]))
        up, down = x0.copy(), x0.copy()
        up[j] += h
        down[j] -= h
        J[:, j] = (np.asarray(f(up)) - np.asarray(f(down))) / (2.0 * h)
    return f0, J


def covariance_from_hessian(H):
    """Covariance 2 H⁻¹ of the parameters from the Hessian of the deviance, and whether H is positive definite.

    Parameters
    ----------
    H : numpy.ndarray, shape (k, k), or None
        Hessian of the deviance (-2 log-likelihood).

    Returns
    -------
    cov : ndarray, shape (k, k), or None
        2 H⁻¹; None when H is missing, singular or not finite.
    positive_definite : bool
        Whether every eigenvalue of H is positive (False with ``cov`` None).
    """
    if H is None or not np.all(np.isfinite(H)):
        return None, False
    try:
        cov = 2.0 * np.linalg.inv(H)
        pd_ = bool(np.all(np.linalg.eigvalsh(H) > 0))
    except np.linalg.LinAlgError:
        return None, False
    return cov, pd_


def central_hessian(f, x, h) -> np.ndarray:
    """Central-difference Hessian of a scalar function ``f`` at ``x``.

    (2k² + 1) evaluations, no bounds (callers keep ``x ± h`` inside the domain).

    Parameters
    ----------
    f : callable
        x -> float.
    x : array-like, shape (k,)
        The point.
    h : float or array-like, shape (k,)
        Absolute step per entry.

    Returns
    -------
    numpy.ndarray, shape (k, k)
        The symmetric Hessian.
    """
    x = np.asarray(x, dtype=float)
    h = np.broadcast_to(np.asarray(h, dtype=float), x.shape)
    k = x.shape[0]
    H = np.empty((k, k))
    f0 = f(x)
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        H[i, i] = (f(x + ei) - 2.0 * f0 + f(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(k)
            ej[j] = h[j]
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4.0 * h[i] * h[j])
    return H
