"""Separation (issue: interpretation and inference): the linear-programming check of the fixed-effect
design finds complete and quasi-complete separation on constructed data, names the columns, warns
before a binomial fit, and finds none on the reference data sets."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk

DATA = Path(__file__).parent / "data"


def _data(kind, seed=3):
    rng = np.random.default_rng(seed)
    n = 240
    g = np.repeat(np.arange(24), 10)
    x = rng.normal(size=n)
    dose = np.tile(["low", "mid", "high"], n // 3)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.3 * x + 0.5 * rng.normal(size=24)[g]))))
    if kind == "complete":
        y = (x > 0.1).astype(int)
    elif kind == "quasi":
        y = np.where(dose == "high", 1, y)  # every 'high' row a success: quasi-complete
    return pd.DataFrame({"y": y, "x": x, "dose": pd.Categorical(dose, ["low", "mid", "high"]),
                         "g": [f"g{i}" for i in g]})


def test_complete_separation_is_detected_and_named():
    res = gk.check_separation("y ~ x + (1 | g)", _data("complete"))
    assert res.kind == "complete"
    assert "x" in res.columns and res.direction["x"] == 1


def test_quasi_complete_separation_warns_before_the_fit():
    df = _data("quasi")
    res = gk.check_separation("y ~ x + dose + (1 | g)", df)
    assert res.kind == "quasi-complete"
    assert "dosehigh" in res.columns and res.direction["dosehigh"] == 1
    with pytest.warns(gk.SeparationWarning, match="dosehigh"):
        fit = gk.glmer("y ~ x + dose + (1 | g)", df)
    assert fit.separation.kind == "quasi-complete"
    assert any("separation" in m for m in fit.optimizer_info.messages)


def test_overlapping_data_pass_without_warning():
    df = _data("none")
    assert gk.check_separation("y ~ x + dose + (1 | g)", df).kind == "none"
    with warnings.catch_warnings():
        warnings.simplefilter("error", gk.SeparationWarning)
        fit = gk.glmer("y ~ x + dose + (1 | g)", df)
    assert fit.separation is not None and not fit.separation.separated


def test_trials_rows_with_both_outcomes_constrain_both_ways():
    # proportions strictly between 0 and 1 in every row: never separated, whatever x
    df = pd.DataFrame({"k": [1, 2, 3, 1, 2, 4], "n": [4, 4, 4, 4, 4, 5], "x": [0, 1, 2, 3, 4, 5], "g": list("aabbcc")})
    assert gk.check_separation("cbind(k, n - k) ~ x + (1 | g)", df).kind == "none"


REF = [c for c in json.loads((DATA / "reference_cases.json").read_text()) if c["family"] == "binomial"]
EXTRA = json.loads((DATA / "extra_glmm_cases.json").read_text())


@pytest.mark.parametrize("formula, name", sorted({(c["formula"], c["dataset"]) for c in REF}))
def test_no_separation_in_reference_data(formula, name):
    assert gk.check_separation(formula, gk.datasets.load(name)).kind == "none"


def test_no_separation_in_held_out_glmm_data():
    nested = pd.read_csv(DATA / "glmm_nested.csv")
    crossed = pd.read_csv(DATA / "glmm_crossed.csv")
    crossed["resp"] = pd.Categorical(crossed["resp"], ["no", "yes"])
    for case in EXTRA:
        if case["data"] in ("nested", "crossed") and case["family"] == "binomial" and "/" not in case["formula"].split("~")[0]:
            df = nested if case["data"] == "nested" else crossed
            assert gk.check_separation(case["formula"], df).kind == "none", case["id"]
