"""Poisson family: counts with Var(y) = μ."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy

from ..exceptions import DataError
from .base import Family

__all__ = ["Poisson"]


class Poisson(Family):
    name = "poisson"
    default_link = "log"
    links = ("log", "identity", "sqrt")

    def variance(self, mu):
        return np.maximum(mu, 1e-300)

    def loglik_constant(self, y, wt):
        return -wt * gammaln(y + 1.0)

    def loglik_kernel(self, y, mu, wt):
        return wt * (xlogy(y, mu) - mu)

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent part from η directly (log link); None for other links."""
        if self.link.name != "log":
            return None
        return wt * (y * eta - np.exp(eta))

    def deviance_residuals(self, y, mu, wt):
        return 2.0 * wt * (xlogy(y, y / mu) - (y - mu))

    def working(self, eta, y, wt):
        if self.link.name != "log":
            return super().working(eta, y, wt)
        mu = self.link.inverse(eta)  # canonical link: dμ/dη = V(μ) = μ
        return mu, wt * mu, eta + (y - mu) / mu

    def canonical_derivatives(self, eta, y, wt):
        if self.link.name != "log":
            return None
        mu = self.link.inverse(eta)
        W = wt * mu
        return mu, wt * (y - mu), W, W

    def mu_derivatives(self, y, mu, wt, values=None):
        """ℓ and its first three μ-derivatives per row (the ``ParametricFamily`` contract, no parameters
        of its own): what zero-inflated and truncated Poisson families build on."""
        with np.errstate(divide="ignore", invalid="ignore"):
            f = xlogy(y, mu) - mu - gammaln(y + 1.0)
            f1 = y / mu - 1.0
            f2 = -y / mu**2
            f3 = 2.0 * y / mu**3
        return wt * f, wt * f1, wt * f2, wt * f3, {}

    def mu_score_info(self, y, mu, wt, values=None):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row, without the log-gamma constant ``mu_derivatives`` computes."""
        return wt * (y / mu - 1.0), -wt * y / (mu * mu)

    def mu_start(self, y, wt):
        return y + 0.1

    def check_response(self, y, wt, name):
        neg = y < 0
        if neg.any():
            raise DataError(f"Poisson response {name!r} has {int(neg.sum())} negative value(s); counts must be >= 0")
        frac = np.abs(y - np.round(y)) > 1e-7
        if frac.any():
            raise DataError(
                f"Poisson response {name!r} has {int(frac.sum())} non-integer value(s) (e.g. {y[frac][0]:g}); "
                "counts must be whole numbers (for rates use offset(log(exposure)))"
            )

    def simulate(self, mu, wt, rng):
        return rng.poisson(mu).astype(float)
