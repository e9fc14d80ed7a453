"""Figure: the 2-D experiments of issue 8 (``febm-ref fit2d --all``).

Per target, one PNG ``fig_fit2d_<target>.png``: top row the exact target density and the learned
(grid-normalised) density of each method (seed 0), bottom row exact target draws and the Langevin
negatives of each method at the end of training (drawn as in training: replay buffer + K steps).
One PNG ``fig_fit2d_curves.png``: the exact KL(p||q) over training, mean over seeds (lines) and each
seed (thin), per target and method.

Usage: ``python figures/fig_fit2d.py --runs out/results2d --out DIR [--targets T ...] [--grid N]``
(reads the run JSON/npz written by ``febm-ref fit2d --all --out out/results2d``; compute -> save
.npz -> plot PNG). ``--targets`` restricts the figure to some targets (the smoke test draws one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_save_npz  # noqa: E402
from febm_ref.experiments.fit2d import Grid2D, energy_from_result  # noqa: E402
from febm_ref.experiments.fit2d_table import TABLE_METHODS  # noqa: E402
from febm_ref.targets import TARGETS_2D, get_target  # noqa: E402

GRID = 160


def _load(runs: Path, target: str, label: str, seed: int):
    path = runs / "runs" / f"{target}__{label}__s{seed}.json"
    if not path.exists():
        return None, None
    result = json.loads(path.read_text())
    npz = path.with_suffix(".npz")
    arrays = dict(np.load(npz)) if npz.exists() else {}
    return result, arrays


def compute(runs: Path, out: Path, target: str, grid_size: int = GRID) -> dict:
    t = get_target(target)
    grid = Grid2D(t.box, grid_size)
    data = {"target_density": np.exp(t.log_density(grid.points)).reshape(grid_size, grid_size),
            "target_samples": t.sample(np.random.default_rng(0), 2000)}
    for label in TABLE_METHODS:
        result, arrays = _load(runs, target, label, 0)
        if result is None or result["status"] != "ok":
            continue
        result["theta"] = arrays["theta"]
        log_q, _ = grid.model_log_density(energy_from_result(result))
        data[f"{label}_density"] = np.exp(log_q).reshape(grid_size, grid_size)
        data[f"{label}_samples"] = arrays["langevin_samples"]
        data[f"{label}_kl"] = np.array(result["final"]["kl"])
    atomic_save_npz(out / f"fig_fit2d_{target}.npz", **data)
    return data


def plot_target(data: dict, target: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = get_target(target).box
    cols = ["target"] + [m for m in TABLE_METHODS if f"{m}_density" in data]
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 5.4), squeeze=False)
    vmax = data["target_density"].max()
    for j, c in enumerate(cols):
        dens = data["target_density"] if c == "target" else data[f"{c}_density"]
        samples = data["target_samples"] if c == "target" else data[f"{c}_samples"]
        axes[0, j].imshow(dens.T, origin="lower", extent=(lo, hi, lo, hi), cmap="viridis", vmin=0, vmax=vmax)
        title = "target p" if c == "target" else (("f-EBM " + c) if c != "cd" else "CD") + \
            f"\nKL(p||q)={float(data[f'{c}_kl']):.3f}"
        axes[0, j].set_title(title, fontsize=9)
        axes[1, j].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
        axes[1, j].set_xlim(lo, hi)
        axes[1, j].set_ylim(lo, hi)
        axes[1, j].set_aspect("equal")
        axes[1, j].set_title("exact draws" if c == "target" else "Langevin negatives", fontsize=9)
        for a in axes[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(f"{target}: density (top, grid-normalised on the box, seed 0) and samples (bottom)", fontsize=10)
    fig.tight_layout()
    path = out / f"fig_fit2d_{target}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_curves(runs: Path, out: Path, seeds: int, targets=TARGETS_2D) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    colors = dict(zip(TABLE_METHODS, ("C0", "C1", "C2", "C3", "k")))
    for ax, target in zip(axes[0], targets):
        for label in TABLE_METHODS:
            curves = []
            for seed in range(seeds):
                result, _ = _load(runs, target, label, seed)
                if result is None:
                    continue
                it, kl = np.array(result["curve"]["iteration"]), np.array(result["curve"]["kl"])
                ax.plot(it, kl, color=colors[label], lw=0.5, alpha=0.5)
                if result["status"] == "ok":
                    curves.append(kl)
            if curves and len({c.size for c in curves}) == 1:
                ax.plot(it, np.mean(curves, axis=0), color=colors[label], lw=1.8,
                        label=("f-EBM " + label) if label != "cd" else "CD")
        ax.set_yscale("log")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("exact KL(p||q) on the grid")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "fig_fit2d_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, type=Path, help="the --out directory of fit2d --all")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--targets", nargs="+", choices=TARGETS_2D, default=list(TARGETS_2D),
                        help="only these targets (default: all)")
    parser.add_argument("--grid", type=int, default=GRID, help=f"cells per axis of the density grid (default {GRID})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for target in args.targets:
        print(plot_target(compute(args.runs, args.out, target, args.grid), target, args.out))
    print(plot_curves(args.runs, args.out, args.seeds, args.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
