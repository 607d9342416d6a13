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
    """Gaussian responses with a non-identity link: log p = -½ log(2πσ²) - (y - μ)²/(2σ²).

    Prior weights multiply the log-density (as glmmTMB); the identity link is ``lmer``'s job.

    Parameters
    ----------
    link : {"identity", "log", "inverse"}, default "identity"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"sigma": ...}``.
    """

    name = "gaussian"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    param_names = ("sigma",)
    disp_param = "sigma"

    def variance(self, mu):
        """Var(y) = σ², the same for every row.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            σ² broadcast to the shape of ``mu``.
        """
        return np.broadcast_to(self._values["sigma"] ** 2, np.shape(mu)).astype(float)

    def mu_derivatives(self, y, mu, wt, values):
        """The Gaussian log-density per row and its μ- and log σ-derivatives.

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
            ``(f, f1, f2, f3, psi)`` with f = w(-½ log(2πσ²) - r²/(2σ²)), r = y - μ, f1 = w r/σ²,
            f2 = -w/σ², f3 = 0 and psi["sigma"] = (w(r²/σ² - 1), -2 f1, -2 f2).
        """
        s2 = values["sigma"] ** 2
        r = y - mu
        f = -0.5 * np.log(2.0 * np.pi * s2) - r * r / (2.0 * s2)
        f1 = r / s2
        f2 = np.full_like(r, -1.0 / s2)
        f3 = np.zeros_like(r)
        return wt * f, wt * f1, wt * f2, wt * f3, {"sigma": (wt * (-1.0 + r * r / s2), -2.0 * wt * f1, -2.0 * wt * f2)}

    def start(self, y, mu, wt):
        """Starting σ: the weighted root mean square of y - μ (at least 1e-8).

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
            ``{"sigma": float}``.
        """
        return {"sigma": float(max(np.sqrt(np.sum(wt * (y - mu) ** 2) / np.sum(wt)), 1e-8))}

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
        """Refuse non-finite responses.

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
            Naming how many values are NaN or infinite.
        """
        _check_numeric(y, name, self.name)

    def simulate(self, mu, wt, rng):
        """Normal draws y = μ + σ ε.

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
        return mu + self._values["sigma"] * rng.standard_normal(np.shape(mu))
