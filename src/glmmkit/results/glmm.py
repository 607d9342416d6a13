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
        from ..inference.wald import family_params_table

        return family_params_table(self, level=level)

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
        from ..diagnostics.residuals import dispersion_check

        return dispersion_check(self)

    @cached_property
    def condvar(self) -> dict:
        """Conditional covariances of the random effects at the mode (lme4's condVar): factor -> (levels, K, K)."""
        return self._condvar_at(self._state.system, self._state.factor)

    def fitted(self) -> np.ndarray:
        """Conditional means μ = g⁻¹(Xβ + Zb + offset) of the fitted rows (probabilities for the binomial)."""
        return self.family.link.inverse(self._eta())

    def predict(self, newdata=None, re_form=None, allow_new_levels=False, type="link", marginal=False, *,
                se_fit=False, theta_uncertainty=False) -> np.ndarray:
        """Predictions: ``type="link"`` (η) or ``"response"`` (μ); see :meth:`MixedModelFit.predict`.

        ``marginal=True``: the population-averaged mean E[y] (the conditional mean averaged over
        the random effects), on the response scale, or its link for ``type="link"``.
        ``se_fit=True``: a DataFrame with columns fit and se_fit (delta method; response-scale SEs
        by dμ/dη), ``theta_uncertainty=True`` adding θ's uncertainty as glmmTMB does.
        """
        if se_fit and marginal:
            from ..exceptions import NotAvailableError

            raise NotAvailableError("se_fit is not available with marginal=True (use marginal_moments)")
        if se_fit:
            return super().predict(newdata, re_form=re_form, allow_new_levels=allow_new_levels, se_fit=True,
                                   type=type, theta_uncertainty=theta_uncertainty)
        if marginal:
            from ..inference.marginal import marginal_means

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
