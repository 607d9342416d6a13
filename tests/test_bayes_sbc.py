"""Simulation-based calibration (Talts et al. 2018) of the whole Bayesian pipeline on a small model:
parameters drawn from the priors, data simulated from them, the model fitted by ``blmer``; the rank of
each true value among its posterior draws is uniform when the posterior (priors, likelihood,
Jacobians, sampler) is right.  A rank histogram per parameter, checked by a chi-square test."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmkit as gk
from glmmkit.exceptions import ConvergenceWarning

pytest.importorskip("nutpie")  # 120 fits: fast on the compiled path only


def test_rank_histograms_are_uniform():
    rng = np.random.default_rng(20261202)
    n_groups, per = 6, 5
    g = np.repeat([f"g{i}" for i in range(n_groups)], per)
    x = rng.normal(size=n_groups * per)
    xc = x - x.mean()
    priors = {"(Intercept)": gk.priors.normal(0, 1), "x": gk.priors.normal(0, 1), "sigma": gk.priors.exponential(1),
              "g": gk.priors.decov()}
    names = ["(Intercept)", "x", "sigma", "sd_(Intercept)|g"]
    reps, thin = 120, 4
    ranks = np.empty((reps, len(names)), dtype=int)
    for r in range(reps):
        c, beta, sigma = rng.normal(), rng.normal(), rng.exponential(1.0)
        sd_g = sigma * rng.gamma(1.0, 1.0)  # decov(shape = 1, scale = 1), scaled by σ as rstanarm's
        b = rng.normal(0.0, sd_g, n_groups)
        y = c + beta * xc + np.repeat(b, per) + sigma * rng.normal(size=x.shape[0])
        truth = {"(Intercept)": c - beta * x.mean(), "x": beta, "sigma": sigma, "sd_(Intercept)|g": sd_g}
        d = pd.DataFrame({"y": y, "x": x, "g": g})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = gk.blmer("y ~ x + (1 | g)", d, priors=priors, chains=2, draws=200, tune=400, seed=r)
        draws = fit.draws.iloc[::thin]
        ranks[r] = [int(np.sum(draws[k].to_numpy() < truth[k])) for k in names]
    bins = 10
    n_draws = len(draws)
    for j, name in enumerate(names):
        counts = np.bincount(np.minimum(ranks[:, j] * bins // (n_draws + 1), bins - 1), minlength=bins)
        p = stats.chisquare(counts).pvalue
        assert p > 1e-3, (name, counts.tolist(), p)
