"""Starting values: the fixed-effects-only GLM (IRLS with step halving) and θ's start."""

from __future__ import annotations

import numpy as np

__all__ = ["glm_irls", "theta_start"]


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
