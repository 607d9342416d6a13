"""Residual (R-side) correlation structures (issue 13): lmer(..., residual="ar1(visit | Subject)").

Reference: tests/data/covstruct/residual_cases.json, written by make_residual.R (nlme 3.1:
lme / gls with corAR1, corCAR1, corCompSymm, corSymm on Orthodont, BodyWeight, Ovary, REML and ML).
Rule of the issue: log-lik within 1e-4 or higher, fixed effects within 2 % of their SE, correlation
parameters within 0.01; every case meets it with room (log-lik 1e-6, fixed effects 1e-3 SE, 1e-4).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, DataError, FormulaError

DATA = Path(__file__).parent / "data" / "covstruct"
CASES = json.loads((DATA / "residual_cases.json").read_text())["cases"]
_STR = {"Diet": str, "Rat": str, "Mare": str, "Subject": str}


def _data(name):
    return pd.read_csv(DATA / name, dtype=_STR)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_nlme(case):
    df = _data(case["data"])
    fit = gk.lmer(case["formula"], df, reml=case["REML"], residual=case["residual"])
    assert fit.converged
    assert fit.loglik > case["loglik"] - 1e-6
    ref_fe = np.array(list(case["fixef"].values()))
    ref_se = np.array(list(case["se"].values()))
    assert np.max(np.abs(fit.fixef.to_numpy() - ref_fe) / ref_se) < 1e-3
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    if "gls" in case["name"] and not case["REML"]:
        # nlme's gls scales an ML fit's covariance by n / (n - p) (σ² as if REML); ours is lme4's σ̂²_ML
        se = se * np.sqrt(fit.nobs / (fit.nobs - len(fit.fixef)))
    np.testing.assert_allclose(se, ref_se, rtol=1e-3)
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-4)
    ref_rho = case["rho"] if isinstance(case["rho"], list) else list(case["rho"].values())
    np.testing.assert_allclose(fit.residual_params.to_numpy(), ref_rho, atol=1e-4)
    if case["re_sd"] is not None:
        sd = fit.varcorr.query("term2.isna() and group != 'Residual'", engine="python")["sdcor"].to_numpy()
        np.testing.assert_allclose(sd, np.atleast_1d(case["re_sd"]), rtol=1e-3)


def _dense_ml_loglik(fit):
    """-½ [n log 2π + log|V| + r'V⁻¹r] with V = Z G Z' + σ² R, built densely from the estimates."""
    n = fit.nobs
    r = fit.frame.y - fit.frame.X[:, fit._x_kept] @ fit._beta - fit.frame.offset
    V = np.zeros((n, n))
    for t in fit.structure.terms:
        Z = np.zeros((n, t.nlevels * t.k))
        codes = t.factor.codes
        Z[np.arange(n)[:, None], codes[:, None] * t.k + np.arange(t.k)] = t.columns
        G = np.kron(np.eye(t.nlevels), fit._term_cov(t))
        V += Z @ G @ Z.T
    R = fit.residual_structure
    lay = R.layout
    Rm = np.zeros((n, n))
    starts = np.flatnonzero(lay.first)
    for s, m in zip(starts, lay.sizes):
        rows = lay.order[s:s + m]
        Rm[np.ix_(rows, rows)] = R.correlation_at(fit._residual_psi, lay.times[s:s + m])
    V += fit.sigma**2 * Rm
    sign, logdet = np.linalg.slogdet(V)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(V, r))


@pytest.mark.parametrize("residual", ["ar1(visit | Subject)", "exp(age | Subject)", "cs(1 | Subject)",
                                      "un(visit | Subject)", "toep(visit | Subject)", "ar1(1 | Subject)"])
def test_whitening_equals_the_dense_likelihood(residual):
    """Every structure's whitening reproduces the Gaussian log-likelihood with V = ZGZ' + σ²R built
    densely, on unbalanced data (visits missing, so several patterns per structure)."""
    O = _data("orthodont.csv")
    O = O.drop(index=[1, 6, 14, 30, 31, 57]).reset_index(drop=True)
    fit = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, reml=False, residual=residual)
    assert fit.loglik == pytest.approx(_dense_ml_loglik(fit), abs=1e-7)


def test_row_order_invariance_and_refit():
    B = _data("bodyweight.csv")
    f = "weight ~ Time * Diet + (Time | Rat)"
    a = gk.lmer(f, B, residual="exp(Time | Rat)")
    b = gk.lmer(f, B.sample(frac=1.0, random_state=3), residual="exp(Time | Rat)")
    assert b.loglik == pytest.approx(a.loglik, abs=1e-6)
    assert b.residual_params["rho"] == pytest.approx(a.residual_params["rho"], abs=1e-5)
    ml = a.refit(reml=False)
    case = {c["name"]: c for c in CASES}["bodyweight_car1_ml"]
    assert ml.loglik == pytest.approx(case["loglik"], abs=1e-5)
    assert ml.npar == a.npar == 11


def test_simulated_residuals_carry_the_correlation():
    V = _data("ovary.csv")
    fit = gk.lmer("follicles ~ s1 + c1 + (1 | Mare)", V, residual="ar1(1 | Mare)")
    phi = fit.residual_params["rho"]
    sim = fit.simulate(nsim=3000, seed=4, re_form=None, as_frame=False)
    e = sim - fit.fitted().to_numpy()[:, None]
    lay = fit.residual_structure.layout
    es = e[lay.order]
    pairs = ~lay.first
    lag1 = np.corrcoef(es[np.flatnonzero(pairs)].ravel(), es[np.flatnonzero(pairs) - 1].ravel())[0, 1]
    assert lag1 == pytest.approx(phi, abs=0.02)
    assert np.std(e) == pytest.approx(fit.sigma, rel=0.02)


def test_normalized_residuals_are_whitened():
    V = _data("ovary.csv")
    fit = gk.lmer("follicles ~ s1 + c1 + (1 | Mare)", V, residual="ar1(1 | Mare)")
    lay = fit.residual_structure.layout
    for kind, expect_corr in (("scaled", True), ("normalized", False)):
        r = fit.residuals(kind).to_numpy()[lay.order]
        rest = np.flatnonzero(~lay.first)
        c = np.corrcoef(r[rest], r[rest - 1])[0, 1]
        # scaled: 0.54; normalized: -0.12 (the conditional residuals lose a little to the BLUPs)
        assert (c > 0.4) if expect_corr else (abs(c) < 0.2)


def test_anova_between_structures_and_intervals():
    O = _data("orthodont.csv")
    a = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, reml=False)
    b = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, reml=False, residual="ar1(visit | Subject)")
    tab = gk.anova(a, b)
    assert tab["df"].iloc[1] == 1
    assert tab["chisq"].iloc[1] == pytest.approx(2 * (b.loglik - a.loglik), abs=1e-8)
    ci = b.confint(method="profile", parm=["rho|Subject"])
    assert list(ci.index) == ["rho|Subject"]
    with pytest.raises(ArgumentError, match="parm names unknown"):
        b.confint(parm="Phi|Subject")
    lo, hi = ci.loc["rho|Subject"]
    assert lo < b.residual_params["rho"] < hi and -1 < lo and hi < 1


def test_gls_without_random_effects():
    O = _data("orthodont.csv")
    fit = gk.lmer("distance ~ age * Sex", O, residual="cs(1 | Subject)")
    text = str(fit.summary())
    assert "Correlation Structure: Compound symmetry" in text and "Rho" in text
    assert fit.predict(O.iloc[:5]).to_numpy() == pytest.approx(fit.fitted()[:5].to_numpy())
    assert fit.simulate(2, seed=1).shape == (fit.nobs, 2)
    df = fit.coef_table()["df"]
    assert np.all(np.isfinite(df))
    boot = fit.confint(method="bootstrap", n_boot=10, seed=1, progress=False)
    assert "rho|Subject" in boot.index


def test_structured_g_and_residual_summary_lines():
    O = _data("orthodont.csv")
    fit = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, residual="ar1(visit | Subject)")
    text = str(fit.summary())
    assert "Correlation Structure: AR(1)" in text and "Formula: ~visit | Subject" in text and "Phi" in text


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"residual": "ar2(visit | Subject)"}, FormulaError, "did you mean 'ar1'"),
    ({"residual": "ar1 visit Subject"}, FormulaError, "name\\(time \\| cluster\\)"),
    ({"residual": "un(1 | Subject)"}, FormulaError, "needs a time column"),
    ({"residual": "ar1(t | Subject)"}, DataError, "exp\\(t \\| Subject\\)"),
    ({"residual": "ar1(dup | Subject)"}, DataError, "cluster 'F01' has two rows at dup = 1 \\(rows"),
    ({"residual": "cs(1 | Sex)"}, FormulaError, "nested in every grouping factor"),
    ({"residual": "ar1(nothere | Subject)"}, FormulaError, "nothere"),
])
def test_bad_residual_input(kwargs, exc, match):
    O = _data("orthodont.csv").assign(t=lambda d: d.age + 0.5, dup=lambda d: d.visit.where(d.visit != 2, 1))
    with pytest.raises(exc, match=match):
        gk.lmer("distance ~ age + (1 | Subject)", O, **kwargs)


def test_glmer_residual_points_to_g_side():
    O = _data("orthodont.csv").assign(n=lambda d: np.round(d.distance).astype(int))
    with pytest.raises(ArgumentError, match="ar1\\(0 \\+ factor\\(visit\\) \\| Subject\\)"):
        gk.glmer("n ~ age + (1 | Subject)", O, family="poisson", residual="ar1(visit | Subject)")


def test_marginal_moments_include_the_residual_correlation():
    """Random intercept + AR(1): corr(y_s, y_t) = (σ_b² + σ² φ^|s-t|) / (σ_b² + σ²) within a subject."""
    O = _data("orthodont.csv")
    fit = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, residual="ar1(visit | Subject)")
    corr = fit.marginal_moments(O.iloc[:4])["correlation"].to_numpy()
    sb2, s2, phi = fit.varcorr.vcov.iloc[0], fit.sigma**2, fit.residual_params["rho"]
    for lag in (1, 2, 3):
        assert corr[0, lag] == pytest.approx((sb2 + s2 * phi**lag) / (sb2 + s2), abs=1e-10)


def test_correlation_by_lag_and_its_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    V = _data("ovary.csv")
    fit = gk.lmer("follicles ~ s1 + c1 + (1 | Mare)", V, residual="ar1(1 | Mare)")
    tab = fit.correlation_by_lag(max_lag=8)
    sb2, s2, phi = fit.varcorr.vcov.iloc[0], fit.sigma**2, fit.residual_params["rho"]
    np.testing.assert_allclose(tab["fitted"], (sb2 + s2 * phi ** tab.index.to_numpy()) / (sb2 + s2), atol=1e-10)
    assert np.max(np.abs(tab["empirical"] - tab["fitted"])) < 0.15  # the data follow the fitted decay
    assert tab["n_pairs"].iloc[0] == fit.nobs - fit.residual_structure.layout.n_clusters
    fig = fit.plot_correlation()
    assert fig.axes[0].get_xlabel() == "lag"
    d = pd.read_csv(DATA / "repeated.csv")
    g = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d)  # a G-side structure over visits
    tg = g.correlation_by_lag()
    assert tg["fitted"].iloc[0] > tg["fitted"].iloc[2] > 0
    html = fit.report(plots=True, n_sim=20)
    assert "Within-cluster correlation by lag" in html
    from glmmkit.exceptions import NotAvailableError

    with pytest.raises(NotAvailableError, match="no correlation over time"):
        gk.lmer("distance ~ age + (1 | Subject)", _data("orthodont.csv")).correlation_by_lag()


def test_kenward_roger_refuses_residual_and_structured_terms():
    from glmmkit.exceptions import NotAvailableError

    O = _data("orthodont.csv")
    fit = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, residual="ar1(visit | Subject)")
    with pytest.raises(NotAvailableError, match="satterthwaite"):
        fit.coef_table(ddf="kenward-roger")
    d = pd.read_csv(DATA / "repeated.csv")
    g = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d)
    with pytest.raises(NotAvailableError, match="satterthwaite"):
        g.coef_table(ddf="kenward-roger")


VAR_CASES = json.loads((DATA / "variance_cases.json").read_text())["cases"]


@pytest.mark.parametrize("case", VAR_CASES, ids=[c["name"] for c in VAR_CASES])
def test_dispformula_matches_nlme_varident(case):
    """dispformula= against nlme's varIdent (with corSymm: SAS TYPE=UN), make_variance.R."""
    df = _data(case["data"])
    fit = gk.lmer(case["formula"], df, reml=case["REML"], residual=case["residual"], dispformula=case["dispformula"])
    assert fit.converged and fit.loglik > case["loglik"] - 1e-6
    ref_se = np.array(list(case["se"].values()))
    assert np.max(np.abs(fit.fixef.to_numpy() - np.array(list(case["fixef"].values()))) / ref_se) < 1e-3
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-4)
    ratios = [v for k, v in fit.residual_params.items() if k.startswith("sd_ratio_")]
    np.testing.assert_allclose(ratios, list(case["ratios"].values())[1:], rtol=1e-4)
    if case["rho"] is not None:
        rho = [v for k, v in fit.residual_params.items() if not k.startswith("sd_ratio_")]
        np.testing.assert_allclose(rho, case["rho"], atol=1e-4)
    assert fit.npar == len(fit.fixef) + fit.structure.n_theta + 1 + len(fit.residual_params)


def test_dispformula_dense_likelihood_simulation_and_moments():
    O = _data("orthodont.csv")
    fit = gk.lmer("distance ~ age + Sex + (1 | Subject)", O, reml=False, dispformula="~ Sex",
                  residual="ar1(visit | Subject)")
    # the dense density with V = ZGZ' + σ² D R D
    n = fit.nobs
    d = fit.residual_structure.row_sd(fit._residual_psi)
    t = fit.structure.terms[0]
    Z = np.zeros((n, t.nlevels))
    Z[np.arange(n), t.factor.codes] = 1.0
    V = fit._term_cov(t)[0, 0] * Z @ Z.T
    lay = fit.residual_structure.layout
    Rm = np.zeros((n, n))
    for s, m in zip(np.flatnonzero(lay.first), lay.sizes):
        rows = lay.order[s:s + m]
        Rm[np.ix_(rows, rows)] = fit.residual_structure.correlation_at(fit._residual_psi, lay.times[s:s + m])
    V += fit.sigma**2 * np.outer(d, d) * Rm
    r = fit.frame.y - fit.frame.X @ fit._beta
    ll = -0.5 * (n * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r))
    assert fit.loglik == pytest.approx(ll, abs=1e-7)
    # simulated residuals: the male SD is sd_ratio times the female one
    e = fit.simulate(nsim=4000, seed=3, re_form=None, as_frame=False) - fit.fitted().to_numpy()[:, None]
    male = (O["Sex"] == "Male").to_numpy()
    assert np.std(e[male]) / np.std(e[~male]) == pytest.approx(fit.residual_params["sd_ratio_SexMale"], rel=0.02)
    z = fit.residuals("normalized")
    assert np.std(z[male]) == pytest.approx(np.std(z[~male]), rel=0.35)  # whitened: one scale
    mm = fit.marginal_moments(O.iloc[[0, 64]])  # a boy and a girl
    sb2 = fit._term_cov(t)[0, 0]
    assert mm["variance"].iloc[0] == pytest.approx(sb2 + (fit.sigma * d[0]) ** 2)
    assert mm["variance"].iloc[1] == pytest.approx(sb2 + (fit.sigma * d[64]) ** 2)
    gls = gk.lmer("distance ~ age * Sex", O, dispformula="~ Sex")  # no random effects, no correlation
    assert "Variance function" in str(gls.summary()) and gls.converged


@pytest.mark.parametrize("disp, match", [("Sex", "one-sided"), ("~ 1", "besides the intercept"),
                                         ("~ nothere", "nothere")])
def test_bad_dispformula(disp, match):
    with pytest.raises(FormulaError, match=match):
        gk.lmer("distance ~ age + (1 | Subject)", _data("orthodont.csv"), dispformula=disp)
