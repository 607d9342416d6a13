"""Profiled deviance (ML) and REML criterion of a linear mixed model as a function of θ.

With b = Λθ u, β and σ² profiled out (Bates et al. 2015, JSS 67(1), eqs. 34 and 41):

    ML:    d(θ)   = log|L_θ|² + n (1 + log(2π r²(θ) / n))           - Σ log w
    REML:  d_R(θ) = log|L_θ|² + log|R_X|² + (n-p)(1 + log(2π r²(θ)/(n-p))) - Σ log w

where r² is the penalised residual sum of squares.  Both are −2 × the
(restricted) log-likelihood, constants included, so they compare with lme4.
"""

from __future__ import annotations

import numpy as np

from ..linalg import BlockedFactor, BlockedSystem

__all__ = ["LmmObjective"]


class LmmObjective:
    """Callable θ -> profiled deviance (or REML criterion).

    Parameters
    ----------
    structure : ModelStructure
    X : ndarray, shape (n, p)
        Full-rank fixed-effects design.
    y : ndarray, shape (n,)
        Response minus offset.
    weights : ndarray or None
        Prior weights (observation i has variance σ² / w_i).
    reml : bool
    """

    def __init__(self, structure, X, y, weights=None, reml=True):
        self.structure = structure
        self.reml = bool(reml)
        sqrt_w = None if weights is None else np.sqrt(weights)
        self.system = BlockedSystem(structure.blocks, X, y, sqrt_w)
        self.n, self.p = X.shape
        self.log_w_sum = 0.0 if weights is None else float(np.sum(np.log(weights)))
        self.n_evals = 0

    def factor(self, theta: np.ndarray) -> BlockedFactor:
        return self.system.factor(self.structure.templates(theta))

    def parts(self, fac: BlockedFactor) -> tuple[float, float, float]:
        """(log|L|², log|R_X|², r²) of a factor."""
        mz, p = self.system.mz, self.p
        logd = np.log(fac.L.diagonal())
        logdet_l = fac.logdet_lead + 2.0 * float(logd[:mz].sum())
        logdet_x = 2.0 * float(logd[mz : mz + p].sum())
        return logdet_l, logdet_x, float(fac.L[-1, -1]) ** 2

    def deviance_from(self, fac: BlockedFactor) -> float:
        if not fac.ok:
            return np.inf
        logdet_l, logdet_x, r2 = self.parts(fac)
        if self.reml:
            dof = self.n - self.p
            return logdet_l + logdet_x + dof * (1.0 + np.log(2.0 * np.pi * r2 / dof)) - self.log_w_sum
        n = self.n
        return logdet_l + n * (1.0 + np.log(2.0 * np.pi * r2 / n)) - self.log_w_sum

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        return self.deviance_from(self.factor(theta))

    def sigma2(self, fac: BlockedFactor) -> float:
        """Profiled residual variance: r² / n (ML) or r² / (n - p) (REML)."""
        r2 = float(np.diagonal(fac.L)[-1]) ** 2
        return r2 / (self.n - self.p if self.reml else self.n)
