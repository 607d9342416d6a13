"""Bundled data sets, loaded with R's factor level order.

>>> import glmmkit as gk
>>> gk.datasets.names()[:3]
['sleepstudy', 'Dyestuff', 'Penicillin']
>>> gk.datasets.load("sleepstudy").shape
(180, 3)
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..exceptions import ArgumentError

__all__ = ["load", "names", "describe"]


@lru_cache(maxsize=1)
def _registry() -> dict:
    text = resources.files(__package__).joinpath("data", "datasets.json").read_text()
    return json.loads(text)


def names() -> list[str]:
    """Names of the bundled data sets.

    Returns
    -------
    list of str
        In the registry's order (``sleepstudy``, ...); each is accepted by :func:`load` and :func:`describe`.
    """
    return list(_registry())


def describe(name: str) -> dict:
    """Description, source/citation, size and column types of a bundled data set.

    Parameters
    ----------
    name : str
        One of :func:`names` (case-insensitive).

    Returns
    -------
    dict
        A copy of the data set's registry entry: its description, source, file, size and ``columns``
        (each with ``name``, ``type`` and, for factors, ``levels``).

    Raises
    ------
    ArgumentError
        An unknown name (the available ones are listed).
    """
    return dict(_entry(name))


def _entry(name: str) -> dict:
    reg = _registry()
    if name in reg:
        return reg[name]
    lower = {k.lower(): k for k in reg}
    if name.lower() in lower:
        return reg[lower[name.lower()]]
    raise ArgumentError(f"no bundled data set {name!r}; available: {', '.join(reg)}")


@lru_cache(maxsize=32)
def _load_cached(name: str) -> pd.DataFrame:
    info = _entry(name)
    with resources.files(__package__).joinpath("data", info["file"]).open("r") as fh:
        df = pd.read_csv(fh)
    for col in info["columns"]:
        if col["type"] in ("factor", "ordered"):
            values = df[col["name"]].astype(str)
            levels = col.get("levels") or sorted(values.unique())
            df[col["name"]] = pd.Categorical(values, categories=levels, ordered=col["type"] == "ordered")
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame (factors as pandas Categoricals in R's level order).

    Parameters
    ----------
    name : str
        One of :func:`names` (case-insensitive).

    Returns
    -------
    DataFrame
        A fresh copy; changing it does not change later loads.  ``attrs["name"]`` holds the data
        set's name, which a fit's summary prints as its ``Data:`` line (as lme4's).
    """
    out = _load_cached(name).copy()
    canonical = next((n for n in names() if n.lower() == str(name).lower()), str(name))
    out.attrs["name"] = canonical
    return out
