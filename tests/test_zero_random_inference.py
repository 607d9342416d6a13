"""Inference on models with random effects in the zero-inflation formula (issue 14): prediction
standard errors through the joint mode and the joint conditional covariance of (b, b_zi), profile
intervals of the zero part's SDs and coefficients, population-averaged means of the mixture.

References: tests/data/zi/zi_re_inference.json, written by tests/data/zi/make_zi_re_inference.R
(glmmTMB 1.1.5).  Rules (the issue's): prediction SEs within 1 % relative; profile interval ends
within 1 % of the interval's half-width; Monte-Carlo checks within four Monte-Carlo standard errors.
The population-level references (every random effect at 0) are the delta method in R on glmmTMB's
estimates and covariance: glmmTMB 1.1.5's ``re.form = NA`` zeroes only the conditional part's
effects (its values are kept in the JSON, and agree with ours where the zero part does not enter).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, DataError
from glmmkit.inference.prediction_se import joint_b_covariance

ROOT = Path(__file__).resolve().parents[1]
REF = {c["id"]: c for c in json.loads((ROOT / "tests/data/zi/zi_re_inference.json").read_text())["cases"]}
_FITS = {}
FIT_TOL = 5e-5  # two optimisers' stops on the same optimum (log-likelihoods within 1e-6)


def load(case):
    d = pd.read_csv(ROOT / case["data"])
    if "Salamanders" in case["data"]:  # glmmTMB's level order (its first level is the baseline)
        d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def fitted(cid):
    if cid not in _FITS:
        case = REF[cid]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[cid] = gk.glmer(case["formula"], load(case), family=case["family"], ziformula=case["ziformula"])
    return _FITS[cid]


# ----- prediction standard errors -----

@pytest.mark.parametrize("cid", ["sal_zip_zi_re", "sim_zip_re_both"])
def test_prediction_se_matches_glmmtmb(cid):
    case, fit = REF[cid], fitted(cid)
    assert fit.loglik == pytest.approx(case["logLik"], abs=1e-4)
    rows = case["predict"]["rows"]
    d = load(case)
    nd = d.iloc[rows]
    for kind, ref in case["predict"].items():
        if kind == "rows":
            continue
        atol = 2e-4 if kind in ("link", "zlink") else FIT_TOL  # a linear predictor near 0: absolute
        cond = fit.predict(type=kind, se_fit=True, theta_uncertainty=True).iloc[rows]
        np.testing.assert_allclose(cond["fit"], ref["fit"], rtol=FIT_TOL, atol=atol, err_msg=kind)
        np.testing.assert_allclose(cond["se_fit"], ref["se_fit"], rtol=0.01, err_msg=kind)
        np.testing.assert_allclose(cond["fit"], np.asarray(fit.predict(type=kind))[rows], rtol=1e-10, err_msg=kind)
        # the same rows as new data: both parts' modes of their levels
        new = fit.predict(nd, type=kind, se_fit=True, theta_uncertainty=True)
        assert list(new.index) == list(nd.index)
        np.testing.assert_allclose(new["se_fit"], cond["se_fit"], rtol=1e-6, err_msg=kind)
        np.testing.assert_allclose(new["fit"], cond["fit"], rtol=1e-8, atol=1e-10, err_msg=kind)
        # population level: every random effect at 0 (θ then does not enter)
        for tu in (True, False):
            pop = fit.predict(nd, re_form="~0", type=kind, se_fit=True, theta_uncertainty=tu)
            np.testing.assert_allclose(pop["fit"], ref["fit_population"], rtol=FIT_TOL, atol=atol, err_msg=kind)
            np.testing.assert_allclose(pop["se_fit"], ref["se_fit_population"], rtol=0.01, err_msg=kind)
        if kind in ("link", "conditional"):  # here glmmTMB's re.form = NA is the population level too
            np.testing.assert_allclose(pop["se_fit"], ref["se_fit_population_glmmtmb"], rtol=0.01, err_msg=kind)


def test_theta_fixed_and_new_levels():
    fit = fitted("sim_zip_re_both")
    d = load(REF["sim_zip_re_both"])
    nd = d.iloc[[0, 700, 1500]]
    for kind in ("response", "zprob", "link"):
        free = fit.predict(nd, type=kind, se_fit=True, theta_uncertainty=True)["se_fit"].to_numpy()
        held = fit.predict(nd, type=kind, se_fit=True)["se_fit"].to_numpy()
        # θ and θ_zi held at their estimates (their covariance with the coefficients dropped too, so
        # not always less): a different, nearby SE
        assert np.all(np.abs(held / free - 1.0) < 0.5) and np.any(np.abs(held / free - 1.0) > 1e-3), kind
    # a level not in the fit: both parts' effects 0 for that row, so the population row's SE
    new = nd.copy()
    new["g"] = [999, new["g"].iloc[1], 999]
    with pytest.raises(DataError, match="allow_new_levels"):
        fit.predict(new, type="response", se_fit=True)
    got = fit.predict(new, type="response", se_fit=True, theta_uncertainty=True, allow_new_levels=True)
    pop = fit.predict(new, re_form="~0", type="response", se_fit=True)
    np.testing.assert_allclose(got["se_fit"].to_numpy()[[0, 2]], pop["se_fit"].to_numpy()[[0, 2]], rtol=1e-5)
    np.testing.assert_allclose(got["fit"].to_numpy()[[0, 2]], pop["fit"].to_numpy()[[0, 2]], rtol=1e-10)
    assert got["se_fit"].iloc[1] != pytest.approx(pop["se_fit"].iloc[1], rel=1e-3)
    with pytest.raises(ArgumentError, match="type"):
        fit.predict(nd, type="mean", se_fit=True)


@pytest.mark.parametrize("cid", ["sal_zip_zi_re", "sim_zip_re_both"])
def test_joint_conditional_covariance_is_the_engines(cid):
    """Cov((b, b_zi) | y) from the dense joint system agrees with the engine's factor at the mode:
    its log-determinant and its diagonal level blocks (``u_condvar``, scaled by Λ)."""
    fit = fitted(cid)
    obj = fit._problem.objective(tol=1e-12)
    prm = fit._problem.layout.split(fit._x)
    mode = obj.joint_mode(prm, u0=fit._state.joint.u.copy())
    theta_all = obj.joint_theta(prm)
    C = joint_b_covariance(obj, mode, theta_all)
    st = obj.stacked
    templates = st.templates(theta_all)
    L = st.b_of(templates, np.eye(st.q))
    # M from C: C = L M⁻¹ L' with L invertible (positive SDs)
    Minv = np.linalg.solve(L, np.linalg.solve(L, C.T).T)
    assert -np.linalg.slogdet(Minv)[1] == pytest.approx(mode.logdet, rel=1e-8)
    blocks = mode.system.u_condvar(templates, mode.factor)
    for blk, V in zip(st.blocks, blocks):
        idx = blk.offset + np.arange(blk.q)[:, None] * blk.K + np.arange(blk.K)[None, :]
        np.testing.assert_allclose(Minv[idx[:, :, None], idx[:, None, :]], V, rtol=1e-7, atol=1e-12)
    # both parts' effects of a level are correlated given y (the off-diagonal of the joint inverse)
    i, j = obj.index_cond[0], obj.index_zi[0]
    assert abs(C[i, j]) > 1e-4 * np.sqrt(C[i, i] * C[j, j])


# ----- profile intervals -----

def test_profile_intervals_match_glmmtmb():
    case, fit = REF["sal_zip_zi_re"], fitted("sal_zip_zi_re")
    parm = ["zi~sd_(Intercept)|site", "sd_(Intercept)|site", "zi~(Intercept)", "zi~minedno", "minedno"]
    ci = fit.confint(method="profile", parm=parm)
    assert list(ci.index) == parm
    names = {"theta_1|site.1": "sd_(Intercept)|site", "zi~theta_1|site.1": "zi~sd_(Intercept)|site"}
    checked = 0
    for r_name, (lo, hi) in case["uniroot"].items():
        name = names.get(r_name, r_name)
        if name not in ci.index:
            continue
        if r_name in names:  # glmmTMB's log-SD scale
            lo, hi = np.exp(lo), np.exp(hi)
        tol = 0.01 * (hi - lo) / 2.0
        assert abs(ci.loc[name, "lower"] - lo) <= tol, (name, ci.loc[name, "lower"], lo)
        assert abs(ci.loc[name, "upper"] - hi) <= tol, (name, ci.loc[name, "upper"], hi)
        checked += 1
    assert checked == len(parm)
    sd_zi = float(fit.varcorr_part("zi")["sdcor"].iloc[0])
    assert ci.loc["zi~sd_(Intercept)|site", "lower"] < sd_zi < ci.loc["zi~sd_(Intercept)|site", "upper"]
    # Wald: the zero part's SD row is there, without an interval (as the conditional SDs)
    wald = fit.confint(method="wald")
    assert np.isnan(wald.loc["zi~sd_(Intercept)|site"]).all()
    assert list(wald.index[:2]) == ["sd_(Intercept)|site", "zi~sd_(Intercept)|site"]
    with pytest.raises(ArgumentError, match="zi~sd_x"):
        fit.confint(method="profile", parm=["zi~sd_x|site"])


# ----- population-averaged means -----

def _draws(fit, nd, n, seed):
    """Monte Carlo: (1 − π)μ and y for the rows of nd, all in one cluster of each part's factor."""
    rng = np.random.default_rng(seed)
    e0 = np.asarray(fit.predict(nd, re_form="~0"))
    z0 = np.asarray(fit.predict(nd, re_form="~0", type="zlink"))
    sd = float(fit.varcorr["sdcor"].iloc[0])
    sdz = float(fit.varcorr_part("zi")["sdcor"].iloc[0])
    b, bz = sd * rng.standard_normal(n), sdz * rng.standard_normal(n)
    mu = np.exp(e0[:, None] + b[None, :])
    pi = 1.0 / (1.0 + np.exp(-(z0[:, None] + bz[None, :])))
    y = np.where(rng.random(mu.shape) < pi, 0, rng.poisson(mu))
    return (1.0 - pi) * mu, y


def test_marginal_means_and_moments_against_monte_carlo():
    fit = fitted("sim_zip_re_both")
    d = load(REF["sim_zip_re_both"])
    nd = d.iloc[[0, 3, 7]]  # rows of one level of g
    assert nd["g"].nunique() == 1
    N = 300_000
    m, y = _draws(fit, nd, N, seed=11)
    got = np.asarray(fit.predict(nd, type="response", marginal=True))
    mc_se = m.std(axis=1) / np.sqrt(N)
    assert np.all(np.abs(got - m.mean(axis=1)) < 4 * mc_se), (got, m.mean(axis=1), mc_se)
    # not the conditional mean at b = 0 (the averaging matters, both parts')
    assert np.all(np.abs(got / fit.predict(nd, re_form="~0", type="response") - 1) > 0.05)
    np.testing.assert_allclose(fit.predict(nd, type="link", marginal=True), np.log(got), rtol=1e-12)
    mm = fit.marginal_moments(nd)
    np.testing.assert_allclose(mm["mean"], got, rtol=1e-12)
    # variances and covariances of y: MC standard errors from the draws' own spread
    v_mc = y.var(axis=1)
    v_se = np.sqrt(((y - y.mean(axis=1, keepdims=True)) ** 2).var(axis=1) / N)
    assert np.all(np.abs(mm["variance"].to_numpy() - v_mc) < 4 * v_se), (mm["variance"], v_mc, v_se)
    yc = y - y.mean(axis=1, keepdims=True)
    for s, t in ((0, 1), (0, 2), (1, 2)):
        prod = yc[s] * yc[t]
        assert abs(mm["covariance"].iloc[s, t] - prod.mean()) < 4 * prod.std() / np.sqrt(N), (s, t)
    C = mm["covariance"].to_numpy()
    assert np.allclose(C, C.T) and np.all(np.linalg.eigvalsh(C) > 0)


def test_marginal_coefs_of_both_parts():
    fit = fitted("sim_zip_re_both")
    mc = fit.marginal_coefs()
    X = fit.frame.X[:, fit._x_kept]
    want = np.linalg.lstsq(X, np.log(fit.predict(type="response", marginal=True)), rcond=None)[0]
    np.testing.assert_allclose(mc["estimate"].to_numpy(), want, rtol=1e-10)
    se = mc["std_error"].to_numpy()
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    # the marginal intercept carries the zero part's (its SE is larger than the conditional one's:
    # the zero part's coefficients and SD enter); the slope is near the conditional one (x is not in
    # the zero part)
    assert se[0] > fit.coef_table()["std_error"].iloc[0]
    assert mc["estimate"].iloc[1] == pytest.approx(fit.fixef.iloc[1], rel=0.02)
    # its delta method against a direct Monte-Carlo-free check: the intercept's SE from the joint
    # covariance and a Jacobian by wider central differences
    from glmmkit.inference.marginal import _Mixture

    mix = _Mixture(fit)
    x0 = np.asarray(fit._x, dtype=float)
    J = np.empty(x0.shape[0])
    for j in range(x0.shape[0]):
        h = 1e-3 * max(1.0, abs(x0[j]))
        up, down = x0.copy(), x0.copy()
        up[j] += h
        down[j] -= h
        f = [np.linalg.lstsq(X, np.log(mix.means(x)), rcond=None)[0][0] for x in (up, down)]
        J[j] = (f[0] - f[1]) / (2 * h)
    assert se[0] == pytest.approx(float(np.sqrt(J @ fit._x_cov @ J)), rel=1e-3)
