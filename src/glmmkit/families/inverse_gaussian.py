"""Inverse Gaussian responses (y > 0): Var = φ μ³ (φ the dispersion)."""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["InverseGaussian"]


class InverseGaussian(ParametricFamily):
    """Inverse Gaussian responses (y > 0) with dispersion φ: Var = φ μ³.

    log p = -½ log(2π φ y³) - (y - μ)² / (2 φ μ² y).

    Parameters
    ----------
    link : {"log", "inverse", "identity"}, default "log"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"dispersion": ...}``.
    """

    name = "inverse_gaussian"
    default_link = "log"  # R's default 1/μ² is rarely what a mixed-model user wants
    links = ("log", "inverse", "identity")
    param_names = ("dispersion",)

    def variance(self, mu):
        """V = φ μ³, floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(self._values["dispersion"] * mu**3, 1e-300)

    def mu_derivatives(self, y, mu, wt, values):
        """The inverse Gaussian log-density per row and its μ- and log φ-derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f1 = (y - μ)/(φμ³), f2 = (2μ - 3y)/(φμ⁴), f3 = (12y - 6μ)/(φμ⁵),
            psi["dispersion"] = (w(q/(2φ) - ½), -f1, -f2) with q = (y - μ)²/(μ²y); weights applied.
        """
        phi = values["dispersion"]
        q = y / mu**2 - 2.0 / mu + 1.0 / y  # (y - μ)² / (μ² y)
        f = -0.5 * np.log(2.0 * np.pi * phi * y**3) - q / (2.0 * phi)
        f1 = (y - mu) / (phi * mu**3)
        f2 = (2.0 * mu - 3.0 * y) / (phi * mu**4)
        f3 = (12.0 * y - 6.0 * mu) / (phi * mu**5)
        return wt * f, wt * f1, wt * f2, wt * f3, {"dispersion": (wt * (-0.5 + q / (2.0 * phi)), -wt * f1, -wt * f2)}

    def start(self, y, mu, wt):
        """Starting φ: the weighted mean of (y - μ)²/μ³, clipped to [1e-8, 1e8].

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        dict
            ``{"dispersion": float}``.
        """
        return {"dispersion": float(np.clip(np.sum(wt * (y - mu) ** 2 / mu**3) / np.sum(wt), 1e-8, 1e8))}

    def mu_start(self, y, wt):
        """Starting μ = y.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            A float copy of ``y``.
        """
        return np.asarray(y, dtype=float)

    def check_response(self, y, wt, name):
        """Refuse responses that are not > 0.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming how many rows are <= 0.
        """
        bad = ~(y > 0)
        if bad.any():
            raise DataError(f"inverse Gaussian response {name!r} must be > 0; {int(bad.sum())} row(s) are not (e.g. {y[bad][0]:g})")

    def simulate(self, mu, wt, rng):
        """Inverse Gaussian (Wald) draws with mean μ and shape 1/φ.

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
            The shape of ``mu``.
        """
        return rng.wald(mu, 1.0 / self._values["dispersion"])  # numpy's scale λ: Var = μ³/λ
