"""The one-grouping-factor Laplace fit has a numpy path (small models) and a numba path (large ones):
both must give the same deviance, gradient, modes and row terms, and the same fitted model."""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.families import get_family
from glmmkit.formula.parser import parse_formula
from glmmkit.frame import build_model_frame
from glmmkit.objective import single
from glmmkit.structure import build_structure

pytest.importorskip("numba")


def _data(seed, n=600, q=25, family="poisson"):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, q, n)
    x = rng.standard_normal(n)
    x2 = rng.uniform(-1, 1, n)
    b0, b1, b2 = 0.6 * rng.standard_normal(q), 0.4 * rng.standard_normal(q), 0.3 * rng.standard_normal(q)
    eta = 0.1 + 0.5 * x - 0.3 * x2 + b0[g] + b1[g] * x + b2[g] * x2
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "x2": x2, "g": [f"L{i}" for i in g]})


def _objective(formula, data, family, use_numba):
    fam = get_family(family, None, None)
    frame = build_model_frame(parse_formula(formula), data, family=fam)
    structure = build_structure(frame)
    wt = np.ones(frame.nobs)
    obj = single.SingleTermLaplace(structure, frame.X, frame.y, wt, frame.offset, fam)
    if use_numba and not obj.use_numba:
        obj.use_numba = True
    elif not use_numba and obj.use_numba:  # pragma: no cover - the test models are below the threshold
        pytest.skip("model above the numpy threshold")
    return obj, structure


CASES = [
    ("y ~ x + (1 | g)", "poisson"),
    ("y ~ x + (1 | g)", "binomial"),
    ("y ~ x + (x | g)", "poisson"),
    ("y ~ x + (x || g)", "binomial"),
    ("y ~ x + x2 + (x + x2 | g)", "poisson"),
    ("y ~ x + x2 + (1 | g) + (0 + x | g) + (0 + x2 | g)", "binomial"),
]


@pytest.mark.parametrize("formula,family", CASES)
def test_numpy_and_numba_paths_agree(formula, family):
    data = _data(11, family=family)
    fast, structure = _objective(formula, data, family, True)
    slow, _ = _objective(formula, data, family, False)
    assert fast.use_numba and not slow.use_numba
    p = structure.n_theta + fast.X.shape[1]
    rng = np.random.default_rng(3)
    # a sequence of points, warm-starting the modes from the previous one as the optimiser does
    for j in range(4):
        params = np.concatenate([np.abs(0.3 + 0.5 * rng.uniform(size=structure.n_theta)),
                                 0.3 * rng.standard_normal(p - structure.n_theta)])
        if j == 3:
            params[: structure.n_theta] = 0.0  # every θ on its bound: Newton on u alone, zero slopes
        v1, g1 = fast.value_and_grad(params)
        v2, g2 = slow.value_and_grad(params)
        assert np.isfinite(v1)
        assert v2 == pytest.approx(v1, rel=1e-10)
        np.testing.assert_allclose(g2, g1, rtol=1e-8, atol=1e-8 * max(1.0, abs(v1)))
        np.testing.assert_allclose(slow.u, fast.u, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(slow.c, fast.c, rtol=1e-8, atol=1e-9)
        assert slow.failures == fast.failures == 0


@pytest.mark.parametrize("use_numba", [False, True])
@pytest.mark.parametrize("formula,family", [CASES[0], CASES[2]])
def test_rows_in_level_order_are_used_in_place(formula, family, use_numba):
    """Data already sorted by level skips the objective's sorted copies and gives the same deviance,
    gradient and modes as the same rows in another order."""
    data = _data(7, family=family)
    ordered = data.sort_values("g", kind="stable").reset_index(drop=True)
    fam = get_family(family, None, None)
    objectives = []
    for df in (data, ordered):
        frame = build_model_frame(parse_formula(formula), df, family=fam)
        structure = build_structure(frame)
        obj = single.SingleTermLaplace(structure, frame.X, frame.y, np.ones(frame.nobs), frame.offset, fam)
        obj.use_numba = use_numba
        objectives.append(obj)
        # the fixed-effects columns are copied (sorted) only when the rows are not in level order
        assert np.shares_memory(obj.X, frame.X) == (df is ordered)
    shuffled, in_place = objectives
    params = np.concatenate([np.full(structure.n_theta, 0.6), 0.2 * np.ones(shuffled.X.shape[1])])
    if structure.n_theta > 1:
        params[1] = 0.1
    v1, g1 = shuffled.value_and_grad(params)
    v2, g2 = in_place.value_and_grad(params)
    assert v2 == pytest.approx(v1, rel=1e-12)
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(in_place.u, shuffled.u, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("formula,family", [CASES[0], CASES[2], CASES[3]])
def test_fits_agree_across_paths(formula, family, monkeypatch):
    data = _data(5, n=400, q=20, family=family)
    monkeypatch.setattr(single, "NUMBA_MIN_ROWS", 0)
    fit_nb = gk.glmer(formula, data, family=family)
    monkeypatch.setattr(single, "NUMBA_MIN_ROWS", 10**12)
    fit_np = gk.glmer(formula, data, family=family)
    assert fit_np.loglik == pytest.approx(fit_nb.loglik, rel=1e-10)
    np.testing.assert_allclose(fit_np.fixef, fit_nb.fixef, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fit_np.theta, fit_nb.theta, rtol=1e-6, atol=1e-8)


def test_numpy_path_does_not_import_numba():
    import subprocess
    import sys

    code = ("import sys, numpy as np, pandas as pd, glmmkit as gk\n"
            "rng = np.random.default_rng(1)\n"
            "d = pd.DataFrame({'y': rng.poisson(2.0, 300), 'x': rng.standard_normal(300),"
            " 'g': rng.integers(0, 10, 300).astype(str)})\n"
            "gk.glmer('y ~ x + (x | g)', d, family='poisson')\n"
            "print('numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ,
                              "PYTHONPATH": str(__import__("pathlib").Path(gk.__file__).parents[1])})
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("use_numba", [False, True])
def test_a_wild_trial_point_is_an_infinite_deviance_on_both_paths(use_numba):
    data = pd.DataFrame({"y": np.r_[0, 1, 3, 2, 0, 5, 1, 2, 4, 0, 1, 2], "x": np.tile([-1.0, 0.0, 1.0], 4),
                         "g": np.repeat(list("abcd"), 3)})
    obj, _ = _objective("y ~ x + (x | g)", data, "poisson", use_numba)
    u_before = obj.u.copy()
    value, grad = obj.value_and_grad(np.array([1e3, 5.0, 1e3, 50.0, 80.0]))
    assert value == np.inf and np.all(grad == 0)
    np.testing.assert_array_equal(obj.u, u_before)
