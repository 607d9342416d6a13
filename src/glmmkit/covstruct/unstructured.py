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
        """Names ``label.col`` for diagonal entries and ``label.row.col`` below, in φ's (column-major) order.

        Parameters
        ----------
        label : str
            The term's label (e.g. ``"Subject"``), the names' prefix.
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of str
            k (k + 1) / 2 names.
        """
        rows, cols = self.pattern
        return [f"{label}.{columns[r]}" if r == c else f"{label}.{columns[r]}.{columns[c]}" for r, c in zip(rows, cols)]

    def lower(self):
        """Lower bounds: 0 for the template's diagonal entries, -inf below it.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        out = np.full(self.n_params, -np.inf)
        out[self._diag] = 0.0
        return out

    def start(self):
        """lme4's start: the identity template (diagonal 1, off-diagonal 0).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        out = np.zeros(self.n_params)
        out[self._diag] = 1.0
        return out

    def sign_flips(self):
        """Off-diagonal entries below each diagonal one: their sign is free when that diagonal is 0.

        Returns
        -------
        dict
            Position of a diagonal entry in φ -> positions of the entries below it in its column
            (only columns with entries below).
        """
        rows, cols = self.pattern
        out = {}
        for i in self._diag:
            below = np.flatnonzero((cols == cols[i]) & (rows > rows[i]))
            if below.size:
                out[int(i)] = below
        return out

    def scaled_start(self, column_rms):
        # 1 / rms on each diagonal: b·x has unit scale even for a covariate in the hundreds
        """The identity start with 1 / rms on each diagonal, so b·x has unit scale even for a covariate in the hundreds.

        Parameters
        ----------
        column_rms : numpy.ndarray, shape (k,)
            Root mean square of each of the term's columns over the rows.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ (diagonal entries of zero or non-finite rms stay 1).
        """
        out = self.start()
        rms = np.asarray(column_rms, dtype=float)
        ok = (rms > 0) & np.isfinite(rms)
        out[self._diag[ok]] = 1.0 / rms[ok]
        return out

    def template(self, phi):
        """T with φ scattered into its lower triangle, column by column (lme4's θ layout).

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The template.
        """
        T = np.zeros((self.k, self.k))
        T[self.pattern] = phi
        return T

    def jacobian(self, phi):
        """The identity: the pattern entries are φ itself.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (n_params, n_params)
            The identity matrix.
        """
        return np.eye(self.n_params)

    def from_template(self, T):
        """The lower triangle of T, column-major: φ is the template.

        Parameters
        ----------
        T : numpy.ndarray, shape (k, k)
            A lower-triangular template.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            A copy of T's pattern entries.
        """
        return np.asarray(T, dtype=float)[self.pattern].copy()

    def is_singular(self, phi, tol=1e-4):
        """A diagonal entry of T within ``tol`` of 0 (lme4's isSingular).

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        tol : float, default 1e-4
            How close to the boundary counts as on it.

        Returns
        -------
        bool
            True when the term is on the boundary.
        """
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
        """Names ``label.col``, one per column.

        Parameters
        ----------
        label : str
            The term's label (e.g. ``"Subject"``), the names' prefix.
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of str
            k names.
        """
        return [f"{label}.{c}" for c in columns]

    def lower(self):
        """Lower bounds 0 (standard deviations).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Zeros.
        """
        return np.zeros(self.k)

    def start(self):
        """Start with relative standard deviation 1.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Ones.
        """
        return np.ones(self.k)

    def scaled_start(self, column_rms):
        """1 / rms of each column (1 where the rms is zero or not finite).

        Parameters
        ----------
        column_rms : numpy.ndarray, shape (k,)
            Root mean square of each of the term's columns over the rows.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        rms = np.asarray(column_rms, dtype=float)
        return np.where((rms > 0) & np.isfinite(rms), 1.0 / np.where(rms > 0, rms, 1.0), 1.0)

    def template(self, phi):
        """T = diag(φ).

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            A diagonal template.
        """
        return np.diag(np.asarray(phi, dtype=float))

    def jacobian(self, phi):
        """The identity: the diagonal entries are φ.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, n_params)
            The identity matrix.
        """
        return np.eye(self.k)

    def from_template(self, T):
        """The standard deviations of T T' (its correlations dropped).

        Parameters
        ----------
        T : numpy.ndarray, shape (k, k)
            A lower-triangular template.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Non-negative φ.
        """
        S = np.asarray(T, dtype=float) @ np.asarray(T, dtype=float).T
        return np.sqrt(np.maximum(np.diag(S), 0.0))

    def is_singular(self, phi, tol=1e-4):
        """A standard deviation within ``tol`` of 0.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        tol : float, default 1e-4
            How close to the boundary counts as on it.

        Returns
        -------
        bool
            True when the term is on the boundary.
        """
        return bool(np.any(np.abs(np.asarray(phi)) < tol))

    def natural(self, phi, sigma, columns):
        """The standard deviations ``sd_<col>`` = σ φ_j; no correlations.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        sigma : float
            Residual standard deviation (1 for models without a scale).
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of tuple
            ``(name, value, 0.0, inf)`` per parameter.
        """
        return [(f"sd_{c}", float(sigma * p), 0.0, np.inf) for c, p in zip(columns, phi)]

    def from_natural(self, values, sigma):
        """φ = the standard deviation(s) over σ.

        Parameters
        ----------
        values : numpy.ndarray
            Values of the parameters ``natural`` reports, in its order.
        sigma : float
            Residual standard deviation (1 for models without a scale).

        Returns
        -------
        numpy.ndarray
            φ of shape (n_params,).
        """
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
        """The name ``label.sd``.

        Parameters
        ----------
        label : str
            The term's label (e.g. ``"Subject"``), the names' prefix.
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of str
            One name.
        """
        return [f"{label}.sd"]

    def lower(self):
        """Lower bounds 0 (standard deviations).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Zeros.
        """
        return np.zeros(1)

    def start(self):
        """Start with relative standard deviation 1.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Ones.
        """
        return np.ones(1)

    def scaled_start(self, column_rms):
        """One over the root of the mean squared rms of the columns (ignoring zero or non-finite ones).

        Parameters
        ----------
        column_rms : numpy.ndarray, shape (k,)
            Root mean square of each of the term's columns over the rows.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        rms = np.asarray(column_rms, dtype=float)
        rms = rms[(rms > 0) & np.isfinite(rms)]
        return np.array([1.0 / np.sqrt(np.mean(rms**2))]) if rms.size else self.start()

    def template(self, phi):
        """T = φ₀ I.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            A diagonal template.
        """
        return float(phi[0]) * np.eye(self.k)

    def jacobian(self, phi):
        """d diag(T) / dφ: a column of ones.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, n_params)
            Ones of shape (k, 1).
        """
        return np.ones((self.k, 1))

    def from_template(self, T):
        """The root mean variance of T T' (the closest common standard deviation).

        Parameters
        ----------
        T : numpy.ndarray, shape (k, k)
            A lower-triangular template.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Non-negative φ.
        """
        S = np.asarray(T, dtype=float) @ np.asarray(T, dtype=float).T
        return np.array([np.sqrt(max(float(np.mean(np.diag(S))), 0.0))])

    def is_singular(self, phi, tol=1e-4):
        """The shared standard deviation within ``tol`` of 0.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        tol : float, default 1e-4
            How close to the boundary counts as on it.

        Returns
        -------
        bool
            True when the term is on the boundary.
        """
        return bool(abs(float(phi[0])) < tol)

    def natural(self, phi, sigma, columns):
        """The shared standard deviation ``sd``, σ φ₀.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        sigma : float
            Residual standard deviation (1 for models without a scale).
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of tuple
            ``(name, value, 0.0, inf)`` per parameter.
        """
        return [("sd", float(sigma * phi[0]), 0.0, np.inf)]

    def from_natural(self, values, sigma):
        """φ = the standard deviation(s) over σ.

        Parameters
        ----------
        values : numpy.ndarray
            Values of the parameters ``natural`` reports, in its order.
        sigma : float
            Residual standard deviation (1 for models without a scale).

        Returns
        -------
        numpy.ndarray
            φ of shape (n_params,).
        """
        return np.asarray(values, dtype=float) / sigma

    def __repr__(self) -> str:
        return f"HomDiagonal(k={self.k})"
