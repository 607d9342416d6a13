"""glmer on Dask DataFrames (glmmkit.distributed.glmm): the in-memory fit's answer, one pass per evaluation."""

import os
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import glmmkit as gk  # noqa: E402
from glmmkit.distributed.glmm import DistributedGlmmFit, RepartitionWarning  # noqa: E402
from glmmkit.exceptions import DataError, NotAvailableError  # noqa: E402


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


def _rel(a, b, floor=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), floor)))


def _data(q=40, per=40, seed=2, slope=False):
    """q levels of ``per`` rows each, in level order (4 partitions of whole levels), a covariate, 0/1,
    trials + proportions and counts."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(q), per)
    n = g.shape[0]
    x = rng.normal(size=n)
    b0, b1 = rng.normal(size=q) * 0.7, rng.normal(size=q) * (0.3 if slope else 0.0)
    eta = -0.4 + 0.6 * x + b0[g] + b1[g] * x
    trials = rng.integers(1, 8, n).astype(float)
    off = rng.normal(scale=0.2, size=n)
    df = pd.DataFrame({"g": [f"L{i:03d}" for i in g], "x": x, "trt": rng.choice(["a", "b"], n),
                       "y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
                       "trials": trials, "off": off,
                       "count": rng.poisson(np.exp(0.3 + 0.5 * x + b0[g] + b1[g] * x + off)).astype(float)})
    df["prop"] = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta))) / trials
    return df


def _same_fit(mem, fit, tol=1e-6):
    assert isinstance(fit, DistributedGlmmFit)
    assert abs(fit.loglik - mem.loglik) <= tol * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef) <= tol
    assert _rel(mem.theta, fit.theta) <= 1e-5
    assert _rel(np.sqrt(np.diag(mem.vcov)), np.sqrt(np.diag(fit.vcov))) <= 1e-4
    for name, r in mem.ranef.items():
        assert _rel(r.to_numpy(), fit.ranef[name].to_numpy(), floor=1e-3) <= 1e-4
    assert fit.converged and fit.nobs == mem.nobs


@pytest.mark.parametrize("formula, family, kw", [
    ("y ~ x + trt + (1 | g)", "binomial", {}),
    ("prop ~ x + (1 | g)", "binomial", {"weights": "trials"}),
    ("count ~ x + (1 + x | g)", "poisson", {"offset": "off"}),
])
def test_equals_in_memory_fit(sync, formula, family, kw):
    slope = "1 + x" in formula
    df = _data(slope=slope)
    mem = gk.glmer(formula, df, family=family, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepartitionWarning)  # whole levels per partition: no shuffle
        fit = gk.glmer(formula, dd.from_pandas(df, npartitions=4, sort=False), family=family, **kw)
    _same_fit(mem, fit)
    assert str(fit.summary()) == str(mem.summary())
    assert abs(fit.edf - mem.edf) <= 1e-6 * mem.edf
    passes = fit.optimizer_info.passes
    assert passes["evaluation"]["count"] == fit.optimizer_info.n_evals  # one pass per evaluation


def test_cbind_response_equals_in_memory(sync):
    df = gk.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    mem = gk.glmer(formula, df, family="binomial")
    with pytest.warns(RepartitionWarning, match="herd"):  # herds are not in order: a shuffle, then the answer
        fit = gk.glmer(formula, dd.from_pandas(df, npartitions=3, sort=False), family="binomial")
    _same_fit(mem, fit)
    assert "shuffled by herd" in " ".join(fit.optimizer_info.messages)
    assert fit.dispersion_check()["pearson_chisq"] == pytest.approx(mem.dispersion_check()["pearson_chisq"], rel=1e-5)


def test_split_levels_are_shuffled_not_wrong(sync):
    df = _data(q=30, per=37)  # 1110 rows in 4 partitions: levels straddle the boundaries
    mem = gk.glmer("y ~ x + (1 | g)", df, family="binomial")
    with pytest.warns(RepartitionWarning, match="split across partitions"):
        fit = gk.glmer("y ~ x + (1 | g)", dd.from_pandas(df, npartitions=4, sort=False), family="binomial")
    _same_fit(mem, fit)


def test_lazy_fitted_residuals_predict_simulate(sync):
    df = _data()
    df.loc[[5, 77], "x"] = np.nan
    mem = gk.glmer("prop ~ x + (1 | g)", df, family="binomial", weights="trials")
    fit = gk.glmer("prop ~ x + (1 | g)", dd.from_pandas(df, npartitions=4, sort=False), family="binomial",
                   weights="trials")
    fv = fit.fitted()
    assert isinstance(fv, dd.Series)
    got = fv.compute()
    assert got.between(0, 1).all()  # the response scale (probabilities)
    pd.testing.assert_index_equal(got.index, mem.fitted().index)
    assert _rel(mem.fitted(), got) <= 1e-5
    for kind in ("deviance", "pearson", "response"):
        assert _rel(mem.residuals(kind), fit.residuals(kind).compute(), floor=1.0) <= 1e-5
    assert _rel(mem.predict(), fit.predict().compute(), floor=1.0) <= 1e-5
    assert _rel(mem.predict(type="response"), fit.predict(type="response").compute()) <= 1e-5
    new = df.iloc[10:20]
    assert _rel(mem.predict(new, type="response"), fit.predict(new, type="response")) <= 1e-5
    sims = fit.simulate(3, seed=4)
    assert isinstance(sims, dd.DataFrame)
    a, b = sims.compute(), fit.simulate(3, seed=4).compute()
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["sim_1", "sim_2", "sim_3"] and len(a) == mem.nobs
    assert ((a >= 0) & (a <= 1)).all().all()
    cm, cf = mem._condvar["g"], fit._condvar["g"]  # one pass for the levels' M_g at the modes
    assert _rel(cm, cf) <= 1e-5
    with pytest.raises(NotAvailableError, match="hatvalues"):
        fit.hatvalues()


@pytest.mark.parametrize("kw, match", [
    ({"family": "nbinom1"}, "nbinom2, Gamma families.*nbinom1"),
    ({"family": "binomial", "nagq": 3}, "nagq=3"),
    ({"family": "binomial", "method": "pql"}, "pql"),
    ({"family": "poisson", "ziformula": "~ 1"}, "ziformula"),
])
def test_refused_options_say_what_to_use(sync, kw, match):
    ddf = dd.from_pandas(_data(q=8, per=10), npartitions=2, sort=False)
    formula = "count ~ x + (1 | g)" if kw["family"] in ("poisson", "nbinom1") else "y ~ x + (1 | g)"
    with pytest.raises(NotAvailableError, match=match):
        gk.glmer(formula, ddf, **kw)


def test_two_grouping_factors_take_the_pirls_path(sync):
    df = _data(q=8, per=10)
    df["h"] = np.arange(len(df)) % 5
    fit = gk.glmer("y ~ x + (1 | g) + (1 | h)", dd.from_pandas(df, npartitions=2, sort=False), family="binomial")
    assert fit.optimizer_info.distributed["strategy"] == "pirls"  # tests/test_distributed_pirls.py: the answer


def test_bad_response_names_the_partition(sync):
    df = _data(q=8, per=10)
    df.loc[70, "y"] = 2.0  # in the second partition
    with pytest.raises(DataError, match="partition 1"):
        gk.glmer("y ~ x + (1 | g)", dd.from_pandas(df, npartitions=2, sort=False), family="binomial")


def test_progress_counter_on_request(sync, capsys):
    ddf = dd.from_pandas(_data(q=8, per=20), npartitions=2, sort=False)
    from glmmkit.distributed import glmer_dask

    fit = glmer_dask("y ~ x + (1 | g)", ddf, family="binomial", progress=True)
    err = capsys.readouterr().err
    total = sum(v["count"] for v in fit.optimizer_info.passes.values())
    assert f"pass {total} " in err and err.endswith("\n") and "\r" in err
    gk.glmer("y ~ x + (1 | g)", ddf, family="binomial")  # stderr is not a terminal here: nothing written
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_worker_killed_mid_fit_costs_a_round_not_the_fit():
    df = _data(q=200, per=100)
    mem = gk.glmer("y ~ x + (1 | g)", df, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = distributed.Client(lc)
    try:
        ddf = dd.from_pandas(df, npartitions=8, sort=False)
        killed = []

        def kill_one():
            # once the fit is under way (its partitions held), end one worker process abruptly
            deadline = time.time() + 60
            while time.time() < deadline:
                held = [k for k in client.has_what().values() if k]
                if sum(len(k) for k in held) >= 8 and len(held) == 2:
                    time.sleep(0.5)
                    pid = list(client.run(os.getpid).values())[0]
                    os.kill(pid, 9)
                    killed.append(pid)
                    return
                time.sleep(0.05)

        t = threading.Thread(target=kill_one)
        t.start()
        fit = gk.glmer("y ~ x + (1 | g)", ddf, family="binomial")  # on the current client
        t.join()
        assert killed
        _same_fit(mem, fit)
    finally:
        client.close()
        lc.close()


def test_large_covariate_rescaled_as_in_memory(sync):
    df = _data()
    df["age"] = df.x * 15 + 3000  # the in-memory glmer fits it centred and scaled
    mem = gk.glmer("y ~ age + (1 | g)", df, family="binomial")
    fit = gk.glmer("y ~ age + (1 | g)", dd.from_pandas(df, npartitions=4, sort=False), family="binomial")
    assert fit.optimizer_info.rescaled == mem.optimizer_info.rescaled == ["age"]
    _same_fit(mem, fit)
    with pytest.raises(NotAvailableError, match="random slope on age"):  # never a fit in the wrong coordinates
        gk.glmer("y ~ age + (age | g)", dd.from_pandas(df, npartitions=4, sort=False), family="binomial")
