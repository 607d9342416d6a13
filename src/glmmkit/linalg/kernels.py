"""Compiled kernels for the large crossed case (numba, loaded lazily).

Only models whose dense Schur block is large use these: there the per-θ work
is a few million multiply-adds and numpy's temporaries cost more than the
arithmetic.  Small models never import numba, so a fresh process does not pay
its compile/load time (~0.5–1.5 s).  ``cache=True`` keeps the compiled code
between processes.  Every kernel has a numpy equivalent in ``blocked.py``; the
tests compare the two.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["numba_available", "rank_update_kernel", "scale_lower_kernel"]


@lru_cache(maxsize=1)
def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:  # pragma: no cover - numba is a dependency, but never required
        return False
    return True


@lru_cache(maxsize=1)
def rank_update_kernel():
    """S[i, l] -= a_ig' M_g a_lg for every lead level g and every pair i >= l of rows it touches.

    Arguments: S (m, m) lower triangle updated in place; gptr (q1 + 1,) pointers
    into the pair arrays (sorted by g, then by row); rows (npairs,); a (npairs, K1);
    M (q1, K1, K1).
    """
    import numba as nb

    @nb.njit(cache=True, nogil=True)
    def kernel(S, gptr, rows, a, M):
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

    return kernel


@lru_cache(maxsize=1)
def scale_lower_kernel():
    """S[i, l] *= s_i s_l on the lower triangle, then S[i, i] += 1 for i < mz."""
    import numba as nb

    @nb.njit(cache=True, nogil=True)
    def kernel(S, s, mz):
        m = S.shape[0]
        for i in range(m):
            si = s[i]
            for l in range(i + 1):
                S[i, l] *= si * s[l]
            if i < mz:
                S[i, i] += 1.0

    return kernel
