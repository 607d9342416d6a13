"""Families with their own parameters (negative binomial θ, Gamma shape, beta φ, Student-t ν and σ, ...).

A parametric family states its log-density and its derivatives in μ; the chain
rule through the link (``Link.mu_eta_derivatives``) turns them into what the
exact Laplace objective needs per row (``eta_derivatives``):

    ℓ,  s = ∂ℓ/∂η,  W = -∂²ℓ/∂η² (observed information, may be negative),
    dW = ∂W/∂η,  and per family parameter ψ (on the log scale): ∂ℓ/∂ψ, ∂s/∂ψ, ∂W/∂ψ.

The parameters are estimated jointly with (θ, β) (glmmTMB's approach), on the
log scale.  A family object never changes: ``with_values`` / ``with_log_params``
return a new object bound to given parameter values, and the Family methods that
depend on them (``loglik``, ``variance``, ``simulate``, ...) read those.  The
objective binds a fresh object at every evaluation and a fit holds the one bound
at its estimates, so fits, refits and bootstrap replicates share nothing.
A new family is one module: subclass, name the parameters, write
``mu_derivatives``, ``start`` and the distribution's pieces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .base import Family

__all__ = ["ParametricFamily", "EtaDerivatives", "to_engine_scale", "from_engine_scale"]


def _value(v):
    """A parameter value as the family holds it: a float, or a float array with one entry per row."""
    a = np.asarray(v, dtype=float)
    return float(a) if a.ndim == 0 else a


def _show(v) -> str:
    a = np.asarray(v, dtype=float)
    return f"{float(a):.4g}" if a.ndim == 0 else f"<per row: {a.min():.4g}..{a.max():.4g}>"


def to_engine_scale(v, scale: str):
    """A parameter value on the engine's (unbounded) scale.

    Parameters
    ----------
    v : float or array-like
        Positive parameter value(s); probabilities in (0, 1) for ``scale="logit"``.
    scale : {"log", "logit"}
        The parameter's engine scale (anything but ``"logit"`` means log).

    Returns
    -------
    numpy.ndarray
        log(v), or logit(v) = log(v / (1 - v)).
    """
    v = np.asarray(v, dtype=float)
    return np.log(v) - np.log1p(-v) if scale == "logit" else np.log(v)


def from_engine_scale(x, scale: str):
    """The inverse of :func:`to_engine_scale`: a parameter value from the engine's scale.

    Parameters
    ----------
    x : float or array-like
        Value(s) on the engine's scale.
    scale : {"log", "logit"}
        The parameter's engine scale.

    Returns
    -------
    numpy.ndarray
        exp(x), or the inverse logit ½ (1 + tanh(x / 2)) for a probability.
    """
    x = np.asarray(x, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * x)) if scale == "logit" else np.exp(x)


@dataclass
class EtaDerivatives:
    """Per-row derivatives of the log-density in η (weights applied).

    Attributes
    ----------
    ll, s, W, dW : ndarray, shape (n,)
        ℓ (constants included), ∂ℓ/∂η, -∂²ℓ/∂η², -∂³ℓ/∂η³.
    psi : list of (ℓ_ψ, s_ψ, W_ψ)
        For each free family parameter ψ = log(value).
    """

    ll: np.ndarray
    s: np.ndarray
    W: np.ndarray
    dW: np.ndarray
    psi: list = field(default_factory=list)


class ParametricFamily(Family):
    """A family whose density has parameters of its own, estimated with (θ, β).

    Parameters
    ----------
    link : str or Link, optional
        The link function; default the family's ``default_link``.
    fixed : dict, optional
        Parameters held at given positive values instead of estimated (e.g. ``{"df": 4}`` for the
        Student-t).

    Attributes
    ----------
    param_names : tuple of str
        Names as ``fit.family_params`` reports them.
    values : dict
        The value of every parameter this object is bound to (a copy; defaults 1 until bound).
    fixed : dict
        Parameters held at a given value (e.g. Student-t ``df``), not estimated.

    Raises
    ------
    ArgumentError
        ``fixed`` names a parameter the family does not have, or gives a value that is not positive.
    """

    param_names: tuple = ()
    has_dispersion = True
    #: the engine's scale of each parameter: "log" (the default) or "logit" (a probability)
    param_scales: dict = {}
    #: the parameter a ``dispformula`` models, and ``a`` in glmmTMB's log-dispersion = a·ψ
    #: (ψ this family's own log-parameter; 1 for every family here: glmmTMB models log θ, log φ, log σ and the Gamma's log shape)
    disp_param: str | None = None
    disp_scale: float = 1.0
    #: True where the family's memo of μ-free terms (``_memo``) holds the response and parameter
    #: values it was computed for and checks them on every use: it may then pass to the objects
    #: ``with_values`` binds (a fit's next evaluation at the same θ, or the same response, reuses it)
    keyed_memo: bool = False

    def __init__(self, link=None, fixed: dict | None = None):
        super().__init__(link)
        self.fixed = dict(fixed or {})
        unknown = set(self.fixed) - set(self.param_names)
        if unknown:
            from ..exceptions import ArgumentError

            raise ArgumentError(
                f"family_params {sorted(unknown)} are not parameters of the {self.name} family; "
                f"it has {', '.join(self.param_names)}"
            )
        for k, v in self.fixed.items():
            if not (np.isfinite(v) and v > 0):
                from ..exceptions import ArgumentError

                raise ArgumentError(f"family_params[{k!r}] must be a positive number, got {v!r}")
        self._values = {k: float(self.fixed.get(k, 1.0)) for k in self.param_names}

    @property
    def values(self) -> dict:
        """Parameter values this object is bound to, by name (a copy: the object never changes).

        Returns
        -------
        dict
            Name -> float (or a per-row array for a parameter modelled by a formula).
        """
        return dict(self._values)

    def with_values(self, values: dict) -> "ParametricFamily":
        """A new family object bound to ``values`` (fixed parameters keep their given values).

        Parameters
        ----------
        values : dict
            Name -> value on the parameter's own scale (float or per-row array); names the family does
            not have are ignored.

        Returns
        -------
        ParametricFamily
            A shallow copy of this object with the new values (and no memo of μ-free terms).
        """
        new = copy.copy(self)
        merged = dict(self._values)
        merged.update({k: _value(v) for k, v in values.items() if k in self.param_names})
        merged.update(self.fixed)
        new._values = merged
        if not self.keyed_memo:
            new.__dict__.pop("_memo", None)  # memos of μ-free terms belong to one set of values
        return new

    def with_log_params(self, psi) -> "ParametricFamily":
        """A new family object with the free parameters set from the engine's scale.

        Parameters
        ----------
        psi : float or array-like, shape (len(free_names),)
            The free parameters' logs (the logit for a probability), in ``free_names`` order.

        Returns
        -------
        ParametricFamily
            A new object bound to those values.
        """
        return self.with_psi(dict(zip(self.free_names, np.atleast_1d(psi))))

    def with_psi(self, psi: dict) -> "ParametricFamily":
        """A new family object with parameters from the engine's scale, by name.

        Parameters
        ----------
        psi : dict
            Name -> value on the engine's scale; a value may be an array with one entry per row (a
            parameter modelled by a formula).

        Returns
        -------
        ParametricFamily
            A new object bound to those values.
        """
        return self.with_values({k: from_engine_scale(v, self.param_scales.get(k, "log")) for k, v in psi.items()})

    def log_params(self) -> np.ndarray:
        """The free parameters' bound values on the engine's scale (the engine's ψ).

        Returns
        -------
        numpy.ndarray, shape (len(free_names),)
            log (or logit) of each free parameter, in ``free_names`` order.
        """
        return np.array([to_engine_scale(self._values[k], self.param_scales.get(k, "log")) for k in self.free_names],
                        dtype=float)

    def disp_sigma(self, value):
        """glmmTMB's ``sigma`` (and ``predict(type = "disp")``) from the dispersion parameter's value.

        Parameters
        ----------
        value : float or numpy.ndarray
            The value of the parameter ``disp_param`` names.

        Returns
        -------
        float or numpy.ndarray
            The value itself (θ, φ, σ), except where glmmTMB reports another quantity (Gamma: 1/√shape).
        """
        return value

    def fresh(self, link=None, fixed: dict | None = None) -> "ParametricFamily":
        """A new, unbound object of this family (what ``get_family`` hands out for an instance).

        Parameters
        ----------
        link : str or Link, optional
            The link; default this object's.
        fixed : dict, optional
            Fixed parameters added to (and overriding) this object's.

        Returns
        -------
        ParametricFamily
            A new object of the same class, its free parameters at their defaults.
        """
        return type(self)(link or self.link.name, {**self.fixed, **dict(fixed or {})})

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={_show(v)}" for k, v in self._values.items())
        return f"{type(self).__name__}(link={self.link.name!r}, {vals})"

    @property
    def free_names(self) -> tuple:
        """Parameters that are estimated (not in ``fixed``).

        Returns
        -------
        tuple of str
            In ``param_names`` order.
        """
        return tuple(k for k in self.param_names if k not in self.fixed)

    # ---- what a family module writes ----
    def mu_derivatives(self, y, mu, wt, values: dict):
        """The log-density per row and its derivatives in μ and in the log-parameters (what a family module writes).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights (they multiply the log-density).
        values : dict
            Parameter values by name (floats or per-row arrays).

        Returns
        -------
        tuple
            ``(f, f1, f2, f3, psi)``: f = ℓ per row (weights applied, constants included), f1..f3 its
            first three derivatives in μ, and psi a dict name -> (∂f/∂ψ, ∂f1/∂ψ, ∂f2/∂ψ) for
            ψ = log(value), each array of shape (n,).
        """
        raise NotImplementedError

    def start_pieces(self, y, mu, wt) -> dict:
        """Sums over rows from which ``start_from_pieces`` gives ``start``'s values: pieces of row chunks
        add up (a Dask fit sums them over partitions).  Families without them are fitted in memory only.

        Parameters
        ----------
        y, mu, wt : numpy.ndarray, shape (n,)
            Response, means and prior weights of the rows.

        Returns
        -------
        dict
            Name -> float.

        Raises
        ------
        NotImplementedError
            The family's start is not written as sums.
        """
        raise NotImplementedError(f"the {self.name} family's start is not written as sums over rows")

    def start_from_pieces(self, pieces: dict) -> dict:
        """``start``'s values from the summed ``start_pieces``.

        Parameters
        ----------
        pieces : dict
            Sums of ``start_pieces`` over all rows.

        Returns
        -------
        dict
            Parameter name -> positive starting value.
        """
        raise NotImplementedError(f"the {self.name} family's start is not written as sums over rows")

    def start(self, y, mu, wt) -> dict:
        """Starting values of the parameters from the GLM fit's μ (moments).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Means of the starting GLM fit.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        dict
            Parameter name -> positive starting value.
        """
        raise NotImplementedError

    # ---- derived ----
    def eta_derivatives(self, eta, y, wt) -> EtaDerivatives:
        """The log-density's derivatives in η at the bound ``values``, by the chain rule through the link.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        EtaDerivatives
            ℓ, s = ∂ℓ/∂η, W = -∂²ℓ/∂η², dW = ∂W/∂η and, per free parameter, (ℓ_ψ, s_ψ, W_ψ).
        """
        mu = self.link.inverse(eta)
        f, f1, f2, f3, psi = self.mu_derivatives(y, mu, wt, self._values)
        out = []
        if self.link.name == "log":  # dμ/dη = d²μ/dη² = d³μ/dη³ = μ: the chain rule in fewer passes
            s = f1 * mu
            W = -mu * (f2 * mu + f1)
            dW = -mu * (mu * (f3 * mu + 3.0 * f2) + f1)
            for name in self.free_names:
                fp, f1p, f2p = psi[name]
                out.append((fp, f1p * mu, -mu * (f2p * mu + f1p)))
            return EtaDerivatives(f, s, W, dW, out)
        m1, m2, m3 = self.link.mu_eta_derivatives(eta)
        s = f1 * m1
        W = -(f2 * m1 * m1 + f1 * m2)
        dW = -(f3 * m1**3 + 3.0 * f2 * m1 * m2 + f1 * m3)
        for name in self.free_names:
            fp, f1p, f2p = psi[name]
            out.append((fp, f1p * m1, -(f2p * m1 * m1 + f1p * m2)))
        return EtaDerivatives(f, s, W, dW, out)

    def newton_weights(self, eta, y, wt):
        """(s, W) of ``eta_derivatives`` alone: all a Newton step on the mode needs.

        PIRLS iterates on these; the third derivative and the parameters' terms are read only at the
        mode (the gradient).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(s, W)``: ∂ℓ/∂η and -∂²ℓ/∂η² per row (W may be negative away from the mode).
        """
        mu = self.link.inverse(eta)
        m1, m2, _ = self.link.mu_eta_derivatives(eta)
        f1, f2 = self.mu_score_info(y, mu, wt, self._values)
        return f1 * m1, -(f2 * m1 * m1 + f1 * m2)

    def score_terms(self, eta, y, wt):
        """(ℓ, s, [ℓ_ψ, ...]) per row at the bound ``values``: the log-density, its η-score and its
        log-parameters' scores (``free_names`` order), what a fit without random effects needs (the
        fixed-effects start); families override it where that is much cheaper than ``eta_derivatives``.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple
            ``(ll, s, psi)``: arrays of shape (n,), psi a list of them.
        """
        d = self.eta_derivatives(eta, y, wt)
        return d.ll, d.s, [p[0] for p in d.psi]

    def mu_scores(self, y, mu, wt, values: dict):
        """(f, f1, {name: ∂f/∂ψ}) of ``mu_derivatives``: the first derivatives alone (families override
        it where that is much cheaper).

        Parameters
        ----------
        y, mu, wt : numpy.ndarray, shape (n,)
            Response, conditional means, prior weights.
        values : dict
            Parameter values by name.

        Returns
        -------
        tuple
            ``(f, f1, psi)``, weights applied.
        """
        f, f1, _, _, psi = self.mu_derivatives(y, mu, wt, values)
        return f, f1, {k: v[0] for k, v in psi.items()}

    def newton_terms(self, eta, y, wt):
        """(ℓ, s, W) per row at the bound ``values``: what one Newton iteration on a mode needs (the
        value for its step halving, the score and information for its step), in one call, so that a
        family whose value and derivatives share terms (zero inflation: log p(y), r) computes them once.

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(ll, s, W)``: ``log_density`` and ``newton_weights`` at η.
        """
        mu = self.link.inverse(eta)
        m1, m2, _ = self.link.mu_eta_derivatives(eta)
        f1, f2 = self.mu_score_info(y, mu, wt, self._values)
        return self.log_density(y, mu, wt, self._values), f1 * m1, -(f2 * m1 * m1 + f1 * m2)

    def mu_score_info(self, y, mu, wt, values: dict):
        """(f1, f2) of ``mu_derivatives``; families override it where that is much cheaper.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name.

        Returns
        -------
        tuple of numpy.ndarray
            (∂ℓ/∂μ, ∂²ℓ/∂μ²) per row, weights applied.
        """
        _, f1, f2, _, _ = self.mu_derivatives(y, mu, wt, values)
        return f1, f2

    def loglik(self, y, mu, wt):
        """Log-likelihood of each observation at the bound parameter values (constants included).

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
        numpy.ndarray, shape (n,)
            ``log_density(y, mu, wt, values)``.
        """
        return self.log_density(y, mu, wt, self._values)

    def log_density(self, y, mu, wt, values: dict):
        """ℓ per row (weights applied) at the given parameter values.

        Families override it where the value is much cheaper than the derivatives (PIRLS's step halving
        needs only values).

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        mu : numpy.ndarray, shape (n,)
            Conditional means.
        wt : numpy.ndarray, shape (n,)
            Prior weights.
        values : dict
            Parameter values by name.

        Returns
        -------
        numpy.ndarray, shape (n,)
            The log-density per row, constants included.
        """
        return self.mu_derivatives(y, mu, wt, values)[0]

    def loglik_constant(self, y, wt):
        """Zeros: a parametric family's constants depend on its parameters, so they live in ``loglik_kernel``.

        Parameters
        ----------
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights (unused).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Zeros.
        """
        return np.zeros_like(np.asarray(y, dtype=float))

    def loglik_kernel(self, y, mu, wt):
        """The whole log-likelihood per row (``loglik``): constants depend on the parameters being estimated.

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
        numpy.ndarray, shape (n,)
            ``loglik(y, mu, wt)``.
        """
        return self.loglik(y, mu, wt)

    def working(self, eta, y, wt):
        """Fisher-scoring pieces at the current parameters (starting values, PQL-style uses).

        Parameters
        ----------
        eta : numpy.ndarray, shape (n,)
            Linear predictor.
        y : numpy.ndarray, shape (n,)
            Response.
        wt : numpy.ndarray, shape (n,)
            Prior weights.

        Returns
        -------
        tuple of numpy.ndarray
            ``(mu, W, z)``: means, working weights w (dμ/dη)² / V(μ) and working response
            η + (y - μ) / (dμ/dη).
        """
        mu = self.link.inverse(eta)
        d = self.link.mu_eta(eta)
        W = wt * d * d / self.variance(mu)
        return mu, W, eta + (y - mu) / d

    def deviance_residuals(self, y, mu, wt):
        """2 (ℓ(saturated) - ℓ(μ)) per row; the saturated μ is y (or as close as the family allows).

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
        numpy.ndarray, shape (n,)
            Unit deviances times weights, at the bound parameter values.
        """
        sat = self._saturated_mu(y)
        return 2.0 * (self.loglik(y, sat, wt) - self.loglik(y, mu, wt))

    def _saturated_mu(self, y):
        return np.asarray(y, dtype=float)
