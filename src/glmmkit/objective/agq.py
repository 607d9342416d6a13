"""Adaptive Gauss–Hermite quadrature over each level's random effects (one grouping factor).

The one product rule both the AGQ deviance (``GlmmObjective.agq_deviance``) and
the empirical-Bayes posterior moments (``inference.empirical_bayes``) use: nodes
centred at the conditional mode û_g of each level and scaled by the Cholesky
factor of the curvature D_g = T'(Σ_{i∈g} W_i z_i z_i')T + I there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LevelNodes", "level_nodes"]


@dataclass
class LevelNodes:
    """Log integrand at every node of every level.

    Attributes
    ----------
    log_terms : ndarray, shape (nodes, q)
        log p(y_g | b) + log φ(u) + log weight, on the rule's scale (``logsumexp`` over nodes,
        minus ``logdet_L`` and K/2 log 2π, is each level's log-likelihood).
    U : ndarray, shape (nodes, q, K)
        Spherical random effects at the nodes (b = U T').
    logdet_L : ndarray, shape (q,)
        log |L_g|, L_g L_g' = D_g.
    """

    log_terms: np.ndarray
    U: np.ndarray
    logdet_L: np.ndarray


def level_nodes(block, T, fixed, u_hat, y, wt, family, eta_mode, nagq: int) -> LevelNodes:
    """Evaluate the integrand of every level at an ``nagq``-point product rule per dimension.

    Parameters
    ----------
    block : ReBlock
        The one grouping factor's block.
    T : ndarray, shape (K, K)
        Its template (relative covariance factor).
    fixed : ndarray, shape (n,)
        Xβ + offset.
    u_hat : ndarray, shape (q, K)
        Conditional modes.
    y, wt : ndarray, shape (n,)
        Response (engine scale) and prior weights.
    family : Family
        Bound to its parameters where it has any.
    eta_mode : ndarray, shape (n,)
        The linear predictor at the mode (for the curvature's weights).
    nagq : int
        Gauss-Hermite nodes per dimension (k > 1).

    Returns
    -------
    LevelNodes
    """
    q, K = block.q, block.K
    codes, zc = block.factor.codes, block.columns
    _, W, _ = family.working(eta_mode, y, wt)
    A = np.empty((q, K, K))
    for a in range(K):
        for c in range(a + 1):
            A[:, a, c] = A[:, c, a] = np.bincount(codes, W * zc[:, a] * zc[:, c], minlength=q)
    D = np.matmul(np.matmul(T.T, A), T) + np.eye(K)
    Lc = np.linalg.cholesky(D)  # D = L L'
    x, w = np.polynomial.hermite_e.hermegauss(nagq)  # ∫ f(x) exp(-x²/2) dx ≈ Σ w f(x)
    grids = np.stack(np.meshgrid(*([x] * K), indexing="ij"), -1).reshape(-1, K)
    logw = np.sum(np.log(np.stack(np.meshgrid(*([w] * K), indexing="ij"), -1).reshape(-1, K)), axis=1)
    Linv_T = np.linalg.inv(np.transpose(Lc, (0, 2, 1)))  # L⁻ᵀ per level
    const_g = np.bincount(codes, family.loglik_constant(y, wt), minlength=q)
    terms = np.empty((grids.shape[0], q))
    Us = np.empty((grids.shape[0], q, K))
    for k, xk in enumerate(grids):  # nagq^K passes over the rows
        U = u_hat + Linv_T @ xk  # (q, K)
        eta = fixed + np.einsum("ik,ik->i", zc, (U @ T.T)[codes])
        ll = const_g + np.bincount(codes, family.loglik_kernel(y, family.link.inverse(eta), wt), minlength=q)
        terms[k] = ll - 0.5 * np.sum(U * U, axis=1) + 0.5 * float(xk @ xk) + logw[k]
        Us[k] = U
    logdet_L = np.sum(np.log(np.diagonal(Lc, axis1=1, axis2=2)), axis=1)
    return LevelNodes(terms, Us, logdet_L)
