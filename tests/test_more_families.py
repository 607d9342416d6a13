"""The betabinomial, tweedie and lognormal families (issue 14) against glmmTMB 1.1.5.

References: tests/data/zi/zi_cases.json (cbpp_betabinomial, sim_tweedie, sim_lognormal; make_zi.R, the
lognormal by a TMB template of glmmTMB >= 1.1.8's density) and tests/data/families/families_cases.json
(betabinomial and tweedie with dispformula = ~ x; make_families.R).  Rule: log-likelihood within 1e-4 of
glmmTMB's or higher, every coefficient within 2 % of its SE, SEs, random-effect SDs, dispersion and
power within 1 %.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import glmmkit as gk
from glmmkit import families as F
from glmmkit.exceptions import ArgumentError, DataError, FormulaError
from glmmkit.families.tweedie import tweedie_series
from test_zero_models import CASES, ROOT, load

FITTED = ["cbpp_betabinomial", "sim_tweedie", "sim_lognormal"]
DISP = {c["id"]: c for c in json.loads((ROOT / "tests/data/families/families_cases.json").read_text())["cases"]}


def load_case(case):
    d = load(case) if case["id"] in CASES else pd.read_csv(ROOT / case["data"])
    if "cbpp" in case["data"]:  # period and herd are factors in R
        d["period"] = pd.Categorical(d["period"].astype(str))
        d["herd"] = d["herd"].astype(str)
    if "g" in d:
        d["g"] = d["g"].astype(str)
    return d


_FITS = {}


def fitted(cid):
    if cid not in _FITS:
        case = CASES[cid] if cid in CASES else DISP[cid]
        disp = case["dispformula"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cbpp's herd variance is on the boundary (glmmTMB: 1.4e-4)
            _FITS[cid] = gk.glmer(case["formula"], load_case(case), family=case["family"], link=case["link"],
                                  dispformula=None if disp == "~1" else disp)
    return _FITS[cid]


def _sd_matches(got, ref):
    if ref < 1e-3:  # a variance at the boundary: both essentially zero
        return got < 1e-3
    return abs(got / ref - 1.0) < 0.01


def _log_disp_and_se(fit):
    names = list(fit._psi_names)
    j = names.index(fit.family.disp_param)
    return float(fit._psi[j]), float(np.sqrt(fit._psi_cov[j, j])), names


@pytest.mark.parametrize("cid", FITTED)
def test_matches_glmmtmb(cid):
    case, fit = CASES[cid], fitted(cid)
    assert fit.converged
    assert fit.loglik > case["logLik"] - 1e-4
    assert abs(fit.loglik - case["logLik"]) < 1e-4
    assert fit.npar == case["df"]
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    for j, (name, est) in enumerate(fit.fixef.items()):
        ref_se = case["se"]["cond"][name]
        assert abs(est - case["fixef"]["cond"][name]) <= 0.02 * ref_se, (name, est)
        assert se[j] == pytest.approx(ref_se, rel=0.01), name
    for key, sd in case["sd"]["cond"].items():
        group, term = key.split("|")
        vc = fit.varcorr
        got = float(vc[(vc["group"] == group) & (vc["term1"] == term)]["sdcor"].iloc[0])
        assert _sd_matches(got, sd), (key, got, sd)
    # the dispersion: glmmTMB's betad = log φ (log σ for the lognormal), its SE, and sigma()
    log_disp, log_disp_se, names = _log_disp_and_se(fit)
    ref_d, ref_dse = case["fixef"]["disp"]["(Intercept)"], case["se"]["disp"]["(Intercept)"]
    assert abs(log_disp - ref_d) <= 0.02 * ref_dse
    assert fit.family_params[fit.family.disp_param] == pytest.approx(case["sigma"], rel=0.01)
    np.testing.assert_allclose(fit.predict(type="disp"), case["sigma"], rtol=0.01)
    if cid != "cbpp_betabinomial":  # cbpp's herd variance sits on the boundary, where glmmTMB's SE of it is 4666
        assert log_disp_se == pytest.approx(ref_dse, rel=0.01)
    if cid == "sim_tweedie":
        assert fit.family_params["power"] == pytest.approx(case["family_params"]["power"], rel=0.01)
        j = names.index("power")  # glmmTMB's "Tweedie power" SE is on its scale, logit(p - 1), as ours
        assert np.sqrt(fit._psi_cov[j, j]) == pytest.approx(case["se"]["cond"]["Tweedie power"], rel=0.01)
        table = fit.family_params_table()
        assert table.loc["power", "estimate"] == pytest.approx(fit.family_params["power"])
        assert 1.0 < table.loc["power", "2.5 %"] < fit.family_params["power"] < table.loc["power", "97.5 %"] < 2.0
    rows = case["predict"]["rows"]
    np.testing.assert_allclose(np.asarray(fit.predict(type="response"))[rows], case["predict"]["response"], rtol=2e-4)
    np.testing.assert_allclose(np.asarray(fit.predict(type="link"))[rows], case["predict"]["link"], rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("cid", sorted(DISP))
def test_dispformula_matches_glmmtmb(cid):
    case, fit = DISP[cid], fitted(cid)
    assert fit.converged
    assert fit.loglik > case["logLik"] - 1e-4
    assert abs(fit.loglik - case["logLik"]) < 1e-4
    assert fit.npar == case["df"]
    for part, est, cov in (("cond", fit.fixef, fit.vcov), ("disp", fit.fixef_disp, fit.vcov_part("disp"))):
        assert sorted(est.index) == sorted(case["fixef"][part])
        se = pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=est.index)
        for name, value in case["fixef"][part].items():
            ref_se = case["se"][part][name]
            assert abs(est[name] - value) <= 0.02 * ref_se, (part, name, est[name], value)
            assert se[name] == pytest.approx(ref_se, rel=0.01), (part, name)
    sd = float(fit.varcorr["sdcor"].iloc[0])
    assert sd == pytest.approx(case["sd"]["cond"]["g|(Intercept)"], rel=0.01)
    for k, v in case["family_params"].items():
        assert fit.family_params[k] == pytest.approx(v, rel=0.01)
    got = np.asarray(fit.predict(type="disp"))[[0, 99, 199, 299]]
    np.testing.assert_allclose(got, case["predict_disp"], rtol=1e-3)


def test_betabinomial_beats_binomial_on_cbpp():
    bb = fitted("cbpp_betabinomial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bin_fit = gk.glmer(CASES["cbpp_betabinomial"]["formula"], load_case(CASES["cbpp_betabinomial"]), family="binomial")
    assert bb.loglik > bin_fit.loglik + 3.0  # -88.04 vs -92.03 with one parameter more: extra-binomial variation
    # the same model from proportions with weights = trials
    d = load_case(CASES["cbpp_betabinomial"])
    d["prop"] = d["incidence"] / d["size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prop = gk.glmer("prop ~ period + (1 | herd)", d, family="betabinomial", weights="size")
    assert prop.loglik == pytest.approx(bb.loglik, abs=1e-8)
    np.testing.assert_allclose(prop.fixef.to_numpy(), bb.fixef.to_numpy(), atol=1e-6)


# ----- derivatives ------------------------------------------------------------------------------------------


def _sample(name, n, rng):
    """(family bound to parameters, y, μ, weights) for the derivative and moment checks."""
    if name == "betabinomial":
        fam = F.get_family("betabinomial").with_values({"phi": 3.0})
        wt = rng.integers(1, 25, n).astype(float)
        mu = rng.uniform(0.05, 0.9, n)
        y = rng.binomial(wt.astype(int), mu) / wt
    elif name == "tweedie":
        fam = F.get_family("tweedie").with_values({"phi": 1.3, "power": 1.45})
        mu = rng.uniform(0.2, 5.0, n)
        y = fam.simulate(mu, None, rng)
        wt = np.ones(n)
    else:
        fam = F.get_family("lognormal").with_values({"sigma": 0.8})
        mu = rng.uniform(0.1, 6.0, n)
        y = fam.simulate(mu, None, rng)
        wt = np.ones(n)
    return fam, y, mu, wt


def _assert_close(num, exact):
    scale = 1e-7 * (1.0 + np.max(np.abs(exact)))
    np.testing.assert_allclose(num, exact, rtol=1e-6, atol=scale)


@pytest.mark.parametrize("per_row", [False, True], ids=["scalar", "per-row"])
@pytest.mark.parametrize("name", ["betabinomial", "tweedie", "lognormal"])
def test_derivatives_against_central_differences(name, per_row):
    """μ-derivatives to third order and each parameter's (ℓ, ∂ℓ/∂μ, ∂²ℓ/∂μ²) derivatives on the engine's
    scale, with the parameters a scalar or one value per row (a dispformula's case)."""
    rng = np.random.default_rng(7)
    fam, y, mu, wt = _sample(name, 60, rng)
    if per_row:
        psi = dict(zip(fam.free_names, fam.log_params()))
        fam = fam.with_psi({k: v + rng.normal(0.0, 0.3, y.shape[0]) for k, v in psi.items()})
    f, f1, f2, f3, dpsi = fam.mu_derivatives(y, mu, wt, fam.values)
    assert np.all(np.isfinite(f)) and (name != "tweedie" or (y == 0).any())
    h = 1e-5
    up, dn = fam.mu_derivatives(y, mu * (1 + h), wt, fam.values), fam.mu_derivatives(y, mu * (1 - h), wt, fam.values)
    for k, d in enumerate((f1, f2, f3)):
        _assert_close((up[k] - dn[k]) / (2 * h * mu), d)
    np.testing.assert_allclose(fam.log_density(y, mu, wt, fam.values), f, rtol=1e-13)
    s1, s2 = fam.mu_score_info(y, mu, wt, fam.values)
    np.testing.assert_allclose(s1, f1, rtol=1e-12)
    np.testing.assert_allclose(s2, f2, rtol=1e-12)
    base = {k: np.array(v, dtype=float) for k, v in _engine(fam).items()}
    for k in fam.free_names:
        a = fam.with_psi({**base, k: base[k] + h})
        b = fam.with_psi({**base, k: base[k] - h})
        fa, fb = a.mu_derivatives(y, mu, wt, a.values), b.mu_derivatives(y, mu, wt, b.values)
        for i in range(3):
            _assert_close((fa[i] - fb[i]) / (2 * h), dpsi[k][i])


def _engine(fam):
    """The bound parameters on the engine's scale, per row where they are arrays."""
    out = {}
    for k in fam.free_names:
        v = np.asarray(fam.values[k], dtype=float)
        out[k] = np.log(v - 1.0) - np.log(2.0 - v) if k == "power" else np.log(v)
    return out


# ----- densities ----------------------------------------------------------------------------------------------


def test_betabinomial_sums_to_one_with_its_moments():
    for n in (1, 7, 30):
        k = np.arange(n + 1, dtype=float)
        for mu in (0.1, 0.5, 0.85):
            for phi in (0.5, 10.0, 1e3):
                fam = F.get_family("betabinomial").with_values({"phi": phi})
                pmf = np.exp(fam.loglik(k / n, np.full(k.shape, mu), np.full(k.shape, float(n))))
                assert pmf.sum() == pytest.approx(1.0, abs=1e-10)  # (φ = 1e3: log-gamma differences near 1e3)
                mean = (pmf * k).sum()
                assert mean == pytest.approx(n * mu, rel=1e-10)
                var = (pmf * (k - mean) ** 2).sum()
                assert var == pytest.approx(n * mu * (1 - mu) * (n + phi) / (1 + phi), rel=1e-9)
                np.testing.assert_allclose(fam.trial_variance(np.array([mu]), np.array([n])), var / n**2, rtol=1e-9)


@pytest.mark.parametrize("mu,phi,p", [(0.5, 1.0, 1.5), (3.0, 0.7, 1.2), (1.5, 2.0, 1.85), (8.0, 0.3, 1.6)])
def test_tweedie_integrates_to_one_with_its_point_mass(mu, phi, p):
    fam = F.get_family("tweedie").with_values({"phi": phi, "power": p})

    def dens(y):
        y = np.atleast_1d(np.asarray(y, dtype=float))
        return np.exp(fam.loglik(y, np.full(y.shape, mu), np.ones(y.shape)))

    p0 = float(dens(0.0)[0])
    assert p0 == pytest.approx(np.exp(-mu ** (2 - p) / (phi * (2 - p))), rel=1e-12)
    top = 60.0 * max(mu, 1.0)
    mass = integrate.quad(lambda t: dens(t)[0], 0.0, top, limit=500, points=[0.1 * mu, mu, 3 * mu])[0]
    assert p0 + mass == pytest.approx(1.0, abs=1e-7)
    mean = integrate.quad(lambda t: t * dens(t)[0], 0.0, top, limit=500, points=[0.1 * mu, mu, 3 * mu])[0]
    assert mean == pytest.approx(mu, rel=1e-6)
    var = integrate.quad(lambda t: (t - mu) ** 2 * dens(t)[0], 0.0, top, limit=500, points=[0.1 * mu, mu, 3 * mu])[0]
    var += p0 * mu**2
    assert var == pytest.approx(phi * mu**p, rel=1e-6)


def test_tweedie_series_is_the_compound_poisson_sum():
    """The series against the compound Poisson-gamma sum written out with scipy's distributions,
    including rows whose largest term is far from j = 1 (p near 2, small φ)."""
    for mu, phi, p, ys in [(2.0, 1.2, 1.5, [0.01, 0.7, 3.0, 15.0]), (30.0, 0.1, 1.9, [5.0, 28.0, 40.0]),
                           (1.0, 0.5, 1.1, [0.3, 1.0, 2.5])]:
        ys = np.asarray(ys)
        lam = mu ** (2 - p) / (phi * (2 - p))
        shape, scale = (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
        N = np.arange(1, 3000)
        direct = np.array([np.sum(stats.poisson.pmf(N, lam) * stats.gamma.pdf(y, N * shape, scale=scale)) for y in ys])
        fam = F.get_family("tweedie").with_values({"phi": phi, "power": p})
        got = np.exp(fam.loglik(ys, np.full(ys.shape, mu), np.ones(ys.shape)))
        np.testing.assert_allclose(got, direct, rtol=1e-10)
    # per-row parameters: the same as one row at a time
    y = np.array([0.5, 4.0, 20.0])
    phis, ps = np.array([0.4, 1.0, 2.5]), np.array([1.3, 1.6, 1.95])
    ls, _, _ = tweedie_series(y, phis, ps)
    one = [tweedie_series(y[i:i + 1], phis[i], ps[i])[0][0] for i in range(3)]
    np.testing.assert_allclose(ls, one, rtol=1e-13)


def test_lognormal_density_and_moments():
    fam = F.get_family("lognormal").with_values({"sigma": 0.8})
    for mu in (0.3, 2.0, 15.0):
        s2 = np.log1p((0.8 / mu) ** 2)
        ys = np.array([0.05, 0.4, 1.0, 3.0, 20.0])
        np.testing.assert_allclose(fam.loglik(ys, np.full(5, mu), np.ones(5)),
                                   stats.lognorm.logpdf(ys, np.sqrt(s2), scale=np.exp(np.log(mu) - s2 / 2)), rtol=1e-12)

        def dens(t):
            return np.exp(fam.loglik(np.array([t]), np.array([mu]), np.ones(1)))[0]

        assert integrate.quad(dens, 0, np.inf, limit=200)[0] == pytest.approx(1.0, abs=1e-8)
        assert integrate.quad(lambda t: t * dens(t), 0, np.inf, limit=200)[0] == pytest.approx(mu, rel=1e-7)
        assert integrate.quad(lambda t: (t - mu) ** 2 * dens(t), 0, np.inf, limit=200)[0] == pytest.approx(0.64, rel=1e-6)


# ----- simulation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["betabinomial", "tweedie", "lognormal"])
def test_simulation_moments(name):
    rng = np.random.default_rng(11)
    n = 200_000
    if name == "betabinomial":
        fam = F.get_family("betabinomial").with_values({"phi": 4.0})
        mu, wt = np.full(n, 0.3), np.full(n, 12.0)
        y = fam.simulate(mu, wt, rng)
        assert np.allclose(y * 12, np.round(y * 12)) and y.min() >= 0 and y.max() <= 1
        var = fam.trial_variance(mu[:1], wt[:1])[0]
    elif name == "tweedie":
        fam = F.get_family("tweedie").with_values({"phi": 1.2, "power": 1.5})
        mu, wt = np.full(n, 2.0), np.ones(n)
        y = fam.simulate(mu, wt, rng)
        assert y.min() == 0.0
        assert (y == 0).mean() == pytest.approx(np.exp(-2.0**0.5 / (1.2 * 0.5)), abs=4 * np.sqrt(0.25 / n))
        var = 1.2 * 2.0**1.5
    else:
        fam = F.get_family("lognormal").with_values({"sigma": 0.8})
        mu, wt = np.full(n, 2.0), np.ones(n)
        y = fam.simulate(mu, wt, rng)
        assert y.min() > 0
        var = 0.64
    assert abs(y.mean() - mu[0]) < 4.0 * np.sqrt(var / n)
    assert y.var() == pytest.approx(var, rel=0.03)
    if name != "betabinomial":  # (the betabinomial's depends on the trials: trial_variance)
        assert fam.variance(mu[:1])[0] == pytest.approx(var, rel=1e-12)


@pytest.mark.parametrize("cid", FITTED)
def test_fit_simulates(cid):
    fit = fitted(cid)
    d = load_case(CASES[cid])
    sims = np.asarray(fit.simulate(nsim=200, seed=4))
    assert sims.shape == (fit.nobs, 200)
    y = np.asarray(fit.frame.y)
    if cid == "cbpp_betabinomial":
        size = d["size"].to_numpy(dtype=float)[:, None]
        assert np.allclose(sims * size, np.round(sims * size))
        assert abs(np.average(sims.mean(axis=1), weights=size[:, 0]) - np.average(y, weights=size[:, 0])) < 0.03
    elif cid == "sim_tweedie":
        assert sims.min() == 0.0 and abs((sims == 0).mean() - (y == 0).mean()) < 0.05
    else:
        assert sims.min() > 0
    assert abs(np.log(sims.mean()) - np.log(y.mean())) < 0.25  # new random effects: the mean is variable


# ----- responses, parameters and errors ---------------------------------------------------------------------


def test_response_checks():
    d = pd.DataFrame({"y": [1.0, 0.0, 2.0, -1.0, 3.0, 0.5] * 3, "x": np.arange(18.0), "g": list("abc") * 6})
    with pytest.raises(DataError, match=r"lognormal response 'y' must be > 0; 6 row\(s\) are not \(rows 1, 3, 7, 9"):
        gk.glmer("y ~ x + (1 | g)", d, family="lognormal")
    with pytest.raises(DataError, match=r"tweedie response 'y' must be >= 0; 3 row\(s\) are negative \(rows 3, 9, 15"):
        gk.glmer("y ~ x + (1 | g)", d, family="tweedie")
    with pytest.raises(DataError, match=r"betabinomial response 'y' must be cbind"):
        gk.glmer("y ~ x + (1 | g)", d, family="betabinomial")
    d2 = d.assign(y=np.abs(d["y"]) / 3.0)
    with pytest.raises(DataError, match="not a whole number of successes"):
        gk.glmer("y ~ x + (1 | g)", d2, family="betabinomial", weights=np.full(18, 2.0))
    d3 = d.assign(k=[1, 2, 0, 3, 1, 2] * 3, n=5)
    with pytest.raises(FormulaError, match="'binomial' or 'betabinomial'"):
        gk.glmer("cbind(k, n - k) ~ x + (1 | g)", d3, family="poisson")


def test_tweedie_power_fixed_and_bounds():
    case = CASES["sim_tweedie"]
    free = fitted("sim_tweedie")
    fixed = gk.glmer(case["formula"], load_case(case), family="tweedie", family_params={"power": 1.5})
    assert fixed.npar == free.npar - 1
    assert fixed.family_params["power"] == 1.5
    assert fixed.loglik <= free.loglik + 1e-8 and fixed.loglik > free.loglik - 0.1  # p̂ = 1.501
    for bad in (1.0, 2.0, 2.5):
        with pytest.raises(ArgumentError, match="strictly between 1 and 2"):
            F.get_family("tweedie", family_params={"power": bad})


def test_registry_names():
    for name, cls in (("betabinomial", F.BetaBinomial), ("tweedie", F.Tweedie), ("lognormal", F.LogNormal)):
        fam = F.get_family(name)
        assert isinstance(fam, cls) and fam.name == name
        assert F.get_family(fam) is not fam and isinstance(F.get_family(fam), cls)
    assert F.get_family("beta_binomial").name == "betabinomial"
    with pytest.raises(ArgumentError, match="did you mean 'tweedie'"):
        F.get_family("tweedy")


# ----- Pearson residuals ------------------------------------------------------------------------------------


PEARSON = json.loads((ROOT / "tests/data/families/families_cases.json").read_text())["pearson"]


def test_betabinomial_pearson_residuals_against_glmmtmb():
    """(y - μ)/√Var(k/n), Var(k/n) = μ(1 - μ)(n + φ)/(n(1 + φ)).  glmmTMB's residuals(type = "pearson") leave
    out (n + φ)/(1 + φ) (its betabinomial variance is the unscaled μ(1 - μ)); the reference divides it out
    with glmmTMB's φ, and ours times that factor (at our φ) is glmmTMB's own."""
    fit = fitted("cbpp_betabinomial")
    assert fit.loglik == pytest.approx(PEARSON["logLik"], abs=1e-4)
    n = np.asarray(PEARSON["size"], dtype=float)
    np.testing.assert_allclose(fit._problem.wt, n)  # the trials reach the fit as its weights
    np.testing.assert_allclose(np.asarray(fit.fitted()), PEARSON["fitted"], atol=1e-4)
    r = np.asarray(fit.residuals("pearson"))
    np.testing.assert_allclose(r, PEARSON["pearson_scaled"], atol=1e-4)
    phi = fit.family_params["phi"]
    np.testing.assert_allclose(r * np.sqrt((n + phi) / (1 + phi)), PEARSON["pearson_glmmTMB"], atol=1e-4)
    # the definition, from the pieces: the fit's response, fitted proportions and φ
    y, mu = np.asarray(fit.frame.y), np.asarray(fit.fitted())
    np.testing.assert_allclose(r, (y - mu) / np.sqrt(fit.family.trial_variance(mu, n)), rtol=1e-12)
    # response_variance without trials is one trial's, μ(1 - μ)
    np.testing.assert_allclose(fit.family.response_variance(mu), mu * (1 - mu), rtol=1e-12)
    np.testing.assert_allclose(fit.family.response_variance(mu, n), n * fit.family.trial_variance(mu, n), rtol=1e-12)


# ----- zeros: a lognormal hurdle, and the families a ziformula does not take ------------------------------------


def _hurdle_data(seed=5, n=600, G=30):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n // G)
    x = rng.normal(size=n)
    mu = np.exp(0.5 + 0.4 * x + rng.normal(0, 0.4, G)[g])
    s2 = np.log1p((0.9 / mu) ** 2)
    y = np.exp(np.log(mu) - s2 / 2 + np.sqrt(s2) * rng.normal(size=n))
    y[rng.random(n) < 1 / (1 + np.exp(0.7 - 0.5 * x - rng.normal(0, 0.6, G)[g]))] = 0.0
    d = pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})
    d["zero"] = (d["y"] == 0).astype(float)
    return d


def test_lognormal_hurdle_is_a_bernoulli_glmm_plus_a_lognormal_glmm():
    """A hurdle's two parts share no parameters: its likelihood factorises into a Bernoulli model of y = 0
    and a lognormal model of the positive rows, and so does the Laplace approximation (block-diagonal
    Hessian), so fitting the hurdle is fitting the two separately."""
    d = _hurdle_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the zero rows do not reach a log(0) in the start
        pos = gk.glmer("y ~ x + (1 | g)", d[d["y"] > 0], family="lognormal")
        h1 = gk.glmer("y ~ x + (1 | g)", d, family="lognormal", ziformula="~1")
        h2 = gk.glmer("y ~ x + (1 | g)", d, family="lognormal", ziformula="~x + (1 | g)")
    bern = gk.glmer("zero ~ x + (1 | g)", d, family="binomial")
    assert h1.converged and h2.converged
    assert h2.family.zero_model == "hurdle" and h2.family.name == "zilognormal"
    n, n0 = len(d), int(d["zero"].sum())
    assert 0 < n0 < n
    # intercept-only zero part: π̂ = the share of zeros, closed form
    assert h1.loglik == pytest.approx(pos.loglik + n0 * np.log(n0 / n) + (n - n0) * np.log(1 - n0 / n), abs=1e-6)
    assert h2.loglik == pytest.approx(pos.loglik + bern.loglik, abs=1e-6)
    assert h2.npar == pos.npar + bern.npar
    for h in (h1, h2):
        np.testing.assert_allclose(h.fixef.to_numpy(), pos.fixef.to_numpy(), atol=2e-4)
        assert h.family_params["sigma"] == pytest.approx(pos.family_params["sigma"], rel=1e-4)
    np.testing.assert_allclose(h2.fixef_zi.to_numpy(), bern.fixef.to_numpy(), atol=2e-4)
    assert float(h1.fixef_zi.iloc[0]) == pytest.approx(np.log(n0 / (n - n0)), abs=1e-4)
    # the mean: E y = (1 - π) μ, π the Bernoulli model's fitted probability and μ the lognormal's
    np.testing.assert_allclose(np.asarray(h2.predict(type="zprob")), np.asarray(bern.fitted()), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(h2.predict(type="response")),
                               (1 - np.asarray(bern.fitted())) * np.asarray(h2.predict(type="conditional")), rtol=1e-3)


@pytest.mark.parametrize("family,match", [
    ("betabinomial", "zero-inflated betabinomial .* not available here: .* one trial per row"),
    ("tweedie", "tweedie family models its zeros itself"),
])
def test_ziformula_refused_with_the_reason(family, match):
    d = load_case(CASES["cbpp_betabinomial"])
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)" if family == "betabinomial" else \
        "incidence ~ period + (1 | herd)"
    with pytest.raises(ArgumentError, match=match):
        gk.glmer(formula, d, family=family, ziformula="~1")


def test_summary_names_each_family_parameters_interval_scale():
    """The tweedie power's interval comes from logit(p - 1), φ's from log φ; a family all on the log scale
    keeps the one-phrase header."""
    tw = str(fitted("sim_tweedie").summary())
    assert "standard errors and 95% intervals from log(phi) and logit(power - 1)" in tw
    assert "from the log scale" not in tw
    bb = str(fitted("cbpp_betabinomial").summary())
    assert "standard errors and 95% intervals from the log scale" in bb and "SE(log)" in bb
