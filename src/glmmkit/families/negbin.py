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


class NegativeBinomial2(_Counts):
    """NB2: log p = lgamma(y+θ) - lgamma(θ) - lgamma(y+1) + θ log θ + y log μ - (y+θ) log(θ+μ)."""

    name = "negative_binomial"
    param_names = ("theta",)
    disp_param = "theta"

    def variance(self, mu):
        return np.maximum(mu + mu * mu / self._values["theta"], 1e-300)

    def _theta_terms(self, y, th):
        """The μ-free row terms at θ, memoised on this (bound, immutable) object: PIRLS evaluates
        many μ at one θ, and the log-gamma and digamma of 1e5 rows cost more than everything else of
        an iteration.  The memo holds the response it was computed for, so it can never answer for
        another one."""
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0] is not y or not (memo[1] is th or (np.ndim(th) == 0 and memo[1] == th)):
            const = gammaln(y + th) - gammaln(th) - gammaln(y + 1.0) + th * np.log(th)
            dconst = digamma(y + th) - digamma(th) + np.log(th) + 1.0
            memo = (y, th, (const, dconst))
            self.__dict__["_memo"] = memo
        return memo[2]

    def log_density(self, y, mu, wt, values):
        th = values["theta"]
        const, _ = self._theta_terms(y, th)
        return wt * (const + y * np.log(mu) - (y + th) * np.log(th + mu))

    def mu_derivatives(self, y, mu, wt, values):
        th = values["theta"]
        tm = th + mu
        const, dconst = self._theta_terms(y, th)
        f = const + y * np.log(mu) - (y + th) * np.log(tm)
        f1 = y / mu - (y + th) / tm
        f2 = -y / mu**2 + (y + th) / tm**2
        f3 = 2.0 * y / mu**3 - 2.0 * (y + th) / tm**3
        d_th = dconst - np.log(tm) - (y + th) / tm
        d1_th = (y - mu) / tm**2
        d2_th = 1.0 / tm**2 - 2.0 * (y + th) / tm**3
        return wt * f, wt * f1, wt * f2, wt * f3, {"theta": (wt * th * d_th, wt * th * d1_th, wt * th * d2_th)}

    def mu_score_info(self, y, mu, wt, values):
        th = values["theta"]
        tm = th + mu
        return wt * (y / mu - (y + th) / tm), wt * (-y / mu**2 + (y + th) / tm**2)

    def start(self, y, mu, wt):
        excess = np.sum(wt * ((y - mu) ** 2 - mu)) / np.sum(wt * mu * mu)
        return {"theta": float(np.clip(1.0 / excess, 0.05, 1e4)) if excess > 0 else 100.0}

    def simulate(self, mu, wt, rng):
        th = self._values["theta"]
        return rng.poisson(rng.gamma(th, mu / th)).astype(float)


class NegativeBinomial1(_Counts):
    """NB1 (glmmTMB's nbinom1): size μ/φ, so Var = μ(1 + φ)."""

    name = "nbinom1"
    param_names = ("phi",)
    disp_param = "phi"

    def variance(self, mu):
        return np.maximum(mu * (1.0 + self._values["phi"]), 1e-300)

    def log_density(self, y, mu, wt, values):
        phi = values["phi"]
        k = mu / phi
        l1p = np.log1p(phi)
        return wt * (gammaln(y + k) - gammaln(k) - gammaln(y + 1.0) - k * l1p + y * (np.log(phi) - l1p))

    def mu_derivatives(self, y, mu, wt, values):
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
        ratio = np.sum(wt * (y - mu) ** 2 / mu) / np.sum(wt) - 1.0
        return {"phi": float(np.clip(ratio, 0.05, 1e3))}

    def simulate(self, mu, wt, rng):
        phi = self._values["phi"]
        k = mu / phi
        return rng.poisson(rng.gamma(k, phi)).astype(float)
