"""Student-t responses: location μ, scale σ and degrees of freedom ν (estimated, or fixed by family_params)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from .gaussian import _check_numeric
from .parametric import ParametricFamily

__all__ = ["StudentT"]


class StudentT(ParametricFamily):
    """Student-t responses: location μ, scale σ and degrees of freedom ν.

    log p = lgamma((ν+1)/2) - lgamma(ν/2) - ½ log(νπ) - log σ - (ν+1)/2 log(1 + r²/(νσ²)), r = y - μ.

    Parameters
    ----------
    link : {"identity", "log", "inverse"}, default "identity"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"df": 4}`` fixes ν
        (often wise: ν is weakly identified), ``"sigma"`` σ.
    """

    name = "student_t"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    param_names = ("df", "sigma")
    disp_param = "sigma"

    def variance(self, mu):
        """Var(y) = σ² ν/(ν - 2) for ν > 2, infinite otherwise.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            Broadcast to the shape of ``mu``.
        """
        nu, sig = self._values["df"], self._values["sigma"]
        with np.errstate(divide="ignore"):
            v = np.where(np.asarray(nu) > 2, sig * sig * nu / np.maximum(np.asarray(nu, dtype=float) - 2.0, 0.0), np.inf)
        return np.broadcast_to(v, np.shape(mu)).astype(float)

    def mu_derivatives(self, y, mu, wt, values):
        """The t log-density per row and its μ-, log σ- and log ν-derivatives.

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
            ``(f, f1, f2, f3, psi)``: f the log-density, f1..f3 its μ-derivatives, psi["sigma"] and
            psi["df"] the derivatives of (f, f1, f2) in log σ and log ν; weights applied.
        """
        nu, sig = values["df"], values["sigma"]
        r = y - mu
        A = nu * sig * sig
        Q = A + r * r
        f = gammaln(0.5 * (nu + 1.0)) - gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi) - np.log(sig) - 0.5 * (nu + 1.0) * np.log(Q / A)
        f1 = (nu + 1.0) * r / Q
        f2 = (nu + 1.0) * (r * r - A) / Q**2
        f3 = 2.0 * (nu + 1.0) * r * (r * r - 3.0 * A) / Q**3
        d2_dA = -(nu + 1.0) * (3.0 * r * r - A) / Q**3  # ∂f2/∂A
        out = {}
        # ψ = log σ: ∂A/∂ψ = 2A
        out["sigma"] = (-1.0 + (nu + 1.0) * r * r / Q, -(nu + 1.0) * r * 2.0 * A / Q**2, d2_dA * 2.0 * A)
        # ψ = log ν: ν appears in A (∂A/∂ψ = A) and in the constants
        z = r * r / A
        d_nu = 0.5 * digamma(0.5 * (nu + 1.0)) - 0.5 * digamma(0.5 * nu) - 0.5 / nu - 0.5 * np.log1p(z) + 0.5 * (nu + 1.0) * z / (nu * (1.0 + z))
        d1_nu = r / Q - (nu + 1.0) * r * sig * sig / Q**2
        d2_nu = (r * r - A) / Q**2 + d2_dA * sig * sig
        out["df"] = (nu * d_nu, nu * d1_nu, nu * d2_nu)
        out = {k: tuple(wt * x for x in v) for k, v in out.items()}
        return wt * f, wt * f1, wt * f2, wt * f3, out

    def start(self, y, mu, wt):
        """Starting values ν = 10 and σ = the weighted root mean square of y - μ.

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
            ``{"df": 10.0, "sigma": float}``.
        """
        sd = np.sqrt(np.sum(wt * (y - mu) ** 2) / np.sum(wt))
        return {"df": 10.0, "sigma": float(max(sd, 1e-8))}

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
        """t draws y = μ + σ t_ν.

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
        return mu + self._values["sigma"] * rng.standard_t(self._values["df"], size=np.shape(mu))
