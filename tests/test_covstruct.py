"""Covariance structures own θ: the engine sees templates, gradients go through the structures' Jacobians.

Toy structures defined here (not offered by glmmkit) prove that nothing below the
structure layer assumes lme4's parameterisation: the exact Laplace gradient must
equal finite differences of the Laplace deviance, and the deviances must equal the
unstructured model's at the same templates.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.covstruct import CovStructure, Scalar, Unstructured
from glmmkit.exceptions import ArgumentError
from glmmkit.families import get_family
from glmmkit.formula import parse_formula
from glmmkit.frame import build_model_frame
from glmmkit.objective.glmm import GlmmObjective
from glmmkit.objective.lmm import LmmObjective
from glmmkit.structure import build_structure


class SharedSD(CovStructure):
    """k uncorrelated effects with one relative standard deviation: T = φ I."""

    direct = False

    def __init__(self, k):
        self.k, self.n_params = k, 1
        self.pattern = (np.arange(k), np.arange(k))

    def names(self, label, columns):
        return [f"{label}.shared"]

    def lower(self):
        return np.zeros(1)

    def start(self):
        return np.ones(1)

    def template(self, phi):
        return float(phi[0]) * np.eye(self.k)

    def jacobian(self, phi):
        return np.ones((self.k, 1))


class CSLike(CovStructure):
    """A nonlinear map: diagonal exp(a), every entry below it in column c equal to b_c · exp(a)."""

    def __init__(self, k):
        self.k, self.n_params = k, k  # a, b_0 .. b_{k-2}
        cols, rows = zip(*[(c, r) for c in range(k) for r in range(c, k)])
        self.pattern = (np.array(rows), np.array(cols))

    def names(self, label, columns):
        return [f"{label}.loga"] + [f"{label}.b{c}" for c in range(self.k - 1)]

    def lower(self):
        return np.full(self.k, -np.inf)

    def start(self):
        return np.zeros(self.k)

    def template(self, phi):
        T = np.zeros((self.k, self.k))
        ea = np.exp(phi[0])
        for r, c in zip(*self.pattern):
            T[r, c] = ea if r == c else phi[1 + c] * ea
        return T

    def jacobian(self, phi):
        ea = np.exp(phi[0])
        J = np.zeros((len(self.pattern[0]), self.n_params))
        for i, (r, c) in enumerate(zip(*self.pattern)):
            if r == c:
                J[i, 0] = ea
            else:
                J[i, 0] = phi[1 + c] * ea
                J[i, 1 + c] = ea
        return J


class LogScalar(CovStructure):
    """One column on the log scale: T = [exp(φ)]."""

    def __init__(self):
        self.k, self.n_params = 1, 1
        self.pattern = (np.zeros(1, dtype=int), np.zeros(1, dtype=int))

    def names(self, label, columns):
        return [f"{label}.log_{columns[0]}"]

    def lower(self):
        return np.full(1, -np.inf)

    def start(self):
        return np.zeros(1)

    def template(self, phi):
        return np.exp(phi).reshape(1, 1)

    def jacobian(self, phi):
        return np.exp(phi).reshape(1, 1)


def _data(seed=3, n=900, q1=30, q2=12):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, q1, n), rng.integers(0, q2, n)
    x, w = rng.normal(size=n), rng.normal(size=n)
    eta = 0.2 + 0.4 * x + rng.normal(0, 0.5, q1)[a] + rng.normal(0, 0.3, q1)[a] * x + rng.normal(0, 0.4, q2)[b]
    return pd.DataFrame({"a": a.astype(str), "b": b.astype(str), "x": x, "w": w,
                         "count": rng.poisson(np.exp(eta)),
                         "yes": rng.binomial(1, 1.0 / (1.0 + np.exp(-eta))),
                         "cont": eta + rng.normal(size=n)})


def _glmm(formula, df, family, structures):
    mf = build_model_frame(parse_formula(formula), df)
    st = build_structure(mf, structures=structures)
    return GlmmObjective(st, mf.X, mf.y, np.ones(mf.nobs), mf.offset, get_family(family)), st, mf


CASES = [  # (formula, structures, θ): lead and non-lead blocks, K = 1 and K > 1, linear and nonlinear maps
    ("~ x + (x | a)", {"a": CSLike(2)}, [-0.4, 0.3]),
    ("~ x + (x | a)", {"a": SharedSD(2)}, [0.6]),
    ("~ x + (x | a) + (1 | b)", {"a": CSLike(2), "b": LogScalar()}, [-0.5, -0.4, -0.7]),
    ("~ x + (1 | a) + (x + w | b)", {"b": CSLike(3)}, [0.6, -0.6, 0.2, -0.3]),
    ("~ x + (x | a) + (x | b)", {"a": SharedSD(2), "b": CSLike(2)}, [0.5, -0.8, 0.4]),
]


@pytest.mark.parametrize("family,response", [("poisson", "count"), ("binomial", "yes")])
@pytest.mark.parametrize("formula,structures,theta", CASES)
def test_exact_laplace_gradient_matches_finite_differences(family, response, formula, structures, theta):
    df = _data()
    obj, st, mf = _glmm(response + formula, df, family, structures)
    assert st.n_theta == len(theta)
    beta = np.linalg.lstsq(mf.X, np.log(df[response].to_numpy() + 0.5) if family == "poisson" else
                           df[response].to_numpy() - 0.5, rcond=None)[0] * 0.5
    params = np.concatenate([theta, beta])
    value, grad = obj.laplace_and_gradient(params)
    assert np.isfinite(value)
    u_mode = obj.u.copy()
    fd = np.empty_like(params)
    for j in range(params.shape[0]):
        h = 1e-5 * max(1.0, abs(params[j]))
        e = np.zeros_like(params)
        e[j] = h
        obj.u = u_mode.copy()
        up = obj.laplace(params + e)
        obj.u = u_mode.copy()
        down = obj.laplace(params - e)
        fd[j] = (up - down) / (2.0 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(fd))))


@pytest.mark.parametrize("formula,structures,theta", CASES)
def test_toy_structure_deviances_equal_unstructured_at_same_templates(formula, structures, theta):
    df = _data(seed=8)
    theta = np.asarray(theta, dtype=float)
    mf = build_model_frame(parse_formula("cont" + formula), df)
    toy = build_structure(mf, structures=structures)
    us = build_structure(mf)
    assert us.direct and not toy.direct
    # the unstructured θ with the same templates, term by term
    theta_us = np.concatenate([u.structure.from_template(t.template(theta)) for t, u in zip(toy.terms, us.terms)])
    for a, b in zip(toy.templates(theta), us.templates(theta_us)):
        np.testing.assert_array_equal(a, b)
    for reml in (True, False):
        lmm_toy, lmm_us = LmmObjective(toy, mf.X, mf.y, reml=reml), LmmObjective(us, mf.X, mf.y, reml=reml)
        assert lmm_toy(theta) == pytest.approx(lmm_us(theta_us), rel=1e-13)
    mfp = build_model_frame(parse_formula("count" + formula), df)
    wt = np.ones(mfp.nobs)
    g_toy = GlmmObjective(build_structure(mfp, structures=structures), mfp.X, mfp.y, wt, mfp.offset,
                          get_family("poisson"))
    g_us = GlmmObjective(build_structure(mfp), mfp.X, mfp.y, wt, mfp.offset, get_family("poisson"))
    beta = np.zeros(mfp.X.shape[1])
    v_toy, grad_toy = g_toy.laplace_and_gradient(np.concatenate([theta, beta]))
    v_us, grad_us = g_us.laplace_and_gradient(np.concatenate([theta_us, beta]))
    assert v_toy == pytest.approx(v_us, rel=1e-10)
    # the unstructured gradient is the one per template entry: contracted with the toy's Jacobian it
    # must give the toy's gradient
    expected = np.zeros(toy.n_theta)
    for b_toy, b_us, J in zip(toy.blocks, us.blocks, toy.template_jacobian(theta)):
        at = {(r, c): i for i, (r, c) in enumerate(zip(b_us.tpl_rows, b_us.tpl_cols))}
        entry = [b_us.terms[0].theta_slice.start + at[(r, c)] if len(b_us.terms) == 1 else None
                 for r, c in zip(b_toy.tpl_rows, b_toy.tpl_cols)]
        expected += grad_us[entry] @ J
    np.testing.assert_allclose(grad_toy[: toy.n_theta], expected, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_toy[toy.n_theta :], grad_us[us.n_theta :], rtol=1e-7, atol=1e-8)


def test_fast_path_uses_the_structure_jacobian():
    """The one-factor numba path (scalar and vector kernels) with non-lme4 structures."""
    from glmmkit.objective.single import SingleTermLaplace, applies
    from glmmkit.linalg.kernels import numba_available

    if not numba_available():
        pytest.skip("numba not installed")
    df = _data(seed=5)
    for formula, structures, theta in [("yes ~ x + (1 | a)", {"a": LogScalar()}, [-0.3]),
                                       ("yes ~ x + (x | a)", {"a": CSLike(2)}, [-0.4, 0.3])]:
        mf = build_model_frame(parse_formula(formula), df)
        st = build_structure(mf, structures=structures)
        fam = get_family("binomial")
        assert applies(st, fam, 1)
        wt = np.ones(mf.nobs)
        fast = SingleTermLaplace(st, mf.X, mf.y, wt, mf.offset, fam)
        slow = GlmmObjective(st, mf.X, mf.y, wt, mf.offset, fam)
        params = np.concatenate([theta, [0.1, 0.3]])
        v_fast, g_fast = fast.value_and_grad(params)
        v_slow, g_slow = slow.laplace_and_gradient(params)
        assert v_fast == pytest.approx(v_slow, rel=1e-9)
        np.testing.assert_allclose(g_fast, g_slow, rtol=1e-6, atol=1e-6)


LME4_PARAMETERS = {
    # formula: lme4's getME(, "theta") names (ours label a repeated factor's further terms g.1, g.2)
    "y ~ x + (x | a)": ["a.(Intercept)", "a.x.(Intercept)", "a.x"],
    "y ~ x + (x || a)": ["a.(Intercept)", "a.1.x"],
    "y ~ x + (x + w | a) + (1 | b)": ["a.(Intercept)", "a.x.(Intercept)", "a.w.(Intercept)", "a.x", "a.w.x", "a.w",
                                      "b.(Intercept)"],
    "y ~ (1 | b) + (0 + x | a) + (1 | a)": ["a.x", "a.1.(Intercept)", "b.(Intercept)"],
    "y ~ (1 | a/b)": ["b:a.(Intercept)", "a.(Intercept)"],
}


@pytest.mark.parametrize("formula", list(LME4_PARAMETERS))
def test_unstructured_reproduces_lme4_theta(formula):
    df = _data().rename(columns={"cont": "y"})
    st = build_structure(build_model_frame(parse_formula(formula), df))
    assert st.theta_names == LME4_PARAMETERS[formula]
    assert all(isinstance(t.structure, Scalar if t.k == 1 else Unstructured) for t in st.terms)
    # θ is each term's template lower triangle, column-major; bounds 0 on diagonals; identity start
    is_diag = np.concatenate([[r == c for c in range(t.k) for r in range(c, t.k)] for t in st.terms])
    np.testing.assert_array_equal(st.theta_lower, np.where(is_diag, 0.0, -np.inf))
    np.testing.assert_array_equal(st.theta_upper, np.full(st.n_theta, np.inf))
    np.testing.assert_array_equal(st.theta_start(), np.where(is_diag, 1.0, 0.0))
    theta = np.arange(1.0, st.n_theta + 1.0)
    for t in st.terms:
        T = st.blocks[t.block].template(theta)[np.ix_(t.block_cols, t.block_cols)]
        tri = [T[r, c] for c in range(t.k) for r in range(c, t.k)]
        np.testing.assert_array_equal(tri, theta[t.theta_slice])
        np.testing.assert_array_equal(np.triu(T, 1), 0.0)
    assert not st.is_singular(theta)
    assert st.is_singular(np.where(is_diag & (np.cumsum(is_diag) == 1), 0.0, theta))
    assert not st.is_singular(np.where(is_diag, theta, 0.0))  # zero correlations are not singular
    # the gradient contraction of lme4's terms is the identity
    np.testing.assert_array_equal(np.vstack(st.template_jacobian(theta)).sum(axis=0), np.ones(st.n_theta))


def test_reference_cases_theta_names():
    """Against lme4's own θ names, up to the documented spelling differences (g.1 labels, nested a:(b:c))."""
    cases = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())
    checked = 0
    for case in cases:
        names = list(case["results"].get("theta") or {})
        if case["engine"] != "lme4" or not names:
            continue
        fam = get_family("binomial") if case["family"] == "binomial" else None  # a cbind response needs it
        df = gk.datasets.load(case["dataset"])
        st = build_structure(build_model_frame(parse_formula(case["formula"]), df, family=fam))
        norm = lambda s: s.replace("(pen:room)", "pen:room").replace("Subject.1.", "Subject.")
        assert [norm(n) for n in st.theta_names] == [norm(n) for n in names], case["id"]
        checked += 1
    assert checked >= 10


def test_structure_argument_errors():
    mf = build_model_frame(parse_formula("cont ~ x + (x | a)"), _data())
    with pytest.raises(ArgumentError, match="'a'.*2 column"):
        build_structure(mf, structures={"a": LogScalar()})
    with pytest.raises(ArgumentError, match="unknown term.*'z'"):
        build_structure(mf, structures={"z": LogScalar()})


def test_unstructured_sign_flips_are_the_columns_below_each_diagonal():
    # column-major lower triangle of a 3 x 3 template: (0,0) (1,0) (2,0) (1,1) (2,1) (2,2)
    flips = Unstructured(3).sign_flips()
    assert set(flips) == {0, 3}
    np.testing.assert_array_equal(flips[0], [1, 2])
    np.testing.assert_array_equal(flips[3], [4])
    assert Scalar().sign_flips() == {}
    # in a model's θ: the second term's indices are offset by the first term's
    mf = build_model_frame(parse_formula("cont ~ x + (1 | b) + (x | a)"), _data())
    st = build_structure(mf)
    off = st.terms[[t.group for t in st.terms].index("a")].theta_slice.start
    np.testing.assert_array_equal(st.theta_sign_flips[off], [off + 1])
