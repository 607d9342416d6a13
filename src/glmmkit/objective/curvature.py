"""A cheap approximate Hessian of the Laplace deviance at a PIRLS mode, as L-BFGS-B's metric.

L-BFGS-B starts from the identity as its inverse Hessian.  On a GLMM the fixed effects' curvature
is of the order of the number of rows and the covariance parameters' of the number of levels, so
its first steps overshoot (a unit step in the intercept) or crawl (θ), and on a large crossed design
each wasted evaluation is a dense factorisation and inverse.  This approximation costs p solves with
the factor the mode already has and one pass over the rows:

- β: 2 (X'WX − X'WZΛ M⁻¹ Λ'Z'WX), the information of β with the random effects integrated out
  at fixed W (lme4's ``use.hessian = FALSE`` covariance, inverted);
- θ, block by block: twice the expected information of an LMM with the working weights, each level
  on its own (V_j = G + A_j⁻¹, A_j = Σ_rows w z z', I_ab = ½ Σ_j tr(V_j⁻¹ ∂G/∂θ_a V_j⁻¹ ∂G/∂θ_b)),
  which ignores the other grouping factors and θ's coupling with β.

Its error only slows the optimiser's convergence; the estimates and their Hessian do not use it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["laplace_curvature"]


def _level_information(blk, T: np.ndarray, w: np.ndarray) -> np.ndarray:
    """½ Σ_j tr(V_j⁻¹ Ġ_a V_j⁻¹ Ġ_b) over the template entries (a, b) of one block, V_j = TT' + A_j⁻¹."""
    K, q = blk.K, blk.q
    codes = blk.factor.codes
    cols = blk.columns
    # A_j = Σ_rows w z z' per level, (q, K, K), by one bincount per distinct product
    A = np.empty((q, K, K))
    for a in range(K):
        for b in range(a + 1):
            A[:, a, b] = A[:, b, a] = np.bincount(codes, weights=w * cols[:, a] * cols[:, b], minlength=q)[:q]
    # V⁻¹ = A − A T (I + T'AT)⁻¹ T'A (Woodbury; no inverse of A, which is singular for an empty level)
    AT = A @ T
    Mj = np.eye(K) + np.einsum("ka,jkb->jab", T, AT)
    Vinv = A - AT @ np.linalg.solve(Mj, np.transpose(AT, (0, 2, 1)))
    entries = list(zip(blk.tpl_rows, blk.tpl_cols))
    Gdot = []
    for r, c in entries:  # ∂(TT')/∂T_rc = E_rc T' + T E_cr
        E = np.zeros((K, K))
        E[r, c] = 1.0
        Gdot.append(E @ T.T + T @ E.T)
    VG = [Vinv @ G for G in Gdot]  # (q, K, K) each
    m = len(entries)
    info = np.empty((m, m))
    for i in range(m):
        for k in range(i + 1):
            info[i, k] = info[k, i] = 0.5 * float(np.einsum("jab,jba->", VG[i], VG[k]))
    return info


def laplace_curvature(obj, state, theta: np.ndarray) -> np.ndarray:
    """Approximate Hessian of the Laplace deviance in (θ, β) at a PIRLS mode at fixed β.

    Parameters
    ----------
    obj : GlmmObjective
        The objective (X, Z, structure, family) whose ``layout`` is (θ, β).
    state : PirlsState
        The mode at (θ, β), with its system and factor (β held fixed: the system has no X columns).
    theta : numpy.ndarray, shape (n_theta,)
        The covariance parameters of ``state``.

    Returns
    -------
    numpy.ndarray, shape (n_theta + p, n_theta + p)
        Block diagonal: θ's blocks (one per random-effects block), then β's; zero between them.
    """
    structure = obj.structure
    templates = structure.templates(theta)
    W = getattr(state, "_score_weights", (None, None))[1]  # the gradient's W at this mode, if it ran
    if W is None:
        _, W, _ = obj.family.working(state.eta, obj.y, obj.wt)
    nt, p = obj.n_theta, obj.p
    H = np.zeros((nt + p, nt + p))
    if p:
        WX = W[:, None] * obj.X
        R = np.column_stack([structure.lambda_t(templates, obj._Zt @ WX[:, j]) for j in range(p)])
        MR = np.column_stack([state.system.solve_rhs(templates, state.factor, R[:, j]) for j in range(p)])
        H[nt:, nt:] = 2.0 * (obj.X.T @ WX - R.T @ MR)
    jac = structure.template_jacobian(theta)
    for blk, T, J in zip(structure.blocks, templates, jac):
        H[:nt, :nt] += 2.0 * J.T @ _level_information(blk, np.asarray(T, dtype=float), W) @ J
    return H
