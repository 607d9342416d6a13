"""Prior distributions in rstanarm's vocabulary, its default priors and their autoscaling.

The families are rstanarm's (``help("priors", package = "rstanarm")``):

* ``normal(location, scale)``, ``student_t(df, location, scale)``, ``cauchy(location, scale)`` for
  the coefficients, the intercept and (as half-distributions, location 0) the auxiliary parameter;
* ``exponential(rate)`` for the auxiliary parameter (sigma, the negative binomial's reciprocal
  dispersion, the Gamma's shape, the beta's precision);
* ``decov(regularization, concentration, shape, scale)`` for each random-effects covariance matrix;
* ``flat()``, improper (rstanarm's ``prior = NULL``).

rstanarm's rules (as of its July 2020 change, checked against ``prior_summary`` of rstanarm 2.21):
``autoscale`` is False for a prior the user writes and True in the defaults.  The defaults are
``normal(0, 2.5)`` on every coefficient, ``normal(0, 2.5)`` on the intercept of the centred
predictors (gaussian: location mean(y)), ``exponential(1)`` on the auxiliary parameter and
``decov(1, 1, 1, 1)`` on every covariance matrix.  Autoscaling divides a coefficient's scale by the
standard deviation of its column and, for the gaussian family only, multiplies every coefficient's and
the intercept's scale by sd(y) and divides the exponential rate of sigma by sd(y).

The decov prior (rstanarm's ``stan_glmer`` vignette): a term's K x K covariance matrix is
Σ = D Ω D with Ω ~ LKJ(regularization); its trace is K τ², with τ ~ Gamma(shape, rate = 1/scale);
the variances are the trace times a simplex π ~ Dirichlet(concentration), so the standard deviations
are τ √(K π_j).  For the gaussian family the covariance is in units of σ² (the random effects are
σ times the decov matrix's), as in rstanarm.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import betaln, gammaln

from ..exceptions import ArgumentError

__all__ = ["Prior", "normal", "student_t", "cauchy", "exponential", "decov", "flat", "beta", "uniform", "PriorSet",
           "PositivePrior", "BoundedPrior", "StructParam", "default_priors", "AUX_NAMES"]

_LOG_2PI = math.log(2.0 * math.pi)

#: the auxiliary parameter of each family, as rstanarm names it (prior_summary's "Auxiliary (...)")
AUX_NAMES = {"gaussian": "sigma", "negative_binomial": "reciprocal_dispersion", "gamma": "shape", "beta": "phi"}
#: glmmkit's names of those parameters (``fit.family_params``), accepted as override keys
_AUX_ALIASES = {"sigma": "sigma", "theta": "reciprocal_dispersion", "reciprocal_dispersion": "reciprocal_dispersion",
                "shape": "shape", "phi": "phi"}


# ---------------------------------------------------------------------------------------------------
# prior specifications (what the user writes)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """A prior distribution as specified (before rstanarm's autoscaling).

    Build one with :func:`normal`, :func:`student_t`, :func:`cauchy`, :func:`exponential`,
    :func:`decov` or :func:`flat`.

    Attributes
    ----------
    dist : str
        ``"normal"``, ``"student_t"``, ``"cauchy"``, ``"exponential"``, ``"decov"`` or ``"flat"``.
    location, scale, df : float or ndarray or None
        The location-scale families' parameters (``scale=None``: rstanarm's default 2.5).
    rate : float or None
        The exponential's rate.
    autoscale : bool
        Whether rstanarm's scale adjustment applies.
    regularization, concentration, shape, cov_scale : float or None
        decov's parameters (``cov_scale`` is its ``scale``).
    proper : bool
        False for ``flat()`` only.
    a, b : float or None
        :func:`beta`'s shapes (a correlation parameter's prior on its valid range).
    """

    dist: str
    location: object = None
    scale: object = None
    df: object = None
    rate: object = None
    autoscale: bool = False
    regularization: float | None = None
    concentration: object = None
    shape: float | None = None
    cov_scale: float | None = None
    proper: bool = True
    a: float | None = None
    b: float | None = None

    def describe(self, location=None, scale=None, rate=None) -> str:
        """rstanarm's one-line description, ``normal(location = 0, scale = 2.5)``.

        Parameters
        ----------
        location, scale, rate : float or ndarray, optional
            Values to show instead of the specified ones (the adjusted prior's).

        Returns
        -------
        str
        """
        loc = self.location if location is None else location
        sc = (2.5 if self.scale is None else self.scale) if scale is None else scale
        if self.dist == "normal":
            return f"normal(location = {_fmt(loc)}, scale = {_fmt(sc)})"
        if self.dist == "student_t":
            return f"student_t(df = {_fmt(self.df)}, location = {_fmt(loc)}, scale = {_fmt(sc)})"
        if self.dist == "cauchy":
            return f"cauchy(location = {_fmt(loc)}, scale = {_fmt(sc)})"
        if self.dist == "exponential":
            return f"exponential(rate = {_fmt(self.rate if rate is None else rate)})"
        if self.dist == "beta":
            if self.a == 1.0 and self.b == 1.0:
                return "uniform"
            return f"beta(a = {_fmt(self.a)}, b = {_fmt(self.b)})"
        if self.dist == "decov":
            return (f"decov(reg. = {_fmt(self.regularization)}, conc. = {_fmt(self.concentration)}, "
                    f"shape = {_fmt(self.shape)}, scale = {_fmt(self.cov_scale)})")
        return "flat"


def _positive(value, what: str):
    a = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ArgumentError(f"{what} must be positive and finite, got {value!r}")
    return float(a) if a.ndim == 0 else a


def _real(value, what: str):
    a = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ArgumentError(f"{what} must be finite, got {value!r}")
    return float(a) if a.ndim == 0 else a


def normal(location=0.0, scale=None, autoscale=False) -> Prior:
    """rstanarm's ``normal()`` prior.

    Parameters
    ----------
    location : float or array-like, default 0
        Mean (one per coefficient when a vector).
    scale : float or array-like, optional
        Standard deviation; None is rstanarm's default 2.5.
    autoscale : bool, default False
        Apply rstanarm's scale adjustment (divide by sd(x); gaussian: times sd(y)).  False for a prior
        the user writes, as rstanarm since 2020; the defaults autoscale.

    Returns
    -------
    Prior
    """
    return Prior("normal", location=_real(location, "normal(location=)"),
                 scale=None if scale is None else _positive(scale, "normal(scale=)"), autoscale=bool(autoscale))


def student_t(df=1.0, location=0.0, scale=None, autoscale=False) -> Prior:
    """rstanarm's ``student_t()`` prior.

    Parameters
    ----------
    df : float or array-like, default 1
        Degrees of freedom (positive).
    location : float or array-like, default 0
        Location.
    scale : float or array-like, optional
        Scale; None is rstanarm's default 2.5.
    autoscale : bool, default False
        Apply rstanarm's scale adjustment (see :func:`normal`).

    Returns
    -------
    Prior
    """
    return Prior("student_t", df=_positive(df, "student_t(df=)"), location=_real(location, "student_t(location=)"),
                 scale=None if scale is None else _positive(scale, "student_t(scale=)"), autoscale=bool(autoscale))


def cauchy(location=0.0, scale=None, autoscale=False) -> Prior:
    """rstanarm's ``cauchy()`` prior (a Student-t with 1 degree of freedom).

    Parameters
    ----------
    location : float or array-like, default 0
        Location.
    scale : float or array-like, optional
        Scale; None is rstanarm's default 2.5.
    autoscale : bool, default False
        Apply rstanarm's scale adjustment (see :func:`normal`).

    Returns
    -------
    Prior
    """
    return Prior("cauchy", df=1.0, location=_real(location, "cauchy(location=)"),
                 scale=None if scale is None else _positive(scale, "cauchy(scale=)"), autoscale=bool(autoscale))


def exponential(rate=1.0, autoscale=False) -> Prior:
    """rstanarm's ``exponential()`` prior, for the auxiliary parameter.

    Parameters
    ----------
    rate : float, default 1
        Rate (1 / mean).
    autoscale : bool, default False
        Gaussian sigma: divide the rate by sd(y) (the default prior does).

    Returns
    -------
    Prior
    """
    return Prior("exponential", rate=_positive(rate, "exponential(rate=)"), autoscale=bool(autoscale))


def decov(regularization=1.0, concentration=1.0, shape=1.0, scale=1.0) -> Prior:
    """rstanarm's ``decov()`` prior on a random-effects covariance matrix.

    Parameters
    ----------
    regularization : float, default 1
        The LKJ shape η of the correlation matrix (1: uniform over correlation matrices).
    concentration : float or array-like, default 1
        The Dirichlet concentration of the simplex of variance proportions (one per column when a vector).
    shape, scale : float, default 1
        The Gamma prior on τ (the square root of the trace over K): shape and scale.

    Returns
    -------
    Prior
    """
    return Prior("decov", regularization=_positive(regularization, "decov(regularization=)"),
                 concentration=_positive(concentration, "decov(concentration=)"),
                 shape=_positive(shape, "decov(shape=)"), cov_scale=_positive(scale, "decov(scale=)"))


def beta(a=1.0, b=1.0) -> Prior:
    """A beta prior stretched over a bounded parameter's valid range (a structured term's correlation).

    For ``ar1``'s ρ on (-1, 1), ``(ρ + 1) / 2 ~ Beta(a, b)``; for ``cs``'s ρ on (-1/(k-1), 1) and the
    Toeplitz terms' partial autocorrelations likewise on their ranges.  ``beta(1, 1)`` is the uniform
    prior (the default); ``beta(2, 2)`` pulls a correlation gently towards the middle of its range.

    Parameters
    ----------
    a, b : float, default 1
        The shapes (positive).

    Returns
    -------
    Prior
    """
    return Prior("beta", a=_positive(a, "beta(a=)"), b=_positive(b, "beta(b=)"))


def uniform() -> Prior:
    """The uniform prior over a bounded parameter's valid range, ``beta(1, 1)``.

    Returns
    -------
    Prior
    """
    return beta(1.0, 1.0)


def flat() -> Prior:
    """An improper flat prior (rstanarm's ``prior = NULL``); the posterior may then be improper.

    Returns
    -------
    Prior
        With ``proper=False``.
    """
    return Prior("flat", proper=False)


# ---------------------------------------------------------------------------------------------------
# rstanarm's number formatting in prior_summary
# ---------------------------------------------------------------------------------------------------
def _fmt_scalar(v, digits=2) -> str:
    """R's ``format(v, digits = 2)``: at least 2 significant digits, the integer part whole, no trailing zeros."""
    v = float(v)
    if v == 0 or not np.isfinite(v):
        return "0" if v == 0 else str(v)
    if abs(v) < 1e-4:
        return f"{v:.{digits - 1}e}"
    dec = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    out = f"{round(v, dec):.{dec}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


def _fmt_vector(v, digits=2) -> str:
    """R's ``format(round(v, 2))`` joined as rstanarm prints a vector: ``[2.47,5.00]``."""
    r = np.round(np.asarray(v, dtype=float), digits)
    dec = 0
    for x in r:
        for d in range(digits + 1):
            if abs(round(x, d) - x) < 1e-9:
                dec = max(dec, d)
                break
    return "[" + ",".join(f"{x:.{dec}f}" for x in r) + "]"


def _fmt(v) -> str:
    a = np.asarray(v, dtype=float)
    if a.ndim == 0 or a.size == 1:
        return _fmt_scalar(a.ravel()[0])
    return _fmt_vector(a)


# ---------------------------------------------------------------------------------------------------
# adjusted priors: what the density evaluates
# ---------------------------------------------------------------------------------------------------
@dataclass
class RealPrior:
    """The adjusted prior of a vector of real parameters of one distribution (vectorised log-density).

    Attributes
    ----------
    dist : str
        ``"normal"``, ``"student_t"`` (cauchy: df 1) or ``"flat"``.
    location, scale, df : ndarray
        One entry per parameter.
    half : bool
        A half-distribution on (0, ∞) (location 0): the auxiliary parameter's.
    """

    dist: str
    location: np.ndarray
    scale: np.ndarray
    df: np.ndarray
    half: bool = False

    def __post_init__(self):
        n = np.broadcast(self.location, self.scale, self.df).shape
        self.location = np.broadcast_to(np.asarray(self.location, float), n).copy()
        self.scale = np.broadcast_to(np.asarray(self.scale, float), n).copy()
        self.df = np.broadcast_to(np.asarray(self.df, float), n).copy()
        if self.dist == "normal":
            self._const = float(np.sum(-np.log(self.scale) - 0.5 * _LOG_2PI))
        elif self.dist == "student_t":
            nu = self.df
            self._const = float(np.sum(gammaln(0.5 * (nu + 1)) - gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
                                       - np.log(self.scale)))
        else:
            self._const = 0.0
        if self.half and self.dist != "flat":
            self._const += math.log(2.0) * self.location.size
        self._inv_s2 = 1.0 / self.scale**2

    def logp_grad(self, v):
        """Log-density (normalised when proper) and its gradient.

        Parameters
        ----------
        v : ndarray
            The parameters (same length as ``location``).

        Returns
        -------
        (float, ndarray)
        """
        if self.dist == "flat":
            return 0.0, np.zeros_like(v)
        d = v - self.location
        if self.dist == "normal":
            return self._const - 0.5 * float(d @ (d * self._inv_s2)), -d * self._inv_s2
        nu = self.df
        r2 = d * d * self._inv_s2
        lp = self._const - float(np.sum(0.5 * (nu + 1.0) * np.log1p(r2 / nu)))
        return lp, -(nu + 1.0) * d * self._inv_s2 / (nu + r2)


@dataclass
class ExponentialPrior:
    """The adjusted exponential prior of one positive parameter.

    Attributes
    ----------
    rate : float
        The rate after autoscaling (mean 1 / rate).
    """

    rate: float

    def logp_grad(self, v):
        """Log-density and its derivative at ``v > 0``.

        Parameters
        ----------
        v : float
            The parameter's value.

        Returns
        -------
        (float, float)
        """
        return math.log(self.rate) - self.rate * v, -self.rate


@dataclass
class AdjustedCoef:
    """One coefficient's prior: as specified and as used (after autoscaling).

    Attributes
    ----------
    name : str
        The model-matrix column.
    spec : Prior
        The prior as given (or rstanarm's default).
    dist : str
        "normal", "student_t" or "flat".
    location, scale, df : float
        The prior as used, after autoscaling (df for Student-t and Cauchy).
    spec_scale : float
        The scale as given, before autoscaling.
    """

    name: str
    spec: Prior
    dist: str
    location: float
    scale: float
    df: float
    spec_scale: float = 2.5


@dataclass
class PositivePrior:
    """The prior of a positive parameter of a structured term (a standard deviation, a spatial range or
    smoothness), evaluated in its log, the sampler's coordinate (the Jacobian included).

    Attributes
    ----------
    dist : str
        ``"gamma"`` (decov's prior on τ for one column; ``exponential(rate)`` is shape 1), ``"half"``
        (a half-normal / half-Student-t, ``real``) or ``"flat"``.
    shape, rate : float
        The gamma's parameters (shape 1: the exponential).
    real : RealPrior or None
        The half-distribution (location 0) for ``"half"``.
    """

    dist: str
    shape: float = 1.0
    rate: float = 1.0
    real: RealPrior | None = None

    def __post_init__(self):
        self._const = self.shape * math.log(self.rate) - math.lgamma(self.shape) if self.dist == "gamma" else 0.0

    def logp_grad_log(self, u: float):
        """Log-density of u = log v (the prior of v times v) and its derivative in u.

        Parameters
        ----------
        u : float
            The parameter's log.

        Returns
        -------
        (float, float)
        """
        v = math.exp(u)
        if self.dist == "gamma":
            return self._const + self.shape * u - self.rate * v, self.shape - self.rate * v
        if self.dist == "flat":
            return u, 1.0
        a, g = self.real.logp_grad(np.array([v]))
        return a + u, float(g[0]) * v + 1.0

    def describe(self) -> str:
        """The prior in rstanarm's words.

        Returns
        -------
        str
        """
        if self.dist == "gamma":
            if self.shape == 1.0:
                return f"exponential(rate = {_fmt(self.rate)})"
            return f"gamma(shape = {_fmt(self.shape)}, rate = {_fmt(self.rate)})"
        if self.dist == "flat":
            return "flat"
        r = self.real
        if r.dist == "normal":
            return f"half-normal(scale = {_fmt(r.scale[0])})"
        return f"half-student_t(df = {_fmt(r.df[0])}, scale = {_fmt(r.scale[0])})"


@dataclass
class BoundedPrior:
    """A beta prior over a bounded parameter's range (lower, upper), in the sampler's coordinate u with
    ``(value - lower) / (upper - lower) = logistic(c u)`` (c = 2: ρ = tanh u; c = 1: cs's logistic map).

    Attributes
    ----------
    a, b : float
        The beta's shapes (1, 1: uniform).
    lower, upper : float
        The parameter's range.
    c : float
        The coordinate's slope (see above).
    """

    a: float
    b: float
    lower: float
    upper: float
    c: float = 2.0

    def __post_init__(self):
        self._const = math.log(self.c) - float(betaln(self.a, self.b))

    def logp_grad(self, u: float):
        """Log-density of u (the beta's density of p times dp/du) and its derivative.

        Parameters
        ----------
        u : float
            The coordinate.

        Returns
        -------
        (float, float)
        """
        cu = self.c * u
        log_p = -_softplus(-cu)
        log_q = -_softplus(cu)
        p = math.exp(log_p)
        return (self._const + self.a * log_p + self.b * log_q,
                self.c * (self.a * (1.0 - p) - self.b * p))

    def describe(self) -> str:
        """The prior and its range.

        Returns
        -------
        str
        """
        head = "uniform" if self.a == 1.0 and self.b == 1.0 else f"beta(a = {_fmt(self.a)}, b = {_fmt(self.b)})"
        return f"{head} on ({_fmt(self.lower)}, {_fmt(self.upper)})"


def _softplus(v: float) -> float:
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


@dataclass
class StructParam:
    """One natural parameter of a structured random-effects term and its prior.

    Attributes
    ----------
    name : str
        Its name in the draws, ``sd_(Intercept)|g``, ``sd|g``, ``rho|g``, ``pacf1|g``, ``range|g``.
    kind : str
        ``"sd"`` (in units of the family's auxiliary parameter, as decov's), ``"corr"`` (bounded),
        ``"range"`` or ``"kappa"`` (positive).
    spec : Prior
        As given (or the default).
    used : PositivePrior or BoundedPrior
        As evaluated.
    """

    name: str
    kind: str
    spec: Prior
    used: object


@dataclass
class PriorSet:
    """All priors of one model: coefficients (per column), intercept, auxiliary parameter, covariances.

    Build it with :func:`default_priors`.

    Attributes
    ----------
    family : str
        The family's name.
    coefs : list of AdjustedCoef
        The non-intercept coefficients' priors, in the model matrix's order.
    coef_spec : Prior or None
        The prior given for all coefficients (rstanarm's ``prior``), for the summary.
    intercept : tuple (Prior, RealPrior) or None
        The intercept's prior on the centred predictors, as specified and as used; None without an intercept.
    aux_name : str or None
        rstanarm's name of the auxiliary parameter (``"sigma"``, ``"reciprocal_dispersion"``, ...).
    aux : tuple (Prior, RealPrior or ExponentialPrior) or None
        The auxiliary parameter's prior, specified and used.
    covariance : dict
        Term label -> decov ``Prior``.
    term_groups : dict
        Term label -> grouping factor name.
    structured : dict
        Term label -> list of :class:`StructParam`, for the terms with a covariance structure
        (``ar1``, ``cs``, ``diag``, ``exp``, a ``relmat`` ...), which have no decov prior.
    """

    family: str
    coefs: list
    coef_spec: Prior | None
    intercept: tuple | None
    aux_name: str | None
    aux: tuple | None
    covariance: dict
    term_groups: dict = field(default_factory=dict)
    structured: dict = field(default_factory=dict)

    def __post_init__(self):
        groups = {}
        for j, c in enumerate(self.coefs):
            key = "flat" if c.dist == "flat" else ("normal" if c.dist == "normal" else "student_t")
            groups.setdefault(key, []).append(j)
        self._groups = []
        for key, idx in groups.items():
            cs = [self.coefs[j] for j in idx]
            rp = RealPrior(key, np.array([c.location for c in cs]), np.array([c.scale for c in cs]),
                           np.array([c.df for c in cs]))
            self._groups.append((np.array(idx, dtype=np.int64), rp, len(idx) == len(self.coefs)))

    @property
    def proper(self) -> bool:
        """Whether every prior is proper (no ``flat()``).

        Returns
        -------
        bool
        """
        parts = [c.spec for c in self.coefs]
        if self.intercept is not None:
            parts.append(self.intercept[0])
        if self.aux is not None:
            parts.append(self.aux[0])
        return all(p.proper for p in parts)

    def coef_logp_grad(self, beta):
        """Log prior density of the non-intercept coefficients and its gradient.

        Parameters
        ----------
        beta : ndarray, shape (len(coefs),)
            The non-intercept coefficients.

        Returns
        -------
        (float, ndarray)
        """
        if len(self._groups) == 1 and self._groups[0][2]:
            return self._groups[0][1].logp_grad(beta)
        lp, g = 0.0, np.zeros_like(beta)
        for idx, rp, _ in self._groups:
            a, b = rp.logp_grad(beta[idx])
            lp += a
            g[idx] = b
        return lp, g

    def summary(self, model_name: str = "fit") -> str:
        """rstanarm's ``prior_summary()`` text, adjusted priors shown where autoscaling changed them.

        Parameters
        ----------
        model_name : str, default "fit"
            The name in the header line.

        Returns
        -------
        str
        """
        lines = [f"Priors for model '{model_name}' ", "------"]

        def block(title, spec, adjusted_desc, specified_desc):
            lines.append(title)
            if adjusted_desc is None or adjusted_desc == specified_desc:
                lines.append(f" ~ {specified_desc}")
            else:
                lines.extend(["  Specified prior:", f"    ~ {specified_desc}", "  Adjusted prior:", f"    ~ {adjusted_desc}"])
            lines.append("")

        if self.intercept is not None:
            spec, used = self.intercept
            sd = spec.describe()
            ad = None if spec.dist == "flat" else spec.describe(location=used.location, scale=used.scale)
            block("Intercept (after predictors centered)", spec, ad, sd)
        if self.coefs:
            same = len({(c.spec.dist, repr(c.spec.df)) for c in self.coefs}) == 1
            if same and self.coefs[0].spec.dist != "flat":
                spec = self.coefs[0].spec
                loc = np.array([c.location for c in self.coefs])
                spec_scale = np.array([c.spec_scale for c in self.coefs])
                sd = spec.describe(location=loc, scale=spec_scale)
                ad = spec.describe(location=loc, scale=np.array([c.scale for c in self.coefs]))
                block("Coefficients", spec, ad, sd)
            else:
                lines.append("Coefficients")
                for c in self.coefs:
                    d = c.spec.describe(location=c.location, scale=c.scale) if c.dist != "flat" else "flat"
                    lines.append(f"  {c.name} ~ {d}")
                lines.append("")
        if self.aux is not None:
            spec, used = self.aux
            sd = spec.describe()
            if isinstance(used, ExponentialPrior):
                ad = spec.describe(rate=used.rate)
            elif spec.dist == "flat":
                ad = None
            else:
                ad = spec.describe(location=used.location, scale=used.scale)
            block(f"Auxiliary ({self.aux_name})", spec, ad, sd)
        if self.covariance:
            specs = list(self.covariance.values())
            if all(s == specs[0] for s in specs):
                lines += ["Covariance", f" ~ {specs[0].describe()}"]
            else:
                lines.append("Covariance")
                for label, s in self.covariance.items():
                    lines.append(f"  {label} ~ {s.describe()}")
        if self.structured:
            if self.covariance:
                lines.append("")
            unit = f" (standard deviations in units of {self.aux_name})" if self.aux_name else ""
            lines.append("Structured covariance" + unit)
            for params in self.structured.values():
                for sp in params:
                    lines.append(f"  {sp.name} ~ {sp.used.describe()}")
        lines += ["------"]
        return "\n".join(lines)

# ---------------------------------------------------------------------------------------------------
# defaults and overrides
# ---------------------------------------------------------------------------------------------------
def _sd(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.std(x, ddof=1)) if x.shape[0] > 1 else 0.0


def _pick(value, j: int, n: int, what: str):
    """Entry j of a scalar-or-vector prior parameter over n coefficients."""
    a = np.asarray(value, dtype=float)
    if a.ndim == 0:
        return float(a)
    if a.shape[0] != n:
        raise ArgumentError(f"{what} has {a.shape[0]} values for {n} coefficients; give one value or one per coefficient")
    return float(a[j])


_COEF_DISTS = ("normal", "student_t", "cauchy", "flat")
_AUX_DISTS = ("exponential", "normal", "student_t", "cauchy", "flat")


def _check_kind(prior, allowed, key):
    if not isinstance(prior, Prior):
        raise ArgumentError(f"priors[{key!r}] must be a prior such as glmmkit.bayes.priors.normal(0, 1), got "
                            f"{type(prior).__name__}")
    if prior.dist not in allowed:
        raise ArgumentError(f"priors[{key!r}] = {prior.dist}(): this parameter takes one of "
                            f"{', '.join(a + '()' for a in allowed)}")


def default_priors(family: str, y, X, x_names, terms, priors: dict | None = None) -> PriorSet:
    """rstanarm's default priors for a model, autoscaled, with the user's overrides.

    Parameters
    ----------
    family : str
        glmmkit's family name (``"gaussian"``, ``"binomial"``, ``"poisson"``, ``"negative_binomial"``,
        ``"gamma"``, ``"beta"``).
    y : array-like, shape (n,)
        The response (gaussian: sd(y) and mean(y) scale the defaults).
    X : ndarray, shape (n, p)
        The fixed-effect model matrix (with its intercept column, if any).
    x_names : sequence of str
        Its column names (``"(Intercept)"`` for the intercept).
    terms : sequence of tuple
        ``(label, group)`` per random-effects term under decov (``("Subject", "Subject")``; a second
        term on one factor is labelled ``"Subject.1"``), or ``(label, group, params)`` for a term with a
        covariance structure, ``params`` a list of ``(name, kind, lower, upper, c, scale)`` per natural
        parameter (:func:`glmmkit.bayes.structured.term_params`).
    priors : dict, optional
        Overrides by name: a coefficient's column name (``"Days"``), ``"(Intercept)"``, the auxiliary
        parameter (``"sigma"``, ``"reciprocal_dispersion"`` or ``"theta"``, ``"shape"``, ``"phi"``), a term
        label or grouping factor (``"Subject"``: a ``decov()``), a structured term's natural parameter
        (``"sd|Subject"``, ``"sd_(Intercept)|g"``: an ``exponential``, half-``normal`` / ``student_t`` /
        ``cauchy`` or ``decov`` (its gamma on each standard deviation); ``"rho|Subject"``, ``"pacf1|g"``: a
        ``beta()`` / ``uniform()``; ``"range|site"``, ``"kappa|site"``: as a standard deviation, not
        decov), or rstanarm's argument names ``"prior"`` (every coefficient), ``"prior_intercept"``,
        ``"prior_aux"``, ``"prior_covariance"`` (every term).

    Returns
    -------
    PriorSet

    Raises
    ------
    ArgumentError
        A key names no parameter of the model (the message lists the known ones), or a prior of the
        wrong kind is given (an exponential on a coefficient, a normal on a covariance).
    """
    priors = dict(priors or {})
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    x_names = list(x_names)
    gaussian = family == "gaussian"
    sd_y = _sd(y) if gaussian else 1.0
    has_icpt = "(Intercept)" in x_names
    coef_names = [n for n in x_names if n != "(Intercept)"]
    coef_cols = [j for j, n in enumerate(x_names) if n != "(Intercept)"]
    aux_name = AUX_NAMES.get(family)
    terms = [tuple(t) for t in terms]
    labels = [t[0] for t in terms]
    groups = {t[0]: t[1] for t in terms}
    struct_names = [f"{prm[0]}|{t[0]}" for t in terms if len(t) > 2 for prm in t[2]]

    # every key must name something
    known = set(coef_names) | {"prior", "prior_covariance"} | set(labels) | set(groups.values()) | set(struct_names)
    if has_icpt:
        known |= {"(Intercept)", "prior_intercept"}
    if aux_name is not None:
        known |= {"prior_aux"} | {k for k, v in _AUX_ALIASES.items() if v == aux_name}
    unknown = [k for k in priors if k not in known]
    if unknown:
        listing = (["(Intercept)"] if has_icpt else []) + coef_names + \
            ([aux_name] if aux_name else []) + labels + struct_names
        close = difflib.get_close_matches(str(unknown[0]), sorted(map(str, known)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        groups_all = ["'prior'"] + (["'prior_intercept'"] if has_icpt else []) + (["'prior_aux'"] if aux_name else []) \
            + ["'prior_covariance'"]
        raise ArgumentError(f"priors names {unknown!r}{hint}, which is no parameter of this model; its parameters are "
                            f"{', '.join(repr(s) for s in listing)} (or rstanarm's {', '.join(groups_all)})")

    # coefficients
    all_spec = priors.get("prior")
    if all_spec is not None:
        _check_kind(all_spec, _COEF_DISTS, "prior")
    default_coef = normal(0.0, 2.5, autoscale=True)
    coefs = []
    for j, (name, col) in enumerate(zip(coef_names, coef_cols)):
        own = priors.get(name)
        if own is not None:
            _check_kind(own, _COEF_DISTS, name)
            spec, jj, nn = own, 0, 1
        else:
            spec, jj, nn = (all_spec, j, len(coef_names)) if all_spec is not None else (default_coef, 0, 1)
        if spec.dist == "flat":
            coefs.append(AdjustedCoef(name, spec, "flat", 0.0, 1.0, 1.0))
            continue
        loc = _pick(spec.location, jj, nn, f"priors[{'prior' if spec is all_spec else name!r}].location")
        scale = 2.5 if spec.scale is None else _pick(spec.scale, jj, nn, f"priors[{name!r}].scale")
        df = 1.0 if spec.df is None else _pick(spec.df, jj, nn, f"priors[{name!r}].df")
        spec_scale = scale
        if spec.autoscale:
            sx = _sd(X[:, col])
            if sx > 0:
                scale = scale / sx
            scale *= sd_y
        dist = "normal" if spec.dist == "normal" else "student_t"
        coefs.append(AdjustedCoef(name, spec, dist, loc, scale, df, spec_scale))

    # intercept (on the centred predictors)
    intercept = None
    if has_icpt:
        spec = priors.get("(Intercept)", priors.get("prior_intercept"))
        if spec is None:
            spec = normal(float(np.mean(y)) if gaussian else 0.0, 2.5, autoscale=True)
        _check_kind(spec, _COEF_DISTS, "(Intercept)")
        if spec.dist == "flat":
            used = RealPrior("flat", np.zeros(1), np.ones(1), np.ones(1))
        else:
            scale = 2.5 if spec.scale is None else float(np.ravel(spec.scale)[0])
            if spec.autoscale:
                scale *= sd_y
            used = RealPrior("normal" if spec.dist == "normal" else "student_t", np.atleast_1d(spec.location),
                             np.atleast_1d(scale), np.atleast_1d(1.0 if spec.df is None else spec.df))
        intercept = (spec, used)

    # auxiliary parameter
    aux = None
    if aux_name is not None:
        keys = [k for k in priors if k == "prior_aux" or _AUX_ALIASES.get(k) == aux_name]
        spec = priors[keys[0]] if keys else exponential(1.0, autoscale=True)
        _check_kind(spec, _AUX_DISTS, keys[0] if keys else aux_name)
        if spec.dist == "exponential":
            rate = spec.rate / sd_y if spec.autoscale else spec.rate
            used = ExponentialPrior(float(rate))
        elif spec.dist == "flat":
            used = RealPrior("flat", np.zeros(1), np.ones(1), np.ones(1), half=True)
        else:
            if np.any(np.asarray(spec.location) != 0):
                raise ArgumentError(f"the prior on {aux_name} is a half-{spec.dist} on (0, inf): give it location 0")
            scale = 2.5 if spec.scale is None else float(spec.scale)
            if spec.autoscale:
                scale *= sd_y
            used = RealPrior("normal" if spec.dist == "normal" else "student_t", np.zeros(1), np.atleast_1d(scale),
                             np.atleast_1d(1.0 if spec.df is None else spec.df), half=True)
        aux = (spec, used)

    # covariance matrices
    covariance, structured = {}, {}
    for term in terms:
        lab, g = term[0], term[1]
        spec = priors.get(lab, priors.get(g, priors.get("prior_covariance", None)))
        key = lab if lab in priors else (g if g in priors else "prior_covariance")
        if len(term) > 2:
            structured[lab] = [_struct_param(prm, lab, priors, spec, key) for prm in term[2]]
            continue
        if spec is None:
            spec = decov()
        _check_kind(spec, ("decov",), key)
        covariance[lab] = spec
    return PriorSet(family=family, coefs=coefs, coef_spec=all_spec, intercept=intercept, aux_name=aux_name, aux=aux,
                    covariance=covariance, term_groups=groups, structured=structured)


_POSITIVE_DISTS = ("exponential", "normal", "student_t", "cauchy", "flat")


def _positive_prior(spec, key) -> PositivePrior:
    """The used prior of a positive structured parameter from its specification."""
    if spec.dist == "decov":
        return PositivePrior("gamma", shape=float(spec.shape), rate=1.0 / float(spec.cov_scale))
    if spec.dist == "exponential":
        return PositivePrior("gamma", shape=1.0, rate=float(spec.rate))
    if spec.dist == "flat":
        return PositivePrior("flat")
    if np.any(np.asarray(spec.location) != 0):
        raise ArgumentError(f"priors[{key!r}] is a half-{spec.dist} on (0, inf): give it location 0")
    scale = 2.5 if spec.scale is None else float(spec.scale)
    real = RealPrior("normal" if spec.dist == "normal" else "student_t", np.zeros(1), np.atleast_1d(scale),
                     np.atleast_1d(1.0 if spec.df is None else spec.df), half=True)
    return PositivePrior("half", real=real)


def _struct_param(prm, label, priors, term_spec, term_key) -> StructParam:
    """One structured parameter's prior: its own key ``name|label`` (the label is the grouping factor's
    name for its first term), else (standard deviations) the term's
    or ``prior_covariance``'s, else the default (decov's gamma(1, 1) on a standard deviation, uniform on a
    correlation's range, a half-normal on a range scaled by the positions' spread)."""
    name, kind, lower, upper, c, scale = prm
    full = f"{name}|{label}"
    spec, key = priors.get(full), full
    if spec is None and kind == "sd" and term_spec is not None:
        spec, key = term_spec, term_key
    if kind == "corr":
        if spec is None:
            spec = uniform()
        _check_kind(spec, ("beta",), key)
        return StructParam(full, kind, spec, BoundedPrior(float(spec.a), float(spec.b), float(lower), float(upper),
                                                          float(c)))
    if spec is None:
        spec = decov() if kind == "sd" else normal(0.0, float(scale))
    _check_kind(spec, _POSITIVE_DISTS + (("decov",) if kind == "sd" else ()), key)
    return StructParam(full, kind, spec, _positive_prior(spec, key))
