"""Plots of a fitted mixed model: random effects, shrinkage, simulated residuals, effect curves.

matplotlib is an optional dependency (``pip install glmmkit[plot]``); it is imported inside each
function so that fitting never needs it.  Every function returns the matplotlib Figure and
draws into caller-supplied axes when given them.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..exceptions import ArgumentError, DataError

__all__ = ["plot_caterpillar", "plot_shrinkage", "plot_residuals", "plot_effects", "plot_correlation"]

#: above this many levels a panel shows no level names (they would overprint)
_MAX_LABELLED_LEVELS = 40


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ArgumentError(
            "plotting needs matplotlib, which is an optional extra: pip install glmmkit[plot]"
        ) from None
    return plt


def _axes_for(n_panels, axes, ncols_max=3, panel_size=(4.2, 3.6), name="axes"):
    """Figure and a flat list of ``n_panels`` axes: the caller's, or a new grid (unused cells hidden)."""
    plt = _pyplot()
    if axes is not None:
        flat = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(flat) < n_panels:
            raise ArgumentError(f"{name} must hold {n_panels} matplotlib Axes for this plot, got {len(flat)}")
        return flat[0].figure, flat[:n_panels]
    ncols = min(n_panels, ncols_max)
    nrows = int(np.ceil(n_panels / ncols))
    # constrained layout keeps suptitles, colorbars and long tick labels clear of each other
    fig, grid = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False,
                             layout="constrained")
    flat = list(grid.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _axes_arg(ax, axes):
    """``ax=`` is the keyword of every plot (one Axes or a sequence); ``axes=`` is kept as its alias."""
    if ax is not None and axes is not None:
        raise ArgumentError("give ax= or axes= (its alias), not both")
    chosen = ax if ax is not None else axes
    if chosen is None:
        return None
    return [chosen] if hasattr(chosen, "figure") and hasattr(chosen, "plot") else chosen


def _tidy(fig):
    """Lay out a figure drawn into the caller's axes (ours use constrained layout already)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()


def _factor_names(fit, factor):
    names = [blk.factor.name for blk in fit.structure.blocks]
    if factor is None:
        return names
    wanted = [factor] if isinstance(factor, str) else list(factor)
    unknown = [f for f in wanted if f not in names]
    if unknown:
        raise ArgumentError(f"factor {unknown[0]!r} is not a grouping factor of this model; use one of {names}")
    return wanted


# ----------------------------------------------------------------------------------------------
# caterpillar plot
# ----------------------------------------------------------------------------------------------

def plot_caterpillar(fit, factor=None, level: float = 0.95, ax=None, sort_by=None, axes=None):
    """Caterpillar plot: each level's predicted random effect with its conditional interval.

    One panel per grouping factor and term column, with a line at zero (the population value);
    the levels of a factor are in one order in every panel of that factor (sorted by its first
    term's estimate, as lme4's ``dotplot(ranef(fit))``), so a level sits on the same row in
    each; bars are b̂ ± z·sd with sd from the conditional variances (``fit.condvar``, lme4's
    ``condVar``).

    Parameters
    ----------
    fit : fitted model
    factor : str or list of str, optional
        Grouping factor(s) to draw; all by default.
    level : float, default 0.95
        Coverage of the bars (0.95: ±1.96 sd).
    ax : matplotlib Axes or sequence of Axes, optional
        One per panel (``axes=`` is an alias).
    sort_by : str, optional
        The term whose estimates order the levels (default: each factor's first term); a
        factor without that term keeps its first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    z = norm.ppf(0.5 + level / 2.0)
    panels = []
    for name in _factor_names(fit, factor):
        est = fit.ranef[name]
        sd = np.sqrt(np.maximum(np.diagonal(fit._condvar[name], axis1=1, axis2=2), 0.0))
        key = sort_by if sort_by in list(est.columns) else None
        first = list(est.columns).index(key) if key is not None else 0
        order = np.argsort(est.iloc[:, first].to_numpy(), kind="stable")  # one order for the factor's panels
        for j, term in enumerate(est.columns):
            panels.append((name, term, est.index.astype(str).to_numpy(), est[term].to_numpy(), sd[:, j], order,
                           est.columns[first]))
    if sort_by is not None and not any(p[6] == sort_by for p in panels):
        raise ArgumentError(f"sort_by={sort_by!r} is not a random-effect term of the factors drawn")
    # tall enough for a readable label per level; unlabelled panels need no more than a screen
    labelled = [p[2].shape[0] for p in panels if p[2].shape[0] <= _MAX_LABELLED_LEVELS]
    height = float(np.clip(1.0 + 0.2 * max(labelled), 3.0, 9.0)) if labelled else 5.0
    fig, flat = _axes_for(len(panels), _axes_arg(ax, axes), ncols_max=3, panel_size=(4.2, height))
    for k, (a, (name, term, labels, b, s, order, key)) in enumerate(zip(flat, panels)):
        pos = np.arange(b.shape[0])
        a.axvline(0.0, color="0.35", lw=1.0, ls="--", zorder=0, label="0: the population value")
        a.errorbar(b[order], pos, xerr=z * s[order], fmt="o", ms=3.5, color="C0", ecolor="C0", elinewidth=1.0,
                   capsize=0, label=f"conditional mode ± {z:.2f} sd")
        if k == 0:
            a.legend(fontsize=7, frameon=True, framealpha=0.85, loc="lower right")
        ax = a
        if b.shape[0] <= _MAX_LABELLED_LEVELS:
            ax.set_yticks(pos)
            ax.set_yticklabels(labels[order], fontsize=max(5.0, min(9.0, 300.0 / b.shape[0])))
        else:
            ax.set_yticks([])
            ax.set_ylabel(f"{b.shape[0]} levels (sorted)")
        ax.set_ylim(-0.8, b.shape[0] - 0.2)
        ax.set_title(f"{name}: {term}", fontsize=10)
        ax.set_xlabel(f"random effect ± {z:.2f} sd")
        ax.grid(axis="x", color="0.92")
    keys = dict.fromkeys((p[0], p[6]) for p in panels)
    how = "; ".join(f"{n} ordered by {k}" for n, k in keys)
    fig.suptitle(f"Conditional modes of the random effects ({how}, the same rows in each panel)", fontsize=11)
    _tidy(fig)
    return fig


# ----------------------------------------------------------------------------------------------
# shrinkage plot
# ----------------------------------------------------------------------------------------------

def _continuity_no_pooling(fit, blk, term_index):
    """A level's intercept from its own (continuity-corrected) mean, for levels whose maximum-
    likelihood estimate does not exist (all zeros, all successes): link(corrected mean) minus
    the level's mean linear predictor from the rest of the model."""
    codes, q = blk.factor.codes, blk.q
    b = fit._b[blk.offset : blk.offset + blk.size].reshape(q, blk.K)
    base = fit._eta() - np.einsum("ik,ik->i", blk.columns, b[codes])
    y = np.asarray(fit.frame.y, dtype=float)
    wt = np.asarray(fit._problem.wt, dtype=float)
    total = np.bincount(codes, wt * y, minlength=q)
    trials = np.bincount(codes, wt, minlength=q)
    n = np.bincount(codes, minlength=q)
    if fit.family.name == "binomial":
        mean = (total + 0.5) / (trials + 1.0)  # half a success and half a failure: the empirical logit
    else:
        mean = (total + 0.5) / np.maximum(trials, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        return fit.family.link.link(mean) - np.bincount(codes, base, minlength=q) / np.maximum(n, 1)


def plot_shrinkage(fit, factor=None, term=None, ax=None, axes=None):
    """Shrinkage plot: each level's no-pooling estimate against its partial-pooling prediction.

    The no-pooling estimate is the level's own maximum-likelihood effect with the rest of the
    model held at the fit (``fit.shrinkage()``); levels where it does not exist (a binary
    cluster of all 0 or all 1, a count cluster of zeros) get a continuity-corrected estimate
    (empirical logit: half a success and half a failure added) drawn as open markers.  Both are
    shown on the link scale including the term's fixed effect, so the horizontal line is the
    population value; points on the dashed diagonal are not shrunk, points on the horizontal
    line fully.  Marker area grows with the cluster size.

    Parameters
    ----------
    fit : fitted model
    factor : str, optional
        Grouping factor; the first (most levels) by default.
    term : str or list of str, optional
        Random-effect column(s) of that factor; all by default (one panel each).
    ax : matplotlib Axes or sequence of Axes, optional
        One per panel (``axes=`` is an alias).

    Returns
    -------
    matplotlib.figure.Figure
    """
    name = _factor_names(fit, factor)[0]
    blk = next(b for b in fit.structure.blocks if b.factor.name == name)
    table = fit.shrinkage()[name]
    terms = list(blk.names) if term is None else ([term] if isinstance(term, str) else list(term))
    unknown = [t for t in terms if t not in blk.names]
    if unknown:
        raise ArgumentError(f"term {unknown[0]!r} is not a random effect of {name!r}; use one of {list(blk.names)}")
    n = table[("n", "")].to_numpy().astype(float)
    size_label = "cluster size (rows)"
    if fit.has_family and fit.family.name == "binomial" and np.any(fit._problem.wt > 1):
        # with several trials per row the information a cluster carries is its number of trials
        n = np.bincount(blk.factor.codes, fit._problem.wt, minlength=blk.q).astype(float)
        size_label = "cluster size (trials)"
    fig, flat = _axes_for(len(terms), _axes_arg(ax, axes), ncols_max=3, panel_size=(4.6, 4.2))
    fixef = dict(zip(fit.x_names, fit._beta))
    scale = "link scale" if fit.has_family else "response scale"
    equal_sizes = n.min() == n.max()
    area = 12.0 + 120.0 * (n - n.min()) / max(n.max() - n.min(), 1.0) if not equal_sizes else np.full(n.shape, 30.0)
    for ax, t in zip(flat, terms):
        j = list(blk.names).index(t)
        pop = float(fixef.get(t, 0.0))
        nopool = table[(t, "no_pooling")].to_numpy().astype(float)
        partial = table[(t, "partial_pooling")].to_numpy().astype(float)
        corrected = ~np.isfinite(nopool)
        if corrected.any() and t == "(Intercept)" and fit.has_family:
            nopool = np.where(corrected, _continuity_no_pooling(fit, blk, j), nopool)
        shown = np.isfinite(nopool)
        x, yv = nopool + pop, partial + pop
        ok = shown & ~corrected
        colour = dict(color="C0") if equal_sizes else dict(c=n[ok], cmap="viridis", vmin=n.min(), vmax=n.max())
        sc = ax.scatter(x[ok], yv[ok], s=area[ok], alpha=0.8, edgecolors="k", linewidths=0.4, **colour)
        cc = shown & corrected
        if cc.any():
            ax.scatter(x[cc], yv[cc], s=area[cc], facecolors="none", edgecolors="C3", linewidths=1.0,
                       label="continuity-corrected")
        finite = np.concatenate([x[shown], yv[shown]])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (pop - 1.0, pop + 1.0)
        pad = 0.05 * max(hi - lo, 1e-8)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", color="0.5", lw=0.9, label="no shrinkage")
        ax.axhline(pop, color="C1", lw=1.2, label="population value")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(f"no pooling ({scale})")
        ax.set_ylabel(f"partial pooling ({scale})")
        ax.set_title(f"{name}: {t}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", frameon=False)
        dropped = int((~shown).sum())
        if dropped:
            ax.annotate(f"{dropped} level(s) without an estimate not shown", (0.99, 0.01), xycoords="axes fraction",
                        ha="right", va="bottom", fontsize=7, color="0.4")
    if equal_sizes:
        fig.suptitle(f"Shrinkage of the random effects (every cluster: {size_label.split('(')[1][:-1]} = {n[0]:g})",
                     fontsize=11)
    else:
        fig.colorbar(sc, ax=flat, shrink=0.8, pad=0.02).set_label(size_label)
        fig.suptitle("Shrinkage of the random effects", fontsize=11)
    _tidy(fig)
    return fig


# ----------------------------------------------------------------------------------------------
# residual diagnostics
# ----------------------------------------------------------------------------------------------

def _as_residuals(obj, n_sim, seed, re_form):
    # plots read residuals, never make them themselves: a fit makes its own (DiagnosticsMixin)
    if hasattr(obj, "scaled") and hasattr(obj, "uniformity_test"):
        return obj
    if not hasattr(obj, "simulate_residuals"):
        raise ArgumentError(
            f"plot_residuals needs a fitted model or a SimulatedResiduals object, got {type(obj).__name__}"
        )
    return obj.simulate_residuals(n_sim=n_sim, seed=seed, re_form=re_form)


def _binned_quantiles(x, r, probs, n_bins):
    """Quantiles of r within equal-count bins of x (a cheap stand-in for quantile regression); with
    few distinct predictions (a binary covariate, a balanced design) one bin per distinct value, as
    a bin across a tie would mix groups."""
    values, inverse = np.unique(x, return_inverse=True)
    if values.shape[0] <= 2 * n_bins:
        bins = [np.flatnonzero(inverse == k) for k in range(values.shape[0])]
        bins = [b for b in bins if b.shape[0] >= 5]
    else:
        bins = np.array_split(np.argsort(x, kind="stable"), n_bins)
    centres = np.array([np.mean(x[b]) for b in bins])
    qs = np.array([np.quantile(r[b], probs) for b in bins]).reshape(len(bins), len(probs))
    return centres, qs, values.shape[0] <= 2 * n_bins


def _simulation_hist(ax, test, title, xlabel, ratio_name="ratio"):
    ax.hist(test.simulated, bins=min(30, max(10, test.simulated.shape[0] // 8)), color="0.75", edgecolor="white",
            label="simulated")
    ax.axvline(test.observed, color="C3", lw=2.0, label="observed")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("simulations")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels (0.0875) must not run together
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    ax.annotate(f"{ratio_name} = {test.ratio:.3g}\np = {test.p_value:.3g}", (0.02, 0.97), xycoords="axes fraction",
                ha="left", va="top", fontsize=8, bbox=dict(boxstyle="round", fc="white", ec="0.8"))


def plot_residuals(obj, n_sim: int = 250, seed=None, re_form=None, ax=None, axes=None):
    """Diagnostic panel of simulated scaled residuals (as DHARMa's ``plot``).

    Panels: a uniform QQ plot with the KS, dispersion and outlier tests' p-values; residuals
    against the rank-transformed prediction with the 0.25/0.5/0.75 quantiles of the residuals
    in bins of the prediction (flat at the dashed lines if the model is right); the simulated
    distribution of the dispersion statistic with the observed value; and for count and
    binomial families the simulated number of zeros with the observed one.

    Parameters
    ----------
    obj : fitted model or SimulatedResiduals
        A fit is simulated first with ``n_sim``, ``seed`` and ``re_form``
        (see :func:`glmmkit.diagnostics.simulate_residuals`).
    n_sim, seed, re_form
        Used only when ``obj`` is a fit.
    ax : sequence of 3 (4 for count and binomial families) matplotlib Axes, optional
        ``axes=`` is an alias.

    Returns
    -------
    matplotlib.figure.Figure
    """
    res = _as_residuals(obj, n_sim, seed, re_form)
    n_panels = 4 if res.integer_response else 3
    fig, flat = _axes_for(n_panels, _axes_arg(ax, axes), ncols_max=2, panel_size=(4.8, 4.0))
    r = res.scaled
    n = r.shape[0]
    ks, disp, out = res.uniformity_test(), res.dispersion_test(), res.outlier_test()
    marker = dict(s=max(3.0, min(14.0, 4000.0 / n)), alpha=float(np.clip(400.0 / n, 0.3, 0.8)), lw=0)

    ax = flat[0]
    expected = (np.arange(1, n + 1) - 0.5) / n
    ax.scatter(expected, np.sort(r), color="C0", **marker)
    ax.plot([0, 1], [0, 1], color="C3", lw=1.0, label="uniform (model right)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("expected (uniform)")
    ax.set_ylabel("observed scaled residual")
    ax.set_title("QQ plot of scaled residuals", fontsize=10)
    flag = lambda p: " (!)" if p < 0.05 else ""  # noqa: E731
    ax.annotate(f"KS p = {ks.p_value:.3g}{flag(ks.p_value)}\ndispersion (simulated) p = {disp.p_value:.3g}"
                f"{flag(disp.p_value)}\n"
                f"outliers p = {out.p_value:.3g}{flag(out.p_value)}",
                (0.03, 0.97), xycoords="axes fraction", ha="left", va="top", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="0.8"))

    ax = flat[1]
    # ranks spread the predictions evenly, so clumps of similar fitted values do not hide the rest
    x = (pd.Series(res.fitted).rank(method="average").to_numpy() - 0.5) / n
    ax.scatter(x, r, color="C0", **marker)
    for k, p in enumerate((0.25, 0.5, 0.75)):
        ax.axhline(p, color="0.5", ls="--", lw=0.8, label="expected quartiles (0.25, 0.5, 0.75)" if k == 0 else None)
    if n >= 30:
        centres, qs, distinct = _binned_quantiles(x, r, [0.25, 0.5, 0.75], int(np.clip(n // 25, 3, 12)))
        style = "-o" if distinct else "-"
        for k, p in enumerate((0.25, 0.5, 0.75)):
            label = "median of residuals" if p == 0.5 else ("quartiles of residuals" if p == 0.25 else None)
            ax.plot(centres, qs[:, k], style, color="C3" if p == 0.5 else "C1", lw=1.6, ms=4, label=label)
    outl = res.outliers()
    if outl.size:
        ax.scatter(x[outl], r[outl], color="C3", marker="*", s=40, zorder=3, label="outside all simulations")
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted (rank transformed)")
    ax.set_ylabel("scaled residual")
    ax.set_title("Residuals vs predicted" + (f" (\u2605 {outl.size} outside all simulations)" if outl.size else ""),
                 fontsize=10)

    _simulation_hist(flat[2], disp, "Dispersion (simulated)", "variance of residuals",
                     "observed / simulated")
    if res.integer_response:
        _simulation_hist(flat[3], res.zero_inflation_test(), "Zero inflation", "number of zeros", "observed / simulated")
    kind = "conditional on the random effects" if res.conditional else "new random effects"
    fig.suptitle(f"Simulated residuals ({res.family}, {res.n_sim} simulations, {kind})", fontsize=11)
    _tidy(fig)
    return fig


# ----------------------------------------------------------------------------------------------
# effect curves
# ----------------------------------------------------------------------------------------------

def _reference_row(data: pd.DataFrame) -> dict:
    """Numeric columns at their mean, the others at their reference (first) level."""
    row = {}
    for col in data.columns:
        s = data[col]
        if pd.api.types.is_bool_dtype(s):
            row[col] = False
        elif pd.api.types.is_numeric_dtype(s):
            row[col] = float(s.mean())
        elif isinstance(s.dtype, pd.CategoricalDtype):
            row[col] = s.cat.categories[0]
        else:
            row[col] = sorted(s.dropna().unique(), key=str)[0]
    return row


def plot_effects(fit, variable: str, n_points: int = 100, n_clusters: int = 0, factor=None, seed=None, ax=None):
    """Conditional and marginal effect of one numeric covariate on the response scale.

    The conditional curve is the mean for a cluster whose random effects are zero; the marginal
    (population-averaged) curve averages the mean over the random effects
    (``fit.predict(..., marginal=True)``).  With a non-identity link they differ: the marginal
    curve is flatter.  Other covariates are held at their mean (numeric) or reference level.

    Parameters
    ----------
    fit : fitted model
    variable : str
        A numeric column used by the fixed effects.
    n_points : int, default 100
        Points along the covariate's observed range.
    n_clusters : int, default 0
        Also draw this many cluster-specific curves (levels of ``factor`` drawn at random), in grey.
    factor : str, optional
        Grouping factor of the cluster curves; the first by default.
    seed : int or numpy Generator, optional
        Which clusters are drawn.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = fit.frame.data
    numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])
               and c != fit.frame.response_name]
    if variable not in data.columns:
        raise ArgumentError(f"variable {variable!r} is not a column the model uses; numeric ones: {numeric}")
    if variable not in numeric:
        raise ArgumentError(f"variable {variable!r} is not numeric; plot_effects draws curves of a numeric "
                            f"covariate, one of {numeric}")
    if not re.search(rf"(?<![\w.]){re.escape(variable)}(?![\w.])", str(fit.frame.parsed.fixed_rhs)):
        # e.g. the trials column of cbind(successes, trials - successes): its curve would be flat
        raise ArgumentError(f"variable {variable!r} is not in the fixed effects ({fit.frame.parsed.fixed_rhs}); "
                            "plot_effects draws a covariate of the fixed part")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ArgumentError(f"n_points must be a whole number of at least 2, got {n_points!r}")
    grid = np.linspace(float(data[variable].min()), float(data[variable].max()), int(n_points))
    nd = pd.DataFrame({k: [v] * grid.shape[0] for k, v in _reference_row(data).items()})
    for col in data.columns:
        if isinstance(data[col].dtype, pd.CategoricalDtype):
            nd[col] = pd.Categorical(nd[col], categories=data[col].cat.categories)
    nd[variable] = grid
    glmm = fit.has_family
    if glmm:
        conditional = fit.predict(nd, re_form="~0", type="response")
        marginal = fit.predict(nd, type="response", marginal=True)
    else:
        conditional = marginal = fit.predict(nd, re_form="~0")
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 4.4), layout="constrained")
    else:
        fig = ax.figure
    if n_clusters:
        name = _factor_names(fit, factor)[0]
        levels = next(b for b in fit.structure.blocks if b.factor.name == name).factor.levels
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        chosen = rng.choice(len(levels), size=min(int(n_clusters), len(levels)), replace=False)
        # every chosen cluster's grid in one frame: one prediction call for all curves
        many = pd.concat([nd] * chosen.shape[0], ignore_index=True)
        lv = np.repeat(np.asarray(levels, dtype=object)[chosen], grid.shape[0])
        many[name] = pd.Categorical(lv, categories=data[name].cat.categories) \
            if isinstance(data[name].dtype, pd.CategoricalDtype) else lv
        try:
            curves = fit._predict_array(many, type="response").reshape(chosen.shape[0], -1)
        except DataError:
            # a factor built from several columns (a:b, nesting) has no single column to set
            raise ArgumentError(f"cluster curves need {name!r} to be a column of the data; use n_clusters=0") from None
        for k, c in enumerate(curves):
            ax.plot(grid, c, color="0.6", lw=0.8, alpha=0.7, label=f"clusters of {name} ({chosen.shape[0]})" if k == 0 else None)
    ax.plot(grid, conditional, color="C0", lw=2.2, label="conditional (random effects = 0)")
    ax.plot(grid, marginal, color="C3", lw=2.2, ls="--", label="marginal (population-averaged)")
    if data[variable].nunique() <= 200:
        # a rug of the observed values, just above the axis so it is not read as tick marks
        ax.plot(data[variable].to_numpy(), np.full(data.shape[0], 0.03), "|", color="k", alpha=0.3, ms=8,
                transform=ax.get_xaxis_transform(), label="_rug")
    ax.set_xlabel(variable)
    ylabel = f"mean of {fit.frame.response_name}" if fit.frame.response_name else "mean response"
    if glmm and fit.family.name == "binomial":
        ylabel = "probability"
    ax.set_ylabel(ylabel)
    ax.set_title(f"Effect of {variable}" + ("" if glmm else " (identity link: the curves coincide)"), fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    _tidy(fig)
    return fig


def plot_correlation(fit, max_lag=None, ax=None):
    """Within-cluster correlation of the marginal residuals by lag: the data's (points, sized by the
    number of pairs) beside the fitted model's (line), as nlme's ``Variogram`` checks a correlation
    structure.  See :func:`glmmkit.diagnostics.correlation.correlation_by_lag`.

    Parameters
    ----------
    fit : LmmFit
        With a residual structure or a structured random-effect term over time.
    max_lag : float, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure
    """
    from .correlation import correlation_by_lag

    tab = correlation_by_lag(fit, max_lag=max_lag)
    fig, (ax,) = _axes_for(1, None if ax is None else [ax], name="ax")
    size = 20 + 180 * tab["n_pairs"] / tab["n_pairs"].max()
    ax.scatter(tab.index, tab["empirical"], s=size, alpha=0.6, label="data (marginal residuals)")
    ax.plot(tab.index, tab["fitted"], "-o", color="C3", ms=3, label="fitted model")
    ax.axhline(0.0, color="0.6", lw=0.8, label="no correlation")
    ax.set_xlabel("lag")
    ax.set_ylabel("within-cluster correlation")
    R = getattr(fit, "residual_structure", None)
    what = f"residual {R.description}" if R is not None else "random-effect structure"
    ax.set_title(f"Correlation by lag\n({what})", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    _tidy(fig)
    return fig
