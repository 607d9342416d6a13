"""Beta responses in (0, 1): mean μ and precision φ, Var = μ(1 - μ)/(1 + φ) (glmmTMB's beta_family)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, polygamma

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["Beta"]


class Beta(ParametricFamily):
    """Beta responses in (0, 1) with mean μ and precision φ: Var = μ(1 - μ)/(1 + φ) (glmmTMB's beta_family).

    log p = lgamma(φ) - lgamma(μφ) - lgamma((1-μ)φ) + (μφ - 1) log y + ((1-μ)φ - 1) log(1 - y).

    Parameters
    ----------
    link : {"logit", "probit", "cloglog", "cauchit"}, default "logit"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"phi": ...}``.
    """

    name = "beta"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "cauchit")
    param_names = ("phi",)
    disp_param = "phi"

    def variance(self, mu):
        """V = μ(1 - μ)/(1 + φ), floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(mu * (1.0 - mu) / (1.0 + self._values["phi"]), 1e-300)

    def mu_derivatives(self, y, mu, wt, values):
        """The beta log-density per row and its μ- and log φ-derivatives (digamma and polygamma terms).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response in (0, 1).
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
        a, b = mu * phi, (1.0 - mu) * phi
        ly, l1y = np.log(y), np.log1p(-y)
        f = gammaln(phi) - gammaln(a) - gammaln(b) + (a - 1.0) * ly + (b - 1.0) * l1y
        da, db = digamma(a), digamma(b)
        ta, tb = polygamma(1, a), polygamma(1, b)
        qa, qb = polygamma(2, a), polygamma(2, b)
        f1 = phi * (db - da + ly - l1y)
        f2 = -phi * phi * (ta + tb)
        f3 = -(phi**3) * (qa - qb)
        d_f = phi * (digamma(phi) - mu * da - (1.0 - mu) * db + mu * ly + (1.0 - mu) * l1y)
        d_f1 = f1 + phi * (tb * b - ta * a)
        d_f2 = 2.0 * f2 - phi * phi * (qa * a + qb * b)
        return wt * f, wt * f1, wt * f2, wt * f3, {"phi": (wt * d_f, wt * d_f1, wt * d_f2)}

    def start(self, y, mu, wt):
        """Starting φ by moments: mean μ(1 - μ) over the mean squared residual, minus 1, clipped to [0.5, 1e6].

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
            ``{"phi": float}``.
        """
        v = np.sum(wt * (y - mu) ** 2) / np.sum(wt)
        m = np.sum(wt * mu * (1.0 - mu)) / np.sum(wt)
        return {"phi": float(np.clip(m / max(v, 1e-12) - 1.0, 0.5, 1e6))}

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
        """Refuse responses not strictly inside (0, 1).

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
            Naming how many rows and the usual squeeze (y (n - 1) + 0.5)/n.
        """
        bad = ~((y > 0) & (y < 1))
        if bad.any():
            n = y.shape[0]
            raise DataError(
                f"beta response {name!r} must lie strictly inside (0, 1); {int(bad.sum())} of {n} row(s) do not "
                f"(e.g. {y[bad][0]:g}). The usual squeeze is (y * (n - 1) + 0.5) / n (Smithson & Verkuilen 2006)"
            )

    def simulate(self, mu, wt, rng):
        """Beta draws with shape parameters μφ and (1 - μ)φ.

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
            Values in (0, 1), the shape of ``mu``.
        """
        phi = self._values["phi"]
        return rng.beta(mu * phi, (1.0 - mu) * phi)

    def _saturated_mu(self, y):
        return np.asarray(y, dtype=float)
