"""``febm-ref check``: run a foreign implementation's adapter against the golden set."""

from __future__ import annotations

import sys
import tempfile
import time

from febm_ref._io import to_json

DEFAULT_TIMEOUT = 60.0  # = febm_ref.conformance.checker.DEFAULT_TIMEOUT (not imported: fast --help)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check another f-EBM implementation (an adapter module) against the golden set",
        description=("Load ADAPTER (a module name or a .py file, optionally MODULE:OBJECT), call "
                     "the protocol functions it provides on the golden inputs and print one row "
                     "per quantity: pass/FAIL/ERROR/skipped and the worst error against the "
                     "tolerance stated in the golden file. Missing functions are skipped. The "
                     "adapter runs in a separate worker process (its fd 1/2 output is captured, "
                     "each case has a --timeout, a crash or a hang is an ERROR row and the rest "
                     "continue in a fresh worker). Exit status 0 only if no row is FAIL or ERROR "
                     "and at least one row passed (all rows skipped: NOTHING CHECKED, exit 1); "
                     "2 for a bad golden directory. The protocol: --list-protocol and "
                     "docs/conformance.md."),
    )
    parser.add_argument("--adapter", metavar="MODULE[:OBJECT]",
                        help="adapter module (dotted name or path to a .py file); required unless "
                             "--list-protocol")
    parser.add_argument("--list-protocol", action="store_true",
                        help="print every adapter function (signature, input and output shapes, "
                             "meaning) and exit; with --json as JSON")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="seconds each golden case may take in the adapter's worker process "
                             f"before it is killed and the case is ERROR (default {DEFAULT_TIMEOUT:g}; "
                             "importing the adapter may take max(SECONDS, 120))")
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
                        help="also fail (exit 1, verdict FAILED) when a quantity is skipped")
    parser.set_defaults(func=run)


def _default_golden(seed: int, scratch: str) -> str:
    """The cached golden set of this version (:mod:`febm_ref.conformance.cache`); a temporary
    one if the cache directory is not writable."""
    from febm_ref.conformance.cache import cached_golden_dir

    try:
        return str(cached_golden_dir(seed))
    except OSError as exc:
        from febm_ref.conformance.golden import write_golden

        print(f"febm-ref check: cannot use the golden cache ({exc}); generating a temporary set",
              file=sys.stderr)
        started = time.perf_counter()
        write_golden(scratch, seed)
        print(f"generated the golden set (seed {seed}) in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        return scratch


def protocol_listing(as_json: bool = False) -> str:
    """Every protocol function of :data:`febm_ref.conformance.adapter.PROTOCOL` (the single
    source of the argument order of the golden files) as text or JSON."""
    import textwrap

    from febm_ref.conformance.adapter import PROTOCOL

    if as_json:
        return to_json({"protocol": [spec.as_json() for spec in PROTOCOL.values()]})
    lines = [f"febm-ref adapter protocol: {len(PROTOCOL)} functions (febm_ref/conformance/adapter.py, "
             "docs/conformance.md). An adapter provides any subset; arguments are positional, "
             "arrays arrive as float64 NumPy arrays.", ""]
    for spec in PROTOCOL.values():
        lines.append(f"{spec.signature()}    [section {spec.section}]")
        lines.append(f"    {spec.summary}")
        for name, shape in zip(spec.args, spec.inputs):
            lines.append(f"      {name:<12} {shape}")
        lines.append(f"      {'-> returns':<12} {spec.returns}")
        lines.extend(textwrap.wrap(spec.doc, width=96, initial_indent="    ", subsequent_indent="    "))
        lines.append("")
    return "\n".join(lines)


def run(args) -> int:
    if args.list_protocol:
        print(protocol_listing(args.json))
        return 0
    if not args.adapter:
        print("febm-ref check: error: --adapter MODULE[:OBJECT] is required (or --list-protocol)",
              file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print(f"febm-ref check: error: --timeout must be a positive number of seconds, got {args.timeout:g}",
              file=sys.stderr)
        return 2
    from febm_ref.conformance.checker import GoldenError, format_table, run_check

    with tempfile.TemporaryDirectory(prefix="febm-ref-golden-") as scratch:
        golden = args.golden
        if golden is None:
            golden = _default_golden(args.seed, scratch)
        try:
            report = run_check(args.adapter, golden, precision=args.precision, timeout=args.timeout)
        except GoldenError as exc:
            print(f"febm-ref check: error: {exc}", file=sys.stderr)
            return 2
    report.strict = args.strict
    if report.adapter_output:  # the adapter's own fd 1/2 output: never mixed into the report
        print(f"--- adapter output (fd 1 and 2 of the worker; {args.adapter}) ---", file=sys.stderr)
        print(report.adapter_output.rstrip("\n"), file=sys.stderr)
        print("--- end of adapter output ---", file=sys.stderr)
    if args.json:
        print(to_json(report.as_json()))
    else:
        print(format_table(report))
    if not report.rows:  # no report is a failure, never a pass
        return 1
    return 0 if report.passed else 1
