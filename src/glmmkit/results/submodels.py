"""The zero-inflation and dispersion parts of a fit, as glmmTMB reports them: coefficients, their
covariance from the joint Hessian, Wald tables, and the per-row parameters they imply."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..exceptions import ArgumentError

__all__ = ["PARTS", "part_estimates", "part_table", "submodel", "row_parameter", "part_eta", "part_ranef",
           "part_varcorr", "part_theta"]

#: glmmTMB's names of a model's parts, in the order its fixef() lists them
PARTS = ("cond", "zi", "disp")


def submodel(fit, part: str):
    """The fit's sub-model of one part.

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi", "disp"}
        The sub-model: "zi" the zero-inflation (or hurdle) formula, "disp" the dispersion formula.

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
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"cond", "zi", "disp"}
        "cond" the conditional mean's model, "zi" the zero-inflation (or hurdle) formula, "disp"
        the dispersion formula.

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
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"cond", "zi", "disp"}
        "cond" the conditional mean's model, "zi" the zero-inflation (or hurdle) formula, "disp"
        the dispersion formula.
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


def part_theta(fit, part: str) -> np.ndarray:
    """θ of a sub-model's random-effects terms (empty without any).

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi", "disp"}
        The sub-model: "zi" the zero-inflation (or hurdle) formula, "disp" the dispersion formula.

    Returns
    -------
    ndarray
    """
    sub = submodel(fit, part)
    if sub is None or sub.structure is None or fit._x is None:
        return np.zeros(0)
    return np.asarray(fit._x[fit._problem.layout.slice(f"theta_{part}")], dtype=float)


def _part_b(fit, part: str) -> np.ndarray:
    """b of a sub-model's random effects at the mode (its own engine order)."""
    sub = submodel(fit, part)
    u = getattr(fit._state, f"u_{part}")
    return sub.structure.b_of(sub.structure.templates(part_theta(fit, part)), u)


def part_ranef(fit, part: str = "zi") -> dict:
    """Conditional modes of a sub-model's random effects (glmmTMB's ``ranef(fit)$zi``).

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi"}
        The sub-model; only the zero-inflation formula may have random effects.

    Returns
    -------
    dict
        Grouping factor -> DataFrame (levels x terms); empty when the part has no random effects.
    """
    sub = submodel(fit, part)
    if sub is None or sub.structure is None:
        return {}
    b = _part_b(fit, part)
    out = {}
    for blk in sub.structure.blocks:
        vals = b[blk.offset : blk.offset + blk.size].reshape(blk.q, blk.K)
        out[blk.factor.name] = pd.DataFrame(vals, index=pd.Index(blk.factor.levels, name=blk.factor.name),
                                            columns=blk.names)
    return out


def part_varcorr(fit, part: str = "zi") -> pd.DataFrame:
    """Variance components of a sub-model's random effects on its linear predictor's scale (logit π
    for "zi"; glmmTMB's ``VarCorr(fit)$zi``), in ``varcorr``'s layout.

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi"}
        The sub-model; only the zero-inflation formula may have random effects.

    Returns
    -------
    DataFrame
        Columns group, term1, term2, vcov, sdcor (no rows when the part has no random effects).
    """
    from .varcorr_rows import covariance_rows

    cols = ["group", "term1", "term2", "vcov", "sdcor"]
    sub = submodel(fit, part)
    if sub is None or sub.structure is None:
        return pd.DataFrame([], columns=cols)
    st = sub.structure
    templates = st.templates(part_theta(fit, part))
    rows = []
    for t in st.terms:
        T = templates[t.block][np.ix_(t.block_cols, t.block_cols)]
        rows += covariance_rows(t.group, t.names, T @ T.T)
    return pd.DataFrame(rows, columns=cols)


class _PartView:
    """What ``newdata.term_rows`` reads of a fit, for a sub-model's structure."""

    def __init__(self, structure):
        self.structure = structure


def part_eta(fit, part: str, newdata=None, re_form=None, allow_new_levels: bool = False) -> np.ndarray:
    """A sub-model's linear predictor per row (logit π for "zi", glmmTMB's log-dispersion for "disp"),
    with its random effects unless ``re_form`` is population-level ('~0', NA).

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi", "disp"}
        The sub-model: "zi" the zero-inflation (or hurdle) formula, "disp" the dispersion formula.
    newdata : DataFrame, optional
        New rows (default: the fitted rows).
    re_form : None, "~0" or NA
        None keeps the part's random effects (the conditional modes; 0 for a new level when
        ``allow_new_levels``), '~0' drops them, as glmmTMB's ``re.form = NA`` drops every part's.
    allow_new_levels : bool, default False
        A grouping level not in the fit contributes 0 instead of raising ``DataError``.

    Returns
    -------
    ndarray, shape (rows,)
    """
    from ..validate import population_level

    sub = submodel(fit, part)
    if sub is None:
        raise ArgumentError(f"the model has no {'ziformula' if part == 'zi' else 'dispformula'}")
    beta = part_estimates(fit, part)[0].to_numpy()
    try:
        population = population_level(re_form)
    except ArgumentError:  # a formula of some random terms: the part keeps its own
        population = False
    if newdata is None:
        if sub.structure is not None and not population:
            return np.asarray(getattr(fit._state, f"eta_{part}"), dtype=float).copy()
        return sub.X @ beta
    eta = sub.design_new(newdata) @ beta
    if sub.structure is None or population:
        return eta
    from ..newdata import term_rows

    b = _part_b(fit, part)
    view = _PartView(sub.structure)
    for t in sub.structure.terms:
        blk = sub.structure.blocks[t.block]
        cols, idx, missing = term_rows(view, t, newdata, allow_new_levels)
        vals = b[blk.offset : blk.offset + blk.size].reshape(blk.q, blk.K)[:, t.block_cols]
        known = (idx >= 0) & ~missing
        contrib = np.zeros(len(newdata))
        contrib[known] = np.einsum("ik,ik->i", np.asarray(cols, dtype=float)[known], vals[idx[known]])
        eta = eta + contrib
    return eta


def row_parameter(fit, part: str, newdata=None, re_form=None, allow_new_levels: bool = False) -> np.ndarray:
    """The modelled family parameter per row: π for "zi", glmmTMB's dispersion (θ, φ, σ) for "disp";
    at the fitted rows, or at ``newdata``'s.

    Parameters
    ----------
    fit : GlmmFit
        A fitted GLMM (``glmer(..., ziformula=..., dispformula=...)``).
    part : {"zi", "disp"}
        The sub-model: "zi" the zero-inflation (or hurdle) formula, "disp" the dispersion formula.
    newdata : DataFrame, optional
        New rows (default: the fitted rows).
    re_form, allow_new_levels
        As :func:`part_eta` (for a part with random effects).

    Returns
    -------
    ndarray, shape (rows,)
    """
    eta = part_eta(fit, part, newdata, re_form, allow_new_levels)
    if part == "zi":
        return 0.5 * (1.0 + np.tanh(0.5 * eta))
    return np.exp(eta)
