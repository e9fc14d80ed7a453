"""Figure: the variational bound D5 against exact f-divergences (issue 6).

Three PNGs: (a) ``fig_bounds_perturbation.png`` -- the bound ``B(s* + eps h)`` versus the
critic perturbation ``eps`` (1-D Gaussian pair) with the exact divergence as a line and the
second-order prediction ``D - eps^2 G2 / 2``; (b) ``fig_bounds_training.png`` -- the exact
bound at a learned MLP critic (D10 + Adam) over training per divergence, as a relative gap
``(D - B)/D`` on a log axis (paper mixture against a Gaussian and the 1-D Gaussian pair);
(c) ``fig_bounds_critics.png`` -- the learned ``H`` (``r = H``, ``E = 0``) against the exact
log ratio ``log p/q`` for the mixture, with the two densities.

Usage: ``python figures/fig_bounds.py --out DIR [--quick | --tiny]`` (computes, saves .npz/.json via
febm_ref._io, plots PNG with matplotlib's Agg backend). ``--tiny`` (3 eps points, 20 training
steps of 3 critics) is the smoke test's size (tests/test_figures.py): the same pipeline, not a figure to read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_save_npz, atomic_write_json  # noqa: E402
from febm_ref.divergences import get_divergence  # noqa: E402
from febm_ref.verification import bounds as B  # noqa: E402

PERTURB_NAMES = ("kl", "reverse_kl", "squared_hellinger", "pearson_chi2", "neyman_chi2", "jensen_shannon")


def compute(out: Path, quick: bool, tiny: bool = False) -> dict:
    pair = B.standard_pairs()["1d"]
    mix = B.mixture_vs_gaussian_pair()
    h = B.bounded_perturbation(1)
    eps = np.linspace(-1.5, 1.5, 3 if tiny else 21 if quick else 61)
    arrays, summary = {"eps": eps}, {"perturbation": {}, "training": {}}
    for name in PERTURB_NAMES:
        div = get_divergence(name)
        exact = B.exact_divergence(div, pair)["value"]
        gaps = np.array([B.gap_quadrature(div, pair, lambda x, e=e: pair.optimal_log_ratio(x) + e * h(x))[0]
                         for e in eps])
        G2, G3 = B._expansion_integrals(div, pair, h)
        arrays[f"bound_{name}"] = exact - gaps
        summary["perturbation"][name] = {"exact": exact, "G2": G2, "G3": G3, "min_gap": float(gaps.min())}
    divs = B.all_bound_divergences(alphas=(-0.5, 0.5, 1.5))[:3 if tiny else None]
    steps = 20 if tiny else 600 if quick else 3000
    x = np.linspace(-4.0, 7.0, 400)[:, None]
    arrays["x"] = x[:, 0]
    arrays["log_ratio_mixture"] = mix.optimal_log_ratio(x)
    arrays["p_mixture"] = np.exp(mix.log_p(x))
    arrays["q_mixture"] = np.exp(mix.log_q(x))
    for p in (mix, pair):
        for k, div in enumerate(divs):
            run = B.train_critic(div, p, rng=np.random.default_rng([6, k]), steps=steps, eval_every=max(1, steps // 60))
            key = f"{p.name}/{div.label}"
            arrays[f"steps_{key}"] = run.steps
            arrays[f"bound_{key}"] = run.bound
            if p is mix:
                arrays[f"H_{div.label}"] = run.critic.energy(x)
            summary["training"][key] = {"exact": run.exact, "final_bound": float(run.bound[-1]),
                                        "final_gap": run.final_gap, "relative_gap": run.final_gap / run.exact,
                                        "max_bound_minus_exact": float(np.max(run.bound - run.exact))}
    atomic_save_npz(out / "fig_bounds.npz", **arrays)
    atomic_write_json(out / "fig_bounds.json", summary)
    return {"arrays": arrays, "summary": summary, "labels": [d.label for d in divs],
            "pairs": [mix.name, pair.name]}


def plot(data: dict, out: Path) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, s = data["arrays"], data["summary"]
    paths = []
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, name in zip(axes.flat, PERTURB_NAMES):
        info = s["perturbation"][name]
        ax.plot(a["eps"], a[f"bound_{name}"], "o-", ms=3, label="B(s* + eps h)")
        ax.axhline(info["exact"], color="k", lw=1, label="exact D_f")
        ax.plot(a["eps"], info["exact"] - 0.5 * a["eps"] ** 2 * info["G2"], "--", lw=1,
                label="D - eps^2 G2/2")
        ax.set_ylim(info["exact"] - 1.5 * (info["exact"] - np.min(a[f"bound_{name}"])) - 1e-3,
                    info["exact"] + 0.15 * (info["exact"] - np.min(a[f"bound_{name}"])) + 1e-3)
        ax.set_title(name)
        ax.set_xlabel("eps")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("D5: bound at perturbed critics (1-D Gaussians, h = tanh(0.9x - 0.4) + 0.3)")
    fig.tight_layout()
    paths.append(out / "fig_bounds_perturbation.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, pname in zip(axes, data["pairs"]):
        for label in data["labels"]:
            key = f"{pname}/{label}"
            gap = (s["training"][key]["exact"] - a[f"bound_{key}"]) / s["training"][key]["exact"]
            ax.semilogy(a[f"steps_{key}"], np.maximum(gap, 1e-6), label=label)
        ax.set_title(f"learned critic: exact relative gap (D - B)/D, {pname}")
        ax.set_xlabel("Adam step")
    axes[0].set_ylabel("(D - B)/D (B by quadrature)")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(out / "fig_bounds_training.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, (ax, axd) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(a["x"], a["log_ratio_mixture"], "k", lw=2.5, label="exact log p/q")
    for label in data["labels"]:
        ax.plot(a["x"], a[f"H_{label}"], lw=1, label=f"H ({label})")
    ax.set_ylim(np.min(a["log_ratio_mixture"]) - 1, np.max(a["log_ratio_mixture"]) + 1)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("learned critic H vs exact log ratio: paper mixture P vs Q = N(1, 1.5^2)")
    axd.fill_between(a["x"], a["p_mixture"], alpha=0.4, label="p")
    axd.fill_between(a["x"], a["q_mixture"], alpha=0.4, label="q")
    axd.legend(fontsize=7)
    axd.set_xlabel("x")
    fig.tight_layout()
    paths.append(out / "fig_bounds_critics.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer eps points and training steps")
    size.add_argument("--tiny", action="store_true", help="3 eps points, 20 training steps of 3 critics (smoke test)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = compute(args.out, args.quick, args.tiny)
    for p in plot(data, args.out):
        print(p)
    for key, row in data["summary"]["training"].items():
        print(f"{key:40s} D={row['exact']:.5f} gap={row['final_gap']:.2e} rel={row['relative_gap']:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
