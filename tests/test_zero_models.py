"""Zero inflation, hurdles, truncated counts and dispersion formulas (issue 14) against glmmTMB 1.1.5.

References: tests/data/zi/zi_cases.json, written by tests/data/zi/make_zi.R.  Rule (the issue's):
log-likelihood within 1e-4 or higher, every coefficient of every part within 2 % of its SE, SEs and
random-effect SDs within 1 %, predictions within 1e-4 relative.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit import families as F
from glmmkit.exceptions import ArgumentError, DataError, FormulaError, IdentifiabilityWarning
from glmmkit.families.parametric import to_engine_scale

ROOT = Path(__file__).resolve().parents[1]
CASES = {c["id"]: c for c in json.loads((ROOT / "tests/data/zi/zi_cases.json").read_text())}
FAMILY = {"poisson": "poisson", "nbinom2": "negative_binomial", "nbinom1": "nbinom1", "truncated_nbinom2":
          "truncated_nbinom2", "truncated_poisson": "truncated_poisson", "truncated_nbinom1": "truncated_nbinom1",
          "ziGamma": "gamma", "Gamma": "gamma", "beta_family": "beta"}
#: the glmmTMB cases fitted here (betabinomial, tweedie and lognormal: tests/test_more_families.py)
FITTED = ["sal_zipoisson", "sal_zinb2", "sal_zinb1", "sal_hurdle_nb2", "sal_hurdle_poisson", "sal_zip_zi1",
          "owls_zinb1", "owls_nb2_disp", "sim_zigamma_hurdle", "sim_gamma_disp", "sim_beta_disp",
          "sim_truncated_poisson", "sim_truncated_nbinom1", "sal_zip_zi_re", "sal_zinb2_zi_re", "sim_zip_re_both"]
#: the cases with random effects in the zero-inflation formula
ZI_RANDOM = ["sal_zip_zi_re", "sal_zinb2_zi_re", "sim_zip_re_both"]


def load(case):
    d = pd.read_csv(ROOT / case["data"])
    if "Salamanders" in case["data"]:  # glmmTMB's level order (its first level is the baseline)
        d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def fit_case(case, data=None):
    zi = case["ziformula"]
    disp = case["dispformula"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gk.glmer(case["formula"], load(case) if data is None else data, family=FAMILY[case["family"]],
                        link=case["link"], ziformula=None if zi == "~0" else zi,
                        dispformula=None if disp == "~1" else disp)


_FITS = {}


def fitted(cid):
    if cid not in _FITS:
        _FITS[cid] = fit_case(CASES[cid])
    return _FITS[cid]


@pytest.mark.parametrize("cid", FITTED)
def test_matches_glmmtmb(cid):
    case, fit = CASES[cid], fitted(cid)
    if cid == "sal_zinb1":  # its zero part is near separation: the Hessian is not positive definite there
        assert not fit.converged and "standard errors of the zero-inflation" in fit.optimizer_info.message
    else:
        assert fit.converged
    assert fit.loglik > case["logLik"] - 1e-4
    assert abs(fit.loglik - case["logLik"]) < 1e-4  # the same optimum, not a better one
    assert fit.npar == case["df"]
    assert fit.aic == pytest.approx(case["AIC"], abs=2e-4)
    parts = {"cond": (fit.fixef, fit.vcov), "zi": (fit.fixef_zi, fit.vcov_part("zi")),
             "disp": (fit.fixef_disp, fit.vcov_part("disp"))}
    for part, ref in case["fixef"].items():
        if part == "disp" and case["dispformula"] == "~1":
            continue  # one dispersion value: fit.family_params (checked below)
        est, cov = parts[part]
        assert sorted(est.index) == sorted(ref), part
        se = pd.Series(np.sqrt(np.maximum(np.diag(cov.to_numpy()), 0.0)), index=est.index)
        for name, value in ref.items():
            ref_se = case["se"][part][name]
            assert abs(est[name] - value) <= 0.02 * ref_se, (part, name, est[name], value)
            if cid != "sal_zinb1":  # its zero part is near separation (coefficients near -20): a flat ridge
                assert se[name] == pytest.approx(ref_se, rel=0.01), (part, name)
    for part in ("cond", "zi"):
        for key, sd in case["sd"].get(part, {}).items():
            group, term = key.split("|")
            vc = fit.varcorr_part(part)
            row = vc[(vc["group"] == group) & (vc["term1"] == term) & vc["term2"].isna()]
            assert float(row["sdcor"].iloc[0]) == pytest.approx(sd, rel=0.01), (part, key)
    if case["dispformula"] == "~1" and case["fixef"].get("disp") and fit.family_params:
        fam = fit.family
        log_disp = float(to_engine_scale(fam.values[fam.disp_param], "log")) * fam.disp_scale
        assert log_disp == pytest.approx(case["fixef"]["disp"]["(Intercept)"], abs=0.02 * case["se"]["disp"]["(Intercept)"])


@pytest.mark.parametrize("cid", ["sal_zinb2", "sal_hurdle_nb2", "owls_nb2_disp", "sim_zigamma_hurdle", "sim_beta_disp",
                                 *ZI_RANDOM])
def test_predictions_match_glmmtmb(cid):
    case, fit = CASES[cid], fitted(cid)
    rows = case["predict"]["rows"]
    for kind in ("response", "conditional", "link", "zprob", "zlink", "disp"):
        if kind not in case["predict"]:
            continue
        if kind == "zlink" and case["ziformula"] == "~0":
            continue
        if kind == "disp" and case["family"] == "poisson":  # glmmTMB's 1; here an error naming the family
            continue
        got = np.asarray(fit.predict(type=kind))[rows]
        ref = np.asarray(case["predict"][kind], dtype=float)
        # link scales: absolute (a linear predictor near 0 has no relative accuracy)
        atol = 2e-5 if kind in ("link", "zlink") else 1e-6
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=atol, err_msg=kind)
    # the same on new data (the fitted rows given again)
    nd = load(case).iloc[rows]
    np.testing.assert_allclose(fit.predict(nd, type="response"), case["predict"]["response"], rtol=2e-4)
    np.testing.assert_allclose(fit.predict(nd, type="zprob"), case["predict"]["zprob"], rtol=2e-4, atol=1e-9)


def test_lmer_dispformula_matches_glmmtmb():
    for cid in ("sleep_gauss_disp", "sleep_gauss_disp_factor"):
        case = CASES[cid]
        fit = gk.lmer(case["formula"], load(case), reml=False, dispformula=case["dispformula"])
        assert fit.loglik == pytest.approx(case["logLik"], abs=1e-4)
        for name, value in case["fixef"]["cond"].items():
            assert abs(fit.fixef[name] - value) <= 0.02 * case["se"]["cond"][name]


# ----- the families' derivatives ------------------------------------------------------------------------


def _families():
    nb2 = F.get_family("negative_binomial").with_values({"theta": 1.7})
    nb1 = F.get_family("nbinom1").with_values({"phi": 0.8})
    gam = F.get_family("gamma", link="log").with_values({"shape": 2.0})
    out = []
    for base in (F.get_family("poisson"), nb2, nb1):
        out += [F.ZeroInflated(base).with_values({"zi": 0.3}), F.Truncated(base),
                F.Hurdle(F.Truncated(base)).with_values({"zi": 0.3})]
    return out + [F.Hurdle(gam).with_values({"zi": 0.3})]


def _sample(fam, n, seed):
    """(rng, μ, y) with a quarter of zeros (none for a truncated family; Gamma values for ziGamma)."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.3, 4.0, n)
    y = rng.poisson(mu).astype(float)
    y[: n // 4] = 0
    if isinstance(fam, F.Truncated):
        y = np.maximum(y, 1.0)
    if fam.name == "zigamma":
        y = np.where(y > 0, rng.gamma(2.0, mu / 2.0), 0.0)
    return rng, mu, y


@pytest.mark.parametrize("fam", _families(), ids=lambda f: f"{type(f).__name__}-{f.name}")
def test_mu_and_parameter_derivatives(fam):
    """The closed-form μ- and parameter-derivatives that the exact Laplace gradient uses, against
    central differences (to 1e-7 relative)."""
    rng, mu, y = _sample(fam, 40, 1)
    n = 40
    ones = np.ones(n)
    f, f1, f2, f3, psi = fam.mu_derivatives(y, mu, ones, fam.values)
    h = 1e-5
    up, dn = fam.mu_derivatives(y, mu + h, ones, fam.values), fam.mu_derivatives(y, mu - h, ones, fam.values)
    for k, d in enumerate((f1, f2, f3)):
        np.testing.assert_allclose((up[k] - dn[k]) / (2 * h), d, rtol=1e-6, atol=1e-7)
    for name in fam.free_names:
        e = float(to_engine_scale(fam.values[name], fam.param_scales.get(name, "log")))
        a, b = fam.with_psi({name: e + h}), fam.with_psi({name: e - h})
        fa, fb = a.mu_derivatives(y, mu, ones, a.values), b.mu_derivatives(y, mu, ones, b.values)
        for k in range(3):
            np.testing.assert_allclose((fa[k] - fb[k]) / (2 * h), psi[name][k], rtol=1e-6, atol=1e-7)


def test_densities_sum_to_one():
    mu = np.array([0.4, 2.5])
    ys = np.arange(0, 200, dtype=float)
    for fam in _families()[:-1]:
        tot = [np.exp(fam.loglik(ys, np.full(ys.shape, m), np.ones(ys.shape))).sum() for m in mu]
        if isinstance(fam, F.Truncated):
            tot = [np.exp(fam.loglik(ys[1:], np.full(ys.shape[0] - 1, m), np.ones(ys.shape[0] - 1))).sum() for m in mu]
        np.testing.assert_allclose(tot, 1.0, atol=1e-10)


# ----- properties ----------------------------------------------------------------------------------------


def test_row_order_and_simulation():
    case = CASES["sal_zinb2"]
    fit = fitted("sal_zinb2")
    d = load(case)
    perm = np.random.default_rng(3).permutation(len(d))
    refit = fit_case(case, d.iloc[perm].reset_index(drop=True))
    assert refit.loglik == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(refit.fixef_zi.to_numpy(), fit.fixef_zi.to_numpy(), atol=1e-3)
    sims = fit.simulate(nsim=200, seed=1)
    zeros = (np.asarray(sims) == 0).mean()
    assert abs(zeros - (d["count"] == 0).mean()) < 0.05
    # a zero-inflated model reproduces the zeros that a plain Poisson model cannot
    res = gk.simulate_residuals(fitted("sal_zipoisson"), n_sim=200, seed=2) if hasattr(gk, "simulate_residuals") \
        else fitted("sal_zipoisson").simulate_residuals(n_sim=200, seed=2)
    assert res.zero_inflation_test().p_value > 0.05


def test_fitted_and_residuals_are_the_mixtures():
    fit = fitted("sal_zipoisson")
    mu = fit.predict(type="conditional")
    pi = fit.predict(type="zprob")
    np.testing.assert_allclose(fit.fitted(), (1 - pi) * mu, rtol=1e-12)
    np.testing.assert_allclose(fit.residuals("response"), fit.frame.y - (1 - pi) * mu, rtol=1e-12)
    var = (1 - pi) * mu * (1 + pi * mu)
    np.testing.assert_allclose(fit.residuals("pearson"), (fit.frame.y - (1 - pi) * mu) / np.sqrt(var), rtol=1e-10)


def test_summary_and_anova_against_plain_model():
    case = CASES["sal_zipoisson"]
    zip_fit = fitted("sal_zipoisson")
    text = str(zip_fit.summary())
    assert "Zero-inflation model" in text and "minedno" in text
    plain = gk.glmer(case["formula"], load(case), family="poisson")
    table = gk.anova(plain, zip_fit)
    assert "zi ~ spp + mined" in table.index[1]
    assert table.iloc[1]["df"] == len(zip_fit.fixef_zi)
    assert table.iloc[1]["chisq"] == pytest.approx(2 * (zip_fit.loglik - plain.loglik), rel=1e-8)
    tab = zip_fit.coef_table_part("zi")
    assert list(tab.columns[:4]) == ["estimate", "std_error", "statistic", "p_value"]
    ci = zip_fit.confint()
    assert "zi~minedno" in ci.index


# ----- bad input -----------------------------------------------------------------------------------------


def test_bad_input():
    d = load(CASES["sal_zipoisson"])
    with pytest.raises(DataError, match=r"zero\(s\) \(rows 0, 1"):
        gk.glmer("count ~ mined + (1|site)", d, family="truncated_poisson")
    with pytest.raises(ArgumentError, match="no dispersion parameter"):
        gk.glmer("count ~ mined + (1|site)", d, family="poisson", dispformula="~ spp")
    d2 = d.assign(prop=(d["count"] > 0).astype(float))
    with pytest.raises(ArgumentError, match="no dispersion parameter"):
        gk.glmer("prop ~ mined + (1|site)", d2, family="binomial", dispformula="~ spp")
    with pytest.raises(ArgumentError, match="ziformula does not apply to the beta family"):
        gk.glmer("y ~ x + (1|g)", pd.read_csv(ROOT / CASES["sim_beta_disp"]["data"]), family="beta", ziformula="~1")
    with pytest.raises(ArgumentError, match="zero inflation is a ziformula"):
        gk.glmer("count ~ mined + (1|site)", d, family="zipoisson")
    with pytest.raises(Exception, match="nosuch"):
        gk.glmer("count ~ mined + (1|site)", d, family="poisson", ziformula="~ nosuch")
    with pytest.raises(FormulaError, match="one-sided"):
        gk.glmer("count ~ mined + (1|site)", d, family="poisson", ziformula="count ~ mined")
    # complete cases are the union over all formulas, and counted
    dm = d.copy()
    dm["cover2"] = dm["cover"]
    dm.loc[[3, 7], "cover2"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("count ~ mined + (1|site)", dm, family="poisson", ziformula="~ cover2")
    assert fit.nobs == len(d) - 2
    assert any("2" in m and "missing" in m for m in fit.optimizer_info.messages)
    pos = d[d["count"] > 0]
    with pytest.warns(IdentifiabilityWarning, match="no zeros"):
        gk.glmer("count ~ mined + (1|site)", pos, family="poisson", ziformula="~ 1")


@pytest.mark.parametrize("fam", _families(), ids=lambda f: f"{type(f).__name__}-{f.name}")
def test_fast_paths_agree_with_the_derivatives(fam):
    """log_density and mu_score_info (step halving's and Newton's shortcuts) equal mu_derivatives' terms."""
    rng, mu, y = _sample(fam, 30, 2)
    wt = rng.uniform(0.5, 2.0, 30)
    f, f1, f2, _, _ = fam.mu_derivatives(y, mu, wt, fam.values)
    np.testing.assert_allclose(fam.log_density(y, mu, wt, fam.values), f, rtol=1e-12, atol=1e-12)
    s1, s2 = fam.mu_score_info(y, mu, wt, fam.values)
    np.testing.assert_allclose(s1, f1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s2, f2, rtol=1e-12, atol=1e-12)


def test_agq_for_a_zero_inflated_model_converges_in_the_nodes():
    """AGQ on the one grouping factor: the deviance settles as nodes are added (9 vs 15 to 1e-3),
    and nagq=1 is the Laplace fit."""
    case = CASES["sal_zinb2"]
    d = load(case)
    fits = {k: gk.glmer(case["formula"], d, family="negative_binomial", ziformula=case["ziformula"], nagq=k)
            for k in (1, 9, 15)}
    assert fits[1].loglik == pytest.approx(fitted("sal_zinb2").loglik, abs=1e-8)
    assert all(f.converged for f in fits.values())
    assert fits[15].loglik == pytest.approx(fits[9].loglik, abs=1e-3)
    assert abs(fits[9].loglik - fits[1].loglik) < 0.5
    np.testing.assert_allclose(fits[15].fixef_zi.to_numpy(), fits[9].fixef_zi.to_numpy(), atol=5e-3)
    # the AGQ log-likelihood is the integral itself: adaptive quadrature by scipy per site at the estimates
    from scipy import integrate

    fit = fits[15]
    fam, y, wt = fit.family, fit.frame.y, fit._problem.wt
    codes = fit.structure.blocks[0].factor.codes
    sd = float(fit.varcorr["sdcor"].iloc[0])
    fixed = fit._problem.X @ fit._beta + fit._problem.offset
    values = fam.values
    total = 0.0
    for g in range(fit.structure.blocks[0].q):
        rows = codes == g
        vals = {k: (v[rows] if np.ndim(v) else v) for k, v in values.items()}

        def log_joint(b):
            mu = fam.link.inverse(fixed[rows] + sd * b)
            return float(np.sum(fam.log_density(y[rows], mu, wt[rows], vals))) - 0.5 * b * b

        peak = max(log_joint(b) for b in np.linspace(-6, 6, 121))
        val, _ = integrate.quad(lambda b: np.exp(log_joint(b) - peak), -12, 12, epsabs=0, epsrel=1e-11, limit=200)
        total += peak + np.log(val) - 0.5 * np.log(2 * np.pi)
    assert fit.loglik == pytest.approx(total, abs=1e-6)


# ----- random effects in the zero-inflation formula -----------------------------------------------------


def test_zero_part_random_effects_reported():
    fit = fitted("sim_zip_re_both")
    re = fit.ranef_part("zi")["g"]
    assert re.shape == (100, 1) and list(re.columns) == ["(Intercept)"]
    assert abs(float(re.mean().iloc[0])) < 0.2 and re.std().iloc[0] > 0.3  # shrunken modes, sd 0.71 in the model
    assert fit.npar == 6 and "zi~g.(Intercept)" in fit._problem.layout.names
    # the zero probability per row combines the fixed part and the level's mode
    sub = fit._problem.submodels[0]
    codes = sub.structure.blocks[0].factor.codes
    eta = sub.X @ fit.fixef_zi.to_numpy() + re.to_numpy()[codes, 0]
    np.testing.assert_allclose(fit.predict(type="zlink"), eta, atol=1e-10)
    # population level: the random effects of both parts dropped (glmmTMB's re.form = NA)
    np.testing.assert_allclose(fit.predict(type="zlink", re_form="~0"), sub.X @ fit.fixef_zi.to_numpy(), atol=1e-12)
    mu0 = np.exp(fit.predict(type="link", re_form="~0"))
    pi0 = 1.0 / (1.0 + np.exp(-sub.X @ fit.fixef_zi.to_numpy()))
    np.testing.assert_allclose(fit.predict(type="response", re_form="~0"), (1 - pi0) * mu0, rtol=1e-10)
    # new data: the fitted rows again give the fitted values; a new level needs allow_new_levels
    d = load(CASES["sim_zip_re_both"])
    np.testing.assert_allclose(fit.predict(d, type="zprob"), fit.predict(type="zprob"), rtol=1e-10)
    new = d.iloc[:3].copy()
    new["g"] = "unseen"
    with pytest.raises(DataError, match="allow_new_levels"):
        fit.predict(new, type="zprob")
    got = fit.predict(new, type="zlink", allow_new_levels=True)
    np.testing.assert_allclose(got, fit.predict(new, type="zlink", re_form="~0"), atol=1e-12)
    text = str(fit.summary())
    assert "Zero-inflation model" in text and text.count("Random effects:") == 2
    vc = fit.varcorr_part("zi")
    assert not vc.isin([None]).to_numpy().any() and vc["term2"].isna().all()  # NaN, never None, as varcorr


def test_zero_part_random_effects_row_order_and_relabelling():
    case = CASES["sim_zip_re_both"]
    d = load(case)
    base = fitted("sim_zip_re_both")
    rng = np.random.default_rng(3)
    shuffled = d.iloc[rng.permutation(len(d))].reset_index(drop=True)
    shuffled["g"] = "lvl" + shuffled["g"].astype(str).str[::-1]
    fit = fit_case(case, shuffled)
    assert fit.loglik == pytest.approx(base.loglik, abs=1e-6)
    np.testing.assert_allclose(fit.fixef_zi.to_numpy(), base.fixef_zi.to_numpy(), atol=1e-4)
    assert float(fit.varcorr_part("zi").sdcor.iloc[0]) == pytest.approx(float(base.varcorr_part("zi").sdcor.iloc[0]),
                                                                         rel=1e-4)


def test_zero_part_random_effects_bad_input():
    case = CASES["sim_zip_re_both"]
    d = load(case)
    with pytest.raises(ArgumentError, match="nagq"):
        gk.glmer(case["formula"], d, family="poisson", ziformula=case["ziformula"], nagq=5)
    with pytest.raises(FormulaError, match="dispformula"):
        gk.glmer(case["formula"], d, family="negative_binomial", dispformula="~ x + (1 | g)")
    with pytest.raises(FormulaError, match="ziformula.*nosuch"):
        gk.glmer(case["formula"], d, family="poisson", ziformula="~ z + (1 | nosuch)")


@pytest.mark.parametrize("cid", ["sim_zip_re_both", "sal_zinb2_zi_re"])
def test_joint_laplace_gradient_is_exact(cid):
    """The joint objective's gradient (third derivatives of both parts) against central differences."""
    fit = fitted(cid)
    obj = fit._problem.objective(tol=1e-14)
    x = fit._x + 0.05 * np.random.default_rng(1).standard_normal(fit._x.shape)
    x = np.maximum(x, obj.layout.lower + 0.01)
    obj.laplace(x)
    _, g = obj.laplace_and_gradient(x)
    num = np.empty_like(x)
    for j in range(x.shape[0]):
        h = 1e-5 * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        num[j] = (obj.laplace(up) - obj.laplace(down)) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_joint_newton_terms_match_the_full_derivatives():
    rng = np.random.default_rng(0)
    n = 60
    y = rng.poisson(1.0, n) * (rng.random(n) < 0.6)
    eta, wt = rng.normal(0, 0.5, n), rng.uniform(0.5, 2.0, n)
    for fam in (F.ZeroInflated(F.get_family("poisson")), F.ZeroInflated(F.get_family("negative_binomial")),
                F.Hurdle(F.Truncated(F.get_family("poisson")))):
        psi = {"zi": rng.normal(0, 1, n)}
        if "theta" in fam.param_names:
            psi["theta"] = 0.3
        bound = fam.with_psi(psi)
        d = bound.eta_derivatives(eta, y, wt)
        j = list(bound.free_names).index("zi")
        mu = bound.link.inverse(eta)
        ref = (d.s, d.psi[j][0], d.W, -d.psi[j][1], -bound.zi_curvature(y, mu, wt, bound.values))
        for got, want in zip(bound.joint_newton_terms(eta, y, wt), ref):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        # the curvature in ζ by differences of ℓ_ζ
        h = 1e-6
        up = bound.with_psi({**psi, "zi": psi["zi"] + h}).eta_derivatives(eta, y, wt).psi[j][0]
        down = bound.with_psi({**psi, "zi": psi["zi"] - h}).eta_derivatives(eta, y, wt).psi[j][0]
        np.testing.assert_allclose(bound.zi_curvature(y, mu, wt, bound.values), (up - down) / (2 * h), rtol=1e-6,
                                   atol=1e-8)
