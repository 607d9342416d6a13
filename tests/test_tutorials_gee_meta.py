"""docs/tutorials/gee_vs_glmm.md and docs/tutorials/meta_analysis.md: their code runs (the GEE
blocks only where statsmodels is installed: it is no dependency of glmmkit), the numbers the
text quotes are the ones the code produces, and the meta-analysis agrees with metafor's
rma.glmm (tests/data/meta/make_meta.R -> meta_cases.json)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUT = ROOT / "docs" / "tutorials"
META = ROOT / "tests" / "data" / "meta"
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def run_page(name: str, with_statsmodels: bool) -> dict:
    ns = {"__name__": "__tutorial__"}
    for tag, code in BLOCK.findall((TUT / name).read_text()):
        if "statsmodels" in tag and not with_statsmodels:
            continue
        exec(compile(code, f"{name}", "exec"), ns)
    return ns


def text(name: str) -> str:
    return (TUT / name).read_text()


def quoted(page: str, value: float, fmt: str) -> None:
    s = format(value, fmt).replace("-", "−")
    assert s in text(page) or format(value, fmt) in text(page), f"{page} should quote {s}"


@pytest.fixture(scope="module")
def meta():
    return run_page("meta_analysis.md", with_statsmodels=False)


@pytest.fixture(scope="module")
def ref():
    return json.loads((META / "meta_cases.json").read_text())


def test_inline_table_is_the_exported_dat_bcg(meta):
    csv = pd.read_csv(META / "dat_bcg.csv")
    cols = ["trial", "year", "tpos", "tneg", "cpos", "cneg"]
    pd.testing.assert_frame_equal(meta["bcg"][cols].reset_index(drop=True), csv[cols], check_dtype=False)
    assert list(meta["bcg"]["author"]) == list(csv["author"])


def test_um_fs_matches_metafor(meta, ref):
    r = ref["UM.FS"]
    assert r["model"] == "UM.FS" and r["nAGQ"] == 7
    # stated tolerance: 1e-3 relative for the estimate, its SE and tau^2 (achieved: ~2e-5)
    assert meta["theta"] == pytest.approx(r["estimate"], rel=1e-3)
    assert meta["se"] == pytest.approx(r["se"], rel=1e-3)
    assert meta["tau2"] == pytest.approx(r["tau2"], rel=1e-3)
    assert meta["ci"] == pytest.approx(r["or_ci"], rel=1e-3)
    assert meta["pi"] == pytest.approx(r["or_pi"], rel=2e-3)
    # the Laplace fit: logLik on lme4's scale (all constants), to 1e-4
    assert meta["laplace"].loglik == pytest.approx(r["glmer_laplace"]["logLik"], abs=1e-4)
    assert meta["laplace"].fixef["treat"] == pytest.approx(r["glmer_laplace"]["estimate"], rel=1e-3)


def test_um_rs_matches_metafor(meta, ref):
    r = ref["UM.RS"]
    rs, vc = meta["rs"], meta["vc"]
    assert rs.fixef["treat"] == pytest.approx(r["estimate"], rel=1e-3)
    se = float(np.sqrt(rs.vcov.loc["treat", "treat"]))
    # lme4's finite-difference Hessian (metafor's SE) is 0.4% off glmmTMB's exact one; we match glmmTMB
    assert se == pytest.approx(r["glmmTMB"]["se"], rel=1e-4)
    assert se == pytest.approx(r["se"], rel=5e-3)
    assert rs.loglik == pytest.approx(r["glmmTMB"]["logLik"], abs=1e-5)
    assert vc["g"] == pytest.approx(r["tau2"], rel=1e-3)
    assert vc["(Intercept)"] == pytest.approx(r["sigma2"], rel=1e-3)
    assert rs.loglik == pytest.approx(r["logLik_metafor"], abs=1e-3)


def test_meta_text_quotes_the_computed_numbers(meta, ref):
    page = "meta_analysis.md"
    quoted(page, np.exp(meta["theta"]), ".3f")
    for v in list(meta["ci"]) + list(meta["pi"]):
        quoted(page, v, ".3f")
    quoted(page, np.sqrt(meta["tau2"]), ".3f")
    quoted(page, meta["laplace"].loglik, ".4f")
    quoted(page, ref["UM.FS"]["logLik_metafor"], ".2f")
    quoted(page, np.exp(meta["rs"].fixef["treat"]), ".3f")
    assert meta["pi"][0] < 1 < meta["pi"][1] and meta["ci"][1] < 1   # the text's reading


@pytest.fixture(scope="module")
def gee_glmm_only():
    return run_page("gee_vs_glmm.md", with_statsmodels=False)


def test_gee_page_glmmkit_part_runs_without_statsmodels(gee_glmm_only):
    ns = gee_glmm_only
    page = "gee_vs_glmm.md"
    assert ns["c"] == pytest.approx(0.5881, abs=1e-4)
    quoted(page, ns["c"], ".3f")
    quoted(page, ns["c"] ** 2, ".3f")   # "1/√(1 + 0.346 σ²)"
    quoted(page, ns["marg"].loc["x", "conditional"], ".3f")
    quoted(page, ns["marg"].loc["x", "estimate"], ".3f")
    quoted(page, np.exp(ns["marg"].loc["x", "conditional"]), ".3f")
    quoted(page, np.exp(ns["marg"].loc["x", "estimate"]), ".3f")
    quoted(page, ns["approx"], ".3f")
    quoted(page, ns["observed"], ".3f")
    assert ns["observed"] < ns["approx"]
    quoted(page, ns["hs2"], ".3f")
    quoted(page, ns["happrox"], ".3f")
    slopes = ns["hmarg"]["attenuation"].iloc[1:]
    quoted(page, slopes.min(), ".3f")
    quoted(page, slopes.max(), ".3f")
    quoted(page, ns["hmarg"].loc["teaching", "conditional"], ".3f")
    quoted(page, ns["hmarg"].loc["teaching", "estimate"], ".3f")
    quoted(page, ns["hmarg"].loc["age10", "estimate"], ".3f")
    quoted(page, ns["hmarg"].loc["sexmale", "estimate"], ".3f")


def test_gee_page_with_statsmodels():
    pytest.importorskip("statsmodels")
    ns = run_page("gee_vs_glmm.md", with_statsmodels=True)
    page = "gee_vs_glmm.md"
    quoted(page, ns["gee"].params["x"], ".3f")
    quoted(page, ns["gee"].bse["x"], ".3f")
    t = ns["table"]
    for term in ["age10", "sexmale", "teaching"]:
        quoted(page, t.loc[term, "gee"], ".3f")
    quoted(page, t.loc["teaching", "gee/conditional"], ".2f")
    quoted(page, float(ns["hgee"].cov_struct.dep_params), ".3f")
    gap = abs(t.loc["teaching", "gee"] - t.loc["teaching", "marginal"]) / t.loc["teaching", "gee_se"]
    quoted(page, gap, ".1f")
    assert max(abs(t.loc[["age10", "sexmale"], "gee"] - t.loc[["age10", "sexmale"], "marginal"])) < 0.02
