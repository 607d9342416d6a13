"""Negative binomial counts: NB2 (Var = μ + μ²/θ, glmmTMB's nbinom2, lme4's glmer.nb) and NB1 (Var = μ(1 + φ))."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, polygamma

from .parametric import ParametricFamily
from .poisson import Poisson

__all__ = ["NegativeBinomial2", "NegativeBinomial1"]


class _Counts(ParametricFamily):
    default_link = "log"
    links = ("log", "identity", "sqrt")

    def check_response(self, y, wt, name):
        Poisson.check_response(self, y, wt, name)

    def mu_start(self, y, wt):
        return y + 0.1

    def _saturated_mu(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-300)


def _response_terms(y):
    """(log y!, the distinct values of y, each row's index into them) for NB2's μ-free terms; the
    distinct values only where there are at most a quarter as many as rows (else None, None)."""
    y = np.asarray(y, dtype=float)
    lgy = gammaln(y + 1.0)
    if y.ndim != 1 or y.shape[0] < 64:
        return lgy, None, None
    values, index = np.unique(y, return_inverse=True)
    if 4 * values.shape[0] > y.shape[0]:
        return lgy, None, None
    return lgy, values, index


class NegativeBinomial2(_Counts):
    """NB2 counts (glmmTMB's nbinom2, lme4's glmer.nb): Var = μ + μ²/θ.

    log p = lgamma(y+θ) - lgamma(θ) - lgamma(y+1) + θ log θ + y log μ - (y+θ) log(θ+μ).

    Parameters
    ----------
    link : {"log", "identity", "sqrt"}, default "log"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"theta": ...}``.
    """

    name = "negative_binomial"
    param_names = ("theta",)
    disp_param = "theta"
    keyed_memo = True

    def variance(self, mu):
        """V = μ + μ²/θ, floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(mu + mu * mu / self._values["theta"], 1e-300)

    def _theta_terms(self, y, th):
        """The μ-free row terms at θ, memoised on this (bound, immutable) object: PIRLS evaluates
        many μ at one θ, and the log-gamma and digamma of 1e5 rows cost more than everything else of
        an iteration.  The memo holds the response it was computed for, so it can never answer for
        another one."""
        # one memo per response (a truncated or hurdle family evaluates y and a response of zeros in
        # turn: a single one missed at every call), at most four, each holding its response
        memos = self.__dict__.get("_memo") or {}
        memo = memos.get(id(y))
        if memo is None or memo[0] is not y or not (
                memo[1] is th or (np.ndim(th) == 0 and np.ndim(memo[1]) == 0 and memo[1] == th)):
            # what depends on the response alone (log y!, its distinct values) is kept from a memo of the
            # same response at another θ
            ykeep = memo[3] if memo is not None and memo[0] is y else _response_terms(y)
            lgy, values, index = ykeep
            if index is not None and np.ndim(th) == 0:
                # counts take few distinct values: the log-gamma and digamma of y + θ on those, gathered
                # (two special functions over every row were most of an evaluation at 644 rows)
                g, dg = gammaln(values + th)[index], digamma(values + th)[index]
            else:
                g, dg = gammaln(y + th), digamma(y + th)
            const = g - gammaln(th) - lgy + th * np.log(th)
            dconst = dg - digamma(th) + np.log(th) + 1.0
            memo = (y, th, (const, dconst), ykeep)
            # a new dict: the objects with_values made from this one share the old one, and never change
            self.__dict__["_memo"] = {**(memos if len(memos) < 4 else {}), id(y): memo}
        return memo[2]

    def log_density(self, y, mu, wt, values):
        """The NB2 log-density per row, its μ-free terms memoised per θ.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Weights applied, constants included.
        """
        th = values["theta"]
        const, _ = self._theta_terms(y, th)
        return wt * (const + y * np.log(mu) - (y + th) * np.log(th + mu))

    def mu_derivatives(self, y, mu, wt, values):
        """The NB2 log-density per row and its μ- and log θ-derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)`` with f1 = y/μ - (y+θ)/(θ+μ), f2 = -y/μ² + (y+θ)/(θ+μ)²,
            f3 = 2y/μ³ - 2(y+θ)/(θ+μ)³ and psi["theta"] the derivatives of (f, f1, f2) in log θ; weights applied.
        """
        th = values["theta"]
        tm = th + mu
        const, dconst = self._theta_terms(y, th)
        log_tm = np.log(tm)
        a = y / mu            # y/μ
        b = (y + th) / tm     # (y+θ)/(θ+μ)
        imu, itm = 1.0 / mu, 1.0 / tm
        itm2 = itm * itm
        f = const + y * np.log(mu) - (y + th) * log_tm
        f1 = a - b
        f2 = b * itm - a * imu
        f3 = 2.0 * (a * imu * imu - b * itm2)
        d_th = th * (dconst - log_tm - b)
        d1_th = th * (y - mu) * itm2
        d2_th = th * itm2 * (1.0 - 2.0 * b)
        if np.ndim(wt) == 0 and float(wt) == 1.0:  # unit weights (a zero model's base): no products
            return f, f1, f2, f3, {"theta": (d_th, d1_th, d2_th)}
        return wt * f, wt * f1, wt * f2, wt * f3, {"theta": (wt * d_th, wt * d1_th, wt * d2_th)}

    def mu_scores(self, y, mu, wt, values):
        """(f, ∂f/∂μ, {"theta": ∂f/∂log θ}) per row: ``mu_derivatives``'s first derivatives alone.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray, shape (n,)
            Response, conditional means, prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple
            ``(f, f1, {"theta": ...})``, weights applied.
        """
        th = values["theta"]
        tm = th + mu
        const, dconst = self._theta_terms(y, th)
        log_tm = np.log(tm)
        f = const + y * np.log(mu) - (y + th) * log_tm
        f1 = y / mu - (y + th) / tm
        d_th = dconst - log_tm - (y + th) / tm
        return wt * f, wt * f1, {"theta": wt * th * d_th}

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row without the log-gamma terms.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple of numpy.ndarray
            (w (y/μ - (y+θ)/(θ+μ)), w (-y/μ² + (y+θ)/(θ+μ)²)).
        """
        th = values["theta"]
        tm = th + mu
        return wt * (y / mu - (y + th) / tm), wt * (-y / mu**2 + (y + th) / tm**2)

    def start(self, y, mu, wt):
        """Starting θ by moments: 1 / (excess variance over μ²), clipped to [0.05, 1e4]; 100 without excess.

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
        dict
            ``{"theta": float}``.
        """
        return self.start_from_pieces(self.start_pieces(y, mu, wt))

    def start_pieces(self, y, mu, wt):
        """The moment start's sums: Σ w((y - μ)² - μ) and Σ w μ².

        Parameters
        ----------
        y, mu, wt : numpy.ndarray, shape (n,)
            Response, means and prior weights.

        Returns
        -------
        dict
            ``{"excess": float, "mu2": float}``.
        """
        return {"excess": float(np.sum(wt * ((y - mu) ** 2 - mu))), "mu2": float(np.sum(wt * mu * mu))}

    def start_from_pieces(self, pieces):
        """θ's moment start from the summed ``start_pieces``.

        Parameters
        ----------
        pieces : dict
            ``excess`` and ``mu2`` summed over the rows.

        Returns
        -------
        dict
            ``{"theta": float}``.
        """
        excess = pieces["excess"] / pieces["mu2"]
        return {"theta": float(np.clip(1.0 / excess, 0.05, 1e4)) if excess > 0 else 100.0}

    def simulate(self, mu, wt, rng):
        """NB2 draws as a Poisson-gamma mixture (gamma shape θ, mean μ).

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
        th = self._values["theta"]
        return rng.poisson(rng.gamma(th, mu / th)).astype(float)


class NegativeBinomial1(_Counts):
    """NB1 counts (glmmTMB's nbinom1): size μ/φ, so Var = μ(1 + φ).

    Parameters
    ----------
    link : {"log", "identity", "sqrt"}, default "log"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"phi": ...}``.
    """

    name = "nbinom1"
    param_names = ("phi",)
    disp_param = "phi"

    def variance(self, mu):
        """V = μ(1 + φ), floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(mu * (1.0 + self._values["phi"]), 1e-300)

    def log_density(self, y, mu, wt, values):
        """The NB1 log-density per row (size k = μ/φ, probability 1/(1 + φ)).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Weights applied, constants included.
        """
        phi = values["phi"]
        k = mu / phi
        l1p = np.log1p(phi)
        return wt * (gammaln(y + k) - gammaln(k) - gammaln(y + 1.0) - k * l1p + y * (np.log(phi) - l1p))

    def mu_derivatives(self, y, mu, wt, values):
        """The NB1 log-density per row and its μ- and log φ-derivatives (digamma and polygamma of y + k and k).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (non-negative counts).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f the log-density, f1..f3 its μ-derivatives, psi["phi"] the
            derivatives of (f, f1, f2) in log φ; weights applied.
        """
        phi = values["phi"]
        k = mu / phi
        l1p = np.log1p(phi)
        f = gammaln(y + k) - gammaln(k) - gammaln(y + 1.0) - k * l1p + y * (np.log(phi) - l1p)
        dg = digamma(y + k) - digamma(k)
        tg = polygamma(1, y + k) - polygamma(1, k)
        qg = polygamma(2, y + k) - polygamma(2, k)
        f1 = (dg - l1p) / phi
        f2 = tg / phi**2
        f3 = qg / phi**3
        # ψ = log φ: ∂k/∂ψ = -k
        d_f = -k * (dg - l1p) - k * phi / (1.0 + phi) + y / (1.0 + phi)
        d_f1 = -f1 + (-k * tg - phi / (1.0 + phi)) / phi
        d_f2 = -2.0 * f2 - k * qg / phi**2
        return wt * f, wt * f1, wt * f2, wt * f3, {"phi": (wt * d_f, wt * d_f1, wt * d_f2)}

    def start(self, y, mu, wt):
        """Starting φ: the weighted mean of (y - μ)²/μ minus 1, clipped to [0.05, 1e3].

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
        dict
            ``{"phi": float}``.
        """
        ratio = np.sum(wt * (y - mu) ** 2 / mu) / np.sum(wt) - 1.0
        return {"phi": float(np.clip(ratio, 0.05, 1e3))}

    def simulate(self, mu, wt, rng):
        """NB1 draws as a Poisson-gamma mixture (gamma shape μ/φ, scale φ).

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
        phi = self._values["phi"]
        k = mu / phi
        return rng.poisson(rng.gamma(k, phi)).astype(float)
