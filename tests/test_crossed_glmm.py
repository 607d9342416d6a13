"""Crossed Bernoulli GLMMs with a large dense Schur block (issue 16): the exact-gradient strategy on the
pair kernel's path, the chord start of PIRLS, and agreement with the BOBYQA route."""

import numpy as np
import pandas as pd
import pytest

import glmmkit
from glmmkit.fitting import glmm as fitting_glmm
from glmmkit.linalg import BlockedSystem
from glmmkit.objective.glmm import GlmmObjective, dense_parts_fit

#: the cross part of this design: 400 users x 320 items = 128,000 entries; a bound below it sends the
#: fit down the path that MovieLens-sized designs (22 million entries) take
SMALL_MAX_CROSS = 1_000


def _crossed(seed=3, nu=400, ni=320, n=4000):
    rng = np.random.default_rng(seed)
    wu = rng.lognormal(0, 1.0, nu)
    wi = rng.lognormal(0, 1.2, ni)
    key = np.unique(rng.choice(nu, 2 * n, p=wu / wu.sum()) * ni + rng.choice(ni, 2 * n, p=wi / wi.sum()))
    key = rng.choice(key, min(n, key.shape[0]), replace=False)
    u, i = key // ni, key % ni
    x = rng.normal(size=u.shape[0])
    eta = 0.3 * x + rng.normal(0, 0.6, nu)[u] + rng.normal(0, 0.8, ni)[i]
    y = (rng.random(u.shape[0]) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "user": pd.Categorical(u), "item": pd.Categorical(i)})


FORMULA = "y ~ x + (1 | user) + (1 | item)"


@pytest.fixture(scope="module")
def data():
    return _crossed()


def _objective(df):
    fit = glmmkit.glmer(FORMULA, df, family="binomial")
    pb = fit._problem
    return pb, GlmmObjective(pb.structure, pb.X, pb.y, pb.wt, pb.offset, pb.family), fit


def test_large_cross_part_keeps_the_exact_gradient():
    """A cross part too large to form (users x items) no longer rules the gradient out when the other
    blocks are scalar and large enough for the kernels: the gradient reads it at the pairs only."""

    class B:
        def __init__(self, size, K=1):
            self.size, self.K = size, K

    assert dense_parts_fit([B(6040), B(3706)])  # MovieLens-1M: 22 million cross entries
    assert not dense_parts_fit([B(6040), B(3706 * 2, K=2)])  # a non-scalar block: the dense cross part
    assert not dense_parts_fit([B(6040), B(6000)])  # over 5,000 other effects


def test_pair_kernel_cross_part_matches_the_dense_one(data):
    """The compiled pair kernel gives the cross part of M⁻¹ at the pairs and the lead diagonal blocks
    that the numpy route (the dense cross part -S⁻¹ B D⁻¹) gives."""
    pb, obj, fit = _objective(data)
    state = obj.pirls(fit._theta, fit._beta)
    system = state.system
    assert system.use_kernel and system.R1 is None
    templates = pb.structure.templates(fit._theta)
    parts = system.inverse_parts(templates, state.factor)
    assert parts.cross_pairs is not None
    numpy_system = BlockedSystem.__new__(BlockedSystem)
    numpy_system.__dict__.update(system.__dict__)
    numpy_system.use_kernel = False
    ref = numpy_system.inverse_parts(templates, state.factor)
    at_pairs = ref.cross.ravel()[system.plan.dense_cross_pos()]
    np.testing.assert_allclose(parts.cross_pairs.ravel(), at_pairs, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(parts.lead, ref.lead, rtol=1e-9, atol=1e-13)
    rhs = np.random.default_rng(1).normal(size=pb.structure.q)
    np.testing.assert_allclose(system.solve_m(parts, rhs), numpy_system.solve_m(ref, rhs), rtol=1e-9, atol=1e-12)


def test_chord_start_costs_one_factorisation(data, monkeypatch):
    """Near the previous gradient evaluation, PIRLS iterates with that evaluation's factor and factors
    once, at the mode; value and gradient equal those of Newton's method from scratch."""
    pb, obj, fit = _objective(data)
    x0 = np.concatenate([fit._theta, fit._beta])
    obj.laplace_and_gradient(x0)
    x1 = x0 + np.array([2e-3, -1e-3, 1e-3, 2e-3])
    count = [0]
    orig = BlockedSystem.factor

    def counting(self, templates):
        count[0] += 1
        return orig(self, templates)

    monkeypatch.setattr(BlockedSystem, "factor", counting)
    f1, g1 = obj.laplace_and_gradient(x1)
    assert count[0] == 1
    fresh = GlmmObjective(pb.structure, pb.X, pb.y, pb.wt, pb.offset, pb.family)
    count[0] = 0
    f_ref, g_ref = fresh.laplace_and_gradient(x1)
    assert count[0] >= 2  # Newton from u = 0: iterations, then the factor at the mode
    assert abs(f1 - f_ref) < 1e-8 * abs(f_ref)
    np.testing.assert_allclose(g1, g_ref, rtol=1e-5, atol=1e-6)


def test_crossed_binomial_takes_the_gradient_path_and_matches_bobyqa(data, monkeypatch):
    """With the cross part over the bound, the crossed Bernoulli fit is the exact-gradient route (Newton on
    the approximate Laplace Hessian; not the BOBYQA fallback), and its estimates are the BOBYQA route's."""
    orig = GlmmObjective.gradient_applies
    monkeypatch.setattr(GlmmObjective, "gradient_applies",
                        lambda self, max_cross=SMALL_MAX_CROSS: orig(self, max_cross))
    fit = glmmkit.glmer(FORMULA, data, family="binomial")
    info = fit.optimizer_info
    assert info.optimizer == fitting_glmm.GradientLaplace.name
    assert info.converged and not info.restarts
    monkeypatch.setattr(fitting_glmm, "STRATEGIES", (fitting_glmm.StagedBobyqa,))
    ref = glmmkit.glmer(FORMULA, data, family="binomial")
    assert ref.optimizer_info.optimizer.startswith("nlopt BOBYQA")
    assert fit.loglik >= ref.loglik - 1e-6
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), np.sqrt(np.diag(ref.vcov)), rtol=2e-2)


def test_restored_warm_start_keeps_the_chord(data, monkeypatch):
    """The driver's (get, set) warm start, as the Hessian's differences use it, restores the mode as the
    last evaluation's own, so every difference step still starts with that evaluation's factor."""
    pb, obj, fit = _objective(data)
    x0 = np.concatenate([fit._theta, fit._beta])
    obj.laplace_and_gradient(x0)
    get, set_ = fitting_glmm._warm(obj)
    saved = get()
    count = [0]
    orig = BlockedSystem.factor

    def counting(self, templates):
        count[0] += 1
        return orig(self, templates)

    monkeypatch.setattr(BlockedSystem, "factor", counting)
    for j in range(x0.shape[0]):
        set_(saved)
        step = x0.copy()
        step[j] += 1e-6 * max(1.0, abs(x0[j]))
        obj.laplace_and_gradient(step)
    set_(saved)
    assert count[0] == x0.shape[0]
    assert obj._mode_at is saved[1] and obj.u is saved[1][2].u


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_pair_kernels_split_between_threads_equal_one_thread(data, monkeypatch, threads):
    """The pair kernels split S's rows between threads: each writes its own rows of S (rank update) and
    its own buffer (pair cross), so any split gives one thread's sums (to rounding of the buffer sums)."""
    pytest.importorskip("numba")
    from glmmkit.linalg import kernels

    pb, obj, fit = _objective(data)
    system = obj.pirls(fit._theta, fit._beta).system
    assert system.use_kernel
    gptr, rows = system.pair_ptr, system.pair_rows
    rng = np.random.default_rng(7)
    m = int(rows.max()) + 1
    assert len(kernels._row_chunks(gptr, rows, threads)) > 1  # the split really happens
    S_low = np.ascontiguousarray(np.tril(rng.normal(size=(m, m))))
    bd = rng.normal(size=(rows.shape[0], 1))
    a = rng.normal(size=(rows.shape[0], 1))
    M = rng.uniform(0.1, 1.0, size=(gptr.shape[0] - 1, 1, 1))
    out = {}
    for t in (1, threads):
        monkeypatch.setattr(kernels, "kernel_threads", lambda t=t: t)
        S = np.zeros((m, m))
        kernels.rank_update_kernel()(S, gptr, rows, a, M)
        out[t] = (S, kernels.pair_cross_kernel()(gptr, rows, S_low, bd))
    np.testing.assert_array_equal(out[threads][0], out[1][0])
    np.testing.assert_allclose(out[threads][1], out[1][1], rtol=1e-12, atol=1e-12)
