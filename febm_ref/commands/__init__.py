"""Sub-commands of ``febm-ref``; each module provides ``add_parser(subparsers)``."""
