"""Binomial family: y is a proportion of ``wt`` trials (0/1 with weight 1 for Bernoulli data)."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy

from ..exceptions import DataError
from .base import Family

__all__ = ["Binomial"]


class Binomial(Family):
    name = "binomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit", "log", "identity")

    def variance(self, mu):
        return np.maximum(mu * (1.0 - mu), 1e-300)

    def loglik_constant(self, y, wt):
        k = y * wt
        return gammaln(wt + 1.0) - gammaln(k + 1.0) - gammaln(wt - k + 1.0)

    def loglik_kernel(self, y, mu, wt):
        k = y * wt
        return xlogy(k, mu) + xlogy(wt - k, 1.0 - mu)

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent part from η directly (logit link): kη - n log(1 + e^η); None for other links."""
        if self.link.name != "logit":
            return None
        return wt * (y * eta - np.logaddexp(0.0, eta))

    def deviance_residuals(self, y, mu, wt):
        return 2.0 * wt * (xlogy(y, y / mu) + xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))

    def working(self, eta, y, wt):
        if self.link.name != "logit":
            return super().working(eta, y, wt)
        mu = self.link.inverse(eta)  # canonical link: dμ/dη = V(μ) = μ(1 - μ), one inverse-link call
        v = np.maximum(mu * (1.0 - mu), np.finfo(float).eps)
        return mu, wt * v, eta + (y - mu) / v

    def canonical_derivatives(self, eta, y, wt):
        if self.link.name != "logit":
            return None
        mu = self.link.inverse(eta)
        v = np.maximum(mu * (1.0 - mu), np.finfo(float).eps)  # as working(): the factor sees these weights
        W = wt * v
        return mu, wt * (y - mu), W, W * (1.0 - 2.0 * mu)

    def mu_start(self, y, wt):
        return (wt * y + 0.5) / (wt + 1.0)  # R's binomial()$initialize

    def check_response(self, y, wt, name):
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise DataError(
                f"binomial response {name!r} must be 0/1, a proportion in [0, 1] with weights= trials, "
                f"or cbind(successes, failures); {int(bad.sum())} row(s) are outside [0, 1] (e.g. {y[bad][0]:g})"
            )
        counts = y * wt
        frac = np.abs(counts - np.round(counts)) > 1e-7 * np.maximum(wt, 1.0)
        if frac.any():
            raise DataError(
                f"binomial response {name!r} times its weights is not a whole number of successes in "
                f"{int(frac.sum())} row(s); give proportions with weights= the number of trials, or cbind(successes, failures)"
            )

    def simulate(self, mu, wt, rng):
        n = np.round(wt).astype(np.int64)
        return np.where(n > 0, rng.binomial(n, mu) / np.maximum(n, 1), 0.0)
