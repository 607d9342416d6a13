#!/usr/bin/env python3
"""Issue 13's benchmark: covariance structures, glmmkit against nlme and glmmTMB in one run.

Cases (data in tests/data/covstruct, the large one simulated here):

* ``orthodont_ar1``: ``distance ~ age + Sex + (1 | Subject)``, AR(1) residuals over visits
  (nlme ``lme(correlation = corAR1(form = ~ visit | Subject))``; glmmTMB: ``ar1(vf + 0 | Subject)``
  with ``dispformula = ~0``, its R-side idiom);
* ``bodyweight_car1``: ``weight ~ Time * Diet + (Time | Rat)``, continuous-time AR(1)
  (``corCAR1``; glmmTMB ``ou(times + 0 | Rat)``, ``dispformula = ~0``);
* ``ar1_1e5``: 1e5 rows in 10,000 clusters of 10 visits, random intercept and AR(1) residuals
  (ρ = 0.6), ``y ~ x + visit + (1 | id)``;
* G side, glmmTMB only (nlme has no such terms): ``machines_cs`` (``cs(0 + Machine | Worker)``),
  ``count_ar1`` (Poisson, ``ar1(0 + factor(visit) | id)``).

Every engine fits each case once to warm up, then ``--repeats`` times (median; R timed inside R
around the fitting call with ``system.time``), single-threaded.  REML for the LMMs (glmmTMB
``REML = TRUE``), Laplace for the Poisson model.  Log-likelihood differences are glmmkit minus peer.

Usage::

    python benchmarks/bench_covstruct.py [--repeats 3] [--large-repeats 1] [--skip-large-tmb]
                                         [--out benchmarks/results/issue13_covstruct.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "covstruct"
sys.path.insert(0, str(ROOT / "src"))

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"


def simulate_ar1(n_clusters=10000, n_visits=10, rho=0.6, seed=13) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_clusters * n_visits
    e = np.empty((n_clusters, n_visits))
    e[:, 0] = rng.standard_normal(n_clusters)
    for j in range(1, n_visits):  # the simulation's own loop over visits, not the fit's
        e[:, j] = rho * e[:, j - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(n_clusters)
    b = rng.normal(scale=0.8, size=n_clusters)
    x = rng.standard_normal(n)
    visit = np.tile(np.arange(1, n_visits + 1), n_clusters)
    cid = np.repeat(np.arange(n_clusters), n_visits)
    y = 1.0 + 0.5 * x + 0.1 * visit + b[cid] + 0.7 * e.ravel()
    return pd.DataFrame({"id": cid, "visit": visit, "x": np.round(x, 5), "y": np.round(y, 5)})


CASES = [
    {"name": "orthodont_ar1", "csv": "orthodont.csv", "reml": True, "family": "gaussian",
     "ours": dict(formula="distance ~ age + Sex + (1 | Subject)", residual="ar1(visit | Subject)"),
     "prep": "d$Subject <- factor(d$Subject); d$vf <- factor(d$visit)",
     "nlme": "lme(distance ~ age + Sex, random = ~ 1 | Subject, data = d, method = 'REML', "
             "correlation = corAR1(form = ~ visit | Subject))",
     "tmb": "glmmTMB(distance ~ age + Sex + (1 | Subject) + ar1(vf + 0 | Subject), data = d, REML = TRUE, "
            "dispformula = ~0)"},
    {"name": "bodyweight_car1", "csv": "bodyweight.csv", "reml": True, "family": "gaussian",
     "dtype": {"Diet": str, "Rat": str},
     "ours": dict(formula="weight ~ Time * Diet + (Time | Rat)", residual="exp(Time | Rat)"),
     "prep": "d$Rat <- factor(d$Rat); d$Diet <- factor(d$Diet); d$tt <- numFactor(d$Time)",
     "nlme": "lme(weight ~ Time * Diet, random = ~ Time | Rat, data = d, method = 'REML', "
             "correlation = corCAR1(form = ~ Time | Rat))",
     "tmb": "glmmTMB(weight ~ Time * Diet + (Time | Rat) + ou(tt + 0 | Rat), data = d, REML = TRUE, "
            "dispformula = ~0)"},
    {"name": "ar1_1e5", "csv": None, "reml": True, "family": "gaussian", "large": True,
     "ours": dict(formula="y ~ x + visit + (1 | id)", residual="ar1(visit | id)"),
     "prep": "d$id <- factor(d$id); d$vf <- factor(d$visit)",
     "nlme": "lme(y ~ x + visit, random = ~ 1 | id, data = d, method = 'REML', "
             "correlation = corAR1(form = ~ visit | id))",
     "tmb": "glmmTMB(y ~ x + visit + (1 | id) + ar1(vf + 0 | id), data = d, REML = TRUE, dispformula = ~0)"},
    {"name": "machines_cs", "csv": "machines.csv", "reml": True, "family": "gaussian", "dtype": {"Worker": str},
     "ours": dict(formula="score ~ Machine + cs(0 + Machine | Worker)"),
     "prep": "d$Worker <- factor(d$Worker); d$Machine <- factor(d$Machine)",
     "tmb": "glmmTMB(score ~ Machine + cs(0 + Machine | Worker), data = d, REML = TRUE)"},
    {"name": "count_ar1", "csv": "repeated.csv", "reml": False, "family": "poisson",
     "ours": dict(formula="count ~ x + ar1(0 + factor(visit) | id)"),
     "prep": "d$id <- factor(d$id); d$vf <- factor(d$visit)",
     "tmb": "glmmTMB(count ~ x + ar1(vf + 0 | id), data = d, family = poisson)"},
]


def load(case, cache: Path) -> tuple[pd.DataFrame, Path]:
    if case["csv"] is None:
        path = cache / f"{case['name']}.csv"
        if not path.exists():
            simulate_ar1().to_csv(path, index=False)
        return pd.read_csv(path), path
    path = DATA / case["csv"]
    return pd.read_csv(path, dtype=case.get("dtype")), path


def time_glmmkit(case, data, repeats):
    import glmmkit as gk

    ours = dict(case["ours"])
    formula = ours.pop("formula")

    def fit():
        if case["family"] == "gaussian":
            return gk.lmer(formula, data, reml=case["reml"], **ours)
        return gk.glmer(formula, data, family=case["family"], **ours)

    f = fit()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f = fit()
        times.append(time.perf_counter() - t)
    ll = -0.5 * f.reml_criterion if case["reml"] and case["family"] == "gaussian" else f.loglik
    return {"time": statistics.median(times), "loglik": ll, "converged": bool(f.converged),
            "n_evals": f.optimizer_info.n_evals}


def time_r(engine, case, csv: Path, repeats):
    call = case.get(engine)
    if call is None:
        return {"reason": "no such model in " + engine}
    lib = "nlme" if engine == "nlme" else "glmmTMB"
    script = f"""
suppressMessages({{library(nlme); library(glmmTMB)}})
d <- read.csv({json.dumps(str(csv))})
{case['prep']}
m <- suppressWarnings({call})
times <- numeric(0)
for (i in seq_len({repeats})) times <- c(times, system.time(m <- suppressWarnings({call}))[["elapsed"]])
conv <- if ("{lib}" == "glmmTMB") m$fit$convergence == 0 && isTRUE(m$sdr$pdHess) else TRUE
cat("RESULT", median(times), sprintf("%.10f", as.numeric(logLik(m))), conv, "\\n")
"""
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(["Rscript", fh.name], capture_output=True, text=True, timeout=3600,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return {"reason": type(exc).__name__}
    finally:
        os.unlink(fh.name)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            _, t, ll, conv = line.split()[:4]
            return {"time": float(t), "loglik": float(ll), "converged": conv == "TRUE"}
    return {"reason": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}


def fmt(t):
    return "n/a" if t is None else (f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--large-repeats", type=int, default=1)
    ap.add_argument("--skip-large-tmb", action="store_true", help="skip glmmTMB on ar1_1e5 (about 2.5 minutes)")
    ap.add_argument("--cases", default="")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import glmmkit

    cache = Path(tempfile.gettempdir()) / "glmmkit-bench-covstruct"
    cache.mkdir(exist_ok=True)
    wanted = set(filter(None, args.cases.split(",")))
    rows, records = [], []
    for case in CASES:
        if wanted and case["name"] not in wanted:
            continue
        data, csv = load(case, cache)
        reps = args.large_repeats if case.get("large") else args.repeats
        ours = time_glmmkit(case, data, reps)
        res = {"glmmkit": ours}
        for eng in ("nlme", "tmb"):
            if eng == "tmb" and case.get("large") and args.skip_large_tmb:
                res[eng] = {"reason": "skipped (--skip-large-tmb)"}
            else:
                res[eng] = time_r(eng, case, csv, reps)
        records.append({"case": case["name"], "rows": len(data), **res})
        cells = [case["name"], str(len(data)), fmt(ours["time"])]
        for eng in ("nlme", "tmb"):
            r = res[eng]
            if "time" in r:
                cells += [fmt(r["time"]), f"{r['time'] / ours['time']:.1f}x",
                          f"{ours['loglik'] - r['loglik']:+.2e}" + ("" if r["converged"] else " (not converged)")]
            else:
                cells += [f"n/a ({r['reason']})", "", ""]
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    header = ["case", "rows", "glmmkit", "nlme", "nlme/glmmkit", "dloglik vs nlme", "glmmTMB", "glmmTMB/glmmkit",
              "dloglik vs glmmTMB"]
    lines = [f"# Issue 13 benchmark: covariance structures (bench_covstruct.py, {time.strftime('%Y-%m-%d %H:%M')})", "",
             f"glmmkit {glmmkit.__version__} from {Path(glmmkit.__file__).parent}; Python {platform.python_version()}, "
             f"{os.cpu_count()} CPUs; threads pinned to 1; median of {args.repeats} fits after a warm-up "
             f"({args.large_repeats} for ar1_1e5); R timed inside R with system.time.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
