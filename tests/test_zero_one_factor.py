"""The per-level path for zero models with one scalar grouping factor (objective/single_parametric.py)
equals the general ParametricLaplace objective: value, exact gradient and modes, at the estimates and
away from them, and the fits it makes are the general path's."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.fitting import glmm as fitting_glmm
from glmmkit.objective import single_parametric

ROOT = Path(__file__).resolve().parents[1]
CASES = {c["id"]: c for c in json.loads((ROOT / "tests/data/zi/zi_cases.json").read_text())}
FAMILY = {"poisson": "poisson", "nbinom2": "negative_binomial", "nbinom1": "nbinom1",
          "truncated_nbinom2": "truncated_nbinom2", "truncated_poisson": "truncated_poisson", "ziGamma": "gamma"}
#: Salamanders' zinb2, zip, zinb1, both hurdles, and a Gamma hurdle (glmmTMB's ziGamma) with a slope
PATH_CASES = ["sal_zinb2", "sal_zipoisson", "sal_zinb1", "sal_hurdle_nb2", "sal_hurdle_poisson", "sim_zigamma_hurdle"]


def load(case):
    d = pd.read_csv(ROOT / case["data"])
    if "Salamanders" in case["data"]:
        d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def fit_case(cid, **kw):
    case = CASES[cid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gk.glmer(case["formula"], load(case), family=FAMILY[case["family"]], link=case["link"],
                        ziformula=case["ziformula"], **kw)


_FITS = {}


def fitted(cid):
    if cid not in _FITS:
        _FITS[cid] = fit_case(cid)
    return _FITS[cid]


def _points(fit):
    """The estimates and two points away from them (every coordinate moved, θ kept inside its bound)."""
    x = fit._x.copy()
    rng = np.random.default_rng(7)
    layout = fit._problem.layout if hasattr(fit, "_problem") else fit.problem.layout
    th = layout.slice("theta")
    out = [x]
    for scale in (0.02, 0.2):
        y = x + scale * rng.standard_normal(x.shape[0]) * np.maximum(np.abs(x), 0.5)
        y[th] = np.abs(x[th]) * (1.0 + scale)
        out.append(y)
    return out


def _slope_fit():
    """A scalar random slope (z ≠ 1) and a dispersion parameter: the path's products with z."""
    d = load(CASES["sal_zinb2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gk.glmer("count ~ mined + cover + (0 + cover | site)", d, family="negative_binomial",
                        ziformula="~ mined")


@pytest.mark.parametrize("cid", PATH_CASES + ["slope"])
def test_per_level_path_equals_general_objective(cid):
    fit = _slope_fit() if cid == "slope" else fitted(cid)
    problem = fit._problem
    assert single_parametric.applies(problem.structure, problem.sub_predictors, 1)
    for x in _points(fit):
        general = problem.objective(tol=1e-15)
        fast = single_parametric.OneFactorParametric(problem.objective())
        v_general, g_general = general.laplace_and_gradient(x)
        v_fast, g_fast = fast.laplace_and_gradient(x)
        assert np.isfinite(v_fast)
        assert v_fast == pytest.approx(v_general, rel=1e-11, abs=1e-8)
        np.testing.assert_allclose(g_fast, g_general, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(g_general))))
        np.testing.assert_allclose(fast.u, general.u, rtol=1e-7, atol=1e-8)
        # the value alone, from the modes just found and from zero
        assert fast.laplace(x) == pytest.approx(v_general, rel=1e-11, abs=1e-8)
        fast.u[:] = 0.0
        assert fast.laplace(x) == pytest.approx(v_general, rel=1e-11, abs=1e-8)


@pytest.mark.parametrize("cid", ["sal_zinb2", "sal_hurdle_nb2", "sal_zipoisson"])
def test_fit_by_per_level_path_equals_general_fit(cid, monkeypatch):
    fast = fitted(cid)
    monkeypatch.setattr(single_parametric, "applies", lambda *a, **k: False)
    general = fit_case(cid)
    assert fast.loglik == pytest.approx(general.loglik, abs=1e-8)
    np.testing.assert_allclose(fast._x, general._x, rtol=1e-6, atol=1e-8)
    se_fast, se_general = np.sqrt(np.diag(fast._x_cov)), np.sqrt(np.diag(general._x_cov))
    np.testing.assert_allclose(se_fast, se_general, rtol=1e-6)
    assert fast.converged and general.converged


def test_per_level_path_is_taken_for_zero_models(monkeypatch):
    made = []
    real = single_parametric.OneFactorParametric

    def spy(obj):
        made.append(real(obj))
        return made[-1]

    monkeypatch.setattr(single_parametric, "OneFactorParametric", spy)
    fit_case("sal_zinb2")
    assert len(made) == 1 and made[0].n_evals > 20 and made[0].failures == 0
    made.clear()
    fit_case("sal_zinb2_zi_re")  # random effects in the zero part: the joint objective
    assert made == []


def test_applies_only_to_one_scalar_term():
    d = load(CASES["sal_zinb2"])
    p = fitting_glmm  # noqa: F841  (the module is what fits use)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = gk.glmer("count ~ mined + (1 | site) + (1 | spp)", d, family="poisson", ziformula="~ mined")
        slope = gk.glmer("count ~ mined + (1 + cover | site)", d, family="poisson", ziformula="~ mined")
    assert not single_parametric.applies(two._problem.structure, two._problem.sub_predictors, 1)
    assert not single_parametric.applies(slope._problem.structure, slope._problem.sub_predictors, 1)
    one = fitted("sal_zinb2")._problem
    assert not single_parametric.applies(one.structure, one.sub_predictors, 3)


@pytest.mark.parametrize("cid", ["sal_zinb2", "sal_hurdle_nb2", "sim_zigamma_hurdle", "slope"])
def test_batched_difference_steps_equal_one_by_one(cid):
    fit = _slope_fit() if cid == "slope" else fitted(cid)
    problem = fit._problem
    fast = single_parametric.OneFactorParametric(problem.objective())
    x = fit._x.copy()
    assert fast.gradients_near_mode(x[None, :]) is None  # nothing to predict from yet
    fast.laplace_and_gradient(x)
    get, set_ = fast.warm()
    saved = get()
    steps = 1e-6 * np.maximum(1.0, np.abs(x))
    points = x + np.diag(steps)
    values, grads = fast.gradients_near_mode(points)
    np.testing.assert_array_equal(fast.u, saved[0])  # the modes are not changed
    fast.BATCH_ELEMENTS = 3 * fast.codes.shape[0]  # three points a pass
    v3, g3 = fast.gradients_near_mode(points)
    np.testing.assert_allclose(v3, values, rtol=1e-14)
    np.testing.assert_allclose(g3, grads, rtol=1e-12, atol=1e-13)
    for j, p in enumerate(points):
        set_(saved)
        v, g = fast.gradient_near_mode(p)
        assert values[j] == pytest.approx(v, rel=1e-13)
        # near the optimum the gradient is ~1e-5, so its sums' rounding is compared absolutely: 1e-11
        # moves the difference quotient (steps of 1e-6) by 1e-5, against Hessian entries of 1-1000
        np.testing.assert_allclose(grads[j], g, rtol=1e-9, atol=1e-11)
