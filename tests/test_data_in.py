"""Data as users bring it (issue 17, "Data in"): dotted column names from R, pandas' string dtypes,
numbers with units stored as text, and lme4's ``dummy()`` in random terms."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

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


# ---------------------------------------------------------------- string dtypes

pa = pytest.importorskip("pyarrow")
TEXT_DTYPES = ["str", "string", "string[pyarrow]", pd.ArrowDtype(pa.string()), object]


@pytest.fixture(scope="module")
def coded():
    """A covariate sex, a code of digits ("1", "2", "10") and a binary outcome as text."""
    rng = np.random.default_rng(17)
    n = 240
    df = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat([f"g{i:02d}" for i in range(24)], 10),
                       "sex": rng.choice(["female", "male"], n), "code": rng.choice(["1", "2", "10"], n)})
    u = rng.normal(size=24)[np.repeat(np.arange(24), 10)]
    df["y"] = 1 + df.x + 0.5 * (df.sex == "male") + 1.0 * (df.code == "10") + u + rng.normal(size=n)
    df["yb"] = np.where(rng.random(n) < 1 / (1 + np.exp(-(df.x + u))), "yes", "no")
    return df


def _as(df, dtype):
    return df.astype({c: dtype for c in ["g", "sex", "code", "yb"]})


@pytest.fixture(scope="module")
def categorical_fits(coded):
    cat = _as(coded, "category")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (gk.lmer("y ~ x + sex + code + (1 | g)", cat),
                gk.lmer("y ~ sex * poly(x, 2) + (1 | g)", cat),
                gk.glmer("yb ~ x + sex + (1 | g)", cat, family="binomial"))


@pytest.mark.parametrize("dtype", TEXT_DTYPES, ids=str)
def test_every_string_dtype_is_a_factor(coded, categorical_fits, dtype):
    df = _as(coded, dtype)
    ref, ref_poly, ref_bin = categorical_fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gk.SingularFitWarning)
        fit = gk.lmer("y ~ x + sex + code + (1 | g)", df)
        # a column of digits stays a factor, with R's levels (sorted as text: "1" < "10" < "2")
        assert list(fit.fixef.index) == ["(Intercept)", "x", "sexmale", "code10", "code2"]
        np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-8)
        assert fit.structure.terms[0].group == "g" and len(fit.ranef["g"]) == 24
        poly = gk.lmer("y ~ sex * poly(x, 2) + (1 | g)", df)  # formulaic's path
        np.testing.assert_allclose(poly.fixef.to_numpy(), ref_poly.fixef.to_numpy(), rtol=1e-8)
        np.testing.assert_allclose(poly.predict(df.head(7)), ref_poly.predict(_as(coded, "category").head(7)))
        np.testing.assert_allclose(fit.predict(df.head(7)), ref.predict(_as(coded, "category").head(7)))
        binary = gk.glmer("yb ~ x + sex + (1 | g)", df, family="binomial")  # "no" is failure, "yes" success
        np.testing.assert_allclose(binary.fixef.to_numpy(), ref_bin.fixef.to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["string", pd.ArrowDtype(pa.string())], ids=str)
def test_missing_text_values_drop_their_rows(coded, dtype):
    df = _as(coded, dtype)
    df.loc[df.index[:3], "sex"] = None
    fit = gk.lmer("y ~ x + sex + (1 | g)", df)
    assert fit.nobs == len(df) - 3
    assert list(fit.fixef.index) == ["(Intercept)", "x", "sexmale"]


@pytest.mark.parametrize("dtype", ["string", pd.ArrowDtype(pa.string())], ids=str)
def test_a_text_response_of_numbers_is_named(coded, dtype):
    df = coded.assign(yt=coded.y.round(2).astype(str).astype(dtype))
    with pytest.raises(gk.DataError, match=r"'yt'.*to_numeric"):
        gk.lmer("yt ~ x + (1 | g)", df)
    df = coded.assign(yt=np.where(coded.y > 1, "1", "0")).astype({"yt": dtype})
    with pytest.raises(gk.DataError, match=r"'yt'.*to_numeric"):
        gk.glmer("yt ~ x + (1 | g)", df, family="binomial")


@pytest.mark.parametrize("term", ["poly(x, 2)", "scale(x)", "center(x)"])
def test_columns_inside_stateful_transforms_are_counted(coded, term):
    """formulaic lists no column inside poly(), scale(), center(): their missing rows were not dropped."""
    df = coded.copy()
    df.loc[df.index[:4], "x"] = np.nan
    fit = gk.lmer(f"y ~ {term} + (1 | g)", df)
    assert fit.nobs == len(df) - 4
    with pytest.raises(gk.FormulaError, match=r"'z'"):
        gk.lmer(f"y ~ {term.replace('x', 'z')} + (1 | g)", df)


# ---------------------------------------------------------------- numbers with units


@pytest.fixture(scope="module")
def doses():
    rng = np.random.default_rng(3)
    n = 300
    dose = np.round(rng.uniform(0.5, 9.5, n), 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-(dose - 5)))).astype(int)
    return pd.DataFrame({"y": y, "dose": [f"{d} mg" for d in dose], "g": np.repeat(np.arange(30), 10)})


@pytest.mark.parametrize("dtype", ["str", "string", pd.ArrowDtype(pa.string()), object], ids=str)
def test_numbers_with_units_warn_with_column_count_and_example(doses, dtype):
    df = doses.astype({"dose": dtype})
    k = df["dose"].nunique()
    with pytest.warns(gk.DataWarning) as record:
        warnings.simplefilter("ignore", gk.SeparationWarning)
        warnings.simplefilter("ignore", gk.ConvergenceWarning)
        gk.glmer("y ~ dose + (1 | g)", df, family="binomial")
    msgs = [str(w.message) for w in record if issubclass(w.category, gk.DataWarning)]
    assert len(msgs) == 1
    msg = msgs[0]
    assert "'dose'" in msg and f"{k} distinct values" in msg and "'mg'" in msg
    assert re.search(r"e\.g\. '\d+\.\d mg'", msg) and "to_numeric" in msg
    # the suggested conversion works
    fixed = doses.assign(dose=pd.to_numeric(doses["dose"].str.extract(r"([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)",
                                                                       expand=False)))
    np.testing.assert_allclose(fixed["dose"].to_numpy(), [float(v.split()[0]) for v in doses["dose"]])


def test_the_separation_warning_of_a_many_level_factor_stays_short(doses):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit = gk.glmer("y ~ dose + (1 | g)", doses, family="binomial")
    sep = [str(w.message) for w in record if issubclass(w.category, gk.SeparationWarning)]
    assert sep and len(sep[0]) < 500 and "more columns" in sep[0]
    assert len(fit.separation.columns) > 10  # all still listed on the result


@pytest.mark.parametrize("values, warns", [
    (["5 mg", "10 mg", "20 mg"], False),       # a few whole doses: plausibly groups
    (["0.5 mg", "1.5 mg", "2 mg"], True),      # fractional: a measurement
    ([f"{d} cm" for d in range(10, 22)], True),  # many distinct values
    (["A1", "B2", "C3"], False),               # codes
    (["1", "2", "10"], False),                 # digits: a factor without a word, as R
    (["0.25", "1.5", "2"], True),              # numbers as text, fractional
])
def test_which_text_columns_warn(values, warns):
    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame({"y": rng.normal(size=n), "x": np.resize(values, n), "g": np.repeat(np.arange(12), 10)})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gk.lmer("y ~ x + (1 | g)", df)
    data_warnings = [w for w in record if issubclass(w.category, gk.DataWarning)]
    assert bool(data_warnings) == warns
    if warns:
        assert "'x'" in str(data_warnings[0].message)


# ---------------------------------------------------------------- lme4's dummy()

DUMMY_CASES = json.loads((Path(__file__).parent / "data" / "dummy_cases.json").read_text())


@pytest.fixture(scope="module")
def insteval400():
    d = gk.datasets.load("InstEval")
    return d[d["s"].astype(str).astype(int) <= DUMMY_CASES[0]["max_student"]]


@pytest.mark.parametrize("case", DUMMY_CASES, ids=lambda c: c["id"])
def test_dummy_in_random_terms_matches_lme4(insteval400, case):
    """MixedModels.jl's InstEval term (0 + dummy(service, "1") | d), on InstEval's first 400 students
    (tests/data/r/make_dummy.R)."""
    fit = gk.lmer(case["formula"], insteval400, reml=case["reml"])
    assert fit.nobs == case["nobs"]
    assert fit.loglik == pytest.approx(case["logLik"], abs=1e-4)
    assert fit.sigma == pytest.approx(case["sigma"], rel=1e-4)
    for name, value in case["fixed"].items():
        assert fit.fixef[name] == pytest.approx(value, abs=1e-5)
    vc = fit.varcorr
    for row in case["varcorr"]:
        if row["group"] == "Residual":
            continue
        group = row["group"].split(".")[0]  # lme4's d.1: the second term on d
        got = vc[(vc["group"] == group) & (vc["term1"] == row["var1"])]["sdcor"]
        assert len(got) == 1, (row, vc)
        assert float(got.iloc[0]) == pytest.approx(row["sdcor"], rel=1e-3)


@pytest.fixture(scope="module")
def three_levels():
    rng = np.random.default_rng(5)
    n = 600
    df = pd.DataFrame({"g": np.repeat(np.arange(60), 10), "f": rng.choice(["a", "b", "c"], n),
                       "s": rng.integers(0, 2, n)})
    df["y"] = rng.normal(size=n) + rng.normal(size=60)[df.g] * (df.f == "b")
    return df


def test_dummy_columns_and_names_as_lme4(three_levels):
    df = three_levels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = gk.lmer('y ~ 1 + (0 + dummy(f, "b") | g)', df)
        default = gk.lmer("y ~ 1 + (0 + dummy(f) | g)", df)  # levelsToKeep omitted: all but the first
        two = gk.lmer('y ~ 1 + (0 + dummy(f, c("a", "c")) | g)', df)
        numeric = gk.lmer("y ~ 1 + (0 + dummy(s, '1') | g)", df)  # a 0/1 number column, level by label
        manual = gk.lmer("y ~ 1 + (0 + fb | g)", df.assign(fb=(df.f == "b").astype(float)))
    assert one.structure.terms[0].names == ['dummy(f, "b")']
    assert default.structure.terms[0].names == ["dummy(f)b", "dummy(f)c"]
    assert two.structure.terms[0].names == ['dummy(f, c("a", "c"))a', 'dummy(f, c("a", "c"))c']
    assert numeric.structure.terms[0].names == ['dummy(s, "1")']
    assert one.loglik == pytest.approx(manual.loglik, abs=1e-8)
    np.testing.assert_allclose(one.theta.to_numpy(), manual.theta.to_numpy(), rtol=1e-6)
    # new data holding other levels only: the training levels are kept (rows of other levels are 0)
    new = df[df.f != "b"].head(4)
    np.testing.assert_allclose(one.predict(new), manual.predict(new.assign(fb=0.0)), rtol=1e-10)
    np.testing.assert_allclose(default.predict(df.head(3)), default.predict(df).iloc[:3] if hasattr(
        default.predict(df), "iloc") else default.predict(df)[:3], rtol=1e-10)


def test_dummy_of_a_level_that_does_not_exist_is_named(three_levels):
    with pytest.raises(gk.FormulaError, match=r"dummy\(\): 'B' is not a level.*'a', 'b', 'c'"):
        gk.lmer('y ~ 1 + (0 + dummy(f, "B") | g)', three_levels)
