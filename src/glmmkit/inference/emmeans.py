"""Estimated marginal means, their contrasts and the trends of a covariate (R's emmeans).

**The reference grid** (emmeans's ``ref_grid``): every variable the fixed-effects formula
reads, factors at all their levels and numeric covariates at their means over the fitted
rows, unless ``at`` gives other values (a scalar, or a list that puts the covariate in the
grid); offsets in the formula are evaluated on the grid (their covariates at their means).
A *marginal mean* of a cell of the ``specs`` (× ``by``) factors is the average of the
grid's linear predictors over the other factors with **equal weights**, a linear function
L β of the fixed effects: SE √(L V L'), degrees of freedom per row of L (Satterthwaite or
Kenward-Roger for LMMs, asymptotic z for GLMMs).  In a rank-deficient fit (an empty cell of an
interaction) a mean or contrast whose L is not orthogonal to the null space of the full design is
not estimable: NaN, as emmeans's ``nonEst``; multiplicity families still count it, as emmeans's do.

**Contrasts** (emmeans's ``pairs``): every pair i < j of cells within a ``by`` group, named
as emmeans names them (``"A - B"``; levels that look like numbers carry the factor's name,
``"period1 - period2"``; several factors ``"agef8 Male - agef10 Male"``), with p-values and
intervals adjusted over the family of the group: Tukey's studentised range for k means,
Bonferroni, Holm (p-values; its intervals are Bonferroni's, as emmeans), or none
(``inference/multiplicity.py``).

**Response scale** (``type="response"``): means back-transformed through the inverse link,
SE by the delta method |dμ/dη|·SE, intervals the back-transformed link-scale ones, tests
on the link scale; contrasts become ratios for a log link and odds ratios for a logit link
(``"ctrl / trt"``: exp of the link-scale difference, SE exp(d)·SE_d); for other links they
stay differences on the link scale (``attrs["scale"]`` says which).

**Population-averaged** (``marginal=True``, GLMMs): each grid row's conditional mean
g⁻¹(x'β) is replaced by the mean over the random effects,
E[g⁻¹(x'β + z'b)] = ∫ g⁻¹(x'β + t) φ(t; 0, z'Σz) dt (``inference/marginal.py``'s
Gauss-Hermite rule, z the random-effect columns of the grid row), and the cell's mean is
g of that averaged over the other factors on the link scale, as for the conditional means
(so a model without random-effect variance gives the conditional result).  Contrasts are
differences of these link-scale means (log ratios of marginal means, log odds ratios of
marginal probabilities), SEs by the delta method in (θ, β) from the fit's joint covariance;
for an LMM (identity link) marginal and conditional means coincide.

**Trends** (``emtrends``): the derivative of the linear predictor with respect to a numeric
covariate (central differences of the design, exact for terms linear in it), averaged over
the grid like the means; ``type="response"`` differentiates the conditional mean instead
(emmeans's ``regrid = "response"``).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, NotAvailableError

__all__ = ["emmeans", "emtrends", "reference_grid"]

_ADJUST = ("tukey", "holm", "bonferroni", "none")
_IDENT = re.compile(r"`([^`]+)`|(?<![\w.])([A-Za-z_.][\w.]*)(?!\s*\()")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


# ----- the reference grid -----

def _predictor_variables(fit, extra_random: bool) -> list:
    """Columns of the data the fixed-effects formula (and offsets) read, in the data's column order."""
    from ..design import formulaic_formula

    data = fit.frame.data
    parsed = fit.frame.parsed
    texts = ["~ " + parsed.fixed_rhs] + [f"~ I({o})" for o in parsed.offsets]
    if extra_random:
        texts += ["~ " + t.lhs for t in parsed.random if t.lhs.strip() not in ("1", "0", "-1")]
    used = set()
    for text in texts:
        try:
            used |= set(formulaic_formula(text).required_variables)
        except Exception:  # a piece formulaic cannot read on its own: its names come from the text below
            pass
        # formulaic 1.2 leaves out the arguments of stateful transforms (poly(x, 2)): names in the text too
        used |= {m.group(1) or m.group(2) for m in _IDENT.finditer(text)}
    return [c for c in data.columns if c in used]


def _is_factor(col: pd.Series, name: str, rhs: str) -> bool:
    if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col):
        return True
    if not pd.api.types.is_numeric_dtype(col):
        return True
    # a numeric column the formula wraps in factor(x) / C(x)
    return re.search(r"(?:factor|C)\(\s*`?" + re.escape(str(name)) + r"`?\s*[,)]", rhs) is not None


def _levels(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.array.codes
        used = np.bincount(codes[codes >= 0], minlength=len(col.array.categories)) > 0
        return list(col.array.categories[used])
    vals = pd.unique(col.dropna())
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def reference_grid(fit, at=None, extra_random: bool = False) -> tuple[pd.DataFrame, dict]:
    """The reference grid of a fit (emmeans's ``ref_grid``).

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model.
    at : dict, optional
        Values for grid variables: a covariate's values (default its mean), a factor's levels
        (default all its levels).
    extra_random : bool
        Also put the random-effect terms' covariates in the grid (needed for population-averaged
        means, whose variance z'Σz depends on them).

    Returns
    -------
    grid : DataFrame
        One row per combination, the first variable varying fastest (emmeans's order).
    kinds : dict
        Variable -> ``"factor"`` or ``"covariate"``.
    """
    data = fit.frame.data
    rhs = fit.frame.parsed.fixed_rhs
    at = {} if at is None else dict(at)
    names = _predictor_variables(fit, extra_random)
    for key in at:
        if key not in names:
            from ..validate import suggest

            raise ArgumentError(f"at= names {key!r}, which is not a variable of the model's fixed effects "
                                f"({', '.join(map(str, names)) or 'none'}){suggest(key, names)}")
    values, kinds = {}, {}
    for name in names:
        col = data[name]
        if _is_factor(col, name, rhs):
            kinds[name] = "factor"
            levels = _levels(col)
            if name in at:
                want = list(np.atleast_1d(at[name]))
                bad = [v for v in want if v not in levels and str(v) not in map(str, levels)]
                if bad:
                    raise ArgumentError(f"at= gives {name!r} the level(s) {bad}, which the fit does not have "
                                        f"(levels: {', '.join(map(str, levels))})")
                lookup = {str(lv): lv for lv in levels}
                levels = [v if v in levels else lookup[str(v)] for v in want]
            values[name] = levels
        else:
            kinds[name] = "covariate"
            if name in at:
                vals = np.atleast_1d(np.asarray(at[name], dtype=float))
                if vals.size == 0 or not np.all(np.isfinite(vals)):
                    raise ArgumentError(f"at= must give {name!r} one or more finite numbers, got {at[name]!r}")
                values[name] = list(vals)
            else:
                values[name] = [float(np.mean(col.to_numpy(dtype=float)))]
    combos = list(itertools.product(*[values[n] for n in reversed(names)])) if names else [()]
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=names)
    for name in names:
        col = data[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            grid[name] = pd.Categorical(grid[name], categories=col.array.categories, ordered=col.dtype.ordered)
        elif kinds[name] == "covariate":
            grid[name] = grid[name].astype(float)
        else:
            grid[name] = grid[name].astype(col.dtype)
    return grid, kinds


def _grid_design(fit, grid: pd.DataFrame, shift=None):
    """X (grid rows × kept columns) and the offset of the grid rows; ``shift=(var, h)`` adds h to a
    covariate first."""
    from ..design import build_design

    g = grid
    if shift is not None:
        g = grid.copy()
        g[shift[0]] = g[shift[0]] + shift[1]
    if len(grid.columns) == 0:  # an intercept-only fixed part
        X = np.ones((len(g), len(fit.frame.x_names)))
    else:
        try:
            X = np.asarray(build_design(fit.frame.parsed.fixed_rhs, g, fit.frame.fixed_spec)[0], dtype=float)
        except Exception as exc:
            raise ArgumentError(f"cannot build the fixed-effects design on the reference grid: {exc}") from None
        X = X.reshape(len(g), -1)
    full = X
    X = X[:, fit._x_kept]
    off = fit._new_offset(g)
    arg_off = fit.frame.offset
    if not fit.frame.parsed.offsets and np.any(arg_off != 0):
        off = off + float(np.mean(arg_off))  # an offset= argument: its mean, as a covariate's
    return X, off, full


def _null_basis(fit):
    """Basis of the null space of the fit's full fixed-effects design (None when it has full rank):
    a linear function l'β is estimable when l is orthogonal to it (emmeans's ``nonEst`` otherwise)."""
    Xf = fit.frame.X
    if len(fit._x_kept) == Xf.shape[1]:
        return None
    _, sv, Vt = np.linalg.svd(Xf, full_matrices=True)
    tol = max(Xf.shape) * np.finfo(float).eps * (sv[0] if sv.size else 1.0) * 1e3
    rank = int(np.sum(sv > tol))
    return Vt[rank:].T


def _not_estimable(Lfull, null) -> np.ndarray:
    if null is None or Lfull is None:
        return np.zeros(0 if Lfull is None else Lfull.shape[0], dtype=bool)
    scale = np.maximum(1.0, np.abs(Lfull).max(axis=1))
    return np.abs(Lfull @ null).max(axis=1) > 1e-6 * scale


# ----- checks -----

def _as_list(x, what) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    try:
        out = list(x)
    except TypeError:
        raise ArgumentError(f"{what} must be a column name or a list of names, got {x!r}") from None
    if not all(isinstance(v, str) for v in out):
        raise ArgumentError(f"{what} must be column names (strings), got {x!r}")
    return out


def _check_names(names, kinds, what, fit):
    from ..validate import suggest

    for v in names:
        if v not in kinds:
            groups = {f for t in fit.frame.parsed.random for f in t.factors}
            if v in groups:
                raise ArgumentError(f"{what}={v!r} is a grouping factor of the random effects of {fit.formula!r}; "
                                    f"marginal means are over the fixed effects' factors "
                                    f"({', '.join(kinds) or 'none'}): use fit.ranef or predict for levels of {v!r}")
            raise ArgumentError(f"{what} names {v!r}, which is not a variable of the model's fixed effects "
                                f"({', '.join(kinds) or 'none'}){suggest(v, list(kinds))}")


def _check_options(fit, type, adjust, level, ddf):
    if type not in ("link", "response"):
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
    if str(adjust).lower() not in _ADJUST:
        raise ArgumentError(f"adjust must be one of {', '.join(map(repr, _ADJUST))}, got {adjust!r}")
    if not 0.0 < float(level) < 1.0:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    lmm = fit.kind == "lmm"
    d = ("satterthwaite" if lmm else "asymptotic") if ddf is None else str(ddf).lower().replace("_", "-")
    d = {"kr": "kenward-roger", "kenwardroger": "kenward-roger", "z": "asymptotic", "none": "asymptotic",
         "inf": "asymptotic"}.get(d, d)
    if d not in ("satterthwaite", "kenward-roger", "asymptotic"):
        raise ArgumentError(f"ddf must be None, 'satterthwaite', 'kenward-roger' or 'asymptotic', got {ddf!r}")
    if d != "asymptotic" and not lmm:
        raise ArgumentError(f"ddf={ddf!r} applies to linear mixed models; a GLMM's marginal means are asymptotic "
                            f"(z): use ddf=None or ddf='asymptotic'")
    return d


# ----- the estimand: linear in β, or a smooth function of (θ, β) -----

class _Estimand:
    """Estimates with the Jacobian J with respect to the parameters and the covariance of those
    parameters; ``linear`` when J is an L matrix in β (then df by Satterthwaite/Kenward-Roger).
    ``Lfull`` (the L rows over every column of the design, dropped ones too) and the design's null
    basis decide estimability; a nonlinear estimand carries its cells' mask ``bad`` instead."""

    def __init__(self, fit, est, J, cov, linear, ddf, Lfull=None, null=None, bad=None):
        self.fit, self.est, self.J, self.cov, self.linear, self.ddf = fit, est, J, cov, linear, ddf
        self.Lfull, self.null = Lfull, null
        if bad is None:
            bad = _not_estimable(Lfull, null) if Lfull is not None else np.zeros(est.shape[0], dtype=bool)
        self.bad = bad if bad.shape[0] == est.shape[0] else np.zeros(est.shape[0], dtype=bool)

    def transform(self, D):
        if self.Lfull is not None:
            return _Estimand(self.fit, D @ self.est, D @ self.J, self.cov, self.linear, self.ddf,
                             Lfull=D @ self.Lfull, null=self.null)
        bad = (np.abs(D) @ self.bad.astype(float)) > 0
        return _Estimand(self.fit, D @ self.est, D @ self.J, self.cov, self.linear, self.ddf, bad=bad)

    def values(self):
        """(estimate, SE, df), NaN where the function is not estimable."""
        est, se = self.est.copy(), np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", self.J, self.cov, self.J), 0.0))
        df = self._df()
        est[self.bad], se[self.bad], df[self.bad] = np.nan, np.nan, np.nan
        return est, se, df

    def _df(self):
        if self.ddf == "asymptotic" or not self.linear:
            return np.full(self.est.shape, np.inf)
        ok = ~self.bad
        out = np.full(self.est.shape, np.nan)
        if not ok.any():
            return out
        if self.ddf == "kenward-roger":
            from .kenward_roger import kenward_roger

            out[ok] = kenward_roger(self.fit).ddf_rows(self.J[ok])
        else:
            from .wald import satterthwaite_df

            out[ok] = satterthwaite_df(self.fit, self.J[ok])
        return out


def _beta_cov(fit, ddf):
    if ddf == "kenward-roger":
        from .kenward_roger import kenward_roger

        return kenward_roger(fit).phi_adj
    return fit._vcov


def _cells(grid, keys):
    """Cell index of each grid row for the variables ``keys`` and the cells' table (first key fastest)."""
    if not keys:
        return np.zeros(len(grid), dtype=int), pd.DataFrame({"1": ["overall"]})  # emmeans's ~ 1
    codes, uniques = [], []
    for k in keys:
        vals = list(dict.fromkeys(grid[k].tolist()))  # the grid's own order: its levels, its at= values
        lookup = {v: i for i, v in enumerate(vals)}
        codes.append(np.array([lookup[v] for v in grid[k].tolist()]))
        uniques.append(vals)
    sizes = [len(u) for u in uniques]
    idx = np.zeros(len(grid), dtype=int)
    mult = 1
    for c, s in zip(codes, sizes):
        idx += c * mult
        mult *= s
    present = np.unique(idx)
    table = []
    for cell in present:
        row, rem = {}, int(cell)
        for k, u, s in zip(keys, uniques, sizes):
            row[k] = u[rem % s]
            rem //= s
        table.append(row)
    remap = np.searchsorted(present, idx)
    out = pd.DataFrame(table, columns=keys)
    for k in keys:
        if isinstance(grid[k].dtype, pd.CategoricalDtype):
            out[k] = pd.Categorical(out[k], categories=grid[k].cat.categories, ordered=grid[k].cat.ordered)
    return remap, out


def _averager(idx, ncell):
    A = np.zeros((ncell, idx.shape[0]))
    A[idx, np.arange(idx.shape[0])] = 1.0
    return A / A.sum(axis=1, keepdims=True)


def _marginal_link_means(fit, theta, beta, X, off, cols, A):
    from .marginal import _means_from, _variances

    eta0 = X @ beta + off
    mu = _means_from(fit, eta0, _variances(fit, cols, theta))
    return A @ fit.family.link.link(mu)


def _marginal_estimand(fit, grid, idx, ncell, ddf):
    """Population-averaged link-scale means of the cells, with the Jacobian in (θ, β)."""
    from ..frame import term_columns

    cov = getattr(fit, "_param_cov", None)
    if cov is None or not np.all(np.isfinite(cov)):
        raise NotAvailableError("marginal=True needs the covariance of (θ, β) from the fit's Hessian, which this "
                                "fit does not have (PQL fits, or a Hessian that was not positive definite); use "
                                "marginal=False")
    X, off, Xf = _grid_design(fit, grid)
    cols = [term_columns(t.source, grid)[:, t.source_cols] for t in fit.structure.terms]
    A = _averager(idx, ncell)
    nt = fit._theta.shape[0]
    x0 = np.concatenate([fit._theta, fit._beta])

    def f(x):
        return _marginal_link_means(fit, x[:nt], x[nt:], X, off, cols, A)

    from ..fitting.driver import central_jacobian

    est, J = central_jacobian(f, x0)
    k = x0.shape[0]
    bad = _not_estimable(A @ Xf, _null_basis(fit))
    return _Estimand(fit, est, J, np.asarray(cov, dtype=float)[:k, :k], False, "asymptotic", bad=bad)


# ----- labels and contrasts -----

def _label_value(v) -> str:
    if isinstance(v, (float, np.floating)):
        return np.format_float_positional(float(v), trim="-", precision=15, unique=True)
    return str(v)


def _cell_labels(table, specs, kinds):
    labels = []
    prefix = {}
    for s in specs:
        vals = [_label_value(v) for v in table[s]]
        prefix[s] = kinds.get(s) == "covariate" or all(_NUMBER.match(v) for v in vals)
    for _, row in table.iterrows():
        parts = [(f"{s}{_label_value(row[s])}" if prefix[s] else _label_value(row[s])) for s in specs]
        labels.append(" ".join(parts))
    return labels


def _pairs(table, specs, by, kinds, sep):
    """Contrast matrix D (pairs × cells), their table (contrast, by...) and each pair's family."""
    labels = _cell_labels(table, specs, kinds)
    if by:
        groups = table[by].astype(object).apply(tuple, axis=1).tolist()
    else:
        groups = [()] * len(table)
    order = list(dict.fromkeys(groups))
    rows, info, family, sizes = [], [], [], {}
    for gi, g in enumerate(order):
        members = [i for i, gg in enumerate(groups) if gg == g]
        sizes[gi] = len(members)
        for a, b in itertools.combinations(members, 2):
            d = np.zeros(len(table))
            d[a], d[b] = 1.0, -1.0
            rows.append(d)
            entry = {"contrast": f"{labels[a]}{sep}{labels[b]}"}
            for k, v in zip(by, g):
                entry[k] = v
            info.append(entry)
            family.append(gi)
    D = np.array(rows).reshape(len(rows), len(table))
    out = pd.DataFrame(info, columns=["contrast"] + list(by))
    for k in by:
        if isinstance(table[k].dtype, pd.CategoricalDtype):
            out[k] = pd.Categorical(out[k], categories=table[k].cat.categories)
    return D, out, np.array(family, dtype=int), sizes


# ----- tables -----

def _table(left: pd.DataFrame, est, se, df, stat, p, lo, hi, attrs) -> pd.DataFrame:
    out = left.reset_index(drop=True).copy()
    out["estimate"] = est
    out["std_error"] = se
    out["df"] = df
    out["statistic"] = stat
    out["p_value"] = p
    out["ci_lower"] = lo
    out["ci_upper"] = hi
    out.attrs.update(attrs)
    return out


def _link_name(fit):
    return fit.family.link.name if fit.has_family else "identity"


def _means_table(fit, table, E, type, level, attrs):
    from scipy import stats

    est, se, df = E.values()
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    fin = np.isfinite(df)
    dfs = np.where(fin, df, 1.0)
    p = np.where(fin, 2.0 * stats.t.sf(np.abs(stat), dfs), 2.0 * stats.norm.sf(np.abs(stat)))
    q = np.where(fin, stats.t.ppf(0.5 + level / 2.0, dfs), stats.norm.ppf(0.5 + level / 2.0))
    lo, hi = est - q * se, est + q * se
    link = _link_name(fit)
    if type == "response" and link != "identity":
        lk = fit.family.link
        mu = lk.inverse(est)
        se = np.abs(lk.mu_eta(est)) * se
        a, b = lk.inverse(lo), lk.inverse(hi)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        est = mu
        attrs["scale"] = "response"
        attrs["note"] = f"intervals back-transformed from the {link} scale; tests of 0 on the {link} scale"
    else:
        attrs["scale"] = "link" if link != "identity" else "response"
    return _table(table, est, se, df, stat, p, lo, hi, attrs)


def _contrast_table(fit, ctab, E, family, sizes, type, adjust, level, attrs):
    est, se, df = E.values()
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    from .multiplicity import adjust_family

    p, crit = adjust_family(stat, df, family, sizes, adjust, level)
    lo, hi = est - crit * se, est + crit * se
    link = _link_name(fit)
    attrs["adjust"] = adjust
    if type == "response" and link in ("log", "logit"):
        r = np.exp(est)
        est, se, lo, hi = r, r * se, np.exp(lo), np.exp(hi)
        ctab = ctab.copy()
        ctab["contrast"] = ctab["contrast"].str.replace(" - ", " / ", regex=False)
        attrs["scale"] = "ratio" if link == "log" else "odds ratio"
        attrs["note"] = f"tests of 1 on the log {'ratio' if link == 'log' else 'odds ratio'} scale"
    else:
        attrs["scale"] = "link" if link != "identity" else "response"
        if type == "response" and link != "identity":
            attrs["note"] = f"contrasts stay differences on the {link} scale (only log and logit links give ratios)"
    return _table(ctab, est, se, df, stat, p, lo, hi, attrs)


def _setup(fit, specs, by, at, type, adjust, level, ddf, marginal, pairwise, what):
    ddf = _check_options(fit, type, adjust, level, ddf)
    specs = _as_list(specs, "specs")
    by = _as_list(by, "by")
    if not specs:
        raise ArgumentError(f"{what} needs specs: the factor(s) whose means are wanted, e.g. specs='period' "
                            f"(or specs='1' for the grand mean over the grid, emmeans's ~ 1)")
    specs = [s for s in specs if s.strip() != "1"]  # "1": one cell, the whole grid (emmeans's ~ 1)
    if pairwise and not specs:
        raise ArgumentError("pairwise=True compares levels: specs='1' has one cell; name a factor in specs")
    if marginal and not fit.has_family:
        marginal = False  # identity link: the population average is the conditional mean
    grid, kinds = reference_grid(fit, at=at, extra_random=marginal)
    _check_names(specs, kinds, "specs", fit)
    _check_names(by, kinds, "by", fit)
    overlap = set(specs) & set(by)
    if overlap:
        raise ArgumentError(f"{sorted(overlap)} appear(s) in both specs and by; a variable is either compared "
                            f"(specs) or conditioned on (by)")
    given = set() if at is None else set(at)
    for v in specs + by:
        if kinds[v] == "covariate" and (pairwise or v in by) and (v not in given or np.ndim(at[v]) == 0):
            raise ArgumentError(
                f"{'specs' if v in specs else 'by'}={v!r} is a numeric covariate: it sits at one value (its mean) "
                f"in the reference grid, so there is nothing to compare; give the values to compare with "
                f"at={{{v!r}: [v1, v2, ...]}}, or use emtrends(..., var={v!r}) for its slope")
    return ddf, specs, by, grid, kinds, marginal


def emmeans(fit, specs, by=None, type="link", pairwise=False, adjust="tukey", at=None, level=0.95,
            marginal=False, ddf=None) -> pd.DataFrame:
    """Estimated marginal means of factor levels, or their pairwise contrasts (R's emmeans).

    The engine behind :meth:`MixedModelFit.emmeans`, which documents the arguments in full.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    specs : str or list of str
        The factor(s) whose level means are wanted (several: their combinations).
    by : str or list of str, optional
        Factors to condition on: means, and contrasts, within each of their levels.
    type : {"link", "response"}, default "link"
        Means on the linear-predictor scale, or back-transformed through the inverse link
        (contrasts then become ratios or odds ratios).
    pairwise : bool, default False
        Return every pairwise contrast ``"A - B"`` instead of the means.
    adjust : {"tukey", "holm", "bonferroni", "none"}, default "tukey"
        Multiplicity adjustment of the contrasts' p-values and intervals within each ``by`` group.
    at : dict, optional
        Grid values for covariates (a scalar or a list) or a subset of a factor's levels; by default
        every factor at all its levels and every covariate at its mean.
    level : float, default 0.95
        Confidence level of the intervals.
    marginal : bool, default False
        GLMMs: population-averaged means (the conditional mean averaged over the random effects);
        asymptotic only.
    ddf : {None, "satterthwaite", "kenward-roger", "asymptotic"}, optional
        Degrees of freedom: Satterthwaite for LMMs by default, asymptotic (z) for GLMMs.

    Returns
    -------
    pandas.DataFrame
        One row per cell (or contrast): the specs (or ``contrast``) and by columns, estimate,
        std_error, df, statistic, p_value, ci_lower, ci_upper; ``attrs`` record the estimand, ddf,
        level, link and reference grid.

    Raises
    ------
    ArgumentError
        An unknown variable, a variable in both specs and by, or a covariate compared without grid values.
    """
    ddf, specs, by, grid, kinds, marginal = _setup(fit, specs, by, at, type, adjust, level, ddf, marginal,
                                                   pairwise, "emmeans")
    idx, table = _cells(grid, specs + by)
    if marginal:
        if ddf != "asymptotic":
            raise ArgumentError("marginal=True means are asymptotic (delta method in θ and β): use ddf=None")
        E = _marginal_estimand(fit, grid, idx, len(table), ddf)
    else:
        X, off, Xf = _grid_design(fit, grid)
        A = _averager(idx, len(table))
        L = A @ X
        E = _Estimand(fit, L @ fit._beta + A @ off, L, _beta_cov(fit, ddf), True, ddf, Lfull=A @ Xf,
                      null=_null_basis(fit))
    attrs = {"estimand": "population-averaged mean" if marginal else "marginal mean", "ddf": ddf,
             "level": level, "link": _link_name(fit), "grid": grid}
    if not pairwise:
        return _means_table(fit, table, E, type, level, attrs)
    D, ctab, family, sizes = _pairs(table, specs, by, kinds, " - ")
    return _contrast_table(fit, ctab, E.transform(D), family, sizes, type, str(adjust).lower(), level, attrs)


def emtrends(fit, specs, var, by=None, type="link", pairwise=False, adjust="tukey", at=None, level=0.95,
             ddf=None) -> pd.DataFrame:
    """Slopes of a numeric covariate per level of factors, or their pairwise differences (R's emtrends).

    The engine behind :meth:`MixedModelFit.emtrends`.  Slopes are central differences of the
    reference-grid predictions with a step of 1e-4 times the covariate's range.

    Parameters
    ----------
    fit : MixedModelFit
        The fitted LMM or GLMM.
    specs : str or list of str
        The factor(s) whose slopes are wanted.
    var : str
        The numeric covariate to differentiate with respect to (not in specs or by).
    by, pairwise, adjust, at, level, ddf
        As :func:`emmeans`.
    type : {"link", "response"}, default "link"
        Slope of the linear predictor, or (GLMMs with a non-identity link) of the conditional mean
        averaged over the grid (then asymptotic, delta-method SEs).

    Returns
    -------
    pandas.DataFrame
        As :func:`emmeans`: specs (or contrast) and by columns, estimate (change per unit of ``var``),
        std_error, df, statistic, p_value, ci_lower, ci_upper; ``attrs["scale"]`` names the scale.

    Raises
    ------
    ArgumentError
        ``var`` is not a numeric covariate of the model, or is also in specs or by.
    """
    ddf, specs, by, grid, kinds, _ = _setup(fit, specs, by, at, type, adjust, level, ddf, False, pairwise,
                                            "emtrends")
    if not isinstance(var, str) or var not in kinds:
        _check_names([var] if isinstance(var, str) else [str(var)], kinds, "var", fit)
    if kinds[var] != "covariate":
        raise ArgumentError(f"var={var!r} is a factor; emtrends differentiates with respect to a numeric "
                            f"covariate (compare a factor's levels with emmeans(..., pairwise=True))")
    if var in specs or var in by:
        raise ArgumentError(f"var={var!r} cannot also be in specs or by")
    idx, table = _cells(grid, specs + by)
    col = fit.frame.data[var].to_numpy(dtype=float)
    h = 1e-4 * max(float(np.ptp(col)), 1e-8)
    Xp, offp, Xpf = _grid_design(fit, grid, shift=(var, h))
    Xm, offm, Xmf = _grid_design(fit, grid, shift=(var, -h))
    null = _null_basis(fit)
    A = _averager(idx, len(table))
    link = _link_name(fit)
    if type == "response" and link != "identity":
        lk = fit.family.link
        ep, em = Xp @ fit._beta + offp, Xm @ fit._beta + offm
        slope = (lk.inverse(ep) - lk.inverse(em)) / (2.0 * h)
        G = (lk.mu_eta(ep)[:, None] * Xp - lk.mu_eta(em)[:, None] * Xm) / (2.0 * h)
        E = _Estimand(fit, A @ slope, A @ G, fit._vcov, False, "asymptotic",
                      bad=_not_estimable(A @ ((Xpf - Xmf) / (2.0 * h)), null))
        scale = "response"
    else:
        L = A @ ((Xp - Xm) / (2.0 * h))
        E = _Estimand(fit, L @ fit._beta + A @ ((offp - offm) / (2.0 * h)), L, _beta_cov(fit, ddf), True, ddf,
                      Lfull=A @ ((Xpf - Xmf) / (2.0 * h)), null=null)
        scale = "link" if link != "identity" else "response"
    attrs = {"estimand": f"trend of {var}", "ddf": ddf, "level": level, "link": link, "grid": grid}
    if not pairwise:
        out = _means_table(fit, table, E, "link", level, attrs)
        out.attrs["scale"] = scale
        return out
    D, ctab, family, sizes = _pairs(table, specs, by, kinds, " - ")
    out = _contrast_table(fit, ctab, E.transform(D), family, sizes, "link", str(adjust).lower(), level, attrs)
    out.attrs["scale"] = scale
    return out
