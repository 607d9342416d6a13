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
from scipy.special import expit, gammaln

__all__ = ["SingleTermLaplace", "applies", "NUMBA_MIN_ROWS"]

_FAMILY_CODE = {("binomial", "logit"): 0, ("poisson", "log"): 1}

#: models with at least this many rows x random effects per level run the numba kernels; below it the
#: numpy path (whole-array passes over all levels at once) is faster than numba's compile or cache load
#: (benchmarks/bench_coldstart.py measures both)
NUMBA_MIN_ROWS = 50_000


def applies(structure, family, nagq: int) -> bool:
    """True when the fast path computes exactly the model asked for.

    Parameters
    ----------
    structure : ModelStructure
        The model's random-effects structure.
    family : Family
        The family (with its link).
    nagq : int
        Quadrature nodes (1: Laplace).

    Returns
    -------
    bool
        True for the Laplace approximation, one block of at most 6 effects per level, and a
        family and link the kernels have (binomial-logit or Poisson-log).
    """
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


class _LevelSums:
    """Per-level sums of row arrays (rows sorted by level): ``np.add.reduceat`` over the level starts,
    the sparse level x row indicator where a level has no rows (reduceat cannot express an empty
    segment).  Small models run ~20 evaluations x ~5 Newton passes of these, so the per-call overhead
    of a sparse product (~15 µs) mattered more than its arithmetic."""

    def __init__(self, gptr: np.ndarray, n_rows: int):
        q = gptr.shape[0] - 1
        self.starts = gptr[:-1]
        self.G = None
        if np.any(np.diff(gptr) == 0):
            self.G = sp.csr_matrix((np.ones(n_rows), np.arange(n_rows), gptr), shape=(q, n_rows))

    def __call__(self, R: np.ndarray) -> np.ndarray:
        """Sums of the rows of ``R`` (shape (k, n)) per level: shape (k, q)."""
        if self.G is None:
            return np.add.reduceat(R, self.starts, axis=1)
        return (self.G @ R.T).T


def _binomial_or_poisson_terms(eta, k, n, fam, R, z=None):
    """ℓ_i, z s_i, z² W_i into the rows of ``R`` (the Newton passes need no W'); returns μ."""
    if fam == 0:  # binomial, logit: A = log(1 + e^η) = logaddexp(0, η), μ = expit(η), both overflow-free
        mu = expit(eta)
        np.multiply(k, eta, out=R[0])
        R[0] -= n * np.logaddexp(0.0, eta)
        w = n * mu * (1.0 - mu)
    else:  # Poisson, log: A = e^η
        mu = np.exp(eta)
        w = n * mu
        np.multiply(k, eta, out=R[0])
        R[0] -= w
    np.subtract(k, n * mu, out=R[1])
    R[2] = w
    if z is not None:
        R[1] *= z
        R[2] *= z * z
    return mu


def _scalar_numpy(eta0, z, k, n, sums, grp, theta, u, fam, c_out, dev_g, dth_g, fail_g, R):
    """numpy twin of ``_laplace_kernels.scalar_kernel``: every level's damped Newton iterations at once,
    on whole arrays (``sums``: per-level sums, ``grp``: each row's level, ``R``: a (3, n) buffer; ``z``
    None for a random intercept).  Same steps, stopping rule and step halving as the kernel; a pass
    where every level accepts its step (the usual case) swaps arrays instead of merging them."""

    def evaluate(uv):
        eta = eta0 + (theta * uv)[grp] if z is None else eta0 + (theta * uv)[grp] * z
        _binomial_or_poisson_terms(eta, k, n, fam, R, z)
        ll, s1, s2 = sums(R)
        return ll - 0.5 * uv * uv, ll, s1, s2

    f, ll, s1, s2 = evaluate(u)
    q = u.shape[0]
    fail = np.zeros(q, dtype=np.int64)
    active = np.ones(q, dtype=bool)
    t2 = theta * theta
    for _ in range(100):
        step = (theta * s1 - u) / (t2 * s2 + 1.0)
        active &= ~(np.abs(step) < 1e-11 * (1.0 + np.abs(u)))
        if not active.any():
            break
        pending = active.copy()
        step[~pending] = 0.0
        for _h in range(40):
            ut = u + step
            tf, tll, ts1, ts2 = evaluate(ut)
            ok = tf >= f - 1e-13 * (np.abs(f) + 1.0)
            if ok.all():
                u[:], f, ll, s1, s2 = ut, tf, tll, ts1, ts2
                pending[:] = False
                break
            acc = pending & ok
            u[acc], f[acc], ll[acc], s1[acc], s2[acc] = ut[acc], tf[acc], tll[acc], ts1[acc], ts2[acc]
            pending &= ~ok
            if not pending.any():
                break
            step = np.where(pending, 0.5 * step, 0.0)
        fail[pending] = 1
        active &= ~pending
    bz = theta * u
    eta = eta0 + bz[grp] if z is None else eta0 + bz[grp] * z
    zz = 1.0 if z is None else z
    if fam == 0:
        mu = expit(eta)
        w = n * mu * (1.0 - mu)
        dw = w * (1.0 - 2.0 * mu)
    else:
        mu = np.exp(eta)
        w = dw = n * mu
    s = k - n * mu
    R[0] = dw if z is None else zz * zz * zz * dw
    s3 = sums(R[:1])[0]
    h = t2 * s2 + 1.0
    dev_g[:] = -2.0 * ll + u * u + np.log(h)
    du_dtheta = (s1 - theta * u * s2) / h
    dth_g[:] = -2.0 * u * s1 + (2.0 * theta * s2 + t2 * u * s3) / h + t2 * theta * s3 / h * du_dtheta
    t2h = t2 / h
    t4 = t2 * t2 * s3 / (h * h)
    c_out[:] = -2.0 * s + t2h[grp] * (zz * zz) * dw - t4[grp] * zz * w
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
    """Laplace deviance and gradient in (θ, β) for one grouping factor's term; rows sorted by level once.

    Parameters
    ----------
    structure : ModelStructure
        One block with K ≤ 6 (see :func:`applies`).
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
            # the level x row indicator: only the vector twin reads it (scipy's checked constructor
            # costs ~50 µs, a fifth of a small model's evaluation)
            self._G = (sp.csr_matrix((np.ones(n_rows), np.arange(n_rows), self.gptr), shape=(blk.q, n_rows))
                       if self.K > 1 else None)
            self._sums = _LevelSums(self.gptr, n_rows)
            self._R = np.empty((3, n_rows))
            # a random intercept's column of ones: the numpy twin skips its products
            self._z_or_none = None if np.all(self.z == 1.0) else self.z

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace deviance and its exact gradient, the modes updated in place.

        Parameters
        ----------
        params : ndarray, shape (n_theta + p,)
            (θ, β) concatenated.

        Returns
        -------
        value : float
            −2 log L (Laplace); inf where the modes overflow (they then keep their last good values).
        grad : ndarray, shape (n_theta + p,)
            Its gradient in (θ, β); zeros with an infinite value.
        """
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
            _scalar_numpy(eta0, self._z_or_none, self.k, self.n, self._sums, self._grp, t, self.u, self.fam,
                          self.c, dev_g, dth_g, fail_g, self._R)
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
