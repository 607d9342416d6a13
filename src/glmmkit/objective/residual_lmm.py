"""Profiled deviance of an LMM with a residual correlation structure, as a function of (θ, ψ).

Var(y) = Z G Z' + σ² R(ψ), R block-diagonal over clusters.  With W'W = R⁻¹
(``ResidualStructure.whiten``), W y has residual covariance σ² I, so

    d(θ, ψ) = d*(θ; W Z, W X, W y) + log|R(ψ)|

with d* the ordinary profiled deviance (or REML criterion) of the whitened model.  W
mixes the rows of a cluster only, and the cluster is nested in every grouping factor
(checked when the structure is built), so W Z keeps Z's pattern: each block's
columns are whitened and its factor codes stay.  Each ψ costs one pass over the
rows (whitening and the crossproducts); each θ at that ψ none.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .lmm import LmmObjective

__all__ = ["ResidualLmmObjective", "WhitenedLmmObjective"]


class WhitenedLmmObjective(LmmObjective):
    """The LMM objective of the whitened model at one ψ, its deviance shifted by log|R(ψ)|.

    The shift rides on ``log_w_sum`` (which every deviance formula subtracts: the log-Jacobian of
    the rows' transform), so the unprofiled deviances of inference see it too.

    Parameters
    ----------
    structure : ModelStructure
        The random-effects terms and θ parameterisation.
    blocks : list of ReBlock
        The structure's blocks with their columns whitened (W Z); factors and templates unchanged.
    X : ndarray, shape (n, p)
        The whitened fixed-effects design W X.
    y : ndarray, shape (n,)
        The whitened response W (y − offset).
    reml : bool
        REML criterion (True) or ML profiled deviance (False).
    logdet_r : float
        log|R(ψ)| (less the prior weights' Σ log w): added to every deviance.
    """

    def __init__(self, structure, blocks, X, y, reml, logdet_r: float):
        super().__init__(structure, X, y, None, reml=reml, blocks=blocks)
        self.logdet_r = float(logdet_r)
        self.log_w_sum = -self.logdet_r


class ResidualLmmObjective:
    """Callable x = (θ, ψ) -> profiled deviance (or REML criterion).

    Parameters
    ----------
    structure : ModelStructure
        The random-effects terms and θ parameterisation.
    X : ndarray, shape (n, p)
        Full-rank fixed-effects design, in the fit's row order.
    y : ndarray, shape (n,)
        Response minus offset.
    weights : ndarray or None
        Prior weights (variance σ² R / w, scaled on both sides).
    reml : bool
        REML criterion (True) or ML profiled deviance (False).
    residual : ResidualStructure
        The residual correlation (and variance) structure R(ψ) and its cluster/time layout.
    sorted_rows : bool, default False
        Keep the whitened rows in (cluster, time) order and permute the blocks' factor codes once
        (cheaper per ψ: the optimiser's objective); False keeps the fit's row order (the packaged
        fit's objective).
    """

    def __init__(self, structure, X, y, weights, reml, residual, sorted_rows: bool = False):
        self.structure = structure
        self.residual = residual
        self.reml = bool(reml)
        self.n_theta = structure.n_theta
        order = residual.layout.order
        self._order = order
        # sorted_rows: the whitened rows stay in (cluster, time) order and the blocks' factor codes are
        # permuted once (the optimiser's objective: no gather per ψ); otherwise they go back to the
        # fit's row order (the packaged fit's objective, whose rows are the frame's)
        self._inverse = None
        if sorted_rows:
            self._blocks = [dataclasses.replace(b, factor=dataclasses.replace(b.factor, codes=b.factor.codes[order]))
                            for b in structure.blocks]
        else:
            self._blocks = list(structure.blocks)
            self._inverse = np.empty_like(order)
            self._inverse[order] = np.arange(order.shape[0])
        sqrt_w = None if weights is None else np.sqrt(np.asarray(weights, dtype=float))
        self.log_w_sum = 0.0 if weights is None else float(np.sum(np.log(weights)))
        cols = [b.columns for b in structure.blocks] + [X, y[:, None]]
        A = np.hstack(cols).astype(float)
        if sqrt_w is not None:
            A = A * sqrt_w[:, None]
        self._A_sorted = np.asfortranarray(A[order])
        self._splits = np.cumsum([b.columns.shape[1] for b in structure.blocks] + [X.shape[1]])
        self.n, self.p = X.shape
        self.n_evals = 0
        self._cache = (None, None)

    def split(self, x):
        """θ and ψ of a parameter vector.

        Parameters
        ----------
        x : array-like, shape (n_theta + n_psi,)
            (θ, ψ) concatenated.

        Returns
        -------
        theta, psi : ndarray
            Views of ``x``.
        """
        x = np.asarray(x, dtype=float)
        return x[: self.n_theta], x[self.n_theta:]

    def at(self, psi) -> WhitenedLmmObjective | None:
        """The whitened objective at ψ (None where R(ψ) is not positive definite).

        Parameters
        ----------
        psi : array-like
            The residual structure's parameters (its engine scale).

        Returns
        -------
        WhitenedLmmObjective or None
            Cached for the last ψ asked for.
        """
        psi = np.asarray(psi, dtype=float)
        key, obj = self._cache
        if key is not None and np.array_equal(key, psi):
            return obj
        WA, logdet = self.residual.whiten(psi, self._A_sorted)
        if WA is None or not np.isfinite(logdet):
            obj = None
        else:
            if self._inverse is not None:
                WA = WA[self._inverse]
            parts = np.split(WA, self._splits, axis=1)  # views: column-major, so 1-column parts are contiguous
            blocks = [dataclasses.replace(b, columns=c if c.shape[1] == 1 else np.ascontiguousarray(c))
                      for b, c in zip(self._blocks, parts[:-2])]
            obj = WhitenedLmmObjective(self.structure, blocks, parts[-2], parts[-1][:, 0], self.reml,
                                       logdet - self.log_w_sum)
        self._cache = (psi.copy(), obj)
        return obj

    def __call__(self, x) -> float:
        self.n_evals += 1
        theta, psi = self.split(x)
        obj = self.at(psi)
        if obj is None:
            return np.inf
        return obj(theta)
