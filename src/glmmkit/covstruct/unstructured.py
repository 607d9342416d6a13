"""lme4's terms: unstructured ``(x | g)`` and scalar ``(1 | g)``, and the diagonal ones
(``diag(x | g)``, one variance per column; ``homdiag(x | g)``, one variance for all)."""

from __future__ import annotations

import numpy as np

from .base import CovStructure

__all__ = ["Unstructured", "Scalar", "Diagonal", "HomDiagonal"]


class Unstructured(CovStructure):
    """lme4's ``(x | g)``: φ = the column-major lower triangle of T (k (k + 1) / 2 parameters).

    Parameters
    ----------
    k : int
        Number of columns of the term.
    """

    direct = True
    kind = "unstructured"
    label = "us"
    description = "unstructured"

    def __init__(self, k: int):
        self.k = int(k)
        self.n_params = self.k * (self.k + 1) // 2
        cols, rows = zip(*[(c, r) for c in range(self.k) for r in range(c, self.k)])
        self.pattern = (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64))
        self._diag = np.flatnonzero(self.pattern[0] == self.pattern[1])

    def names(self, label, columns):
        rows, cols = self.pattern
        return [f"{label}.{columns[r]}" if r == c else f"{label}.{columns[r]}.{columns[c]}" for r, c in zip(rows, cols)]

    def lower(self):
        out = np.full(self.n_params, -np.inf)
        out[self._diag] = 0.0
        return out

    def start(self):
        out = np.zeros(self.n_params)
        out[self._diag] = 1.0
        return out

    def sign_flips(self):
        rows, cols = self.pattern
        out = {}
        for i in self._diag:
            below = np.flatnonzero((cols == cols[i]) & (rows > rows[i]))
            if below.size:
                out[int(i)] = below
        return out

    def scaled_start(self, column_rms):
        # 1 / rms on each diagonal: b·x has unit scale even for a covariate in the hundreds
        out = self.start()
        rms = np.asarray(column_rms, dtype=float)
        ok = (rms > 0) & np.isfinite(rms)
        out[self._diag[ok]] = 1.0 / rms[ok]
        return out

    def template(self, phi):
        T = np.zeros((self.k, self.k))
        T[self.pattern] = phi
        return T

    def jacobian(self, phi):
        return np.eye(self.n_params)

    def from_template(self, T):
        return np.asarray(T, dtype=float)[self.pattern].copy()

    def is_singular(self, phi, tol=1e-4):
        return bool(np.any(np.abs(np.asarray(phi)[self._diag]) < tol))


class Scalar(Unstructured):
    """One column: ``(1 | g)``, ``(0 + x | g)``, each term of ``(x || g)``; T = [φ], φ >= 0."""

    kind = "scalar"

    def __init__(self):
        super().__init__(1)

    def __repr__(self) -> str:
        return "Scalar()"


class Diagonal(CovStructure):
    """``diag(x | g)``: one standard deviation per column, no correlations (lme4's ``(x || g)`` as
    one term); φ = the template's diagonal, φ >= 0.

    Parameters
    ----------
    k : int
        Number of columns of the term.
    """

    direct = True
    kind = "diagonal"
    label = "diag"
    description = "diagonal"

    def __init__(self, k: int):
        self.k = int(k)
        self.n_params = self.k
        idx = np.arange(self.k, dtype=np.int64)
        self.pattern = (idx, idx.copy())

    def names(self, label, columns):
        return [f"{label}.{c}" for c in columns]

    def lower(self):
        return np.zeros(self.k)

    def start(self):
        return np.ones(self.k)

    def scaled_start(self, column_rms):
        rms = np.asarray(column_rms, dtype=float)
        return np.where((rms > 0) & np.isfinite(rms), 1.0 / np.where(rms > 0, rms, 1.0), 1.0)

    def template(self, phi):
        return np.diag(np.asarray(phi, dtype=float))

    def jacobian(self, phi):
        return np.eye(self.k)

    def from_template(self, T):
        S = np.asarray(T, dtype=float) @ np.asarray(T, dtype=float).T
        return np.sqrt(np.maximum(np.diag(S), 0.0))

    def is_singular(self, phi, tol=1e-4):
        return bool(np.any(np.abs(np.asarray(phi)) < tol))

    def natural(self, phi, sigma, columns):
        return [(f"sd_{c}", float(sigma * p), 0.0, np.inf) for c, p in zip(columns, phi)]

    def from_natural(self, values, sigma):
        return np.asarray(values, dtype=float) / sigma

    def __repr__(self) -> str:
        return f"Diagonal(k={self.k})"


class HomDiagonal(CovStructure):
    """``homdiag(x | g)``: one standard deviation shared by every column, no correlations
    (T = s I, s >= 0).

    Parameters
    ----------
    k : int
        Number of columns of the term.
    """

    kind = "homdiag"
    label = "homdiag"
    description = "homogeneous diagonal"

    def __init__(self, k: int):
        self.k = int(k)
        self.n_params = 1
        idx = np.arange(self.k, dtype=np.int64)
        self.pattern = (idx, idx.copy())

    def names(self, label, columns):
        return [f"{label}.sd"]

    def lower(self):
        return np.zeros(1)

    def start(self):
        return np.ones(1)

    def scaled_start(self, column_rms):
        rms = np.asarray(column_rms, dtype=float)
        rms = rms[(rms > 0) & np.isfinite(rms)]
        return np.array([1.0 / np.sqrt(np.mean(rms**2))]) if rms.size else self.start()

    def template(self, phi):
        return float(phi[0]) * np.eye(self.k)

    def jacobian(self, phi):
        return np.ones((self.k, 1))

    def from_template(self, T):
        S = np.asarray(T, dtype=float) @ np.asarray(T, dtype=float).T
        return np.array([np.sqrt(max(float(np.mean(np.diag(S))), 0.0))])

    def is_singular(self, phi, tol=1e-4):
        return bool(abs(float(phi[0])) < tol)

    def natural(self, phi, sigma, columns):
        return [("sd", float(sigma * phi[0]), 0.0, np.inf)]

    def from_natural(self, values, sigma):
        return np.asarray(values, dtype=float) / sigma

    def __repr__(self) -> str:
        return f"HomDiagonal(k={self.k})"
