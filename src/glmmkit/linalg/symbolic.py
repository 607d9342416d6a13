"""Symbolic Cholesky counts: how many nonzeros (and flops) a sparse factor of a pattern will have.

The engine chooser (``linalg/choose.py``) compares a sparse factorisation of the non-lead Schur
complement S with the dense block the blocked engine factors.  S's own density says little (a random
crossing's S is 5 % dense but its factor 86 %), so the comparison is made on the factor: after a
fill-reducing ordering, the elimination tree (Liu's algorithm with path compression) and, per row, the
row subtree walked from each of its nonzeros up the tree to the first node already reached (each node
reached is one nonzero of L).  The walk costs O(nnz(L)), so it stops as soon as the count passes a cap
(the caller's "dense is better anyway" point): the answer is exact below the cap, "over" above it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

__all__ = ["cholesky_counts", "fill_ordering"]

_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        import numba as nb

        @nb.njit(cache=True, nogil=True)
        def counts(indptr, indices, n, cap):
            parent = np.full(n, -1, np.int64)
            ancestor = np.full(n, -1, np.int64)
            # elimination tree: column i's upper entries k < i (CSC of the full symmetric pattern)
            for i in range(n):
                for p in range(indptr[i], indptr[i + 1]):
                    k = indices[p]
                    while k != -1 and k < i:
                        nxt = ancestor[k]
                        ancestor[k] = i
                        if nxt == -1:
                            parent[k] = i
                        k = nxt
            colcount = np.ones(n, np.int64)  # the diagonal
            mark = np.full(n, -1, np.int64)
            total = n
            for i in range(n):
                mark[i] = i
                for p in range(indptr[i], indptr[i + 1]):
                    k = indices[p]
                    if k >= i:
                        continue
                    while mark[k] != i:  # L[i, k] != 0 for every node on the path
                        mark[k] = i
                        colcount[k] += 1
                        total += 1
                        k = parent[k]
                if total > cap:
                    return colcount, parent, total, False
            return colcount, parent, total, True

        _KERNEL = counts
    return _KERNEL


def fill_ordering(pattern: sp.spmatrix) -> np.ndarray:
    """A fill-reducing ordering of a symmetric pattern: CHOLMOD's (AMD/METIS) where scikit-sparse
    imports, else reverse Cuthill-McKee (banded fill: no better than the minimum degree SuperLU uses, so
    the count it gives is an upper-side estimate for the SuperLU path).

    Parameters
    ----------
    pattern : scipy.sparse matrix, shape (n, n)
        Symmetric, with its diagonal.

    Returns
    -------
    ndarray of int, shape (n,)
        New position i holds old index ``perm[i]``.
    """
    A = sp.csc_matrix(pattern)
    try:
        from sksparse.cholmod import analyze
    except Exception:
        return np.asarray(reverse_cuthill_mckee(A.tocsr(), symmetric_mode=True), dtype=np.int64)
    B = sp.csc_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
    return np.asarray(analyze(B + sp.identity(A.shape[0], format="csc") * A.shape[0]).P(), dtype=np.int64)


def cholesky_counts(pattern: sp.spmatrix, perm: np.ndarray | None = None, cap: float = np.inf):
    """Column counts of the Cholesky factor of a symmetric pattern in a given ordering.

    Parameters
    ----------
    pattern : scipy.sparse matrix, shape (n, n)
        Symmetric pattern (values ignored; the diagonal is taken as nonzero).
    perm : ndarray of int, shape (n,), optional
        The ordering (``fill_ordering``'s convention); default the identity.
    cap : float, default inf
        Stop once nnz(L) passes this.

    Returns
    -------
    nnz : int
        Nonzeros of L with its diagonal (a lower bound once over ``cap``).
    flops : float
        Σ_j colcount_j², the factorisation's multiply-adds up to a constant (a lower bound over ``cap``).
    complete : bool
        False when the count stopped at ``cap``.
    """
    A = sp.csc_matrix(pattern)
    n = A.shape[0]
    if A.shape != (n, n):
        raise ValueError(f"pattern must be square, not {A.shape}")
    if perm is not None:
        A = A[perm][:, perm].tocsc()
    A.sort_indices()
    cc, _parent, total, complete = _kernel()(A.indptr.astype(np.int64), A.indices.astype(np.int64), n,
                                              float(cap))
    return int(total), float(np.sum(cc.astype(np.float64) ** 2)), bool(complete)
