"""Benchmark: the paper-protocol 1-D f-EBM loop, febm-ref (NumPy/Numba) vs PyTorch CPU float64.

The same loop on both sides: per iteration draw 1000 data samples and 1000 exact model
samples, one SGD step (lr 1e-3) of the 1-64-64-1 tanh critic on D10, then one SGD step of
``theta = (mu, sigma)`` on D13 with the updated critic (alternating, critic first). The
PyTorch side uses autograd through the published-style stop-gradient surrogate loss, float64,
``torch.set_num_threads(1)`` and febm-ref single-threaded BLAS (so the ratio compares
implementations, not thread counts). Timing: ``N`` iterations after a warm-up, best of 3;
the ratio is from this one run. The full paper run is 30,000 iterations.

Usage: ``python benchmarks/bench_fit1d.py [--iters N] [--divergence NAME] [--out DIR]``.
Skips the PyTorch side cleanly when torch is not installed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from febm_ref._batched_mlp import limit_blas_threads  # noqa: E402
from febm_ref._io import atomic_write_json  # noqa: E402
from febm_ref.energies import GaussianEnergy1D, MLPEnergy  # noqa: E402
from febm_ref.targets import paper_mixture_1d  # noqa: E402
from febm_ref.training import TrainingConfig, train  # noqa: E402


def run_ours(iters: int, divergence: str) -> float:
    cfg = TrainingConfig(divergence=divergence, iterations=iters, optimizer="sgd", lr_energy=1e-3, lr_critic=1e-3,
                         update="alternating", seed=0)
    critic = MLPEnergy.random_init(np.random.default_rng(1), 1, (64, 64), "tanh")
    t0 = time.perf_counter()
    train(cfg, paper_mixture_1d(), GaussianEnergy1D(0.0, 1.0), critic, show_progress=False)
    return time.perf_counter() - t0


def run_torch(iters: int, divergence: str) -> float:
    import torch

    torch.set_num_threads(1)
    dt = torch.float64
    gen = torch.Generator().manual_seed(0)
    if divergence != "kl":
        raise ValueError("the PyTorch side implements the KL loop only (g_data = 1 + s, g_model = e^s)")
    net = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 1)).to(dt)
    theta = torch.tensor([0.0, 1.0], dtype=dt, requires_grad=True)
    opt_h = torch.optim.SGD(net.parameters(), lr=1e-3)
    opt_e = torch.optim.SGD([theta], lr=1e-3)
    w = torch.tensor([0.33, 0.67], dtype=dt)
    m = torch.tensor([-1.0, 2.0], dtype=dt)
    s = torch.tensor([0.25, math.sqrt(2.0)], dtype=dt)

    def energy(x, th):
        return 0.5 * ((x - th[0]) / th[1]) ** 2

    t0 = time.perf_counter()
    for _ in range(iters):
        k = torch.multinomial(w, 1000, replacement=True, generator=gen)
        xp = (m[k] + s[k] * torch.randn(1000, dtype=dt, generator=gen))[:, None]
        with torch.no_grad():
            xn = (theta[0] + theta[1] * torch.randn(1000, dtype=dt, generator=gen))[:, None]
        # critic step: maximise <g_data(r+)> - <g_model(r-)>, r = H + E (E detached)
        with torch.no_grad():
            ep, en = energy(xp, theta), energy(xn, theta)
        rp, rn = net(xp) + ep, net(xn) + en
        loss_h = -((1 + rp).mean() - torch.exp(rn).mean())
        opt_h.zero_grad()
        loss_h.backward()
        opt_h.step()
        # energy step with the updated critic: surrogate with stop-gradient covariance weights
        with torch.no_grad():
            hp, hn = net(xp), net(xn)
        ep, en = energy(xp, theta), energy(xn, theta)
        rp, rn = hp + ep, hn + en
        gm = torch.exp(rn).detach()
        loss_e = (1 + rp).mean() - torch.exp(rn).mean() + ((gm - gm.mean()) * en).mean()
        opt_e.zero_grad()
        loss_e.backward()
        opt_e.step()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--divergence", default="kl")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    limit_blas_threads(1)
    run_ours(20, args.divergence)  # warm-up: JIT compile / load caches
    ours = min(run_ours(args.iters, args.divergence) for _ in range(3))
    result = {"iterations": args.iters, "febm_ref_seconds": ours,
              "febm_ref_ms_per_iteration": 1e3 * ours / args.iters,
              "febm_ref_extrapolated_30k_seconds": ours * 30000 / args.iters}
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch not installed: skipping the PyTorch side (pip install torch)")
        torch_s = None
    else:
        run_torch(20, args.divergence)
        torch_s = min(run_torch(args.iters, args.divergence) for _ in range(3))
        result.update({"torch_seconds": torch_s, "torch_ms_per_iteration": 1e3 * torch_s / args.iters,
                       "ratio_torch_over_febm_ref": torch_s / ours})
    print(f"paper-protocol loop, {args.iters} iterations (alternating SGD, batch 1000 + 1000, critic 1-64-64-1 tanh)")
    print(f"  febm-ref : {1e3 * ours / args.iters:8.2f} ms/iteration  (30k: {ours * 30000 / args.iters / 60:.1f} min)")
    if torch_s is not None:
        print(f"  PyTorch  : {1e3 * torch_s / args.iters:8.2f} ms/iteration  (30k: {torch_s * 30000 / args.iters / 60:.1f} min)")
        print(f"  ratio PyTorch / febm-ref = {torch_s / ours:.2f}x (one run, same machine, 1 thread each)")
    atomic_write_json(args.out / "bench_fit1d.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
