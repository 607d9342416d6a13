"""Parameter layouts: objectives, the driver and the packaging address parameters by named block.

The bounds come from the layout, so a covariance structure with an upper bound is
respected by every optimiser path, its Hessian steps and the boundary report.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.covstruct import CovStructure
from glmmkit.fitting import driver
from glmmkit.objective.layout import ParameterBlock, ParameterLayout, covariance_layout
from glmmkit.objective.predictor import PSI_BOUND, LinearPredictor, model_layout
from glmmkit.structure import build_structure


def _layout():
    return ParameterLayout([
        ParameterBlock("theta", ("a", "b"), np.array([0.0, -np.inf]), np.array([np.inf, 1.0]), np.full(2, 0.25),
                       probe=True),
        ParameterBlock.free("beta", ("(Intercept)", "x")),
        ParameterBlock.bounded("psi", ("theta",), PSI_BOUND),
    ])


def test_split_join_round_trip_and_names():
    lay = _layout()
    x = np.arange(5.0)
    prm = lay.split(x)
    np.testing.assert_array_equal(prm.theta, [0, 1])
    np.testing.assert_array_equal(prm["beta"], [2, 3])
    np.testing.assert_array_equal(prm.psi, [4])
    np.testing.assert_array_equal(lay.join(theta=prm.theta, beta=prm.beta, psi=prm.psi), x)
    assert lay.names == ["a", "b", "(Intercept)", "x", "theta"]
    assert lay.slice("beta") == slice(2, 4) and lay.size_of("zi") == 0 and "zi" not in lay
    with pytest.raises(ValueError, match="expected 5 parameters"):
        lay.split(np.zeros(4))
    with pytest.raises(ValueError, match="missing parameter blocks"):
        lay.join(theta=[0, 0], beta=[0, 0])
    with pytest.raises(ValueError, match="distinct"):
        ParameterLayout([ParameterBlock.free("beta", ("x",)), ParameterBlock.free("beta", ("z",))])


def test_bounds_free_mask_probes_and_boundary():
    lay = _layout()
    x = np.array([0.0, 1.0, 0.3, -2.0, PSI_BOUND])
    # θ_a on its lower bound, θ_b on its upper bound, ψ on its upper bound: only β is free
    np.testing.assert_array_equal(lay.free_mask(x), [False, False, True, True, False])
    assert lay.at_bound(x) == ["a", "b"]
    assert driver.on_boundary(x, lay) == ["a", "b"]
    np.testing.assert_array_equal(lay.probe_candidates(x), [0])  # only a θ on a lower bound of 0
    assert lay.scipy_bounds()[1] == (None, 1.0) and lay.scipy_bounds()[2] == (None, None)
    # the gradient on bound entries does not count against convergence
    grad = np.array([5.0, -5.0, 1e-6, 1e-6, -3.0])
    assert driver.gradient_converged(1.0, True, grad, x, lay, 100)
    assert driver.free_gradient_norm(grad, x, lay) == pytest.approx(1e-6)


def _counts(seed=4, n=800, q=40):
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, q, n), rng.integers(0, 15, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.6, q)[g] + rng.normal(0, 0.4, 15)[h]
    return pd.DataFrame({"g": g.astype(str), "h": h.astype(str), "x": x, "y": rng.poisson(np.exp(eta)),
                         "yes": rng.binomial(1, 1 / (1 + np.exp(-eta))), "cont": eta + rng.normal(size=n)})


def test_nb2_problem_layout_names_every_block():
    df = _counts()
    fit = gk.glmer("y ~ x + (1 | g)", df, family="nbinom2")
    lay = fit._problem.layout
    assert [b.name for b in lay.blocks] == ["theta", "beta", "psi"]
    assert list(lay.blocks[0].names) == list(fit.theta.index)
    assert list(lay.blocks[1].names) == list(fit.fixef.index)
    assert lay.blocks[2].names == ("theta",)
    assert fit._problem.objective().layout.names == lay.names
    pred = fit._problem.predictor
    assert isinstance(pred, LinearPredictor) and pred.part == "cond"
    np.testing.assert_allclose(pred.fixed(fit._beta), fit._problem.X @ fit._beta + fit._problem.offset)


def test_sub_model_blocks_are_named_by_part():
    df = _counts()
    fit = gk.glmer("y ~ x + (1 | g)", df, family="poisson")
    cond = fit._problem.predictor
    zi = LinearPredictor(np.ones((len(df), 1)), np.zeros(len(df)), cond.structure, ("(Intercept)",), part="zi")
    lay = model_layout([cond, zi], fit.family)
    assert [b.name for b in lay.blocks] == ["theta", "beta", "theta_zi", "beta_zi"]
    assert [b.probe for b in lay.blocks] == [True, False, True, False]


class CappedScalar(CovStructure):
    """One column with a relative standard deviation capped at ``cap``: T = [φ], 0 <= φ <= cap."""

    def __init__(self, cap):
        self.k, self.n_params, self.cap = 1, 1, cap
        self.pattern = (np.zeros(1, dtype=int), np.zeros(1, dtype=int))
        self.seen = []

    def names(self, label, columns):
        return [f"{label}.capped"]

    def lower(self):
        return np.zeros(1)

    def upper(self):
        return np.full(1, self.cap)

    def start(self):
        return np.full(1, 0.5 * self.cap)

    def template(self, phi):
        self.seen.append(float(phi[0]))
        return np.asarray(phi, dtype=float).reshape(1, 1)

    def jacobian(self, phi):
        return np.ones((1, 1))


@pytest.mark.parametrize("formula,kwargs,strategy", [
    ("y ~ x + (1 | g)", {"family": "poisson"}, "one grouping factor"),
    ("y ~ x + (1 | g) + (1 | h)", {"family": "poisson"}, "exact Laplace gradient)"),
    ("yes ~ x + (1 | g)", {"family": gk.families.Binomial(link="probit")}, "BOBYQA"),
    ("y ~ x + (1 | g)", {"family": "nbinom2"}, "exact Laplace gradient"),
])
def test_an_upper_bound_of_a_structure_holds_on_every_glmm_path(formula, kwargs, strategy):
    df = _counts()
    fit = gk.glmer(formula, df, **kwargs)
    cap = CappedScalar(0.15)  # the data's standard deviation of g is 0.6: the optimum is at the cap
    st = build_structure(fit._problem.frame, structures={"g": cap})
    capped = dataclasses.replace(fit._problem, structure=st).fit()
    assert strategy in capped.optimizer_info.optimizer
    assert capped.theta["g.capped"] == pytest.approx(0.15, abs=1e-10)
    assert max(cap.seen) <= 0.15 + 1e-12  # no evaluation (optimiser, probes, Hessian) beyond the bound
    assert "g.capped" in capped.optimizer_info.on_boundary
    assert capped.loglik < fit.loglik
    assert np.all(np.isfinite(capped.coef_table()["std_error"]))


def test_an_upper_bound_holds_for_lmm():
    df = _counts()
    fit = gk.lmer("cont ~ x + (1 | g)", df)
    cap = CappedScalar(0.2)
    st = build_structure(fit._problem.frame, structures={"g": cap})
    capped = dataclasses.replace(fit._problem, structure=st).fit()
    assert capped.theta["g.capped"] == pytest.approx(0.2, abs=1e-10)
    assert max(cap.seen) <= 0.2 + 1e-12
    assert "g.capped" in capped.optimizer_info.on_boundary


def test_covariance_layout_is_theta_alone():
    df = _counts()
    fit = gk.lmer("cont ~ x + (x | g)", df)
    lay = covariance_layout(fit.structure)
    assert [b.name for b in lay.blocks] == ["theta"] and lay.names == list(fit.theta.index)
