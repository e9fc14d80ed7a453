"""The README's set-up stays true, and the CLI reports failures as failures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from febm_ref import cli
from febm_ref.divergences import KL

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2, "README must show the two set-up commands"
    install_and_verify, install_and_test = blocks[0].strip(), blocks[1].strip()
    assert "febm-ref verify" in install_and_verify
    assert install_and_test in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_verify_json_report_has_measured_errors(capsys):
    status = cli.main(["verify", "--quick", "--only", "catalogue.D4", "--json", "-"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["n_failed"] == 0
    (result,) = report["results"]
    assert 0.0 <= result["error"] <= result["tolerance"] == 1e-10


def test_verify_fails_when_a_formula_is_broken(monkeypatch, capsys):
    """Negative control: a wrong g_model (a relative error of 1e-9) must make verify exit 1."""
    monkeypatch.setattr(KL, "_g_model", lambda self, s: np.exp(s) * (1.0 + 1e-9))
    status = cli.main(["verify", "--quick", "--only", "catalogue.D7"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "FAIL" in out


def test_unknown_check_name_is_a_clear_cli_error(capsys):
    status = cli.main(["verify", "--only", "no_such_check"])
    err = capsys.readouterr().err
    assert status == 2
    assert "no verification check matches" in err and "catalogue.D4_legendre_identity" in err


def test_divergences_json_lists_f_double_prime_at_one(capsys):
    assert cli.main(["divergences", "--json", "--alpha", "0.5"]) == 0
    rows = {row["label"]: row for row in json.loads(capsys.readouterr().out)}
    expected = {"kl": 1.0, "reverse_kl": 1.0, "jensen_shannon": 0.5, "squared_hellinger": 0.5,
                "pearson_chi2": 2.0, "neyman_chi2": 2.0, "alpha(0.5)": 1.0}
    assert {k: v["f_double_prime_at_one"] for k, v in rows.items()} == expected
    assert rows["alpha(0.5)"]["conjugate_domain"] == "t < 2"


def test_console_script_help_explains_itself():
    out = subprocess.run([sys.executable, "-m", "febm_ref.cli", "verify", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "measured error" in out and "--quick" in out and "--json" in out
