"""Log-normal responses (y > 0) with mean μ and standard deviation σ on the data scale (glmmTMB's lognormal:
log y ~ N(log μ - s²/2, s²), s² = log(1 + (σ/μ)²), so E y = μ and Var y = σ²)."""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError
from .parametric import ParametricFamily

__all__ = ["LogNormal"]

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def _log_scale(mu, sigma):
    """q = (σ/μ)², w = q/(1 + q), 1 - w and v = s² = log(1 + q), without cancellation at either end."""
    q = np.exp(2.0 * (np.log(sigma) - np.log(mu)))
    w1 = 1.0 / (1.0 + q)
    return q, q * w1, w1, np.log1p(q)


class LogNormal(ParametricFamily):
    """log p = -log y - ½ log(2π s²) - (log y - m)²/(2 s²), m = log μ - s²/2, s² = log(1 + σ²/μ²).

    Both m and s² depend on μ; the derivatives are taken in u = log μ (where (σ/μ)² = e^(2 log σ - 2u)
    makes the σ-derivative a u-derivative with the sign turned) and mapped to μ.

    Parameters
    ----------
    link : {"log", "identity", "inverse"}, default "log"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given positive values instead of estimated: ``{"sigma": ...}``.
    """

    name = "lognormal"
    default_link = "log"
    links = ("log", "identity", "inverse")
    param_names = ("sigma",)
    disp_param = "sigma"

    def variance(self, mu):
        """V = σ², the same for every μ (σ is the standard deviation on the data scale).

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            σ² (per row where σ is modelled by a dispformula), the shape of ``mu``.
        """
        return np.broadcast_to(np.asarray(self._values["sigma"], dtype=float) ** 2, np.shape(mu)).astype(float)

    def _memo_logy(self, y):
        memo = self.__dict__.get("_memo")
        if memo is None or memo[0] is not y:
            memo = (y, np.log(y))
            self.__dict__["_memo"] = memo
        return memo[1]

    def log_density(self, y, mu, wt, values):
        """The log-normal log-density per row, log y memoised for the response.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (> 0).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name: ``sigma``, a float or one value per row.

        Returns
        -------
        numpy.ndarray, shape (n,)
            -log y - ½ log(2π s²) - (log y - m)²/(2 s²), weights applied (NaN where μ <= 0).
        """
        ly = self._memo_logy(y)
        with np.errstate(invalid="ignore", divide="ignore"):  # μ <= 0 from a trial step of a non-log link: NaN
            _, _, _, v = _log_scale(mu, values["sigma"])
            d = ly - np.log(mu) + 0.5 * v
            return wt * (-ly - _HALF_LOG_2PI - 0.5 * np.log(v) - 0.5 * d * d / v)

    def mu_derivatives(self, y, mu, wt, values):
        """The log-normal log-density per row, its μ-derivatives and its derivatives in log σ.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (> 0).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name: ``sigma``, a float or one value per row.

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f the log-density, f1..f3 its μ-derivatives (taken in log μ and
            mapped to μ), psi["sigma"] the derivatives of (f, f1, f2) in log σ; weights applied.
        """
        ly = self._memo_logy(y)
        with np.errstate(invalid="ignore", divide="ignore"):
            q, w, w1, v = _log_scale(mu, values["sigma"])
            d = ly - np.log(mu) + 0.5 * v
            ww = w * w1
            # s² = v in u = log μ
            v1, v2, v3 = -2.0 * w, 4.0 * ww, -8.0 * ww * (w1 - w)
            # d = log y - m, m = u - v/2
            d1, d2, d3 = -(1.0 + w), 2.0 * ww, -4.0 * ww * (w1 - w)
            iv = 1.0 / v
            r = v1 * iv
            # log v and 1/v in u
            A1 = r
            A2 = v2 * iv - r * r
            A3 = v3 * iv - 3.0 * r * v2 * iv + 2.0 * r**3
            i1 = -r * iv
            i2 = (-v2 + 2.0 * v1 * r) * iv * iv
            i3 = (-v3 + 6.0 * v2 * r - 6.0 * v1 * r * r) * iv * iv
            # d² and B = d²/v in u
            D0, D1, D2, D3 = d * d, 2.0 * d * d1, 2.0 * (d1 * d1 + d * d2), 6.0 * d1 * d2 + 2.0 * d * d3
            B1 = D1 * iv + D0 * i1
            B2 = D2 * iv + 2.0 * D1 * i1 + D0 * i2
            B3 = D3 * iv + 3.0 * D2 * i1 + 3.0 * D1 * i2 + D0 * i3
            f = -ly - _HALF_LOG_2PI - 0.5 * np.log(v) - 0.5 * D0 * iv
            g1, g2, g3 = -0.5 * (A1 + B1), -0.5 * (A2 + B2), -0.5 * (A3 + B3)
            # ψ = log σ: f(u, ψ) sees ψ only through v(ψ - u), so ∂f/∂ψ = -g1 + (∂f/∂u at fixed v) = -g1 + d/v
            E0, E1, E2 = d * iv, d1 * iv + d * i1, d2 * iv + 2.0 * d1 * i1 + d * i2
            p0, p1, p2 = -g1 + E0, -g2 + E1, -g3 + E2
            # from u = log μ to μ
            m1 = 1.0 / mu
            f1 = g1 * m1
            f2 = (g2 - g1) * m1 * m1
            f3 = (g3 - 3.0 * g2 + 2.0 * g1) * m1**3
            s1 = p1 * m1
            s2 = (p2 - p1) * m1 * m1
        return wt * f, wt * f1, wt * f2, wt * f3, {"sigma": (wt * p0, wt * s1, wt * s2)}

    def start(self, y, mu, wt):
        """Starting σ: the weighted root mean square of y - μ (at least 1e-8 of the largest |y|).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (> 0).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        dict
            ``{"sigma": float}``.
        """
        sd = np.sqrt(np.sum(wt * (y - mu) ** 2) / np.sum(wt))
        return {"sigma": float(max(sd, 1e-8 * max(float(np.max(np.abs(y))), 1e-300)))}

    def mu_start(self, y, wt):
        """Starting μ = y, with the mean of the positive responses where y <= 0 (a hurdle's zero rows).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (> 0; a hurdle passes its zeros too).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Positive starting means.
        """
        y = np.asarray(y, dtype=float)
        pos = y > 0
        if pos.all():
            return y.copy()
        fill = float(np.mean(y[pos])) if pos.any() else 1.0
        return np.where(pos, y, fill)

    def check_response(self, y, wt, name):
        """Refuse responses that are not > 0.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (> 0).
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming how many rows are <= 0 (or NaN), which (0-based among the complete rows), and the
            options for zeros.
        """
        bad = ~(y > 0)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(str(int(i)) for i in rows[:8]) + (", ..." if rows.size > 8 else "")
            raise DataError(
                f"lognormal response {name!r} must be > 0; {rows.size} row(s) are not (rows {shown}, 0-based among "
                f"the complete rows; e.g. {y[bad][0]:g}). For exact zeros use family='tweedie' or a hurdle "
                "(ziformula with a positive family)"
            )

    def simulate(self, mu, wt, rng):
        """Log-normal draws exp(m + s Z), m = log μ - s²/2, s² = log(1 + σ²/μ²), Z standard normal.

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
            Positive draws, the shape of ``mu``.
        """
        _, _, _, v = _log_scale(mu, self._values["sigma"])
        return np.exp(np.log(mu) - 0.5 * v + np.sqrt(v) * rng.standard_normal(np.shape(mu)))
