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
def row_work(gptr, rows, top):
    # multiply-adds per row of S in rank_update / pair_cross: a level's pair p meets every earlier pair
    # of the level (its rows are sorted), so row rows[p] costs p - start + 1
    work = np.zeros(top)
    for g in range(gptr.shape[0] - 1):
        start = gptr[g]
        for p in range(start, gptr[g + 1]):
            work[rows[p]] += p - start + 1
    return work


@nb.njit(cache=True, nogil=True)
def _cursors(gptr, rows, r0):
    # per level, its first pair on row r0 or later (a level's pairs are sorted by row)
    nlev = gptr.shape[0] - 1
    cur = np.empty(nlev, dtype=np.int64)
    for g in range(nlev):
        lo, hi = gptr[g], gptr[g + 1]
        while lo < hi:
            mid = (lo + hi) // 2
            if rows[mid] < r0:
                lo = mid + 1
            else:
                hi = mid
        cur[g] = lo
    return cur


@nb.njit(cache=True, nogil=True)
def rank_update(S, gptr, rows, a, M, r0, r1):
    # S[i, l] -= a_p' M_g a_r for the rows i of S in [r0, r1): the callers split S's rows between threads
    # (this releases the GIL), each writing only its own rows.  By tiles of S's rows, each level's pairs in
    # the tile: a level's rows are spread over all of S (110 MB at 3,700 items), and row by row every level
    # reloaded them from memory; a tile stays in cache across the levels (each level's pairs are sorted by
    # row, so a cursor per level walks its pairs once)
    K = a.shape[1]
    nlev = gptr.shape[0] - 1
    tile, top = _tile_rows(rows)
    r1 = min(r1, top)
    cur = _cursors(gptr, rows, r0)
    w = np.empty(K)
    for t0 in range(r0, r1, tile):
        t1 = min(t0 + tile, r1)
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
def pair_cross(gptr, rows, S_low, bd, r0, r1, own, other):
    # the cross part at the pairs, for the pairs p on rows [r0, r1): own[p] += Σ_{r <= p} S[rows[p], rows[r]] bd[r]
    # (p's row is this call's, so no other call writes own[p]) and other[r] += S[rows[p], rows[r]] bd[p] for
    # r < p (r's row may be another call's: ``other`` is this call's own buffer, summed by the caller); the
    # cross part is -(own + Σ other).  A level's rows are sorted, so rows[r] <= rows[p] for r <= p and
    # S_low's row rows[p] is read left to right; by tiles of rows as in rank_update
    K = bd.shape[1]
    nlev = gptr.shape[0] - 1
    tile, top = _tile_rows(rows)
    r1 = min(r1, top)
    cur = _cursors(gptr, rows, r0)
    for t0 in range(r0, r1, tile):
        t1 = min(t0 + tile, r1)
        for g in range(nlev):
            start, end = gptr[g], gptr[g + 1]
            p = cur[g]
            while p < end and rows[p] < t1:
                Srow = S_low[rows[p]]
                if K == 1:  # scalar lead term: the sum over r in a register
                    bdp = bd[p, 0]
                    acc = Srow[rows[p]] * bdp
                    for r in range(start, p):
                        s = Srow[rows[r]]
                        acc += s * bd[r, 0]
                        other[r, 0] += s * bdp
                    own[p, 0] += acc
                else:
                    for r in range(start, p):
                        s = Srow[rows[r]]
                        for k in range(K):
                            own[p, k] += s * bd[r, k]
                            other[r, k] += s * bd[p, k]
                    s = Srow[rows[p]]
                    for k in range(K):
                        own[p, k] += s * bd[p, k]
                p += 1
            cur[g] = p
