"""numba kernels of the blocked Cholesky (see linalg/kernels.py); imported only when a model needs them."""

import numba as nb
import numpy as np


#: doubles of S that one tile of rows holds (~470 KB: inside a core's L2 cache)
TILE_DOUBLES = 60_000


@nb.njit(cache=True, nogil=True)
def _tile_rows(rows):
    # rows per tile: a tile of S's rows spans at most max(rows) + 1 columns
    top = 0
    for p in range(rows.shape[0]):
        if rows[p] + 1 > top:
            top = rows[p] + 1
    return max(8, TILE_DOUBLES // max(top, 1)), top


@nb.njit(cache=True, nogil=True)
def rank_update(S, gptr, rows, a, M):
    # by tiles of S's rows, each level's pairs in the tile: a level's rows are spread over all of S (110 MB
    # at 3,700 items), and row by row every level reloaded them from memory; a tile stays in cache
    # across the levels (each level's pairs are sorted by row, so a cursor per level walks its pairs once)
    K = a.shape[1]
    nlev = gptr.shape[0] - 1
    tile, top = _tile_rows(rows)
    cur = gptr[:nlev].copy()
    w = np.empty(K)
    for t1 in range(tile, top + tile, tile):
        for g in range(nlev):
            start, end = gptr[g], gptr[g + 1]
            p = cur[g]
            if K == 1:  # scalar lead term: the common case, kept free of the inner K loops
                mg = M[g, 0, 0]
                while p < end and rows[p] < t1:
                    Srow = S[rows[p]]
                    wp = mg * a[p, 0]
                    for r in range(start, p + 1):
                        Srow[rows[r]] -= wp * a[r, 0]
                    p += 1
            else:
                while p < end and rows[p] < t1:
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
                    p += 1
            cur[g] = p


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
    # sorted, so rows[r] <= rows[p] for r <= p and S_low's row rows[p] is read left to right; by tiles
    # of rows as in rank_update
    npairs, K = bd.shape
    nlev = gptr.shape[0] - 1
    cr = np.zeros((npairs, K))
    tile, top = _tile_rows(rows)
    cur = gptr[:nlev].copy()
    for t1 in range(tile, top + tile, tile):
        for g in range(nlev):
            start, end = gptr[g], gptr[g + 1]
            p = cur[g]
            while p < end and rows[p] < t1:
                Srow = S_low[rows[p]]
                for r in range(start, p):
                    s = Srow[rows[r]]
                    for k in range(K):
                        cr[p, k] -= s * bd[r, k]
                        cr[r, k] -= s * bd[p, k]
                s = Srow[rows[p]]
                for k in range(K):
                    cr[p, k] -= s * bd[p, k]
                p += 1
            cur[g] = p
    return cr
