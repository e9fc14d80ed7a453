"""The 2-D results table (``febm-ref fit2d --all``): every target x f-EBM divergence and CD x seeds,
each run by :func:`febm_ref.experiments.fit2d.run_experiment`, summarised over seeds (mean and
sample standard deviation of the final exact metrics) and formatted as Markdown.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from febm_ref._io import atomic_save_npz, atomic_write_json, atomic_write_text

__all__ = ["TABLE_METHODS", "TABLE_METRICS", "save_run", "run_table", "summarize", "format_table"]

TABLE_METHODS = ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger", "cd")
TABLE_METRICS = ("kl", "reverse_kl", "squared_hellinger")


def save_run(out_dir: Path, result: dict) -> Path:
    """Write ``out_dir/runs/<target>__<label>__s<seed>.json`` (and ``.npz`` of the arrays, popped
    from ``result``); returns the JSON path."""
    cfg = result["config"]
    label = ("published_" if cfg.get("published") else "") + ("cd" if cfg["method"] == "cd" else cfg["divergence"])
    name = f"{cfg['target']}__{label}__s{cfg['seed']}"
    arrays = {k: np.asarray(result.pop(k)) for k in ("theta", "langevin_samples") if k in result}
    if arrays:
        atomic_save_npz(out_dir / "runs" / f"{name}.npz", **arrays)
    return atomic_write_json(out_dir / "runs" / f"{name}.json", result)


def run_table(out_dir: Path, make_config: Callable, *, targets, n_seeds: int, resume: bool, checkpoint_every: int,
              on_result: Optional[Callable] = None) -> dict:
    """Run the table's missing runs into ``out_dir`` (a run whose JSON exists is skipped; with
    ``resume`` a run that has a checkpoint continues from it), then write ``summary.json`` and
    ``table.md``. ``make_config(target=, divergence=, method=, seed=)`` builds each
    Experiment2DConfig; ``on_result(result)`` is called after each run. Returns the summary."""
    from febm_ref.experiments.fit2d import run_experiment

    t0 = time.perf_counter()
    for target in targets:
        for label in TABLE_METHODS:
            for seed in range(n_seeds):
                method = "cd" if label == "cd" else "febm"
                div = "kl" if label == "cd" else label
                path = out_dir / "runs" / f"{target}__{label}__s{seed}.json"
                if path.exists():
                    continue
                cfg = make_config(target=target, divergence=div, method=method, seed=seed)
                # --all --resume continues the runs that have a checkpoint and starts the others
                again = resume and (out_dir / f"{cfg.run_name()}.ckpt.npz").exists()
                result = run_experiment(cfg, out_dir=out_dir, resume=again, checkpoint_every=checkpoint_every)
                save_run(out_dir, dict(result))
                if on_result is not None:
                    on_result(result)
    wall = time.perf_counter() - t0
    summary = summarize(out_dir, targets, n_seeds)
    summary["wall_seconds_this_invocation"] = wall
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "table.md", format_table(summary))
    return summary


def summarize(out_dir: Path, targets, n_seeds: int) -> dict:
    """Mean and sample standard deviation over seeds of each final exact metric, per target and method."""
    cells = {}
    total_seconds = 0.0
    for target in targets:
        for label in TABLE_METHODS:
            runs = []
            for seed in range(n_seeds):
                path = out_dir / "runs" / f"{target}__{label}__s{seed}.json"
                if path.exists():
                    runs.append(json.loads(path.read_text()))
            ok = [r for r in runs if r["status"] == "ok"]
            total_seconds += sum(r["seconds"] for r in runs)
            cell = {"n_runs": len(runs), "n_ok": len(ok),
                    "diverged": [{"seed": r["config"]["seed"], "iteration": r["iteration"],
                                  "quantity": r["quantity"]} for r in runs if r["status"] != "ok"]}
            for metric in TABLE_METRICS:
                vals = np.array([r["final"][metric] for r in ok])
                cell[metric] = {"values": vals.tolist(),
                                "mean": float(vals.mean()) if vals.size else math.nan,
                                "std": float(vals.std(ddof=1)) if vals.size > 1 else math.nan}
            if ok:
                cell["seconds_mean"] = float(np.mean([r["seconds"] for r in ok]))
                cell["samples_kl_target_vs_langevin"] = float(np.mean(
                    [r["samples"]["target_vs_langevin_kde"]["kl"] for r in ok]))
                cell["samples_kl_model_vs_langevin"] = float(np.mean(
                    [r["samples"]["model_vs_langevin_kde"]["kl"] for r in ok]))
                cell["samples_kl_floor"] = float(np.mean([r["samples"]["target_vs_exact_kde_floor"]["kl"]
                                                          for r in ok]))
            cells[f"{target}/{label}"] = cell
    return {"targets": list(targets), "methods": list(TABLE_METHODS), "metrics": list(TABLE_METRICS),
            "n_seeds": n_seeds, "cells": cells, "sum_of_run_seconds": total_seconds}


def format_table(summary: dict) -> str:
    """Markdown: one table per target, rows = methods, columns = exact metrics (mean ± std over seeds)."""
    lines = []
    for target in summary["targets"]:
        lines += [f"### {target}", "",
                  "| method | KL(p‖q) | reverse KL(q‖p) | squared Hellinger | KL(p‖KDE of negatives) "
                  "| KL(q‖KDE of negatives) | runs ok |",
                  "|---|---|---|---|---|---|---|"]
        for label in summary["methods"]:
            c = summary["cells"][f"{target}/{label}"]
            row = [("f-EBM " + label) if label != "cd" else "CD (baseline)"]
            for metric in summary["metrics"]:
                m = c[metric]
                row.append("—" if not m["values"] else f"{m['mean']:.3f}" + (
                    f" ± {m['std']:.3f}" if len(m["values"]) > 1 else ""))
            row.append(f"{c.get('samples_kl_target_vs_langevin', math.nan):.3f}")
            row.append(f"{c.get('samples_kl_model_vs_langevin', math.nan):.3f}")
            row.append(f"{c['n_ok']}/{c['n_runs']}" + (
                " (diverged: " + ", ".join(f"seed {d['seed']} at it. {d['iteration']}" for d in c["diverged"]) + ")"
                if c["diverged"] else ""))
            lines.append("| " + " | ".join(row) + " |")
        floors = [summary["cells"][f"{target}/{m}"].get("samples_kl_floor") for m in summary["methods"]]
        floors = [f for f in floors if f is not None]
        if floors:
            lines += ["", f"KDE floor (the same estimator on exact target draws, same n): KL {np.mean(floors):.3f}."]
        lines.append("")
    return "\n".join(lines)
