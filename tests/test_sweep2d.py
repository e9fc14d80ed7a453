"""The equal-compute sweep (issue 16, febm_ref.sweep2d): joblib and a dask LocalCluster give the
same table byte for byte, finished runs are skipped, truncated or foreign run files are not counted,
the work counters equal hand counts, and the statistics equal scipy's (or a hand computation)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from febm_ref import sweep2d as S
from febm_ref.experiments.fit2d import Experiment2DConfig, equal_compute_langevin_steps, run_experiment

# the smallest runs that still train: 2 cells x 2 seeds, seconds each
TINY = dict(iterations=12, batch_size=32, eval_every=6, grid_size=24, n_eval_samples=64, buffer_capacity=256,
            langevin_steps=3)


def _tiny_specs(n_seeds=2):
    return S.make_specs(["eight_gaussians"], ["cd", "kl"], n_seeds, **TINY)


def test_joblib_and_dask_local_cluster_give_identical_tables(tmp_path):
    """The same specs through joblib (2 processes) and a 2-worker dask LocalCluster (processes, one
    thread each): summary.json and table.md are byte-identical; the CD runs had equal compute."""
    distributed = pytest.importorskip("dask.distributed")
    specs = _tiny_specs()
    local, remote = tmp_path / "joblib", tmp_path / "dask"
    assert len(S.execute(specs, local, jobs=2, show_progress=False)) == 4
    S.write_table(local, specs)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cl:
        assert len(S.execute(specs, remote, scheduler=cl.scheduler_address, show_progress=False)) == 4
    S.write_table(remote, specs)
    for name in ("summary.json", "table.md"):
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    summary = json.loads((local / "summary.json").read_text())
    # hand count per iteration (n+ = n- = 32, N = 64, K = 3): f-EBM 3*32 + 2*64 = 224 gradient
    # evaluations; CD gets K' = 3 + 64/32 = 5 steps: 5*32 + 64 = 224; 12 iterations: 2688 each
    assert summary["cells"]["eight_gaussians/kl"]["gradient_evaluations"] == [2688]
    assert summary["cells"]["eight_gaussians/cd"]["gradient_evaluations"] == [2688]
    assert summary["cells"]["eight_gaussians/kl"]["n_ok"] == 2


def _fake_result(spec):
    """A run result without training: metrics that are a fixed function of the spec."""
    v = 0.1 + 0.01 * spec["seed"] + (0.05 + 0.003 * spec["seed"] ** 2 if spec["label"] == "cd" else 0.0)
    return {"spec": dict(spec), "status": "ok", "complete": True, "cpu_seconds": 0.0, "wall_seconds": 0.0,
            "final": {"kl": v, "reverse_kl": 2 * v, "squared_hellinger": v / 2},
            "compute": {"gradient_evaluations": 1}}


class _Counting:
    def __init__(self):
        self.calls = []

    def __call__(self, spec):
        self.calls.append((spec["label"], spec["seed"]))
        return _fake_result(spec)


def test_resume_skips_finished_runs_and_reruns_partial_ones(tmp_path):
    specs = S.make_specs(["eight_gaussians"], ["cd", "kl"], 3, iterations=5)
    runner = _Counting()
    S.execute(specs, tmp_path, jobs=1, runner=runner, show_progress=False)  # jobs=1: in this process
    assert len(runner.calls) == 6
    S.execute(specs, tmp_path, jobs=1, runner=runner, show_progress=False)
    assert len(runner.calls) == 6, "finished runs must be skipped"
    # a killed write leaves a truncated file (never with the atomic writer, but by hand) and an
    # unfinished one lacks "complete": both are run again, the other four are not
    p_trunc = S.run_path(tmp_path, specs[1])
    p_trunc.write_text(p_trunc.read_text()[:40])
    p_incomplete = S.run_path(tmp_path, specs[4])
    run = json.loads(p_incomplete.read_text())
    run["complete"] = False
    p_incomplete.write_text(json.dumps(run))
    (tmp_path / "runs" / ".eight_gaussians__kl__s0.json.123.tmp").write_text("{")  # a stray temporary
    S.execute(specs, tmp_path, jobs=1, runner=runner, show_progress=False)
    assert runner.calls[6:] == [("cd", 1), ("kl", 1)]


def test_partial_run_file_is_not_counted_in_the_table(tmp_path):
    specs = S.make_specs(["eight_gaussians"], ["cd", "kl"], 3, iterations=5)
    S.execute(specs, tmp_path, jobs=1, runner=_fake_result, show_progress=False)
    path = S.run_path(tmp_path, specs[5])  # kl seed 2
    path.write_text(path.read_text()[:-30])
    summary = S.summarize(tmp_path, specs)
    cell = summary["cells"]["eight_gaussians/kl"]
    assert cell["n_runs"] == 2 and cell["seeds_ok"] == [0, 1]
    assert summary["comparisons"][0]["seeds"] == [0, 1]
    # a complete file of another sweep is refused, not silently mixed in
    other = S.make_specs(["eight_gaussians"], ["cd", "kl"], 3, iterations=6)
    with pytest.raises(ValueError, match="another sweep"):
        S.summarize(tmp_path, other)


def test_work_counters_equal_hand_counts_and_survive_a_resume(tmp_path):
    """3 iterations, n+ = n- = 8 (N = 16), K = 2 Langevin steps, one critic step per iteration.
    f-EBM per iteration: chain steps 8*2 = 16, trainer energy forward 16 (e_all), energy gradient 16,
    critic gradient 16, critic forward 16 (the energy step), guard forward 8. CD with the
    equal-compute K' = 2 + 16/8 = 4: chain steps 32, energy forward 16 and gradient 16, guard 8."""
    base = dict(iterations=3, batch_size=8, langevin_steps=2, eval_every=3, grid_size=16, n_eval_samples=16,
                buffer_capacity=64)
    febm = Experiment2DConfig(**base)
    k_cd = equal_compute_langevin_steps(febm)
    assert k_cd == 4
    r_f = run_experiment(febm, show_progress=False)["compute"]
    cd = Experiment2DConfig(**{**base, "method": "cd", "langevin_steps": k_cd})
    r_c = run_experiment(cd, show_progress=False)["compute"]
    assert r_f["trainer"] == {"energy_forward": 48, "energy_grad_theta": 48, "critic_forward": 48,
                              "critic_grad_omega": 48}
    assert r_f["sampler"] == {"chain_steps": 48, "energy_forward": 24}
    assert r_c["trainer"] == {"energy_forward": 48, "energy_grad_theta": 48, "critic_forward": 0,
                              "critic_grad_omega": 0}
    assert r_c["sampler"] == {"chain_steps": 96, "energy_forward": 24}
    assert r_f["gradient_evaluations"] == r_c["gradient_evaluations"] == 144
    # interrupted after 2 iterations and resumed: the same counts (they travel in the checkpoint)
    stopped = run_experiment(febm, out_dir=tmp_path, show_progress=False, checkpoint_every=1, stop_after=2)
    assert stopped["compute"]["gradient_evaluations"] == 96
    resumed = run_experiment(febm, out_dir=tmp_path, show_progress=False, resume=True)
    assert resumed["compute"] == r_f


def test_statistics_equal_scipy_and_holm_by_hand():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.2, 0.05, 10), rng.normal(0.25, 0.05, 10)
    ci = S.t_interval(a)
    low, high = stats.t.interval(0.95, 9, loc=np.mean(a), scale=stats.sem(a))
    # the same formula: agreement to a few units of roundoff of the values (~0.3)
    assert abs(ci["low"] - low) < 1e-14 and abs(ci["high"] - high) < 1e-14
    paired = S.paired_against_cd(a, b)
    assert paired["p_t"] == stats.ttest_rel(a, b).pvalue
    assert paired["p_wilcoxon"] == stats.wilcoxon(a - b).pvalue
    d_low, d_high = stats.t.interval(0.95, 9, loc=np.mean(a - b), scale=stats.sem(a - b))
    assert abs(paired["difference"]["low"] - d_low) < 1e-14 and abs(paired["difference"]["high"] - d_high) < 1e-14
    # Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06,
    # max(0.06, 1*0.04) = 0.06; NaN stays out of the family (m = 4)
    adj = S.holm([0.01, 0.04, math.nan, 0.03, 0.005])
    assert np.allclose(adj[[0, 1, 3, 4]], [0.03, 0.06, 0.06, 0.02], rtol=0, atol=1e-16) and math.isnan(adj[2])
    assert S.holm([0.9, 0.8]).tolist() == [1.0, 1.0]


def test_bad_sweep_input_raises(tmp_path):
    with pytest.raises(ValueError, match="include 'cd'"):
        S.make_specs(["eight_gaussians"], ["kl"], 2)
    with pytest.raises(ValueError, match="unknown sweep method"):
        S.make_specs(["eight_gaussians"], ["cd", "hmc"], 2)
    with pytest.raises(ValueError, match="scheduler"):
        S.execute(_tiny_specs(), tmp_path, scheduler="localhost:8786")


def test_sweep2d_command_refuses_bad_input_with_a_one_line_error(tmp_path, capsys):
    from febm_ref.cli import main

    assert main(["sweep2d", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "n_seeds" in capsys.readouterr().err
    assert main(["sweep2d", "--jobs", "0", "--methods", "cd", "--out", str(tmp_path)]) == 2
    assert "jobs" in capsys.readouterr().err
