"""Blocked Cholesky of Ω(Λ) = [ZΛ X y]'[ZΛ X y] + diag(I, 0, 0).

The crossproducts A = [Z X y]'[Z X y] are formed once (one pass over the rows);
after that an evaluation at new templates (Λ) never touches the n rows (MixedModels.jl's idea,
see docs/architecture.md).  Layout, with the lead block first:

    Ω = | D    B' |      D  : block-diagonal, q1 blocks of K1 x K1 (the lead factor)
        | B    C  |      C  : dense, the other factors' random effects, then X, then y

The lead block is factored level by level (batched K1 x K1); its Schur complement
C - B D⁻¹ B' is dense and factored by LAPACK.  The dense part's last diagonal
element is the square root of the penalised residual sum of squares; its X part
is R_X (the REML term and the fixed-effects covariance).

Everything here is a pure function of precomputed arrays and the blocks' templates
(one K x K lower-triangular array per block, ``ModelStructure.templates``): θ and
the covariance structures stay in ``structure.py``; no statistics (that lives in
``objective/``) and no pandas.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack

from .._threads import dense_blas_threads
from .kernels import numba_available, pair_cross_kernel, rank_update_kernel, scale_lower_kernel

__all__ = ["BlockedSystem", "BlockedFactor", "CrossprodPlan", "InverseParts", "KERNEL_MIN_DENSE", "chunk_crossproducts",
           "lead_crossproducts"]

#: dense Schur blocks with at least this many random-effect rows use the numba kernels
KERNEL_MIN_DENSE = 300
#: models with n x (random effects) up to this size build their crossproducts from a dense Z
DENSE_Z_MAX = 2_000_000
#: cross blocks (rows x lead random effects) up to this many entries are held dense
DENSE_CROSS_MAX = 250_000
#: ... and up to this many when at least this share of them is nonzero (crossed factors whose levels
#: meet often): then BLAS on the dense block beats the sparse rank update
DENSE_CROSS_LARGE = 20_000_000
DENSE_CROSS_DENSITY = 0.1
#: ... and a sparser small cross block only while its dense update (m² q1 K1 multiply-adds) stays this cheap:
#: beyond it the rank update by pairs wins (three factors of 403, 118 and 63 levels: 1.7 ms dense, 0.7 ms by pairs)
DENSE_CROSS_FLOPS = 4_000_000
#: dense parts at least this large are factored with every BLAS thread where that was measured to pay
#: off in this process (``_threads.parallel_blas_pays``; on a busy 2-core machine it does not)
PARALLEL_MIN_DENSE = 600
#: a first non-lead block of at least this many levels whose part of the dense Schur complement is
#: diagonal (nested in the lead, or meeting each lead level once) is eliminated before LAPACK runs
DIAGONAL_PREFIX_MIN = 16


#: lead blocks with more columns than this keep M_g as one (q1, K1, K1) array, not a list of entries
_ENTRY_LIST_MAX_K = 8


class _MArray:
    """M_g of a lead block with many columns, as one array (``_lead``'s result for K1 > 8)."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


def _per_level_products(codes, q1, zl, zc, XY):
    """A11[g] = Z_g'(left) Z_g(right) and G[g] = XY_g' Z_g(left) by one dense product per level (used
    when levels are few and columns many, so the loop is over at most a few levels)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(q1 + 1))
    K1 = zl.shape[1]
    A11 = np.empty((q1, K1, K1))
    G = np.empty((q1, XY.shape[1], K1))
    for g in range(q1):
        rows = order[bounds[g] : bounds[g + 1]]
        zg = zl[rows]
        A11[g] = zg.T @ zc[rows]
        G[g] = XY[rows].T @ zg
    return A11, G


def lead_crossproducts(codes: np.ndarray, q1: int, zl: np.ndarray, zc: np.ndarray, XY: np.ndarray):
    """The lead block's per-level crossproducts A11[g] = Z_g'(left) Z_g(right) and G[g] = XY_g'Z_g(left).

    Parameters
    ----------
    codes : numpy.ndarray of int, shape (n,)
        Each row's lead level.
    q1 : int
        Number of lead levels.
    zl, zc : numpy.ndarray, shape (n, K1)
        The lead columns with the left and right row multipliers.
    XY : numpy.ndarray, shape (n, p + 1)
        Right-weighted [X y].

    Returns
    -------
    tuple of numpy.ndarray
        ``(A11, G)`` of shapes (q1, K1, K1) and (q1, p + 1, K1): sums over rows, so those of row
        chunks add up.
    """
    K1 = zl.shape[1]
    if K1 * K1 > 4 * q1:
        # many columns on few levels (a spatial field, a relationship matrix: one level, q columns):
        # one dense product per level beats a bincount per column pair
        return _per_level_products(codes, q1, zl, zc, XY)
    A11 = np.empty((q1, K1, K1))
    for a in range(K1):
        for b in range(a + 1):
            A11[:, a, b] = A11[:, b, a] = np.bincount(codes, zl[:, a] * zc[:, b], minlength=q1)
    # G[g] = X_g'Z_g and y_g'Z_g stacked: shape (q1, p + 1, K1)
    G = np.empty((q1, XY.shape[1], K1))
    for a in range(K1):
        za = zl[:, a]
        for j in range(XY.shape[1]):
            G[:, j, a] = np.bincount(codes, za * XY[:, j], minlength=q1)
    return A11, G


def chunk_crossproducts(blocks, X: np.ndarray, y: np.ndarray, sqrt_w: np.ndarray | None = None,
                        weights: np.ndarray | None = None):
    """The crossproducts ``BlockedSystem.from_crossproducts`` takes, of one chunk of rows.

    Each piece is a sum over the chunk's rows, so the pieces of chunks that partition the rows add
    up to those of the whole data (the blocks' factors must code every chunk on the same levels).
    Row multipliers ``sqrt_w`` (prior weights' roots, or a GLMM's working weights' roots in a
    PIRLS pass) enter both sides, as in the constructor.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first, on the chunk's rows.
    X : numpy.ndarray, shape (n, p)
        Fixed-effect columns of the chunk.
    y : numpy.ndarray, shape (n,)
        Response minus offset.
    sqrt_w : numpy.ndarray, shape (n,), optional
        Row multipliers.
    weights : numpy.ndarray, shape (n,), optional
        Signed weights (observed information) in place of ``sqrt_w``: one-sided products Z'(wZ), as
        the constructor's ``weights=``.

    Returns
    -------
    dict
        ``A11`` (q1, K1, K1), ``G`` (q1, p + 1, K1), ``Axx`` (p + 1, p + 1) and, with other blocks,
        ``Azz`` (CSR, mz x mz), ``Azx`` (mz, p + 1) and ``Az1`` (CSR, mz x q1 K1) (None without
        them), and ``n``: the keyword arguments of ``BlockedSystem.from_crossproducts`` (with ``p``).
    """
    XY, XY_left, left, right = _weighted_xy(X, y, sqrt_w, weights)
    lead, rest = blocks[0], blocks[1:]
    zc = lead.columns if right is None else lead.columns * right[:, None]
    zl = lead.columns if left is None else lead.columns * left[:, None]
    A11, G = lead_crossproducts(lead.factor.codes, lead.q, zl, zc, XY)
    out = {"A11": A11, "G": G, "Axx": XY_left.T @ XY, "Azz": None, "Azx": None, "Az1": None, "n": int(X.shape[0])}
    if rest:
        # sparse per chunk: a chunk meets few levels, and only the sum is made dense
        Zr = sp.hstack([b.z_matrix(right) for b in rest], format="csr")
        Zl = Zr if left is right else sp.hstack([b.z_matrix(left) for b in rest], format="csr")
        out["Azz"] = (Zl.T @ Zr).tocsr()
        out["Azx"] = np.asarray(Zl.T @ XY)
        out["Az1"] = (Zl.T @ lead.z_matrix(right)).tocsr()
    return out

@dataclass
class BlockedFactor:
    """The factor of Ω at one set of templates.

    Attributes
    ----------
    logdet_lead : float
        log det of the lead block D (= Σ_g log det D_g).
    L : ndarray, shape (m, m)
        Lower Cholesky factor of the dense Schur complement (other random
        effects, X, y). Only its lower triangle is meaningful.
    ok : bool
        False when the dense complement was not positive definite.
    info : int
        LAPACK's dpotrf code: 0, or the 1-based row whose pivot was not positive.
    """

    logdet_lead: float
    L: np.ndarray
    ok: bool
    info: int = 0  # LAPACK's: 0, or the 1-based row whose pivot was not positive

    def random_effects_ok(self, mz: int) -> bool:
        """Whether the random-effect rows factored (a failure only in the X or y rows is allowed).

        Parameters
        ----------
        mz : int
            Number of non-lead random-effect rows (the dense factor's first ``mz`` rows).

        Returns
        -------
        bool
            True when the lead block's log-determinant is finite and dpotrf failed, if at all, past row ``mz``.
        """
        return np.isfinite(self.logdet_lead) and (self.info == 0 or self.info > mz)

    def fixed_effects_covariance(self, mz: int, p: int) -> np.ndarray:
        """(R_X'R_X)⁻¹ from the X rows of L: the fixed effects' covariance over σ² (lme4's ``vcov``).

        Parameters
        ----------
        mz : int
            Number of non-lead random-effect rows (the X rows start there).
        p : int
            Number of fixed effects.

        Returns
        -------
        numpy.ndarray, shape (p, p)
            The covariance over σ²; all NaN when those rows did not factor; (0, 0) for p = 0.
        """
        if p == 0:
            return np.empty((0, 0))
        if not self.ok or self.L.shape[0] < mz + p:
            return np.full((p, p), np.nan)
        try:
            Rinv = np.linalg.solve(np.tril(self.L[mz : mz + p, mz : mz + p]), np.eye(p))
        except np.linalg.LinAlgError:
            return np.full((p, p), np.nan)
        return Rinv.T @ Rinv


class CrossprodPlan:
    """Index maps for the weighted crossproducts of the non-lead blocks (built once per model).

    PIRLS refactors the same model with new weights at every iteration; the
    sparsity pattern of Z'WZ does not change, so the positions of every
    nonzero are found once (one ``np.unique``) and each new set of weights
    costs only bincounts.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first.
    """

    def __init__(self, blocks):
        lead, rest = blocks[0], blocks[1:]
        self.K1, self.q1 = lead.K, lead.q
        self.mz = mz = sum(b.size for b in rest)
        codes1 = lead.factor.codes
        # one entry per (rest block, component): its row in the dense block and its Z column
        self.rest_rows, self.rest_cols = [], []
        at = 0
        for b in rest:
            for c in range(b.K):
                self.rest_rows.append(at + b.factor.codes * b.K + c)
                self.rest_cols.append(b.columns[:, c])
            at += b.size
        # lead x rest pairs (lead level g, dense row i), sorted by g then i
        keys = np.concatenate([codes1 * mz + r for r in self.rest_rows])
        uniq, inv = np.unique(keys, return_inverse=True)
        n = codes1.shape[0]
        self.pair_inv = [inv[j * n : (j + 1) * n] for j in range(len(self.rest_rows))]
        self.npairs = uniq.shape[0]
        self.pair_g = (uniq // mz).astype(np.int64)
        self.pair_i = (uniq % mz).astype(np.int64)
        # A_z1 as CSR (rows: dense rows, columns: g K1 + c1): where each (pair, c1) value lands in .data
        rows = np.repeat(self.pair_i, self.K1)
        cols = (self.pair_g[:, None] * self.K1 + np.arange(self.K1)[None, :]).ravel()
        order = sp.csr_matrix((np.arange(1.0, rows.shape[0] + 1.0), (rows, cols)), shape=(mz, self.q1 * self.K1))
        self.az1_perm = order.data.astype(np.int64) - 1
        self.az1_indices, self.az1_indptr = order.indices, order.indptr
        # rest x rest entries (both triangles), positions in the flattened mz x mz block
        flat = []
        nr = len(self.rest_rows)
        for j in range(nr):
            for k in range(nr):
                flat.append(self.rest_rows[j] * mz + self.rest_rows[k])
        self.zz_pos, zz_inv = np.unique(np.concatenate(flat), return_inverse=True)
        self.zz_inv = [[zz_inv[(j * nr + k) * n : (j * nr + k + 1) * n] for k in range(nr)] for j in range(nr)]
        self._pair_ptr = None
        self._triples = None  # built by ``triples`` only where read (not on the numba kernel path)

    def fill(self, XY: np.ndarray, left: np.ndarray | None, right: np.ndarray | None, lead_cols: np.ndarray):
        """Weighted A_zz (dense), A_zx, A_z1 (CSR) and the pair values.

        Every product is (column x ``left``)'(column x ``right``) (square-root weights on both sides,
        or signed weights on the left alone).  ``XY`` and ``lead_cols`` already carry ``right``; the rest
        blocks' columns get their multipliers here.

        Parameters
        ----------
        XY : numpy.ndarray, shape (n, p + 1)
            [X y], right-weighted.
        left : numpy.ndarray, shape (n,), or None
            Left-side row multipliers (None: 1).
        right : numpy.ndarray, shape (n,), or None
            Right-side row multipliers (None: 1).
        lead_cols : numpy.ndarray, shape (n, K1)
            The lead block's columns, right-weighted.

        Returns
        -------
        tuple
            ``(Azz, Azx, Az1, pair_a)``: (mz, mz) dense, (mz, p + 1), CSR (mz, q1 K1), and the pair
            values (npairs, K1).
        """
        Azz, Azx, pair_a = self.fill_pairs(XY, left, right, lead_cols)
        return Azz, Azx, self.az1_csr(pair_a), pair_a

    def az1_csr(self, pair_a: np.ndarray) -> sp.csr_matrix:
        """A_z1 (rows: dense rows, columns: g K1 + c1) as CSR from the pair values.

        The index arrays never change, so a validated template is copied and given the new values:
        scipy's checking constructor cost more than the products on small models.

        Parameters
        ----------
        pair_a : numpy.ndarray, shape (npairs, K1)
            Values at the (lead level, dense row) pairs.

        Returns
        -------
        scipy.sparse.csr_matrix, shape (mz, q1 K1)
            The cross block.
        """
        data = pair_a.ravel()[self.az1_perm]
        if getattr(self, "_az1_template", None) is None:
            self._az1_template = sp.csr_matrix((data, self.az1_indices, self.az1_indptr),
                                               shape=(self.mz, self.q1 * self.K1))
        out = copy.copy(self._az1_template)
        out.data = data
        return out

    def fill_pairs(self, XY: np.ndarray, left: np.ndarray | None, right: np.ndarray | None, lead_cols: np.ndarray,
                   out: np.ndarray | None = None):
        """Weighted A_zz, A_zx and the pair values by bincounts over the rows (see ``fill``).

        Parameters
        ----------
        XY : numpy.ndarray, shape (n, c)
            Right-weighted columns ([X y]).
        left : numpy.ndarray, shape (n,), or None
            Left-side row multipliers.
        right : numpy.ndarray, shape (n,), or None
            Right-side row multipliers.
        lead_cols : numpy.ndarray, shape (n, K1)
            The lead block's columns, right-weighted.
        out : numpy.ndarray, shape (m, m), optional
            A zeroed array whose leading (mz, mz) block receives A_zz (no temporary, no copy).

        Returns
        -------
        tuple
            ``(Azz, Azx, pair_a)``: A_zz (mz, mz) (a view of ``out``'s block when given), A_zx
            (mz, c) and the pair values (npairs, K1).
        """
        mz, nr = self.mz, len(self.rest_rows)
        wcols = [c if left is None else c * left for c in self.rest_cols]
        rcols = [c if right is None else c * right for c in self.rest_cols]
        zz = np.zeros(self.zz_pos.shape[0])
        for j in range(nr):
            for k in range(nr):
                zz += np.bincount(self.zz_inv[j][k], wcols[j] * rcols[k], minlength=zz.shape[0])
        if out is not None:  # straight into the dense block: no mz x mz temporary and copy
            m = out.shape[0]
            pos = getattr(self, "_zz_pos_out", None)
            if pos is None or pos[0] != m:
                pos = self._zz_pos_out = (m, (self.zz_pos // mz) * m + self.zz_pos % mz)
            out.ravel()[pos[1]] = zz
            Azz = None
        else:
            Azz = np.zeros(mz * mz)
            Azz[self.zz_pos] = zz
        Azx = np.zeros((mz, XY.shape[1]))
        for j in range(nr):
            for c in range(XY.shape[1]):
                Azx[:, c] += np.bincount(self.rest_rows[j], wcols[j] * XY[:, c], minlength=mz)
        pair_a = np.zeros((self.npairs, self.K1))
        for j in range(nr):
            for c1 in range(self.K1):
                pair_a[:, c1] += np.bincount(self.pair_inv[j], wcols[j] * lead_cols[:, c1], minlength=self.npairs)
        return (out[:mz, :mz] if Azz is None else Azz.reshape(mz, mz)), Azx, pair_a

    def dense_cross_pos(self) -> np.ndarray:
        """Flat positions of the pair values (pair, c1) in a dense mz x q1 K1 block (cached).

        Returns
        -------
        numpy.ndarray of int, shape (npairs K1,)
            Indices into the raveled dense block, pairs first, then c1.
        """
        if getattr(self, "_dense_pos", None) is None:
            n1 = self.q1 * self.K1
            self._dense_pos = ((self.pair_i * n1 + self.pair_g * self.K1)[:, None]
                               + np.arange(self.K1)[None, :]).ravel()
        return self._dense_pos

    def pair_ptr(self) -> np.ndarray:
        """Each lead level's first pair (the pairs are sorted by level), length q1 + 1 (cached).

        Returns
        -------
        numpy.ndarray of int64, shape (q1 + 1,)
            Level g's pairs are ``pair_ptr[g]:pair_ptr[g + 1]``.
        """
        if getattr(self, "_pair_ptr", None) is None:
            self._pair_ptr = np.searchsorted(self.pair_g, np.arange(self.q1 + 1), side="left").astype(np.int64)
        return self._pair_ptr

    def triples(self):
        """Every (i, l, g) with l <= i once: pairs of pairs within one lead level (cached).

        For the update of the dense block by pairs of one level, and for the pairs-only inverse parts;
        built on first call (on a large crossed model they are most of the memory: the numba kernel
        path never asks for them).

        Returns
        -------
        tuple of numpy.ndarray
            ``(left, right, level, flat, pair_ptr)``: the left and right pair of each triple, its lead
            level, its flat position in the mz x mz block, and each level's first pair (length q1 + 1).
        """
        if getattr(self, "_triples", None) is None:
            pg, pi, npairs = self.pair_g, self.pair_i, self.npairs
            ptr = self.pair_ptr()
            start = ptr[pg]
            cnt = np.arange(npairs) - start + 1
            left = np.repeat(np.arange(npairs), cnt)
            first = np.cumsum(cnt) - cnt
            right = start[left] + (np.arange(left.shape[0]) - first[left])
            self._triples = (left, right, pg[left], pi[left] * self.mz + pi[right], ptr)
        return self._triples


def _weighted_xy(X, y, sqrt_w, weights):
    """[X y] weighted for the crossproducts: both sides by √w (Fisher weights), or one side by w
    (signed observed weights, one-sided products).  Returns (right-weighted [X y], left-weighted
    [X y], the left- and right-side weights, each possibly None)."""
    XY = np.column_stack([X, y])
    left = right = sqrt_w
    if weights is not None:
        left, right = weights, None
    XY_left = XY if left is None else XY * left[:, None]
    if right is not None:
        XY = XY * right[:, None]
    return XY, XY_left, left, right


class BlockedSystem:
    """Precomputed crossproducts of one model and the factorisation at given templates.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first.
    X : ndarray, shape (n, p)
        Fixed-effects columns.
    y : ndarray, shape (n,)
        Response (the working response for a GLMM), minus any offset.
    sqrt_w : ndarray, shape (n,), or None
        Square roots of the prior weights.
    weights : ndarray, shape (n,), optional
        Weights that may be negative (the observed information of a GLMM
        family: Student-t, beta); replaces ``sqrt_w``.  The crossproducts are
        then one-sided, Z'(wZ), and Ω need not be positive definite away
        from a mode (``factor`` then reports ``ok = False``).
    plan : CrossprodPlan, optional
        Index maps of the non-lead crossproducts, reused when the same model is
        refactored with new weights (PIRLS); made here when needed and absent.
    by_plan : bool
        Form the non-lead crossproducts by the plan's bincounts even where a dense Z is
        allowed: for a base system that only ``reweighted`` reads (PIRLS), whose products
        go by the plan anyway (the dense Z'Z of a 403-row, three-factor model cost ~4 ms
        per objective, the bincounts ~0.1 ms).
    """

    def __init__(self, blocks, X, y, sqrt_w=None, plan: CrossprodPlan | None = None, weights=None,
                 by_plan: bool = False):
        n = X.shape[0]
        self.p = X.shape[1]
        XY, XY_left, left, right = _weighted_xy(X, y, sqrt_w, weights)
        lead, rest = blocks[0], blocks[1:]
        self.lead, self.rest = lead, rest
        self.K1, self.q1 = lead.K, lead.q
        K1, q1 = self.K1, self.q1

        zc = lead.columns if right is None else lead.columns * right[:, None]
        zl = lead.columns if left is None else lead.columns * left[:, None]
        self._set_lead(XY, zl, zc)
        G = self.G

        self.mz = sum(b.size for b in rest)
        mz = self.mz
        m = mz + self.p + 1
        self.m = m
        Arr = np.empty((m, m))
        Arr[mz:, mz:] = XY_left.T @ XY
        self.R1, self.use_kernel = None, False
        pair_a = None
        if mz:
            if not by_plan and n * (mz + q1 * K1) <= DENSE_Z_MAX:
                Zl = np.hstack([b.z_dense(left) for b in rest])
                Zr = Zl if left is right else np.hstack([b.z_dense(right) for b in rest])
                Arr[:mz, :mz] = Zl.T @ Zr
                self.Az1 = Zl.T @ lead.z_dense(right)
                Azx = np.asarray(Zl.T @ XY)
            else:
                self.plan = plan if plan is not None else CrossprodPlan(blocks)
                Arr[:mz, :mz], Azx, self.Az1, pair_a = self.plan.fill(XY, left, right, zc)
            Arr[:mz, mz:] = Azx
            Arr[mz:, :mz] = Azx.T
        self._finish(Arr, n, pair_a)

    @classmethod
    def from_crossproducts(cls, blocks, p: int, A11: np.ndarray, G: np.ndarray, Axx: np.ndarray, n: int, Azz=None,
                           Azx: np.ndarray | None = None, Az1=None):
        """A system from crossproducts summed elsewhere (chunks of rows, partitions of a Dask frame).

        Every block the factorisation reads is a sum over rows, so the crossproducts of row chunks
        (``chunk_crossproducts``) add up to those of the whole data; the rows are never needed again.

        Parameters
        ----------
        blocks : list of ReBlock
            Engine order, lead block first (their factors' levels and column counts are read; their
            rows are not).
        p : int
            Number of fixed-effect columns.
        A11 : numpy.ndarray, shape (q1, K1, K1)
            Per-level lead crossproducts Z_g'Z_g.
        G : numpy.ndarray, shape (q1, p + 1, K1)
            Per-level [X y]_g'Z_g.
        Axx : numpy.ndarray, shape (p + 1, p + 1)
            [X y]'[X y].
        n : int
            Number of rows the sums ran over.
        Azz : numpy.ndarray or scipy.sparse matrix, shape (mz, mz), optional
            Z_rest'Z_rest of the other blocks (needed when there are any).
        Azx : numpy.ndarray, shape (mz, p + 1), optional
            Z_rest'[X y].
        Az1 : numpy.ndarray or scipy.sparse matrix, shape (mz, q1 K1), optional
            Z_rest'Z_lead.

        Returns
        -------
        BlockedSystem
            The system, as the constructor would have built it from the rows.
        """
        self = cls.__new__(cls)
        self.p = int(p)
        self.lead, self.rest = blocks[0], blocks[1:]
        self.K1, self.q1 = self.lead.K, self.lead.q
        self.mz = mz = sum(b.size for b in self.rest)
        self.m = m = mz + self.p + 1
        self._store_lead(np.asarray(A11, dtype=float), np.asarray(G, dtype=float))
        Arr = np.empty((m, m))
        Arr[mz:, mz:] = Axx
        self.R1, self.use_kernel = None, False
        if mz:
            Arr[:mz, :mz] = Azz.toarray() if sp.issparse(Azz) else Azz
            Arr[:mz, mz:] = Azx
            Arr[mz:, :mz] = np.asarray(Azx).T
            self.Az1 = Az1.tocsr() if sp.issparse(Az1) else np.asarray(Az1, dtype=float)
        self._finish(Arr, int(n), None)
        return self

    def _finish(self, Arr: np.ndarray, n: int, pair_a) -> None:
        """The evaluation path (dense cross block or rank updates by pairs) and the index arrays,
        once the crossproducts are in place (``A11``, ``G``, ``Az1``, ``Arr``)."""
        mz, m, q1, K1, G = self.mz, self.m, self.q1, self.K1, self.G
        if mz:
            if pair_a is not None:  # the nonzero values, as the dense path counts them
                nnz = int(np.count_nonzero(pair_a))
            else:
                nnz = np.count_nonzero(self.Az1) if not sp.issparse(self.Az1) else self.Az1.nnz
            dense_enough = nnz >= DENSE_CROSS_DENSITY * mz * q1 * K1 and m * q1 * K1 <= DENSE_CROSS_LARGE
            small = mz < KERNEL_MIN_DENSE and m * q1 * K1 <= DENSE_CROSS_MAX and m * m * q1 * K1 <= DENSE_CROSS_FLOPS
            if small or dense_enough:
                # small: the whole cross block [A_z1; A_x1] dense, so B D⁻¹ B' is two matrix products
                Az1 = self.Az1.toarray() if sp.issparse(self.Az1) else self.Az1
                self.R1 = np.vstack([Az1, G.transpose(1, 0, 2).reshape(self.p + 1, q1 * K1)])
            else:
                self._prepare_pairs(pair_a=pair_a)
        self.Arr = Arr
        self.n = n
        # dense rows of the scalar (K = 1) non-lead blocks: scaled by their 1 x 1 template
        self._scalar_rest = []  # (rest index + 1 = index in templates, first dense row, last + 1)
        at = 0
        for i, b in enumerate(self.rest):
            if b.K == 1:
                self._scalar_rest.append((i + 1, at, at + b.q))
            at += b.size
        self._scale_buf = np.ones(m)
        self._diag_z = np.arange(mz) * (m + 1)  # flat indices of the random-effect diagonal
        self._general = [(i, b) for i, b in enumerate(self.rest) if b.K > 1]
        self._dprefix = self._diagonal_prefix() if mz else 0
        self._dprefix_fill = self._prefix_fill() if self._dprefix else None

    def _prefix_fill(self):
        """Where L21 L21' of the diagonal prefix's elimination lands in the other random-effect rows,
        from the pattern of S's (other rows) x (prefix) part, when that is sparse (the pairs path):
        (positions of its nonzeros in L21, the pairs of nonzeros sharing a column, the entries of the
        trailing block they update, each pair's entry).  None where the dense product is used."""
        plan = getattr(self, "plan", None)
        if (plan is None or self.R1 is not None or self.use_kernel or self._general
                or getattr(self, "_tri_pos", None) is None):
            return None
        d, mz, m = self._dprefix, self.mz, self.m
        rows = np.concatenate([plan.zz_pos // mz, self._tri_pos // m])
        cols = np.concatenate([plan.zz_pos % mz, self._tri_pos % m])
        keep = (rows >= d) & (rows < mz) & (cols < d)
        key = np.unique(cols[keep].astype(np.int64) * m + rows[keep])  # by column, then row
        col, row = key // m, key % m
        n = key.shape[0]
        start = np.searchsorted(col, col, side="left")
        cnt = np.arange(n) - start + 1
        npairs = int(cnt.sum())
        if npairs > (mz - d) * (mz - d) * d // 8:  # not sparse enough to beat one gemm
            return None
        k1 = np.repeat(np.arange(n), cnt)
        first = np.cumsum(cnt) - cnt
        k2 = start[k1] + (np.arange(npairs) - first[k1])  # row[k2] <= row[k1]: the lower triangle
        t = m - d
        pos, inv = np.unique((row[k1] - d) * t + (row[k2] - d), return_inverse=True)
        return (row - d) * d + col, k1, k2, pos, inv

    def _prefix_columns(self):
        """(row of L21's one nonzero in the other random-effect rows, 1 where there is one) per prefix
        column when no column has two there (a prefix nested in the next factor, as grouseticks'
        broods in locations); None otherwise.  Cached on the plan (the pattern is the model's)."""
        fill = self._dprefix_fill
        if fill is None:
            return None
        plan = self.plan
        cached = getattr(plan, "_prefix_columns", None)
        if cached is None or cached[0] != (self._dprefix, self.m):
            d = self._dprefix
            vpos = fill[0]
            col, row = vpos % d, vpos // d
            cols = None
            if np.unique(col).shape[0] == col.shape[0]:
                rho = np.zeros(d, dtype=np.int64)
                has = np.zeros(d)
                rho[col], has[col] = row, 1.0
                cols = (rho, has)
            cached = plan._prefix_columns = ((d, self.m), cols)
        return cached[1]

    def _diagonal_prefix(self) -> int:
        """Rows of the first non-lead block when its part of S = C - B D⁻¹ B' is diagonal, else 0.

        It is when that block is a scalar factor (its Z'WZ is diagonal) and no lead level meets two
        of its levels (B D⁻¹ B' then has no entry between two of them): the observation-level factor
        of grouseticks as lead with the broods next.  ``factor`` then divides those rows out before
        LAPACK factors the rest (118 of 182 dense rows there: 175 to ~60 µs per factorisation).
        The pattern is the model's, so reweighted systems share it."""
        first = self.rest[0]
        q2 = first.q
        if first.K != 1 or q2 < DIAGONAL_PREFIX_MIN:
            return 0
        plan = getattr(self, "plan", None)
        if plan is not None:
            pg, pi = plan.pair_g, plan.pair_i
        else:
            A = sp.coo_matrix(self.Az1)
            nz = A.data != 0
            key = np.unique((A.col[nz] // self.K1).astype(np.int64) * self.mz + A.row[nz])
            pg, pi = key // self.mz, key % self.mz
        met = np.bincount(pg[pi < q2], minlength=self.q1)
        return q2 if met.max(initial=0) <= 1 else 0

    def _set_lead(self, XY: np.ndarray, zl: np.ndarray, zc: np.ndarray) -> None:
        """The lead block's crossproducts A11 and G (and the per-level outer products P) from the
        weighted lead columns ``zl`` (left) and ``zc`` (right) and the right-weighted [X y]."""
        A11, G = lead_crossproducts(self.lead.factor.codes, self.q1, zl, zc, XY)
        self._store_lead(A11, G)

    def _store_lead(self, A11: np.ndarray, G: np.ndarray) -> None:
        """Keep the lead crossproducts and the per-level products that ``factor`` reads from them."""
        K1, q1 = self.K1, self.q1
        self.A11 = A11
        self._a11, self._a21, self._a22 = (A11[:, 0, 0].copy(), A11[:, 1, 0].copy(), A11[:, 1, 1].copy()) if K1 == 2 else (None,) * 3
        self.G = G
        # per-group outer products G_g[:, a] G_g[:, b]' so that Σ_g G_g M_g G_g' is one
        # (q1 K1²) x (p+1)² product; only while that array stays small (and only where factor reads it)
        P_size = q1 * K1 * K1 * (self.p + 1) ** 2
        self.P = None
        if P_size <= 4_000_000 and not sum(b.size for b in self.rest) and K1 <= _ENTRY_LIST_MAX_K:
            P = np.einsum("gia,gjb->abgij", G, G).reshape(K1, K1, q1, -1)
            # pieces by the distinct entries of the symmetric M_g: (a, a) and (a, b) + (b, a)
            self.P = [P[a, a] if a == b else P[a, b] + P[b, a] for a in range(K1) for b in range(a + 1)]
            if K1 == 2:
                # fast path: _lead returns the rows m11, -m21, m22 (see there)
                self._P2 = np.concatenate([self.P[0], -self.P[1], self.P[2]])
        if K1 == 2:
            self._A2 = np.stack([A11[:, 1, 1], A11[:, 1, 0], A11[:, 0, 0]])

    def reweighted(self, X: np.ndarray, y: np.ndarray, sqrt_w: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> "BlockedSystem":
        """The same model's system with new weights and response (PIRLS, Newton on the mode).

        The random-effects pattern, the evaluation path (dense cross block or rank
        updates) and every index array are this system's; only the numbers are
        formed anew, by bincounts over the rows (``CrossprodPlan``), so no dense
        or sparse Z is built.  This system is left unchanged.

        Parameters
        ----------
        X : ndarray, shape (n, p)
            Fixed-effects columns; ``p`` must equal this system's.
        y : ndarray, shape (n,)
            Response (the working response for a GLMM), minus any offset.
        sqrt_w, weights : ndarray, shape (n,), optional
            As in the constructor.

        Returns
        -------
        BlockedSystem
        """
        if X.shape[1] != self.p:
            raise ValueError(f"reweighted: X has {X.shape[1]} columns, the system {self.p}")
        # weights that overflowed at a wild trial step give a system that factor() rejects;
        # the elementwise products here would warn where the old matrix products did not
        with np.errstate(over="ignore", invalid="ignore"):
            return self._reweighted(X, y, sqrt_w, weights)

    def _reweighted(self, X, y, sqrt_w, weights) -> "BlockedSystem":
        new = copy.copy(self)
        XY, XY_left, left, right = _weighted_xy(X, y, sqrt_w, weights)
        lead = self.lead
        zc = lead.columns if right is None else lead.columns * right[:, None]
        zl = lead.columns if left is None else lead.columns * left[:, None]
        new._set_lead(XY, zl, zc)
        mz, m = self.mz, self.m
        Arr = np.zeros((m, m)) if mz else np.empty((m, m))
        Arr[mz:, mz:] = XY_left.T @ XY
        if mz:
            plan = getattr(self, "plan", None)
            if plan is None:
                plan = self.plan = CrossprodPlan([self.lead, *self.rest])
            new.plan = plan
            _, Azx, pair_a = plan.fill_pairs(XY, left, right, zc, out=Arr)
            Arr[:mz, mz:] = Azx
            Arr[mz:, :mz] = Azx.T
            if self.R1 is not None:
                n1 = self.q1 * self.K1
                R1 = np.zeros((m, n1))
                R1[:mz].ravel()[plan.dense_cross_pos()] = pair_a.ravel()
                R1[mz:] = new.G.transpose(1, 0, 2).reshape(self.p + 1, n1)
                new.R1 = R1
                new.Az1 = R1[:mz]
            else:
                new.Az1 = plan.az1_csr(pair_a)
                new._prepare_pairs(use_kernel=self.use_kernel, pair_a=pair_a)
        new.Arr = Arr
        return new

    def _prepare_pairs(self, use_kernel: bool | None = None, pair_a: np.ndarray | None = None) -> None:
        """Index arrays for the update C - B D⁻¹ B' of the dense block.

        A "pair" is (row i of the other factors, lead level g) with the K1-vector
        a_ig of A_z1 entries; two pairs of the same level contribute a_ig' M_g a_lg
        to entry (i, l).  Pairs are sorted by level, then row, so a level's pairs
        are contiguous (``pair_ptr``) and earlier pairs have smaller rows.
        Large blocks run the numba rank-update kernel over the pairs; small ones
        expand all (i, l, g) triples once and use one gather and one bincount per factorisation.
        """
        K1, mz = self.K1, self.mz
        plan = getattr(self, "plan", None)
        if plan is not None and pair_a is not None:
            a, pg, pi, npairs = pair_a, plan.pair_g, plan.pair_i, plan.npairs
        else:
            A = sp.coo_matrix(self.Az1)
            g = A.col // K1
            c = A.col % K1
            key = g.astype(np.int64) * mz + A.row
            uniq, inv = np.unique(key, return_inverse=True)
            npairs = uniq.shape[0]
            a = np.zeros((npairs, K1))
            np.add.at(a, (inv, c), A.data)
            pg = (uniq // mz).astype(np.int64)
            pi = (uniq % mz).astype(np.int64)
        self.pair_rows, self.pair_a = pi, a
        self.use_kernel = (mz >= KERNEL_MIN_DENSE and numba_available()) if use_kernel is None else use_kernel
        if self.use_kernel:  # the kernel walks each level's pairs itself: no triples (Σ cnt_g²/2 of them)
            ptr = plan.pair_ptr() if plan is not None and pair_a is not None else None
            self.pair_ptr = ptr if ptr is not None else np.searchsorted(pg, np.arange(self.q1 + 1),
                                                                        side="left").astype(np.int64)
            return
        if plan is not None and pair_a is not None:
            left, right, self.tri_g, self.tri_flat, self.pair_ptr = plan.triples()
        else:
            self.pair_ptr = np.searchsorted(pg, np.arange(self.q1 + 1), side="left").astype(np.int64)
            start = self.pair_ptr[pg]
            cnt = np.arange(npairs) - start + 1
            left = np.repeat(np.arange(npairs), cnt)
            first = np.cumsum(cnt) - cnt
            right = start[left] + (np.arange(left.shape[0]) - first[left])
            self.tri_g = pg[left]
            self.tri_flat = pi[left] * mz + pi[right]
        if K1 == 1:
            self.tri_prod = a[left, 0] * a[right, 0]
        else:
            self.tri_prod = (a[left][:, :, None] * a[right][:, None, :]).reshape(-1, K1 * K1)
        # the distinct entries the triples update, as flat positions in the m x m dense block, and each
        # triple's entry: factor sums into those alone instead of a zeroed mz x mz array (model-fixed)
        owner = plan if plan is not None and pair_a is not None else self
        targets = getattr(owner, "_tri_targets", None)
        if targets is None or targets[0] != self.m:
            flat_m = (self.tri_flat // mz) * self.m + self.tri_flat % mz
            targets = owner._tri_targets = (self.m, *np.unique(flat_m, return_inverse=True))
        self._tri_pos, self._tri_inv = targets[1], targets[2]

    def _az1_rmatvec(self, v: np.ndarray) -> np.ndarray:
        """A_z1' v for a vector over the dense random-effect rows (a bincount over the stored
        nonzeros when A_z1 is sparse: scipy's transpose builds a new matrix at every call)."""
        A = self.Az1
        plan = getattr(self, "plan", None)
        if not sp.issparse(A) or plan is None:  # (a system from summed crossproducts has no plan)
            return A.T @ v
        if getattr(plan, "_az1_rows", None) is None:
            plan._az1_rows = np.repeat(np.arange(self.mz), np.diff(plan.az1_indptr))
        return np.bincount(plan.az1_indices, A.data * v[plan._az1_rows], minlength=self.q1 * self.K1)

    def _general_templates(self, templates):
        """(first dense row, q, K, template) of every non-lead block with K > 1."""
        out = []
        at = 0
        for b, T in zip(self.rest, templates[1:]):
            if b.K > 1:
                out.append((at, b.q, b.K, T))
            at += b.size
        return out

    def _rest_scale(self, templates, length):
        """Per dense row (the first ``length``) the factor scaling it: a scalar block's template, else 1."""
        scale = np.ones(length)
        for i, a, b in self._scalar_rest:
            scale[a:b] = templates[i][0, 0]
        return scale

    def _lead(self, T1):
        """Lead-block pieces at template T1: log det D and M_g = T1 D_g⁻¹ T1'.

        M is returned as the list of its distinct entries, lower triangle
        row-major ((0,0), (1,0), (1,1), ...), each an array over the q1 levels.
        Returns (inf, None) when a D_g is not positive definite.

        K1 = 1 and 2 (random intercepts, intercept + slope) are written out
        element-wise: at sleepstudy size numpy's batched linalg call overhead
        would dominate the evaluation.
        """
        K1 = self.K1
        if K1 == 1:
            t2 = float(T1[0, 0]) ** 2
            d = t2 * self.A11[:, 0, 0] + 1.0
            if not d.min() > 0.0:  # only with signed weights (observed information)
                return np.inf, None
            Mg = t2 / d
            return float(np.sum(np.log(d))), [Mg]
        if K1 == 2:
            t11, t21, t22 = float(T1[0, 0]), float(T1[1, 0]), float(T1[1, 1])
            a11, a21, a22 = self._a11, self._a21, self._a22
            if min(abs(t11), abs(t22)) > 1e-2:
                # M_g = T (T'A_gT + I)⁻¹ T' = (A_g + Σ⁻¹)⁻¹ with Σ = TT'; det D_g = det Σ det(A_g + Σ⁻¹)
                s11, s21, s22 = t11 * t11, t11 * t21, t21 * t21 + t22 * t22
                det_s = s11 * s22 - s21 * s21
                E = self._A2 + np.array([[s11 / det_s], [-s21 / det_s], [s22 / det_s]])  # rows e22, e21, e11
                det_e = E[0] * E[2] - E[1] * E[1]
                if not (det_e.min() > 0.0 and E[0].min() > 0.0):  # signed weights: not positive definite
                    return np.inf, None
                logdet = self.q1 * math.log(det_s) + float(np.log(det_e).sum())
                if not math.isfinite(logdet):
                    return np.inf, None
                E /= det_e  # rows m11, -m21, m22
                return logdet, E
            c1 = a21 * t11 + a22 * t21  # (A T)[1, 0]
            d11 = t11 * (a11 * t11 + a21 * t21) + t21 * c1 + 1.0
            d21 = t22 * c1
            d22 = t22 * t22 * a22 + 1.0
            det = d11 * d22 - d21 * d21
            if np.any(det <= 0.0):
                return np.inf, None
            i11, i21, i22 = d22 / det, -d21 / det, d11 / det
            r1 = t21 * i11 + t22 * i21
            m11 = t11 * t11 * i11
            m21 = r1 * t11
            m22 = r1 * t21 + (t21 * i21 + t22 * i22) * t22
            return float(np.sum(np.log(det))), [m11, m21, m22]
        D = np.matmul(np.matmul(T1.T, self.A11), T1)
        D[:, np.arange(K1), np.arange(K1)] += 1.0
        try:
            Lc = np.linalg.cholesky(D)
        except np.linalg.LinAlgError:
            return np.inf, None
        logdet = 2.0 * float(np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2))))
        M = np.matmul(np.matmul(T1, np.linalg.inv(D)), T1.T)
        if K1 > _ENTRY_LIST_MAX_K:  # many columns: the array itself (a list of K1² entries costs more)
            return logdet, _MArray(M)
        return logdet, [M[:, a, b] for a in range(K1) for b in range(a + 1)]

    def _m_array(self, m_entries) -> np.ndarray:
        """M_g as an array: (q1,) when K1 = 1, else (q1, K1, K1)."""
        K1 = self.K1
        if isinstance(m_entries, _MArray):
            return m_entries.array
        if isinstance(m_entries, np.ndarray):  # K1 = 2 fast-path rows m11, -m21, m22
            m_entries = [m_entries[0], -m_entries[1], m_entries[2]]
        if K1 == 1:
            return m_entries[0]
        M = np.empty((self.q1, K1, K1))
        at = 0
        for a in range(K1):
            for b in range(a + 1):
                M[:, a, b] = M[:, b, a] = m_entries[at]
                at += 1
        return M

    def lead_inverse(self, T1) -> np.ndarray:
        """D_g⁻¹ = (T1' A11_g T1 + I)⁻¹ for every lead level (used after the fit, not per evaluation).

        Parameters
        ----------
        T1 : numpy.ndarray, shape (K1, K1)
            The lead block's template.

        Returns
        -------
        numpy.ndarray, shape (q1, K1, K1)
            The inverses of the lead block's diagonal blocks.
        """
        K1 = self.K1
        if K1 == 1:  # the 1 x 1 inverse, without the batched LAPACK call
            t = float(T1[0, 0])
            return (1.0 / (t * self.A11[:, 0, 0] * t + 1.0)).reshape(-1, 1, 1)
        D = np.matmul(np.matmul(T1.T, self.A11), T1)
        D[:, np.arange(K1), np.arange(K1)] += 1.0
        return np.linalg.inv(D)

    def factor(self, templates) -> BlockedFactor:
        """Factor Ω at the blocks' templates.

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order (``ModelStructure.templates``).

        Returns
        -------
        BlockedFactor
        """
        K1, mz = self.K1, self.mz
        logdet_lead, m_entries = self._lead(templates[0])
        if m_entries is None:
            return BlockedFactor(np.inf, np.empty((0, 0)), False)
        p1 = self.p + 1
        if mz == 0 and self.P is not None:
            if isinstance(m_entries, np.ndarray):  # K1 = 2 fast path: rows m11, -m21, m22
                T = (m_entries.reshape(-1) @ self._P2).reshape(p1, p1)
            else:
                T = sum(m @ P for m, P in zip(m_entries, self.P)).reshape(p1, p1)
            S = self.Arr - T
        else:
            M = self._m_array(m_entries)
            if mz and self.R1 is not None:
                R1 = self.R1
                if K1 == 1 and self.m >= 100:
                    # S = Arr - R1 diag(M) R1' as a symmetric rank-k update: half a general product
                    S = self.Arr.copy(order="F")
                    S = np.ascontiguousarray(blas.dsyrk(-1.0, R1 * np.sqrt(np.maximum(M, 0.0)), beta=1.0, c=S,
                                                        lower=1, overwrite_c=1))  # lower triangle valid
                else:
                    W = R1 * M if K1 == 1 else np.einsum("mgk,gkl->mgl", R1.reshape(self.m, self.q1, K1), M).reshape(self.m, -1)
                    S = self.Arr - W @ R1.T
            else:
                S = self.Arr.copy()
                H = self.G * M[:, None, None] if K1 == 1 else np.matmul(self.G, M)
                S[mz:, mz:] -= sum(H[:, :, a].T @ self.G[:, :, a] for a in range(K1))
                if mz:
                    # only the lower triangle of S is updated: potrf reads nothing else
                    Hflat = H[:, :, 0] if K1 == 1 else H.transpose(0, 2, 1).reshape(self.q1 * K1, -1)
                    S[mz:, :mz] -= (self.Az1 @ Hflat).T
                    if self.use_kernel:
                        rank_update_kernel()(S, self.pair_ptr, self.pair_rows, self.pair_a, M.reshape(self.q1, K1, K1))
                    else:
                        # weights that overflowed at a trial step make inf x 0 here: that factor fails
                        # (ok = False) without a warning, as the matrix products of the dense path do
                        with np.errstate(invalid="ignore", over="ignore"):
                            if K1 == 1:
                                vals = self.tri_prod * M[self.tri_g]
                            else:
                                vals = np.einsum("tk,tk->t", self.tri_prod, M.reshape(-1, K1 * K1)[self.tri_g])
                            S.ravel()[self._tri_pos] -= np.bincount(self._tri_inv, vals,
                                                                    minlength=self._tri_pos.shape[0])
        if mz:
            scale = self._scale_buf  # only read below, so one buffer serves every call
            for i, a, b in self._scalar_rest:
                scale[a:b] = templates[i][0, 0]
            if self._general:
                S = np.tril(S) + np.tril(S, -1).T
                for at, q, K, T in self._general_templates(templates):
                    sl = slice(at, at + q * K)
                    S[:, sl] = (S[:, sl].reshape(self.m, q, K) @ T).reshape(self.m, q * K)
                    S[sl, :] = np.einsum("ba,gbm->gam", T, S[sl, :].reshape(q, K, self.m)).reshape(q * K, self.m)
            if self.R1 is None and self.use_kernel:
                scale_lower_kernel()(S, scale, mz)
            elif self._dprefix:  # scaled there, where it reads S (a full pass cost ~50 µs at m = 182)
                L, info = _potrf_diagonal_prefix(S, self._dprefix, scale, mz, self._dprefix_fill)
                return BlockedFactor(logdet_lead, L, info == 0, int(info))
            else:
                S *= np.outer(scale, scale)
                S.ravel()[self._diag_z] += 1.0
        if self._dprefix:
            L, info = _potrf_diagonal_prefix(S, self._dprefix)
            return BlockedFactor(logdet_lead, L, info == 0, int(info))
        # S is C-ordered with its lower triangle filled; S.T is the same numbers in
        # Fortran order (upper triangle), so LAPACK factors it in place without a copy
        if self.m >= PARALLEL_MIN_DENSE:
            with dense_blas_threads(self.m):
                U, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        else:
            U, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        return BlockedFactor(logdet_lead, U.T, info == 0, int(info))

    # ----- quantities derived from a factor (used once per fit, not per evaluation) -----

    def solve(self, templates, fac: BlockedFactor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spherical random effects and fixed effects at the factor.

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order.
        fac : BlockedFactor
            The factor at those templates.

        Returns
        -------
        u_lead : ndarray, shape (q1, K1)
        u_rest : ndarray, shape (mz,)
        beta : ndarray, shape (p,)
        """
        L = fac.L
        m, mz, p = self.m, self.mz, self.p
        c = L[m - 1, : m - 1]
        v = _solve_lower_leading(L, c, trans=1) if m > 1 else np.empty(0)
        u_rest, beta = v[:mz], v[mz:]
        b_rest = self.rest_b(templates, u_rest)
        rhs = self.G[:, p, :] - np.einsum("gpk,p->gk", self.G[:, :p, :], beta)
        if mz:
            rhs -= self._az1_rmatvec(b_rest).reshape(self.q1, self.K1)
        T1 = templates[0]
        rhs = rhs @ T1  # T1' applied to each level's vector
        u_lead = np.einsum("gab,gb->ga", self.lead_inverse(T1), rhs)
        return u_lead, u_rest, beta

    def rest_b(self, templates, u_rest: np.ndarray) -> np.ndarray:
        """b = Λ u for the non-lead blocks.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order (the lead's is not read).
        u_rest : numpy.ndarray, shape (mz,)
            Spherical effects of the non-lead blocks, block by block, level-major.

        Returns
        -------
        numpy.ndarray, shape (mz,)
            The effects on the scale of Z's columns (over σ for an LMM).
        """
        out = np.empty_like(u_rest)
        at = 0
        for b, T in zip(self.rest, templates[1:]):
            out[at : at + b.size] = (u_rest[at : at + b.size].reshape(b.q, b.K) @ T.T).ravel()
            at += b.size
        return out

    def cross_u(self, templates) -> np.ndarray:
        """B = Λ_r' A_z1 Λ_1: the cross block of Λ'Z'WZΛ + I in spherical coordinates.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.

        Returns
        -------
        numpy.ndarray, shape (mz, q1 K1)
            B, dense.
        """
        mz, K1, q1 = self.mz, self.K1, self.q1
        scale = self._rest_scale(templates, mz)
        B = self.Az1.multiply(scale[:, None]).toarray() if sp.issparse(self.Az1) else self.Az1 * scale[:, None]
        for at, q, K, T in self._general_templates(templates):
            sl = slice(at, at + q * K)
            B[sl, :] = np.einsum("ba,gbm->gam", T, B[sl, :].reshape(q, K, -1)).reshape(q * K, -1)
        return (B.reshape(mz, q1, K1) @ templates[0]).reshape(mz, q1 * K1)

    def inverse_parts(self, templates, fac: BlockedFactor) -> "InverseParts":
        """The blocks of M⁻¹, M = Λ'Z'WZΛ + I, on the pattern the Laplace gradient and condVar read.

        With M = [[D, B'], [B, C]] (D the lead block, block diagonal) and S = C - B D⁻¹ B' = L_zz L_zz'
        (the random-effect rows of the factor):
        M⁻¹ = [[D⁻¹ + D⁻¹B'S⁻¹BD⁻¹, -D⁻¹B'S⁻¹], [-S⁻¹BD⁻¹, S⁻¹]].
        The lead part is kept only on its diagonal blocks; the others dense, which costs S⁻¹ from the
        factor (dpotri) and one mz x mz x q1 K1 product (or only the pairs, for a sparse cross block).

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : BlockedFactor
            The factor at those templates.

        Returns
        -------
        InverseParts
            D⁻¹, the lead diagonal blocks of M⁻¹, and (with other blocks) the cross part, S⁻¹, B,
            B D⁻¹ and L_zz.
        """
        mz = self.mz
        D_inv = self.lead_inverse(templates[0])
        if not mz:
            return InverseParts(D_inv, D_inv, None, None, None, None, None)
        K1, q1 = self.K1, self.q1
        Lzz = fac.L[:mz, :mz]  # its lower triangle
        if self._dprefix:  # by blocks: LAPACK only on the trailing part (S⁻¹ whole, both triangles)
            S_low = _prefix_inverse(fac.L, self._dprefix, mz, self._prefix_columns())
        else:
            # LAPACK on L_zz' in Fortran order (its upper triangle): one copy of the block, no tril, and
            # S⁻¹ comes back as a C-ordered lower triangle, whose rows the pair kernel reads
            if mz >= PARALLEL_MIN_DENSE:  # twice dpotrf's flops: the same threading decision
                with dense_blas_threads(mz):
                    S_up, info = lapack.dpotri(Lzz.T, lower=0)
            else:
                S_up, info = lapack.dpotri(Lzz.T, lower=0)
            S_low = S_up.T
        plan = getattr(self, "plan", None)
        if plan is not None and sp.issparse(self.Az1) and self._pairs_inverse_applies(plan):
            return self._pairs_inverse_parts(templates, plan, D_inv, S_low, Lzz)
        S_inv = _symmetric(S_low)
        if plan is not None and sp.issparse(self.Az1):
            B = self.cross_u(templates)
            # a sparse cross block: B D⁻¹ has A_z1's pattern, so the products below run over its
            # nonzeros (the pairs) instead of the dense mz x q1 K1 block
            pos = plan.dense_cross_pos()
            bd = np.einsum("pk,pkj->pj", B.ravel()[pos].reshape(-1, K1), D_inv[plan.pair_g])
            BD_sp = plan.az1_csr(bd)
            cross = -np.ascontiguousarray((BD_sp.T @ S_inv).T)  # S⁻¹ is symmetric
            cr = cross.ravel()[pos].reshape(-1, K1)
            lead = D_inv.copy()
            for a in range(K1):
                for b in range(K1):
                    lead[:, a, b] -= np.bincount(plan.pair_g, bd[:, a] * cr[:, b], minlength=q1)
            return InverseParts(D_inv, lead, cross, S_inv, B, BD_sp.toarray(), Lzz)
        B = self.cross_u(templates)
        BD = np.einsum("mgk,gkj->mgj", B.reshape(mz, q1, K1), D_inv).reshape(mz, q1 * K1)
        cross = -(S_inv @ BD)  # one product instead of two triangular solves
        # lead diagonal blocks: D_g⁻¹ + (BD⁻¹)_g' S⁻¹ (BD⁻¹)_g = D_g⁻¹ - (BD⁻¹)_g' cross_g
        lead = D_inv - np.einsum("mga,mgb->gab", BD.reshape(mz, q1, K1), cross.reshape(mz, q1, K1))
        return InverseParts(D_inv, lead, cross, S_inv, B, BD, Lzz)

    def _pairs_inverse_applies(self, plan) -> bool:
        """The pairs-only inverse parts (``_pairs_inverse_parts``): scalar non-lead blocks, and pairs of
        pairs within a level (``plan.triples``, five index arrays) fewer than a quarter of the dense
        cross block's entries, so that they take no more memory than the dense B, B D⁻¹ and cross."""
        if self._general:
            return False
        if self.use_kernel:  # the pair kernel walks each level's pairs: no triples in memory
            return True
        if getattr(plan, "_n_triples", None) is None:
            cnt = np.bincount(plan.pair_g, minlength=self.q1)
            plan._n_triples = int(np.sum(cnt * (cnt + 1) // 2))
        return 4 * plan._n_triples <= self.mz * self.q1 * self.K1

    def _pairs_inverse_parts(self, templates, plan, D_inv, S_low, Lzz) -> "InverseParts":
        """Inverse parts of a sparse cross block without its dense mz x q1 K1 forms.

        B = Λ_r' A_z1 Λ_1 and B D⁻¹ have A_z1's pattern (the pairs); the cross part -S⁻¹ B D⁻¹ is
        dense, but the gradient's leverages read it only at the pairs, where it is a sum over the
        pairs of the same lead level, -Σ_l S⁻¹[i, l] (BD⁻¹)_lg: one gather of S⁻¹ at the pairs of pairs
        (``plan.triples``) and bincounts.  The dense cross part, B and B D⁻¹ are formed only when read
        (``InverseParts``), and so is the symmetric S⁻¹: what a gradient reads of it comes from the
        lower triangle ``S_low`` that dpotri leaves.  On three factors of 403, 118 and 63 levels this
        took the inverse parts from 3.3 to ~1 ms per gradient.  On the rank-update kernel's path the
        sums over pairs of pairs run in the pair kernel (``pair_cross_kernel``), without the triples."""
        K1, q1 = self.K1, self.q1
        T1 = templates[0]
        scale = self._rest_scale(templates, self.mz)
        Bp = (self.pair_a * scale[plan.pair_i][:, None]) @ T1  # B at the pairs, (npairs, K1)
        bd = np.einsum("pk,pkj->pj", Bp, D_inv[plan.pair_g])  # B D⁻¹ at the pairs
        if self.use_kernel:
            cr = pair_cross_kernel()(self.pair_ptr, plan.pair_i, np.ascontiguousarray(S_low),
                                     np.ascontiguousarray(bd))
        else:
            left, right, _, _, _ = plan.triples()
            s_lr = S_low[plan.pair_i[left], plan.pair_i[right]]  # pairs of a level are sorted by row: lower triangle
            off = left != right
            cr = np.empty_like(bd)  # the cross part at the pairs
            for k in range(K1):
                cr[:, k] = -(np.bincount(left, s_lr * bd[right, k], minlength=plan.npairs)
                             + np.bincount(right[off], (s_lr * bd[left, k])[off], minlength=plan.npairs))
        lead = D_inv.copy()
        for a in range(K1):
            for b in range(K1):
                lead[:, a, b] -= np.bincount(plan.pair_g, bd[:, a] * cr[:, b], minlength=q1)
        B_sp, BD_sp = plan.az1_csr(Bp), plan.az1_csr(bd)

        parts = InverseParts(D_inv, lead, None, None, None, None, Lzz, cross_pairs=cr, B_sp=B_sp, BD_sp=BD_sp,
                             plan=plan, S_low=S_low)

        def dense(of):  # given the parts, not closed over them: a cycle would keep S⁻¹ and L until a GC pass
            cross = -np.ascontiguousarray((BD_sp.T @ of.S_inv).T)  # S⁻¹ is symmetric
            return cross, B_sp.toarray(), BD_sp.toarray()

        parts._dense = dense
        return parts

    def solve_m(self, parts: "InverseParts", rhs: np.ndarray) -> np.ndarray:
        """M⁻¹ rhs (spherical coordinates, lead first) by block elimination.

        Parameters
        ----------
        parts : InverseParts
            From :meth:`inverse_parts`.
        rhs : numpy.ndarray, shape (q1 K1 + mz,)
            Right-hand side, lead block first.

        Returns
        -------
        numpy.ndarray, shape (q1 K1 + mz,)
            M⁻¹ rhs.
        """
        K1, q1 = self.K1, self.q1
        n1 = q1 * K1
        r1 = rhs[:n1].reshape(q1, K1)
        if not self.mz:
            return np.einsum("gab,gb->ga", parts.D_inv, r1).ravel()
        if parts.BD_sp is not None:  # sparse cross block: products over its nonzeros
            t_rest = parts.s_inv_matvec(rhs[n1:] - parts.BD_sp @ r1.ravel())
            Bt = parts.B_sp.T @ t_rest
        else:
            t_rest = parts.S_inv @ (rhs[n1:] - parts.BD @ r1.ravel())
            Bt = t_rest @ parts.B
        t1 = np.einsum("gab,gb->ga", parts.D_inv, r1 - Bt.reshape(q1, K1))
        return np.concatenate([t1.ravel(), t_rest])

    def _lambda_rest(self, templates, v: np.ndarray, transpose: bool) -> np.ndarray:
        """Λ_r v (or Λ_r' v) for a vector over the non-lead random effects."""
        out = v * self._rest_scale(templates, self.mz)
        for at, q, K, T in self._general_templates(templates):
            sl = slice(at, at + q * K)
            out[sl] = (v[sl].reshape(q, K) @ (T if transpose else T.T)).ravel()
        return out

    def solve_rhs(self, templates, fac: BlockedFactor, rhs: np.ndarray) -> np.ndarray:
        """M⁻¹ rhs with M = Λ'Z'WZΛ + I from the factor (no dense inverse).

        Block elimination with the lead block's D_g⁻¹, the sparse cross block and two triangular solves
        with L_zz.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : BlockedFactor
            The factor at those templates.
        rhs : numpy.ndarray, shape (q1 K1 + mz,)
            Right-hand side, lead block first.

        Returns
        -------
        numpy.ndarray, shape (q1 K1 + mz,)
            M⁻¹ rhs.
        """
        K1, q1, mz = self.K1, self.q1, self.mz
        n1 = q1 * K1
        T1 = templates[0]
        D_inv = self.lead_inverse(T1)
        r1 = rhs[:n1].reshape(q1, K1)
        y1 = np.einsum("gab,gb->ga", D_inv, r1)
        if not mz:
            return y1.ravel()
        # B y1 = Λ_r' A_z1 Λ_1 y1
        By1 = self._lambda_rest(templates, np.asarray(self.Az1 @ (y1 @ T1.T).ravel()).ravel(), transpose=True)
        w = _solve_lower_leading(fac.L, rhs[n1:] - By1, trans=0)
        x_rest = _solve_lower_leading(fac.L, w, trans=1)
        Btx = self._az1_rmatvec(self._lambda_rest(templates, x_rest, transpose=False)).reshape(q1, K1) @ T1
        x1 = np.einsum("gab,gb->ga", D_inv, r1 - Btx)
        return np.concatenate([x1.ravel(), x_rest])

    def u_condvar(self, templates, fac: BlockedFactor) -> list[np.ndarray]:
        """Diagonal level blocks of (Λ'Z'ZΛ + I)⁻¹, per block.

        These are the conditional covariances of the spherical random effects given the data at the
        estimates (lme4's condVar before scaling by Λ and σ²).

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : BlockedFactor
            The factor at those templates.

        Returns
        -------
        list of numpy.ndarray
            One (q, K, K) array per block, engine order.
        """
        parts = self.inverse_parts(templates, fac)
        out = [parts.lead]
        at = 0
        for b in self.rest:
            idx = at + np.arange(b.q)[:, None] * b.K + np.arange(b.K)[None, :]
            out.append(parts.S_inv[idx[:, :, None], idx[:, None, :]])
            at += b.size
        return out


def _potrf_diagonal_prefix(S: np.ndarray, d: int, scale: np.ndarray | None = None,
                           mz: int = 0, fill=None) -> tuple[np.ndarray, int]:
    """Lower Cholesky factor of S (C order, lower triangle valid) whose leading d x d block is
    diagonal, in place: L11 = √diag, L21 = S21 / √diag, then LAPACK on S22 - L21 L21' (the same
    factor as LAPACK on all of S, at the cost of the trailing block).  With ``scale`` the factor is
    that of diag(scale) S diag(scale) + I_mz (``BlockedSystem.factor``'s scaling, d <= mz), applied
    here to the parts read.  Returns (L, info) with LAPACK's info (0, or the 1-based row whose pivot
    was not positive); only L's lower triangle is meaningful.  ``fill`` (``BlockedSystem._prefix_fill``):
    L21's random-effect rows are sparse, and their part of L21 L21' is summed over its nonzeros."""
    m = S.shape[0]
    flat = S.ravel()
    diag = flat[: d * (m + 1) : m + 1]
    if scale is not None:
        diag = diag * (scale[:d] * scale[:d]) + 1.0
    bad = ~(diag > 0.0)
    if bad.any():
        return S, int(np.argmax(bad)) + 1
    r = np.sqrt(diag)
    flat[: d * (m + 1) : m + 1] = r
    if scale is None:
        L21 = S[d:, :d] / r
        S22 = S[d:, d:]
    else:
        tail = scale[d:]
        L21 = S[d:, :d] * (tail[:, None] * (scale[:d] / r))
        S22 = S[d:, d:] * np.outer(tail, tail)
        S22.ravel()[: (mz - d) * (m - d + 1) : m - d + 1] += 1.0
    S[d:, :d] = L21
    if fill is None:
        C = S22 - L21 @ L21.T
    else:
        vpos, k1, k2, pos, inv = fill
        C = S22 if scale is not None else S22.copy()
        v = L21.ravel()[vpos]
        C.ravel()[pos] -= np.bincount(inv, v[k1] * v[k2], minlength=pos.shape[0])
        f = mz - d  # the X and y rows: dense
        C[f:] -= L21[f:] @ L21.T
    # C is C-ordered: C.T is the same numbers in Fortran order (upper triangle), factored in place
    U, info = lapack.dpotrf(C.T, lower=0, clean=0, overwrite_a=1)
    S[d:, d:] = U.T
    return S, (0 if info == 0 else d + int(info))


def _prefix_inverse(L: np.ndarray, d: int, mz: int, columns=None) -> np.ndarray:
    """S⁻¹ (mz x mz, both triangles) from the factor L of S whose leading d x d block is diagonal
    (``_potrf_diagonal_prefix``): with L = [[R, 0], [L21, L22]], P = (L22 L22')⁻¹ (LAPACK) and
    X = -P L21 R⁻¹, S⁻¹ = [[R⁻² - R⁻¹ L21' X, X'], [X, P]].  ``columns`` (``_prefix_columns``): L21
    has at most one nonzero per column, and the products are gathers."""
    r = L.diagonal()[:d]
    L21 = L[d:mz, :d]
    # all of S diagonal (d == mz): no trailing block, and LAPACK refuses (and prints about) a 0 x 0 matrix
    P = _symmetric(lapack.dpotri(np.tril(L[d:mz, d:mz]), lower=1)[0]) if mz > d else np.zeros((0, 0))
    if columns is not None:
        rho, has = columns
        c = L21.ravel()[rho * d + np.arange(d)] * has / r  # each column's nonzero over r
        X = P[:, rho] * -c
        S11 = X[rho, :] * -c[:, None]
    else:
        X = (P @ L21) / -r
        S11 = (L21.T @ X) / -r[:, None]
    S11.ravel()[:: d + 1] += 1.0 / (r * r)
    out = np.empty((mz, mz))
    out[:d, :d] = S11
    out[d:, :d] = X
    out[:d, d:] = X.T
    out[d:, d:] = P
    return out


def _solve_lower(a: np.ndarray, b: np.ndarray, trans: int) -> np.ndarray:
    """``solve_triangular(a, b, lower=True, trans=trans, check_finite=False)`` for float64: the same
    LAPACK call (trtrs, on a's transpose when a is not Fortran-ordered, as scipy does) without the
    wrapper's validation and dispatch, which cost more than the solve on small systems (~20 µs)."""
    if a.flags.f_contiguous:
        x, info = lapack.dtrtrs(a, b, lower=1, trans=trans)
    else:
        x, info = lapack.dtrtrs(a.T, b, lower=0, trans=1 - trans)
    if info > 0:
        raise np.linalg.LinAlgError(f"singular matrix: resolution failed at diagonal {info - 1}")
    return x


def _solve_lower_leading(L: np.ndarray, b: np.ndarray, trans: int) -> np.ndarray:
    """The solve with the leading k x k block of the lower-triangular L (k = len(b)) by a solve with all
    of L: b padded with zeros gives the leading block's solution in the first k entries (forward:
    they do not read the later rows; backward: the later unknowns solve to 0).  A leading block of a
    C-ordered L is not contiguous, and LAPACK would copy it (80 MB at order 3,200: 40 ms a solve).
    Not where a later diagonal entry is 0 (the response row of a system whose response is 0): LAPACK
    refuses a singular triangle."""
    k = b.shape[0]
    if (k == L.shape[0] or not (L.flags.c_contiguous or L.flags.f_contiguous)
            or not np.all(np.diagonal(L)[k:] != 0.0)):
        return _solve_lower(L[:k, :k], b, trans)
    padded = np.zeros(L.shape[0])
    padded[:k] = b
    return _solve_lower(L, padded, trans)[:k]


def _symmetric(low: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose lower triangle ``low`` holds."""
    return np.tril(low) + np.tril(low, -1).T


class InverseParts:
    """Blocks of M⁻¹ (see ``BlockedSystem.inverse_parts``); cross, S_inv, B, BD and Lzz are None without other blocks.

    Parameters
    ----------
    D_inv : ndarray, shape (q1, K1, K1)
        Inverses of the lead block's diagonal blocks.
    lead : ndarray, shape (q1, K1, K1)
        Diagonal blocks of the lead part of M⁻¹.
    cross : ndarray, shape (mz, q1 K1), or None
        The other blocks' rows of M⁻¹ in the lead columns, -S⁻¹ B D⁻¹ (None: formed on first access
        by ``dense``, or no other blocks).
    S_inv : ndarray, shape (mz, mz), or None
        The other blocks' part of M⁻¹ (None: formed from ``S_low`` on first access).
    B, BD : ndarray, shape (mz, q1 K1), or None
        The cross block of M and B D⁻¹.
    Lzz : ndarray, shape (mz, mz), or None
        The random-effect rows of the dense factor (only its lower triangle is valid).
    cross_pairs : ndarray, shape (npairs, K1), optional
        A sparse cross block's ``cross`` at its nonzeros (the plan's pairs).
    B_sp, BD_sp : scipy.sparse.csr_matrix, optional
        B and B D⁻¹ as CSR, for a sparse cross block.
    plan : CrossprodPlan, optional
        The plan whose pairs index ``cross_pairs``.
    dense : callable, optional
        parts -> (cross, B, BD), called once (with these parts) when one of them is first read.
    S_low : ndarray, shape (mz, mz), optional
        S⁻¹'s lower triangle as dpotri leaves it (the upper is not valid).
    """

    def __init__(self, D_inv, lead, cross, S_inv, B, BD, Lzz, cross_pairs=None, B_sp=None, BD_sp=None, plan=None,
                 dense=None, S_low=None):
        self.D_inv, self.lead, self.Lzz = D_inv, lead, Lzz
        self._S_inv, self._S_low = S_inv, S_low  # S_low: only S⁻¹'s lower triangle is valid (LAPACK's order)
        self._cross, self._B, self._BD = cross, B, BD
        self.cross_pairs, self.B_sp, self.BD_sp, self.plan = cross_pairs, B_sp, BD_sp, plan
        self._dense = dense

    @property
    def S_inv(self):
        """S⁻¹, the other blocks' part of M⁻¹ (symmetrised from ``S_low`` on first access).

        Returns
        -------
        numpy.ndarray, shape (mz, mz) or None
            None without other blocks.
        """
        if self._S_inv is None and self._S_low is not None:
            self._S_inv = _symmetric(self._S_low)
        return self._S_inv

    def s_inv_at(self, i, j):
        """S⁻¹[i, j] elementwise for index arrays (from the lower triangle while S⁻¹ is not formed).

        Parameters
        ----------
        i, j : numpy.ndarray of int
            Row and column indices, broadcast together.

        Returns
        -------
        numpy.ndarray
            The entries, the broadcast shape of ``i`` and ``j``.
        """
        if self._S_inv is not None or self._S_low is None:
            return self._S_inv[i, j]
        return self._S_low[np.maximum(i, j), np.minimum(i, j)]

    def s_inv_matvec(self, v):
        """S⁻¹ v (a symmetric product on the lower triangle while S⁻¹ is not formed).

        Parameters
        ----------
        v : numpy.ndarray, shape (mz,)
            The vector.

        Returns
        -------
        numpy.ndarray, shape (mz,)
            S⁻¹ v.
        """
        if self._S_inv is not None or self._S_low is None:
            return self._S_inv @ v
        S = self._S_low
        if S.flags.c_contiguous:  # its transpose is Fortran-ordered with the upper triangle valid: no copy
            return blas.dsymv(1.0, S.T, v, lower=0)
        return blas.dsymv(1.0, np.asfortranarray(S), v, lower=1)

    def _materialise(self):
        if self._dense is not None:
            self._cross, self._B, self._BD = self._dense(self)
            self._dense = None

    @property
    def cross(self):
        """The other blocks' rows of M⁻¹ in the lead columns, -S⁻¹ B D⁻¹ (formed on first access).

        Returns
        -------
        numpy.ndarray, shape (mz, q1 K1) or None
            None without other blocks.
        """
        self._materialise()
        return self._cross

    @property
    def B(self):
        """The cross block of M, Λ_r' A_z1 Λ_1 (formed on first access).

        Returns
        -------
        numpy.ndarray, shape (mz, q1 K1) or None
            None without other blocks.
        """
        self._materialise()
        return self._B

    @property
    def BD(self):
        """B D⁻¹ (formed on first access).

        Returns
        -------
        numpy.ndarray, shape (mz, q1 K1) or None
            None without other blocks.
        """
        self._materialise()
        return self._BD
