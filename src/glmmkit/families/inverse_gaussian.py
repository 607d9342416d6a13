"""Inverse Gaussian responses (y > 0): Var = φ μ³ (φ the dispersion)."""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["InverseGaussian"]


class InverseGaussian(ParametricFamily):
    """log p = -½ log(2π φ y³) - (y - μ)² / (2 φ μ² y)."""

    name = "inverse_gaussian"
    default_link = "log"  # R's default 1/μ² is rarely what a mixed-model user wants
    links = ("log", "inverse", "identity")
    param_names = ("dispersion",)

    def variance(self, mu):
        return np.maximum(self._values["dispersion"] * mu**3, 1e-300)

    def mu_derivatives(self, y, mu, wt, values):
        phi = values["dispersion"]
        q = y / mu**2 - 2.0 / mu + 1.0 / y  # (y - μ)² / (μ² y)
        f = -0.5 * np.log(2.0 * np.pi * phi * y**3) - q / (2.0 * phi)
        f1 = (y - mu) / (phi * mu**3)
        f2 = (2.0 * mu - 3.0 * y) / (phi * mu**4)
        f3 = (12.0 * y - 6.0 * mu) / (phi * mu**5)
        return wt * f, wt * f1, wt * f2, wt * f3, {"dispersion": (wt * (-0.5 + q / (2.0 * phi)), -wt * f1, -wt * f2)}

    def start(self, y, mu, wt):
        return {"dispersion": float(np.clip(np.sum(wt * (y - mu) ** 2 / mu**3) / np.sum(wt), 1e-8, 1e8))}

    def mu_start(self, y, wt):
        return np.asarray(y, dtype=float)

    def check_response(self, y, wt, name):
        bad = ~(y > 0)
        if bad.any():
            raise DataError(f"inverse Gaussian response {name!r} must be > 0; {int(bad.sum())} row(s) are not (e.g. {y[bad][0]:g})")

    def simulate(self, mu, wt, rng):
        return rng.wald(mu, 1.0 / self._values["dispersion"])  # numpy's scale λ: Var = μ³/λ
