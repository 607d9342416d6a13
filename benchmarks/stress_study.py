#!/usr/bin/env python3
"""Stress study (issue 7): glmmkit and lme4 on 200 simulated mixed models.

A deterministic generator (``numpy.random.default_rng(--seed)``) draws model
specifications across families (Gaussian REML and ML, binomial Bernoulli and
``cbind`` with logit/probit/cloglog links, Poisson, and a few Gamma(log) and
negative-binomial NB2 models), designs (random intercept ``(1|g)``, correlated
slopes ``(x|g)``, uncorrelated slopes ``(x||g)``, nested ``(1|a/b)``, crossed
``(1|a) + (1|b)``), sizes (about 50 to 5,000 rows, 5 to 200 groups) and
variance levels from exactly zero (singular truth) to large, with slope
correlations up to ±1 and small, badly scaled or rare-event data sets.

A second set (``--raw-n``, default 120; glmmkit issue 12) holds Poisson and
Bernoulli GLMMs on covariates as recorded: x of spread 30-3,000 around
0-2,000 and an age in years, with one grouping factor, two crossed factors, an
observation-level factor, or a correlated random slope on the raw x
(``y ~ x + (x | g)``).  The truth acts on the standardized x, so each model is
well posed; glmmkit and lme4 fit the raw columns.

Every data set is written as CSV to ``--cache-dir`` (default ``/tmp/stress``)
with a manifest; glmmkit fits each one in this process and R fits them all in
ONE ``Rscript`` session that loops over the manifest. The R anchor is lme4
(``lmer``/``glmer``); for Gamma and NB2 it is glmmTMB, whose Laplace
approximation (observed information, shape/size estimated jointly) is the one
glmmkit computes for those families -- lme4's ``glmer(family = Gamma)`` plugs in
a moment estimate of the dispersion, so its log-likelihood is not comparable.

Definitions
-----------
* glmmkit converged: the call raised no exception and ``fit.converged`` is true.
* lme4 "no error": the call returned a fit. lme4 "no warning": no error, no
  message in ``fit@optinfo$conv$lme4$messages`` other than the singular-fit
  note (a boundary fit is not a failure to converge), optimiser code 0 and no
  convergence-type warning (max|grad|, unidentifiable, Hessian, convergence
  code). glmmTMB: no error, ``fit$fit$convergence == 0``, ``fit$sdr$pdHess``
  and no warning.
* Log-likelihoods are compared at the same criterion: REML fits compare the
  REML log-likelihood (lme4's ``logLik()`` of a REML fit, i.e. −REMLcrit/2),
  ML and GLMM fits the (Laplace) log-likelihood. "ok" means
  glmmkit ≥ R − ``--tol`` (default 1e-4).

Timing: one fit per model and engine, threads pinned to 1 (the script
re-executes itself with the thread variables set, R inherits them); glmmkit
first warms up (JIT compilation) on one small model per family and design.

Usage::

    python benchmarks/stress_study.py [--n 200] [--seed 1] [--no-r]
                                      [--cache-dir /tmp/stress] [--out-dir benchmarks/results]
                                      [--raw-n 120] [--ids 3,17] [--reuse-r]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import _common
import _peers

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# Model specifications
# --------------------------------------------------------------------------

DESIGNS = ("ri", "slope_corr", "slope_uncorr", "nested", "crossed")

#: Random-effect part of the formula of each design.
RANDOM_TERMS = {
    "ri": "(1 | g)",
    "slope_corr": "(x | g)",
    "slope_uncorr": "(x || g)",
    "nested": "(1 | a/b)",
    "crossed": "(1 | a) + (1 | b)",
}

#: Share of the models per model kind (family, method/response); the counts
#: for ``--n`` are these shares rounded, the remainder going to the first kinds.
KIND_SHARES = (
    ("gaussian_reml", 0.20),
    ("gaussian_ml", 0.15),
    ("bernoulli", 0.225),
    ("cbind", 0.125),
    ("poisson", 0.225),
    ("gamma", 0.035),
    ("nbinom2", 0.04),
)

#: Variance levels. "zero": every random-effect SD is exactly 0 (singular
#: truth); "partial_zero": one component is 0 (the slope, or one factor of a
#: nested/crossed pair); the others scale all SDs.
VARIANCE_LEVELS = ("zero", "partial_zero", "small", "moderate", "large")

#: Random-effect SD per level on the linear-predictor scale (Gaussian: in
#: units of the residual SD, whose "large" level is 10x the residual).
SD_BY_LEVEL = {
    "gaussian": {"zero": 0.0, "small": 0.1, "moderate": 1.0, "large": 10.0},
    "glmm": {"zero": 0.0, "small": 0.1, "moderate": 0.7, "large": 2.5},
}

#: Correlations of (intercept, slope) effects, near ±1 included.
CORRELATIONS = (-0.999, -0.95, -0.5, 0.0, 0.3, 0.8, 0.95, 0.999)


#: A glmmkit fit flagged converged with max |gradient| of the deviance above this is
#: counted as "converged with a large gradient" (the converged fits' median is ~1e-5).
SUSPECT_GRADIENT = 10.0


@dataclasses.dataclass
class Spec:
    """One simulated model: what to simulate and how to fit it."""

    id: int
    kind: str            # gaussian_reml, gaussian_ml, bernoulli, cbind, poisson, gamma, nbinom2
    family: str          # gaussian, binomial, poisson, gamma, nbinom2
    link: str
    design: str
    rows: int
    groups: int          # levels of g, or of a (nested, crossed)
    groups2: int         # levels of b (per a when nested, in all when crossed); 0 otherwise
    level: str           # variance level
    sd: tuple            # random-effect SDs: (intercept, slope) or (a, b) or (g,)
    rho: float           # (intercept, slope) correlation of the truth
    beta: tuple          # (intercept, x, z) on the linear-predictor scale
    x_scale: float       # x is N(0, x_scale^2); the slope acts on x / x_scale
    resid_sd: float      # Gaussian residual SD
    extra: float         # cbind: max trials; gamma: shape; nbinom2: size; else 0
    tags: str            # "small", "rare", "scaled", ... for the reader
    seed: int
    scenario: str = "base"   # "base" (the 200 models above) or "raw" (covariates as recorded, below)
    x_loc: float = 0.0       # raw scenario: x = x_loc + x_spread * s with s ~ N(0, 1)
    x_spread: float = 1.0

    @property
    def response(self) -> str:
        return "cbind(y, m - y)" if self.kind == "cbind" else "y"

    @property
    def formula(self) -> str:
        if self.scenario == "raw":
            return RAW_FORMULAS[self.design]
        return f"{self.response} ~ x + z + {RANDOM_TERMS[self.design]}"

    @property
    def reml(self) -> bool:
        return self.kind == "gaussian_reml"

    @property
    def anchor(self) -> str:
        """R function that gives the reference fit."""
        if self.family == "gaussian":
            return "lmer"
        return "glmmTMB" if self.family in ("gamma", "nbinom2") else "glmer"

    @property
    def name(self) -> str:
        return f"m{self.id:03d}_{self.kind}_{self.design}"

    def describe(self) -> str:
        sd = ",".join(f"{s:g}" for s in self.sd)
        parts = [
            f"{self.kind}({self.link})", self.design, f"rows={self.rows}",
            f"groups={self.groups}" + (f"x{self.groups2}" if self.groups2 else ""),
            f"var={self.level} sd=({sd})",
        ]
        if self.design == "slope_corr" or (self.design == "slope_uncorr" and self.rho):
            parts.append(f"rho={self.rho:g}")
        if self.scenario == "raw":
            parts.append(f"x={self.x_loc:g}+{self.x_spread:g}*N(0,1)")
        if self.tags:
            parts.append(f"[{self.tags}]")
        return " ".join(parts)


def _kind_counts(n: int) -> list[tuple[str, int]]:
    counts = [(kind, int(share * n)) for kind, share in KIND_SHARES]
    short = n - sum(c for _, c in counts)
    for i in range(short):  # rounding remainder, spread from the first kind on
        kind, c = counts[i % len(counts)]
        counts[i % len(counts)] = (kind, c + 1)
    return counts


def _log_uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def make_specs(n: int, seed: int) -> list[Spec]:
    """Draw `n` model specifications, deterministically from `seed`.

    Designs and variance levels are assigned in rotation within each kind (so
    every kind meets every design and every level), the rest is random.
    """
    rng = np.random.default_rng(seed)
    specs: list[Spec] = []
    for kind, count in _kind_counts(n):
        family = {"gaussian_reml": "gaussian", "gaussian_ml": "gaussian", "bernoulli": "binomial",
                  "cbind": "binomial"}.get(kind, kind)
        glmm = family != "gaussian"
        # rotations offset per kind so that design and level do not move in lockstep
        design_offset, level_offset = rng.integers(len(DESIGNS)), rng.integers(len(VARIANCE_LEVELS))
        for j in range(count):
            design = DESIGNS[(j + design_offset) % len(DESIGNS)]
            level = VARIANCE_LEVELS[(j // len(DESIGNS) + j + level_offset) % len(VARIANCE_LEVELS)]
            tags = []
            # sizes: log-uniform 80..5000 rows; about one model in seven small (50-120 rows, few groups)
            small = rng.uniform() < 0.15
            if small:
                tags.append("small")
                rows = int(rng.integers(50, 121))
            else:
                rows = _log_uniform_int(rng, 80, 5000)
            if family in ("gamma", "nbinom2"):
                rows = min(rows, 2000)  # glmmTMB on these is the slowest R fit
            # groups: 5..200, at least ~2.5 rows per group (3 for slopes)
            per_group = 3.0 if design.startswith("slope") else 2.5
            max_groups = max(5, min(200, int(rows / per_group)))
            if design in ("ri", "slope_corr", "slope_uncorr"):
                groups = int(rng.integers(5, 9)) if small else _log_uniform_int(rng, 5, max_groups)
                groups2 = 0
            elif design == "nested":
                groups = int(rng.integers(3, 9)) if small else _log_uniform_int(rng, 5, max(5, min(40, max_groups // 3)))
                groups2 = int(rng.integers(2, 6))  # b levels within each a
            else:  # crossed
                groups = int(rng.integers(5, 9)) if small else _log_uniform_int(rng, 5, max(5, min(60, max_groups)))
                groups2 = int(rng.integers(4, 9)) if small else _log_uniform_int(rng, 4, max(4, min(40, max_groups)))
            scale = SD_BY_LEVEL["glmm" if glmm else "gaussian"]
            base_level = "moderate" if level == "partial_zero" else level
            s = scale[base_level] * float(rng.uniform(0.7, 1.4)) if base_level != "zero" else 0.0
            if design == "ri":
                sd = (s,) if level != "partial_zero" else (0.0,)
            else:
                s2 = s * float(rng.uniform(0.4, 1.0))
                sd = (s, 0.0) if level == "partial_zero" else (s, s2)
            if design in ("slope_corr", "slope_uncorr"):
                rho = float(CORRELATIONS[rng.integers(len(CORRELATIONS))])
                if design == "slope_uncorr" and rng.uniform() < 0.5:
                    rho = 0.0  # half of the || models have the model's own (zero) correlation
            else:
                rho = 0.0
            x_scale = 1.0
            if rng.uniform() < 0.1:
                x_scale = float(rng.choice([0.01, 100.0]))  # badly scaled covariate
                tags.append("scaled")
            link, extra, resid_sd = {"gaussian": "identity", "binomial": "logit", "poisson": "log",
                                     "gamma": "log", "nbinom2": "log"}[family], 0.0, 1.0
            if family == "gaussian":
                b0 = float(rng.choice([0.0, 5.0, 100.0]))
                if rng.uniform() < 0.1:
                    resid_sd = 0.01  # nearly noiseless: huge variance ratio
                    tags.append("tiny_resid")
            elif family == "binomial":
                u = rng.uniform()
                link = "logit" if u < 0.6 else ("probit" if u < 0.8 else "cloglog")
                b0 = float(rng.choice([-1.0, 0.0, 1.0]))
                if rng.uniform() < 0.15:
                    b0 = -3.5 if link != "probit" else -2.2  # rare events
                    tags.append("rare")
                if link == "probit":  # probit coefficients ~ logit / 1.7
                    sd = tuple(v / 1.7 for v in sd)
                if kind == "cbind":
                    extra = float(rng.choice([2, 5, 20, 50]))
            else:
                b0 = float(rng.choice([-1.0, 0.5, 1.5, 3.0]))
                if b0 == 3.0 and level == "large":
                    b0 = 1.0  # keep exp(eta) of large variances within double range comfortably
                if family == "gamma":
                    extra = float(rng.choice([0.5, 2.0, 10.0]))
                elif family == "nbinom2":
                    extra = float(rng.choice([0.5, 2.0, 10.0]))
            beta = (b0, float(rng.choice([0.0, 0.5, -1.0])), float(rng.choice([0.0, 0.3])))
            if link == "probit":
                beta = tuple(v / 1.7 for v in beta)
            specs.append(Spec(
                id=len(specs) + 1, kind=kind, family=family, link=link, design=design, rows=rows,
                groups=groups, groups2=groups2, level=level, sd=tuple(round(v, 4) for v in sd),
                rho=rho, beta=tuple(round(v, 4) for v in beta), x_scale=x_scale, resid_sd=resid_sd,
                extra=extra, tags=",".join(tags), seed=int(rng.integers(2**31 - 1)),
            ))
    return specs


# --------------------------------------------------------------------------
# Raw-covariate scenario set (glmmkit issue 12, defect 5)
# --------------------------------------------------------------------------

#: Designs of the raw-covariate set and their models: x is a covariate as recorded (an altitude, a
#: year, a baseline count: spread 30-3,000 around 0-2,000), age an age in whole years (18-80).
RAW_FORMULAS = {
    "ri": "y ~ x + age + z + (1 | g)",
    "crossed": "y ~ x + age + z + (1 | a) + (1 | b)",
    "olre": "y ~ x + age + z + (1 | g) + (1 | obs)",
    "slope_corr": "y ~ x + (x | g)",
}

#: models per (design, family) in the raw set's rotation: slopes, the hardest, get the most
RAW_DESIGN_SHARES = (("slope_corr", 0.3), ("ri", 0.25), ("crossed", 0.25), ("olre", 0.2))


def make_raw_specs(n: int, seed: int, first_id: int) -> list[Spec]:
    """Draw `n` Poisson and Bernoulli GLMMs on raw-scale covariates, deterministically from `seed`.

    The truth acts on the standardized covariates (so that every model is well posed); the fit
    sees them as recorded, which is the same model with other coefficients -- for ``(x | g)``
    with an intercept, centring and scaling x leave the model unchanged.
    """
    rng = np.random.default_rng(seed + 7919)  # its own stream: the base set is unchanged
    counts = [(d, int(round(share * n))) for d, share in RAW_DESIGN_SHARES]
    counts[0] = (counts[0][0], counts[0][1] + n - sum(c for _, c in counts))
    specs: list[Spec] = []
    for design, count in counts:
        for j in range(count):
            family = "poisson" if j % 2 == 0 else "binomial"
            kind = "poisson" if family == "poisson" else "bernoulli"
            level = ("small", "moderate", "large")[(j // 2) % 3]
            rows = _log_uniform_int(rng, 150, 3000)
            per_group = 3.0 if design == "slope_corr" else 2.5
            max_groups = max(5, min(200, int(rows / per_group)))
            if design == "crossed":
                groups = _log_uniform_int(rng, 5, max(5, min(60, max_groups)))
                groups2 = _log_uniform_int(rng, 4, max(4, min(40, max_groups)))
            else:
                groups, groups2 = _log_uniform_int(rng, 5, max_groups), 0
            s = SD_BY_LEVEL["glmm"][level] * float(rng.uniform(0.7, 1.4))
            sd = (s, s * float(rng.uniform(0.3, 1.0))) if design in ("slope_corr", "crossed", "olre") else (s,)
            rho = float(CORRELATIONS[rng.integers(len(CORRELATIONS))]) if design == "slope_corr" else 0.0
            x_loc = float(rng.choice([0.0, 50.0, 460.0, 1000.0, 2000.0]))
            x_spread = float(round(math.exp(rng.uniform(math.log(30.0), math.log(3000.0))), 1))
            b0 = float(rng.choice([-1.0, 0.0, 0.5, 1.0])) if family == "poisson" else float(rng.choice([-1.0, 0.0, 1.0]))
            beta = (b0, float(rng.choice([0.3, 0.5, -0.7])), float(rng.choice([0.0, 0.3])))
            link = "log" if family == "poisson" else "logit"
            specs.append(Spec(
                id=first_id + len(specs), kind=kind, family=family, link=link, design=design, rows=rows,
                groups=groups, groups2=groups2, level=level, sd=tuple(round(v, 4) for v in sd), rho=rho,
                beta=tuple(round(v, 4) for v in beta), x_scale=x_spread, resid_sd=1.0, extra=0.0, tags="raw",
                seed=int(rng.integers(2**31 - 1)), scenario="raw", x_loc=x_loc, x_spread=x_spread,
            ))
    return specs


def simulate_raw(spec: Spec) -> pd.DataFrame:
    """One data set of the raw-covariate set: y, x (as recorded), age (years), z and the factors."""
    rng = np.random.default_rng(spec.seed)
    n = spec.rows
    sx = rng.normal(size=n)
    x = np.round(spec.x_loc + spec.x_spread * sx, 1)
    sx = (x - spec.x_loc) / spec.x_spread  # the recorded (rounded) x is the one the truth acts on
    age = rng.integers(18, 81, size=n).astype(float)
    z = (rng.uniform(size=n) < 0.5).astype(float)
    b0, bx, bz = spec.beta
    slope = spec.design == "slope_corr"
    eta = b0 + bx * sx + (0.0 if slope else 0.2 * (age - 50.0) / 15.0 + bz * z)
    data: dict[str, Any] = {}
    if spec.design == "crossed":
        a = rng.integers(spec.groups, size=n)
        b = rng.integers(spec.groups2, size=n)
        a[: spec.groups] = np.arange(spec.groups)
        b[: spec.groups2] = np.arange(spec.groups2)
        data["a"], data["b"] = _labels("a", a, 3), _labels("b", b, 3)
        eta = eta + rng.normal(size=spec.groups)[a] * spec.sd[0] + rng.normal(size=spec.groups2)[b] * spec.sd[1]
    else:
        g = rng.integers(spec.groups, size=n)
        g[: spec.groups] = np.arange(spec.groups)
        data["g"] = _labels("g", g, 3)
        if slope:
            s0, s1 = spec.sd
            e0, e1 = rng.normal(size=(2, spec.groups))
            r = spec.rho
            u0, u1 = s0 * e0, s1 * (r * e0 + math.sqrt(max(0.0, 1.0 - r * r)) * e1)
            eta = eta + u0[g] + u1[g] * sx
        else:
            eta = eta + rng.normal(size=spec.groups)[g] * spec.sd[0]
        if spec.design == "olre":
            data["obs"] = _labels("o", np.arange(n), 5)
            eta = eta + rng.normal(size=n) * spec.sd[1]
    mu = _inverse_link(spec.link, eta)
    y = rng.poisson(mu) if spec.family == "poisson" else (rng.uniform(size=n) < mu).astype(int)
    columns = {"y": y, "x": x}
    if not slope:
        columns.update(age=age, z=z)
    return pd.DataFrame({**columns, **data})


# --------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------


def _labels(prefix: str, idx: np.ndarray, width: int) -> np.ndarray:
    # zero-padded labels: sorted strings are numeric order in Python and in R
    return np.char.add(prefix, np.char.zfill(idx.astype(str), width))


def _inverse_link(link: str, eta: np.ndarray) -> np.ndarray:
    if link == "logit":
        return 1.0 / (1.0 + np.exp(-eta))
    if link == "probit":
        from scipy.special import ndtr

        return ndtr(eta)
    if link == "cloglog":
        return -np.expm1(-np.exp(eta))
    if link == "log":
        return np.exp(np.minimum(eta, 20.0))  # 20: e^20 counts are stress enough
    return eta


def simulate(spec: Spec) -> pd.DataFrame:
    """Simulate one data set: columns y (and m for cbind), x, z and the factors."""
    if spec.scenario == "raw":
        return simulate_raw(spec)
    rng = np.random.default_rng(spec.seed)
    n = spec.rows
    x = rng.normal(size=n) * spec.x_scale
    xs = x / spec.x_scale  # the slope and its random part act on the standardized x
    z = (rng.uniform(size=n) < 0.5).astype(float)
    b0, bx, bz = spec.beta
    eta = b0 + bx * xs + bz * z
    data: dict[str, Any] = {}
    if spec.design in ("ri", "slope_corr", "slope_uncorr"):
        g = rng.integers(spec.groups, size=n)
        g[: spec.groups] = np.arange(spec.groups)  # every level present
        data["g"] = _labels("g", g, 3)
        if spec.design == "ri":
            eta = eta + rng.normal(size=spec.groups)[g] * spec.sd[0]
        else:
            s0, s1 = spec.sd
            e0, e1 = rng.normal(size=(2, spec.groups))
            r = spec.rho
            u0, u1 = s0 * e0, s1 * (r * e0 + math.sqrt(max(0.0, 1.0 - r * r)) * e1)
            eta = eta + u0[g] + u1[g] * xs
    elif spec.design == "nested":
        a = rng.integers(spec.groups, size=n)
        b = rng.integers(spec.groups2, size=n)
        a[: spec.groups] = np.arange(spec.groups)
        data["a"], data["b"] = _labels("a", a, 3), _labels("b", b, 2)  # b labels repeat across a
        ua = rng.normal(size=spec.groups) * spec.sd[0]
        ub = rng.normal(size=(spec.groups, spec.groups2)) * spec.sd[1]
        eta = eta + ua[a] + ub[a, b]
    else:  # crossed
        a = rng.integers(spec.groups, size=n)
        b = rng.integers(spec.groups2, size=n)
        a[: spec.groups] = np.arange(spec.groups)
        b[: spec.groups2] = np.arange(spec.groups2)
        data["a"], data["b"] = _labels("a", a, 3), _labels("b", b, 3)
        eta = eta + rng.normal(size=spec.groups)[a] * spec.sd[0] + rng.normal(size=spec.groups2)[b] * spec.sd[1]

    if spec.family == "gaussian":
        y = eta + rng.normal(size=n) * spec.resid_sd
    else:
        mu = _inverse_link(spec.link, eta)
        if spec.kind == "bernoulli":
            y = (rng.uniform(size=n) < mu).astype(int)
        elif spec.kind == "cbind":
            m = rng.integers(1, int(spec.extra) + 1, size=n)
            data["m"] = m
            y = rng.binomial(m, mu)
        elif spec.family == "poisson":
            y = rng.poisson(mu)
        elif spec.family == "gamma":
            y = rng.gamma(spec.extra, mu / spec.extra)
            y = np.maximum(y, 1e-300)  # a positive response even when shape 0.5 underflows
        else:  # nbinom2, Var = mu + mu^2 / size
            y = rng.negative_binomial(spec.extra, spec.extra / (spec.extra + mu))
    columns = {"y": y, **({"m": data.pop("m")} if "m" in data else {}), "x": x, "z": z, **data}
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------
# glmmkit
# --------------------------------------------------------------------------


class _FitTimeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _FitTimeout("fit took longer than the per-fit limit")


def glmmkit_call(spec: Spec) -> str:
    """The glmmkit call of a spec, as text (for reproducers)."""
    if spec.family == "gaussian":
        return f'glmmkit.lmer("{spec.formula}", data=df, reml={spec.reml})'
    family = {"nbinom2": "negative_binomial"}.get(spec.family, spec.family)
    return f'glmmkit.glmer("{spec.formula}", data=df, family="{family}", link="{spec.link}", nagq=1)'


def fit_glmmkit(glmmkit, spec: Spec, df: pd.DataFrame, limit_s: float) -> dict[str, Any]:
    """Fit one spec with glmmkit; every exception is caught and recorded."""
    out: dict[str, Any] = {"gk_error": "", "gk_converged": False, "gk_singular": None,
                           "gk_loglik": math.nan, "gk_time": math.nan, "gk_messages": "",
                           "gk_theta": "", "gk_beta": "", "gk_optimizer": "", "gk_grad": math.nan}
    family = {"nbinom2": "negative_binomial"}.get(spec.family, spec.family)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if spec.family == "gaussian":
                fit = glmmkit.lmer(spec.formula, data=df, reml=spec.reml)
            else:
                fit = glmmkit.glmer(spec.formula, data=df, family=family, link=spec.link, nagq=1)
        out["gk_time"] = time.perf_counter() - start
    except Exception as exc:  # any failure is a non-convergence, with its message
        out["gk_time"] = time.perf_counter() - start
        out["gk_error"] = f"{type(exc).__name__}: {exc}"
        out["gk_traceback"] = traceback.format_exc(limit=-3)
        return out
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    info = fit.optimizer_info
    out.update(
        gk_converged=bool(fit.converged), gk_singular=bool(fit.singular), gk_loglik=float(fit.loglik),
        gk_messages=" | ".join(sorted({str(w.message) for w in caught} | set(info.messages))),
        gk_theta=" ".join(f"{v:.6g}" for v in np.asarray(fit.theta)),
        gk_beta=" ".join(f"{v:.6g}" for v in np.asarray(fit.fixef)),
        gk_optimizer=f"{info.optimizer}: {info.message}; evals={info.n_evals}"
        + (f"; |grad|={info.gradient_norm:.2g}" if info.gradient_norm is not None else ""),
    )
    if info.gradient_norm is not None:  # GLMMs only; lmer fits do not record it
        out["gk_grad"] = float(info.gradient_norm)
    params = getattr(fit, "family_params", None)
    if params:
        out["gk_family_params"] = " ".join(f"{k}={v:.6g}" for k, v in params.items())
    return out


def warm_up(glmmkit) -> float:
    """Fit one small model per kind and design so JIT compilation is not timed."""
    start = time.perf_counter()
    for spec in make_specs(60, 12345):
        spec.rows, spec.groups = 120, min(spec.groups, 10)
        spec.groups2 = min(spec.groups2, 4) if spec.groups2 else 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_glmmkit(glmmkit, spec, simulate(spec), 120.0)
        except Exception:  # the warm-up only compiles; the study reports failures
            pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------
# R: one Rscript session for all models
# --------------------------------------------------------------------------

# The loop writes one JSON line per model as soon as it is fitted, so a crash
# or a timeout keeps what was done. Factor columns (g, a, b) are read as text;
# their zero-padded labels sort the same in R and in pandas.
_R_LOOP = r"""
suppressPackageStartupMessages({ library(lme4); library(jsonlite) })
has_tmb <- requireNamespace("glmmTMB", quietly = TRUE)
args <- commandArgs(trailingOnly = TRUE)
manifest <- fromJSON(args[1], simplifyDataFrame = FALSE)
out <- file(args[2], open = "w")
conv_pattern <- "converge|unidentifiable|Hessian|gradient|convergence code"
fit_one <- function(m, df) {
  fam <- switch(m$family,
    gaussian = NULL,
    binomial = binomial(link = m$link),
    poisson = poisson(link = m$link),
    gamma = Gamma(link = m$link),
    nbinom2 = NULL)
  f <- as.formula(m$formula)
  if (m$anchor == "lmer") lmer(f, data = df, REML = m$reml)
  else if (m$anchor == "glmer") glmer(f, data = df, family = fam, nAGQ = 1)
  else if (m$family == "gamma") glmmTMB::glmmTMB(f, data = df, family = Gamma(link = m$link))
  else glmmTMB::glmmTMB(f, data = df, family = glmmTMB::nbinom2)
}
# warm-up: the first fit of a session loads compiled code
invisible(suppressWarnings(suppressMessages(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))))
for (m in manifest) {
  header <- names(read.csv(m$path, nrows = 1))
  factors <- intersect(c("g", "a", "b", "obs"), header)
  df <- read.csv(m$path, colClasses = setNames(rep("character", length(factors)), factors))
  for (v in factors) df[[v]] <- factor(df[[v]])
  warns <- character(); msgs <- character(); err <- ""
  t0 <- proc.time()[["elapsed"]]
  fit <- if (m$anchor == "glmmTMB" && !has_tmb) { err <- "glmmTMB not installed"; NULL } else
    tryCatch(withCallingHandlers(fit_one(m, df),
      warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
      message = function(mm) { msgs <<- c(msgs, conditionMessage(mm)); invokeRestart("muffleMessage") }),
      error = function(e) { err <<- conditionMessage(e); NULL })
  elapsed <- proc.time()[["elapsed"]] - t0
  r <- list(id = m$id, time = elapsed, error = err, warnings = unique(gsub("\\s*\n\\s*", " ", warns)),
            messages = unique(gsub("\n", " ", msgs)))
  if (!is.null(fit)) {
    r$loglik <- as.numeric(logLik(fit))
    if (m$anchor == "glmmTMB") {
      # logLik() of a glmmTMB fit is NA when its Hessian is not positive definite; the
      # optimum's objective is the same negative log-likelihood and is always there
      r$loglik <- -fit$fit$objective
      r$opt_code <- fit$fit$convergence
      r$pdHess <- isTRUE(fit$sdr$pdHess)
      r$conv_messages <- character()
      # glmmTMB 1.1 has no isSingular(): a random-effect SD below 1e-4 counts as singular
      sds <- unlist(lapply(glmmTMB::VarCorr(fit)$cond, function(v) attr(v, "stddev")))
      r$singular <- any(sds < 1e-4)
      r$theta <- tryCatch(unname(fit$fit$par[names(fit$fit$par) == "theta"]), error = function(e) numeric())
      r$beta <- unname(glmmTMB::fixef(fit)$cond)
      r$family_param <- tryCatch(glmmTMB::sigma(fit), error = function(e) NA)
      r$conv <- r$opt_code == 0 && r$pdHess && length(warns) == 0
    } else {
      r$opt_code <- fit@optinfo$conv$opt
      r$conv_messages <- gsub("\\s*\n\\s*", " ", unlist(fit@optinfo$conv$lme4$messages))
      if (is.null(r$conv_messages)) r$conv_messages <- character()
      r$singular <- isSingular(fit)
      r$theta <- unname(getME(fit, "theta"))
      r$beta <- unname(fixef(fit))
      # a singular fit is reported among these messages too, but it is not a convergence failure
      not_singular <- r$conv_messages[!grepl("singular", r$conv_messages, fixed = TRUE)]
      r$conv <- length(not_singular) == 0 && identical(as.numeric(r$opt_code), 0) &&
        !any(grepl(conv_pattern, warns, ignore.case = TRUE))
    }
  }
  writeLines(toJSON(r, auto_unbox = TRUE, digits = NA, na = "null"), out)
  flush(out)
}
close(out)
"""


def run_r(manifest: list[dict], cache_dir: Path, timeout: float) -> tuple[dict[int, dict], str]:
    """Fit every model of the manifest in one Rscript session; id -> R record."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {}, "R not installed"
    manifest_path = cache_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=1))
    script = cache_dir / "stress_loop.R"
    script.write_text(_R_LOOP)
    results_path = cache_dir / "r_results.jsonl"
    note = ""
    try:
        proc = subprocess.run(
            [rscript, "--vanilla", str(script), str(manifest_path), str(results_path)],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **_peers.thread_env(1)},
        )
        if proc.returncode != 0:
            note = f"Rscript ended with code {proc.returncode}: {proc.stderr.strip()[-1500:]}"
    except subprocess.TimeoutExpired:
        note = f"Rscript timed out after {timeout:g} s; models not reached count as R not run"
    return read_r_results(results_path), note


def read_r_results(path: Path) -> dict[int, dict]:
    records = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[int(rec["id"])] = rec
    return records


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def merge(spec: Spec, gk: dict, r: dict | None, path: Path, tol: float) -> dict[str, Any]:
    """One row of the per-model table."""
    row: dict[str, Any] = {
        "id": spec.id, "name": spec.name, "scenario": spec.scenario, "kind": spec.kind, "family": spec.family, "link": spec.link,
        "design": spec.design, "level": spec.level, "rows": spec.rows, "groups": spec.groups,
        "groups2": spec.groups2, "sd": " ".join(map(str, spec.sd)), "rho": spec.rho,
        "beta": " ".join(map(str, spec.beta)), "x_scale": spec.x_scale, "resid_sd": spec.resid_sd,
        "extra": spec.extra, "x_loc": spec.x_loc, "x_spread": spec.x_spread, "tags": spec.tags, "formula": spec.formula, "anchor": spec.anchor,
        "criterion": "REML" if spec.reml else ("ML" if spec.family == "gaussian" else "Laplace"),
        "data": str(path), "call": glmmkit_call(spec),
    }
    row.update({k: v for k, v in gk.items() if k != "gk_traceback"})
    row["gk_ok"] = not gk["gk_error"] and gk["gk_converged"]
    # a fit flagged converged whose deviance gradient is still large (|grad| in deviance units)
    row["gk_suspect"] = bool(row["gk_ok"] and gk["gk_grad"] > SUSPECT_GRADIENT)
    if r is None:
        row.update(r_ran=False, r_no_error=False, r_conv=False, r_loglik=math.nan, r_time=math.nan,
                   r_singular=None, r_error="not run", r_warnings="", r_theta="", r_beta="")
    else:
        row.update(
            r_ran=True, r_no_error=not r.get("error"), r_conv=bool(r.get("conv", False)),
            r_loglik=float(r["loglik"]) if r.get("loglik") is not None else math.nan,
            r_time=float(r["time"]), r_singular=r.get("singular"), r_error=r.get("error", ""),
            r_warnings=" | ".join(_as_list(r.get("warnings")) + _as_list(r.get("conv_messages"))),
            r_theta=" ".join(f"{v:.6g}" for v in _as_list(r.get("theta"))),
            r_beta=" ".join(f"{v:.6g}" for v in _as_list(r.get("beta"))),
        )
    both = not row["gk_error"] and row["r_no_error"] and np.isfinite(row["gk_loglik"]) and np.isfinite(row["r_loglik"])
    row["both_fit"] = bool(both)
    row["diff"] = row["gk_loglik"] - row["r_loglik"] if both else math.nan
    row["ll_ok"] = bool(both and row["diff"] >= -tol)
    return row


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100.0 * k / n:.1f} %)" if n else "0/0"


def _group_row(label: str, rows: pd.DataFrame, have_r: bool) -> list[str]:
    n = len(rows)
    cells = [label, str(n), _pct(int(rows.gk_ok.sum()), n), str(int((rows.gk_singular == True).sum()))]  # noqa: E712
    if have_r:
        both = rows[rows.both_fit]
        cells += [
            _pct(int(rows.r_no_error.sum()), n), _pct(int(rows.r_conv.sum()), n),
            str(int((rows.r_singular == True).sum())),  # noqa: E712
            _pct(int(both.ll_ok.sum()), len(both)),
            str(int((both["diff"] > 1e-4).sum())),
        ]
    gk_t, r_t = rows.gk_time.dropna(), rows.r_time.dropna()
    cells += [_common.fmt_time(statistics.median(gk_t)) if len(gk_t) else "-", _common.fmt_time(gk_t.sum())]
    if have_r:
        cells += [_common.fmt_time(statistics.median(r_t)) if len(r_t) else "-", _common.fmt_time(r_t.sum())]
    return cells


def summary_table(df: pd.DataFrame, have_r: bool) -> str:
    header = ["group", "n", "glmmkit conv", "gk sing"]
    if have_r:
        header += ["R no error", "R no warning", "R sing", "gk ≥ R − tol", "gk > R + 1e-4"]
    header += ["gk median", "gk total"]
    if have_r:
        header += ["R median", "R total"]
    lines = [_group_row("all", df, have_r)]
    for col in ("scenario", "kind", "design", "level"):
        for value, rows in df.groupby(col, sort=False):
            lines.append(_group_row(f"{col}={value}", rows, have_r))
    if have_r:
        for value, rows in df.groupby("anchor", sort=False):
            lines.append(_group_row(f"R anchor={value}", rows, have_r))
    return _common.table(header, lines)


def shortfalls(df: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Models where glmmkit fails, does not converge, or is below R − tol."""
    worse = df.both_fit & (df["diff"] < -tol)
    return df[~df.gk_ok | worse]


def _detail(row: pd.Series) -> str:
    lines = [
        f"* {row['name']}: {row['call']}  (data {row['data']})",
        f"  glmmkit: loglik {row['gk_loglik']:.6f}, converged {row['gk_converged']}, singular {row['gk_singular']}, "
        f"theta [{row['gk_theta']}], beta [{row['gk_beta']}], {row['gk_optimizer']}"
        + (f", error {row['gk_error']}" if row["gk_error"] else "")
        + (f"; messages: {row['gk_messages']}" if row["gk_messages"] else ""),
    ]
    if row["r_ran"]:
        lines.append(
            f"  R ({row['anchor']}): loglik {row['r_loglik']:.6f}, no error {row['r_no_error']}, no warning {row['r_conv']}, "
            f"singular {row['r_singular']}, theta [{row['r_theta']}], beta [{row['r_beta']}]"
            + (f", error {row['r_error']}" if row["r_error"] else "")
            + (f"; warnings: {row['r_warnings']}" if row["r_warnings"] else "")
        )
        if row["both_fit"]:
            lines.append(f"  difference glmmkit − R: {row['diff']:+.3g}")
    return "\n".join(lines)


def report(df: pd.DataFrame, have_r: bool, r_note: str, tol: float, meta: dict[str, Any]) -> str:
    n = len(df)
    parts = [
        f"glmmkit stress study (issue 7), {meta['date']}: {n} models, seed {meta['seed']}, tol {tol:g}",
        f"Python {meta['python']}, numpy {meta['numpy']}, glmmkit {meta['glmmkit']}; "
        f"R anchor: {meta['r'] or 'absent (R not installed or --no-r)'}; threads pinned to 1",
        f"glmmkit warm-up (JIT, not in the totals): {meta['warm_up_s']:.1f} s",
        "",
        summary_table(df, have_r),
        "",
        "Columns: glmmkit conv = no exception and fit.converged; R no error = fit returned; R no warning = "
        "no error and no convergence warning (lme4: optinfo$conv$lme4$messages empty apart from the singular-fit note, optimiser code 0; "
        "glmmTMB: convergence 0, pdHess); sing = singular fits; gk ≥ R − tol among models both fitted; "
        "gk > R + 1e-4 = glmmkit's log-lik higher by more than 1e-4.",
    ]
    if r_note:
        parts += ["", f"R: {r_note}"]
    if have_r:
        both = df[df.both_fit]
        lme4_rows = df[df.anchor != "glmmTMB"]
        parts += [
            "",
            "Headline figures",
            f"- glmmkit converged: {int(df.gk_ok.sum())}/{n}; of these flagged converged with "
            f"max|gradient| > {SUSPECT_GRADIENT:g}: {int(df.gk_suspect.sum())}",
            f"- R reference (lme4; glmmTMB for Gamma/NB2) no error: {int(df.r_no_error.sum())}/{n}; "
            f"no convergence warning: {int(df.r_conv.sum())}/{n}",
            f"- lme4 alone ({len(lme4_rows)} models): glmmkit converged {int(lme4_rows.gk_ok.sum())}, "
            f"lme4 no error {int(lme4_rows.r_no_error.sum())}, no warning {int(lme4_rows.r_conv.sum())}",
            f"- glmmkit log-lik ≥ R − {tol:g}: {_pct(int(both.ll_ok.sum()), len(both))} of the models both fitted; "
            f"{_pct(int(df.ll_ok.sum()), n)} of all {n}",
            f"- glmmkit log-lik > R + 1e-4: {int((both['diff'] > 1e-4).sum())} models "
            f"(median gain {both.loc[both['diff'] > 1e-4, 'diff'].median() if (both['diff'] > 1e-4).any() else 0:.3g}, "
            f"largest difference {both['diff'].max():.3g})",
            f"- issue 7 criteria: glmmkit converged ≥ R: {df.gk_ok.sum() >= df.r_no_error.sum()} (no error), "
            f"{df.gk_ok.sum() >= df.r_conv.sum()} (no warning); log-lik share ≥ 99 %: "
            f"{bool(len(both)) and both.ll_ok.mean() >= 0.99} of those both fitted, {df.ll_ok.mean() >= 0.99} of all",
            f"- time: glmmkit {df.gk_time.sum():.1f} s in all (median {df.gk_time.median() * 1e3:.0f} ms), "
            f"R {df.r_time.sum():.1f} s in all (median {df.r_time.median() * 1e3:.0f} ms)",
        ]
    for scenario, label in (("base", "base set (issue 7)"), ("raw", "raw-covariate set (issue 12)")):
        sub = df[df.scenario == scenario]
        if not len(sub):
            continue
        line = f"- {label}: {len(sub)} models, glmmkit converged {int(sub.gk_ok.sum())}/{len(sub)}"
        if have_r:
            both_s = sub[sub.both_fit]
            worst = both_s["diff"].min() if len(both_s) else math.nan
            line += (f"; log-lik ≥ R − {tol:g}: {int(sub.ll_ok.sum())}/{len(sub)}; worst glmmkit − R "
                     f"{worst:+.3g}; shortfalls {len(shortfalls(sub, tol))}; lme4 no error {int(sub.r_no_error.sum())}, "
                     f"no warning {int(sub.r_conv.sum())}")
        parts += [line]
    short = shortfalls(df, tol)
    parts += ["", f"glmmkit shortfalls (fails, not converged, or log-lik < R − {tol:g}): {len(short)}"]
    parts += [_detail(row) for _, row in short.iterrows()] or ["(none)"]
    if have_r:
        better = df[df.both_fit & (df["diff"] > 1e-4)].sort_values("diff", ascending=False)
        parts += ["", f"glmmkit higher than R by more than 1e-4: {len(better)}"]
        parts += [
            f"* {row['name']}: {row['diff']:+.3g} (R {row['anchor']} no warning {row['r_conv']}, "
            f"R singular {row['r_singular']}, glmmkit singular {row['gk_singular']})"
            f"{'; R warnings: ' + row['r_warnings'] if row['r_warnings'] else ''}"
            for _, row in better.iterrows()
        ]
        r_fail = df[~df.r_no_error]
        if len(r_fail):
            parts += ["", f"R errors: {len(r_fail)}"]
            parts += [f"* {row['name']}: {row['r_error']}" for _, row in r_fail.iterrows()]
    return "\n".join(parts)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="number of models (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--raw-n", type=int, default=120,
                        help="models of the raw-covariate set (issue 12: covariates as recorded; default 120)")
    parser.add_argument("--no-r", action="store_true", help="glmmkit only (also automatic when R is absent)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/stress"),
                        help="data sets, manifest and R results (default /tmp/stress)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results",
                        help="stress_study.csv and stress_study.md (default benchmarks/results)")
    parser.add_argument("--ids", default=None, help="only these model ids (comma-separated), e.g. to rerun a few")
    parser.add_argument("--reuse-r", action="store_true",
                        help="reuse <cache-dir>/r_results.jsonl when the manifest is unchanged, instead of running R")
    parser.add_argument("--tol", type=float, default=1e-4, help="log-lik tolerance (default 1e-4)")
    parser.add_argument("--fit-timeout", type=float, default=300.0, help="seconds per glmmkit fit (default 300)")
    parser.add_argument("--r-timeout", type=float, default=3600.0, help="seconds for the whole R loop (default 3600)")
    args = parser.parse_args(argv)

    _common.pin_threads(1, __file__, sys.argv[1:] if argv is None else argv)
    _common.use_source_tree()
    import glmmkit

    specs = make_specs(args.n, args.seed) + make_raw_specs(args.raw_n, args.seed, args.n + 1)
    if args.ids:
        wanted = {int(i) for i in args.ids.split(",")}
        specs = [s for s in specs if s.id in wanted]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[int, Path] = {}
    for spec in specs:
        paths[spec.id] = args.cache_dir / f"{spec.name}.csv"
        simulate(spec).to_csv(paths[spec.id], index=False)
    manifest = [
        {"id": s.id, "path": str(paths[s.id]), "formula": s.formula, "anchor": s.anchor, "family": s.family,
         "link": s.link, "reml": s.reml}
        for s in specs
    ]
    (args.cache_dir / "specs.json").write_text(json.dumps([dataclasses.asdict(s) for s in specs], indent=1))
    print(f"{len(specs)} data sets in {args.cache_dir}", file=sys.stderr)

    warm = warm_up(glmmkit)
    gk_results = {}
    for k, spec in enumerate(specs, 1):
        df = _common._read_simulated(paths[spec.id])
        gk_results[spec.id] = fit_glmmkit(glmmkit, spec, df, args.fit_timeout)
        res = gk_results[spec.id]
        status = res["gk_error"][:60] if res["gk_error"] else f"loglik {res['gk_loglik']:.4f} conv {res['gk_converged']}"
        print(f"  [{k}/{len(specs)}] glmmkit {spec.name}: {status} ({res['gk_time']:.2f} s)", file=sys.stderr, flush=True)

    r_results: dict[int, dict] = {}
    r_note, have_r = "", False
    if not args.no_r:
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        stamp = args.cache_dir / "r_results.manifest-sha256"
        if args.reuse_r and stamp.is_file() and stamp.read_text() == digest:
            r_results = read_r_results(args.cache_dir / "r_results.jsonl")
            r_note = "results reused from an earlier run on the same manifest (--reuse-r)"
        else:
            print("R: fitting all models in one Rscript session ...", file=sys.stderr, flush=True)
            r_results, r_note = run_r(manifest, args.cache_dir, args.r_timeout)
            if not r_note:
                stamp.write_text(digest)
        have_r = bool(r_results)
        if not have_r and not r_note:
            r_note = "no R results"
    else:
        r_note = "not run (--no-r)"

    rows = [merge(s, gk_results[s.id], r_results.get(s.id) if have_r else None, paths[s.id], args.tol) for s in specs]
    df = pd.DataFrame(rows)
    r_info = _peers.Lme4Engine().info() if have_r else {}
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "seed": args.seed, "python": sys.version.split()[0],
        "numpy": np.__version__, "warm_up_s": warm,
        "glmmkit": f"{getattr(glmmkit, '__version__', '?')} from {Path(glmmkit.__file__).parent}",
        "r": f"{r_info.get('r', 'R')}, lme4 {r_info.get('lme4', '?')}" if have_r else "",
    }
    text = report(df, have_r, r_note, args.tol, meta)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if not args.ids else "_subset"
    df.to_csv(args.out_dir / f"stress_study{suffix}.csv", index=False)
    (args.out_dir / f"stress_study{suffix}.md").write_text("```\n" + text + "\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
