"""predict(se_fit=True) against glmmTMB's predict(se.fit = TRUE), and partial re_form against lme4.

References: tests/data/r/make_predict_se.R -> tests/data/predict_se_cases.json.
Tolerances: glmmTMB's SEs (theta_uncertainty=True) 1e-4 relative (observed ≤ 4e-5); the θ-fixed SEs
(lme4's H and W, Henderson's C⁻¹ for the LMM) 1e-4, 5e-4 for cbpp's conditional rows (lme4's θ differs
from the optimum by ~1e-4); fits 1e-5 relative; partial re_form 1e-6 relative.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError

CASES = json.loads((Path(__file__).parent / "data" / "predict_se_cases.json").read_text())
_FITS = {}


def _fit(c):
    if c["id"] not in _FITS:
        d = gk.datasets.load(c["data"])
        if c["family"] == "gaussian":
            _FITS[c["id"]] = gk.lmer(c["formula"], d, reml=False)
        else:
            _FITS[c["id"]] = gk.glmer(c["formula"], d, family=c["family"])
    return _FITS[c["id"]]


@pytest.mark.parametrize("case", CASES["se"], ids=lambda c: c["id"])
@pytest.mark.parametrize("key", ["population_link", "population_response", "conditional_link",
                                 "conditional_response"])
def test_se_fit_matches_glmmTMB(case, key):
    fit = _fit(case)
    d = gk.datasets.load(case["data"])
    nd = d.iloc[case["rows"]]
    lev, typ = key.split("_")
    out = fit.predict(nd, re_form="~0" if lev == "population" else None, type=typ, se_fit=True,
                      theta_uncertainty=True)
    assert list(out.columns) == ["fit", "se_fit"]
    assert out.index.equals(nd.index)
    ref = case["glmmTMB"][key]
    np.testing.assert_allclose(out["fit"], ref["fit"], rtol=1e-5)
    np.testing.assert_allclose(out["se_fit"], ref["se_fit"], rtol=1e-4)


@pytest.mark.parametrize("case", CASES["se"], ids=lambda c: c["id"])
@pytest.mark.parametrize("lev", ["population", "conditional"])
def test_se_fit_theta_fixed(case, lev):
    fit = _fit(case)
    nd = gk.datasets.load(case["data"]).iloc[case["rows"]]
    out = fit.predict(nd, re_form="~0" if lev == "population" else None, se_fit=True)
    rtol = 5e-4 if case["id"] == "cbpp_binomial" and lev == "conditional" else 1e-4
    np.testing.assert_allclose(out["se_fit"], case["fixed_theta"][lev], rtol=rtol)
    # θ's uncertainty only adds variance
    full = fit.predict(nd, re_form="~0" if lev == "population" else None, se_fit=True, theta_uncertainty=True)
    if lev == "conditional":
        assert np.all(full["se_fit"].to_numpy() >= out["se_fit"].to_numpy() * (1 - 1e-6))


def test_se_fit_default_rows_and_plain_predict_agree():
    fit = _fit(CASES["se"][1])
    out = fit.predict(se_fit=True)
    np.testing.assert_allclose(out["fit"], fit.predict(), rtol=1e-8)
    resp = fit.predict(se_fit=True, type="response")
    np.testing.assert_allclose(resp["fit"], fit.predict(type="response"), rtol=1e-8)


def test_reml_lmm_conditional_se_matches_glmmTMB():
    d = gk.datasets.load("sleepstudy")
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", d)
    ref = CASES["reml"]
    nd = d.iloc[ref["rows"]]
    a = fit.predict(nd, se_fit=True)
    b = fit.predict(nd, se_fit=True, theta_uncertainty=True)
    np.testing.assert_allclose(b["fit"], ref["fit"], rtol=1e-5)
    np.testing.assert_allclose(b["se_fit"], ref["se_fit"], rtol=1e-4)  # observed 5e-7
    assert np.all(b["se_fit"] >= a["se_fit"] * (1 - 1e-6))


@pytest.mark.parametrize("case", CASES["partial"], ids=lambda c: c["id"])
def test_partial_re_form_matches_lme4(case):
    d = gk.datasets.load(case["data"])
    fit = gk.lmer(case["formula"], d, reml=case["reml"])
    p = fit.predict(d.iloc[case["rows"]], re_form=case["re_form"])
    np.testing.assert_allclose(p, case["pred"], rtol=1e-6)
    np.testing.assert_allclose(fit.predict(re_form=case["re_form"])[case["rows"]], case["pred"], rtol=1e-6)


def test_partial_re_form_errors_and_simulate():
    d = gk.datasets.load("Penicillin")
    fit = gk.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    with pytest.raises(ArgumentError, match="not a random term"):
        fit.predict(re_form="~(1 | nothing)")
    both = fit.predict(re_form="~(1 | plate) + (1 | sample)")
    np.testing.assert_allclose(both, fit.predict())
    s = fit.simulate(200, seed=1, re_form="~(1 | plate)")
    assert s.shape == (len(d), 200)
    # the plate effects are held: per-plate means of the simulations track the predicted plate effects
    plate = fit.ranef["plate"]["(Intercept)"]
    means = pd.Series(s.mean(axis=1)).groupby(d["plate"].to_numpy()).mean()
    assert np.corrcoef(means.loc[plate.index], plate)[0, 1] > 0.9
    np.testing.assert_array_equal(s, fit.simulate(200, seed=1, re_form="~(1 | plate)"))


def test_simulate_as_frame_and_condvar_frame():
    d = gk.datasets.load("sleepstudy").copy()
    d.index = [f"r{i}" for i in range(len(d))]
    d.loc["r3", "Reaction"] = np.nan
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", d)
    s = fit.simulate(3, seed=2, as_frame=True)
    assert list(s.columns) == ["sim_1", "sim_2", "sim_3"] and "r3" not in s.index and len(s) == len(d) - 1
    np.testing.assert_array_equal(s.to_numpy(), fit.simulate(3, seed=2, as_frame=False))
    cv = fit.condvar_frame()
    assert list(cv.columns) == ["group", "level", "term1", "term2", "condvar"]
    assert len(cv) == 18 * 3
    row = cv[(cv.level == fit.ranef["Subject"].index[0]) & (cv.term1 == "Days") & (cv.term2 == "Days")]
    first = fit.ranef["Subject"].index[0]
    np.testing.assert_allclose(row["condvar"].iloc[0], fit.condvar["Subject"].loc[(first, "Days"), "Days"])
