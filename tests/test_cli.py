import json
import subprocess
import sys

import pytest

from glmmkit import cli, datasets


def test_demo_prints_summaries(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "pig:pen:room" in out


def test_datasets_lists_bundled_data(capsys):
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ["sleepstudy", "Penicillin", "cbpp", "spinal", "swine"]:
        assert name in out


def test_fit_csv_text_and_json(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    datasets.load("sleepstudy").to_csv(path, index=False)
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--method", "ml"]) == 0
    assert "maximum likelihood" in capsys.readouterr().out
    assert cli.main(["fit", "Reaction ~ Days + (Days | Subject)", "--data", str(path), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fixef"]["Days"]["estimate"] == pytest.approx(10.4673, abs=1e-3)


@pytest.mark.parametrize("args, fragment", [
    (["fit", "y ~ x + (1 | g)", "--data", "nothere.csv"], "does not exist"),
    (["fit", "Reaction ~ Dayz + (1 | Subject)", "--data", "sleepstudy"], "Dayz"),
    (["fit", "Reaction ~ Days + (1 | Subject)", "--data", "sleepstudy", "--method", "pql"], "not available"),
])
def test_errors_are_one_line(args, fragment, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glmmkit: error:") and fragment in err and "\n" not in err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "glmmkit.cli", "datasets"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "sleepstudy" in out.stdout
