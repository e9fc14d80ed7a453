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
                        help="golden directory from 'febm-ref golden' (default: generate one in a "
                             "temporary directory first)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the generated golden set when --golden is omitted (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="also fail (exit 1) when a quantity is skipped")
    parser.set_defaults(func=run)


def run(args) -> int:
    from febm_ref.conformance.checker import GoldenError, format_table, run_check

    with tempfile.TemporaryDirectory(prefix="febm-ref-golden-") as scratch:
        golden = args.golden
        if golden is None:
            from febm_ref.commands.golden import section_builders
            from febm_ref.conformance.golden import write_golden

            started = time.perf_counter()
            write_golden(scratch, args.seed, builders=section_builders())
            golden = scratch
            print(f"generated the golden set (seed {args.seed}) in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
        try:
            report = run_check(args.adapter, golden)
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
