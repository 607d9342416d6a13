"""Families with a model for the zeros: zero-truncated counts, zero inflation and hurdles (glmmTMB's).

Each wraps a *base* family (Poisson, NB1, NB2, Gamma, ...) and states its
log-density and μ-derivatives from the base's (``mu_derivatives``), so the
exact Laplace objective treats them as any family with parameters of its own:

* ``Truncated``: y > 0 only, p(y | y > 0) = p(y) / (1 − p₀(μ)) (``truncated_poisson``, ...).
* ``ZeroInflated``: p(0) = π + (1 − π) p₀(μ), p(y) = (1 − π) p(y) for y > 0 (``ziformula``
  with a count family).
* ``Hurdle``: p(0) = π, p(y) = (1 − π) p₊(y) for y > 0, with p₊ a truncated count or a continuous
  density (``ziformula`` with a ``truncated_*`` family, or glmmTMB's ``ziGamma``).

π is the parameter ``"zi"``, on the logit scale in the engine, and is modelled by the
``ziformula`` (one value per row).  The base's parameters stay its own (and may be
modelled by a ``dispformula``).  Writing g = log p₀(μ) and its μ-derivatives g₁..g₃, the
zero rows of a zero-inflated family have ℓ = log(π + (1 − π)eᵍ) and, with r = (1 − π)eᵍ/p(0),

    ℓ₁ = r g₁,  ℓ₂ = r g₂ + r(1 − r) g₁²,  ℓ₃ = r g₃ + 3 r(1 − r) g₁g₂ + r(1 − r)(1 − 2r) g₁³;

truncation adds h = −log(1 − eᵍ) with the same form in q = eᵍ/(1 − eᵍ) and 1 + q for 1 − r.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..exceptions import ArgumentError, DataError
from .parametric import ParametricFamily

__all__ = ["Truncated", "ZeroInflated", "Hurdle", "zero_model_family"]


def _is_parametric(f) -> bool:
    return isinstance(f, ParametricFamily)


class _Wrapper(ParametricFamily):
    """Shared plumbing: a base family, its parameters (plus ours), its link."""

    extra_params: tuple = ()
    extra_defaults: dict = {}

    def __init__(self, base, link=None, fixed=None):
        if link is not None and link != base.link.name:
            base = base.fresh(link) if _is_parametric(base) else type(base)(link)
        self.base = base
        self.link = base.link
        self.links = base.links
        self.default_link = type(base).default_link
        base_names = tuple(getattr(base, "param_names", ()))
        self.param_names = base_names + self.extra_params
        self.param_scales = {**dict(getattr(base, "param_scales", {})), **{k: "logit" for k in self.extra_params}}
        self.disp_param = getattr(base, "disp_param", None)
        self.disp_scale = getattr(base, "disp_scale", 1.0)
        self.fixed = dict(getattr(base, "fixed", {}))
        self._values = {**getattr(base, "values", {}), **self.extra_defaults}

    def fresh(self, link=None, fixed=None):
        base = self.base.fresh(link, fixed) if _is_parametric(self.base) else type(self.base)(link or self.link.name)
        return type(self)(base)

    def with_values(self, values):
        new = super().with_values(values)
        if _is_parametric(self.base):
            new.base = self.base.with_values({k: new._values[k] for k in self.base.param_names})
        return new

    def __repr__(self):
        return f"{type(self).__name__}({self.base!r}, {', '.join(f'{k}' for k in self.extra_params)})"

    # ----- the base's pieces -----
    def _base_values(self, values):
        return {k: values[k] for k in getattr(self.base, "param_names", ())}

    def _zeros(self, mu):
        """A response of zeros the shape of ``mu``: one array per object and shape, so that a base's memo
        of μ-free terms keyed on its response (NB2's) holds between calls (a new array each time missed it)."""
        memo = self.__dict__.get("_zeros_memo")
        if memo is None or memo.shape != np.shape(mu):
            memo = np.zeros(np.shape(mu))
            self.__dict__["_zeros_memo"] = memo
        return memo

    def _positive_y(self, y):
        """y with its zeros replaced by 1 (what a hurdle's positive part is evaluated at), one array per
        response, for the same reason as ``_zeros``."""
        memo = self.__dict__.get("_ypos_memo")
        if memo is None or memo[0] is not y:
            memo = (y, np.where(np.asarray(y) == 0, 1.0, y))
            self.__dict__["_ypos_memo"] = memo
        return memo[1]

    # the base's pieces are taken with the unit weight 1.0, not an array of ones: every base family
    # (Poisson, NB1, NB2, Gamma, lognormal) only multiplies by its weights, and x * 1.0 is x exactly
    def _base_derivs(self, y, mu, values):
        """The base's (f, f1, f2, f3, psi) without weights."""
        return self.base.mu_derivatives(y, mu, 1.0, self._base_values(values))

    def _base_ll(self, y, mu, values):
        """The base's log-density per row (no weights), without its derivatives: what step halving and
        Newton's weights need.  A family without parameters has its μ-free constant memoised for the
        response it was computed for (the engine evaluates one response at many μ)."""
        ones = 1.0
        if _is_parametric(self.base):
            return self.base.log_density(y, mu, ones, self._base_values(values))
        memo = self.__dict__.get("_const_memo")
        if memo is None or memo[0] is not y:
            memo = (y, self.base.loglik_constant(y, np.ones_like(np.asarray(y, dtype=float))))
            self.__dict__["_const_memo"] = memo
        return memo[1] + self.base.loglik_kernel(y, mu, ones)

    def _base_score(self, y, mu, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) of the base, no weights."""
        return self.base.mu_score_info(y, mu, 1.0, self._base_values(values))

    def _base_log_p0(self, mu, values):
        """log p₀(μ) of the base (0 for a continuous base)."""
        z = np.zeros_like(mu)
        if _is_parametric(self.base):
            return self.base.log_density(z, mu, np.ones_like(mu), self._base_values(values))
        return self.base.loglik(z, mu, np.ones_like(mu))

    def mu_start(self, y, wt):
        return self.base.mu_start(y, wt)

    def working(self, eta, y, wt):
        return self.base.working(eta, y, wt)

    def variance(self, mu):
        return self.base.variance(mu)

    def disp_sigma(self, value):
        return self.base.disp_sigma(value) if _is_parametric(self.base) else value

    def base_start(self, y, mu, wt) -> dict:
        return dict(self.base.start(y, mu, wt)) if _is_parametric(self.base) else {}

    def _saturated_mu(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-300)


def _truncation_terms(f0, psi0, q):
    """h = −log(1 − e^g) and its derivatives from g's (f0 = (g, g1, g2, g3), psi0 = {name: (gψ, g1ψ, g2ψ)})."""
    g, g1, g2, g3 = f0
    v = q * (1.0 + q)
    w = v * (1.0 + 2.0 * q)
    h1 = q * g1
    h2 = q * g2 + v * g1 * g1
    h3 = q * g3 + 3.0 * v * g1 * g2 + w * g1**3
    hp = {k: (q * gp, v * gp * g1 + q * g1p, v * gp * g2 + q * g2p + w * gp * g1 * g1 + 2.0 * v * g1 * g1p)
          for k, (gp, g1p, g2p) in psi0.items()}
    return h1, h2, h3, hp


def _unit(wt) -> bool:
    """Whether prior weights are all 1 (a scalar 1.0, or an array of ones)."""
    if np.ndim(wt) == 0:
        return float(wt) == 1.0
    return bool(np.all(wt == 1.0))


def _mixture(pi, f, zero):
    """(log p(y), r) of a zero-inflated row from the base's log p(y) = f: log(π + (1 − π)e^f) in the
    zero rows, log(1 − π) + f elsewhere, and r = (1 − π)e^f / p(0), the count part's share of a
    zero (1 elsewhere).  Formed directly, not by ``logaddexp`` (a fifth of a small model's family
    time): π ≥ e^-15 / (1 + e^-15) on the engine's logit bound and f ≤ 0 for a count's log-probability,
    so p(0) is neither under- nor overflowing."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        count0 = (1.0 - pi) * np.exp(f)
        p0 = pi + count0
        ll = np.where(zero, np.log(p0), np.log1p(-pi) + f)
        r = np.where(zero, count0 / p0, 1.0)
    return ll, r


class Truncated(_Wrapper):
    """A zero-truncated count family (glmmTMB's ``truncated_poisson``, ``truncated_nbinom1``, ``truncated_nbinom2``).

    p(y | y > 0) = p(y) / (1 − p₀(μ)); μ is the untruncated mean.

    Parameters
    ----------
    base : Family
        The count family (Poisson, NB1 or NB2) to truncate at zero.
    link : str, optional
        A link other than the base's (the base is re-made with it); default the base's.
    fixed : dict, optional
        Accepted for the family interface; the fixed parameters are the base's (``base.fixed``).
    """

    def __init__(self, base, link=None, fixed=None):
        super().__init__(base, link, fixed)
        self.name = f"truncated_{_count_name(base)}"

    def mu_derivatives(self, y, mu, wt, values):
        """The truncated log-density ℓ = log p(y) − log(1 − p₀(μ)) per row and its derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: the base's terms plus those of h = −log(1 − p₀(μ)) (μ-derivatives
            and the base parameters' log-derivatives); weights applied.
        """
        f, f1, f2, f3, psi = self._base_derivs(y, mu, values)
        g, g1, g2, g3, psi0 = self._base_derivs(self._zeros(mu), mu, values)
        with np.errstate(divide="ignore", over="ignore"):
            q = 1.0 / np.expm1(-g)
            h = -np.log(-np.expm1(g))
        h1, h2, h3, hp = _truncation_terms((g, g1, g2, g3), psi0, q)
        out = {k: tuple(wt * (a + b) for a, b in zip(psi[k], hp[k])) for k in psi}
        return wt * (f + h), wt * (f1 + h1), wt * (f2 + h2), wt * (f3 + h3), out

    def log_density(self, y, mu, wt, values):
        """ℓ = log p(y) − log(1 − p₀(μ)) per row, without derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Weights applied.
        """
        g = self._base_ll(self._zeros(mu), mu, values)
        return wt * (self._base_ll(y, mu, values) - np.log(-np.expm1(g)))

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) of the truncated log-density per row.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple of numpy.ndarray
            Weights applied.
        """
        f1, f2 = self._base_score(y, mu, values)
        z = self._zeros(mu)
        g = self._base_ll(z, mu, values)
        g1, g2 = self._base_score(z, mu, values)
        q = 1.0 / np.expm1(-g)
        return wt * (f1 + q * g1), wt * (f2 + q * g2 + q * (1.0 + q) * g1 * g1)

    def response_mean(self, mu):
        """E[y | y > 0] = μ / (1 − p₀(μ)).

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the untruncated counts.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return mu / (-np.expm1(self._base_log_p0(mu, self._values)))

    def conditional_mean(self, mu):
        """The mean of the truncated counts, as ``response_mean``.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the untruncated counts.

        Returns
        -------
        numpy.ndarray
            μ / (1 − p₀(μ)).
        """
        return self.response_mean(mu)

    def response_variance(self, mu):
        """Var[y | y > 0] = (V(μ) + μ²)/(1 − p₀) − (μ/(1 − p₀))², floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the untruncated counts.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        p_pos = -np.expm1(self._base_log_p0(mu, self._values))
        m = mu / p_pos
        return np.maximum((self.base.variance(mu) + mu * mu) / p_pos - m * m, 1e-300)

    def start(self, y, mu, wt):
        """Starting values of the base's parameters (none of its own).

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
            The base's ``start`` (empty for Poisson).
        """
        return self.base_start(y, mu, wt)

    def check_response(self, y, wt, name):
        """The base's check, then refuse zeros (a truncated family models y > 0 only).

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
            Naming the zero rows and the alternatives (a hurdle via ``ziformula=``, or the untruncated family).
        """
        self.base.check_response(y, wt, name)
        zero = np.flatnonzero(y == 0)
        if zero.size:
            raise DataError(
                f"{self.name} response {name!r} has {zero.size} zero(s) (rows {_rows(zero)}); a zero-truncated "
                f"family models y > 0 only: give ziformula= for a hurdle model of the zeros, or use "
                f"{_count_name(self.base)!r}")

    def simulate(self, mu, wt, rng):
        """Draws of y | y > 0 by the inverse CDF above p₀ (no rejection loop, whatever the mean).

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the untruncated counts.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        rng : numpy.random.Generator
            Source of the draws.

        Returns
        -------
        numpy.ndarray
            Counts >= 1 as floats, the shape of ``mu``.
        """
        return _truncated_draws(self.base, mu, rng)


class _ZeroPart(_Wrapper):
    """A base family with a probability π of a zero from a separate process (the parameter ``zi``)."""

    extra_params = ("zi",)
    extra_defaults = {"zi": 0.2}

    def simulate(self, mu, wt, rng):
        y = np.asarray(self.base.simulate(mu, wt, rng), dtype=float)
        pi = np.broadcast_to(self._values["zi"], np.shape(mu))
        return np.where(rng.random(np.shape(mu)) < pi, 0.0, y)


class ZeroInflated(_ZeroPart):
    """A count family with zero inflation: p(0) = π + (1 − π) p₀(μ), p(y > 0) = (1 − π) p(y).

    π is the parameter ``zi`` (logit scale in the engine), modelled by a ``ziformula``.

    Parameters
    ----------
    base : Family
        The count family (Poisson, NB1 or NB2).
    link : str, optional
        A link other than the base's (the base is re-made with it); default the base's.
    fixed : dict, optional
        Accepted for the family interface; the fixed parameters are the base's (``base.fixed``).
    """

    zero_model = "zero-inflation"

    def __init__(self, base, link=None, fixed=None):
        super().__init__(base, link, fixed)
        self.name = base.name

    def mu_derivatives(self, y, mu, wt, values):
        """The zero-inflated log-density per row and its derivatives in μ, the base's log-parameters and logit π.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: zero rows ℓ = log(π + (1 − π)p₀), others log(1 − π) + log p(y);
            psi["zi"] is in ζ = logit π; weights applied.
        """
        pi = values["zi"]
        f, f1, f2, f3, psi = self._base_derivs(y, mu, values)
        zero = y == 0
        ll, r = _mixture(pi, f, zero)
        v = r * (1.0 - r)
        w = v * (1.0 - 2.0 * r)
        vf1 = v * f1
        wf1sq = w * f1 * f1
        l1 = r * f1
        l2 = r * f2 + vf1 * f1
        l3 = r * f3 + (3.0 * vf1 * f2 + wf1sq * f1)
        out = {}
        for k, (gp, g1p, g2p) in psi.items():
            vgp = v * gp
            out[k] = (r * gp, vgp * f1 + r * g1p, vgp * f2 + r * g2p + wf1sq * gp + 2.0 * vf1 * g1p)
        # ζ = logit π: ∂ log π/∂ζ = 1 − π, ∂ log(1 − π)/∂ζ = −π, ∂r/∂ζ = −r(1 − r)
        out["zi"] = (np.where(zero, 1.0 - r - pi, -pi), -vf1, -(v * f2 + wf1sq))
        if _unit(wt):  # the usual case: no fifteen multiplications by ones
            return ll, l1, l2, l3, out
        return wt * ll, wt * l1, wt * l2, wt * l3, {k: tuple(wt * a for a in t) for k, t in out.items()}

    def log_density(self, y, mu, wt, values):
        """The zero-inflated log-density per row, without derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Weights applied.
        """
        pi = values["zi"]
        return wt * _mixture(pi, self._base_ll(y, mu, values), y == 0)[0]

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) of the zero-inflated log-density per row.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple of numpy.ndarray
            r f₁ and r f₂ + r(1 − r) f₁², r the posterior probability that a zero is a count zero (1 for y > 0).
        """
        pi = values["zi"]
        zero = y == 0
        f = self._base_ll(y, mu, values)
        f1, f2 = self._base_score(y, mu, values)
        r = _mixture(pi, f, zero)[1]
        return wt * r * f1, wt * (r * f2 + r * (1.0 - r) * f1 * f1)

    def score_terms(self, eta, y, wt):
        """(ℓ, s, [ℓ_ψ, ...]) per row (see ``ParametricFamily.score_terms``) from the base's first
        derivatives alone: ℓ_μ = r f₁, the base's ℓ_ψ = r f_ψ, and ℓ_ζ = 1 − r − π in a zero row, −π
        elsewhere (ζ = logit π).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            The count part's linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple
            ``(ll, s, psi)``, weights applied, psi in ``free_names`` order.
        """
        values = self._values
        pi = values["zi"]
        mu = self.link.inverse(eta)
        m1 = self.link.mu_eta_derivatives(eta)[0]
        base_scores = getattr(self.base, "mu_scores", None)
        if base_scores is not None:
            f, f1, psi0 = base_scores(y, mu, 1.0, self._base_values(values))
        else:  # a family without parameters of its own (Poisson)
            f, f1, _, _, psi0 = self._base_derivs(y, mu, values)
            psi0 = {k: v[0] for k, v in psi0.items()}
        zero = y == 0
        ll, r = _mixture(pi, f, zero)
        by_name = {k: wt * r * fp for k, fp in psi0.items()}
        by_name["zi"] = wt * np.where(zero, 1.0 - r - pi, -pi)
        return wt * ll, wt * r * f1 * m1, [by_name[k] for k in self.free_names]

    def newton_terms(self, eta, y, wt):
        """(ℓ, s, W) per row (``log_density`` and ``newton_weights``) with the base's log p(y) and the
        share r computed once for both.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            The count part's linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(ll, s, W)``, weights applied.
        """
        values = self._values
        pi = values["zi"]
        mu = self.link.inverse(eta)
        m1, m2, _ = self.link.mu_eta_derivatives(eta)
        zero = y == 0
        f = self._base_ll(y, mu, values)
        f1, f2 = self._base_score(y, mu, values)
        ll, r = _mixture(pi, f, zero)
        ll = wt * ll
        g1, g2 = wt * r * f1, wt * (r * f2 + r * (1.0 - r) * f1 * f1)
        return ll, g1 * m1, -(g2 * m1 * m1 + g1 * m2)

    def zi_curvature(self, y, mu, wt, values):
        """∂²ℓ/∂ζ² per row (ζ = logit π, weights applied): r(1 − r) − π(1 − π) in the zero rows,
        −π(1 − π) elsewhere (r the share of p(0) from the count part).

        Parameters
        ----------
        y, mu, wt : ndarray, shape (n,)
            Response, the count part's mean, prior weights.
        values : dict
            Parameter values (``zi`` a float or one value per row).

        Returns
        -------
        ndarray, shape (n,)
        """
        pi = values["zi"]
        zero = y == 0
        f = self._base_ll(y, mu, values)
        r = _mixture(pi, f, zero)[1]
        return wt * (r * (1.0 - r) - pi * (1.0 - pi))

    def joint_newton_terms(self, eta, y, wt):
        """What one Newton step on a joint mode over (η, ζ) needs, without third derivatives
        (ζ = logit π, weights applied): (ℓ_η, ℓ_ζ, −ℓ_ηη, −ℓ_ηζ, −ℓ_ζζ).

        Parameters
        ----------
        eta, y, wt : ndarray, shape (n,)
            The count part's linear predictor, the response, prior weights.

        Returns
        -------
        tuple of ndarray, shape (n,)
        """
        values = self._values
        pi = values["zi"]
        mu = self.link.inverse(eta)
        m1, m2, _ = self.link.mu_eta_derivatives(eta)
        zero = y == 0
        f = self._base_ll(y, mu, values)
        f1, f2 = self._base_score(y, mu, values)
        r = _mixture(pi, f, zero)[1]
        v = r * (1.0 - r)
        fe = f1 * m1
        fee = f2 * m1 * m1 + f1 * m2
        q = pi * (1.0 - pi)
        return (wt * r * fe, wt * np.where(zero, 1.0 - r - pi, -pi), -wt * (r * fee + v * fe * fe), wt * v * fe,
                -wt * (v - q))

    def zi_eta_terms(self, eta, y, wt) -> dict:
        """The zero part's higher derivatives a joint mode over (η, ζ) needs (ζ = logit π, weights applied):
        ``l_zz`` = ∂²ℓ/∂ζ², ``l_ezz`` = ∂³ℓ/∂η∂ζ², ``l_zzz`` = ∂³ℓ/∂ζ³, and per base parameter ψ,
        ``psi[name]`` = (∂²ℓ/∂ζ∂ψ, ∂³ℓ/∂η∂ζ∂ψ, ∂³ℓ/∂ζ²∂ψ).

        With r the count part's share of p(0) in a zero row (1 elsewhere), v = r(1 − r), q = π(1 − π):
        ℓ_ζζ = v − q, ℓ_ζζζ = −(1 − 2r)v − q(1 − 2π), ℓ_ηζζ = (1 − 2r)v f_η, ℓ_ζψ = −v f_ψ,
        ℓ_ζζψ = (1 − 2r)v f_ψ, ℓ_ηζψ = −[(1 − 2r)v f_ψ f_μ + v f_μψ] dμ/dη (f the base's log p(y)).

        Parameters
        ----------
        eta, y, wt : ndarray, shape (n,)
            The count part's linear predictor, the response, prior weights.

        Returns
        -------
        dict
        """
        values = self._values
        pi = values["zi"]
        mu = self.link.inverse(eta)
        m1 = self.link.mu_eta_derivatives(eta)[0]
        f, f1, _, _, psi = self._base_derivs(y, mu, values)
        zero = y == 0
        r = _mixture(pi, f, zero)[1]
        v = r * (1.0 - r)
        q = pi * (1.0 - pi)
        k = (1.0 - 2.0 * r) * v
        out = {"l_zz": wt * (v - q), "l_zzz": wt * (-k - q * (1.0 - 2.0 * pi)), "l_ezz": wt * k * f1 * m1, "psi": {}}
        for name, (gp, g1p, _) in psi.items():
            out["psi"][name] = (-wt * v * gp, -wt * (k * gp * f1 + v * g1p) * m1, wt * k * gp)
        return out

    def response_mean(self, mu):
        """E[y] = (1 − π) μ.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the count part.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return (1.0 - self._values["zi"]) * mu

    def response_variance(self, mu):
        """Var[y] = (1 − π)(V(μ) + μ²) − ((1 − π)μ)², floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the count part.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        pi = self._values["zi"]
        return np.maximum((1.0 - pi) * (self.base.variance(mu) + mu * mu) - ((1.0 - pi) * mu) ** 2, 1e-300)

    def start(self, y, mu, wt):
        # π = 1/2, glmmTMB's start: from a small π the zero part can settle in a mode where it
        # explains few zeros and the count part's dispersion the rest (Salamanders' NB1 model: 4.8
        # log-likelihood units lower), while from 1/2 both parts reach the better one
        """Starting values: the base's, and π = ½ (glmmTMB's start; a small π can settle in a worse mode).

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
            The base's parameters and ``"zi": 0.5``.
        """
        return {**self.base_start(y, mu, wt), "zi": 0.5}

    def check_response(self, y, wt, name):
        """The base's response check (zeros are allowed).

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
            As the base family.
        """
        self.base.check_response(y, wt, name)



class Hurdle(_ZeroPart):
    """A hurdle: p(0) = π, p(y > 0) = (1 − π) p₊(y) with p₊ a truncated count or a continuous density.

    glmmTMB's ``ziformula`` with a ``truncated_*`` family, or its ``ziGamma``.

    Parameters
    ----------
    base : Family
        The positive-part family: a ``Truncated`` count family or a positive continuous one (Gamma, lognormal).
    link : str, optional
        A link other than the base's (the base is re-made with it); default the base's.
    fixed : dict, optional
        Accepted for the family interface; the fixed parameters are the base's (``base.fixed``).
    """

    zero_model = "hurdle"

    def __init__(self, base, link=None, fixed=None):
        super().__init__(base, link, fixed)
        self.name = base.name if isinstance(base, Truncated) else f"zi{base.name}"

    def mu_derivatives(self, y, mu, wt, values):
        """The hurdle log-density per row and its derivatives: zero rows log π, others log(1 − π) + log p₊(y).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``; zero rows carry no μ information (their μ-derivatives are 0);
            psi["zi"] is in logit π; weights applied.
        """
        pi = values["zi"]
        zero = y == 0
        f, f1, f2, f3, psi = self._base_derivs(self._positive_y(y), mu, values)
        pos = ~zero
        ll = np.where(zero, np.log(pi), np.log1p(-pi) + f)
        out = {k: tuple(wt * pos * a for a in terms) for k, terms in psi.items()}
        out["zi"] = (wt * np.where(zero, 1.0 - pi, -pi), np.zeros_like(mu), np.zeros_like(mu))
        return wt * ll, wt * pos * f1, wt * pos * f2, wt * pos * f3, out

    def log_density(self, y, mu, wt, values):
        """The hurdle log-density per row, without derivatives.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Weights applied.
        """
        pi = values["zi"]
        zero = y == 0
        return wt * np.where(zero, np.log(pi), np.log1p(-pi) + self._base_ll(self._positive_y(y), mu, values))

    def mu_score_info(self, y, mu, wt, values):
        """(∂ℓ/∂μ, ∂²ℓ/∂μ²) per row: the positive part's, 0 on zero rows.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name (floats or per-row arrays), the base's and ``zi`` (π).

        Returns
        -------
        tuple of numpy.ndarray
            Weights applied.
        """
        pos = y != 0
        f1, f2 = self._base_score(self._positive_y(y), mu, values)
        return wt * pos * f1, wt * pos * f2

    def zi_curvature(self, y, mu, wt, values):
        """∂²ℓ/∂ζ² per row (ζ = logit π, weights applied): −π(1 − π) in every row (the zero process
        is a Bernoulli of its own).

        Parameters
        ----------
        y, mu, wt : ndarray, shape (n,)
            Response, the positive part's mean, prior weights.
        values : dict
            Parameter values (``zi`` a float or one value per row).

        Returns
        -------
        ndarray, shape (n,)
        """
        pi = values["zi"]
        return -wt * pi * (1.0 - pi) * np.ones_like(np.asarray(mu, dtype=float))

    def joint_newton_terms(self, eta, y, wt):
        """(ℓ_η, ℓ_ζ, −ℓ_ηη, −ℓ_ηζ, −ℓ_ζζ) per row (see ``ZeroInflated.joint_newton_terms``); the two
        processes of a hurdle are separate, so −ℓ_ηζ = 0.

        Parameters
        ----------
        eta, y, wt : ndarray, shape (n,)
            The positive part's linear predictor, the response, prior weights.

        Returns
        -------
        tuple of ndarray, shape (n,)
        """
        pi = self._values["zi"]
        s, W = self.newton_weights(eta, y, wt)
        zero = y == 0
        q = pi * (1.0 - pi) * np.ones_like(np.asarray(eta, dtype=float))
        return s, wt * np.where(zero, 1.0 - pi, -pi), W, np.zeros_like(q), wt * q

    def zi_eta_terms(self, eta, y, wt) -> dict:
        """The zero part's higher derivatives (see ``ZeroInflated.zi_eta_terms``): for a hurdle the zero
        process is a Bernoulli of its own, ℓ_ζζ = −π(1 − π), ℓ_ζζζ = −π(1 − π)(1 − 2π), the cross terms 0.

        Parameters
        ----------
        eta, y, wt : ndarray, shape (n,)
            The positive part's linear predictor, the response, prior weights.

        Returns
        -------
        dict
            As ``ZeroInflated.zi_eta_terms``.
        """
        pi = self._values["zi"]
        q = pi * (1.0 - pi) * np.ones_like(np.asarray(eta, dtype=float))
        zero = np.zeros_like(q)
        names = getattr(self.base, "param_names", ())
        return {"l_zz": -wt * q, "l_zzz": -wt * q * (1.0 - 2.0 * pi), "l_ezz": zero,
                "psi": {k: (zero, zero, zero) for k in names}}

    def response_mean(self, mu):
        """E[y] = (1 − π) E₊[y], E₊ the positive part's mean.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means of the positive part's base.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        return (1.0 - self._values["zi"]) * self.base.response_mean(mu)

    def conditional_mean(self, mu):
        """The positive part's mean (glmmTMB's ``type = "conditional"``).

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The base's ``conditional_mean``.
        """
        return self.base.conditional_mean(mu)

    def response_variance(self, mu):
        """Var[y] = (1 − π) E₊[y²] − ((1 − π) E₊[y])², floored at 1e-300.

        Parameters
        ----------
        mu : numpy.ndarray
            Conditional means.

        Returns
        -------
        numpy.ndarray
            The shape of ``mu``.
        """
        pi = self._values["zi"]
        m = self.base.response_mean(mu)
        ey2 = self.base.response_variance(mu) + m * m
        return np.maximum((1.0 - pi) * ey2 - ((1.0 - pi) * m) ** 2, 1e-300)

    def start(self, y, mu, wt):
        """Starting values: the base's from the positive rows, and π the share of zeros (clipped to [0.01, 0.99]).

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
            The base's parameters and ``"zi"``.
        """
        pos = y > 0
        base = self.base_start(y[pos], mu[pos], wt[pos]) if pos.any() else {}
        return {**base, "zi": float(np.clip(np.mean(~pos), 0.01, 0.99))}

    def check_response(self, y, wt, name):
        """Refuse negative values; the positive rows must pass the (untruncated) base's check.

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
            Naming the bad rows.
        """
        pos = y > 0
        if np.any(y < 0):
            raise DataError(f"hurdle response {name!r} has {int(np.sum(y < 0))} negative value(s)")
        inner = self.base.base if isinstance(self.base, Truncated) else self.base
        inner.check_response(y[pos], wt[pos], name)


    def _saturated_mu(self, y):
        return self.base._saturated_mu(np.where(np.asarray(y) == 0, 1.0, y))


def _count_name(base) -> str:
    return {"negative_binomial": "nbinom2"}.get(base.name, base.name)


def _rows(idx, k: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:k])
    return shown + (f", ... ({idx.size} in all)" if idx.size > k else "")


def _truncated_draws(base, mu, rng):
    """Draws of y | y > 0 by the inverse CDF above p₀ (no rejection loop, whatever the mean)."""
    mu = np.asarray(mu, dtype=float)
    vals = getattr(base, "values", {})
    if base.name == "poisson":
        dist = stats.poisson(mu)
    elif base.name == "negative_binomial":
        th = vals["theta"]
        dist = stats.nbinom(th, th / (th + mu))
    elif base.name == "nbinom1":
        phi = vals["phi"]
        dist = stats.nbinom(mu / phi, 1.0 / (1.0 + phi))
    else:  # pragma: no cover - every truncated base is named above
        raise ArgumentError(f"no truncated simulation for the {base.name} family")
    p0 = dist.cdf(0)
    u = p0 + rng.random(mu.shape) * (1.0 - p0)
    return np.maximum(dist.ppf(np.minimum(u, 1.0 - 1e-16)), 1.0)


#: count families that zero inflation and truncation apply to
COUNT_FAMILIES = ("poisson", "negative_binomial", "nbinom1")
#: continuous families a hurdle (glmmTMB's ziGamma) applies to
HURDLE_CONTINUOUS = ("gamma", "lognormal")


def zero_model_family(family):
    """The family a ``ziformula`` turns ``family`` into.

    Parameters
    ----------
    family : Family
        The family given to ``glmer``.

    Returns
    -------
    ZeroInflated or Hurdle
        A hurdle for a truncated count or a positive continuous family, zero inflation for a
        count family; ``family`` itself when it already models zeros.

    Raises
    ------
    ArgumentError
        Where zeros cannot be modelled (Gaussian, beta, binomial, ...).
    """
    if isinstance(family, (ZeroInflated, Hurdle)):
        return family
    if isinstance(family, Truncated):
        return Hurdle(family)
    if family.name in COUNT_FAMILIES:
        return ZeroInflated(family)
    if family.name in HURDLE_CONTINUOUS:
        return Hurdle(family)
    raise ArgumentError(
        f"ziformula does not apply to the {family.name} family: zero inflation is for counts (poisson, nbinom1, "
        f"nbinom2), hurdles for truncated counts (truncated_poisson, ...) and positive continuous responses "
        f"(gamma, lognormal: glmmTMB's ziGamma); " + {
            "betabinomial": "zero-inflated betabinomial (glmmTMB allows it) is not available here: the zero-inflation "
                            "model would evaluate the betabinomial with one trial per row instead of each row's trials; "
                            "drop ziformula (a small φ already puts extra mass at 0 and n successes)",
            "tweedie": "the tweedie family models its zeros itself (P(y = 0) = exp(-μ^(2-p)/(φ(2-p)))); "
                       "zero-inflated tweedie (glmmTMB allows it) is not available here: drop ziformula",
        }.get(family.name, f"a {family.name} response has no excess zeros to model"))

