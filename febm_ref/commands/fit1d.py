"""``febm-ref fit1d``: parse the arguments, run :mod:`febm_ref.experiments.fit1d` (the paper's 1-D
experiment against exact optima, docs/theory.md section 6) and print the table or JSON.
"""

from __future__ import annotations

import math
import sys

from febm_ref._io import to_json
from febm_ref.experiments.fit1d import (  # noqa: F401
    CONVERGED_NOTE,
    CONVERGED_PROTOCOL,
    CRITIC_HIDDEN,
    INITIAL_THETA,
    METHODS,
    PAPER_PROTOCOL,
    PROTOCOLS,
    label_of,
    make_critic,
    protocol_config,
    run_fit,
    run_row,
    run_table,
)


def format_table(rows) -> str:
    head = (f"{'divergence':18s} {'method':6s} {'mu fit':>9s} {'mu*':>9s} {'gap':>8s} {'sigma fit':>9s} "
            f"{'sigma*':>9s} {'gap':>8s} {'D_f fit':>9s} {'D_f*':>9s} {'time s':>7s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['divergence']:18s} {str(r.get('method')):6s} error: {r['error']}")
            continue
        lines.append(f"{r['divergence']:18s} {r['method']:6s} {r['fit_mu']:9.4f} {r['exact_mu']:9.4f} "
                     f"{r['gap_mu']:+8.4f} {r['fit_sigma']:9.4f} {r['exact_sigma']:9.4f} {r['gap_sigma']:+8.4f} "
                     f"{r['divergence_at_fit']:9.5f} {r['divergence_at_optimum']:9.5f} {r['seconds_train']:7.1f}")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "fit1d",
        help="the paper's 1-D experiment: fit N(mu, sigma^2) to a mixture, against exact optima",
        description=(
            "Fit q = N(mu, sigma^2) to p = 0.33 N(-1, 0.25^2) + 0.67 N(2, 2) by f-EBM (1-64-64-1 tanh critic, "
            "exact model samples) and compare with the exact argmin D_f(P||N(mu, sigma^2)) (quadrature). "
            "--protocol paper is the published setting (SGD lr 1e-3, 30,000 alternating iterations, batches "
            "1000+1000, last iterate); --protocol converged: " + CONVERGED_NOTE),
    )
    parser.add_argument("--divergence", default=None,
                        help="kl, reverse_kl, jensen_shannon, squared_hellinger, pearson_chi2, neyman_chi2, alpha")
    parser.add_argument("--alpha", type=float, default=None, help="alpha of --divergence alpha")
    parser.add_argument("--all", action="store_true",
                        help="run the paper's table (kl, reverse_kl, jensen_shannon, squared_hellinger, "
                             "pearson_chi2, neyman_chi2, alpha -1, -0.5, 0.5, 0.9, 2)")
    parser.add_argument("--method", choices=METHODS, default="febm",
                        help="febm (default), cd (maximum likelihood; KL only), exact (the optimiser on the "
                             "exact gradient of D_f)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="converged")
    parser.add_argument("--iters", type=int, default=None, help="number of iterations (overrides the protocol)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
    parser.add_argument("--lr", type=float, default=None,
                        help="energy learning rate (the critic's keeps the protocol's ratio)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="parallel processes for --all (default 1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", default=None, help="directory for results, histories and checkpoints")
    parser.add_argument("--resume", action="store_true",
                        help="resume from the checkpoint in --out (with --all: the entries that have one)")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--published", action="store_true",
                        help="the published code's algorithm (ermongroup/f-EBM 1d-example/gaussian_febm.py), "
                             "with --protocol paper: (1) clipped g maps, torch clamp (gradient 0 beyond the "
                             "bound): KL g_model = exp(clamp(s, max=3)); Pearson g_data = 2 exp(clamp(s, max=6)) "
                             "- 2 and g_model = exp(clamp(2 s, max=6)) - 1; every other divergence unclipped; "
                             "(2) critic init = PyTorch's default nn.Linear law, U(-1/sqrt(fan_in), "
                             "1/sqrt(fan_in)) for weights and biases; (3) update order: critic SGD step, then "
                             "the energy SGD step on the same batch with the updated critic. Kept: float64, "
                             "i.i.d. data batches; no checkpoints. Recorded in the JSON's \"published\" block")
    parser.set_defaults(func=run)


def run(args) -> int:
    """``fit1d``: with ``--out`` the directory is locked for this process (:class:`febm_ref._io.OutputLock`:
    a second process is refused, naming the first; a lock left by a dead process is taken over);
    a failed write (e.g. a full disk) is a one-line error, the previous checkpoint kept intact."""
    return run_locked(args, "fit1d", _run)


def run_locked(args, command: str, body) -> int:
    """``body(args)`` holding the lock of ``args.out`` (when given); a refused lock (exit 2) or a
    failed write (exit 1) is one line on stderr, not a traceback. Shared by ``fit1d`` and ``fit2d``."""
    from febm_ref._io import OutputLock, OutputLockedError

    try:
        if args.out is None:
            return body(args)
        cmdline = " ".join(sys.argv[1:]) if sys.argv[1:2] == [command] else command
        with OutputLock(args.out, f"febm-ref {cmdline}"):
            return body(args)
    except OutputLockedError as exc:
        print(f"febm-ref {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"febm-ref {command}: error: {exc}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.iters is not None and args.iters < 1:
        raise ValueError(f"--iters must be a positive integer, got {args.iters}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR (the checkpoint lives there)")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    common = dict(method=args.method, protocol=args.protocol, iterations=args.iters, optimizer=args.optimizer,
                  lr=args.lr, seed=args.seed, out=args.out, resume=args.resume,
                  checkpoint_every=args.checkpoint_every)
    if args.published:
        common["published"] = True
    if args.all:
        if args.divergence is not None or args.alpha is not None:
            raise ValueError("--all runs the whole table; do not combine it with --divergence/--alpha")
        table = run_table(jobs=args.jobs, **common)
        rows, wall = table["rows"], table["wall_seconds"]
        if args.json:
            print(to_json({"rows": rows, "wall_seconds": wall}))
        else:
            print(f"fit1d --all, method {args.method}, protocol {args.protocol}"
                  f"{' (published mode)' if args.published else ''}")
            print(format_table(rows))
            print(f"wall time {wall:.1f} s ({args.jobs} process(es))")
        return 0 if all("error" not in r for r in rows) else 1
    if args.divergence is None:
        raise ValueError("give --divergence NAME (and --alpha A for the alpha family) or --all")
    from febm_ref.training import TrainingDivergedError

    try:
        row = run_fit(args.divergence, args.alpha, **common)
    except TrainingDivergedError as exc:
        print(f"febm-ref fit1d: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(to_json(row))
    else:
        print(format_table([row]))
        print(f"reported: {row['reported']}; exact optimum by quadrature (febm_ref.reference_optima)")
    return 0
