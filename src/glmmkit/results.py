"""The fitted model: estimates, tables, random effects, prediction.

A fit is built once from the engine's output and then only read.  Every table is
a pandas object named in lme4's vocabulary (fixef, ranef, varcorr, vcov, loglik).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .exceptions import ArgumentError, DataError
from .validate import population_level as _population_level
from .design import build_design
from .frame import factor_labels, offset_values, term_columns
from .diagnostics import DiagnosticsMixin
from .report import ReportMixin

__all__ = ["MixedModelFit", "LmmFit", "GlmmFit", "PqlFit", "FitInfo"]


@dataclass
class FitInfo:
    """Machine-readable record of how a fit went (``fit.optimizer_info``).

    Attributes
    ----------
    optimizer : str
    n_evals : int
        Objective evaluations.
    converged : bool
    message : str
    on_boundary : list of str
        θ parameters estimated at their bound (zero variance).
    time_s : float
        Wall-clock time of the whole fit.
    gradient_norm, hessian_positive_definite, pirls_failures : optional
        GLMM fits: largest |gradient| of the deviance at the estimates (free
        parameters), whether the Hessian in (θ, β) is positive definite, and how
        many PIRLS runs ended without reaching the mode.
    messages : list of str
        Everything the user should know about the fit (dropped rows, dropped
        columns, singularity) in plain words.
    method : str
        What was maximised: ``"REML"``, ``"ML"``, ``"Laplace"``, ``"AGQ(k)"``, ``"nAGQ=0"``, ``"PQL"``.
    restarts : list of dict
        Every optimiser run after the first, and why: ``{"optimizer", "start", "reason",
        "loglik", "converged", "chosen"}``; empty when the first run ended well.
    rescaled : list of str
        Fixed-effect columns centred/scaled for the optimiser because of their extreme
        magnitude; the estimates are reported on the user's scale.
    singular : bool
        A variance estimated as zero or a correlation as ±1 (also ``fit.singular``).
    """

    optimizer: str
    n_evals: int
    converged: bool
    message: str
    on_boundary: list
    time_s: float = 0.0
    messages: list = field(default_factory=list)
    gradient_norm: float | None = None
    hessian_positive_definite: bool | None = None
    pirls_failures: int | None = None
    method: str = ""
    restarts: list = field(default_factory=list)
    rescaled: list = field(default_factory=list)
    singular: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class MixedModelFit(DiagnosticsMixin, ReportMixin):
    """What every fitted mixed model has: estimates, variance components, random effects.

    Subclasses compute the pieces (θ, β, their covariance, the random effects b,
    the scale σ and the log-likelihood) and hand them to this constructor.
    """

    #: LMMs report a residual row in ``varcorr``; binomial/Poisson GLMMs do not
    has_residual = True
    #: "lmm", "glmm" or "pql": what kind of fit this is (one place to ask instead of guessing from attributes)
    kind = ""

    @property
    def has_likelihood(self) -> bool:
        """False for fits without a likelihood (PQL): no loglik, AIC, BIC, LRT or profile."""
        return self.kind != "pql"

    @property
    def has_family(self) -> bool:
        """True for GLMM fits (a response family other than the LMM's Gaussian)."""
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
        self.ngroups = {blk.factor.name: blk.q for blk in structure.blocks}

    # ----- estimates as pandas objects (built on first use: pandas constructors cost more than a small fit) -----

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effect estimates, model-matrix order."""
        return pd.Series(self._beta, index=self.x_names, name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        return pd.DataFrame(self._vcov, index=self.x_names, columns=self.x_names)

    @cached_property
    def theta(self) -> pd.Series:
        """lme4's θ: lower-triangle entries of each term's relative covariance factor."""
        return pd.Series(self._theta, index=self.structure.theta_names, name="theta")

    # ----- likelihood summaries -----

    @property
    def npar(self) -> int:
        """Number of estimated parameters: fixed effects, θ, and σ where the model has one."""
        return len(self.x_names) + self.structure.n_theta + int(self.has_residual)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    # ----- inference -----

    def coef_table(self, ddf=None, exponentiate: bool = False, level: float = 0.95) -> pd.DataFrame:
        """Fixed effects with standard errors, tests and Wald intervals.

        Parameters
        ----------
        ddf : None, "satterthwaite" or "z"
            Denominator degrees of freedom: LMMs use Satterthwaite's by default (as
            lmerTest's summary), GLMMs z (infinite df).
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
        from .inference.wald import coef_table

        return coef_table(self, ddf=ddf, exponentiate=exponentiate, level=level)

    def simulate(self, nsim: int = 1, seed=None, re_form="~0") -> np.ndarray:
        """Responses simulated from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        nsim : int
        seed : int or numpy Generator, optional
        re_form : "~0" or None, default "~0"
            "~0" (lme4's default ``re.form = NA``): new random effects for each simulation;
            None: condition on the predicted random effects.

        Returns
        -------
        ndarray, shape (nobs, nsim)
            On the response's scale as fitted (proportions of the weights' trials for binomial data).
        """
        from .diagnostics.residuals import simulate_matrix

        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return simulate_matrix(self, int(nsim), rng, conditional=not _population_level(re_form))

    def confint(self, method: str = "wald", level: float = 0.95, n_boot: int = 500, seed=None,
                progress: bool = True, n_jobs: int = 1) -> pd.DataFrame:
        """Confidence intervals with lme4's parameter names (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sigma``, fixed effects).

        Parameters
        ----------
        method : "wald", "profile" or "bootstrap"
            Wald: fixed effects ± z·SE (NaN for the variance parameters, as lme4).
            Profile: likelihood profile of every parameter (lme4's; ML for LMMs).
            Bootstrap: parametric (simulate, refit from the estimates), percentile intervals.
        level : float
        n_boot : int
            Bootstrap samples.
        seed : int or numpy Generator
            Makes the bootstrap reproducible.
        progress : bool
            Progress bar on a terminal.
        n_jobs : int
            Bootstrap worker processes (the result does not depend on it).

        Returns
        -------
        pandas.DataFrame
            Columns lower, upper.
        """
        from .inference.confint import confint

        return confint(self, method=method, level=level, n_boot=n_boot, seed=seed, progress=progress, n_jobs=n_jobs)

    def marginal_coefs(self) -> pd.DataFrame:
        """Population-averaged (marginal) coefficients: the conditional mean averaged over the
        random effects for every row, then regressed on X on the link scale (Hedeker et al. 2018,
        GLMMadaptive's marginal_coefs), with delta-method standard errors; crossed and nested
        designs too.  Columns estimate, std_error, statistic, p_value, conditional, attenuation."""
        from .inference.marginal import marginal_coefs

        return marginal_coefs(self)

    def marginal_moments(self, newdata) -> dict:
        """Marginal mean and variance of y at each row of ``newdata``, and the covariance and
        correlation the random effects induce between those rows within one cluster (for a Poisson
        random intercept, Cov = μ_s μ_t (exp(σ²) − 1))."""
        from .inference.marginal import marginal_moments

        return marginal_moments(self, newdata)

    def ranef_posterior(self, nagq: int = 15) -> dict:
        """Posterior means and SDs of the random effects (empirical Bayes), factor -> DataFrame.

        LMMs: exact (the posterior is Gaussian: the mode and the conditional variance).
        GLMMs with one grouping factor: adaptive Gauss-Hermite quadrature with ``nagq`` nodes per
        dimension; with several factors the Laplace approximation (``df.attrs["method"]`` says which).
        ``fit.ranef`` stays the conditional mode.
        """
        from .inference.empirical_bayes import ranef_posterior

        return ranef_posterior(self, nagq=nagq)

    def shrinkage(self) -> dict:
        """Per level: cluster size, no-pooling estimate, partial-pooling prediction and shrinkage factor."""
        from .inference.empirical_bayes import shrinkage

        return shrinkage(self)

    def hatvalues(self) -> np.ndarray:
        """Diagonal of the hat matrix of the fitted values (lme4's ``hatvalues``): for a GLMM, of
        the PIRLS weighted least-squares problem at convergence (working weights)."""
        from .inference.hat import hat_diagonal

        if getattr(self, "_hat", None) is None:
            X = self.frame.X[:, self._x_kept]
            self._hat = hat_diagonal(self.structure, X, self._hat_weights(), self._theta)
        return self._hat

    def _hat_weights(self):
        return self.frame.weights

    @property
    def edf(self) -> float:
        """Effective degrees of freedom: the trace of the hat matrix (between p and p + q)."""
        return float(np.sum(self.hatvalues()))

    def icc(self) -> dict:
        """Intraclass correlation (Nakagawa et al. 2017, as performance::icc).

        Returns
        -------
        dict
            ``"adjusted"`` (random over random + distribution variance), ``"conditional"``
            (also over the fixed effects' variance), ``"by_group"`` (each factor's intercept
            variance over the same denominator as "adjusted") and the ``"variances"`` used.
            Latent-scale distribution variance: π²/3 (logit), 1 (probit), π²/6 (cloglog);
            log-normal approximation for Poisson and NB2 (from the null model's mean).
        """
        from .inference.icc import icc

        return icc(self)

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
        ``g.1``, as the summary does).  Variance rows have an empty
        term2 and sdcor the standard deviation; correlation rows give the
        covariance and the correlation; the last row is the residual.
        """
        rows = []
        for t in self.structure.terms:
            C = self._term_cov(t)
            sd = np.sqrt(np.diag(C))
            for i, name in enumerate(t.names):
                rows.append((t.group, name, None, C[i, i], sd[i]))
            for c in range(t.k):
                for r in range(c + 1, t.k):
                    denom = sd[r] * sd[c]
                    corr = C[r, c] / denom if denom > 0 else np.nan
                    rows.append((t.group, t.names[c], t.names[r], C[r, c], corr))
        if self.has_residual:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "vcov", "sdcor"])

    # ----- random effects -----

    def _block_values(self, vec: np.ndarray) -> dict:
        out = {}
        for b in self.structure.blocks:
            vals = vec[b.offset : b.offset + b.size].reshape(b.q, b.K)
            out[b.factor.name] = pd.DataFrame(vals, index=pd.Index(b.factor.levels, name=b.factor.name), columns=b.names)
        return out

    @cached_property
    def ranef(self) -> dict:
        """Conditional modes of the random effects: factor name -> DataFrame (levels x terms)."""
        return self._block_values(self._b)

    # ----- fitted values, residuals, prediction -----

    @cached_property
    def _z(self):
        return self.structure.z_matrix()

    def _eta(self) -> np.ndarray:
        """Conditional linear predictor Xβ + Zb + offset of the fitted rows."""
        return self.frame.X[:, self._x_kept] @ self._beta + self._z @ self._b + self.frame.offset

    def predict(self, newdata=None, re_form=None, allow_new_levels=False) -> np.ndarray:
        """Predictions of the linear predictor (the response for an LMM).

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; the fitted rows when omitted.
        re_form : None or "~0"
            None: conditional on the predicted random effects; ``"~0"`` (or ``"NA"``):
            the population level, fixed effects only.
        allow_new_levels : bool
            Levels not seen in the fit get random effects of zero instead of an error.

        Returns
        -------
        ndarray
            NaN where a needed value of ``newdata`` is missing.
        """
        population = _population_level(re_form)
        if newdata is None:
            if population:
                return self.frame.X[:, self._x_kept] @ self._beta + self.frame.offset
            return self._eta()
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        nd = newdata.reset_index(drop=True)
        spec = self.frame.fixed_spec
        try:
            X = np.asarray(build_design(self.frame.parsed.fixed_rhs, nd, spec)[0], dtype=float)
        except Exception as exc:
            raise DataError(f"cannot build the fixed-effects design for newdata: {exc}") from None
        X = X.reshape(len(nd), -1)[:, self._x_kept]
        eta = X @ self._beta
        eta = eta + self._new_offset(nd)
        if population:
            return eta
        for t in self.structure.terms:
            cols = term_columns(t.source, nd)[:, t.source_cols]
            block = self.structure.blocks[t.block]
            labels = factor_labels(nd, t.source.spec.factors)
            idx = pd.Index(block.factor.levels).get_indexer(labels).astype(np.int64)
            missing_rows = pd.isna(nd[list(t.source.spec.factors)]).any(axis=1).to_numpy()
            new = (idx < 0) & ~missing_rows
            if new.any() and not allow_new_levels:
                examples = sorted(set(labels[new]))[:3]
                raise DataError(
                    f"newdata has {int(new.sum())} row(s) with level(s) of {block.factor.name!r} not in the fit "
                    f"(e.g. {examples}); pass allow_new_levels=True to predict them at the population level"
                )
            bvals = self._b[block.offset : block.offset + block.size].reshape(block.q, block.K)[:, t.block_cols]
            contrib = np.einsum("ik,ik->i", cols, bvals[np.maximum(idx, 0)])
            contrib[idx < 0] = 0.0
            contrib[missing_rows] = np.nan
            eta = eta + contrib
        return eta

    def _new_offset(self, nd: pd.DataFrame) -> np.ndarray:
        off = np.zeros(len(nd))
        for expr in self.frame.parsed.offsets:
            off += offset_values(expr, nd)
        return off

class LmmFit(MixedModelFit):
    """A fitted linear mixed model (returned by :func:`glmmkit.lmer`).

    Attributes
    ----------
    formula : str
    method : {"REML", "ML"}
    fixef : Series
        Fixed-effect estimates in model-matrix order.
    vcov : DataFrame
        Their covariance matrix.
    theta : Series
        lme4's θ (relative covariance factor entries, ``getME(fit, "theta")``).
    sigma : float
        Residual standard deviation.
    loglik : float
        Log-likelihood at the estimates (the REML log-likelihood for REML fits, as lme4).
    nobs : int
    ngroups : dict
        Number of levels of each grouping factor.
    converged, singular : bool
    optimizer_info : FitInfo
    """

    kind = "lmm"

    def __init__(self, *, frame, structure, objective, theta, info, x_kept, dropped_columns, data_name=None,
                 problem=None):
        self._problem = problem  # None for the working fits inside PQL, which are never refitted
        self._objective = objective
        self.reml = objective.reml
        self.method = "REML" if objective.reml else "ML"
        theta = np.asarray(theta, dtype=float)
        templates = structure.templates(theta)
        system = objective.system
        fac = objective.factor(theta)
        self._factor = fac
        u_lead, u_rest, beta = system.solve(templates, fac)
        sigma = float(np.sqrt(objective.sigma2(fac)))
        b = np.concatenate([(u_lead @ templates[0].T).ravel(), system.rest_b(templates, u_rest)])
        mz, p = system.mz, system.p
        if p:
            Rinv = np.linalg.solve(np.tril(fac.L[mz : mz + p, mz : mz + p]), np.eye(p))
            cov = sigma**2 * (Rinv.T @ Rinv)
        else:
            cov = np.empty((0, 0))
        super().__init__(frame=frame, structure=structure, theta=theta, beta=beta, vcov=cov, b=b, sigma=sigma,
                         loglik=-0.5 * objective.deviance_from(fac), info=info, x_kept=x_kept,
                         dropped_columns=dropped_columns, data_name=data_name)

    def refit(self, y=None, *, reml=None):
        """The same model fitted again, to a new response or by the other criterion (lme4's ``refit``).

        Parameters
        ----------
        y : array-like, optional
            A new response for the fitted rows (offset included, as the data's response column).
        reml : bool, optional
            REML or ML; the fit's own criterion when omitted.

        Returns
        -------
        LmmFit
            A new fit started from this fit's θ; this one is not changed.
        """
        problem = self._problem if y is None else self._problem.with_response(y)
        if reml is not None:
            problem = dataclasses.replace(problem, reml=bool(reml))
        return problem.fit(start=self._theta)

    @property
    def reml_criterion(self) -> float | None:
        """−2 × REML log-likelihood for REML fits (lme4's ``REMLcrit``), else None."""
        return -2.0 * self.loglik if self.reml else None

    @cached_property
    def deviance(self) -> float:
        """−2 × the ML log-likelihood at the estimates (lme4's ``deviance(fit, REML = FALSE)``)."""
        if not self.reml:
            return -2.0 * self.loglik
        obj = self._objective
        saved = obj.reml
        obj.reml = False
        try:
            return obj.deviance_from(self._factor)
        finally:
            obj.reml = saved

    @cached_property
    def condvar(self) -> dict:
        """Conditional covariances of the random effects: factor name -> array (levels, K, K).

        Conditional on the data and on the estimated parameters (lme4's ``condVar``).
        """
        out = {}
        blocks = self.structure.blocks
        for b, T, V in zip(blocks, self._templates, self._objective.system.u_condvar(self._templates, self._factor)):
            out[b.factor.name] = self.sigma**2 * np.einsum("ab,gbc,dc->gad", T, V, T)
        return out

    def fitted(self) -> np.ndarray:
        """Conditional fitted values Xβ + Zb + offset, one per row used in the fit."""
        return self._eta()

    def residuals(self, kind: str = "response") -> np.ndarray:
        """Residuals: ``"response"`` (y − fitted), ``"pearson"`` (× √weights, lme4's), or ``"scaled"`` (pearson / σ)."""
        r = self.frame.y - self.fitted()
        if kind == "response":
            return r
        if self.frame.weights is not None:
            r = r * np.sqrt(self.frame.weights)
        if kind == "pearson":
            return r
        if kind == "scaled":
            return r / self.sigma
        raise ArgumentError(f"residuals kind must be 'response', 'pearson' or 'scaled', got {kind!r}")

    # ----- display -----

    def summary(self):
        """lme4-style summary (prints as text, renders as HTML in notebooks)."""
        from .summary import LmmSummary

        return LmmSummary(self)

    def __repr__(self) -> str:
        return str(self.summary())




class GlmmFit(MixedModelFit):
    """A fitted generalized linear mixed model (returned by :func:`glmmkit.glmer`).

    Adds to the LMM results: ``family``, ``link``, ``method`` (``"Laplace"``,
    ``"AGQ(k)"``, ``"nAGQ=0"``), ``nagq``; ``fitted()`` and ``predict(type=
    "response")`` are on the response scale.  ``loglik`` is the full
    log-likelihood (binomial coefficients included) for every method.
    """

    has_residual = False
    kind = "glmm"
    #: binomial fits: the separation check's ``SeparationResult`` (None for other families)
    separation = None

    def __init__(self, *, problem, state, theta, beta, vcov, loglik, info, family, family_psi=None,
                 family_psi_cov=None, param_cov=None, objective=None):
        self._problem = problem
        self._objective = objective if objective is not None else problem.objective()
        self._state = state
        #: the family bound to the estimated parameters: this fit's own object, never changed
        self.family = family
        names = tuple(getattr(family, "free_names", ()))
        self._psi = np.zeros(0) if family_psi is None else np.asarray(family_psi, dtype=float)
        self._psi_cov = np.zeros((0, 0)) if family_psi_cov is None else np.asarray(family_psi_cov, dtype=float)
        self._psi_names = names[: self._psi.shape[0]]
        #: covariance of (θ, β) from the Hessian of the deviance (None where no Hessian was formed)
        self._param_cov = param_cov
        self.link = family.link.name
        self.nagq = int(problem.nagq)
        self.method = {0: "nAGQ=0", 1: "Laplace"}.get(self.nagq, f"AGQ({self.nagq})")
        structure = problem.structure
        templates = structure.templates(np.asarray(theta, dtype=float))
        b = structure.b_of(templates, state.u)
        super().__init__(frame=problem.frame, structure=structure, theta=theta, beta=beta, vcov=vcov, b=b,
                         sigma=1.0, loglik=loglik, info=info, x_kept=problem.kept,
                         dropped_columns=problem.dropped, data_name=problem.data_name)

    def refit(self, y=None, *, nagq=None):
        """The same model fitted again, to a new response or by another method (lme4's ``refit``).

        Parameters
        ----------
        y : array-like, optional
            A new response for the fitted rows (the engine's scale: proportions for binomial data
            with trials as weights).  The fit's own response when omitted.
        nagq : int, optional
            Another number of quadrature nodes (0, 1 or k > 1).

        Returns
        -------
        GlmmFit
            A new fit; this one is not changed.
        """
        problem = self._problem if y is None else self._problem.with_response(y)
        if nagq is not None:
            problem = dataclasses.replace(problem, nagq=int(nagq))
        return problem.fit()

    @property
    def deviance(self) -> float:
        """−2 × log-likelihood (the ``deviance`` column of lme4's glmer summary)."""
        return -2.0 * self.loglik

    @property
    def npar(self) -> int:
        """Fixed effects, θ and the family's estimated parameters."""
        return super().npar + len(self._psi_names)

    @property
    def family_params(self) -> dict:
        """The family's own parameters by name (estimated and fixed): ``{"theta": ...}`` for NB2,
        ``{"phi": ...}`` for NB1 and beta, ``{"shape": ...}`` for Gamma, ``{"df": ..., "sigma": ...}``
        for the Student-t, ``{"dispersion": ...}`` for the inverse Gaussian; empty for binomial/Poisson.
        A copy of what the fit's own family object is bound to: it never changes."""
        return dict(getattr(self.family, "values", {}))

    def family_params_table(self, level: float = 0.95) -> pd.DataFrame:
        """Estimated family parameters with standard errors and Wald intervals on the log scale
        (where the estimates are close to normal), the intervals mapped back to the parameter's scale."""
        from scipy.stats import norm

        z = norm.ppf(0.5 + level / 2.0)
        se = np.sqrt(np.maximum(np.diag(self._psi_cov), 0.0)) if self._psi.shape[0] else np.zeros(0)
        lo, hi = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
        return pd.DataFrame({"estimate": np.exp(self._psi), "log_estimate": self._psi, "log_se": se,
                             lo: np.exp(self._psi - z * se), hi: np.exp(self._psi + z * se)},
                            index=pd.Index(self._psi_names, name="parameter"))

    def _simulate_response(self, eta, rng):
        return self.family.simulate(self.family.link.inverse(eta), self._problem.wt, rng)

    def _hat_weights(self):
        # Fisher's working weights: positive for every family (the observed information of a Student-t
        # or Gaussian-log fit can be negative in some rows, which has no hat-matrix reading)
        return self.family.working(self._state.eta, self.frame.y, self._problem.wt)[1]

    def dispersion_check(self) -> dict | None:
        """Pearson χ² / residual df with its upper-tail p-value, for Poisson and binomial fits with
        more than one trial per row (None otherwise): a ratio well above 1 signals overdispersion
        (remedies: ``olre=True``, ``family="negative_binomial"``, beta-binomial)."""
        from scipy.stats import chi2

        if self.family.name not in ("poisson", "binomial") or self.kind == "pql":
            return None
        if self.family.name == "binomial" and np.all(self._problem.wt <= 1.0):
            return None  # Bernoulli rows carry no information about dispersion
        stat = float(np.sum(self.residuals("pearson") ** 2))
        df = self.df_resid
        return {"pearson_chisq": stat, "df": df, "ratio": stat / df if df > 0 else np.nan,
                "p_value": float(chi2.sf(stat, df)) if df > 0 else np.nan}

    @cached_property
    def condvar(self) -> dict:
        """Conditional covariances of the random effects at the mode (lme4's condVar): factor -> (levels, K, K)."""
        state = self._state
        out = {}
        for blk, T, V in zip(self.structure.blocks, self._templates,
                             state.system.u_condvar(self._templates, state.factor)):
            out[blk.factor.name] = np.einsum("ab,gbc,dc->gad", T, V, T)
        return out

    def fitted(self) -> np.ndarray:
        """Conditional means μ = g⁻¹(Xβ + Zb + offset) of the fitted rows (probabilities for the binomial)."""
        return self.family.link.inverse(self._eta())

    def predict(self, newdata=None, re_form=None, allow_new_levels=False, type="link", marginal=False) -> np.ndarray:
        """Predictions: ``type="link"`` (η) or ``"response"`` (μ); see :meth:`MixedModelFit.predict`.

        ``marginal=True``: the population-averaged mean E[y] (the conditional mean averaged over
        the random effects), on the response scale, or its link for ``type="link"``.
        """
        if marginal:
            from .inference.marginal import marginal_means

            mu = marginal_means(self, newdata)
            return mu if type == "response" else self.family.link.link(mu)
        eta = super().predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        if type == "link":
            return eta
        if type == "response":
            return self.family.link.inverse(eta)
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")

    def residuals(self, kind: str = "deviance") -> np.ndarray:
        """Residuals: ``"deviance"`` (lme4's default), ``"pearson"``, ``"response"`` (y − μ), ``"working"``."""
        y, wt, mu = self.frame.y, self._problem.wt, self.fitted()
        if kind == "response":
            return y - mu
        if kind == "pearson":
            return (y - mu) * np.sqrt(wt) / np.sqrt(self.family.variance(mu))
        if kind == "deviance":
            d = np.maximum(self.family.deviance_residuals(y, mu, wt), 0.0)
            return np.sign(y - mu) * np.sqrt(d)
        if kind == "working":
            return (y - mu) / self.family.link.mu_eta(self._eta())
        raise ArgumentError(f"residuals kind must be 'deviance', 'pearson', 'response' or 'working', got {kind!r}")

    def summary(self):
        """lme4-style summary of the GLMM."""
        from .summary import GlmmSummary

        return GlmmSummary(self)

    def __repr__(self) -> str:
        return str(self.summary())



class PqlFit(GlmmFit):
    """A GLMM fitted by penalised quasi-likelihood (``glmer(..., method="pql")``).

    The estimates are those of the final weighted linear mixed model on the working
    response: random-effect variances on the linear-predictor scale, ``sigma`` the
    estimated dispersion (1 when the family's variance holds exactly).  There is no
    likelihood: ``loglik``, ``aic``, ``bic`` and ``deviance`` are NaN, and what needs one
    (profile intervals, likelihood-ratio tests) raises ``NotAvailableError`` saying so.
    """

    has_residual = True
    kind = "pql"

    def __init__(self, *, problem, lmm_fit, info):
        self._problem = problem
        self._objective = problem.objective()
        self._lmm = lmm_fit
        self._state = None
        self.family = problem.family
        self.link = problem.family.link.name
        self.nagq = 0
        self.method = "PQL"
        self._psi, self._psi_cov, self._psi_names = np.zeros(0), np.zeros((0, 0)), ()
        self._param_cov = None
        MixedModelFit.__init__(self, frame=problem.frame, structure=problem.structure, theta=lmm_fit._theta,
                               beta=lmm_fit._beta, vcov=lmm_fit._vcov, b=lmm_fit._b, sigma=lmm_fit.sigma,
                               loglik=np.nan, info=info, x_kept=problem.kept, dropped_columns=problem.dropped,
                               data_name=problem.data_name)

    def refit(self, y=None, **kwargs):
        """The PQL fit again with a new response (see :meth:`GlmmFit.refit`)."""
        if kwargs:
            raise ArgumentError(f"a PQL fit can only be refitted to a new response, not with {sorted(kwargs)}")
        problem = self._problem if y is None else self._problem.with_response(y)
        return problem.fit(pql=True)

    @property
    def dispersion(self) -> float:
        """Estimated dispersion σ² of the working model."""
        return self.sigma**2

    @property
    def deviance(self) -> float:
        return np.nan

    @cached_property
    def condvar(self) -> dict:
        return self._lmm.condvar

    def _hat_weights(self):
        # the working weights at the final linear predictor: the hat matrix of the linearised fit
        return self.family.working(self._eta(), self.frame.y, self._problem.wt)[1]
