"""Starting values: the fixed-effects-only GLM (IRLS with step halving) and θ's start."""

from __future__ import annotations

import numpy as np

__all__ = ["fixed_effects_start", "glm_irls", "theta_start"]


def glm_irls(X, y, wt, offset, family, maxit=50, tol=1e-7) -> np.ndarray:
    """Fixed-effects-only GLM by IRLS with step halving (the start of a GLMM fit); normal equations, as p is small.

    On large data (over 200,000 rows) the iterations start from the solution on every k-th row
    (about 50,000 rows), so that one or two passes over all rows finish the job.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, p)
        Fixed-effects design.
    y : numpy.ndarray, shape (n,)
        Response (proportions for binomial data).
    wt : numpy.ndarray, shape (n,)
        Prior weights (binomial: trials).
    offset : numpy.ndarray, shape (n,)
        Offset of the linear predictor.
    family : Family
        The response distribution and link.
    maxit : int, default 50
        Most IRLS iterations.
    tol : float, default 1e-7
        Stop when max |Δβ| < tol (1 + max |β|).

    Returns
    -------
    numpy.ndarray, shape (p,)
        The GLM's coefficients (the last finite iterate when an iteration diverges).
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


def theta_start(structure, deviance_at) -> np.ndarray:
    """lme4's identity start, or the unit-scale start where the identity start's deviance is not finite or far worse.

    The unit-scale start (``scaled_theta_start``) wins when it is finite and the identity start's
    deviance is not, or is more than 10% higher (slopes on large covariates).

    Parameters
    ----------
    structure : ModelStructure
        The random-effects structure (its two starts).
    deviance_at : callable
        θ -> deviance.

    Returns
    -------
    numpy.ndarray, shape (n_theta,)
        The starting θ.
    """
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


def fixed_effects_start(obj, x0, maxiter: int = 200, max_rows: int = 20_000):
    """x0 with every block but the covariance parameters (β, ψ, the sub-models' β) at the
    fixed-effects-only model's maximum likelihood (the random effects at 0), from ``x0``.

    The GLM start of β knows nothing of the zero part or the dispersion, whose starts are moment
    values with the sub-models' slopes at 0; the GLMM's optimiser then spends most of its iterations
    walking there.  Without random effects the model is a plain likelihood in those blocks, with an
    exact gradient from the family's row derivatives and no mode to find: L-BFGS-B on it (in the
    metric of the scores' outer product at the start) leaves the GLMM's optimiser the random
    effects' part of the way, and its curvature at the optimum is a metric for that optimiser
    (``driver.metric_from_hessian``).  It is a start only: where it fails (a non-finite value, no
    decrease) ``x0`` is returned.

    Parameters
    ----------
    obj : ParametricLaplace
        The objective (its layout, X, y, prior weights, offset, family and sub-models).
    x0 : numpy.ndarray
        The moment start, in ``obj.layout`` order.
    maxiter : int, default 200
        Most L-BFGS-B iterations.
    max_rows : int, default 20_000
        On more rows than this the fit uses every k-th row (about ``max_rows`` of them) and its
        Hessian is scaled up by n over their number: a start needs no more.

    Returns
    -------
    x : numpy.ndarray
        The start, in ``obj.layout`` order.
    hessian : numpy.ndarray or None
        The fixed-effects model's Hessian of the deviance at ``x`` in the blocks it fitted, as
        2 Σ g_i g_i' over the rows' scores g_i (the information identity at the maximum), rows and
        columns of the covariance parameters zero; None where the fit failed.
    """
    from .driver import metric_from_hessian, metric_lbfgs

    layout = obj.layout
    x0 = np.asarray(x0, dtype=float)
    free = np.ones(layout.size, dtype=bool)
    for b in layout.blocks:
        if b.name.startswith("theta"):
            free[layout.slice(b.name)] = False
    if not free.any():
        return x0, None
    n = obj.y.shape[0]
    rows = slice(None, None, -(-n // max_rows))
    X, y, wt, offset = obj.X[rows], obj.y[rows], obj.wt[rows], obj.offset[rows]
    m = y.shape[0]
    scalar_idx = [layout.slice("psi").start + j for j in range(len(obj.scalar_names))]
    subs = [(sub, layout.slice(f"beta_{sub.part}"), sub.X[rows]) for sub in obj.submodels]

    def row_psi(prm):
        out = obj.row_psi(prm)
        return {k: (v[rows] if np.ndim(v) else v) for k, v in out.items()}

    beta_sl = layout.slice("beta")

    bound = [obj.family]  # the family last bound: every free parameter is set, a keyed memo is reused

    def scores(z):  # the deviance, the rows' η-scores and their log-parameter scores by name
        x = x0.copy()
        x[free] = z
        prm = layout.split(x)
        bound[0] = bound[0].with_psi(row_psi(prm))
        with np.errstate(all="ignore"):
            ll, s, psi = bound[0].score_terms(X @ prm.beta + offset, y, wt)
            value = -2.0 * float(np.sum(ll))
        if not np.isfinite(value):
            return np.inf, None, None
        return value, s, dict(zip(obj.family.free_names, psi))

    def parts(z):  # the deviance and its per-row score matrix G (the gradient is -2 G'1)
        value, s, by_name = scores(z)
        if s is None:
            return np.inf, None
        G = np.zeros((m, layout.size))
        G[:, beta_sl] = X * s[:, None]
        for j, k in zip(scalar_idx, obj.scalar_names):
            G[:, j] = by_name[k]
        for sub, sl, Xs in subs:
            G[:, sl] = Xs * (by_name[sub.param] / sub.param_scale)[:, None]
        return value, G[:, free]

    def fun(z):  # G'1 without G: the optimiser's evaluations need the gradient only
        value, s, by_name = scores(z)
        if s is None:
            return np.inf, np.zeros(z.shape[0])
        grad = np.zeros(layout.size)
        grad[beta_sl] = X.T @ s
        for j, k in zip(scalar_idx, obj.scalar_names):
            grad[j] = np.sum(by_name[k])
        for sub, sl, Xs in subs:
            grad[sl] = Xs.T @ by_name[sub.param] / sub.param_scale
        return value, -2.0 * grad[free]

    def outer(G):  # BHHH: 2 G'G, the deviance's Hessian at the maximum to first order
        H = np.zeros((layout.size, layout.size))
        H[np.ix_(free, free)] = 2.0 * (G.T @ G) * (n / m)
        return H

    bounds = [bd for bd, f in zip(layout.scipy_bounds(), free) if f]
    f0, G0 = parts(x0[free])
    if G0 is None:
        return x0, None
    # L-BFGS-B in the metric of the outer product of the scores at the start: some twenty evaluations
    # (from the identity, Salamanders' 17 coefficients took 74)
    T = metric_from_hessian(outer(G0), layout, np.ones(layout.size))
    if T is None:
        return x0, None
    res = metric_lbfgs(fun, x0[free], T[np.ix_(free, free)], bounds,
                       options={"maxiter": maxiter, "ftol": 1e-10, "gtol": 1e-5})
    value, G = parts(res.x)
    if not (np.isfinite(value) and value < f0 and np.all(np.isfinite(res.x))):
        return x0, None
    out = x0.copy()
    out[free] = res.x
    H = outer(G)
    return out, (H if np.all(np.isfinite(H)) else None)
