#!/usr/bin/env python3
"""Simulation study for the inference toolkit (not part of the test suite).

1. Coverage of 95 % Wald and profile intervals for β in a random-intercept logistic
   model: ``--reps`` data sets of ``--clusters`` clusters x ``--size`` rows,
   η = β0 + β1 x + b, b ~ N(0, σ²), x ~ N(0, 1) at the row level.  Coverage is the
   share of intervals that contain the true β, with its Monte Carlo standard error.
2. Attenuation of marginal (population-averaged) versus conditional effects as σ²
   grows (seed 001): the marginal slope from ``fit.marginal_coefs()`` on large data
   sets, its ratio to the conditional slope, and Zeger et al.'s approximation
   1/√(1 + c²σ²), c = 16√3/(15π).

Usage::

    python benchmarks/sim_inference.py [--reps 500] [--clusters 40] [--size 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import glmmkit as gk
from glmmkit.inference.profile import profile_confint


def simulate(rng, clusters, size, beta, sigma):
    g = np.repeat(np.arange(clusters), size)
    x = rng.normal(size=clusters * size)
    eta = beta[0] + beta[1] * x + sigma * rng.normal(size=clusters)[g]
    y = rng.binomial(1, 1.0 / (1.0 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def coverage(args):
    rng = np.random.default_rng(args.seed)
    beta = np.array([-0.5, 0.8])
    hits = {"wald": np.zeros(2), "profile": np.zeros(2)}
    done = failed = 0
    t0 = time.perf_counter()
    for _ in range(args.reps):
        df = simulate(rng, args.clusters, args.size, beta, args.sigma)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = gk.glmer("y ~ x + (1 | g)", df)
                wald = fit.confint("wald").loc[["(Intercept)", "x"]]
                prof = profile_confint(fit, which=["(Intercept)", "x"])
        except Exception:
            failed += 1
            continue
        hits["wald"] += ((wald["lower"] <= beta) & (beta <= wald["upper"])).to_numpy()
        hits["profile"] += ((prof["lower"] <= beta) & (beta <= prof["upper"])).to_numpy()
        done += 1
    print(f"Coverage of 95 % intervals, random-intercept logistic model: {done} data sets "
          f"({failed} failed), {args.clusters} clusters x {args.size} rows, beta = {beta.tolist()}, "
          f"sigma = {args.sigma}; {time.perf_counter() - t0:.0f} s")
    print(f"{'interval':10s} {'(Intercept)':>18s} {'x':>18s}")
    for kind, h in hits.items():
        cov = h / max(done, 1)
        mcse = np.sqrt(cov * (1 - cov) / max(done, 1))
        cells = [f"{100 * c:5.1f} % ± {100 * m:.1f}" for c, m in zip(cov, mcse)]
        print(f"{kind:10s} {cells[0]:>18s} {cells[1]:>18s}")


def attenuation(args):
    rng = np.random.default_rng(args.seed + 1)
    beta = np.array([-0.5, 0.8])
    c2 = (16 * np.sqrt(3) / (15 * np.pi)) ** 2
    print("\nAttenuation of the marginal slope (500 clusters x 20 rows per sigma^2)")
    print(f"{'sigma^2':>8s} {'conditional':>12s} {'marginal':>10s} {'ratio':>7s} {'1/sqrt(1+c^2 s^2)':>18s}")
    for s2 in (0.0, 0.25, 1.0, 2.0, 4.0, 8.0):
        df = simulate(rng, 500, 20, beta, np.sqrt(s2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gk.glmer("y ~ x + (1 | g)", df)
        m = fit.marginal_coefs()
        est_s2 = float(fit.varcorr["vcov"].iloc[0])
        print(f"{s2:8.2f} {fit.fixef['x']:12.3f} {m.loc['x', 'estimate']:10.3f} {m.loc['x', 'attenuation']:7.3f} "
              f"{1 / np.sqrt(1 + c2 * est_s2):18.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--clusters", type=int, default=40)
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    coverage(args)
    attenuation(args)


if __name__ == "__main__":
    main()
