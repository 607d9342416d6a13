"""Regression tests for the defects of issue 12 (one GLMM engine): each names what a new user hit."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import ConvergenceWarning, GlmmkitError, IdentifiabilityWarning, NotAvailableError

R_DATA = Path(__file__).parent / "data" / "r_datasets"


def _nb_data(n=600, groups=30, seed=12):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    b = rng.normal(0.0, 0.5, groups)
    mu = np.exp(0.5 + 0.4 * x + b[g])
    theta = 2.0
    y = rng.poisson(rng.gamma(theta, mu / theta))
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i:02d}" for i in g])})


# ---- 1. family state never leaks between fits, nor into a fit after it returns -------------------------


def test_family_parameters_do_not_change_after_bootstrap_or_profile():
    df = _nb_data()
    fit = gk.glmer("y ~ x + (1 | g)", df, family="negative_binomial")
    theta = fit.family_params["theta"]
    fixef, loglik = fit.fixef.copy(), fit.loglik
    assert 1.0 < theta < 4.0
    fit.confint(method="bootstrap", n_boot=20, seed=1, progress=False)
    assert fit.family_params["theta"] == theta
    fit.confint(method="profile")
    assert fit.family_params["theta"] == theta
    pd.testing.assert_series_equal(fit.fixef, fixef)
    assert fit.loglik == loglik
    # the summary reads the same values
    assert f"{theta:.4g}"[:4] in str(fit.summary())


def test_one_family_instance_shared_by_two_fits():
    df = _nb_data()
    fam = gk.families.NegativeBinomial2()
    before = fam.values
    a = gk.glmer("y ~ x + (1 | g)", df, family=fam)
    theta_a = a.family_params["theta"]
    other = _nb_data(seed=99)
    other["y"] = other["y"] * 3
    b = gk.glmer("y ~ x + (1 | g)", other, family=fam)
    assert a.family_params["theta"] == theta_a
    assert b.family_params["theta"] != theta_a
    assert fam.values == before  # the caller's object is never bound to estimates
    assert a.family is not fam and b.family is not fam and a.family is not b.family


def test_bound_family_objects_are_new_objects():
    fam = gk.families.NegativeBinomial2()
    bound = fam.with_values({"theta": 3.0})
    assert bound.values["theta"] == 3.0 and fam.values["theta"] == 1.0
    values = bound.values
    values["theta"] = 7.0  # a copy: changing it changes nothing
    assert bound.values["theta"] == 3.0


# ---- 2. icc's null model keeps the fit's random-effect structure ---------------------------------------


def test_icc_null_model_is_the_fits_structure():
    rng = np.random.default_rng(3)
    n, q = 800, 40
    g = rng.integers(0, q, n)
    x = rng.normal(size=n)
    b0, b1 = rng.normal(0, 0.5, q), rng.normal(0, 0.3, q)
    y = rng.poisson(np.exp(0.3 + 0.2 * x + b0[g] + b1[g] * x))
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    fit = gk.glmer("y ~ x + (1 | g) + (0 + x | g)", df, family="poisson")
    from glmmkit.inference.icc import _null_model_mean

    null = gk.glmer("y ~ 1 + (1 | g) + (0 + x | g)", df, family="poisson")
    assert _null_model_mean(fit) == pytest.approx(float(np.exp(null.fixef.iloc[0])), rel=1e-6)
    wrong = gk.glmer("y ~ 1 + (x | g)", df, family="poisson")  # what the term names used to rebuild
    assert abs(_null_model_mean(fit) - float(np.exp(wrong.fixef.iloc[0]))) > 1e-6
    assert 0.0 < fit.icc()["adjusted"] < 1.0


# ---- 3. every method of every kind of fit works, or says why it is not available -----------------------


def _fits():
    sleep = gk.datasets.load("sleepstudy")
    counts = gk.datasets.load("counts_ri")
    return {
        "lmm": gk.lmer("Reaction ~ Days + (Days | Subject)", sleep),
        "glmm": gk.glmer("y ~ x1 + x2 + (1 | g)", counts, family="poisson"),
        "pql": gk.glmer("y ~ x1 + x2 + (1 | g)", counts, family="poisson", method="pql"),
    }


#: methods that need arguments, with arguments that make sense for the three fits above
_ARGS = {"plot_effects": ("x1",), "marginal_moments": (None,), "refit": (), "report": (None,),
         "emmeans": ("x2",), "emtrends": ("x2", "x1")}


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fits()


@pytest.mark.parametrize("kind", ["lmm", "glmm", "pql"])
def test_every_public_method_works_or_is_not_available(fits, kind, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = fits[kind]
    assert fit.kind == kind
    newdata = fit.frame.data.head(5)
    failures = []
    for name in dir(fit):
        if name.startswith("_"):
            continue
        attr = getattr(type(fit), name, None)
        if not callable(attr):
            getattr(fit, name)  # properties must not raise
            continue
        method = getattr(fit, name)
        params = [p for p in inspect.signature(method).parameters.values()
                  if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if name in _ARGS:
            args = tuple(newdata if a is None and name == "marginal_moments" else
                         (tmp_path / "r.html" if a is None else a) for a in _ARGS[name])
        elif params:
            failures.append(f"{name}: needs arguments {[p.name for p in params]} the test does not know")
            continue
        else:
            args = ()
        if name == "plot_effects" and kind == "lmm":
            args = ("Days",)
        if name in ("emmeans", "emtrends") and kind == "lmm":
            args = ("1", "Days") if name == "emtrends" else ("1",)  # sleepstudy has no factor: the grand mean
        kwargs = {"n_boot": 20, "progress": False, "seed": 1} if name == "confint" else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                method(*args, **kwargs)
        except NotAvailableError as exc:
            assert kind in ("pql",) or "not" in str(exc), f"{name}: {exc}"
        except GlmmkitError as exc:
            failures.append(f"{name}: glmmkit error {exc}")
        except Exception as exc:  # noqa: BLE001 - the point of the test
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        plt.close("all")
    assert not failures, "\n".join(failures)


def test_pql_inherited_methods(fits):
    pql = fits["pql"]
    h = pql.hatvalues()
    assert h.shape == (pql.nobs,) and np.all(np.isfinite(h)) and np.all((h >= 0) & (h <= 1 + 1e-9))
    p, q = len(pql.x_names), pql.structure.q
    assert p <= pql.edf <= p + q
    with pytest.raises(NotAvailableError, match="likelihood"):
        pql.confint("profile")
    with pytest.raises(NotAvailableError, match="likelihood"):
        gk.anova(pql, pql)
    ci = pql.confint("bootstrap", n_boot=20, seed=2, progress=False)
    assert np.all(np.isfinite(ci.to_numpy()))
    assert np.all(ci["lower"] < ci["upper"])


def test_refit_shares_nothing(fits):
    glmm = fits["glmm"]
    before = glmm.fixef.copy()
    y = glmm.simulate(1, seed=4)["sim_1"]
    new = glmm.refit(y)
    assert new is not glmm and not np.allclose(new.fixef, before)
    pd.testing.assert_series_equal(glmm.fixef, before)
    same = glmm.refit()
    np.testing.assert_allclose(same.fixef, before, rtol=1e-6)
    lmm = fits["lmm"]
    ml = lmm.refit(reml=False)
    assert ml.method == "ML" and lmm.method == "REML"
    assert ml.loglik == pytest.approx(-875.9697, abs=1e-3)  # lme4's ML logLik for sleepstudy


# ---- 4. a non-finite fit is never reported as converged -------------------------------------------------


def test_non_finite_fit_is_not_converged():
    df = pd.read_csv(R_DATA / "Salamanders.csv")
    with pytest.warns(ConvergenceWarning, match="link"):
        fit = gk.glmer("count ~ mined + (1 | site)", df, family="poisson", link="identity")
    se = np.sqrt(np.diag(fit._vcov))
    assert not (np.isfinite(fit.loglik) and np.all(np.isfinite(se)))
    assert fit.converged is False
    assert "identity" in fit.optimizer_info.message and "log" in fit.optimizer_info.message
    table = str(fit.summary())
    assert "<2e-16" not in table  # a NaN p-value is not printed as tiny


# ---- 7. too few observations for the parameters ---------------------------------------------------------


@pytest.mark.parametrize("reml", [True, False])
def test_three_row_lmm_warns(reml):
    df = pd.DataFrame({"y": [1.3, 2.0, 4.1], "x": [0.0, 1.0, 3.0], "g": list("abb")})
    with pytest.warns(IdentifiabilityWarning, match="3 observations for 4 parameters"):
        fit = gk.lmer("y ~ x + (1 | g)", df, reml=reml)
    assert any("cannot determine" in m for m in fit.optimizer_info.messages)


def test_enough_rows_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        gk.lmer("Reaction ~ Days + (1 | Subject)", gk.datasets.load("sleepstudy"))
