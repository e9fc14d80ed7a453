"""Figure: sampler bias against exact stationary laws (docs/theory.md section 4, D15).

(a) Stationary variance / s^2 of ULA on ``E = x^2/(2 s^2)`` versus ``eps / s^2``: the exact D15
curve ``1/(1 - eps/(4 s^2))`` with measured ULA points, and MALA / HMC (Metropolis-corrected)
points on the unbiased line 1, each with +-2 ESS-based standard errors.
(b) The paper's 1-D mixture: density against histograms of thinned MALA and HMC chains.

Usage: ``python figures/fig_samplers.py --out DIR [--quick | --tiny]`` (computes, saves .npz/.json,
plots PNG). ``--tiny`` (200 chains of 300 steps, mixture chains of 400 steps) is the smoke test's
size (tests/test_figures.py): the same pipeline, not a figure to read.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._io import atomic_save_npz, atomic_write_json  # noqa: E402
from febm_ref.samplers import diagnostics as D  # noqa: E402
from febm_ref.samplers import hmc, mala, ula  # noqa: E402
from febm_ref.verification import check_samplers as C  # noqa: E402


def compute(out: Path, quick: bool, tiny: bool = False) -> dict:
    s = 1.0
    energy = C.gaussian_energy_1d(s)
    rng = np.random.default_rng(0)
    n_chains, n_steps, burn = (200, 300, 50) if tiny else (1000, 2000, 200) if quick else (4000, 5000, 300)
    factors = np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.2])
    rows = {"ula": [], "mala": [], "hmc": []}
    for f in factors:
        eps = f * s * s
        x0 = s * rng.standard_normal((n_chains, 1))
        runs = {"ula": ula.run(rng, x0, energy, eps, burn + n_steps, keep_samples=True, thin=5),
                "mala": mala.run(rng, x0, energy, eps, burn + n_steps, keep_samples=True, thin=5),
                "hmc": hmc.run(rng, x0, energy, math.sqrt(eps), 3, burn + n_steps, keep_samples=True, thin=5)}
        for name, res in runs.items():
            est = D.second_moment_estimate(res.samples[burn // 5:, :, 0], 0.0)
            acc = float(res.info["acceptance_rate"].mean()) if "acceptance_rate" in res.info else 1.0
            rows[name].append((f, est.value / s ** 2, est.standard_error / s ** 2, acc))
    fine = np.linspace(0.0, 1.3, 200)
    exact = 1.0 / (1.0 - fine / 4.0)
    mix = {}
    for name in ("mala", "hmc"):
        draws, _ = C.mixture_chains(name, 100, 400) if tiny else C.mixture_run(quick, name)
        flat, k = D.thin_by_autocorrelation(draws)
        mix[name] = flat
    grid = np.linspace(-3, 7, 400)
    arrays = {f"{k}_rows": np.array(v) for k, v in rows.items()}
    arrays.update(fine=fine, exact=exact, grid=grid, density=np.exp(C.mixture_logpdf(grid)),
                  mix_mala=mix["mala"], mix_hmc=mix["hmc"])
    atomic_save_npz(out / "fig_samplers.npz", **arrays)
    atomic_write_json(out / "fig_samplers.json",
                      {k: [{"eps_over_s2": r[0], "variance_ratio": r[1], "se": r[2], "acceptance": r[3]}
                           for r in v] for k, v in rows.items()})
    return arrays


def plot(data: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(data["fine"], data["exact"], "k-", lw=1, label="ULA exact (D15): 1/(1 - eps/4s^2)")
    ax.axhline(1.0, color="gray", ls=":", lw=1)
    for name, marker in (("ula", "o"), ("mala", "s"), ("hmc", "^")):
        r = data[f"{name}_rows"]
        ax.errorbar(r[:, 0], r[:, 1], yerr=2 * r[:, 2], fmt=marker, ms=4, capsize=2, label=name.upper())
    ax.set_xlabel("eps / s^2")
    ax.set_ylabel("stationary variance / s^2")
    ax.set_title("(a) bias on x^2/(2 s^2), +-2 SE")
    ax.legend(fontsize=8)
    bx.plot(data["grid"], data["density"], "k-", lw=1, label="0.33 N(-1, 0.25^2) + 0.67 N(2, 2)")
    for name in ("mala", "hmc"):
        bx.hist(data[f"mix_{name}"], bins=80, density=True, histtype="step", label=f"{name.upper()} (thinned)")
    bx.set_xlabel("x")
    bx.set_title("(b) 1-D mixture target")
    bx.legend(fontsize=8)
    fig.tight_layout()
    path = out / "fig_samplers.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="figures/out")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer chains and steps")
    size.add_argument("--tiny", action="store_true", help="200 chains of 300 steps (smoke test)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(plot(compute(out, args.quick, args.tiny), out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
