"""``febm-ref check``: run a foreign implementation's adapter against the golden set."""

from __future__ import annotations

import sys
import tempfile
import time

from febm_ref._io import to_json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check another f-EBM implementation (an adapter module) against the golden set",
        description=("Load ADAPTER (a module name or a .py file, optionally MODULE:OBJECT), call "
                     "the protocol functions it provides on the golden inputs and print one row "
                     "per quantity: pass/FAIL/ERROR/skipped and the worst error against the "
                     "tolerance stated in the golden file. Missing functions are skipped. Exit "
                     "status 1 iff some row is FAIL or ERROR (2 for a bad golden directory). "
                     "The protocol is documented in docs/conformance.md."),
    )
    parser.add_argument("--adapter", required=True, metavar="MODULE[:OBJECT]",
                        help="adapter module (dotted name or path to a .py file)")
    parser.add_argument("--golden", metavar="DIR",
                        help="golden directory from 'febm-ref golden' (default: the golden set of "
                             "this febm-ref version, built once into a per-version cache, "
                             "$FEBM_REF_GOLDEN_CACHE or ~/.cache/febm-ref/golden)")
    parser.add_argument("--precision", choices=("float64", "float32", "bfloat16", "auto"),
                        default="float64",
                        help="precision of the implementation: tolerances are C u S with u its "
                             "unit roundoff and S the rounding-error scale of each golden value "
                             "(docs/conformance.md); auto: from the dtype each function returns "
                             "(default float64)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated golden set when --golden is omitted (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="also fail (exit 1) when a quantity is skipped")
    parser.set_defaults(func=run)


def _default_golden(seed: int, scratch: str) -> str:
    """The cached golden set of this version (:mod:`febm_ref.conformance.cache`); a temporary
    one if the cache directory is not writable."""
    from febm_ref.conformance.cache import cached_golden_dir

    try:
        return str(cached_golden_dir(seed))
    except OSError as exc:
        from febm_ref.commands.golden import section_builders
        from febm_ref.conformance.golden import write_golden

        print(f"febm-ref check: cannot use the golden cache ({exc}); generating a temporary set",
              file=sys.stderr)
        started = time.perf_counter()
        write_golden(scratch, seed, builders=section_builders())
        print(f"generated the golden set (seed {seed}) in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        return scratch


def run(args) -> int:
    from febm_ref.conformance.checker import GoldenError, format_table, run_check

    with tempfile.TemporaryDirectory(prefix="febm-ref-golden-") as scratch:
        golden = args.golden
        if golden is None:
            golden = _default_golden(args.seed, scratch)
        try:
            report = run_check(args.adapter, golden, precision=args.precision)
        except GoldenError as exc:
            print(f"febm-ref check: error: {exc}", file=sys.stderr)
            return 2
    failed = not report.passed or (args.strict and report.counts["skipped"] > 0)
    if args.json:
        out = report.as_json()
        out["passed"] = not failed
        print(to_json(out))
    else:
        print(format_table(report))
    return 1 if failed else 0
