"""``febm-ref``: the command-line entry point (the composition root of the package).

Each sub-command lives in :mod:`febm_ref.commands` as a module with
``add_parser(subparsers)``; the parser it adds sets ``func(args) -> int`` (the exit
status). Add a command by adding its module to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from febm_ref import __version__

COMMAND_MODULES = (
    "febm_ref.commands.divergences",
    "febm_ref.commands.verify",
    "febm_ref.commands.fit1d",
    "febm_ref.commands.golden",
    "febm_ref.commands.check",
    "febm_ref.commands.fit2d",
    "febm_ref.commands.sweep2d",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="febm-ref",
        description=(
            "Reference implementation of f-EBM (Yu, Song, Song & Ermon, ICML 2020): energy-based "
            "models trained by minimising an f-divergence. Exact float64 NumPy/Numba code that "
            "serves as a correctness oracle, with numerical checks of the paper's theory."),
        epilog="Run 'febm-ref COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"febm-ref {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from febm_ref._numba.jit import discard_stale_package_caches

    discard_stale_package_caches()  # explicit, not at import (see febm_ref._numba.jit)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError) as exc:
        # Bad input: a one-line message that says what to do, not a traceback.
        print(f"febm-ref {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"febm-ref {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
