"""Student-t responses: location μ, scale σ and degrees of freedom ν (estimated, or fixed by family_params)."""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from .gaussian import _check_numeric
from .parametric import ParametricFamily

__all__ = ["StudentT"]


class StudentT(ParametricFamily):
    """log p = lgamma((ν+1)/2) - lgamma(ν/2) - ½ log(νπ) - log σ - (ν+1)/2 log(1 + r²/(νσ²)), r = y - μ."""

    name = "student_t"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    param_names = ("df", "sigma")
    disp_param = "sigma"

    def variance(self, mu):
        nu, sig = self._values["df"], self._values["sigma"]
        with np.errstate(divide="ignore"):
            v = np.where(np.asarray(nu) > 2, sig * sig * nu / np.maximum(np.asarray(nu, dtype=float) - 2.0, 0.0), np.inf)
        return np.broadcast_to(v, np.shape(mu)).astype(float)

    def mu_derivatives(self, y, mu, wt, values):
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
        sd = np.sqrt(np.sum(wt * (y - mu) ** 2) / np.sum(wt))
        return {"df": 10.0, "sigma": float(max(sd, 1e-8))}

    def mu_start(self, y, wt):
        return np.asarray(y, dtype=float)

    def check_response(self, y, wt, name):
        _check_numeric(y, name, self.name)

    def simulate(self, mu, wt, rng):
        return mu + self._values["sigma"] * rng.standard_t(self._values["df"], size=np.shape(mu))
