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

    A subclass names the distribution and its links and writes the distribution's pieces
    (``variance``, the log-likelihood split into ``loglik_constant`` and ``loglik_kernel``,
    ``deviance_residuals``, ``mu_start``, ``check_response``, ``simulate``).

    Parameters
    ----------
    link : str or Link, optional
        The link function; default the family's ``default_link``.  Must be one of ``links``.

    Attributes
    ----------
    name : str
        The family's name (``"binomial"``, ``"poisson"``, ...).
    link : Link
        The link this object uses.
    links : tuple of str
        Links this family accepts.

    Raises
    ------
    ArgumentError
        A link the family does not accept.
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
        """The variance function V(μ): Var(y | b) = φ V(μ) / w.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            V(μ), the shape of ``mu``.
        """
        raise NotImplementedError

    def loglik(self, y, mu, wt):
        """Log-likelihood of each observation (constants included).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (proportions for binomial data).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights (binomial: trials).

        Returns
        -------
        numpy.ndarray, shape (n,)
            log p(y_i | μ_i) per row: ``loglik_constant + loglik_kernel``.
        """
        return self.loglik_constant(y, wt) + self.loglik_kernel(y, mu, wt)

    def loglik_constant(self, y, wt):
        """The part of each observation's log-likelihood that does not depend on μ.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            The μ-free terms (log-factorials, binomial coefficients, ...); zeros here.
        """
        return np.zeros_like(np.asarray(y, dtype=float))

    def loglik_kernel(self, y, mu, wt):
        """The part of each observation's log-likelihood that depends on μ (what PIRLS and the optimiser evaluate).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            The μ-dependent log-likelihood terms per row.
        """
        raise NotImplementedError

    def deviance_residuals(self, y, mu, wt):
        """Unit deviances times weights (their sum is the GLM deviance).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            w_i d(y_i, μ_i) >= 0 per row (the squares of the signed deviance residuals).
        """
        raise NotImplementedError

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent log-likelihood computed from η (canonical links: cheaper and exact).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray or None
            The kernel per row, or None when the family has no such shortcut for its link (here: always).
        """
        return None

    def canonical_derivatives(self, eta, y, wt):
        """Score, weight and weight derivative of log p(y | η) in η, for a canonical link.

        s = ∂ℓ/∂η, W = -∂²ℓ/∂η² (equal to the Fisher weight for a canonical link, so PIRLS's Laplace
        deviance is the true one) and dW = ∂W/∂η: what the exact Laplace gradient needs
        (``GlmmObjective.laplace_and_gradient``).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray or None
            ``(mu, s, W, dW)``, each of shape (n,); None for a non-canonical link (here: always).
        """
        return None

    def mu_start(self, y, wt):
        """Starting μ for IRLS (R's ``mustart``).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Starting means, inside the family's range (e.g. away from 0 for a log link).
        """
        raise NotImplementedError

    def check_response(self, y, wt, name: str) -> None:
        """Raise DataError when ``y`` cannot come from this family (the base class accepts anything).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Values outside the family's support, naming how many and what to do.
        """

    def simulate(self, mu, wt, rng):
        """Draw one response per row from the family at μ.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means; may be (n_sim, n) with the rows' weights broadcast along the last axis.
        wt : numpy.ndarray, shape (n,)
            Prior weights (binomial: trials).
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Simulated responses, the shape of ``mu`` (proportions for binomial data).
        """
        raise NotImplementedError

    def response_mean(self, mu):
        """E[y | b] at the linear predictor's mean μ (μ itself except for zero-inflated and hurdle families).

        Parameters
        ----------
        mu : numpy.ndarray
            The inverse link of the linear predictor.

        Returns
        -------
        numpy.ndarray
            The response's conditional mean, the shape of ``mu``.
        """
        return mu

    def conditional_mean(self, mu):
        """The mean of the count (or positive) part at μ: glmmTMB's ``predict(type = "conditional")``.

        Parameters
        ----------
        mu : numpy.ndarray
            The inverse link of the linear predictor.

        Returns
        -------
        numpy.ndarray
            μ itself, except for truncated counts, whose mean is μ / P(y > 0).
        """
        return mu

    def response_variance(self, mu):
        """Var[y | b] at μ (``variance`` except for zero-inflated and hurdle families).

        Parameters
        ----------
        mu : numpy.ndarray
            The inverse link of the linear predictor.

        Returns
        -------
        numpy.ndarray
            The response's conditional variance (unit prior weight), the shape of ``mu``.
        """
        return self.variance(mu)

    # ---- IRLS pieces ----
    def working(self, eta, y, wt):
        """μ, working weights W and working response z at η (Fisher scoring).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(mu, W, z)``, each of shape (n,): W = w (dμ/dη)² / V(μ), z = η + (y - μ) / (dμ/dη).
        """
        mu = self.link.inverse(eta)
        d = self.link.mu_eta(eta)
        W = wt * d * d / self.variance(mu)
        z = eta + (y - mu) / d
        return mu, W, z
