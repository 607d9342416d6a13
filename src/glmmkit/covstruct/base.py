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

The structures (one module each; ``registry.py`` maps formula names to them):

* ``unstructured.py`` -- lme4's :class:`Unstructured` ``(x | g)`` (φ the
  column-major lower triangle of T, exactly lme4's θ) and :class:`Scalar`
  ``(1 | g)``, plus :class:`Diagonal` ``diag(x | g)`` and :class:`HomDiagonal`;
* ``correlated.py`` -- Σ = D R(ψ) D with a correlation matrix from a few
  parameters: compound symmetry, AR(1), Toeplitz (heterogeneous or one variance);
* ``spatial.py`` -- correlation a function of the distance between positions
  taken from coordinate columns: ``ou``/``exp``, ``gau``, ``mat`` (Matérn).

A structure whose template entries *are* its parameters (identity Jacobian,
``direct = True``) lets the structure layer map θ to templates by one scatter.
A structure may also define the term's random-effect columns from the columns
its formula gives (``term_columns``: coordinates become one indicator column per
position), and report its natural parameters (``report``: ``rho``, ``range``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CovStructure"]


class CovStructure:
    """Base class: a map from ``n_params`` parameters φ to a k x k lower-triangular template.

    Subclasses set ``k``, ``n_params`` and ``pattern`` and implement ``template``,
    ``jacobian``, ``names``, ``lower`` and ``start``; the rest has defaults.

    Attributes
    ----------
    k : int
        Number of random effects per level (columns of the term).
    n_params : int
        Number of parameters φ (the term's slice of θ).
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
        """Parameter names, one per φ, e.g. ``"Subject.(Intercept)"``.

        Parameters
        ----------
        label : str
            The term's label (e.g. ``"Subject"``), the names' prefix.
        columns : list of str
            The term's column names (e.g. ``["(Intercept)", "Days"]``).

        Returns
        -------
        list of str
            ``n_params`` names.
        """
        raise NotImplementedError

    def lower(self) -> np.ndarray:
        """Lower bounds of φ (-inf where free).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds the optimiser keeps φ above (0 for standard deviations).
        """
        raise NotImplementedError

    def upper(self) -> np.ndarray:
        """Upper bounds of φ (inf where free).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            All inf by default.
        """
        return np.full(self.n_params, np.inf)

    def start(self) -> np.ndarray:
        """Default start (lme4's: the identity template where it applies).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ.
        """
        raise NotImplementedError

    def scaled_start(self, column_rms: np.ndarray) -> np.ndarray:
        """A start whose random effects have unit scale on the linear predictor.

        Parameters
        ----------
        column_rms : numpy.ndarray, shape (k,)
            Root mean square of each of the term's columns over the rows.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting φ (the default start where the structure has no such notion).
        """
        return self.start()

    # ----- the template -----
    def template(self, phi: np.ndarray) -> np.ndarray:
        """The k x k lower-triangular template T(φ): the term's covariance is σ² T T'.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            Lower triangular; nonzero only on ``pattern``.
        """
        raise NotImplementedError

    def jacobian(self, phi: np.ndarray) -> np.ndarray:
        """Jacobian of the template's pattern entries in φ.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        numpy.ndarray, shape (len(pattern[0]), n_params)
            d T[pattern] / dφ, rows in ``pattern`` order.
        """
        raise NotImplementedError

    def from_template(self, T: np.ndarray) -> np.ndarray | None:
        """φ whose template is (closest to) T, used for starting values.

        Parameters
        ----------
        T : numpy.ndarray, shape (k, k)
            A lower-triangular template.

        Returns
        -------
        numpy.ndarray or None
            φ of shape (n_params,), or None when the structure cannot say (the default).
        """
        return None

    def sign_flips(self) -> dict:
        """Parameters whose sign may be flipped on the boundary without changing the covariance.

        Returns
        -------
        dict
            ``{i: js}``: when φ_i sits on its bound of 0, negating φ_js gives another point of the same
            boundary the optimiser cannot reach from this one (the column of T with a zero diagonal may
            point either way: T T' is unchanged by negating a column, but the bound φ_i >= 0 fixes
            its sign only while φ_i > 0).  Used by the bound probes; empty by default.
        """
        return {}

    # ----- the term's columns -----
    #: set by the registry for structures over positions: (raw column indices of the coordinates,
    #: positions (k, dim), column names)
    coordinates: tuple | None = None

    def term_columns(self, raw: np.ndarray) -> np.ndarray:
        """The term's random-effect columns from the columns its formula gives.

        Parameters
        ----------
        raw : numpy.ndarray, shape (n, m)
            The term's model matrix as its formula gives it (training encoding).

        Returns
        -------
        numpy.ndarray, shape (n, k)
            ``raw`` itself, or for a structure over positions one indicator column per position.

        Raises
        ------
        ArgumentError
            When a row's coordinates are not one of the fitted positions.
        """
        if self.coordinates is None:
            return raw
        from .positions import indicator_columns

        idx, positions, _ = self.coordinates
        return indicator_columns(np.asarray(raw, dtype=float)[:, idx], positions)

    # ----- what is reported -----
    #: short name shown in summaries (glmmTMB's: "us", "ar1", ...)
    label: str = "us"
    #: description for summaries ("AR(1)", "compound symmetry")
    description: str = "unstructured"

    def report(self, phi: np.ndarray) -> dict:
        """The structure's natural parameters beyond standard deviations (e.g. ``{"rho": 0.64}``).

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            Name -> float; empty for unstructured terms, whose correlations are all reported.
        """
        return {}


    def covariance(self, phi: np.ndarray, sigma: float = 1.0) -> np.ndarray:
        """σ² T T', the term's covariance.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).
        sigma : float, default 1.0
            Residual standard deviation (1 for models without a scale).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            Symmetric positive semi-definite.
        """
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

    # ----- interval parameters (confint, profiles) -----
    def natural(self, phi: np.ndarray, sigma: float, columns: list[str]) -> list[tuple]:
        """The parameters intervals are given for; the caller appends ``|group``.

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
            ``(name, value, lower, upper)`` each.  Default: lme4's, every standard deviation ``sd_<col>``
            (bounds 0, inf) and correlation ``cor_<row>.<col>`` (bounds -1, 1) of the lower triangle, column by column.
        """
        S = self.covariance(phi, sigma)
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        out = []
        for c in range(self.k):
            for r in range(c, self.k):
                if r == c:
                    out.append((f"sd_{columns[c]}", float(sd[c]), 0.0, np.inf))
                else:
                    v = S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else np.nan
                    out.append((f"cor_{columns[r]}.{columns[c]}", float(v), -1.0, 1.0))
        return out

    def from_natural(self, values: np.ndarray, sigma: float) -> np.ndarray | None:
        """φ from the values of ``natural`` (the inverse map, for profiles).

        Parameters
        ----------
        values : numpy.ndarray
            Values of the parameters ``natural`` reports, in its order.
        sigma : float
            Residual standard deviation (1 for models without a scale).

        Returns
        -------
        numpy.ndarray or None
            φ of shape (n_params,), or None when the values give no valid covariance.
        """
        k = self.k
        sd, R, at = np.empty(k), np.eye(k), 0
        for c in range(k):
            for r in range(c, k):
                if r == c:
                    sd[c] = values[at]
                else:
                    R[r, c] = R[c, r] = values[at]
                at += 1
        C = np.outer(sd, sd) * R
        try:
            T = np.linalg.cholesky(C + 1e-13 * np.eye(k) * max(1.0, float(np.max(sd)) ** 2))
        except np.linalg.LinAlgError:
            return None
        return self.from_template(T / sigma)

    def is_singular(self, phi: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's isSingular for one term: a diagonal entry of the template within ``tol`` of 0.

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
        return bool(np.any(np.abs(np.diag(self.template(phi))) < tol))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"
