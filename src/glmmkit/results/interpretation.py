"""Interpretation of the estimates: ICC, population-averaged effects, empirical-Bayes random
effects and shrinkage, hat values and effective degrees of freedom.

``InterpretationMixin`` gives every fit these methods; each hands the fit to its
``inference/`` module (``icc.py``, ``marginal.py``, ``empirical_bayes.py``, ``hat.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["InterpretationMixin"]


class InterpretationMixin:
    """What the estimates mean: intraclass correlation, marginal effects, posterior random effects,
    shrinkage, leverage."""

    def marginal_coefs(self) -> pd.DataFrame:
        """Population-averaged (marginal) coefficients (GLMMadaptive's ``marginal_coefs``).

        The conditional mean averaged over the random effects for every row, then regressed on X
        on the link scale (Hedeker et al. 2018), with delta-method standard errors; crossed and
        nested designs too.

        Returns
        -------
        pandas.DataFrame
            Indexed by fixed effect: estimate, std_error, statistic, p_value, conditional (the
            conditional coefficient) and attenuation (marginal / conditional).
        """
        from ..inference.marginal import marginal_coefs

        return marginal_coefs(self)

    def marginal_moments(self, newdata) -> dict:
        """Marginal mean and variance of y at the rows of ``newdata``, and their covariance.

        Parameters
        ----------
        newdata : pandas.DataFrame
            The rows, taken to belong to one cluster of every grouping factor.

        Returns
        -------
        dict
            ``"mean"`` and ``"variance"`` (Series), ``"covariance"`` and ``"correlation"``
            (DataFrames, rows × rows) that the random effects (and a residual structure) induce
            between the rows (for a Poisson random intercept, Cov = μ_s μ_t (exp(σ²) − 1)); all
            indexed by ``newdata``'s index.
        """
        from ..inference.marginal import marginal_moments

        return marginal_moments(self, newdata)

    def ranef_posterior(self, nagq: int = 15) -> dict:
        """Posterior means and SDs of the random effects (empirical Bayes).

        LMMs: exact (the posterior is Gaussian: the mode and the conditional variance).
        GLMMs with one grouping factor: adaptive Gauss-Hermite quadrature; with several factors
        the Laplace approximation.  ``fit.ranef`` stays the conditional mode.

        Parameters
        ----------
        nagq : int
            Quadrature nodes per dimension (GLMMs with one grouping factor).

        Returns
        -------
        dict
            Factor name -> DataFrame indexed by level with a (term, "mean") and (term, "sd") column
            pair per term; ``df.attrs["method"]`` says how it was computed.
        """
        from ..inference.empirical_bayes import ranef_posterior

        return ranef_posterior(self, nagq=nagq)

    def shrinkage(self) -> dict:
        """How far each level's random effects are pulled toward zero.

        Returns
        -------
        dict
            Factor name -> DataFrame indexed by level: ("n", "") the cluster size, then per term
            (term, "no_pooling") the level's own estimate given the rest of the linear predictor,
            (term, "partial_pooling") the prediction (the mode) and (term, "shrinkage") the factor
            1 − partial / no pooling.
        """
        from ..inference.empirical_bayes import shrinkage

        return shrinkage(self)

    def hatvalues(self) -> np.ndarray:
        """Diagonal of the hat matrix of the fitted values (lme4's ``hatvalues``).

        For a GLMM, of the PIRLS weighted least-squares problem at convergence (working weights).

        Returns
        -------
        ndarray, shape (nobs,)
            One leverage per fitted row, in the fitted rows' order.
        """
        from ..inference.hat import hat_diagonal

        if getattr(self, "_hat", None) is None:
            X = self.frame.X[:, self._x_kept]
            self._hat = hat_diagonal(self.structure, X, self._hat_weights(), self._theta)
        return self._hat

    def _hat_weights(self):
        return self.frame.weights

    @property
    def edf(self) -> float:
        """Effective degrees of freedom.

        Returns
        -------
        float
            The trace of the hat matrix (between p and p + q).
        """
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
        from ..inference.icc import icc

        return icc(self)
