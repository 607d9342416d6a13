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
from glmmkit.linalg.choose import SPARSE_MIN_DENSE, choose_engine, sparse_prediction
from glmmkit.linalg.symbolic import cholesky_counts, fill_ordering
from glmmkit.linalg.sparse import SparseSchurSystem, cholmod_available, schur_pattern
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


def _fake_blocks(q1, q2, n, seed=0, local=False):
    """ReBlock stand-ins with only what the chooser reads (codes, q, K, size): built without rows of Z."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, q1, n)
    g2 = (g1 * q2 // q1 + rng.integers(0, 3, n)) % q2 if local else rng.integers(0, q2, n)

    def blk(codes, q, name):
        return types.SimpleNamespace(factor=types.SimpleNamespace(codes=codes, name=name), q=q, K=1, size=q)

    return [blk(g1, q1, "a"), blk(g2, q2, "b")]


def test_chooser_from_fill(monkeypatch):
    monkeypatch.delenv("GLMMKIT_ENGINE", raising=False)
    # a random crossing: S 4.8 % dense, but its factor fills (86 % measured): dense, though S is sparse
    rand = _fake_blocks(2000, 2000, 20_000)
    pr = sparse_prediction(rand)
    assert pr["nnz_S"] < 0.06 * 2000**2 and not pr["complete"] and not pr["sparse"]
    assert choose_engine(rand) == "blocked"
    # a banded crossing (locality): its factor stays sparse, so sparse
    band = _fake_blocks(2000, 2000, 20_000, local=True)
    pr = sparse_prediction(band)
    assert pr["complete"] and pr["nnz_L"] < 0.01 * 2000**2 and pr["sparse"]
    assert choose_engine(band).startswith("sparse (")
    assert choose_engine(band, glmm=True).startswith("sparse (")  # the same fill rule for GLMMs
    assert choose_engine(_fake_blocks(30_000, 30_000, 300_000)) == "blocked"  # random: fills
    assert choose_engine(_fake_blocks(30_000, 30_000, 300_000, local=True)).startswith("sparse (")
    # ml1m's shape fills its Schur block (bound > 1: not even formed): dense
    assert choose_engine(_fake_blocks(6040, 3706, 1_000_000)) == "blocked"
    # below SPARSE_MIN_DENSE the dense path stays, whatever the fill
    assert choose_engine(_fake_blocks(600, SPARSE_MIN_DENSE // 2, 6_000, local=True)) == "blocked"


def _dense_counts(A):
    """nnz of L and Σ colcount² by a dense Cholesky of a diagonally dominant matrix on A's pattern."""
    M = A.toarray() * 0.01
    M[np.diag_indices_from(M)] = A.shape[0]
    L = np.linalg.cholesky(M)
    cc = (np.abs(L) > 0).sum(axis=0)
    return int(cc.sum()), float(np.sum(cc.astype(float) ** 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symbolic_counts_match_numeric_factor(seed):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n = 120
    R = sp.random(n, n, density=0.03, random_state=seed)
    A = ((R + R.T) != 0).astype(float) + sp.identity(n)
    for perm in (None, rng.permutation(n), fill_ordering(A)):
        B = A if perm is None else A[perm][:, perm]
        nnz, flops = _dense_counts(sp.csc_matrix(B))
        got = cholesky_counts(A, perm)
        assert got == (nnz, flops, True)
    # the cap stops the count and says so
    nnz, _, _ = cholesky_counts(A)
    capped = cholesky_counts(A, cap=nnz // 2)
    assert not capped[2] and nnz // 2 < capped[0] <= nnz


@pytest.mark.parametrize("formula", FORMULAS)
def test_schur_pattern_is_the_engines(monkeypatch, formula):
    import scipy.sparse as sp

    m = _fit(monkeypatch, "sparse-superlu", formula, _crossed())
    sysm = m._objective.system
    own = sp.csc_matrix((np.ones(sysm._indices.size), sysm._indices, sysm._indptr), shape=(sysm.ms, sysm.ms))
    got = schur_pattern(sysm.blocks)
    assert got.shape == own.shape and (got != own).nnz == 0


def _glmer(monkeypatch, engine, formula, df, family):
    monkeypatch.setenv("GLMMKIT_ENGINE", engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmkit.glmer(formula, df, family=family)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_sparse_glmm_equals_blocked(monkeypatch, family):
    df = _crossed(seed=3, n=800)
    eta = -0.2 + 0.4 * df["x"] + 0.3 * (df["y"] - df["y"].mean())
    rng = np.random.default_rng(5)
    df["yb"] = (rng.random(len(df)) < 1 / (1 + np.exp(-eta))).astype(float) if family == "binomial" \
        else rng.poisson(np.exp(eta)).astype(float)
    formula = "yb ~ x + (1 | a) + (1 | b)"
    a = _glmer(monkeypatch, "blocked", formula, df, family)
    b = _glmer(monkeypatch, "sparse-superlu", formula, df, family)
    assert a.optimizer_info.engine == "blocked" and b.optimizer_info.engine == "sparse (superlu)"
    oa, ob = a._objective, b._objective
    assert isinstance(ob._base_system(ob._X0), SparseSchurSystem) and not ob.gradient_applies()
    # the Laplace deviance and its mode at the same (θ, β): one system against the other
    for params in (np.concatenate([a.theta.to_numpy(), a.fixef.to_numpy()]),
                   np.concatenate([a.theta.to_numpy() * 1.4 + 0.1, a.fixef.to_numpy() - 0.2])):
        da, db = oa.laplace(params), ob.laplace(params)
        assert abs(da - db) <= 1e-10 * abs(da)
        np.testing.assert_allclose(ob.u, oa.u, rtol=1e-8, atol=1e-10)
    # the fits (different optimisers: exact gradient against derivative-free) meet at one optimum;
    # estimates to the optimisers' stopping (measured 4e-6 apart at most)
    assert abs(a.loglik - b.loglik) <= 1e-8 * abs(a.loglik)
    np.testing.assert_allclose(b.fixef.values, a.fixef.values, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(b.theta.values, a.theta.values, rtol=2e-5, atol=2e-5)
