"""Structured random-effect terms (issue 13, G side): us/diag/homdiag/cs/homcs/ar1/hetar1/toep and
ou/exp/gau/mat against glmmTMB, their properties, and bad input.

Reference: tests/data/covstruct/covstruct_cases.json, written by make_covstruct.R (glmmTMB 1.1.5;
homcs and homdiag are glmmTMB's cs / diag with the variances mapped equal).  Rule of the issue:
log-lik within 1e-4 or higher, fixed effects within 2 % of their SE, SDs within 1 %, correlations
within 0.01.  Our fits meet it with room: log-lik within 1e-6, fixed effects within 1e-3 SE.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.covstruct import (AR1, CompoundSymmetry, Diagonal, Exponential, GaussianCorrelation, HomDiagonal,
                               Matern, Toeplitz)
from glmmkit.exceptions import ArgumentError, FormulaError

DATA = Path(__file__).parent / "data" / "covstruct"
CASES = json.loads((DATA / "covstruct_cases.json").read_text())["cases"]


def _data(name):
    df = pd.read_csv(DATA / name)
    if name == "machines.csv":
        df["Worker"] = df["Worker"].astype(str)
    return df


def _fit(case, data=None):
    df = _data(case["data"]) if data is None else data
    if case["family"] == "gaussian":
        return gk.lmer(case["formula"], df, reml=case["REML"])
    return gk.glmer(case["formula"], df, family=case["family"])


def _loglik(fit, case):
    return -0.5 * fit.reml_criterion if case["REML"] else fit.loglik


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_glmmtmb(case):
    fit = _fit(case)
    assert fit.converged
    assert _loglik(fit, case) > case["loglik"] - 1e-6
    ref_fe = np.array(list(case["fixef"].values()))
    ref_se = np.array(list(case["se"].values()))
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    assert np.max(np.abs(fit.fixef.to_numpy() - ref_fe) / ref_se) < 1e-3
    # LMM SEs are lme4's σ²(R_X'R_X)⁻¹ at θ̂; glmmTMB inverts the joint Hessian: 1 % apart on spatial_exp
    np.testing.assert_allclose(se, ref_se, rtol=2e-2)
    if case["sigma"] is not None:
        assert fit.sigma == pytest.approx(case["sigma"], rel=1e-3)
    (group, ref), = case["re"].items()
    term, = fit.structure.terms
    C = fit._term_cov(term)
    sd = np.sqrt(np.diag(C))
    np.testing.assert_allclose(sd, ref["sd"], rtol=1e-2)
    R = C / np.outer(sd, sd)
    R_ref = np.array(ref["cor"], dtype=float).reshape(R.shape)
    if case["name"].startswith("spatial"):  # glmmTMB orders positions otherwise: compare the values
        R, R_ref = np.sort(R.ravel()), np.sort(R_ref.ravel())
    np.testing.assert_allclose(R, R_ref, atol=0.01)


STRUCTURES = [CompoundSymmetry(4), CompoundSymmetry(3, heterogeneous=False), AR1(5), AR1(4, True, positions=[1, 2, 4, 7]),
              Toeplitz(5), Toeplitz(4, heterogeneous=False), Diagonal(3), HomDiagonal(3),
              Exponential(np.random.default_rng(0).uniform(0, 3, (6, 2))), GaussianCorrelation(np.arange(5.0)),
              Matern(np.random.default_rng(1).uniform(0, 3, (5, 2)))]


@pytest.mark.parametrize("cs", STRUCTURES, ids=repr)
def test_structure_jacobian_and_template(cs):
    """The Jacobian of the template entries (complex step + Cholesky derivative) equals central
    differences of the template; templates are lower triangular; from_template inverts the
    correlation-matrix structures exactly."""
    rng = np.random.default_rng(3)
    phi = cs.start() + rng.normal(scale=0.3, size=cs.n_params)
    n_sd = getattr(cs, "n_sd", cs.n_params)
    phi[:n_sd] = np.abs(phi[:n_sd]) + 0.5
    rows, cols = cs.pattern
    J = cs.jacobian(phi)
    Jn = np.empty_like(J)
    for j in range(cs.n_params):
        e = np.zeros(cs.n_params)
        e[j] = 1e-6
        Jn[:, j] = (cs.template(phi + e)[rows, cols] - cs.template(phi - e)[rows, cols]) / 2e-6
    np.testing.assert_allclose(J, Jn, atol=1e-7 * max(1.0, np.abs(J).max()))
    T = cs.template(phi)
    assert np.allclose(np.triu(T, 1), 0.0)
    if isinstance(cs, (CompoundSymmetry, AR1, Toeplitz, Diagonal, HomDiagonal)):
        back = cs.from_template(T)
        Tb = cs.template(back)
        np.testing.assert_allclose(Tb @ Tb.T, T @ T.T, atol=1e-10)


def test_toeplitz_pacf_always_positive_definite():
    cs = Toeplitz(6)
    rng = np.random.default_rng(5)
    for _ in range(50):
        R = cs.correlation(rng.normal(scale=3.0, size=cs.n_corr))
        assert np.linalg.eigvalsh(R).min() > 0


def test_ar1_known_correlation_and_report():
    cs = AR1(4)
    psi = np.array([0.75])  # rho = 0.6
    R = cs.correlation(psi)
    assert R[0, 3] == pytest.approx(0.6**3)
    assert cs.report(np.array([1.0, 0.75]))["rho"] == pytest.approx(0.6)


def test_homcs_equals_nested_intercepts():
    """homcs(0 + Machine | Worker) is (1 | Worker) + (1 | Worker:Machine) reparameterised (for ρ >= 0)."""
    m = _data("machines.csv")
    a = gk.lmer("score ~ Machine + homcs(0 + Machine | Worker)", m)
    b = gk.lmer("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", m)
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-6)


def test_us_and_diag_equal_lme4_terms():
    m = _data("machines.csv")
    assert gk.lmer("score ~ Machine + us(0 + Machine | Worker)", m).reml_criterion == pytest.approx(
        gk.lmer("score ~ Machine + (0 + Machine | Worker)", m).reml_criterion, abs=1e-6)
    assert gk.lmer("score ~ Machine + diag(0 + Machine | Worker)", m).reml_criterion == pytest.approx(
        gk.lmer("score ~ Machine + (0 + Machine || Worker)", m).reml_criterion, abs=1e-6)


def test_ar1_numeric_time_equals_factor_and_ou():
    d = _data("repeated.csv")
    a = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d, reml=False)
    b = gk.lmer("y ~ x + grp + ar1(visit | id)", d, reml=False)
    c = gk.lmer("y ~ x + grp + ou(visit | id)", d, reml=False)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-6)
    assert c.loglik == pytest.approx(a.loglik, abs=1e-6)
    rho = a.structure.terms[0].structure.report(a.theta.to_numpy())["rho"]
    assert c.structure.terms[0].structure.report(c.theta.to_numpy())["rho"] == pytest.approx(rho, abs=1e-4)


def test_ar1_integer_times_with_gaps_keep_their_lags():
    """Visits 1, 2, 4 (3 skipped): positions are the times, so visits 2 and 4 are two lags apart."""
    d = _data("repeated.csv")
    d = d[d.visit.isin([1, 2, 4])]
    fit = gk.lmer("y ~ x + ar1(visit | id)", d, reml=False)
    cs = fit.structure.terms[0].structure
    assert list(cs.positions) == [1, 2, 4]
    R = cs.correlation(np.array([0.75]))
    assert R[1, 2] == pytest.approx(0.36) and R[0, 2] == pytest.approx(0.6**3)


def test_matern_between_exponential_and_gaussian():
    s = _data("spatial.csv")
    ll = {n: gk.lmer(f"y ~ z + {n}(xc + yc | group)", s, reml=False).loglik for n in ("exp", "mat")}
    case = {c["name"]: c for c in CASES}
    assert ll["exp"] == pytest.approx(case["spatial_exp"]["loglik"], abs=1e-6)
    assert ll["mat"] > ll["exp"]  # κ = 1/2 is the exponential
    assert ll["mat"] < case["spatial_gau"]["loglik"] + 1e-3  # κ -> ∞ the Gaussian


def test_row_order_invariance_and_prediction():
    d = _data("repeated.csv")
    f = "y ~ x + grp + ar1(0 + factor(visit) | id)"
    a = gk.lmer(f, d, reml=False)
    shuffled = d.sample(frac=1.0, random_state=7)
    b = gk.lmer(f, shuffled, reml=False)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-7)
    np.testing.assert_allclose(a.predict(d.iloc[:20]), a.fitted()[:20], atol=1e-8)


def test_spatial_prediction_known_and_new_positions():
    s = _data("spatial.csv")
    fit = gk.lmer("y ~ z + exp(xc + yc | group)", s, reml=False)
    np.testing.assert_allclose(fit.predict(s.iloc[:9]), fit.fitted()[:9], atol=1e-8)
    new = s.iloc[:1].assign(xc=0.5)
    with pytest.raises(ArgumentError, match="positions"):
        fit.predict(new)
    np.testing.assert_allclose(fit.predict(new, re_form="~0"), fit.fixef.iloc[0] + fit.fixef.iloc[1] * new.z,
                               atol=1e-10)


def test_glmm_agq_on_a_structured_term():
    """AGQ on one grouping factor integrates the structured term's 3 effects per level; nagq=1 is
    Laplace, and more nodes move the log-lik a little."""
    d = _data("repeated.csv")
    d = d[d.visit <= 3]
    f = "count ~ x + ar1(0 + factor(visit) | id)"
    lap = gk.glmer(f, d, family="poisson")
    one = gk.glmer(f, d, family="poisson", nagq=1)
    agq = gk.glmer(f, d, family="poisson", nagq=5)
    assert one.loglik == pytest.approx(lap.loglik, abs=1e-8)
    assert agq.converged and abs(agq.loglik - lap.loglik) < 1.0


@pytest.mark.parametrize("family", ["nbinom2", "binomial", "gamma"])
def test_every_family_takes_a_structured_term(family):
    d = _data("repeated.csv")
    d = d[d.visit <= 4].copy()
    if family == "binomial":
        d["count"] = (d["count"] > 1).astype(int)
        f = "count ~ x + cs(0 + factor(visit) | id)"
    else:
        f = "count ~ x + ar1(0 + factor(visit) | id)"
    if family == "gamma":
        d["count"] = d["count"] + 0.5
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gk.exceptions.IdentifiabilityWarning)
        fit = gk.glmer(f, d, family=family)
    assert fit.converged and np.isfinite(fit.loglik)
    assert np.all(np.isfinite(np.sqrt(np.diag(fit.vcov.to_numpy()))))


def test_summary_shows_the_structure():
    d = _data("repeated.csv")
    text = str(gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d, reml=False).summary())
    assert "ar1: rho 0.642" in text
    vc = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d, reml=False).varcorr
    assert (vc.term2.notna()).sum() == 15  # every pair, as lme4's as.data.frame(VarCorr)


@pytest.mark.parametrize("formula, match", [
    ("y ~ x + ar2(0 + factor(visit) | id)", "did you mean 'ar1'"),
    ("y ~ x + cs(1 | id)", "at least two columns"),
    ("y ~ x + ar1(0 + factor(visit) || id)", "single '|'"),
    ("y ~ x + ar1(t | id)", "ou\\(t \\| g\\)"),
    ("y ~ x + exp(0 + factor(visit) | id)", "numeric coordinates"),
    ("y ~ x + ou(x + t | id)", "one-dimensional"),
])
def test_bad_structured_terms(formula, match):
    d = _data("repeated.csv").assign(t=lambda df: df.visit + 0.5)
    with pytest.raises(FormulaError, match=match):
        gk.lmer(formula, d)


STRUCTURE_TERMS = {
    "us": "us(0 + factor(visit) | id)", "diag": "diag(0 + factor(visit) | id)",
    "homdiag": "homdiag(0 + factor(visit) | id)", "cs": "cs(0 + factor(visit) | id)",
    "homcs": "homcs(0 + factor(visit) | id)", "ar1": "ar1(0 + factor(visit) | id)",
    "hetar1": "hetar1(0 + factor(visit) | id)", "toep": "toep(0 + factor(visit) | id)",
    "homtoep": "homtoep(0 + factor(visit) | id)", "ou": "ou(visit | id)", "exp": "exp(visit | id)",
    "gau": "gau(visit | id)", "mat": "mat(visit | id)",
}


@pytest.mark.parametrize("name", sorted(STRUCTURE_TERMS))
def test_every_structure_in_lmer_and_glmer(name):
    """Each formula name fits an LMM (with its residual) and a Poisson GLMM, with finite SEs, and its
    summary names it."""
    from glmmkit.covstruct import STRUCTURE_NAMES

    assert set(STRUCTURE_TERMS) == set(STRUCTURE_NAMES)
    import warnings

    d = _data("repeated.csv")
    d = d[d.visit <= 3]
    term = STRUCTURE_TERMS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "factor(visit)" in term:  # an LMM with one effect per machine and worker (3 replicates each)
            m = _data("machines.csv")
            lmm = gk.lmer(f"score ~ Machine + {term.replace('factor(visit)', 'Machine').replace('| id', '| Worker')}",
                          m, reml=False)
        else:
            lmm = gk.lmer(f"y ~ x + grp + {term}", d, reml=False)
        fits = [lmm, gk.glmer(f"count ~ x + {term}", d, family="poisson")]
    for fit in fits:
        assert np.isfinite(fit.loglik)
        assert np.all(np.isfinite(np.sqrt(np.diag(fit.vcov.to_numpy()))))
        cs = fit.structure.terms[0].structure
        assert cs.label == name or (name == "us" and cs.label == "us")


def test_many_column_paths_equal_the_entry_paths(monkeypatch):
    """Lead blocks with many columns keep M_g as one array and take leverages by batched products;
    forcing those paths on a 6-column term (or off) changes nothing."""
    import glmmkit.linalg.blocked as blocked
    import glmmkit.objective.glmm as glmm_obj

    d = _data("repeated.csv")
    f = "count ~ x + toep(0 + factor(visit) | id)"
    base = gk.glmer(f, d, family="poisson")
    lmm = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d, reml=False)
    monkeypatch.setattr(blocked, "_ENTRY_LIST_MAX_K", 2)
    monkeypatch.setattr(glmm_obj, "LEVERAGE_MATRIX_MIN_K", 100)
    other = gk.glmer(f, d, family="poisson")
    lmm2 = gk.lmer("y ~ x + grp + ar1(0 + factor(visit) | id)", d, reml=False)
    assert other.loglik == pytest.approx(base.loglik, abs=1e-8)
    np.testing.assert_allclose(other.vcov.to_numpy(), base.vcov.to_numpy(), rtol=1e-5)
    assert lmm2.loglik == pytest.approx(lmm.loglik, abs=1e-9)
