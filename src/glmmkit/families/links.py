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


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        t = -special.ndtri(_EPS)
        return special.ndtr(np.clip(eta, -t, t))

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), _EPS)


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        return np.clip(-np.expm1(-np.exp(np.minimum(eta, 700.0))), _EPS, 1.0 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


class Cauchit(Link):
    name = "cauchit"

    def link(self, mu):
        return np.tan(np.pi * (mu - 0.5))

    def inverse(self, eta):
        t = -np.tan(np.pi * (_EPS - 0.5))
        return 0.5 + np.arctan(np.clip(eta, -t, t)) / np.pi

    def mu_eta(self, eta):
        return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)


class Identity(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))


class Sqrt(Link):
    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return eta * eta

    def mu_eta(self, eta):
        return 2.0 * eta


class Inverse(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / mu

    def inverse(self, eta):
        return 1.0 / eta

    def mu_eta(self, eta):
        return -1.0 / (eta * eta)


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
