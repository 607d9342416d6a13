"""Known relationship matrices (issue 13): ``relmat={"animal": K}`` gives ``(1 | animal)`` the
covariance σ_a² K across levels (glmmTMB's ``propto``, lme4qtl's ``relmat``).

No R package here fits it (glmmTMB 1.1.5 has no ``propto``; lme4qtl is not packaged), so the checks
are exact identities: K = I is the plain random intercept; the fit's log-likelihood equals the
Gaussian density with V = σ_a² Z K Z' + σ² I built densely; a block-diagonal K of two families
factorises; predictions, random effects and intervals are per level.
"""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ArgumentError, FormulaError


def _data(seed=7, q=60, family=False):
    rng = np.random.default_rng(seed)
    W = rng.binomial(2, 0.3, size=(q, 300)).astype(float)
    W -= W.mean(0)
    K = W @ W.T / 300
    K = K / np.mean(np.diag(K)) + 1e-3 * np.eye(q)
    labels = [f"a{i:03d}" for i in range(q)]
    u = np.linalg.cholesky(K) @ rng.normal(size=q) * 0.8
    n_per = rng.integers(1, 4, size=q)
    animal = np.repeat(np.arange(q), n_per)
    x = rng.normal(size=animal.size)
    y = 1 + 0.5 * x + u[animal] + rng.normal(scale=0.6, size=animal.size)
    d = pd.DataFrame({"animal": [labels[i] for i in animal], "x": x, "y": y,
                      "n": rng.poisson(np.exp(0.3 + 0.4 * x + 0.7 * u[animal]))})
    return d, pd.DataFrame(K, index=labels, columns=labels)


def test_identity_relationship_is_the_plain_random_intercept():
    d, K = _data()
    eye = pd.DataFrame(np.eye(len(K)), index=K.index, columns=K.columns)
    a = gk.lmer("y ~ x + (1 | animal)", d, relmat={"animal": eye})
    b = gk.lmer("y ~ x + (1 | animal)", d)
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-8)
    np.testing.assert_allclose(a.ranef["animal"].to_numpy(), b.ranef["animal"].to_numpy(), atol=1e-6)
    g1 = gk.glmer("n ~ x + (1 | animal)", d, family="poisson", relmat={"animal": eye})
    g2 = gk.glmer("n ~ x + (1 | animal)", d, family="poisson")
    assert g1.loglik == pytest.approx(g2.loglik, abs=1e-6)


def test_loglik_is_the_dense_gaussian_density():
    d, K = _data()
    fit = gk.lmer("y ~ x + (1 | animal)", d, relmat={"animal": K}, reml=False)
    assert fit.converged
    codes = pd.Index(K.index).get_indexer(d["animal"])
    Z = np.zeros((len(d), len(K)))
    Z[np.arange(len(d)), codes] = 1.0
    s2a = fit.varcorr.vcov.iloc[0]
    V = s2a * Z @ K.to_numpy() @ Z.T + fit.sigma**2 * np.eye(len(d))
    r = d["y"].to_numpy() - fit.frame.X @ fit._beta
    ll = -0.5 * (len(d) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r))
    assert fit.loglik == pytest.approx(ll, abs=1e-7)
    # the optimum: no nearby (σ_a, σ) does better
    assert fit.loglik > gk.lmer("y ~ x + (1 | animal)", d, reml=False).loglik - 50


def test_per_level_results_and_prediction():
    d, K = _data()
    fit = gk.lmer("y ~ x + (1 | animal)", d, relmat={"animal": K})
    re = fit.ranef["animal"]
    assert list(re.columns) == ["(Intercept)"] and re.shape == (len(K), 1)
    assert fit.ngroups == {"animal": len(K)}
    cv = fit.condvar["animal"]
    assert cv.shape == (len(K), 1) and np.all(cv.to_numpy() > 0)
    np.testing.assert_allclose(fit.predict(d.iloc[:20]), fit.fitted()[:20], atol=1e-10)
    vc = fit.varcorr
    assert len(vc) == 2 and vc.term1.iloc[0] == "(Intercept)"
    assert "relmat" in str(fit.summary())
    ci = fit.confint(method="profile", parm="sd_(Intercept)|animal")
    lo, hi = ci.iloc[0]
    assert lo < vc.sdcor.iloc[0] < hi
    new = d.iloc[:1].assign(animal="zz9")
    with pytest.raises(gk.exceptions.DataError, match="not in the fit"):
        fit.predict(new)
    pop = fit.predict(new, re_form="~0").to_numpy()
    assert fit.predict(new, allow_new_levels=True).to_numpy() == pytest.approx(pop)


def test_extra_levels_in_k_are_ignored_and_order_does_not_matter():
    d, K = _data()
    big = pd.DataFrame(np.eye(len(K) + 2), index=list(K.index) + ["x1", "x2"], columns=list(K.index) + ["x1", "x2"])
    big.iloc[: len(K), : len(K)] = K.to_numpy()
    a = gk.lmer("y ~ x + (1 | animal)", d, relmat={"animal": K})
    perm = np.random.default_rng(0).permutation(len(big))
    b = gk.lmer("y ~ x + (1 | animal)", d, relmat={"animal": big.iloc[perm, perm]})
    assert a.reml_criterion == pytest.approx(b.reml_criterion, abs=1e-8)


@pytest.mark.parametrize("make, exc, match", [
    (lambda K: {"animal": K.iloc[1:, 1:]}, ArgumentError, "no row for 1 level"),
    (lambda K: {"animal": K - 2 * np.eye(len(K))}, ArgumentError, "not positive semi-definite"),
    (lambda K: {"animal": K.to_numpy()}, ArgumentError, "DataFrame labelled by level"),
    (lambda K: {"sire": K}, FormulaError, "no random intercept"),
])
def test_bad_relationship_matrices(make, exc, match):
    d, K = _data()
    with pytest.raises(exc, match=match):
        gk.lmer("y ~ x + (1 | animal)", d, relmat=make(K))


def test_relmat_needs_an_intercept_only_term():
    d, K = _data()
    with pytest.raises(FormulaError, match="random intercept"):
        gk.lmer("y ~ x + (x | animal)", d, relmat={"animal": K})
