"""Issue 17, the user's side (second pass): singular-fit warnings, broom.mixed's tables and lme4's coef,
the report, the command line, summaries, caterpillar plots.

Reference figures are R's (lme4 1.1-31, lmerTest, broom.mixed 0.2.9) on the same data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmkit as gk
from glmmkit.exceptions import SingularFitWarning


@pytest.fixture(scope="module")
def sleep():
    return gk.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fm1(sleep):
    return gk.lmer("Reaction ~ Days + (Days | Subject)", sleep, data_name="sleepstudy")


@pytest.fixture(scope="module")
def gm1():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                    family="binomial", data_name="cbpp")


# ---------------- 1. singular fits warn when fitted ----------------

def _noise_data(seed=1):
    d = gk.datasets.load("sleepstudy").copy()
    d["y"] = np.random.default_rng(seed).normal(size=len(d))
    return d


def test_singular_fit_warns_and_names_the_term():
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit: \(Days \| Subject\) has") as rec:
        fit = gk.lmer("y ~ Days + (Days | Subject)", _noise_data())
    assert fit.singular
    msg = str(rec[0].message)
    assert "isSingular" in msg and "fit.varcorr" in msg
    assert msg in fit.optimizer_info.messages  # the summary's note says the same


def test_singular_glmm_warns_too():
    rng = np.random.default_rng(3)  # no cluster effect in the data: the variance lands on 0
    d = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(10)], 20), "x": rng.normal(size=200)})
    d["y"] = rng.binomial(1, 0.5, size=200)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = gk.glmer("y ~ x + (1 | g)", d, family="binomial")
    singular = [w for w in caught if issubclass(w.category, SingularFitWarning)]
    assert fit.singular and len(singular) == 1
    assert "(1 | g) has a variance estimated as zero" in str(singular[0].message)
    with warnings.catch_warnings(record=True) as caught:  # PQL too
        warnings.simplefilter("always")
        pql = gk.glmer("y ~ x + (1 | g)", d, family="binomial", method="pql")
    assert pql.singular == any(issubclass(w.category, SingularFitWarning) for w in caught)


def test_tidy_bootstrap_intervals_pass_their_options(sleep):
    fit = gk.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    t = fit.tidy(conf_int=True, conf_method="bootstrap", n_boot=20, seed=1, progress=False)
    ci = fit.confint(method="boot", n_boot=20, seed=1, progress=False)
    assert t["conf_low"].iloc[2] == pytest.approx(ci.loc["sd_(Intercept)|Subject", "lower"])
    assert t.attrs["conf_method"] == "bootstrap"


def test_regular_fit_and_refits_do_not_warn(fm1):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingularFitWarning)
        fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
        assert not fit.singular
    with pytest.warns(SingularFitWarning):
        s = gk.lmer("y ~ Days + (Days | Subject)", _noise_data())
    with warnings.catch_warnings():  # the bootstrap's and anova's refits do not repeat it per refit
        warnings.simplefilter("error", SingularFitWarning)
        s.refit(y=s.frame.y)


# ---------------- 2. broom.mixed's tidy / glance / augment, lme4's coef ----------------

def test_tidy_has_broom_mixeds_rows_and_columns(fm1):
    t = fm1.tidy()
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "df", "p_value"]
    assert list(t["effect"]) == ["fixed"] * 2 + ["ran_pars"] * 4
    assert list(t["term"]) == ["(Intercept)", "Days", "sd__(Intercept)", "cor__(Intercept).Days", "sd__Days",
                               "sd__Observation"]
    assert t["group"].tolist() == [None, None, "Subject", "Subject", "Subject", "Residual"]
    # broom.mixed::tidy(lmerTest::lmer(...)) on sleepstudy
    ref = [251.40510484848, 10.46728595960, 24.74065799498, 0.06555123824, 5.92213765890, 25.59179572168]
    np.testing.assert_allclose(t["estimate"], ref, rtol=2e-5)
    np.testing.assert_allclose(t["std_error"][:2], [6.824596695, 1.545789644], rtol=2e-5)
    np.testing.assert_allclose(t["df"][:2], [16.99972629, 16.99998373], rtol=1e-3)
    np.testing.assert_allclose(t["p_value"][:2], [1.171558111e-17, 3.263824470e-06], rtol=1e-3)
    assert t.iloc[2:][["std_error", "statistic", "p_value"]].isna().all().all()


def test_tidy_conf_int_wald_and_profile(fm1):
    t = fm1.tidy(conf_int=True)
    assert list(t.columns)[-2:] == ["conf_low", "conf_high"]
    # broom.mixed: t intervals with Satterthwaite's df for lmerTest fits; NA for ran_pars
    np.testing.assert_allclose(t["conf_low"][:2], [237.006446769, 7.205954651], rtol=1e-5)
    np.testing.assert_allclose(t["conf_high"][:2], [265.80376293, 13.72861727], rtol=1e-5)
    assert t["conf_low"][2:].isna().all()
    p = fm1.tidy(effects="ran_pars", conf_int=True, conf_method="profile", conf_level=0.9)
    ci = fm1.confint(method="profile", level=0.9)
    assert p["conf_low"].iloc[0] == pytest.approx(ci.loc["sd_(Intercept)|Subject", "lower"])
    assert p["conf_high"].iloc[1] == pytest.approx(ci.loc["cor_Days.(Intercept)|Subject", "upper"])
    assert p["conf_low"].iloc[-1] == pytest.approx(ci.loc["sigma", "lower"])
    assert p.attrs["conf_method"] == "profile"


def test_tidy_uncorrelated_terms_vcov_scale(sleep):
    fm2 = gk.lmer("Reaction ~ Days + (Days || Subject)", sleep, reml=False)
    t = fm2.tidy(scales="vcov")
    rp = t[t.effect == "ran_pars"]
    assert rp["group"].tolist() == ["Subject", "Subject.1", "Residual"]
    assert rp["term"].tolist() == ["var__(Intercept)", "var__Days", "var__Observation"]
    np.testing.assert_allclose(rp["estimate"], [584.26566055, 33.63264809, 653.11542058], rtol=1e-4)
    np.testing.assert_allclose(t["std_error"][:2], [6.707737453, 1.519305372], rtol=1e-4)
    g = fm2.glance()
    assert list(g.columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual"]
    np.testing.assert_allclose(g.iloc[0, 1:6].astype(float),
                               [25.55612296, -876.0016276, 1762.003255, 1777.968039, 1752.003255], rtol=1e-6)
    assert g["df.residual"].iloc[0] == 175


def test_tidy_ran_vals_and_ran_coefs(fm1):
    rv = fm1.tidy(effects="ran_vals")
    assert {"level", "group", "term"} <= set(rv.columns) and len(rv) == 36
    first = rv.iloc[0]
    assert (first["group"], first["level"], first["term"]) == ("Subject", "308", "(Intercept)")
    assert first["estimate"] == pytest.approx(2.258550950, abs=1e-3)
    assert first["std_error"] == pytest.approx(12.07085695, rel=1e-4)
    rc = fm1.tidy(effects="ran_coefs")
    assert rc["estimate"].iloc[0] == pytest.approx(253.6636558, rel=1e-6)
    with pytest.raises(gk.exceptions.ArgumentError, match="ran_pars"):
        fm1.tidy(effects="random")


def test_tidy_and_glance_of_a_glmm(gm1):
    t = gm1.tidy(conf_int=True)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "p_value",
                               "conf_low", "conf_high"]
    assert t["term"].tolist()[-1] == "sd__(Intercept)" and t["group"].tolist()[-1] == "herd"
    # glmer (Laplace): glmmkit's optimum is glmmTMB's, 3e-4 away from lme4's stopping point
    np.testing.assert_allclose(t["estimate"], [-1.3983428645, -0.9919249750, -1.1282162159, -1.5797454136,
                                               0.6420699277], atol=2e-3)
    np.testing.assert_allclose(t["conf_low"][:4], [-1.851514071, -1.586089320, -1.760951689, -2.406946566],
                               atol=2e-2)  # lme4's Hessian-based SEs differ from glmmkit's (and glmmTMB's) by ~1%
    g = gm1.glance()
    assert list(g.columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", "deviance", "df.residual"]
    assert g["nobs"].iloc[0] == 56 and g["sigma"].iloc[0] == 1.0 and g["df.residual"].iloc[0] == 51
    assert g["logLik"].iloc[0] == pytest.approx(-92.02628, abs=1e-4)
    assert g["deviance"].iloc[0] == pytest.approx(73.47428357, abs=5e-3)  # lme4's deviance(): Σ deviance residuals²


def test_glance_of_a_reml_fit(fm1):
    g = fm1.glance()
    assert list(g.columns) == ["nobs", "sigma", "logLik", "AIC", "BIC", "REMLcrit", "df.residual"]
    np.testing.assert_allclose(g.iloc[0, 1:6].astype(float),
                               [25.59179572, -871.814136, 1755.628272, 1774.786013, 1743.628272], rtol=1e-6)


def test_augment_aligns_to_the_data(fm1, sleep):
    a = fm1.augment()
    assert list(a.columns[-5:]) == [".fitted", ".resid", ".fixed", ".hat", ".cooksd"]
    # broom.mixed::augment(fm1): .hat 0.22930403774 0.16972999380, .cooksd 0.004963132515 0.040206201856
    np.testing.assert_allclose(a[".hat"].head(2), [0.22930403774, 0.16972999380], rtol=1e-4)
    np.testing.assert_allclose(a[".cooksd"].head(2), [0.004963132515, 0.040206201856], rtol=1e-4)
    np.testing.assert_allclose(a[".fitted"].head(3), [253.6636558, 273.3299175, 292.9961792], rtol=1e-6)
    np.testing.assert_allclose(a[".fixed"].head(2), [251.4051048, 261.8723908], rtol=1e-6)
    np.testing.assert_allclose(a[".fitted"] + a[".resid"], sleep["Reaction"])
    # a frame with a non-default index and a row the fit drops: NaN there, every other row in place
    d = sleep.copy()
    d.index = np.arange(1000, 1000 + len(d))
    d.loc[1003, "Reaction"] = np.nan
    d["note"] = "x"
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", d)
    out = fit.augment(d)
    assert out.index.equals(d.index) and "note" in out
    assert np.isnan(out.loc[1003, ".fitted"]) and out[".fitted"].notna().sum() == len(d) - 1
    np.testing.assert_allclose((out[".fitted"] + out[".resid"]).dropna(), d["Reaction"].dropna())
    with pytest.raises(gk.exceptions.ArgumentError, match="predict"):
        fit.augment(sleep.iloc[:10])


def test_augment_of_a_glmm(gm1):
    a = gm1.augment(gk.datasets.load("cbpp"))
    np.testing.assert_allclose(a[".fitted"].head(2), [-0.808713428, -1.800638403], atol=2e-3)
    np.testing.assert_allclose(a[".resid"].head(2), [-1.4377078236, 0.9884719518], atol=2e-3)
    np.testing.assert_allclose(a[".mu"].head(2), [0.30816472414, 0.14177337030], atol=5e-4)
    np.testing.assert_allclose(a[".fixed"].head(2), [-1.398342864, -2.390267839], atol=2e-3)


def test_coef_is_fixed_plus_random(fm1, sleep):
    c = fm1.coef()
    assert list(c) == ["Subject"]
    tab = c["Subject"]
    assert list(tab.columns) == ["(Intercept)", "Days"] and len(tab) == 18
    assert tab.loc["308", "(Intercept)"] == pytest.approx(253.6636558, rel=1e-6)
    assert tab.loc["308", "Days"] == pytest.approx(19.6662617, rel=1e-5)
    np.testing.assert_allclose(tab.to_numpy(), fm1.ranef["Subject"].to_numpy() + fm1.fixef.to_numpy())
    # a random intercept only: the slope column is the fixed slope for every level
    ri = gk.lmer("Reaction ~ Days + (1 | Subject)", sleep).coef()["Subject"]
    assert (ri["Days"] == ri["Days"].iloc[0]).all()


# ---------------- 3. the report shows what the call computed, at full precision, without NaN cells ----------------

def test_report_shows_the_intervals_the_call_computed(fm1, tmp_path):
    ci = fm1.confint(method="profile")
    page = fm1.report(tmp_path / "r.html", plots=False, confint=ci).read_text()
    assert "Profile-likelihood confidence intervals" in page
    assert f"{ci.loc['sd_(Intercept)|Subject', 'lower']:.4g}" in page  # 14.38, a profile bound, not Wald's NaN
    assert "2.5 % (t)" in page  # the fixed-effect table says which intervals it holds (t-based for an LMM)
    assert "Confidence intervals" not in fm1.report(plots=False)  # nothing asked, nothing claimed


def test_report_fit_statistics_at_full_precision_and_no_nan_cells(tmp_path):
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"), reml=False)
    page = fit.report(plots=False)
    assert f"{fit.loglik:.10g}" in page and "-875.9696" in page  # not "-876"
    assert f"{fit.aic:.10g}" in page and f"{fit.bic:.10g}" in page
    assert ">NaN<" not in page and ">nan<" not in page and ">None<" not in page
    assert ">180<" in page  # counts stay integers


def test_report_names_the_two_dispersion_ratios_apart(gm1):
    page = gm1.report(n_sim=50, seed=1)
    assert "dispersion, simulated" in page and "dispersion, Pearson" in page
    assert "Pearson dispersion (no simulation)" in str(gm1.summary())


def test_every_line_of_the_report_plots_has_a_legend(fm1, gm1):
    """Every line the report's plots draw is named in a legend of its figure (issue 17)."""
    plt = pytest.importorskip("matplotlib.pyplot")
    figs = [fm1.plot_caterpillar(), fm1.plot_residuals(n_sim=40, seed=1), gm1.plot_residuals(n_sim=40, seed=1),
            gm1.plot_caterpillar(), fm1.plot_shrinkage(), gm1.plot_shrinkage()]
    for fig in figs:
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
        named = {t.get_text() for leg in legends for t in leg.get_texts()}
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            in_containers = {id(a) for c in ax.containers for a in c.get_children()}
            labelled = [ln for ln in ax.lines if ln.get_label() in named]
            for ln in ax.lines:
                if id(ln) in in_containers or ln.get_label() in named:
                    continue
                # an unnamed line repeats a named one (the three expected quartiles: one legend entry)
                same = [m for m in labelled if m.get_color() == ln.get_color() and m.get_linestyle() == ln.get_linestyle()]
                assert same, (ax.get_title(), ln.get_label())
            for c in ax.containers:
                if hasattr(c, "lines"):  # error bars
                    assert c.get_label() in named, (ax.get_title(), c.get_label())
        plt.close(fig)


def test_caterpillar_panels_share_rows_and_take_ax(fm1):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = fm1.plot_caterpillar()
    a, b = [ax for ax in fig.axes if ax.get_visible()]
    assert [t.get_text() for t in a.get_yticklabels()] == [t.get_text() for t in b.get_yticklabels()]
    zero = [ln for ln in a.lines if "population" in ln.get_label()]
    assert zero and np.allclose(zero[0].get_xdata(), 0.0)
    plt.close(fig)
    fig2 = fm1.plot_caterpillar(sort_by="Days")
    a2 = fig2.axes[1]
    assert np.all(np.diff(a2.lines[-1].get_xdata()) >= 0)
    plt.close(fig2)
    fig3, axs = plt.subplots(1, 2)
    assert fm1.plot_caterpillar(ax=axs) is fig3
    fig4, ax4 = plt.subplots()
    assert gk.diagnostics.plot_shrinkage(fm1, term="Days", ax=ax4) is fig4
    with pytest.raises(gk.ArgumentError, match="not both"):
        fm1.plot_caterpillar(ax=axs, axes=axs)
    plt.close("all")


# ---------------- 4. the command line ----------------

def _cli(args, capsys):
    from glmmkit import cli

    rc = cli.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_version_and_bare_help(capsys):
    rc, out, _ = _cli(["--version"], capsys)
    assert rc == 0 and out.strip() == f"glmmkit {gk.__version__}"
    rc, out, err = _cli([], capsys)
    assert rc == 0 and "usage: glmmkit" in out and "fit" in out and not err


def test_cli_bootstrap_is_boot(capsys):
    rc, out, err = _cli(["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--confint", "bootstrap",
                         "--nboot", "20", "--seed", "1", "--no-progress"], capsys)
    assert rc == 0, err
    assert "Parametric bootstrap (percentile) confidence intervals (95%)" in out


@pytest.mark.parametrize("suffix,kind", [(".json", "JSON"), (".xlsx", "Excel"), (".rds", "R (RDS)")])
def test_cli_names_unsupported_file_types(tmp_path, capsys, suffix, kind):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(b"{}")
    rc, _, err = _cli(["fit", "y ~ x + (1 | g)", "--data", str(path)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert f"is a {kind} file ({suffix})" in err and "CSV" in err


def test_cli_semicolon_csv(tmp_path, capsys):
    d = gk.datasets.load("sleepstudy")
    path = tmp_path / "eu.csv"
    d.to_csv(path, sep=";", decimal=",", index=False)
    rc, _, err = _cli(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "'Reaction;Days;Subject'" in err and "--sep ';'" in err and "semicolons" in err
    rc, out, err = _cli(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--sep", ";",
                         "--decimal", ","], capsys)
    assert rc == 0, err
    assert "REML criterion at convergence: 1743.6" in out


def test_cli_unwritable_report_is_one_line_before_the_fit(tmp_path, capsys):
    for target, why in ((tmp_path / "missing" / "r.html", "does not exist"), (tmp_path, "is a directory")):
        rc, out, err = _cli(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--report",
                             str(target)], capsys)
        assert rc == 2 and err.count("\n") == 1 and why in err and err.startswith("glmmkit: error:")
        assert out == ""  # refused before fitting: no summary printed


def test_cli_profile_report_shows_profile_intervals(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    page = tmp_path / "r.html"
    rc, out, err = _cli(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--confint", "profile",
                         "--report", str(page)], capsys)
    assert rc == 0, err
    text = page.read_text()
    assert "Profile-likelihood confidence intervals" in text and "14.38" in text  # sd_(Intercept)|Subject lower


def test_parquet_extra_is_declared_and_documented():
    import pathlib

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = pathlib.Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("pyarrow") for r in extras["parquet"])
    assert 'glmmkit[parquet]' in (root / "README.md").read_text() or '".[parquet]"' in (root / "README.md").read_text()


# ---------------- 5. summaries in lme4's layout ----------------

def test_lmm_summary_digits_and_data_line(fm1, sleep):
    text = str(fm1.summary())
    # lme4 1.1-31's print(summary(fm1)), line for line where the numbers agree
    assert "   Data: sleepstudy" in text
    assert "(Intercept)  251.405      6.825  36.838" in text
    assert "Days          10.467      1.546   6.771" in text
    assert "Correlation of Fixed Effects:\n     (Intr)\nDays -0.138" in text
    # no name given and a plain frame: the Data line says what it was and how to name it
    plain = gk.lmer("Reaction ~ Days + (Days | Subject)", pd.DataFrame(dict(sleep)))
    assert "   Data: a DataFrame of 180 rows (name it with data_name=)" in str(plain.summary())
    assert "   Data: sleepstudy" in str(gk.lmer("Reaction ~ Days + (1 | Subject)", sleep).summary())


def test_glmm_summary_has_lme4s_digits_stars_and_correlations(gm1):
    text = str(gm1.summary())
    assert "   Data: cbpp" in text
    lines = text.splitlines()
    fixed = lines[lines.index("Fixed effects:") + 1:]
    assert fixed[0].split() == ["Estimate", "Std.", "Error", "z", "value", "Pr(>|z|)"]
    # lme4: (Intercept) -1.3983 0.2312 -6.048 1.47e-09 ***; glmmkit's optimum (glmmTMB's) differs in the 4th digit
    assert fixed[1].split()[0] == "(Intercept)" and fixed[1].split()[1].startswith("-1.398")
    assert len(fixed[1].split()[2]) == len("0.2312") and fixed[1].split()[3] == "-6.016"
    assert fixed[1].rstrip().endswith("***") and fixed[2].split()[4] == "0.001212"
    assert "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1" in text
    corr = text[text.index("Correlation of Fixed Effects:"):].splitlines()
    assert corr[1].split() == ["(Intr)", "perid2", "perid3"]
    assert corr[2].split()[0] == "period2" and abs(float(corr[2].split()[1]) + 0.363) < 3e-3
    assert "Number of obs: 56, groups:  herd, 15" in text


def test_summary_helpers_match_r():
    from glmmkit.summary import abbreviate, coef_columns, pvalue_column, statistic_column

    # R 4.2: abbreviate(x, 6), format.pval(p, digits = 3)
    assert [abbreviate(x) for x in ["(Intercept)", "period2", "Days", "trtB:week", "I(age - 60)", "sexmale"]] == \
        ["(Intr)", "perid2", "Days", "trtB:w", "I(-60)", "sexmal"]
    assert pvalue_column([1.47e-9, 0.001068, 0.000474, 0.000182]) == ["1.47e-09", "0.001068", "0.000474", "0.000182"]
    assert pvalue_column([0.5, 0.0000549]) == ["0.5", "5.49e-05"]
    assert pvalue_column([0.5123, 0.0549, 1e-20, 1e-10]) == ["0.5123", "0.0549", "<2e-16", "1e-10"]
    # Penicillin: 22.9722 0.8086 28.41
    assert coef_columns([22.97222], [0.808573]) == (["22.9722"], ["0.8086"])
    assert statistic_column([28.4112]) == ["28.41"]


def test_many_coefficients_say_the_correlation_is_not_shown():
    rng = np.random.default_rng(0)
    d = pd.DataFrame(rng.normal(size=(200, 13)), columns=[f"x{i}" for i in range(13)])
    d["g"] = np.repeat(np.arange(20), 10).astype(str)
    d["y"] = rng.normal(size=200) + np.repeat(rng.normal(size=20), 10)
    fit = gk.lmer("y ~ " + " + ".join(d.columns[:13]) + " + (1 | g)", d)
    assert "Correlation matrix not shown by default, as p = 14 > 12." in str(fit.summary())


def test_anova_names_models_by_formula_and_is_not_cut(sleep):
    a = gk.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    b = gk.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    t = gk.anova(b, a)
    assert list(t.index) == ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]
    with pd.option_context("display.width", 80, "display.max_columns", 6):
        text = str(t)
    header = text.splitlines()[0].split()
    assert header == ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value"]
    assert "42.139" in text and "note: refitting model(s) with ML" in text and repr(t) == text
    assert isinstance(t, pd.DataFrame) and t["chisq"].iloc[1] == pytest.approx(42.139, abs=1e-3)
    assert list(gk.anova(a, b, names=["m0", "m1"]).index) == ["m0", "m1"]
    same = gk.anova(a, gk.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False))
    assert len(set(same.index)) == 2
