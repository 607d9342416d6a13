"""What the rendered plots look like: titles and legends inside the figure and off the data, the
numbers in the annotations, and the engine values behind the shrinkage and correlation plots
(PQL no-pooling estimates, the empirical within-cluster correlation) and the bootstrap's rows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk


@pytest.fixture(scope="module")
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


@pytest.fixture(scope="module")
def cbpp():
    return gk.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")


@pytest.fixture(scope="module")
def sleep_fit():
    return gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def bodyweight():
    B = gk.datasets.load("BodyWeight")
    return B, gk.lmer("weight ~ Time * Diet + (Time | Rat)", B, residual="exp(Time | Rat)")


def _extent(artist, fig):
    return artist.get_window_extent(fig.canvas.get_renderer())


def _inside_figure(artist, fig):
    """The artist's box lies within the figure's pixels (what savefig keeps without bbox_inches)."""
    box = _extent(artist, fig)
    w, h = fig.canvas.get_width_height()
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= w and box.y1 <= h


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


# ----------------------------------------------------------------------------------------------
# caterpillar: title and legend
# ----------------------------------------------------------------------------------------------


def test_caterpillar_title_is_kept_whole_by_a_plain_savefig(plt, cbpp_fit, sleep_fit, tmp_path):
    fig = cbpp_fit.plot_caterpillar()
    fig.savefig(tmp_path / "cbpp.png")  # as the tutorials save: no bbox_inches="tight"
    title = fig._suptitle
    assert _inside_figure(title, fig)
    # one panel per factor: nothing to say about rows shared between panels
    assert "same rows" not in title.get_text()
    assert "herd ordered by (Intercept)" in title.get_text().replace("\n", " ")
    fig = sleep_fit.plot_caterpillar()
    fig.savefig(tmp_path / "sleep.png")
    assert _inside_figure(fig._suptitle, fig)
    assert "the same rows in each panel" in fig._suptitle.get_text().replace("\n", " ")


def test_caterpillar_legend_is_outside_every_panel(plt, cbpp_fit, tmp_path):
    fig = cbpp_fit.plot_caterpillar()
    fig.savefig(tmp_path / "cbpp.png")
    ax = [a for a in fig.axes if a.get_visible()][0]
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend = _extent(fig.legends[0], fig)
    assert not _overlaps(legend, _extent(ax, fig))  # below the axes, so it covers no interval
    assert _inside_figure(fig.legends[0], fig)
    # every interval is drawn inside the axes (so none, not the bottom rows' either, is under the legend)
    bars = ax.collections[0].get_segments()
    lo_y, hi_y = ax.get_ylim()
    assert all(lo_y < seg[0][1] < hi_y for seg in bars)
    # into the caller's axes (no layout engine): the legend still sits below, under the x label
    fig2, ax2 = plt.subplots(figsize=(4, 5))
    cbpp_fit.plot_caterpillar(ax=ax2)
    fig2.canvas.draw()
    leg = ax2.get_legend()
    assert leg is not None and _extent(leg, fig2).y1 <= _extent(ax2, fig2).y0


# ----------------------------------------------------------------------------------------------
# residual panels
# ----------------------------------------------------------------------------------------------


def test_histogram_text_box_and_legend_stay_above_the_bars(plt):
    from glmmkit.diagnostics.plots import _simulation_hist

    rng = np.random.default_rng(3)
    sim = rng.normal(100.0, 5.0, size=250)  # the tallest bars are in the middle, under the text box
    test = SimpleNamespace(simulated=sim, observed=101.0, ratio=1.0, p_value=0.9)
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    _simulation_hist(ax, test, "Dispersion (simulated)", "variance of residuals", "observed / simulated")
    fig.canvas.draw()
    text = ax.texts[0]
    assert "observed / simulated = 1.00" in text.get_text()  # two decimals, not "= 1"
    box = text.get_bbox_patch().get_window_extent(fig.canvas.get_renderer())
    legend = _extent(ax.get_legend(), fig)
    bars = [p.get_window_extent(fig.canvas.get_renderer()) for p in ax.patches if p.get_height() > 0]
    assert bars and not any(_overlaps(box, b) for b in bars)
    assert not any(_overlaps(legend, b) for b in bars)
    # small ratios keep three significant digits
    test.ratio = 0.0123
    fig, ax = plt.subplots()
    _simulation_hist(ax, test, "t", "x", "ratio")
    assert "ratio = 0.0123" in ax.texts[0].get_text()


def test_residual_panel_histograms_of_a_fit(plt, tmp_path):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(30), 10)
    d = pd.DataFrame({"y": rng.poisson(np.exp(0.3 + rng.normal(scale=0.5, size=30)[g])), "g": g.astype(str)})
    fit = gk.glmer("y ~ 1 + (1 | g)", d, family="poisson")
    fig = fit.plot_residuals(n_sim=120, seed=1)
    fig.savefig(tmp_path / "res.png")
    r = fig.canvas.get_renderer()
    for ax in [a for a in fig.axes if a.get_visible()][2:]:
        box = ax.texts[0].get_bbox_patch().get_window_extent(r)
        assert not any(_overlaps(box, p.get_window_extent(r)) for p in ax.patches if p.get_height() > 0)
        ratio = ax.texts[0].get_text().split("\n")[0].split("= ")[1]
        assert len(ratio.split(".")[1]) >= 2


def test_shrinkage_title_says_what_equal_sizes_mean(plt, sleep_fit, cbpp_fit):
    title = sleep_fit.plot_shrinkage()._suptitle.get_text().replace("\n", " ")
    assert "all 18 clusters have 10 rows each" in title and "Subject" in title
    assert "rows =" not in title
    assert cbpp_fit.plot_shrinkage()._suptitle.get_text() == "Shrinkage of the random effects of herd"


# ----------------------------------------------------------------------------------------------
# shrinkage of a PQL fit
# ----------------------------------------------------------------------------------------------


def test_pql_no_pooling_estimates_are_on_the_link_scale(plt, cbpp, cbpp_fit):
    pql = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial",
                   method="pql")
    a, b = cbpp_fit.shrinkage()["herd"], pql.shrinkage()["herd"]
    col = ("(Intercept)", "no_pooling")
    # the same model: each herd's own estimate given the rest of the linear predictor agrees with the
    # Laplace fit's up to the two fits' slightly different fixed effects
    assert np.isnan(a[col]).equals(np.isnan(b[col]))
    ok = np.isfinite(a[col].to_numpy())
    np.testing.assert_allclose(b[col].to_numpy()[ok], a[col].to_numpy()[ok], atol=0.15)
    # own estimate solves the level's score equation: sum over its rows of wt (y - mu) = 0
    blk = pql.structure.blocks[0]
    base = pql._eta() - pql._b[blk.offset: blk.offset + blk.size][blk.factor.codes]
    mu = 1.0 / (1.0 + np.exp(-(base + b[col].to_numpy()[blk.factor.codes])))
    score = np.bincount(blk.factor.codes, pql._problem.wt * (pql.frame.y - mu), minlength=blk.q)
    np.testing.assert_allclose(score[ok], 0.0, atol=1e-6)
    # in the plot, partial pooling lies between no pooling and the population value
    fig = pql.plot_shrinkage()
    pts = fig.axes[0].collections[0].get_offsets()
    pop = pql.fixef["(Intercept)"]
    assert np.all(np.abs(pts[:, 1] - pop) <= np.abs(pts[:, 0] - pop) + 1e-9)


# ----------------------------------------------------------------------------------------------
# correlation by lag
# ----------------------------------------------------------------------------------------------


def test_empirical_correlation_by_lag_is_a_correlation_of_the_residuals(bodyweight):
    B, fit = bodyweight
    tab = fit.correlation_by_lag()
    # straight from the definitions, rat by rat: V from the fitted model, e = y - X beta_hat has
    # covariance V - X Cov(beta_hat) X'; each e over its SD, then the correlation over the pairs
    X = fit.frame.X[:, fit._x_kept]
    e = fit.frame.y - X @ fit._beta
    C = fit.vcov.to_numpy()
    rows = []
    for rat in B["Rat"].unique():
        ix = np.flatnonzero((B["Rat"] == rat).to_numpy())
        V = fit.marginal_moments(B.iloc[ix])["covariance"]
        V = np.asarray(V, dtype=float)
        u = e[ix] / np.sqrt(np.diag(V - X[ix] @ C @ X[ix].T))
        t = B["Time"].to_numpy()[ix]
        for s in range(len(ix)):
            for r in range(s + 1, len(ix)):
                rows.append((abs(t[r] - t[s]), u[s] * u[r], u[s] ** 2, u[r] ** 2,
                             V[s, r] / np.sqrt(V[s, s] * V[r, r])))
    d = pd.DataFrame(rows, columns=["lag", "p", "a", "b", "fitted"]).groupby("lag")
    sums = d[["p", "a", "b"]].sum()
    np.testing.assert_allclose(tab["empirical"], sums["p"] / np.sqrt(sums["a"] * sums["b"]), rtol=1e-8)
    np.testing.assert_allclose(tab["fitted"], d["fitted"].mean(), rtol=1e-8)
    assert np.all(np.abs(tab["empirical"]) <= 1.0)
    # the continuous AR(1) with random intercept and slope fits these rats: data and model agree
    assert np.max(np.abs(tab["empirical"] - tab["fitted"])) < 0.05


def test_correlation_plot_legend_covers_no_point(plt, bodyweight, tmp_path):
    _, fit = bodyweight
    fig = fit.plot_correlation()
    fig.savefig(tmp_path / "corr.png")
    ax = fig.axes[0]
    assert ax.get_legend() is None and len(fig.legends) == 1
    legend = _extent(fig.legends[0], fig)
    assert not _overlaps(legend, _extent(ax, fig)) and _inside_figure(fig.legends[0], fig)
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], fit.correlation_by_lag()["empirical"])


# ----------------------------------------------------------------------------------------------
# bootstrap intervals of the family parameters
# ----------------------------------------------------------------------------------------------


def test_bootstrap_gives_the_negative_binomial_theta_an_interval():
    from glmmkit.inference.confint import bootstrap_estimates
    from glmmkit.inference.parameters import all_parameters

    E = gk.datasets.load("exacerbations")
    fit = gk.glmer("count ~ treated + smoker + offset(log(years)) + (1 | clinic)", E, family="negative_binomial")
    ci = fit.confint(method="boot", n_boot=40, seed=2, progress=False)
    theta = fit.family_params["theta"]
    assert list(ci.index) == ["sd_(Intercept)|clinic", "theta", "(Intercept)", "treated", "smokeryes"]
    assert ci.loc["theta", "lower"] < theta < ci.loc["theta", "upper"]
    one = fit.confint(method="boot", n_boot=40, seed=2, progress=False, parm="theta")  # parm names it too
    assert list(one.index) == ["theta"] and one.loc["theta"].tolist() == ci.loc["theta"].tolist()
    # each replicate's theta is the refit's estimate: the first replicate redone by hand
    draws = bootstrap_estimates(fit, 2, seed=7, progress=False)
    rng = np.random.default_rng(np.random.SeedSequence(7).spawn(2)[0])
    refit = fit.refit(fit._simulate_array(1, seed=rng)[:, 0])
    assert draws.loc[0, "theta"] == pytest.approx(refit.family_params["theta"], rel=1e-10)
    assert draws.loc[0, "treated"] == pytest.approx(refit.fixef["treated"], rel=1e-10)
    # a family without parameters of its own keeps lme4's rows
    d = E.assign(count=np.minimum(E["count"], 1))
    binom = gk.glmer("count ~ treated + (1 | clinic)", d, family="binomial")
    assert list(bootstrap_estimates(binom, 2, seed=1, progress=False).columns) == list(all_parameters(binom).index)
    # the report puts the estimate beside theta's bootstrap interval
    from glmmkit.report import _confint_html

    html = _confint_html(ci, fit=fit)
    row = html[html.index("<td>theta</td>"):]
    row = row[: row.index("</tr>")]
    assert f"<td>{theta:.4g}</td>" in row and "nan" not in row.lower()
