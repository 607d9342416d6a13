"""The sparse Schur engine (``linalg/sparse.py``) against the blocked dense-Schur engine (issue 16).

Each model is fitted on both paths (``GLMMKIT_ENGINE`` forces one) and the fits must agree; the pieces
are compared at one θ.  SuperLU always runs; CHOLMOD where scikit-sparse imports.
"""

import types
import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit
from glmmkit.linalg.choose import SPARSE_MIN_DENSE, choose_engine
from glmmkit.linalg.sparse import SparseSchurSystem, cholmod_available
from glmmkit.results.lmm import lmm_estimates

SOLVERS = ["sparse-superlu"] + (["sparse-cholmod"] if cholmod_available() else [])


def _crossed(seed=1, n=1200):
    rng = np.random.default_rng(seed)
    a, b, c = rng.integers(0, 60, n), rng.integers(0, 40, n), rng.integers(0, 15, n)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.7, 60)[a] * (1 + 0.3 * x) + rng.normal(0, 0.5, 40)[b] * (1 + 0.5 * x)
         + rng.normal(0, 0.3, 15)[c] + rng.normal(size=n))
    return pd.DataFrame(dict(y=y, x=x, a=pd.Categorical(a), b=pd.Categorical(b), c=pd.Categorical(c),
                             wt=rng.uniform(0.5, 2.0, n)))


def _fit(monkeypatch, engine, formula, df, **kw):
    monkeypatch.setenv("GLMMKIT_ENGINE", engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmkit.lmer(formula, df, **kw)


FORMULAS = ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a) + (1 + x | b) + (1 | c)",
            "y ~ x + (1 + x | a) + (1 | b)"]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("weights", [None, "wt"])
def test_sparse_equals_blocked(monkeypatch, solver, formula, weights):
    df = _crossed()
    a = _fit(monkeypatch, "blocked", formula, df, weights=weights)
    b = _fit(monkeypatch, solver, formula, df, weights=weights)
    assert a.optimizer_info.engine == "blocked"
    assert b.optimizer_info.engine == f"sparse ({solver.split('-')[1]})"
    assert isinstance(b._objective.system, SparseSchurSystem)
    assert abs(a.loglik - b.loglik) <= 1e-8 * abs(a.loglik)
    tol = 1e-4
    np.testing.assert_allclose(b.theta.values, a.theta.values, rtol=tol, atol=tol)
    np.testing.assert_allclose(b.fixef.values, a.fixef.values, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.sqrt(np.diag(b.vcov)), np.sqrt(np.diag(a.vcov)), rtol=tol)
    for k in a.ranef:
        np.testing.assert_allclose(b.ranef[k].values, a.ranef[k].values, rtol=tol, atol=tol)
        np.testing.assert_allclose(b.condvar[k].values, a.condvar[k].values, rtol=tol, atol=tol)
    # the pieces at one θ (away from either optimum)
    oa, ob = a._objective, b._objective
    theta = a.theta.to_numpy() * 1.3 + 0.05
    np.testing.assert_allclose(ob(theta), oa(theta), rtol=1e-10)
    fa, *ea = lmm_estimates(oa, oa.structure, theta)
    fb, *eb = lmm_estimates(ob, ob.structure, theta)
    for x, z in zip(ea, eb):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-11)
    tpl = oa.structure.templates(theta)
    for x, z in zip(oa.system.u_condvar(tpl, fa), ob.system.u_condvar(tpl, fb)):
        np.testing.assert_allclose(z, x, rtol=1e-9, atol=1e-13)
    rhs = np.random.default_rng(0).normal(size=sum(blk.size for blk in oa.structure.blocks))
    np.testing.assert_allclose(ob.system.solve_rhs(tpl, fb, rhs), oa.system.solve_rhs(tpl, fa, rhs),
                               rtol=1e-9, atol=1e-11)


def test_sparse_not_for_glmm(monkeypatch):
    df = _crossed(seed=2)
    df["yb"] = (df["y"] > df["y"].median()).astype(float)
    monkeypatch.setenv("GLMMKIT_ENGINE", "sparse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmmkit.glmer("yb ~ x + (1 | a) + (1 | b)", df, family="binomial")
    assert m.optimizer_info.engine == "blocked"


def _fake_blocks(q1, q2, n, seed=0, local=False):
    """ReBlock stand-ins with only what the chooser reads (codes, q, K, size): built without rows of Z."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, q1, n)
    g2 = (g1 * q2 // q1 + rng.integers(0, 3, n)) % q2 if local else rng.integers(0, q2, n)

    def blk(codes, q, name):
        return types.SimpleNamespace(factor=types.SimpleNamespace(codes=codes, name=name), q=q, K=1, size=q)

    return [blk(g1, q1, "a"), blk(g2, q2, "b")]


def test_chooser_large_sparse_and_dense_fill(monkeypatch):
    monkeypatch.delenv("GLMMKIT_ENGINE", raising=False)
    big = _fake_blocks(30_000, 30_000, 300_000)  # 10 rows per lead level: S ~0.3% dense
    assert choose_engine(big).startswith("sparse (")
    assert choose_engine(big, glmm=True) == "blocked"
    # ml1m's shape: 6,040 x 3,706 with 1e6 rows fills the Schur block: dense
    assert choose_engine(_fake_blocks(6040, 3706, 1_000_000)) == "blocked"
    # below SPARSE_MIN_DENSE the dense path stays
    assert choose_engine(_fake_blocks(2000, SPARSE_MIN_DENSE // 2, 20_000)) == "blocked"
