"""Simulated scaled residuals (DHARMa's method), their tests, and the diagnostic plots."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.diagnostics import SimulatedResiduals, simulate_residuals

# ----------------------------------------------------------------------------------------------
# data and fits shared by the tests (small: the whole file runs in seconds)
# ----------------------------------------------------------------------------------------------


def _counts(seed, theta=None, zero_share=0.0, groups=40, per_group=10):
    """Poisson (theta None) or NB2 counts with a random intercept, optionally with extra zeros."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.shape[0])
    mu = np.exp(0.5 + 0.4 * x + rng.normal(scale=0.5, size=groups)[g])
    y = rng.poisson(mu) if theta is None else rng.poisson(rng.gamma(theta, mu / theta))
    y = np.where(rng.uniform(size=y.shape[0]) < zero_share, 0, y)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


@pytest.fixture(scope="module")
def lmm_fit():
    return gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp_fit():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                    family="binomial")


@pytest.fixture(scope="module")
def overdispersed():
    return _counts(11, theta=0.7)


@pytest.fixture(scope="module")
def poisson_fit():
    return gk.glmer("y ~ x + (1 | g)", _counts(5), family="poisson")


# ----------------------------------------------------------------------------------------------
# the residuals
# ----------------------------------------------------------------------------------------------


def test_shapes_frame_and_scales(cbpp_fit):
    res = cbpp_fit.simulate_residuals(n_sim=60, seed=1)
    n = cbpp_fit.nobs
    assert isinstance(res, SimulatedResiduals)
    assert res.scaled.shape == res.observed.shape == res.fitted.shape == (n,)
    assert res.simulated.shape == (n, 60)
    assert res.integer_response and res.conditional  # DHARMa >= 0.5's default
    # binomial: everything on the fit's scale (proportions), counts are proportion x trials
    assert np.all((res.simulated >= 0) & (res.simulated <= 1))
    counts = res.simulated * res.trials[:, None]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    frame = res.to_frame()
    assert list(frame.columns) == ["row", "observed", "fitted", "scaled_residual"]
    assert frame.shape == (n, 4)
    np.testing.assert_allclose(frame["observed"], cbpp_fit.frame.y)


def test_integer_residuals_are_randomised_within_their_bucket(cbpp_fit):
    res = cbpp_fit.simulate_residuals(n_sim=100, seed=2)
    y = np.round(res.observed * res.trials)[:, None]
    sims = np.round(res.simulated * res.trials[:, None])
    below, at_or_below = np.mean(sims < y, axis=1), np.mean(sims <= y, axis=1)
    assert np.all((res.scaled >= below - 1e-12) & (res.scaled <= at_or_below + 1e-12))
    tied = at_or_below > below
    assert tied.sum() > 10
    # a draw inside the bucket, not its edge
    edges = np.isclose(res.scaled[tied], below[tied]) | np.isclose(res.scaled[tied], at_or_below[tied])
    assert not edges.any()


def test_seed_reproducibility(poisson_fit):
    a = poisson_fit.simulate_residuals(n_sim=50, seed=7)
    b = poisson_fit.simulate_residuals(n_sim=50, seed=7)
    c = poisson_fit.simulate_residuals(n_sim=50, seed=8)
    np.testing.assert_array_equal(a.scaled, b.scaled)
    np.testing.assert_array_equal(a.simulated, b.simulated)
    assert not np.array_equal(a.scaled, c.scaled)
    # a Generator is accepted and advanced
    rng = np.random.default_rng(7)
    d = simulate_residuals(poisson_fit, n_sim=50, seed=rng)
    np.testing.assert_array_equal(a.scaled, d.scaled)


def test_whole_matrix_simulation_matches_fit_simulate(cbpp_fit, lmm_fit):
    """The vectorised draws follow the same model as ``fit.simulate`` (new random effects)."""
    for fit in (cbpp_fit, lmm_fit):
        ours = fit.simulate_residuals(n_sim=2000, seed=1, re_form="~0").simulated
        theirs = fit.simulate(2000, seed=2)
        sd = theirs.std(axis=1)
        np.testing.assert_allclose(ours.mean(axis=1), theirs.mean(axis=1), atol=float(5 * sd.max() / np.sqrt(2000)))
        np.testing.assert_allclose(ours.std(axis=1), sd, rtol=0.12)


def test_conditional_and_unconditional_simulation(lmm_fit, poisson_fit):
    un = poisson_fit.simulate_residuals(n_sim=300, seed=3, re_form="~0")
    co = poisson_fit.simulate_residuals(n_sim=300, seed=3, re_form=None)
    assert co.conditional and not un.conditional
    np.testing.assert_allclose(co.fitted, poisson_fit.fitted())
    np.testing.assert_allclose(un.fitted, poisson_fit.predict(re_form="~0", type="response"))
    # conditional simulations vary around the conditional mean only; new random effects add their variance
    np.testing.assert_allclose(co.simulated.mean(axis=1), poisson_fit.fitted(), rtol=0.25, atol=0.5)
    assert np.var(un.simulated, axis=1).mean() > 1.2 * np.var(co.simulated, axis=1).mean()
    lres = lmm_fit.simulate_residuals(n_sim=40, seed=1, re_form=None)
    np.testing.assert_allclose(lres.fitted, lmm_fit.fitted())


@pytest.mark.parametrize("case", ["lmm", "binomial", "poisson", "gamma"])
def test_residuals_of_data_simulated_from_the_model_are_uniform(case, lmm_fit, cbpp_fit, poisson_fit):
    """Refit to a response drawn from the fit itself: the model is then right, residuals uniform."""
    if case == "lmm":
        data = gk.datasets.load("sleepstudy").assign(Reaction=lmm_fit.simulate(1, seed=4)["sim_1"])
        fit = gk.lmer("Reaction ~ Days + (Days | Subject)", data)
    elif case == "binomial":
        data = gk.datasets.load("cbpp")
        data = data.assign(incidence=np.round(cbpp_fit.simulate(1, seed=4)["sim_1"] * data["size"]).astype(int))
        fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    elif case == "poisson":
        fit = poisson_fit  # data simulated from a Poisson random-intercept model
    else:
        data = gk.datasets.load("gamma_ri").iloc[:300]
        fit = gk.glmer("y ~ x1 + (1 | g)", data, family="gamma", link="log")
    res = fit.simulate_residuals(n_sim=200, seed=5)
    assert np.all((res.scaled >= 0) & (res.scaled <= 1))
    assert res.uniformity_test().p_value > 0.01
    assert res.dispersion_test().p_value > 0.01


def test_misspecified_distribution_fails_uniformity():
    # Gamma data fitted as Gaussian on the log link: the residuals are visibly not uniform
    data = gk.datasets.load("gamma_ri")
    fit = gk.glmer("y ~ x1 + (1 | g)", data, family="gaussian", link="log")
    assert fit.simulate_residuals(n_sim=200, seed=1).uniformity_test().p_value < 0.01


def test_dispersion_test_flags_poisson_on_overdispersed_counts_but_not_nb(overdispersed):
    pois = gk.glmer("y ~ x + (1 | g)", overdispersed, family="poisson")
    nb = gk.glmer("y ~ x + (1 | g)", overdispersed, family="negative_binomial")
    test = pois.simulate_residuals(n_sim=400, seed=1, re_form=None).dispersion_test()
    assert test.p_value < 0.01 and test.ratio > 2.0
    assert test.simulated.shape == (400,)
    # re-drawn random effects widen the statistic's distribution, the ratio still shows it
    assert pois.simulate_residuals(n_sim=200, seed=1).dispersion_test().ratio > 1.5
    for re_form in (None, "~0"):
        ok = nb.simulate_residuals(n_sim=200, seed=1, re_form=re_form)
        assert ok.dispersion_test().p_value > 0.05
        assert ok.uniformity_test().p_value > 0.01
    assert pois.simulate_residuals(n_sim=200, seed=1).uniformity_test().p_value < 0.01
    greater = pois.simulate_residuals(n_sim=400, seed=1, re_form=None).dispersion_test(alternative="greater")
    assert greater.p_value <= test.p_value


def test_zero_inflation_test():
    zi = gk.glmer("y ~ x + (1 | g)", _counts(3, zero_share=0.4), family="poisson")
    test = zi.simulate_residuals(n_sim=400, seed=2).zero_inflation_test()
    assert test.ratio > 1.2 and test.p_value < 0.01
    assert test.observed == np.sum(zi.frame.y == 0)
    clean = gk.glmer("y ~ x + (1 | g)", _counts(3), family="poisson")
    assert clean.simulate_residuals(n_sim=200, seed=2).zero_inflation_test().p_value > 0.05


def test_outlier_test(lmm_fit):
    res = lmm_fit.simulate_residuals(n_sim=100, seed=1)
    test = res.outlier_test()
    assert 0.0 <= test.p_value <= 1.0
    assert test.statistic == res.outliers().size
    np.testing.assert_allclose(test.expected, lmm_fit.nobs * 2 / 101)
    # gross errors are outside all their simulations, and the outliers are where they are
    bad = gk.datasets.load("sleepstudy").copy()
    rows = list(range(3, 180, 15))
    bad.loc[rows, "Reaction"] += 500.0
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", bad)
    res = fit.simulate_residuals(n_sim=100, seed=1)
    assert set(rows) <= set(res.outliers().tolist())
    assert res.outlier_test().p_value < 0.05


@pytest.mark.parametrize("family, link, data_name, formula", [
    ("beta", None, "beta_ri", "y ~ x1 + (1 | g)"),
    ("student_t", None, "beta_ri", "y ~ x1 + (1 | g)"),
    ("inverse_gaussian", "log", "gamma_ri", "y ~ x1 + (1 | g)"),
    ("nbinom1", None, "counts_ri", "y ~ x1 + (1 | g)"),
])
def test_every_family_gives_residuals(family, link, data_name, formula):
    data = gk.datasets.load(data_name).iloc[:240]
    fit = gk.glmer(formula, data, family=family, link=link)
    res = fit.simulate_residuals(n_sim=40, seed=1)
    assert res.simulated.shape == (240, 40)
    assert np.all(np.isfinite(res.scaled)) and np.all((res.scaled >= 0) & (res.scaled <= 1))
    assert res.integer_response == (family == "nbinom1")
    if not res.integer_response:
        with pytest.raises(gk.ArgumentError, match="count or binomial"):
            res.zero_inflation_test()


def test_pql_and_proportion_with_weights():
    cbpp = gk.datasets.load("cbpp")
    pql = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial", method="pql")
    res = pql.simulate_residuals(n_sim=80, seed=1)
    assert res.simulated.shape == (cbpp.shape[0], 80) and res.integer_response
    assert res.uniformity_test().p_value > 0.01
    prop = gk.glmer("p ~ period + (1 | herd)", cbpp.assign(p=cbpp.incidence / cbpp["size"]), family="binomial",
                    weights="size")
    res = prop.simulate_residuals(n_sim=80, seed=1)
    np.testing.assert_allclose(res.trials, cbpp["size"])
    assert res.zero_inflation_test().observed == np.sum(cbpp.incidence == 0)


def test_bernoulli_response(request):
    fit = gk.glmer("y ~ x + (1 | patient)", gk.datasets.load("spinal"), family="binomial")
    res = fit.simulate_residuals(n_sim=100, seed=1)
    assert np.all((res.scaled >= 0) & (res.scaled <= 1))
    # 0/1 responses: every residual is a draw within its bucket, not one of two values
    assert np.unique(np.round(res.scaled, 6)).size > 100


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the Gamma fit with an inverse link probes η < 0
def test_argument_errors(poisson_fit):
    with pytest.raises(gk.ArgumentError, match="n_sim"):
        poisson_fit.simulate_residuals(n_sim=5)
    with pytest.raises(gk.ArgumentError, match="re_form"):
        poisson_fit.simulate_residuals(re_form="~(1|g)")
    with pytest.raises(gk.ArgumentError, match="alternative"):
        poisson_fit.simulate_residuals(n_sim=20, seed=1).dispersion_test(alternative="bigger")
    # an inverse link cannot take re-drawn random effects that push the mean below zero
    gamma_inv = gk.glmer("y ~ x1 + (1 | g)", gk.datasets.load("gamma_ri").iloc[:300], family="gamma")
    with pytest.raises(gk.DataError, match="re_form=None"):
        gamma_inv.simulate_residuals(n_sim=400, seed=1, re_form="~0")


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_caterpillar(plt, lmm_fit, cbpp_fit, tmp_path):
    fig = lmm_fit.plot_caterpillar()
    axes = _visible_axes(fig)
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["Subject: (Intercept)", "Subject: Days"]
    # one point per level; every panel of a factor in the order of its first term (issue 17: a subject
    # on one row across the panels, as lme4's dotplot)
    order = np.argsort(lmm_fit.ranef["Subject"]["(Intercept)"].to_numpy(), kind="stable")
    for ax, term in zip(axes, ["(Intercept)", "Days"]):
        x = ax.lines[-1].get_xdata()
        assert len(x) == 18
        np.testing.assert_allclose(lmm_fit.ranef["Subject"][term].to_numpy()[order], x)
        assert len(ax.get_yticklabels()) == 18
    assert np.all(np.diff(axes[0].lines[-1].get_xdata()) >= 0)
    fig.savefig(tmp_path / "caterpillar.png", dpi=50)
    fig2, ax2 = plt.subplots()
    assert gk.diagnostics.plot_caterpillar(cbpp_fit, axes=[ax2]) is fig2
    with pytest.raises(gk.ArgumentError, match="factor"):
        cbpp_fit.plot_caterpillar(factor="nope")


def test_shrinkage(plt, lmm_fit, cbpp_fit, tmp_path):
    fig = lmm_fit.plot_shrinkage()
    assert len(_visible_axes(fig)) == 2  # equal cluster sizes: no colour bar
    ax = fig.axes[0]
    pts = ax.collections[0].get_offsets()
    table = lmm_fit.shrinkage()["Subject"]
    beta0 = lmm_fit.fixef["(Intercept)"]
    np.testing.assert_allclose(np.sort(pts[:, 1]), np.sort(table[("(Intercept)", "partial_pooling")] + beta0))
    # partial pooling lies between the no-pooling estimate and the population value
    assert np.all(np.abs(pts[:, 1] - beta0) <= np.abs(pts[:, 0] - beta0) + 1e-9)
    fig.savefig(tmp_path / "shrinkage_lmm.png", dpi=50)
    fig = cbpp_fit.plot_shrinkage()
    assert len(fig.axes) == 2  # the panel and the colour bar of cluster sizes
    fig.savefig(tmp_path / "shrinkage_cbpp.png", dpi=50)
    # binary clusters of all 0 or all 1: continuity-corrected points, drawn as open markers
    spinal = gk.glmer("y ~ x + (1 | patient)", gk.datasets.load("spinal"), family="binomial")
    fig = spinal.plot_shrinkage()
    ax = fig.axes[0]
    assert len(ax.collections) == 2
    assert np.all(np.isfinite(ax.collections[1].get_offsets()))
    fig.savefig(tmp_path / "shrinkage_spinal.png", dpi=50)
    with pytest.raises(gk.ArgumentError, match="term"):
        lmm_fit.plot_shrinkage(term="nope")


def test_residual_panel(plt, lmm_fit, poisson_fit, tmp_path):
    fig = lmm_fit.plot_residuals(n_sim=80, seed=1)
    assert len(_visible_axes(fig)) == 3
    fig.savefig(tmp_path / "residuals_lmm.png", dpi=50)
    res = poisson_fit.simulate_residuals(n_sim=80, seed=1)
    fig = res.plot()
    axes = _visible_axes(fig)
    assert len(axes) == 4  # counts add the zero-inflation panel
    qq = axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(qq[:, 1], np.sort(res.scaled))
    assert "KS p" in axes[0].texts[0].get_text()
    assert axes[2].get_title() == "Dispersion (simulated)" and axes[3].get_title() == "Zero inflation"
    assert len(axes[2].patches) > 5  # histogram bars of the simulated statistic
    fig.savefig(tmp_path / "residuals_poisson.png", dpi=50)
    fig2, grid = plt.subplots(2, 2)
    assert gk.diagnostics.plot_residuals(res, axes=grid) is fig2
    with pytest.raises(gk.ArgumentError, match="4 matplotlib Axes"):
        gk.diagnostics.plot_residuals(res, axes=grid[0])


def test_effects(plt, poisson_fit, lmm_fit, tmp_path):
    fig = poisson_fit.plot_effects("x", n_clusters=5, seed=1)
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if ln.get_label() != "_child"]
    curves = [ln for ln in lines if len(ln.get_xdata()) == 100]
    assert len(curves) == 7  # 5 clusters, conditional, marginal
    cond, marg = curves[-2].get_ydata(), curves[-1].get_ydata()
    # log link with a random intercept: the marginal mean is the conditional one times exp(σ²/2)
    sd = np.sqrt(poisson_fit.varcorr["vcov"].iloc[0])
    np.testing.assert_allclose(marg / cond, np.exp(sd**2 / 2), rtol=1e-6)
    fig.savefig(tmp_path / "effects.png", dpi=50)
    fig = lmm_fit.plot_effects("Days")
    fig.savefig(tmp_path / "effects_lmm.png", dpi=50)
    # a grouping factor is not in the fixed part; factors of the fixed part are drawn (tests/test_plot_effects.py)
    with pytest.raises(gk.ArgumentError, match="grouping factor"):
        poisson_fit.plot_effects("g")
    with pytest.raises(gk.ArgumentError, match=r"not a column.*\['x'\]"):
        poisson_fit.plot_effects("nope")
    cbpp = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                    family="binomial")
    with pytest.raises(gk.ArgumentError, match="not in the fixed effects"):
        cbpp.plot_effects("size")
    fig = cbpp.plot_effects("period")
    assert {c.get_label() for c in fig.axes[0].containers} >= {"conditional (random effects = 0) with 95% CI",
                                                                "marginal (population-averaged) with 95% CI"}


def test_missing_matplotlib_says_how_to_install(monkeypatch, lmm_fit):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now fails
    with pytest.raises(gk.ArgumentError, match=r"glmmkit\[plot\]"):
        lmm_fit.plot_caterpillar()


def test_olre_models_warn_about_conditional_simulation():
    data = gk.datasets.load("exacerbations")
    fit = gk.glmer("count ~ treated + offset(log(years)) + (1 | clinic)", data, family="poisson", olre=True)
    with pytest.warns(gk.GlmmkitWarning, match="re_form='~0'"):
        cond = fit.simulate_residuals(n_sim=100, seed=1)
    assert cond.dispersion_test().statistic < 0.6          # the artefact the warning is about
    uncond = fit.simulate_residuals(n_sim=100, seed=1, re_form="~0")
    assert uncond.dispersion_test().p_value > 0.05


def test_outlier_test_does_not_flag_a_correct_bernoulli_model():
    # ties make outliers rarer than 2/(n_sim + 1) for 0/1 data: only too many is a finding
    data = gk.datasets.load("hospital")
    fit = gk.glmer("infection ~ sex + (1 | hospital)", data, family="binomial")
    test = fit.simulate_residuals(n_sim=100, seed=2).outlier_test()
    assert test.alternative == "greater" and test.p_value > 0.05
