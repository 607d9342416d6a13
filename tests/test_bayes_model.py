"""The Bayesian posterior density (glmmkit.bayes.model) and rstanarm's priors (glmmkit.bayes.priors).

Reference values: tests/data/bayes/priors/prior_summaries.json, made by make_prior_summaries.R beside it
(rstanarm's prior_summary of the same models).
"""

import json
import math
import pathlib
import warnings

import numpy as np
import pytest
from scipy import integrate
from scipy.special import betaln, gammaln

import glmmkit as gk
from glmmkit.bayes import model as bmodel
from glmmkit.bayes import priors as P
from glmmkit.bayes.model import PosteriorModel
from glmmkit.exceptions import ArgumentError

REF = json.loads((pathlib.Path(__file__).parent / "data" / "bayes" / "priors" / "prior_summaries.json").read_text())

CASES = {
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", None),
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian", None),
    "counts_poisson": ("y ~ x1 + x2 + (1 | g)", "counts_ri", "poisson", None),
    "counts_nb": ("y ~ x1 + x2 + (1 | g)", "counts_ri", "negative_binomial", None),
    "gamma": ("y ~ x1 + x2 + (1 | g)", "gamma_ri", "gamma", "log"),
    "beta": ("y ~ x1 + (1 | g)", "beta_ri", "beta", None),
    # links without a hand-written path: the family objects' μ-derivatives through the link
    "cbpp_probit": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial", "probit"),
    "poisson_sqrt": ("y ~ x1 + (1 | g)", "counts_ri", "poisson", "sqrt"),
    "gamma_inverse": ("y ~ x1 + (1 | g)", "gamma_ri", "gamma", "inverse"),
    "sleep_three": ("Reaction ~ Days + (Days + I(Days^2) | Subject)", "sleepstudy", "gaussian", None),
    "sleep_diag": ("Reaction ~ Days + (Days || Subject)", "sleepstudy", "gaussian", None),
}

_MODELS = {}


def build(name, priors=None):
    if priors is None and name in _MODELS:
        return _MODELS[name]
    f, d, fam, link = CASES[name]
    m = PosteriorModel.from_formula(f, gk.datasets.load(d), family=fam, link=link, priors=priors)
    if priors is None:
        _MODELS[name] = m
    return m


def central_grad(m, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (m.logp(x + e) - m.logp(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_matches_central_differences(name):
    m = build(name)
    rng = np.random.default_rng(7)
    for k in range(3):
        x = m.initial_point(rng)
        x[m.p:] += rng.normal(0, 0.3, m.dim - m.p)  # away from the start's box
        if m.link_name == "inverse":
            x[m.z_all] *= 0.05  # keep μ = 1/η positive
            x[m.coef_idx] *= 0.01
        lp, g = m.logp_and_grad(x)
        assert np.isfinite(lp)
        gn = central_grad(m, x)
        np.testing.assert_allclose(g, gn, rtol=2e-5, atol=2e-5 * (1 + np.abs(gn).max()) * 1e-2)


def test_sparse_path_matches_dense(monkeypatch):
    dense = build("sleepstudy")
    monkeypatch.setattr(bmodel, "_DENSE_MAX", 0)
    f, d, fam, link = CASES["sleepstudy"]
    sparse = PosteriorModel.from_formula(f, gk.datasets.load(d), family=fam)
    assert sparse._Z is None and dense._Z is not None
    x = dense.initial_point(3)
    a, ga = dense.logp_and_grad(x)
    b, gb = sparse.logp_and_grad(x)
    assert a == pytest.approx(b, rel=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,param", [("counts_nb", "theta"), ("gamma", "shape"), ("beta", "phi")])
def test_hand_written_likelihood_equals_family_objects(name, param):
    """The lean NB2 / Gamma / beta paths against the family object's log-density (up to a constant)."""
    m = build(name)
    rng = np.random.default_rng(1)
    vals = []
    for _ in range(3):
        eta = m.Xc @ m.initial_point(rng)[:m.p] + rng.normal(0, 0.3, m.n)
        aux = math.exp(rng.normal(0.5, 0.5))
        ours, s, d = m._loglik(eta, aux)
        mu = m.family.link.inverse(eta)
        f, f1, _, _, psi = m.family.mu_derivatives(m.y, mu, m.wt, {param: aux})
        vals.append(ours - f.sum())
        np.testing.assert_allclose(s, f1 * m.family.link.mu_eta(eta), rtol=1e-10, atol=1e-12)
        assert d == pytest.approx(psi[param][0].sum(), rel=1e-10)
    assert np.ptp(vals) < 1e-8 * max(1.0, abs(vals[0]))


# ------------------------------------------------------------------ the Jacobians
def _term_prior(m, t, u):
    _, tau, pi, _, cpc, _ = m._term_factor(t, np.asarray(u, float))
    return m._term_logprior(t, np.asarray(u, float), tau, pi, cpc)[0]


def test_scalar_term_prior_integrates_to_one():
    """decov on a one-column term: τ ~ Gamma(shape, 1/scale) in log τ, with its Jacobian, integrates to 1."""
    m = build("cbpp", priors={"herd": P.decov(shape=2.5, scale=0.7)})
    t = m.terms[0]
    val, _ = integrate.quad(lambda v: math.exp(_term_prior(m, t, [v])), -30, 10)
    assert val == pytest.approx(1.0, abs=1e-8)


def test_correlation_and_simplex_jacobians_two_columns():
    """K = 2: the cpc coordinate carries LKJ(η) with its Jacobian, the softmax one Dirichlet(a) with its."""
    m = build("sleepstudy", priors={"Subject": P.decov(regularization=2.0, concentration=[2.0, 3.0])})
    t = m.terms[0]
    base = _term_prior(m, t, [0.0, 0.0, 0.0])
    eta = 2.0
    f_cpc = lambda c: math.exp(_term_prior(m, t, [0.0, 0.0, c]) - base)
    val, _ = integrate.quad(f_cpc, -25, 25)
    # ∫ (1 - ρ²)^(η-1) dρ over (-1, 1) = 2^(2η-1) B(η, η), relative to ρ = 0 (density 1)
    assert val == pytest.approx(2 ** (2 * eta - 1) * math.exp(betaln(eta, eta)), rel=1e-8)
    # the simplex: ∫ Dirichlet(π; 2, 3) dπ_1 = 1 once the normalised density at y = 0 is put back
    lp0 = _term_prior(m, t, [0.0, 0.0, 0.0])
    f_simplex = lambda y: math.exp(_term_prior(m, t, [0.0, y, 0.0]) - lp0)
    val, _ = integrate.quad(f_simplex, -40, 40)
    # at y = 0, π = (½, ½): Dirichlet(π; 2, 3) times the softmax Jacobian π1 π2
    dens0 = math.exp(gammaln(5.0) - gammaln(2.0) - gammaln(3.0)) * 0.5 ** 1 * 0.5 ** 2 * 0.25
    assert val * dens0 == pytest.approx(1.0, rel=1e-8)


def test_three_column_term_against_direct_density():
    """K = 3: log p(u) - [log Gamma(τ) + log Dirichlet(π) + log LKJ(Ω) + log |∂(τ, π1, π2, Ω10, Ω20, Ω21)/∂u|]
    is one constant (the LKJ normaliser) at every u."""
    eta, conc, shape, scale = 1.7, np.array([1.5, 2.0, 0.8]), 2.0, 1.3
    m = build("sleep_three", priors={"Subject": P.decov(regularization=eta, concentration=conc, shape=shape,
                                                        scale=scale)})
    t = m.terms[0]
    assert t.K == 3 and t.n_par == 6

    def constrained(u):
        T, tau, pi, sd, cpc, _ = m._term_factor(t, u)
        L = cpc[3]
        Om = L @ L.T
        return np.array([tau, pi[0], pi[1], Om[1, 0], Om[2, 0], Om[2, 1]]), pi, Om

    rng = np.random.default_rng(5)
    diffs = []
    for _ in range(4):
        u = rng.normal(0, 0.6, 6)
        c, pi, Om = constrained(u)
        J = np.empty((6, 6))
        h = 1e-6
        for i in range(6):
            e = np.zeros(6)
            e[i] = h
            J[:, i] = (constrained(u + e)[0] - constrained(u - e)[0]) / (2 * h)
        tau = c[0]
        direct = (shape * math.log(1 / scale) - gammaln(shape) + (shape - 1) * math.log(tau) - tau / scale
                  + gammaln(conc.sum()) - gammaln(conc).sum() + float((conc - 1) @ np.log(pi))
                  + (eta - 1) * math.log(np.linalg.det(Om)) + math.log(abs(np.linalg.det(J))))
        diffs.append(_term_prior(m, t, u) - direct)
    assert np.ptp(diffs) < 1e-6


def test_unpack_names_and_uncentred_intercept():
    m = build("sleepstudy")
    x = m.initial_point(11)
    out = m.unpack(x, ranef=True)
    assert list(out)[:6] == ["(Intercept)", "Days", "sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject",
                             "sd_Days|Subject", "sigma"]
    assert "b[Days Subject:308]" in out
    # the linear predictor from the reported (uncentred) quantities is the model's
    beta = np.array([out["(Intercept)"], out["Days"]])
    t = m.terms[0]
    B = np.array([[out[f"b[{c} Subject:{lev}]"] for c in t.names] for lev in t.levels])
    eta_user = m.X @ beta + np.sum(t.cols * B[t.codes], axis=1)
    eta_model = m.Xc @ x[:m.p] + m._Z @ (x[t.z].reshape(t.q, t.K) @ (m._term_factor(t, x[t.par])[0] * out["sigma"]).T).ravel()
    np.testing.assert_allclose(eta_user, eta_model, rtol=1e-10)
    # sd = σ τ √(K π)
    _, tau, pi, _, _, _ = m._term_factor(t, x[t.par])
    assert out["sd_Days|Subject"] == pytest.approx(out["sigma"] * tau * math.sqrt(2 * pi[1]), rel=1e-12)
    df = m.unpack_draws(np.stack([x, m.initial_point(2)]))
    assert df.shape == (2, 6) and list(df.columns) == m.param_names()
    names = build("cbpp").param_names()
    assert names == ["(Intercept)", "period2", "period3", "period4", "sd_(Intercept)|herd"]
    assert build("counts_nb").param_names()[-1] == "theta"
    assert len(m.names) == m.dim


# ------------------------------------------------------------------ priors vs rstanarm
@pytest.mark.parametrize("name", ["cbpp", "sleepstudy", "counts_poisson", "counts_nb", "gamma"])
def test_default_priors_match_rstanarm(name):
    ref = REF[name]
    ps = build(name).prior_set
    np.testing.assert_allclose([c.scale for c in ps.coefs],
                               np.atleast_1d(ref["prior"]["adjusted_scale"]), rtol=1e-10)
    np.testing.assert_allclose([c.location for c in ps.coefs], np.atleast_1d(ref["prior"]["location"]), atol=1e-12)
    assert [c.name for c in ps.coefs] == ref["coef_names"][:len(ps.coefs)]
    icpt = ref["prior_intercept"]
    assert ps.intercept[1].location[0] == pytest.approx(icpt["location"], rel=1e-12)
    want = icpt["adjusted_scale"] if icpt["adjusted_scale"] is not None else icpt["scale"]
    assert ps.intercept[1].scale[0] == pytest.approx(want, rel=1e-10)
    if ref["prior_aux"] is None:
        assert ps.aux is None
    else:
        assert ps.aux_name == ref["prior_aux"]["aux_name"]
        adj = ref["prior_aux"]["adjusted_scale"]
        rate = 1.0 / adj if adj is not None else ref["prior_aux"]["rate"]
        assert ps.aux[1].rate == pytest.approx(rate, rel=1e-10)
    cov = ref["prior_covariance"]
    for spec in ps.covariance.values():
        assert (spec.regularization, spec.concentration, spec.shape, spec.cov_scale) == \
            (cov["regularization"], cov["concentration"], cov["shape"], cov["scale"])
    # the printed summary, line for line (rstanarm's last line points to its own help page)
    printed = [line.rstrip() for line in ref["printed"]][:-1]
    ours = [line.rstrip() for line in build(name).prior_summary().splitlines()]
    assert ours == printed


def test_overrides_by_name():
    m = build("sleepstudy", priors={"Days": P.normal(0, 1), "(Intercept)": P.student_t(3, 250, 20),
                                    "sigma": P.exponential(0.1), "Subject": P.decov(regularization=2)})
    ps = m.prior_set
    assert (ps.coefs[0].dist, ps.coefs[0].scale) == ("normal", 1.0)  # a user prior is not autoscaled
    assert ps.intercept[1].dist == "student_t" and ps.intercept[1].location[0] == 250
    assert ps.aux[1].rate == 0.1
    assert ps.covariance["Subject"].regularization == 2
    text = m.prior_summary()
    assert "student_t(df = 3, location = 250, scale = 20)" in text and "decov(reg. = 2" in text
    scaled = build("sleepstudy", priors={"Days": P.normal(0, 1, autoscale=True)}).prior_set.coefs[0]
    df = gk.datasets.load("sleepstudy")
    assert scaled.scale == pytest.approx(df["Reaction"].std() / df["Days"].std(), rel=1e-12)
    # theta is accepted for rstanarm's reciprocal_dispersion, "prior" sets every coefficient
    nb = build("counts_nb", priors={"theta": P.exponential(2.0), "prior": P.cauchy(0, [1.0, 2.0])}).prior_set
    assert nb.aux[1].rate == 2.0 and [c.scale for c in nb.coefs] == [1.0, 2.0]
    flat = build("cbpp", priors={"period2": P.flat()}).prior_set
    assert not flat.proper and build("cbpp").prior_set.proper
    # a changed prior changes the density
    x = build("sleepstudy").initial_point(0)
    assert build("sleepstudy").logp(x) != m.logp(x)


def test_unknown_prior_name_lists_the_known_ones():
    with pytest.raises(ArgumentError, match=r"'Dayz'.*did you mean 'Days'.*'\(Intercept\)', 'Days', 'sigma', 'Subject'"):
        build("sleepstudy", priors={"Dayz": P.normal(0, 1)})
    with pytest.raises(ArgumentError, match="no parameter of this model"):
        build("cbpp", priors={"sigma": P.exponential(1)})  # the binomial has no sigma


def test_wrong_kind_of_prior_is_refused():
    with pytest.raises(ArgumentError, match=r"priors\['Days'\] = exponential\(\)"):
        build("sleepstudy", priors={"Days": P.exponential(1)})
    with pytest.raises(ArgumentError, match=r"priors\['Subject'\] = normal\(\).*decov"):
        build("sleepstudy", priors={"Subject": P.normal(0, 1)})
    with pytest.raises(ArgumentError, match="location 0"):
        build("sleepstudy", priors={"sigma": P.normal(5, 1)})
    with pytest.raises(ArgumentError, match="positive"):
        P.normal(0, -1)
    with pytest.raises(ArgumentError, match="must be a prior"):
        build("sleepstudy", priors={"Days": 3.0})


def test_from_problem_equals_from_formula():
    df = gk.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
    a = PosteriorModel.from_problem(fit._problem)
    b = build("cbpp")
    x = b.initial_point(4)
    assert a.logp(x) == pytest.approx(b.logp(x), rel=1e-12)
    assert a.names == b.names
