"""Compiled kernels for the large crossed case (numba, loaded lazily).

Only models whose dense Schur block is large use these: there the per-θ work
is a few million multiply-adds and numpy's temporaries cost more than the
arithmetic.  Small models never import numba, so a fresh process does not pay
its compile/load time (~0.5–1.5 s).  ``cache=True`` keeps the compiled code
between processes.  Every kernel has a numpy equivalent in ``blocked.py``; the
tests compare the two.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from .._threads import kernel_threads

__all__ = ["numba_available", "rank_update_kernel", "scale_lower_kernel", "pair_cross_kernel"]


@lru_cache(maxsize=1)
def numba_available() -> bool:
    """Whether numba can be imported (checked once per process).

    Returns
    -------
    bool
        False when the import fails for any reason; the numpy paths are used then.
    """
    try:
        import numba  # noqa: F401
    except Exception:  # pragma: no cover - numba is a dependency, but never required
        return False
    return True


@lru_cache(maxsize=1)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="glmmkit-kernel")


def _row_chunks(gptr, rows, threads: int) -> list:
    """S's rows split into ``threads`` ranges of about equal work (``row_work``): [(r0, r1), ...]."""
    from ._numba_kernels import row_work

    top = int(rows.max()) + 1 if rows.shape[0] else 0
    if threads <= 1 or top < 2 * threads:
        return [(0, top)]
    cum = np.cumsum(row_work(gptr, rows, top))
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, threads) / threads)
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts + 1, top), [top]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _run(fn, chunks, args_of):
    """fn(*args_of(r0, r1, i)) for every chunk: the last on this thread, the others on the pool."""
    if len(chunks) == 1:
        fn(*args_of(*chunks[0], 0))
        return
    pool = _pool(len(chunks) - 1)
    futures = [pool.submit(fn, *args_of(r0, r1, i)) for i, (r0, r1) in enumerate(chunks[:-1])]
    fn(*args_of(*chunks[-1], len(chunks) - 1))
    for f in futures:
        f.result()


def rank_update_kernel():
    """The compiled kernel S[i, l] -= a_ig' M_g a_lg for every lead level g and every pair i >= l of rows it touches.

    Imports (and, on first use, compiles) numba's ``rank_update``.  The kernel's arguments: S
    (m, m) lower triangle updated in place; gptr (q1 + 1,) pointers into the pair arrays (sorted by
    g, then by row); rows (npairs,); a (npairs, K1); M (q1, K1, K1).  S's rows are split into ranges
    of equal work, one per thread (``kernel_threads``): each writes only its own rows.

    Returns
    -------
    callable
        ``rank_update(S, gptr, rows, a, M)``.
    """
    from ._numba_kernels import rank_update

    def run(S, gptr, rows, a, M):
        chunks = _row_chunks(gptr, rows, kernel_threads())
        _run(rank_update, chunks, lambda r0, r1, i: (S, gptr, rows, a, M, r0, r1))

    return run


def scale_lower_kernel():
    """The compiled kernel S[i, l] *= s_i s_l on the lower triangle, then S[i, i] += 1 for i < mz.

    Returns
    -------
    callable
        The numba-compiled function ``scale_lower(S, s, mz)`` (imported, and compiled on first use).
    """
    from ._numba_kernels import scale_lower

    return scale_lower


def pair_cross_kernel():
    """The compiled kernel of the cross part of M⁻¹ at the pairs: cr_p = -Σ_r S⁻¹[i_p, i_r] (B D⁻¹)_r over
    the pairs r of p's lead level (the Laplace gradient's leverages read the cross part only there).

    The kernel's arguments: gptr (q1 + 1,) pointers into the pair arrays (sorted by lead level, then
    by row); rows (npairs,); S_low (mz, mz) C-ordered with S⁻¹'s lower triangle valid; bd (npairs, K1).
    It returns cr (npairs, K1).  The numpy equivalent (``plan.triples`` and bincounts) expands every
    pair of pairs of a level: Σ cnt_g (cnt_g + 1) / 2 index entries, 1.8e8 on a MovieLens-sized model.
    The rows are split between threads as in ``rank_update_kernel``; each thread's mirrored sums go
    to a buffer of its own (npairs x K1), added at the end.

    Returns
    -------
    callable
        ``pair_cross(gptr, rows, S_low, bd)``.
    """
    from ._numba_kernels import pair_cross

    def run(gptr, rows, S_low, bd):
        chunks = _row_chunks(gptr, rows, kernel_threads())
        own = np.zeros_like(bd)
        others = [np.zeros_like(bd) for _ in chunks]  # a thread's mirrored sums reach other threads' rows
        _run(pair_cross, chunks, lambda r0, r1, i: (gptr, rows, S_low, bd, r0, r1, own, others[i]))
        for o in others:
            own += o
        np.negative(own, out=own)
        return own

    return run
