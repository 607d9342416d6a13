"""GLMMs on covariates as recorded (glmmkit issue 12, defect 5): fits on centred/scaled columns,
reported on the user's scale (src/glmmkit/scaling.py)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmkit
from glmmkit import cli
from glmmkit.scaling import choose_scaling, lq_lower, rescale_columns, theta_jacobian, theta_to_user, u_to_user

R_DATA = Path(__file__).parent / "data" / "r_datasets"


def load_r(name):
    """A data set exported by tests/data/r_datasets/export.R, factors with R's levels."""
    meta = json.loads((R_DATA / "datasets.json").read_text())[name]
    factors = {c["name"]: c for c in meta["columns"] if "levels" in c}
    df = pd.read_csv(R_DATA / meta["file"], dtype={k: str for k in factors})
    for k, c in factors.items():
        df[k] = pd.Categorical(df[k], categories=c["levels"], ordered=c["type"] == "ordered")
    return df


def _epil():
    df = load_r("epil")
    df["subject"] = pd.Categorical(df["subject"])
    df["obs"] = pd.Categorical(np.arange(len(df)))
    return df


def _fit(formula, df, family="poisson", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmkit.glmer(formula, df, family=family, **kw)


# lme4 1.1.31 (R 4.2.2): logLik(glmer(<formula>, <data>, family = poisson)) on the raw columns, data
# lme4::grouseticks and MASS::epil with subject <- factor(subject), obs <- factor(seq_len(nrow(epil)));
# lme4 warns on all three (max|grad| 0.046, 0.0028, 0.0021; "Rescale variables?" on the first two).
TEXTBOOK = [
    ("grouseticks", "TICKS ~ YEAR + HEIGHT + (1 | BROOD)", -989.037746064),
    ("grouseticks", "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", -890.271353494),
    ("epil", "y ~ trt + base + age + V4 + (1 | subject) + (1 | obs)", -627.547205987),
]


@pytest.mark.parametrize("name, formula, lme4_loglik", TEXTBOOK, ids=["ticks_brood", "ticks_three", "epil_olre"])
def test_textbook_fits_on_raw_covariates_reach_lme4(name, formula, lme4_loglik):
    df = load_r("grouseticks") if name == "grouseticks" else _epil()
    fit = _fit(formula, df)
    assert fit.converged
    assert fit.loglik >= lme4_loglik - 1e-4
    se = np.sqrt(np.diag(np.asarray(fit.vcov)))
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    assert fit.optimizer_info.rescaled  # the raw covariates were transformed for the fit


def test_textbook_fit_reported_as_unscaled():
    """β on the user's scale: the same linear predictor as the fit on a centred/scaled HEIGHT."""
    df = load_r("grouseticks")
    raw = _fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", df)
    sc = df.copy()
    c, s = df.HEIGHT.mean(), df.HEIGHT.std()
    sc["HEIGHT"] = (df.HEIGHT - c) / s
    ref = _fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", sc)
    assert raw.loglik == pytest.approx(ref.loglik, rel=1e-9, abs=1e-6)
    b, r = np.asarray(raw.fixef), np.asarray(ref.fixef)
    assert b[3] * s == pytest.approx(r[3], rel=1e-4)
    assert b[0] + b[3] * c == pytest.approx(r[0], rel=1e-4)
    assert np.asarray(raw.theta) == pytest.approx(np.asarray(ref.theta), rel=1e-4)
    assert np.sqrt(raw.vcov.iloc[3, 3]) * s == pytest.approx(np.sqrt(ref.vcov.iloc[3, 3]), rel=1e-3)


def test_cli_fit_grouseticks_raw_height(tmp_path, capsys):
    path = tmp_path / "grouseticks.csv"
    load_r("grouseticks").to_csv(path, index=False)
    args = ["fit", "TICKS ~ YEAR + HEIGHT + (1 | BROOD)", "--data", str(path), "--family", "poisson",
            "--factor", "YEAR,BROOD", "--output", "json"]
    assert cli.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["converged"] is True and doc["loglik"] >= -989.037746064 - 1e-4


def _slope_data(seed, family):
    rng = np.random.default_rng(seed)
    n, G = 500, 25
    g = rng.integers(G, size=n)
    g[:G] = np.arange(G)
    x = rng.normal(size=n)
    u0, u1 = rng.normal(size=(2, G)) * np.array([[0.6], [0.4]])
    eta = 0.3 + 0.5 * x + u0[g] + u1[g] * x
    y = rng.poisson(np.exp(eta)) if family == "poisson" else (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical([f"g{i:02d}" for i in g])})


def _cov_b(fit, k=2):
    """Covariance of one level's random effects, from θ (GLMMs: σ = 1)."""
    th = np.asarray(fit.theta)
    T = np.zeros((k, k))
    T[np.triu_indices(k)[1], np.triu_indices(k)[0]] = th[: k * (k + 1) // 2]
    return T @ T.T


@pytest.mark.parametrize("family, seed", [("poisson", 1), ("binomial", 2), ("poisson", 3)])
def test_random_slope_invariant_to_centring_and_scaling(family, seed):
    df = _slope_data(seed, family)
    dfs = df.copy()
    dfs["x"] = 100.0 * df.x + 500.0
    a, b = _fit("y ~ x + (x | g)", df, family), _fit("y ~ x + (x | g)", dfs, family)
    assert a.converged and b.converged
    assert b.loglik == pytest.approx(a.loglik, rel=1e-6)
    # x' = 100 x + 500: [1, x'] = [1, x] K, so β = K β', Cov(b) = K Cov(b') K', b = K b'
    K = np.array([[1.0, 500.0], [0.0, 100.0]])
    assert K @ np.asarray(b.fixef) == pytest.approx(np.asarray(a.fixef), rel=2e-3, abs=2e-4)
    assert K @ _cov_b(b) @ K.T == pytest.approx(_cov_b(a), rel=5e-3, abs=1e-4)
    Va = np.asarray(a.vcov)
    assert K @ np.asarray(b.vcov) @ K.T == pytest.approx(Va, rel=2e-2, abs=1e-3 * np.max(np.abs(Va)))
    ra, rb = a.ranef["g"].to_numpy(), b.ranef["g"].to_numpy()
    assert rb @ K.T == pytest.approx(ra, rel=5e-3, abs=5e-4)
    # the joint (θ, β) covariance: both fits' on the user's θ, mapped by the same Jacobian
    assert a._param_cov is not None and b._param_cov is not None
    J = np.eye(5)
    J[:3, :3] = theta_jacobian(b.structure, {0: K}, np.asarray(b.theta))
    J[3:, 3:] = K
    Ca = a._param_cov
    assert J @ b._param_cov @ J.T == pytest.approx(Ca, rel=5e-2, abs=5e-3 * np.max(np.abs(Ca)))


def test_uncorrelated_slope_invariant_to_scaling():
    df = _slope_data(4, "poisson")
    dfs = df.copy()
    dfs["x"] = 300.0 * df.x
    a, b = _fit("y ~ x + (x || g)", df), _fit("y ~ x + (x || g)", dfs)
    assert b.converged and b.loglik == pytest.approx(a.loglik, rel=1e-6)
    assert np.asarray(b.theta) * np.array([1.0, 300.0]) == pytest.approx(np.asarray(a.theta), rel=5e-3, abs=1e-4)
    assert any("||" in r for r in b.optimizer_info.rescaled)


def test_parametric_family_and_quadrature_on_raw_height():
    df = load_r("grouseticks")
    nb = _fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", df, family="negative_binomial")
    assert nb.converged and np.isfinite(nb.loglik)
    agq = _fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", df, nagq=5)
    lap = _fit("TICKS ~ YEAR + HEIGHT + (1 | BROOD)", df)
    assert agq.converged and abs(agq.loglik - lap.loglik) < 5.0
    assert np.all(np.isfinite(np.sqrt(np.diag(np.asarray(agq.vcov)))))


# --- the pure functions -------------------------------------------------------------------------


def test_lq_lower_handles_singular_factors():
    rng = np.random.default_rng(0)
    for B in (rng.normal(size=(3, 3)), np.outer([1.0, 2.0, -1.0], [0.5, 0.0, 1.0])):
        L, Q = lq_lower(B)
        assert np.allclose(np.triu(L, 1), 0) and np.all(np.diag(L) >= 0)
        assert L @ Q == pytest.approx(B, abs=1e-12) and Q @ Q.T == pytest.approx(np.eye(3), abs=1e-12)


def test_theta_map_jacobian_and_modes():
    df = _slope_data(5, "poisson")
    df["x"] = 40.0 * df.x + 900.0
    fit = _fit("y ~ x + (x | g)", df)
    frame, structure = fit.frame, fit.structure
    sc = choose_scaling(np.asarray(fit._objective.X), list(fit.x_names), structure, frame)
    assert sc.active and 0 in sc.term_maps and sc.M is not None
    A = sc.term_maps[0]
    theta_fit = np.array([0.7, -0.2, 0.3])
    theta = theta_to_user(structure, sc.term_maps, theta_fit)
    T_fit = np.array([[0.7, 0.0], [-0.2, 0.3]])
    T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    assert T @ T.T == pytest.approx(A @ T_fit @ T_fit.T @ A.T, rel=1e-12)
    J = theta_jacobian(structure, sc.term_maps, theta_fit)
    h = 1e-6
    num = np.column_stack([(theta_to_user(structure, sc.term_maps, theta_fit + h * e)
                            - theta_to_user(structure, sc.term_maps, theta_fit - h * e)) / (2 * h) for e in np.eye(3)])
    assert J == pytest.approx(num, rel=1e-6, abs=1e-8)
    # b = Λ u is the same random effect in both parameterisations: b_user = A b_fit per level
    u_fit = np.random.default_rng(1).normal(size=structure.q)
    u = u_to_user(structure, sc.term_maps, theta_fit, u_fit)
    b_fit = u_fit.reshape(-1, 2) @ T_fit.T
    b = u.reshape(-1, 2) @ T.T
    assert b == pytest.approx(b_fit @ A.T, rel=1e-10, abs=1e-12)


def test_rescale_columns_leaves_indicators_and_unit_columns():
    rng = np.random.default_rng(2)
    X = np.column_stack([np.ones(100), rng.normal(size=100), (rng.uniform(size=100) < 0.02).astype(float),
                         460 + 50 * rng.normal(size=100)])
    names = ["(Intercept)", "x", "d", "HEIGHT"]
    assert rescale_columns(X, names)[1] is None  # LMMs' limit: only magnitudes beyond 1e4
    Xn, M = rescale_columns(X, names, limit=10.0)
    assert np.flatnonzero(np.diag(M) != 1.0).tolist() == [3]
    assert Xn @ np.linalg.solve(M, np.eye(4)) == pytest.approx(X)
