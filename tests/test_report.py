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
