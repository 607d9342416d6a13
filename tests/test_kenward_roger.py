"""Kenward-Roger degrees of freedom and adjusted covariance (issue 17) against lmerTest 3.1.3 /
pbkrtest 0.5.2 (tests/data/r/make_emmeans_kr.R), and the properties theory gives.

Tolerances: the fits agree with lme4's (tightly converged) to about 1e-6 in θ, except BodyWeight
(θ to 1e-4, its covariates up to 64): estimates 1e-5 relative, standard errors and t 1e-4
(BodyWeight 5e-5 observed), degrees of freedom 1e-3 relative (1e-5 observed), p-values 1e-4
absolute, Φ_A 1e-4 relative to its largest entry.
"""


import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, GlmmkitError
from glmmkit.inference.kenward_roger import kenward_roger, kr_ddf, kr_test
from glmmkit.inference.wald import satterthwaite_df

from _emmeans_kr_data import CASES, load




KR = CASES["kenward_roger"]


@pytest.fixture(scope="module")
def fits():
    return {c["id"]: gk.lmer(c["formula"], load(c["dataset"])) for c in KR}


@pytest.mark.parametrize("case", KR, ids=[c["id"] for c in KR])
def test_kenward_roger_table_matches_lmertest(case, fits):
    fit = fits[case["id"]]
    table = fit.coef_table(ddf="kenward-roger")
    ref = pd.DataFrame(case["kr"]).set_index("term")
    assert list(table.index) == list(ref.index)
    np.testing.assert_allclose(table["estimate"], ref["estimate"], rtol=1e-5)
    np.testing.assert_allclose(table["std_error"], ref["std_error"], rtol=1e-4)
    np.testing.assert_allclose(table["df"], ref["df"], rtol=1e-3)
    np.testing.assert_allclose(table["statistic"], ref["statistic"], rtol=1e-4)
    np.testing.assert_allclose(table["p_value"], ref["p_value"], atol=1e-4)
    q = stats.t.ppf(0.975, table["df"])
    np.testing.assert_allclose(table["ci_upper"] - table["ci_lower"], 2 * q * table["std_error"], rtol=1e-10)


@pytest.mark.parametrize("case", KR, ids=[c["id"] for c in KR])
def test_adjusted_covariance_matches_pbkrtest(case, fits):
    kr = kenward_roger(fits[case["id"]])
    V, Va = np.array(case["vcov"]), np.array(case["vcov_adj"])
    np.testing.assert_allclose(kr.phi, V, atol=1e-4 * np.abs(V).max())
    np.testing.assert_allclose(kr.phi_adj, Va, atol=1e-4 * np.abs(Va).max())
    # the adjustment only ever adds variance
    assert np.all(np.linalg.eigvalsh(kr.phi_adj - kr.phi) > -1e-10 * np.abs(V).max())


def _term_rows(fit, term):
    """Rows of the identity for the columns of a model term (``Time:Diet`` -> Time:Diet2, Time:Diet3)."""
    parts = term.split(":")
    out = []
    for j, name in enumerate(fit.x_names):
        pieces = name.split(":")
        if len(pieces) == len(parts) and all(p.startswith(t) for p, t in zip(pieces, parts)):
            out.append(j)
    return np.eye(len(fit.x_names))[out]


@pytest.mark.parametrize("case", KR, ids=[c["id"] for c in KR])
def test_kr_f_test_matches_lmertest_anova(case, fits):
    """Multi-df F tests of terms that no interaction contains (lmerTest's type III contrasts are then
    the coefficients themselves)."""
    fit = fits[case["id"]]
    terms = [a["term"] for a in case["anova"]]
    for a in case["anova"]:
        if any(a["term"] != t and set(a["term"].split(":")) < set(t.split(":")) for t in terms):
            continue
        res = kr_test(fit, _term_rows(fit, a["term"]))
        assert res["num_df"] == a["num_df"]
        assert res["F"] == pytest.approx(a["F"], rel=1e-4), a["term"]
        assert res["den_df"] == pytest.approx(a["den_df"], rel=1e-3), a["term"]
        assert res["p_value"] == pytest.approx(a["p_value"], abs=1e-4), a["term"]


def test_one_df_f_is_t_squared(fits):
    """For one contrast λ = 1, so the KR F is the square of the adjusted t."""
    fit = fits["orthodont_rs"]
    t = fit.coef_table(ddf="kenward-roger")
    for j, name in enumerate(fit.x_names):
        res = kr_test(fit, np.eye(len(fit.x_names))[j])
        assert res["scale"] == pytest.approx(1.0, rel=1e-10)
        assert res["F"] == pytest.approx(t.loc[name, "statistic"] ** 2, rel=1e-10)
        assert res["den_df"] == pytest.approx(t.loc[name, "df"], rel=1e-10)


def _balanced(n_groups=12, per=5, seed=1, between=True):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    trt = np.where(g % 2 == 0, "a", "b") if between else np.tile(np.array(["a", "b", "c", "d", "e"])[:per], n_groups)
    y = 10 + (trt == "b") * 1.5 + rng.normal(0, 1.0, n_groups)[g] + rng.normal(0, 0.7, g.shape[0])
    return pd.DataFrame({"y": y, "trt": pd.Categorical(trt), "g": pd.Categorical([f"g{i:02d}" for i in g])})


def test_balanced_one_way_kr_equals_satterthwaite_and_anova_df():
    """Balanced random-intercept designs: Satterthwaite and KR agree and give the ANOVA df (the
    between-group factor is tested on groups − treatments = 10 df, a within-group one (a randomised
    block design, 12 blocks × 5 treatments) on (12 − 1)(5 − 1) = 44), and Φ_A = Φ."""
    for between, df_trt in ((True, 10.0), (False, 44.0)):
        fit = gk.lmer("y ~ trt + (1 | g)", _balanced(between=between))
        kr = fit.coef_table(ddf="kenward-roger")
        sat = fit.coef_table(ddf="satterthwaite")
        assert kr.loc["trtb", "df"] == pytest.approx(df_trt, rel=1e-6)
        np.testing.assert_allclose(kr["df"], sat["df"], rtol=1e-4)
        np.testing.assert_allclose(kenward_roger(fit).phi_adj, fit.vcov.to_numpy(), rtol=1e-8)


def test_kr_invariant_to_row_order_and_covariate_scale():
    d = load("Orthodont")
    base = gk.lmer("distance ~ age + Sex + (age | Subject)", d).coef_table(ddf="kenward-roger")
    shuffled = d.sample(frac=1.0, random_state=3)
    t2 = gk.lmer("distance ~ age + Sex + (age | Subject)", shuffled).coef_table(ddf="kenward-roger")
    np.testing.assert_allclose(t2["df"], base["df"], rtol=1e-5)
    np.testing.assert_allclose(t2["std_error"], base["std_error"], rtol=1e-5)
    d2 = d.assign(age=d["age"] / 2.0)  # age in units of two years: the same model, coefficients rescaled
    t3 = gk.lmer("distance ~ age + Sex + (age | Subject)", d2).coef_table(ddf="kenward-roger")
    assert t3.loc["age", "df"] == pytest.approx(base.loc["age", "df"], rel=1e-4)
    assert t3.loc["SexFemale", "df"] == pytest.approx(base.loc["SexFemale", "df"], rel=1e-4)
    assert t3.loc["age", "p_value"] == pytest.approx(base.loc["age", "p_value"], abs=1e-8)


def test_kr_ddf_of_contrasts_and_near_satterthwaite(fits):
    fit = fits["bodyweight"]
    L = np.zeros((2, len(fit.x_names)))
    L[0, fit.x_names.index("Diet2")] = 1.0
    L[1, fit.x_names.index("Diet2")], L[1, fit.x_names.index("Diet3")] = 1.0, -1.0
    d = kr_ddf(fit, L)
    assert d.shape == (2,)
    np.testing.assert_allclose(d, satterthwaite_df(fit, L), rtol=0.05)  # close in this design, not equal


def test_kr_refuses_ml_glmm_and_bad_ddf():
    d = gk.datasets.load("sleepstudy")
    ml = gk.lmer("Reaction ~ Days + (Days | Subject)", d, reml=False)
    with pytest.raises(ArgumentError, match="REML") as exc:
        ml.coef_table(ddf="kenward-roger")
    assert "reml=True" in str(exc.value) and "satterthwaite" in str(exc.value)
    g = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                 family="binomial")
    with pytest.raises(GlmmkitError, match="ddf"):
        g.coef_table(ddf="kenward-roger")
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", d)
    with pytest.raises(ArgumentError, match="kenward-roger"):
        fit.coef_table(ddf="kenward")


def _dense_kr(fit, weights):
    """Kenward & Roger from their definitions with n × n matrices (the test's own reference)."""
    X = fit.frame.X[:, fit._x_kept]
    n = X.shape[0]
    Z = fit._z.toarray() if hasattr(fit._z, "toarray") else np.asarray(fit._z)
    G, taus = [], []
    for t in fit.structure.terms:
        blk = fit.structure.blocks[t.block]
        C = fit._term_cov(t)
        for j in range(t.k):
            for i in range(j, t.k):
                A = np.zeros((Z.shape[1], Z.shape[1]))
                rows = blk.offset + np.arange(blk.q) * blk.K + t.block_cols[i]
                cols = blk.offset + np.arange(blk.q) * blk.K + t.block_cols[j]
                A[rows, cols] = 1.0
                A[cols, rows] = 1.0
                G.append(Z @ A @ Z.T)
                taus.append(C[i, j])
    G.append(np.diag(1.0 / weights))
    taus.append(fit.sigma ** 2)
    V = sum(tau * g for tau, g in zip(taus, G))
    Vi = np.linalg.inv(V)
    Phi = np.linalg.inv(X.T @ Vi @ X)
    Pm = Vi - Vi @ X @ Phi @ X.T @ Vi
    P = [-X.T @ Vi @ g @ Vi @ X for g in G]
    k = len(G)
    Q = [[X.T @ Vi @ G[i] @ Vi @ G[j] @ Vi @ X for j in range(k)] for i in range(k)]
    info = np.array([[0.5 * np.trace(Pm @ G[i] @ Pm @ G[j]) for j in range(k)] for i in range(k)])
    W = np.linalg.inv(info)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(k) for j in range(k))
    return Phi, Phi + 2 * Phi @ U @ Phi


def test_woodbury_pieces_equal_the_dense_definitions_with_weights_and_crossed_factors():
    rng = np.random.default_rng(5)
    d = gk.datasets.load("Penicillin").copy()
    d["x"] = rng.normal(size=len(d))
    w = rng.uniform(0.5, 2.0, len(d))
    fit = gk.lmer("diameter ~ x + (1 | plate) + (1 | sample)", d, weights=w)
    Phi, PhiA = _dense_kr(fit, w)
    kr = kenward_roger(fit)
    np.testing.assert_allclose(kr.phi, Phi, rtol=1e-8)
    np.testing.assert_allclose(kr.phi_adj, PhiA, rtol=1e-7)
    np.testing.assert_allclose(kr.phi, fit.vcov.to_numpy(), rtol=1e-6)  # (X'V⁻¹X)⁻¹ is the fit's vcov
    # constant weights are a change of σ's units: the same tests
    base = gk.lmer("diameter ~ x + (1 | plate) + (1 | sample)", d).coef_table(ddf="kenward-roger")
    scaled = gk.lmer("diameter ~ x + (1 | plate) + (1 | sample)", d, weights=np.full(len(d), 3.0)).coef_table(
        ddf="kenward-roger")
    np.testing.assert_allclose(scaled["df"], base["df"], rtol=1e-5)
    np.testing.assert_allclose(scaled["std_error"], base["std_error"], rtol=1e-5)


def test_woodbury_pieces_equal_the_dense_definitions_correlated_slopes():
    d = load("Orthodont")
    fit = gk.lmer("distance ~ age * Sex + (age | Subject)", d)
    Phi, PhiA = _dense_kr(fit, np.ones(len(d)))
    np.testing.assert_allclose(kenward_roger(fit).phi_adj, PhiA, rtol=1e-7)
