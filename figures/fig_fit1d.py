"""Figure: the paper's 1-D experiment against exact optima (issue 5, docs/theory.md section 6).

Three PNGs:
(a) ``fig_fit1d_fits.png`` -- per divergence, the target density, the f-EBM fit
    ``N(mu, sigma^2)`` and the exact optimum ``argmin D_f`` (quadrature);
(b) ``fig_fit1d_log_ratio.png`` -- the learned log ratio ``r = H + E`` against the exact
    ``log(p/q_theta)`` at the final theta (``r`` models ``log p + log Z + E``), with ``q``'s
    bulk shaded (where the negatives are);
(c) ``fig_fit1d_curves.png`` -- training curves of ``(mu, sigma)`` with the exact optimum.

Usage: ``python figures/fig_fit1d.py --out DIR [--protocol converged|paper] [--runs RUNDIR]
[--only kl,pearson_chi2]``. The fits are read from ``RUNDIR`` (written by
``febm-ref fit1d --all --out RUNDIR``); missing ones are computed (``run_fit``). The numbers
are saved as ``fig_fit1d.npz``/``.json`` (febm_ref._io) before plotting (Agg backend).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_save_npz, atomic_write_json  # noqa: E402
from febm_ref.divergences import get_divergence  # noqa: E402
from febm_ref.experiments.fit1d import make_critic, run_fit  # noqa: E402
from febm_ref.models.energies import GaussianEnergy1D  # noqa: E402
from febm_ref.reference_optima import PAPER_TABLE  # noqa: E402
from febm_ref.targets import paper_mixture_1d  # noqa: E402
from febm_ref.training import load_checkpoint  # noqa: E402


def _label(name, alpha):
    return get_divergence(name, **({} if alpha is None else {"alpha": alpha})).label


def compute(out: Path, runs: Path, protocol: str, only) -> dict:
    target = paper_mixture_1d()
    x = np.linspace(-4.0, 8.0, 601)
    arrays = {"x": x, "p": np.exp(target.log_density(x))}
    summary = {"protocol": protocol, "rows": []}
    for name, alpha in PAPER_TABLE:
        label = _label(name, alpha)
        if only and label not in only and name not in only:
            continue
        stem = runs / f"{label}_febm_{protocol}"
        if not Path(f"{stem}.json").exists():
            run_fit(name, alpha, protocol=protocol, out=str(runs), show_progress=True)
        row = json.loads(Path(f"{stem}.json").read_text())
        hist = np.load(f"{stem}.history.npz")
        ck = load_checkpoint(f"{stem}.ckpt.npz")
        theta = ck["theta"]
        critic = make_critic(protocol, int(row["seed"])).with_params(ck["omega"])
        energy = GaussianEnergy1D(float(theta[0]), float(theta[1]))
        log_q = -energy.energy(x) - energy.log_normalizer()
        arrays[f"fit_{label}"] = np.array([row["fit_mu"], row["fit_sigma"]])
        arrays[f"exact_{label}"] = np.array([row["exact_mu"], row["exact_sigma"]])
        arrays[f"r_learned_{label}"] = critic.energy(x) + energy.energy(x)
        arrays[f"r_exact_{label}"] = target.log_density(x) - log_q
        arrays[f"theta_hist_{label}"] = hist["theta"][:: max(1, hist["theta"].shape[0] // 1000)]
        arrays[f"q_final_{label}"] = np.exp(log_q)
        summary["rows"].append(row)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(out / "fig_fit1d.npz", **arrays)
    atomic_write_json(out / "fig_fit1d.json", summary)
    return arrays


def _normal(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def plot(out: Path, arrays: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [k[4:] for k in arrays if k.startswith("fit_")]
    x = arrays["x"]
    n = len(labels)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    # (a) fits
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows), squeeze=False)
    for ax, label in zip(axes.ravel(), labels):
        fm, fs = arrays[f"fit_{label}"]
        em, es = arrays[f"exact_{label}"]
        ax.fill_between(x, arrays["p"], color="0.85", label="target p")
        ax.plot(x, _normal(x, em, es), "k--", lw=1.5, label="exact argmin D_f")
        ax.plot(x, _normal(x, fm, fs), "C3", lw=1.2, label="f-EBM fit")
        ax.set_title(f"{label}: gap ({fm - em:+.3f}, {fs - es:+.3f})", fontsize=9)
        ax.set_xlim(x[0], x[-1])
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig_fit1d_fits.png", dpi=110)
    plt.close(fig)
    # (b) learned log ratio vs exact
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows), squeeze=False)
    for ax, label in zip(axes.ravel(), labels):
        q = arrays[f"q_final_{label}"]
        bulk = q > 1e-3 * q.max()
        ax.axvspan(x[bulk][0], x[bulk][-1], color="C0", alpha=0.08)
        ax.plot(x, arrays[f"r_exact_{label}"], "k--", lw=1.5, label="exact log(p/q)")
        ax.plot(x, arrays[f"r_learned_{label}"], "C3", lw=1.2, label="learned H + E")
        lo = np.min(arrays[f"r_exact_{label}"][bulk]) - 1
        hi = np.max(arrays[f"r_exact_{label}"][bulk]) + 1
        ax.set_ylim(lo, hi)
        ax.set_title(label, fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig_fit1d_log_ratio.png", dpi=110)
    plt.close(fig)
    # (c) training curves
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(labels), 2)))
    for k, label in enumerate(labels):
        th = arrays[f"theta_hist_{label}"]
        it = np.linspace(0, 1, th.shape[0])
        em, es = arrays[f"exact_{label}"]
        axes[0].plot(it, th[:, 0] - em, color=colours[k], lw=1, label=label)
        axes[1].plot(it, th[:, 1] - es, color=colours[k], lw=1)
    for ax, name in zip(axes, ("mu - mu*", "sigma - sigma*")):
        ax.axhline(0, color="k", lw=0.8)
        ax.axhspan(-0.02, 0.02, color="0.9")
        ax.set_xlabel("fraction of training")
        ax.set_ylabel(name)
        ax.set_yscale("symlog", linthresh=0.02)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "fig_fit1d_curves.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/output", type=Path)
    parser.add_argument("--runs", default=None, type=Path, help="fit1d --out directory (default: OUT/runs)")
    parser.add_argument("--protocol", default="converged", choices=("converged", "paper"))
    parser.add_argument("--only", default="", help="comma-separated divergence labels")
    args = parser.parse_args(argv)
    runs = args.runs or args.out / "runs"
    only = [s for s in args.only.split(",") if s]
    arrays = compute(args.out, runs, args.protocol, only)
    plot(args.out, arrays)
    print(f"wrote {args.out}/fig_fit1d_*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
