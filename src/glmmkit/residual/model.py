"""The residual model of a Gaussian LMM: Var(ε) = σ² D R D, a variance function D and a correlation R.

* ``VarianceModel`` (``lmer(..., dispformula="~ Sex")``): log σ_i = log σ + x_d,i'δ, glmmTMB's
  dispersion formula for Gaussian models (nlme's ``varIdent`` for a factor, ``varExp`` for a
  covariate); σ itself stays profiled, so δ has no intercept.
* a correlation structure from ``structures.py`` (``residual=``), or none (R = I).

``ResidualModel`` joins them behind the correlation structures' interface (ψ = (δ, ψ_R)):
whitening divides the rows by d_i and then applies R's W, and log|D R D| = 2 Σ log d_i + log|R|.
The fit holds one ``ResidualModel`` whenever either part is given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["VarianceModel", "ResidualModel", "TrivialLayout"]


class VarianceModel:
    """log-linear residual standard deviations: d_i = exp(x_d,i'δ) relative to σ.

    Parameters
    ----------
    formula : str
        The one-sided dispersion formula (``"~ Sex"``).
    data : DataFrame
        The fitted rows.

    Raises
    ------
    FormulaError
        For a formula that is not one-sided or has nothing besides the intercept.
    """

    def __init__(self, formula: str, data: pd.DataFrame):
        from ..design import build_design
        from ..exceptions import FormulaError

        text = str(formula).strip()
        if not text.startswith("~"):
            raise FormulaError(f"dispformula={formula!r} must be one-sided, e.g. '~ Sex'")
        self.rhs = text[1:].strip() or "1"
        X, names, spec = build_design(self.rhs, data)
        X = np.asarray(X, dtype=float).reshape(len(data), -1)
        self._keep = [j for j, n in enumerate(names) if n != "(Intercept)"]
        self.formula = text
        self.spec = spec
        self.X = np.ascontiguousarray(X[:, self._keep])
        self.names = [names[j] for j in self._keep]
        self.n_params = self.X.shape[1]
        if self.n_params == 0:
            raise FormulaError(f"dispformula={formula!r} has no term besides the intercept (σ is estimated anyway)")

    def log_sd(self, delta: np.ndarray) -> np.ndarray:
        """log d_i = x_d,i'δ of the fitted rows (fit order).

        Parameters
        ----------
        delta : numpy.ndarray, shape (n_variance,)
            The variance function's coefficients δ (log scale).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Log residual SD ratios relative to σ.
        """
        return self.X @ np.asarray(delta, dtype=float)

    def log_sd_new(self, data: pd.DataFrame, delta: np.ndarray) -> np.ndarray:
        """log d_i for new rows, with the training encoding of the dispersion formula.

        Parameters
        ----------
        data : pandas.DataFrame
            New rows with the formula's columns.
        delta : numpy.ndarray, shape (n_variance,)
            The variance function's coefficients δ (log scale).

        Returns
        -------
        numpy.ndarray, shape (len(data),)
            Log residual SD ratios.
        """
        from ..design import build_design

        X = np.asarray(build_design(self.rhs, data, self.spec)[0], dtype=float).reshape(len(data), -1)
        return X[:, self._keep] @ np.asarray(delta, dtype=float)


class TrivialLayout:
    """The layout of a residual model without a correlation structure: the rows as they are.

    Parameters
    ----------
    n : int
        Number of fitted rows (``order`` is 0..n-1, ``spec`` None).
    """

    def __init__(self, n: int):
        self.n = n
        self.order = np.arange(n)
        self.spec = None


class ResidualModel:
    """σ² D R D: an optional ``VarianceModel`` and an optional correlation structure (see module).

    Parameters
    ----------
    n : int
        Rows of the fit.
    variance : VarianceModel or None
        The variance function (``dispformula=``); None for equal variances.
    correlation : ResidualStructure or None
        The correlation structure (``residual=``); None for R = I.
    """

    def __init__(self, n: int, variance=None, correlation=None):
        self.variance = variance
        self.correlation = correlation
        self.nv = 0 if variance is None else variance.n_params
        self.nc = 0 if correlation is None else correlation.n_params
        self.n_params = self.nv + self.nc
        self.layout = correlation.layout if correlation is not None else TrivialLayout(n)
        self.name = correlation.name if correlation is not None else "variance"
        self.description = correlation.description if correlation is not None else "independent"
        self.nlme_names = correlation.nlme_names if correlation is not None else {}

    @property
    def formula(self) -> str:
        """The correlation structure's nlme form (``~time | group``); empty without one.

        Returns
        -------
        str
            The formula.
        """
        return self.correlation.formula if self.correlation is not None else ""

    def split(self, psi):
        """ψ split into the variance function's δ and the correlation's parameters.

        Parameters
        ----------
        psi : array-like, shape (n_params,)
            ψ = (δ, ψ_R).

        Returns
        -------
        tuple of numpy.ndarray
            ``(delta, psi_R)``, of lengths ``nv`` and ``nc``.
        """
        psi = np.asarray(psi, dtype=float)
        return psi[: self.nv], psi[self.nv:]

    # parameters
    def lower(self):
        """Lower bounds of ψ: -inf for δ, then the correlation's.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        parts = [np.full(self.nv, -np.inf)] + ([self.correlation.lower()] if self.correlation is not None else [])
        return np.concatenate(parts)

    def upper(self):
        """Upper bounds of ψ: inf for δ, then the correlation's.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            The bounds.
        """
        parts = [np.full(self.nv, np.inf)] + ([self.correlation.upper()] if self.correlation is not None else [])
        return np.concatenate(parts)

    def start(self):
        """Starting ψ: δ = 0 (equal variances), then the correlation's start.

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            Starting ψ.
        """
        parts = [np.zeros(self.nv)] + ([self.correlation.start()] if self.correlation is not None else [])
        return np.concatenate(parts)

    # the transform (rows sorted by the layout)
    def log_sd_sorted(self, delta):
        """log d_i in the layout's (cluster, time) order.

        Parameters
        ----------
        delta : numpy.ndarray, shape (n_variance,)
            The variance function's coefficients δ (log scale).

        Returns
        -------
        numpy.ndarray or None
            Shape (n,); None without a variance function.
        """
        if self.variance is None:
            return None
        return self.variance.log_sd(delta)[self.layout.order]

    def whiten(self, psi, A):
        """Whiten by D then by R: rows divided by d_i, then W; log|D R D| = 2 Σ log d_i + log|R|.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).
        A : numpy.ndarray, shape (n, m)
            Columns over the fitted rows, sorted by the layout (cluster, time).

        Returns
        -------
        tuple
            ``(WA, logdet)``; ``(None, inf)`` for ψ with no valid R or |log d_i| > 300.
        """
        delta, pc = self.split(psi)
        ls = self.log_sd_sorted(delta)
        logdet = 0.0
        if ls is not None:
            if not np.all(np.isfinite(ls)) or np.max(np.abs(ls)) > 300:
                return None, np.inf
            A = A * np.exp(-ls)[:, None]
            logdet += 2.0 * float(np.sum(ls))
        if self.correlation is not None:
            A, ld = self.correlation.whiten(pc, A)
            if A is None:
                return None, np.inf
            logdet += ld
        return A, logdet

    def color(self, psi, Z):
        """D W⁻¹ Z: independent standard normal rows -> residuals with covariance D R D (up to σ²).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).
        Z : numpy.ndarray, shape (n, m)
            Independent standard normal rows, sorted by the layout.

        Returns
        -------
        numpy.ndarray, shape (n, m)
            Sorted by the layout.
        """
        delta, pc = self.split(psi)
        out = self.correlation.color(pc, Z) if self.correlation is not None else Z
        ls = self.log_sd_sorted(delta)
        return out if ls is None else out * np.exp(ls)[:, None]

    def row_sd(self, psi) -> np.ndarray:
        """d_i of the fitted rows (fit order): residual SDs relative to σ.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).

        Returns
        -------
        numpy.ndarray, shape (n,)
            Ones without a variance function.
        """
        delta, _ = self.split(psi)
        return np.ones(self.layout.n) if self.variance is None else np.exp(self.variance.log_sd(delta))

    # what is reported
    def report(self, psi) -> dict:
        """The correlation's reported parameters and the σ multipliers ``sd_ratio_<coef>`` (nlme's varIdent ratios).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).

        Returns
        -------
        dict
            Name -> float.
        """
        delta, pc = self.split(psi)
        out = {} if self.correlation is None else dict(self.correlation.report(pc))
        if self.variance is not None:  # σ multipliers, nlme's varIdent ratios
            out.update({f"sd_ratio_{n}": float(np.exp(d)) for n, d in zip(self.variance.names, delta)})
        return out

    def interval_parameters(self, psi, taken) -> list[tuple]:
        """The parameters intervals are given for.

        The correlation's (``rho|Subject``) and the variance function's (``sd_ratio_SexMale``, a
        ratio of residual SDs).

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).
        taken : set of str
            Names the random effects already use; a clash gets ``(residual)`` in its label.

        Returns
        -------
        list of tuple
            ``(label, value, lower, upper)`` each.
        """
        delta, pc = self.split(psi)
        out = []
        if self.correlation is not None:
            g = self.correlation.layout.spec.group_name
            for name, value, lo, hi in self.correlation.natural(pc):
                label = f"{name}|{g}"
                out.append((label if label not in taken else f"{name}(residual)|{g}", value, lo, hi))
        if self.variance is not None:
            out += [(f"sd_ratio_{n}", float(np.exp(d)), 0.0, np.inf) for n, d in zip(self.variance.names, delta)]
        return out

    def from_natural(self, values):
        """ψ from ``interval_parameters``' values (correlation's, then SD ratios).

        Parameters
        ----------
        values : numpy.ndarray
            Values in ``interval_parameters``' order.

        Returns
        -------
        numpy.ndarray or None
            ψ of shape (n_params,), or None when a ratio is <= 0 or the correlation values are invalid.
        """
        values = np.asarray(values, dtype=float)
        nc_vals, v_vals = values[: len(values) - self.nv], values[len(values) - self.nv:]
        if np.any(v_vals <= 0):
            return None
        pc = np.zeros(0)
        if self.correlation is not None:
            pc = self.correlation.from_natural(nc_vals)
            if pc is None:
                return None
        return np.concatenate([np.log(v_vals), pc])

    def correlation_at(self, psi, times):
        """The residual correlation matrix of one cluster at the given times.

        The identity without a correlation structure.

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).
        times : numpy.ndarray, shape (m,)
            Times of one cluster's residuals.

        Returns
        -------
        numpy.ndarray, shape (m, m)
            R.
        """
        _, pc = self.split(psi)
        return self.correlation.correlation_at(pc, times) if self.correlation is not None else np.eye(len(times))

    def pair_correlation(self, psi, t1, t2):
        """The residual correlation between pairs of one cluster's residuals at times t1[k] and t2[k].

        Parameters
        ----------
        psi : numpy.ndarray, shape (n_params,)
            ψ = (δ, ψ_R).
        t1 : numpy.ndarray
            Times of the first residual of each pair.
        t2 : numpy.ndarray
            Times of the second residual of each pair (same shape as ``t1``).

        Returns
        -------
        numpy.ndarray
            The shape of ``t1``.
        """
        _, pc = self.split(psi)
        return self.correlation.pair_correlation(pc, t1, t2)
