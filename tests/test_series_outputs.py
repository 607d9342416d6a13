"""Per-row results as pandas objects aligned to the data's own index (rows dropped for missing
values absent, as R's na.omit), condvar labelled as ranef, plain-float AIC/BIC and a varcorr
whose missing names are NaN, never None."""

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk


def _shuffled_with_gaps(data: pd.DataFrame, response: str, labels: str, seed: int = 3, n_missing: int = 7):
    """``data`` in a random row order, indexed by strings (or shuffled ints), with ``n_missing``
    responses set to NaN; returns the frame and the labels of the rows that stay."""
    rng = np.random.default_rng(seed)
    d = data.iloc[rng.permutation(len(data))].copy()
    if labels == "str":
        d.index = [f"row{i:03d}" for i in rng.permutation(len(d))]
    else:
        d.index = rng.permutation(len(d)) * 7 + 1000
    gone = d.index[rng.choice(len(d), n_missing, replace=False)]
    d.loc[gone, response] = np.nan
    return d, d.index.difference(gone, sort=False)


@pytest.fixture(scope="module", params=["str", "int"])
def lmm_case(request):
    d, kept = _shuffled_with_gaps(gk.datasets.load("sleepstudy"), "Reaction", request.param)
    return d, kept, gk.lmer("Reaction ~ Days + (Days | Subject)", d)


@pytest.fixture(scope="module")
def glmm_case():
    cbpp = gk.datasets.load("cbpp")
    d, kept = _shuffled_with_gaps(cbpp, "incidence", "str", seed=5, n_missing=4)
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    return d, kept, fit


def test_lmm_fitted_residuals_predict_are_series_on_the_used_rows(lmm_case):
    d, kept, fit = lmm_case
    for s, name in ((fit.fitted(), "fitted"), (fit.residuals(), "residuals"), (fit.predict(), "predicted"),
                    (fit.residuals("pearson"), "residuals"), (fit.predict(re_form="~0"), "predicted")):
        assert isinstance(s, pd.Series) and s.name == name
        assert list(s.index) == list(kept)  # the data's labels, in its order, dropped rows absent
    # labels carry the meaning: y - fitted by label is the residual, whatever the order
    y = d.loc[kept, "Reaction"]
    np.testing.assert_allclose((y - fit.fitted()).loc[kept], fit.residuals().loc[kept], atol=1e-10)
    # arithmetic with numpy arrays still works positionally
    np.testing.assert_allclose(fit.fitted() + fit.residuals().to_numpy(), y.to_numpy(), atol=1e-9)
    assert np.asarray(fit.fitted()).shape == (len(kept),)


def test_fitted_values_do_not_depend_on_the_row_order_or_index(lmm_case):
    d, kept, fit = lmm_case
    base = gk.lmer("Reaction ~ Days + (Days | Subject)", d.sort_index().reset_index(drop=True))
    again = gk.lmer("Reaction ~ Days + (Days | Subject)", d.sort_index())
    f = fit.fitted()
    g = again.fitted()
    np.testing.assert_allclose(f.loc[g.index], g, rtol=1e-6)
    np.testing.assert_allclose(np.sort(base.fitted().to_numpy()), np.sort(f.to_numpy()), rtol=1e-6)
    assert fit.loglik == pytest.approx(base.loglik, rel=1e-9)


def test_predict_on_newdata_keeps_its_index(lmm_case):
    d, kept, fit = lmm_case
    nd = d.loc[kept[:6]].copy()
    nd.index = ["u", "v", "w", "x", "y", "z"]
    p = fit.predict(nd)
    assert isinstance(p, pd.Series) and p.name == "predicted" and list(p.index) == list(nd.index)
    # the prediction of a fitted row is its fitted value, found by label
    np.testing.assert_allclose(p.to_numpy(), fit.fitted().loc[kept[:6]].to_numpy(), atol=1e-8)
    pop = fit.predict(nd, re_form="~0")
    assert list(pop.index) == list(nd.index)
    np.testing.assert_allclose(pop.to_numpy(), fit.fixef["(Intercept)"] + fit.fixef["Days"] * nd["Days"].to_numpy())
    part = fit.predict(nd, re_form="~(Days | Subject)")
    assert list(part.index) == list(nd.index)


def test_se_fit_frame_has_the_same_index(lmm_case):
    d, kept, fit = lmm_case
    nd = d.loc[kept[:4]].set_axis(pd.Index([40, 10, 30, 20], name="id"))
    se = fit.predict(nd, se_fit=True)
    assert list(se.columns) == ["fit", "se_fit"] and se.index.equals(nd.index)
    np.testing.assert_allclose(se["fit"], fit.predict(nd))
    own = fit.predict(se_fit=True)
    assert own.index.equals(fit.fitted().index)
    np.testing.assert_allclose(own["fit"], fit.fitted(), atol=1e-8)


def test_simulate_is_a_frame_on_the_used_rows(lmm_case):
    d, kept, fit = lmm_case
    s = fit.simulate(3, seed=9)
    assert isinstance(s, pd.DataFrame) and list(s.columns) == ["sim_1", "sim_2", "sim_3"]
    assert s.index.equals(fit.fitted().index)
    arr = fit.simulate(3, seed=9, as_frame=False)
    assert isinstance(arr, np.ndarray) and arr.shape == (len(kept), 3)
    np.testing.assert_array_equal(s.to_numpy(), arr)


def test_glmm_outputs_are_series_on_the_used_rows(glmm_case):
    d, kept, fit = glmm_case
    for kind in ("deviance", "pearson", "response", "working"):
        r = fit.residuals(kind)
        assert isinstance(r, pd.Series) and list(r.index) == list(kept)
    mu = fit.fitted()
    assert mu.name == "fitted" and list(mu.index) == list(kept)
    prop = (d.loc[kept, "incidence"] / d.loc[kept, "size"])
    np.testing.assert_allclose((prop - mu).loc[kept], fit.residuals("response").loc[kept], atol=1e-12)
    np.testing.assert_allclose(fit.predict(type="response"), mu, atol=1e-12)
    nd = d.loc[kept[:5]].set_axis(list("abcde"))
    for kw in ({"type": "link"}, {"type": "response"}, {"re_form": "~0", "type": "response"},
               {"marginal": True, "type": "response"}, {"type": "zprob"}):
        p = fit.predict(nd, **kw)
        assert isinstance(p, pd.Series) and list(p.index) == list("abcde"), kw
    np.testing.assert_allclose(fit.predict(nd, type="response").to_numpy(), mu.loc[kept[:5]].to_numpy(), atol=1e-10)
    se = fit.predict(nd, type="response", se_fit=True)
    assert list(se.index) == list("abcde")


def test_pql_outputs_are_series_on_the_used_rows(glmm_case):
    d, kept, _ = glmm_case
    fit = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial", method="pql")
    assert list(fit.fitted().index) == list(kept) and list(fit.residuals().index) == list(kept)
    assert list(fit.predict().index) == list(kept)
    cv = fit.condvar["herd"]
    assert list(cv.index.get_level_values(0)) == list(fit.ranef["herd"].index)


def test_condvar_is_labelled_as_ranef(lmm_case, glmm_case):
    for fit in (lmm_case[2], glmm_case[2]):
        for factor, re in fit.ranef.items():
            cv = fit.condvar[factor]
            assert isinstance(cv, pd.DataFrame)
            K = re.shape[1]
            assert cv.index.names == [re.index.name, "term"]
            assert list(cv.index.get_level_values(0).unique()) == list(re.index)
            assert list(cv.columns) == list(re.columns)
            assert list(cv.index.get_level_values(1)[:K]) == list(re.columns)
            arr = fit._condvar[factor]
            np.testing.assert_array_equal(cv.to_numpy().reshape(-1, K, K), arr)
            lev = re.index[-1]
            np.testing.assert_array_equal(cv.loc[lev].to_numpy(), arr[-1])
            # symmetric, positive variances
            assert np.allclose(arr, np.swapaxes(arr, 1, 2)) and np.all(np.einsum("gkk->gk", arr) > 0)


def test_condvar_frame_agrees_with_condvar(lmm_case):
    fit = lmm_case[2]
    long = fit.condvar_frame()
    cv = fit.condvar["Subject"]
    assert len(long) == 18 * 3
    for _, row in long.sample(10, random_state=1).iterrows():
        assert row["condvar"] == cv.loc[(row["level"], row["term2"]), row["term1"]]
    assert set(long["level"]) == set(fit.ranef["Subject"].index)
    # order: per level, (Intercept, Intercept), (Intercept, Days), (Days, Days)
    assert list(zip(long.term1[:3], long.term2[:3])) == [("(Intercept)", "(Intercept)"), ("(Intercept)", "Days"),
                                                         ("Days", "Days")]


def test_relmat_condvar_labels():
    rng = np.random.default_rng(2)
    n = 12
    ids = [f"a{i}" for i in range(n)]
    A = np.eye(n) + 0.25 * (np.eye(n, k=1) + np.eye(n, k=-1))
    K = pd.DataFrame(A, index=ids, columns=ids)
    d = pd.DataFrame({"animal": np.repeat(ids, 3), "y": rng.normal(size=3 * n) + np.repeat(rng.normal(size=n), 3)})
    fit = gk.lmer("y ~ 1 + (1 | animal)", d, relmat={"animal": K})
    cv = fit.condvar["animal"]
    assert list(cv.index.get_level_values(0)) == list(fit.ranef["animal"].index)
    assert list(cv.columns) == ["(Intercept)"]
    long = fit.condvar_frame()
    np.testing.assert_allclose(long["condvar"].to_numpy(), cv["(Intercept)"].to_numpy())


def test_information_criteria_are_plain_floats(lmm_case, glmm_case):
    for fit in (lmm_case[2], glmm_case[2]):
        for v in (fit.aic, fit.bic):
            assert type(v) is float and np.isfinite(v)
        assert type(fit.df_resid) is int
        assert fit.bic == pytest.approx(-2 * fit.loglik + np.log(fit.nobs) * fit.npar)


def test_varcorr_has_no_none(lmm_case, glmm_case):
    for fit in (lmm_case[2], glmm_case[2]):
        vc = fit.varcorr
        assert not any(v is None for v in vc.to_numpy().ravel())
        variances = vc[vc["term2"].isna() & (vc["group"] != "Residual")]
        assert len(variances) == sum(re.shape[1] for re in fit.ranef.values())
    vc = lmm_case[2].varcorr
    assert vc["term1"].isna().tolist() == [False, False, False, True]  # the residual row
    assert vc["term2"].notna().tolist() == [False, False, True, False]  # the correlation row


def test_refit_takes_a_labelled_response_by_label(lmm_case):
    d, kept, fit = lmm_case
    sim = fit.simulate(1, seed=11)["sim_1"]
    by_label = fit.refit(sim.iloc[::-1])  # reversed order, same labels
    by_position = fit.refit(sim.to_numpy())
    np.testing.assert_allclose(by_label.fixef, by_position.fixef, rtol=1e-10)
    # a full data column (dropped rows included) picks the fitted rows by label
    full = d["Days"] * 3.0 + d["Reaction"].fillna(0.0)
    np.testing.assert_allclose(fit.refit(full).fixef, fit.refit(full.loc[kept].to_numpy()).fixef, rtol=1e-10)
    with pytest.raises(gk.exceptions.ArgumentError, match="one value per fitted row"):
        fit.refit(np.ones(3))
