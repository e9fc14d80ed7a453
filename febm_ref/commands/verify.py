"""``febm-ref verify``: run the registered numerical checks of the theory."""

from __future__ import annotations

import argparse
import sys
import time

from febm_ref._io import atomic_write_json, to_json
from febm_ref._progress import progress


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="run every numerical check of the theory and print a pass/fail table",
        description=(
            "Run the checks registered in the 'febm_ref.verification' package: catalogue identities, "
            "closed-form Gaussian f-divergences against quadrature, and every check later "
            "modules add. Prints one row per check (measured error, tolerance, pass/fail, "
            "seconds) and exits with status 1 if any check fails."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="smaller sample sizes / grids so the whole report takes seconds")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only checks whose name contains NAME or whose group is NAME")
    parser.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                        help="run the checks in N processes (default: the number of usable cores); "
                             "the report is the same, in the same order, for every N")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the results as JSON to PATH ('-' for standard output)")
    parser.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs takes a positive integer (a number of processes), got {text!r}")
    return value


def _format_number(value: float) -> str:
    return f"{value:.2e}" if value == value else "nan"


def run(args) -> int:
    from febm_ref.verification.registry import default_jobs, run_checks, select_checks

    checks = select_checks(args.only)
    if args.list:
        for check in checks:
            print(f"{check.name:45s} [{check.group}] {check.description}")
        return 0
    started = time.perf_counter()
    to_stdout_json = args.json == "-"
    jobs = args.jobs if getattr(args, "jobs", None) is not None else default_jobs()
    with progress(total=len(checks), desc="verify") as bar:
        results = run_checks(checks, quick=args.quick, jobs=jobs, on_result=lambda r: bar.update(1))
    total = time.perf_counter() - started
    n_failed = sum(not r.passed for r in results)

    report = {"quick": bool(args.quick), "seconds": total, "jobs": jobs, "n_checks": len(results),
              "n_failed": n_failed, "results": [r.as_dict() for r in results]}
    if args.json and not to_stdout_json:
        atomic_write_json(args.json, report)
    if to_stdout_json:
        print(to_json(report))
        return 1 if n_failed else 0

    width = max([len(r.name) for r in results] + [5])
    header = f"{'check':{width}s}  {'error':>9s}  {'tolerance':>10s}  {'result':6s}  {'seconds':>7s}"
    print(header)
    print("-" * len(header))
    for r in results:
        status = "pass" if r.passed else "FAIL"
        tolerance = (">" if r.negative_control else "") + _format_number(r.tolerance)
        print(f"{r.name:{width}s}  {_format_number(r.error):>9s}  {tolerance:>10s}  "
              f"{status:6s}  {r.seconds:7.2f}")
        if r.exception:
            print(f"    exception: {r.exception}")
    print("-" * len(header))
    if any(r.negative_control for r in results):
        print("'>tol': a negative control (a deliberately wrong law or formula); it passes when its "
              "error exceeds the tolerance, i.e. when the check rejects it as it must.")
    print(f"{len(results) - n_failed} passed, {n_failed} failed in {total:.1f} s"
          f"{' (quick mode)' if args.quick else ''}, {jobs} process{'es' if jobs > 1 else ''}")
    if n_failed:
        print("failed: " + ", ".join(r.name for r in results if not r.passed), file=sys.stderr)
    return 1 if n_failed else 0
