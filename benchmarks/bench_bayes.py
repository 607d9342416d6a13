#!/usr/bin/env python3
"""Issue 15's benchmark: bulk-ESS per second of glmmkit's Bayesian fits against rstanarm, in one run.

Cases (the issue's three, and the NB of the same data): cbpp (binomial), sleepstudy (``stan_lmer``,
correlated random slope), ``y ~ x1 + (1 | g)`` on counts_ri (Poisson, and NB2).  Both sides use the
default priors, 4 chains x 1000 draws after 1000 warm-up, chains one after another for rstanarm
(``cores = 1``: this machine has 2 cores) and glmmkit's default parallel chains.

ESS/s = the smallest bulk ESS over the reported parameters / the wall time of the whole fitting call
(``stan_*`` inside R, ``gk.bglmer`` / ``gk.blmer`` here: model building, compilation from cache,
sampling and the summary).  A first glmmkit call warms numba's cache, as rstanarm's models are
compiled when it is installed.

Usage::

    python benchmarks/bench_bayes.py [--out benchmarks/results/issue15_bayes.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glmmkit as gk  # noqa: E402

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial",
             'stan_glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = d, family = binomial()'),
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian",
                   "stan_lmer(Reaction ~ Days + (Days | Subject), data = d"),
    "counts_poisson": ("y ~ x1 + (1 | g)", "counts_ri", "poisson",
                       "stan_glmer(y ~ x1 + (1 | g), data = d, family = poisson()"),
    "counts_nb": ("y ~ x1 + (1 | g)", "counts_ri", "negative_binomial",
                  "stan_glmer.nb(y ~ x1 + (1 | g), data = d"),
}

R_SCRIPT = r"""
suppressPackageStartupMessages({library(rstanarm); library(posterior); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1], stringsAsFactors = TRUE)
for (f in c("herd", "period", "Subject", "g")) if (f %in% names(d)) d[[f]] <- factor(d[[f]])
t0 <- proc.time()[["elapsed"]]
fit <- eval(parse(text = paste0(args[2], ", chains = 4, iter = 2000, warmup = 1000, cores = 1, seed = 1, refresh = 0)")))
wall <- proc.time()[["elapsed"]] - t0
dr <- as_draws_array(as.array(fit))
keep <- !grepl("^b\\[|^Sigma\\[|^log-posterior|^mean_PPD", dimnames(dr)$variable)
ess <- apply(dr[, , keep, drop = FALSE], 3, ess_bulk)
cat(toJSON(list(wall = wall, min_ess = min(ess)), auto_unbox = TRUE, digits = NA))
"""


def ours(name):
    formula, data, family, _ = CASES[name]
    d = gk.datasets.load(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        if family == "gaussian":
            fit = gk.blmer(formula, d, seed=1)
        else:
            fit = gk.bglmer(formula, d, family=family, seed=1)
        wall = time.perf_counter() - t
    ess = float(fit.summary()["ess_bulk"].min())
    return wall, ess, fit.settings["sampler"]


def rstanarm(name):
    _, data, _, call = CASES[name]
    d = gk.datasets.load(data)
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        d.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), call], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["wall"], r["min_ess"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/issue15_bayes.md"))
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    have_r = shutil.which("Rscript") is not None
    ours("cbpp")  # numba's cache and nutpie's first start, as rstanarm's models are compiled at install
    rows = []
    for name in args.cases:
        w, e, engine = ours(name)
        rw, re_ = rstanarm(name) if have_r else (np.nan, np.nan)
        rows.append((name, engine, w, e, e / w, rw, re_, re_ / rw, (e / w) / (re_ / rw)))
        print(rows[-1], flush=True)
    lines = ["# Issue 15: Bayesian fits, bulk-ESS per second against rstanarm", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; 4 chains x 1000 draws after "
             "1000 warm-up on both sides, default priors; ESS = smallest bulk ESS over the parameters; time = "
             "the whole fitting call (rstanarm with cores = 1).", "",
             "| case | glmmkit engine | glmmkit (s) | ESS | ESS/s | rstanarm (s) | ESS | ESS/s | ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {en} | {w:.2f} | {e:.0f} | {es:.0f} | {rw:.2f} | {re_:.0f} | {res:.0f} | {ra:.1f}x |"
              for n, en, w, e, es, rw, re_, res, ra in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
