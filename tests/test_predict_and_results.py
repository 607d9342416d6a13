
import numpy as np
import pytest

import glmmkit as gk


@pytest.fixture(scope="module")
def sleep_fit():
    return gk.lmer("Reaction ~ Days + (Days | Subject)", data=gk.datasets.load("sleepstudy"))


def test_predict_on_training_rows_equals_fitted(sleep_fit):
    df = gk.datasets.load("sleepstudy")
    np.testing.assert_allclose(sleep_fit.predict(df), sleep_fit.fitted(), rtol=1e-12)
    pop = sleep_fit.predict(df, re_form="~0")
    np.testing.assert_allclose(pop, sleep_fit.fixef["(Intercept)"] + sleep_fit.fixef["Days"] * df["Days"], rtol=1e-12)
    np.testing.assert_allclose(sleep_fit.predict(re_form="NA"), pop, rtol=1e-12)


def test_predict_new_levels(sleep_fit):
    import pandas as pd

    new = pd.DataFrame({"Days": [1.0, 2.0, 3.0], "Subject": ["308", "999", None]})
    with pytest.raises(gk.DataError, match="allow_new_levels"):
        sleep_fit.predict(new)
    out = sleep_fit.predict(new, allow_new_levels=True)
    pop = sleep_fit.predict(new, re_form="~0")
    assert out[1] == pytest.approx(pop[1])  # a new subject is predicted at the population level
    assert np.isnan(out[2])  # a missing grouping value cannot be predicted conditionally
    b = sleep_fit.ranef["Subject"].loc["308"]
    assert out[0] == pytest.approx(pop[0] + b["(Intercept)"] + b["Days"] * 1.0)


def test_bad_re_form(sleep_fit):
    with pytest.raises(gk.ArgumentError):
        sleep_fit.predict(re_form="~(1|Subject)")


def test_residuals_and_information_criteria(sleep_fit):
    r = sleep_fit.residuals()
    np.testing.assert_allclose(r, sleep_fit.frame.y - sleep_fit.fitted())
    np.testing.assert_allclose(sleep_fit.residuals("scaled"), r / sleep_fit.sigma)
    assert sleep_fit.npar == 6
    assert sleep_fit.aic == pytest.approx(1755.628, abs=1e-3)  # lme4: AIC 1755.628
    assert sleep_fit.bic == pytest.approx(1774.786, abs=1e-3)
    assert sleep_fit.reml_criterion == pytest.approx(1743.628, abs=1e-3)
    with pytest.raises(gk.ArgumentError):
        sleep_fit.residuals("deviance-ish")


def test_varcorr_layout(sleep_fit):
    vc = sleep_fit.varcorr
    assert list(vc.columns) == ["group", "term1", "term2", "vcov", "sdcor"]
    assert list(vc["group"]) == ["Subject", "Subject", "Subject", "Residual"]
    assert vc.iloc[2]["term1"] == "(Intercept)" and vc.iloc[2]["term2"] == "Days"
    assert vc.iloc[2]["sdcor"] == pytest.approx(0.066, abs=2e-3)


def test_summary_text_and_html(sleep_fit):
    text = str(sleep_fit.summary())
    for piece in ["REML criterion at convergence: 1743.6", "Subject  (Intercept)", "Number of obs: 180",
                  "Correlation of Fixed Effects", "Days"]:
        assert piece in text
    html = sleep_fit._repr_html_()
    assert "<table" in html and "Fixed effects" in html


def test_optimizer_info(sleep_fit):
    info = sleep_fit.optimizer_info.as_dict()
    assert info["converged"] and info["n_evals"] > 5 and info["optimizer"].startswith("nlopt")
    assert not sleep_fit.singular
