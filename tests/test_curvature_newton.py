"""Newton on an approximate Hessian (``driver.curvature_newton``) and the GLMM's approximation of its
Laplace Hessian (``objective.curvature``): the route crossed canonical-link GLMMs take."""

import numpy as np
import pytest

import glmmkit
from glmmkit.fitting import driver
from glmmkit.fitting import glmm as fitting_glmm
from glmmkit.objective.curvature import laplace_curvature
from glmmkit.objective.glmm import GlmmObjective
from glmmkit.objective.layout import ParameterBlock, ParameterLayout
from test_crossed_glmm import FORMULA, _crossed


def _layout(lower):
    lower = np.asarray(lower, dtype=float)
    k = lower.shape[0]
    return ParameterLayout([ParameterBlock("beta", tuple(f"b{i}" for i in range(k)), lower,
                                           np.full(k, np.inf), np.full(k, 0.1))])


def _quadratic(A, b):
    return lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)


def test_newton_on_a_wrong_hessian_reaches_the_optimum_and_learns_it(monkeypatch):
    rng = np.random.default_rng(0)
    G = rng.normal(size=(4, 4))
    A = G @ G.T + 4 * np.eye(4)
    b = rng.normal(size=4)
    approx = np.diag(np.diag(A)) * 1.3  # no couplings, diagonals 30 % off
    calls = [0]

    def counted(x):
        calls[0] += 1
        return _quadratic(A, b)(x)

    lay = _layout(np.full(4, -np.inf))
    res = driver.curvature_newton(counted, np.zeros(4), lay, lambda x: approx)
    assert res.success and "decrement" in res.message
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-6, atol=1e-8)
    assert res.nfev == calls[0]  # every evaluation counted, the start's too
    # the secant correction beats the fixed approximation's linear rate
    monkeypatch.setattr(driver, "SECANT_DECREMENT", 0.0)
    plain = driver.curvature_newton(_quadratic(A, b), np.zeros(4), lay, lambda x: approx)
    assert plain.success and res.nfev < plain.nfev


def test_newton_holds_a_parameter_on_its_bound():
    A = np.array([[2.0, 0.3], [0.3, 1.0]])
    b = np.array([-1.0, 1.0])  # the unconstrained optimum has x0 < 0
    res = driver.curvature_newton(_quadratic(A, b), np.array([1.0, 0.0]), _layout([0.0, -np.inf]), lambda x: A)
    assert res.success and res.x[0] == 0.0
    assert abs(res.x[1] - 1.0) < 1e-8 and res.jac[0] > 0


def test_newton_reports_a_non_finite_start_and_an_unusable_hessian():
    bad = driver.curvature_newton(lambda x: (np.inf, np.full(2, np.nan)), np.zeros(2), _layout([-np.inf] * 2),
                                  lambda x: np.eye(2))
    assert not bad.success and "not finite" in bad.message
    flat = driver.curvature_newton(_quadratic(np.eye(2), np.ones(2)), np.zeros(2), _layout([-np.inf] * 2),
                                   lambda x: np.full((2, 2), np.nan))
    assert not flat.success and "not usable" in flat.message


def test_newton_accepts_a_smaller_gradient_when_values_are_rounding():
    # the value carries noise of 1e-9 (a PIRLS mode's precision): near the optimum Armijo cannot
    # order the points, the gradient in the Hessian's metric still can
    rng = np.random.default_rng(1)
    A = np.diag([4.0, 9.0])

    def fun(x):
        return 0.5 * x @ A @ x + 1e-9 * rng.random(), A @ x

    res = driver.curvature_newton(fun, np.array([1e-3, -1e-3]), _layout([-np.inf] * 2), lambda x: A * 1.1)
    assert res.success
    assert np.max(np.abs(res.x)) < 1e-8


@pytest.fixture(scope="module")
def crossed():
    df = _crossed()
    fit = glmmkit.glmer(FORMULA, df, family="binomial")
    pb = fit._problem
    return df, fit, pb


def test_curvature_beta_block_is_the_pls_information(crossed):
    """β's block is twice the inverse of lme4's use.hessian = FALSE covariance at the same mode."""
    _, fit, pb = crossed
    obj = GlmmObjective(pb.structure, pb.X, pb.y, pb.wt, pb.offset, pb.family)
    x = np.concatenate([fit._theta, fit._beta])
    obj.laplace_and_gradient(x)
    H = obj.curvature(x)
    state = obj._mode_at[2]
    nt = pb.n_theta
    np.testing.assert_allclose(H[nt:, nt:], 2.0 * np.linalg.inv(fitting_glmm.vcov_from_state(obj, state, fit._theta)),
                               rtol=1e-8)
    assert np.all(H[:nt, nt:] == 0)
    # and it is near the exact (difference) Hessian at the optimum: the diagonals within 40 % (θ's
    # block ignores the other factor: ~26 % high on this sparse crossing, ~10 % on the ml1m shape)
    warm = fitting_glmm._warm(obj)
    Hx, _ = driver.hessian_from_gradient(obj.laplace_and_gradient, x, warm, layout=obj.layout)
    ratio = np.diagonal(H) / np.diagonal(Hx)
    assert np.all((ratio > 0.6) & (ratio < 1.4)), ratio


def test_curvature_theta_block_is_the_per_level_information(crossed):
    """θ's block, checked against the information written out level by level: for a scalar term
    4θ² Σ_j s_j² / (1 + θ² s_j)², for a (1 + x | g) term ½ Σ_j tr(V_j⁻¹ Ġ_a V_j⁻¹ Ġ_b)."""
    df, fit, pb = crossed
    obj = GlmmObjective(pb.structure, pb.X, pb.y, pb.wt, pb.offset, pb.family)
    x = np.concatenate([fit._theta, fit._beta])
    obj.laplace_and_gradient(x)
    state = obj._mode_at[2]
    H = laplace_curvature(obj, state, fit._theta)
    _, W, _ = pb.family.working(state.eta, pb.y, pb.wt)
    for j, blk in enumerate(pb.structure.blocks):
        th = pb.structure.templates(fit._theta)[j][0, 0]
        s = np.bincount(blk.factor.codes, weights=W, minlength=blk.q)
        k = pb.structure.template_jacobian(fit._theta)[j].argmax()
        assert H[k, k] == pytest.approx(4 * th**2 * np.sum(s**2 / (1 + th**2 * s) ** 2), rel=1e-10)

    slope = glmmkit.glmer("y ~ x + (1 + x | user) + (1 | item)", df, family="binomial")
    pb2 = slope._problem
    obj2 = GlmmObjective(pb2.structure, pb2.X, pb2.y, pb2.wt, pb2.offset, pb2.family)
    x2 = np.concatenate([slope._theta, slope._beta])
    obj2.laplace_and_gradient(x2)
    st2 = obj2._mode_at[2]
    H2 = laplace_curvature(obj2, st2, slope._theta)
    _, W2, _ = pb2.family.working(st2.eta, pb2.y, pb2.wt)
    templates = pb2.structure.templates(slope._theta)
    jac = pb2.structure.template_jacobian(slope._theta)
    blk = next(b for b in pb2.structure.blocks if b.K == 2)
    bi = pb2.structure.blocks.index(blk)
    T = templates[bi]
    entries = list(zip(blk.tpl_rows, blk.tpl_cols))
    info = np.zeros((len(entries), len(entries)))
    for level in range(blk.q):  # the plain loop the implementation vectorises
        rows = blk.factor.codes == level
        Z = blk.columns[rows]
        A = Z.T @ (W2[rows, None] * Z)
        Vinv = A - A @ T @ np.linalg.solve(np.eye(2) + T.T @ A @ T, T.T @ A)
        for a, (r, c) in enumerate(entries):
            Ea = np.zeros((2, 2)); Ea[r, c] = 1
            Ga = Ea @ T.T + T @ Ea.T
            for b_, (r2, c2) in enumerate(entries):
                Eb = np.zeros((2, 2)); Eb[r2, c2] = 1
                Gb = Eb @ T.T + T @ Eb.T
                info[a, b_] += 0.5 * np.trace(Vinv @ Ga @ Vinv @ Gb)
    J = jac[bi]
    used = np.flatnonzero(np.any(J != 0, axis=0))
    np.testing.assert_allclose(H2[np.ix_(used, used)], 2 * (J.T @ info @ J)[np.ix_(used, used)], rtol=1e-9)


def test_newton_route_equals_lbfgs_route_with_fewer_evaluations(crossed, monkeypatch):
    df, fit, _ = crossed
    assert fit.optimizer_info.optimizer == fitting_glmm.GradientLaplace.name

    def stalled(fun_grad, x0, layout, curvature, **kw):  # Newton gives up at once: L-BFGS-B's route
        from scipy.optimize import OptimizeResult
        f0, g0 = fun_grad(x0)
        return OptimizeResult(x=x0, fun=f0, jac=g0, success=False, message="stalled", nfev=1, nit=0)

    monkeypatch.setattr(driver, "curvature_newton", stalled)
    ref = glmmkit.glmer(FORMULA, df, family="binomial")
    assert ref.optimizer_info.optimizer == fitting_glmm.GradientLaplace.fallback_name
    assert fit.loglik >= ref.loglik - 1e-7
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-5)
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), np.sqrt(np.diag(ref.vcov)), rtol=1e-4)
    assert fit.optimizer_info.n_evals < ref.optimizer_info.n_evals
