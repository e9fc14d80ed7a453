"""Figure: local convergence of f-EBM (docs/theory.md section 5, D17).

Four panels: (a) eigenvalues of J (D17) in the complex plane per divergence, 1-D Gaussian
family; (b) distance to the equilibrium versus iteration for the exact-field dynamics
against the predicted rate rho(I + eta J)^k, (b) Gaussian 1-D, (c) MLP 1-D; (d) the step-size boundary: spectral radius
of I + eta J and of the alternating map versus eta / eta*, with observed rates.

Usage: ``python figures/fig_convergence.py --out DIR [--tiny]`` (computes, saves .npz/.json, plots
PNG). ``--tiny`` (20-30 iterations per run, 16 step sizes) is the smoke test's size
(tests/test_figures.py): the same pipeline, not a figure to read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_save_npz, atomic_write_json  # noqa: E402
from febm_ref.divergences import get_divergence  # noqa: E402
from febm_ref.verification import convergence as C  # noqa: E402


def compute(out: Path, tiny: bool = False) -> dict:
    rep = C.jacobian_report("gaussian_1d")
    eig = {k: v["eigenvalues"] for k, v in rep["per_divergence"].items()}
    runs = {}
    for name in ("gaussian_1d", "mlp_1d"):
        for scheme in ("simultaneous", "alternating"):
            r = C.rate_experiment(name, get_divergence("kl"), scheme=scheme, eta_fraction=0.7,
                                  n_steps=30 if tiny else 400)
            runs[f"{name}/{scheme}"] = r
    prob = C.problem("gaussian_1d")
    mom = C.equilibrium_moments(prob)
    J = C.d17_jacobian(1.0, mom["A"], mom["G"], mom["m"], mom["h"])
    eta_star = C.step_size_bound(np.linalg.eigvals(J))
    fracs = np.linspace(0.05, 1.6, 16 if tiny else 120)
    rho_sim = np.array([C.spectral_radius(C.simultaneous_map(J, f * eta_star)) for f in fracs])
    rho_alt = np.array([C.spectral_radius(C.alternating_map(J, prob.n_theta, f * eta_star)) for f in fracs])
    obs = []
    for f in (0.3, 0.6, 0.9, 0.95, 1.05, 1.2):
        r = C.rate_experiment("gaussian_1d", get_divergence("kl"), scheme="simultaneous",
                              eta_fraction=f, n_steps=20 if tiny else 150)
        obs.append((f, r["observed_rate"]))
    arrays = {f"eig_{k}": v for k, v in eig.items()}
    arrays.update({f"dist_{k.replace('/', '_')}": r["distance"] for k, r in runs.items()})
    arrays.update({f"lin_{k.replace('/', '_')}": r["linear_distance"] for k, r in runs.items()})
    arrays.update(fracs=fracs, rho_sim=rho_sim, rho_alt=rho_alt, observed=np.array(obs))
    atomic_save_npz(out / "fig_convergence.npz", **arrays)
    summary = {"eta_star_kl": eta_star,
               "runs": {k: {kk: r[kk] for kk in ("eta", "predicted_rate", "observed_rate", "rate_relative_error")}
                        for k, r in runs.items()},
               "max_real_eig": {k: v["max_real_eig"] for k, v in rep["per_divergence"].items()}}
    atomic_write_json(out / "fig_convergence.json", summary)
    return {"eig": eig, "runs": runs, "fracs": fracs, "rho_sim": rho_sim, "rho_alt": rho_alt, "obs": np.array(obs)}


def plot(data: dict, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(20, 4.8))
    markers = "osD^v<>ph"
    for i, ((label, ev), mk) in enumerate(zip(data["eig"].items(), markers)):
        ax[0].scatter(ev.real, ev.imag + 0.04 * (i - 4), marker=mk, s=45, facecolors="none",
                      edgecolors=f"C{i}", label=label)
    ax[0].axvline(0, color="k", lw=0.8)
    ax[0].set_xlabel("Re λ"), ax[0].set_ylabel("Im λ (offset per divergence for legibility)")
    ax[0].set_title("(a) spectrum of J (D17), Gaussian 1-D")
    ax[0].legend(fontsize=7, ncol=2)
    for key, r in data["runs"].items():
        k = np.arange(r["distance"].shape[0])
        a = ax[1] if key.startswith("gaussian") else ax[2]
        y = r["distance"] / r["distance"][0]
        line, = a.plot(k, y, lw=3, alpha=0.5, label=f"{key} observed")
        a.plot(k, r["predicted_rate"] ** k, "--", color=line.get_color(), lw=1.2,
               label=f"ρ^k, ρ = {r['predicted_rate']:.7f}")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("iteration"), ax[1].set_ylabel("|z - z*| / |z0 - z*|")
    ax[1].set_title("(b) Gaussian 1-D: exact dynamics vs ρ^k (KL, η = 0.7 bound)")
    ax[1].legend(fontsize=7)
    ax[2].set_xlabel("iteration"), ax[2].set_ylabel("|z - z*| / |z0 - z*|")
    ax[2].set_title("(c) MLP 1-D (slowest mode, Re λ ~ -1.6e-5)")
    ax[2].legend(fontsize=7)
    ax = list(ax)
    ax[2] = ax[3]
    ax[2].plot(data["fracs"], data["rho_sim"], label="ρ(I + ηJ) simultaneous")
    ax[2].plot(data["fracs"], data["rho_alt"], label="ρ(M_alt) alternating")
    ax[2].plot(data["obs"][:, 0], data["obs"][:, 1], "ko", label="observed (simultaneous)")
    ax[2].axhline(1, color="k", lw=0.8), ax[2].axvline(1, color="r", lw=0.8, ls=":", label="η* = min 2|Re λ|/|λ|²")
    ax[2].set_xlabel("η / η*"), ax[2].set_ylabel("spectral radius")
    ax[2].set_title("(d) step-size boundary (Gaussian 1-D, KL)")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    path = out / "fig_convergence.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--tiny", action="store_true", help="20-30 iterations per run, 16 step sizes (smoke test)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(plot(compute(args.out, args.tiny), args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
