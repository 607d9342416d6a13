"""Simulated scaled quantile residuals (Dunn & Smyth's randomised quantile residuals computed by
simulation, as DHARMa does) and the tests built on them.

For every row the observed response is placed within ``n_sim`` responses simulated from the
fitted model: the scaled residual is the share of simulations below it.  If the model is right
the residuals are uniform on [0, 1] whatever the family, the link or the random-effects design,
so one set of checks (a uniform QQ plot, a KS test, dispersion, zero inflation, outliers) serves
every model.  For integer responses (binomial, Poisson, negative binomial) ties with the
simulations are broken by drawing the residual uniformly between the share of simulations
< y and the share <= y: without that the residuals of discrete data pile up at the bucket
edges and are not uniform even for a correct model.

By default the simulations condition on the predicted random effects (``re_form=None``, as
DHARMa >= 0.5's ``simulateREs = "conditional"``): that checks the response distribution
given the clusters and gives the dispersion test its power.  ``re_form="~0"`` re-draws the
random effects in every simulation (lme4's ``simulate(re.form = NA)``, DHARMa's default
before 0.5).

``dispersion_check`` is the classical check that needs no simulation: Pearson χ² over the
residual degrees of freedom of a Poisson or binomial fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError, GlmmkitWarning

__all__ = ["ResidualTest", "SimulatedResiduals", "dispersion_check", "simulate_residuals"]

#: families whose responses are whole numbers (binomial: successes of the row's trials)
INTEGER_FAMILIES = ("binomial", "poisson", "negative_binomial", "nbinom1")


@dataclass
class ResidualTest:
    """Result of one residual test.

    Attributes
    ----------
    method : str
        The test's name (e.g. ``"KS test of uniformity"``).
    statistic : float
        The test statistic (KS D; observed/mean-simulated ratio for dispersion and zero inflation;
        number of outliers for the outlier test).
    p_value : float
        Its p-value.
    alternative : str
        ``"two-sided"``, ``"greater"`` or ``"less"``.
    observed, expected : float
        The observed value of the quantity tested and its mean under the model.
    simulated : ndarray
        The quantity in each simulation (simulation-based tests), else empty.
    """

    method: str
    statistic: float
    p_value: float
    alternative: str = "two-sided"
    observed: float = np.nan
    expected: float = np.nan
    simulated: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def ratio(self) -> float:
        """Observed over expected (1 under the model).

        Returns
        -------
        float
            ``observed / expected``; NaN when the expected value is 0 or unknown.
        """
        return self.observed / self.expected if self.expected else np.nan


@dataclass
class SimulatedResiduals:
    """Scaled quantile residuals from simulations of a fitted model (``fit.simulate_residuals()``).

    Attributes
    ----------
    scaled : ndarray, shape (n,)
        Residuals in [0, 1], uniform if the model is right (DHARMa's ``scaledResiduals``).
    observed : ndarray, shape (n,)
        The response as fitted (proportions for binomial data, as ``fit.fitted()``).
    fitted : ndarray, shape (n,)
        Predicted mean on the response scale: population level for unconditional simulations,
        conditional on the random effects otherwise (as the simulations).
    simulated : ndarray, shape (n, n_sim)
        Simulated responses on the scale of ``observed``.
    n_sim : int
        Simulations per row.
    conditional : bool
        Whether the simulations kept the predicted random effects.
    integer_response : bool
        Whether ties were randomised (binomial and count families).
    family : str
        The fit's family name (``"gaussian"`` for LMMs).
    trials : ndarray, shape (n,)
        Binomial trials of each row (ones for other families): counts are ``observed * trials``.
    """

    scaled: np.ndarray
    observed: np.ndarray
    fitted: np.ndarray
    simulated: np.ndarray = field(repr=False)
    n_sim: int
    conditional: bool
    integer_response: bool
    family: str
    trials: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        kind = "conditional on the random effects" if self.conditional else "new random effects"
        return (f"SimulatedResiduals(n={self.scaled.shape[0]}, n_sim={self.n_sim}, family={self.family!r}, "
                f"{kind}, integer_response={self.integer_response})")

    # ----- the response on the scale the tests use: counts for binomial data, as DHARMa -----

    @property
    def _obs_counts(self) -> np.ndarray:
        return self.observed * self.trials if self.family == "binomial" else self.observed

    @property
    def _sim_counts(self) -> np.ndarray:
        return self.simulated * self.trials[:, None] if self.family == "binomial" else self.simulated

    # ----- tests -----

    def uniformity_test(self) -> ResidualTest:
        """One-sample Kolmogorov-Smirnov test of the scaled residuals against U(0, 1).

        Returns
        -------
        ResidualTest
            ``statistic`` is D; a small p-value says the residuals are not uniform (wrong
            distribution, missing predictor, wrong link ...).
        """
        from scipy.stats import kstest

        res = kstest(self.scaled, "uniform")
        return ResidualTest("Kolmogorov-Smirnov test of uniformity", float(res.statistic), float(res.pvalue))

    def dispersion_test(self, alternative: str = "two-sided") -> ResidualTest:
        """Simulation-based dispersion test (DHARMa's default): the variance of the observed raw
        residuals y − ȳ_sim against the variance of each simulation's residuals.

        Parameters
        ----------
        alternative : {"two-sided", "greater", "less"}
            "greater" tests for overdispersion only.

        Returns
        -------
        ResidualTest
            ``statistic`` (= ``ratio``) is the observed variance over the mean simulated one:
            above 1 overdispersion, below 1 underdispersion.
        """
        y, sims = self._obs_counts, self._sim_counts
        centre = sims.mean(axis=1)
        observed = float(np.var(y - centre, ddof=1))
        simulated = np.var(sims - centre[:, None], axis=0, ddof=1)
        return _simulation_test("Simulation-based dispersion test", observed, simulated, alternative)

    def zero_inflation_test(self, alternative: str = "two-sided") -> ResidualTest:
        """Number of zeros observed against its distribution in the simulations.

        Parameters
        ----------
        alternative : {"two-sided", "greater", "less"}
            ``"greater"``: more zeros than simulated (zero inflation); ``"less"``: fewer.

        Returns
        -------
        ResidualTest
            ``ratio`` above 1: more zeros than the model expects.

        Raises
        ------
        ArgumentError
            For a family whose responses are never zero (Gamma, beta, inverse Gaussian, Student-t,
            Gaussian).
        """
        if not self.integer_response:
            raise ArgumentError(
                f"zero_inflation_test needs a count or binomial family; the {self.family} family's responses "
                "are continuous, so exact zeros carry no information (use uniformity_test/dispersion_test)"
            )
        observed = float(np.sum(self._obs_counts == 0))
        simulated = np.sum(self._sim_counts == 0, axis=0).astype(float)
        return _simulation_test("Zero-inflation test (zeros observed vs simulated)", observed, simulated, alternative)

    def outlier_test(self, alternative: str | None = None) -> ResidualTest:
        """Binomial test of the number of rows outside the range of all their simulations.

        Under the model a continuous response falls outside its ``n_sim`` simulations with
        probability 2 / (n_sim + 1); for integer responses ties make it rarer, so the test is
        conservative there.

        Parameters
        ----------
        alternative : {"two-sided", "greater", "less"}, optional
            Default: two-sided for continuous responses, "greater" (too many outliers) for
            integer ones, whose ties make too few outliers the normal case (a correct
            Bernoulli model has almost none).

        Returns
        -------
        ResidualTest
            ``statistic`` the number of outliers, ``expected`` their expected number.
        """
        from scipy.stats import binomtest

        if alternative is None:
            alternative = "greater" if self.integer_response else "two-sided"
        _check_alternative(alternative)
        y, sims = self._obs_counts, self._sim_counts
        outside = (y < sims.min(axis=1)) | (y > sims.max(axis=1))
        k, n = int(outside.sum()), outside.shape[0]
        p0 = 2.0 / (self.n_sim + 1.0)
        res = binomtest(k, n, p0, alternative=alternative)
        return ResidualTest("Outlier test (binomial)", float(k), float(res.pvalue), alternative,
                            observed=float(k), expected=n * p0)

    def outliers(self) -> np.ndarray:
        """Row indices whose response lies outside the range of all their simulations.

        Returns
        -------
        numpy.ndarray of int
            Positions (0-based, in the fit's rows) of the outliers, in increasing order.
        """
        y, sims = self._obs_counts, self._sim_counts
        return np.flatnonzero((y < sims.min(axis=1)) | (y > sims.max(axis=1)))

    def to_frame(self) -> pd.DataFrame:
        """The residuals as a table, one row per observation.

        Returns
        -------
        pandas.DataFrame
            Columns row (0-based position), observed (response), fitted (the model's mean, conditional or
            population-level as simulated) and scaled_residual (in [0, 1], uniform under the model).
        """
        return pd.DataFrame({"row": np.arange(self.scaled.shape[0]), "observed": self.observed,
                             "fitted": self.fitted, "scaled_residual": self.scaled})

    def plot(self, ax=None, axes=None):
        """The residual diagnostic panel (see :func:`glmmkit.diagnostics.plot_residuals`).

        Parameters
        ----------
        ax : sequence of matplotlib Axes, optional
            One per panel; default a new figure.
        axes : sequence of matplotlib Axes, optional
            Alias of ``ax``.

        Returns
        -------
        matplotlib.figure.Figure
            The figure holding the panels (QQ plot of the scaled residuals, residuals against fitted).
        """
        from .plots import plot_residuals

        return plot_residuals(self, ax=ax, axes=axes)


def _check_alternative(alternative):
    if alternative not in ("two-sided", "greater", "less"):
        raise ArgumentError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")


def _simulation_test(method, observed, simulated, alternative) -> ResidualTest:
    """p-value of ``observed`` within its simulated distribution (counting the observation itself
    among the simulations, so the p-value is never exactly zero)."""
    _check_alternative(alternative)
    m = simulated.shape[0]
    p_greater = (np.sum(simulated >= observed) + 1.0) / (m + 1.0)
    p_less = (np.sum(simulated <= observed) + 1.0) / (m + 1.0)
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2.0 * min(p_greater, p_less))}[alternative]
    expected = float(np.mean(simulated))
    ratio = observed / expected if expected else np.nan
    return ResidualTest(method, float(ratio), float(p), alternative, observed=float(observed),
                        expected=expected, simulated=simulated)


def _conditional(re_form) -> bool:
    """lme4's re.form: None conditions on the random effects; "~0" / "NA" / NaN re-simulates them."""
    from ..validate import population_level as _population_level

    return not _population_level(re_form)


def _trials(fit) -> np.ndarray:
    if fit.has_family and fit.family.name == "binomial":
        return np.asarray(fit._problem.wt, dtype=float)
    return np.ones(fit.nobs)


def simulate_matrix(fit, n_sim: int, rng, conditional: bool) -> np.ndarray:
    """Responses simulated from the fit, all simulations at once.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    n_sim : int
        Number of simulations.
    rng : numpy.random.Generator
        Source of the random draws.
    conditional : bool
        True: simulate given the fitted random effects (lme4's ``re.form = NULL``); False: draw new
        random effects for every simulation (``re.form = NA``).

    Returns
    -------
    numpy.ndarray, shape (nobs, n_sim)
        One simulated response per column, on the scale of ``fit.simulate`` (proportions for binomial
        data).

    Raises
    ------
    DataError
        The family cannot simulate the means the link gives (e.g. a negative Gamma mean under an
        inverse link once the random effects are re-drawn).
    """
    n = fit.nobs
    if conditional:
        eta = np.repeat(fit._eta()[:, None], n_sim, axis=1)
    else:
        fixed = fit.frame.X[:, fit._x_kept] @ fit._beta + fit.frame.offset
        u = rng.standard_normal((fit.structure.q, n_sim))
        b = fit.structure.b_of(fit._templates, u) * (fit.sigma if fit.has_residual else 1.0)
        eta = fixed[:, None] + np.asarray(fit._z @ b)
    if not fit.has_family:  # LMM: Gaussian noise with the prior weights' variances and R's correlations
        return eta + fit._residual_noise(rng, n_sim)
    # the family draws broadcast the rows' weights (trials) along the last axis: simulations as rows
    try:
        with np.errstate(invalid="ignore", over="ignore"):
            return np.ascontiguousarray(fit._simulate_response(eta.T, rng).T)
    except ValueError:
        # e.g. an inverse link: new random effects can push η past 0, a mean no Gamma or inverse
        # Gaussian distribution has
        raise DataError(
            f"simulating from the fitted {fit.family.name} model with the {fit.link} link gives means outside "
            "the family's range for some rows"
            + ("" if conditional else " once the random effects are re-drawn; pass re_form=None to condition on them")
            + ", or refit with a link that keeps the mean in range (e.g. link='log')"
        ) from None


def simulate_residuals(fit, n_sim: int = 250, seed=None, re_form=None) -> SimulatedResiduals:
    """Scaled quantile residuals of a fitted model by simulation (DHARMa's ``simulateResiduals``).

    Parameters
    ----------
    fit : LmmFit, GlmmFit or PqlFit
        The fitted model to simulate from.
    n_sim : int, default 250
        Simulations per row; more give smoother residuals and tests (at least 10).
    seed : int or numpy Generator, optional
        Makes the simulations and the randomisation of ties reproducible.
    re_form : None or "~0", default None
        None: condition on the predicted random effects, which checks the response
        distribution given the clusters (DHARMa ≥ 0.5's default ``simulateREs =
        "conditional"``); ``"~0"`` (or ``"NA"``): new random effects in every simulation
        (unconditional, lme4's ``simulate`` default and DHARMa's before version 0.5).

    Returns
    -------
    SimulatedResiduals

    Notes
    -----
    PQL fits are simulated from the family's own distribution (the working model's dispersion
    is not a parameter of any distribution), so a dispersion far from 1 shows in the tests.
    """
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 10:
        raise ArgumentError(f"n_sim must be a whole number of at least 10 simulations, got {n_sim!r}")
    conditional = _conditional(re_form)
    olre = [b.factor.name for b in fit.structure.blocks if b.q == fit.nobs]
    if conditional and olre and fit.has_family:
        # given its predicted observation-level effects a model reproduces every row almost exactly,
        # so conditional simulations look underdispersed whatever the truth
        warnings.warn(f"the model has an observation-level random effect ({', '.join(olre)}): conditional "
                      "simulations understate the variance; use re_form='~0' to re-draw the random effects",
                      GlmmkitWarning, stacklevel=3)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    family = getattr(fit, "family", None)
    fam_name = "gaussian" if family is None else family.name
    y = np.asarray(fit.frame.y, dtype=float)
    trials = _trials(fit)
    sims = simulate_matrix(fit, int(n_sim), rng, conditional)
    integer = fam_name in INTEGER_FAMILIES
    if integer:
        # compare whole counts: proportions of different trials would tie only up to rounding
        scale = trials[:, None] if fam_name == "binomial" else 1.0
        yc = np.round(y * trials) if fam_name == "binomial" else np.round(y)
        sc = np.round(sims * scale)
        below = np.mean(sc < yc[:, None], axis=1)
        at_or_below = np.mean(sc <= yc[:, None], axis=1)
        scaled = below + rng.uniform(size=y.shape[0]) * (at_or_below - below)
    else:
        scaled = np.mean(sims < y[:, None], axis=1)
    if conditional:
        fitted = fit.fitted() if family is None else fit.predict(type="response")
    else:
        eta0 = fit.predict(re_form="~0") if family is None else fit.predict(re_form="~0", type="response")
        fitted = eta0
    return SimulatedResiduals(scaled=scaled, observed=y, fitted=np.asarray(fitted, dtype=float), simulated=sims,
                              n_sim=int(n_sim), conditional=conditional, integer_response=integer,
                              family=fam_name, trials=trials)


def dispersion_check(fit) -> dict | None:
    """Pearson over-dispersion check of a Poisson or binomial GLMM; see :meth:`GlmmFit.dispersion_check`.

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM.

    Returns
    -------
    dict or None
        ``pearson_chisq`` (sum of squared Pearson residuals), ``df`` (residual df), ``ratio``
        (χ² / df: about 1 without over-dispersion) and ``p_value`` (upper tail of χ²_df); None for
        other families, PQL fits and Bernoulli rows (they carry no information on dispersion).
    """
    from scipy.stats import chi2

    if fit.family.name not in ("poisson", "binomial") or fit.kind == "pql":
        return None
    if fit.family.name == "binomial" and np.all(fit._problem.wt <= 1.0):
        return None  # Bernoulli rows carry no information about dispersion
    stat = float(np.sum(fit.residuals("pearson") ** 2))
    df = fit.df_resid
    return {"pearson_chisq": stat, "df": df, "ratio": stat / df if df > 0 else np.nan,
            "p_value": float(chi2.sf(stat, df)) if df > 0 else np.nan}
