"""Gamma responses (y > 0): shape a, Var = μ²/a (glmmTMB reports sigma = 1/√a, the coefficient of variation)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["Gamma"]


class Gamma(ParametricFamily):
    """log p = a log a - a log μ + (a - 1) log y - a y/μ - lgamma(a)."""

    name = "gamma"
    default_link = "inverse"  # R's Gamma(); glmmTMB users mostly write link = "log"
    links = ("inverse", "log", "identity")
    param_names = ("shape",)
    disp_param = "shape"

    def disp_sigma(self, value):
        return np.asarray(value, dtype=float) ** -0.5  # the coefficient of variation, glmmTMB's sigma

    def variance(self, mu):
        return np.maximum(mu * mu / self._values["shape"], 1e-300)

    def mu_derivatives(self, y, mu, wt, values):
        a = values["shape"]
        ly = np.log(y)
        # a trial point of the inverse link can put μ <= 0: NaN there, which PIRLS halves its step on
        with np.errstate(invalid="ignore", divide="ignore"):
            f = a * np.log(a) - a * np.log(mu) + (a - 1.0) * ly - a * y / mu - gammaln(a)
            f1 = a * (y - mu) / mu**2
            f2 = a / mu**2 - 2.0 * a * y / mu**3
            f3 = -2.0 * a / mu**3 + 6.0 * a * y / mu**4
            d_f = a * (np.log(a) + 1.0 - np.log(mu) + ly - y / mu - digamma(a))
        return wt * f, wt * f1, wt * f2, wt * f3, {"shape": (wt * d_f, wt * f1, wt * f2)}

    def start(self, y, mu, wt):
        cv2 = np.sum(wt * ((y - mu) / mu) ** 2) / np.sum(wt)
        return {"shape": float(np.clip(1.0 / cv2, 0.01, 1e6))}

    def mu_start(self, y, wt):
        return np.asarray(y, dtype=float)

    def check_response(self, y, wt, name):
        bad = ~(y > 0)
        if bad.any():
            raise DataError(
                f"Gamma response {name!r} must be > 0; {int(bad.sum())} row(s) are not (e.g. {y[bad][0]:g}). "
                "For zeros consider a hurdle/tweedie model, or add a small constant only if it is justified"
            )

    def simulate(self, mu, wt, rng):
        a = self._values["shape"]
        return rng.gamma(a, mu / a)
