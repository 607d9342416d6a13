"""Regenerate the simulated seed-example data sets bundled with glmmkit.

``python -m glmmkit.datasets._generate`` rewrites ``hospital.csv`` and
``exacerbations.csv`` and their entries in ``datasets.json``; the test suite
checks that the bundled files are exactly what this module produces, so the
data can always be traced back to the model that made them.

The other bundled sets are either public data (lme4's sleepstudy, cbpp, ...) or
were made by the reference suite's ``simulate.py`` (swine, spinal, counts_ri, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).with_name("data")


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def hospital(seed: int = 20261122) -> tuple[pd.DataFrame, dict]:
    """Seed 001's multicentre registry: postoperative infection of patients nested in hospitals.

    40 hospitals of very different sizes (8 to 300 operations) so that empirical-Bayes
    shrinkage is visible; a quarter of them are teaching hospitals.  Truth:
    logit P(infection) = -2.4 + 0.035 (age - 60) + 0.35 male - 0.45 teaching + u,
    u ~ N(0, 0.55^2).
    """
    rng = np.random.default_rng(seed)
    n_hosp = 40
    sizes = np.round(np.exp(rng.uniform(np.log(8), np.log(300), n_hosp))).astype(int)
    teaching = (rng.permutation(n_hosp) < n_hosp // 4).astype(int)
    u = rng.normal(0.0, 0.55, n_hosp)
    hosp = np.repeat(np.arange(n_hosp), sizes)
    n = hosp.size
    age = np.clip(np.round(rng.normal(62, 12, n)), 18, 95).astype(int)
    sex = np.where(rng.random(n) < 0.48, "male", "female")
    eta = -2.4 + 0.035 * (age - 60) + 0.35 * (sex == "male") - 0.45 * teaching[hosp] + u[hosp]
    infection = (rng.random(n) < _expit(eta)).astype(int)
    labels = np.array([f"H{j + 1:02d}" for j in range(n_hosp)])
    df = pd.DataFrame({
        "hospital": labels[hosp],
        "patient": [f"{labels[h]}-{k:03d}" for h, k in zip(hosp, _within_index(hosp))],
        "age": age,
        "sex": sex,
        "teaching": teaching[hosp],
        "infection": infection,
    })
    entry = {
        "file": "hospital.csv",
        "description": (f"Seed 001's multicentre registry (simulated): postoperative infection (0/1) of {n} patients "
                        f"nested in {n_hosp} hospitals of 8-300 operations; age, sex, teaching hospital."),
        "source": ("Simulated for glmmkit from seed 001's example (glmmkit.datasets._generate.hospital, seed "
                   f"{seed}): logit P(infection) = -2.4 + 0.035 (age - 60) + 0.35 male - 0.45 teaching + u, "
                   "u ~ N(0, 0.55^2)."),
        "origin": "glmmkit",
        "rows": int(n),
        "columns": [
            {"name": "hospital", "type": "factor", "levels": labels.tolist()},
            {"name": "patient", "type": "factor"},
            {"name": "age", "type": "integer"},
            {"name": "sex", "type": "factor", "levels": ["female", "male"]},
            {"name": "teaching", "type": "integer"},
            {"name": "infection", "type": "integer"},
        ],
    }
    return df, entry


def exacerbations(seed: int = 20261123) -> tuple[pd.DataFrame, dict]:
    """Seed 001's overdispersed counts: asthma exacerbations of patients followed in clinics.

    The counts are Poisson-lognormal (an observation-level random effect is the
    truth), so a plain Poisson GLMM is overdispersed and both the OLRE model and a
    negative binomial GLMM are candidate fixes.  Truth: log E[y | u, e] =
    log(years) + 0.1 - 0.5 treated + 0.25 smoker + u + e, u ~ N(0, 0.4^2) per
    clinic, e ~ N(0, 0.7^2) per patient.
    """
    rng = np.random.default_rng(seed)
    n_clinic, per = 30, 20
    clinic = np.repeat(np.arange(n_clinic), per)
    n = clinic.size
    u = rng.normal(0.0, 0.4, n_clinic)
    e = rng.normal(0.0, 0.7, n)
    treated = (rng.random(n) < 0.5).astype(int)
    smoker = np.where(rng.random(n) < 0.3, "yes", "no")
    years = np.round(rng.uniform(0.5, 2.0, n), 2)
    eta = np.log(years) + 0.1 - 0.5 * treated + 0.25 * (smoker == "yes") + u[clinic] + e
    count = rng.poisson(np.exp(eta))
    labels = np.array([f"C{j + 1:02d}" for j in range(n_clinic)])
    df = pd.DataFrame({
        "clinic": labels[clinic],
        "patient": [f"{labels[c]}-{k:02d}" for c, k in zip(clinic, _within_index(clinic))],
        "treated": treated,
        "smoker": smoker,
        "years": years,
        "count": count,
    })
    entry = {
        "file": "exacerbations.csv",
        "description": (f"Seed 001's overdispersed counts (simulated): asthma exacerbations of {n} patients in "
                        f"{n_clinic} clinics over 0.5-2 years of follow-up; for OLRE vs negative binomial."),
        "source": ("Simulated for glmmkit from seed 001's OLRE example (glmmkit.datasets._generate.exacerbations, "
                   f"seed {seed}): Poisson-lognormal, log E[y] = log(years) + 0.1 - 0.5 treated + 0.25 smoker + "
                   "u + e, u ~ N(0, 0.4^2) per clinic, e ~ N(0, 0.7^2) per patient."),
        "origin": "glmmkit",
        "rows": int(n),
        "columns": [
            {"name": "clinic", "type": "factor", "levels": labels.tolist()},
            {"name": "patient", "type": "factor"},
            {"name": "treated", "type": "integer"},
            {"name": "smoker", "type": "factor", "levels": ["no", "yes"]},
            {"name": "years", "type": "numeric"},
            {"name": "count", "type": "integer"},
        ],
    }
    return df, entry


def _within_index(groups: np.ndarray) -> np.ndarray:
    """1-based running index of each row within its (contiguous) group."""
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    counts = np.diff(np.r_[starts, groups.size])
    return np.arange(groups.size) - np.repeat(starts, counts) + 1


GENERATORS = {"hospital": hospital, "exacerbations": exacerbations}


def render(name: str) -> tuple[str, dict]:
    """CSV text and registry entry of one generated data set."""
    df, entry = GENERATORS[name]()
    return df.to_csv(index=False, lineterminator="\n"), entry


def main() -> None:
    registry_path = DATA_DIR / "datasets.json"
    registry = json.loads(registry_path.read_text())
    for name in GENERATORS:
        text, entry = render(name)
        (DATA_DIR / entry["file"]).write_text(text)
        registry[name] = entry
    registry_path.write_text(json.dumps(registry, indent=1) + "\n")


if __name__ == "__main__":
    main()
