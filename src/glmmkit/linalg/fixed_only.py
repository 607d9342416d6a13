"""The PLS system of a model without random effects (nlme's ``gls``: a residual structure only).

The same interface as ``BlockedSystem`` for the pieces an LMM objective and fit use
(``factor``, ``solve``, ``rest_b``, ``mz``, ``p``), with Ω = [X y]'[X y]: its Cholesky
factor holds R_X and the residual sum of squares, and there is no random-effect block.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .blocked import BlockedFactor

__all__ = ["FixedOnlySystem"]


class FixedOnlySystem:
    """[X y]'[X y] of a model with no random-effects term.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    y : ndarray, shape (n,)
    sqrt_w : ndarray, optional
        Square roots of the prior weights.
    """

    mz = 0
    rest: list = []
    lead = None
    K1 = 0
    q1 = 0

    def __init__(self, X, y, sqrt_w=None):
        XY = np.column_stack([X, y]).astype(float)
        if sqrt_w is not None:
            XY = XY * sqrt_w[:, None]
        self.n, self.p = X.shape
        self.m = self.p + 1
        self.Arr = XY.T @ XY

    def factor(self, templates) -> BlockedFactor:
        try:
            L = np.linalg.cholesky(self.Arr)
        except np.linalg.LinAlgError:
            return BlockedFactor(0.0, np.full((self.m, self.m), np.nan), False)
        return BlockedFactor(0.0, L, True)

    def solve(self, templates, fac: BlockedFactor):
        L, p = fac.L, self.p
        beta = (solve_triangular(L[:p, :p], L[p, :p], lower=True, trans="T", check_finite=False)
                if p else np.zeros(0))
        return np.zeros((0, 0)), np.zeros(0), beta

    def rest_b(self, templates, u_rest):
        return np.zeros(0)
