"""Data as users bring it (issue 17, "Data in"): dotted column names from R, pandas' string dtypes,
numbers with units stored as text, and lme4's ``dummy()`` in random terms."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk


@pytest.fixture(scope="module")
def sleep():
    return gk.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return gk.lmer("Reaction ~ Days + (Days | Subject)", sleep)


# ---------------------------------------------------------------- dotted names


@pytest.mark.parametrize("formula", [
    "Reaction ~ `days.deprived` + (`days.deprived` | `subj.id`)",
    "Reaction ~ days.deprived + (days.deprived | subj.id)",
    "`reaction.ms` ~ `days.deprived` + (`days.deprived` | subj.id)",
])
def test_dotted_names_fit_as_the_plain_ones(sleep, sleep_fit, formula):
    df = sleep.rename(columns={"Days": "days.deprived", "Subject": "subj.id"})
    df["reaction.ms"] = df["Reaction"]
    fit = gk.lmer(formula, df)
    assert list(fit.fixef.index) == ["(Intercept)", "days.deprived"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), sleep_fit.fixef.to_numpy(), rtol=1e-6)
    assert fit.loglik == pytest.approx(sleep_fit.loglik, abs=1e-6)
    assert fit.structure.terms[0].group == "subj.id"


def test_dotted_names_in_calls_offsets_and_uncorrelated_terms(sleep):
    df = sleep.rename(columns={"Days": "days.deprived", "Subject": "subj.id"})
    plain = gk.lmer("Reaction ~ log(Days + 1) + offset(Days) + (0 + Days || Subject)", sleep)
    for formula in ["Reaction ~ log(`days.deprived` + 1) + offset(`days.deprived`) + (0 + `days.deprived` || subj.id)",
                    "Reaction ~ log(days.deprived + 1) + offset(days.deprived) + (0 + days.deprived || subj.id)"]:
        fit = gk.lmer(formula, df)
        assert list(fit.fixef.index) == ["(Intercept)", "log(days.deprived + 1)"]  # R's names, no backticks
        np.testing.assert_allclose(fit.fixef.to_numpy(), plain.fixef.to_numpy(), rtol=1e-6)
        assert fit.loglik == pytest.approx(plain.loglik, abs=1e-6)
    np.testing.assert_allclose(fit.predict(df.head(5)), plain.predict(sleep.head(5)), rtol=1e-8)


def test_a_missing_dotted_name_is_named_whole(sleep):
    df = sleep.rename(columns={"Days": "days.deprived"})
    with pytest.raises(gk.FormulaError, match=r"'days\.slept'.*did you mean 'days\.deprived'"):
        gk.lmer("Reaction ~ `days.slept` + (1 | Subject)", df)
    with pytest.raises(gk.FormulaError, match=r"'log\.t'"):
        gk.lmer("Reaction ~ 1 + offset(`log.t`) + (1 | Subject)", df)


def test_missing_values_of_a_dotted_column_drop_their_rows(sleep):
    df = sleep.rename(columns={"Days": "days.deprived"})
    df.loc[df.index[:5], "days.deprived"] = np.nan
    fit = gk.lmer("Reaction ~ `days.deprived` + (1 | Subject)", df)
    assert fit.nobs == len(df) - 5
