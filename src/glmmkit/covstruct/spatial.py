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
        return np.array([np.log(self._scale)])

    def corr_from_matrix(self, R):
        return self.corr_start()

    def corr_names(self, label):
        return [f"{label}.log_range"]

    def range_(self, phi) -> float:
        return float(np.exp(phi[self.n_sd]))

    def report(self, phi):
        r = self.range_(phi)
        out = {"range": r}
        if self.positions.shape[1] == 1:  # one axis (time): the correlation at a lag of one unit
            out["rho"] = self.unit_correlation(np.asarray(phi[self.n_sd:], dtype=float))
        return out

    def unit_correlation(self, psi) -> float:
        """Correlation at distance 1."""
        raise NotImplementedError

    def corr_natural(self, psi):
        return [("range", float(np.exp(psi[0])), 0.0, np.inf)]

    def corr_from_natural(self, values):
        r = float(values[0])
        return None if not r > 0 else np.array([np.log(r)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k}, dim={self.positions.shape[1]})"


class Exponential(SpatialCorrelation):
    """``exp(x + y | g)``, ``ou(time | g)``: R_ij = exp(-d_ij / r)."""

    kind = "exp"
    description = "exponential"

    def __init__(self, positions, label: str = "exp"):
        super().__init__(positions)
        self.label = label
        if label == "ou":
            self.description = "Ornstein-Uhlenbeck"

    def correlation(self, psi):
        return np.exp(-self.distances * np.exp(-psi[0]))

    def unit_correlation(self, psi):
        return float(np.exp(-np.exp(-psi[0])))

    def report(self, phi):
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
        return np.exp(-(self.distances**2) * np.exp(-2.0 * psi[0]))

    def unit_correlation(self, psi):
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
        return np.array([np.log(self._scale), 0.0])

    def corr_names(self, label):
        return [f"{label}.log_range", f"{label}.log_kappa"]

    def correlation(self, psi):
        r, kappa = np.exp(psi[0]), np.exp(psi[1])
        x = self.distances / r
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            c = (2.0 ** (1.0 - kappa) / special.gamma(kappa)) * x**kappa * special.kv(kappa, x)
        c[x == 0] = 1.0
        c[~np.isfinite(c)] = 0.0
        return c

    def unit_correlation(self, psi):
        r, kappa = np.exp(psi[0]), np.exp(psi[1])
        x = 1.0 / r
        return float((2.0 ** (1.0 - kappa) / special.gamma(kappa)) * x**kappa * special.kv(kappa, x))

    def report(self, phi):
        out = super().report(phi)
        out["kappa"] = float(np.exp(phi[self.n_sd + 1]))
        return out

    def corr_natural(self, psi):
        return [("range", float(np.exp(psi[0])), 0.0, np.inf), ("kappa", float(np.exp(psi[1])), 0.0, np.inf)]

    def corr_from_natural(self, values):
        r, k = float(values[0]), float(values[1])
        return None if not (r > 0 and k > 0) else np.array([np.log(r), np.log(k)])
