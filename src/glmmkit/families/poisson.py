"""Poisson family: counts with Var(y) = μ."""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy

from ..exceptions import DataError
from .base import Family

__all__ = ["Poisson"]


class Poisson(Family):
    """Poisson counts: Var(y) = μ.

    Parameters
    ----------
    link : {"log", "identity", "sqrt"}, default "log"
        The link function (a name or a Link object).
    """

    name = "poisson"
    default_link = "log"
    links = ("log", "identity", "sqrt")

    def variance(self, mu):
        """V(μ) = μ, floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            V(μ), the shape of ``mu``.
        """
        return np.maximum(mu, 1e-300)

    def loglik_constant(self, y, wt):
        """The μ-free part -w log(y!) per row.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            -w lgamma(y + 1).
        """
        return -wt * gammaln(y + 1.0)

    def loglik_kernel(self, y, mu, wt):
        """The μ-dependent log-likelihood w (y log μ - μ) per row.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            The kernel (0 log 0 taken as 0).
        """
        return wt * (xlogy(y, mu) - mu)

    def loglik_kernel_eta(self, y, eta, wt):
        """The μ-dependent part from η directly (log link): w (y η - e^η).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray or None
            The kernel per row, or None for a link other than log.
        """
        if self.link.name != "log":
            return None
        return wt * (y * eta - np.exp(eta))

    def deviance_residuals(self, y, mu, wt):
        """Unit deviances times weights: 2 w [y log(y/μ) - (y - μ)].

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Non-negative; their sum is the Poisson GLM deviance.
        """
        return 2.0 * wt * (xlogy(y, y / mu) - (y - mu))

    def working(self, eta, y, wt):
        """μ, working weights and working response at η; shortcuts for the canonical log link.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(mu, W, z)``: W = w μ and z = η + (y - μ)/μ for the log link; Fisher scoring's
            (``Family.working``) otherwise.
        """
        if self.link.name != "log":
            return super().working(eta, y, wt)
        mu = self.link.inverse(eta)  # canonical link: dμ/dη = V(μ) = μ
        return mu, wt * mu, eta + (y - mu) / mu

    def canonical_derivatives(self, eta, y, wt):
        """Score, weight and weight derivative of the log-likelihood in η for the log link.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray or None
            ``(mu, s, W, dW)`` with s = w (y - μ) and W = dW = w μ; None for other links.
        """
        if self.link.name != "log":
            return None
        mu = self.link.inverse(eta)
        W = wt * mu
        return mu, wt * (y - mu), W, W

    def mu_derivatives(self, y, mu, wt, values=None):
        """ℓ and its first three μ-derivatives per row (the ``ParametricFamily`` contract, no parameters of its own).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict, optional
            Parameter values by name (floats or per-row arrays); unused (Poisson has none).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, {})`` with f = w (y log μ - μ - log y!), f1 = w (y/μ - 1), f2 = -w y/μ²,
            f3 = 2 w y/μ³; what zero-inflated and truncated Poisson families build on.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            f = xlogy(y, mu) - mu - gammaln(y + 1.0)
            f1 = y / mu - 1.0
            f2 = -y / mu**2
            f3 = 2.0 * y / mu**3
        return wt * f, wt * f1, wt * f2, wt * f3, {}

    def mu_score_info(self, y, mu, wt, values=None):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row, without the log-gamma constant ``mu_derivatives`` computes.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict, optional
            Parameter values by name (floats or per-row arrays); unused.

        Returns
        -------
        tuple of numpy.ndarray
            (w (y/μ - 1), -w y/μ²).
        """
        return wt * (y / mu - 1.0), -wt * y / (mu * mu)

    def mu_start(self, y, wt):
        """Starting μ = y + 0.1 (positive even for zero counts).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Starting means.
        """
        return y + 0.1

    def check_response(self, y, wt, name):
        """Refuse negative and non-integer counts.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming the number of bad rows (for rates: use ``offset(log(exposure))``).
        """
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
        """Poisson draws with mean μ.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Counts as floats, the shape of ``mu``.
        """
        return rng.poisson(mu).astype(float)
