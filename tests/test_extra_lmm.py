"""Further lme4 fits (tests/data/r/make_extra_lmm.R): weights, offsets, `||` and its expanded
form, interaction grouping, random slopes on nested factors, transformed responses, factor
slopes, no intercept, ML variants, a large crossed model (InstEval).

Rule (the issue's): log-likelihood >= lme4's - 1e-4, and then fixed effects within 2 % of
their SE and SDs/correlations within 1 % (1e-3 absolute floor for SDs at zero).
"""

import json
from pathlib import Path

import numpy as np
import pytest

import glmmkit as gk

CASES = json.loads((Path(__file__).parent / "data" / "extra_lmm_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_extra_lmm(case):
    df = gk.datasets.load(case["dataset"])
    kw = {}
    if case["weights"]:
        kw["weights"] = df.eval(case["weights"]).to_numpy(float)
    fit = gk.lmer(case["formula"], data=df, reml=case["reml"], **kw)
    assert fit.converged
    assert fit.loglik >= case["logLik"] - 1e-4
    assert fit.nobs == case["nobs"]
    assert fit.singular == case["singular"]
    for name, est in case["fixed"].items():
        assert abs(fit.fixef[name] - est) <= 0.02 * case["se"][name], name
        assert np.sqrt(fit.vcov.loc[name, name]) == pytest.approx(case["se"][name], rel=0.01), name
    ours = np.sort(fit.varcorr["sdcor"].to_numpy())
    ref = np.sort([v["sdcor"] for v in case["varcorr"]])
    np.testing.assert_allclose(ours, ref, rtol=0.01, atol=1e-3 * max(1.0, float(np.abs(ref).max()) * 1e-2))
    assert fit.sigma == pytest.approx(case["sigma"], rel=0.01)
    np.testing.assert_allclose(fit.predict(re_form="~0")[:5], case["predict_pop_first5"], rtol=1e-5)
    np.testing.assert_allclose(fit.fitted()[:5], case["fitted_first5"], rtol=1e-4)
