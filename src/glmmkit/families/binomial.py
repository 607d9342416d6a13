"""Binomial family: y is a proportion of ``wt`` trials (0/1 with weight 1 for Bernoulli data)."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy

from ..exceptions import DataError
from .base import Family

__all__ = ["Binomial"]


class Binomial(Family):
    """Binomial responses: y is a proportion of ``wt`` trials (0/1 with weight 1 for Bernoulli data); Var = μ(1 - μ)/w.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog", "cauchit", "log", "identity"}, default "logit"
        The link function (a name or a Link object).
    """

    name = "binomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit", "log", "identity")

    def variance(self, mu):
        """V(μ) = μ(1 - μ), floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            V(μ), the shape of ``mu``.
        """
        return np.maximum(mu * (1.0 - mu), 1e-300)

    def loglik_constant(self, y, wt):
        """The log binomial coefficient log C(n, k) per row, k = y·n successes of n = wt trials.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        numpy.ndarray, shape (n,)
            lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1).
        """
        k = y * wt
        return gammaln(wt + 1.0) - gammaln(k + 1.0) - gammaln(wt - k + 1.0)

    def loglik_kernel(self, y, mu, wt):
        """The μ-dependent log-likelihood k log μ + (n - k) log(1 - μ) per row.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        numpy.ndarray, shape (n,)
            The kernel (0 log 0 taken as 0).
        """
        k = y * wt
        return xlogy(k, mu) + xlogy(wt - k, 1.0 - mu)

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent part from η directly (logit link): w (y η - log(1 + e^η)).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        numpy.ndarray or None
            The kernel per row (exact for any η), or None for a link other than logit.
        """
        if self.link.name != "logit":
            return None
        return wt * (y * eta - np.logaddexp(0.0, eta))

    def loglik_sum_eta(self, y, eta, wt):
        """Σ of ``loglik_kernel_eta`` over the rows, compiled for large models (logit link only).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        float or None
            The sum, or None for a link other than logit.
        """
        if self.link.name != "logit":
            return None
        from ._row_kernels import logit_loglik_sum

        total = logit_loglik_sum(y, eta, wt)
        return float(np.sum(self.loglik_kernel_eta(y, eta, wt))) if total is None else total

    def deviance_residuals(self, y, mu, wt):
        """Unit deviances times trials: 2 w [y log(y/μ) + (1 - y) log((1 - y)/(1 - μ))].

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Non-negative; their sum is the binomial GLM deviance.
        """
        return 2.0 * wt * (xlogy(y, y / mu) + xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))

    def working(self, eta, y, wt):
        """μ, working weights and working response at η; one inverse-link call for the canonical logit link.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        tuple of numpy.ndarray
            ``(mu, W, z)``: W = w μ(1 - μ) (floored at machine epsilon) and z = η + (y - μ)/(μ(1 - μ))
            for the logit link; Fisher scoring's (``Family.working``) otherwise.
        """
        if self.link.name != "logit":
            return super().working(eta, y, wt)
        mu = self.link.inverse(eta)  # canonical link: dμ/dη = V(μ) = μ(1 - μ), one inverse-link call
        v = np.maximum(mu * (1.0 - mu), np.finfo(float).eps)
        return mu, wt * v, eta + (y - mu) / v

    def canonical_derivatives(self, eta, y, wt):
        """Score, weight and weight derivative of the log-likelihood in η for the logit link.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        tuple of numpy.ndarray or None
            ``(mu, s, W, dW)`` with s = w (y - μ), W = w μ(1 - μ) (floored as ``working``) and
            dW = W (1 - 2μ); None for other links.
        """
        if self.link.name != "logit":
            return None
        mu = self.link.inverse(eta)
        v = np.maximum(mu * (1.0 - mu), np.finfo(float).eps)  # as working(): the factor sees these weights
        W = wt * v
        return mu, wt * (y - mu), W, W * (1.0 - 2.0 * mu)

    def mu_start(self, y, wt):
        """Starting μ = (w y + ½) / (w + 1) (R's ``binomial()$initialize``): strictly inside (0, 1).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Starting means.
        """
        return (wt * y + 0.5) / (wt + 1.0)  # R's binomial()$initialize

    def check_response(self, y, wt, name):
        """Refuse responses outside [0, 1] and proportions that are not whole numbers of successes of ``wt`` trials.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response as proportions of successes in [0, 1].
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming the number of bad rows and how to give the response (0/1, proportions with
            ``weights=`` trials, or ``cbind(successes, failures)``).
        """
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
        """Binomial draws of round(wt) trials with success probability μ, as proportions.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the number of trials per row (1 for 0/1 data).
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Proportions k / n, the shape of ``mu``; 0 for rows with no trials.
        """
        n = np.round(wt).astype(np.int64)
        return np.where(n > 0, rng.binomial(n, mu) / np.maximum(n, 1), 0.0)
