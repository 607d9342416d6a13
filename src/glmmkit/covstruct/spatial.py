"""Correlation as a function of distance: ``ou``/``exp``, ``gau`` and ``mat`` (glmmTMB's names).

The term's random effects are one per distinct *position*: the rows of its
coordinate columns (``exp(x + y | g)``: the distinct (x, y) pairs; ``ou(time | g)``
one axis).  Σ = s² R with R_ij = c(d_ij / r), d the Euclidean distance, r > 0 a
range (φ = log r, unbounded) and one standard deviation s (relative to σ):

* ``exp`` / ``ou``: c = exp(-d / r) (the continuous-time AR(1); glmmTMB's ``ou``
  reports the rate 1/r, ``exp`` the range);
* ``gau``: c = exp(-(d / r)²);
* ``mat``: Matérn, c = 2^(1-κ)/Γ(κ) (d/r)^κ K_κ(d/r), κ > 0 estimated (log κ).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .correlated import ScaledCorrelation

__all__ = ["SpatialCorrelation", "Exponential", "GaussianCorrelation", "Matern"]


class SpatialCorrelation(ScaledCorrelation):
    """Base: positions (k, dim) in the order of the term's columns, one standard deviation.

    Parameters
    ----------
    positions : ndarray, shape (k, dim)
        Coordinates of each random effect (column) of the term.
    """

    n_corr = 1

    def __init__(self, positions):
        pos = np.asarray(positions, dtype=float)
        if pos.ndim == 1:
            pos = pos[:, None]
        self.positions = pos
        diff = pos[:, None, :] - pos[None, :, :]
        self.distances = np.sqrt(np.sum(diff * diff, axis=-1))
        super().__init__(pos.shape[0], heterogeneous=False)
        off = self.distances[~np.eye(self.k, dtype=bool)]
        # a start at the median distance between positions: neither white noise nor one block
        self._scale = float(np.median(off)) if off.size else 1.0

    def corr_start(self):
        """Start at log of the median distance between positions: neither white noise nor one block.

        Returns
        -------
        numpy.ndarray, shape (1,)
            Starting ψ.
        """
        return np.array([np.log(self._scale)])

    def corr_from_matrix(self, R):
        """The start ``corr_start`` (a range is not read off a correlation matrix here).

        Parameters
        ----------
        R : numpy.ndarray, shape (k, k)
            A correlation matrix.

        Returns
        -------
        numpy.ndarray, shape (n_corr,)
            Starting ψ.
        """
        return self.corr_start()

    def corr_names(self, label):
        """The name ``label.log_range``.

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            One name.
        """
        return [f"{label}.log_range"]

    def range_(self, phi) -> float:
        """The range r = exp(φ[n_sd]), in the coordinates' units.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        float
            r > 0.
        """
        return float(np.exp(phi[self.n_sd]))

    def report(self, phi):
        """Range (and, on one axis, the correlation at a lag of one unit ``rho``), for summaries.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            ``{"range": r}`` plus ``"rho"`` for one-axis positions.
        """
        r = self.range_(phi)
        out = {"range": r}
        if self.positions.shape[1] == 1:  # one axis (time): the correlation at a lag of one unit
            out["rho"] = self.unit_correlation(np.asarray(phi[self.n_sd:], dtype=float))
        return out

    def unit_correlation(self, psi) -> float:
        """The correlation at distance 1.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_corr,)
            The correlation parameters.

        Returns
        -------
        float
            c(1 / r).
        """
        raise NotImplementedError

    def corr_natural(self, psi):
        """The range with its bounds (0, inf).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            ψ = log r, the log range.

        Returns
        -------
        list of tuple
            ``[("range", r, 0.0, inf)]``.
        """
        return [("range", float(np.exp(psi[0])), 0.0, np.inf)]

    def corr_from_natural(self, values):
        """ψ = log r of a given range.

        Parameters
        ----------
        values : numpy.ndarray, shape (1,)
            The range r.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (1,), or None unless r > 0.
        """
        r = float(values[0])
        return None if not r > 0 else np.array([np.log(r)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, dim={self.positions.shape[1]})"


class Exponential(SpatialCorrelation):
    """``exp(x + y | g)``, ``ou(time | g)``: R_ij = exp(-d_ij / r) (the continuous-time AR(1) on one axis).

    Parameters
    ----------
    positions : ndarray, shape (k,) or (k, dim)
        Coordinates of each random effect (column) of the term.
    label : {"exp", "ou"}, default "exp"
        The formula's name; ``"ou"`` also reports the rate 1/r (glmmTMB's ``ou``).
    """

    kind = "exp"
    description = "exponential"

    def __init__(self, positions, label: str = "exp"):
        super().__init__(positions)
        self.label = label
        if label == "ou":
            self.description = "Ornstein-Uhlenbeck"

    def correlation(self, psi):
        """R_ij = exp(-d_ij / r), r = exp(ψ).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            ψ = log r, the log range.

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix (complex when ``psi`` is).
        """
        return np.exp(-self.distances * np.exp(-psi[0]))

    def unit_correlation(self, psi):
        """exp(-1 / r): the correlation at distance 1.

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            ψ = log r, the log range.

        Returns
        -------
        float
            In (0, 1).
        """
        return float(np.exp(-np.exp(-psi[0])))

    def report(self, phi):
        """Range and (one axis) ``rho``, plus ``rate`` = 1/r for ``ou``.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            Name -> float.
        """
        out = super().report(phi)
        if self.label == "ou":
            out["rate"] = 1.0 / out["range"]
        return out


class GaussianCorrelation(SpatialCorrelation):
    """``gau(x + y | g)``: R_ij = exp(-(d_ij / r)²)."""

    kind = "gau"
    label = "gau"
    description = "Gaussian"

    def correlation(self, psi):
        """R_ij = exp(-(d_ij / r)²), r = exp(ψ).

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            ψ = log r, the log range.

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix.
        """
        return np.exp(-(self.distances**2) * np.exp(-2.0 * psi[0]))

    def unit_correlation(self, psi):
        """exp(-1 / r²): the correlation at distance 1.

        Parameters
        ----------
        psi : numpy.ndarray, shape (1,)
            ψ = log r, the log range.

        Returns
        -------
        float
            In (0, 1).
        """
        return float(np.exp(-np.exp(-2.0 * psi[0])))


class Matern(SpatialCorrelation):
    """``mat(x + y | g)``: Matérn correlation with range r and smoothness κ (both estimated, on the
    log scale); κ = 1/2 is the exponential, κ → ∞ the Gaussian shape."""

    kind = "mat"
    label = "mat"
    description = "Matérn"
    n_corr = 2
    complex_step = False  # the Bessel function's order is not differentiable by a complex step

    def corr_start(self):
        """Start at the median distance between positions and κ = 1.

        Returns
        -------
        numpy.ndarray, shape (2,)
            (log median distance, 0).
        """
        return np.array([np.log(self._scale), 0.0])

    def corr_names(self, label):
        """The names ``label.log_range`` and ``label.log_kappa``.

        Parameters
        ----------
        label : str
            The term's label.

        Returns
        -------
        list of str
            Two names.
        """
        return [f"{label}.log_range", f"{label}.log_kappa"]

    def correlation(self, psi):
        """Matérn R_ij = 2^(1-κ)/Γ(κ) x^κ K_κ(x), x = d_ij / r (1 at distance 0; 0 where it underflows).

        Parameters
        ----------
        psi : numpy.ndarray, shape (2,)
            (log r, log κ).

        Returns
        -------
        numpy.ndarray, shape (k, k)
            The correlation matrix.
        """
        r, kappa = np.exp(psi[0]), np.exp(psi[1])
        x = self.distances / r
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            c = (2.0 ** (1.0 - kappa) / special.gamma(kappa)) * x**kappa * special.kv(kappa, x)
        c[x == 0] = 1.0
        c[~np.isfinite(c)] = 0.0
        return c

    def unit_correlation(self, psi):
        """The Matérn correlation at distance 1.

        Parameters
        ----------
        psi : numpy.ndarray, shape (2,)
            (log r, log κ).

        Returns
        -------
        float
            In (0, 1).
        """
        r, kappa = np.exp(psi[0]), np.exp(psi[1])
        x = 1.0 / r
        return float((2.0 ** (1.0 - kappa) / special.gamma(kappa)) * x**kappa * special.kv(kappa, x))

    def report(self, phi):
        """Range, smoothness ``kappa`` and (one axis) ``rho``, for summaries.

        Parameters
        ----------
        phi : numpy.ndarray, shape (n_params,)
            The term's parameters (its slice of θ).

        Returns
        -------
        dict
            Name -> float.
        """
        out = super().report(phi)
        out["kappa"] = float(np.exp(phi[self.n_sd + 1]))
        return out

    def corr_natural(self, psi):
        """Range and smoothness with their bounds (0, inf).

        Parameters
        ----------
        psi : numpy.ndarray, shape (2,)
            (log r, log κ).

        Returns
        -------
        list of tuple
            ``[("range", r, 0.0, inf), ("kappa", κ, 0.0, inf)]``.
        """
        return [("range", float(np.exp(psi[0])), 0.0, np.inf), ("kappa", float(np.exp(psi[1])), 0.0, np.inf)]

    def corr_from_natural(self, values):
        """ψ = (log r, log κ).

        Parameters
        ----------
        values : numpy.ndarray, shape (2,)
            (r, κ).

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (2,), or None unless both are > 0.
        """
        r, k = float(values[0]), float(values[1])
        return None if not (r > 0 and k > 0) else np.array([np.log(r), np.log(k)])
