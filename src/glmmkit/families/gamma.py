"""Gamma responses (y > 0): shape a, Var = μ²/a (glmmTMB reports sigma = 1/√a, the coefficient of variation)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["Gamma"]


class Gamma(ParametricFamily):
    """Gamma responses (y > 0) with shape a: Var = μ²/a.

    log p = a log a - a log μ + (a - 1) log y - a y/μ - lgamma(a); glmmTMB reports
    sigma = 1/√a, the coefficient of variation.

    Parameters
    ----------
    link : {"inverse", "log", "identity"}, default "inverse"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"shape": ...}``.
    """

    name = "gamma"
    default_link = "inverse"  # R's Gamma(); glmmTMB users mostly write link = "log"
    links = ("inverse", "log", "identity")
    param_names = ("shape",)
    disp_param = "shape"

    def disp_sigma(self, value):
        """glmmTMB's ``sigma`` for the Gamma: the coefficient of variation 1/√shape.

        Parameters
        ----------
        value : float or numpy.ndarray
            The shape a (a scalar or per row).

        Returns
        -------
        numpy.ndarray
            shape ** -0.5.
        """
        return np.asarray(value, dtype=float) ** -0.5  # the coefficient of variation, glmmTMB's sigma

    def variance(self, mu):
        """V = μ²/a, floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(mu * mu / self._values["shape"], 1e-300)

    def mu_derivatives(self, y, mu, wt, values):
        """The Gamma log-density per row and its μ- and log-shape derivatives.

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
            ``(f, f1, f2, f3, psi)``: f the log-density, f1 = a(y - μ)/μ², f2 = a/μ² - 2ay/μ³,
            f3 = -2a/μ³ + 6ay/μ⁴, psi["shape"] their derivatives in log a; NaN where μ <= 0 (a trial
            point PIRLS halves its step on).
        """
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
        """Starting shape 1 / CV² from the weighted mean of ((y - μ)/μ)², clipped to [0.01, 1e6].

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
            ``{"shape": float}``.
        """
        return self.start_from_pieces(self.start_pieces(y, mu, wt))

    def start_pieces(self, y, mu, wt):
        """The moment start's sums: Σ w((y - μ)/μ)² and Σ w.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray, shape (n,)
            Response, means and prior weights.

        Returns
        -------
        dict
            ``{"cv2": float, "w": float}``.
        """
        return {"cv2": float(np.sum(wt * ((y - mu) / mu) ** 2)), "w": float(np.sum(wt))}

    def start_from_pieces(self, pieces):
        """The shape's moment start 1 / CV² from the summed ``start_pieces``, clipped to [0.01, 1e6].

        Parameters
        ----------
        pieces : dict
            ``cv2`` and ``w`` summed over the rows.

        Returns
        -------
        dict
            ``{"shape": float}``.
        """
        cv2 = pieces["cv2"] / pieces["w"]
        return {"shape": float(np.clip(1.0 / cv2, 0.01, 1e6))}

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
            Naming how many rows are <= 0 (or NaN) and the options for zeros.
        """
        bad = ~(y > 0)
        if bad.any():
            raise DataError(
                f"Gamma response {name!r} must be > 0; {int(bad.sum())} row(s) are not (e.g. {y[bad][0]:g}). "
                "For zeros consider a hurdle/tweedie model, or add a small constant only if it is justified"
            )

    def simulate(self, mu, wt, rng):
        """Gamma draws with shape a and mean μ (scale μ/a).

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
        a = self._values["shape"]
        return rng.gamma(a, mu / a)
