"""A known relationship matrix up to scale: G = σ_g² K over the levels of a factor (pedigrees,
kinship, phylogenies; glmmTMB's ``propto``, lme4qtl's ``relmat``).

``lmer(..., relmat={"animal": K})`` with ``(1 | animal)`` in the formula: with K = L L' the
random effects are b = L b*, b* ~ N(0, σ_g² I), so the term's columns become Z L (row i is row
``code_i`` of L) and the term is one block of one level with q columns and the template s·I
(lme4qtl's transformation).  The engine factors that q × q block densely: cubic in the number of
related levels, so meant for up to a few thousand of them.  Effects, conditional variances and
predictions are reported per level of the factor, through L.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .unstructured import HomDiagonal

__all__ = ["RelatedLevels", "relationship_factor"]


def relationship_factor(K, levels: list[str], name: str) -> np.ndarray:
    """L with L L' = K restricted to ``levels`` (rows in that order).

    Parameters
    ----------
    K : DataFrame, or (array, labels)
        The relationship matrix, labelled by level on both axes (labels compared as strings).
    levels : list of str
        The factor's levels in the data.
    name : str
        The factor's name, for messages.

    Returns
    -------
    numpy.ndarray, shape (len(levels), len(levels))
        The Cholesky factor of K[levels, levels] or, when K is only semi-definite (e.g. clones),
        the symmetric square root V diag(√w) of its eigen-decomposition.

    Raises
    ------
    ArgumentError
        When K is not square and labelled, misses levels of the data, has non-finite entries, is not
        symmetric, or is not positive semi-definite.
    """
    from ..exceptions import ArgumentError

    if isinstance(K, tuple) and len(K) == 2:
        arr, labels = K
        K = pd.DataFrame(np.asarray(arr, dtype=float), index=list(labels), columns=list(labels))
    if not isinstance(K, pd.DataFrame):
        raise ArgumentError(f"relmat[{name!r}] must be a DataFrame labelled by level on both axes (or a tuple "
                            f"(array, labels)), got {type(K).__name__}")
    if K.shape[0] != K.shape[1]:
        raise ArgumentError(f"relmat[{name!r}] must be square, got shape {K.shape}")
    K = K.copy()
    K.index = K.index.map(str)
    K.columns = K.columns.map(str)
    if not K.index.equals(K.columns):
        K = K.loc[:, list(K.index)] if set(K.index) == set(K.columns) else None
        if K is None:
            raise ArgumentError(f"relmat[{name!r}]'s rows and columns must carry the same level labels")
    missing = [lv for lv in levels if lv not in K.index]
    if missing:
        raise ArgumentError(f"relmat[{name!r}] has no row for {len(missing)} level(s) of {name!r} in the data, "
                            f"e.g. {missing[:5]}; give K for every level")
    M = K.loc[levels, levels].to_numpy(dtype=float)
    if not np.all(np.isfinite(M)):
        raise ArgumentError(f"relmat[{name!r}] has missing or infinite entries")
    if not np.allclose(M, M.T, atol=1e-10 * max(1.0, float(np.abs(M).max()))):
        raise ArgumentError(f"relmat[{name!r}] is not symmetric")
    w, V = np.linalg.eigh(M)
    if w.min() < -1e-8 * max(1.0, float(w.max())):
        bad = levels[int(np.argmax(np.abs(V[:, 0])))]
        raise ArgumentError(f"relmat[{name!r}] is not positive semi-definite (smallest eigenvalue {w.min():.3g}, "
                            f"its eigenvector largest at level {bad!r}); check the relationship matrix")
    try:
        return np.linalg.cholesky(M)
    except np.linalg.LinAlgError:  # semi-definite (e.g. clones): a symmetric square root
        return V * np.sqrt(np.maximum(w, 0.0))


class RelatedLevels(HomDiagonal):
    """The structure of a ``relmat`` term: one standard deviation s (σ_g = σ s), b = L b*.

    Parameters
    ----------
    L : ndarray, shape (q, q)
        A factor of the relationship matrix over the factor's levels (L L' = K).
    levels : list of str
        Those levels.
    """

    kind = "relmat"
    label = "relmat"
    description = "known relationship matrix"

    def __init__(self, L: np.ndarray, levels: list[str]):
        super().__init__(L.shape[0])
        self.L = np.asarray(L, dtype=float)
        self.levels = list(levels)

    def names(self, label, columns):
        """The one parameter's name, ``label.sd``.

        Parameters
        ----------
        label : str
            The term's label.
        columns : list of str
            The term's columns (unused: one parameter whatever the levels).

        Returns
        -------
        list of str
            One name.
        """
        return [f"{label}.sd"]

    def natural(self, phi, sigma, columns):
        """The standard deviation σ_g = σ s, named as a random intercept's, ``sd_(Intercept)``.

        Parameters
        ----------
        phi : numpy.ndarray, shape (1,)
            The relative standard deviation s.
        sigma : float
            Residual standard deviation (1 for models without a scale).
        columns : list of str
            The term's columns (unused).

        Returns
        -------
        list of tuple
            ``[("sd_(Intercept)", σ s, 0.0, inf)]``.
        """
        return [("sd_(Intercept)", float(sigma * phi[0]), 0.0, np.inf)]

    def level_effects(self, b_star: np.ndarray) -> np.ndarray:
        """Per-level effects b = L b* from the block's effects b*.

        Parameters
        ----------
        b_star : numpy.ndarray, shape (q,) or (q, m)
            The block's (independent) effects, one column per set (e.g. simulations).

        Returns
        -------
        numpy.ndarray, shape (q,) or (q, m)
            The effects of the factor's levels, in ``levels`` order.
        """
        return self.L @ b_star

    def level_condvar(self, V: np.ndarray) -> np.ndarray:
        """Per-level conditional variances, diag(L V L'), from the block's covariance.

        Parameters
        ----------
        V : numpy.ndarray, shape (q, q)
            Conditional covariance of b*.

        Returns
        -------
        numpy.ndarray, shape (q,)
            The conditional variance of each level's effect.
        """
        return np.einsum("ij,jk,ik->i", self.L, V, self.L)

    def rows_for(self, codes: np.ndarray) -> np.ndarray:
        """The term's columns for rows at the given levels: row ``code`` of L.

        Parameters
        ----------
        codes : numpy.ndarray of int, shape (n,)
            Level index of each row in ``levels``; -1 for a level not in the fit.

        Returns
        -------
        numpy.ndarray, shape (n, q)
            Rows of L (a zero row for code -1, so a new level gets the population prediction).
        """
        out = self.L[np.maximum(codes, 0)].copy()
        out[codes < 0] = 0.0
        return out

    def __repr__(self) -> str:
        return f"RelatedLevels(q={self.k})"
