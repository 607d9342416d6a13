"""Block-diagonal elimination of a nested chain of grouping factors (``(1 | region/hospital/ward)``).

``BlockedSystem`` keeps only the lead factor block-diagonal and puts every other factor's random
effects into one dense Schur complement, which is cubic in their number (20,000 hospitals: 88 s,
9.9 GB).  When the factors form a chain, each level of one nested in a single level of the next,
eliminating the finest factor leaves the next one block-diagonal again, with fill only between a
level and its ancestors.  So every factor is eliminated in turn, leaf to root, with batched K x K
algebra over its levels, and only [X y] stays dense (p + 1 rows).

Per level g of chain factor ℓ the frontal matrix holds the rows of g itself (K_ℓ), of its ancestors
(a_ℓ = K_{ℓ+1} + ... + K_root) and of [X y] (p + 1): the original entries of Ω in g's column (its
Z'Z block, its crossproducts with its ancestors' columns over its own rows, [X y]'Z over its rows)
plus the update matrices of its children.  Eliminating g (a K_ℓ x K_ℓ Cholesky factor L_g and the
column W_g = F[rest, g] L_g⁻ᵀ) hands its parent the update F[anc, anc] - W W' (a_ℓ x a_ℓ: the parent's
own rows first, so the parent's frontal has exactly that shape) and [X y]'s rows of it; the
[X y] x [X y] updates of every level are summed into one dense (p + 1) x (p + 1) matrix.  Nothing
loops over levels in Python: each chain factor is a few batched products over its (q, ., .) stacks
and one sparse children -> parent sum.

The interface is ``BlockedSystem``'s as the objectives and fits read it: ``factor``, ``solve``,
``rest_b``, ``solve_rhs``, ``u_condvar``, ``reweighted``, ``mz`` (0: the dense factor has no
random-effect rows; the chain's log-determinant is the factor's ``logdet_lead``) and ``p``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .blocked import BlockedFactor, _weighted_xy

__all__ = ["NestedChainSystem", "NestedFactor", "nested_chain"]


def nested_chain(blocks) -> list | None:
    """The blocks as a chain of nested grouping factors, finest first, or None when they are not one.

    A chain: at least two blocks, each on its own grouping factor, and every level of each factor
    occurring within a single level of the next coarser one (``region/hospital/ward``).

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order (lead block first).

    Returns
    -------
    list of int or None
        Engine block indices from the finest factor to the coarsest.
    """
    if len(blocks) < 2:
        return None
    names = [b.factor.name for b in blocks]
    if len(set(names)) != len(names):
        return None
    order = sorted(range(len(blocks)), key=lambda i: -blocks[i].q)
    for fine, coarse in zip(order[:-1], order[1:]):
        if _parent_codes(blocks[fine], blocks[coarse]) is None:
            return None
    return order


def _parent_codes(fine, coarse) -> np.ndarray | None:
    """Each level of ``fine``'s factor's level of ``coarse``'s (levels without rows: 0), or None when
    some level of ``fine`` meets two of ``coarse``."""
    cf, cc = fine.factor.codes, coarse.factor.codes
    parent = np.zeros(fine.q, dtype=np.int64)
    parent[cf] = cc
    if not np.array_equal(parent[cf], cc):
        return None
    return parent


@dataclass
class NestedFactor(BlockedFactor):
    """The factor of Ω for a nested chain at one set of templates.

    ``logdet_lead`` is the log-determinant of the whole random-effects part (every chain factor's
    diagonal blocks), ``L`` the dense factor of [X y]'s part alone (so ``mz`` = 0 in
    ``BlockedFactor``'s methods).

    Attributes
    ----------
    levels : list of tuple
        Per chain factor, finest first: (L⁻¹, W_anc, W_xy), the inverses of its levels' K x K
        Cholesky factors (q, K, K), and their factor columns in the ancestors' rows (q, a, K) and in
        [X y]'s rows (q, p + 1, K).
    """

    levels: list = field(default_factory=list)


class NestedChainSystem:
    """Precomputed crossproducts of a nested-chain model and its level-by-level factorisation.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first; they must form a chain (``nested_chain``).
    X : ndarray, shape (n, p)
        Fixed-effects columns.
    y : ndarray, shape (n,)
        Response (the working response for a GLMM), minus any offset.
    sqrt_w : ndarray, shape (n,), or None
        Square roots of the prior weights.
    weights : ndarray, shape (n,), optional
        Weights that may be negative (one-sided crossproducts Z'(wZ)); replaces ``sqrt_w``.
    chain : list of int, optional
        ``nested_chain(blocks)``, computed when omitted.
    """

    engine = "nested"

    def __init__(self, blocks, X, y, sqrt_w=None, weights=None, chain=None):
        chain = nested_chain(blocks) if chain is None else chain
        if chain is None:
            raise ValueError("NestedChainSystem: the blocks are not a chain of nested grouping factors")
        self.blocks = list(blocks)
        self.lead, self.rest = blocks[0], list(blocks[1:])
        self.K1, self.q1 = self.lead.K, self.lead.q
        self.p = X.shape[1]
        self.n = X.shape[0]
        self.mz = 0  # the dense factor has only [X y]'s rows
        self.m = self.p + 1
        self.n_rest = sum(b.size for b in self.rest)
        self.chain = list(chain)
        cb = [blocks[i] for i in self.chain]
        self._K = [b.K for b in cb]
        self._q = [b.q for b in cb]
        k = len(cb)
        # a_ℓ: rows of a level's ancestors; their order is the chain's (parent first)
        self._a = [sum(self._K[j] for j in range(i + 1, k)) for i in range(k)]
        self._scalar_up = [all(self._K[j] == 1 for j in range(i, k)) for i in range(k)]
        # each level's ancestor at every coarser chain factor, and the children -> parent sums
        parents = [_parent_codes(cb[i], cb[i + 1]) for i in range(k - 1)]
        self._agg = [sp.csr_matrix((np.ones(self._q[i]), (par, np.arange(self._q[i]))),
                                   shape=(self._q[i + 1], self._q[i])) for i, par in enumerate(parents)] + [None]
        self._anc = [{} for _ in range(k)]
        for i in range(k - 2, -1, -1):  # coarser factors first: a parent's ancestors are known
            par = parents[i]
            self._anc[i][i + 1] = par
            for j in range(i + 2, k):
                self._anc[i][j] = self._anc[i + 1][j][par]
        self._fill(X, y, sqrt_w, weights)

    # ----- crossproducts (one pass of bincounts over the rows) -----
    def _fill(self, X, y, sqrt_w, weights):
        XY, XY_left, left, right = _weighted_xy(X, y, sqrt_w, weights)
        cb = [self.blocks[i] for i in self.chain]
        k, p1 = len(cb), self.p + 1
        zl = [b.columns if left is None else b.columns * left[:, None] for b in cb]
        zr = [b.columns if right is None else b.columns * right[:, None] for b in cb]
        self._A = []  # per chain factor: (q, K + a, K) = its own and its ancestors' rows x its columns
        self._G = []  # per chain factor: (q, p + 1, K) = [X y]'Z over its rows
        for i in range(k):
            codes, q, K = cb[i].factor.codes, self._q[i], self._K[i]
            rows = [zl[j][:, c] for j in range(i, k) for c in range(self._K[j])]
            A = np.empty((q, len(rows), K))
            for r, zrow in enumerate(rows):
                for c in range(K):
                    A[:, r, c] = np.bincount(codes, zrow * zr[i][:, c], minlength=q)
            G = np.empty((q, p1, K))
            for j in range(p1):
                xj = XY_left[:, j]
                for c in range(K):
                    G[:, j, c] = np.bincount(codes, xj * zr[i][:, c], minlength=q)
            self._A.append(A)
            self._G.append(G)
        self._XX = XY_left.T @ XY

    def reweighted(self, X: np.ndarray, y: np.ndarray, sqrt_w: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> "NestedChainSystem":
        """The same model's system with new weights and response (PIRLS); this system is left unchanged.

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
        NestedChainSystem
        """
        if X.shape[1] != self.p:
            raise ValueError(f"reweighted: X has {X.shape[1]} columns, the system {self.p}")
        new = copy.copy(self)
        with np.errstate(over="ignore", invalid="ignore"):
            new._fill(X, y, sqrt_w, weights)
        return new

    # ----- the factorisation -----
    def _tanc(self, templates, i):
        """Block-diagonal template of chain factor ``i``'s ancestors (a x a)."""
        Ts = [templates[self.chain[j]] for j in range(i + 1, len(self.chain))]
        a = self._a[i]
        out = np.zeros((a, a))
        at = 0
        for T in Ts:
            kk = T.shape[0]
            out[at : at + kk, at : at + kk] = T
            at += kk
        return out

    def factor(self, templates) -> NestedFactor:
        """Factor Ω at the blocks' templates, chain factor by chain factor (finest first).

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order (``ModelStructure.templates``).

        Returns
        -------
        NestedFactor
            ``ok`` False (and ``logdet_lead`` inf) when a level's block was not positive definite.
        """
        k, p1 = len(self.chain), self.p + 1
        S = self._XX.copy()
        logdet = 0.0
        levels = []
        carry_R = carry_X = None  # children's update matrices summed per level of this factor
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(k):
                K, a = self._K[i], self._a[i]
                T = templates[self.chain[i]]
                A = self._A[i]
                # spherical coordinates: rows by T' (own) and the ancestors' templates', columns by T
                if self._scalar_up[i]:  # every template from here to the root is 1 x 1: elementwise
                    tr = np.array([float(templates[self.chain[j]][0, 0]) for j in range(i, k)])
                    Acol = A * (tr * tr[0])[None, :, None]
                else:
                    Tr = np.zeros((K + a, K + a))
                    Tr[:K, :K] = T
                    if a:
                        Tr[K:, K:] = self._tanc(templates, i)
                    Acol = np.matmul(Tr.T, A) @ T
                F = np.empty((self._q[i], K + a, K + a)) if carry_R is not None else np.zeros((self._q[i], K + a, K + a))
                if carry_R is not None:
                    F[:, K:, K:] = carry_R[:, K:, K:]
                    F[:, :, :K] = Acol + carry_R[:, :, :K]
                    F[:, :K, K:] = np.swapaxes(F[:, K:, :K], 1, 2)
                else:
                    F[:, :, :K] = Acol
                    F[:, :K, K:] = np.swapaxes(Acol[:, K:, :], 1, 2)
                idx = np.arange(K)
                F[:, idx, idx] += 1.0
                Fx = np.zeros((self._q[i], p1, K + a))
                Fx[:, :, :K] = self._G[i] * float(T[0, 0]) if K == 1 else self._G[i] @ T
                if carry_X is not None:
                    Fx += carry_X
                if K == 1:  # scalar levels: the K x K algebra is elementwise (np.matmul's per-matrix loop is slow)
                    d = F[:, 0, 0]
                    if not d.min(initial=np.inf) > 0.0:
                        return NestedFactor(np.inf, np.empty((0, 0)), False, 1, [])
                    r = np.sqrt(d)
                    logdet += 2.0 * float(np.sum(np.log(r)))
                    rinv = 1.0 / r
                    Linv = rinv.reshape(-1, 1, 1)
                    W_anc = F[:, 1:, :1] * Linv
                    W_xy = Fx[:, :, :1] * Linv
                else:
                    Lk, Linv, ok = _batched_cholesky(F[:, :K, :K])
                    if not ok:
                        return NestedFactor(np.inf, np.empty((0, 0)), False, 1, [])
                    logdet += 2.0 * float(np.sum(np.log(np.diagonal(Lk, axis1=1, axis2=2))))
                    LinvT = np.swapaxes(Linv, 1, 2)
                    W_anc = np.matmul(F[:, K:, :K], LinvT)
                    W_xy = np.matmul(Fx[:, :, :K], LinvT)
                levels.append((Linv, W_anc, W_xy))
                Wf = W_xy.transpose(1, 0, 2).reshape(p1, -1)
                S -= Wf @ Wf.T
                if a:
                    W_ancT = np.swapaxes(W_anc, 1, 2)
                    if K == 1:  # outer products by broadcasting
                        U = F[:, 1:, 1:] - W_anc * W_ancT
                        Ux = Fx[:, :, 1:] - W_xy * W_ancT
                    else:
                        U = F[:, K:, K:] - np.matmul(W_anc, W_ancT)
                        Ux = Fx[:, :, K:] - np.matmul(W_xy, W_ancT)
                    agg = self._agg[i]
                    qp = self._q[i + 1]
                    carry_R = np.asarray(agg @ U.reshape(self._q[i], -1)).reshape(qp, a, a)
                    carry_X = np.asarray(agg @ Ux.reshape(self._q[i], -1)).reshape(qp, p1, a)
            if not np.isfinite(logdet):
                return NestedFactor(np.inf, np.empty((0, 0)), False, 1, [])
            # S is symmetric: its transpose is the same numbers in Fortran order, factored in place
            U_, info = lapack.dpotrf(np.array(S.T, order="F"), lower=0, clean=1)
        return NestedFactor(logdet, U_.T, info == 0, int(info), levels)

    # ----- quantities derived from a factor -----
    def _split(self, v: np.ndarray) -> list:
        """A vector over all random effects (engine order) as one (q, K) array per chain factor."""
        out = []
        for bi in self.chain:
            b = self.blocks[bi]
            out.append(v[b.offset : b.offset + b.size].reshape(b.q, b.K))
        return out

    def _join(self, parts: list) -> np.ndarray:
        """The inverse of ``_split``: per chain factor (q, K) arrays -> one vector in engine order."""
        total = sum(b.size for b in self.blocks)
        out = np.empty(total)
        for ci, bi in enumerate(self.chain):
            b = self.blocks[bi]
            out[b.offset : b.offset + b.size] = parts[ci].ravel()
        return out

    def _ancestors_of(self, i: int, per_level: list) -> np.ndarray:
        """(q_i, a_i): the values of each level's ancestors (``per_level[j]`` is (q_j, K_j)), chain order."""
        k = len(self.chain)
        if i + 1 >= k:
            return np.zeros((self._q[i], 0))
        return np.concatenate([per_level[j][self._anc[i][j]] for j in range(i + 1, k)], axis=1)

    def _back(self, fac: NestedFactor, y_levels: list, beta: np.ndarray | None) -> list:
        """Back substitution root to leaf: x_g = L_g⁻ᵀ (y_g - W_anc' x_anc [- W_X' β])."""
        k = len(self.chain)
        x = [None] * k
        for i in range(k - 1, -1, -1):
            Linv, W_anc, W_xy = fac.levels[i]
            r = y_levels[i].copy()
            if i + 1 < k:
                r -= np.einsum("gak,ga->gk", W_anc, self._ancestors_of(i, x))
            if beta is not None and beta.shape[0]:
                r -= np.einsum("gpk,p->gk", W_xy[:, : self.p, :], beta)
            x[i] = np.einsum("gba,gb->ga", Linv, r)  # L⁻ᵀ r
        return x

    def solve(self, templates, fac: NestedFactor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spherical random effects and fixed effects at the factor.

        Parameters
        ----------
        templates : list of ndarray
            One K x K lower-triangular template per block, engine order.
        fac : NestedFactor
            The factor at those templates.

        Returns
        -------
        u_lead : ndarray, shape (q1, K1)
        u_rest : ndarray, shape (total size of the other blocks,)
        beta : ndarray, shape (p,)
        """
        L, p = fac.L, self.p
        if p:
            beta = lapack.dtrtrs(np.asfortranarray(L[:p, :p]), L[p, :p], lower=1, trans=1)[0]
        else:
            beta = np.zeros(0)
        y_levels = [W_xy[:, p, :] for _, _, W_xy in fac.levels]
        u = self._join(self._back(fac, y_levels, beta))
        n1 = self.lead.size
        return u[:n1].reshape(self.q1, self.K1), u[n1:], beta

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
        at = 0
        for b, T in zip(self.rest, templates[1:]):
            out[at : at + b.size] = (u_rest[at : at + b.size].reshape(b.q, b.K) @ T.T).ravel()
            at += b.size
        return out

    def solve_rhs(self, templates, fac: NestedFactor, rhs: np.ndarray) -> np.ndarray:
        """M⁻¹ rhs with M = Λ'Z'WZΛ + I from the factor: forward leaf to root, back root to leaf.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : NestedFactor
            The factor at those templates.
        rhs : numpy.ndarray, shape (q,)
            Right-hand side over all random effects, engine order.

        Returns
        -------
        numpy.ndarray, shape (q,)
            M⁻¹ rhs.
        """
        k = len(self.chain)
        r = [v.astype(float, copy=True) for v in self._split(np.asarray(rhs, dtype=float))]
        y = [None] * k
        carry = None  # descendants' terms still to subtract from this factor's ancestors
        for i in range(k):
            Linv, W_anc, _ = fac.levels[i]
            K = self._K[i]
            if carry is not None:
                r[i] -= carry[:, :K]
            y[i] = np.einsum("gab,gb->ga", Linv, r[i])
            if i + 1 < k:
                t = np.einsum("gak,gk->ga", W_anc, y[i])
                if carry is not None:
                    t += carry[:, K:]
                carry = np.asarray(self._agg[i] @ t)
        return self._join(self._back(fac, y, None))

    def _selected_inverse(self, fac: NestedFactor) -> list:
        """M⁻¹ on each level's own and ancestors' rows (q, K + a, K + a), root to leaf (Takahashi's
        recurrence on the chain: a level's ancestors' part is its parent's whole array)."""
        k = len(self.chain)
        full = [None] * k
        for i in range(k - 1, -1, -1):
            Linv, W_anc, _ = fac.levels[i]
            K, a, q = self._K[i], self._a[i], self._q[i]
            own = np.matmul(np.swapaxes(Linv, 1, 2), Linv)
            Z = np.empty((q, K + a, K + a))
            if a:
                ZAA = full[i + 1][self._anc[i][i + 1]]
                V = np.matmul(W_anc, Linv)  # (q, a, K)
                ZA = -np.matmul(ZAA, V)
                Z[:, :K, :K] = own - np.matmul(np.swapaxes(V, 1, 2), ZA)
                Z[:, K:, :K] = ZA
                Z[:, :K, K:] = np.swapaxes(ZA, 1, 2)
                Z[:, K:, K:] = ZAA
            else:
                Z[:] = own
            full[i] = Z
        return full

    def u_condvar(self, templates, fac: NestedFactor) -> list[np.ndarray]:
        """Diagonal level blocks of (Λ'Z'ZΛ + I)⁻¹, per block (a selected inverse: no dense inverse).

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : NestedFactor
            The factor at those templates.

        Returns
        -------
        list of numpy.ndarray
            One (q, K, K) array per block, engine order.
        """
        full = self._selected_inverse(fac)
        out = [None] * len(self.blocks)
        for ci, bi in enumerate(self.chain):
            K = self._K[ci]
            out[bi] = np.ascontiguousarray(full[ci][:, :K, :K])
        return out

    # ----- M⁻¹ on the pattern of Z'Z (the GLMM's exact Laplace gradient) -----
    def _index_tables(self):
        """Per random effect (engine order): its chain factor, level and component (built once)."""
        if getattr(self, "_tables", None) is None:
            total = sum(b.size for b in self.blocks)
            pos, node, comp = (np.empty(total, dtype=np.int64) for _ in range(3))
            for ci, bi in enumerate(self.chain):
                b = self.blocks[bi]
                sl = slice(b.offset, b.offset + b.size)
                pos[sl] = ci
                node[sl] = np.repeat(np.arange(b.q), b.K)
                comp[sl] = np.tile(np.arange(b.K), b.q)
            # where chain factor j's rows start among chain factor i's ancestors (i < j)
            start = np.zeros((len(self.chain), len(self.chain)), dtype=np.int64)
            for i in range(len(self.chain)):
                at = self._K[i]
                for j in range(i + 1, len(self.chain)):
                    start[i, j] = at
                    at += self._K[j]
            self._tables = (pos, node, comp, start)
        return self._tables

    def _block_holding(self, idx: np.ndarray) -> int | None:
        """The engine block whose effects hold every index in ``idx``, or None."""
        if idx.size == 0:
            return None
        lo, hi = int(idx.min()), int(idx.max())
        for bi, b in enumerate(self.blocks):
            if b.offset <= lo and hi < b.offset + b.size:
                return bi
        return None

    def inverse_at(self, full: list, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """M⁻¹[i, j] for random effects i, j (engine indices) of one row: one's level is the other's or its ancestor.

        Parameters
        ----------
        full : list of ndarray
            ``_selected_inverse``'s arrays.
        i, j : numpy.ndarray of int
            Engine indices of the effects, same shape.

        Returns
        -------
        numpy.ndarray
            The entries.
        """
        pos, node, comp, start = self._index_tables()
        i, j = np.broadcast_arrays(np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64))
        bi, bj = self._block_holding(i), self._block_holding(j)
        if bi is not None and bj is not None:  # each within one block (the leverages' calls): arithmetic
            ci, cj = self.chain.index(bi), self.chain.index(bj)
            if ci > cj:
                i, j, bi, bj, ci, cj = j, i, bj, bi, cj, ci
            Bi, Bj = self.blocks[bi], self.blocks[bj]
            ni, ki = np.divmod(i - Bi.offset, Bi.K)
            kj = (j - Bj.offset) % Bj.K
            return full[ci][ni, kj if ci == cj else start[ci, cj] + kj, ki]
        swap = pos[i] > pos[j]  # index by the finer of the two
        fine, coarse = np.where(swap, j, i), np.where(swap, i, j)
        pf, pc = pos[fine], pos[coarse]
        row = np.where(pf == pc, comp[coarse], start[pf, pc] + comp[coarse])
        out = np.empty(i.shape)
        for ci in np.unique(pf):
            sel = pf == ci
            out[sel] = full[ci][node[fine[sel]], row[sel], comp[fine[sel]]]
        return out

    def inverse_parts(self, templates, fac: NestedFactor) -> "NestedInverseParts":
        """M⁻¹ (M = Λ'Z'WZΛ + I) where ``glmm.row_leverages`` reads it: the lead block's diagonal blocks,
        its entries with every other block's effect of each row (as a sparse cross block's ``cross_pairs``)
        and the other blocks' entries between effects of one row (``s_inv_at``); from the selected inverse.

        Parameters
        ----------
        templates : list of ndarray
            One template per block, engine order.
        fac : NestedFactor
            The factor at those templates.

        Returns
        -------
        NestedInverseParts
        """
        full = self._selected_inverse(fac)
        lead_pos = self.chain.index(0)
        lead = np.ascontiguousarray(full[lead_pos][:, : self.K1, : self.K1])
        g1 = self.lead.factor.codes.astype(np.int64)
        n, K1 = g1.shape[0], self.K1
        entries = [blk.offset + blk.factor.codes.astype(np.int64) * blk.K + c
                   for blk in self.rest for c in range(blk.K)]
        pairs = np.empty((len(entries) * n, K1))
        for e, uj in enumerate(entries):  # one gather per (block, component): a short loop
            for c in range(K1):
                pairs[e * n : (e + 1) * n, c] = self.inverse_at(full, g1 * K1 + c, uj)
        pair_inv = [e * n + np.arange(n) for e in range(len(entries))]
        return NestedInverseParts(self, full, lead, pairs, pair_inv, templates, fac)

    def solve_m(self, parts: "NestedInverseParts", rhs: np.ndarray) -> np.ndarray:
        """M⁻¹ rhs (``solve_rhs`` with the factor the parts came from).

        Parameters
        ----------
        parts : NestedInverseParts
            From :meth:`inverse_parts`.
        rhs : numpy.ndarray, shape (q,)
            Right-hand side, engine order.

        Returns
        -------
        numpy.ndarray, shape (q,)
            M⁻¹ rhs.
        """
        return self.solve_rhs(parts.templates, parts.factor, rhs)


class _PairIndex:
    """The ``plan.pair_inv`` that ``glmm.row_leverages`` reads: per non-lead entry, each row's pair."""

    def __init__(self, pair_inv):
        self.pair_inv = pair_inv


class NestedInverseParts:
    """M⁻¹ of a nested chain on the pattern of Z'Z (``NestedChainSystem.inverse_parts``).

    Parameters
    ----------
    system : NestedChainSystem
        The system the factor belongs to.
    full : list of ndarray
        Per chain factor, M⁻¹ on each level's own and ancestors' rows.
    lead : ndarray, shape (q1, K1, K1)
        The lead block's diagonal blocks of M⁻¹.
    cross_pairs : ndarray, shape (entries x n, K1)
        M⁻¹ between each row's lead effects and its effect of every other (block, component).
    pair_inv : list of ndarray
        Per other (block, component), each row's index into ``cross_pairs``.
    templates : list of ndarray
        The templates of the factor.
    factor : NestedFactor
        The factor.
    """

    def __init__(self, system, full, lead, cross_pairs, pair_inv, templates, factor):
        self.system, self.full, self.lead = system, full, lead
        self.D_inv = lead
        self.cross_pairs, self.plan = cross_pairs, _PairIndex(pair_inv)
        self.templates, self.factor = templates, factor

    def s_inv_at(self, i, j):
        """M⁻¹ between two non-lead effects of one row (indices counted from the first non-lead effect).

        Parameters
        ----------
        i, j : numpy.ndarray of int
            Indices among the non-lead effects, broadcast together.

        Returns
        -------
        numpy.ndarray
            The entries.
        """
        n1 = self.system.lead.size
        return self.system.inverse_at(self.full, np.asarray(i) + n1, np.asarray(j) + n1)


def _batched_cholesky(D: np.ndarray):
    """Lower Cholesky factors of a (q, K, K) stack and their inverses, and whether all were positive definite."""
    K = D.shape[1]
    if K == 1:
        d = D[:, 0, 0]
        if not d.min(initial=np.inf) > 0.0:
            return None, None, False
        r = np.sqrt(d)
        return r.reshape(-1, 1, 1), (1.0 / r).reshape(-1, 1, 1), True
    if K == 2:  # written out: numpy's batched LAPACK calls cost more than the arithmetic here
        d11, d21, d22 = D[:, 0, 0], D[:, 1, 0], D[:, 1, 1]
        if not d11.min(initial=np.inf) > 0.0:
            return None, None, False
        l11 = np.sqrt(d11)
        l21 = d21 / l11
        s22 = d22 - l21 * l21
        if not s22.min(initial=np.inf) > 0.0:
            return None, None, False
        l22 = np.sqrt(s22)
        L = np.zeros_like(D)
        Linv = np.zeros_like(D)
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l11, l21, l22
        Linv[:, 0, 0], Linv[:, 1, 1] = 1.0 / l11, 1.0 / l22
        Linv[:, 1, 0] = -l21 / (l11 * l22)
        return L, Linv, True
    try:
        L = np.linalg.cholesky(D)
    except np.linalg.LinAlgError:
        return None, None, False
    Linv = np.linalg.inv(L)
    return L, Linv, bool(np.all(np.isfinite(Linv)))
