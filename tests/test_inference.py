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
