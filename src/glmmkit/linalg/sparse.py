"""Sparse Schur complement of large crossed designs (``(1 | a) + (1 | b)`` with tens of thousands of levels).

``BlockedSystem`` eliminates the lead factor level by level and factors everything else densely: with a
second factor of 30,000 levels that dense block alone is 7 GB and its Cholesky cubic.  When the lead's
levels each meet few levels of the other factors, the Schur complement of the other random effects,

    S = Λr'Zr'ZrΛr + I - B D⁻¹ B',     B = Λr'Zr'Z1Λ1,  D = Λ1'Z1'Z1Λ1 + I (block-diagonal),

is sparse, and its pattern is fixed by the design.  So the pattern, a fill-reducing ordering and every
index map are built once (``SparseSchurSystem.__init__``); a θ only refills S's values (batched K x K
products and two ``bincount``s) and refactors numerically: CHOLMOD (scikit-sparse, the ``sparse`` extra)
from its one symbolic analysis, or SuperLU (scipy, always there) on the matrix permuted once by the
ordering SuperLU chose at the first factorisation, with no pivoting (an SPD matrix: LDLᵀ as LU).
[X y] stays a dense border of p + 1 columns: S_zx = S⁻¹-solved once per θ, and the border's Schur
complement S_xx - S_zxᵀ S⁻¹ S_zx is factored by LAPACK; its factor is ``BlockedFactor.L`` (``mz`` = 0,
as for the nested chain), the log-determinants of D and S are its ``logdet_lead``.

Conditional variances need diagonal blocks of M⁻¹: for the non-lead effects those of S⁻¹, for the lead
L_g⁻ᵀ(I + C_g' S⁻¹ C_g)L_g⁻¹, which reads S⁻¹ on the pattern of C C' (inside S's).  Both come from the
selected inverse of S on the pattern of its Cholesky factor (Takahashi's recurrence, one numba pass over
the factor's columns), never from a dense inverse.

GLMMs: ``reweighted`` refills the crossproducts on the fixed pattern (PIRLS, Laplace's log-determinant,
the chord steps' ``solve_rhs``); ``inverse_parts`` (the exact Laplace gradient) is not implemented, so a
GLMM on this engine is fitted by the derivative-free route (``GlmmObjective.gradient_applies`` is False).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.linalg import lapack

from .blocked import BlockedFactor

__all__ = ["SparseSchurSystem", "SparseFactor", "cholmod_available", "schur_density_bound", "schur_pattern"]


def cholmod_available() -> bool:
    """Whether scikit-sparse's CHOLMOD can be imported (the optional ``sparse`` extra).

    Returns
    -------
    bool
    """
    try:
        import sksparse.cholmod  # noqa: F401
    except Exception:
        return False
    return True


def schur_density_bound(blocks) -> tuple[int, float]:
    """Rows of the non-lead random effects and an upper bound on their Schur complement's density.

    At level granularity: the pattern of Zr'Zr (pairs of non-lead levels sharing a row) plus, per lead
    level, the square of the number of non-lead levels it meets (the fill of its elimination; overlaps
    between lead levels are not subtracted, so the bound is an upper one).  One ``unique`` per factor
    pair: cheap next to a fit.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first.

    Returns
    -------
    mz : int
        Non-lead random effects (the dense Schur block's rows on the blocked engine).
    density : float
        Upper bound on the share of nonzeros of that block (may exceed 1).
    """
    lead, rest = blocks[0], blocks[1:]
    mz = sum(b.size for b in rest)
    nlev = sum(b.q for b in rest)
    if nlev == 0:
        return 0, 0.0
    g = lead.factor.codes.astype(np.int64)
    nnz = float(nlev)
    deg = np.zeros(lead.q)
    for i, bi in enumerate(rest):
        ci = bi.factor.codes.astype(np.int64)
        deg += np.bincount(_distinct(g * bi.q + ci, lead.q * bi.q) // bi.q, minlength=lead.q)
        for bj in rest[:i]:
            nnz += 2.0 * _distinct(ci * bj.q + bj.factor.codes.astype(np.int64), bi.q * bj.q).size
    nnz += float(np.sum(deg * deg))
    return mz, nnz / float(nlev) ** 2


#: largest key range deduplicated with a mask (bytes) rather than by ``np.unique``
_MASK_MAX = 200_000_000


def _distinct(keys: np.ndarray, size: int) -> np.ndarray:
    """The distinct keys in [0, size), ascending: a boolean mask where the range allows (a 1e6-row
    crossing of 6,038 x 3,700 levels: ~25 ms against ~0.4 s for numpy's hash-based unique)."""
    if size <= _MASK_MAX:
        mask = np.zeros(size, dtype=bool)
        mask[keys] = True
        return np.flatnonzero(mask)
    return np.unique(keys)


def schur_pattern(blocks) -> sp.csc_matrix:
    """The pattern of the non-lead Schur complement S = Zr'Zr + I - B D⁻¹ B' (its fill is a clique of the
    non-lead levels each lead level meets), at effect granularity, without any values of Z.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first; at least two blocks.

    Returns
    -------
    scipy.sparse.csc_matrix, shape (mz, mz)
        Ones where S may be nonzero (symmetric, with the diagonal), rows in the blocked engine's order
        of the non-lead effects.
    """
    lead, rest = blocks[0], blocks[1:]
    n = lead.factor.codes.size
    rows = np.arange(n)
    offs = np.concatenate([[0], np.cumsum([b.q for b in rest])])
    nlev = int(offs[-1])
    cols = np.concatenate([b.factor.codes.astype(np.int64) + o for b, o in zip(rest, offs[:-1])])
    Zr = sp.csr_matrix((np.ones(cols.size), (np.tile(rows, len(rest)), cols)), shape=(n, nlev))
    Z1 = sp.csr_matrix((np.ones(n), (rows, lead.factor.codes.astype(np.int64))), shape=(n, lead.q))
    B = (Zr.T @ Z1).tocsr()
    S = (Zr.T @ Zr + B @ B.T + sp.identity(nlev)).tocsr()
    # level -> its K effects (the blocked engine's layout: level-major within each block)
    eff_lev = np.concatenate([np.repeat(np.arange(b.q) + o, b.K) for b, o in zip(rest, offs[:-1])])
    E = sp.csr_matrix((np.ones(eff_lev.size), (np.arange(eff_lev.size), eff_lev)), shape=(eff_lev.size, nlev))
    S = (E @ S @ E.T).tocsc()
    S.data[:] = 1.0
    return S


@dataclass
class SparseFactor(BlockedFactor):
    """The factor of Ω for the sparse Schur engine at one set of templates.

    ``logdet_lead`` is the log-determinant of all random effects (lead blocks and S), ``L`` the dense
    factor of [X y]'s border alone (``mz`` = 0 in ``BlockedFactor``'s methods).

    Attributes
    ----------
    parts : dict
        The lead's inverse factors, the values C = B L⁻ᵀ, the sparse factor and S (for solves and the
        selected inverse).
    """

    parts: dict = field(default_factory=dict)


def _pair_codes(a, qa, b, qb):
    """Unique (a, b) level pairs over the rows: the pairs and each row's pair index."""
    key = a.astype(np.int64) * qb + b.astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    return uniq // qb, uniq % qb, inv.ravel()


def _pair_sums(inv, npairs, left, right):
    """(npairs, Kl, Kr): Σ over each pair's rows of left[:, k] * right[:, l]."""
    out = np.empty((npairs, left.shape[1], right.shape[1]))
    for k in range(left.shape[1]):
        for c in range(right.shape[1]):
            out[:, k, c] = np.bincount(inv, left[:, k] * right[:, c], minlength=npairs)
    return out


class SparseSchurSystem:
    """Crossproducts of a crossed model, the fixed sparse pattern of its Schur complement, and the
    factorisation at given templates.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first; at least two blocks.
    X : ndarray, shape (n, p)
        Fixed-effects columns.
    y : ndarray, shape (n,)
        Response minus offset.
    sqrt_w : ndarray, shape (n,), or None
        Square roots of the prior weights.
    solver : {"auto", "cholmod", "superlu"}, default "auto"
        The sparse Cholesky: CHOLMOD where scikit-sparse imports (``"auto"``), else SuperLU.
    """

    def __init__(self, blocks, X, y, sqrt_w=None, solver: str = "auto"):
        if len(blocks) < 2:
            raise ValueError("SparseSchurSystem needs at least two random-effect blocks")
        solver = solver.lower()
        if solver not in ("auto", "cholmod", "superlu"):
            raise ValueError(f"solver must be 'auto', 'cholmod' or 'superlu', not {solver!r}")
        if solver == "auto":
            solver = "cholmod" if cholmod_available() else "superlu"
        elif solver == "cholmod" and not cholmod_available():
            raise ImportError("solver='cholmod' needs scikit-sparse: pip install 'glmmkit[sparse]'")
        self.solver = solver
        self.engine = f"sparse ({solver})"
        self.blocks = list(blocks)
        self.lead, self.rest = blocks[0], list(blocks[1:])
        self.K1, self.q1 = self.lead.K, self.lead.q
        self.n, self.p = X.shape
        self.mz = 0  # the dense factor holds only [X y]'s border
        self.m = self.p + 1
        self.n1 = self.lead.size
        self.ms = sum(b.size for b in self.rest)  # rows of the sparse Schur complement
        self._roff = [b.offset - self.n1 for b in self.rest]
        self._build(X, y, sqrt_w)
        self._analyze()

    # ----- construction: crossproducts, the pattern and the index maps (once) -----
    def _build(self, X, y, sqrt_w):
        XY = np.column_stack([X, y])
        if sqrt_w is not None:
            XY = XY * sqrt_w[:, None]
        w = (lambda z: z) if sqrt_w is None else (lambda z: z * sqrt_w[:, None])
        lead, p1, K1, ms = self.lead, self.p + 1, self.K1, self.ms
        g = lead.factor.codes
        z1 = w(lead.columns)
        zr = [w(b.columns) for b in self.rest]
        self._XX = XY.T @ XY
        self._A11 = _pair_sums(g, self.q1, z1, z1)  # (q1, K1, K1)
        self._G = _pair_sums(g, self.q1, XY, z1)  # (q1, p1, K1)
        # [X y]'Z per non-lead level (q_b, K_b, p1)
        self._Azx = [_pair_sums(b.factor.codes, b.q, z, XY) for b, z in zip(self.rest, zr)]

        # Λr'Zr'ZrΛr: per pair of non-lead blocks (i >= j), their level pairs' K_i x K_j blocks
        self._zz, self._zz_inv = [], []  # (i, j, A (np, Ki, Kj)) in the order of their targets
        rows_e, cols_e = [], []
        for i, bi in enumerate(self.rest):
            for j in range(i + 1):
                bj = self.rest[j]
                if i == j:
                    li = np.arange(bi.q)
                    inv = bi.factor.codes
                    lj = li
                else:
                    li, lj, inv = _pair_codes(bi.factor.codes, bi.q, bj.factor.codes, bj.q)
                A = _pair_sums(inv, li.size, zr[i], zr[j])
                self._zz_inv.append((inv, li.size))
                kk, ll = np.meshgrid(np.arange(bi.K), np.arange(bj.K), indexing="ij")
                keep = (kk >= ll) if i == j else np.ones_like(kk, dtype=bool)
                kk, ll = kk[keep], ll[keep]
                r = self._roff[i] + li[:, None] * bi.K + kk[None, :]
                c = self._roff[j] + lj[:, None] * bj.K + ll[None, :]
                self._zz.append((i, j, A, keep))
                rows_e.append(r.ravel())
                cols_e.append(c.ravel())
        zz_r, zz_c = np.concatenate(rows_e), np.concatenate(cols_e)

        # B = Λr'Zr'Z1Λ1 by (lead level, non-lead level) pairs; C's rows: one per (pair, component)
        self._cross, self._cross_inv = [], []
        e_ent, e_lead = [], []
        for i, b in enumerate(self.rest):
            gl, lb, inv = _pair_codes(g, self.q1, b.factor.codes, b.q)
            A = _pair_sums(inv, gl.size, zr[i], z1)  # (np, K_b, K1)
            self._cross.append((i, gl, A))
            self._cross_inv.append(inv)
            e_ent.append((self._roff[i] + lb[:, None] * b.K + np.arange(b.K)[None, :]).ravel())
            e_lead.append(np.repeat(gl, b.K))
        self._e_ent = np.concatenate(e_ent)
        self._e_lead = np.concatenate(e_lead)
        ne = self._e_ent.size
        # S_zx's B D⁻¹ G' part sums C's rows by entry: one fixed sparse matrix
        self._E = sp.csr_matrix((np.ones(ne), (self._e_ent, np.arange(ne))), shape=(ms, ne))

        # pairs of C's rows on one lead level (the rank update's triples), lower triangle only
        order = np.argsort(self._e_lead, kind="stable")
        cnt = np.bincount(self._e_lead, minlength=self.q1)
        start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        t1, t2 = [], []
        chunk = max(1, int(2e7 // max(1, int(np.max(cnt, initial=1)) ** 2)))
        for g0 in range(0, self.q1, chunk):  # bounded temporaries on dense designs
            gs = np.arange(g0, min(self.q1, g0 + chunk))
            c = cnt[gs]
            if not c.sum():
                continue
            own = np.repeat(gs, c)  # each C row of these levels
            pos = start[own] + (np.arange(own.size) - np.repeat(np.cumsum(c) - c, c))
            reps = cnt[own]
            a = np.repeat(pos, reps)
            b_ = start[np.repeat(own, reps)] + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
            ea, eb = order[a], order[b_]
            keep = self._e_ent[ea] >= self._e_ent[eb]
            t1.append(ea[keep])
            t2.append(eb[keep])
        idx_t = np.int32 if ne < 2**31 else np.int64
        self._t1 = np.concatenate(t1).astype(idx_t) if t1 else np.zeros(0, idx_t)
        self._t2 = np.concatenate(t2).astype(idx_t) if t2 else np.zeros(0, idx_t)
        tb_r, tb_c = self._e_ent[self._t1], self._e_ent[self._t2]

        # the lower pattern: Zr'Zr's blocks, the identity, the update; one index per contribution
        diag = np.arange(ms)
        keys = np.concatenate([zz_r * ms + zz_c, diag * ms + diag, tb_r * ms + tb_c])
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.ravel()
        nzz = zz_r.size
        self._to_zz, self._to_diag, self._to_bb = inv[:nzz], inv[nzz : nzz + ms], inv[nzz + ms :]
        self._nlow = uniq.size
        lr, lc = uniq // ms, uniq % ms
        off = lr != lc
        all_r = np.concatenate([lr, lc[off]])
        all_c = np.concatenate([lc, lr[off]])
        src = np.concatenate([np.arange(uniq.size), np.flatnonzero(off)])
        o = np.lexsort((all_r, all_c))
        self._indices = all_r[o].astype(np.int32)
        self._indptr = np.concatenate([[0], np.cumsum(np.bincount(all_c, minlength=ms))]).astype(np.int32)
        self._full_map = src[o]
        self.nnz_schur = int(self._full_map.size)

    def reweighted(self, X: np.ndarray, y: np.ndarray, sqrt_w: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> "SparseSchurSystem":
        """The same model's system with new weights and response (PIRLS, Newton on the mode).

        The pattern, the ordering and every index map are this system's (a zero weight keeps its
        entries, as zeros); only the crossproducts are formed anew by ``bincount`` over the rows.  This
        system is left unchanged.

        Parameters
        ----------
        X : ndarray, shape (n, p)
            Fixed-effects columns; ``p`` must equal this system's.
        y : ndarray, shape (n,)
            Response (the working response for a GLMM), minus any offset.
        sqrt_w : ndarray, shape (n,), optional
            Square roots of the (working) weights.
        weights : ndarray, shape (n,), optional
            Weights W of Z'WZ (instead of ``sqrt_w``); only non-negative ones on this engine.

        Returns
        -------
        SparseSchurSystem
        """
        if X.shape[1] != self.p:
            raise ValueError(f"reweighted: X has {X.shape[1]} columns, the system {self.p}")
        if weights is not None:
            if sqrt_w is not None or np.any(weights < 0):
                raise NotImplementedError("SparseSchurSystem.reweighted: signed weights (or both weights and "
                                          "sqrt_w) need the blocked engine: GLMMKIT_ENGINE=blocked")
            sqrt_w = np.sqrt(weights)
        new = copy.copy(self)
        with np.errstate(over="ignore", invalid="ignore"):
            XY = np.column_stack([X, y])
            w = (lambda z: z) if sqrt_w is None else (lambda z: z * sqrt_w[:, None])
            XY = w(XY)
            g = self.lead.factor.codes
            z1 = w(self.lead.columns)
            zr = [w(b.columns) for b in self.rest]
            new._XX = XY.T @ XY
            new._A11 = _pair_sums(g, self.q1, z1, z1)
            new._G = _pair_sums(g, self.q1, XY, z1)
            new._Azx = [_pair_sums(b.factor.codes, b.q, z, XY) for b, z in zip(self.rest, zr)]
            new._zz = [(i, j, _pair_sums(inv, npairs, zr[i], zr[j]), keep)
                       for (i, j, _A, keep), (inv, npairs) in zip(self._zz, self._zz_inv)]
            new._cross = [(i, gl, _pair_sums(inv, gl.size, zr[i], z1))
                          for (i, gl, _A), inv in zip(self._cross, self._cross_inv)]
        return new

    def _schur_matrix(self, low: np.ndarray) -> sp.csc_matrix:
        """S from its lower-pattern values (the full symmetric CSC on the fixed pattern)."""
        return sp.csc_matrix((low[self._full_map], self._indices, self._indptr), shape=(self.ms, self.ms))

    def _analyze(self):
        """The fill-reducing ordering, chosen once on the pattern."""
        low = np.ones(self._nlow)
        low[self._to_diag] = float(self.ms)  # diagonally dominant stand-in on the same pattern
        S = self._schur_matrix(low)
        if self.solver == "cholmod":
            from sksparse.cholmod import analyze

            self._symbolic = analyze(S)
            self.perm = np.asarray(self._symbolic.P())
        else:
            lu = spla.splu(S, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options=dict(SymmetricMode=True))
            self.perm = np.asarray(lu.perm_c)
            # S[perm][:, perm]'s values as a gather of S's: the permuted pattern, once
            Sp = sp.csc_matrix((np.arange(1, S.nnz + 1, dtype=float), S.indices, S.indptr), shape=S.shape)
            Sp = Sp[self.perm][:, self.perm].tocsc()
            Sp.sort_indices()
            self._p_map = self._full_map[Sp.data.astype(np.int64) - 1]
            self._p_indices, self._p_indptr = Sp.indices, Sp.indptr
        self._iperm = np.argsort(self.perm)

    # ----- the factorisation -----
    def factor(self, templates) -> SparseFactor:
        """Factor Ω at the blocks' templates: the lead level by level, S by the sparse Cholesky, then
        [X y]'s dense border.

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order.

        Returns
        -------
        SparseFactor
            ``ok`` False (``logdet_lead`` inf) when a block was not positive definite.
        """
        fail = SparseFactor(np.inf, np.empty((0, 0)), False, 1)
        T1 = templates[0]
        K1, q1 = self.K1, self.q1
        with np.errstate(over="ignore", invalid="ignore"):
            D = np.matmul(np.matmul(T1.T, self._A11), T1)
            D[:, np.arange(K1), np.arange(K1)] += 1.0
            try:
                Ld = np.linalg.cholesky(D)
            except np.linalg.LinAlgError:
                return fail
            Linv = np.linalg.inv(Ld)
            logdet = 2.0 * float(np.sum(np.log(np.diagonal(Ld, axis1=1, axis2=2))))
            # H_g = L_g⁻¹ T1' G_g' (K1 x p1); C rows = (T_b' A T1) L_g⁻ᵀ
            H = np.matmul(Linv, np.matmul(T1.T, np.swapaxes(self._G, 1, 2)))
            Cs = []
            for i, gl, A in self._cross:
                Tb = templates[1 + i]
                Bv = np.matmul(np.matmul(Tb.T, A), T1)
                Cs.append(np.matmul(Bv, np.swapaxes(Linv[gl], 1, 2)).reshape(-1, K1))
            C = np.concatenate(Cs)
            zz = []
            for i, j, A, keep in self._zz:
                V = np.matmul(np.matmul(templates[1 + i].T, A), templates[1 + j])
                zz.append(V[:, keep].ravel())
            bb = np.einsum("ek,ek->e", C[self._t1], C[self._t2]) if K1 > 1 else C[self._t1, 0] * C[self._t2, 0]
            low = (np.bincount(self._to_zz, np.concatenate(zz), minlength=self._nlow)
                   - np.bincount(self._to_bb, bb, minlength=self._nlow))
            low[self._to_diag] += 1.0
            # S_zx = Λr'Zr'[X y] - B D⁻¹ G'
            Szx = np.empty((self.ms, self.p + 1))
            for b, off, Tb, Azx in zip(self.rest, self._roff, templates[1:], self._Azx):
                Szx[off : off + b.size] = np.matmul(Tb.T, Azx).reshape(b.size, -1)
            Szx -= self._E @ np.einsum("ek,ekp->ep", C, H[self._e_lead])
            Sxx = self._XX - np.einsum("gkp,gkr->pr", H, H)
            if not np.all(np.isfinite(low)):
                return fail
            fac = self._sparse_factor(low)
            if fac is None:
                return fail
            sfac, slogdet = fac
            Y = self._solve_s(sfac, Szx)
            border = Sxx - Szx.T @ Y
            U, info = lapack.dpotrf(np.array(border.T, order="F"), lower=0, clean=1)
        total = logdet + slogdet
        if not np.isfinite(total):
            return fail
        parts = dict(Linv=Linv, C=C, H=H, sfac=sfac, low=low)
        return SparseFactor(total, U.T, info == 0, int(info), parts)

    def _sparse_factor(self, low):
        """(factor, log det S) of S from its values, or None when S is not positive definite."""
        if self.solver == "cholmod":
            from sksparse.cholmod import CholmodNotPositiveDefiniteError

            try:
                f = self._symbolic.cholesky(self._schur_matrix(low))
            except CholmodNotPositiveDefiniteError:
                return None
            return f, float(f.logdet())
        Sp = sp.csc_matrix((low[self._p_map], self._p_indices, self._p_indptr), shape=(self.ms, self.ms))
        try:
            lu = spla.splu(Sp, permc_spec="NATURAL", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))
        except RuntimeError:  # an exactly singular pivot
            return None
        d = lu.U.diagonal()
        ident = np.arange(self.ms)
        if not (d.min(initial=np.inf) > 0.0 and np.array_equal(lu.perm_r, ident) and np.array_equal(lu.perm_c, ident)):
            return None  # not positive definite (or SuperLU pivoted after all)
        return lu, float(np.sum(np.log(d)))

    def _solve_s(self, sfac, rhs: np.ndarray) -> np.ndarray:
        """S⁻¹ rhs (rhs (ms,) or (ms, k))."""
        if self.solver == "cholmod":
            return sfac(rhs)
        out = sfac.solve(np.ascontiguousarray(rhs[self.perm]))
        return out[self._iperm]

    # ----- quantities derived from a factor -----
    def _lead_back(self, fac: SparseFactor, y1: np.ndarray, u_rest: np.ndarray) -> np.ndarray:
        """u_lead_g = L_g⁻ᵀ (y1_g - C_g' u_rest), with y1_g = L_g⁻¹ r_g already applied."""
        P = fac.parts
        K1 = self.K1
        t = P["C"] * u_rest[self._e_ent][:, None]
        s = np.stack([np.bincount(self._e_lead, t[:, k], minlength=self.q1) for k in range(K1)], axis=1)
        return np.einsum("gba,gb->ga", P["Linv"], y1 - s)

    def solve(self, templates, fac: SparseFactor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spherical random effects and fixed effects at the factor.

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order.
        fac : SparseFactor
            The factor at those templates.

        Returns
        -------
        u_lead : ndarray, shape (q1, K1)
        u_rest : ndarray, shape (total size of the other blocks,)
        beta : ndarray, shape (p,)
        """
        L, p = fac.L, self.p
        beta = lapack.dtrtrs(np.asfortranarray(L[:p, :p]), L[p, :p], lower=1, trans=1)[0] if p else np.zeros(0)
        wv = np.concatenate([-beta, [1.0]])
        P = fac.parts
        # S u_rest = S_zx w, recomputed from the pieces (S_zx is not kept: ms x (p + 1))
        Hw = P["H"] @ wv  # (q1, K1): L_g⁻¹ r_g
        rz = np.empty(self.ms)
        for b, off, Tb, Azx in zip(self.rest, self._roff, templates[1:], self._Azx):
            rz[off : off + b.size] = ((Azx @ wv) @ Tb).ravel()
        rz -= self._E @ np.einsum("ek,ek->e", P["C"], Hw[self._e_lead])
        u_rest = self._solve_s(P["sfac"], rz)
        u_lead = self._lead_back(fac, Hw, u_rest)
        return u_lead, u_rest, beta

    def rest_b(self, templates, u_rest: np.ndarray) -> np.ndarray:
        """b = Λ u for the non-lead blocks.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order (the lead's is not read).
        u_rest : numpy.ndarray, shape (total size of the other blocks,)
            Spherical effects of the non-lead blocks, block by block, level-major.

        Returns
        -------
        numpy.ndarray
            The effects on the scale of Z's columns (over σ for an LMM).
        """
        out = np.empty_like(u_rest)
        for b, off, T in zip(self.rest, self._roff, templates[1:]):
            out[off : off + b.size] = (u_rest[off : off + b.size].reshape(b.q, b.K) @ T.T).ravel()
        return out

    def solve_rhs(self, templates, fac: SparseFactor, rhs: np.ndarray) -> np.ndarray:
        """M⁻¹ rhs with M = Λ'Z'ZΛ + I, by the block elimination of the factor.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : SparseFactor
            The factor at those templates.
        rhs : numpy.ndarray, shape (q,)
            Right-hand side over all random effects, engine order.

        Returns
        -------
        numpy.ndarray, shape (q,)
            M⁻¹ rhs.
        """
        rhs = np.asarray(rhs, dtype=float)
        P = fac.parts
        y1 = np.einsum("gab,gb->ga", P["Linv"], rhs[: self.n1].reshape(self.q1, self.K1))
        r2 = rhs[self.n1 :] - self._E @ np.einsum("ek,ek->e", P["C"], y1[self._e_lead])
        u2 = self._solve_s(P["sfac"], r2)
        return np.concatenate([self._lead_back(fac, y1, u2).ravel(), u2])

    def _selected_inverse(self, fac: SparseFactor):
        """S⁻¹ on the pattern of its (permuted) Cholesky factor: (values, column pointers, rows)."""
        sfac = fac.parts["sfac"]
        if self.solver == "cholmod":
            Lc = sfac.L().tocsc()
        else:
            d = sfac.U.diagonal()
            Lc = (sfac.U.T.tocsc() @ sp.diags(1.0 / np.sqrt(d))).tocsc()
        Lc.sort_indices()
        Z = _takahashi_kernel()(Lc.indptr.astype(np.int64), Lc.indices.astype(np.int64), Lc.data.astype(float))
        return Z, Lc.indptr.astype(np.int64), Lc.indices.astype(np.int64)

    def _sinv_at(self, sel, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """S⁻¹[r, c] from the selected inverse (the entries must lie on the factor's pattern)."""
        Z, indptr, indices = sel
        pr, pc = self._iperm[r], self._iperm[c]
        hi, lo = np.maximum(pr, pc), np.minimum(pr, pc)
        n = self.ms
        col_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        keys = col_of * n + indices
        q = lo.astype(np.int64) * n + hi
        at = np.searchsorted(keys, q)
        if not np.all(keys[np.minimum(at, keys.size - 1)] == q):
            raise RuntimeError("selected inverse: an entry off the factor's pattern")
        return Z[at]

    def u_condvar(self, templates, fac: SparseFactor) -> list[np.ndarray]:
        """Diagonal level blocks of (Λ'Z'ZΛ + I)⁻¹, per block, from the selected inverse of S.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : SparseFactor
            The factor at those templates.

        Returns
        -------
        list of numpy.ndarray
            One (q, K, K) array per block, engine order.
        """
        sel = self._selected_inverse(fac)
        out = []
        P = fac.parts
        C, Linv, K1 = P["C"], P["Linv"], self.K1
        # lead: L_g⁻ᵀ (I + C_g' S⁻¹ C_g) L_g⁻¹ over the pairs of C's rows on each level
        z = self._sinv_at(sel, self._e_ent[self._t1], self._e_ent[self._t2])
        off = self._t1 != self._t2
        g = self._e_lead[self._t1]
        Q = np.zeros((self.q1, K1, K1))
        c1, c2 = C[self._t1], C[self._t2]
        for k in range(K1):
            for l in range(K1):
                v = z * (c1[:, k] * c2[:, l] + np.where(off, c2[:, k] * c1[:, l], 0.0))
                Q[:, k, l] = np.bincount(g, v, minlength=self.q1)
        Q[:, np.arange(K1), np.arange(K1)] += 1.0
        out.append(np.matmul(np.swapaxes(Linv, 1, 2), np.matmul(Q, Linv)))
        for b, offb in zip(self.rest, self._roff):
            kk, ll = np.meshgrid(np.arange(b.K), np.arange(b.K), indexing="ij")
            base = offb + np.arange(b.q)[:, None] * b.K
            r = base + kk.ravel()[None, :]
            c = base + ll.ravel()[None, :]
            out.append(self._sinv_at(sel, r.ravel(), c.ravel()).reshape(b.q, b.K, b.K))
        return out


_TAKAHASHI = None


def _takahashi_kernel():
    """Takahashi's recurrence on a CSC lower Cholesky factor (numba, compiled on first use): Z = A⁻¹ on
    L's pattern, column by column from the last, each entry from entries of later columns."""
    global _TAKAHASHI
    if _TAKAHASHI is None:
        import numba

        @numba.njit(cache=True)
        def takahashi(indptr, indices, data):
            n = indptr.shape[0] - 1
            Z = np.zeros(data.shape[0])
            for j in range(n - 1, -1, -1):
                p0, p1 = indptr[j], indptr[j + 1]  # p0: the diagonal (sorted rows)
                d = data[p0]
                for a in range(p1 - 1, p0, -1):  # Z[i, j] for i in the column's rows below the diagonal
                    i = indices[a]
                    s = 0.0
                    for b in range(p0 + 1, p1):
                        k = indices[b]
                        hi, lo = (i, k) if i >= k else (k, i)
                        lo0, lo1 = indptr[lo], indptr[lo + 1]
                        # binary search for row hi in column lo
                        left, right = lo0, lo1 - 1
                        pos = -1
                        while left <= right:
                            mid = (left + right) // 2
                            if indices[mid] == hi:
                                pos = mid
                                break
                            if indices[mid] < hi:
                                left = mid + 1
                            else:
                                right = mid - 1
                        if pos >= 0:
                            s += Z[pos] * data[b]
                    Z[a] = -s / d
                s = 0.0
                for b in range(p0 + 1, p1):
                    s += Z[b] * data[b]
                Z[p0] = 1.0 / (d * d) - s / d
            return Z

        _TAKAHASHI = takahashi
    return _TAKAHASHI
