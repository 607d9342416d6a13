"""Tweedie (compound Poisson-gamma) responses y >= 0 with a point mass at 0: Var = φ μ^p, 1 < p < 2
(glmmTMB's tweedie: log link; φ and the power p = 1 + plogis(ψ) are both estimated).

The density is the exponential-dispersion form

    log f(y) = (y θ - κ(θ))/φ + log a(y, φ, p),   θ = μ^(1-p)/(1-p),  κ = μ^(2-p)/(2-p),

with a(0) = 1 (P(y = 0) = exp(-κ/φ)) and, for y > 0, Dunn & Smyth's (2005) series

    a(y) = (1/y) Σ_{j>=1} W_j,   log W_j = j c - lgamma(j + 1) - lgamma(j γ),
    γ = (2-p)/(p-1),   c = γ log(y/(p-1)) - (1+γ) log φ - log(2-p),

(the j-th term is the j-gamma-summand of the compound Poisson sum with the μ-dependent factors taken
into the exponent), summed over the window around its largest term j* = y^(2-p)/(φ(2-p)) where the
terms exceed e^-40 of it.  μ enters only through (yθ - κ)/φ, so the μ-derivatives are closed form;
the series' derivatives in φ and p are its terms' derivatives averaged with weights W_j/ΣW.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, logit

from ..exceptions import ArgumentError, DataError
from .parametric import ParametricFamily, from_engine_scale, to_engine_scale

__all__ = ["Tweedie", "tweedie_series"]

#: terms below e^-_DROP of the largest are left out (their sum is below 1e-16 of the total)
_DROP = 40.0
#: rows per block of the series' (rows × terms) arrays
_BLOCK = 4096


def _rows(v, shape, pos):
    """A parameter (a float, or one value per row) on the rows ``pos``."""
    return v if np.ndim(v) == 0 else np.broadcast_to(v, shape)[pos]


def tweedie_series(y, phi, p):
    """Dunn & Smyth's series for y > 0: log Σ_j W_j and the W-weighted means of j and j ψ(jγ).

    Parameters
    ----------
    y : ndarray
        Positive responses.
    phi, p : float or ndarray
        Dispersion and power (1 < p < 2), scalars or one per row of ``y``.

    Returns
    -------
    log_sum, mean_j, mean_j_digamma : ndarray
        log Σ_j W_j, Σ_j j W_j / Σ W and Σ_j j ψ(jγ) W_j / Σ W (ψ the digamma function) per row.
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    phi = np.broadcast_to(np.asarray(phi, dtype=float), (n,))
    p = np.broadcast_to(np.asarray(p, dtype=float), (n,))
    gam = (2.0 - p) / (p - 1.0)
    c = gam * (np.log(y) - np.log(p - 1.0)) - (1.0 + gam) * np.log(phi) - np.log(2.0 - p)
    jstar = np.exp((2.0 - p) * np.log(y) - np.log(phi) - np.log(2.0 - p))
    j0 = np.maximum(np.round(jstar), 1.0)
    # log W_j is close to a parabola in j with curvature -(1 + γ)/j: ~9 standard deviations each side
    half = np.ceil(9.0 * np.sqrt(j0 / (1.0 + gam))) + 8.0
    out_ls, out_j, out_jd = np.empty(n), np.empty(n), np.empty(n)
    todo = np.arange(n)
    while todo.size:
        # rows of similar window width together: one (rows × terms) array per width class
        widths = 2.0 ** np.ceil(np.log2(half[todo]))
        retry = []
        for wclass in np.unique(widths):
            rows_all = todo[widths == wclass]
            K = int(wclass)
            off = np.arange(-K, K + 1, dtype=float)
            for s in range(0, rows_all.size, _BLOCK):
                rows = rows_all[s:s + _BLOCK]
                j = j0[rows, None] + off[None, :]
                valid = j >= 1.0
                jj = np.where(valid, j, 1.0)
                g = gam[rows, None]
                logw = jj * c[rows, None] - gammaln(jj + 1.0) - gammaln(jj * g)
                logw = np.where(valid, logw, -np.inf)
                top = np.max(logw, axis=1)
                # the window must reach below e^-_DROP of the largest term at both ends (or j = 1)
                lo_ok = (~valid[:, 0]) | (logw[:, 0] < top - _DROP)
                hi_ok = logw[:, -1] < top - _DROP
                ok = lo_ok & hi_ok
                wts = np.exp(logw - top[:, None])
                tot = wts.sum(axis=1)
                out_ls[rows] = top + np.log(tot)
                out_j[rows] = (wts * jj).sum(axis=1) / tot
                out_jd[rows] = (wts * jj * digamma(jj * g)).sum(axis=1) / tot
                if not ok.all():
                    retry.append(rows[~ok])
        todo = np.concatenate(retry) if retry else np.zeros(0, dtype=int)
        half[todo] *= 2.0
    return out_ls, out_j, out_jd


class Tweedie(ParametricFamily):
    """Tweedie with 1 < p < 2: log f = (yθ - κ)/φ + log a(y, φ, p), θ = μ^(1-p)/(1-p), κ = μ^(2-p)/(2-p).

    ``phi`` is on the log scale and ``power`` on glmmTMB's: ψ = logit(p - 1).

    Parameters
    ----------
    link : {"log", "identity", "sqrt", "inverse"}, default "log"
        The link function (a name or a Link object).
    fixed : dict, optional
        Parameters held at given values instead of estimated: ``{"phi": ...}`` (positive) and/or
        ``{"power": ...}`` (strictly between 1 and 2).

    Raises
    ------
    ArgumentError
        A fixed power outside (1, 2), or a fixed parameter the family does not have.
    """

    name = "tweedie"
    default_link = "log"
    links = ("log", "identity", "sqrt", "inverse")
    param_names = ("phi", "power")
    disp_param = "phi"
    #: the engine's scale of a parameter not on the log scale, as a summary names it
    engine_scale_labels = {"power": "logit(power - 1)"}

    def __init__(self, link=None, fixed: dict | None = None):
        power = (fixed or {}).get("power")
        if power is not None and not (np.isfinite(power) and 1.0 < power < 2.0):
            raise ArgumentError(f"family_params['power'] of the tweedie family must lie strictly between 1 and 2 "
                                f"(the compound Poisson-gamma range), got {power!r}")
        super().__init__(link, fixed)
        if "power" not in self.fixed:
            self._values["power"] = 1.5

    # ---- the power's engine scale: ψ = logit(p - 1) ----
    def with_psi(self, psi: dict) -> "Tweedie":
        """A new object bound to parameters given on the engine's scale.

        Parameters
        ----------
        psi : dict
            Name -> value (float or per-row array): log φ for ``phi``, logit(p - 1) for ``power``.

        Returns
        -------
        Tweedie
            A new object bound to φ = exp(ψ) and p = 1 + plogis(ψ).
        """
        vals = {k: 1.0 + expit(np.asarray(v, dtype=float)) if k == "power" else from_engine_scale(v, "log")
                for k, v in psi.items()}
        return self.with_values(vals)

    def log_params(self) -> np.ndarray:
        """The free parameters on the engine's scale, in ``free_names`` order.

        Returns
        -------
        numpy.ndarray
            log φ and logit(p - 1) (glmmTMB's scale of the power).
        """
        return np.array([float(logit(self._values[k] - 1.0)) if k == "power" else float(to_engine_scale(self._values[k], "log"))
                         for k in self.free_names], dtype=float)

    def variance(self, mu):
        """V = φ|μ|^p, floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return np.maximum(self._values["phi"] * np.abs(mu) ** self._values["power"], 1e-300)

    def _series(self, y, phi, p):
        """(positive rows, log a(y) there, E_w[j], E_w[j ψ(jγ)]), memoised on this bound object for the
        response and parameters it was computed for: the series costs more than all else, and PIRLS
        evaluates many μ at one (φ, p)."""
        memo = self.__dict__.get("_memo")
        same = memo is not None and memo[0] is y and all(
            a is b or (np.ndim(a) == 0 and np.ndim(b) == 0 and a == b) for a, b in ((memo[1], phi), (memo[2], p)))
        if not same:
            pos = y > 0
            yp = y[pos]
            ls, mj, mjd = tweedie_series(yp, _rows(phi, y.shape, pos), _rows(p, y.shape, pos))
            memo = (y, phi, p, (pos, ls - np.log(yp), mj, mjd))
            self.__dict__["_memo"] = memo
        return memo[3]

    def _log_a(self, y, phi, p):
        pos, la, _, _ = self._series(y, phi, p)
        out = np.zeros(y.shape)
        out[pos] = la
        return out

    def log_density(self, y, mu, wt, values):
        """The Tweedie log-density per row (log P(y = 0) = -κ/φ at zeros), the series memoised per (φ, p).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name: ``phi`` and ``power``, each a float or one value per row.

        Returns
        -------
        numpy.ndarray, shape (n,)
            (yθ - κ)/φ + log a(y, φ, p), weights applied, constants included.
        """
        phi, p = values["phi"], values["power"]
        with np.errstate(invalid="ignore", divide="ignore"):
            lm = np.log(mu)
            expo = (y * np.exp((1.0 - p) * lm) / (1.0 - p) - np.exp((2.0 - p) * lm) / (2.0 - p)) / phi
        return wt * (expo + self._log_a(y, phi, p))

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row, closed form (the series does not depend on μ).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name: ``phi`` and ``power``, each a float or one value per row.

        Returns
        -------
        tuple of numpy.ndarray
            (w (y - μ)μ^-p/φ, w (-p y/μ - (1 - p))μ^-p/φ).
        """
        phi, p = values["phi"], values["power"]
        with np.errstate(invalid="ignore", divide="ignore"):
            mp = np.exp(-p * np.log(mu))  # μ^-p
            f1 = (y - mu) * mp / phi
            f2 = (-p * y / mu - (1.0 - p)) * mp / phi
        return wt * f1, wt * f2

    def mu_derivatives(self, y, mu, wt, values):
        """The Tweedie log-density per row, its μ-derivatives and its derivatives in log φ and logit(p - 1).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name: ``phi`` and ``power``, each a float or one value per row.

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f the log-density, f1..f3 its μ-derivatives, psi["phi"] and
            psi["power"] the derivatives of (f, f1, f2) in log φ and in logit(p - 1) (the series' by
            its W-weighted term means); weights applied.
        """
        phi, p = values["phi"], values["power"]
        pos, la, mj, mjd = self._series(y, phi, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            lm = np.log(mu)
            mp = np.exp(-p * lm)  # μ^-p
            m1p, m2p = mu * mp, mu * mu * mp  # μ^(1-p), μ^(2-p)
            expo = (y * m1p / (1.0 - p) - m2p / (2.0 - p)) / phi
            f = expo.copy()
            f[pos] += la
            f1 = (y - mu) * mp / phi
            f2 = (-p * y / mu - (1.0 - p)) * mp / phi
            f3 = (p * (p + 1.0) * y / (mu * mu) + p * (1.0 - p) / mu) * mp / phi
            # the series' terms on the positive rows: log W_j = j c - lgamma(j+1) - lgamma(jγ)
            yp, php, pp = y[pos], _rows(phi, y.shape, pos), _rows(p, y.shape, pos)
            gp = (2.0 - pp) / (pp - 1.0)
            dgp = -1.0 / (pp - 1.0) ** 2  # dγ/dp
            # ψ = log φ: the exponent scales with 1/φ, ∂ log W_j/∂ log φ = -j(1 + γ)
            l_phi = -expo
            l_phi[pos] -= (1.0 + gp) * mj
            phi_terms = (l_phi, -f1, -f2)
            # the power: ∂/∂p, times ∂p/∂ψ = (p - 1)(2 - p) for ψ = logit(p - 1)
            theta_p = m1p * (1.0 - (1.0 - p) * lm) / (1.0 - p) ** 2
            kappa_p = m2p * (1.0 - (2.0 - p) * lm) / (2.0 - p) ** 2
            l_p = (y * theta_p - kappa_p) / phi
            dc = dgp * (np.log(yp) - np.log(pp - 1.0) - np.log(php)) - gp / (pp - 1.0) + 1.0 / (2.0 - pp)  # ∂c/∂p
            l_p[pos] += mj * dc - dgp * mjd
            f1_p = -lm * f1
            f2_p = (mu - y) / mu * mp / phi - lm * f2
            dp = (p - 1.0) * (2.0 - p)
            power_terms = (l_p * dp, f1_p * dp, f2_p * dp)
        psi = {"phi": tuple(wt * t for t in phi_terms), "power": tuple(wt * t for t in power_terms)}
        return wt * f, wt * f1, wt * f2, wt * f3, psi

    def start(self, y, mu, wt):
        """Starting values: p = 1.5 (or the fixed power) and φ the weighted mean of (y - μ)²/μ^p.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        dict
            ``{"phi": float, "power": float}``, φ clipped to [1e-4, 1e6].
        """
        p = float(self._values["power"]) if "power" in self.fixed else 1.5
        phi = np.sum(wt * (y - mu) ** 2 / np.maximum(mu, 1e-12) ** p) / np.sum(wt)
        return {"phi": float(np.clip(phi, 1e-4, 1e6)), "power": p}

    def mu_start(self, y, wt):
        """Starting μ halfway between y and its weighted mean, so positive at the zeros.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        numpy.ndarray, shape (n,)
            Starting means.
        """
        y = np.asarray(y, dtype=float)
        return 0.5 * (y + np.average(y, weights=wt if np.any(wt > 0) else None))

    def check_response(self, y, wt, name):
        """Refuse negative (or NaN) responses.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response (>= 0, exact zeros allowed).
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        name : str
            The response's name, for the error message.

        Raises
        ------
        DataError
            Naming how many rows are negative and which (0-based among the complete rows).
        """
        bad = ~(y >= 0)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(str(int(i)) for i in rows[:8]) + (", ..." if rows.size > 8 else "")
            raise DataError(
                f"tweedie response {name!r} must be >= 0; {rows.size} row(s) are negative (rows {shown}, 0-based among "
                f"the complete rows; e.g. {y[bad][0]:g}). The Tweedie family with 1 < power < 2 is for non-negative "
                "amounts with exact zeros"
            )

    def simulate(self, mu, wt, rng):
        """Compound Poisson-gamma draws: N ~ Poisson(κ/φ) gamma summands of shape γ and scale φ(p-1)μ^(p-1).

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights (not used: a weight is not a number of draws).
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Draws >= 0 (exact zeros where N = 0), the shape of ``mu``.
        """
        phi, p = self._values["phi"], self._values["power"]
        mu = np.asarray(mu, dtype=float)
        lam = mu ** (2.0 - p) / (phi * (2.0 - p))
        count = rng.poisson(lam)
        shape = count * (2.0 - p) / (p - 1.0)
        scale = phi * (p - 1.0) * mu ** (p - 1.0)
        return np.where(count > 0, rng.gamma(np.where(count > 0, shape, 1.0), scale), 0.0)

    def _saturated_mu(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-10)
