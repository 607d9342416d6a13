"""``LmmFit``: a fitted linear mixed model, built from the LMM objective at the estimated θ."""

from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError
from .base import MixedModelFit

__all__ = ["LmmFit", "lmm_estimates"]


def lmm_estimates(objective, structure, theta: np.ndarray):
    """The penalised least-squares solution at θ.

    Parameters
    ----------
    objective : LmmObjective
        The profiled (RE)ML objective of the model.
    structure : RandomStructure
        The random-effects structure (templates from θ).
    theta : ndarray
        Where to solve.

    Returns
    -------
    tuple
        ``(factor, beta, b, sigma, vcov)``: the PLS factor, the fixed effects, the random effects
        b, the residual SD and vcov = σ² (R_X'R_X)⁻¹ from the factor's fixed-effects block.
    """
    templates = structure.templates(theta)
    system = objective.system
    fac = objective.factor(theta)
    u_lead, u_rest, beta = system.solve(templates, fac)
    sigma = float(np.sqrt(objective.sigma2(fac)))
    b = (np.concatenate([(u_lead @ templates[0].T).ravel(), system.rest_b(templates, u_rest)]) if templates
         else np.zeros(0))
    cov = sigma**2 * fac.fixed_effects_covariance(system.mz, system.p)
    return fac, beta, b, sigma, cov


class LmmFit(MixedModelFit):
    """A fitted linear mixed model (returned by :func:`glmmkit.lmer`).

    Built by the fitting code (``fitting.lmm.fit_lmm``), keywords only.

    Parameters
    ----------
    frame : ModelFrame
        The complete-case model frame.
    structure : ModelStructure
        The random-effects terms, blocks and θ parameterisation.
    objective : LmmObjective
        The profiled deviance (REML or ML) the estimates minimise; β, b and σ are computed from
        it at ``theta``.
    theta : array-like, shape (n_theta,)
        The estimated covariance parameters.
    info : FitInfo
        How the fit went.
    x_kept : list of int
        Columns of ``frame.X`` kept.
    dropped_columns : list of str
        Names of the columns dropped as aliased.
    data_name : str, optional
        Name of the data shown in the summary.
    problem : LmmProblem, optional
        The fitted problem, which ``refit`` reuses; None for the working fits inside PQL.
    residual_psi : array-like, optional
        The residual structure's estimated parameters (with ``problem.residual``); None for
        independent residuals.

    Attributes
    ----------
    formula : str
        The model formula as given.
    method : {"REML", "ML"}
        The criterion maximised.
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
        Number of rows fitted (complete cases).
    ngroups : dict
        Number of levels of each grouping factor.
    converged, singular : bool
        Whether the optimiser converged; whether a variance is estimated as zero or a
        correlation as ±1 (lme4's ``isSingular``).
    optimizer_info : FitInfo
        How the fit went (optimiser, evaluations, restarts, messages).
    """

    kind = "lmm"

    def __init__(self, *, frame, structure, objective, theta, info, x_kept, dropped_columns, data_name=None,
                 problem=None, residual_psi=None):
        self._problem = problem  # None for the working fits inside PQL, which are never refitted
        self._objective = objective
        self._residual = None if residual_psi is None else problem.residual
        self._residual_psi = None if residual_psi is None else np.asarray(residual_psi, dtype=float).copy()
        self.reml = objective.reml
        self.method = "REML" if objective.reml else "ML"
        theta = np.asarray(theta, dtype=float)
        fac, beta, b, sigma, cov = lmm_estimates(objective, structure, theta)
        self._factor = fac
        super().__init__(frame=frame, structure=structure, theta=theta, beta=beta, vcov=cov, b=b, sigma=sigma,
                         loglik=-0.5 * objective.deviance_from(fac), info=info, x_kept=x_kept,
                         dropped_columns=dropped_columns, data_name=data_name)

    def refit(self, y=None, *, reml=None):
        """The same model fitted again, to a new response or by the other criterion (lme4's ``refit``).

        Parameters
        ----------
        y : pandas Series or array-like, optional
            A new response for the fitted rows (offset included, as the data's response column):
            a Series labelled by the data's index (a data column, a ``simulate`` column) is taken
            by label, an array in the fitted rows' order.
        reml : bool, optional
            REML or ML; the fit's own criterion when omitted.

        Returns
        -------
        LmmFit
            A new fit started from this fit's θ; this one is not changed.
        """
        problem = self._problem if y is None else self._problem.with_response(self._new_response(y))
        if reml is not None:
            problem = dataclasses.replace(problem, reml=bool(reml))
        start = self._theta if self._residual is None else np.concatenate([self._theta, self._residual_psi])
        return problem.fit(start=start)

    # ----- the residual structure -----

    @property
    def residual_structure(self):
        """The residual correlation structure (``residual=``).

        Returns
        -------
        ResidualStructure or None
            The structure the fit estimated; None for independent residuals (σ² I).
        """
        return self._residual

    @cached_property
    def residual_params(self) -> pd.Series:
        """The residual structure's parameters.

        Returns
        -------
        pandas.Series
            Named "residual_params": ``rho`` for ar1 and exp (the correlation at a lag of one time
            unit, nlme's Phi) and for cs (nlme's Rho); every pair's correlation for un
            (``cor(1,2)``); the lag correlations for toep (``rho1``, ...); empty without one.
        """
        if self._residual is None:
            return pd.Series(dtype=float, name="residual_params")
        return pd.Series(self._residual.report(self._residual_psi), name="residual_params")

    def _whiten_rows(self, r: np.ndarray) -> np.ndarray:
        lay = self._residual.layout
        w, _ = self._residual.whiten(self._residual_psi, np.asarray(r, dtype=float)[lay.order][:, None])
        out = np.empty_like(r, dtype=float)
        out[lay.order] = w[:, 0]
        return out

    def _residual_noise(self, rng, n_sim: int) -> np.ndarray:
        """σ ε for ``n_sim`` simulations (nobs, n_sim): correlated within clusters by R, scaled by the
        prior weights."""
        z = rng.standard_normal((self.nobs, n_sim))
        if self._residual is not None:
            lay = self._residual.layout
            out = np.empty_like(z)
            out[lay.order] = self._residual.color(self._residual_psi, z[lay.order])
            z = out
        w = self.frame.weights
        z = z * self.sigma
        return z if w is None else z / np.sqrt(np.asarray(w, dtype=float))[:, None]

    @property
    def reml_criterion(self) -> float | None:
        """The REML criterion (lme4's ``REMLcrit``).

        Returns
        -------
        float or None
            −2 × the REML log-likelihood for REML fits; None for ML fits.
        """
        return -2.0 * self.loglik if self.reml else None

    @cached_property
    def deviance(self) -> float:
        """The ML deviance at the estimates (lme4's ``deviance(fit, REML = FALSE)``).

        Returns
        -------
        float
            −2 × the ML log-likelihood at the estimates (REML fits too: at their estimates).
        """
        if not self.reml:
            return -2.0 * self.loglik
        obj = self._objective
        saved = obj.reml
        obj.reml = False
        try:
            return float(obj.deviance_from(self._factor))
        finally:
            obj.reml = saved

    @cached_property
    def _condvar(self) -> dict:
        """Factor name -> ndarray (levels, K, K): the engine's form of :attr:`condvar`."""
        return self._condvar_at(self._objective.system, self._factor, self.sigma**2)

    def _fitted_array(self) -> np.ndarray:
        return self._eta()

    def fitted(self) -> pd.Series:
        """Conditional fitted values Xβ + Zb + offset (lme4's ``fitted``).

        Returns
        -------
        pandas.Series
            Named "fitted", one value per row used in the fit, indexed by the data's labels of
            those rows (rows dropped for missing values absent, as R's ``na.omit``).
        """
        return self._row_series(self._fitted_array(), name="fitted")

    def _residuals_array(self, kind: str = "response") -> np.ndarray:
        r = self.frame.y - self._fitted_array()
        if kind == "response":
            return r
        if kind not in ("pearson", "scaled", "normalized", "normalised"):
            raise ArgumentError(
                f"residuals kind must be 'response', 'pearson', 'scaled' or 'normalized', got {kind!r}")
        if self.frame.weights is not None:
            r = r * np.sqrt(self.frame.weights)
        if kind == "pearson":
            return r
        if kind == "scaled":
            return r / self.sigma
        return (r if self._residual is None else self._whiten_rows(r)) / self.sigma

    def residuals(self, kind: str = "response") -> pd.Series:
        """Residuals of the fitted rows (lme4's ``residuals``).

        Parameters
        ----------
        kind : {"response", "pearson", "scaled", "normalized"}
            ``"response"``: y − fitted; ``"pearson"``: × √weights (lme4's); ``"scaled"``:
            pearson / σ; ``"normalized"`` (nlme's): the scaled residuals whitened by the residual
            correlation structure, so independent standard normal under the model ("scaled"
            without one).

        Returns
        -------
        pandas.Series
            Named "residuals", indexed as :meth:`fitted`.
        """
        return self._row_series(self._residuals_array(kind), name="residuals")

    # ----- display -----

    def summary(self):
        """lme4-style summary.

        Returns
        -------
        LmmSummary
            Prints as lme4's text summary, renders as HTML in notebooks.
        """
        from ..summary import LmmSummary

        return LmmSummary(self)

    def __repr__(self) -> str:
        return str(self.summary())
