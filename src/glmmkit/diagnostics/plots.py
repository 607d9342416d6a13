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


def _wrapped(text, fig, fontsize):
    """``text`` broken into lines that fit the figure's width (a suptitle wider than the figure is cut
    off at both ends by ``savefig`` without ``bbox_inches="tight"``)."""
    import textwrap

    width_pt = fig.get_figwidth() * 72.0
    chars = max(20, int(width_pt / (0.58 * fontsize)))  # a generous average glyph width
    return textwrap.fill(text, width=chars, break_on_hyphens=False)


def _legend_below(fig, ax, ncol=2, fontsize=7):
    """The legend of ``ax`` under the plot, where it covers no data: in a figure of ours (constrained
    layout) a figure legend in the space the layout keeps below the axes; in the caller's axes under
    the x label."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    engine = fig.get_layout_engine()
    if engine is not None and type(engine).__name__ == "ConstrainedLayoutEngine":
        return fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=fontsize, frameon=False)
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol,
                     fontsize=fontsize, frameon=False)


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
    fit : LmmFit or GlmmFit
        The fitted model whose predicted random effects (``fit.ranef``) are drawn.
    factor : str or list of str, optional
        Grouping factor(s) to draw; all by default.
    level : float, default 0.95
        Coverage of the bars (0.95: ±1.96 sd).
    ax : matplotlib Axes or sequence of Axes, optional
        One per panel; a new figure when omitted.
    sort_by : str, optional
        The term whose estimates order the levels (default: each factor's first term); a
        factor without that term keeps its first.
    axes : matplotlib Axes or sequence of Axes, optional
        Alias of ``ax`` (give one of the two, not both).

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
    _legend_below(fig, flat[0])
    keys = dict.fromkeys((p[0], p[6]) for p in panels)
    how = "; ".join(f"{n} ordered by {k}" for n, k in keys)
    if len(panels) > len(keys):  # some factor has several panels
        how += ", the same rows in each panel"
    fig.suptitle(_wrapped(f"Conditional modes of the random effects ({how})", fig, 11), fontsize=11)
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
    fit : LmmFit or GlmmFit
        The fitted model; its ``shrinkage()`` table gives the no-pooling estimates.
    factor : str, optional
        Grouping factor; the first (most levels) by default.
    term : str or list of str, optional
        Random-effect column(s) of that factor; all by default (one panel each).
    ax : matplotlib Axes or sequence of Axes, optional
        One per panel; a new figure when omitted.
    axes : matplotlib Axes or sequence of Axes, optional
        Alias of ``ax`` (give one of the two, not both).

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
        unit = size_label.split("(")[1][:-1]
        title = f"Shrinkage of the random effects of {name} (all {n.shape[0]} clusters have {n[0]:g} {unit} each)"
    else:
        fig.colorbar(sc, ax=flat, shrink=0.8, pad=0.02).set_label(size_label)
        title = f"Shrinkage of the random effects of {name}"
    fig.suptitle(_wrapped(title, fig, 11), fontsize=11)
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
    counts, _, _ = ax.hist(test.simulated, bins=min(30, max(10, test.simulated.shape[0] // 8)), color="0.75",
                           edgecolor="white", label="simulated")
    # headroom above the tallest bar for the text box and the legend
    ax.set_ylim(0.0, 1.45 * max(float(np.max(counts)) if counts.size else 1.0, 1.0))
    ax.axvline(test.observed, color="C3", lw=2.0, label="observed")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("simulations")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels (0.0875) must not run together
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    ratio = f"{test.ratio:.2f}" if abs(test.ratio) >= 0.1 else f"{test.ratio:.3g}"  # 1.00, not 1
    ax.annotate(f"{ratio_name} = {ratio}\np = {test.p_value:.3g}", (0.02, 0.97), xycoords="axes fraction",
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
        Used only when ``obj`` is a fit: the number of simulations (int, default 250), the
        random seed (int or numpy Generator) and None (condition on the predicted random
        effects) or ``"~0"`` (new random effects in each simulation).
    ax : sequence of 3 (4 for count and binomial families) matplotlib Axes, optional
        One per panel; a new figure when omitted.
    axes : sequence of matplotlib Axes, optional
        Alias of ``ax`` (give one of the two, not both).

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

#: a numeric column the fixed formula turns into a factor: factor(x), as.factor(x), C(x)
_AS_FACTOR = r"(?<![\w.])(?:factor|as\.factor|C)\(\s*`?{}`?\s*[,)]"


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


def _columns_of(text: str, data: pd.DataFrame) -> list[str]:
    """Columns of ``data`` that a formula piece reads, in the data's order."""
    from ..frame import _used_variables

    used = _used_variables(text, data)
    return [c for c in data.columns if c in used]


def _effect_columns(fit) -> tuple[list[str], list[str]]:
    """The fixed-effect covariates, and the further columns a population prediction reads (offset
    variables, random-slope covariates) that are not among them."""
    parsed, data = fit.frame.parsed, fit.frame.data
    fixed = _columns_of("~ " + parsed.fixed_rhs, data) if parsed.fixed_rhs.strip() else []
    other = set()
    for off in parsed.offsets:
        other |= set(_columns_of(f"~ I({off})", data))
    for term in parsed.random:
        if term.lhs.strip() not in ("1", "0", "-1"):
            other |= set(_columns_of("~ " + term.lhs, data))
    return fixed, [c for c in data.columns if c in other and c not in fixed]


def _is_factor(fit, col: str) -> bool:
    s = fit.frame.data[col]
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return True
    return re.search(_AS_FACTOR.format(re.escape(col)), fit.frame.parsed.fixed_rhs) is not None


def _levels(s: pd.Series) -> list:
    """Observed levels in the design's order (a categorical's order, else sorted)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return list(s.cat.remove_unused_categories().cat.categories)
    values = pd.unique(s.dropna())
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _format_value(v) -> str:
    if isinstance(v, (float, np.floating)):
        return np.format_float_positional(float(v), precision=3, unique=False, fractional=False, trim="-")
    return str(v)


def _check_variable(fit, variable, fixed):
    """The error for a ``variable`` that plot_effects cannot draw, or None."""
    data, parsed = fit.frame.data, fit.frame.parsed
    if not fixed:
        return ArgumentError(f"the model has no fixed-effect covariates ({parsed.text!r}): there is no effect to draw")
    if not isinstance(variable, str):
        return ArgumentError(f"variable must be a column name (str), got {type(variable).__name__}; "
                             f"the fixed-effect covariates are {fixed}")
    if variable in fixed:
        return None
    if variable not in data.columns:
        return ArgumentError(f"variable {variable!r} is not a column the model uses; the fixed-effect covariates "
                             f"are {fixed}")
    from ..frame import _response_variables

    grouping = {f for term in parsed.random for f in term.factors}
    if variable in _response_variables(parsed.response, data):
        why = f"it is part of the response {parsed.response}"
    elif variable in grouping:
        why = "it is a grouping factor of the random effects"
    elif any(variable in _columns_of(f"~ I({off})", data) for off in parsed.offsets):
        why = "it is in the offset"
    else:
        why = "the fixed part does not use it"
    return ArgumentError(f"variable {variable!r} is not in the fixed effects ({parsed.fixed_rhs}): {why}; "
                         f"plot_effects draws a covariate of the fixed part, one of {fixed}")


def _held_values(fit, columns, at) -> tuple[dict, dict]:
    """Conditioning value of each column, and how it was chosen (mean, reference level, at=)."""
    data = fit.frame.data
    at = {} if at is None else at
    if not isinstance(at, dict):
        raise ArgumentError(f"at must be a dict of column name to value (of {columns}), got {type(at).__name__}")
    unknown = [k for k in at if k not in columns]
    if unknown:
        raise ArgumentError(f"at= names {unknown[0]!r}, which is not held fixed in this plot; at= sets "
                            f"{columns if columns else 'nothing: the model has no other covariates'}")
    held, how = {}, {}
    for col in columns:
        factor = _is_factor(fit, col)
        if col in at:
            value = at[col]
            if factor:
                levels = _levels(data[col])
                if value not in levels:
                    raise ArgumentError(f"at[{col!r}] = {value!r} is not a level of {col!r}; use one of "
                                        f"{[str(v) for v in levels]}")
            else:
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    value = np.nan
                if not np.isfinite(value):
                    raise ArgumentError(f"at[{col!r}] must be a finite number ({col!r} is numeric), "
                                        f"got {at[col]!r}")
            held[col], how[col] = value, "at="
        elif factor:
            held[col], how[col] = _levels(data[col])[0], "reference level"
        else:
            held[col], how[col] = float(data[col].mean()), "mean"
    return held, how


def _effect_frame(fit, held, variable, values) -> pd.DataFrame:
    """New data: ``variable`` at ``values``, the held columns at their values, the rest at reference."""
    data = fit.frame.data
    row = _reference_row(data)
    row.update(held)
    n = len(values)
    nd = pd.DataFrame({k: [v] * n for k, v in row.items()})
    nd[variable] = list(values) if _is_factor(fit, variable) else np.asarray(values, dtype=float)
    for col in data.columns:
        if isinstance(data[col].dtype, pd.CategoricalDtype):
            nd[col] = pd.Categorical(nd[col], categories=data[col].cat.categories)
        elif pd.api.types.is_bool_dtype(data[col]):
            nd[col] = nd[col].astype(bool)
    return nd


def _effect_predictions(fit, nd, level, want_conditional, want_marginal) -> tuple[list, str]:
    """The series to draw, each (key, label, mean, lower, upper) with NaN bounds when there is no
    band, and the caption's sentence about the bands."""
    from scipy import stats

    from ..exceptions import NotAvailableError

    glmm = fit.has_family
    link = fit.family.link if glmm else None
    identity = link is None or link.name == "identity"
    inv = (lambda e: e) if identity else link.inverse
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    pct = f"{100.0 * level:g}%"
    try:
        tab = fit.predict(nd, re_form="~0", se_fit=True, type="link")
        eta, se = tab["fit"].to_numpy(dtype=float), tab["se_fit"].to_numpy(dtype=float)
        no_band = None
    except NotAvailableError as exc:
        eta, se, no_band = fit._predict_array(nd, re_form="~0"), None, str(exc)
    mean = fit._predict_array(nd, re_form="~0", type="response") if glmm else fit._predict_array(nd, re_form="~0")
    nan = np.full(mean.shape, np.nan)

    def band(centre_link, se_link):
        a, b = inv(centre_link - z * se_link), inv(centre_link + z * se_link)
        return np.minimum(a, b), np.maximum(a, b)  # a decreasing inverse link swaps the edges

    series = []
    if identity:
        lo, hi = (nan, nan) if se is None else band(eta, se)
        label = ("conditional = marginal (identity link)" if want_marginal and want_conditional else
                 "marginal = conditional (identity link)" if want_marginal else "conditional (random effects = 0)")
        series.append(("conditional", label, mean, lo, hi))
        note = (f"bands: {pct} Wald intervals from Cov(β̂)" if se is not None else f"no band: {no_band}")
        return series, note
    skipped = ""
    marg = None
    if want_marginal:
        try:
            marg = fit._predict_array(nd, type="response", marginal=True)
        except NotAvailableError as exc:
            if not want_conditional:
                raise ArgumentError(f"the marginal curve is not available for this model ({exc}); use "
                                    "conditional=True") from None
            want_marginal = False
            skipped = f"; marginal curve not drawn: {exc}"
    if want_conditional:
        lo, hi = (nan, nan) if se is None else band(eta, se)
        series.append(("conditional", "conditional (random effects = 0)", mean, lo, hi))
    if want_marginal:
        from ..inference.marginal import (_means_from, _response_means_from, _row_columns, _row_family, _variances,
                                          has_zero_part, zero_part_structure)

        lo = hi = nan
        if has_zero_part(fit):  # the mixture's mean: π's share is not a function of η₀
            fam_rows = _row_family(fit, nd)
            _means_from = lambda fit_, e, v_: _response_means_from(fam_rows, e, v_)  # noqa: E731
        if se is not None and zero_part_structure(fit) is not None:
            se, no_band = None, "the marginal band of a zero part with random effects is not drawn"
        if se is not None:
            # E[y] depends on β only through η₀ = x'β + offset: the delta method on the link scale of
            # the marginal mean needs d g(E[y]) / dη₀ (central differences), times η₀'s standard error
            v = _variances(fit, _row_columns(fit, nd), fit._theta)
            h = 1e-5 * np.maximum(1.0, np.abs(eta))
            slope = (link.link(_means_from(fit, eta + h, v)) - link.link(_means_from(fit, eta - h, v))) / (2.0 * h)
            lo, hi = band(link.link(marg), np.abs(slope) * se)
        series.append(("marginal", "marginal (population-averaged)", marg, lo, hi))
    if se is None:
        note = f"no bands: {no_band}"
    else:
        note = f"bands: {pct} Wald intervals from Cov(β̂) on the link scale"
        if want_marginal:
            note += " (marginal: delta method)"
    return series, note + skipped


def plot_effects(fit, variable: str, n_points: int = 100, n_clusters: int = 0, factor=None, seed=None, ax=None,
                 conditional: bool = True, marginal: bool = True, level: float = 0.95, at=None):
    """Conditional and marginal effect of one fixed-effect covariate on the response scale.

    The conditional curve is the mean for a cluster whose random effects are zero
    (``fit.predict(..., re_form="~0")``); the marginal (population-averaged) curve averages the
    mean over the random effects (``fit.predict(..., marginal=True)``).  With a non-identity link
    they differ (the marginal curve is flatter); with the identity link (every LMM) they coincide
    and one curve is drawn.  A numeric covariate gets curves over its observed range with bands; a
    factor (or a numeric column the formula wraps in ``factor()``) one point per level with error
    bars, conditional and marginal side by side.

    The bands are Wald intervals from Cov(β̂) (variance parameters held at their estimates) built
    on the link scale and mapped by the inverse link: for the conditional mean from the
    prediction's standard error (``predict(..., se_fit=True, type="link")``); for the marginal
    mean by the delta method, since E[y] depends on β only through η₀ = x'β + offset (its link
    scale's derivative in η₀ by central differences).  Where the prediction has no standard
    errors (zero-inflation or dispersion models) no band is drawn and the caption says why.

    The caption under the plot lists the values the other covariates are held at: numeric ones at
    their mean, factors at their reference level, unless ``at`` sets them.

    Parameters
    ----------
    fit : LmmFit or GlmmFit
        The fitted model whose fixed effects (and their covariance) give the curves.
    variable : str
        A column of the fixed-effects formula (numeric or factor).
    n_points : int, default 100
        Points along a numeric covariate's observed range.
    n_clusters : int, default 0
        Also draw this many cluster-specific curves (points, for a factor) of levels of
        ``factor`` drawn at random, in grey.
    factor : str, optional
        Grouping factor of the cluster curves; the first by default.
    seed : int or numpy Generator, optional
        Which clusters are drawn.
    ax : matplotlib Axes, optional
        Draw into this Axes; a new figure otherwise.
    conditional, marginal : bool, default True
        Which curves to draw (at least one).
    level : float, default 0.95
        Confidence level of the bands.
    at : dict, optional
        Conditioning values of other covariates, ``{"age": 50, "sex": "male"}``: a number for a
        numeric column, an observed level for a factor.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = fit.frame.data
    fixed, extra = _effect_columns(fit)
    err = _check_variable(fit, variable, fixed)
    if err is not None:
        raise err
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ArgumentError(f"n_points must be a whole number of at least 2, got {n_points!r}")
    if not isinstance(conditional, (bool, np.bool_)) or not isinstance(marginal, (bool, np.bool_)):
        raise ArgumentError("conditional and marginal must be True or False")
    if not (conditional or marginal):
        raise ArgumentError("conditional=False and marginal=False leave nothing to draw; set one of them True")
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0.0 < level < 1.0:
        raise ArgumentError(f"level must be a number between 0 and 1 (e.g. 0.95), got {level!r}")
    if isinstance(at, dict) and variable in at:
        raise ArgumentError(f"at= sets {variable!r}, the variable drawn; at= sets the other covariates")
    held, how = _held_values(fit, [c for c in fixed + extra if c != variable], at)
    is_factor = _is_factor(fit, variable)
    if is_factor:
        values = _levels(data[variable])
        x = np.arange(len(values), dtype=float)
    else:
        lo_x, hi_x = float(data[variable].min()), float(data[variable].max())
        if not hi_x > lo_x:
            raise ArgumentError(f"variable {variable!r} takes one value ({lo_x:g}) in the data: it has no range "
                                "to draw")
        values = x = np.linspace(lo_x, hi_x, int(n_points))
    nd = _effect_frame(fit, held, variable, values)
    series, band_note = _effect_predictions(fit, nd, float(level), bool(conditional), bool(marginal))

    fig, (ax,) = _axes_for(1, None if ax is None else [ax], panel_size=(6.4, 4.6), name="ax")
    if n_clusters:
        _cluster_effects(fit, ax, nd, x, n_clusters, factor, seed, is_factor)
    colours = {"conditional": "C0", "marginal": "C3"}
    width = 0.12 if len(series) == 2 else 0.0
    for k, (key, label, mean, lo, hi) in enumerate(series):
        c = colours[key]
        has_band = bool(np.all(np.isfinite(lo)))
        if is_factor:
            pos = x + (k - (len(series) - 1) / 2.0) * 2.0 * width
            yerr = np.vstack([mean - lo, hi - mean]) if has_band else None
            ax.errorbar(pos, mean, yerr=yerr, fmt="o" if key == "conditional" else "s", color=c, ms=6, capsize=4,
                        lw=1.6, label=label + (f" with {100 * level:g}% CI" if has_band else ""))
        else:
            ax.plot(x, mean, color=c, lw=2.2, ls="-" if key == "conditional" else "--", label=label)
            if has_band:
                what = "" if len(series) == 1 and "identity" in label else f", {key}"
                ax.fill_between(x, lo, hi, color=c, alpha=0.18, lw=0, label=f"{100 * level:g}% CI{what}")
    if is_factor:
        ax.set_xticks(x)
        names = [str(v) for v in values]
        long = len(values) > 6 or max(len(s) for s in names) > 8
        ax.set_xticklabels(names, rotation=45 if long else 0, ha="right" if long else "center")
        ax.set_xlim(-0.6, len(values) - 0.4)
    elif data[variable].nunique() <= 200:
        # a rug of the observed values, just above the axis so it is not read as tick marks
        ax.plot(data[variable].to_numpy(dtype=float), np.full(data.shape[0], 0.03), "|", color="k", alpha=0.3,
                ms=8, transform=ax.get_xaxis_transform(), label=f"observed {variable}")
    ax.set_xlabel(variable)
    ylabel = f"mean of {fit.frame.response_name}" if fit.frame.response_name else "mean response"
    if fit.has_family and fit.family.name == "binomial":
        ylabel = "probability"
    ax.set_ylabel(ylabel)
    ax.set_title(f"Effect of {variable}", fontsize=10)
    ax.legend(fontsize=8, framealpha=0.85, loc="best")
    caption = _effect_caption(held, how, band_note)
    # under the x label, wherever the tick labels put it
    ax.annotate(caption, xy=(0.5, 0.0), xycoords=ax.xaxis.label, xytext=(0, -6), textcoords="offset points",
                ha="center", va="top", fontsize=7.5, color="0.25", gid="effects-caption")
    _tidy(fig)
    return fig


def _effect_caption(held, how, band_note) -> str:
    import textwrap

    if held:
        parts = ", ".join(f"{c} = {_format_value(v)} ({how[c]})" for c, v in held.items())
        first = f"other covariates held at: {parts}"
    else:
        first = "no other covariates to hold"
    return "\n".join(textwrap.fill(s, width=95) for s in (first, band_note))


def _cluster_effects(fit, ax, nd, x, n_clusters, factor, seed, is_factor):
    """Grey curves (points, for a factor) of clusters drawn at random: their random effects added."""
    data = fit.frame.data
    name = _factor_names(fit, factor)[0]
    levels = next(b for b in fit.structure.blocks if b.factor.name == name).factor.levels
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    chosen = rng.choice(len(levels), size=min(int(n_clusters), len(levels)), replace=False)
    # every chosen cluster's rows in one frame: one prediction call for all of them
    many = pd.concat([nd] * chosen.shape[0], ignore_index=True)
    lv = np.repeat(np.asarray(levels, dtype=object)[chosen], len(nd))
    if name not in data.columns:
        # a factor built from several columns (a:b, nesting) has no single column to set
        raise ArgumentError(f"cluster curves need {name!r} to be a column of the data; use n_clusters=0")
    many[name] = pd.Categorical(lv, categories=data[name].cat.categories) \
        if isinstance(data[name].dtype, pd.CategoricalDtype) else lv
    try:
        pred = fit._predict_array(many, type="response") if fit.has_family else fit._predict_array(many)
    except DataError:
        raise ArgumentError(f"cluster curves need {name!r} to be a column of the data; use n_clusters=0") from None
    curves = np.asarray(pred, dtype=float).reshape(chosen.shape[0], -1)
    label = f"clusters of {name} ({chosen.shape[0]}, their random effects)"
    if is_factor:
        ax.plot(np.tile(x, chosen.shape[0]), curves.ravel(), "o", color="0.6", ms=3, alpha=0.6, label=label)
        return
    for k, c in enumerate(curves):
        ax.plot(x, c, color="0.6", lw=0.8, alpha=0.7, label=label if k == 0 else None)


def plot_correlation(fit, max_lag=None, ax=None):
    """Within-cluster correlation of the marginal residuals by lag: the data's (points, sized by the
    number of pairs) beside the fitted model's (line), as nlme's ``Variogram`` checks a correlation
    structure.  See :func:`glmmkit.diagnostics.correlation.correlation_by_lag`.

    Parameters
    ----------
    fit : LmmFit
        With a residual structure or a structured random-effect term over time.
    max_lag : float, optional
        Largest lag shown (in the time variable's units); all lags by default.
    ax : matplotlib Axes, optional
        Draw into this Axes; a new figure otherwise.

    Returns
    -------
    matplotlib Figure
    """
    from .correlation import correlation_by_lag

    tab = correlation_by_lag(fit, max_lag=max_lag)
    fig, (ax,) = _axes_for(1, None if ax is None else [ax], name="ax")
    size = 20 + 180 * tab["n_pairs"] / tab["n_pairs"].max()
    ax.scatter(tab.index, tab["empirical"], s=size, alpha=0.6, label="data: marginal residuals (size: pairs)")
    ax.plot(tab.index, tab["fitted"], "-o", color="C3", ms=3, label="fitted model")
    ax.axhline(0.0, color="0.6", lw=0.8, label="no correlation")
    ax.set_xlabel("lag")
    ax.set_ylabel("within-cluster correlation")
    R = getattr(fit, "residual_structure", None)
    what = f"residual {R.description}" if R is not None else "random-effect structure"
    if R is not None and fit.structure.terms:  # the fitted line is the whole model's, G's part included
        what += " and the random effects"
    ax.set_title(f"Correlation by lag\n({what})", fontsize="medium")
    _legend_below(fig, ax, ncol=2, fontsize=8)
    _tidy(fig)
    return fig
