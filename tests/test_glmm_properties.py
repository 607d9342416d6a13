"""GLMM engine properties: quadrature against brute-force integration, response forms, errors."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln

import glmmkit as gk


def _vector_data(seed=4, q=12, m=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(q), m)
    x = rng.normal(size=q * m)
    b = rng.multivariate_normal([0, 0], [[2.5, 0.6], [0.6, 1.0]], size=q)
    eta = -0.3 + 0.8 * x + b[g, 0] + b[g, 1] * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


def _brute_force_deviance(df, theta, beta):
    """-2 log L by a dense 2-D grid over each group's spherical random effects."""
    T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    grid = np.linspace(-7, 7, 561)
    du = grid[1] - grid[0]
    U1, U2 = np.meshgrid(grid, grid, indexing="ij")
    U = np.stack([U1.ravel(), U2.ravel()], 1)  # spherical u
    B = U @ T.T
    log_phi = -0.5 * np.sum(U * U, 1) - np.log(2 * np.pi)
    total = 0.0
    for _, d in df.groupby("g"):
        x, y = d["x"].to_numpy(), d["y"].to_numpy()
        eta = beta[0] + beta[1] * x[None, :] + B[:, [0]] + B[:, [1]] * x[None, :]
        ll = np.sum(y * eta - np.log1p(np.exp(eta)), axis=1) + log_phi
        mx = ll.max()
        total += mx + np.log(np.sum(np.exp(ll - mx)) * du * du)
    return -2 * total


def test_vector_agq_matches_brute_force_integral_and_converges():
    df = _vector_data()
    fit = gk.glmer("y ~ x + (x | g)", data=df, family="binomial")
    # a point with large, correlated random effects, where Laplace is visibly off
    theta, beta = np.array([1.6, 0.4, 0.9]), np.array([-0.3, 0.8])
    obj = fit._problem.objective()
    state = obj.pirls(theta, beta)
    exact = _brute_force_deviance(df, theta, beta)
    errors = [abs(obj.agq_deviance(theta, beta, state, k) - exact) for k in (1, 3, 7, 15)]
    assert errors[0] > 1e-3  # Laplace is an approximation here
    assert errors[-1] < 1e-5 * abs(exact)
    assert errors[2] < errors[0] and errors[3] < errors[1]
    # and the fitted AGQ model: its deviance at its own optimum is the brute-force one there
    fit15 = gk.glmer("y ~ x + (x | g)", data=df, family="binomial", nagq=9)
    assert -2 * fit15.loglik == pytest.approx(_brute_force_deviance(df, fit15.theta.to_numpy(), fit15.fixef.to_numpy()), abs=1e-3)
    assert fit15.loglik >= fit.loglik - 1.0  # different approximations of one likelihood


def test_scalar_agq_one_node_is_laplace():
    df = gk.datasets.load("spinal")
    lap = gk.glmer("y ~ x + (1 | patient)", data=df, family="binomial")
    one = gk.glmer("y ~ x + (1 | patient)", data=df, family="binomial", nagq=1, method="laplace")
    assert lap.loglik == pytest.approx(one.loglik, abs=1e-9)
    obj = lap._problem.objective()
    state = obj.pirls(lap.theta.to_numpy(), lap.fixef.to_numpy())
    assert obj.agq_deviance(lap.theta.to_numpy(), lap.fixef.to_numpy(), state, 1) == pytest.approx(state.laplace, abs=1e-8)


def test_binomial_response_forms_agree():
    cbpp = gk.datasets.load("cbpp")
    a = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=cbpp, family="binomial")
    b = gk.glmer("prop ~ period + (1 | herd)", data=cbpp.assign(prop=cbpp.incidence / cbpp["size"]),
                 family="binomial", weights=cbpp["size"].to_numpy(float))
    assert a.loglik == pytest.approx(b.loglik, abs=1e-7)
    # the same data as Bernoulli rows: same estimates, log-likelihood without the binomial coefficients
    rows = []
    for _, r in cbpp.iterrows():
        rows += [(r.herd, r.period, 1)] * int(r.incidence) + [(r.herd, r.period, 0)] * int(r["size"] - r.incidence)
    bern = pd.DataFrame(rows, columns=["herd", "period", "y"]).astype({"herd": cbpp.herd.dtype, "period": cbpp.period.dtype})
    c = gk.glmer("y ~ period + (1 | herd)", data=bern, family="binomial")
    np.testing.assert_allclose(c.fixef.to_numpy(), a.fixef.to_numpy(), atol=2e-4)
    log_choose = float(np.sum(gammaln(cbpp["size"] + 1) - gammaln(cbpp.incidence + 1) - gammaln(cbpp["size"] - cbpp.incidence + 1)))
    assert c.loglik == pytest.approx(a.loglik - log_choose, abs=1e-3)
    # a two-level factor response: first level is failure
    f = gk.glmer("yf ~ period + (1 | herd)", data=bern.assign(yf=pd.Categorical(np.where(bern.y == 1, "yes", "no"))),
                 family="binomial")
    assert f.loglik == pytest.approx(c.loglik, abs=1e-7)
    t = gk.glmer("yb ~ period + (1 | herd)", data=bern.assign(yb=bern.y == 1), family="binomial")
    assert t.loglik == pytest.approx(c.loglik, abs=1e-7)


def test_row_order_and_relabelling_invariance():
    df = gk.datasets.load("counts_ri")
    a = gk.glmer("y ~ x1 + x2 + (1 | g)", data=df, family="poisson")
    b = gk.glmer("y ~ x1 + x2 + (1 | g)", data=df.sample(frac=1, random_state=1).assign(g=lambda d: "G" + d.g.astype(str)),
                 family="poisson")
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-4)


def test_nagq0_is_lme4s_fast_mode():
    cbpp = gk.datasets.load("cbpp")
    fit0 = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=cbpp, family="binomial", nagq=0)
    lap = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=cbpp, family="binomial")
    assert fit0.method == "nAGQ=0" and fit0.loglik <= lap.loglik + 1e-8
    assert fit0.loglik == pytest.approx(lap.loglik, abs=0.05)


@pytest.mark.parametrize("link", ["probit", "cloglog", "cauchit"])
def test_other_binomial_links_fit(link):
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=gk.datasets.load("cbpp"),
                   family="binomial", link=link)
    assert fit.converged and fit.link == link and np.isfinite(fit.loglik)


def test_predict_scales():
    df = gk.datasets.load("spinal")
    fit = gk.glmer("y ~ x + (1 | patient)", data=df, family="binomial")
    np.testing.assert_allclose(fit.predict(df, type="response"), fit.fitted(), rtol=1e-10)
    eta0 = fit.predict(df, re_form="~0")
    np.testing.assert_allclose(eta0, fit.fixef["(Intercept)"] + fit.fixef["x"] * df["x"], rtol=1e-10)
    assert "Family: binomial  ( logit )" in str(fit.summary())


@pytest.mark.parametrize(
    "kwargs, data_fix, error, fragment",
    [
        (dict(formula="y ~ x + (1 | patient)", family="binomial", nagq=5), lambda d: d.assign(c=d.patient), None, None),
        (dict(formula="y ~ x + (1 | patient) + (1 | visit)", family="binomial", nagq=5), None, gk.ArgumentError, "single grouping factor"),
        (dict(formula="y ~ x + (1 | patient)", family="binomal"), None, gk.ArgumentError, "did you mean 'binomial'"),
        (dict(formula="y ~ x + (1 | patient)", family="binomial", link="logitt"), None, gk.ArgumentError, "did you mean 'logit'"),
        (dict(formula="y ~ x + (1 | patient)", family="poisson", link="logit"), None, gk.ArgumentError, "not available"),
        (dict(formula="y ~ x + (1 | patient)", family="binomial", nagq=-1), None, gk.ArgumentError, "nagq"),
        (dict(formula="y3 ~ x + (1 | patient)", family="binomial"), lambda d: d.assign(y3=pd.Categorical(np.arange(len(d)) % 3)), gk.DataError, "3 levels"),
        (dict(formula="y2 ~ x + (1 | patient)", family="binomial"), lambda d: d.assign(y2=d.y * 2.0), gk.DataError, "outside [0, 1]"),
        (dict(formula="yn ~ x + (1 | patient)", family="poisson"), lambda d: d.assign(yn=-d.y), gk.DataError, "negative"),
        (dict(formula="yh ~ x + (1 | patient)", family="poisson"), lambda d: d.assign(yh=d.y + 0.5), gk.DataError, "non-integer"),
        (dict(formula="cbind(y, x) ~ x + (1 | patient)", family="poisson"), None, gk.FormulaError, "binomial"),
        (dict(formula="cbind(y, -1 - y) ~ x + (1 | patient)", family="binomial"), None, gk.DataError, "negative"),
        (dict(formula="ys ~ x + (1 | patient)", family="binomial"), lambda d: d.assign(ys=d.y.astype(str)), gk.DataError, "to_numeric"),
    ],
)
def test_glmm_input_errors(kwargs, data_fix, error, fragment):
    df = gk.datasets.load("spinal")
    if data_fix is not None:
        df = data_fix(df)
    if error is None:
        assert gk.glmer(data=df, **kwargs).converged
        return
    with pytest.raises(error) as err:
        gk.glmer(data=df, **kwargs)
    assert fragment in str(err.value)


@pytest.mark.parametrize("nagq", [1, 5])
def test_convergence_record_is_filled(nagq):
    # nagq=1 takes the one-factor fast path, nagq=5 the general path
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data=gk.datasets.load("cbpp"),
                   family="binomial", nagq=nagq)
    info = fit.optimizer_info
    assert info.converged and info.n_evals > 5 and info.time_s > 0
    assert info.gradient_norm is not None and info.gradient_norm < 1e-3
    assert info.hessian_positive_definite is True and info.pirls_failures == 0
    assert info.on_boundary == []


def _crossed_data(seed=1, n=1500):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 30, n), rng.integers(0, 20, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(size=30)[a] + 0.7 * rng.normal(size=20)[b]
    trials = rng.integers(1, 5, n)
    return pd.DataFrame({"a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b], "x": x,
                         "c": [f"a{i}_{j}" for i, j in zip(a, rng.integers(0, 3, n))],
                         "k": rng.binomial(trials, 1 / (1 + np.exp(-eta))), "trials": trials,
                         "cnt": rng.poisson(np.exp(0.5 * eta)), "expo": rng.uniform(0.5, 2.0, n)})


@pytest.mark.parametrize("formula, family", [
    ("cbind(k, trials - k) ~ x + (1 | a) + (1 | b)", "binomial"),
    ("cbind(k, trials - k) ~ x + (1 + x | b) + (1 | a)", "binomial"),
    ("cnt ~ x + offset(log(expo)) + (1 | a) + (x || b) + (1 | c)", "poisson"),
    ("cnt ~ x + (1 + x | a)", "poisson"),
])
def test_exact_laplace_gradient_matches_finite_differences(formula, family):
    """The implicit-function-theorem gradient of the Laplace deviance (crossed, nested, vector and
    `||` terms, offsets, binomial trials) against central differences of the deviance itself."""
    df = _crossed_data()
    fit = gk.glmer(formula, data=df, family=family)
    obj = fit._problem.objective(tol=1e-15)
    x = np.concatenate([fit.theta.to_numpy() * 0.8 + 0.05, fit.fixef.to_numpy() + 0.05])  # away from the optimum
    _, grad = obj.laplace_and_gradient(x)
    fd = np.empty_like(grad)
    for i in range(x.shape[0]):
        e = np.zeros_like(x)
        e[i] = 1e-5
        fd[i] = (obj.laplace(x + e) - obj.laplace(x - e)) / 2e-5
    assert np.max(np.abs(grad)) > 1.0  # a point where the gradient is not trivially zero
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-4)
