"""BlockedSystem.reweighted (PIRLS's in-place refresh) equals a system built from scratch, on every path."""

import numpy as np
import pandas as pd
import pytest

from glmmkit.formula import parse_formula
from glmmkit.frame import _fast_arithmetic, build_model_frame
from glmmkit.design import model_matrix
from glmmkit.linalg.blocked import BlockedSystem
from glmmkit.structure import build_structure


def _data(seed=3, n=403, sizes=(403, 118, 63)):
    n = max(n, 2 * sizes[0])
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "y": rng.poisson(2.0, n).astype(float),
        "x": rng.normal(size=n),
        "a": pd.Categorical((np.arange(n) % sizes[0]).astype(str)),
        "b": pd.Categorical(rng.integers(0, sizes[1], n).astype(str)),
        "c": pd.Categorical(rng.integers(0, sizes[2], n).astype(str)),
    })


CASES = [
    ("y ~ x + (1|a) + (1|b) + (1|c)", (403, 118, 63)),       # sparse cross block: rank update by pairs
    ("y ~ x + (1|a) + (1|b)", (60, 12, 2)),                   # small: dense cross block
    ("y ~ x + (1|a) + (1|b)", (700, 700, 2)),                 # large sparse cross block: the numba rank update
    ("y ~ x + (1 + x|a) + (1|b)", (40, 9, 2)),                # K1 = 2 lead with another factor
    ("y ~ x + (1|a) + (1 + x|b)", (80, 10, 2)),               # a vector-valued non-lead block
    ("y ~ x + (1 + x|a)", (30, 2, 2)),                        # a single factor
]


@pytest.mark.parametrize("formula,sizes", CASES)
@pytest.mark.parametrize("signed", [False, True])
def test_reweighted_matches_fresh_system(formula, sizes, signed):
    df = _data(sizes=sizes)
    frame = build_model_frame(parse_formula(formula), df)
    st = build_structure(frame)
    n = frame.X.shape[0]
    rng = np.random.default_rng(7)
    theta = 0.3 + rng.uniform(0.2, 1.0, st.n_theta) * np.isfinite(st.theta_lower)
    for X in (frame.X, np.empty((n, 0))):
        base = BlockedSystem(st.blocks, X, np.zeros(n))
        for _ in range(2):  # twice: the second refresh reuses the cached index maps
            w = rng.uniform(0.2, 3.0, n)
            z = rng.normal(size=n)
            if signed:
                w[:5] *= -0.01  # observed information: a few slightly negative weights
                fresh = BlockedSystem(st.blocks, X, z, weights=w)
                new = base.reweighted(X, z, weights=w)
            else:
                fresh = BlockedSystem(st.blocks, X, z, np.sqrt(w))
                new = base.reweighted(X, z, np.sqrt(w))
            tpl = st.templates(theta)
            f1, f2 = fresh.factor(tpl), new.factor(tpl)
            assert f1.ok == f2.ok
            np.testing.assert_allclose(f2.logdet_lead, f1.logdet_lead, rtol=1e-12)
            np.testing.assert_allclose(np.tril(f2.L), np.tril(f1.L), rtol=1e-10, atol=1e-10)
            if f1.ok:
                for a, b in zip(fresh.solve(tpl, f1), new.solve(tpl, f2)):
                    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10)
                if new.mz:
                    p1, p2 = fresh.inverse_parts(tpl, f1), new.inverse_parts(tpl, f2)
                    for name in ("lead", "cross", "S_inv", "BD"):
                        np.testing.assert_allclose(getattr(p2, name), getattr(p1, name), rtol=1e-9, atol=1e-10)
                rhs = rng.normal(size=st.q)
                np.testing.assert_allclose(new.solve_rhs(tpl, f2, rhs), fresh.solve_rhs(tpl, f1, rhs),
                                           rtol=1e-9, atol=1e-10)
        assert base.reweighted(X, z, np.sqrt(np.abs(w))) is not base


def test_reweighted_rejects_other_fixed_columns():
    df = _data(sizes=(60, 12, 2))
    frame = build_model_frame(parse_formula("y ~ x + (1|a) + (1|b)"), df)
    st = build_structure(frame)
    base = BlockedSystem(st.blocks, frame.X, np.zeros(len(df)))
    with pytest.raises(ValueError, match="columns"):
        base.reweighted(np.empty((len(df), 0)), np.zeros(len(df)))


@pytest.mark.parametrize("expr", ["size - incidence", "log(size)", "-size / 2 + 1.5 * incidence", "exp(-(size - 3))",
                                  "sqrt(size)"])
def test_fast_arithmetic_equals_formulaic(expr):
    df = pd.DataFrame({"size": [3, 5, 8, 2], "incidence": [1, 0, 4, 2]})
    got = _fast_arithmetic(expr, df)
    want = np.asarray(model_matrix(f"~ 0 + I({expr})", df), dtype=float).ravel()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("expr", ["size ** 2", "g", "size - g", "scale(size)", "log(size, 2)"])
def test_fast_arithmetic_leaves_the_rest_to_formulaic(expr):
    df = pd.DataFrame({"size": [3.0, 5.0], "g": pd.Categorical(["a", "b"])})
    assert _fast_arithmetic(expr, df) is None


def _nested_data(seed=5, n=403, broods=118, locations=63):
    """grouseticks' layout: an observation-level factor, broods nested in locations."""
    rng = np.random.default_rng(seed)
    loc_of_brood = np.concatenate([np.arange(locations), rng.integers(0, locations, broods - locations)])
    brood = np.concatenate([np.arange(broods), rng.integers(0, broods, n - broods)])
    return pd.DataFrame({
        "y": rng.poisson(2.0, n).astype(float),
        "x": rng.normal(size=n),
        "a": pd.Categorical(np.arange(n).astype(str)),
        "b": pd.Categorical(brood.astype(str)),
        "c": pd.Categorical(loc_of_brood[brood].astype(str)),
    })


@pytest.mark.parametrize("formula", ["y ~ x + (1|a) + (1|b) + (1|c)", "y ~ x + (1|a) + (1|b) + (1 + x|c)"])
@pytest.mark.parametrize("signed", [False, True])
def test_diagonal_prefix_matches_lapack(formula, signed):
    """A first non-lead block whose Schur part is diagonal is divided out before LAPACK: the factor,
    its failures and everything derived from it equal LAPACK's on the whole dense part."""
    import copy

    df = _nested_data()
    frame = build_model_frame(parse_formula(formula), df)
    st = build_structure(frame)
    n = frame.X.shape[0]
    rng = np.random.default_rng(11)
    for X in (frame.X, np.empty((n, 0))):
        for by_plan in (False, True):
            base = BlockedSystem(st.blocks, X, np.zeros(n), by_plan=by_plan)
            assert base._dprefix == st.blocks[1].q
            w = rng.uniform(0.2, 3.0, n)
            z = rng.normal(size=n)
            if signed:
                w[:5] *= -0.01
                sys_ = base.reweighted(X, z, weights=w)
            else:
                sys_ = base.reweighted(X, z, np.sqrt(w))
            plain = copy.copy(sys_)
            plain._dprefix = 0
            for theta in (0.3 + rng.uniform(0.2, 1.5, st.n_theta) * np.isfinite(st.theta_lower),
                          np.where(np.isfinite(st.theta_lower), 0.0, 0.1)):
                tpl = st.templates(theta)
                f1, f2 = plain.factor(tpl), sys_.factor(tpl)
                assert (f1.ok, f1.info) == (f2.ok, f2.info)
                np.testing.assert_allclose(np.tril(f2.L), np.tril(f1.L), rtol=1e-10, atol=1e-10)
                if f1.ok:
                    for a, b in zip(plain.solve(tpl, f1), sys_.solve(tpl, f2)):
                        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-10)
                    if sys_.mz:
                        p1, p2 = plain.inverse_parts(tpl, f1), sys_.inverse_parts(tpl, f2)
                        np.testing.assert_allclose(p2.S_inv, p1.S_inv, rtol=1e-9, atol=1e-10)
                        np.testing.assert_allclose(p2.lead, p1.lead, rtol=1e-9, atol=1e-10)
