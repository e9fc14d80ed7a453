"""``febm-ref sweep2d``: f-EBM against CD at equal compute on the 2-D toys, many seeds, through
joblib or dask.distributed (issue 16; the engine is :mod:`febm_ref.sweep2d`, this module only parses).

::

    febm-ref sweep2d --seeds 10 --jobs 2 --out DIR [--targets ...] [--methods ...] [--iters N]
                     [--scheduler tcp://host:8786]

One JSON per run in ``DIR/runs/`` (finished runs are skipped: re-running the command resumes),
then ``DIR/table.md`` and ``DIR/summary.json`` (a deterministic function of the run files) and
``DIR/timing.json``.
"""

from __future__ import annotations

import time


def add_parser(subparsers):
    from febm_ref.sweep2d import ALL_LABELS
    from febm_ref.targets import TARGETS_2D

    p = subparsers.add_parser(
        "sweep2d", help="2-D toys: f-EBM vs CD at equal compute over many seeds (joblib or dask)",
        description=("f-EBM (kl, reverse_kl, jensen_shannon, squared_hellinger; default and published "
                     "image-code settings) against contrastive divergence at an equal number of network "
                     "gradient evaluations (CD gets more Langevin steps per iteration), over --seeds seeds "
                     "per cell, judged by exact grid divergences, with 95%% t intervals and paired t and "
                     "Wilcoxon tests against CD (Holm-corrected). Runs through joblib (--jobs) or, with "
                     "--scheduler, an existing dask.distributed scheduler; finished runs are skipped."))
    p.add_argument("--out", required=True, help="output directory (runs/, table.md, summary.json, timing.json)")
    p.add_argument("--seeds", type=int, default=10, help="seeds per cell (default 10)")
    p.add_argument("--jobs", type=int, default=2, help="joblib worker processes (default 2; ignored with --scheduler)")
    p.add_argument("--scheduler", default=None,
                   help="address of a running dask.distributed scheduler, e.g. tcp://host:8786 (workers must "
                        "have febm-ref installed); without it the runs go through joblib")
    p.add_argument("--targets", nargs="+", choices=TARGETS_2D, default=list(TARGETS_2D))
    p.add_argument("--methods", nargs="+", choices=ALL_LABELS, default=list(ALL_LABELS),
                   help="cells: cd (always needed), f-EBM objectives, published_<objective> (l2 = 1, "
                        "exp(clip(., -5, 5)) in the maps, D16, replay buffer)")
    p.add_argument("--iters", type=int, default=2000, help="training iterations of every run (default 2000)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from febm_ref.sweep2d import execute, format_table, make_specs, write_table

    specs = make_specs(args.targets, args.methods, args.seeds, iterations=args.iters)
    t0, c0 = time.perf_counter(), time.process_time()
    done = execute(specs, args.out, jobs=args.jobs, scheduler=args.scheduler)
    summary = write_table(args.out, specs)
    print(format_table(summary))
    print(f"sweep2d: {len(done)} runs now, {len(specs) - len(done)} skipped (already finished); "
          f"{time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU in this process")
    return 0
