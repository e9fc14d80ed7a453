"""The ``febm-ref fit1d`` command: bad input gives clear errors (exit status 2), a short run
prints the fitted and exact (mu, sigma), resuming a different configuration is refused."""

from __future__ import annotations

import json
import math

import pytest

from febm_ref.cli import main


@pytest.mark.parametrize("argv,message", [
    (["--divergence", "kullback"], "unknown divergence"),
    (["--divergence", "alpha"], "needs --alpha"),
    (["--divergence", "alpha", "--alpha", "nan"], "--alpha must be finite"),
    (["--divergence", "kl", "--alpha", "0.5"], "only meaningful with --divergence alpha"),
    (["--divergence", "kl", "--iters", "0"], "--iters must be a positive integer"),
    (["--divergence", "kl", "--lr", "0"], "--lr must be a positive number"),
    (["--divergence", "kl", "--lr=-1e-3"], "--lr must be a positive number"),
    (["--divergence", "reverse_kl", "--method", "cd"], "use --divergence kl"),
    (["--divergence", "pearson_chi2", "--method", "exact", "--protocol", "paper"], "undefined for pearson_chi2"),
    (["--divergence", "alpha", "--alpha", "2.5", "--method", "exact", "--protocol", "paper"], "undefined for alpha"),
    (["--divergence", "neyman_chi2", "--method", "exact", "--protocol", "paper", "--iters", "5", "--lr", "2.0"],
     "left the region where D_f(neyman_chi2) is finite"),
    (["--divergence", "kl", "--resume"], "--resume needs --out"),
    (["--all", "--divergence", "kl"], "do not combine"),
    ([], "give --divergence"),
])
def test_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(["fit1d", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_short_run_reports_fit_exact_optimum_and_gap(capsys, tmp_path):
    assert main(["fit1d", "--divergence", "kl", "--iters", "30", "--json", "--out", str(tmp_path)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["exact_mu"] == pytest.approx(1.01, abs=1e-7)
    assert row["exact_sigma"] == pytest.approx(math.sqrt(3.350525), abs=1e-7)
    assert row["gap_mu"] == pytest.approx(row["fit_mu"] - row["exact_mu"], abs=1e-15)
    assert row["divergence_at_fit"] >= row["divergence_at_optimum"]
    assert (tmp_path / "kl_febm_converged.json").exists()
    # resuming with a different learning rate is refused, naming the difference
    assert main(["fit1d", "--divergence", "kl", "--iters", "30", "--lr", "0.5", "--out", str(tmp_path),
                 "--resume"]) == 2
    assert "lr_energy" in capsys.readouterr().err


def test_exact_method_descends_towards_the_optimum(capsys):
    assert main(["fit1d", "--divergence", "kl", "--method", "exact", "--iters", "40", "--optimizer", "sgd",
                 "--lr", "0.05", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    # 40 exact SGD steps from (0, 1) move towards (1.01, 1.83) and decrease D_f
    assert 0.0 < row["fit_mu"] < 1.01 and 1.0 < row["fit_sigma"] < 1.84
    assert row["divergence_at_fit"] < 0.9


def test_diverging_run_stops_with_a_message_naming_iteration_and_quantity(capsys):
    """SGD with lr 50 on the paper protocol: the critic step makes e^r overflow at once; exit status 1."""
    assert main(["fit1d", "--divergence", "kl", "--protocol", "paper", "--lr", "50", "--iters", "5"]) == 1
    err = capsys.readouterr().err
    assert "training diverged at iteration 0: g_model(r-)" in err, err
    assert "Traceback" not in err
