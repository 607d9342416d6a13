"""numba kernels of the blocked Cholesky (see linalg/kernels.py); imported only when a model needs them."""

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def rank_update(S, gptr, rows, a, M):
    K = a.shape[1]
    if K == 1:  # scalar lead term: the common case, kept free of the inner K loops
        for g in range(gptr.shape[0] - 1):
            mg = M[g, 0, 0]
            start, end = gptr[g], gptr[g + 1]
            for p in range(start, end):
                Srow = S[rows[p]]
                wp = mg * a[p, 0]
                for r in range(start, p + 1):
                    Srow[rows[r]] -= wp * a[r, 0]
        return
    w = a[0].copy() if a.shape[0] else a[:0, 0].copy()
    for g in range(gptr.shape[0] - 1):
        start, end = gptr[g], gptr[g + 1]
        for p in range(start, end):
            i = rows[p]
            for c in range(K):
                acc = 0.0
                for d in range(K):
                    acc += M[g, c, d] * a[p, d]
                w[c] = acc
            for r in range(start, p + 1):
                acc = 0.0
                for c in range(K):
                    acc += w[c] * a[r, c]
                S[i, rows[r]] -= acc




@nb.njit(cache=True, nogil=True)
def scale_lower(S, s, mz):
    m = S.shape[0]
    for i in range(m):
        si = s[i]
        for l in range(i + 1):
            S[i, l] *= si * s[l]
        if i < mz:
            S[i, i] += 1.0



@nb.njit(cache=True, nogil=True)
def pair_cross(gptr, rows, S_low, bd):
    # cr[p] = -sum over the pairs r of p's lead level of S[rows[p], rows[r]] bd[r]; a level's rows are
    # sorted, so rows[r] <= rows[p] for r <= p and S_low's row rows[p] is read left to right
    npairs, K = bd.shape
    cr = np.zeros((npairs, K))
    for g in range(gptr.shape[0] - 1):
        start, end = gptr[g], gptr[g + 1]
        for p in range(start, end):
            Srow = S_low[rows[p]]
            for r in range(start, p):
                s = Srow[rows[r]]
                for k in range(K):
                    cr[p, k] -= s * bd[r, k]
                    cr[r, k] -= s * bd[p, k]
            s = Srow[rows[p]]
            for k in range(K):
                cr[p, k] -= s * bd[p, k]
    return cr
