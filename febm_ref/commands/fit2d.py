"""``febm-ref fit2d``: 2-D toys, MLP energies trained by f-EBM or CD with Langevin negatives and a
replay buffer, judged by exact grid divergences (issue 8; :mod:`febm_ref.experiments2d`).

One run::

    febm-ref fit2d --target eight_gaussians --divergence kl [--method febm|cd] [--iters N] [--seed S]
                   [--sampler d16|ula] [--published] [--json] [--out DIR [--resume]]

``--published`` applies the published image code's stabilisations, each named in ``--help`` and
recorded in the run's JSON (``stabilisations``; ``config.exp_clip``, ``config.l2_weight``): l2
weight 1, ``exp(clip(., -5, 5))`` in the f-EBM maps (:mod:`febm_ref.published_image`), D16 Langevin
and the replay buffer. Off by default; the default run is unchanged by it.

The results table (every target x (kl, reverse_kl, jensen_shannon, squared_hellinger, cd) x seeds)::

    febm-ref fit2d --all --out results2d [--seeds 3] [--resume]

``--all`` writes one JSON per run to ``DIR/runs/`` atomically and skips runs whose JSON already
exists, so an interrupted table resumes where it stopped; then ``DIR/table.md`` and
``DIR/summary.json``. Per run, the trainer writes a checkpoint (``DIR/<run>.ckpt.npz``) every
``--checkpoint-every`` (default 250) iterations (and when interrupted by Ctrl-C); a diverged run is
reported with its iteration and the last good checkpoint is kept.

Faults: ``--out DIR`` is locked for one process (a second ``fit1d``/``fit2d`` on it is refused,
naming the first one's pid and command; the lock of a killed process is taken over); a checkpoint
that is truncated, corrupted or edited is refused on ``--resume`` (sha256 digest), never resumed
from; a failed write (full disk) stops with a one-line error and keeps the previous checkpoint.
All of this is exercised by ``tests/test_faults.py`` (kill -9 at chosen points of a checkpoint
write, SIGINT, ENOSPC, two writers, tampered files).

The checkpoint holds everything the run carries between iterations, the replay buffer and the
metric curve included (:mod:`febm_ref.experiments2d`), so ``--resume`` continues a run from it and
gives the numbers of an uninterrupted run bit for bit (its ``seconds`` are those of the resumed
part only). A single run with ``--resume`` needs ``--out`` and its checkpoint there; ``--all
--resume`` continues the unfinished runs that have a checkpoint and starts the others (without
``--resume`` an unfinished run restarts from iteration 0). A checkpoint of other settings is
refused, naming the differences.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from febm_ref._io import atomic_save_npz, atomic_write_json, atomic_write_text, to_json

TABLE_METHODS = ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger", "cd")
TABLE_METRICS = ("kl", "reverse_kl", "squared_hellinger")


def add_parser(subparsers):
    from febm_ref.experiments2d import FEBM_DIVERGENCES_2D, SAMPLERS
    from febm_ref.targets import TARGETS_2D

    p = subparsers.add_parser(
        "fit2d", help="2-D toys: MLP energy by f-EBM or CD with Langevin negatives, exact grid divergences",
        description=("2-D toys: an MLP energy trained by f-EBM (estimator D13 with an MLP critic) or by "
                     "contrastive divergence, with short-run Langevin negatives from a replay buffer, "
                     "judged by exact divergences between the target and the learned model normalised "
                     "on a grid. --all runs the results table (every target x kl, reverse_kl, "
                     "jensen_shannon, squared_hellinger, cd x --seeds seeds) and skips finished runs."))
    p.add_argument("--target", choices=TARGETS_2D, default="eight_gaussians")
    p.add_argument("--divergence", choices=FEBM_DIVERGENCES_2D, default="kl",
                   help="f-EBM objective (ignored by --method cd)")
    p.add_argument("--method", choices=("febm", "cd"), default="febm")
    p.add_argument("--sampler", choices=SAMPLERS, default="d16",
                   help="d16: decoupled Langevin (published recipe, box-clipped); ula: textbook ULA (D15)")
    p.add_argument("--iters", type=int, default=None, help="training iterations (default: the table's)")
    p.add_argument("--published", action="store_true",
                   help="the published image code's stabilisations (off by default; each is recorded in the "
                        "run's JSON under 'stabilisations'): " + "; ".join(
                            f"{k}: {v}" for k, v in _published_help().items()))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all", action="store_true", help="run the full results table")
    p.add_argument("--seeds", type=int, default=3, help="seeds per table cell (with --all)")
    p.add_argument("--targets", nargs="+", choices=TARGETS_2D, default=None, help="restrict --all to targets")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--out", default=None, help="output directory (checkpoints, run JSON, npz)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out (with --all: the unfinished runs that have one)")
    p.add_argument("--checkpoint-every", type=int, default=250,
                   help="iterations between checkpoints (default 250; a checkpoint is also written at the end "
                        "and on Ctrl-C)")
    p.set_defaults(func=run)
    return p


def _published_help() -> dict:
    from febm_ref.experiments2d import PUBLISHED_STABILISATIONS

    return {k: v.replace("%", "%%") for k, v in PUBLISHED_STABILISATIONS.items()}


def _config(args, **overrides):
    from febm_ref.experiments2d import Experiment2DConfig, published_config

    kw = dict(target=args.target, divergence=args.divergence, method=args.method, sampler=args.sampler,
              seed=args.seed)
    if args.iters is not None:
        kw["iterations"] = args.iters
    kw.update(overrides)
    if getattr(args, "published", False):
        if kw["sampler"] != "d16":
            raise ValueError("--published uses the d16 sampler of the image code; drop --sampler ula")
        return published_config(**kw)
    return Experiment2DConfig(**kw)


def _save_run(out_dir: Path, result: dict) -> Path:
    cfg = result["config"]
    label = ("published_" if cfg.get("published") else "") + ("cd" if cfg["method"] == "cd" else cfg["divergence"])
    name = f"{cfg['target']}__{label}__s{cfg['seed']}"
    arrays = {k: np.asarray(result.pop(k)) for k in ("theta", "langevin_samples") if k in result}
    if arrays:
        atomic_save_npz(out_dir / "runs" / f"{name}.npz", **arrays)
    return atomic_write_json(out_dir / "runs" / f"{name}.json", result)


def _summary_line(r: dict) -> str:
    cfg = r["config"]
    label = "cd" if cfg["method"] == "cd" else cfg["divergence"]
    if r["status"] != "ok":
        return f"{cfg['target']} {label} seed {cfg['seed']}: DIVERGED: {r['message']}"
    f = r["final"]
    return (f"{cfg['target']} {label} seed {cfg['seed']}: KL {f['kl']:.4f}  reverse KL {f['reverse_kl']:.4f}  "
            f"sq. Hellinger {f['squared_hellinger']:.4f}  (initial KL {r['initial']['kl']:.3f}; "
            f"{r['seconds']:.1f} s)")


def run(args) -> int:
    """``fit2d``; with ``--out`` the directory is locked for this process and a failed write is a
    one-line error (:func:`febm_ref.commands.fit1d.run_locked`)."""
    from febm_ref.commands.fit1d import run_locked

    return run_locked(args, "fit2d", _run)


def _run(args) -> int:
    from febm_ref.experiments2d import run_experiment

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if args.resume and not args.out:
        raise ValueError("--resume needs --out DIR (the checkpoint lives there)")
    if args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    if args.all:
        if args.published:
            raise ValueError("--all runs the default table; for the published settings over many seeds use "
                             "febm-ref sweep2d --methods cd published_kl ...")
        return run_table(args)
    cfg = _config(args)
    out_dir = Path(args.out) if args.out else None
    if args.resume:
        ckpt = out_dir / f"{cfg.run_name()}.ckpt.npz"
        if not ckpt.exists():
            raise ValueError(f"--resume: no checkpoint at {ckpt}")
    result = run_experiment(cfg, out_dir=out_dir, resume=args.resume, checkpoint_every=args.checkpoint_every)
    if out_dir is not None:
        _save_run(out_dir, dict(result))
    printable = {k: v for k, v in result.items() if k not in ("theta", "langevin_samples")}
    if args.json:
        print(to_json(printable))
    else:
        print(_summary_line(result))
        if result["status"] == "ok":
            s = result["samples"]
            print(f"  Langevin samples (KDE, n={s['n']}): KL(target||samples) "
                  f"{s['target_vs_langevin_kde']['kl']:.4f}, KL(model||samples) {s['model_vs_langevin_kde']['kl']:.4f}"
                  f"; estimator floor with exact target draws {s['target_vs_exact_kde_floor']['kl']:.4f}")
    return 0 if result["status"] == "ok" else 1


def run_table(args) -> int:
    from febm_ref.experiments2d import run_experiment
    from febm_ref.targets import TARGETS_2D

    if not args.out:
        raise ValueError("--all needs --out DIR (one JSON per run is written there)")
    if args.sampler != "d16":
        raise ValueError("--all runs the table with the d16 sampler (run files are named without the "
                         "sampler); use single runs with --sampler ula")
    out_dir = Path(args.out)
    targets = args.targets or list(TARGETS_2D)
    t0 = time.perf_counter()
    for target in targets:
        for label in TABLE_METHODS:
            for seed in range(args.seeds):
                method = "cd" if label == "cd" else "febm"
                div = "kl" if label == "cd" else label
                path = out_dir / "runs" / f"{target}__{label}__s{seed}.json"
                if path.exists():
                    continue
                cfg = _config(args, target=target, divergence=div, method=method, seed=seed)
                # --all --resume continues the runs that have a checkpoint and starts the others
                resume = args.resume and (out_dir / f"{cfg.run_name()}.ckpt.npz").exists()
                result = run_experiment(cfg, out_dir=out_dir, resume=resume, checkpoint_every=args.checkpoint_every)
                _save_run(out_dir, dict(result))
                print(_summary_line(result), flush=True)
    wall = time.perf_counter() - t0
    summary = summarize(out_dir, targets, args.seeds)
    summary["wall_seconds_this_invocation"] = wall
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "table.md", format_table(summary))
    print(format_table(summary))
    return 0


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
