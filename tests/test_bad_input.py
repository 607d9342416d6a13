"""Catalogue of bad and awkward inputs (issue 7).

Every case must end in one of three ways:

* a glmmkit error (``GlmmkitError`` subclass) whose message names the culprit,
* a glmmkit warning naming it, with a fit,
* a correct fit (checked where "correct" means more than "no error"),

never a traceback from numpy, scipy, pandas or formulaic.  Each row of the
table is ``Case(id, call, expect, match)``: ``call()`` does the fit on fresh
data; ``expect`` is an exception class, a warning class or ``"ok"`` (optionally
with a ``check(fit)``); ``match`` is a substring the message must contain.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import (ArgumentError, ConvergenceWarning, DataError, DataTypeError, FormulaError,
                                GlmmkitError, GlmmkitWarning, RankDeficiencyWarning)


def _base(n=120, seed=1) -> pd.DataFrame:
    """A small design with every kind of response and a crossed second factor."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), n // 12)
    h = np.tile(np.arange(6), n // 6)
    x = rng.standard_normal(n)
    u = rng.standard_normal(12)[g]
    eta = -0.3 + 0.8 * x + 0.7 * u
    mu = np.exp(0.2 + 0.3 * x + 0.4 * u)
    trials = rng.integers(3, 9, n)
    succ = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({
        "y": 2.0 + 0.5 * x + u + rng.standard_normal(n),
        "yb": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
        "yc": rng.poisson(mu),
        "yg": rng.gamma(3.0, mu / 3.0),
        "ybeta": 1 / (1 + np.exp(-(0.2 * x + 0.3 * u + 0.5 * rng.standard_normal(n)))),
        "succ": succ,
        "fail": trials - succ,
        "trials": trials,
        "x": x,
        "x2": rng.standard_normal(n),
        "f": pd.Categorical(np.array(["a", "b", "c"])[rng.integers(0, 3, n)]),
        "g": pd.Categorical([f"g{i:02d}" for i in g]),
        "h": pd.Categorical([f"h{i}" for i in h]),
        "w": rng.uniform(0.5, 2.0, n),
        "obs": np.arange(n),
    })
    return df


BASE = _base()


def D(**changes) -> pd.DataFrame:
    """A fresh copy of the base data with columns replaced or added (callables get the copy)."""
    df = BASE.copy()
    for k, v in changes.items():
        df[k] = v(df) if callable(v) else v
    return df


def lm(formula, data=None, **kw):
    return lambda: gk.lmer(formula, data=BASE.copy() if data is None else data() if callable(data) else data, **kw)


def glm(formula, family="binomial", data=None, **kw):
    return lambda: gk.glmer(formula, data=BASE.copy() if data is None else data() if callable(data) else data,
                            family=family, **kw)


@dataclass
class Case:
    id: str
    call: Callable
    expect: object  # exception class, warning class or "ok"
    match: str = ""
    check: Callable | None = None


def _set(col, rows, value):
    """Column ``col`` of the base data with ``rows`` set to ``value`` (dtype widened as needed)."""
    def make(df):
        numeric = pd.api.types.is_numeric_dtype(df[col]) and not isinstance(df[col].dtype, pd.CategoricalDtype)
        s = df[col].astype(float) if numeric and not isinstance(value, str) else df[col].astype(object)
        s.iloc[rows] = value
        return s
    return make


def _same_fit(ref_call, transform=None, rtol=1e-5):
    """Check: the fit matches ``ref_call()``'s log-likelihood and (after ``transform``) fixed effects."""
    def check(fit):
        ref = ref_call()
        assert fit.loglik == pytest.approx(ref.loglik, rel=1e-7, abs=1e-6)
        fe = fit.fixef if transform is None else transform(fit.fixef)
        np.testing.assert_allclose(np.asarray(fe), ref.fixef.to_numpy(), rtol=rtol, atol=1e-6)
    return check


def _nobs(n, dropped=None):
    def check(fit):
        assert fit.nobs == n
        if dropped:
            assert fit.frame.n_dropped == dropped
            assert any(f"{dropped} row(s) dropped" in m for m in fit.optimizer_info.messages)
    return check


CASES = [
    # ---------------- A. the data container ----------------
    Case("data-dict", lm("y ~ x + (1|g)", data=lambda: BASE.to_dict("list")), DataTypeError, "DataFrame"),
    Case("data-ndarray", lm("y ~ x + (1|g)", data=lambda: BASE.to_numpy()), DataTypeError, "DataFrame"),
    Case("data-none", lm("y ~ x + (1|g)", data=lambda: None), DataTypeError, "NoneType"),
    Case("data-list", glm("yb ~ x + (1|g)", data=lambda: [1, 2, 3]), DataTypeError, "list"),
    Case("data-empty", lm("y ~ x + (1|g)", data=lambda: BASE.iloc[:0]), DataError, "no rows"),
    Case("data-no-columns", lm("y ~ x + (1|g)", data=lambda: pd.DataFrame()), DataError, "no rows"),
    Case("data-duplicate-columns", lm("y ~ x + (1|g)", data=lambda: pd.concat([BASE, BASE[["x"]]], axis=1)),
         DataError, "'x'"),
    Case("data-duplicate-unused-column", lm("y ~ x + (1|g)", data=lambda: pd.concat([BASE, BASE[["x2"]]], axis=1)),
         DataError, "'x2'"),
    Case("data-series", lm("y ~ x + (1|g)", data=lambda: BASE["y"]), DataTypeError, "Series"),

    # ---------------- B. formula syntax ----------------
    Case("formula-not-string", lm(42), FormulaError, "int"),
    Case("formula-no-tilde", lm("y x + (1|g)"), FormulaError, "'~'"),
    Case("formula-two-tildes", lm("y ~ x ~ (1|g)"), FormulaError, "'~'"),
    Case("formula-empty-rhs", lm("y ~ "), FormulaError, "right of '~'"),
    Case("formula-no-response", lm(" ~ x + (1|g)"), FormulaError, "no response"),
    Case("formula-unbalanced-close", lm("y ~ x) + (1|g)"), FormulaError, "position 6"),
    Case("formula-unbalanced-open", lm("y ~ x + (1|g"), FormulaError, "unbalanced '('"),
    Case("formula-trailing-plus", lm("y ~ x + (1|g) +"), FormulaError, "position"),
    Case("formula-double-plus", lm("y ~ x + + (1|g)"), FormulaError, "position"),
    Case("formula-bar-no-parens", lm("y ~ x + 1|g"), FormulaError, "parentheses"),
    Case("formula-bar-empty-lhs", lm("y ~ x + (|g)"), FormulaError, "nothing before '|'"),
    Case("formula-bar-empty-group", lm("y ~ x + (1|)"), FormulaError, "no grouping factor"),
    Case("formula-unclosed-backtick", lm("y ~ `x + (1|g)"), FormulaError, "backtick"),
    Case("formula-no-random", lm("y ~ x"), FormulaError, "no random-effects term"),
    Case("formula-no-random-glmer", glm("yb ~ x"), FormulaError, "no random-effects term"),
    Case("formula-bad-operator", lm("y ~ x $ x2 + (1|g)"), FormulaError, "x $ x2"),
    Case("formula-grouping-expression", lm("y ~ x + (1|log(g))"), FormulaError, "log(g)"),
    Case("formula-bad-call-syntax", lm("y ~ log(x, + (1|g)"), FormulaError, "unbalanced"),

    # ---------------- C. unknown columns, in every part ----------------
    Case("unknown-response", lm("yy ~ x + (1|g)"), FormulaError, "'yy'"),
    Case("unknown-response-suggests", lm("Y ~ x + (1|g)"), FormulaError, "did you mean 'y'"),
    Case("unknown-fixed", lm("y ~ xx + (1|g)"), FormulaError, "'xx'"),
    Case("unknown-fixed-in-call", lm("y ~ log(xz) + (1|g)"), FormulaError, "'xz'"),
    Case("unknown-fixed-interaction", lm("y ~ x * fz + (1|g)"), FormulaError, "'fz'"),
    Case("unknown-random-slope", lm("y ~ x + (xq|g)"), FormulaError, "'xq'"),
    Case("unknown-grouping", lm("y ~ x + (1|gg)"), FormulaError, "'gg'"),
    Case("unknown-nested-grouping", lm("y ~ x + (1|g/zz)"), FormulaError, "'zz'"),
    Case("unknown-interaction-grouping", lm("y ~ x + (1|g:zz)"), FormulaError, "'zz'"),
    Case("unknown-offset-term", glm("yc ~ x + offset(log(expo)) + (1|g)", "poisson"), FormulaError, "'expo'"),
    Case("unknown-cbind", glm("cbind(succ, fails) ~ x + (1|g)"), FormulaError, "'fails'"),
    Case("unknown-weights-column", lm("y ~ x + (1|g)", weights="ww"), FormulaError, "'ww'"),
    Case("unknown-offset-column", glm("yc ~ x + (1|g)", "poisson", offset="off"), FormulaError, "'off'"),
    Case("unknown-backticked", lm("y ~ `x 1` + (1|g)"), FormulaError, "'x 1'"),

    # ---------------- D. missing and infinite values ----------------
    Case("no-complete-rows", lm("y ~ x + (1|g)", data=lambda: D(y=np.nan)), DataError, "no complete rows"),
    Case("no-complete-rows-across-columns",
         lm("y ~ x + (1|g)", data=lambda: D(y=_set("y", slice(0, 60), np.nan), x=_set("x", slice(60, 120), np.nan))),
         DataError, "no complete rows"),
    Case("inf-response", lm("y ~ x + (1|g)", data=lambda: D(y=_set("y", [3], np.inf))), DataError, "'y'"),
    Case("inf-covariate", lm("y ~ x + (1|g)", data=lambda: D(x=_set("x", [3, 4], -np.inf))), DataError, "'x'"),
    Case("inf-random-slope", lm("y ~ 1 + (x2|g)", data=lambda: D(x2=_set("x2", [3], np.inf))), DataError, "'x2'"),
    Case("inf-weights", lm("y ~ x + (1|g)", weights=np.r_[np.inf, np.ones(119)]), DataError, "weights"),
    Case("inf-offset", glm("yc ~ x + (1|g)", "poisson", offset=np.r_[np.inf, np.zeros(119)]), DataError, "offset"),
    Case("inf-from-log0", glm("yc ~ x + offset(log(x2 * 0)) + (1|g)", "poisson"), DataError, "offset"),
    Case("inf-glmm-response", glm("yc ~ x + (1|g)", "poisson", data=lambda: D(yc=_set("yc", [0], np.inf))),
         DataError, "yc"),
    Case("missing-dropped-counted", lm("y ~ x + (1|g)", data=lambda: D(y=_set("y", [1, 2], np.nan),
                                                                         g=_set("g", [5], np.nan))),
         "ok", check=_nobs(117, 3)),
    Case("missing-in-unused-column", lm("y ~ x + (1|g)", data=lambda: D(x2=np.nan)), "ok", check=_nobs(120, 0)),
    Case("nullable-Int64", glm("yc ~ x + (1|g)", "poisson",
                               data=lambda: D(yc=lambda d: pd.array(np.where(np.arange(120) == 4, None, d.yc),
                                                                   dtype="Int64"))),
         "ok", check=_nobs(119, 1)),
    Case("nullable-boolean", glm("yb ~ x + (1|g)",
                                 data=lambda: D(yb=lambda d: pd.array(np.where(np.arange(120) == 4, None,
                                                                              d.yb.astype(bool)), dtype="boolean"))),
         "ok", check=_nobs(119, 1)),
    Case("nullable-string-group", lm("y ~ x + (1|g)",
                                     data=lambda: D(g=lambda d: pd.array(np.where(np.arange(120) == 4, None,
                                                                                 d.g.astype(str)), dtype="string"))),
         "ok", check=_nobs(119, 1)),
    Case("nullable-Float64", lm("y ~ x + (1|g)",
                                data=lambda: D(x=lambda d: pd.array(np.where(np.arange(120) == 4, None, d.x),
                                                                    dtype="Float64"))),
         "ok", check=_nobs(119, 1)),

    # ---------------- E. responses that do not fit the family ----------------
    Case("bernoulli-2", glm("yb ~ x + (1|g)", data=lambda: D(yb=_set("yb", [0], 2))), DataError, "'yb'"),
    Case("bernoulli-negative", glm("yb ~ x + (1|g)", data=lambda: D(yb=_set("yb", [0], -1))), DataError, "'yb'"),
    Case("binomial-fraction-no-weights", glm("yb ~ x + (1|g)", data=lambda: D(yb=_set("yb", [0], 0.5))),
         DataError, "weights="),
    Case("binomial-proportion-with-weights", glm("I(succ / trials) ~ x + (1|g)", weights="trials"), "ok",
         check=_same_fit(glm("cbind(succ, fail) ~ x + (1|g)"))),
    Case("cbind-negative-failures", glm("cbind(succ, fail) ~ x + (1|g)", data=lambda: D(fail=_set("fail", [2], -1))),
         DataError, "'fail'"),
    Case("cbind-fractional", glm("cbind(succ, fail) ~ x + (1|g)", data=lambda: D(succ=_set("succ", [2], 1.5))),
         DataError, "whole"),
    Case("cbind-nonbinomial", glm("cbind(succ, fail) ~ x + (1|g)", "poisson"), FormulaError, "binomial"),
    Case("binomial-three-levels", glm("f ~ x + (1|g)"), DataError, "'f'"),
    Case("binomial-constant", glm("yb ~ x + (1|g)", data=lambda: D(yb=0)), DataError, "'yb'"),
    Case("binomial-constant-factor", glm("yf ~ x + (1|g)", data=lambda: D(yf="yes")), DataError, "'yf'"),
    Case("binomial-numbers-as-text", glm("yb ~ x + (1|g)", data=lambda: D(yb=lambda d: d.yb.astype(str))),
         DataError, "to_numeric"),
    Case("binomial-bool-ok", glm("yb ~ x + (1|g)", data=lambda: D(yb=lambda d: d.yb.astype(bool))), "ok",
         check=_same_fit(glm("yb ~ x + (1|g)"))),
    Case("binomial-two-level-text-ok", glm("yb ~ x + (1|g)",
                                           data=lambda: D(yb=lambda d: np.where(d.yb == 1, "yes", "no"))),
         "ok", check=_same_fit(glm("yb ~ x + (1|g)"))),
    Case("poisson-negative", glm("yc ~ x + (1|g)", "poisson", data=lambda: D(yc=_set("yc", [0], -2))),
         DataError, "'yc'"),
    Case("poisson-fraction", glm("yc ~ x + (1|g)", "poisson", data=lambda: D(yc=_set("yc", [0], 0.5))),
         DataError, "'yc'"),
    Case("poisson-factor-response", glm("f ~ x + (1|g)", "poisson"), DataError, "'f'"),
    Case("poisson-all-zero", glm("yc ~ x + (1|g)", "poisson", data=lambda: D(yc=0)), DataError, "'yc'"),
    Case("negbin-negative", glm("yc ~ x + (1|g)", "nbinom2", data=lambda: D(yc=_set("yc", [0], -2))),
         DataError, "'yc'"),
    Case("gamma-zero", glm("yg ~ x + (1|g)", "gamma", data=lambda: D(yg=_set("yg", [0], 0.0))), DataError, "'yg'"),
    Case("gamma-negative", glm("yg ~ x + (1|g)", "gamma", data=lambda: D(yg=_set("yg", [0], -1.0))),
         DataError, "'yg'"),
    Case("inverse-gaussian-zero", glm("yg ~ x + (1|g)", "inverse_gaussian", data=lambda: D(yg=_set("yg", [0], 0.0))),
         DataError, "'yg'"),
    Case("beta-at-zero", glm("ybeta ~ x + (1|g)", "beta", data=lambda: D(ybeta=_set("ybeta", [0], 0.0))),
         DataError, "'ybeta'"),
    Case("beta-at-one", glm("ybeta ~ x + (1|g)", "beta", data=lambda: D(ybeta=_set("ybeta", [0], 1.0))),
         DataError, "'ybeta'"),
    Case("lmm-text-response", lm("y ~ x + (1|g)", data=lambda: D(y=lambda d: d.y.astype(str))),
         DataError, "to_numeric"),
    Case("lmm-factor-response", lm("f ~ x + (1|g)"), DataError, "'f'"),
    Case("lmm-constant-response", lm("y ~ x + (1|g)", data=lambda: D(y=3.0)), DataError, "'y'"),
    Case("covariate-numbers-as-text", lm("y ~ x + (1|g)", data=lambda: D(x=lambda d: d.x.round(3).astype(str))),
         GlmmkitWarning, "'x'"),

    # ---------------- F. grouping factors ----------------
    Case("grouping-one-level", lm("y ~ x + (1|one)", data=lambda: D(one="a")), DataError, "'one'"),
    Case("grouping-one-level-after-na", lm("y ~ x + (1|g)", data=lambda: D(g=lambda d: np.where(
        np.arange(120) < 10, "a", None))), DataError, "'g'"),
    Case("grouping-one-level-glmm", glm("yb ~ x + (1|one)", data=lambda: D(one=1)), DataError, "'one'"),
    Case("lmm-one-level-per-row", lm("y ~ x + (1|obs)"), DataError, "'obs'"),
    Case("lmm-slope-per-row", lm("y ~ x + (x|half)", data=lambda: D(half=np.arange(120) // 2)), DataError, "'half'"),
    Case("glmm-olre-ok", glm("yc ~ x + (1|g) + (1|obs)", "poisson"), "ok"),
    Case("glmm-olre-flag-ok", glm("yc ~ x + (1|g)", "poisson", olre=True), "ok",
         check=_same_fit(glm("yc ~ x + (1|g) + (1|obs)", "poisson"))),
    Case("grouping-unused-levels", lm("y ~ x + (1|g)", data=lambda: D(g=lambda d: d.g.cat.add_categories(["zz"]))),
         "ok", check=lambda fit: fit.ngroups["g"] == 12),
    Case("fixed-unused-levels", lm("y ~ f + (1|g)", data=lambda: D(f=lambda d: d.f.cat.add_categories(["zz"]))),
         "ok", check=lambda fit: list(fit.fixef.index) == ["(Intercept)", "fb", "fc"]),
    Case("grouping-float-codes", lm("y ~ x + (1|gf)", data=lambda: D(gf=lambda d: d.g.cat.codes * 1.0)), "ok",
         check=_same_fit(lm("y ~ x + (1|g)"))),
    Case("backticked-spaces", lm("`y val` ~ `x val` + (1|`my group`)",
                                 data=lambda: BASE.rename(columns={"y": "y val", "x": "x val", "g": "my group"})),
         "ok", check=lambda fit: "x val" in fit.fixef.index),

    # ---------------- G. weights and offsets ----------------
    Case("weights-negative", lm("y ~ x + (1|g)", weights=np.r_[-1.0, np.ones(119)]), DataError, "weights"),
    Case("weights-wrong-length", lm("y ~ x + (1|g)", weights=np.ones(10)), ArgumentError, "length 10"),
    Case("weights-2d", lm("y ~ x + (1|g)", weights=np.ones((120, 2))), ArgumentError, "weights"),
    Case("weights-text", lm("y ~ x + (1|g)", weights=["a"] * 120), DataTypeError, "weights"),
    Case("weights-zero-lmm", lm("y ~ x + (1|g)", weights=np.r_[0.0, np.ones(119)]), DataError, "weight 0"),
    Case("weights-all-zero-glmm", glm("yc ~ x + (1|g)", "poisson", weights=np.zeros(120)), DataError, "weights"),
    Case("weights-nan-dropped", lm("y ~ x + (1|g)", weights=np.r_[np.nan, np.ones(119)]), "ok", check=_nobs(119, 1)),
    Case("weights-column", lm("y ~ x + (1|g)", weights="w"), "ok",
         check=_same_fit(lm("y ~ x + (1|g)", weights=BASE["w"].to_numpy()))),
    Case("offset-wrong-length", glm("yc ~ x + (1|g)", "poisson", offset=np.zeros(119)), ArgumentError, "length 119"),
    Case("offset-text", glm("yc ~ x + (1|g)", "poisson", offset="f"), DataTypeError, "offset"),
    Case("offset-scalar", glm("yc ~ x + (1|g)", "poisson", offset=1.0), ArgumentError, "offset"),

    # ---------------- H. family and link ----------------
    Case("family-typo", glm("yb ~ x + (1|g)", "binomal"), ArgumentError, "did you mean 'binomial'"),
    Case("family-typo-poisson", glm("yc ~ x + (1|g)", "poison"), ArgumentError, "did you mean 'poisson'"),
    Case("family-not-a-name", glm("yb ~ x + (1|g)", 3), ArgumentError, "family"),
    Case("family-none", glm("yb ~ x + (1|g)", None), ArgumentError, "family"),
    Case("link-typo", glm("yb ~ x + (1|g)", link="logitt"), ArgumentError, "did you mean 'logit'"),
    Case("link-not-for-family", glm("yc ~ x + (1|g)", "poisson", link="logit"), ArgumentError, "'logit'"),
    Case("gaussian-identity-glmer", glm("y ~ x + (1|g)", "gaussian"), ArgumentError, "lmer"),
    Case("family-params-not-applicable", glm("yb ~ x + (1|g)", family_params={"df": 3}), ArgumentError,
         "family_params"),
    Case("family-params-unknown-key", glm("y ~ x + (1|g)", "student_t", family_params={"dof": 3}), ArgumentError,
         "'dof'"),
    Case("family-params-bad-value", glm("y ~ x + (1|g)", "student_t", family_params={"df": -3}), ArgumentError,
         "'df'"),

    # ---------------- I. nagq and method ----------------
    Case("nagq-negative", glm("yb ~ x + (1|g)", nagq=-1), ArgumentError, "nagq"),
    Case("nagq-too-large", glm("yb ~ x + (1|g)", nagq=500), ArgumentError, "nagq"),
    Case("nagq-float", glm("yb ~ x + (1|g)", nagq=2.5), ArgumentError, "nagq"),
    Case("nagq-whole-float-ok", glm("yb ~ x + (1|g)", nagq=5.0), "ok",
         check=_same_fit(glm("yb ~ x + (1|g)", nagq=5))),
    Case("nagq-string", glm("yb ~ x + (1|g)", nagq="5"), ArgumentError, "nagq"),
    Case("nagq-bool", glm("yb ~ x + (1|g)", nagq=True), ArgumentError, "nagq"),
    Case("nagq-crossed", glm("yb ~ x + (1|g) + (1|h)", nagq=5), ArgumentError, "nagq=5"),
    Case("nagq-too-many-effects", glm("yb ~ x + (x + x2|g)", nagq=50), ArgumentError, "nagq=50"),
    Case("method-unknown", glm("yb ~ x + (1|g)", method="lapalce"), ArgumentError, "did you mean 'laplace'"),
    Case("method-pql-parametric", glm("yc ~ x + (1|g)", "nbinom2", method="pql"), ArgumentError, "method='pql'"),
    Case("nagq0-parametric", glm("yc ~ x + (1|g)", "nbinom2", nagq=0), ArgumentError, "nagq=0"),
    Case("reml-not-bool", lm("y ~ x + (1|g)", reml="yes"), ArgumentError, "reml"),
    Case("olre-existing-column", glm("yc ~ x + (1|g)", "poisson", olre=True,
                                     data=lambda: D(**{".obs": 1})), ArgumentError, "'.obs'"),

    # ---------------- K. awkward but fine: collinearity and scale ----------------
    Case("collinear-covariate", lm("y ~ x + xx + (1|g)", data=lambda: D(xx=lambda d: 2 * d.x)),
         RankDeficiencyWarning, "xx"),
    Case("constant-covariate", lm("y ~ x + k + (1|g)", data=lambda: D(k=5.0)), RankDeficiencyWarning, "k"),
    Case("collinear-glmm", glm("yb ~ x + xx + (1|g)", data=lambda: D(xx=lambda d: d.x - 1)),
         RankDeficiencyWarning, "xx"),
    # REML's log-likelihood is not invariant to rescaling X (log|X'V⁻¹X| shifts by log 1e6): compare ML fits
    Case("huge-scale-lmm", lm("y ~ xs + (1|g)", data=lambda: D(xs=lambda d: d.x * 1e6), reml=False), "ok",
         check=_same_fit(lm("y ~ x + (1|g)", reml=False), lambda fe: fe * np.array([1.0, 1e6]))),
    Case("huge-scale-lmm-reml", lm("y ~ xs + (1|g)", data=lambda: D(xs=lambda d: d.x * 1e6)), "ok",
         check=lambda fit: np.testing.assert_allclose(
             [fit.loglik + np.log(1e6), fit.fixef.iloc[1] * 1e6, fit._theta[0]],
             [(r := gk.lmer("y ~ x + (1|g)", BASE)).loglik, r.fixef.iloc[1], r._theta[0]], rtol=1e-6)),
    Case("huge-shift-lmm", lm("y ~ xs + (1|g)", data=lambda: D(xs=lambda d: d.x + 1e6)), "ok",
         check=_same_fit(lm("y ~ x + (1|g)"), lambda fe: np.array([fe.iloc[0] + 1e6 * fe.iloc[1], fe.iloc[1]]),
                         rtol=1e-4)),
    Case("huge-scale-glmm", glm("yb ~ xs + (1|g)", data=lambda: D(xs=lambda d: d.x * 1e6)), "ok",
         check=_same_fit(glm("yb ~ x + (1|g)"), lambda fe: fe * np.array([1.0, 1e6]), rtol=1e-4)),
    Case("huge-shift-glmm", glm("yc ~ xs + (1|g)", "poisson", data=lambda: D(xs=lambda d: d.x + 1e6)), "ok",
         check=_same_fit(glm("yc ~ x + (1|g)", "poisson"),
                         lambda fe: np.array([fe.iloc[0] + 1e6 * fe.iloc[1], fe.iloc[1]]), rtol=1e-3)),
    Case("tiny-scale-glmm", glm("yc ~ xs + (1|g)", "poisson", data=lambda: D(xs=lambda d: d.x * 1e-6)), "ok",
         check=_same_fit(glm("yc ~ x + (1|g)", "poisson"), lambda fe: fe * np.array([1.0, 1e-6]), rtol=1e-4)),
    Case("huge-response-lmm", lm("ys ~ x + (1|g)", data=lambda: D(ys=lambda d: d.y * 1e8)), "ok",
         check=lambda fit: np.testing.assert_allclose(fit.fixef.to_numpy() / 1e8,
                                                      gk.lmer("y ~ x + (1|g)", BASE).fixef.to_numpy(), rtol=1e-6)),
    Case("polars-like", lm("y ~ x + (1|g)", data=lambda: _ToPandas(BASE)), "ok"),
]


class _ToPandas:
    """A table that converts itself (polars and pyarrow tables do)."""

    def __init__(self, df):
        self._df = df

    def to_pandas(self):
        return self._df.copy()


def _run(case: Case):
    return case.call()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue(case):
    expect = case.expect
    if expect == "ok":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = _run(case)
        glmmkit_warnings = [w for w in caught if issubclass(w.category, GlmmkitWarning)]
        assert not glmmkit_warnings, [str(w.message) for w in glmmkit_warnings]
        assert np.isfinite(fit.loglik) or fit.loglik != fit.loglik  # PQL has no log-lik
        assert fit.converged
        if case.check is not None:
            assert case.check(fit) is not False
    elif issubclass(expect, Warning):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = _run(case)
        mine = [w for w in caught if issubclass(w.category, expect)]
        assert mine, f"no {expect.__name__}; got {[str(w.message) for w in caught]}"
        assert any(case.match in str(w.message) for w in mine), [str(w.message) for w in mine]
        assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        assert fit.converged
    else:
        with pytest.raises(GlmmkitError) as err:
            _run(case)
        assert isinstance(err.value, expect), f"{type(err.value).__name__}: {err.value}"
        assert case.match in str(err.value), str(err.value)


def test_catalogue_is_large():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------- convergence status: filled for every method ----------------

STATUS_FITS = {
    "lmm-reml": lm("y ~ x + (1|g)"),
    "lmm-ml": lm("y ~ x + (x|g)", reml=False),
    "glmm-laplace-single": glm("yb ~ x + (1|g)"),
    "glmm-laplace-general": glm("yb ~ x + (1|g) + (1|h)"),
    "glmm-agq": glm("yb ~ x + (1|g)", nagq=7),
    "glmm-nagq0": glm("yc ~ x + (1|g)", "poisson", nagq=0),
    "glmm-probit": glm("yb ~ x + (1|g)", link="probit"),
    "glmm-pql": glm("yb ~ x + (1|g)", method="pql"),
    "glmm-nbinom2": glm("yc ~ x + (1|g)", "nbinom2"),
    "glmm-gamma": glm("yg ~ x + (1|g)", "gamma", link="log"),
    "glmm-beta-agq": glm("ybeta ~ x + (1|g)", "beta", nagq=3),
}


@pytest.mark.parametrize("name", list(STATUS_FITS))
def test_convergence_status_filled(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # none of these may raise a false alarm
        fit = STATUS_FITS[name]()
    info = fit.optimizer_info
    assert fit.converged is True and info.converged is True
    assert isinstance(fit.singular, bool) and info.singular == fit.singular
    assert info.method == fit.method and info.method
    assert info.optimizer and info.n_evals > 0 and info.time_s > 0
    assert isinstance(info.restarts, list)
    for r in info.restarts:
        assert {"optimizer", "start", "reason", "loglik", "converged", "chosen"} <= set(r)
    if info.restarts:
        assert sum(r["chosen"] for r in info.restarts) == 1


def test_restarts_recorded_when_the_first_run_ends_badly():
    from glmmkit.optimize import minimize_with_restarts

    def rosen(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    res = minimize_with_restarts(rosen, np.array([-1.2, 1.0]), np.full(2, -np.inf), alt_start=np.zeros(2),
                                 maxeval=30)
    starts = [r["start"] for r in res.restarts]
    assert starts[:2] == ["initial", "second start"] and len(res.restarts) >= 3
    assert sum(r["chosen"] for r in res.restarts) == 1
    chosen = next(r for r in res.restarts if r["chosen"])
    assert chosen["loglik"] == max(r["loglik"] for r in res.restarts)
    assert res.fun == pytest.approx(-2 * chosen["loglik"])
    # a run that ends well has no restarts
    assert minimize_with_restarts(rosen, np.array([-1.2, 1.0]), np.full(2, -np.inf)).restarts == []
