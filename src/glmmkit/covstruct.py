"""Covariance structures of random-effect terms: parameters φ -> lower-triangular template.

A random term with k columns has covariance σ² T(φ) T(φ)' (σ = 1 for GLMMs
without a scale), T a k x k lower-triangular *template* (lme4's relative
covariance factor).  Each term owns one :class:`CovStructure`, which maps its
slice of θ to T, says which entries of T it can make nonzero (``pattern``),
and gives the Jacobian of those entries with respect to φ.  The engine
(``linalg/``) sees templates only; the exact gradients compute the derivative
of the deviance with respect to each template entry and contract it with the
Jacobian (``ModelStructure.contract``), so a new structure needs nothing below
this layer.

Two structures cover lme4's terms:

* :class:`Unstructured` -- ``(x | g)``: φ is the column-major lower triangle of
  T, diagonal entries bounded below by 0, identity start (lme4's θ);
* :class:`Scalar` -- one column (``(1 | g)``, and each term of ``(x || g)``,
  which lme4 splits into scalar terms): T = [φ].

A structure whose template entries *are* its parameters (identity Jacobian,
``direct = True``) lets the structure layer map θ to templates by one scatter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CovStructure", "Unstructured", "Scalar"]


class CovStructure:
    """Base class: a map from ``n_params`` parameters φ to a k x k lower-triangular template.

    Subclasses set ``k``, ``n_params`` and ``pattern`` and implement ``template``,
    ``jacobian``, ``names``, ``lower`` and ``start``; the rest has defaults.

    Attributes
    ----------
    k : int
        Number of random effects per level (columns of the term).
    n_params : int
    pattern : tuple of ndarray (rows, cols)
        Template entries the structure may make nonzero, all with rows >= cols; the
        order of the Jacobian's rows.
    direct : bool
        True when the pattern entries are φ itself, in order (identity Jacobian).
    """

    k: int
    n_params: int
    pattern: tuple[np.ndarray, np.ndarray]
    direct: bool = False
    kind: str = "structure"

    # ----- parameters -----
    def names(self, label: str, columns: list[str]) -> list[str]:
        """Parameter names, e.g. ``"Subject.(Intercept)"`` (``label`` the term's, ``columns`` its columns)."""
        raise NotImplementedError

    def lower(self) -> np.ndarray:
        """Lower bounds of φ (-inf where free)."""
        raise NotImplementedError

    def upper(self) -> np.ndarray:
        """Upper bounds of φ (inf where free)."""
        return np.full(self.n_params, np.inf)

    def start(self) -> np.ndarray:
        """Default start (lme4's: the identity template where it applies)."""
        raise NotImplementedError

    def scaled_start(self, column_rms: np.ndarray) -> np.ndarray:
        """A start whose random effects have unit scale on the linear predictor, given the root mean
        square of each column (the default start where the structure has no such notion)."""
        return self.start()

    # ----- the template -----
    def template(self, phi: np.ndarray) -> np.ndarray:
        """The k x k lower-triangular template T(φ)."""
        raise NotImplementedError

    def jacobian(self, phi: np.ndarray) -> np.ndarray:
        """d T[pattern] / dφ, shape (len(pattern rows), n_params)."""
        raise NotImplementedError

    def from_template(self, T: np.ndarray) -> np.ndarray | None:
        """φ whose template is (closest to) T, or None when the structure cannot say (used for starts)."""
        return None

    def sign_flips(self) -> dict:
        """``{i: js}``: when φ_i sits on its bound of 0, negating φ_js gives another point of the same
        boundary that the optimiser cannot reach from this one (the column of T with a zero diagonal
        may point either way: T T' is unchanged by negating a column, but the bound φ_i >= 0 fixes
        its sign only while φ_i > 0).  Used by the bound probes; none by default."""
        return {}

    # ----- what is reported -----
    def covariance(self, phi: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        """σ² T T', the term's covariance."""
        T = self.template(phi)
        return sigma * sigma * (T @ T.T)

    def varcorr(self, phi: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Standard deviations (k,) and correlation matrix (k, k) of the term (NaN correlations for a
        zero standard deviation).

        Parameters
        ----------
        phi : ndarray
            The term's parameters.
        sigma : float
            Residual standard deviation (1 without a scale).

        Returns
        -------
        sd : ndarray, shape (k,)
        corr : ndarray, shape (k, k)
        """
        S = self.covariance(phi, sigma)
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = S / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        return sd, corr

    def is_singular(self, phi: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's isSingular for one term: a diagonal entry of the template within ``tol`` of 0."""
        return bool(np.any(np.abs(np.diag(self.template(phi))) < tol))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


class Unstructured(CovStructure):
    """lme4's ``(x | g)``: φ = the column-major lower triangle of T (k (k + 1) / 2 parameters).

    Parameters
    ----------
    k : int
        Number of columns of the term.
    """

    direct = True
    kind = "unstructured"

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
