"""Bayesian fits end to end (issue 15): blmer / bglmer, the draws under lme4's names, summaries,
derived quantities, posterior predictions and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, ConvergenceWarning, SeparationWarning

CBPP_FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return gk.datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gk.bglmer(CBPP_FORMULA, cbpp, family="binomial", chains=2, draws=400, tune=400, seed=11)


def test_draws_carry_lme4_names(cbpp_fit):
    d = cbpp_fit.draws
    assert list(d.columns[:2]) == ["chain", "draw"]
    assert list(d.columns[2:]) == ["(Intercept)", "period2", "period3", "period4", "sd_(Intercept)|herd"]
    assert len(d) == 2 * 400 and set(d["chain"]) == {0, 1}
    assert (d["sd_(Intercept)|herd"] > 0).all()
    b = cbpp_fit.ranef_draws
    assert b.shape == (800, 2 + 15) and "b[(Intercept) herd:1]" in b.columns
    t = cbpp_fit.summary()
    assert {"mean", "sd", "mcse_mean", "2.5%", "97.5%", "rhat", "ess_bulk", "ess_tail"} <= set(t.columns)
    np.testing.assert_allclose(t.loc["period2", "mean"], d["period2"].mean(), rtol=1e-12)


def test_posterior_is_near_the_likelihood_fit(cbpp, cbpp_fit):
    """With 56 rows and rstanarm's weakly informative priors the posterior means sit within a
    fraction of a posterior SD of the Laplace estimates (the SD of the herd effect is pulled up by
    the decov prior's Gamma(1, 1) on it, as in rstanarm)."""
    ml = gk.glmer(CBPP_FORMULA, cbpp, family="binomial")
    t = cbpp_fit.summary()
    for name, value in ml.fixef.items():
        assert abs(t.loc[name, "mean"] - value) < 0.35 * t.loc[name, "sd"], name
    assert 0.4 < t.loc["sd_(Intercept)|herd", "mean"] < 1.1


def test_derived_quantities_and_predictions(cbpp, cbpp_fit):
    r = cbpp_fit.ratios()
    np.testing.assert_allclose(r.loc["period2", "mean"], np.exp(cbpp_fit.draws["period2"]).mean(), rtol=1e-12)
    icc = cbpp_fit.icc()
    sd = cbpp_fit.draws["sd_(Intercept)|herd"]
    np.testing.assert_allclose(icc.loc["herd", "mean"], (sd**2 / (sd**2 + np.pi**2 / 3)).mean(), rtol=1e-12)
    p = cbpp_fit.predict()
    assert list(p.columns) == ["mean", "sd", "lower", "upper"] and p.index.equals(cbpp.index)
    assert ((p["lower"] <= p["mean"]) & (p["mean"] <= p["upper"])).all()
    # the draws of the mean on the fitted rows, rebuilt from the draws by hand
    d, b = cbpp_fit.draws, cbpp_fit.ranef_draws
    X = np.column_stack([np.ones(len(cbpp))] + [(cbpp["period"].astype(str) == k).to_numpy(float) for k in "234"])
    herd = cbpp["herd"].astype(str).to_numpy()
    beta = d[["(Intercept)", "period2", "period3", "period4"]].to_numpy()
    bb = np.column_stack([b[f"b[(Intercept) herd:{h}]"].to_numpy() for h in herd])
    eta = beta @ X.T + bb
    np.testing.assert_allclose(cbpp_fit.predict(type="link", summary=False), eta, rtol=1e-10, atol=1e-10)
    # new data: the same rows again, and the population level
    np.testing.assert_allclose(cbpp_fit.predict(cbpp.iloc[:5])["mean"], p["mean"].iloc[:5], rtol=1e-12)
    pop = cbpp_fit.predict(cbpp.iloc[:5], re_form="~0", type="link", summary=False)
    np.testing.assert_allclose(pop, beta @ X[:5].T, rtol=1e-10, atol=1e-10)
    sims = cbpp_fit.simulate(50, seed=3)
    assert sims.shape == (50, len(cbpp)) and np.all((sims >= 0) & (sims <= 1))


def test_seed_reproduces_and_summary_prints(cbpp):
    kw = dict(family="binomial", chains=2, draws=60, tune=60, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = gk.bglmer(CBPP_FORMULA, cbpp, **kw)
        b = gk.bglmer(CBPP_FORMULA, cbpp, **kw)
    pd.testing.assert_frame_equal(a.draws, b.draws)
    text = repr(a)
    assert "Bayesian mixed model fit by MCMC" in text and "sd_(Intercept)|herd" in text and "rhat" in text
    assert "normal(location = 0, scale = 2.5)" in a.prior_summary()


def test_priors_replace_the_defaults_by_name(cbpp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tight = gk.bglmer(CBPP_FORMULA, cbpp, family="binomial", chains=2, draws=300, tune=300, seed=2,
                          priors={"period4": gk.priors.normal(0, 0.05)})
    assert abs(tight.draws["period4"].mean()) < 0.1 and tight.draws["period4"].std() < 0.06
    assert "period4" in tight.prior_summary() or "0.05" in tight.prior_summary()
    with pytest.raises(ArgumentError, match="period9"):
        gk.bglmer(CBPP_FORMULA, cbpp, family="binomial", priors={"period9": gk.priors.normal(0, 1)})


def test_bad_sampling_arguments(cbpp):
    for kw, name in (({"chains": 0}, "chains"), ({"draws": 2}, "draws"), ({"target_accept": 1.2}, "target_accept"),
                     ({"max_treedepth": 0}, "max_treedepth")):
        with pytest.raises(ArgumentError, match=name):
            gk.bglmer(CBPP_FORMULA, cbpp, family="binomial", **kw)
    with pytest.raises(gk.FormulaError, match="random-effects"):
        gk.bglmer("cbind(incidence, size - incidence) ~ period", cbpp, family="binomial")


def test_a_flat_prior_on_a_separated_model_warns():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 6)
    x = rng.normal(size=60)
    d = pd.DataFrame({"y": (x > 0).astype(int), "x": x, "g": g.astype(str)})
    with pytest.warns(SeparationWarning, match="proper prior"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gk.bglmer("y ~ x + (1 | g)", d, family="binomial", priors={"x": gk.priors.flat()}, chains=1, draws=20,
                      tune=20, seed=1)


def test_to_arviz(cbpp_fit):
    pytest.importorskip("arviz")
    idata = cbpp_fit.to_arviz()
    assert "posterior" in idata.groups() and "sample_stats" in idata.groups()
    np.testing.assert_allclose(float(idata.posterior["period2"].mean()), cbpp_fit.draws["period2"].mean(), rtol=1e-12)


@pytest.mark.parametrize("formula,data,family", [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),
    ("y ~ x1 + (1 + x1 + x2 | g)", "counts_ri", "negative_binomial"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", "gaussian"),
])
def test_unpack_draws_is_unpack_draw_by_draw(formula, data, family):
    from glmmkit.bayes.model import PosteriorModel

    m = PosteriorModel.from_formula(formula, gk.datasets.load(data), family=family)
    xs = np.random.default_rng(0).normal(0.0, 0.7, (30, m.dim))
    ref = pd.DataFrame([m.unpack(x, ranef=True) for x in xs])
    got = m.unpack_draws(xs, ranef=True)
    assert list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-12, atol=1e-12)


def test_marginal_means_average_over_each_draws_random_effects(cbpp, cbpp_fit):
    """Population-averaged mean of a logit model at each draw: E_b[expit(η₀ + b)], b ~ N(0, σ²_draw);
    checked against a Monte-Carlo average per draw, and flatter than the mean at b = 0."""
    nd = cbpp.iloc[[0, 1]]
    got = cbpp_fit.predict(nd, marginal=True, summary=False)
    eta0 = cbpp_fit.predict(nd, re_form="~0", type="link", summary=False)
    sd = cbpp_fit.draws["sd_(Intercept)|herd"].to_numpy()
    e = np.random.default_rng(4).standard_normal(20000)
    for d in (0, 100, 555):
        mc = (1.0 / (1.0 + np.exp(-(eta0[d][:, None] + sd[d] * e[None, :])))).mean(axis=1)
        np.testing.assert_allclose(got[d], mc, atol=4e-3)
    cond = 1.0 / (1.0 + np.exp(-eta0))
    assert np.all(got > cond)  # probabilities below 1/2: averaging over b raises them
    table = cbpp_fit.predict(nd, marginal=True)
    np.testing.assert_allclose(table["mean"], got.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("data,family,link,formula", [
    ("beta_ri", "beta", None, "y ~ x1 + (1 | g)"),
    ("gamma_ri", "gamma", "log", "y ~ x1 + x2 + (1 | g)"),
])
def test_beta_and_gamma_fits_sample_on_the_compiled_path(data, family, link, formula):
    """The fixed effects' posterior means sit near the Laplace estimates (600 rows: the likelihood
    dominates rstanarm's weakly informative coefficient priors) and the chains mix."""
    pytest.importorskip("nutpie")
    d = gk.datasets.load(data)
    ml = gk.glmer(formula, d, family=family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = gk.bglmer(formula, d, family=family, link=link, seed=1, chains=2, draws=500, tune=500)
    assert "nutpie-numba" in fit.settings["sampler"]
    t = fit.summary()
    assert (t["rhat"] < 1.05).all()  # 2 short chains: a sanity bound (the rstanarm tests hold 1.02)
    for name, value in ml.fixef.items():
        assert abs(t.loc[name, "mean"] - value) < 0.5 * t.loc[name, "sd"], name
    param = {"beta": "phi", "gamma": "shape"}[family]
    assert param in t.index and t.loc[param, "mean"] > 0
