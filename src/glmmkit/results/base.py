"""``MixedModelFit``: what every fitted mixed model has.

The estimates (θ, β, their covariance, the random effects b, σ, the log-likelihood)
as lme4's pandas views (fixef, vcov, theta, varcorr, ranef), the likelihood
summaries (npar, AIC, BIC) and the tables of ``inference/`` (coef_table, confint).
Prediction and interpretation come from the mixins of ``prediction.py`` and
``interpretation.py``; diagnostics and the report from ``diagnostics/`` and ``report.py``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..diagnostics import DiagnosticsMixin
from ..report import ReportMixin
from .interpretation import InterpretationMixin
from .prediction import PredictionMixin

__all__ = ["MixedModelFit"]


class MixedModelFit(PredictionMixin, InterpretationMixin, DiagnosticsMixin, ReportMixin):
    """What every fitted mixed model has: estimates, variance components, random effects.

    Subclasses compute the pieces (θ, β, their covariance, the random effects b,
    the scale σ and the log-likelihood) and hand them to this constructor (keywords only).

    Parameters
    ----------
    frame : ModelFrame
        The complete-case model frame the model was fitted to.
    structure : ModelStructure
        The random-effects terms, blocks and θ parameterisation.
    theta : array-like, shape (n_theta,)
        The estimated covariance parameters (lme4's θ).
    beta : array-like, shape (p,)
        The fixed-effect estimates of the kept columns, on the user's scale.
    vcov : array-like, shape (p, p)
        Their covariance matrix.
    b : array-like, shape (q,)
        The predicted random effects (conditional modes), in the structure's engine order.
    sigma : float
        Residual standard deviation (1 for a GLMM without a dispersion).
    loglik : float
        Log-likelihood at the estimates (REML criterion's for a REML fit; NaN for PQL).
    info : FitInfo
        How the fit went; its ``singular`` is set here.
    x_kept : list of int
        Columns of ``frame.X`` kept (the others dropped as aliased).
    dropped_columns : list of str
        Names of the fixed-effect columns dropped as aliased.
    data_name : str, optional
        Name of the data shown in the summary.
    """

    #: LMMs report a residual row in ``varcorr``; binomial/Poisson GLMMs do not
    has_residual = True
    #: "lmm", "glmm" or "pql": what kind of fit this is (one place to ask instead of guessing from attributes)
    kind = ""

    @property
    def has_likelihood(self) -> bool:
        """Whether the fit has a likelihood.

        Returns
        -------
        bool
            False for fits without one (PQL): no loglik, AIC, BIC, LRT or profile.
        """
        return self.kind != "pql"

    @property
    def has_family(self) -> bool:
        """Whether the fit is a GLMM.

        Returns
        -------
        bool
            True for GLMM fits (a response family other than the LMM's Gaussian, PQL included).
        """
        return self.kind in ("glmm", "pql")

    def __init__(self, *, frame, structure, theta, beta, vcov, b, sigma, loglik, info, x_kept, dropped_columns,
                 data_name=None):
        self.frame = frame
        self.structure = structure
        self.formula = frame.parsed.text
        self.data_name = data_name
        self.dropped_columns = list(dropped_columns)
        self._x_kept = list(x_kept)
        self.x_names = [frame.x_names[j] for j in x_kept]
        self.optimizer_info = info
        self.converged = bool(info.converged)
        self._theta = np.asarray(theta, dtype=float)
        self._templates = structure.templates(self._theta)
        self._beta = np.asarray(beta, dtype=float)
        self._vcov = np.asarray(vcov, dtype=float)
        self._b = np.asarray(b, dtype=float)
        self.sigma = float(sigma)
        self.loglik = float(loglik)
        self.singular = structure.is_singular(self._theta)
        info.singular = self.singular
        self.nobs = frame.nobs
        self.ngroups = {blk.factor.name: blk.q if _related(blk) is None else len(_related(blk).levels)
                        for blk in structure.blocks}

    def _new_response(self, y) -> np.ndarray:
        """A new response for the fitted rows (``refit``): a Series whose labels include the fitted
        rows' is taken by label (so a column of the data, or a ``simulate`` column, lines up), any
        other array-like by position; one finite value per fitted row."""
        from ..exceptions import ArgumentError

        if isinstance(y, pd.DataFrame) and y.shape[1] == 1:
            y = y.iloc[:, 0]
        index = self.frame.data.index
        if isinstance(y, pd.Series) and y.index.is_unique and index.isin(y.index).all():
            y = y.reindex(index)
        vals = np.asarray(y, dtype=float)
        if vals.shape != (self.nobs,):
            raise ArgumentError(f"y must give one value per fitted row ({self.nobs}), got shape {vals.shape}; "
                                "pass a Series labelled by the data's index, or an array in the fitted rows' order")
        if not np.all(np.isfinite(vals)):
            raise ArgumentError(f"y has {int(np.sum(~np.isfinite(vals)))} missing or infinite value(s) in the "
                                "fitted rows; refit needs a value for every row the fit used")
        return vals

    # ----- estimates as pandas objects (built on first use: pandas constructors cost more than a small fit) -----

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates (lme4's ``fixef``).

        Returns
        -------
        pandas.Series
            Named "fixef", indexed by the model-matrix column names in their order.
        """
        return pd.Series(self._beta, index=self.x_names, name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates (lme4's ``vcov``).

        Returns
        -------
        pandas.DataFrame
            Rows and columns the fixed-effect names.
        """
        return pd.DataFrame(self._vcov, index=self.x_names, columns=self.x_names)

    @cached_property
    def theta(self) -> pd.Series:
        """lme4's θ (``getME(fit, "theta")``).

        Returns
        -------
        pandas.Series
            Named "theta": the lower-triangle entries of each term's relative covariance factor,
            indexed by lme4's names.
        """
        return pd.Series(self._theta, index=self.structure.theta_names, name="theta")

    # ----- likelihood summaries -----

    @property
    def npar(self) -> int:
        """Number of estimated parameters (the ``df`` of lme4's ``logLik``).

        Returns
        -------
        int
            Fixed effects, θ, σ where the model has one, and a residual structure's parameters.
        """
        psi = getattr(self, "_residual_psi", None)
        return len(self.x_names) + self.structure.n_theta + int(self.has_residual) + (0 if psi is None else len(psi))

    @property
    def aic(self) -> float:
        """Akaike's information criterion, −2 loglik + 2 npar (lme4's ``AIC``).

        Returns
        -------
        float
            A plain Python float; NaN for fits without a likelihood (PQL).
        """
        return float(-2.0 * self.loglik + 2.0 * self.npar)

    @property
    def bic(self) -> float:
        """Schwarz's Bayesian information criterion, −2 loglik + log(nobs) npar (lme4's ``BIC``).

        Returns
        -------
        float
            A plain Python float; NaN for fits without a likelihood (PQL).
        """
        return float(-2.0 * self.loglik + np.log(self.nobs) * self.npar)

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, nobs − npar (lme4's ``df.residual``).

        Returns
        -------
        int
        """
        return int(self.nobs - self.npar)

    # ----- inference -----

    def coef_table(self, ddf=None, exponentiate: bool = False, level: float = 0.95) -> pd.DataFrame:
        """Fixed effects with standard errors, tests and Wald intervals.

        Parameters
        ----------
        ddf : None, "satterthwaite", "kenward-roger" or "z"
            Denominator degrees of freedom: LMMs use Satterthwaite's by default (as
            lmerTest's summary), GLMMs z (infinite df).  ``"kenward-roger"`` (REML LMMs
            only; pbkrtest, lmerTest's ``ddf = "Kenward-Roger"``) also replaces the standard
            errors by those of Kenward and Roger's adjusted covariance Φ_A.
        exponentiate : bool
            exp(β) with the interval exp(β ± q·SE): odds ratios for a logit link, rate
            ratios for a log link (the SE column is then exp(β)·SE, the delta method).
        level : float
            Confidence level of the interval.

        Returns
        -------
        pandas.DataFrame
            Columns estimate, std_error, df, statistic, p_value, ci_lower, ci_upper.
        """
        from ..inference.wald import coef_table

        return coef_table(self, ddf=ddf, exponentiate=exponentiate, level=level)

    def emmeans(self, specs, by=None, type: str = "link", pairwise: bool = False, adjust: str = "tukey", at=None,
                level: float = 0.95, marginal: bool = False, ddf=None) -> pd.DataFrame:
        """Estimated marginal means of factor levels, or their pairwise contrasts (R's emmeans).

        The reference grid holds every factor of the fixed effects at all its levels and every
        numeric covariate at its mean (unless ``at`` says otherwise); a cell's mean averages
        the grid's predictions over the other factors with equal weights (emmeans's default).

        Parameters
        ----------
        specs : str or list of str
            The factor(s) whose level means are wanted (several: their combinations).
        by : str or list of str, optional
            Factors to condition on: means, and contrasts, within each of their levels.
        type : "link" or "response"
            ``"response"``: means back-transformed through the inverse link (delta-method SE,
            back-transformed intervals); contrasts as ratios (log link) or odds ratios (logit
            link), named ``"A / B"``, as emmeans's ``type = "response"``.
        pairwise : bool
            Return every pairwise contrast ``"A - B"`` (emmeans's ``pairs()``) instead of the means.
        adjust : "tukey", "holm", "bonferroni" or "none"
            Multiplicity adjustment of the contrasts' p-values and intervals within each ``by``
            group (Tukey: studentised range; Holm's intervals are Bonferroni's, as emmeans).
        at : dict, optional
            Grid values: ``{"age": 12}`` or ``{"Time": [1, 64]}`` for covariates (a list puts the
            covariate in the grid, so it can be in ``by`` or compared), a subset of a factor's levels.
        level : float
            Confidence level.
        marginal : bool
            GLMMs: population-averaged means, the conditional mean of each grid row averaged over
            the random effects (∫ g⁻¹(x'β + t) φ(t; 0, z'Σz) dt, as ``marginal_coefs``) before the
            cells are averaged on the link scale; SEs by the delta method in (θ, β), z tests.  No R
            package gives these in one call.  For LMMs it equals the conditional result.
        ddf : None, "satterthwaite", "kenward-roger" or "asymptotic"
            LMM degrees of freedom: Satterthwaite by default (as lmerTest); emmeans's own default
            for lmer fits is Kenward-Roger (which also adjusts the SEs; REML fits only).  GLMMs:
            asymptotic (z, df = inf).

        Returns
        -------
        pandas.DataFrame
            The ``specs`` and ``by`` columns (or ``contrast`` and ``by``), then estimate, std_error,
            df, statistic, p_value (tests of 0 on the link scale; of 1 for ratios), ci_lower,
            ci_upper.  ``attrs`` records the scale, the adjustment, the df method and the grid.
        """
        from ..inference.emmeans import emmeans

        return emmeans(self, specs, by=by, type=type, pairwise=pairwise, adjust=adjust, at=at, level=level,
                       marginal=marginal, ddf=ddf)

    def emtrends(self, specs, var: str, by=None, type: str = "link", pairwise: bool = False, adjust: str = "tukey",
                 at=None, level: float = 0.95, ddf=None) -> pd.DataFrame:
        """Slopes of a numeric covariate per level of factors, or their pairwise differences (R's emtrends).

        Parameters
        ----------
        specs : str or list of str
            The factor(s) whose slopes are wanted.
        var : str
            The numeric covariate to differentiate with respect to.
        by, pairwise, adjust, at, level, ddf
            As :meth:`emmeans`.
        type : "link" or "response"
            The slope of the linear predictor, or (GLMMs) of the conditional mean, averaged over
            the grid (emmeans's ``regrid = "response"``).

        Returns
        -------
        pandas.DataFrame
            As :meth:`emmeans`: specs (or contrast) and by columns, estimate, std_error, df,
            statistic, p_value, ci_lower, ci_upper.
        """
        from ..inference.emmeans import emtrends

        return emtrends(self, specs, var, by=by, type=type, pairwise=pairwise, adjust=adjust, at=at, level=level,
                        ddf=ddf)

    def confint(self, method: str = "wald", level: float = 0.95, n_boot: int = 500, seed=None,
                progress: bool = True, n_jobs: int = 1, parm=None) -> pd.DataFrame:
        """Confidence intervals with lme4's parameter names (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, fixed effects).

        Parameters
        ----------
        method : "wald", "profile" or "bootstrap"
            Wald: fixed effects ± z·SE (NaN for the variance parameters, as lme4).
            Profile: likelihood profile of every parameter (lme4's; ML for LMMs).
            Bootstrap: parametric (simulate, refit from the estimates), percentile intervals.
        level : float
            Confidence level.
        n_boot : int
            Bootstrap samples.
        seed : int or numpy Generator
            Makes the bootstrap reproducible.
        progress : bool
            Progress bar on a terminal.
        n_jobs : int
            Bootstrap worker processes (the result does not depend on it).
        parm : str or list of str, optional
            Only these parameters (lme4's ``parm``; names as in the rows, e.g. ``"rho|Rat"``): a
            profile then computes those alone.

        Returns
        -------
        pandas.DataFrame
            Columns lower, upper.
        """
        from ..inference.confint import confint

        return confint(self, method=method, level=level, n_boot=n_boot, seed=seed, progress=progress, n_jobs=n_jobs,
                       parm=parm)

    # ----- broom.mixed's tables and lme4's coef (inference/tidy.py) -----

    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95,
             conf_method: str = "wald", scales: str = "sdcor", ddf=None, **confint_kwargs) -> pd.DataFrame:
        """One row per parameter, as broom.mixed's ``tidy`` (R's dots become underscores).

        Parameters
        ----------
        effects : str or sequence of str
            ``"fixed"`` (the coefficient table), ``"ran_pars"`` (standard deviations
            ``sd__(Intercept)``, correlations ``cor__(Intercept).Days``, the residual's
            ``sd__Observation``), ``"ran_vals"`` (conditional modes per level with their
            conditional standard errors; adds a ``level`` column), ``"ran_coefs"`` (``coef()``).
        conf_int : bool
            Add conf_low and conf_high.
        conf_level : float
            Confidence level of the intervals.
        conf_method : "wald", "profile" or "boot"
            How the intervals of fixed effects and ran_pars are computed (``confint``'s methods;
            ``"bootstrap"`` is an alias of ``"boot"``).  Wald intervals of ran_pars are NaN (as
            broom.mixed); ran_vals get estimate ± z·std_error.
        scales : "sdcor" or "vcov"
            ran_pars as standard deviations and correlations, or variances and covariances
            (``var__``, ``cov__``).
        ddf : None, "satterthwaite", "kenward-roger" or "z"
            Degrees of freedom of the fixed-effect tests (as ``coef_table``).
        **confint_kwargs
            Passed to ``confint`` (``n_boot``, ``seed``, ``progress``, ``n_jobs``).

        Returns
        -------
        pandas.DataFrame
            Columns effect, group, [level,] term, estimate, std_error, statistic, [df (LMMs),]
            p_value, [conf_low, conf_high]; ``group`` is None for fixed effects (R's NA).
        """
        from ..inference.tidy import tidy

        return tidy(self, effects=effects, conf_int=conf_int, conf_level=conf_level, conf_method=conf_method,
                    scales=scales, ddf=ddf, **confint_kwargs)

    def glance(self) -> pd.DataFrame:
        """One-row summary of the fit, as broom.mixed's ``glance``.

        Returns
        -------
        pandas.DataFrame
            Columns nobs, sigma, logLik, AIC, BIC, deviance (REMLcrit in its place for REML fits,
            as broom.mixed), df.residual.  A GLMM's deviance is lme4's ``deviance()``, the sum of
            squared deviance residuals; logLik, AIC and BIC are NaN for PQL (no likelihood).
        """
        from ..inference.tidy import glance

        return glance(self)

    def augment(self, data=None) -> pd.DataFrame:
        """The data with the fit's per-row values added, as broom.mixed's ``augment``.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            The data the model was fitted to (every column kept; rows the fit did not use,
            such as rows with missing values, get NaN).  Default: the used columns of the
            fitted rows.

        Returns
        -------
        pandas.DataFrame
            Index aligned to the data, with ``.fitted`` (the conditional prediction; the
            linear predictor for GLMMs), ``.resid`` (response residuals for LMMs, deviance
            residuals for GLMMs, as lme4's ``residuals``), ``.fixed`` (Xβ); for LMMs ``.hat``
            and ``.cooksd`` (lme4's ``hatvalues`` and ``cooks.distance``), for GLMMs ``.mu`` (the
            conditional mean).
        """
        from ..inference.tidy import augment

        return augment(self, data)

    def coef(self) -> dict:
        """Fixed plus random effects per level of each grouping factor, as lme4's ``coef``.

        Returns
        -------
        dict
            Factor name -> DataFrame (levels × coefficients): every fixed effect, plus the
            level's random effect where the term has one (random-effect columns absent from
            the fixed effects are appended).
        """
        from ..inference.tidy import coef

        return coef(self)

    # ----- variance components -----

    def _term_cov(self, term, theta=None) -> np.ndarray:
        """Covariance of one term's random effects (at the estimates, or at another θ)."""
        T = self._templates[term.block] if theta is None else self.structure.blocks[term.block].template(theta)
        T = T[np.ix_(term.block_cols, term.block_cols)]
        return self.sigma**2 * (T @ T.T)

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components in lme4's ``as.data.frame(VarCorr(fit))`` layout.

        Columns: group, term1, term2, vcov, sdcor.  ``group`` names the grouping
        factor (for ``(x || g)`` both blocks are ``g``; lme4 labels the second
        ``g.1``, as the summary does).  Variance rows have term2 NaN and
        sdcor the standard deviation; correlation rows give the covariance
        and the correlation; the last row is the residual (term1 and term2
        NaN).  Missing names are always NaN (lme4's NA), never None, so
        ``term2.isna()`` selects the variance rows.

        Returns
        -------
        pandas.DataFrame
            Columns group, term1, term2, vcov, sdcor; one row per variance and covariance.
        """
        rows = []
        for t in self.structure.terms:
            C = self._term_cov(t)
            if t.structure.kind == "relmat":  # σ_g² K: one variance (its correlations are K's, known)
                rows.append((t.group, "(Intercept)", np.nan, C[0, 0], float(np.sqrt(C[0, 0]))))
                continue
            from .varcorr_rows import covariance_rows

            rows += covariance_rows(t.group, t.names, C)
        if self.has_residual:
            rows.append(("Residual", np.nan, np.nan, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "vcov", "sdcor"])

    # ----- random effects -----

    def _block_values(self, vec: np.ndarray) -> dict:
        out = {}
        for b in self.structure.blocks:
            related = _related(b)
            if related is not None:  # a relmat term: per level, L b*
                vals = related.level_effects(vec[b.offset : b.offset + b.size])
                out[b.factor.name] = pd.DataFrame(vals[:, None], index=pd.Index(related.levels, name=b.factor.name),
                                                  columns=["(Intercept)"])
                continue
            vals = vec[b.offset : b.offset + b.size].reshape(b.q, b.K)
            out[b.factor.name] = pd.DataFrame(vals, index=pd.Index(b.factor.levels, name=b.factor.name), columns=b.names)
        return out

    @cached_property
    def ranef(self) -> dict:
        """Conditional modes of the random effects (lme4's ``ranef``).

        Returns
        -------
        dict
            Factor name -> DataFrame, levels (index named after the factor) × terms.
        """
        return self._block_values(self._b)

    @cached_property
    def condvar(self) -> dict:
        """Conditional covariances of the random effects (lme4's ``condVar``), labelled.

        Conditional on the data and the estimated parameters (at the mode for GLMMs; the
        working model's for PQL).  lme4 gives an array (K, K, levels) per factor; here each
        factor's K × K matrices are stacked in one DataFrame, so ``cv.loc[level]`` is one level's
        matrix with term labels, and ``cv.to_numpy().reshape(-1, K, K)`` the array per level.
        :meth:`condvar_frame` gives the same numbers in long form.

        Returns
        -------
        dict
            Factor name -> DataFrame with a (level, term) MultiIndex on the rows (the levels and
            terms of ``fit.ranef[factor]``, in its order) and the terms as columns.
        """
        from .prediction import condvar_tables

        return condvar_tables(self, self._condvar)

    def _condvar_at(self, system, factor, scale: float = 1.0) -> dict:
        """Conditional covariances of the random effects from the PLS factor at the estimates,
        times ``scale``: factor name -> array (levels, K, K)."""
        out = {}
        for blk, T, V in zip(self.structure.blocks, self._templates, system.u_condvar(self._templates, factor)):
            C = scale * np.einsum("ab,gbc,dc->gad", T, V, T)
            related = _related(blk)
            out[blk.factor.name] = C if related is None else related.level_condvar(C[0])[:, None, None]
        return out


def _related(block):
    """The block's relationship-matrix structure (``relmat=``), or None."""
    cs = block.terms[0].structure
    return cs if getattr(cs, "kind", "") == "relmat" else None
