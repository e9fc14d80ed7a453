"""``febm-ref golden``: write the golden reference set of the conformance kit."""

from __future__ import annotations

import sys
import time


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "golden",
        help="write golden reference files for checking other f-EBM implementations",
        description=("Write the versioned, self-describing golden set of the conformance kit "
                     "(docs/conformance.md): JSON for metadata, cases and scalars, NPZ for arrays, "
                     "every file carrying the febm-ref version, the schema version, the seed and "
                     "the tolerance of each quantity. The output is byte-for-byte reproducible "
                     "for a given version, seed and platform. Check an implementation against it "
                     "with 'febm-ref check --adapter MODULE --golden DIR'."),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random inputs (default 0)")
    parser.add_argument("--sections", nargs="+", metavar="NAME",
                        help="only these sections (default: all available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from febm_ref.conformance.golden import write_golden

    started = time.perf_counter()
    manifest = write_golden(args.out, args.seed, sections=args.sections,
                            progress=lambda name, seconds: print(f"  {name:<12} {seconds:6.2f} s",
                                                                 file=sys.stderr))
    total = sum(entry["bytes"] for entry in manifest["files"])
    print(f"wrote {len(manifest['files']) + 1} files ({total / 1024:.0f} KiB) to {args.out} "
          f"in {time.perf_counter() - started:.1f} s; sections: {', '.join(manifest['sections'])}")
    for name, reason in manifest["omitted"].items():
        print(f"  omitted section {name}: {reason}")
    return 0
