"""Property-based tests over random small designs (hypothesis; deterministic and bounded for CI).

* any data a user could plausibly pass ends in a fit or in glmmkit's own error, never
  another library's exception;
* fits do not depend on the order of the rows or on the labels of the levels;
* the Gaussian GLMM (Laplace, exact for it) is the LMM fitted by maximum likelihood;
* dropping a random term never raises the maximised log-likelihood.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glmmkit as gk
from glmmkit.exceptions import GlmmkitError

# derandomize: the same examples on every run, so CI never flakes; deadline off: first fits JIT-compile
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def designs(draw, min_groups=2, max_groups=6, max_per_group=6):
    """A small grouped data set with a response of every kind, some awkwardness included."""
    n_groups = draw(st.integers(min_groups, max_groups))
    sizes = draw(st.lists(st.integers(1, max_per_group), min_size=n_groups, max_size=n_groups))
    g = np.repeat(np.arange(n_groups), sizes)
    n = g.shape[0]
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x_kind = draw(st.sampled_from(["normal", "constant", "integer", "huge"]))
    x = {"normal": rng.standard_normal(n), "constant": np.full(n, 2.0),
         "integer": rng.integers(0, 3, n).astype(float), "huge": 1e6 + rng.standard_normal(n)}[x_kind]
    u = rng.standard_normal(n_groups)[g]
    eta = 0.5 * (x - x.mean()) / (x.std() + 1.0) + u
    df = pd.DataFrame({
        "y": eta + rng.standard_normal(n),
        "yb": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
        "yc": rng.poisson(np.exp(0.5 * eta)),
        "x": x,
        "g": pd.Categorical([f"L{i}" for i in g]),
        "h": pd.Categorical([f"M{i}" for i in rng.integers(0, 3, n)]),
    })
    n_missing = draw(st.integers(0, 2))
    if n_missing:
        df.loc[rng.choice(n, min(n_missing, n), replace=False), "y"] = np.nan
    return df


MODELS = [
    ("lmer", "y ~ x + (1 | g)", {}),
    ("lmer", "y ~ x + (x | g)", {"reml": False}),
    ("lmer", "y ~ 1 + (1 | g) + (1 | h)", {}),
    ("glmer", "yb ~ x + (1 | g)", {"family": "binomial"}),
    ("glmer", "yc ~ x + (1 | g)", {"family": "poisson"}),
    ("glmer", "yc ~ x + (1 | g)", {"family": "poisson", "nagq": 5}),
    ("glmer", "yb ~ 1 + (1 | g) + (1 | h)", {"family": "binomial", "nagq": 0}),
]


def _fit(kind, formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings name their culprit; here only errors matter
        return (gk.lmer if kind == "lmer" else gk.glmer)(formula, data, **kw)


@settings(max_examples=100, **SETTINGS)
@given(df=designs(min_groups=1, max_groups=5, max_per_group=4), model=st.sampled_from(MODELS))
def test_only_glmmkit_errors(df, model):
    kind, formula, kw = model
    try:
        fit = _fit(kind, formula, df, **kw)
    except GlmmkitError:
        return
    assert np.isfinite(fit.loglik)
    assert np.all(np.isfinite(fit.fixef.to_numpy()))
    assert isinstance(fit.converged, bool) and isinstance(fit.singular, bool)


def _relabel_and_shuffle(df, seed):
    rng = np.random.default_rng(seed)
    out = df.iloc[rng.permutation(len(df))].copy()
    levels = list(df["g"].cat.categories)
    new = {lv: f"Z{k}" for lv, k in zip(levels, rng.permutation(len(levels)))}
    out["g"] = pd.Categorical(out["g"].astype(str).map(new))
    return out


@settings(max_examples=30, **SETTINGS)
@given(df=designs(min_groups=3), seed=st.integers(0, 1000),
       model=st.sampled_from([m for m in MODELS if "+ (1 | h)" not in m[1]]))
def test_invariant_to_row_order_and_level_labels(df, seed, model):
    kind, formula, kw = model
    try:
        fit = _fit(kind, formula, df, **kw)
    except GlmmkitError:
        return
    other = _fit(kind, formula, _relabel_and_shuffle(df, seed), **kw)
    assert other.loglik == pytest.approx(fit.loglik, rel=1e-6, abs=1e-5)
    np.testing.assert_allclose(other.fixef.to_numpy(), fit.fixef.to_numpy(), rtol=1e-3, atol=1e-3)


def _gaussian_glmm(formula, data):
    """The Gaussian identity-link GLMM by the Laplace path (glmer itself sends users to lmer)."""
    from glmmkit.families import get_family
    from glmmkit.formula import parse_formula
    from glmmkit.frame import build_model_frame, drop_aliased_columns
    from glmmkit.fitting.glmm import GlmmProblem, fit_glmm
    from glmmkit.structure import build_structure

    fam = get_family("gaussian")
    frame = build_model_frame(parse_formula(formula), data, family=fam)
    structure = build_structure(frame)
    X, kept, dropped = drop_aliased_columns(frame.X, frame.x_names)
    return fit_glmm(GlmmProblem(frame=frame, structure=structure, X=X, wt=np.ones(frame.nobs), family=fam, nagq=1,
                                kept=kept, dropped=dropped))


@settings(max_examples=20, **SETTINGS)
@given(df=designs(min_groups=4, max_per_group=6))
def test_gaussian_glmm_is_the_ml_lmm(df):
    df = df.dropna()
    df = df.assign(x=df["x"] - df["x"].mean())
    try:
        lmm = _fit("lmer", "y ~ x + (1 | g)", df, reml=False)
    except GlmmkitError:
        return
    glmm = _gaussian_glmm("y ~ x + (1 | g)", df)
    # Laplace is exact for the Gaussian: the same maximum, unless the LMM sits on the boundary
    assert glmm.loglik == pytest.approx(lmm.loglik, abs=1e-4)
    np.testing.assert_allclose(glmm.fixef.to_numpy(), lmm.fixef.to_numpy(), atol=1e-3 * (1 + lmm.sigma))


@settings(max_examples=25, **SETTINGS)
@given(df=designs(min_groups=3), kind=st.sampled_from(["lmer", "glmer"]))
def test_dropping_a_random_term_never_raises_loglik(df, kind):
    if kind == "lmer":
        full, reduced, kw = "y ~ x + (1 | g) + (1 | h)", "y ~ x + (1 | g)", {"reml": False}
    else:
        full, reduced, kw = "yc ~ x + (x | g)", "yc ~ x + (1 | g)", {"family": "poisson"}
    try:
        big = _fit(kind, full, df, **kw)
        small = _fit(kind, reduced, df, **kw)
    except GlmmkitError:
        return
    # slack: the optimisers stop within ~1e-5 of a boundary maximum (seen on 3-row designs)
    assert big.loglik >= small.loglik - 1e-4 * max(1.0, abs(small.loglik))
