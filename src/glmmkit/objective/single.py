"""Fast Laplace fit for one scalar random-effect term (e.g. ``(1 | g)``) with a canonical link.

With one scalar term the Hessian of the penalised deviance in u is diagonal, so
the conditional modes are q independent one-dimensional Newton problems, and
the Laplace deviance and its exact gradient in (θ, β) follow in O(n) by the
implicit function theorem (algorithms note §9.2):

    D(φ) = F(û(φ), φ) + Σ_g log H_g,   F = -2 Σ ℓ_i + ||u||²,
    H_g = θ² Σ_{i∈g} z_i² W_i + 1,     ∂F/∂u = 0 at û,
    dD/dφ = ∂F/∂φ + Σ_g [∂H_g/∂φ + ∂H_g/∂u_g · du_g/dφ] / H_g,
    du_g/dφ = -(∂²F/∂u_g∂φ) / (2 H_g).

Rows are sorted by level once, one numba kernel runs every level's Newton
iterations (warm-started from the previous modes) and accumulates the value,
dD/dθ and a per-row coefficient c with dD/dβ = X'c; L-BFGS-B does the rest.
Canonical links only (binomial-logit, Poisson-log), where the observed and
expected information agree, so the value equals the PIRLS-based Laplace
deviance of :mod:`objective.glmm`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

__all__ = ["SingleTermLaplace", "applies"]

_FAMILY_CODE = {("binomial", "logit"): 0, ("poisson", "log"): 1}


def applies(structure, family, nagq: int) -> bool:
    """True when the fast path computes exactly the model asked for."""
    from ..linalg.kernels import numba_available

    return (
        nagq == 1
        and len(structure.blocks) == 1
        and structure.blocks[0].K == 1
        and (family.name, family.link.name) in _FAMILY_CODE
        and numba_available()
    )


@lru_cache(maxsize=1)
def _kernel():
    import numba as nb

    @nb.njit(cache=True, nogil=True)
    def row_terms(eta, k, n, fam):
        """ℓ_i, s_i = ∂ℓ/∂η, W_i = -∂²ℓ/∂η², W'_i = ∂W/∂η for ℓ = kη - n A(η)."""
        if fam == 0:  # binomial, logit: A = log(1 + e^η)
            if eta > 0:
                e = np.exp(-eta)
                mu = 1.0 / (1.0 + e)
                a = eta + np.log1p(e)
            else:
                e = np.exp(eta)
                mu = e / (1.0 + e)
                a = np.log1p(e)
            v = mu * (1.0 - mu)
            return k * eta - n * a, k - n * mu, n * v, n * v * (1.0 - 2.0 * mu)
        mu = np.exp(eta)  # Poisson, log: A = e^η
        return k * eta - n * mu, k - n * mu, n * mu, n * mu

    @nb.njit(cache=True, nogil=True)
    def level_pass(a, b, eta0, z, k, n, fam, tz, s_buf, w_buf, dw_buf):
        """One pass over a level's rows at b_g = tz: sums, and the per-row s, W, W' kept for later."""
        ll = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for i in range(a, b):
            li, si, wi, dwi = row_terms(eta0[i] + tz * z[i], k[i], n[i], fam)
            zi = z[i]
            ll += li
            s1 += zi * si
            s2 += zi * zi * wi
            s3 += zi * zi * zi * dwi
            s_buf[i] = si
            w_buf[i] = wi
            dw_buf[i] = dwi
        return ll, s1, s2, s3

    @nb.njit(cache=True, nogil=True, parallel=True)
    def kernel(eta0, z, k, n, gptr, theta, u, fam, c_out, s_buf, w_buf, dw_buf, dev_g, dth_g, fail_g):
        """Modes (u in place); per level its deviance and dD/dθ terms; c_out gets dD/dβ's row terms."""
        for g in nb.prange(gptr.shape[0] - 1):
            a, b = gptr[g], gptr[g + 1]
            ug = u[g]
            ll, s1, s2, s3 = level_pass(a, b, eta0, z, k, n, fam, theta * ug, s_buf, w_buf, dw_buf)
            f = ll - 0.5 * ug * ug
            fail_g[g] = 0
            for _ in range(100):
                step = (theta * s1 - ug) / (theta * theta * s2 + 1.0)
                if abs(step) < 1e-11 * (1.0 + abs(ug)):
                    break
                ok = False
                for _h in range(40):
                    ut = ug + step
                    llt, s1t, s2t, s3t = level_pass(a, b, eta0, z, k, n, fam, theta * ut, s_buf, w_buf, dw_buf)
                    ft = llt - 0.5 * ut * ut
                    if ft >= f - 1e-13 * (abs(f) + 1.0):
                        ok = True
                        break
                    step *= 0.5
                if not ok:
                    fail_g[g] = 1
                    break
                ug, ll, s1, s2, s3, f = ut, llt, s1t, s2t, s3t, ft
            u[g] = ug
            # the buffers hold s, W, W' at the mode (the last accepted pass)
            h = theta * theta * s2 + 1.0
            dev_g[g] = -2.0 * ll + ug * ug + np.log(h)
            du_dtheta = (s1 - theta * ug * s2) / h
            dth_g[g] = -2.0 * ug * s1 + (2.0 * theta * s2 + theta * theta * ug * s3) / h \
                + theta * theta * theta * s3 / h * du_dtheta
            t2h = theta * theta / h
            t4 = theta * theta * theta * theta * s3 / (h * h)
            for i in range(a, b):
                zi = z[i]
                c_out[i] = -2.0 * s_buf[i] + t2h * zi * zi * dw_buf[i] - t4 * zi * w_buf[i]

    return kernel


class SingleTermLaplace:
    """Laplace deviance and gradient in (θ, β) for one scalar term; rows sorted by level once.

    Parameters
    ----------
    structure : ModelStructure
        One block with K = 1.
    X, y, wt, offset : ndarray
        As in :class:`~glmmkit.objective.glmm.GlmmObjective`.
    family : Family
        binomial-logit or Poisson-log.
    """

    def __init__(self, structure, X, y, wt, offset, family):
        blk = structure.blocks[0]
        codes = blk.factor.codes
        order = np.argsort(codes, kind="stable")
        self.order = order
        self.X = np.ascontiguousarray(X[order])
        self.offset = offset[order]
        self.z = np.ascontiguousarray(blk.columns[order, 0])
        self.k = np.ascontiguousarray((y * wt)[order])
        self.n = np.ascontiguousarray(wt[order])
        self.gptr = np.searchsorted(codes[order], np.arange(blk.q + 1)).astype(np.int64)
        self.fam = _FAMILY_CODE[(family.name, family.link.name)]
        if self.fam == 0:
            const = gammaln(wt + 1.0) - gammaln(y * wt + 1.0) - gammaln(wt - y * wt + 1.0)
        else:
            const = -wt * gammaln(y + 1.0)
        self.const = float(np.sum(const))
        self.u = np.zeros(blk.q)
        n_rows = X.shape[0]
        self.c = np.empty(n_rows)
        self._bufs = (np.empty(n_rows), np.empty(n_rows), np.empty(n_rows))
        self._per_level = (np.empty(blk.q), np.empty(blk.q), np.zeros(blk.q, dtype=np.int64))
        self.n_evals = 0
        self.failures = 0

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evals += 1
        theta, beta = float(params[0]), params[1:]
        eta0 = self.X @ beta + self.offset
        dev_g, dth_g, fail_g = self._per_level
        _kernel()(eta0, self.z, self.k, self.n, self.gptr, theta, self.u, self.fam, self.c, *self._bufs,
                  dev_g, dth_g, fail_g)
        self.failures += int(fail_g.sum())
        dev, dtheta = float(dev_g.sum()), float(dth_g.sum())
        grad = np.empty(params.shape[0])
        grad[0] = dtheta
        grad[1:] = self.X.T @ self.c
        return dev - 2.0 * self.const, grad

    def fit(self, theta0: float, beta0: np.ndarray):
        """L-BFGS-B from (θ0, β0) with θ ≥ 0; returns scipy's OptimizeResult."""
        x0 = np.concatenate([[max(theta0, 0.0)], beta0])
        bounds = [(0.0, None)] + [(None, None)] * beta0.shape[0]
        return minimize(self.value_and_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20})

    @staticmethod
    def converged(res) -> bool:
        """scipy's flag, or a line search that ended at a point whose gradient is negligible in deviance
        units (at 1e6 rows the deviance is ~1e6 and L-BFGS-B's line search can stall at |g| ~ 1e-6)."""
        return bool(res.success) or (res.jac is not None and float(np.max(np.abs(res.jac))) < 1e-3)

    def hessian(self, params: np.ndarray, h: float = 1e-6) -> np.ndarray:
        """Forward differences of the exact gradient (1 + p gradient evaluations), symmetrised."""
        k = params.shape[0]
        H = np.empty((k, k))
        u_saved = self.u.copy()
        _, g0 = self.value_and_grad(params)
        for j in range(k):
            e = np.zeros(k)
            e[j] = h * max(1.0, abs(params[j]))
            _, g1 = self.value_and_grad(params + e)
            H[:, j] = (g1 - g0) / e[j]
            self.u[:] = u_saved
        return 0.5 * (H + H.T)
