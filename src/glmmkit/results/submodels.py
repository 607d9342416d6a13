"""The zero-inflation and dispersion parts of a fit, as glmmTMB reports them: coefficients, their
covariance from the joint Hessian, Wald tables, and the per-row parameters they imply."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..exceptions import ArgumentError

__all__ = ["PARTS", "part_estimates", "part_table", "submodel", "row_parameter"]

#: glmmTMB's names of a model's parts, in the order its fixef() lists them
PARTS = ("cond", "zi", "disp")


def submodel(fit, part: str):
    """The fit's sub-model of one part.

    Parameters
    ----------
    fit : GlmmFit
    part : {"zi", "disp"}

    Returns
    -------
    SubModel or None
        None when the model has no such part.
    """
    for sub in getattr(fit._problem, "submodels", ()):
        if sub.part == part:
            return sub
    return None


def part_estimates(fit, part: str) -> tuple[pd.Series, pd.DataFrame]:
    """The coefficients of one part and their covariance.

    Parameters
    ----------
    fit : GlmmFit
    part : {"cond", "zi", "disp"}

    Returns
    -------
    tuple of (pandas.Series, pandas.DataFrame)
        "cond": (``fixef``, ``vcov``); "zi", "disp": the sub-model's coefficients and their block
        of the joint covariance (NaN where no Hessian was formed; both empty without the part).
    """
    if part == "cond":
        return fit.fixef, fit.vcov
    if part not in PARTS:
        raise ArgumentError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    sub = submodel(fit, part)
    if sub is None or fit._x is None:
        return pd.Series([], dtype=float, name=f"fixef_{part}"), pd.DataFrame()
    layout = fit._problem.layout
    sl = layout.slice(f"beta_{part}")
    names = list(sub.names)
    est = pd.Series(fit._x[sl], index=names, name=f"fixef_{part}")
    cov = (fit._x_cov[sl, sl] if fit._x_cov is not None else np.full((len(names), len(names)), np.nan))
    return est, pd.DataFrame(cov, index=names, columns=names)


def part_table(fit, part: str, level: float = 0.95) -> pd.DataFrame:
    """Wald table of one part's coefficients (z tests; glmmTMB's summary blocks).

    Parameters
    ----------
    fit : GlmmFit
    part : {"cond", "zi", "disp"}
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        Columns estimate, std_error, statistic, p_value, ci_lower, ci_upper ("cond": ``coef_table``).
    """
    est, cov = part_estimates(fit, part)
    if part == "cond":
        return fit.coef_table(level=level)
    se = np.sqrt(np.maximum(np.diag(cov.to_numpy()), 0.0)) if len(est) else np.zeros(0)
    if len(est) and fit._x_cov is None:
        se = np.full(len(est), np.nan)
    z = est.to_numpy() / se if len(est) else np.zeros(0)
    q = norm.ppf(0.5 + level / 2.0)
    return pd.DataFrame({"estimate": est.to_numpy(), "std_error": se, "statistic": z,
                         "p_value": 2.0 * norm.sf(np.abs(z)), "ci_lower": est.to_numpy() - q * se,
                         "ci_upper": est.to_numpy() + q * se}, index=est.index)


def row_parameter(fit, part: str, newdata=None) -> np.ndarray:
    """The modelled family parameter per row.

    Parameters
    ----------
    fit : GlmmFit
    part : {"zi", "disp"}
    newdata : pandas.DataFrame, optional
        Rows to evaluate at (default index); the fitted rows when omitted.

    Returns
    -------
    ndarray
        π for "zi", glmmTMB's dispersion (θ, φ, σ) for "disp".
    """
    sub = submodel(fit, part)
    if sub is None:
        raise ArgumentError(f"the model has no {'ziformula' if part == 'zi' else 'dispformula'}")
    X = sub.X if newdata is None else sub.design_new(newdata)
    eta = X @ part_estimates(fit, part)[0].to_numpy()
    if part == "zi":
        return 0.5 * (1.0 + np.tanh(0.5 * eta))
    return np.exp(eta)
