#!/usr/bin/env python3
"""Time glmmkit's first fits in a fresh process: empty numba cache (cold) and filled cache (warm).

A new user, a notebook or a CI job meets the first fit of a process, which
pays ``import glmmkit``, scipy's and numba's imports and any JIT compilation.
Each scenario runs in its own ``python`` subprocess:

* **cold**: ``NUMBA_CACHE_DIR`` set to a new, empty temporary folder;
* **warm**: a second fresh process on the folder the cold run filled (the
  cost a user sees from the second session on).

Inside the child the script times ``import glmmkit`` and each fit
(``time.perf_counter``); the table also gives the child's whole wall time
(interpreter start to exit, as measured by the parent).  The headline row,
``three_poisson``, fits the three small Poisson models of issue 12 one after
the other in one process (the goal: under 5 s cold).

Scenarios (simulated data use a fixed seed: 2,000 rows, 50 groups, x ~ N(0, 1)):

``pois_uncorr``    ``y ~ x + (x || g)``, Poisson
``pois_corr``      ``y ~ x + (x | g)``, Poisson
``pois_agq9``      ``y ~ x + (1 | g)``, Poisson, nagq=9
``three_poisson``  the three above in one process
``cbpp``           ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
``sleepstudy``     ``lmer("Reaction ~ Days + (Days | Subject)")``
``insteval``       ``lmer("y ~ 1 + service*dept + (1|s) + (1|d)")`` (73,421 rows, crossed)
``pois_corr_1e5``  ``y ~ x + (x | g)``, Poisson, 100,000 rows, 2,000 groups (numba path; only when named)

Usage::

    python benchmarks/bench_coldstart.py [--repeats 3] [--scenarios three_poisson,cbpp]
                                         [--no-warm] [--json out.json] [--src DIR]

Times are medians over ``--repeats`` (default 3) fresh processes per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SCENARIOS = {
    "pois_uncorr": ["pois_uncorr"],
    "pois_corr": ["pois_corr"],
    "pois_agq9": ["pois_agq9"],
    "three_poisson": ["pois_uncorr", "pois_corr", "pois_agq9"],
    "cbpp": ["cbpp"],
    "sleepstudy": ["sleepstudy"],
    "insteval": ["insteval"],
    "pois_corr_1e5": ["pois_corr_1e5"],
}

#: scenarios run unless --scenarios names others (pois_corr_1e5 compiles the numba kernel: slow, cold)
DEFAULT_SCENARIOS = [s for s in SCENARIOS if s != "pois_corr_1e5"]

#: the child's code: import glmmkit (timed), then each fit (timed); prints one JSON line
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import glmmkit as gk
t_import = time.perf_counter() - t0
import numpy as np
import pandas as pd

def poisson_data(n=2000, q=50, seed=20261201):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.standard_normal(n)
    b0 = 0.5 * rng.standard_normal(q)
    b1 = 0.3 * rng.standard_normal(q)
    eta = 0.2 + 0.4 * x + b0[g] + b1[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": [f"g{i:02d}" for i in g]})

def fit(name):
    if name == "pois_uncorr":
        return gk.glmer("y ~ x + (x || g)", poisson_data(), family="poisson")
    if name == "pois_corr":
        return gk.glmer("y ~ x + (x | g)", poisson_data(), family="poisson")
    if name == "pois_corr_1e5":
        return gk.glmer("y ~ x + (x | g)", poisson_data(n=100_000, q=2_000), family="poisson")
    if name == "pois_agq9":
        return gk.glmer("y ~ x + (1 | g)", poisson_data(), family="poisson", nagq=9)
    if name == "cbpp":
        return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                        gk.datasets.load("cbpp"), family="binomial")
    if name == "sleepstudy":
        return gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    if name == "insteval":
        return gk.lmer("y ~ 1 + service*dept + (1|s) + (1|d)", gk.datasets.load("InstEval"))
    raise SystemExit(f"unknown fit {name}")

out = {"import": t_import, "fits": {}, "loglik": {}}
for name in sys.argv[1:]:
    t = time.perf_counter()
    f = fit(name)
    out["fits"][name] = time.perf_counter() - t
    out["loglik"][name] = float(f.loglik) if hasattr(f, "loglik") else None
out["numba_loaded"] = "numba" in sys.modules
print("RESULT " + json.dumps(out))
"""


def run_child(fits: list[str], cache_dir: str, src: Path) -> dict:
    """One fresh interpreter running ``fits`` with ``NUMBA_CACHE_DIR=cache_dir``; its timings."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *fits], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"child {fits} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    res["wall"] = wall
    res["fit_total"] = sum(res["fits"].values())
    return res


def run_scenario(name: str, repeats: int, warm: bool, src: Path) -> dict:
    """Cold (and warm) runs of one scenario: medians over ``repeats`` fresh processes."""
    fits = SCENARIOS[name]
    cold, hot = [], []
    for _ in range(repeats):
        cache = tempfile.mkdtemp(prefix="glmmkit-numba-")
        try:
            cold.append(run_child(fits, cache, src))
            if warm:
                hot.append(run_child(fits, cache, src))
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def med(runs, key):
        return statistics.median(r[key] for r in runs) if runs else float("nan")

    return {
        "scenario": name,
        "fits": fits,
        "cold": {"import": med(cold, "import"), "fit": med(cold, "fit_total"), "wall": med(cold, "wall"),
                 "per_fit": {f: statistics.median(r["fits"][f] for r in cold) for f in fits}},
        "warm": {"import": med(hot, "import"), "fit": med(hot, "fit_total"), "wall": med(hot, "wall")},
        "numba_loaded": cold[0]["numba_loaded"],
        "loglik": cold[0]["loglik"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per scenario and mode (default 3)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated subset of {', '.join(SCENARIOS)} (default all but pois_corr_1e5)")
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "src",
                        help="source folder holding the glmmkit package to time (default this checkout's src), "
                             "e.g. an exported older commit for before/after figures")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-cache runs")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeats} fresh processes; "
          "times in seconds (fit = the fits alone, wall = whole child process)")
    header = (f"{'scenario':<15}{'import':>8}{'cold fit':>10}{'cold wall':>11}{'warm fit':>10}{'warm wall':>11}"
              f"{'numba':>7}  per-fit cold")
    print(header)
    print("-" * len(header))
    results = []
    for name in names:
        r = run_scenario(name, args.repeats, not args.no_warm, args.src)
        results.append(r)
        per = ", ".join(f"{k} {v:.2f}" for k, v in r["cold"]["per_fit"].items()) if len(r["fits"]) > 1 else ""
        print(f"{name:<15}{r['cold']['import']:>8.2f}{r['cold']['fit']:>10.2f}{r['cold']['wall']:>11.2f}"
              f"{r['warm']['fit']:>10.2f}{r['warm']['wall']:>11.2f}{'yes' if r['numba_loaded'] else 'no':>7}  {per}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
