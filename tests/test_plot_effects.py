"""plot_effects: conditional and marginal effects of numeric covariates and factors, their bands, the
caption naming the conditioning values, and the errors for variables it cannot draw.

The plotted numbers are read back from the artists and checked against values computed here from
the fit's coefficients and their covariance (Wald bands on the link scale, and for the marginal
mean a Gauss-Hermite average of the inverse link written in this file)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit, logit

import glmmkit as gk

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


@pytest.fixture(scope="module")
def sleep_fit():
    return gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def ortho_fit():
    return gk.lmer("distance ~ age + Sex + (1 | Subject)", gk.datasets.load("Orthodont"))


@pytest.fixture(scope="module")
def cbpp_fit():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                    family="binomial")


@pytest.fixture(scope="module")
def hospital_fit():
    return gk.glmer("infection ~ age + sex + teaching + (1 | hospital)", gk.datasets.load("hospital"),
                    family="binomial")


@pytest.fixture(scope="module")
def offset_fit():
    """Poisson counts with an exposure offset and prior weights: neither is a covariate."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.shape[0])
    exposure = rng.uniform(0.5, 3.0, size=g.shape[0])
    y = rng.poisson(exposure * np.exp(0.2 + 0.5 * x + rng.normal(scale=0.4, size=30)[g]))
    data = pd.DataFrame({"y": y, "x": x, "exposure": exposure, "w": rng.uniform(0.5, 1.5, size=g.shape[0]),
                         "g": [f"g{i}" for i in g]})
    return gk.glmer("y ~ x + offset(log(exposure)) + (1 | g)", data, family="poisson", weights="w")


# ----- reading the artists back -----

def _line(ax, label_part):
    found = [ln for ln in ax.lines if label_part in ln.get_label()]
    assert len(found) == 1, [ln.get_label() for ln in ax.lines]
    return found[0]


def _band(ax, label_part, x):
    """Lower and upper edge of a fill_between band at the grid ``x``."""
    found = [c for c in ax.collections if label_part in c.get_label()]
    assert len(found) == 1, [c.get_label() for c in ax.collections]
    v = found[0].get_paths()[0].vertices
    at = np.isclose(v[:, 0][None, :], np.asarray(x)[:, None])
    lo = np.where(at, v[:, 1][None, :], np.inf).min(axis=1)
    hi = np.where(at, v[:, 1][None, :], -np.inf).max(axis=1)
    return lo, hi


def _points(ax, label_part):
    """x, y and the bar ends of an errorbar series."""
    found = [c for c in ax.containers if label_part in c.get_label()]
    assert len(found) == 1, [c.get_label() for c in ax.containers]
    data_line, _, bars = found[0].lines
    seg = np.array(bars[0].get_segments())
    return data_line.get_xdata(), data_line.get_ydata(), seg[:, :, 1].min(axis=1), seg[:, :, 1].max(axis=1)


def _caption(ax):
    return " ".join(t.get_text() for t in ax.texts if t.get_gid() == "effects-caption").replace("\n", " ")


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _wald(X, fit, level=0.95):
    V = fit.vcov.to_numpy()
    eta = X @ fit.fixef.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    z = stats.norm.ppf(0.5 + level / 2)
    return eta, se, z


_T, _W = np.polynomial.hermite_e.hermegauss(60)
_W = _W / _W.sum()


def _marginal_logit(eta, sd):
    """E[expit(η + b)], b ~ N(0, sd²), by a 60-node rule."""
    return expit(eta[:, None] + sd * _T[None, :]) @ _W


def _marginal_band(eta, se, sd, z):
    m = _marginal_logit(eta, sd)
    h = 1e-6
    slope = (logit(_marginal_logit(eta + h, sd)) - logit(_marginal_logit(eta - h, sd))) / (2 * h)
    return m, expit(logit(m) - z * slope * se), expit(logit(m) + z * slope * se)


# ----- numeric covariates -----

def test_lmm_numeric_curve_band_and_legend(plt, sleep_fit, tmp_path):
    fig = sleep_fit.plot_effects("Days", n_points=25)
    ax = fig.axes[0]
    grid = np.linspace(0, 9, 25)
    line = _line(ax, "conditional")
    np.testing.assert_allclose(line.get_xdata(), grid)
    nd = pd.DataFrame({"Days": grid, "Subject": pd.Categorical(["308"] * 25)})
    np.testing.assert_allclose(line.get_ydata(), sleep_fit.predict(nd, re_form="~0"), rtol=1e-10)
    eta, se, z = _wald(np.column_stack([np.ones(25), grid]), sleep_fit)
    lo, hi = _band(ax, "95% CI", grid)
    np.testing.assert_allclose(lo, eta - z * se, rtol=1e-8)
    np.testing.assert_allclose(hi, eta + z * se, rtol=1e-8)
    labels = _legend(ax)
    assert "conditional = marginal (identity link)" in labels and "95% CI" in labels
    assert "no other covariates" in _caption(ax) and "95% Wald" in _caption(ax)
    fig.savefig(tmp_path / "lmm.png", dpi=40)


def test_lmm_numeric_holds_the_factor_at_its_reference_or_at(plt, ortho_fit):
    data = gk.datasets.load("Orthodont")
    ref = data["Sex"].cat.categories[0]
    fig = ortho_fit.plot_effects("age", n_points=10, level=0.8)
    ax = fig.axes[0]
    assert f"Sex = {ref} (reference level)" in _caption(ax) and "80% Wald" in _caption(ax)
    other = data["Sex"].cat.categories[1]
    fig = ortho_fit.plot_effects("age", n_points=10, level=0.8, at={"Sex": other})
    ax = fig.axes[0]
    assert f"Sex = {other} (at=)" in _caption(ax)
    grid = np.linspace(data["age"].min(), data["age"].max(), 10)
    eta, se, z = _wald(np.column_stack([np.ones(10), grid, np.ones(10)]), ortho_fit, level=0.8)
    np.testing.assert_allclose(_line(ax, "conditional").get_ydata(), eta, rtol=1e-10)
    lo, hi = _band(ax, "80% CI", grid)
    np.testing.assert_allclose(lo, eta - z * se, rtol=1e-8)
    np.testing.assert_allclose(hi, eta + z * se, rtol=1e-8)


def test_glmm_numeric_conditional_and_marginal_bands(plt, hospital_fit, tmp_path):
    h = gk.datasets.load("hospital")
    fig = hospital_fit.plot_effects("age", n_points=30)
    ax = fig.axes[0]
    grid = np.linspace(h["age"].min(), h["age"].max(), 30)
    teach = h["teaching"].mean()
    X = np.column_stack([np.ones(30), grid, np.zeros(30), np.full(30, teach)])  # sex at female (reference)
    nd = pd.DataFrame({"age": grid, "sex": pd.Categorical(["female"] * 30, categories=h["sex"].cat.categories),
                       "teaching": teach, "hospital": pd.Categorical(["H01"] * 30)})
    cond = _line(ax, "conditional").get_ydata()
    np.testing.assert_allclose(cond, hospital_fit.predict(nd, re_form="~0", type="response"), rtol=1e-10)
    eta, se, z = _wald(X, hospital_fit)
    np.testing.assert_allclose(cond, expit(eta), rtol=1e-8)
    lo, hi = _band(ax, "95% CI, conditional", grid)
    np.testing.assert_allclose(lo, expit(eta - z * se), rtol=1e-7)
    np.testing.assert_allclose(hi, expit(eta + z * se), rtol=1e-7)
    sd = float(np.sqrt(hospital_fit.varcorr["vcov"].iloc[0]))
    m, mlo, mhi = _marginal_band(eta, se, sd, z)
    marg = _line(ax, "marginal").get_ydata()
    np.testing.assert_allclose(marg, hospital_fit.predict(nd, type="response", marginal=True), rtol=1e-10)
    np.testing.assert_allclose(marg, m, rtol=1e-8)
    lo, hi = _band(ax, "95% CI, marginal", grid)
    np.testing.assert_allclose(lo, mlo, rtol=1e-5)
    np.testing.assert_allclose(hi, mhi, rtol=1e-5)
    assert np.all(marg > cond)  # risks below one half: averaging over hospitals raises them
    cap = _caption(ax)
    assert "sex = female (reference level)" in cap and f"teaching = {teach:.3g} (mean)" in cap
    assert "delta method" in cap
    labels = _legend(ax)
    for want in ("conditional (random effects = 0)", "marginal (population-averaged)", "95% CI, conditional",
                 "95% CI, marginal", "observed age"):
        assert want in labels
    fig.savefig(tmp_path / "glmm.png", dpi=40)


def test_choosing_curves_and_drawing_into_given_axes(plt, hospital_fit):
    fig0, axes = plt.subplots(1, 2)
    fig = hospital_fit.plot_effects("age", n_points=5, conditional=False, ax=axes[1])
    assert fig is fig0
    assert [ln.get_label() for ln in axes[1].lines if "population" in ln.get_label()]
    assert not [ln for ln in axes[1].lines if "random effects = 0" in ln.get_label()]
    assert not axes[0].lines
    fig = hospital_fit.plot_effects("age", n_points=5, marginal=False)
    assert not [ln for ln in fig.axes[0].lines if "marginal" in ln.get_label()]
    assert "delta method" not in _caption(fig.axes[0])


def test_offset_and_weights_are_not_covariates(plt, offset_fit):
    data = offset_fit.frame.data
    fig = offset_fit.plot_effects("x", n_points=8)
    ax = fig.axes[0]
    cap = _caption(ax)
    assert f"exposure = {data['exposure'].mean():.3g} (mean)" in cap
    grid = np.linspace(data["x"].min(), data["x"].max(), 8)
    b = offset_fit.fixef.to_numpy()
    np.testing.assert_allclose(_line(ax, "conditional").get_ydata(),
                               np.exp(b[0] + b[1] * grid + np.log(data["exposure"].mean())), rtol=1e-8)
    with pytest.raises(gk.ArgumentError, match=r"covariates are \['x'\]") as err:
        offset_fit.plot_effects("w")
    assert "exposure" not in str(err.value) and "'y'" not in str(err.value)
    with pytest.raises(gk.ArgumentError, match="offset"):
        offset_fit.plot_effects("exposure")


# ----- factors -----

def test_lmm_factor_points_and_bars(plt, ortho_fit, tmp_path):
    data = gk.datasets.load("Orthodont")
    fig = ortho_fit.plot_effects("Sex")
    ax = fig.axes[0]
    levels = list(data["Sex"].cat.categories)
    x, y, lo, hi = _points(ax, "identity link")
    np.testing.assert_allclose(x, np.arange(len(levels)))
    age = data["age"].mean()
    nd = pd.DataFrame({"age": age, "Sex": pd.Categorical(levels, categories=levels),
                       "Subject": pd.Categorical(["M01"] * len(levels))})
    np.testing.assert_allclose(y, ortho_fit.predict(nd, re_form="~0"), rtol=1e-10)
    eta, se, z = _wald(np.column_stack([np.ones(2), np.full(2, age), [0.0, 1.0]]), ortho_fit)
    np.testing.assert_allclose(lo, eta - z * se, rtol=1e-8)
    np.testing.assert_allclose(hi, eta + z * se, rtol=1e-8)
    assert [t.get_text() for t in ax.get_xticklabels()] == levels
    assert f"age = {age:.3g} (mean)" in _caption(ax)
    fig.savefig(tmp_path / "lmm_factor.png", dpi=40)


def test_glmm_factor_conditional_and_marginal_dodged(plt, cbpp_fit, tmp_path):
    fig = cbpp_fit.plot_effects("period", n_clusters=4, seed=1)
    ax = fig.axes[0]
    k = 4
    X = np.column_stack([np.ones(k), np.eye(k)[:, 1:]])
    eta, se, z = _wald(X, cbpp_fit)
    xc, yc, loc, hic = _points(ax, "conditional")
    np.testing.assert_allclose(yc, expit(eta), rtol=1e-8)
    levels = list(gk.datasets.load("cbpp")["period"].cat.categories)
    nd = pd.DataFrame({"period": pd.Categorical(levels, categories=levels), "herd": pd.Categorical(["1"] * k),
                       "incidence": 0, "size": 1})
    np.testing.assert_allclose(yc, cbpp_fit.predict(nd, re_form="~0", type="response"), rtol=1e-10)
    np.testing.assert_allclose(loc, expit(eta - z * se), rtol=1e-7)
    np.testing.assert_allclose(hic, expit(eta + z * se), rtol=1e-7)
    sd = float(np.sqrt(cbpp_fit.varcorr["vcov"].iloc[0]))
    m, mlo, mhi = _marginal_band(eta, se, sd, z)
    xm, ym, lom, him = _points(ax, "marginal")
    np.testing.assert_allclose(ym, cbpp_fit.predict(nd, type="response", marginal=True), rtol=1e-10)
    np.testing.assert_allclose(ym, m, rtol=1e-8)
    np.testing.assert_allclose(lom, mlo, rtol=1e-5)
    np.testing.assert_allclose(him, mhi, rtol=1e-5)
    assert np.all(xc < np.arange(k)) and np.all(xm > np.arange(k))  # dodged either side of the level
    clusters = _line(ax, "clusters of herd")
    assert len(clusters.get_ydata()) == 4 * k
    assert "no other covariates" in _caption(ax)
    fig.savefig(tmp_path / "glmm_factor.png", dpi=40)


def test_numeric_column_used_as_factor(plt):
    data = gk.datasets.load("sleepstudy").copy()
    data["week"] = (data["Days"] >= 5).astype(int)
    fit = gk.lmer("Reaction ~ factor(week) + Days + (1 | Subject)", data)
    fig = fit.plot_effects("week")
    x, y, _, _ = _points(fig.axes[0], "identity")
    assert list(x) == [0.0, 1.0]
    b = fit.fixef.to_numpy()
    np.testing.assert_allclose(y, [b[0] + b[2] * 4.5, b[0] + b[1] + b[2] * 4.5], rtol=1e-10)
    assert "week" in fig.axes[0].get_xlabel()
    assert "Days = 4.5 (mean)" in _caption(fig.axes[0])


# ----- bad input -----

def test_unknown_and_non_fixed_variables(plt, cbpp_fit, hospital_fit):
    for name in ("nope", "size", "incidence"):
        with pytest.raises(gk.ArgumentError, match=r"\['period'\]") as err:
            cbpp_fit.plot_effects(name)
        msg = str(err.value).split("one of")[-1] if "one of" in str(err.value) else str(err.value).split("are")[-1]
        assert "incidence" not in msg and "size" not in msg and "herd" not in msg
    with pytest.raises(gk.ArgumentError, match="not a column the model uses"):
        cbpp_fit.plot_effects("nope")
    with pytest.raises(gk.ArgumentError, match="response"):
        cbpp_fit.plot_effects("size")
    with pytest.raises(gk.ArgumentError, match="grouping factor"):
        hospital_fit.plot_effects("hospital")
    with pytest.raises(gk.ArgumentError, match="response"):
        hospital_fit.plot_effects("infection")
    with pytest.raises(gk.ArgumentError, match="the fixed part does not use it"):
        hospital_fit.plot_effects("patient")


def test_bad_options(plt, hospital_fit):
    with pytest.raises(gk.ArgumentError, match="nothing to draw"):
        hospital_fit.plot_effects("age", conditional=False, marginal=False)
    for bad in (0.0, 1.0, 95, "0.9", True):
        with pytest.raises(gk.ArgumentError, match="level"):
            hospital_fit.plot_effects("age", level=bad)
    with pytest.raises(gk.ArgumentError, match="not a level of 'sex'"):
        hospital_fit.plot_effects("age", at={"sex": "other"})
    with pytest.raises(gk.ArgumentError, match="finite number"):
        hospital_fit.plot_effects("age", at={"teaching": "yes"})
    with pytest.raises(gk.ArgumentError, match=r"at= sets \['sex', 'teaching'\]"):
        hospital_fit.plot_effects("age", at={"hospital": "H01"})
    with pytest.raises(gk.ArgumentError, match="at must be a dict"):
        hospital_fit.plot_effects("age", at=[("sex", "male")])
    with pytest.raises(gk.ArgumentError, match="the variable drawn"):
        hospital_fit.plot_effects("age", at={"age": 40})
    with pytest.raises(gk.ArgumentError, match="n_points"):
        hospital_fit.plot_effects("age", n_points=1)


def test_zero_inflated_model_draws_the_mixture_means_with_bands(plt):
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=300)
    y = np.where(rng.uniform(size=300) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.4 * x + rng.normal(scale=0.5, size=30)[g])))
    fit = gk.glmer("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]}), family="poisson",
                   ziformula="~1")
    ax = fit.plot_effects("x", n_points=6).axes[0]
    grid = np.linspace(x.min(), x.max(), 6)
    nd = pd.DataFrame({"x": grid, "g": "g0"})
    np.testing.assert_allclose(_line(ax, "conditional").get_ydata(), fit.predict(nd, re_form="~0", type="response"),
                               rtol=1e-10)
    # the marginal curve is the mixture's population-averaged mean (1 - π) E_b[μ], not E_b[μ]
    np.testing.assert_allclose(_line(ax, "marginal").get_ydata(), fit.predict(nd, type="response", marginal=True),
                               rtol=1e-10)
    pi = float(np.asarray(fit.predict(nd, type="zprob"))[0])
    sd = float(fit.varcorr["sdcor"].iloc[0])
    np.testing.assert_allclose(_line(ax, "marginal").get_ydata(),
                               (1 - pi) * np.exp(np.asarray(fit.predict(nd, re_form="~0")) + sd**2 / 2), rtol=1e-6)
    assert len(ax.collections) >= 2  # a band for each curve
