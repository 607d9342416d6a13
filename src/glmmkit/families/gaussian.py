"""Gaussian responses with a non-identity link (log, inverse); the identity link is ``lmer``'s job."""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["Gaussian"]


def _check_numeric(y, name, family):
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(f"{family} response {name!r} has {int(bad.sum())} non-finite value(s)")


class Gaussian(ParametricFamily):
    """log p = -½ log(2πσ²) - (y - μ)²/(2σ²); prior weights multiply the log-density (as glmmTMB)."""

    name = "gaussian"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    param_names = ("sigma",)
    disp_param = "sigma"

    def variance(self, mu):
        return np.broadcast_to(self._values["sigma"] ** 2, np.shape(mu)).astype(float)

    def mu_derivatives(self, y, mu, wt, values):
        s2 = values["sigma"] ** 2
        r = y - mu
        f = -0.5 * np.log(2.0 * np.pi * s2) - r * r / (2.0 * s2)
        f1 = r / s2
        f2 = np.full_like(r, -1.0 / s2)
        f3 = np.zeros_like(r)
        return wt * f, wt * f1, wt * f2, wt * f3, {"sigma": (wt * (-1.0 + r * r / s2), -2.0 * wt * f1, -2.0 * wt * f2)}

    def start(self, y, mu, wt):
        return {"sigma": float(max(np.sqrt(np.sum(wt * (y - mu) ** 2) / np.sum(wt)), 1e-8))}

    def mu_start(self, y, wt):
        return np.asarray(y, dtype=float)

    def check_response(self, y, wt, name):
        _check_numeric(y, name, self.name)

    def simulate(self, mu, wt, rng):
        return mu + self._values["sigma"] * rng.standard_normal(np.shape(mu))
