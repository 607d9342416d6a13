"""Hat values and effective degrees of freedom (trace of the hat matrix).

With V = [ZΛ X], weights W (prior weights for an LMM; the PIRLS working weights
at convergence for a GLMM) and Ω = V'WV + diag(I, 0), the fitted values are
H z with H = V Ω⁻¹ V'W.  Write M = Λ'Z'WZΛ + I, F = M⁻¹Λ'Z'WX and R_X'R_X =
X'WX − X'WZΛ F (the fixed-effects block of the factor).  Then

    h_i = w_i [ z̃_i'M⁻¹z̃_i + ||R_X⁻ᵀ (F'z̃_i − x_i)||² ],     z̃_i = Λ'z_i,

the first term from M⁻¹ on the pattern of Z'Z (the Laplace gradient's
leverages), the second from p solves with M.  trace(H) = Σ h_i is the effective
number of parameters (seed 000): between p (σ_b → 0) and p + q (no shrinkage).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from ..linalg import BlockedSystem
from ..objective.glmm import row_leverages

__all__ = ["hat_diagonal"]


def hat_diagonal(structure, X: np.ndarray, w: np.ndarray | None, theta: np.ndarray) -> np.ndarray:
    """Diagonal of the hat matrix at θ for design X and weights w.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects structure (Z, Λ(θ) templates, blocks).
    X : numpy.ndarray, shape (n, p)
        Fixed-effects design (the kept, full-rank columns); p may be 0.
    w : numpy.ndarray, shape (n,), or None
        Weights: prior weights for an LMM, PIRLS working weights at convergence for a GLMM;
        None means all 1.
    theta : numpy.ndarray
        Relative covariance parameters θ at which Λ is built.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Hat values h_i in [0, 1]; their sum is the effective number of parameters (between p and p + q).
    """
    theta = np.asarray(theta, dtype=float)
    n, p = X.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    system = BlockedSystem(structure.blocks, X, np.zeros(n), np.sqrt(w))
    templates = structure.templates(theta)
    fac = system.factor(templates)
    parts = system.inverse_parts(templates, fac)
    c, _ = row_leverages(structure, parts, templates)
    if p == 0:
        return w * c
    Z = structure.z_matrix()
    rhs = structure.lambda_t(templates, np.asarray(Z.T @ (X * w[:, None])))
    F = np.column_stack([system.solve_rhs(templates, fac, rhs[:, j]) for j in range(p)])
    A = Z @ structure.b_of(templates, F) - X
    mz = system.mz
    L_X = np.tril(fac.L[mz : mz + p, mz : mz + p])
    Q = solve_triangular(L_X, A.T, lower=True, check_finite=False)
    return w * (c + np.sum(Q * Q, axis=0))
