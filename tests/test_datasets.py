"""Bundled data sets: every one loads with its documented columns, and the simulated
seed examples are exactly what their generator makes."""

import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.datasets import _generate

REQUIRED = ["sleepstudy", "cbpp", "Dyestuff", "Penicillin", "Pastes", "spinal", "hospital", "swine",
            "exacerbations"]


def test_required_datasets_are_bundled():
    assert set(REQUIRED) <= set(gk.datasets.names())


@pytest.mark.parametrize("name", gk.datasets.names())
def test_every_dataset_loads_as_described(name):
    info = gk.datasets.describe(name)
    df = gk.datasets.load(name)
    assert len(df) == info["rows"]
    assert [c["name"] for c in info["columns"]] == list(df.columns)
    assert info["description"] and info["source"]
    for col in info["columns"]:
        if col["type"] in ("factor", "ordered"):
            assert isinstance(df[col["name"]].dtype, pd.CategoricalDtype)
            if "levels" in col:
                assert list(df[col["name"]].cat.categories) == col["levels"]
    assert not df.isna().any().any()


@pytest.mark.parametrize("name", sorted(_generate.GENERATORS))
def test_simulated_seed_data_match_their_generator(name):
    from importlib import resources

    text, entry = _generate.render(name)
    bundled = resources.files("glmmkit.datasets").joinpath("data", entry["file"]).read_text()
    assert bundled == text
    assert gk.datasets.describe(name) == entry


def test_spinal_reproduces_the_seed_paired_table():
    df = gk.datasets.load("spinal")
    wide = df.pivot(index="patient", columns="visit", values="y")
    table = pd.crosstab(wide[1], wide[2])
    # seed 000: 63 no pain at both visits, 35 pain at both, 16 and 12 discordant
    assert sorted(table.to_numpy().ravel().tolist()) == [12, 16, 35, 63]


def test_load_returns_a_copy_and_unknown_names_are_explained():
    a = gk.datasets.load("Dyestuff")
    a.loc[0, "Yield"] = -1
    assert gk.datasets.load("Dyestuff").loc[0, "Yield"] != -1
    with pytest.raises(gk.ArgumentError, match="available"):
        gk.datasets.load("sleepstudyy")
