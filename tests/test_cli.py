import re
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


@pytest.mark.parametrize("args, fragments", [
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudi"], ["does not exist", "'sleepstudy'?"]),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--factor", "Dayz,subject"],
     ["--factor", "'Dayz' (did you mean 'Days'?)", "'subject' (did you mean 'Subject'?)"]),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--weights", "reaction"],
     ["--weights", "'reaction' (did you mean 'Reaction'?)"]),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--offset", "dayz"],
     ["--offset", "did you mean 'Days'?"]),
    (["fit", "reaction ~ Days + (1 | Subject)", "--data", "sleepstudy"], ["'reaction'", "did you mean 'Reaction'?"]),
    (["fit", "Reaction ~ Days + (1 | Subjects)", "--data", "sleepstudy"], ["'Subjects'", "did you mean 'Subject'?"]),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--level", "95"],
     ["--level 95 must be between 0 and 1", "--level 0.95?"]),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--jobs", "0"], ["--jobs 0"]),
    (["datasets", "sleepstudi"], ["no bundled data set", "'sleepstudy'?"]),
    (["demo", "sleep"], ["no demo named 'sleep'", "'sleepstudy'?"]),
])
def test_misspellings_name_the_near_choice(args, fragments, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glmmkit: error:") and "\n" not in err, err
    for f in fragments:
        assert f in err, (f, err)


def test_misspelled_file_next_to_a_real_one(tmp_path, capsys):
    folder = tmp_path / "my data"
    folder.mkdir()
    datasets.load("sleepstudy").to_csv(folder / "sleep study.csv", index=False)
    assert cli.main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(folder / "sleep studdy.csv")]) == 2
    assert "did you mean 'sleep study.csv'?" in capsys.readouterr().err


def test_paths_with_spaces(tmp_path, capsys):
    folder = tmp_path / "out dir"
    folder.mkdir()
    data = folder / "my sleep.csv"
    datasets.load("sleepstudy").to_csv(data, index=False)
    report = folder / "my report.html"
    assert cli.main(["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(data), "--report", str(report),
                     "--no-progress"]) == 0
    assert report.exists() and "Data: my sleep.csv" in capsys.readouterr().out
    assert "data: my sleep.csv" in report.read_text()


def test_semicolon_file_with_decimal_commas(tmp_path, capsys):
    path = tmp_path / "semi.csv"
    datasets.load("sleepstudy").to_csv(path, index=False, sep=";", decimal=",")
    args = ["fit", "Reaction ~ Days + (1 | Subject)", "--data", str(path)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "'Reaction;Days;Subject'" in err and "--sep ';'" in err
    assert cli.main(args + ["--sep", ";"]) == 2  # decimal commas left: named, with the option that reads them
    err = capsys.readouterr().err
    assert "'Reaction'" in err and "decimal commas" in err and "--decimal ','" in err and "'Days'" not in err
    assert cli.main(args + ["--sep", ";", "--decimal", ","]) == 0
    assert "REML criterion at convergence: 1786.4" in capsys.readouterr().out


def test_text_intervals_even_decimals_and_no_nan(capsys):
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", "sleepstudy", "--confint", "wald"]) == 0
    out = capsys.readouterr().out
    block = out.split("Wald confidence intervals (95%):")[1]
    assert "NaN" not in block and "nan" not in block and "not defined" in block
    assert "2.5 %" in block and "97.5 %" in block
    days = [ln for ln in block.splitlines() if ln.startswith("Days")][0].split()
    assert [len(v.split(".")[1]) for v in days[1:]] == [3, 3]  # 7.438 13.497: same decimals in each
    assert float(days[1]) == pytest.approx(7.4376, abs=1e-3)
    assert cli.main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp",
                     "--family", "binomial", "--confint", "profile"]) == 0
    block = capsys.readouterr().out.split("Profile-likelihood confidence intervals (95%):")[1]
    sd = [ln for ln in block.splitlines() if ln.startswith("sd_")][0].split()
    assert sd[2] == "1.1000"  # not "1.1": trailing zeros kept so columns line up


def test_help_shows_examples(capsys):
    assert cli.main([]) == 0
    assert "examples:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["fit", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--confint profile" in out and "--report" in out


def test_report_shows_bootstrap_intervals(tmp_path, capsys):
    out = tmp_path / "nb.html"
    assert cli.main(["fit", "count ~ treated + offset(log(years)) + (1 | clinic)", "--data", "exacerbations",
                     "--family", "negative_binomial", "--confint", "bootstrap", "--nboot", "100", "--seed", "2",
                     "--report", str(out), "--no-progress"]) == 0
    page = out.read_text()
    section = page.split("<h2>Confidence intervals</h2>")[1].split("<h2>")[0]
    assert "Parametric bootstrap (percentile) confidence intervals, 95%" in section
    assert "100 bootstrap samples" in section and "Rate ratios with these parametric bootstrap" in section
    assert not re.search(r">\s*(nan|NaN|None)\s*<", page)


def test_observation_level_effect_fit_prints_nothing_from_lapack():
    # a fit whose random-effect system is all diagonal must not leave LAPACK's xerbla lines in the output
    # (Fortran writes them itself, buffered, so only a separate process sees them)
    out = subprocess.run([sys.executable, "-m", "glmmkit.cli", "fit", "count ~ treated + (1 | clinic)", "--data",
                          "exacerbations", "--family", "poisson", "--olre", "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and ".obs" in out.stdout
    assert "DPOTRI" not in out.stdout + out.stderr and "illegal value" not in out.stdout + out.stderr
