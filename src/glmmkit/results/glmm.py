"""``GlmmFit`` (Laplace, AGQ, nAGQ=0) and ``PqlFit``: fitted generalized linear mixed models,
with their family, response-scale fitted values and predictions, and GLM residuals."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError
from .base import MixedModelFit

__all__ = ["GlmmFit", "PqlFit"]


class GlmmFit(MixedModelFit):
    """A fitted generalized linear mixed model (returned by :func:`glmmkit.glmer`).

    Adds to the LMM results: ``family``, ``link``, ``method`` (``"Laplace"``,
    ``"AGQ(k)"``, ``"nAGQ=0"``), ``nagq``; ``fitted()`` and ``predict(type=
    "response")`` are on the response scale.  ``loglik`` is the full
    log-likelihood (binomial coefficients included) for every method.

    Built by the fitting code (``fitting.glmm.package``), keywords only.

    Parameters
    ----------
    problem : GlmmProblem
        The fitted problem (frame, structure, kept columns, prior weights, sub-models); ``refit``
        reuses it.
    state : PirlsState
        The conditional mode at the estimates (u, η, μ and the working weights).
    theta : array-like, shape (n_theta,)
        The estimated covariance parameters.
    beta : array-like, shape (p,)
        The fixed-effect estimates, on the user's scale.
    vcov : array-like, shape (p, p)
        Their covariance matrix.
    loglik : float
        Log-likelihood at the estimates (Laplace or AGQ approximation).
    info : FitInfo
        How the fit went.
    family : Family
        The family bound to the estimated family parameters (the fit's own object).
    family_psi : array-like, optional
        The estimated free family parameters on the optimiser's (log) scale; none by default.
    family_psi_cov : array-like, optional
        Their covariance matrix.
    param_cov : ndarray, optional
        Covariance of (θ, β) from the Hessian of the deviance; None where no Hessian was formed.
    objective : objective, optional
        The objective the estimates optimise; ``problem.objective()`` by default.
    estimates : array-like, optional
        Every estimated parameter in the objective's layout order (θ, β, ψ, β_zi, β_disp).
    estimates_cov : array-like, optional
        Their covariance from the Hessian; None where none was formed.
    """

    has_residual = False
    kind = "glmm"
    #: binomial fits: the separation check's ``SeparationResult`` (None for other families)
    separation = None

    def __init__(self, *, problem, state, theta, beta, vcov, loglik, info, family, family_psi=None,
                 family_psi_cov=None, param_cov=None, objective=None, estimates=None, estimates_cov=None):
        self._problem = problem
        self._objective = objective if objective is not None else problem.objective()
        self._state = state
        #: the family bound to the estimated parameters: this fit's own object, never changed
        self.family = family
        modelled = {sub.param for sub in getattr(problem, "submodels", ())}
        names = tuple(k for k in getattr(family, "free_names", ()) if k not in modelled)
        self._psi = np.zeros(0) if family_psi is None else np.asarray(family_psi, dtype=float)
        self._psi_cov = np.zeros((0, 0)) if family_psi_cov is None else np.asarray(family_psi_cov, dtype=float)
        self._psi_names = names[: self._psi.shape[0]]
        #: every estimated parameter in the objective's layout order (θ, β, ψ, β_zi, β_disp) and their
        #: covariance from the Hessian (None where none was formed)
        self._x = None if estimates is None else np.asarray(estimates, dtype=float).copy()
        self._x_cov = None if estimates_cov is None else np.asarray(estimates_cov, dtype=float)
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
        y : pandas Series or array-like, optional
            A new response for the fitted rows (the engine's scale: proportions for binomial data
            with trials as weights): a Series labelled by the data's index (a ``simulate`` column)
            is taken by label, an array in the fitted rows' order.  The fit's own response when omitted.
        nagq : int, optional
            Another number of quadrature nodes (0, 1 or k > 1).

        Returns
        -------
        GlmmFit
            A new fit; this one is not changed.
        """
        problem = self._problem if y is None else self._problem.with_response(self._new_response(y))
        if nagq is not None:
            problem = dataclasses.replace(problem, nagq=int(nagq))
        return problem.fit()

    @property
    def deviance(self) -> float:
        """The deviance of the glmer summary.

        Returns
        -------
        float
            −2 × the log-likelihood (the ``deviance`` column of lme4's glmer summary; ``glance``
            reports lme4's ``deviance()``, the sum of squared deviance residuals).
        """
        return -2.0 * self.loglik

    @property
    def npar(self) -> int:
        """Number of estimated parameters.

        Returns
        -------
        int
            Fixed effects, θ, the family's estimated parameters and the sub-models' coefficients (and
            their random effects' θ).
        """
        subs = sum(len(s.names) + (s.structure.n_theta if s.structure is not None else 0)
                   for s in getattr(self._problem, "submodels", ()))
        return super().npar + len(self._psi_names) + subs

    @property
    def fixef_zi(self) -> pd.Series:
        """Coefficients of the zero-inflation (or hurdle zero) model (glmmTMB's ``fixef(fit)$zi``).

        Returns
        -------
        pandas.Series
            Named "fixef_zi", on the logit scale of π; empty without a ``ziformula``.
        """
        from .submodels import part_estimates

        return part_estimates(self, "zi")[0]

    @property
    def fixef_disp(self) -> pd.Series:
        """Coefficients of the dispersion model (glmmTMB's ``fixef(fit)$disp``).

        Returns
        -------
        pandas.Series
            Named "fixef_disp", on glmmTMB's log-dispersion scale; empty without a ``dispformula``.
        """
        from .submodels import part_estimates

        return part_estimates(self, "disp")[0]

    def vcov_part(self, part: str = "cond") -> pd.DataFrame:
        """Covariance of one part's coefficients (glmmTMB's ``vcov(fit)[[part]]``).

        Parameters
        ----------
        part : {"cond", "zi", "disp"}
            The conditional model, the zero-inflation model or the dispersion model.

        Returns
        -------
        pandas.DataFrame
            Rows and columns the part's coefficient names (from the joint Hessian; NaN where none
            was formed; empty when the model has no such part).
        """
        from .submodels import part_estimates

        return part_estimates(self, part)[1]

    def coef_table_part(self, part: str = "zi", level: float = 0.95) -> pd.DataFrame:
        """Wald table of one part's coefficients (glmmTMB's summary blocks; z tests).

        Parameters
        ----------
        part : {"cond", "zi", "disp"}
            The conditional model (``coef_table``), the zero-inflation or the dispersion model.
        level : float
            Confidence level of the intervals.

        Returns
        -------
        pandas.DataFrame
            Columns estimate, std_error, statistic, p_value, ci_lower, ci_upper; one row per coefficient.
        """
        from .submodels import part_table

        return part_table(self, part, level)

    @property
    def family_params(self) -> dict:
        """The family's own parameters by name, estimated and fixed.

        Returns
        -------
        dict
            ``{"theta": ...}`` for NB2, ``{"phi": ...}`` for NB1 and beta, ``{"shape": ...}`` for
            Gamma, ``{"df": ..., "sigma": ...}`` for the Student-t, ``{"dispersion": ...}`` for the
            inverse Gaussian; empty for binomial/Poisson and for parameters a sub-model models.  A
            copy of what the fit's own family object is bound to: it never changes.
        """
        modelled = {sub.param for sub in getattr(self._problem, "submodels", ())}
        return {k: v for k, v in getattr(self.family, "values", {}).items() if k not in modelled}

    def family_params_table(self, level: float = 0.95) -> pd.DataFrame:
        """Estimated family parameters with standard errors and Wald intervals.

        Parameters
        ----------
        level : float
            Confidence level of the intervals.

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter: estimate, log_estimate, log_se and the interval bounds (columns
            named as R's, e.g. "2.5 %" and "97.5 %"), formed on the log scale (where the estimates
            are close to normal) and mapped back to the parameter's scale.
        """
        from ..inference.wald import family_params_table

        return family_params_table(self, level=level)

    def _simulate_response(self, eta, rng):
        return self.family.simulate(self.family.link.inverse(eta), self._problem.wt, rng)

    def _hat_weights(self):
        # Fisher's working weights: positive for every family (the observed information of a Student-t
        # or Gaussian-log fit can be negative in some rows, which has no hat-matrix reading)
        return self.family.working(self._state.eta, self.frame.y, self._problem.wt)[1]

    def dispersion_check(self) -> dict | None:
        """Overdispersion check: Pearson χ² over the residual df.

        Returns
        -------
        dict or None
            ``pearson_chisq``, ``df``, ``ratio`` and the upper-tail ``p_value``, for Poisson and
            binomial fits with more than one trial per row (None otherwise, and for PQL): a ratio
            well above 1 signals overdispersion (remedies: ``olre=True``,
            ``family="negative_binomial"``, beta-binomial).
        """
        from ..diagnostics.residuals import dispersion_check

        return dispersion_check(self)

    @cached_property
    def _condvar(self) -> dict:
        """Factor name -> ndarray (levels, K, K) at the mode: the engine's form of :attr:`condvar`."""
        return self._condvar_at(self._state.system, self._state.factor)

    def _fitted_array(self) -> np.ndarray:
        return self.family.response_mean(self.family.link.inverse(self._eta()))

    def fitted(self) -> pd.Series:
        """Fitted means E[y | b] of the fitted rows (lme4's ``fitted``).

        Probabilities for the binomial; for a zero-inflated or hurdle model the mixture's mean
        (glmmTMB's ``fitted``).

        Returns
        -------
        pandas.Series
            Named "fitted", indexed by the data's labels of the rows used in the fit (rows
            dropped for missing values absent, as R's ``na.omit``).
        """
        return self._row_series(self._fitted_array(), name="fitted")

    def _family_at(self, newdata, re_form=None, allow_new_levels=False):
        """The fit's family bound to the parameters of ``newdata``'s rows (sub-models evaluated there,
        their random effects kept unless ``re_form`` is population-level)."""
        subs = getattr(self._problem, "submodels", ())
        if not subs or (newdata is None and (re_form is None or all(s.structure is None for s in subs))):
            return self.family
        from ..objective.predictor import PSI_BOUND
        from .submodels import part_eta

        psi = {sub.param: np.clip(part_eta(self, sub.part, newdata, re_form, allow_new_levels) / sub.scale,
                                  -PSI_BOUND, PSI_BOUND) for sub in subs}
        return self.family.with_psi(psi)

    def ranef_part(self, part: str = "zi") -> dict:
        """Conditional modes of a sub-model's random effects (glmmTMB's ``ranef(fit)$zi``).

        Parameters
        ----------
        part : {"cond", "zi"}
            "cond" is ``ranef``.

        Returns
        -------
        dict
            Grouping factor -> DataFrame (levels x terms).
        """
        if part == "cond":
            return self.ranef
        from .submodels import part_ranef

        return part_ranef(self, part)

    def varcorr_part(self, part: str = "zi") -> pd.DataFrame:
        """Variance components of one part's random effects (glmmTMB's ``VarCorr(fit)$zi``; the zero
        part's on the logit scale).

        Parameters
        ----------
        part : {"cond", "zi"}
            "cond" is ``varcorr``.

        Returns
        -------
        DataFrame
            Columns group, term1, term2, vcov, sdcor.
        """
        if part == "cond":
            return self.varcorr
        from .submodels import part_varcorr

        return part_varcorr(self, part)

    def predict(self, newdata=None, re_form=None, allow_new_levels=False, type="link", marginal=False, *,
                se_fit=False, theta_uncertainty=False):
        """Predictions on the link or response scale, of the zero part or of the dispersion.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; the fitted rows when omitted.
        re_form : None, "~0" or a formula of random terms
            As :meth:`MixedModelFit.predict`: conditional on every predicted random effect (None),
            the population level (``"~0"``) or only the named terms.
        allow_new_levels : bool
            Levels not seen in the fit get random effects of zero instead of an error.
        type : {"link", "response", "conditional", "zprob", "zlink", "disp"}
            ``"link"``: η of the conditional mean; ``"response"``: E[y] (for a zero-inflated or hurdle
            model the mixture's mean, glmmTMB's ``type = "response"``); ``"conditional"``: the mean of
            the count (or positive) part g⁻¹(η); ``"zprob"``: the zero probability π and ``"zlink"`` its
            logit; ``"disp"``: the dispersion on glmmTMB's scale (θ for NB2, φ, σ).
        marginal : bool
            The population-averaged mean E[y] (the conditional mean averaged over the random effects),
            on the response scale, or its link for ``type="link"``.
        se_fit : bool
            A DataFrame with columns fit and se_fit (delta method; response-scale SEs by dμ/dη).
        theta_uncertainty : bool
            With ``se_fit``: add θ's uncertainty, as glmmTMB does.

        Returns
        -------
        pandas.Series named "predicted", or DataFrame with columns fit and se_fit when ``se_fit``
            Indexed as ``newdata``, or, without it, by the data's labels of the fitted rows (rows
            dropped for missing values absent).
        """
        if se_fit and marginal:
            from ..exceptions import NotAvailableError

            raise NotAvailableError("se_fit is not available with marginal=True (use marginal_moments)")
        if se_fit and (getattr(self._problem, "submodels", ()) or "zi" in getattr(self.family, "param_names", ())):
            from ..inference.prediction_se import submodel_predict_se

            return submodel_predict_se(self, newdata, re_form=re_form, type=type, theta_uncertainty=theta_uncertainty,
                                       allow_new_levels=allow_new_levels)
        if se_fit:
            return self._predict_se(newdata, re_form=re_form, type=type, theta_uncertainty=theta_uncertainty,
                                    allow_new_levels=allow_new_levels)
        values = self._predict_array(newdata, re_form=re_form, allow_new_levels=allow_new_levels, type=type,
                                     marginal=marginal)
        return self._row_series(values, newdata, "predicted")

    def _predict_array(self, newdata=None, re_form=None, allow_new_levels=False, type="link",
                       marginal=False) -> np.ndarray:
        """:meth:`predict` without ``se_fit``, as an ndarray in row order (the engine's form)."""
        if newdata is not None and not isinstance(newdata, pd.DataFrame):
            from ..exceptions import DataError

            raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
        if marginal:
            from ..inference.marginal import marginal_means

            mu = marginal_means(self, newdata)
            return mu if type == "response" else self.family.link.link(mu)
        kinds = ("link", "response", "conditional", "zprob", "zlink", "disp")
        if type not in kinds:
            raise ArgumentError(f"type must be one of {', '.join(map(repr, kinds))}, got {type!r}")
        nd = None if newdata is None else newdata.reset_index(drop=True)
        if type in ("zprob", "zlink", "disp"):
            from .submodels import row_parameter, submodel

            part = "disp" if type == "disp" else "zi"
            if submodel(self, part) is None:
                if type == "disp" and getattr(self.family, "disp_param", None) in self.family_params:
                    fam = self.family
                    n = self.nobs if nd is None else len(nd)
                    return np.full(n, fam.disp_sigma(fam.values[fam.disp_param]))
                if type == "disp":
                    raise ArgumentError(f"the {self.family.name} family has no dispersion parameter")
                n = self.nobs if nd is None else len(nd)
                return np.zeros(n) if type == "zprob" else np.full(n, -np.inf)
            v = row_parameter(self, part, nd, re_form, allow_new_levels)
            if type == "disp":
                return self.family.disp_sigma(v)
            return np.log(v) - np.log1p(-v) if type == "zlink" else v
        eta = super()._predict_array(newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        if type == "link":
            return eta
        mu = self.family.link.inverse(eta)
        fam = self._family_at(nd, re_form, allow_new_levels)
        if type == "conditional":
            return fam.conditional_mean(mu)
        return fam.response_mean(mu)

    def _residuals_array(self, kind: str = "deviance") -> np.ndarray:
        y, wt = self.frame.y, self._problem.wt
        mu_c = self.family.link.inverse(self._eta())
        mu = self.family.response_mean(mu_c)
        if kind == "response":
            return y - mu
        if kind == "pearson":
            trials = (wt,) if getattr(self.family, "trials_response", False) else ()  # a variance that needs n
            return (y - mu) * np.sqrt(wt) / np.sqrt(self.family.response_variance(mu_c, *trials))
        if kind == "deviance":
            d = np.maximum(self.family.deviance_residuals(y, mu_c, wt), 0.0)
            return np.sign(y - mu) * np.sqrt(d)
        if kind == "working":
            return (y - mu_c) / self.family.link.mu_eta(self._eta())
        raise ArgumentError(f"residuals kind must be 'deviance', 'pearson', 'response' or 'working', got {kind!r}")

    def residuals(self, kind: str = "deviance") -> pd.Series:
        """Residuals of the fitted rows (lme4's ``residuals``).

        Parameters
        ----------
        kind : {"deviance", "pearson", "response", "working"}
            ``"deviance"`` (lme4's default): sign(y − μ)·√(deviance contribution); ``"pearson"``:
            (y − μ)·√weights / √V(μ); ``"response"``: y − μ; ``"working"``: (y − μ) / (dμ/dη).
            For a zero-inflated or hurdle model μ and the variance are the mixture's (glmmTMB's).

        Returns
        -------
        pandas.Series
            Named "residuals", indexed as :meth:`fitted`.
        """
        return self._row_series(self._residuals_array(kind), name="residuals")

    def summary(self):
        """lme4-style summary of the GLMM.

        Returns
        -------
        GlmmSummary
            Prints as lme4's text summary, renders as HTML in notebooks.
        """
        from ..summary import GlmmSummary

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

    Parameters
    ----------
    problem : GlmmProblem
        The fitted problem (family, frame, structure, kept columns).
    lmm_fit : LmmFit
        The final weighted linear mixed model on the working response; θ, β, their covariance,
        b and σ are its.
    info : FitInfo
        How the PQL iterations went.
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
        self._x = self._x_cov = None
        self._param_cov = None
        MixedModelFit.__init__(self, frame=problem.frame, structure=problem.structure, theta=lmm_fit._theta,
                               beta=lmm_fit._beta, vcov=lmm_fit._vcov, b=lmm_fit._b, sigma=lmm_fit.sigma,
                               loglik=np.nan, info=info, x_kept=problem.kept, dropped_columns=problem.dropped,
                               data_name=problem.data_name)

    def refit(self, y=None, **kwargs):
        """The PQL fit again with a new response (see :meth:`GlmmFit.refit`).

        Parameters
        ----------
        y : pandas Series or array-like, optional
            A new response for the fitted rows, as :meth:`GlmmFit.refit`.
        **kwargs
            Not accepted (a PQL fit has no quadrature or criterion to change): an error names them.

        Returns
        -------
        PqlFit
            A new fit; this one is not changed.
        """
        if kwargs:
            raise ArgumentError(f"a PQL fit can only be refitted to a new response, not with {sorted(kwargs)}")
        problem = self._problem if y is None else self._problem.with_response(self._new_response(y))
        return problem.fit(pql=True)

    @property
    def dispersion(self) -> float:
        """Estimated dispersion of the working model.

        Returns
        -------
        float
            σ² of the final weighted LMM (1 when the family's variance holds exactly).
        """
        return self.sigma**2

    @property
    def deviance(self) -> float:
        """PQL has no likelihood, so no deviance.

        Returns
        -------
        float
            NaN.
        """
        return float("nan")

    @cached_property
    def _condvar(self) -> dict:
        return self._lmm._condvar

    def _hat_weights(self):
        # the working weights at the final linear predictor: the hat matrix of the linearised fit
        return self.family.working(self._eta(), self.frame.y, self._problem.wt)[1]
