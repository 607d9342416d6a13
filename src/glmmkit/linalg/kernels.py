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


def rank_update_kernel():
    """The compiled kernel S[i, l] -= a_ig' M_g a_lg for every lead level g and every pair i >= l of rows it touches.

    Imports (and, on first use, compiles) numba's ``rank_update``.  The kernel's arguments: S
    (m, m) lower triangle updated in place; gptr (q1 + 1,) pointers into the pair arrays (sorted by
    g, then by row); rows (npairs,); a (npairs, K1); M (q1, K1, K1).

    Returns
    -------
    callable
        The numba-compiled function ``rank_update(S, gptr, rows, a, M)``.
    """
    from ._numba_kernels import rank_update

    return rank_update


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

    Returns
    -------
    callable
        The numba-compiled function ``pair_cross(gptr, rows, S_low, bd)``.
    """
    from ._numba_kernels import pair_cross

    return pair_cross
