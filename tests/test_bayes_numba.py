"""The numba log-density of glmmkit.bayes.model (glmmkit.bayes._numba_density) against the numpy one.

The compiled kernel must compute the same value and gradient as ``PosteriorModel.logp_and_grad`` (to
1e-10 relative) for every family with a kernel, correlated and many-column terms, several terms,
non-default priors, weights and offsets; and the sampler's automatic engine must pick nutpie's
compiled callback for those models.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.bayes import priors as P
from glmmkit.bayes.model import PosteriorModel

pytest.importorskip("numba")

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", None),
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian", None),
    "poisson": ("y ~ x1 + (1 | g)", "counts_ri", "poisson", None),
    "poisson_slope": ("y ~ x1 + x2 + (x1 | g)", "counts_ri", "poisson", None),
    "negative_binomial": ("y ~ x1 + x2 + (1 | g)", "counts_ri", "negative_binomial", None),
    "gamma": ("y ~ x1 + x2 + (1 | g)", "gamma_ri", "gamma", "log"),
    "beta": ("y ~ x1 + (1 | g)", "beta_ri", "beta", None),
    "three_columns": ("Reaction ~ Days + (Days + I(Days^2) | Subject)", "sleepstudy", "gaussian", None),
    "two_factors": ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", "gaussian", None),
    "two_factors_glmm": ("y ~ x1 + (x1 | g) + (1 | x2)", "counts_ri", "poisson", None),
    "diagonal": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", "gaussian", None),
    "no_intercept": ("y ~ 0 + x1 + x2 + (1 | g)", "gamma_ri", "gamma", "log"),
}

_MODELS = {}


def build(name, priors=None, **kw):
    key = (name, repr(priors), repr(sorted(kw.items())))
    if key not in _MODELS:
        f, d, fam, link = CASES[name]
        _MODELS[key] = PosteriorModel.from_formula(f, gk.datasets.load(d), family=fam, link=link, priors=priors,
                                                   **kw)
    return _MODELS[key]


def random_points(m, seed, k=4):
    rng = np.random.default_rng(seed)
    for _ in range(k):
        x = m.initial_point(rng)
        x[m.p:] += rng.normal(0.0, 0.5, m.dim - m.p)  # away from the start's box: strong correlations too
        yield x


def assert_same(m, x):
    a, ga = PosteriorModel.logp_and_grad(m, x)
    b, gb = m.numba_logp_and_grad(np.ascontiguousarray(x), *m.numba_data)
    assert np.isfinite(a)
    assert b == pytest.approx(a, rel=1e-10, abs=1e-10)
    assert gb.shape == ga.shape
    np.testing.assert_allclose(gb, ga, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(ga).max()))


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_numpy_density(name):
    m = build(name)
    assert m.numba_data[0].shape == (5, m.n)  # sparse rows: no dense Z is handed to the kernel
    for x in random_points(m, seed=len(name)):
        assert_same(m, x)


def test_term_layout_of_the_multi_term_models():
    m = build("two_factors_glmm")
    assert [t.K for t in m.terms] == [2, 1]
    tint = m.numba_data[5]
    np.testing.assert_array_equal(tint[:, 0], [2, 1])
    np.testing.assert_array_equal(tint[:, 3], [t.z.start for t in m.terms])
    assert build("three_columns").terms[0].K == 3


@pytest.mark.parametrize("name,priors", [
    ("cbpp", {"prior": P.student_t(df=4, location=0.5, scale=1.5), "(Intercept)": P.cauchy(0, 3),
              "herd": P.decov(shape=2.0, scale=0.5)}),
    ("sleepstudy", {"Days": P.flat(), "sigma": P.student_t(df=3, location=0, scale=20),
                    "Subject": P.decov(regularization=2.5, concentration=[1.0, 3.0], shape=1.5, scale=2.0)}),
    ("three_columns", {"sigma": P.normal(0, 30), "Subject": P.decov(regularization=0.7, concentration=[2, 1, 0.5])}),
    ("negative_binomial", {"theta": P.flat(), "x1": P.normal(1.0, 0.3), "x2trt": P.student_t(7, -1, 2)}),
    ("gamma", {"shape": P.exponential(0.3), "(Intercept)": P.flat()}),
    ("beta", {"phi": P.cauchy(0, 5), "x1": P.flat()}),
])
def test_kernel_equals_numpy_under_other_priors(name, priors):
    m = build(name, priors)
    for x in random_points(m, seed=3):
        assert_same(m, x)


def test_weights_and_offset():
    df = gk.datasets.load("counts_ri").copy()
    rng = np.random.default_rng(5)
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["off"] = rng.normal(0.0, 0.3, len(df))
    for fam in ("poisson", "negative_binomial"):
        m = PosteriorModel.from_formula("y ~ x1 + (x1 | g)", df, family=fam, weights="w", offset="off")
        for x in random_points(m, seed=11):
            assert_same(m, x)


def test_overflowing_linear_predictor_gives_minus_infinity():
    m = build("poisson")
    x = m.initial_point(1)
    x[m.icpt] = 800.0
    with np.errstate(over="ignore", invalid="ignore"):
        a, ga = PosteriorModel.logp_and_grad(m, x)
    b, gb = m.numba_logp_and_grad(x, *m.numba_data)
    assert a == -np.inf and b == -np.inf
    assert not np.any(gb) and not np.any(ga)


def test_logp_and_grad_carries_the_kernel_and_is_absent_for_a_matern_term():
    m = build("cbpp")
    val, g = m.logp_and_grad(m.initial_point(0))
    assert np.isfinite(val) and g.shape == (m.dim,)
    assert m.logp_and_grad.numba_logp_and_grad is m.numba_logp_and_grad
    assert m.logp_and_grad.numba_data is m.numba_data  # packed once
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(20), 8).astype(str), "t": np.tile(np.arange(4), 40),
                      "y": rng.normal(size=160)})
    mat = PosteriorModel.from_formula("y ~ 1 + mat(t | g)", d)
    assert getattr(mat, "numba_logp_and_grad", None) is None
    assert getattr(mat.logp_and_grad, "numba_logp_and_grad", None) is None
    assert getattr(mat, "numba_data", None) is None


LINK_CASES = [("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", lk)
              for lk in ("probit", "cloglog", "cauchit")]
LINK_CASES += [("y ~ x1 + (1 | g)", "counts_ri", "poisson", lk) for lk in ("sqrt", "identity")]
LINK_CASES += [("y ~ x1 + (1 | g)", "counts_ri", "negative_binomial", "sqrt")]
LINK_CASES += [("y ~ x1 + (1 | g)", "gamma_ri", "gamma", lk) for lk in ("inverse", "identity")]
LINK_CASES += [("y ~ x1 + (1 | g)", "beta_ri", "beta", lk) for lk in ("probit", "cloglog")]


@pytest.mark.parametrize("formula, data, fam, link", LINK_CASES, ids=[f"{c[2]}-{c[3]}" for c in LINK_CASES])
def test_other_links_in_the_kernel(formula, data, fam, link):
    """The kernel's density in μ = g⁻¹(η) equals the numpy one (the family objects') up to a constant of
    the data, with the same gradient."""
    m = PosteriorModel.from_formula(formula, gk.datasets.load(data), family=fam, link=link)
    fn, packed = m.logp_and_grad.numba_logp_and_grad, m.numba_data
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(3):
        x = m.initial_point(rng)
        x[m.p:] += rng.normal(0, 0.05, m.dim - m.p)
        a, ga = PosteriorModel.logp_and_grad(m, x)
        b, gb = fn(x, *packed)
        assert np.isfinite(a) and np.isfinite(b)
        diffs.append(b - a)
        np.testing.assert_allclose(gb, ga, rtol=1e-9, atol=1e-9)
    assert np.ptp(diffs) < 1e-8


def test_gamma_inverse_link_outside_the_mean_range_is_minus_infinity():
    m = PosteriorModel.from_formula("y ~ x1 + (1 | g)", gk.datasets.load("gamma_ri"), family="gamma", link="inverse")
    x = m.initial_point(2)
    x[m.icpt] = -5.0  # η < 0: μ = 1/η negative
    b, gb = m.numba_logp_and_grad(x, *m.numba_data)
    with np.errstate(all="ignore"):
        a, _ = PosteriorModel.logp_and_grad(m, x)
    assert b == -np.inf and a == -np.inf and not np.any(gb)


def test_probit_samples_on_the_compiled_density():
    pytest.importorskip("nutpie")
    f, d = CASES["cbpp"][0], gk.datasets.load("cbpp")
    fit = gk.bglmer(f, d, family="binomial", link="probit", chains=2, draws=300, tune=300, seed=2)
    assert fit.settings["sampler"] == "NUTS, nutpie-numba engine"
    ml = gk.glmer(f, d, family="binomial", link="probit").fixef
    s = fit.summary()
    for k, v in ml.items():
        assert abs(s.loc[k, "mean"] - v) < 2.5 * s.loc[k, "sd"]


@pytest.mark.parametrize("name", ["cbpp", "sleepstudy", "three_columns", "two_factors_glmm", "beta"])
def test_auto_engine_runs_the_compiled_density_on_nutpie(name):
    pytest.importorskip("nutpie")
    from glmmkit.bayes.sampler import sample

    m = build(name)
    rng = np.random.default_rng(2)
    x0s = np.stack([m.initial_point(rng) for _ in range(2)])
    res = sample(m.logp_and_grad, x0s, draws=30, tune=30, chains=2, seed=4, engine="auto")
    assert res.engine == "nutpie-numba"
    assert res.draws.shape == (2, 30, m.dim) and np.all(np.isfinite(res.draws))


def test_bglmer_fit_names_the_compiled_engine():
    pytest.importorskip("nutpie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 40 draws: R-hat and ESS warnings are expected
        fit = gk.bglmer(CASES["cbpp"][0], gk.datasets.load("cbpp"), chains=2, draws=40, tune=40, seed=1)
    assert fit.settings["sampler"] == "NUTS, nutpie-numba engine"
    assert fit.result.engine == "nutpie-numba"


def test_nutpie_callbacks_are_built_from_a_cached_module_file(tmp_path, monkeypatch):
    """The callbacks live in a module file under the cache folder, so numba caches their machine code
    and a new process loads it instead of compiling (~0.75 s); sampling through them gives the draws
    of the in-memory build."""
    pytest.importorskip("nutpie")
    from glmmkit.bayes import _nutpie

    monkeypatch.setenv("GLMMKIT_CACHE_DIR", str(tmp_path))
    model = PosteriorModel.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                                        family="binomial")
    fn, data = model.logp_and_grad.numba_logp_and_grad, model.logp_and_grad.numba_data
    pair = _nutpie._cached_module(fn, _nutpie._layout(data))
    assert pair is not None and all(hasattr(c, "address") for c in pair)
    files = list((tmp_path / "nutpie_callbacks").glob("cb_*.py"))
    assert len(files) == 1 and "cache=True" in files[0].read_text()
    assert _nutpie._cached_module(fn, _nutpie._layout(data)) is not None  # the second call reuses the module
