"""Figure and table: the published 1-D code reproduced (issue 16, docs/theory.md section 6.1).

Outputs in ``--out DIR``:
(a) ``fig_published_optima.png`` -- per divergence, three optima side by side: the exact
    ``argmin D_f`` (quadrature, :mod:`febm_ref.reference_optima`), the exact fixed point of the
    published clipped algorithm (:mod:`febm_ref.clipped_optima`) and the published-mode SGD run
    (``febm-ref fit1d --protocol paper --published``), plus the numbers the published script prints
    (its trailing comment; float32, one run, 9 of the 11 divergences);
(b) ``fig_published_curves.png`` -- learning curves ``mu(t)``, ``sigma(t)`` of the published mode
    against the default paper protocol (where a default run is present; a default run that
    diverged ends where the guard stopped it);
(c) ``published_table.md`` -- the three-way table (markdown), and ``fig_published.json`` (the numbers).

Usage::

    febm-ref fit1d --all --protocol paper --published --out RUNS [--jobs 2]
    febm-ref fit1d --all --protocol paper --out DEFAULT       # optional: default curves
    python3 figures/fig_published.py --runs RUNS [--default-runs DEFAULT] --out DIR [--only kl,alpha(0.5)]

Nothing is trained here; missing runs are left out (and listed in the table). ``--only`` keeps
some divergences (labels or names; the smoke test draws one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_write_json  # noqa: E402
from febm_ref.clipped_optima import clipped_fixed_point  # noqa: E402
from febm_ref.divergences import resolve_divergence  # noqa: E402
from febm_ref.reference_optima import PAPER_TABLE, reference_optimum  # noqa: E402
from febm_ref.targets import paper_mixture_1d  # noqa: E402

SCRIPT_PRINTED = {
    "kl": (1.0153669118881226, 1.8302433490753174), "reverse_kl": (1.5852361917495728, 1.6345337629318237),
    "jensen_shannon": (1.3166966438293457, 1.7604091167449951),
    "squared_hellinger": (1.3227406740188599, 1.7471095323562622),
    "alpha(-0.5)": (1.7433207035064697, 1.5520931482315063), "alpha(-1)": (1.819793939590454, 1.5251394510269165),
    "alpha(0.9)": (1.0723780393600464, 1.8185255527496338), "neyman_chi2": (1.8267630338668823, 1.515981674194336),
    "pearson_chi2": (0.5656395554542542, 1.9346171617507935),
}
"""The f-EBM results printed in the published script's trailing comment (float32, one run each)."""


def collect(runs: Path, default_runs: Optional[Path] = None, only=()) -> list:
    target = paper_mixture_1d()
    table = runs / "table_febm_paper_published.json"
    errors = {}
    if table.exists():
        errors = {r["divergence"]: r["error"] for r in json.loads(table.read_text())["rows"] if "error" in r}
    rows = []
    for name, alpha in PAPER_TABLE:
        div = resolve_divergence(name, alpha=alpha)
        if only and div.label not in only and name not in only:
            continue
        ref, cl = reference_optimum(div, target), clipped_fixed_point(div, target)
        row = {"divergence": div.label, "exact": [ref.mu, ref.sigma], "clipped": [cl.mu, cl.sigma],
               "clipped_max_log_ratio": cl.max_log_ratio, "clipped_bound": cl.bound,
               "script_printed": SCRIPT_PRINTED.get(div.label), "error": errors.get(div.label)}
        for kind, stem in (("published", f"{div.label}_febm_paper_published"), ("default", f"{div.label}_febm_paper")):
            base = runs if kind == "published" or default_runs is None else default_runs
            path = base / f"{stem}.json"
            if path.exists():
                run = json.loads(path.read_text())
                row[kind] = [run["fit_mu"], run["fit_sigma"]]
                row[f"{kind}_seconds"] = run.get("seconds_train")
            hist = base / f"{stem}.history.npz"
            ckpt = base / f"{stem}.ckpt.npz"
            if kind == "default" and not hist.exists() and ckpt.exists():
                # a diverged default run leaves only its last good checkpoint (with the history so far)
                meta = json.loads(str(np.load(ckpt)["meta_json"]))
                theta = np.load(ckpt)["hist_theta"][:int(meta["iteration"])]
                row["default_history_theta"] = theta.tolist()
                row["default_stopped_at"] = int(meta["iteration"])
            if hist.exists():
                row[f"{kind}_history"] = str(hist)
                h = np.load(hist)
                if "clip_fraction_neg" in h.files:  # share of the last 1000 batches beyond the bounds
                    row["clip_fraction_pos_last1000"] = float(np.mean(h["clip_fraction_pos"][-1000:]))
                    row["clip_fraction_neg_last1000"] = float(np.mean(h["clip_fraction_neg"][-1000:]))
        rows.append(row)
    return rows


def markdown(rows) -> str:
    def pair(v):
        return "-" if v is None else f"({v[0]:.4f}, {v[1]:.4f})"

    head = ("| divergence | exact argmin D_f | exact clipped fixed point | published-mode SGD | SGD - clipped "
            "(mu, sigma) | within 0.02 | script printed |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        sgd = r.get("published")
        if sgd is None:
            gap, ok = "-", ("diverged: " + r["error"].split(" is not finite")[0] if r.get("error") else "not run")
        else:
            d = (sgd[0] - r["clipped"][0], sgd[1] - r["clipped"][1])
            gap, ok = f"({d[0]:+.4f}, {d[1]:+.4f})", ("yes" if max(map(abs, d)) <= 0.02 else "no")
        lines.append(f"| {r['divergence']} | {pair(r['exact'])} | {pair(r['clipped'])} | {pair(sgd)} | {gap} | "
                     f"{ok} | {pair(r['script_printed'])} |")
    return "\n".join(lines)


def plot(rows, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["divergence"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    styles = (("exact", "o", "exact argmin D_f", -0.24), ("clipped", "x", "exact clipped fixed point", -0.08),
              ("published", "^", "published-mode SGD (30k, seed 0)", 0.08),
              ("script_printed", "s", "published script's printout (float32)", 0.24))
    for k, ax in enumerate(axes):
        for key, marker, label, dx in styles:
            idx = [i for i, r in enumerate(rows) if r.get(key) is not None]
            ax.plot(x[idx] + dx, [rows[i][key][k] for i in idx], marker, label=label, ms=7, mfc="none")
        ax.set_ylabel(("mu", "sigma")[k])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    axes[1].set_xticks(x, labels, rotation=30, ha="right")
    fig.suptitle("1-D experiment: exact optimum, exact clipped fixed point, published-mode SGD")
    fig.tight_layout()
    fig.savefig(out / "fig_published_optima.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 1.6 * len(rows)), sharex=True, squeeze=False)
    for i, r in enumerate(rows):
        for kind, color in (("published", "C0"), ("default", "C3")):
            if f"{kind}_history" in r:
                theta = np.load(r[f"{kind}_history"])["theta"]
            elif f"{kind}_history_theta" in r:
                theta = np.asarray(r[f"{kind}_history_theta"])
            else:
                continue
            for k in range(2):
                axes[i, k].plot(theta[:, k], color=color, lw=0.8,
                                label=kind + (f" (diverged after {len(theta)})" if kind == "default"
                                              and "default_stopped_at" in r else ""))
        for k in range(2):
            axes[i, k].axhline(r["exact"][k], color="k", lw=0.6, ls="--")
            axes[i, k].set_ylabel(f"{r['divergence']}\n{('mu', 'sigma')[k]}", fontsize=7)
    for ax in axes[:, 0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    axes[-1, 0].set_xlabel("iteration")
    axes[-1, 1].set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(out / "fig_published_curves.png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", required=True, help="directory written by febm-ref fit1d --all ... --out")
    parser.add_argument("--default-runs", default=None,
                        help="directory of default paper-protocol runs (default: --runs)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-plot", action="store_true", help="only the table and the JSON")
    parser.add_argument("--only", default="", help="comma-separated divergence labels or names (default: all)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = [s for s in args.only.split(",") if s]
    rows = collect(Path(args.runs), None if args.default_runs is None else Path(args.default_runs), only)
    atomic_write_json(out / "fig_published.json", {"rows": rows})
    table = markdown(rows)
    (out / "published_table.md").write_text(table + "\n")
    print(table)
    if not args.no_plot:
        plot(rows, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
