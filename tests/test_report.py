"""HTML report and notebook display: one self-contained page, rendered by a headless browser
where one is installed."""

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest

import glmmkit as gk


@pytest.fixture(scope="module")
def cbpp_fit():
    return gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                    family="binomial")


@pytest.fixture(scope="module")
def page(cbpp_fit, tmp_path_factory):
    pytest.importorskip("matplotlib")
    path = tmp_path_factory.mktemp("report") / "cbpp.html"
    assert cbpp_fit.report(path, seed=1) == path
    return path


def test_report_is_self_contained(page):
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)=['\"]https?:", text) and "<script" not in text
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) >= 3  # caterpillar, shrinkage, residual panel
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("Fixed effects", "Random effects and variance components", "Intraclass correlation",
                    "Diagnostics", "Odds ratios", "Summary (lme4 layout)"):
        assert heading in text
    assert "period4" in text and "not drawn" not in text


def test_report_tables_carry_the_estimates(cbpp_fit, page):
    text = page.read_text()
    assert f"{cbpp_fit.fixef['period2']:.4g}" in text
    assert "uniformity (KS)" in text and "dispersion" in text


def test_report_without_plots_and_as_text(cbpp_fit):
    html = cbpp_fit.report(plots=False)
    assert "<img" not in html and "Fixed effects" in html


def test_lmm_report_and_notebook_display(tmp_path):
    pytest.importorskip("matplotlib")
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    text = fit.report(tmp_path / "sleep.html", n_sim=50).read_text()
    assert "t value" in text and "REML criterion" in text and text.count("<img") >= 3
    snippet = fit._repr_html_()
    assert "<table" in snippet and "Subject" in snippet and "<img" not in snippet
    assert fit.summary()._repr_html_()


def test_headless_browser_renders_the_report(page, tmp_path):
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        pytest.skip("no Chromium on this machine")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 20_000
    plt = pytest.importorskip("matplotlib.pyplot")
    pixels = plt.imread(shot)[..., :3]
    # a page with tables and plots, not a blank or error page: many dark pixels and coloured ones
    assert (pixels.mean(axis=2) < 0.5).mean() > 0.005
    assert (np.ptp(pixels, axis=2) > 0.3).mean() > 0.001  # colour from the embedded plots


def _cells(text):
    return [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", text)]


def test_no_nan_or_none_text_anywhere(cbpp_fit):
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    for f in (fit, cbpp_fit):
        page = f.report(plots=False, confint=f.confint(method="wald"))
        cells = _cells(page)
        assert cells and not [c for c in cells if c.lower() in ("nan", "none", "<na>", "nat")]
        assert not re.search(r">\s*(nan|NaN|None)\s*<", page)


def test_profile_intervals_shown_with_estimates_and_ratios(cbpp_fit):
    ci = cbpp_fit.confint(method="profile")
    ci.attrs.update({"method": "profile", "level": 0.95})
    page = cbpp_fit.report(plots=False, confint=ci)
    section = page.split("<h2>Confidence intervals</h2>")[1].split("<h2>")[0]
    assert "Profile-likelihood confidence intervals, 95%" in section
    # the estimate beside its interval, and the fixed-effect rows exponentiated as odds ratios
    assert "<th>Estimate</th>" in section and f"{cbpp_fit.fixef['period2']:.4g}" in section
    assert f"{ci.loc['period4', 'lower']:.4g}" in section
    assert "Odds ratios with these profile-likelihood intervals" in section
    assert f"{np.exp(ci.loc['period2', 'upper']):.4g}" in section
    sd_row = re.search(r"<td>sd_\(Intercept\)\|herd</td>(.*?)</tr>", section).group(1)
    assert f"{cbpp_fit.varcorr['sdcor'].iloc[0]:.4g}" in sd_row  # the estimate of the SD itself
    assert "sd_T|G: standard deviation" in section and "cor_T2.T1" not in section  # legend of what is shown


def test_wald_interval_section_explains_blank_variance_rows():
    fit = gk.lmer("Reaction ~ Days + (1 | Subject)", gk.datasets.load("sleepstudy"))
    ci = fit.confint(method="wald")
    section = fit.report(plots=False, confint=ci).split("<h2>Confidence intervals</h2>")[1].split("<h2>")[0]
    assert "not defined" in section and "Ratios" not in section
    row = re.search(r"<td>sigma</td>(.*?)</tr>", section).group(1)
    assert _cells("<tr>" + row) == [f"{fit.sigma:#.4g}", "", ""]


def test_lmm_table_names_its_t_intervals_and_text_columns_align_left():
    fit = gk.lmer("Reaction ~ Days + (Days | Subject)", gk.datasets.load("sleepstudy"))
    page = fit.report(plots=False)
    assert "2.5 % (t)" in page and "Satterthwaite" in page and "Wald 2.5 %" not in page.split("Confidence")[0]
    assert "<th class='txt'>Group</th>" in page and "<td class='txt'>Subject</td>" in page
    assert "Correlated with" in page and "intercept variance share" in page
    glmm = gk.glmer("y ~ x + (1 | patient)", gk.datasets.load("spinal"), family="binomial")
    gpage = glmm.report(plots=False)
    assert "Correlated with" not in gpage and "z tests and 95% Wald intervals" in gpage


def test_family_parameters_named_for_people():
    fit = gk.glmer("count ~ treated + offset(log(years)) + (1 | clinic)", gk.datasets.load("exacerbations"),
                   family="negative_binomial")
    page = fit.report(plots=False)
    assert "negative binomial (NB2) family" in page and "log_estimate" not in page and "log_se" not in page
    assert "SE of log" in page and "<td>theta</td>" in page


def test_effect_plot_found_through_a_transformed_covariate():
    from glmmkit.report import _effect_variable

    fit = gk.glmer("infection ~ I(age - 60) + sex + teaching + (1 | hospital)", gk.datasets.load("hospital"),
                   family="binomial")
    assert _effect_variable(fit) == "age"  # age enters only as I(age - 60); patient ids are no covariate
    cb = gk.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", gk.datasets.load("cbpp"),
                  family="binomial")
    assert _effect_variable(cb) is None  # incidence and size are the response, period a factor


def test_every_figure_caption_says_how_to_read_it(page):
    caps = re.findall(r"<figcaption>(.*?)</figcaption>", page.read_text())
    assert len(caps) >= 3 and all(len(c) > 80 for c in caps), caps
    assert any("conditional interval" in c for c in caps) and any("uniform" in c for c in caps)
    alts = re.findall(r"<img alt='([^']*)'", page.read_text())
    assert alts == caps[:len(alts)]


def test_screenshot_tool_extracts_and_shrinks_the_embedded_plots(page, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "screenshot_report", Path(__file__).resolve().parents[1] / "tools" / "screenshot_report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    pngs = tool.embedded_plots(page, tmp_path, "cbpp", max_kb=60)
    assert len(pngs) >= 3 and all(p.stat().st_size <= 60 * 1024 for p in pngs)
    assert any("random_effects" in p.name for p in pngs)
    browser = tool.find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine")
    shot = tool.screenshot(page, tmp_path / "page.png", browser, width=900, max_kb=250)
    plt = pytest.importorskip("matplotlib.pyplot")
    img = plt.imread(shot)
    # the whole page, not one window: taller than wide, and under the size limit
    assert img.shape[0] > 2 * img.shape[1] and shot.stat().st_size <= 250 * 1024


def test_observation_level_effect_left_out_of_the_random_effect_plots():
    pytest.importorskip("matplotlib")
    from glmmkit.report import _plotted_factors

    fit = gk.glmer("count ~ treated + (1 | clinic)", gk.datasets.load("exacerbations"), family="poisson", olre=True)
    assert _plotted_factors(fit) == (["clinic"], [".obs (an observation-level effect, 600 levels)"])
    page = fit.report(n_sim=30)
    assert "Random-effect plots leave out .obs (an observation-level effect, 600 levels)" in page
    assert "Shrinkage of clinic" in page and page.count("<img") >= 3
    assert not re.search(r">\s*(nan|NaN|None)\s*<", page)
