import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from glmmkit import cli, datasets


def test_demo_prints_summaries(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "pig:pen:room" in out
    # the seed examples: spinal implant's conditional odds ratio is the discordant-pair ratio 12/16
    assert "=== spinal" in out and "=== hospital" in out and "=== exacerbations" in out
    assert "x               0.7500" in out


def test_demo_runs_one_example(capsys):
    assert cli.main(["demo", "hospital"]) == 0
    out = capsys.readouterr().out
    assert out.count("===") == 1 and "Family: binomial" in out


def test_datasets_lists_and_describes(capsys):
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ["sleepstudy", "Penicillin", "cbpp", "spinal", "swine", "hospital", "exacerbations", "Pastes"]:
        assert name in out
    assert cli.main(["datasets", "hospital"]) == 0
    out = capsys.readouterr().out
    assert "Source:" in out and "teaching" in out


def test_fit_csv_text_and_json(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    datasets.load("sleepstudy").to_csv(path, index=False)
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--method", "ml"]) == 0
    assert "maximum likelihood" in capsys.readouterr().out
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fixef"]["Days"]["estimate"] == pytest.approx(10.4673, abs=1e-3)
    assert doc["reml_criterion"] == pytest.approx(1743.628, abs=1e-2)
    assert doc["converged"] is True and doc["ngroups"] == {"Subject": 18}


def test_fit_glmm_json_is_strict_json(tmp_path, capsys):
    path = tmp_path / "cbpp.csv"
    datasets.load("cbpp").to_csv(path, index=False)
    args = ["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", str(path),
            "--family", "binomial", "--output", "json", "--confint", "wald", "--factor", "period,herd"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc["family"] == "binomial" and doc["link"] == "logit" and doc["method"] == "Laplace"
    assert doc["loglik"] == pytest.approx(-92.02628, abs=1e-3)  # lme4 glmer, Laplace
    assert doc["fixef"]["period2"]["estimate"] == pytest.approx(-0.99233, abs=1e-3)
    assert doc["fixef"]["(Intercept)"]["df"] is None  # z tests: infinite df is null in JSON
    assert set(doc["confint"]["intervals"]) >= {"(Intercept)", "period4"}


@pytest.mark.parametrize("extra, expect", [
    (["--method", "agq", "--nagq", "9"], "nAGQ = 9"),
    (["--method", "pql"], "PQL"),
    (["--method", "nagq0"], "nAGQ = 0"),
    (["--link", "probit"], "probit"),
])
def test_fit_glmm_methods(extra, expect, capsys):
    args = ["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp",
            "--family", "binomial"] + extra
    assert cli.main(args) == 0
    assert expect in capsys.readouterr().out


def test_fit_counts_with_offset_olre_and_family_param(capsys):
    base = ["fit", "count ~ treated + (1 | clinic)", "--data", "exacerbations"]
    datasets.load("exacerbations")
    assert cli.main(base + ["--family", "poisson", "--offset", "years", "--olre"]) == 0
    assert ".obs" in capsys.readouterr().out
    assert cli.main(base + ["--family", "negative_binomial", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["family_params"]["theta"] > 0


@pytest.mark.parametrize("fmt", ["parquet", "feather", "tsv"])
def test_fit_reads_other_formats(fmt, tmp_path, capsys):
    df = datasets.load("Dyestuff")
    path = tmp_path / f"dye.{fmt}"
    if fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    else:
        pytest.importorskip("pyarrow")
        getattr(df, f"to_{fmt}")(path)
    assert cli.main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", str(path)]) == 0
    assert "REML criterion at convergence: 319.65" in capsys.readouterr().out


def test_report_option_writes_a_self_contained_page(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--report", str(out),
                     "--seed", "3"]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "Fixed effects" in page and "Days" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # no network needed
    assert "report written to" in capsys.readouterr().err


def test_html_output(capsys):
    assert cli.main(["fit", "Yield ~ 1 + (1 | Batch)", "--data", "Dyestuff", "--output", "html"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("<!DOCTYPE html>") and "Batch" in out


def _bad_csv(tmp_path):
    p = tmp_path / "bad.csv"
    pd.DataFrame({"y": [0, 1, 2, 1] * 5, "g": list("abcde") * 4}).to_csv(p, index=False)
    return str(p)


@pytest.mark.parametrize("args, fragment", [
    (["fit", "y ~ x + (1 | g)", "--data", "nothere.csv"], "does not exist"),
    (["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "Dayz"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--method", "pql"], "not available"),
    (["fit", "Reaction ~ Days + (1 | Subject", "--data", "sleepstudy"], "not closed"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--family", "binomal"], "binomial"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--family", "poisson", "--method", "reml"],
     "laplace"),
    (["fit", "y ~ 1 + (1 | g)", "--data", "BAD", "--family", "binomial"], "y"),
    (["fit", "y ~ 1 + (1 | g)", "--data", "sleepstudy", "--family-param", "df"], "name=number"),
    (["fit", "y ~ 1", "--data", "sleepstudy", "--no-such-option"], "unrecognized"),
    (["fit", "y ~ 1 + (1|g)"], "--data"),
    (["nosuchcommand"], "invalid choice"),
])
def test_errors_are_one_line(args, fragment, capsys, tmp_path):
    args = [_bad_csv(tmp_path) if a == "BAD" else a for a in args]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glmmkit: error:") and fragment in err and "\n" not in err, err


def test_unreadable_and_empty_files(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert cli.main(["fit", "y ~ 1 + (1|g)", "--data", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    assert cli.main(["fit", "y ~ 1 + (1|g)", "--data", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


def test_warnings_are_one_line(tmp_path, capsys):
    df = datasets.load("sleepstudy")
    df["Days2"] = 2 * df["Days"]
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False)
    assert cli.main(["fit", "Reaction ~ Days + Days2 + (1 | Subject)", "--data", str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("glmmkit: warning:") for line in err) and "Days2" in err[0]


def test_internal_errors_stay_one_line(monkeypatch, capsys):
    def boom(*a, **k):
        raise np.linalg.LinAlgError("something deep")

    monkeypatch.setattr(cli, "_fit_from_args", boom)
    assert cli.main(["fit", "y ~ 1 + (1|g)", "--data", "Dyestuff"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "internal error" in err and "--traceback" in err
    with pytest.raises(np.linalg.LinAlgError):
        cli.main(["--traceback", "fit", "y ~ 1 + (1|g)", "--data", "Dyestuff"])


def test_progress_indicator(capsys):
    import time

    with cli.progress("working", True, delay=0.0):
        time.sleep(1.2)
    err = capsys.readouterr().err
    assert "glmmkit: working..." in err and "done in" in err
    with cli.progress("quiet", True, delay=5.0):
        pass
    assert capsys.readouterr().err == ""


def test_console_script_runs():
    exe = shutil.which("glmmkit")
    cmd = [exe, "datasets"] if exe else [sys.executable, "-m", "glmmkit.cli", "datasets"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "sleepstudy" in out.stdout
    out = subprocess.run([sys.executable, "-m", "glmmkit.cli", "fit", "y ~ (1|g)", "--data", "nope.csv"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
