"""Link functions g: μ = g⁻¹(η), with dμ/dη for IRLS weights.

Each link clips η or μ where R does, so that extreme linear predictors never
produce μ of exactly 0 or 1 (binomial) or 0 (Poisson).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..exceptions import ArgumentError

__all__ = ["Link", "get_link", "LINKS"]

_EPS = np.finfo(float).eps
_THRESH = 30.0  # R's logit clip: exp(±30) keeps μ away from 0 and 1


class Link:
    """A link function.

    Attributes
    ----------
    name : str
    """

    name = ""

    def link(self, mu):
        raise NotImplementedError

    def inverse(self, eta):
        raise NotImplementedError

    def mu_eta(self, eta):
        """dμ/dη."""
        raise NotImplementedError

    def mu_eta_derivatives(self, eta):
        """(dμ/dη, d²μ/dη², d³μ/dη³), unclipped: the chain rule of the exact Laplace gradient
        for families with their own parameters (``ParametricFamily.eta_derivatives``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Link({self.name!r})"


class Logit(Link):
    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    def inverse(self, eta):
        return special.expit(np.clip(eta, -_THRESH, _THRESH))

    def mu_eta(self, eta):
        mu = self.inverse(eta)
        return np.maximum(mu * (1.0 - mu), _EPS)

    def mu_eta_derivatives(self, eta):
        mu = self.inverse(eta)
        v = mu * (1.0 - mu)
        return v, v * (1.0 - 2.0 * mu), v * (1.0 - 6.0 * v)


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        t = -special.ndtri(_EPS)
        return special.ndtr(np.clip(eta, -t, t))

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), _EPS)

    def mu_eta_derivatives(self, eta):
        d = np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
        return d, -eta * d, (eta * eta - 1.0) * d


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta_derivatives(self, eta):
        e = np.exp(np.minimum(eta, 700.0))
        d = np.exp(np.minimum(eta, 700.0) - e)
        return d, d * (1.0 - e), d * ((1.0 - e) ** 2 - e)


class Cauchit(Link):
    name = "cauchit"

    def link(self, mu):
        return np.tan(np.pi * (mu - 0.5))

    def inverse(self, eta):
        t = -np.tan(np.pi * (_EPS - 0.5))
        return 0.5 + np.arctan(np.clip(eta, -t, t)) / np.pi

    def mu_eta(self, eta):
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)

    def mu_eta_derivatives(self, eta):
        q = 1.0 + eta * eta
        return 1.0 / (np.pi * q), -2.0 * eta / (np.pi * q * q), (6.0 * eta * eta - 2.0) / (np.pi * q**3)


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta_derivatives(self, eta):
        mu = self.inverse(eta)
        return mu, mu, mu


class Identity(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))

    def mu_eta_derivatives(self, eta):
        one = np.ones_like(np.asarray(eta, dtype=float))
        return one, 0.0 * one, 0.0 * one


class Sqrt(Link):
    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return eta * eta

    def mu_eta(self, eta):
        return 2.0 * eta

    def mu_eta_derivatives(self, eta):
        two = np.full_like(np.asarray(eta, dtype=float), 2.0)
        return 2.0 * eta, two, 0.0 * two


class Inverse(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        return 1.0 / eta

    def mu_eta(self, eta):
        return -1.0 / (eta * eta)

    def mu_eta_derivatives(self, eta):
        e2 = eta * eta
        return -1.0 / e2, 2.0 / (e2 * eta), -6.0 / (e2 * e2)


LINKS = {cls.name: cls for cls in (Logit, Probit, Cloglog, Cauchit, Log, Identity, Sqrt, Inverse)}


def get_link(name) -> Link:
    """The link called ``name`` (or a Link instance, returned as is)."""
    if isinstance(name, Link):
        return name
    key = str(name).lower()
    if key not in LINKS:
        import difflib

        close = difflib.get_close_matches(key, list(LINKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ArgumentError(f"unknown link {name!r}{hint}; available: {', '.join(LINKS)}")
    return LINKS[key]()
