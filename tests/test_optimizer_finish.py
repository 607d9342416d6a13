"""How derivative-free optima are finished: a variance ending just above its zero bound is tried at 0
(kept only when the value is no higher), and an AGQ optimum gets Newton steps on its difference Hessian."""

import numpy as np

from glmmkit.fitting import driver
from glmmkit.objective.layout import ParameterBlock, ParameterLayout
from glmmkit.optimize import minimize_bobyqa, snap_to_zero_bounds


def test_snap_takes_the_zero_bound_when_it_is_no_worse():
    # a flat valley toward the bound: the optimum is x1 = 0 exactly
    fun = lambda x: (x[0] - 1.0) ** 2 + 1e-7 * x[1]  # noqa: E731
    x, f, evals = snap_to_zero_bounds(fun, np.array([1.0, 4e-4]), fun(np.array([1.0, 4e-4])), np.zeros(2))
    assert x[1] == 0.0 and f == fun(np.array([1.0, 0.0])) and evals == 1
    # and BOBYQA's own result lands there
    res = minimize_bobyqa(fun, np.array([0.3, 0.5]), np.zeros(2))
    assert res.x[1] == 0.0 and res.on_boundary == [1]


def test_snap_keeps_a_small_positive_optimum():
    fun = lambda x: (x[0] - 5e-4) ** 2  # noqa: E731  the optimum is inside, 5e-4 above the bound
    x0 = np.array([5e-4])
    x, f, evals = snap_to_zero_bounds(fun, x0, fun(x0), np.zeros(1))
    assert x[0] == 5e-4 and f == 0.0 and evals == 1
    res = minimize_bobyqa(fun, np.array([0.3]), np.zeros(1))
    assert abs(res.x[0] - 5e-4) < 1e-6 and res.on_boundary == []


def test_snap_tries_each_parameter_when_all_together_is_worse():
    # x0's optimum is 0, x1's is 3e-4: zeroing both raises the value, zeroing x0 alone does not
    fun = lambda x: 1e-7 * x[0] + (x[1] - 3e-4) ** 2  # noqa: E731
    x0 = np.array([2e-4, 3e-4])
    x, f, _ = snap_to_zero_bounds(fun, x0, fun(x0), np.zeros(2))
    np.testing.assert_array_equal(x, [0.0, 3e-4])
    # free parameters (no lower bound of 0) are never touched
    x, _, evals = snap_to_zero_bounds(fun, x0, fun(x0), np.full(2, -np.inf))
    np.testing.assert_array_equal(x, x0)
    assert evals == 0


def _layout(k, lower=-np.inf):
    return ParameterLayout([ParameterBlock("beta", tuple(f"b{i}" for i in range(k)), np.full(k, lower),
                                           np.full(k, np.inf), np.full(k, 0.1))])


def test_newton_polish_reaches_the_optimum_of_a_smooth_deviance():
    A = np.array([[4.0, 1.9, 0.0], [1.9, 1.0, 0.1], [0.0, 0.1, 2.0]])  # a ridge: condition number ~ 400
    opt = np.array([0.5, -1.0, 2.0])
    fun = lambda x: float((x - opt) @ A @ (x - opt)) + 0.1 * float(np.sum((x - opt) ** 4))  # noqa: E731
    lay = _layout(3)
    x0 = opt + np.array([3e-3, -6e-3, 1e-3])
    H, g = driver.hessian_from_values(fun, x0, layout=lay)
    x, H1, g1, steps = driver.newton_polish(fun, x0, H, g, lay)
    assert 1 <= steps <= 3
    assert np.max(np.abs(x - opt)) < 1e-6 < np.max(np.abs(x0 - opt))
    assert np.max(np.abs(g1)) < np.max(np.abs(g)) * 1e-2


def test_newton_polish_takes_no_step_that_leaves_the_bounds_or_raises_the_value():
    fun = lambda x: float(np.sum((x + 1.0) ** 2))  # noqa: E731  the optimum -1 is below the bound 0
    lay = _layout(2, lower=0.0)
    x0 = np.array([0.2, 0.3])
    H, g = driver.hessian_from_values(fun, x0, layout=lay)
    x, _, _, steps = driver.newton_polish(fun, x0, H, g, lay)
    assert steps == 0 and np.array_equal(x, x0)
    concave = lambda x: -float(np.sum(x ** 2))  # noqa: E731  H not positive definite: no step
    H, g = driver.hessian_from_values(concave, x0, layout=_layout(2))
    x, _, _, steps = driver.newton_polish(concave, x0, H, g, _layout(2))
    assert steps == 0 and np.array_equal(x, x0)
