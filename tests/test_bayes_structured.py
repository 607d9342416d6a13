"""Bayesian fits with structured random-effect terms (glmmkit.bayes.structured): diag, homdiag, cs,
homcs, ar1, hetar1, toep, homtoep, ou/exp/gau/mat and relmat terms.

Checks: the gradient against central differences (numpy density) and the numba kernel against the
numpy density; the priors' normalisation and their uniform law on a correlation's range; ``(x || g)``
and ``diag(x | g)`` having one density; priors replaced by name; sampled posteriors near the
frequentist (ML) estimates on simulated data with plenty of information; ranef_draws, predict and
simulate of these terms.  No R reference: rstanarm has no structured terms.
"""

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import glmmkit as gk
from glmmkit.bayes import priors as P
from glmmkit.bayes.model import PosteriorModel
from glmmkit.exceptions import ArgumentError

sys.path.insert(0, str(Path(__file__).parent))
from test_relmat import _data as _relmat_data  # noqa: E402

TERMS = {
    "diag": "diag(0 + factor(visit) | id)", "homdiag": "homdiag(0 + factor(visit) | id)",
    "cs": "cs(0 + factor(visit) | id)", "homcs": "homcs(0 + factor(visit) | id)",
    "ar1": "ar1(0 + factor(visit) | id)", "hetar1": "hetar1(0 + factor(visit) | id)",
    "toep": "toep(0 + factor(visit) | id)", "homtoep": "homtoep(0 + factor(visit) | id)",
    "ou": "ou(visit | id)", "exp": "exp(visit | id)", "gau": "gau(visit | id)", "mat": "mat(visit | id)",
    "diag_x": "diag(x | id) + (1 | visit)",
}
#: structures the numba kernel takes (the rest run on the numpy density)
KERNEL = {"diag", "homdiag", "cs", "homcs", "ar1", "hetar1", "toep", "homtoep", "ou", "exp", "gau", "diag_x"}


def _small(seed=3, ns=30, nv=4):
    """Two rows per subject and visit: a small data set for density checks."""
    r = np.random.default_rng(seed)
    idx = np.repeat(np.arange(ns), nv * 2)
    visit = np.tile(np.repeat(np.arange(nv), 2), ns)
    x = r.normal(size=idx.size)
    eta = 0.5 + 0.3 * x + r.normal(size=(ns, nv))[idx, visit] * 0.7
    return pd.DataFrame({"id": [f"s{i}" for i in idx], "visit": visit, "x": x,
                         "y": eta + r.normal(size=idx.size) * 0.5, "count": r.poisson(np.exp(eta))})


def _simulate(kind, seed=1, ns=120, nv=5, rep=2, rho=0.6, sigma=0.5):
    """y = 1 + 0.5 x + b[id, visit] + e with b ~ N(0, C) of the given structure, rep rows per cell."""
    r = np.random.default_rng(seed)
    lag = np.abs(np.subtract.outer(np.arange(nv), np.arange(nv)))
    sd = np.linspace(0.8, 1.2, nv)
    if kind == "ar1":
        C = rho**lag
    elif kind == "cs":
        C = np.full((nv, nv), rho)
        np.fill_diagonal(C, 1.0)
        C = np.outer(sd, sd) * C
    else:
        C = np.diag(sd**2)
    b = r.multivariate_normal(np.zeros(nv), C, size=ns)
    idx = np.repeat(np.arange(ns), nv * rep)
    visit = np.tile(np.repeat(np.arange(nv), rep), ns)
    x = r.normal(size=idx.size)
    y = 1.0 + 0.5 * x + b[idx, visit] + r.normal(size=idx.size) * sigma
    return pd.DataFrame({"id": [f"s{i}" for i in idx], "visit": visit, "x": x, "y": y})


_DATA = _small()
_TINY = _small(ns=10)  # for central differences: 2 x dim densities per point


def _model(name, fam="gaussian", priors=None, data=None):
    f = f"{'y' if fam == 'gaussian' else 'count'} ~ x + {TERMS[name]}"
    return PosteriorModel.from_formula(f, _DATA if data is None else data, family=fam, priors=priors)


def central_grad(m, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (m.logp(x + e) - m.logp(x - e)) / (2 * h)
    return g


def _point(m, rng):
    x = m.initial_point(rng)
    x[m.p:] += rng.normal(0, 0.3, m.dim - m.p)
    return x


@pytest.mark.parametrize("fam", ["gaussian", "poisson"])
@pytest.mark.parametrize("name", sorted(TERMS))
def test_gradient_matches_central_differences(name, fam):
    m = _model(name, fam, data=_TINY)
    rng = np.random.default_rng(11)
    for _ in range(2):
        x = _point(m, rng)
        lp, g = PosteriorModel.logp_and_grad(m, x)
        assert np.isfinite(lp)
        gn = central_grad(m, x)
        np.testing.assert_allclose(g, gn, rtol=2e-5, atol=2e-6 * (1 + np.abs(gn).max()))


def test_relmat_gradient_and_kernel():
    d, K = _relmat_data(q=40)
    rng = np.random.default_rng(2)
    for fam, f in (("gaussian", "y ~ x + (1 | animal)"), ("poisson", "n ~ x + (1 | animal)")):
        m = PosteriorModel.from_formula(f, d, family=fam, relmat={"animal": K})
        x = _point(m, rng)
        lp, g = PosteriorModel.logp_and_grad(m, x)
        gn = central_grad(m, x)
        np.testing.assert_allclose(g, gn, rtol=2e-5, atol=2e-6 * (1 + np.abs(gn).max()))
        lp2, g2 = m.numba_logp_and_grad(x, *m.numba_data)
        assert lp2 == pytest.approx(lp, abs=1e-9)
        np.testing.assert_allclose(g2, g, atol=1e-9)


@pytest.mark.parametrize("fam", ["gaussian", "poisson"])
@pytest.mark.parametrize("name", sorted(KERNEL))
def test_numba_kernel_equals_numpy_density(name, fam):
    m = _model(name, fam)
    fn = m.logp_and_grad.numba_logp_and_grad
    data = m.numba_data
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = _point(m, rng)
        x[m.p:] += rng.normal(0, 0.4, m.dim - m.p)
        lp, g = PosteriorModel.logp_and_grad(m, x)
        lp2, g2 = fn(x, *data)
        assert lp2 == pytest.approx(lp, abs=1e-9)
        np.testing.assert_allclose(g2, g, atol=1e-9)


@pytest.mark.parametrize("name", ["mat"])
def test_structures_without_kernel_use_the_numpy_density(name):
    m = _model(name)
    assert getattr(m.logp_and_grad, "numba_logp_and_grad", None) is None
    with pytest.raises(AttributeError, match=r"covariance structure\(s\) Matern"):
        m.numba_data


def _coord_logprior(m, label, j):
    t = next(t for t in m.terms if t.label == label)
    sp = t.struct.priors[j]
    return (lambda u: sp.used.logp_grad(u)[0]) if sp.kind == "corr" else (lambda u: sp.used.logp_grad_log(u)[0])


@pytest.mark.parametrize("name, lower", [("ar1", -1.0), ("cs", -1.0 / 3.0), ("homcs", -1.0 / 3.0)])
def test_correlation_prior_is_uniform_on_its_range(name, lower):
    """exp(log prior) in the sampler's coordinate is a density, and the correlation it implies is uniform
    on (lower, 1): P(ρ < mid) = 1/2 (cs with 4 columns: ρ > -1/3)."""
    m = _model(name)
    t = m.terms[0]
    j = t.struct.n_sd
    f = _coord_logprior(m, t.label, j)
    total = integrate.quad(lambda u: math.exp(f(u)), -40, 40, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-7)
    nat = t.struct.natural_draws
    # the coordinate where ρ is the middle of its range
    us = np.linspace(-20, 20, 80001)
    U = np.zeros((us.size, t.n_par))
    U[:, j] = us
    rho = nat(U, np.ones(us.size), t.group)[f"rho|{t.group}"]
    mid = us[np.argmin(np.abs(rho - 0.5 * (lower + 1.0)))]
    below = integrate.quad(lambda u: math.exp(f(u)), -40, mid, limit=200)[0]
    assert below == pytest.approx(0.5, abs=1e-3)
    assert rho.min() == pytest.approx(lower, abs=1e-4) and rho.max() == pytest.approx(1.0, abs=1e-4)


def test_sd_and_range_priors_are_densities():
    for name in ("ar1", "exp"):
        m = _model(name)
        t = m.terms[0]
        for j in range(t.n_par):
            f = _coord_logprior(m, t.label, j)
            assert integrate.quad(lambda u: math.exp(f(u)), -60, 12, limit=400)[0] == pytest.approx(1.0, abs=1e-6)
    # the range's half-normal is scaled by the largest distance between positions (3 visits apart)
    used = _model("exp").prior_set.structured["id"][1].used
    assert used.real.scale[0] == pytest.approx(3.0)


def test_uncorrelated_and_diagonal_terms_share_one_density():
    """(x || id) is two scalar decov terms (τ ~ gamma(1, 1) each), diag(x | id) one term with each SD
    exponential(1): at matched coordinates the log densities are equal."""
    a = PosteriorModel.from_formula("y ~ x + (x || id)", _DATA)
    b = PosteriorModel.from_formula("y ~ x + diag(x | id)", _DATA)
    assert a.dim == b.dim
    rng = np.random.default_rng(4)
    xa = _point(a, rng)
    xb = xa.copy()
    t1, t2 = a.terms
    tb = b.terms[0]
    xb[tb.par] = [xa[t1.par][0], xa[t2.par][0]]
    zb = np.stack([xa[t1.z], xa[t2.z]], axis=1).ravel()  # level-major: each id's two effects together
    xb[tb.z] = zb
    assert a.logp(xa) == pytest.approx(b.logp(xb), abs=1e-9)
    assert [c for c in a.param_names() if c.startswith("sd_")] == [c for c in b.param_names() if c.startswith("sd_")]


def test_priors_by_name_and_summary():
    m = _model("ar1", priors={"rho|id": P.beta(2, 2), "sd|id": P.normal(0, 1)})
    sp = {s.name: s for s in m.prior_set.structured["id"]}
    assert sp["rho|id"].used.a == 2 and sp["sd|id"].used.dist == "half"
    text = m.prior_summary()
    assert "rho|id ~ beta(a = 2, b = 2) on (-1, 1)" in text
    assert "sd|id ~ half-normal(scale = 1)" in text
    assert "Structured covariance (standard deviations in units of sigma)" in text
    default = _model("ar1")
    assert "rho|id ~ uniform on (-1, 1)" in default.prior_summary()
    assert "sd|id ~ exponential(rate = 1)" in default.prior_summary()
    x = default.initial_point(1)
    assert m.logp(x) != pytest.approx(default.logp(x))
    # a decov under the term's label sets the gamma of its standard deviations
    g = _model("cs", priors={"id": P.decov(shape=2.0, scale=0.5)})
    assert all(s.used.shape == 2.0 and s.used.rate == 2.0 for s in g.prior_set.structured["id"] if s.kind == "sd")


def test_unknown_and_wrong_priors_are_refused():
    with pytest.raises(ArgumentError, match=r"'rho\|idd'.*did you mean 'rho\|id'"):
        _model("ar1", priors={"rho|idd": P.uniform()})
    with pytest.raises(ArgumentError, match=r"rho\|id.*beta\(\)"):
        _model("ar1", priors={"rho|id": P.normal(0, 1)})
    with pytest.raises(ArgumentError, match="location 0"):
        _model("exp", priors={"range|id": P.normal(1, 1)})


def test_draw_names_follow_the_frequentist_natural_parameters():
    for name, extra in (("ar1", ["sd|id", "rho|id"]), ("toep", ["rho1|id", "rho2|id", "rho3|id"]),
                        ("exp", ["sd|id", "range|id"]), ("mat", ["range|id", "kappa|id"])):
        names = _model(name).param_names()
        assert set(extra) <= set(names)
    # the Toeplitz lag correlations from the partial autocorrelations, as the frequentist structure has them
    m = _model("toep")
    t = m.terms[0]
    x = _point(m, np.random.default_rng(0))
    u = x[t.par]
    out = m.unpack(x)
    rho = t.struct.cs.lag_correlations(np.sinh(u[t.struct.n_sd:]))
    assert [out[f"rho{h}|id"] for h in (1, 2, 3)] == pytest.approx([float(r) for r in rho[1:]], abs=1e-12)


def _compare(fit_b, fit_f, tol_sd=2.5):
    """Posterior means within tol_sd posterior SDs of the ML estimates (fixed effects, natural parameters,
    sigma)."""
    s = fit_b.summary()
    t = fit_f.structure.terms[0]
    grp = t.group
    est = dict(fit_f.fixef)
    est.update({f"{n}|{grp}": v for n, v, *_ in t.structure.natural(np.asarray(fit_f.theta)[t.theta_slice], fit_f.sigma,
                                                                        t.names)})
    est["sigma"] = fit_f.sigma
    for k, v in est.items():
        assert abs(s.loc[k, "mean"] - v) < tol_sd * s.loc[k, "sd"], (k, s.loc[k, "mean"], v)
    return s


def test_ar1_posterior_near_the_ml_estimate():
    d = _simulate("ar1")
    f = "y ~ x + ar1(0 + factor(visit) | id)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = gk.blmer(f, d, chains=2, draws=300, tune=300, seed=1)
    s = _compare(b, gk.lmer(f, d, reml=False))
    assert "numba" in b.settings["sampler"] or "numpy" in b.settings["sampler"]
    assert s.loc["rho|id", "mean"] == pytest.approx(0.6, abs=0.1)
    # posterior predictions and random effects of the structured term
    re = b.ranef_draws
    assert "b[factor(visit)0 id:s0]" in re.columns and re.shape[1] == 2 + 120 * 5
    pred = b.predict()
    fitted = gk.lmer(f, d, reml=False).fitted()
    assert np.corrcoef(pred["mean"], np.asarray(fitted))[0, 1] > 0.99
    sims = b.simulate(n_sim=20, seed=1)
    assert sims.shape == (20, len(d)) and np.all(np.isfinite(sims))


def test_relmat_posterior_near_the_ml_estimate():
    d, K = _relmat_data(q=150)
    f = "y ~ x + (1 | animal)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = gk.blmer(f, d, relmat={"animal": K}, chains=2, draws=300, tune=300, seed=1)
    fr = gk.lmer(f, d, relmat={"animal": K}, reml=False)
    _compare(b, fr)
    # the factor's levels' effects b = sd L z, against the frequentist conditional modes
    re = b.ranef_draws
    levels = list(K.index)
    post = re[[f"b[(Intercept) animal:{lv}]" for lv in levels]].mean().to_numpy()
    modes = fr.ranef["animal"].loc[levels, "(Intercept)"].to_numpy()
    assert np.corrcoef(post, modes)[0, 1] > 0.97
    nd = d.iloc[:10]
    p = b.predict(newdata=nd)
    assert np.all(np.isfinite(p["mean"])) and np.corrcoef(p["mean"], fr.predict(nd))[0, 1] > 0.99


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cs", "diag"])
def test_cs_and_diag_posteriors_near_the_ml_estimate(kind):
    d = _simulate(kind)
    f = f"y ~ x + {kind}(0 + factor(visit) | id)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = gk.blmer(f, d, chains=2, draws=400, tune=400, seed=2)
    _compare(b, gk.lmer(f, d, reml=False))


@pytest.mark.slow
def test_toeplitz_posterior_near_the_ml_estimate():
    d = _simulate("ar1", ns=100, nv=4)
    f = "y ~ x + toep(0 + factor(visit) | id)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = gk.blmer(f, d, chains=2, draws=400, tune=400, seed=3)
    assert "numba" in b.settings["sampler"]
    _compare(b, gk.lmer(f, d, reml=False))


@pytest.mark.slow
def test_matern_samples_on_the_numpy_path():
    d = _simulate("ar1", ns=60, nv=4)
    f = "y ~ x + mat(visit | id)"
    with pytest.warns(RuntimeWarning, match=r"structure\(s\) Matern, so glmmkit's own numpy NUTS"):
        b = gk.blmer(f, d, chains=2, draws=200, tune=200, seed=3)
    assert b.settings["sampler"].endswith("numpy engine")
    assert np.all(np.isfinite(b.summary()["mean"]))
    assert b.summary().loc["x", "mean"] == pytest.approx(0.5, abs=0.1)


def test_two_structured_terms_on_one_factor_keep_their_names_apart():
    """Names carry the term's label: the factor's second term is ``id.1`` (lme4's labels)."""
    f = "y ~ x + ar1(0 + factor(visit) | id) + homdiag(x | id)"
    m = PosteriorModel.from_formula(f, _DATA, priors={"sd|id.1": P.normal(0, 1)})
    names = m.param_names()
    assert {"sd|id", "rho|id", "sd|id.1"} <= set(names) and len(names) == len(set(names))
    used = {s.name: s.used for p in m.prior_set.structured.values() for s in p}
    assert used["sd|id.1"].dist == "half" and used["sd|id"].dist == "gamma"
