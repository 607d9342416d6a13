"""The nested-chain engine (``linalg/nested.py``) against the blocked dense-Schur engine (issue 16).

Each model is fitted on both paths (``GLMMKIT_ENGINE`` forces one) and everything a fit reports must
agree: the log-likelihood, θ, β, the standard errors, the conditional modes and their variances.
The engine's pieces are also compared directly at θ away from the optimum.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit
from glmmkit.linalg import make_system
from glmmkit.linalg.blocked import BlockedSystem
from glmmkit.linalg.choose import NESTED_MIN_DENSE, choose_engine
from glmmkit.linalg.nested import NestedChainSystem, nested_chain


def _nested_data(seed=1, nreg=4, nh=15, nw=60, n=900, binary=False):
    """An unbalanced three-level design: hospitals spread unevenly over regions, wards over hospitals."""
    rng = np.random.default_rng(seed)
    reg_of_h = rng.integers(0, nreg, nh)
    reg_of_h[:nreg] = np.arange(nreg)
    h_of_w = rng.integers(0, nh, nw)
    h_of_w[:nh] = np.arange(nh)
    w = rng.integers(0, nw, n)
    w[:nw] = np.arange(nw)
    h = h_of_w[w]
    r = reg_of_h[h]
    x = rng.normal(size=n)
    eta = (0.5 * x + rng.normal(0, 0.7, nreg)[r] + rng.normal(0, 0.5, nh)[h] * (1 + 0.4 * x)
           + rng.normal(0, 0.4, nw)[w] + rng.normal(0, 0.3, nw)[w] * x)
    if binary:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = 1.0 + eta + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "wt": rng.uniform(0.5, 2.0, n), "region": pd.Categorical(r),
                         "hospital": pd.Categorical(h), "ward": pd.Categorical(w)})


def _both(monkeypatch, fit):
    out = {}
    for engine in ("blocked", "nested"):
        monkeypatch.setenv("GLMMKIT_ENGINE", engine)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular fits warn on both paths alike
            out[engine] = fit()
    monkeypatch.delenv("GLMMKIT_ENGINE")
    return out["blocked"], out["nested"]


def _assert_same_fit(a, b, tol=1e-4):
    """The two fits agree: the log-likelihood to 1e-8 relative, the estimates to ``tol`` (BOBYQA stops on a
    change of the criterion, so θ is settled only to about 1e-5 and two paths whose criteria differ by
    rounding may stop a few such steps apart; ``_assert_same_at_theta`` compares at one θ tightly)."""
    assert a.optimizer_info.engine == "blocked"
    assert b.optimizer_info.engine == "nested"
    assert abs(a.loglik - b.loglik) <= 1e-8 * abs(a.loglik)
    np.testing.assert_allclose(b.theta.values, a.theta.values, rtol=tol, atol=tol)
    np.testing.assert_allclose(b.fixef.values, a.fixef.values, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.sqrt(np.diag(b.vcov)), np.sqrt(np.diag(a.vcov)), rtol=tol)
    assert set(a.ranef) == set(b.ranef)
    for k in a.ranef:
        np.testing.assert_allclose(b.ranef[k].values, a.ranef[k].values, rtol=tol, atol=tol)
        np.testing.assert_allclose(b.condvar[k].values, a.condvar[k].values, rtol=tol, atol=tol)


def _assert_same_at_theta(a, b):
    """Both fits' objectives at the blocked fit's θ: deviance, β, b, σ, vcov and condVar to rounding."""
    from glmmkit.results.lmm import lmm_estimates

    oa, ob = a._objective, b._objective
    assert isinstance(ob.system, NestedChainSystem) and isinstance(oa.system, BlockedSystem)
    theta = a.theta.to_numpy()
    np.testing.assert_allclose(ob(theta), oa(theta), rtol=1e-12)
    fa, *ea = lmm_estimates(oa, oa.structure, theta)
    fb, *eb = lmm_estimates(ob, ob.structure, theta)
    for x, z in zip(ea, eb):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-12)
    tpl = oa.structure.templates(theta)
    for x, z in zip(oa.system.u_condvar(tpl, fa), ob.system.u_condvar(tpl, fb)):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-14)


LMM_FORMULAS = [
    "y ~ x + (1 | region/hospital/ward)",
    "y ~ x + (1 | hospital/ward)",
    "y ~ x + (1 + x | hospital/ward)",
    "y ~ x + (1 | region) + (1 + x | region:hospital) + (1 | region:hospital:ward)",
    "y ~ x + (1 + x | hospital) + (1 | hospital:ward)",
]


@pytest.mark.parametrize("formula", LMM_FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_nested_equals_blocked(monkeypatch, formula, reml):
    df = _nested_data()
    a, b = _both(monkeypatch, lambda: glmmkit.lmer(formula, df, reml=reml))
    _assert_same_fit(a, b)
    _assert_same_at_theta(a, b)


def test_lmm_with_weights(monkeypatch):
    df = _nested_data(seed=4)
    a, b = _both(monkeypatch, lambda: glmmkit.lmer("y ~ x + (1 | region/hospital/ward)", df, weights="wt"))
    _assert_same_fit(a, b)
    _assert_same_at_theta(a, b)


@pytest.mark.parametrize("formula", ["y ~ x + (1 | region/hospital/ward)", "y ~ x + (1 + x | hospital/ward)"])
def test_binomial_glmm_nested_equals_blocked(monkeypatch, formula):
    df = _nested_data(seed=3, nreg=5, nh=20, nw=80, n=1600, binary=True)
    a, b = _both(monkeypatch, lambda: glmmkit.glmer(formula, df, family="binomial"))
    _assert_same_fit(a, b, tol=1e-6)  # L-BFGS-B on the exact gradient: both paths take the same steps
    # the nested path keeps the exact-gradient strategy (its inverse parts come from the selected inverse)
    assert a.optimizer_info.optimizer == b.optimizer_info.optimizer


def _systems(formula, seed=2, weights=None):
    df = _nested_data(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmkit.lmer(formula, df, reml=False)
    st = fit._objective.structure
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    y = df["y"].to_numpy()
    kw = {} if weights is None else {"weights": weights}
    sw = None
    return st, fit, BlockedSystem(st.blocks, X, y, sw, **kw), NestedChainSystem(st.blocks, X, y, sw, **kw)


@pytest.mark.parametrize("formula", LMM_FORMULAS)
def test_engine_pieces_agree_away_from_optimum(formula):
    st, fit, bs, ns = _systems(formula)
    tpl = st.templates(fit.theta.to_numpy() * 1.3 + 0.1)
    fb, fn = bs.factor(tpl), ns.factor(tpl)
    assert fb.ok and fn.ok
    logdet_b = fb.logdet_lead + 2.0 * np.sum(np.log(np.diag(fb.L)[: bs.mz]))
    np.testing.assert_allclose(fn.logdet_lead, logdet_b, rtol=1e-12)
    np.testing.assert_allclose(fn.L[-1, -1], fb.L[-1, -1], rtol=1e-12)
    np.testing.assert_allclose(fn.fixed_effects_covariance(ns.mz, 2), fb.fixed_effects_covariance(bs.mz, 2),
                               rtol=1e-10)
    for x, z in zip(bs.solve(tpl, fb), ns.solve(tpl, fn)):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-12)
    rhs = np.random.default_rng(0).normal(size=st.q)
    np.testing.assert_allclose(ns.solve_rhs(tpl, fn, rhs), bs.solve_rhs(tpl, fb, rhs), rtol=1e-9, atol=1e-12)
    for x, z in zip(bs.u_condvar(tpl, fb), ns.u_condvar(tpl, fn)):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-13)


def test_signed_weights_and_inverse_parts():
    from glmmkit.objective.glmm import row_leverages

    formula = "y ~ x + (1 + x | hospital/ward)"
    w = np.random.default_rng(5).uniform(0.2, 1.5, 900)
    st, fit, bs, ns = _systems(formula, weights=w)
    tpl = st.templates(fit.theta.to_numpy() + 0.05)
    fb, fn = bs.factor(tpl), ns.factor(tpl)
    np.testing.assert_allclose(fn.logdet_lead, fb.logdet_lead + 2.0 * np.sum(np.log(np.diag(fb.L)[: bs.mz])),
                               rtol=1e-12)
    pb, pn = bs.inverse_parts(tpl, fb), ns.inverse_parts(tpl, fn)
    cb, Pb = row_leverages(st, pb, tpl)
    cn, Pn = row_leverages(st, pn, tpl)
    np.testing.assert_allclose(cn, cb, rtol=1e-10)
    for x, z in zip(Pb, Pn):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-12)
    rhs = np.random.default_rng(1).normal(size=st.q)
    np.testing.assert_allclose(ns.solve_m(pn, rhs), bs.solve_m(pb, rhs), rtol=1e-9, atol=1e-12)
    # M⁻¹ at pairs of effects of one row, within one block or across blocks and mixed, against the dense inverse
    Zd = st.z_matrix().toarray()
    ZL = Zd @ np.column_stack([st.b_of(tpl, e) for e in np.eye(st.q)])
    Minv = np.linalg.inv(ZL.T @ (w[:, None] * ZL) + np.eye(st.q))
    full = ns._selected_inverse(fn)
    rows = np.arange(900)
    idx = [blk.offset + blk.factor.codes * blk.K + c for blk in st.blocks for c in range(blk.K)]
    for a in idx:
        for b in idx:
            np.testing.assert_allclose(ns.inverse_at(full, a, b), Minv[a, b], rtol=1e-9, atol=1e-13)
    mixed_i = np.where(rows % 2 == 0, idx[0], idx[-1])
    mixed_j = np.where(rows % 3 == 0, idx[1], idx[2])
    np.testing.assert_allclose(ns.inverse_at(full, mixed_i, mixed_j), Minv[mixed_i, mixed_j], rtol=1e-9, atol=1e-13)
    # a weight negative enough makes a level's block indefinite: the factor says so
    bad = w.copy()
    bad[:] = -1.0
    assert not NestedChainSystem(st.blocks, np.ones((900, 1)), np.zeros(900), weights=bad).factor(tpl).ok


def test_chain_detection():
    df = _nested_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested = glmmkit.lmer("y ~ x + (1 | region/hospital/ward)", df)
        crossed = glmmkit.lmer("y ~ x + (1 | ward) + (1 | x_bin)", df.assign(x_bin=pd.Categorical(df.x > 0)))
    blocks = nested._objective.structure.blocks
    chain = nested_chain(blocks)
    assert [blocks[i].factor.name for i in chain] == ["ward:hospital:region", "hospital:region", "region"]
    # wards meet both x_bin levels: not nested
    assert nested_chain(crossed._objective.structure.blocks) is None
    assert choose_engine(crossed._objective.structure.blocks, engine="nested") == "blocked"
    assert choose_engine([]) == "fixed-only"
    with pytest.raises(ValueError, match="GLMMKIT_ENGINE"):
        choose_engine(blocks, engine="iterative")


def test_factory_choice_recorded(monkeypatch):
    monkeypatch.delenv("GLMMKIT_ENGINE", raising=False)
    small = _nested_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_small = glmmkit.lmer("y ~ x + (1 | region/hospital/ward)", small)
    assert fit_small.optimizer_info.engine == "blocked"  # 19 dense rows: the blocked engine is faster
    assert "engine" in fit_small.optimizer_info.as_dict()
    # enough hospitals that the dense Schur complement passes the threshold
    rng = np.random.default_rng(7)
    nh = NESTED_MIN_DENSE + 10
    w = np.repeat(np.arange(3 * nh), 4)
    h = w % nh
    df = pd.DataFrame({"y": rng.normal(size=w.shape[0]) + rng.normal(size=nh)[h], "hospital": pd.Categorical(h),
                       "ward": pd.Categorical(w // nh)})
    fit = glmmkit.lmer("y ~ 1 + (1 | hospital/ward)", df)
    assert fit.optimizer_info.engine == "nested"
    assert isinstance(fit._objective.system, NestedChainSystem)
    assert make_system([], np.ones((3, 1)), np.zeros(3)).engine == "fixed-only"


def test_negative_binomial_nested_equals_blocked(monkeypatch):
    # a family with its own parameter: Newton on the mode with signed observed weights
    df = _nested_data(seed=6, nreg=5, nh=20, nw=80, n=1600)
    df["count"] = np.random.default_rng(0).poisson(np.exp(0.3 * (df["y"] - df["y"].mean())))
    a, b = _both(monkeypatch, lambda: glmmkit.glmer("count ~ x + (1 | region/hospital/ward)", df,
                                                    family="negative_binomial"))
    _assert_same_fit(a, b, tol=1e-6)
