"""f-EBM against contrastive divergence at equal compute on the 2-D toys, over many seeds
(issue 16 point 3): the sweep engine behind ``febm-ref sweep2d`` (docs/results2d_equal_compute.md).

Cells and runs
--------------
A *cell* is ``(target, label)``; its *runs* are the seeds ``0 .. n-1``. Labels: ``cd`` (maximum
likelihood, D1/D12), the f-EBM objectives of :data:`FEBM_LABELS` (estimator D13 + D14 at the
table's settings, :class:`~febm_ref.experiments.fit2d.Experiment2DConfig`), and the same objectives at
the published image code's settings, ``published_<divergence>``
(:func:`~febm_ref.experiments.fit2d.published_config`: l2 weight 1, ``exp(clip(., -5, 5))`` in the maps,
D16 Langevin, replay buffer). A run is a pure function :func:`run_one` of its *spec* (a small dict:
target, label, seed, iterations) to a JSON-able result dict, so it runs anywhere.

Equal compute
-------------
Compute is counted in network *gradient evaluations* of one point (a forward and a backward
pass, in ``x`` for a Langevin step, in the parameters for a training step), by counters where the
work is done (:data:`febm_ref.training.WORK_COUNTERS`, :data:`febm_ref.experiments.fit2d.SAMPLER_WORK_COUNTERS`).
Per iteration f-EBM makes ``K n_- + 2 N`` of them (``K`` Langevin steps of ``n_-`` chains, one
critic and one energy gradient on the ``N = n_+ + n_-`` points), CD ``K' n_- + N``. CD gets
``K' = K + N / n_-`` Langevin steps (17 for the defaults K = 15, n_+ = n_- = 256): the same
number of gradient evaluations in every iteration, and the same iterations, learning rates and
schedule as f-EBM. The measured counts are in each run's ``compute`` record.

Execution and files
-------------------
Runs go through an existing engine, never a scheduler of our own: ``joblib`` (``jobs`` worker
processes) by default, ``dask.distributed`` when a scheduler address is given. The driver writes
each result, as it arrives, atomically to ``<out>/runs/<target>__<label>__s<seed>.json``
(:func:`febm_ref._io.atomic_write_json`), so workers need no shared file system. A run file counts
only when it parses, carries ``"complete": true`` and exactly the requested spec; anything else (a
truncated or foreign file) is run again. Finished runs are skipped, so an interrupted sweep
resumes. The table (:func:`summarize`, :func:`format_table`) is a deterministic function of the
run files, read in sorted order: local and distributed sweeps give the same bytes.

Statistics (:func:`cell_statistics`, :func:`paired_against_cd`)
----------------------------------------------------------------
Per cell and exact metric: the mean over seeds and the 95 % Student-t interval
``mean ± t_{0.975, n-1} s / sqrt(n)``. Against CD, on the seeds where both runs finished: the mean
paired difference ``method - CD`` with its t interval, the paired t test (``scipy.stats.ttest_rel``)
and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, exact for n <= 50 without
ties). Holm's step-down correction is applied per metric and per test across the family of all
(target, method) comparisons with CD in the table.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from febm_ref._io import atomic_write_json, atomic_write_text, to_json
from febm_ref._progress import progress

__all__ = ["FEBM_LABELS", "PUBLISHED_LABELS", "ALL_LABELS", "METRICS", "make_specs", "build_config",
           "run_one", "run_path", "load_run", "execute", "summarize", "format_table", "cell_statistics",
           "paired_against_cd", "holm"]

FEBM_LABELS = ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger")
PUBLISHED_LABELS = tuple(f"published_{d}" for d in FEBM_LABELS)
ALL_LABELS = ("cd", *FEBM_LABELS, *PUBLISHED_LABELS)
METRICS = ("kl", "reverse_kl", "squared_hellinger")
"""Exact divergences of the learned density reported by the table (D2, data first)."""
_DROP = ("theta", "langevin_samples")


def make_specs(targets: Iterable[str], labels: Iterable[str], n_seeds: int, *, iterations: int = 2000,
               **overrides) -> list:
    """The run specs, target-major (a sweep cut short has whole targets done first).

    ``overrides`` are further :class:`Experiment2DConfig` fields (small configurations for tests),
    recorded in every spec.
    """
    from febm_ref._validation import check_positive_int
    from febm_ref.targets import TARGETS_2D

    n_seeds = check_positive_int(n_seeds, "n_seeds")
    targets, labels = list(targets), list(labels)
    for t in targets:
        if t not in TARGETS_2D:
            raise ValueError(f"unknown 2-D target {t!r}; choose from {TARGETS_2D}")
    for lab in labels:
        if lab not in ALL_LABELS:
            raise ValueError(f"unknown sweep method {lab!r}; choose from {ALL_LABELS}")
    if "cd" not in labels:
        raise ValueError("the sweep compares every method with CD: include 'cd' in the methods")
    return [{"target": t, "label": lab, "seed": s, "iterations": int(iterations), **overrides}
            for t in targets for lab in labels for s in range(n_seeds)]


def build_config(spec: dict):
    """The :class:`Experiment2DConfig` of a spec; CD gets the equal-compute Langevin steps."""
    from febm_ref.experiments.fit2d import Experiment2DConfig, equal_compute_langevin_steps, published_config

    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "label"}
    label = spec["label"]
    if label == "cd":
        febm = Experiment2DConfig(**kw)
        return Experiment2DConfig(**{**kw, "method": "cd", "langevin_steps": equal_compute_langevin_steps(febm)})
    if label.startswith("published_"):
        return published_config(**kw, divergence=label[len("published_"):])
    return Experiment2DConfig(**kw, divergence=label)


def run_one(spec: dict) -> dict:
    """Train and evaluate one run: a pure function of ``spec`` (besides ``seconds`` and
    ``cpu_seconds``, which the table never reads). Large arrays are dropped."""
    from febm_ref.experiments.fit2d import run_experiment

    cfg = build_config(spec)
    c0, t0 = time.process_time(), time.perf_counter()
    result = run_experiment(cfg, out_dir=None, show_progress=False)
    for key in _DROP:
        result.pop(key, None)
    result.update(spec=dict(spec), cpu_seconds=time.process_time() - c0, wall_seconds=time.perf_counter() - t0,
                  complete=True)
    return json.loads(to_json(result))


def run_path(out_dir, spec: dict) -> Path:
    return Path(out_dir) / "runs" / f"{spec['target']}__{spec['label']}__s{spec['seed']}.json"


def load_run(out_dir, spec: dict) -> Optional[dict]:
    """The finished run of ``spec`` in ``out_dir``, or None (absent, truncated, not complete).

    Raises
    ------
    ValueError
        A complete run file of another spec (other iterations or settings): use another ``out``.
    """
    path = run_path(out_dir, spec)
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or run.get("complete") is not True or run.get("status") not in ("ok", "diverged"):
        return None
    if run.get("spec") != json.loads(to_json(spec)):
        raise ValueError(f"{path} holds a run of another sweep (spec {run.get('spec')} vs requested {spec}); "
                         "use a new --out directory or the original settings")
    return run


def _results_joblib(runner: Callable, specs: list, jobs: int):
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, return_as="generator_unordered")(delayed(runner)(s) for s in specs)


def _results_dask(runner: Callable, specs: list, scheduler: str):
    from dask.distributed import Client, as_completed

    with Client(scheduler) as client:
        futures = client.map(runner, specs, pure=False)
        for future in as_completed(futures):
            yield future.result()


def execute(specs: list, out_dir, *, jobs: int = 2, scheduler: Optional[str] = None,
            show_progress: Optional[bool] = None, runner: Callable = run_one) -> list:
    """Run the unfinished specs (joblib with ``jobs`` processes, or dask at ``scheduler``) and write
    each result atomically as it arrives. Returns the specs that were run (finished ones skipped)."""
    from febm_ref._validation import check_positive_int

    jobs = check_positive_int(jobs, "jobs")
    if scheduler is not None and not str(scheduler).startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ValueError(f"scheduler must be a dask scheduler address such as tcp://host:8786, got {scheduler!r}")
    pending = [s for s in specs if load_run(out_dir, s) is None]
    if not pending:
        return []
    (Path(out_dir) / "runs").mkdir(parents=True, exist_ok=True)
    results = (_results_dask(runner, pending, scheduler) if scheduler is not None
               else _results_joblib(runner, pending, jobs))
    bar = progress(total=len(pending), desc="sweep2d", enabled=show_progress)
    try:
        for result in results:
            atomic_write_json(run_path(out_dir, result["spec"]), result)
            bar.update(1)
    finally:
        bar.close()
    return pending


# ----------------------------------------------------------------------------- statistics
def t_interval(values, level: float = 0.95) -> dict:
    """Mean, sample standard deviation (ddof 1) and the Student-t interval
    ``mean ± t_{(1+level)/2, n-1} s / sqrt(n)`` (NaN bounds for ``n < 2``)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "low": math.nan, "high": math.nan}
    sd = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "std": sd, "low": mean - half, "high": mean + half}


def cell_statistics(values) -> dict:
    """:func:`t_interval` of a cell's values over seeds, with the values."""
    return {"values": [float(v) for v in values], **t_interval(values)}


def paired_against_cd(method_values, cd_values) -> dict:
    """Paired comparison of ``method - cd`` on the same seeds: the mean difference with its 95 %
    t interval, the paired t test and the two-sided Wilcoxon signed-rank test (raw p-values;
    :func:`holm` adjusts them across the family). Fewer than 2 pairs: NaN p-values."""
    from scipy import stats

    a, b = np.asarray(method_values, dtype=np.float64), np.asarray(cd_values, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal shapes, got {a.shape} and {b.shape}")
    d = a - b
    out = {"difference": t_interval(d), "p_t": math.nan, "p_wilcoxon": math.nan}
    if d.size >= 2:
        out["p_t"] = float(stats.ttest_rel(a, b).pvalue)
        out["p_wilcoxon"] = float(stats.wilcoxon(a, b).pvalue) if np.any(d != 0) else 1.0
    return out


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: with ``p_(1) <= ... <= p_(m)``,
    ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; NaN stays NaN (not in the family)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


def _cell(runs: list, metrics) -> dict:
    ok = {r["spec"]["seed"]: r for r in runs if r["status"] == "ok"}
    cell = {"n_runs": len(runs), "n_ok": len(ok),
            "diverged": sorted(r["spec"]["seed"] for r in runs if r["status"] != "ok"),
            "seeds_ok": sorted(ok)}
    for metric in metrics:
        cell[metric] = cell_statistics([ok[s]["final"][metric] for s in sorted(ok)])
    grads = {r["compute"]["gradient_evaluations"] for r in runs if "compute" in r}
    cell["gradient_evaluations"] = sorted(g for g in grads if g is not None)
    return cell


def summarize(out_dir, specs: list, metrics=METRICS) -> dict:
    """The table's numbers from the run files of ``specs`` (read in sorted order; unfinished runs
    are absent): per cell :func:`cell_statistics`, per non-CD cell :func:`paired_against_cd` on the
    common finished seeds, and Holm-adjusted p-values per metric and test across all comparisons."""
    runs = {}
    for spec in sorted(specs, key=lambda s: run_path(out_dir, s).name):
        run = load_run(out_dir, spec)
        if run is not None:
            runs.setdefault((spec["target"], spec["label"]), []).append(run)
    targets = list(dict.fromkeys(s["target"] for s in specs))
    labels = list(dict.fromkeys(s["label"] for s in specs))
    cells, comparisons = {}, []
    for t in targets:
        for lab in labels:
            cells[f"{t}/{lab}"] = _cell(runs.get((t, lab), []), metrics)
    for t in targets:
        cd_runs = {r["spec"]["seed"]: r for r in runs.get((t, "cd"), []) if r["status"] == "ok"}
        for lab in labels:
            if lab == "cd":
                continue
            mine = {r["spec"]["seed"]: r for r in runs.get((t, lab), []) if r["status"] == "ok"}
            seeds = sorted(set(mine) & set(cd_runs))
            comp = {"target": t, "method": lab, "seeds": seeds}
            for metric in metrics:
                comp[metric] = paired_against_cd([mine[s]["final"][metric] for s in seeds],
                                                 [cd_runs[s]["final"][metric] for s in seeds])
            comparisons.append(comp)
    for metric in metrics:
        for test in ("p_t", "p_wilcoxon"):
            adjusted = holm([c[metric][test] for c in comparisons])
            for c, a in zip(comparisons, adjusted):
                c[metric][test + "_holm"] = float(a)
    return {"targets": targets, "methods": labels, "metrics": list(metrics),
            "n_seeds": len({s["seed"] for s in specs}), "iterations": sorted({s["iterations"] for s in specs}),
            "holm_family": f"per metric and test: the {len(comparisons)} (target, method) comparisons with CD",
            "cells": cells, "comparisons": comparisons}


def _fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else (f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}")


def _method_name(label: str) -> str:
    if label == "cd":
        return "CD (equal compute)"
    if label.startswith("published_"):
        return "f-EBM " + label[len("published_"):] + " (published settings)"
    return "f-EBM " + label


def format_table(summary: dict) -> str:
    """Markdown: per target, one row per method: mean [95 % t interval] of each exact metric; then
    per target the paired differences against CD with raw and Holm-adjusted p-values."""
    names = {"kl": "KL(p‖q)", "reverse_kl": "reverse KL(q‖p)", "squared_hellinger": "squared Hellinger"}
    lines = []
    for t in summary["targets"]:
        head = " | ".join(names.get(m, m) + " mean [95 % CI]" for m in summary["metrics"])
        lines += [f"### {t}", "", f"| method | {head} | runs ok |", "|---" * (len(summary["metrics"]) + 2) + "|"]
        for lab in summary["methods"]:
            c = summary["cells"][f"{t}/{lab}"]
            row = [_method_name(lab)]
            for m in summary["metrics"]:
                s = c[m]
                row.append("—" if s["n"] == 0 else f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]")
            row.append(f"{c['n_ok']}/{c['n_runs']}" + (f" (diverged: seeds {c['diverged']})" if c["diverged"] else ""))
            lines.append("| " + " | ".join(row) + " |")
        paired_head = " | ".join(f"{names.get(m, m)}: mean diff [95 % CI]; p t / Wilcoxon (Holm)"
                                 for m in summary["metrics"])
        lines += ["", f"| method − CD, paired | {paired_head} | pairs |", "|---" * (len(summary["metrics"]) + 2) + "|"]
        for comp in (c for c in summary["comparisons"] if c["target"] == t):
            row = [_method_name(comp["method"])]
            for m in summary["metrics"]:
                d = comp[m]
                diff = d["difference"]
                row.append("—" if diff["n"] == 0 else
                           f"{diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]; "
                           f"{_fmt_p(d['p_t'])} / {_fmt_p(d['p_wilcoxon'])} "
                           f"({_fmt_p(d['p_t_holm'])} / {_fmt_p(d['p_wilcoxon_holm'])})")
            row.append(str(len(comp["seeds"])))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines.append(f"Holm correction: {summary['holm_family']}.")
    return "\n".join(lines) + "\n"


def write_table(out_dir, specs: list) -> dict:
    """``summary.json`` and ``table.md`` in ``out_dir`` (both deterministic functions of the run
    files) and ``timing.json`` (the runs' measured seconds, never part of the table)."""
    out_dir = Path(out_dir)
    summary = summarize(out_dir, specs)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "table.md", format_table(summary))
    runs = [r for r in (load_run(out_dir, s) for s in specs) if r is not None]
    timing = {"n_runs": len(runs), "sum_cpu_seconds": float(sum(r["cpu_seconds"] for r in runs)),
              "sum_wall_seconds": float(sum(r["wall_seconds"] for r in runs))}
    atomic_write_json(out_dir / "timing.json", timing)
    return summary
