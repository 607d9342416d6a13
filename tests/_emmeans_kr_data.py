"""The emmeans / Kenward-Roger reference cases and their data (nlme's sets are exported into the JSON,
the rest are bundled), shared by test_emmeans.py and test_kenward_roger.py."""

import json
from pathlib import Path

import numpy as np
import pandas as pd

import glmmkit as gk

CASES = json.loads((Path(__file__).parent / "data" / "emmeans_kr_cases.json").read_text())


def load(name):
    """A data set of the cases: nlme's (exported into the JSON) or a bundled one."""
    if name in CASES["data"]:
        cols = {}
        for c in CASES["data"][name]:
            cols[c["name"]] = (pd.Categorical(c["values"], categories=c["levels"]) if c["type"] == "factor"
                               else np.asarray(c["values"], dtype=float))
        return pd.DataFrame(cols)
    return gk.datasets.load(name)
