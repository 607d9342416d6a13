"""Beta-binomial proportions: k successes of n trials with a beta-distributed success probability
(glmmTMB's betabinomial: a = μφ, b = (1 - μ)φ, Var(k) = nμ(1 - μ)(n + φ)/(1 + φ))."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, polygamma

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["BetaBinomial"]


class BetaBinomial(ParametricFamily):
    """log p = lchoose(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b), a = μφ, b = (1 - μ)φ.

    The response is a proportion y = k/n with the number of trials n as the row's weight (what
    ``cbind(successes, failures)`` or a proportion with ``weights=`` gives, as for the binomial);
    φ is the precision: φ → ∞ is the binomial, small φ much extra-binomial variation.

    Parameters
    ----------
    link : {"logit", "probit", "cloglog", "cauchit"}, default "logit"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"phi": ...}``.
    """

    name = "betabinomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit")
    param_names = ("phi",)
    disp_param = "phi"
    #: the row weights are numbers of trials (``cbind(successes, failures)`` is accepted), as for the binomial
    trials_response = True

    def variance(self, mu):
        """V = μ(1 - μ), the binomial part, floored at 1e-300.

        The over-dispersion factor (n + φ)/(1 + φ) depends on each row's number of trials, which
        ``working``, ``trial_variance`` and ``response_variance(mu, trials)`` apply.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means (success probabilities).

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(mu * (1.0 - mu), 1e-300)

    def response_variance(self, mu, trials=None):
        """Var(k/n) times the trials n: μ(1 - μ)(n + φ)/(1 + φ), floored at 1e-300.

        The variance per unit prior weight, as the fit's Pearson residuals (y - μ)·√n / √V need it.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means (success probabilities).
        trials : numpy.ndarray, optional
            The numbers of trials n per row (the fit's weights), the shape of ``mu``; without them the
            variance of one trial, μ(1 - μ) (the factor is 1 at n = 1).

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        if trials is None:
            return self.variance(mu)
        phi = self._values["phi"]
        return np.maximum(mu * (1.0 - mu) * (np.asarray(trials, dtype=float) + phi) / (1.0 + phi), 1e-300)

    def trial_variance(self, mu, n):
        """Var(k/n) per row: μ(1 - μ)(n + φ) / (n(1 + φ)), floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means (success probabilities).
        n : numpy.ndarray
            Numbers of trials per row, broadcastable to ``mu``.

        Returns
        -------
        numpy.ndarray
            The variance of the proportion k/n, the shape of ``mu``.
        """
        phi = self._values["phi"]
        n = np.maximum(np.asarray(n, dtype=float), 1e-300)
        return np.maximum(mu * (1.0 - mu), 1e-300) * (n + phi) / (n * (1.0 + phi))

    def working(self, eta, y, wt):
        """μ, working weights W and working response z at η (Fisher scoring with each row's trials).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.

        Returns
        -------
        tuple of numpy.ndarray
            ``(mu, W, z)``, each of shape (n,): W = (dμ/dη)² / Var(k/n) (0 for rows without trials),
            z = η + (y - μ)/(dμ/dη).
        """
        mu = self.link.inverse(eta)
        d = self.link.mu_eta(eta)
        v = self.trial_variance(mu, wt)
        return mu, np.where(wt > 0, d * d / v, 0.0), eta + (y - mu) / d

    @staticmethod
    def _counts(y, wt):
        n = np.asarray(wt, dtype=float)
        k = np.round(y * n)  # whole successes (check_response has made sure they are)
        return k, n

    def _terms(self, y, wt, phi):
        """The μ-free row terms lchoose(n, k) + lgamma(φ) - lgamma(n + φ), memoised on this bound
        object for the response it was computed for (PIRLS evaluates many μ at one φ)."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0] is not y or memo[1] is not wt or not (
                memo[2] is phi or (np.ndim(phi) == 0 and memo[2] == phi)):
            k, n = self._counts(y, wt)
            const = gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0) + gammaln(phi) - gammaln(n + phi)
            memo = (y, wt, phi, (k, n, const))
            self.__dict__["_memo"] = memo
        return memo[3]

    def log_density(self, y, mu, wt, values):
        """The beta-binomial log-probability of k = y·n successes per row, its μ-free terms memoised per φ.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        mu : numpy.ndarray, shape (n,)
            Conditional means (success probabilities).
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.
        values : dict
            Parameter values by name: ``phi``, a float or one value per row.

        Returns
        -------
        numpy.ndarray, shape (n,)
            lchoose(n, k) + lbeta(k + a, n - k + b) - lbeta(a, b), constants included (the trials are in
            the density, not a multiplier).
        """
        phi = values["phi"]
        k, n, const = self._terms(y, wt, phi)
        a, b = mu * phi, (1.0 - mu) * phi
        return const + gammaln(k + a) - gammaln(a) + gammaln(n - k + b) - gammaln(b)

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row, digamma and trigamma terms only.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        mu : numpy.ndarray, shape (n,)
            Conditional means (success probabilities).
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.
        values : dict
            Parameter values by name: ``phi``, a float or one value per row.

        Returns
        -------
        tuple of numpy.ndarray
            (φ(ψ(k + a) - ψ(a) - ψ(n - k + b) + ψ(b)), φ²(ψ'(k + a) - ψ'(a) + ψ'(n - k + b) - ψ'(b))),
            ψ the digamma function.
        """
        phi = values["phi"]
        k, n, _ = self._terms(y, wt, phi)
        a, b = mu * phi, (1.0 - mu) * phi
        f1 = phi * (digamma(k + a) - digamma(a) - digamma(n - k + b) + digamma(b))
        f2 = phi * phi * (polygamma(1, k + a) - polygamma(1, a) + polygamma(1, n - k + b) - polygamma(1, b))
        return f1, f2

    def mu_derivatives(self, y, mu, wt, values):
        """The beta-binomial log-probability per row and its μ- and log φ-derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        mu : numpy.ndarray, shape (n,)
            Conditional means (success probabilities).
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.
        values : dict
            Parameter values by name: ``phi``, a float or one value per row.

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f the log-probability, f1..f3 its μ-derivatives (polygamma terms of
            k + a, a, n - k + b and b), psi["phi"] the derivatives of (f, f1, f2) in log φ.
        """
        phi = values["phi"]
        k, n, const = self._terms(y, wt, phi)
        a, b = mu * phi, (1.0 - mu) * phi
        ka, kb = k + a, n - k + b
        f = const + gammaln(ka) - gammaln(a) + gammaln(kb) - gammaln(b)
        da, db = digamma(ka) - digamma(a), digamma(kb) - digamma(b)
        ta, tb = polygamma(1, ka) - polygamma(1, a), polygamma(1, kb) - polygamma(1, b)
        qa, qb = polygamma(2, ka) - polygamma(2, a), polygamma(2, kb) - polygamma(2, b)
        f1 = phi * (da - db)
        f2 = phi * phi * (ta + tb)
        f3 = phi**3 * (qa - qb)
        # ψ = log φ: ∂a/∂ψ = a, ∂b/∂ψ = b
        d_f = a * da + b * db - phi * (digamma(n + phi) - digamma(phi))
        d_f1 = f1 + phi * (a * ta - b * tb)
        d_f2 = 2.0 * f2 + phi * phi * (a * qa + b * qb)
        return f, f1, f2, f3, {"phi": (d_f, d_f1, d_f2)}

    def start(self, y, mu, wt):
        """Starting φ from the moments: Var(k/n) = μ(1 - μ)/n · (1 + (n - 1)ρ), ρ = 1/(1 + φ).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        mu : numpy.ndarray, shape (n,)
            Conditional means (success probabilities).
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.

        Returns
        -------
        dict
            ``{"phi": float}``: 1/ρ - 1 with ρ clipped to [1e-4, 0.95]; 100 when no row has two trials.
        """
        n = np.asarray(wt, dtype=float)
        use = n > 1
        if not use.any():
            return {"phi": 100.0}
        v = mu[use] * (1.0 - mu[use])
        excess = np.sum(n[use] * (y[use] - mu[use]) ** 2 / np.maximum(v, 1e-12) - 1.0) / np.sum(n[use] - 1.0)
        rho = float(np.clip(excess, 1e-4, 0.95))
        return {"phi": 1.0 / rho - 1.0}

    def mu_start(self, y, wt):
        """Starting μ = (n y + ½)/(n + 1), inside (0, 1) (the binomial's).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Starting success probabilities.
        """
        return (wt * y + 0.5) / (wt + 1.0)

    def check_response(self, y, wt, name):
        """Refuse proportions outside [0, 1] and success counts y·n that are not whole.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response: the proportion of successes k/n.
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming how many rows are bad, an example, and the two ways to give the response.
        """
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise DataError(
                f"betabinomial response {name!r} must be cbind(successes, failures) or a proportion in [0, 1] with "
                f"weights= the number of trials; {int(bad.sum())} row(s) are outside [0, 1] (e.g. {y[bad][0]:g})"
            )
        counts = y * wt
        frac = np.abs(counts - np.round(counts)) > 1e-7 * np.maximum(wt, 1.0)
        if frac.any():
            raise DataError(
                f"betabinomial response {name!r} times its weights is not a whole number of successes in "
                f"{int(frac.sum())} row(s) (e.g. row {int(np.flatnonzero(frac)[0])}: {counts[frac][0]:g}); give "
                "proportions with weights= the number of trials, or cbind(successes, failures)"
            )

    def simulate(self, mu, wt, rng):
        """Beta-binomial draws: p ~ Beta(μφ, (1 - μ)φ), then k ~ Binomial(n, p), returned as k/n.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means (success probabilities).
        wt : numpy.ndarray, shape (n,)
            Prior weights: the numbers of trials n.
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Proportions k/n (0 for rows without trials), the shape of ``mu``.
        """
        phi = self._values["phi"]
        n = np.round(wt).astype(np.int64)
        p = rng.beta(mu * phi, (1.0 - mu) * phi)
        return np.where(n > 0, rng.binomial(n, p) / np.maximum(n, 1), 0.0)

    def _saturated_mu(self, y):
        return np.clip(np.asarray(y, dtype=float), 1e-10, 1.0 - 1e-10)
