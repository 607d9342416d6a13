"""``glmer``: generalized linear mixed models (binomial, Poisson) by Laplace, AGQ or nAGQ = 0.

Pipeline: formula -> ModelFrame (family-aware response) -> ModelStructure ->
GlmmObjective -> two optimisation stages (θ with β inside PIRLS, then (θ, β)
jointly, as lme4's default) -> GlmmFit.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ._threads import single_blas_thread
from .exceptions import ArgumentError, FormulaError, RankDeficiencyWarning, SeparationWarning
from .families import ParametricFamily, get_family
from .formula import parse_formula
from .frame import build_model_frame, drop_aliased_columns
from .inference.separation import SeparationResult, mle_certificate, separation_lp
from .lmer import _check_grouping, finish_fit
from .objective import single as single_term
from .objective.glmm import GlmmObjective
from .objective.parametric import PSI_BOUND, ParametricLaplace
from .optimize import minimize_bobyqa, minimize_with_restarts, restart_record
from .results import FitInfo, GlmmFit
from .design import rescale_columns
from .structure import build_structure
from .validate import check_glmm_weights, check_method, check_nagq, check_not_constant

__all__ = ["glmer", "glm_irls"]


def glm_irls(X, y, wt, offset, family, maxit=50, tol=1e-7) -> np.ndarray:
    """Fixed-effects-only GLM by IRLS (the start of a GLMM fit); normal equations, as p is small.

    On large data the iterations start from the solution on every k-th row (about 50,000 rows),
    so that one or two passes over all rows finish the job.
    """
    n = X.shape[0]
    if n > 200_000:
        sub = slice(None, None, n // 50_000)
        beta = glm_irls(X[sub], y[sub], wt[sub], offset[sub], family, maxit, tol)
        eta = X @ beta + offset
    else:
        mu = family.mu_start(y, wt)
        eta = family.link.link(mu)
        beta = np.zeros(X.shape[1])
    ll_old = -np.inf
    for _ in range(maxit):
        _, W, z = family.working(eta, y, wt)
        XtW = X.T * W
        try:
            new = np.linalg.solve(XtW @ X, XtW @ (z - offset))
        except np.linalg.LinAlgError:
            new, *_ = np.linalg.lstsq(X * np.sqrt(W)[:, None], (z - offset) * np.sqrt(W), rcond=None)
        # step-halving (as R's glm2): a full IRLS step can overshoot into overflow (a log link with
        # large covariates or variances), and a diverged start sends the GLMM optimiser nowhere
        ll_new = _glm_loglik(family, X, new, offset, y, wt)
        if np.isfinite(ll_old):
            # halve the step while that helps: a full step may overflow, or overshoot so far that the
            # log-likelihood barely moves (Gamma, log link, extreme y: β0 jumped from 2 to 298 and then
            # crept back by 1 per iteration)
            step, t = new - beta, 1.0
            for _ in range(30):
                t *= 0.5
                cand = beta + t * step
                ll_cand = _glm_loglik(family, X, cand, offset, y, wt)
                if ll_cand > ll_new:
                    new, ll_new = cand, ll_cand
                elif np.isfinite(ll_new) and ll_new >= ll_old - 1e-8 * abs(ll_old):
                    break
        if not np.all(np.isfinite(new)):
            break
        done = np.max(np.abs(new - beta)) < tol * (1.0 + np.max(np.abs(new)))
        beta, ll_old = new, ll_new
        eta = X @ beta + offset
        if done:
            break
    return beta


def _glm_loglik(family, X, beta, offset, y, wt) -> float:
    """The GLM's log-likelihood kernel at β (-inf where the mean leaves the family's range)."""
    with np.errstate(all="ignore"):
        try:
            mu = family.link.inverse(X @ beta + offset)
            value = float(np.sum(family.loglik_kernel(y, mu, wt)))
        except (FloatingPointError, ValueError, ZeroDivisionError, NotImplementedError):
            return -np.inf
    return value if np.isfinite(value) else -np.inf


def _hessian(fun, x, lower, h=1e-4):
    """Forward-difference Hessian of ``fun`` at ``x``, and the gradient that comes with it.

    1 + k + k(k+1)/2 evaluations (central differences need 2k²), O(h) accurate, which
    is ample for standard errors.  Steps go up, away from the lower bounds.

    Returns
    -------
    H : ndarray, shape (k, k)
    grad : ndarray, shape (k,)
        One-sided second-order gradient from the same evaluations (for the convergence record).
    """
    k = x.shape[0]
    steps = h * np.maximum(1.0, np.abs(x))
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
    # second-order one-sided differences from the same evaluations
    return H, (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * steps)


def glmer(formula, data, family="binomial", *, link=None, nagq=1, method=None, weights=None, offset=None,
          family_params=None, olre=False, data_name=None):
    """Fit a generalized linear mixed model.

    Parameters
    ----------
    formula : str
        lme4 formula; binomial responses may be 0/1, bool, a two-level factor
        (first level = failure), a proportion with ``weights=`` trials, or
        ``cbind(successes, failures)`` (expressions allowed inside).
    data : pandas.DataFrame
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

    Returns
    -------
    GlmmFit
    """
    t0 = time.perf_counter()
    fam = get_family(family, link, family_params)
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
    frame = build_model_frame(parsed, data, weights=weights, offset=offset, family=fam)
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
    structure = build_structure(frame)
    _check_grouping(structure, frame.nobs, lmm=False)
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

    # extreme covariates are fitted centred/scaled and reported on the user's scale (PQL's
    # linearised fits are left alone: they have no likelihood to lose digits of)
    X_user, M = X, None
    if not pql:
        X, M = rescale_columns(X_user, [frame.x_names[j] for j in kept])
    if parametric:
        with single_blas_thread():
            fit = _fit_parametric(structure, frame, X, wt, fam, kept, dropped, messages, data_name, nagq)
            if M is not None:
                fit = _unscale_glmm(fit, M, X_user, wt)
        return finish_fit(fit, t0)
    with single_blas_thread():
        obj = GlmmObjective(structure, X, frame.y, wt, frame.offset, fam)
        obj._beta0 = glm_irls(X, frame.y, wt, frame.offset, fam)
        separation = None
        if fam.name == "binomial" and not mle_certificate(X, frame.y, wt, frame.offset, obj._beta0, fam):
            separation = separation_lp(X, frame.y, wt, [frame.x_names[j] for j in kept])
            if separation.separated:
                warnings.warn(separation.message(), SeparationWarning, stacklevel=2)
                messages.append(separation.message())
        fit = None
        failed: list = []
        if pql:
            fit = _fit_pql(obj, structure, frame, X, wt, fam, kept, dropped, messages, data_name)
        elif single_term.applies(structure, fam, nagq):
            fit = _fit_single_term(obj, structure, frame, X, wt, fam, kept, dropped, messages, data_name, failed)
        if fit is None and not pql:
            fit = _fit_general(obj, structure, frame, X, wt, fam, nagq, kept, dropped, messages, data_name, failed)
        if M is not None:
            fit = _unscale_glmm(fit, M, X_user, wt)
    fit.separation = separation if separation is not None else (
        SeparationResult("none") if fam.name == "binomial" else None)
    return finish_fit(fit, t0)


def _unscale_glmm(fit, M, X, wt):
    """The fit made on rescaled columns (``X M``) as a fit on the user's columns ``X``.

    β = M β_new and its covariance M V M' (also in the joint (θ, β) covariance); θ, the
    family's parameters, the modes and the log-likelihood do not depend on the scaling.
    The returned fit's objective holds the user's X, so that later inference (profiles,
    simulation, prediction) works in the reported coefficients.
    """
    obj_s = fit._objective
    obj = type(obj_s)(fit.structure, X, fit.frame.y, wt, fit.frame.offset, obj_s.family)
    obj.tol = obj_s.tol
    obj._beta0 = M @ obj_s._beta0
    beta = M @ fit._beta
    psi = fit._psi if fit._psi.shape[0] else None
    if psi is not None:
        obj._set_psi(psi)
    obj.u = obj_s.u.copy()
    state = obj.pirls(fit._theta, beta)
    obj.pirls_failures = obj_s.pirls_failures
    info = fit.optimizer_info
    info.rescaled = [fit.x_names[j] for j in np.flatnonzero(np.diag(M) != 1.0)]
    new = GlmmFit(frame=fit.frame, structure=fit.structure, objective=obj, state=state, theta=fit._theta, beta=beta,
                  vcov=M @ fit._vcov @ M.T, loglik=fit.loglik, nagq=fit.nagq, info=info, x_kept=fit._x_kept,
                  dropped_columns=fit.dropped_columns, data_name=fit.data_name, family_psi=psi,
                  family_psi_cov=fit._psi_cov if psi is not None else None)
    if fit._param_cov is not None:
        n_theta = fit.structure.n_theta
        B = np.eye(fit._param_cov.shape[0])
        B[n_theta : n_theta + M.shape[0], n_theta : n_theta + M.shape[0]] = M
        new._param_cov = B @ fit._param_cov @ B.T
    new.separation = fit.separation
    return new


def _as_result(res, optimizer, converged):
    """scipy's OptimizeResult as an OptimResult (for the restart records)."""
    from .optimize import OptimResult

    return OptimResult(res.x, float(res.fun), int(res.nfev), converged, str(res.message), optimizer)


def _vcov_from_state(obj, state, theta) -> np.ndarray:
    """(R_X'R_X)⁻¹ of the weighted PLS system with β at the mode (lme4's use.hessian = FALSE)."""
    sys = obj._system(state.eta, obj.offset, obj.X)
    fac = sys.factor(obj.structure.templates(theta))
    mz, p = sys.mz, sys.p
    if p == 0:
        return np.empty((0, 0))
    if not fac.ok or fac.L.shape[0] < mz + p:  # the system at this state cannot be factored
        return np.full((p, p), np.nan)
    try:
        Rinv = np.linalg.solve(np.tril(fac.L[mz : mz + p, mz : mz + p]), np.eye(p))
    except np.linalg.LinAlgError:
        return np.full((p, p), np.nan)
    return Rinv.T @ Rinv


def _se_from_state(obj, state, theta) -> np.ndarray:
    return np.sqrt(np.diag(_vcov_from_state(obj, state, theta)))


def _theta_start(structure, deviance_at) -> np.ndarray:
    """lme4's identity start, or the unit-scale start (``scaled_theta_start``) where the identity
    start's deviance is not finite or far worse (slopes on large covariates)."""
    start = structure.theta_start()
    scaled = structure.scaled_theta_start()
    if np.array_equal(start, scaled):
        return start
    with np.errstate(all="ignore"):
        f_start, f_scaled = deviance_at(start), deviance_at(scaled)
    # the identity start unless the unit-scale one is clearly better (a slope on x ~ 100 at θ = 1 puts
    # b·x ~ 100 on the linear predictor: overflow, or a deviance thousands above the optimum's)
    if np.isfinite(f_scaled) and (not np.isfinite(f_start) or f_scaled < f_start - 0.1 * abs(f_start)):
        return scaled
    return start


def _fit_single_term(obj, structure, frame, X, wt, fam, kept, dropped, messages, data_name, failed=None):
    """One scalar term, canonical link, Laplace: exact-gradient L-BFGS-B (None if it fails; then
    what it reached is appended to ``failed``, for the general path's ``restarts`` record)."""
    fast = single_term.SingleTermLaplace(structure, X, frame.y, wt, frame.offset, fam)
    lower = structure.theta_lower
    theta0 = _theta_start(structure, lambda t: fast.value_and_grad(np.concatenate([t, obj._beta0]))[0])
    res = fast.fit(theta0, obj._beta0, lower)
    for _ in range(3):  # a θ stuck on its bound: try off it, and restart from there if the deviance falls
        if not np.isfinite(res.fun):
            break
        probe = _probe_off_bound(lambda prm: fast.value_and_grad(prm)[0], res.x, res.fun, lower,
                                 lambda: fast.u.copy(), lambda u: fast.u.__setitem__(Ellipsis, u))
        if probe is None:
            break
        res = fast.fit(probe[: structure.n_theta], probe[structure.n_theta:], lower)
    free = np.concatenate([res.x[: structure.n_theta] > lower + 1e-8, np.ones(X.shape[1], dtype=bool)])
    gmax = float(np.max(np.abs(res.jac[free]), initial=0.0)) if res.jac is not None else np.inf
    if (not fast.converged(res) or fast.failures or not np.isfinite(res.fun)
            or gmax > gradient_tolerance(frame.nobs)):
        if failed is not None:
            failed.append({"optimizer": "L-BFGS-B (exact Laplace gradient, one grouping factor)",
                           "start": "initial", "reason": "first run",
                           "loglik": -0.5 * float(res.fun) if np.isfinite(res.fun) else float("nan"),
                           "converged": False, "n_evals": int(fast.n_evals), "chosen": False,
                           "message": str(res.message)})
        return None
    n_theta = structure.n_theta
    theta, beta = res.x[:n_theta], res.x[n_theta:]
    H = fast.hessian(res.x)
    try:
        cov_all = 2.0 * np.linalg.inv(H)
        hessian_pd = bool(np.all(np.linalg.eigvalsh(H) > 0))
    except np.linalg.LinAlgError:
        cov_all, hessian_pd = None, False
    state = obj.state_at(theta, beta, fast.u.ravel())
    vcov = cov_all[n_theta:, n_theta:] if cov_all is not None else _vcov_from_state(obj, state, theta)
    if not np.all(np.isfinite(vcov)) or np.any(np.diag(vcov) <= 0):
        vcov, hessian_pd = _vcov_from_state(obj, state, theta), False
    on_boundary = [structure.theta_names[i] for i in range(n_theta)
                   if np.isfinite(structure.theta_lower[i]) and theta[i] <= structure.theta_lower[i]]
    info = FitInfo("L-BFGS-B (exact Laplace gradient, one grouping factor)", fast.n_evals, True, str(res.message),
                   on_boundary, messages=messages)
    info.hessian_positive_definite = hessian_pd
    info.pirls_failures = 0
    if res.jac is not None:  # parameters held on their bounds are excluded, as on the general path
        free = np.concatenate([theta > structure.theta_lower + 1e-8, np.ones(len(beta), dtype=bool)])
        info.gradient_norm = float(np.max(np.abs(res.jac[free]), initial=0.0))
    fit = GlmmFit(frame=frame, structure=structure, objective=obj, state=state, theta=theta, beta=beta, vcov=vcov,
                  loglik=-0.5 * float(res.fun), nagq=1, info=info, x_kept=kept, dropped_columns=dropped,
                  data_name=data_name)
    fit._param_cov = cov_all
    return fit


def _gradient_hessian(fun_grad, x, u_holder, h=1e-6, g0=None):
    """Forward differences of an exact gradient (k evaluations, plus one unless ``g0``, the gradient
    at ``x`` the optimiser already has, is given), symmetrised; steps go up, away from the lower
    bounds.  ``u_holder`` (the objective) has its warm-start modes restored between evaluations so
    that each starts from the modes at ``x``."""
    k = x.shape[0]
    H = np.empty((k, k))
    u_saved = u_holder.u.copy()
    if g0 is None or not np.all(np.isfinite(g0)):
        _, g0 = fun_grad(x)
    for j in range(k):
        u_holder.u = u_saved.copy()
        e = np.zeros(k)
        e[j] = h * max(1.0, abs(x[j]))
        _, g1 = fun_grad(x + e)
        H[:, j] = (g1 - g0) / e[j]
    u_holder.u = u_saved
    return 0.5 * (H + H.T), g0


#: values tried for a θ that ends on its bound of 0 (see _probe_off_bound); small ones matter: an
#: optimum at θ = 0.02 lowers the deviance by only ~c·θ² next to the bound
BOUND_PROBES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.5)


def _probe_off_bound(fun, x, fx, lower, get_u, set_u):
    """The best point with one bound θ moved off 0 that beats ``fx``, or None.

    A scalar term's deviance is even in its θ, so its gradient vanishes at θ = 0 and a line
    search that lands on the bound never leaves it; only trying values off the bound shows
    whether the deviance falls there.  ``get_u``/``set_u`` save and restore the objective's
    warm-start modes so that every trial starts from the modes at ``x``."""
    best_x, best_f = None, fx - 1e-8 * max(1.0, abs(fx))
    u_saved = get_u()
    for k in np.flatnonzero(np.isfinite(lower) & (x[: len(lower)] <= lower + 1e-6)):
        for value in BOUND_PROBES:
            trial = x.copy()
            trial[k] = value
            set_u(u_saved)
            f_trial = fun(trial)
            if f_trial < best_f:
                best_x, best_f = trial, f_trial
    set_u(u_saved)
    return best_x


def gradient_tolerance(nobs: int) -> float:
    """Largest |gradient| of the deviance (free parameters) accepted at an optimum.  Stopping rules on
    the relative change of the deviance can fire far from an optimum (an overflowing trial step right
    after the start, at |g| in the hundreds); a real optimum of a deviance of size ~n has |g| well below
    1e-5 n."""
    return max(1.0, 1e-5 * nobs)


def _rescued_lbfgs(obj, x, bounds):
    """L-BFGS-B on coordinates scaled by the curvature at ``x`` (diagonal of the Hessian by forward
    differences of the gradient).  L-BFGS-B's first step has unit length; when the deviance is badly
    scaled (a covariate in the hundreds, a huge variance) that step overflows, the line search fails
    and scipy stops at the start with |g| in the hundreds.  In curvature units a unit step is sensible."""
    from scipy.optimize import OptimizeResult, minimize

    u_saved = obj.u.copy()
    f0, g0 = obj.laplace_and_gradient(x)
    k = x.shape[0]
    curv = np.ones(k)
    for j in range(k):
        obj.u = u_saved.copy()
        h = 1e-5 * max(1.0, abs(x[j]))
        step = x.copy()
        lo = bounds[j][0]
        step[j] = x[j] + h if lo is None or x[j] + h >= lo else x[j] - h
        _, g1 = obj.laplace_and_gradient(step)
        curv[j] = abs((g1[j] - g0[j]) / (step[j] - x[j]))
    obj.u = u_saved
    ok = np.isfinite(curv) & (curv > 0)
    scale = np.where(ok, 1.0 / np.sqrt(np.where(ok, curv, 1.0)), 1.0)
    scale = np.clip(scale, 1e-6, 1e3)

    def fun(z):
        value, grad = obj.laplace_and_gradient(z * scale)
        return value, grad * scale

    zb = [(None if lo is None else lo / sc, None if hi is None else hi / sc) for (lo, hi), sc in zip(bounds, scale)]
    res = minimize(fun, x / scale, jac=True, method="L-BFGS-B", bounds=zb,
                   options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20})
    out = OptimizeResult(x=res.x * scale, fun=res.fun, jac=res.jac / scale, success=res.success,
                         message=f"{res.message} (curvature-scaled restart)", nfev=res.nfev + k + 1)
    return out


def _lbfgs_laplace(obj, structure, X, max_restarts=3, x0=None, extra_bounds=()):
    """Laplace fit by L-BFGS-B on the exact gradient, from θ's start and the GLM's β (no nAGQ = 0
    stage: with the gradient the joint problem is cheap).  Returns scipy's OptimizeResult.

    A θ that ends on its bound is probed off it (``_probe_off_bound``); when that lowers the
    deviance the search restarts from there."""
    from scipy.optimize import minimize

    lower = structure.theta_lower
    bounds = ([(lo, None) if np.isfinite(lo) else (None, None) for lo in lower] + [(None, None)] * X.shape[1]
              + list(extra_bounds))
    if x0 is None:
        x0 = np.concatenate([_theta_start(structure, lambda t: obj.laplace(np.concatenate([t, obj._beta0]))),
                             obj._beta0])
    x = np.asarray(x0, dtype=float)
    nfev = 0
    for _ in range(max_restarts + 1):
        res = minimize(obj.laplace_and_gradient, x, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 20})
        nfev += res.nfev
        free = np.concatenate([res.x[: len(lower)] > lower + 1e-8, np.ones(len(res.x) - len(lower), dtype=bool)])
        if np.isfinite(res.fun) and np.max(np.abs(res.jac[free]), initial=0.0) > gradient_tolerance(X.shape[0]):
            scaled = _rescued_lbfgs(obj, res.x, bounds)
            nfev += scaled.nfev
            if np.isfinite(scaled.fun) and scaled.fun < res.fun:
                res = scaled
        if not np.isfinite(res.fun):
            break
        best_x = _probe_off_bound(obj.laplace, res.x, res.fun, lower, lambda: obj.u.copy(),
                                  lambda u: setattr(obj, "u", u.copy()))
        nfev += len(BOUND_PROBES) * int(np.sum(np.isfinite(lower) & (res.x[: len(lower)] <= lower + 1e-6)))
        if best_x is None:
            break
        x = best_x
    res.nfev = nfev
    return res


def _fit_general(obj, structure, frame, X, wt, fam, nagq, kept, dropped, messages, data_name, failed=()):
    """Any GLMM.  Laplace with a canonical link: L-BFGS-B on the exact gradient (BOBYQA takes over if
    it stalls).  Otherwise stage 1 θ with β in PIRLS (nAGQ = 0), stage 2 (θ, β) by Laplace or AGQ,
    both BOBYQA; the Hessian for the standard errors by forward differences."""
    n_theta = structure.n_theta
    lower = np.concatenate([structure.theta_lower, np.full(X.shape[1], -np.inf)])
    res0 = res = None
    restarts = list(failed)  # a faster path that gave up before this one
    if nagq == 1 and obj.gradient_applies():
        lb = _lbfgs_laplace(obj, structure, X)
        free = np.concatenate([lb.x[:n_theta] > structure.theta_lower + 1e-8, np.ones(X.shape[1], dtype=bool)])
        gmax = float(np.max(np.abs(lb.jac[free]), initial=0.0)) if np.isfinite(lb.fun) else np.inf
        ok = np.isfinite(lb.fun) and ((lb.success and gmax < gradient_tolerance(frame.nobs)) or gmax < 1e-3)
        if not ok:  # BOBYQA's two stages take over below: record what L-BFGS-B reached
            restarts.append({"optimizer": "L-BFGS-B (exact Laplace gradient)", "start": "initial",
                             "reason": "first run", "loglik": -0.5 * float(lb.fun), "converged": False,
                             "n_evals": int(lb.nfev), "chosen": False, "message": str(lb.message)})
        if ok:
            theta, beta = obj.split(lb.x)
            evals = int(lb.nfev)
            optimizer, converged, message = "L-BFGS-B (exact Laplace gradient)", True, str(lb.message)
            on_boundary = [structure.theta_names[i] for i in range(n_theta)
                           if np.isfinite(structure.theta_lower[i]) and theta[i] <= structure.theta_lower[i]]
            state = obj.pirls(theta, beta)
            H, grad = _gradient_hessian(obj.laplace_and_gradient, lb.x, obj, g0=lb.jac)
            fit = _package_general(obj, structure, frame, state, theta, beta, H, grad, 1, optimizer, evals,
                                   converged, message, on_boundary, kept, dropped, messages, data_name)
            if restarts:
                restarts.append(restart_record(_as_result(lb, optimizer, True), "initial", "the faster path gave up",
                                               True))
            fit.optimizer_info.restarts = restarts
            return fit
    theta0 = _theta_start(structure, obj.nagq0)
    if nagq == 0:  # the final estimates: a second start and optimiser if this run ends badly
        res0 = minimize_with_restarts(obj.nagq0, theta0, structure.theta_lower, initial_step=0.5,
                                      ftol_abs=1e-10, alt_start=np.full(structure.n_theta, 0.5) * (
                                          np.isfinite(structure.theta_lower)))
        restarts.extend(res0.restarts)
    else:  # stage 2 refines: a start is enough
        res0 = minimize_bobyqa(obj.nagq0, theta0, structure.theta_lower, initial_step=0.5,
                               ftol_abs=1e-6)
    state0 = obj.pirls(res0.x, None)
    theta, beta = res0.x, state0.beta
    obj.u = state0.u
    evals, res = res0.n_evals, res0
    fun = obj.laplace if nagq == 1 else (lambda prm: obj.agq(prm, nagq))
    if nagq >= 1:
        # Fisher scoring (non-canonical links) converges linearly: a loose stop leaves noise in the
        # deviance that stalls BOBYQA and swamps the Hessian's differences (1e-7 / h² with h = 1e-4)
        obj.tol = 1e-15
        se0 = _se_from_state(obj, state0, theta)
        step = np.concatenate([np.maximum(0.1 * np.abs(theta), 0.05),
                               np.where(np.isfinite(se0), np.maximum(se0, 1e-3), 0.1)])
        res = minimize_with_restarts(fun, np.concatenate([theta, beta]), lower, initial_step=step,
                                     alt_start=np.concatenate([structure.theta_start(), obj._beta0]))
        theta, beta = obj.split(res.x)
        evals += res.n_evals
        restarts.extend(res.restarts)
    state = obj.pirls(theta, beta if nagq >= 1 else None)
    beta = state.beta
    H = grad = None
    if nagq >= 1:
        H, grad = _hessian(fun, np.concatenate([theta, beta]), lower)
        obj.u = state.u
    on_boundary = [structure.theta_names[i] for i in res.on_boundary if i < n_theta]
    if restarts and not any(r.get("chosen") for r in restarts):
        restarts.append(restart_record(res, "nAGQ=0 estimates", "the first optimiser gave up", True))
    fit = _package_general(obj, structure, frame, state, theta, beta, H, grad, nagq, res.optimizer, evals,
                           bool(res.converged), res.message, on_boundary, kept, dropped,
                           messages, data_name)
    fit.optimizer_info.restarts = restarts
    return fit


def _package_general(obj, structure, frame, state, theta, beta, H, grad, nagq, optimizer, evals, converged,
                     message, on_boundary, kept, dropped, messages, data_name):
    """GlmmFit from the estimates, the Hessian of the deviance in (θ, β) (None for nAGQ = 0) and its gradient."""
    n_theta = structure.n_theta
    if H is not None:
        try:
            vcov = 2.0 * np.linalg.inv(H)[n_theta:, n_theta:]
            hessian_pd = bool(np.all(np.linalg.eigvalsh(H) > 0))
        except np.linalg.LinAlgError:
            vcov, hessian_pd = _vcov_from_state(obj, state, theta), False
        if not np.all(np.isfinite(vcov)) or np.any(np.diag(vcov) <= 0):
            vcov, hessian_pd = _vcov_from_state(obj, state, theta), False
        dev = state.laplace if nagq == 1 else obj.agq_deviance(theta, beta, state, nagq)
    else:
        vcov, hessian_pd = _vcov_from_state(obj, state, theta), None
        dev = state.laplace
    info = FitInfo(optimizer, evals, converged, message, on_boundary, messages=messages)
    info.hessian_positive_definite = hessian_pd
    info.pirls_failures = obj.pirls_failures
    if grad is not None:
        # away from the bounds the deviance's gradient should vanish at the optimum
        free = np.concatenate([~(theta <= structure.theta_lower + 1e-8), np.ones(len(beta), dtype=bool)])
        info.gradient_norm = float(np.max(np.abs(grad[free]))) if free.any() else 0.0
    fit = GlmmFit(frame=frame, structure=structure, objective=obj, state=state, theta=theta, beta=beta,
                  vcov=vcov, loglik=-0.5 * dev, nagq=nagq, info=info, x_kept=kept, dropped_columns=dropped,
                  data_name=data_name)
    if H is not None:
        try:
            fit._param_cov = 2.0 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            pass
    return fit


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


def _fit_parametric(structure, frame, X, wt, fam, kept, dropped, messages, data_name, nagq=1):
    """A family with its own parameters: L-BFGS-B on the exact Laplace gradient in (θ, β, log ψ)
    (BOBYQA on the deviance where the gradient's dense blocks would be too large); with nagq > 1
    BOBYQA on the AGQ deviance from the Laplace estimates."""
    y = frame.y
    fam.values.update(fam.start(y, np.full(frame.nobs, float(np.average(y, weights=wt))), wt))
    fam.values.update(fam.fixed)
    beta0 = glm_irls(X, y, wt, frame.offset, fam)
    fam.values.update(fam.start(y, fam.link.inverse(X @ beta0 + frame.offset), wt))
    fam.values.update(fam.fixed)
    obj = ParametricLaplace(structure, X, y, wt, frame.offset, fam)
    obj._beta0 = beta0
    n_theta, p = structure.n_theta, X.shape[1]
    psi0 = np.log([fam.values[k] for k in fam.free_names])
    theta0 = _theta_start(structure, lambda t: obj.laplace(np.concatenate([t, beta0, psi0])))
    x0 = np.concatenate([theta0, beta0, psi0])
    psi_bounds = [(-PSI_BOUND, PSI_BOUND)] * obj.n_psi
    lower = np.concatenate([structure.theta_lower, np.full(p, -np.inf), np.full(obj.n_psi, -PSI_BOUND)])
    restarts: list = []
    if obj.gradient_applies():
        res = _lbfgs_laplace(obj, structure, X, x0=x0, extra_bounds=psi_bounds)
        free = np.concatenate([res.x[:n_theta] > structure.theta_lower + 1e-8, np.ones(p + obj.n_psi, dtype=bool)])
        gmax = float(np.max(np.abs(res.jac[free]), initial=0.0)) if np.isfinite(res.fun) else np.inf
        converged = bool(np.isfinite(res.fun) and ((res.success and gmax < gradient_tolerance(frame.nobs))
                                                   or gmax < 1e-3))
        x, evals, optimizer, message = res.x, int(res.nfev), "L-BFGS-B (exact Laplace gradient)", str(res.message)
        g0 = res.jac
        if not converged:  # a second optimiser from where the first stopped (or from the start if it blew up)
            start = res.x if np.isfinite(res.fun) else x0
            obj.tol = 1e-14
            alt = minimize_bobyqa(obj.laplace, start, lower, initial_step=np.concatenate(
                [np.full(n_theta, 0.25), np.full(p, 0.1), np.full(obj.n_psi, 0.5)]))
            take = alt.converged and (not np.isfinite(res.fun) or alt.fun <= res.fun)
            restarts.append(restart_record(_as_result(res, optimizer, False), "initial", "first run", not take))
            restarts.append(restart_record(alt, "L-BFGS-B's end" if np.isfinite(res.fun) else "initial",
                                           f"L-BFGS-B did not converge ({message})", take))
            if take:
                x, evals, optimizer, message, converged = alt.x, evals + alt.n_evals, alt.optimizer, alt.message, True
                g0 = None
        H, grad = _gradient_hessian(obj.laplace_and_gradient, x, obj, g0=g0)
    else:
        obj.tol = 1e-14
        res = minimize_with_restarts(obj.laplace, x0, lower, initial_step=np.concatenate(
            [np.full(n_theta, 0.25), np.full(p, 0.1), np.full(obj.n_psi, 0.5)]))
        x, evals, optimizer, message, converged = res.x, res.n_evals, res.optimizer, res.message, res.converged
        restarts.extend(res.restarts)
        H, grad = _hessian(obj.laplace, x, lower)
    if nagq > 1:
        obj.tol = 1e-14
        obj.laplace(x)  # modes at the Laplace estimates: the AGQ grid's centres
        fun = lambda prm: obj.agq(prm, nagq)  # noqa: E731
        res = minimize_bobyqa(fun, x, lower, initial_step=np.concatenate(
            [np.maximum(0.1 * np.abs(x[:n_theta]), 0.05), np.full(p, 0.05), np.full(obj.n_psi, 0.1)]))
        x, evals = res.x, evals + res.n_evals
        optimizer, message, converged = f"{optimizer}, then nlopt BOBYQA on the AGQ deviance", res.message, res.converged
        H, grad = _hessian(fun, x, lower)
    theta, beta, psi = obj.split3(x)
    obj._set_psi(psi)
    state = obj.pirls(theta, beta)
    dev = state.laplace if nagq == 1 else obj.agq_deviance(theta, beta, state, nagq)
    on_boundary = [structure.theta_names[i] for i in range(n_theta)
                   if np.isfinite(structure.theta_lower[i]) and theta[i] <= structure.theta_lower[i]]
    try:
        cov_all = 2.0 * np.linalg.inv(H)
        hessian_pd = bool(np.all(np.linalg.eigvalsh(H) > 0))
    except np.linalg.LinAlgError:
        cov_all, hessian_pd = np.full(H.shape, np.nan), False
    vcov = cov_all[n_theta : n_theta + p, n_theta : n_theta + p]
    psi_cov = cov_all[n_theta + p :, n_theta + p :]
    info = FitInfo(optimizer, evals, converged, message, on_boundary, messages=messages, restarts=restarts)
    info.hessian_positive_definite = hessian_pd
    info.pirls_failures = obj.pirls_failures
    free = np.concatenate([~(theta <= structure.theta_lower + 1e-8), np.ones(p + obj.n_psi, dtype=bool)])
    info.gradient_norm = float(np.max(np.abs(grad[free]), initial=0.0))
    fit = GlmmFit(frame=frame, structure=structure, objective=obj, state=state, theta=theta, beta=beta,
                  vcov=vcov, loglik=-0.5 * dev, nagq=nagq, info=info, x_kept=kept, dropped_columns=dropped,
                  data_name=data_name, family_psi=psi, family_psi_cov=psi_cov)
    fit._param_cov = cov_all[: n_theta + p, : n_theta + p]
    return fit


def _fit_pql(obj, structure, frame, X, wt, fam, kept, dropped, messages, data_name, maxit=50):
    """Penalised quasi-likelihood (Breslow & Clayton 1993, as MASS::glmmPQL): alternate the IRLS
    working response and weights with a weighted ML fit of the linear mixed model to them; the
    LMM's residual variance is the estimated dispersion.  No likelihood is defined."""
    from .lmer import LmmObjective
    from .objective.lmm import moment_start
    from .results import LmmFit, PqlFit

    eta = X @ obj._beta0 + frame.offset
    theta = None
    evals, converged, lmm_fit, it = 0, False, None, 0
    for it in range(1, maxit + 1):
        _, W, z = fam.working(eta, frame.y, wt)
        lmm = LmmObjective(structure, X, z - frame.offset, W, reml=False)
        start, step = moment_start(structure, X, z - frame.offset) if theta is None else (theta, 0.1)
        res = minimize_bobyqa(lmm, start, structure.theta_lower, initial_step=step)
        evals += res.n_evals
        theta = res.x
        lmm_fit = LmmFit(frame=frame, structure=structure, objective=lmm, theta=theta,
                         info=FitInfo(res.optimizer, res.n_evals, res.converged, res.message, []),
                         x_kept=kept, dropped_columns=dropped)
        eta_new = lmm_fit._eta()
        change = float(np.sum((eta_new - eta) ** 2))
        eta = eta_new
        if change < 1e-6 * float(np.sum(eta**2)):  # glmmPQL's criterion
            converged = True
            break
    messages.append("penalised quasi-likelihood: estimates of a linearised model; no log-likelihood, AIC or BIC "
                    "(use nagq=1 or nagq>1 for likelihood-based fits)")
    info = FitInfo("PQL: weighted LMM (nlopt BOBYQA) per iteration", evals, converged,
                   f"{it} PQL iteration(s)", [], messages=messages)
    info.pql_iterations = it
    return PqlFit(frame=frame, structure=structure, objective=obj, lmm_fit=lmm_fit, info=info, x_kept=kept,
                  dropped_columns=dropped, data_name=data_name)
