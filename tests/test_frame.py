"""Data entering the model: missing rows, dtypes of grouping columns, and clear errors."""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture
def sleep():
    return gk.datasets.load("sleepstudy")


def test_missing_rows_dropped_and_counted(sleep):
    df = sleep.copy()
    df.loc[[3, 50], "Reaction"] = np.nan
    df.loc[7, "Subject"] = np.nan
    df["unused"] = np.nan  # a column the model does not use never drops rows
    fit = gk.lmer(FORMULA, data=df)
    assert fit.nobs == 177 and fit.frame.n_dropped == 3
    assert "3 row(s) dropped" in str(fit.summary())
    ref = gk.lmer(FORMULA, data=df.dropna(subset=["Reaction", "Subject"]))
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)


def test_nullable_dtypes(sleep):
    df = sleep.copy()
    df["Days"] = df["Days"].astype("Int64")
    df.loc[5, "Days"] = pd.NA
    fit = gk.lmer(FORMULA, data=df)
    assert fit.nobs == 179


@pytest.mark.parametrize("conv", [lambda s: s.astype(int), lambda s: s.astype(str), lambda s: s.astype("category")])
def test_grouping_column_dtype_does_not_matter(sleep, conv):
    df = sleep.copy()
    df["Subject"] = conv(df["Subject"].astype(str).astype(int))
    fit = gk.lmer(FORMULA, data=df)
    assert fit.loglik == pytest.approx(-871.8141, abs=1e-4)
    assert sorted(fit.ranef["Subject"].index) == sorted(sleep["Subject"].astype(str).unique())


def test_unused_levels_ignored(sleep):
    df = sleep.copy()
    df["Subject"] = df["Subject"].cat.add_categories(["999"])
    fit = gk.lmer(FORMULA, data=df)
    assert fit.ngroups["Subject"] == 18


def test_backticked_column_with_space(sleep):
    df = sleep.rename(columns={"Days": "days of sleep"})
    fit = gk.lmer("Reaction ~ `days of sleep` + (1 | Subject)", data=df)
    assert "days of sleep" in fit.fixef.index


@pytest.mark.parametrize(
    "formula, fragment",
    [
        ("Reaction ~ Dayz + (1 | Subject)", "'Dayz' (did you mean 'Days'?)"),
        ("Reaction ~ Days + (Dayz | Subject)", "random-effects term"),
        ("Reaction ~ Days + (1 | Subjekt)", "grouping factor"),
        ("Reactio ~ Days + (1 | Subject)", "'Reactio'"),
        ("Reaction ~ Days", "no random-effects term"),
    ],
)
def test_unknown_names_are_named(sleep, formula, fragment):
    with pytest.raises(gk.FormulaError) as err:
        gk.lmer(formula, data=sleep)
    assert fragment in str(err.value)


def test_not_a_dataframe():
    with pytest.raises(gk.DataTypeError, match="DataFrame"):
        gk.lmer(FORMULA, data=[[1, 2, 3]])


def test_text_response(sleep):
    df = sleep.assign(Reaction=sleep["Reaction"].astype(str))
    with pytest.raises(gk.DataError, match="to_numeric"):
        gk.lmer(FORMULA, data=df)


def test_duplicate_columns(sleep):
    df = pd.concat([sleep, sleep[["Days"]]], axis=1)
    with pytest.raises(gk.DataError, match="duplicate"):
        gk.lmer(FORMULA, data=df)


def test_no_complete_rows(sleep):
    with pytest.raises(gk.DataError, match="no complete rows"):
        gk.lmer(FORMULA, data=sleep.assign(Days=np.nan))


def test_infinite_values(sleep):
    df = sleep.assign(Days=sleep["Days"].astype(float))
    df.loc[0, "Days"] = np.inf
    with pytest.raises(gk.DataError, match="infinite"):
        gk.lmer(FORMULA, data=df)


def test_weights_length_and_sign(sleep):
    with pytest.raises(gk.ArgumentError, match="length"):
        gk.lmer(FORMULA, data=sleep, weights=np.ones(3))
    with pytest.raises(gk.DataError, match="non-negative"):
        gk.lmer(FORMULA, data=sleep, weights=-np.ones(len(sleep)))


def test_one_level_grouping(sleep):
    with pytest.raises(gk.DataError, match="only 1 level"):
        gk.lmer("Reaction ~ Days + (1 | one)", data=sleep.assign(one="a"))


def test_one_level_per_row(sleep):
    with pytest.raises(gk.DataError, match="one level per row"):
        gk.lmer("Reaction ~ Days + (1 | row)", data=sleep.assign(row=np.arange(len(sleep))))


def test_rank_deficient_columns_dropped_with_warning(sleep):
    df = sleep.assign(Days2=2 * sleep["Days"], const=1.0)
    with pytest.warns(gk.RankDeficiencyWarning, match="Days2"):
        fit = gk.lmer("Reaction ~ Days + Days2 + const + (Days | Subject)", data=df)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
    assert fit.loglik == pytest.approx(-871.8141, abs=1e-4)
    assert fit.dropped_columns == ["Days2", "const"]


def test_polars_input(sleep):
    pl = pytest.importorskip("polars")
    fit = gk.lmer(FORMULA, data=pl.from_pandas(sleep))
    assert fit.loglik == pytest.approx(-871.8141, abs=1e-4)
