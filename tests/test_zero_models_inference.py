"""Inference on zero-inflation and dispersion sub-models (issue 14): profile intervals of every part's
coefficients, prediction standard errors through the joint covariance, population-averaged means
of the mixture.

References: tests/data/zi/zi_profile.json, written by tests/data/zi/make_zi_profile.R (glmmTMB 1.1.5).
Rules (the issue's): interval ends within 1 % of the interval's half-width; prediction SEs within 1 %
relative; Monte-Carlo checks within four Monte-Carlo standard errors.  Fitted values: within 5e-5
(absolute and relative), not the issue's 1e-5: the two optimisers stop at the same log-likelihood
(to 1e-7) with linear predictors up to 2e-5 apart on that flat optimum.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, NotAvailableError

ROOT = Path(__file__).resolve().parents[1]
REF = {c["id"]: c for c in json.loads((ROOT / "tests/data/zi/zi_profile.json").read_text())["cases"]}
FAMILY = {"poisson": "poisson", "nbinom2": "negative_binomial"}
_FITS = {}
FIT_TOL = 5e-5


def load(case):
    d = pd.read_csv(ROOT / case["data"])
    if "Salamanders" in case["data"]:  # glmmTMB's level order (its first level is the baseline)
        d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def fitted(cid):
    if cid not in _FITS:
        case = REF[cid]
        zi, disp = case["ziformula"], case["dispformula"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[cid] = gk.glmer(case["formula"], load(case), family=FAMILY[case["family"]],
                                  ziformula=None if zi == "~0" else zi, dispformula=None if disp == "~1" else disp)
    return _FITS[cid]


def our_name(fit, r_name):
    """glmmkit's row name of a glmmTMB confint row (and whether glmmTMB's is on the log-SD scale)."""
    if r_name.startswith("d~"):
        return "disp~" + r_name[2:], False
    if r_name.startswith("theta_"):
        group = r_name.split("|")[1].rsplit(".", 1)[0]
        return f"sd_(Intercept)|{group}", True
    return r_name, False


# ----- profile intervals -----

#: every row for the Owls model; for Salamanders (12 rows, 40 s) both zero-part rows, the SD and
#: two conditional coefficients (``parm``: the rows are profiled one by one, each on its own)
PROFILED = {"owls_nb2_disp": None,
            "sal_zip_mined": ["sd_(Intercept)|site", "(Intercept)", "minedno", "zi~(Intercept)", "zi~minedno"]}


@pytest.mark.parametrize("cid", ["sal_zip_mined", "owls_nb2_disp"])
def test_profile_intervals_of_every_part_match_glmmtmb(cid):
    case, fit = REF[cid], fitted(cid)
    assert fit.loglik == pytest.approx(case["logLik"], abs=1e-4)
    ci = fit.confint(method="profile", parm=PROFILED[cid])
    assert ci.attrs["method"] == "profile"
    sub_rows = [n for n in ci.index if "~" in n]
    assert sub_rows and all(n.split("~")[0] in ("zi", "disp") for n in sub_rows)
    checked = 0
    for r_name, (lo, hi) in case["uniroot"].items():
        name, log_scale = our_name(fit, r_name)
        if name not in ci.index:
            continue
        checked += 1
        if log_scale:
            lo, hi = np.exp(lo), np.exp(hi)
        tol = 0.01 * (hi - lo) / 2.0
        assert abs(ci.loc[name, "lower"] - lo) <= tol, (name, ci.loc[name, "lower"], lo)
        assert abs(ci.loc[name, "upper"] - hi) <= tol, (name, ci.loc[name, "upper"], hi)
    assert checked == len(ci)
    # the profile interval brackets the estimate and is not the Wald one (a skewed profile)
    wald = fit.confint(method="wald")
    if PROFILED[cid] is None:
        assert list(wald.index) == list(ci.index)
    est = pd.concat([fit.fixef_zi.rename(lambda n: f"zi~{n}"), fit.fixef_disp.rename(lambda n: f"disp~{n}")])
    for name in sub_rows:
        assert ci.loc[name, "lower"] < est[name] < ci.loc[name, "upper"]
        assert abs(ci.loc[name, "lower"] - wald.loc[name, "lower"]) > 1e-4


def test_profile_parm_names_unknown_submodel_rows():
    fit = fitted("sal_zip_mined")
    with pytest.raises(ArgumentError, match="zi~nothing"):
        fit.confint(method="profile", parm=["zi~nothing"])


# ----- prediction standard errors -----

@pytest.mark.parametrize("cid", ["sal_zip_mined", "owls_nb2_disp"])
def test_prediction_se_matches_glmmtmb(cid):
    case, fit = REF[cid], fitted(cid)
    rows = case["predict"]["rows"]
    nd = load(case).iloc[rows]
    for kind, ref in case["predict"].items():
        if kind == "rows":
            continue
        cond = fit.predict(type=kind, se_fit=True, theta_uncertainty=True).iloc[rows]
        np.testing.assert_allclose(cond["fit"], ref["fit"], rtol=FIT_TOL, atol=FIT_TOL, err_msg=kind)
        np.testing.assert_allclose(cond["se_fit"], ref["se_fit"], rtol=0.01, err_msg=kind)
        # on new data (the same rows), conditional and at the population level
        new = fit.predict(nd, type=kind, se_fit=True, theta_uncertainty=True)
        assert list(new.index) == list(nd.index)
        np.testing.assert_allclose(new["se_fit"], cond["se_fit"], rtol=1e-6, err_msg=kind)
        pop = fit.predict(nd, re_form="~0", type=kind, se_fit=True)
        np.testing.assert_allclose(pop["fit"], ref["fit_population"], rtol=FIT_TOL, atol=FIT_TOL, err_msg=kind)
        np.testing.assert_allclose(pop["se_fit"], ref["se_fit_population"], rtol=0.01, err_msg=kind)
        # the fits are predict's own
        np.testing.assert_allclose(pop["fit"], fit.predict(nd, re_form="~0", type=kind), rtol=1e-10)


def test_mixture_mean_se_is_the_delta_method_of_both_parts():
    """Population level: Var((1 − π)μ) = g'Σg with g = ((1 − π)μ x, −μπ(1 − π) x_zi) and Σ the joint
    covariance of (β, β_zi); the θ-fixed SE equals it (θ does not enter)."""
    fit = fitted("sal_zip_mined")
    d = load(REF["sal_zip_mined"])
    nd = d.iloc[[0, 100, 350, 643]]
    X = fit.frame.X[:, fit._x_kept][[0, 100, 350, 643]]
    Xz = np.column_stack([np.ones(4), (nd["mined"] == "no").to_numpy(float)])
    mu = np.exp(X @ fit._beta)
    pi = 1.0 / (1.0 + np.exp(-(Xz @ fit.fixef_zi.to_numpy())))
    G = np.hstack([((1 - pi) * mu)[:, None] * X, (-mu * pi * (1 - pi))[:, None] * Xz])
    layout = fit._problem.layout
    idx = np.r_[np.arange(layout.size)[layout.slice("beta")], np.arange(layout.size)[layout.slice("beta_zi")]]
    S = fit._x_cov[np.ix_(idx, idx)]
    want = np.sqrt(np.einsum("ij,jk,ik->i", G, S, G))
    got = fit.predict(nd, re_form="~0", type="response", se_fit=True)
    np.testing.assert_allclose(got["fit"], (1 - pi) * mu, rtol=1e-10)
    np.testing.assert_allclose(got["se_fit"], want, rtol=1e-4)
    # conditional on the random effects θ enters through the modes: holding it fixed changes the SE a little
    fixed_theta = fit.predict(nd, type="response", se_fit=True)["se_fit"].to_numpy()
    with_theta = fit.predict(nd, type="response", se_fit=True, theta_uncertainty=True)["se_fit"].to_numpy()
    rel = np.abs(with_theta / fixed_theta - 1.0)
    assert np.all(fixed_theta > 0) and rel.max() > 1e-4 and rel.max() < 0.05


def test_prediction_se_edges():
    fit = fitted("owls_nb2_disp")
    nd = load(REF["owls_nb2_disp"]).iloc[:3]
    z = fit.predict(nd, type="zprob", se_fit=True)  # no zero part: π = 0, exactly known
    assert np.all(z["fit"] == 0) and np.all(z["se_fit"] == 0)
    with pytest.raises(ArgumentError, match="type"):
        fit.predict(nd, type="probability", se_fit=True)
    good = fit.predict(nd, type="disp", se_fit=True)
    for column in ("FoodTreatment", "Nest"):  # a missing value: that row NaN (as predict), the others kept
        bad = nd.copy()
        bad.loc[bad.index[1], column] = np.nan
        got = fit.predict(bad, type="disp" if column == "FoodTreatment" else "response", se_fit=True)
        assert got.iloc[1].isna().all() and got.drop(index=bad.index[1]).notna().all().all()
        if column == "FoodTreatment":
            pd.testing.assert_frame_equal(got.drop(index=bad.index[1]), good.drop(index=nd.index[1]))
    with pytest.raises(NotAvailableError):
        fit.predict(nd, type="response", se_fit=True, marginal=True)


# ----- the population-averaged mixture mean -----

def test_marginal_mixture_mean_matches_monte_carlo():
    """E[y] = E_b[(1 − π)exp(x'β + b)]: averaged by simulating responses (draws of b and of y)."""
    fit = fitted("sal_zip_mined")
    d = load(REF["sal_zip_mined"])
    nd = d.iloc[[0, 49, 299, 599]]
    got = np.asarray(fit.predict(nd, type="response", marginal=True))
    eta0 = np.asarray(fit.predict(nd, re_form="~0"))
    pi = np.asarray(fit.predict(nd, type="zprob"))
    sd = float(fit.varcorr["sdcor"].iloc[0])
    rng = np.random.default_rng(20261202)
    n = 400_000
    b = rng.normal(0.0, sd, (len(nd), n))
    y = np.where(rng.random((len(nd), n)) < pi[:, None], 0, rng.poisson(np.exp(eta0[:, None] + b)))
    mc, mc_se = y.mean(axis=1), y.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(got - mc) < 4 * mc_se), (got, mc, mc_se)
    # not the average of the conditional mean alone (which leaves out π)
    conditional_only = np.exp(eta0 + sd**2 / 2)
    assert np.all(np.abs(conditional_only - mc) > 20 * mc_se)
    np.testing.assert_allclose(fit.predict(nd, type="link", marginal=True), np.log(got), rtol=1e-12)
    # the marginal variance (binomial-Poisson mixture within, the random effect between)
    mom = fit.marginal_moments(nd)
    np.testing.assert_allclose(mom["mean"].to_numpy(), got, rtol=1e-10)
    v_se = np.sqrt(((y - y.mean(axis=1, keepdims=True)) ** 2).var(axis=1) / n)
    assert np.all(np.abs(mom["variance"].to_numpy() - y.var(axis=1)) < 4 * v_se)


def test_marginal_hurdle_mean_matches_monte_carlo():
    d = load(REF["sal_zip_mined"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("count ~ spp + mined + (1 | site)", d, family="truncated_poisson", ziformula="~ mined")
    nd = d.iloc[[0, 49, 599]]
    got = np.asarray(fit.predict(nd, type="response", marginal=True))
    eta0 = np.asarray(fit.predict(nd, re_form="~0"))
    pi = np.asarray(fit.predict(nd, type="zprob"))
    sd = float(fit.varcorr["sdcor"].iloc[0])
    rng = np.random.default_rng(7)
    n = 400_000
    lam = np.exp(eta0[:, None] + rng.normal(0.0, sd, (len(nd), n)))
    pos = rng.poisson(lam)
    while np.any(pos == 0):  # zero-truncated Poisson by redrawing the zeros
        zero = pos == 0
        pos[zero] = rng.poisson(lam[zero])
    y = np.where(rng.random((len(nd), n)) < pi[:, None], 0, pos)
    mc, mc_se = y.mean(axis=1), y.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(got - mc) < 4 * mc_se), (got, mc, mc_se)


def test_marginal_coefs_carry_the_zero_part():
    """With the zero part's covariate (mined) in the conditional part too, log E[y] is linear in X:
    the intercept gains σ²/2 + log(1 − π_yes), minedno gains log(1 − π_no) − log(1 − π_yes)."""
    fit = fitted("sal_zip_mined")
    mc = fit.marginal_coefs()
    sd = float(fit.varcorr["sdcor"].iloc[0])
    a, bz = fit.fixef_zi.to_numpy()
    log1m = lambda z: -np.log1p(np.exp(z))  # noqa: E731  log(1 − plogis(z))
    want = fit.fixef.copy()
    want["(Intercept)"] += sd**2 / 2 + log1m(a)
    want["minedno"] += log1m(a + bz) - log1m(a)
    np.testing.assert_allclose(mc["estimate"], want, atol=1e-7)
    se = mc["std_error"].to_numpy()
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    # the spp contrasts are untouched by the zero part and the random effect: the conditional SEs
    spp = [n for n in mc.index if n.startswith("spp")]
    np.testing.assert_allclose(mc.loc[spp, "std_error"], np.sqrt(np.diag(fit.vcov.loc[spp, spp])), rtol=1e-3)


def test_population_means_of_the_conditional_part_alone_are_refused():
    fit = fitted("sal_zip_mined")
    with pytest.raises(NotAvailableError, match="zero part"):
        fit.emmeans("mined", marginal=True)


def test_bootstrap_names_the_submodel_rows_it_lacks():
    fit = fitted("sal_zip_mined")
    wald = fit.confint(method="wald", parm=["zi~minedno"])
    t = fit.coef_table_part("zi")
    assert wald.iloc[0].to_numpy() == pytest.approx(t.loc["minedno", ["ci_lower", "ci_upper"]].to_numpy(float))
    with pytest.raises(NotAvailableError, match="zi~minedno"):
        fit.confint(method="boot", n_boot=10, parm=["zi~minedno"], progress=False)


def test_random_effects_in_a_submodel_are_refused_not_ignored():
    """A layout with a sub-model θ block (random effects in the ziformula) is refused by name."""
    from types import SimpleNamespace

    from glmmkit.inference.marginal import check_fixed_submodels
    from glmmkit.objective.layout import ParameterBlock, ParameterLayout

    fit = fitted("sal_zip_mined")
    check_fixed_submodels(fit, "se_fit")  # no random effects in the zero part: fine
    blocks = list(fit._problem.layout.blocks) + [ParameterBlock.free("theta_zi", ("site.(Intercept)",))]
    fake = SimpleNamespace(_problem=SimpleNamespace(layout=ParameterLayout(blocks)))
    with pytest.raises(NotAvailableError, match="theta_zi"):
        check_fixed_submodels(fake, "se_fit")
