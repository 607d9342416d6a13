#!/usr/bin/env python3
"""Issue 14's benchmark: zero-inflated and hurdle GLMMs, glmmkit against glmmTMB in one run.

Cases:

* ``salamanders_zinb2``: ``count ~ spp + mined + (1 | site)``, ``ziformula = ~ spp + mined``, NB2
  (glmmTMB's vignette model; Salamanders as in tests/data/r_datasets);
* ``salamanders_hurdle``: the same with ``truncated_nbinom2``;
* ``salamanders_zinb2_zi_re``: the NB2 model with a random intercept per site in the zero part too
  (``ziformula = ~ spp + mined + (1 | site)``);
* ``zip_1e5``: 1e5 rows, 1,000 groups, ``y ~ x + (1 | g)`` with ``ziformula = ~ z``;
* ``zip_1e5_zi_re``: the issue's case: 1e5 rows, 1,000 groups, a random intercept in both parts
  (``ziformula = ~ z + (1 | g)``), simulated with one.

Each engine fits every case once to warm up, then ``--repeats`` times (median; R times the fitting
call inside R with ``system.time``), single-threaded.  Log-likelihood differences are glmmkit minus
glmmTMB; the evaluations are glmmkit's optimiser's (``fit.optimizer_info.n_evals``, the Hessian's not
counted).

Usage::

    python benchmarks/bench_zero_models.py [--repeats 3] [--cases a,b] [--out benchmarks/results/issue14_zero_models.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glmmkit as gk  # noqa: E402


def simulate_zip(n=100_000, q=1000, seed=14, zi_sd=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    b = rng.normal(scale=0.5, size=q)
    mu = np.exp(0.5 + 0.3 * x + b[g])
    b_zi = rng.normal(scale=zi_sd, size=q) if zi_sd else np.zeros(q)
    pi = 1.0 / (1.0 + np.exp(-(-1.0 + 0.8 * z + b_zi[g])))
    y = np.where(rng.random(n) < pi, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": pd.Categorical(g)})


def salamanders() -> pd.DataFrame:
    d = pd.read_csv(ROOT / "tests/data/r_datasets/Salamanders.csv")
    d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


CASES = {
    "salamanders_zinb2": ("count ~ spp + mined + (1 | site)", "~ spp + mined", "negative_binomial", "nbinom2"),
    "salamanders_hurdle": ("count ~ spp + mined + (1 | site)", "~ spp + mined", "truncated_nbinom2",
                           "truncated_nbinom2"),
    "salamanders_zinb2_zi_re": ("count ~ spp + mined + (1 | site)", "~ spp + mined + (1 | site)",
                                "negative_binomial", "nbinom2"),
    "zip_1e5": ("y ~ x + (1 | g)", "~ z", "poisson", "poisson"),
    "zip_1e5_zi_re": ("y ~ x + (1 | g)", "~ z + (1 | g)", "poisson", "poisson"),
}


def case_data(name) -> pd.DataFrame:
    if name == "zip_1e5":
        return simulate_zip()
    if name == "zip_1e5_zi_re":
        return simulate_zip(zi_sd=0.7)
    return salamanders()


def ours(name, data, repeats):
    formula, zi, fam, _ = CASES[name]
    gk.glmer(formula, data, family=fam, ziformula=zi)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fit = gk.glmer(formula, data, family=fam, ziformula=zi)
        times.append(time.perf_counter() - t)
    return statistics.median(times), fit.loglik, fit.optimizer_info.n_evals


R_SCRIPT = r"""
suppressPackageStartupMessages(library(glmmTMB))
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
if ("spp" %in% names(d)) { d$spp <- factor(d$spp, levels = c("GP","PR","DM","EC-A","EC-L","DES-L","DF"));
                           d$mined <- factor(d$mined, levels = c("yes","no")) }
if ("g" %in% names(d)) d$g <- factor(d$g)
fam <- get(args[4]); reps <- as.integer(args[5])
fit <- glmmTMB(as.formula(args[2]), ziformula = as.formula(args[3]), family = fam(), data = d)
tm <- replicate(reps, system.time(fit <- glmmTMB(as.formula(args[2]), ziformula = as.formula(args[3]),
                                               family = fam(), data = d))[["elapsed"]])
cat(jsonlite::toJSON(list(time = median(tm), loglik = as.numeric(logLik(fit))), digits = NA, auto_unbox = TRUE))
"""


def glmmtmb(name, data, repeats):
    formula, zi, _, rfam = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), formula, zi, rfam, str(repeats)],
                             capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["time"], r["loglik"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names (default all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/issue14_zero_models.md"))
    args = ap.parse_args()
    have_r = shutil.which("Rscript") is not None
    rows = []
    for name in args.cases.split(","):
        data = case_data(name)
        t_ours, ll_ours, evals = ours(name, data, args.repeats)
        t_r, ll_r = glmmtmb(name, data, args.repeats) if have_r else (np.nan, np.nan)
        rows.append((name, len(data), t_ours, evals, t_r, t_r / t_ours, ll_ours - ll_r))
        print(rows[-1], flush=True)
    lines = ["# Issue 14: zero-inflated and hurdle GLMMs against glmmTMB", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, single-threaded; median of "
             f"{args.repeats} fits after a warm-up; glmmTMB timed inside R.", "",
             "| case | rows | glmmkit (s) | L-BFGS-B evaluations | glmmTMB (s) | glmmTMB / glmmkit | logLik diff |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {r:,} | {a:.3f} | {e} | {b:.3f} | {c:.1f}x | {d:+.2e} |" for n, r, a, e, b, c, d in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
