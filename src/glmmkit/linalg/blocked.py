"""Blocked Cholesky of Ω(θ) = [ZΛ X y]'[ZΛ X y] + diag(I, 0, 0).

The crossproducts A = [Z X y]'[Z X y] are formed once (one pass over the rows);
after that an evaluation at θ never touches the n rows (MixedModels.jl's idea,
see docs/architecture.md).  Layout, with the lead block first:

    Ω = | D    B' |      D  : block-diagonal, q1 blocks of K1 x K1 (the lead factor)
        | B    C  |      C  : dense, the other factors' random effects, then X, then y

The lead block is factored level by level (batched K1 x K1); its Schur complement
C - B D⁻¹ B' is dense and factored by LAPACK.  The dense part's last diagonal
element is the square root of the penalised residual sum of squares; its X part
is R_X (the REML term and the fixed-effects covariance).

Everything here is a pure function of precomputed arrays and θ's templates: no
statistics (that lives in ``objective/``) and no pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack, solve_triangular

__all__ = ["BlockedSystem", "BlockedFactor"]


@dataclass
class BlockedFactor:
    """The factor of Ω at one θ.

    Attributes
    ----------
    logdet_lead : float
        log det of the lead block D (= Σ_g log det D_g).
    D_inv : ndarray, shape (q1, K1, K1)
        Inverses of the lead diagonal blocks.
    L : ndarray, shape (m, m)
        Lower Cholesky factor of the dense Schur complement (other random
        effects, X, y). Only its lower triangle is meaningful.
    ok : bool
        False when the dense complement was not positive definite.
    """

    logdet_lead: float
    D_inv: np.ndarray
    L: np.ndarray
    ok: bool


class BlockedSystem:
    """Precomputed crossproducts of one model and the per-θ factorisation.

    Parameters
    ----------
    blocks : list of ReBlock
        Engine order, lead block first.
    X : ndarray, shape (n, p)
    y : ndarray, shape (n,)
    sqrt_w : ndarray, shape (n,), or None
        Square roots of the prior weights.
    """

    def __init__(self, blocks, X, y, sqrt_w=None):
        n = X.shape[0]
        self.p = X.shape[1]
        XY = np.column_stack([X, y])
        if sqrt_w is not None:
            XY = XY * sqrt_w[:, None]
        lead, rest = blocks[0], blocks[1:]
        self.lead, self.rest = lead, rest
        self.K1, self.q1 = lead.K, lead.q
        K1, q1 = self.K1, self.q1

        zc = lead.columns if sqrt_w is None else lead.columns * sqrt_w[:, None]
        codes = lead.factor.codes
        A11 = np.empty((q1, K1, K1))
        for a in range(K1):
            for b in range(a + 1):
                A11[:, a, b] = A11[:, b, a] = np.bincount(codes, zc[:, a] * zc[:, b], minlength=q1)
        self.A11 = A11
        # G[g] = X_g'Z_g and y_g'Z_g stacked: shape (q1, p + 1, K1)
        G = np.empty((q1, self.p + 1, K1))
        for a in range(K1):
            za = zc[:, a]
            for j in range(self.p + 1):
                G[:, j, a] = np.bincount(codes, za * XY[:, j], minlength=q1)
        self.G = G

        self.mz = sum(b.size for b in rest)
        mz = self.mz
        m = mz + self.p + 1
        self.m = m
        Arr = np.empty((m, m))
        Arr[mz:, mz:] = XY.T @ XY
        if mz:
            Zr = sp.hstack([b.z_matrix(sqrt_w) for b in rest], format="csc")
            Zl = lead.z_matrix(sqrt_w).tocsc()
            Arr[:mz, :mz] = (Zr.T @ Zr).toarray()
            Azx = np.asarray(Zr.T @ XY)
            Arr[:mz, mz:] = Azx
            Arr[mz:, :mz] = Azx.T
            self.Az1 = (Zr.T @ Zl).tocoo()
            self._prepare_pairs()
        self.Arr = Arr
        self.n = n

    def _prepare_pairs(self) -> None:
        """Index arrays that turn B D⁻¹ B' into one gather and one bincount per θ.

        A "pair" is (row i of the other factors, lead level g) with the K1-vector
        of A_z1 entries; two pairs of the same g contribute a_ig' M_g a_lg to
        entry (i, l) of the Schur complement.
        """
        K1, mz = self.K1, self.mz
        A = self.Az1
        g = A.col // K1
        c = A.col % K1
        key = g.astype(np.int64) * mz + A.row
        uniq, inv = np.unique(key, return_inverse=True)
        npairs = uniq.shape[0]
        a = np.zeros((npairs, K1))
        np.add.at(a, (inv, c), A.data)
        pg = (uniq // mz).astype(np.int64)
        pi = (uniq % mz).astype(np.int64)
        self.pair_g, self.pair_i, self.pair_a = pg, pi, a
        # pairs are sorted by (g, i): pair p meets every earlier pair of its group (l <= i)
        start = np.searchsorted(pg, pg, side="left")
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
        # sums pair contributions into rows of the other factors
        self.pair_sum = sp.csr_matrix((np.ones(npairs), (pi, np.arange(npairs))), shape=(mz, npairs))

    def rest_scale(self, templates) -> tuple[np.ndarray | None, list]:
        """Diagonal scaling of the dense part (when every other block is scalar), else per-block templates."""
        scale = np.ones(self.m)
        general = []
        at = 0
        for b, T in zip(self.rest, templates[1:]):
            if b.K == 1:
                scale[at : at + b.q] = T[0, 0]
            else:
                general.append((at, b.q, b.K, T))
            at += b.size
        return scale, general

    def factor(self, templates) -> BlockedFactor:
        """Factor Ω at the relative covariance templates (engine block order)."""
        T1 = templates[0]
        K1, mz = self.K1, self.mz
        if K1 == 1:
            t2 = T1[0, 0] ** 2
            d = t2 * self.A11[:, 0, 0] + 1.0
            logdet_lead = float(np.sum(np.log(d)))
            D_inv = (1.0 / d)[:, None, None]
            Mg = t2 / d  # T1 D⁻¹ T1'
            H = self.G * Mg[:, None, None]
        else:
            D = np.matmul(np.matmul(T1.T, self.A11), T1)
            D[:, np.arange(K1), np.arange(K1)] += 1.0
            try:
                Lc = np.linalg.cholesky(D)
            except np.linalg.LinAlgError:
                return BlockedFactor(np.inf, D, np.empty((0, 0)), False)
            logdet_lead = 2.0 * float(np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2))))
            D_inv = np.linalg.inv(D)
            Mfull = np.matmul(np.matmul(T1, D_inv), T1.T)
            H = np.matmul(self.G, Mfull)
        S = self.Arr.copy()
        S[mz:, mz:] -= np.einsum("gpk,gqk->pq", H, self.G)
        if mz:
            if K1 == 1:
                vals = self.tri_prod * Mg[self.tri_g]
            else:
                vals = np.einsum("tk,tk->t", self.tri_prod, Mfull.reshape(-1, K1 * K1)[self.tri_g])
            Tzz = np.bincount(self.tri_flat, vals, minlength=mz * mz).reshape(mz, mz)
            Tzz += np.tril(Tzz, -1).T
            S[:mz, :mz] -= Tzz
            Tzx = self.pair_sum @ np.einsum("pjk,pk->pj", H[self.pair_g], self.pair_a)
            S[:mz, mz:] -= Tzx
            S[mz:, :mz] -= Tzx.T
            scale, general = self.rest_scale(templates)
            S *= scale[:, None]
            S *= scale[None, :]
            for at, q, K, T in general:
                sl = slice(at, at + q * K)
                S[:, sl] = (S[:, sl].reshape(self.m, q, K) @ T).reshape(self.m, q * K)
                S[sl, :] = np.einsum("ba,gbm->gam", T, S[sl, :].reshape(q, K, self.m)).reshape(q * K, self.m)
            idx = np.arange(mz)
            S[idx, idx] += 1.0
        L, info = lapack.dpotrf(S, lower=1, clean=0, overwrite_a=1)
        return BlockedFactor(logdet_lead, D_inv, L, info == 0)

    # ----- quantities derived from a factor (used once per fit, not per evaluation) -----

    def solve(self, templates, fac: BlockedFactor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spherical random effects and fixed effects at the factor.

        Returns
        -------
        u_lead : ndarray, shape (q1, K1)
        u_rest : ndarray, shape (mz,)
        beta : ndarray, shape (p,)
        """
        L = fac.L
        m, mz, p = self.m, self.mz, self.p
        c = L[m - 1, : m - 1]
        v = solve_triangular(L[: m - 1, : m - 1], c, lower=True, trans="T") if m > 1 else np.empty(0)
        u_rest, beta = v[:mz], v[mz:]
        b_rest = self.rest_b(templates, u_rest)
        rhs = self.G[:, p, :] - np.einsum("gpk,p->gk", self.G[:, :p, :], beta)
        if mz:
            rhs -= (self.Az1.T @ b_rest).reshape(self.q1, self.K1)
        T1 = templates[0]
        rhs = rhs @ T1  # T1' applied to each level's vector
        u_lead = np.einsum("gab,gb->ga", fac.D_inv, rhs)
        return u_lead, u_rest, beta

    def rest_b(self, templates, u_rest: np.ndarray) -> np.ndarray:
        """b = Λ u for the non-lead blocks."""
        out = np.empty_like(u_rest)
        at = 0
        for b, T in zip(self.rest, templates[1:]):
            out[at : at + b.size] = (u_rest[at : at + b.size].reshape(b.q, b.K) @ T.T).ravel()
            at += b.size
        return out

    def u_condvar(self, templates, fac: BlockedFactor) -> list[np.ndarray]:
        """Diagonal level blocks of (Λ'Z'ZΛ + I)⁻¹, per block, shape (q, K, K) each.

        These are the conditional covariances of the spherical random effects
        given the data at the estimates (lme4's condVar before scaling by Λ and σ²).
        """
        mz = self.mz
        out = []
        if not mz:
            return [fac.D_inv]
        Lzz = fac.L[:mz, :mz]
        # B = Λ_r' A_z1 Λ_1 (sparse, mz x q1K1), then W = Lzz⁻¹ B D⁻¹
        T1 = templates[0]
        K1, q1 = self.K1, self.q1
        scale, general = self.rest_scale(templates)
        B = (self.Az1.tocsr().multiply(scale[:mz, None])).toarray()
        for at, q, K, T in general:
            sl = slice(at, at + q * K)
            B[sl, :] = np.einsum("ba,gbm->gam", T, B[sl, :].reshape(q, K, -1)).reshape(q * K, -1)
        B = (B.reshape(mz, q1, K1) @ T1).reshape(mz, q1, K1)
        BD = np.einsum("mgk,gkj->mgj", B, fac.D_inv).reshape(mz, q1 * K1)
        W = solve_triangular(Lzz, BD, lower=True).reshape(mz, q1, K1)
        lead = fac.D_inv + np.einsum("mga,mgb->gab", W, W)
        out.append(lead)
        Linv = solve_triangular(Lzz, np.eye(mz), lower=True)
        Sinv = Linv.T @ Linv
        at = 0
        for b in self.rest:
            idx = at + np.arange(b.q)[:, None] * b.K + np.arange(b.K)[None, :]
            out.append(Sinv[idx[:, :, None], idx[:, None, :]])
            at += b.size
        return out
