"""``febm-ref divergences``: the catalogue with formulas, domains and f''(1)."""

from __future__ import annotations

from febm_ref._io import to_json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "divergences",
        help="list the f-divergence catalogue (formulas, conjugate domains, f''(1))",
        description=("Print every divergence of the catalogue: the generator f(u), its Fenchel "
                     "conjugate f*(t) and domain, the divergence it induces, f''(1) (which sets the "
                     "speed of the local training dynamics, docs/theory.md D17) and precision notes. The "
                     "alpha family is shown at a few alpha values; any real alpha is accepted by "
                     "febm_ref.get_divergence('alpha', alpha=A)."),
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--alpha", type=float, nargs="*", default=[-1.0, 0.0, 0.5, 1.0, 2.0],
                        help="alpha values at which to show the alpha family (default: -1 0 0.5 1 2)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from febm_ref.divergences import all_divergences

    rows = [d.describe() for d in all_divergences(alphas=tuple(args.alpha))]
    if args.json:
        print(to_json(rows))
        return 0
    for row in rows:
        print(f"{row['label']}  (f''(1) = {row['f_double_prime_at_one']:g})")
        print(f"    f(u)      = {row['f']}")
        print(f"    f*(t)     = {row['conjugate']},  domain: {row['conjugate_domain']}")
        print(f"    induces     {row['induced']}")
        print(f"    precision:  {row['precision']}")
    return 0
