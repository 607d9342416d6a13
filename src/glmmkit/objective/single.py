"""Fast Laplace fit for one scalar random-effect term (e.g. ``(1 | g)``) with a canonical link.

With one scalar term the Hessian of the penalised deviance in u is diagonal, so
the conditional modes are q independent one-dimensional Newton problems, and
the Laplace deviance and its exact gradient in (θ, β) follow in O(n) by the
implicit function theorem (algorithms note §9.2):

    D(φ) = F(û(φ), φ) + Σ_g log H_g,   F = -2 Σ ℓ_i + ||u||²,
    H_g = θ² Σ_{i∈g} z_i² W_i + 1,     ∂F/∂u = 0 at û,
    dD/dφ = ∂F/∂φ + Σ_g [∂H_g/∂φ + ∂H_g/∂u_g · du_g/dφ] / H_g,
    du_g/dφ = -(∂²F/∂u_g∂φ) / (2 H_g).

Rows are sorted by level once, one kernel runs every level's Newton
iterations (warm-started from the previous modes) and accumulates the value,
dD/dθ and a per-row coefficient c with dD/dβ = X'c; L-BFGS-B does the rest.
Large models (``NUMBA_MIN_ROWS``) use the numba kernels of
:mod:`objective._laplace_kernels`; smaller ones their numpy twins below, which
run the levels' iterations side by side on whole arrays: a first fit then
compiles nothing and never imports numba.
Canonical links only (binomial-logit, Poisson-log), where the observed and
expected information agree, so the value equals the PIRLS-based Laplace
deviance of :mod:`objective.glmm`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import gammaln

__all__ = ["SingleTermLaplace", "applies", "NUMBA_MIN_ROWS"]

_FAMILY_CODE = {("binomial", "logit"): 0, ("poisson", "log"): 1}

#: models with at least this many rows x random effects per level run the numba kernels; below it the
#: numpy path (whole-array passes over all levels at once) is faster than numba's compile or cache load
#: (benchmarks/bench_coldstart.py measures both)
NUMBA_MIN_ROWS = 50_000


def applies(structure, family, nagq: int) -> bool:
    """True when the fast path computes exactly the model asked for."""
    return (
        nagq == 1
        and len(structure.blocks) == 1
        and structure.blocks[0].K <= 6
        and (family.name, family.link.name) in _FAMILY_CODE
    )


def _use_numba(n_rows: int, K: int) -> bool:
    from ..linalg.kernels import numba_available

    return n_rows * K >= NUMBA_MIN_ROWS and numba_available()


def _kernel():
    from ._laplace_kernels import scalar_kernel

    return scalar_kernel


def _vector_kernel():
    from ._laplace_kernels import vector_kernel

    return vector_kernel


def _row_terms(eta, k, n, fam):
    """ℓ_i, s_i = ∂ℓ/∂η, W_i, W'_i for ℓ = kη - n A(η), whole arrays (the numba kernels' row_mean
    and row_derivatives)."""
    if fam == 0:  # binomial, logit: A = log(1 + e^η), evaluated on the side where e^(∓η) cannot overflow
        pos = eta > 0
        e = np.exp(np.where(pos, -eta, eta))
        mu = np.where(pos, 1.0 / (1.0 + e), e / (1.0 + e))
        a = np.where(pos, eta, 0.0) + np.log1p(e)
        v = mu * (1.0 - mu)
        return k * eta - n * a, k - n * mu, n * v, n * v * (1.0 - 2.0 * mu)
    mu = np.exp(eta)  # Poisson, log: A = e^η
    return k * eta - n * mu, k - n * mu, n * mu, n * mu


def _newton_levels(u, evaluate, step_of, tol_ok):
    """Every level's damped Newton iterations at once, as the numba kernels run them one level at a time.

    ``u`` (modes, one row per level) is updated in place; ``evaluate(u)`` returns the per-level state
    (a tuple of arrays, its first entry the objective f), ``step_of(state, active)`` the Newton steps
    of the active levels and ``tol_ok(step, u)`` which of them have converged.  A level stops when its
    step is negligible; a step is halved (up to 40 times) until f does not fall.  Returns the state at
    u and the per-level failure flags (no acceptable step)."""
    state = list(evaluate(u))
    q = u.shape[0]
    fail = np.zeros(q, dtype=np.int64)
    active = np.ones(q, dtype=bool)
    for _ in range(100):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        step = step_of(state, idx)
        done = tol_ok(step, u[idx])
        active[idx[done]] = False
        idx, step = idx[~done], step[~done]
        ut = u.copy()
        for _h in range(40):
            if idx.size == 0:
                break
            ut[idx] = u[idx] + step
            trial = evaluate(ut)
            f_old = state[0][idx]
            ok = trial[0][idx] >= f_old - 1e-13 * (np.abs(f_old) + 1.0)
            acc = idx[ok]
            u[acc] = ut[acc]
            for j, part in enumerate(trial):
                state[j][acc] = part[acc]
            idx, step = idx[~ok], 0.5 * step[~ok]
        fail[idx] = 1
        active[idx] = False
    return state, fail


def _scalar_numpy(eta0, z, k, n, G, grp, theta, u, fam, c_out, dev_g, dth_g, fail_g):
    """numpy twin of ``_laplace_kernels.scalar_kernel`` (same arguments but G, the level x row indicator,
    and grp, each row's level, instead of the row pointers and buffers)."""

    def evaluate(uv):
        ll_i, s, w, dw = _row_terms(eta0 + (theta * uv)[grp] * z, k, n, fam)
        sums = G @ np.column_stack([ll_i, z * s, z * z * w, z * z * z * dw])
        ll = sums[:, 0]
        return ll - 0.5 * uv * uv, ll, sums[:, 1], sums[:, 2], sums[:, 3]

    def step_of(state, idx):
        return (theta * state[2][idx] - u[idx]) / (theta * theta * state[3][idx] + 1.0)

    (_, ll, s1, s2, s3), fail = _newton_levels(u, evaluate, step_of,
                                               lambda step, ua: np.abs(step) < 1e-11 * (1.0 + np.abs(ua)))
    _, s, w, dw = _row_terms(eta0 + (theta * u)[grp] * z, k, n, fam)
    h = theta * theta * s2 + 1.0
    dev_g[:] = -2.0 * ll + u * u + np.log(h)
    du_dtheta = (s1 - theta * u * s2) / h
    dth_g[:] = -2.0 * u * s1 + (2.0 * theta * s2 + theta * theta * u * s3) / h \
        + theta * theta * theta * s3 / h * du_dtheta
    t2h = theta * theta / h
    t4 = theta * theta * theta * theta * s3 / (h * h)
    c_out[:] = -2.0 * s + t2h[grp] * z * z * dw - t4[grp] * z * w
    fail_g[:] = fail


def _vector_numpy(eta0, Z, k, n, G, grp, T, U, fam, c_out, dev_g, dT_g, fail_g):
    """numpy twin of ``_laplace_kernels.vector_kernel`` (arguments as in :func:`_scalar_numpy`)."""
    K = T.shape[0]
    zeta = Z @ T  # ζ_i = T'z_i
    low_r, low_c = np.tril_indices(K)
    eye = np.eye(K)

    def evaluate(Uv):
        bvec = Uv @ T.T
        eta = eta0.copy()
        for c in range(K):
            eta += Z[:, c] * bvec[grp, c]
        ll_i, s, w, dw = _row_terms(eta, k, n, fam)
        sums = G @ np.column_stack([ll_i[:, None], s[:, None] * zeta,
                                    w[:, None] * zeta[:, low_r] * zeta[:, low_c]])
        ll = sums[:, 0]
        grad = sums[:, 1:1 + K] - Uv
        H = np.broadcast_to(eye, (Uv.shape[0], K, K)).copy()
        H[:, low_r, low_c] += sums[:, 1 + K:]
        H[:, low_c, low_r] = H[:, low_r, low_c]
        return ll - 0.5 * np.einsum("gk,gk->g", Uv, Uv), ll, grad, H

    def step_of(state, idx):
        return np.linalg.solve(state[3][idx], state[2][idx][..., None])[..., 0]

    def tol_ok(step, ua):
        return np.max(np.abs(step), axis=1) < 1e-11 * (1.0 + np.max(np.abs(ua), axis=1))

    (_, ll, _, H), fail = _newton_levels(U, evaluate, step_of, tol_ok)
    bvec = U @ T.T
    eta = eta0.copy()
    for c in range(K):
        eta += Z[:, c] * bvec[grp, c]
    _, s, w, dw = _row_terms(eta, k, n, fam)
    Hinv = np.linalg.inv(H)
    dev_g[:] = -2.0 * ll + np.einsum("gk,gk->g", U, U) + np.linalg.slogdet(H)[1]
    hz = np.einsum("icd,id->ic", Hinv[grp], zeta)
    h = np.einsum("ic,ic->i", zeta, hz)
    dwh = dw * h
    sums = G @ np.column_stack([dwh[:, None] * zeta, s[:, None] * Z, dwh[:, None] * Z,
                                (w[:, None, None] * Z[:, :, None] * hz[:, None, :]).reshape(-1, K * K)])
    v, A_sz, B, E = sums[:, :K], sums[:, K:2 * K], sums[:, 2 * K:3 * K], sums[:, 3 * K:].reshape(-1, K, K)
    Hv = np.einsum("gcd,gd->gc", Hinv, v)
    r = np.einsum("ic,ic->i", zeta, Hv[grp])
    c_out[:] = -2.0 * s + dwh - w * r
    C = G @ ((w * r)[:, None] * Z)
    lead = -2.0 * A_sz + B - C
    dT_g[:] = np.tril(U[:, None, :] * lead[:, :, None] + 2.0 * E + Hv[:, None, :] * A_sz[:, :, None])
    fail_g[:] = fail


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
        # the kernels read each level's rows as one slice; rows already in level order (the usual
        # long format) are used as they are, others are sorted into copies (X alone is 32 MB at 1e6 rows)
        order = None if np.all(codes[1:] >= codes[:-1]) else np.argsort(codes, kind="stable")

        def rows(a):
            return np.ascontiguousarray(a if order is None else a[order])

        sorted_codes = rows(codes)
        self.X = rows(X)
        self.offset = rows(offset)
        self.Zmat = rows(blk.columns)
        self.z = self.Zmat[:, 0]  # K = 1: a contiguous view, not another copy
        self.n_theta = structure.n_theta
        self.structure = structure
        self._direct = blk.direct
        self.k = rows(y * wt)
        self.n = rows(wt)
        self.gptr = np.searchsorted(sorted_codes, np.arange(blk.q + 1)).astype(np.int64)
        self.fam = _FAMILY_CODE[(family.name, family.link.name)]
        if self.fam == 0:
            const = gammaln(wt + 1.0) - gammaln(y * wt + 1.0) - gammaln(wt - y * wt + 1.0)
        else:
            const = -wt * gammaln(y + 1.0)
        self.const = float(np.sum(const))
        self.u = np.zeros(blk.q) if self.K == 1 else np.zeros((blk.q, self.K))
        self._dT = np.zeros((blk.q, self.K, self.K))
        n_rows = X.shape[0]
        # per-row arrays reused by every evaluation: η's fixed part, dD/dβ's row terms (the scalar
        # kernel's scratch too) and the vector kernel's μ between its passes
        self._eta0 = np.empty(n_rows)
        self.c = np.empty(n_rows)
        self._mu = np.empty(n_rows) if self.K > 1 else None
        self._per_level = (np.empty(blk.q), np.empty(blk.q), np.zeros(blk.q, dtype=np.int64))
        self.n_evals = 0
        self.failures = 0
        self.use_numba = _use_numba(n_rows, self.K)
        if not self.use_numba:
            self._grp = np.repeat(np.arange(blk.q), np.diff(self.gptr))
            self._G = sp.csr_matrix((np.ones(n_rows), np.arange(n_rows), self.gptr), shape=(blk.q, n_rows))

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

    def _fixed_part(self, beta: np.ndarray) -> np.ndarray:
        """Xβ + offset (level order) in the reused buffer: no two n-sized temporaries per evaluation."""
        eta0 = np.matmul(self.X, beta, out=self._eta0)
        eta0 += self.offset
        return eta0

    def _value_and_grad_scalar(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        # the kernel takes the 1 x 1 template; lme4's scalar term is its own θ (no Jacobian to apply)
        direct = self._direct
        nt = self.n_theta
        if direct:
            t, beta = float(params[0]), params[1:]
        else:
            theta, beta = params[:nt], params[nt:]
            t = float(self.block.template(theta)[0, 0])
        eta0 = self._fixed_part(beta)
        dev_g, dth_g, fail_g = self._per_level
        if self.use_numba:
            _kernel()(eta0, self.z, self.k, self.n, self.gptr, t, self.u, self.fam, self.c, dev_g, dth_g, fail_g)
        else:
            _scalar_numpy(eta0, self.z, self.k, self.n, self._G, self._grp, t, self.u, self.fam, self.c,
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
        eta0 = self._fixed_part(beta)
        dev_g, _, fail_g = self._per_level
        if self.use_numba:
            _vector_kernel()(eta0, self.Zmat, self.k, self.n, self.gptr, T, self.u, self.fam, self.c, self._mu,
                             dev_g, self._dT, fail_g)
        else:
            _vector_numpy(eta0, self.Zmat, self.k, self.n, self._G, self._grp, T, self.u, self.fam, self.c,
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
