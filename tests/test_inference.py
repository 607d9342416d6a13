"""Wald tables (issue: interpretation and inference): Satterthwaite degrees of freedom and p-values
against lmerTest (tests/data/r/make_lmertest.R), z tables and exponentiated coefficients for GLMMs."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk
from glmmkit.exceptions import ArgumentError

CASES = json.loads((Path(__file__).parent / "data" / "lmertest_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_satterthwaite_matches_lmertest(case):
    fit = gk.lmer(case["formula"], gk.datasets.load(case["dataset"]), reml=case["reml"])
    table = fit.coef_table()
    for name, df in case["df"].items():
        assert table.loc[name, "df"] == pytest.approx(df, rel=2e-3), name
        assert table.loc[name, "statistic"] == pytest.approx(case["t"][name], rel=1e-4), name
        # p-values: relative agreement, down to the smallest ones
        assert table.loc[name, "p_value"] == pytest.approx(case["p"][name], rel=0.02, abs=1e-300), name
    lo, hi = table["ci_lower"], table["ci_upper"]
    q = stats.t.ppf(0.975, table["df"])
    np.testing.assert_allclose(hi - lo, 2 * q * table["std_error"], rtol=1e-10)


def test_glmm_table_is_z_and_exponentiates_to_odds_ratios():
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"))
    t = fit.coef_table()
    assert np.all(np.isinf(t["df"]))
    np.testing.assert_allclose(t["p_value"], 2 * stats.norm.sf(np.abs(t["statistic"])))
    orr = fit.coef_table(exponentiate=True, level=0.9)
    beta, se = fit.fixef.to_numpy(), np.sqrt(np.diag(fit.vcov))
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(orr["estimate"], np.exp(beta))
    np.testing.assert_allclose(orr["ci_lower"], np.exp(beta - z * se))
    np.testing.assert_allclose(orr["ci_upper"], np.exp(beta + z * se))
    # lme4's Wald: period2 log odds ratio -0.99226 (SE 0.30539)
    assert t.loc["period2", "estimate"] == pytest.approx(-0.99226, abs=2e-3)
    with pytest.raises(ArgumentError, match="satterthwaite"):
        fit.coef_table(ddf="satterthwaite")


def test_lmm_z_table_on_request():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    assert np.all(np.isinf(fit.coef_table(ddf="z")["df"]))
    with pytest.raises(ArgumentError):
        fit.coef_table(level=1.5)


ICC_CASES = json.loads((Path(__file__).parent / "data" / "icc_cases.json").read_text())


@pytest.mark.parametrize("case", ICC_CASES, ids=[c["id"] for c in ICC_CASES])
def test_icc_matches_performance(case):
    """performance::icc (tests/data/r/make_icc.R): random slopes, two factors, logit, probit, Poisson, NB2.
    Differences reflect the variance estimates' own (lme4's probit fit stops ~1e-3 short)."""
    df = gk.datasets.load(case["dataset"])
    if case["family"] == "gaussian":
        fit = gk.lmer(case["formula"], df)
    else:
        fit = gk.glmer(case["formula"], df, family=case["family"], link=case["link"] or None)
    res = fit.icc()
    assert res["adjusted"] == pytest.approx(case["adjusted"], abs=5e-4)
    assert res["conditional"] == pytest.approx(case["conditional"], abs=5e-4)
    for group, value in case["by_group"].items():
        assert res["by_group"][group] == pytest.approx(value, abs=5e-4), group


def test_anova_refits_reml_by_ml_and_matches_lme4():
    """lme4 1.1-31: anova(lmer(Reaction ~ Days + (1|Subject)), lmer(Reaction ~ Days + (Days|Subject))):
    logLik -897.0393215 / -875.9696722, Chisq 42.13929854 on 2 df, p 7.072412547e-10."""
    s = gk.datasets.load("sleepstudy")
    m1 = gk.lmer("Reaction ~ Days + (Days | Subject)", s)
    m0 = gk.lmer("Reaction ~ Days + (1 | Subject)", s)
    t = gk.anova(m1, m0, names=["slope", "intercept"])
    assert list(t.index) == ["intercept", "slope"]  # smallest first
    np.testing.assert_allclose(t["loglik"], [-897.0393215, -875.9696722], atol=1e-5)
    assert t.loc["slope", "chisq"] == pytest.approx(42.13929854, abs=1e-4)
    assert t.loc["slope", "df"] == 2
    assert t.loc["slope", "p_value"] == pytest.approx(7.072412547e-10, rel=1e-4)
    assert any("refitting" in n for n in t.attrs["notes"])
    assert any("boundary" in n for n in t.attrs["notes"])


def test_anova_glmm_matches_lme4():
    """lme4: anova(glmer(cbind(...) ~ 1 + (1|herd)), glmer(cbind(...) ~ period + (1|herd))): Chisq 25.6099376 on
    3 df, p 1.151006489e-05; lme4's Laplace optima are ~3e-4 short of ours, hence the tolerance."""
    c = gk.datasets.load("cbpp")
    g0 = gk.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", c)
    g1 = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", c)
    t = gk.anova(g0, g1)
    assert t.iloc[1]["chisq"] == pytest.approx(25.6099376, abs=2e-3)
    assert t.iloc[1]["p_value"] == pytest.approx(1.151006489e-05, rel=2e-3)
    assert t.attrs["notes"] == []
    with pytest.raises(ArgumentError, match="different numbers of rows"):
        gk.anova(g0, gk.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", c.iloc[:40]))


def test_hatvalues_match_lme4_for_lmms():
    """lme4 1.1-31 hatvalues(): sleepstudy (Days | Subject) sum 29.02212395, first rows 0.2293040377,
    0.1697299938, 0.126823715; Penicillin crossed sum 27.47235937."""
    m1 = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    np.testing.assert_allclose(m1.hatvalues()[:3], [0.2293040377, 0.1697299938, 0.126823715], rtol=1e-4)
    assert m1.edf == pytest.approx(29.02212395, rel=1e-5)
    m2 = gk.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", gk.datasets.load("Penicillin"))
    assert m2.edf == pytest.approx(27.47235937, rel=1e-5)
    assert "Effective df (trace of the hat matrix): 29.02" in str(m1)


def _dense_hat(fit, W):
    """diag(W^½ V Ω⁻¹ V' W^½) with V = [ZΛ X], Ω = V'WV + diag(I, 0), dense."""
    Z = fit.structure.z_matrix().toarray()
    Lam = np.zeros((fit.structure.q, fit.structure.q))
    for blk, T in zip(fit.structure.blocks, fit._templates):
        for g in range(blk.q):
            sl = slice(blk.offset + g * blk.K, blk.offset + (g + 1) * blk.K)
            Lam[sl, sl] = T
    V = np.hstack([Z @ Lam, fit.frame.X[:, fit._x_kept]])
    q = fit.structure.q
    Omega = V.T @ (W[:, None] * V)
    Omega[:q, :q] += np.eye(q)
    return W * np.einsum("ij,ji->i", V, np.linalg.solve(Omega, V.T))


@pytest.mark.parametrize("formula, family", [
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    ("y ~ x + cond + (1 | subj) + (1 + x | item)", "binomial"),
    ("cnt ~ x + (1 | subj) + (1 | item)", "negative_binomial"),
])
def test_glmm_hatvalues_are_the_pirls_hat_matrix(formula, family):
    df = gk.datasets.load("cbpp") if "herd" in formula else pd.read_csv(Path(__file__).parent / "data" / "glmm_crossed.csv")
    fit = gk.glmer(formula, df, family=family)
    h = fit.hatvalues()
    np.testing.assert_allclose(h, _dense_hat(fit, fit._hat_weights()), rtol=1e-8, atol=1e-12)
    p, q = len(fit.x_names), fit.structure.q
    assert p < fit.edf < p + q
    assert np.all((h > 0) & (h < 1))


def test_wald_confint_uses_lme4_names_and_fixed_effects_only():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    ci = fit.confint()
    assert list(ci.index) == ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma",
                              "(Intercept)", "Days"]
    assert ci.iloc[:4].isna().all().all()
    # lme4: confint(fm1, method = "Wald"): (Intercept) 238.0292 264.7810; Days 7.437595 13.496977
    np.testing.assert_allclose(ci.loc["(Intercept)"], [238.0292, 264.7810], atol=1e-3)
    np.testing.assert_allclose(ci.loc["Days"], [7.437595, 13.496977], atol=1e-4)


def test_bootstrap_confint_is_reproducible_and_sensible():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    a = fit.confint("bootstrap", n_boot=60, seed=5, progress=False)
    b = fit.confint("bootstrap", n_boot=60, seed=5, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(fit.confint("bootstrap", n_boot=60, seed=6, progress=False))
    est = pd.concat([gk.inference.confint.variance_parameters(fit), fit.fixef])
    assert np.all((a["lower"] <= est) & (est <= a["upper"]))
    wald = fit.confint()
    width = (a["upper"] - a["lower"]).loc[["(Intercept)", "Days"]]
    np.testing.assert_allclose(width, (wald["upper"] - wald["lower"]).loc[["(Intercept)", "Days"]], rtol=0.35)
    assert a.attrs["n_failed"] == 0


def test_glmm_bootstrap_and_simulate():
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"))
    sims = fit.simulate(200, seed=1, as_frame=False)
    assert sims.shape == (fit.nobs, 200)
    assert np.all((sims >= 0) & (sims <= 1))
    # marginal mean of the simulated proportions against the integral of the conditional mean over b
    sd = fit.varcorr["sdcor"].iloc[0]
    z, w = np.polynomial.hermite_e.hermegauss(40)
    eta0 = fit.predict(re_form="~0").to_numpy()
    marginal = (1 / (1 + np.exp(-(eta0[:, None] + sd * z[None, :])))) @ w / w.sum()
    assert abs(float(np.mean(sims.mean(axis=1) - marginal))) < 0.01
    ci = fit.confint("bootstrap", n_boot=30, seed=3, progress=False)
    assert ci.loc["period2", "lower"] < fit.fixef["period2"] < ci.loc["period2", "upper"]


def test_lmm_shrinkage_matches_its_formula_and_posterior_is_the_mode():
    rng = np.random.default_rng(4)
    sizes = rng.integers(2, 30, 25)
    g = np.repeat(np.arange(25), sizes)
    df = pd.DataFrame({"g": [f"c{i}" for i in g], "y": 3 + 1.5 * rng.normal(size=25)[g] + rng.normal(size=g.size) * 2})
    fit = gk.lmer("y ~ 1 + (1 | g)", df)
    s = fit.shrinkage()["g"]
    sb2, s2 = fit.varcorr["vcov"].iloc[0], fit.sigma**2
    n = s[("n", "")].to_numpy()
    np.testing.assert_allclose(s[("(Intercept)", "shrinkage")], (s2 / n) / (sb2 + s2 / n), rtol=1e-6)
    assert np.corrcoef(n, s[("(Intercept)", "shrinkage")])[0, 1] < -0.8  # small clusters shrink most
    post = fit.ranef_posterior()["g"]
    np.testing.assert_allclose(post[("(Intercept)", "mean")], fit.ranef["g"]["(Intercept)"])
    np.testing.assert_allclose(post[("(Intercept)", "sd")], np.sqrt(fit.condvar["g"]["(Intercept)"]))


def test_glmm_posterior_means_match_a_direct_integral():
    cbpp = gk.datasets.load("cbpp")
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    post = fit.ranef_posterior(nagq=25)["herd"]
    assert "quadrature" in post.attrs["method"]
    sd_b = fit.varcorr["sdcor"].iloc[0]
    grid = np.linspace(-8, 8, 4001) * sd_b
    eta0 = fit.predict(re_form="~0").to_numpy()
    k, n = cbpp["incidence"].to_numpy(), cbpp["size"].to_numpy()
    codes = fit.structure.blocks[0].factor.codes
    for level in range(3):
        rows = codes == level
        e = eta0[rows][None, :] + grid[:, None]
        ll = np.sum(k[rows] * e - n[rows] * np.log1p(np.exp(e)), axis=1) - 0.5 * (grid / sd_b) ** 2
        w = np.exp(ll - ll.max())
        mean = np.sum(w * grid) / np.sum(w)
        sd = np.sqrt(np.sum(w * grid**2) / np.sum(w) - mean**2)
        assert post.iloc[level][("(Intercept)", "mean")] == pytest.approx(mean, abs=1e-6)
        assert post.iloc[level][("(Intercept)", "sd")] == pytest.approx(sd, abs=1e-6)
    # the modes differ from the means (a skewed posterior): the reason both are offered
    assert not np.allclose(post[("(Intercept)", "mean")], fit.ranef["herd"]["(Intercept)"], atol=1e-3)


def test_glmm_no_pooling_is_missing_where_a_level_has_no_mle():
    df = pd.read_csv(Path(__file__).parent / "data" / "glmm_crossed.csv")
    df = df[df["subj"] != "S01"]
    extra = pd.DataFrame({"y": [0, 0, 0], "x": [0.1, -0.2, 0.3], "cond": ["a", "b", "c"], "subj": "S00", "item": "I01"})
    fit = gk.glmer("y ~ x + (1 | subj)", pd.concat([df, extra], ignore_index=True))
    s = fit.shrinkage()["subj"]
    assert np.isnan(s.loc["S00", ("(Intercept)", "no_pooling")])  # all failures: its own estimate is -inf
    assert s.loc["S00", ("(Intercept)", "partial_pooling")] < 0
    ok = s[("(Intercept)", "shrinkage")].dropna()
    assert len(ok) >= 55 and ok.between(0, 1).all()


def test_marginal_coefs_probit_closed_form_and_delta_method():
    """Probit random intercept: E[Φ(η + b)] = Φ(η / √(1 + σ²)), so the marginal coefficients are exactly
    β / √(1 + θ²); their delta-method SEs follow from the covariance of (θ, β)."""
    fit = gk.glmer("y ~ x + (1 | patient)", gk.datasets.load("spinal"), link="probit")
    m = fit.marginal_coefs()
    th = fit.theta.iloc[0]
    beta = fit.fixef.to_numpy()
    np.testing.assert_allclose(m["estimate"], beta / np.sqrt(1 + th**2), rtol=1e-8)
    J = np.column_stack([-beta * th / (1 + th**2) ** 1.5, np.eye(2) / np.sqrt(1 + th**2)])
    se = np.sqrt(np.diag(J @ fit._param_cov @ J.T))
    np.testing.assert_allclose(m["std_error"], se, rtol=1e-4)
    assert np.all(m["attenuation"] < 1)


def test_poisson_marginal_moments_closed_form():
    c = gk.datasets.load("counts_ri")
    fit = gk.glmer("y ~ x1 + x2 + (1 | g)", c, family="poisson")
    s2 = fit.varcorr["vcov"].iloc[0]
    rows = c.iloc[[0, 5, 9]]
    mm = fit.marginal_moments(rows)
    mu = np.exp(fit.predict(rows, re_form="~0").to_numpy() + s2 / 2)
    np.testing.assert_allclose(mm["mean"], mu, rtol=1e-10)
    np.testing.assert_allclose(mm["variance"], mu + mu**2 * (np.exp(s2) - 1), rtol=1e-8)
    np.testing.assert_allclose(mm["covariance"].to_numpy()[0, 1], mu[0] * mu[1] * (np.exp(s2) - 1), rtol=1e-8)
    np.testing.assert_allclose(fit.predict(rows, marginal=True, type="response"), mu, rtol=1e-10)
    corr = mm["correlation"].to_numpy()
    assert np.allclose(np.diag(corr), 1) and 0 < corr[0, 1] < 1


def test_marginal_means_of_a_crossed_model_match_a_direct_integral():
    df = pd.read_csv(Path(__file__).parent / "data" / "glmm_crossed.csv")
    fit = gk.glmer("y ~ x + (1 | subj) + (1 | item)", df)
    s1, s2 = fit.varcorr["sdcor"].iloc[0], fit.varcorr["sdcor"].iloc[1]
    g = np.linspace(-7, 7, 801)
    w = np.exp(-0.5 * g**2)
    w /= w.sum()
    eta0 = fit.predict(df.iloc[:4], re_form="~0")
    direct = [float(w @ (1 / (1 + np.exp(-(e + s1 * g[:, None] + s2 * g[None, :])))) @ w) for e in eta0]
    np.testing.assert_allclose(fit.predict(df.iloc[:4], marginal=True, type="response"), direct, rtol=1e-7)
    m = fit.marginal_coefs()
    assert np.all(np.isfinite(m["std_error"])) and np.all(np.abs(m["estimate"]) < np.abs(fit.fixef) + 1e-12)


def test_lmm_marginal_equals_conditional():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    m = fit.marginal_coefs()
    np.testing.assert_allclose(m["estimate"], fit.fixef, rtol=1e-10)


PROFILE = json.loads((Path(__file__).parent / "data" / "profile_cases.json").read_text())


@pytest.mark.parametrize("case", PROFILE, ids=[c["id"] for c in PROFILE])
def test_profile_confint_matches_lme4(case):
    """lme4's confint(method = "profile", oldNames = FALSE) (tests/data/r/make_profile.R): every end within
    1e-3 of the interval's width (LMM: REML and ML, crossed; GLMM: binomial, Poisson)."""
    df = gk.datasets.load(case["dataset"])
    if case["family"] == "gaussian":
        fit = gk.lmer(case["formula"], df, reml=case["reml"])
    else:
        fit = gk.glmer(case["formula"], df, family=case["family"])
    ci = fit.confint("profile")
    assert list(ci.index) == case["names"]
    width = np.array(case["upper"]) - np.array(case["lower"])
    assert np.all(np.abs(ci["lower"].to_numpy() - case["lower"]) <= 1e-3 * width)
    assert np.all(np.abs(ci["upper"].to_numpy() - case["upper"]) <= 1e-3 * width)


def test_bootstrap_does_not_depend_on_n_jobs_and_summary_labels_ratios():
    fit = gk.glmer("y ~ x1 + x2 + (1 | g)", gk.datasets.load("counts_ri"), family="poisson")
    a = fit.confint("bootstrap", n_boot=12, seed=9, progress=False)
    b = fit.confint("bootstrap", n_boot=12, seed=9, progress=False, n_jobs=2)
    pd.testing.assert_frame_equal(a, b)
    text = str(fit)
    assert "Rate ratios (exp(Estimate))" in text
    cb = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"))
    assert "Odds ratio" in str(cb)


def test_profile_of_a_family_with_its_own_parameter_is_close_to_wald():
    fit = gk.glmer("y ~ x1 + x2 + (1 | g)", gk.datasets.load("counts_ri"), family="negative_binomial")
    prof = fit.confint("profile")
    wald = fit.confint()
    for name in fit.x_names:  # β is close to normal here: the profile and Wald ends nearly agree
        np.testing.assert_allclose(prof.loc[name], wald.loc[name], atol=0.05 * (wald.loc[name, "upper"] - wald.loc[name, "lower"]))
    sd = fit.varcorr["sdcor"].iloc[0]
    assert prof.loc["sd_(Intercept)|g", "lower"] < sd < prof.loc["sd_(Intercept)|g", "upper"]
