"""MCMC diagnostics (glmmkit.bayes.diagnostics): theory, calibration and agreement with ArviZ.

The checks against known values need nothing but numpy/scipy: the ESS of AR(1) chains against
n (1 - rho) / (1 + rho), R-hat of iid against shifted or rescaled chains, the Monte Carlo standard
errors against the spread of estimates over independent replicates.  The comparisons with ArviZ
(the same estimators of Vehtari et al. 2021) run only where arviz is installed.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter

from glmmkit.bayes import diagnostics as D
from glmmkit.exceptions import ArgumentError, DataTypeError


def ar1(rng, rho, chains, n, params=1):
    """Stationary AR(1) chains with unit marginal variance, shape (chains, n, params)."""
    e = rng.standard_normal((chains, n + 200, params))
    return (lfilter([1.0], [1.0, -rho], e, axis=1) * np.sqrt(1 - rho ** 2))[:, 200:]


def sticky_tails(rng, chains=4, n=4000):
    """Normal draws whose scale switches rarely between 1 and 4: the bulk mixes, the tails do not."""
    regime = np.cumsum(rng.random((chains, n)) < 0.01, axis=1) % 2
    return rng.standard_normal((chains, n)) * np.where(regime == 1, 4.0, 1.0)


def synthetic_sets():
    rng = np.random.default_rng(20210101)
    return {
        "iid": rng.standard_normal((4, 1000, 3)),
        "ar1": ar1(rng, 0.8, 4, 1000, 3),
        "antithetic": ar1(rng, -0.6, 4, 1000, 2),
        "shifted": rng.standard_normal((4, 800, 2)) + np.array([0.0, 0.0, 0.0, 1.5])[:, None, None],
        "cauchy": rng.standard_cauchy((4, 1000, 2)),
        "sticky": sticky_tails(rng)[:, :, None],
        "odd_draws": rng.standard_normal((3, 501, 2)),
        "discrete": rng.poisson(1.5, (4, 600, 2)).astype(float),
    }


# ----------------------------------------------------------------------------------------------------
# known values, no ArviZ


@pytest.mark.parametrize("rho", [0.5, 0.9, -0.5])
def test_ar1_ess_matches_theory(rho):
    # 4 x 50000 draws: the estimate's relative SD is about 3 % at rho = 0.9
    x = ar1(np.random.default_rng(0), rho, 4, 50000)
    theory = 4 * 50000 * (1 - rho) / (1 + rho)
    assert D.ess_mean(x)[0] == pytest.approx(theory, rel=0.10)
    # a Gaussian chain is its own rank normalisation, near enough
    assert D.ess_bulk(x)[0] == pytest.approx(theory, rel=0.10)


def test_ess_of_iid_draws_is_the_number_of_draws_and_capped():
    x = np.random.default_rng(1).standard_normal((4, 2000, 2))
    np.testing.assert_allclose(D.ess_bulk(x), 8000, rtol=0.1)
    np.testing.assert_allclose(D.ess_tail(x), 8000, rtol=0.15)
    # a perfectly alternating chain: the estimate is capped at S log10(S)
    alt = np.tile([1.0, -1.0], (4, 500)) + 1e-3 * np.random.default_rng(2).standard_normal((4, 1000))
    s = alt.size
    assert D.ess_mean(alt) == pytest.approx(s * np.log10(s))


def test_rhat_near_one_for_iid_and_large_for_shifted_or_rescaled_chains():
    rng = np.random.default_rng(3)
    iid = rng.standard_normal((4, 1000, 5))
    assert np.all(D.rhat(iid) < 1.01) and np.all(D.rhat(iid) > 0.99)
    shifted = iid + np.array([0.0, 0.0, 0.0, 1.5])[:, None, None]
    assert np.all(D.rhat(shifted) > 1.1)
    assert np.all(D.split_rhat(shifted) > 1.1)
    # same location, one chain with three times the scale: only the folded (tail) R-hat sees it
    scaled = iid * np.array([1.0, 1.0, 1.0, 3.0])[:, None, None]
    assert np.all(D.rhat_bulk(scaled) < 1.02)
    assert np.all(D.rhat_tail(scaled) > 1.1)
    np.testing.assert_array_equal(D.rhat(scaled), np.fmax(D.rhat_bulk(scaled), D.rhat_tail(scaled)))
    # a trend within each chain: split R-hat catches non-stationarity that whole-chain R-hat misses
    trend = iid + np.linspace(-1.5, 1.5, 1000)[None, :, None]
    assert np.all(D.rhat(trend) > 1.1)


def test_rank_based_diagnostics_are_invariant_to_monotone_transforms():
    x = ar1(np.random.default_rng(4), 0.7, 4, 500, 3)
    y = np.exp(2 * x) + 5
    np.testing.assert_allclose(D.rhat(y), D.rhat(x), rtol=1e-12)
    np.testing.assert_allclose(D.ess_bulk(y), D.ess_bulk(x), rtol=1e-12)
    np.testing.assert_allclose(D.ess_tail(y), D.ess_tail(x), rtol=1e-12)
    # the mean's ESS is not rank based
    assert not np.allclose(D.ess_mean(y), D.ess_mean(x), rtol=1e-3)


def test_rank_normalisation_averages_ties():
    rng = np.random.default_rng(5)
    x = rng.poisson(2.0, (3, 40, 2)).astype(float)
    z = D.rank_normalize(x)
    for j in range(2):
        r = stats.rankdata(x[..., j].ravel())
        expected = stats.norm.ppf((r - 0.375) / (r.size + 0.25))
        np.testing.assert_allclose(z[..., j].ravel(), expected, rtol=1e-12)


def test_tail_ess_sees_sticky_tails_that_bulk_ess_misses():
    y = sticky_tails(np.random.default_rng(6))
    assert D.ess_tail(y) < 0.4 * D.ess_bulk(y)
    # iid heavy tails are no problem for either
    c = np.random.default_rng(7).standard_cauchy((4, 1000, 3))
    np.testing.assert_allclose(D.ess_tail(c), 4000, rtol=0.15)
    np.testing.assert_allclose(D.ess_bulk(c), 4000, rtol=0.15)


def test_mcse_is_calibrated_against_replicates():
    """400 independent AR(1) data sets as 400 parameters: the spread of their estimates is what the
    MCSE claims."""
    x = ar1(np.random.default_rng(8), 0.6, 4, 500, 400)
    flat = x.reshape(-1, 400)
    assert flat.mean(axis=0).std(ddof=1) / D.mcse_mean(x).mean() == pytest.approx(1.0, abs=0.1)
    assert flat.std(axis=0, ddof=1).std(ddof=1) / D.mcse_sd(x).mean() == pytest.approx(1.0, abs=0.12)
    q = np.quantile(flat, 0.9, axis=0)
    assert q.std(ddof=1) / D.mcse_quantile(x, 0.9).mean() == pytest.approx(1.0, abs=0.15)
    # and the mean's MCSE is sd / sqrt(ESS of the mean)
    np.testing.assert_allclose(D.mcse_mean(x), flat.std(axis=0, ddof=1) / np.sqrt(D.ess_mean(x)), rtol=1e-12)


def test_vectorised_results_equal_one_parameter_at_a_time():
    x = synthetic_sets()["ar1"]
    for f in (D.rhat, D.ess_bulk, D.ess_tail, D.ess_mean, D.mcse_mean, D.mcse_sd,
              lambda a: D.mcse_quantile(a, 0.2), lambda a: D.ess_quantile(a, 0.7)):
        together = f(x)
        assert together.shape == (3,)
        np.testing.assert_allclose(together, [f(x[:, :, j]) for j in range(3)], rtol=1e-12)
    # trailing axes of any shape
    assert D.ess_bulk(x.reshape(4, 1000, 3, 1)).shape == (3, 1)
    assert isinstance(D.rhat(x[:, :, 0]), float)


def test_constant_parameter_gives_nan():
    x = np.random.default_rng(9).standard_normal((4, 100, 2))
    x[..., 1] = 3.0
    assert np.isnan(D.rhat(x)[1]) and np.isnan(D.ess_bulk(x)[1]) and np.isnan(D.ess_mean(x)[1])
    assert np.isfinite(D.rhat(x)[0]) and np.isfinite(D.ess_bulk(x)[0])


def test_summary_table_columns_and_values():
    rng = np.random.default_rng(10)
    x = ar1(rng, 0.5, 4, 1000, 3) * np.array([1.0, 2.0, 0.5]) + np.array([0.0, 10.0, -3.0])
    tab = D.summary_table(x, ["a", "b", "c"])
    assert list(tab.columns) == ["mean", "sd", "mcse_mean", "2.5%", "25%", "50%", "75%", "97.5%",
                                 "rhat", "ess_bulk", "ess_tail"]
    assert list(tab.index) == ["a", "b", "c"]
    flat = x.reshape(-1, 3)
    np.testing.assert_allclose(tab["mean"], flat.mean(axis=0))
    np.testing.assert_allclose(tab["sd"], flat.std(axis=0, ddof=1))
    np.testing.assert_allclose(tab["97.5%"], np.quantile(flat, 0.975, axis=0))
    np.testing.assert_allclose(tab["rhat"], D.rhat(x), rtol=1e-12)
    np.testing.assert_allclose(tab["ess_bulk"], D.ess_bulk(x), rtol=1e-12)
    np.testing.assert_allclose(tab["ess_tail"], D.ess_tail(x), rtol=1e-12)
    np.testing.assert_allclose(tab["mcse_mean"], D.mcse_mean(x), rtol=1e-12)
    # the long layout of fit.draws gives the same table
    long = pd.DataFrame({"chain": np.repeat(np.arange(4), 1000), "draw": np.tile(np.arange(1000), 4),
                         "a": x[..., 0].ravel(), "b": x[..., 1].ravel(), "c": x[..., 2].ravel()})
    pd.testing.assert_frame_equal(D.summary_table(long.sample(frac=1.0, random_state=1)), tab)
    assert list(D.summary_table(x, ["a", "b", "c"], prob=(0.1, 0.9)).columns[3:5]) == ["10%", "90%"]


def test_ebfmi():
    rng = np.random.default_rng(11)
    # independent energies: E[(E_n - E_{n-1})^2] = 2 Var(E)
    np.testing.assert_allclose(D.ebfmi(rng.standard_normal((4, 4000))), 2.0, rtol=0.1)
    # a random walk in energy: the momentum resampling barely moves it
    assert np.all(D.ebfmi(np.cumsum(rng.standard_normal((4, 1000)), axis=1)) < 0.3)
    e = rng.standard_normal(50)
    assert D.ebfmi(e)[0] == pytest.approx(np.sum(np.diff(e) ** 2) / np.sum((e - e.mean()) ** 2))


def test_sampler_warnings_name_the_remedies():
    rng = np.random.default_rng(12)
    clean = {"diverging": np.zeros((4, 500), bool), "tree_depth": np.full((4, 500), 4),
             "energy": rng.standard_normal((4, 500))}
    x = rng.standard_normal((4, 500, 2))
    assert D.sampler_warnings(clean, D.summary_table(x, ["a", "b"]), max_treedepth=10) == []

    bad = dict(clean)
    bad["diverging"] = clean["diverging"].copy()
    bad["diverging"][1, :7] = True
    bad["tree_depth"] = clean["tree_depth"].copy()
    bad["tree_depth"][2, :30] = 10
    bad["energy"] = clean["energy"].copy()
    bad["energy"][3] = np.cumsum(rng.standard_normal(500))
    stuck = x.copy()
    stuck[3, :, 1] += 2.0
    msgs = D.sampler_warnings(bad, D.summary_table(stuck, ["a", "b"]), max_treedepth=10)
    text = "\n".join(msgs)
    assert "7 of 2000 transitions" in text and "adapt_delta" in text and "target_accept" in text
    assert "30 of 2000" in text and "max_treedepth" in text
    assert "E-BFMI" in text and "chain 4" in text
    assert "R-hat above 1.01" in text and "b" in text and "more draws" in text
    # ESS below 100 per chain (here 400 for 4 chains) with plain arrays
    msgs = D.sampler_warnings(clean, rhat=[1.0, 1.001], ess_bulk_values=[350.0, 5000.0],
                              ess_tail_values=[5000.0, 390.0], names=["a", "b"])
    assert len(msgs) == 2 and "Bulk ESS below 400" in msgs[0] and ": a" in msgs[0]
    assert "Tail ESS below 400" in msgs[1] and ": b" in msgs[1] and "more draws" in msgs[1]


def test_bad_input_is_named():
    with pytest.raises(ArgumentError, match="NaN"):
        D.rhat(np.full((2, 10), np.nan))
    with pytest.raises(ArgumentError, match="at least 4"):
        D.ess_bulk(np.zeros((4, 3)))
    with pytest.raises(ArgumentError, match="prob"):
        D.mcse_quantile(np.zeros((4, 10)), 1.5)
    with pytest.raises(ArgumentError, match="names"):
        D.summary_table(np.zeros((2, 10, 3)), ["a", "b"])
    with pytest.raises(ArgumentError, match="method"):
        D.ess(np.zeros((2, 10)), method="median")
    with pytest.raises(DataTypeError, match="draws"):
        D.rhat(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(ArgumentError, match="energy"):
        D.ebfmi(np.array([[1.0, np.nan, 2.0]]))


def test_to_arviz_without_arviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"glmmkit\[bayes\]"):
        D.to_arviz({"a": np.zeros((2, 10))})


# ----------------------------------------------------------------------------------------------------
# agreement with ArviZ


@pytest.fixture
def az():
    arviz = pytest.importorskip("arviz")
    numba = getattr(arviz, "Numba", None)
    was_on = bool(numba and numba.numba_flag)
    if was_on:  # arviz's numba path of mcse(method="sd") fails on current numpy
        numba.disable_numba()
    yield arviz
    if was_on:
        numba.enable_numba()


def _az_values(az, fn, x, **kw):
    return np.asarray(fn(az.convert_to_dataset({"x": x}), **kw)["x"].values)


@pytest.mark.parametrize("case", list(synthetic_sets()))
def test_agreement_with_arviz(az, case):
    x = synthetic_sets()[case]
    pairs = {
        "rhat": (D.rhat(x), _az_values(az, az.rhat, x)),
        "ess_bulk": (D.ess_bulk(x), _az_values(az, az.ess, x)),
        "ess_tail": (D.ess_tail(x), _az_values(az, az.ess, x, method="tail")),
        "ess_mean": (D.ess_mean(x), _az_values(az, az.ess, x, method="mean")),
        "ess_q30": (D.ess_quantile(x, 0.3), _az_values(az, az.ess, x, method="quantile", prob=0.3)),
        "mcse_mean": (D.mcse_mean(x), _az_values(az, az.mcse, x)),
        "mcse_sd": (D.mcse_sd(x), _az_values(az, az.mcse, x, method="sd")),
        "mcse_q90": (D.mcse_quantile(x, 0.9), _az_values(az, az.mcse, x, method="quantile", prob=0.9)),
    }
    for name, (mine, ref) in pairs.items():
        np.testing.assert_allclose(mine, ref, rtol=1e-9, err_msg=f"{case}: {name}")


def test_summary_and_bfmi_agree_with_arviz(az):
    rng = np.random.default_rng(13)
    x = ar1(rng, 0.7, 4, 1000, 4)
    tab = D.summary_table(x, ["p0", "p1", "p2", "p3"])
    ref = az.summary(az.convert_to_dataset({"p": x}), kind="diagnostics", round_to="none")
    for mine, theirs in [("mcse_mean", "mcse_mean"), ("rhat", "r_hat"), ("ess_bulk", "ess_bulk"),
                         ("ess_tail", "ess_tail")]:
        np.testing.assert_allclose(tab[mine].to_numpy(), ref[theirs].to_numpy(), rtol=1e-9, err_msg=mine)
    energy = np.cumsum(rng.standard_normal((4, 1000)), axis=1) * 0.05 + rng.standard_normal((4, 1000))
    np.testing.assert_allclose(D.ebfmi(energy), az.bfmi(energy), rtol=1e-9)


def test_to_arviz_builds_inference_data(az):
    rng = np.random.default_rng(14)
    draws = {"beta": rng.standard_normal((4, 100, 2)), "sigma": np.exp(rng.standard_normal((4, 100)))}
    stats_ = {"diverging": np.zeros((4, 100), bool), "energy": rng.standard_normal((4, 100)),
              "tree_depth": np.full((4, 100), 3)}
    idata = D.to_arviz(draws, stats_, coords={"coef": ["(Intercept)", "x"]}, dims={"beta": ["coef"]})
    post = idata.posterior
    assert post["beta"].dims == ("chain", "draw", "coef")
    assert list(post["coef"].values) == ["(Intercept)", "x"]
    np.testing.assert_array_equal(post["sigma"].values, draws["sigma"])
    np.testing.assert_array_equal(idata.sample_stats["energy"].values, stats_["energy"])
    np.testing.assert_allclose(az.bfmi(idata), D.ebfmi(stats_["energy"]), rtol=1e-12)
    with pytest.raises(ArgumentError, match="sigma"):
        D.to_arviz({"beta": draws["beta"], "sigma": draws["sigma"][:, :50]})
