"""The zero models' start (the fixed-effects fit) and L-BFGS-B's metric from its curvature."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.fitting import driver
from glmmkit.fitting import glmm as fitting_glmm
from glmmkit.objective.layout import ParameterBlock, ParameterLayout

ROOT = Path(__file__).resolve().parents[1]
CASES = {c["id"]: c for c in json.loads((ROOT / "tests/data/zi/zi_cases.json").read_text())}


def salamanders():
    d = pd.read_csv(ROOT / "tests/data/r_datasets/Salamanders.csv")
    d["spp"] = pd.Categorical(d["spp"], categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
    d["mined"] = pd.Categorical(d["mined"], categories=["yes", "no"])
    return d


def fit_zinb2(monkeypatch=None, seen=None):
    if monkeypatch is not None:
        real = fitting_glmm.fixed_effects_start

        def spy(obj, x0, *a, **k):
            out = real(obj, x0, *a, **k)
            seen.append((obj, np.array(x0), out))
            return out

        monkeypatch.setattr(fitting_glmm, "fixed_effects_start", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gk.glmer("count ~ spp + mined + (1 | site)", salamanders(), family="negative_binomial",
                        ziformula="~ spp + mined")


def test_salamanders_zinb2_in_few_evaluations():
    # from the moment start in L-BFGS-B's identity metric the fit took 67 evaluations; from the
    # fixed-effects fit in its curvature's metric 27, at glmmTMB's optimum
    fit = fit_zinb2()
    ref = CASES["sal_zinb2"]
    assert fit.converged and fit.optimizer_info.hessian_positive_definite
    assert abs(fit.loglik - ref["logLik"]) < 1e-4
    assert fit.optimizer_info.n_evals <= 40


def fe_deviance(obj, x):
    prm = obj.layout.split(x)
    fam = obj.family.with_psi(obj.row_psi(prm))
    mu = fam.link.inverse(obj.X @ prm.beta + obj.offset)
    return -2.0 * float(np.sum(fam.log_density(obj.y, mu, obj.wt, fam.values)))


def test_fixed_effects_start_is_the_fixed_effects_optimum(monkeypatch):
    seen = []
    fit_zinb2(monkeypatch, seen)
    obj, x0, (x, H) = seen[0]
    layout = obj.layout
    theta = layout.slice("theta")
    assert np.array_equal(x[theta], x0[theta])  # θ is left to the GLMM
    assert fe_deviance(obj, x) < fe_deviance(obj, x0) - 100.0
    free = np.ones(layout.size, dtype=bool)
    free[theta] = False
    g = []
    for j in np.flatnonzero(free):  # central differences of the fixed-effects deviance (log_density only)
        h = 1e-5
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        g.append((fe_deviance(obj, up) - fe_deviance(obj, down)) / (2 * h))
    assert np.max(np.abs(g)) < 1e-2
    # the outer-product Hessian: zero in θ's rows, near the fixed-effects deviance's own curvature elsewhere
    assert np.all(H[theta] == 0) and np.all(H[:, theta] == 0)
    j = layout.slice("beta").start  # the count intercept
    e = np.zeros(layout.size)
    e[j] = 1e-4
    curv = (fe_deviance(obj, x + e) - 2 * fe_deviance(obj, x) + fe_deviance(obj, x - e)) / 1e-8
    assert H[j, j] == pytest.approx(curv, rel=0.3)


def test_metric_from_hessian_whitens_the_free_block_and_keeps_bounds_a_box():
    layout = ParameterLayout([ParameterBlock("theta", ("t",), np.zeros(1), np.full(1, np.inf), np.full(1, 0.1)),
                              ParameterBlock.free("beta", ("a", "b", "c")),
                              ParameterBlock.bounded("psi", ("p",), 20.0)])
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    H = np.zeros((5, 5))
    H[1:, 1:] = A @ A.T + np.eye(4)
    T = driver.metric_from_hessian(H, layout, np.array([0.2, 1, 1, 1, 1]))
    free = slice(1, 4)
    assert np.allclose(T[free, free].T @ H[free, free] @ T[free, free], np.eye(3))
    assert T[0, 0] == 0.2 and T[4, 4] == pytest.approx(1 / np.sqrt(H[4, 4]))
    off = T.copy()
    np.fill_diagonal(off, 0.0)
    assert np.all(off[[0, 4]] == 0) and np.all(off[:, [0, 4]] == 0)  # bounded coordinates only scaled
    assert driver.metric_from_hessian(np.full((5, 5), np.nan), layout, np.ones(5)) is None


def test_metric_lbfgs_reaches_a_bounded_quadratics_optimum():
    # min (x - c)' Q (x - c) with x_0 >= 0 and c_0 < 0: the optimum is on the bound
    Q = np.array([[2.0, 0.0, 0.0], [0.0, 50.0, 49.0], [0.0, 49.0, 50.0]])
    c = np.array([-1.0, 1.0, 2.0])

    def fg(x):
        r = x - c
        return float(r @ Q @ r), 2.0 * Q @ r

    layout = ParameterLayout([ParameterBlock("theta", ("t",), np.zeros(1), np.full(1, np.inf), np.full(1, 0.1)),
                              ParameterBlock.free("beta", ("a", "b"))])
    H = np.zeros((3, 3))
    H[1:, 1:] = 2.0 * Q[1:, 1:]
    T = driver.metric_from_hessian(H, layout, np.array([0.5, 1.0, 1.0]))
    res = driver.metric_lbfgs(fg, np.array([1.0, 0.0, 0.0]), T, layout.scipy_bounds())
    assert res.x == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
    assert res.jac == pytest.approx(fg(res.x)[1], abs=1e-6)
    assert res.nfev <= 6  # a whitened quadratic: a step or two


def test_hessian_at_predicted_modes_matches_newton_modes(monkeypatch):
    """The Hessian's difference steps take the optimum's mode moved to first order (no Newton steps):
    the standard errors of every part agree with those from modes found by Newton at each step."""
    from glmmkit.objective.parametric import ParametricLaplace

    fast = fit_zinb2()
    monkeypatch.setattr(ParametricLaplace, "gradient_near_mode", None)
    newton = fit_zinb2()
    assert fast.loglik == newton.loglik
    np.testing.assert_allclose(fast.coef_table()["std_error"], newton.coef_table()["std_error"], rtol=1e-5)
    np.testing.assert_allclose(fast.coef_table_part("zi")["std_error"], newton.coef_table_part("zi")["std_error"],
                               rtol=1e-5)
