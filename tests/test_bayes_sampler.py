"""glmmkit.bayes.sampler: NUTS recovers known targets, is reproducible, reports divergences and is
calibrated (a short simulation-based calibration on a conjugate normal model)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from glmmkit.bayes import sampler as smp
from glmmkit.bayes.sampler import sample
from glmmkit.exceptions import ArgumentError

from _bayes_problems import CbppLogp, FunnelLogp, GaussianLogp, StdNormalLogp

ENGINES = ["numpy", pytest.param("nutpie", marks=pytest.mark.skipif(not smp.nutpie_available(),
                                                                     reason="nutpie not installed"))]


class _NumbaStdNormal(StdNormalLogp):
    """Standard normal with a numba log density too (for nutpie's compiled path)."""

    @property
    def numba_data(self):
        return (np.zeros(self.dim),)


def _numba_std_normal():
    numba = pytest.importorskip("numba")

    @numba.njit
    def f(x, mean):
        d = x - mean
        return -0.5 * np.dot(d, d), -d

    _NumbaStdNormal.numba_logp_and_grad = staticmethod(f)
    return _NumbaStdNormal(5)


def _start(chains, dim, seed=0):
    return np.random.default_rng(seed).normal(scale=0.5, size=(chains, dim))


@pytest.mark.parametrize("engine", ENGINES)
def test_standard_normal_mean_and_variance(engine):
    m = _numba_std_normal() if engine == "nutpie" else StdNormalLogp(5)
    res = sample(m, _start(4, 5), draws=500, tune=500, chains=4, seed=3, engine=engine)
    assert res.draws.shape == (4, 500, 5)
    x = res.draws.reshape(-1, 5)
    n_eff = x.shape[0] / 4  # conservative: NUTS on a normal gives ESS near or above the draw count
    assert np.all(np.abs(x.mean(0)) < 4.0 / np.sqrt(n_eff))
    assert np.all(np.abs(x.var(0) - 1.0) < 4.0 * np.sqrt(2.0 / n_eff))
    assert res.n_divergent == 0
    for key in ("diverging", "tree_depth", "n_steps", "step_size", "energy", "acceptance"):
        assert res.stats[key].shape == (4, 500)
    assert res.ebfmi.shape == (4,) and np.all(res.ebfmi > 0.3)
    assert 0.6 < res.stats["acceptance"].mean() < 0.97
    assert res.warmup["step_size"].shape == (4,)
    if engine == "nutpie":
        assert res.engine == "nutpie-numba"


def test_correlated_gaussian_mean_and_covariance():
    m = GaussianLogp(dim=8, rho=0.7)
    res = sample(m, m.mean + _start(4, 8), draws=600, tune=600, chains=4, seed=11, engine="numpy")
    x = res.draws.reshape(-1, 8)
    n_eff = x.shape[0] / 8  # correlation with a diagonal metric costs efficiency
    sd = np.sqrt(np.diag(m.cov))
    assert np.all(np.abs(x.mean(0) - m.mean) < 4.0 * sd / np.sqrt(n_eff))
    corr_est = np.corrcoef(x.T)
    corr = m.cov / np.outer(sd, sd)
    # sd of a correlation estimate is about (1 - r^2) / sqrt(n)
    assert np.all(np.abs(corr_est - corr) < 4.0 * (1 - corr**2) / np.sqrt(n_eff) + 1e-9)
    assert np.all(np.abs(x.std(0) / sd - 1.0) < 4.0 / np.sqrt(2 * n_eff))
    # the adapted diagonal mass matrix tracks the marginal variances
    assert np.all(np.abs(res.warmup["inv_mass"] / np.diag(m.cov) - 1.0) < 0.5)


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_same_draws(engine):
    m = _numba_std_normal() if engine == "nutpie" else StdNormalLogp(3 if engine == "numpy" else 5)
    x0 = _start(2, m.dim)
    a = sample(m, x0, draws=100, tune=100, chains=2, seed=42, engine=engine)
    b = sample(m, x0, draws=100, tune=100, chains=2, seed=42, engine=engine)
    c = sample(m, x0, draws=100, tune=100, chains=2, seed=43, engine=engine)
    np.testing.assert_array_equal(a.draws, b.draws)
    assert not np.array_equal(a.draws, c.draws)
    # the two chains are not copies of each other
    assert not np.array_equal(a.draws[0], a.draws[1])


def test_parallel_and_sequential_chains_agree():
    m = StdNormalLogp(3)
    x0 = _start(2, 3)
    a = sample(m, x0, draws=50, tune=50, chains=2, seed=5, n_jobs=2, engine="numpy")
    b = sample(m, x0, draws=50, tune=50, chains=2, seed=5, n_jobs=1, engine="numpy")
    np.testing.assert_array_equal(a.draws, b.draws)


def test_funnel_reports_divergences():
    m = FunnelLogp(10)
    res = sample(m, _start(2, 10), draws=1000, tune=500, chains=2, seed=1, engine="numpy")
    assert res.n_divergent > 0
    assert res.stats["diverging"].dtype == bool


@pytest.mark.skipif(not smp.nutpie_available(), reason="nutpie not installed")
def test_cbpp_numba_and_numpy_engines_agree():
    m = CbppLogp()
    x0 = _start(4, m.dim)
    a = sample(m, x0, draws=1000, tune=1000, chains=4, seed=2)
    assert a.engine == "nutpie-numba"
    b = sample(m, x0, draws=400, tune=400, chains=4, seed=2, engine="numpy")
    ma, mb = a.draws.reshape(-1, m.dim), b.draws.reshape(-1, m.dim)
    sd = ma.std(0)
    # beta and log sigma; a loose bound for the MC error of both runs (ESS of several hundred)
    assert np.all(np.abs(ma.mean(0)[:5] - mb.mean(0)[:5]) < 0.25 * sd[:5])
    # glmer's Laplace estimate of the intercept on cbpp is -1.40; the posterior mean is close
    assert abs(ma[:, 0].mean() + 1.40) < 0.1


def test_bad_input_is_named():
    m = StdNormalLogp(2)
    with pytest.raises(ArgumentError, match="x0s"):
        sample(m, np.zeros((3, 2)), chains=4, engine="numpy")
    with pytest.raises(ArgumentError, match="target_accept"):
        sample(m, np.ones((4, 2)), target_accept=1.5, engine="numpy")
    with pytest.raises(ArgumentError, match="draws"):
        sample(m, np.ones((4, 2)), draws=0, engine="numpy")
    with pytest.raises(ArgumentError, match="engine"):
        sample(m, np.ones((4, 2)), engine="stan")


def test_missing_nutpie_names_the_extra(monkeypatch):
    monkeypatch.setattr(smp, "nutpie_available", lambda: False)
    with pytest.raises(ImportError, match=r"glmmkit\[bayes\]"):
        sample(StdNormalLogp(2), np.ones((4, 2)), engine="nutpie")
    # auto falls back to the numpy NUTS
    res = sample(StdNormalLogp(2), np.ones((1, 2)), chains=1, draws=20, tune=20, seed=0)
    assert res.engine == "numpy"


class _ConjugateNormal:
    """mu ~ N(0, 1), y_i | mu ~ N(mu, 1): posterior N(sum(y) / (n + 1), 1 / (n + 1))."""

    def __init__(self, y):
        self.s = float(np.sum(y))
        self.n = len(y)

    def __call__(self, x):
        mu = x[0]
        return -0.5 * mu * mu * (self.n + 1) + mu * self.s, np.array([self.s - (self.n + 1) * mu])


def test_simulation_based_calibration():
    """Ranks of the true mu among posterior draws are uniform (chi-square on 10 bins)."""
    rng = np.random.default_rng(2024)
    n_rep, n_keep, thin = 200, 99, 2
    ranks = np.empty(n_rep, dtype=int)
    for r in range(n_rep):
        mu = rng.normal()
        y = rng.normal(mu, 1.0, size=4)
        res = sample(_ConjugateNormal(y), rng.normal(size=(1, 1)), draws=n_keep * thin, tune=150,
                     chains=1, seed=int(rng.integers(2**31)), n_jobs=1, engine="numpy")
        ranks[r] = int(np.sum(res.draws[0, ::thin, 0] < mu))
    counts = np.bincount(ranks * 10 // (n_keep + 1), minlength=10)
    p = stats.chisquare(counts).pvalue
    assert p > 0.001, (counts, p)
