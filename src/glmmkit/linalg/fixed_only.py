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
        Fixed-effects design.
    y : ndarray, shape (n,)
        Response (minus any offset).
    sqrt_w : ndarray, optional
        Square roots of the prior weights (rows multiplied by them).
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
        """The Cholesky factor of [X y]'[X y] (it holds R_X and the residual sum of squares).

        Parameters
        ----------
        templates : list
            Unused: there is no random-effects block (``BlockedSystem``'s interface).

        Returns
        -------
        BlockedFactor
            ``logdet_lead`` 0 and L lower (p + 1, p + 1); all-NaN L with ``ok`` False when [X y] is rank deficient.
        """
        try:
            L = np.linalg.cholesky(self.Arr)
        except np.linalg.LinAlgError:
            return BlockedFactor(0.0, np.full((self.m, self.m), np.nan), False)
        return BlockedFactor(0.0, L, True)

    def solve(self, templates, fac: BlockedFactor):
        """The generalised least-squares β from the factor (no random effects to solve for).

        Parameters
        ----------
        templates : list
            Unused (``BlockedSystem``'s interface).
        fac : BlockedFactor
            From :meth:`factor`.

        Returns
        -------
        u_lead : ndarray, shape (0, 0)
        u_rest : ndarray, shape (0,)
        beta : ndarray, shape (p,)
        """
        L, p = fac.L, self.p
        beta = (solve_triangular(L[:p, :p], L[p, :p], lower=True, trans="T", check_finite=False)
                if p else np.zeros(0))
        return np.zeros((0, 0)), np.zeros(0), beta

    def rest_b(self, templates, u_rest):
        """No non-lead random effects: an empty vector (``BlockedSystem``'s interface).

        Parameters
        ----------
        templates : list
            Unused.
        u_rest : numpy.ndarray
            Unused (empty).

        Returns
        -------
        numpy.ndarray, shape (0,)
            Empty.
        """
        return np.zeros(0)
