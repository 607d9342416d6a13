"""glmer on Dask DataFrames by PIRLS (glmmkit.distributed.pirls): several grouping factors and
non-canonical links, each PIRLS round one pass; the in-memory glmer's answer."""

import warnings

import numpy as np
import pandas as pd
import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")

import glmmkit as gk  # noqa: E402
from glmmkit.distributed.glmm import DistributedGlmmFit  # noqa: E402
from glmmkit.exceptions import NotAvailableError  # noqa: E402


@pytest.fixture
def sync():
    with dask.config.set(scheduler="sync"):
        yield


def _rel(a, b, floor=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), floor)))


def _data(n=2000, seed=1):
    """Two crossed factors (30 x 20 levels), a factor nested in the first (a:c, 3 per a), a covariate,
    0/1 responses from a logit and a probit model, and counts."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.integers(0, 30, n), rng.integers(0, 20, n), rng.integers(0, 3, n)
    x = rng.normal(size=n)
    ea, eb, ec = rng.normal(size=30) * 0.7, rng.normal(size=20) * 0.5, rng.normal(size=(30, 3)) * 0.4
    eta = -0.3 + 0.5 * x + ea[a] + eb[b]
    from scipy.stats import norm

    return pd.DataFrame({
        "a": [f"a{i:02d}" for i in a], "b": [f"b{i:02d}" for i in b], "c": [f"c{i}" for i in c], "x": x,
        "y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float),
        "yn": (rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.5 * x + ea[a] + ec[a, c])))).astype(float),
        "yp": (rng.random(n) < norm.cdf(0.2 + 0.4 * x + 0.6 * ea[a] + eb[b])).astype(float),
        "count": rng.poisson(np.exp(0.2 + 0.3 * x + 0.5 * ea[a] + eb[b])).astype(float),
    })


@pytest.mark.parametrize("formula, family, link", [
    ("y ~ x + (1 | a) + (1 | b)", "binomial", None),  # crossed, Bernoulli
    ("yn ~ x + (1 | a/c)", "binomial", None),  # nested
    ("y ~ x + (1 + x | a) + (1 | b)", "binomial", None),  # crossed, a correlated random slope
    ("count ~ x + (1 | a) + (1 | b)", "poisson", None),  # crossed, Poisson log
    ("yp ~ x + (1 | a) + (1 | b)", "binomial", "probit"),  # non-canonical link
    ("count ~ x + (1 | a) + (1 | b)", "poisson", "sqrt"),
])
def test_pirls_path_equals_in_memory(sync, formula, family, link):
    df = _data()
    mem = gk.glmer(formula, df, family=family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer(formula, dd.from_pandas(df, npartitions=4), family=family, link=link)
    assert isinstance(fit, DistributedGlmmFit)
    # the rule: log-lik and fixed effects to 1e-6 relative (absolute 1e-7 for |β| < 0.1).  The
    # probit fit's: 1e-5, because the in-memory fit does not hold its own optimum closer: its PIRLS
    # (Fisher scoring, linear rate) gives values at one point that move by ~1e-8 with the warm start
    # (2381.7443468762 and ...8671 at the same estimates), a flat valley of ~1e-5 x SE in β
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef, floor=0.1) <= (1e-5 if link == "probit" else 1e-6)
    assert _rel(mem.theta, fit.theta, floor=1e-3) <= 1e-4
    assert _rel(np.sqrt(np.diag(mem.vcov)), np.sqrt(np.diag(fit.vcov))) <= 1e-3
    assert fit.converged
    info = fit.optimizer_info.distributed
    assert info["strategy"] == "pirls"
    assert info["pirls_rounds"] == fit.optimizer_info.passes["PIRLS round"]["count"] >= info["deviance_evaluations"]
    # canonical links: L-BFGS-B on the exact gradient, one gradient pass per gradient evaluation; the
    # others derivative-free (as in memory, where their Laplace deviance has Fisher's weights)
    canonical = link is None
    assert info["exact_gradient"] is canonical
    assert (info["gradient_passes"] > 0) is canonical
    assert ("exact Laplace gradient" in fit.optimizer_info.optimizer) is canonical
    # conditional variances from the engine's system at the mode
    cm, cf = mem._condvar, fit._condvar
    for name in cm:
        assert _rel(cm[name], cf[name], floor=1e-3) <= 1e-3
    for name, r in mem.ranef.items():
        assert _rel(r.to_numpy(), fit.ranef[name].to_numpy(), floor=1e-2) <= 1e-3


def _counts(df, seed=5):
    """Overdispersed counts (NB2, θ = 2) and positive responses (Gamma, shape 3), log means with crossed effects."""
    rng = np.random.default_rng(seed)
    ea, eb = rng.normal(size=30) * 0.4, rng.normal(size=20) * 0.3
    a = df["a"].str[1:].astype(int).to_numpy()
    b = df["b"].str[1:].astype(int).to_numpy()
    mu = np.exp(0.3 + 0.4 * df["x"].to_numpy() + ea[a] + eb[b])
    out = df.copy()
    out["nb"] = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    out["pos"] = rng.gamma(3.0, mu / 3.0)
    return out


@pytest.mark.parametrize("formula, family, link", [
    ("y ~ x + (1 + x | a) + (1 | b)", "binomial", None),
    ("count ~ x + (1 | a/c)", "poisson", None),
    ("nb ~ x + (1 | a) + (1 | b)", "nbinom2", None),
    ("pos ~ x + (1 | a) + (1 | b)", "gamma", "log"),
])
def test_gradient_pass_equals_in_memory_gradient(sync, formula, family, link):
    """The Dask objective's gradient (PIRLS passes, then one gradient pass) is the in-memory exact
    gradient at a point away from the optimum, in every coordinate (θ, β and the family's ψ)."""
    df = _counts(_data())
    mem = gk.glmer(formula, df, family=family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer(formula, dd.from_pandas(df, npartitions=3), family=family, link=link)
    x = mem._x * 1.1 + 0.05  # off the optimum (θ, β, ψ), where each gradient entry is far from 0
    obj_mem = mem._problem.objective(tol=1e-14)
    obj_mem.u = np.zeros_like(obj_mem.u)
    v_mem, g_mem = obj_mem.laplace_and_gradient(x)
    obj = fit._objective
    passes = obj.n_gradients
    v_dask, g_dask = obj.laplace_and_gradient(x)
    assert obj.n_gradients == passes + 1  # one gradient pass per gradient
    assert abs(v_dask - v_mem) <= 1e-9 * abs(v_mem)
    assert np.max(np.abs(g_dask - g_mem)) <= 1e-6 * max(1.0, np.max(np.abs(g_mem)))


@pytest.mark.parametrize("formula, family, link", [
    ("nb ~ x + (1 | a) + (1 | b)", "nbinom2", None),  # crossed, NB2 log
    ("pos ~ x + (1 | a) + (1 | b)", "gamma", "log"),  # crossed, Gamma log
    ("nb ~ x + (1 | a)", "nbinom2", None),  # one factor: the PIRLS path too (Newton on the observed information)
    ("pos ~ x + (1 | a)", "gamma", None),  # the inverse link: L-BFGS-B's start is not finite, BOBYQA as in memory
])
def test_families_with_a_parameter_equal_in_memory(sync, formula, family, link):
    df = _counts(_data())
    mem = gk.glmer(formula, df, family=family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer(formula, dd.from_pandas(df, npartitions=4), family=family, link=link)
    assert isinstance(fit, DistributedGlmmFit)
    assert fit.converged and mem.converged
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef, floor=0.1) <= 1e-6
    assert _rel(mem.theta, fit.theta, floor=1e-3) <= 1e-4
    (name, value), = mem.family_params.items()
    assert list(fit.family_params) == [name]
    assert abs(fit.family_params[name] - value) <= 1e-5 * abs(value)
    assert _rel(np.sqrt(np.diag(mem.vcov)), np.sqrt(np.diag(fit.vcov))) <= 1e-3
    assert fit.optimizer_info.distributed["strategy"] == "pirls"
    assert fit.family.values[name] == pytest.approx(fit.family_params[name])
    text = str(fit.summary())
    assert name in text


def test_one_factor_path_kept_and_condvar(sync):
    df = _data(n=1500)
    df = df.sort_values("a").reset_index(drop=True)
    mem = gk.glmer("y ~ x + (1 | a)", df, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("y ~ x + (1 | a)", dd.from_pandas(df, npartitions=3, sort=False), family="binomial")
    assert fit.optimizer_info.distributed["strategy"] == "one-factor"
    cm, cf = mem._condvar["a"], fit._condvar["a"]
    assert _rel(cm, cf) <= 1e-5


def test_refused_family_names_the_fix(sync):
    df = _data(n=200)
    df["pos"] = np.exp(df["x"])
    df["nb1"] = np.round(np.exp(df["x"]))
    # a family not offered names itself and the ones that are
    with pytest.raises(NotAvailableError, match=r"binomial, poisson, nbinom2, Gamma families.*; nbinom1 needs"):
        gk.glmer("nb1 ~ 1 + (1 | a) + (1 | b)", dd.from_pandas(df, npartitions=2), family="nbinom1")
    with pytest.raises(NotAvailableError, match=r"beta needs the data in memory"):
        gk.glmer("pos ~ 1 + (1 | a)", dd.from_pandas(df.assign(pos=1 / (1 + df["pos"])), npartitions=2),
                 family="beta")
    with pytest.raises(NotAvailableError, match="nagq"):
        gk.glmer("y ~ x + (1 | a) + (1 | b)", dd.from_pandas(df, npartitions=2), family="binomial", nagq=3)


@pytest.mark.slow  # ~20 s: a cluster's start and ~400 scheduled passes
def test_crossed_on_a_two_worker_local_cluster():
    distributed = pytest.importorskip("distributed")
    df = _data(n=1500, seed=3)
    formula = "y ~ x + (1 | a) + (1 | b)"
    mem = gk.glmer(formula, df, family="binomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lc = distributed.LocalCluster(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = distributed.Client(lc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gk.glmer(formula, dd.from_pandas(df, npartitions=4), family="binomial")  # the current client
    finally:
        client.close()
        lc.close()
    assert abs(fit.loglik - mem.loglik) <= 1e-6 * abs(mem.loglik)
    assert _rel(mem.fixef, fit.fixef, floor=0.1) <= 1e-6
    assert fit.optimizer_info.distributed["strategy"] == "pirls"
