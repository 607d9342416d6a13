"""lmer on Dask DataFrames (glmmkit.distributed): the in-memory fit's answer from summed crossproducts."""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import glmmkit as gk  # noqa: E402
from glmmkit.exceptions import DataError, DistributedError, NotAvailableError  # noqa: E402
from glmmkit.formula import parse_formula  # noqa: E402
from glmmkit.frame import build_model_frame  # noqa: E402
from glmmkit.linalg.blocked import BlockedSystem, chunk_crossproducts  # noqa: E402
from glmmkit.structure import build_structure  # noqa: E402


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


@pytest.fixture(scope="module")
def cluster():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = distributed.Client(lc)
    yield client
    client.close()
    lc.close()


def _synthetic(n=600, seed=1):
    """30 subjects (sorted, so some span two partitions), 12 crossed h levels, a text predictor whose
    level "c" is absent from the first rows, and missing values in y and x."""
    rng = np.random.default_rng(seed)
    g = np.sort(rng.integers(0, 30, n))
    h = rng.integers(0, 12, n)
    df = pd.DataFrame({"g": [f"s{i:02d}" for i in g], "h": h, "x": rng.normal(size=n),
                       "trt": rng.choice(["a", "b", "c"], n)})
    df.loc[:199, "trt"] = np.where(df.trt[:200] == "c", "a", df.trt[:200])
    b = rng.normal(size=(30, 2)) * [0.8, 0.3]
    df["y"] = (1 + 0.5 * df.x + 0.3 * (df.trt == "b") + b[g, 0] + b[g, 1] * df.x + 0.5 * rng.normal(size=12)[h]
               + rng.normal(size=n))
    df.loc[[3, 50, 200], "y"] = np.nan
    df.loc[7, "x"] = np.nan
    return df


def _rel(a, b, floor=1.0):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), floor)))


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", 4),
    ("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", 3),
    ("synthetic", "y ~ x * trt + (x | g)", 3),
    ("synthetic", "y ~ x + trt + (1 | g) + (1 | h)", 4),
    ("synthetic", "y ~ x + (x || g) + (1 | h)", 2),
]


@pytest.mark.parametrize("name,formula,nparts", CASES)
def test_equals_in_memory_fit(sync, name, formula, nparts):
    df = _synthetic() if name == "synthetic" else gk.datasets.load(name)
    mem = _quiet(gk.lmer, formula, df)
    fit = _quiet(gk.lmer, formula, dd.from_pandas(df, npartitions=nparts, sort=False))
    assert type(fit).__name__ == "DistributedLmmFit"
    assert fit.nobs == mem.nobs and fit.ngroups == mem.ngroups
    assert list(fit.fixef.index) == list(mem.fixef.index)
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef) <= 1e-6
    assert _rel(mem.theta, fit.theta) <= 1e-5  # θ agrees to BOBYQA's tolerance (both start at the same point)
    assert _rel(np.sqrt(np.diag(mem.vcov)), np.sqrt(np.diag(fit.vcov))) <= 1e-5
    assert _rel(mem.sigma, fit.sigma) <= 1e-6
    assert abs(fit.edf - mem.edf) <= 1e-4 * mem.edf
    for f in mem.ranef:
        pd.testing.assert_index_equal(fit.ranef[f].index, mem.ranef[f].index)
        assert _rel(mem.ranef[f].to_numpy(), fit.ranef[f].to_numpy()) <= 1e-4
        assert _rel(mem.condvar[f], fit.condvar[f], floor=1e-3) <= 1e-4
    assert _rel(mem.varcorr["vcov"], fit.varcorr["vcov"], floor=1e-3) <= 1e-4
    assert mem.optimizer_info.messages == fit.optimizer_info.messages  # rows dropped, counted the same
    if name != "synthetic" or "x * trt" in formula:
        assert str(fit.summary()) == str(mem.summary())


def test_lazy_fitted_and_residuals(sync):
    df = _synthetic()
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    mem = _quiet(gk.lmer, "y ~ x + trt + (x | g)", df)
    fit = _quiet(gk.lmer, "y ~ x + trt + (x | g)", ddf)
    lazy = fit.fitted()
    assert isinstance(lazy, dd.Series) and lazy.npartitions == ddf.npartitions
    got = lazy.compute()
    want = mem.fitted()
    assert got.index.equals(want.index)  # the complete rows, labelled as the data's
    assert _rel(want, got, floor=1.0) <= 1e-5
    for kind in ("response", "pearson", "scaled"):
        assert _rel(mem.residuals(kind), fit.residuals(kind).compute(), floor=1.0) <= 1e-4
    pd.testing.assert_series_equal(fit.predict().compute(), got)
    new = df.dropna().iloc[:5]
    assert _rel(mem.predict(new), fit.predict(new)) <= 1e-5


def test_rows_methods_say_what_to_use(sync):
    fit = _quiet(gk.lmer, "Reaction ~ Days + (Days | Subject)",
                 dd.from_pandas(gk.datasets.load("sleepstudy"), npartitions=2, sort=False))
    with pytest.raises(NotAvailableError, match="edf"):
        fit.hatvalues()
    with pytest.raises(NotAvailableError, match="re_form"):
        fit.simulate(2, seed=1, re_form="~(1 | Subject)")
    with pytest.raises(NotAvailableError, match="assign"):
        fit.refit(y=np.zeros(fit.nobs))
    ml = fit.refit(reml=False)  # from the crossproducts alone
    mem = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"), reml=False)
    assert abs(ml.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)


def test_stateful_formula_function_refused(sync):
    ddf = dd.from_pandas(gk.datasets.load("sleepstudy"), npartitions=2, sort=False)
    with pytest.raises(NotAvailableError, match=r"scale\(\).*assign"):
        gk.lmer("Reaction ~ scale(Days) + (1 | Subject)", ddf)


def test_partitions_disagreeing_on_a_type(sync):
    df = gk.datasets.load("sleepstudy")
    a, b = df.iloc[:90].copy(), df.iloc[90:].copy()
    b["Days"] = b["Days"].astype(str)
    ddf = dd.from_delayed([dask.delayed(a), dask.delayed(b)], meta=a.iloc[:0], verify_meta=False)
    with pytest.raises(DataError, match=r"'Days' is numeric in partition 0 but text in partition 1"):
        gk.lmer("Reaction ~ Days + (1 | Subject)", ddf)


def test_partitions_disagreeing_on_categories(sync):
    df = gk.datasets.load("sleepstudy")
    a, b = df.iloc[:90].copy(), df.iloc[90:].copy()
    a["Subject"] = a["Subject"].astype(str).astype("category")
    b["Subject"] = b["Subject"].astype(str).astype("category")
    ddf = dd.from_delayed([dask.delayed(a), dask.delayed(b)], meta=a.iloc[:0], verify_meta=False)
    with pytest.raises(DataError, match=r"'Subject' has other categories in partition 1"):
        gk.lmer("Reaction ~ Days + (1 | Subject)", ddf)


def test_crossproducts_of_chunks_add_up():
    """BlockedSystem.from_crossproducts of summed chunk crossproducts factors as the system of all rows."""
    df = gk.datasets.load("Penicillin")
    fr = build_model_frame(parse_formula("diameter ~ 1 + (1 | plate) + (1 | sample)"), df)
    st = build_structure(fr)
    whole = BlockedSystem(st.blocks, fr.X, fr.y)
    total = None
    for ix in np.array_split(np.arange(fr.nobs), 3):
        blocks = []
        for b in st.blocks:
            nb = copy.copy(b)
            nb.columns = b.columns[ix]
            nb.factor = copy.copy(b.factor)
            nb.factor.codes = b.factor.codes[ix]
            blocks.append(nb)
        c = chunk_crossproducts(blocks, fr.X[ix], fr.y[ix])
        total = c if total is None else {k: (None if c[k] is None else total[k] + c[k]) for k in c}
    summed = BlockedSystem.from_crossproducts(st.blocks, fr.X.shape[1], **total)
    tpl = st.templates(np.array([0.8, 2.1]))
    fa, fb = whole.factor(tpl), summed.factor(tpl)
    assert fa.logdet_lead == pytest.approx(fb.logdet_lead, rel=1e-12)
    np.testing.assert_allclose(np.tril(fa.L), np.tril(fb.L), rtol=1e-10, atol=1e-12)


def test_import_glmmkit_does_not_import_dask():
    import os
    from pathlib import Path

    code = ("import sys, glmmkit as gk\n"
            "gk.lmer('Reaction ~ Days + (1 | Subject)', gk.datasets.load('sleepstudy'))\n"
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(gk.__file__).parents[1])})
    assert out.stdout.strip() == "False"


def test_missing_extra_names_it(monkeypatch):
    from glmmkit.distributed import require_dask

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"glmmkit\[dask\]"):
        require_dask()


def test_cluster_parquet_round_trip_and_cli(cluster, tmp_path, capsys):
    df = _synthetic()
    folder = tmp_path / "pq"
    dd.from_pandas(df, npartitions=3, sort=False).to_parquet(str(folder))
    ddf = dd.read_parquet(str(folder))
    assert ddf.npartitions == 3
    formula = "y ~ x + trt + (1 | g) + (1 | h)"
    mem = _quiet(gk.lmer, formula, df)
    fit = _quiet(gk.lmer, formula, ddf)  # on the current client: the LocalCluster
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef) <= 1e-6
    assert list(fit.optimizer_info.passes) == ["schema", "crossproducts"]

    from glmmkit.cli import main

    rc = main(["fit", formula, "--data", str(folder) + "/", "--scheduler", cluster.scheduler.address,
               "--output", "json", "--no-progress"])
    import json

    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["nobs"] == mem.nobs
    assert abs(doc["loglik"] - mem.loglik) <= 1e-6 * abs(mem.loglik)


def test_client_gone_is_an_error(tmp_path):
    from glmmkit.distributed import lmer_dask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
        client = distributed.Client(lc, set_as_default=False)
    client.close()
    lc.close()
    ddf = dd.from_pandas(gk.datasets.load("sleepstudy"), npartitions=2, sort=False)
    with pytest.raises(DistributedError, match="no fit was made"):
        lmer_dask("Reaction ~ Days + (1 | Subject)", ddf, client=client)


def test_cli_bad_scheduler_is_one_line(tmp_path, capsys):
    from glmmkit.cli import main

    path = tmp_path / "d.parquet"
    gk.datasets.load("sleepstudy").to_parquet(path)
    rc = main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(path), "--scheduler", "tcp://127.0.0.1:9",
               "--scheduler-timeout", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot connect to the Dask scheduler" in err and "Traceback" not in err


def test_parquet_files_with_their_own_categories(sync, tmp_path):
    """read_parquet of files that each hold their own dictionary: categories unknown to Dask, different per
    partition; the levels are the union of the values (as text would be), the answer the in-memory one."""
    df = gk.datasets.load("sleepstudy")
    df["Subject"] = df["Subject"].astype(str)
    for i, part in enumerate((df.iloc[:100], df.iloc[100:])):
        part.assign(Subject=part["Subject"].astype("category")).to_parquet(tmp_path / f"p{i}.parquet")
    ddf = dd.read_parquet(str(tmp_path))
    assert isinstance(ddf._meta["Subject"].dtype, pd.CategoricalDtype)
    mem = gk.lmer("Reaction ~ Days + (Days | Subject)", df)
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert list(fit.ranef["Subject"].index) == list(mem.ranef["Subject"].index)


def test_glmer_on_dask_says_what_to_use(sync):
    ddf = dd.from_pandas(gk.datasets.load("cbpp"), npartitions=2, sort=False)
    with pytest.raises(NotAvailableError, match="glmer on a Dask DataFrame"):  # (tests/test_distributed_glmm.py)
        gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", ddf, family="binomial", nagq=2)


@pytest.mark.parametrize("kw", [{"weights": "w"}, {"offset": "off"}, {"reml": False}])
def test_weights_offset_ml_equal_in_memory(sync, kw):
    df = gk.datasets.load("sleepstudy").copy()
    rng = np.random.default_rng(3)
    df["w"], df["off"] = rng.uniform(0.5, 2, len(df)), rng.normal(size=len(df))
    formula = "Reaction ~ Days + (Days | Subject)"
    mem = gk.lmer(formula, df, **kw)
    fit = gk.lmer(formula, dd.from_pandas(df, npartitions=3, sort=False), **kw)
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef) <= 1e-6
    assert _rel(mem.theta, fit.theta) <= 1e-5
    assert _rel(mem.residuals("pearson"), fit.residuals("pearson").compute(), floor=1.0) <= 1e-4


def test_simulate_is_lazy_reproducible_and_from_the_model(sync):
    df = gk.datasets.load("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    sims = fit.simulate(400, seed=5)
    assert isinstance(sims, dd.DataFrame) and sims.npartitions == 3
    got = sims.compute()
    assert list(got.columns[:2]) == ["sim_1", "sim_2"] and got.index.equals(df.index)
    pd.testing.assert_frame_equal(got, fit.simulate(400, seed=5).compute())
    assert not np.allclose(got.to_numpy(), fit.simulate(400, seed=6).compute().to_numpy())
    mem = gk.lmer("Reaction ~ Days + (Days | Subject)", df)
    want = mem.simulate(400, seed=5)  # the in-memory draws: other numbers, the same distribution
    # per row: mean Xβ and variance σ² + z'Σz (sd ≈ 26-48); 400 draws give a mean within ±3 sd/20
    sd = want.to_numpy().std(axis=1)
    assert np.all(np.abs(got.to_numpy().mean(axis=1) - want.to_numpy().mean(axis=1)) < 6 * sd / 20)
    assert np.all(np.abs(got.to_numpy().std(axis=1) / sd - 1) < 0.25)
    cond = fit.simulate(200, seed=1, re_form=None).compute()  # given b: only the residual noise
    resid = cond.to_numpy() - mem.fitted().to_numpy()[:, None]
    assert abs(resid.std() / mem.sigma - 1) < 0.02 and abs(resid.mean()) < 0.5


def test_client_closed_during_a_pass_is_an_error():
    import threading
    import time

    from glmmkit.distributed import lmer_dask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
        client = distributed.Client(lc, set_as_default=False)
    df = gk.datasets.load("sleepstudy")

    def slow(part):
        time.sleep(0.5)
        return part

    ddf = dd.from_pandas(df, npartitions=4, sort=False).map_partitions(slow, meta=df.iloc[:0])

    def close():
        time.sleep(0.7)
        client.close()
        lc.close()

    closer = threading.Thread(target=close)
    closer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(DistributedError, match="schema pass .* no fit was made"):
                lmer_dask("Reaction ~ Days + (1 | Subject)", ddf, client=client)
    finally:
        closer.join()
