"""numba kernels of the one-grouping-factor Laplace fit (see objective/single.py).

Imported only when such a model is fitted, so small fits and LMMs never load
numba; module-level functions so that ``cache=True`` keeps the compiled code
between processes.
"""

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def row_mean(eta, k, n, fam):
    """ℓ_i = kη - n A(η) and μ_i = A'(η)."""
    if fam == 0:  # binomial, logit: A = log(1 + e^η)
        if eta > 0:
            e = np.exp(-eta)
            mu = 1.0 / (1.0 + e)
            a = eta + np.log1p(e)
        else:
            e = np.exp(eta)
            mu = e / (1.0 + e)
            a = np.log1p(e)
        return k * eta - n * a, mu
    mu = np.exp(eta)  # Poisson, log: A = e^η
    return k * eta - n * mu, mu


@nb.njit(cache=True, nogil=True)
def row_derivatives(mu, k, n, fam):
    """s_i = ∂ℓ/∂η, W_i = -∂²ℓ/∂η², W'_i = ∂W/∂η from μ_i: with a canonical link they are functions
    of μ alone, so the kernels keep one number per row (μ) between passes instead of three."""
    if fam == 0:
        v = mu * (1.0 - mu)
        return k - n * mu, n * v, n * v * (1.0 - 2.0 * mu)
    return k - n * mu, n * mu, n * mu


@nb.njit(cache=True, nogil=True)
def level_pass(a, b, eta0, z, k, n, fam, tz, mu_buf):
    """One pass over a level's rows at b_g = tz: sums, and the per-row μ kept for later."""
    ll = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for i in range(a, b):
        li, mu = row_mean(eta0[i] + tz * z[i], k[i], n[i], fam)
        si, wi, dwi = row_derivatives(mu, k[i], n[i], fam)
        zi = z[i]
        ll += li
        s1 += zi * si
        s2 += zi * zi * wi
        s3 += zi * zi * zi * dwi
        mu_buf[i] = mu
    return ll, s1, s2, s3

@nb.njit(cache=True, nogil=True, parallel=True)
def scalar_kernel(eta0, z, k, n, gptr, theta, u, fam, c_out, dev_g, dth_g, fail_g):
    """Modes (u in place); per level its deviance and dD/dθ terms; c_out gets dD/dβ's row terms.

    c_out doubles as the per-row buffer of the passes (μ_i), which its final value needs alone:
    no n-sized scratch arrays."""
    for g in nb.prange(gptr.shape[0] - 1):
        a, b = gptr[g], gptr[g + 1]
        ug = u[g]
        ll, s1, s2, s3 = level_pass(a, b, eta0, z, k, n, fam, theta * ug, c_out)
        f = ll - 0.5 * ug * ug
        fail_g[g] = 0
        for _ in range(100):
            step = (theta * s1 - ug) / (theta * theta * s2 + 1.0)
            if abs(step) < 1e-11 * (1.0 + abs(ug)):
                break
            ok = False
            for _h in range(40):
                ut = ug + step
                llt, s1t, s2t, s3t = level_pass(a, b, eta0, z, k, n, fam, theta * ut, c_out)
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
        # c_out holds μ at the mode (the last accepted pass)
        h = theta * theta * s2 + 1.0
        dev_g[g] = -2.0 * ll + ug * ug + np.log(h)
        du_dtheta = (s1 - theta * ug * s2) / h
        dth_g[g] = -2.0 * ug * s1 + (2.0 * theta * s2 + theta * theta * ug * s3) / h \
            + theta * theta * theta * s3 / h * du_dtheta
        t2h = theta * theta / h
        t4 = theta * theta * theta * theta * s3 / (h * h)
        for i in range(a, b):
            zi = z[i]
            si, wi, dwi = row_derivatives(c_out[i], k[i], n[i], fam)
            c_out[i] = -2.0 * si + t2h * zi * zi * dwi - t4 * zi * wi




@nb.njit(cache=True, nogil=True)
def _cholesky(H, L):
    """L = lower Cholesky factor of the small SPD matrix H; False when H is not positive definite.

    Hand-written (K <= 6) rather than np.linalg: numba's LAPACK bindings cost tens of seconds of
    compilation on first use, far more than these few multiply-adds ever do."""
    K = H.shape[0]
    for j in range(K):
        d = H[j, j]
        for m in range(j):
            d -= L[j, m] * L[j, m]
        if not d > 0.0:
            return False
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, K):
            acc = H[i, j]
            for m in range(j):
                acc -= L[i, m] * L[j, m]
            L[i, j] = acc / L[j, j]
        for i in range(j):
            L[i, j] = 0.0
    return True


@nb.njit(cache=True, nogil=True)
def _chol_solve(L, rhs, out):
    """out = (LL')⁻¹ rhs."""
    K = L.shape[0]
    for i in range(K):
        acc = rhs[i]
        for m in range(i):
            acc -= L[i, m] * out[m]
        out[i] = acc / L[i, i]
    for i in range(K - 1, -1, -1):
        acc = out[i]
        for m in range(i + 1, K):
            acc -= L[m, i] * out[m]
        out[i] = acc / L[i, i]


@nb.njit(cache=True, nogil=True)
def _matvec(A, x, out):
    """out = A x (small dense A)."""
    for c in range(A.shape[0]):
        acc = 0.0
        for d in range(A.shape[1]):
            acc += A[c, d] * x[d]
        out[c] = acc


@nb.njit(cache=True, nogil=True)
def vector_level_pass(a, b, eta0, Z, k, n, fam, T, ug, bvec, zeta, mu_buf, grad, H):
    """Log-likelihood of the level at u_g; fills grad = Σ s ζ - u, H = Σ W ζζ' + I and the rows' μ."""
    K = T.shape[0]
    _matvec(T, ug, bvec)
    ll = 0.0
    for c in range(K):
        grad[c] = -ug[c]
        for d in range(K):
            H[c, d] = 1.0 if c == d else 0.0
    for i in range(a, b):
        eta = eta0[i]
        for c in range(K):
            eta += Z[i, c] * bvec[c]
        li, mu = row_mean(eta, k[i], n[i], fam)
        si, wi, _ = row_derivatives(mu, k[i], n[i], fam)
        ll += li
        mu_buf[i] = mu
        for c in range(K):
            acc = 0.0
            for d in range(K):
                acc += T[d, c] * Z[i, d]
            zeta[c] = acc
        for c in range(K):
            grad[c] += si * zeta[c]
            for d in range(c + 1):
                H[c, d] += wi * zeta[c] * zeta[d]
    for c in range(K):
        for d in range(c):
            H[d, c] = H[c, d]
    return ll


@nb.njit(cache=True, nogil=True, parallel=True)
def vector_kernel(eta0, Z, k, n, gptr, T, U, fam, c_out, mu_buf, dev_g, dT_g, fail_g):
    """As scalar_kernel for a K-vector term; mu_buf (n,) keeps the rows' μ between passes (pass B
    still needs W after c_out is written)."""
    K = T.shape[0]
    for g in nb.prange(gptr.shape[0] - 1):
        a, b = gptr[g], gptr[g + 1]
        ug = U[g].copy()
        ut = np.empty(K)
        bvec = np.empty(K)
        zeta = np.empty(K)
        grad = np.empty(K)
        H = np.empty((K, K))
        L = np.empty((K, K))
        step = np.empty(K)
        ll = vector_level_pass(a, b, eta0, Z, k, n, fam, T, ug, bvec, zeta, mu_buf, grad, H)
        f = ll
        for c in range(K):
            f -= 0.5 * ug[c] * ug[c]
        fail_g[g] = 0
        gt = np.empty(K)
        Ht = np.empty((K, K))
        for _ in range(100):
            if not _cholesky(H, L):
                fail_g[g] = 1
                break
            _chol_solve(L, grad, step)
            smax = 0.0
            umax = 0.0
            for c in range(K):
                smax = max(smax, abs(step[c]))
                umax = max(umax, abs(ug[c]))
            if smax < 1e-11 * (1.0 + umax):
                break
            ok = False
            for _h in range(40):
                for c in range(K):
                    ut[c] = ug[c] + step[c]
                llt = vector_level_pass(a, b, eta0, Z, k, n, fam, T, ut, bvec, zeta, mu_buf, gt, Ht)
                ft = llt
                for c in range(K):
                    ft -= 0.5 * ut[c] * ut[c]
                if ft >= f - 1e-13 * (abs(f) + 1.0):
                    ok = True
                    break
                for c in range(K):
                    step[c] *= 0.5
            if not ok:
                fail_g[g] = 1
                break
            ug[:] = ut
            ll, f = llt, ft
            grad[:] = gt
            H[:, :] = Ht
        U[g] = ug
        if not _cholesky(H, L):
            fail_g[g] = 1
            dev_g[g] = np.nan
            continue
        logdet = 0.0
        for c in range(K):
            logdet += 2.0 * np.log(L[c, c])
        uu = 0.0
        for c in range(K):
            uu += ug[c] * ug[c]
        dev_g[g] = -2.0 * ll + uu + logdet
        # pass A at the mode: h_i, v, and the sums Σ s z_a, Σ W'h z_a, Σ W z_a (H⁻¹ζ)_b
        v = np.zeros(K)
        A_sz = np.zeros(K)
        B = np.zeros(K)
        E = np.zeros((K, K))
        hz = np.empty(K)
        for i in range(a, b):
            for c in range(K):
                acc = 0.0
                for d in range(K):
                    acc += T[d, c] * Z[i, d]
                zeta[c] = acc
            _chol_solve(L, zeta, hz)
            h = 0.0
            for c in range(K):
                h += zeta[c] * hz[c]
            si, wi, dwi = row_derivatives(mu_buf[i], k[i], n[i], fam)
            for c in range(K):
                v[c] += dwi * h * zeta[c]
                A_sz[c] += si * Z[i, c]
                B[c] += dwi * h * Z[i, c]
                for d in range(K):
                    E[c, d] += wi * Z[i, c] * hz[d]
            c_out[i] = -2.0 * si + dwi * h
        Hv = np.empty(K)
        _chol_solve(L, v, Hv)
        # pass B: r_i = ζ_i'H⁻¹v, the β row terms and Σ W r z_a
        C = np.zeros(K)
        for i in range(a, b):
            r = 0.0
            for c in range(K):
                acc = 0.0
                for d in range(K):
                    acc += T[d, c] * Z[i, d]
                r += acc * Hv[c]
            wi = row_derivatives(mu_buf[i], k[i], n[i], fam)[1]
            c_out[i] -= wi * r
            for c in range(K):
                C[c] += wi * r * Z[i, c]
        for aa in range(K):
            for bb in range(aa + 1):
                dT_g[g, aa, bb] = ug[bb] * (-2.0 * A_sz[aa] + B[aa] - C[aa]) + 2.0 * E[aa, bb] + Hv[bb] * A_sz[aa]
