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
        """log d_i of the fitted rows."""
        return self.X @ np.asarray(delta, dtype=float)

    def log_sd_new(self, data: pd.DataFrame, delta: np.ndarray) -> np.ndarray:
        """log d_i for new rows (the training encoding)."""
        from ..design import build_design

        X = np.asarray(build_design(self.rhs, data, self.spec)[0], dtype=float).reshape(len(data), -1)
        return X[:, self._keep] @ np.asarray(delta, dtype=float)


class TrivialLayout:
    """The layout of a residual model without a correlation structure: the rows as they are."""

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
    correlation : ResidualStructure or None
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
        return self.correlation.formula if self.correlation is not None else ""

    def split(self, psi):
        psi = np.asarray(psi, dtype=float)
        return psi[: self.nv], psi[self.nv:]

    # parameters
    def lower(self):
        parts = [np.full(self.nv, -np.inf)] + ([self.correlation.lower()] if self.correlation is not None else [])
        return np.concatenate(parts)

    def upper(self):
        parts = [np.full(self.nv, np.inf)] + ([self.correlation.upper()] if self.correlation is not None else [])
        return np.concatenate(parts)

    def start(self):
        parts = [np.zeros(self.nv)] + ([self.correlation.start()] if self.correlation is not None else [])
        return np.concatenate(parts)

    # the transform (rows sorted by the layout)
    def log_sd_sorted(self, delta):
        if self.variance is None:
            return None
        return self.variance.log_sd(delta)[self.layout.order]

    def whiten(self, psi, A):
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
        delta, pc = self.split(psi)
        out = self.correlation.color(pc, Z) if self.correlation is not None else Z
        ls = self.log_sd_sorted(delta)
        return out if ls is None else out * np.exp(ls)[:, None]

    def row_sd(self, psi) -> np.ndarray:
        """d_i of the fitted rows (fit order)."""
        delta, _ = self.split(psi)
        return np.ones(self.layout.n) if self.variance is None else np.exp(self.variance.log_sd(delta))

    # what is reported
    def report(self, psi) -> dict:
        delta, pc = self.split(psi)
        out = {} if self.correlation is None else dict(self.correlation.report(pc))
        if self.variance is not None:  # σ multipliers, nlme's varIdent ratios
            out.update({f"sd_ratio_{n}": float(np.exp(d)) for n, d in zip(self.variance.names, delta)})
        return out

    def interval_parameters(self, psi, taken) -> list[tuple]:
        """``(label, value, lower, upper)``: the correlation's (``rho|Subject``) and the variance
        function's (``sd_ratio_SexMale``, a ratio of residual SDs)."""
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
        _, pc = self.split(psi)
        return self.correlation.correlation_at(pc, times) if self.correlation is not None else np.eye(len(times))

    def pair_correlation(self, psi, t1, t2):
        _, pc = self.split(psi)
        return self.correlation.pair_correlation(pc, t1, t2)
