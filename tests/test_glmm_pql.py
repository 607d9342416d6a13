"""PQL against MASS::glmmPQL (values from tests/data/r/pql_reference.R)."""

import numpy as np
import pytest

import glmmkit as gk

CASES = [
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
     [-1.327363885, -1.016126429, -1.149984235, -1.605217031], [0.2303248967, 0.3550066945, 0.3793816081, 0.4990019635],
     0.5563535, 1.1845275),
    ("spinal", "y ~ x + (1 | patient)", "binomial", [0.8440680684, -0.2674542626], [0.2788916718, 0.2482947368],
     2.3287651, 0.6776741),
    ("counts_ri", "y ~ x1 + x2 + (1 | g)", "poisson", [1.0327256502, 0.4789832339, -0.7573005449],
     [0.09775345973, 0.02713445737, 0.05791373839], 0.6356813, 1.4145376),
]


@pytest.mark.parametrize("data, formula, family, beta, se, sd, dispersion_sd", CASES, ids=[c[0] for c in CASES])
def test_pql_matches_glmmPQL(data, formula, family, beta, se, sd, dispersion_sd):
    fit = gk.glmer(formula, data=gk.datasets.load(data), family=family, method="pql")
    assert fit.method == "PQL" and fit.converged
    np.testing.assert_allclose(fit.fixef.to_numpy(), beta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov.to_numpy())), se, rtol=1e-3)
    vc = fit.varcorr.set_index("group")["sdcor"]
    assert vc.iloc[0] == pytest.approx(sd, rel=1e-3)
    assert vc["Residual"] == pytest.approx(dispersion_sd, rel=1e-3)
    assert np.isnan(fit.loglik) and np.isnan(fit.aic)
    assert "quasi-likelihood" in str(fit.summary()).lower()
