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
        and structure.blocks[0].K <= 6
        and (family.name, family.link.name) in _FAMILY_CODE
        and numba_available()
    )


def _kernel():
    from ._laplace_kernels import scalar_kernel

    return scalar_kernel


def _vector_kernel():
    from ._laplace_kernels import vector_kernel

    return vector_kernel


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
        self.block = blk
        self.K = blk.K
        codes = blk.factor.codes
        order = np.argsort(codes, kind="stable")
        self.order = order
        self.X = np.ascontiguousarray(X[order])
        self.offset = offset[order]
        self.z = np.ascontiguousarray(blk.columns[order, 0])
        self.Zmat = np.ascontiguousarray(blk.columns[order])
        self.n_theta = structure.n_theta
        self.structure = structure
        self._direct = blk.direct
        self.k = np.ascontiguousarray((y * wt)[order])
        self.n = np.ascontiguousarray(wt[order])
        self.gptr = np.searchsorted(codes[order], np.arange(blk.q + 1)).astype(np.int64)
        self.fam = _FAMILY_CODE[(family.name, family.link.name)]
        if self.fam == 0:
            const = gammaln(wt + 1.0) - gammaln(y * wt + 1.0) - gammaln(wt - y * wt + 1.0)
        else:
            const = -wt * gammaln(y + 1.0)
        self.const = float(np.sum(const))
        self.u = np.zeros(blk.q) if self.K == 1 else np.zeros((blk.q, self.K))
        self._dT = np.zeros((blk.q, self.K, self.K))
        n_rows = X.shape[0]
        self.c = np.empty(n_rows)
        self._bufs = (np.empty(n_rows), np.empty(n_rows), np.empty(n_rows))
        self._per_level = (np.empty(blk.q), np.empty(blk.q), np.zeros(blk.q, dtype=np.int64))
        self.n_evals = 0
        self.failures = 0

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evals += 1
        u_saved = self.u.copy()
        try:
            with np.errstate(all="ignore"):
                value, grad = (self._value_and_grad_vector(params) if self.K > 1
                               else self._value_and_grad_scalar(params))
        except (np.linalg.LinAlgError, SystemError, FloatingPointError, ZeroDivisionError):
            # a trial point so far out that the modes overflow (numba raises from inside the kernel):
            # an infinite deviance sends the line search back, and the modes stay at their last good values
            value, grad = np.inf, np.zeros(params.shape[0])
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            self.u[...] = u_saved
            return np.inf, np.zeros(params.shape[0])
        return value, grad

    def _value_and_grad_scalar(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        # the kernel takes the 1 x 1 template; lme4's scalar term is its own θ (no Jacobian to apply)
        direct = self._direct
        nt = self.n_theta
        if direct:
            t, beta = float(params[0]), params[1:]
        else:
            theta, beta = params[:nt], params[nt:]
            t = float(self.block.template(theta)[0, 0])
        eta0 = self.X @ beta + self.offset
        dev_g, dth_g, fail_g = self._per_level
        _kernel()(eta0, self.z, self.k, self.n, self.gptr, t, self.u, self.fam, self.c, *self._bufs,
                  dev_g, dth_g, fail_g)
        self.failures += int(fail_g.sum())
        dev, dt = float(dev_g.sum()), float(dth_g.sum())
        grad = np.empty(params.shape[0])
        if direct:
            grad[0] = dt
        else:
            grad[:nt] = self.structure.contract(theta, [np.array([dt])])
        grad[nt:] = self.X.T @ self.c
        return dev - 2.0 * self.const, grad

    def _value_and_grad_vector(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        blk = self.block
        theta, beta = params[: self.n_theta], params[self.n_theta :]
        T = blk.template(theta)
        eta0 = self.X @ beta + self.offset
        dev_g, _, fail_g = self._per_level
        _vector_kernel()(eta0, self.Zmat, self.k, self.n, self.gptr, T, self.u, self.fam, self.c, *self._bufs,
                         dev_g, self._dT, fail_g)
        self.failures += int(fail_g.sum())
        dT = self._dT.sum(axis=0)  # d deviance / d template entries (lower triangle)
        grad = np.empty(params.shape[0])
        grad[: self.n_theta] = self.structure.contract(theta, [dT[blk.tpl_rows, blk.tpl_cols]])
        grad[self.n_theta :] = self.X.T @ self.c
        return float(dev_g.sum()) - 2.0 * self.const, grad

    def fit(self, theta0, beta0: np.ndarray, lower=None):
        """L-BFGS-B from (θ0, β0) with θ's diagonal entries ≥ 0; returns scipy's OptimizeResult."""
        theta0 = np.atleast_1d(np.asarray(theta0, dtype=float))
        lower = np.zeros(1) if lower is None else lower
        x0 = np.concatenate([np.maximum(theta0, np.where(np.isfinite(lower), lower, -np.inf)), beta0])
        bounds = [(lo, None) if np.isfinite(lo) else (None, None) for lo in lower] + [(None, None)] * beta0.shape[0]
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
        self.u[...] = u_saved
        for j in range(k):
            e = np.zeros(k)
            e[j] = h * max(1.0, abs(params[j]))
            _, g1 = self.value_and_grad(params + e)
            H[:, j] = (g1 - g0) / e[j]
            self.u[...] = u_saved
        return 0.5 * (H + H.T)
