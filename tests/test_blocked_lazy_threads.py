"""The numba kernel path of the blocked Cholesky builds no triples (they are only for the bincount path and
the pairs-only inverse parts), and the BLAS threading decision for large dense parts is made once per
process and honours its environment override."""

import numpy as np
import pandas as pd
import pytest

from glmmkit import _threads
from glmmkit.formula import parse_formula
from glmmkit.frame import build_model_frame
from glmmkit.linalg import blocked
from glmmkit.linalg.blocked import BlockedSystem
from glmmkit.structure import build_structure


def _crossed(n=3000, q1=400, q2=320, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.7, q1)[a] + rng.normal(0, 0.5, q2)[b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str)})


def _system(formula, monkeypatch, kernel):
    monkeypatch.setattr(blocked, "DENSE_Z_MAX", 0)  # the plan's bincounts (where triples come from)
    monkeypatch.setattr(blocked, "DENSE_CROSS_MAX", 0)
    monkeypatch.setattr(blocked, "DENSE_CROSS_LARGE", 0)
    monkeypatch.setattr(blocked, "KERNEL_MIN_DENSE", 1 if kernel else 10**9)
    frame = build_model_frame(parse_formula(formula), _crossed())
    st = build_structure(frame)
    return BlockedSystem(st.blocks, frame.X, frame.y), st, frame.X


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (x | a) + (1 | b)"])
def test_kernel_path_builds_no_triples_and_agrees(formula, monkeypatch):
    pytest.importorskip("numba")
    fast, st, X = _system(formula, monkeypatch, kernel=True)
    slow, _, _ = _system(formula, monkeypatch, kernel=False)
    assert fast.use_kernel and not slow.use_kernel
    assert fast.R1 is None and fast.plan is not None
    assert fast.plan._triples is None and not hasattr(fast, "tri_prod")
    assert slow.plan._triples is not None  # the bincount path reads them
    np.testing.assert_array_equal(fast.pair_ptr, slow.pair_ptr)
    rng = np.random.default_rng(1)
    n = fast.n
    for theta in (st.theta_start(), st.theta_start() * 0.5 + 0.1):
        T = st.templates(theta)
        f, s = fast.factor(T), slow.factor(T)
        assert f.ok and s.ok
        assert f.logdet_lead == pytest.approx(s.logdet_lead, rel=1e-12)
        np.testing.assert_allclose(np.tril(f.L), np.tril(s.L), rtol=1e-9, atol=1e-12)
        # PIRLS's refresh keeps the path, and with it no triples
        w = rng.uniform(0.5, 2.0, n)
        z = rng.normal(size=n)
        rf = fast.reweighted(X, z, np.sqrt(w))
        rs = slow.reweighted(X, z, np.sqrt(w))
        assert rf.use_kernel and rf.plan._triples is None
        np.testing.assert_allclose(np.tril(rf.factor(T).L), np.tril(rs.factor(T).L), rtol=1e-9, atol=1e-12)


def test_triples_built_on_first_read_then_cached(monkeypatch):
    pytest.importorskip("numba")
    fast, _, _ = _system("y ~ x + (1 | a) + (1 | b)", monkeypatch, kernel=True)
    plan = fast.plan
    assert plan._triples is None
    first = plan.triples()
    assert plan.triples() is first
    left, right, level, flat, ptr = first
    cnt = np.diff(ptr)
    assert left.shape[0] == int(np.sum(cnt * (cnt + 1) // 2))
    np.testing.assert_array_equal(ptr, plan.pair_ptr())
    assert np.all(plan.pair_g[left] == level) and np.all(plan.pair_g[right] == level)


@pytest.fixture
def fresh_decision():
    _threads.reset_blas_thread_decision()
    yield
    _threads.reset_blas_thread_decision()


def test_thread_decision_measured_once(monkeypatch, fresh_decision):
    monkeypatch.delenv(_threads.BLAS_THREADS_ENV, raising=False)
    calls = []
    real = _threads._time_potrf

    def counting(A, threads, repeats, stop_after):
        calls.append((A.shape[0], threads))
        return real(A, threads, repeats, stop_after)

    monkeypatch.setattr(_threads, "_time_potrf", counting)
    first = _threads.parallel_blas_pays()
    n_calls = len(calls)
    assert n_calls >= 3 and calls[0][0] == _threads.PROBE_SIZES[0]
    info = _threads.blas_thread_decision()
    assert info["parallel"] is first
    if info["source"] == "measured":
        assert info["parallel"] == (info["all_threads_s"] < _threads.PROBE_GAIN * info["one_thread_s"])
    for _ in range(3):
        assert _threads.parallel_blas_pays() is first
        with _threads.dense_blas_threads():
            pass
    assert len(calls) == n_calls  # cached: no second measurement
    _threads.reset_blas_thread_decision()
    _threads.parallel_blas_pays()
    assert len(calls) > n_calls


def test_thread_decision_slow_parallel_means_one_thread(monkeypatch, fresh_decision):
    monkeypatch.delenv(_threads.BLAS_THREADS_ENV, raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_threads, "_time_potrf", lambda A, t, r, s: [0.01] if t == 1 else [0.005, 0.5])
    assert _threads.parallel_blas_pays() is False
    assert _threads.blas_thread_decision()["probe_n"] == _threads.PROBE_SIZES[0]
    _threads.reset_blas_thread_decision()
    monkeypatch.setattr(_threads, "_time_potrf", lambda A, t, r, s: [0.01] if t == 1 else [0.005, 0.006])
    assert _threads.parallel_blas_pays() is True
    assert _threads.blas_thread_decision()["probe_n"] == _threads.PROBE_SIZES[-1]


def test_large_dense_parts_have_their_own_decision(monkeypatch, fresh_decision):
    """A dense part of LARGE_DENSE or more is decided by a Cholesky of its size class, once, apart from
    the small probes' decision: threading gains with the order."""
    monkeypatch.delenv(_threads.BLAS_THREADS_ENV, raising=False)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    calls = []

    def fake(A, t, r, s):  # threads take 0.8 of one thread's time: enough for the large class only
        calls.append(A.shape[0])
        return [0.01] if t == 1 else [0.008]

    monkeypatch.setattr(_threads, "_time_potrf", fake)
    assert _threads.parallel_blas_pays() is False
    assert set(calls) == {_threads.PROBE_SIZES[0]}
    assert _threads.parallel_blas_pays(_threads.LARGE_DENSE + 1000) is True
    assert _threads.blas_thread_decision(_threads.LARGE_DENSE)["probe_n"] == _threads.LARGE_PROBE_SIZE
    n = len(calls)
    assert _threads.parallel_blas_pays(_threads.LARGE_DENSE) is True and len(calls) == n  # cached
    assert _threads.parallel_blas_pays(_threads.LARGE_DENSE - 1) is False  # the default class


@pytest.mark.parametrize("value,parallel", [("1", False), ("all", True)])
def test_thread_decision_environment_override(monkeypatch, fresh_decision, value, parallel):
    monkeypatch.setenv(_threads.BLAS_THREADS_ENV, value)
    monkeypatch.setattr(_threads, "_time_potrf", lambda *a: pytest.fail("measured despite the override"))
    assert _threads.parallel_blas_pays() is parallel
    assert _threads.blas_thread_decision()["source"] == _threads.BLAS_THREADS_ENV
