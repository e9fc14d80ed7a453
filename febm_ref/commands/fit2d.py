"""``febm-ref fit2d``: 2-D toys, MLP energies trained by f-EBM or CD with Langevin negatives and a
replay buffer, judged by exact grid divergences (issue 8; :mod:`febm_ref.experiments.fit2d`).

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
metric curve included (:mod:`febm_ref.experiments.fit2d`), so ``--resume`` continues a run from it and
gives the numbers of an uninterrupted run bit for bit (its ``seconds`` are those of the resumed
part only). A single run with ``--resume`` needs ``--out`` and its checkpoint there; ``--all
--resume`` continues the unfinished runs that have a checkpoint and starts the others (without
``--resume`` an unfinished run restarts from iteration 0). A checkpoint of other settings is
refused, naming the differences.
"""

from __future__ import annotations

from pathlib import Path

from febm_ref._io import to_json
from febm_ref.experiments.fit2d_table import TABLE_METHODS, TABLE_METRICS, format_table, save_run, summarize  # noqa: F401


def add_parser(subparsers):
    from febm_ref.experiments.fit2d import FEBM_DIVERGENCES_2D, SAMPLERS
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
    from febm_ref.experiments.fit2d import PUBLISHED_STABILISATIONS

    return {k: v.replace("%", "%%") for k, v in PUBLISHED_STABILISATIONS.items()}


def _config(args, **overrides):
    from febm_ref.experiments.fit2d import Experiment2DConfig, published_config

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
    from febm_ref.experiments.fit2d import run_experiment

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
        save_run(out_dir, dict(result))
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
    """``fit2d --all``: :func:`febm_ref.experiments.fit2d_table.run_table` with the CLI's settings,
    one summary line per run, then the Markdown table."""
    from febm_ref.experiments.fit2d_table import run_table as run_experiment_table
    from febm_ref.targets import TARGETS_2D

    if not args.out:
        raise ValueError("--all needs --out DIR (one JSON per run is written there)")
    if args.sampler != "d16":
        raise ValueError("--all runs the table with the d16 sampler (run files are named without the "
                         "sampler); use single runs with --sampler ula")
    summary = run_experiment_table(Path(args.out), lambda **kw: _config(args, **kw),
                                   targets=args.targets or list(TARGETS_2D), n_seeds=args.seeds,
                                   resume=args.resume, checkpoint_every=args.checkpoint_every,
                                   on_result=lambda result: print(_summary_line(result), flush=True))
    print(format_table(summary))
    return 0
