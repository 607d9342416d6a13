"""Response distributions of a GLMM: the interface every family module implements.

A family turns the linear predictor into what the engine needs: μ, the IRLS
working weights and response, and the full log-likelihood (constants included,
so fits of one model by different methods compare).  A family with its own
parameters (negative binomial θ, Gamma shape, ...) adds them as ``params``;
binomial and Poisson have none.
"""

from __future__ import annotations

import numpy as np

from .links import Link, get_link

__all__ = ["Family"]


class Family:
    """Base class of a response distribution.

    Attributes
    ----------
    name : str
    link : Link
    links : tuple of str
        Links this family accepts.
    """

    name = ""
    default_link = ""
    links: tuple = ()
    has_dispersion = False

    def __init__(self, link=None):
        self.link: Link = get_link(link or self.default_link)
        if self.link.name not in self.links:
            from ..exceptions import ArgumentError

            raise ArgumentError(
                f"link {self.link.name!r} is not available for the {self.name} family; use one of {', '.join(self.links)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(link={self.link.name!r})"

    # ---- the distribution ----
    def variance(self, mu):
        raise NotImplementedError

    def loglik(self, y, mu, wt):
        """Log-likelihood of each observation (constants included)."""
        return self.loglik_constant(y, wt) + self.loglik_kernel(y, mu, wt)

    def loglik_constant(self, y, wt):
        """The part of each observation's log-likelihood that does not depend on μ."""
        return np.zeros_like(np.asarray(y, dtype=float))

    def loglik_kernel(self, y, mu, wt):
        """The part that depends on μ (what PIRLS and the optimiser evaluate)."""
        raise NotImplementedError

    def deviance_residuals(self, y, mu, wt):
        """Unit deviances times weights (sum = the GLM deviance)."""
        raise NotImplementedError

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent part computed from η (canonical links, cheaper and exact); None if unavailable."""
        return None

    def canonical_derivatives(self, eta, y, wt):
        """Score, weight and weight derivative of log p(y | η) in η, for a canonical link.

        Returns ``(mu, s, W, dW)`` with s = ∂ℓ/∂η, W = -∂²ℓ/∂η² (equal to the
        Fisher weight for a canonical link, so PIRLS's Laplace deviance is the
        true one) and dW = ∂W/∂η: what the exact Laplace gradient needs
        (``GlmmObjective.laplace_and_gradient``). None for other links.
        """
        return None

    def mu_start(self, y, wt):
        """Starting μ for IRLS (R's ``mustart``)."""
        raise NotImplementedError

    def check_response(self, y, wt, name: str) -> None:
        """Raise DataError when ``y`` cannot come from this family."""

    def simulate(self, mu, wt, rng):
        raise NotImplementedError

    def response_mean(self, mu):
        """E[y | b] at the linear predictor's mean μ (μ itself except for zero-inflated and hurdle families)."""
        return mu

    def conditional_mean(self, mu):
        """The mean of the count (or positive) part at μ: glmmTMB's ``predict(type = "conditional")``
        (μ, except for truncated counts, whose mean is μ / P(y > 0))."""
        return mu

    def response_variance(self, mu):
        """Var[y | b] at μ (``variance`` except for zero-inflated and hurdle families)."""
        return self.variance(mu)

    # ---- IRLS pieces ----
    def working(self, eta, y, wt):
        """μ, working weights W and working response z at η (Fisher scoring)."""
        mu = self.link.inverse(eta)
        d = self.link.mu_eta(eta)
        W = wt * d * d / self.variance(mu)
        z = eta + (y - mu) / d
        return mu, W, z
