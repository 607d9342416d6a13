"""Estimated marginal means, contrasts and trends (issue 17) against emmeans 1.8.4
(tests/data/r/make_emmeans_kr.R), and properties of the definitions.

Tolerances.  LMMs (the fits agree with lme4's to ~1e-6, BodyWeight's to ~1e-5): estimates 1e-6
relative (BodyWeight 1e-5), SEs and interval ends 1e-4 relative, df 1e-3 relative, p-values 1e-4
absolute.  GLMMs: glmmkit's fit is glmmTMB's (log-likelihood and covariance of β equal to 1e-7), so
emmeans on glmmTMB's fits is held to the LMM tolerances; lme4's Hessian-based covariance of β differs
from both by ~1% on cbpp (lme4's own two covariances differ by as much), so the comparison with
emmeans on lme4's fits uses 3e-2 relative for SEs, 3e-2 absolute for p-values; the emmeans arithmetic itself is then checked
on lme4's estimates and covariance (substituted into the fit): estimates and SEs 1e-9 relative,
interval ends 1e-8, p-values 1e-9 absolute (Tukey's from inference/multiplicity.py against R's
ptukey: 1e-12 observed).
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, GlmmkitError, RankDeficiencyWarning
from glmmkit.inference.marginal import marginal_means
from glmmkit.inference.wald import satterthwaite_df

from _emmeans_kr_data import CASES, load
EMM = CASES["emmeans"]
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"




_FITS = {}


def fit_of(case):
    key = (case["formula"], case["dataset"], case["family"])
    if key not in _FITS:
        d = load(case["dataset"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankDeficiencyWarning)  # the empty-cell case drops a column
            _FITS[key] = (gk.lmer(case["formula"], d) if case["family"] == "gaussian"
                          else gk.glmer(case["formula"], d, family=case["family"]))
    return _FITS[key]


def run(fit, call, pairwise):
    call = dict(call)
    var = call.pop("var", None)
    call.pop("pairwise", None)
    adjust = call.pop("adjust", "tukey")
    if var is not None:
        return fit.emtrends(var=var, pairwise=pairwise, adjust=adjust, **call)
    return fit.emmeans(pairwise=pairwise, adjust=adjust, **call)


def _col(ref, names):
    return [c for c in ref.columns if c in names or c.endswith(".trend")][0]


def compare(ours, ref, glmm, tight, loose=None):
    est = _col(ref, ("emmean", "prob", "rate", "response", "estimate", "odds.ratio", "ratio"))
    lo = [c for c in ref.columns if c in ("lower.CL", "asymp.LCL")][0]
    hi = [c for c in ref.columns if c in ("upper.CL", "asymp.UCL")][0]
    loose = glmm if loose is None else loose
    rt_est, rt_se, at_p = (1e-9, 1e-9, 1e-9) if tight else ((1e-3, 3e-2, 3e-2) if loose else (1e-5, 1e-4, 1e-4))
    np.testing.assert_allclose(ours["estimate"], ref[est], rtol=rt_est)
    np.testing.assert_allclose(ours["std_error"], ref["SE"], rtol=rt_se)
    # interval ends: the SE's error times the critical value (< 4), relative where the end is far from 0
    rt_ci = 1e-8 if tight else max(rt_se, 1e-4)
    for mine, theirs in ((ours["ci_lower"], ref[lo]), (ours["ci_upper"], ref[hi])):
        mine, theirs, se = mine.to_numpy(float), theirs.to_numpy(float), ref["SE"].to_numpy(float)
        assert np.array_equal(np.isnan(mine), np.isnan(theirs))  # emmeans's nonEst rows
        ok = ~np.isnan(theirs)
        err = np.abs(mine[ok] - theirs[ok])
        assert np.all(err <= rt_ci * np.abs(theirs[ok]) + 4 * rt_ci * se[ok]), (mine, theirs)
    np.testing.assert_allclose(ours["p_value"], ref["p.value"], atol=at_p)
    assert np.array_equal(np.isnan(ours["estimate"].to_numpy(float)), np.isnan(ref[est].to_numpy(float)))
    if glmm:
        assert np.all(np.isinf(ours["df"]))
    else:
        np.testing.assert_allclose(ours["df"], ref["df"].astype(float), rtol=1e-3)


@pytest.mark.parametrize("case", EMM, ids=[c["id"] for c in EMM])
def test_emmeans_match_r(case):
    fit = fit_of(case)
    glmm = case["family"] != "gaussian"
    means = run(fit, case["call"], pairwise=False)
    ref = pd.DataFrame(case["means"])
    for v in [c for c in ref.columns if c in means.columns and c not in ("df",)]:
        if pd.api.types.is_numeric_dtype(ref[v]):
            np.testing.assert_allclose(means[v].astype(float), ref[v].astype(float), rtol=1e-12)
        else:
            assert [str(x) for x in means[v]] == list(ref[v]), v
    # glmmkit's GLMM fit is glmmTMB's (the same Laplace deviance and Hessian): emmeans on glmmTMB's fit
    # is checked as tightly as the LMMs; on lme4's GLMM fit loosely (its covariance differs by ~1%)
    loose = glmm and not case["id"].endswith("_glmmTMB")
    compare(means, ref, glmm, tight=False, loose=loose)
    if case.get("contrasts"):
        con = run(fit, case["call"], pairwise=True)
        rc = pd.DataFrame(case["contrasts"])
        assert list(con["contrast"]) == list(rc["contrast"])  # emmeans's names and order
        compare(con, rc, glmm, tight=False, loose=loose)


@pytest.mark.parametrize("case", [c for c in EMM if c["family"] != "gaussian"],
                         ids=[c["id"] for c in EMM if c["family"] != "gaussian"])
def test_emmeans_arithmetic_on_lme4_estimates(case):
    """The same tables computed from lme4's β and covariance: the emmeans arithmetic alone."""
    fit = copy.copy(fit_of(case))
    fit._beta = np.array(case["beta"])
    fit._vcov = np.array(case["vcov"])
    compare(run(fit, case["call"], pairwise=False), pd.DataFrame(case["means"]), True, tight=True)
    compare(run(fit, case["call"], pairwise=True), pd.DataFrame(case["contrasts"]), True, tight=True)


def _orthodont_fit():
    return fit_of(next(c for c in EMM if c["id"] == "orthodont_agef_by_sex"))


def test_unadjusted_contrast_is_the_wald_test_of_its_l_vector():
    fit = _orthodont_fit()
    con = fit.emmeans("agef", by="Sex", pairwise=True, adjust="none")
    row = con[(con["contrast"] == "agef8 - agef12") & (con["Sex"] == "Female")].iloc[0]
    grid = pd.DataFrame({"agef": pd.Categorical(["8", "12"], categories=["8", "10", "12", "14"]),
                         "Sex": pd.Categorical(["Female"] * 2, categories=["Male", "Female"])})
    names = fit.x_names
    x = np.zeros((2, len(names)))
    for i, a in enumerate(["8", "12"]):
        x[i, names.index("(Intercept)")] = 1.0
        if f"agef{a}" in names:
            x[i, names.index(f"agef{a}")] = 1.0
        x[i, names.index("SexFemale")] = 1.0
        if f"agef{a}:SexFemale" in names:
            x[i, names.index(f"agef{a}:SexFemale")] = 1.0
    L = x[0] - x[1]
    est = L @ fit.fixef.to_numpy()
    se = np.sqrt(L @ fit.vcov.to_numpy() @ L)
    df = satterthwaite_df(fit, L[None, :])[0]
    assert row["estimate"] == pytest.approx(est, rel=1e-12)
    assert row["std_error"] == pytest.approx(se, rel=1e-12)
    assert row["df"] == pytest.approx(df, rel=1e-10)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(est / se), df), rel=1e-10)
    assert len(grid) == 2


def test_glmm_contrast_with_the_reference_level_is_the_coefficients_z_test():
    fit = gk.glmer(CBPP, gk.datasets.load("cbpp"), family="binomial")
    con = fit.emmeans("period", pairwise=True, adjust="none").set_index("contrast")
    tab = fit.coef_table()
    for k in ("2", "3", "4"):
        r = con.loc[f"period1 - period{k}"]
        assert r["estimate"] == pytest.approx(-tab.loc[f"period{k}", "estimate"], rel=1e-12)
        assert r["std_error"] == pytest.approx(tab.loc[f"period{k}", "std_error"], rel=1e-12)
        assert r["p_value"] == pytest.approx(tab.loc[f"period{k}", "p_value"], rel=1e-10)
    odds = fit.emmeans("period", pairwise=True, type="response", adjust="none").set_index("contrast")
    assert odds.attrs["scale"] == "odds ratio"
    assert odds.loc["period1 / period2", "estimate"] == pytest.approx(
        np.exp(-tab.loc["period2", "estimate"]), rel=1e-12)


def test_adjustments_relate_as_defined():
    fit = gk.glmer(CBPP, gk.datasets.load("cbpp"), family="binomial")
    none = fit.emmeans("period", pairwise=True, adjust="none")
    bonf = fit.emmeans("period", pairwise=True, adjust="bonferroni")
    holm = fit.emmeans("period", pairwise=True, adjust="holm")
    tukey = fit.emmeans("period", pairwise=True, adjust="tukey")
    m = len(none)
    np.testing.assert_allclose(bonf["p_value"], np.minimum(1, m * none["p_value"]))
    assert np.all(holm["p_value"] <= bonf["p_value"] + 1e-15)
    assert np.all(holm["p_value"] >= none["p_value"])
    assert np.all(tukey["p_value"] >= none["p_value"]) and np.all(tukey["p_value"] <= bonf["p_value"])
    np.testing.assert_allclose(holm["ci_lower"], bonf["ci_lower"])  # Holm's intervals are Bonferroni's
    # Tukey with two means is the unadjusted test
    two = _orthodont_fit().emmeans("Sex", pairwise=True)
    two_none = _orthodont_fit().emmeans("Sex", pairwise=True, adjust="none")
    np.testing.assert_allclose(two["p_value"], two_none["p_value"], rtol=1e-6)
    np.testing.assert_allclose(two["ci_lower"], two_none["ci_lower"], rtol=1e-6)


def test_emmeans_invariant_to_row_order():
    d = gk.datasets.load("cbpp")
    a = gk.glmer(CBPP, d, family="binomial").emmeans("period", type="response", pairwise=True)
    b = gk.glmer(CBPP, d.sample(frac=1.0, random_state=7), family="binomial").emmeans(
        "period", type="response", pairwise=True)
    assert list(a["contrast"]) == list(b["contrast"])
    np.testing.assert_allclose(b["estimate"], a["estimate"], rtol=1e-5)
    np.testing.assert_allclose(b["std_error"], a["std_error"], rtol=1e-4)
    o = load("Orthodont")
    f1 = gk.lmer("distance ~ agef * Sex + (1 | Subject)", o).emmeans("agef", by="Sex", ddf="kenward-roger")
    f2 = gk.lmer("distance ~ agef * Sex + (1 | Subject)", o.iloc[::-1]).emmeans("agef", by="Sex",
                                                                                 ddf="kenward-roger")
    pd.testing.assert_frame_equal(f1.drop(columns=["estimate", "std_error", "df", "statistic", "p_value",
                                                   "ci_lower", "ci_upper"]),
                                  f2.drop(columns=["estimate", "std_error", "df", "statistic", "p_value",
                                                   "ci_lower", "ci_upper"]))
    np.testing.assert_allclose(f2["estimate"], f1["estimate"], rtol=1e-8)
    np.testing.assert_allclose(f2["df"], f1["df"], rtol=1e-5)


def test_equal_weights_over_other_factors():
    """The mean of a level averages the cells of the other factor with equal weights, whatever
    the cells' sizes (emmeans's default), so it is the mean of the by= table's rows."""
    fit = _orthodont_fit()
    avg = fit.emmeans("agef")
    cells = fit.emmeans("agef", by="Sex")
    expect = cells.groupby("agef", observed=True, sort=False)["estimate"].mean().to_numpy()
    np.testing.assert_allclose(avg["estimate"], expect, rtol=1e-12)


def test_response_scale_delta_method():
    fit = gk.glmer("y ~ x1 + x2 + (1 | g)", gk.datasets.load("counts_ri"), family="poisson")
    link = fit.emmeans("x2")
    resp = fit.emmeans("x2", type="response")
    np.testing.assert_allclose(resp["estimate"], np.exp(link["estimate"]))
    np.testing.assert_allclose(resp["std_error"], np.exp(link["estimate"]) * link["std_error"])
    np.testing.assert_allclose(resp["ci_lower"], np.exp(link["ci_lower"]))
    np.testing.assert_allclose(resp["p_value"], link["p_value"])  # tests stay on the link scale
    assert resp.attrs["scale"] == "response" and link.attrs["scale"] == "link"
    ratio = fit.emmeans("x2", type="response", pairwise=True)
    assert list(ratio["contrast"]) == ["ctrl / trt"] and ratio.attrs["scale"] == "ratio"


def test_population_averaged_means():
    d = gk.datasets.load("cbpp")
    fit = gk.glmer(CBPP, d, family="binomial")
    cond = fit.emmeans("period", type="response")
    marg = fit.emmeans("period", type="response", marginal=True)
    grid = pd.DataFrame({"period": pd.Categorical(["1", "2", "3", "4"], categories=["1", "2", "3", "4"])})
    # one factor: the cell is one grid row, whose population-averaged probability it is
    np.testing.assert_allclose(marg["estimate"], marginal_means(fit, grid), rtol=1e-10)
    # averaging over the herd effects pulls probabilities below 1/2 towards 1/2
    assert np.all(marg["estimate"] > cond["estimate"])
    assert np.all(np.isinf(marg["df"])) and np.all(marg["std_error"] > 0)
    assert marg.attrs["estimand"] == "population-averaged mean"
    con = fit.emmeans("period", pairwise=True, marginal=True)
    assert np.all(np.abs(con["estimate"]) < np.abs(fit.emmeans("period", pairwise=True)["estimate"]))
    # Poisson random intercept: exp(σ²/2) multiplies every mean, so marginal ratios are conditional ones
    pois = gk.glmer("y ~ x1 + x2 + (1 | g)", gk.datasets.load("counts_ri"), family="poisson")
    r_c = pois.emmeans("x2", type="response", pairwise=True)
    r_m = pois.emmeans("x2", type="response", pairwise=True, marginal=True)
    np.testing.assert_allclose(r_m["estimate"], r_c["estimate"], rtol=1e-8)
    np.testing.assert_allclose(r_m["std_error"], r_c["std_error"], rtol=1e-3)
    # LMM: identity link, the population average is the conditional mean
    o = _orthodont_fit()
    pd.testing.assert_frame_equal(o.emmeans("agef", marginal=True).drop(columns=[]), o.emmeans("agef"),
                                  check_like=True)


def test_emtrends_linear_model_slopes_are_coefficients():
    case = next(c for c in EMM if c["id"] == "bodyweight_emtrends")
    fit = fit_of(case)
    tr = fit.emtrends("Diet", var="Time")
    b = fit.fixef
    np.testing.assert_allclose(tr["estimate"], [b["Time"], b["Time"] + b["Time:Diet2"], b["Time"] + b["Time:Diet3"]],
                               rtol=1e-7)
    assert tr.attrs["estimand"] == "trend of Time"
    # response-scale trends of a GLMM: dμ/dx averaged; at one grid row, μ'(η)·β_x
    pois = gk.glmer("y ~ x1 + x2 + (1 | g)", gk.datasets.load("counts_ri"), family="poisson")
    link = pois.emmeans("x2")
    rt = pois.emtrends("x2", var="x1", type="response")
    np.testing.assert_allclose(rt["estimate"], np.exp(link["estimate"]) * pois.fixef["x1"], rtol=1e-6)


def test_at_moves_covariates_and_puts_them_in_the_grid():
    fit = fit_of(next(c for c in EMM if c["id"] == "orthodont_sex_at"))
    m = fit.emmeans("Sex", at={"age": 12})
    b = fit.fixef
    assert m["estimate"].iloc[0] == pytest.approx(b["(Intercept)"] + 12 * b["age"], rel=1e-12)
    by = fit.emmeans("Sex", by="age", at={"age": [8, 14]})
    assert list(by["age"]) == [8.0, 8.0, 14.0, 14.0]
    con = fit.emmeans("age", at={"age": [8, 14]}, pairwise=True)
    assert list(con["contrast"]) == ["age8 - age14"]
    assert con["estimate"].iloc[0] == pytest.approx(-6 * b["age"], rel=1e-10)
    sub = fit.emmeans("Sex", at={"Sex": ["Female"]})
    assert list(sub["Sex"]) == ["Female"]


def test_bad_input_names_the_argument_and_the_fix():
    o = _orthodont_fit()
    with pytest.raises(ArgumentError, match=r"specs.*'sex'.*did you mean 'Sex'"):
        o.emmeans("sex")
    with pytest.raises(ArgumentError, match=r"grouping factor"):
        o.emmeans("Subject")
    fit = fit_of(next(c for c in EMM if c["id"] == "orthodont_sex_at"))
    with pytest.raises(ArgumentError, match=r"numeric covariate.*at=\{'age'"):
        fit.emmeans("age", pairwise=True)
    with pytest.raises(ArgumentError, match=r"by='age'.*at="):
        fit.emmeans("Sex", by="age")
    with pytest.raises(ArgumentError, match="emtrends"):
        fit.emmeans(["Sex", "age"], pairwise=True)
    with pytest.raises(ArgumentError, match="adjust"):
        o.emmeans("agef", pairwise=True, adjust="scheffe")
    with pytest.raises(ArgumentError, match="type"):
        o.emmeans("agef", type="prob")
    with pytest.raises(ArgumentError, match="both specs and by"):
        o.emmeans("agef", by="agef")
    with pytest.raises(ArgumentError, match=r"at= names 'ages'.*did you mean 'age'"):
        fit.emmeans("Sex", at={"ages": 3})
    with pytest.raises(ArgumentError, match="level"):
        fit.emmeans("Sex", at={"Sex": ["male"]})
    with pytest.raises(ArgumentError, match="var='Sex' is a factor"):
        fit.emtrends("Sex", var="Sex")
    g = gk.glmer(CBPP, gk.datasets.load("cbpp"), family="binomial")
    with pytest.raises(GlmmkitError, match="ddf"):
        g.emmeans("period", ddf="kenward-roger")
    ml = gk.lmer("distance ~ age + Sex + (1 | Subject)", load("Orthodont"), reml=False)
    with pytest.raises(ArgumentError, match="REML"):
        ml.emmeans("Sex", ddf="kenward-roger")


def test_studentized_range_matches_scipy():
    """The vectorised Tukey distribution (inference/multiplicity.py) against scipy's adaptive one."""
    from glmmkit.inference.multiplicity import tukey_ppf, tukey_sf

    for k, df, q in ((3, 2.0, 4.0), (4, 12.9, 3.1), (6, 46.08, 4.4), (10, np.inf, 4.5), (4, 1000.0, 0.7)):
        assert tukey_sf(q, k, df) == pytest.approx(stats.studentized_range.sf(q, k, df), abs=1e-8)
    np.testing.assert_allclose(tukey_ppf(0.95, 4, [np.inf, 25.0, 25.0, 7.5]),
                               [stats.studentized_range.ppf(0.95, 4, d) for d in (np.inf, 25.0, 25.0, 7.5)],
                               rtol=1e-9)


def _synthetic():
    rng = np.random.default_rng(0)
    n = 300
    d = pd.DataFrame({"x": rng.uniform(1, 5, n), "g": pd.Categorical(rng.integers(0, 20, n)),
                      "s": rng.choice(["lo", "mid", "hi"], n), "b": rng.random(n) > 0.5,
                      "k": rng.integers(1, 4, n), "t": rng.uniform(1, 3, n)})
    d["y"] = np.log(d.x) + (d.s == "hi") + d.b * 0.5 + rng.normal(size=20)[d.g.cat.codes] + rng.normal(size=n)
    d["c"] = rng.poisson(np.exp(0.3 + 0.2 * d.x + 0.3 * rng.normal(size=20)[d.g.cat.codes]) * d.t)
    return d


@pytest.mark.parametrize("formula,specs", [
    ("y ~ log(x) + s + (1 | g)", "s"),
    ("y ~ poly(x, 2) + s * b + (1 | g)", "b"),
    ("y ~ factor(k) + s + (1 | g)", "k"),
    ("y ~ scale(x) + I(x^2) + s + (x | g)", "s"),
])
def test_means_are_population_predictions_averaged_over_the_grid(formula, specs):
    """Transformed covariates (log, poly, scale, I()) sit at the mean of the raw column, as in emmeans;
    a text column is a factor with sorted levels, a bool one a two-level factor."""
    d = _synthetic()
    fit = gk.lmer(formula, d)
    m = fit.emmeans(specs)
    grid = m.attrs["grid"]
    if "x" in grid:
        assert grid["x"].iloc[0] == pytest.approx(d["x"].mean(), rel=1e-12)
    if "s" in grid:
        assert list(dict.fromkeys(grid["s"])) == ["hi", "lo", "mid"]
    pred = pd.Series(fit.predict(grid, re_form="~0"))
    expect = pred.groupby(grid[specs].astype(str).to_numpy(), sort=False).mean()
    np.testing.assert_allclose(m["estimate"], expect.to_numpy(), rtol=1e-10)


def test_offset_is_evaluated_at_the_mean_covariate():
    d = _synthetic()
    fit = gk.glmer("c ~ x + s + offset(log(t)) + (1 | g)", d, family="poisson")
    m = fit.emmeans("s")
    b = fit.fixef
    expect = b["(Intercept)"] + b["x"] * d["x"].mean() + np.log(d["t"].mean())
    assert m.loc[m["s"] == "hi", "estimate"].iloc[0] == pytest.approx(expect, rel=1e-12)
    slope = fit.emtrends("s", var="x")
    np.testing.assert_allclose(slope["estimate"], b["x"], rtol=1e-7)


def test_grand_mean_and_overall_trend():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    m = fit.emmeans("1")
    assert list(m["1"]) == ["overall"]
    assert m["estimate"].iloc[0] == pytest.approx(fit.fixef["(Intercept)"] + 4.5 * fit.fixef["Days"], rel=1e-12)
    t = fit.emtrends("1", var="Days", ddf="kenward-roger")
    assert t["estimate"].iloc[0] == pytest.approx(fit.fixef["Days"], rel=1e-7)
    assert t["df"].iloc[0] == pytest.approx(17.0, rel=1e-6)
    with pytest.raises(ArgumentError, match="pairwise"):
        fit.emmeans("1", pairwise=True)
    with pytest.raises(ArgumentError, match="specs"):
        fit.emmeans([])
