"""Benchmark: the paper-protocol 1-D f-EBM loop, febm-ref (NumPy/Numba) vs PyTorch CPU float64.

The same loop on both sides: per iteration draw 1000 data samples and 1000 exact model
samples, one SGD step (lr 1e-3) of the 1-64-64-1 tanh critic on D10, then one SGD step of
``theta = (mu, sigma)`` on D13 with the updated critic (alternating, critic first). The
PyTorch side uses autograd through the published-style stop-gradient surrogate loss, float64,
``torch.set_num_threads(1)`` and febm-ref single-threaded BLAS (so the ratio compares
implementations, not thread counts). Timing: CPU time (``time.process_time``) of ``N``
iterations after a warm-up, best of 3; the ratio is from this one run. The full paper run is
30,000 iterations.

The *floor*, measured in the same run: the CPU time of only the products and activations
that one iteration cannot avoid (:func:`iteration_floor`): the critic forward on the 2000
points with tanh and sech^2 (the critic step), the two ``2000 x 64 x 64`` products of its
backward pass, and the second forward with the updated critic, tanh only (the energy step).
A speed target whose time per iteration lies below it is out of reach with this BLAS and
this activation kernel, whatever the rest of the implementation does.

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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kernels import cpu_median  # noqa: E402

from febm_ref._io import atomic_write_json  # noqa: E402
from febm_ref._numba.batched_mlp import limit_blas_threads  # noqa: E402
from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy  # noqa: E402
from febm_ref.targets import paper_mixture_1d  # noqa: E402
from febm_ref.training import TrainingConfig, train  # noqa: E402


def run_ours(iters: int, divergence: str) -> float:
    cfg = TrainingConfig(divergence=divergence, iterations=iters, optimizer="sgd", lr_energy=1e-3, lr_critic=1e-3,
                         update="alternating", seed=0)
    critic = MLPEnergy.random_init(np.random.default_rng(1), 1, (64, 64), "tanh")
    t0 = time.process_time()
    train(cfg, paper_mixture_1d(), GaussianEnergy1D(0.0, 1.0), critic, show_progress=False)
    return time.process_time() - t0


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

    t0 = time.process_time()
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
    return time.process_time() - t0


def iteration_floor(runs: int = 7) -> dict:
    """CPU seconds of the products and activations one iteration cannot avoid (median of ``runs``).

    On the 2000 points of one iteration (1000 + 1000, the batch of the paper protocol) and the
    initial 1-64-64-1 tanh critic, into preallocated arrays, with ``np.dot`` (BLAS) and the
    activation kernels of :mod:`febm_ref._numba.batched_mlp`:

    * ``critic_forward``: ``x W_0``, tanh and sech^2 of layer 1 (``_activate_layer``),
      ``a_1 W_1`` (``2000 x 64 x 64``), tanh and sech^2 of layer 2, ``a_2 w_2``;
    * ``backward_products``: ``a_1^T G_2`` (``dW_1``) and ``G_2 W_1^T`` (``delta_1``), the
      two ``2000 x 64 x 64`` products of the weighted backward pass;
    * ``energy_step_forward``: the same forward with tanh only (``_activate_values``): the
      energy step needs the updated critic's values, not its derivatives.

    Not counted (so the floor is a lower bound): the element-wise products of the backward
    pass (``w_i W_out act'``, ``delta act'``), the bias gradients, ``dW_0`` and ``dW_out``,
    sampling, the divergence maps and everything in Python.
    """
    from febm_ref._numba.batched_mlp import _activate_layer, _activate_values

    critic = MLPEnergy.random_init(np.random.default_rng(1), 1, (64, 64), "tanh")
    params, _, act = critic.kernel_args()
    w_0, b_0 = params[:64].reshape(1, 64), params[64:128]
    w_1, b_1 = params[128:128 + 64 * 64].reshape(64, 64), params[128 + 64 * 64:192 + 64 * 64]
    w_2 = params[192 + 64 * 64:256 + 64 * 64]
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(np.concatenate([paper_mixture_1d().sample(rng, 1000), rng.standard_normal((1000, 1))]))
    a_1, d_1, a_2, d_2, delta = (np.empty((2000, 64)) for _ in range(5))
    g_2 = 1e-3 * rng.standard_normal((2000, 64))
    d_w1 = np.empty((64, 64))
    energy = np.empty(2000)

    def critic_forward():
        np.dot(x, w_0, a_1)
        _activate_layer(act, a_1, b_0, d_1)
        np.dot(a_1, w_1, a_2)
        _activate_layer(act, a_2, b_1, d_2)
        np.dot(a_2, w_2, energy)

    def backward_products():
        np.dot(a_1.T, g_2, d_w1)
        np.dot(g_2, w_1.T, delta)

    def energy_step_forward():
        np.dot(x, w_0, a_1)
        _activate_values(act, a_1, b_0)
        np.dot(a_1, w_1, a_2)
        _activate_values(act, a_2, b_1)
        np.dot(a_2, w_2, energy)

    parts = {name: cpu_median(fn, runs=runs) for name, fn in (
        ("critic_forward", critic_forward), ("backward_products", backward_products),
        ("energy_step_forward", energy_step_forward))}
    return {"total": sum(parts.values()), **parts}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--divergence", default="kl")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    limit_blas_threads(1)
    run_ours(20, args.divergence)  # warm-up: JIT compile / load caches
    ours = min(run_ours(args.iters, args.divergence) for _ in range(3))
    floor = iteration_floor()
    result = {"iterations": args.iters, "timer": "process_time (CPU seconds), one thread",
              "febm_ref_seconds": ours,
              "febm_ref_ms_per_iteration": 1e3 * ours / args.iters,
              "febm_ref_extrapolated_30k_seconds": ours * 30000 / args.iters,
              "floor_ms_per_iteration": 1e3 * floor["total"],
              "floor_components_ms": {k: 1e3 * v for k, v in floor.items() if k != "total"}}
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch not installed: skipping the PyTorch side (pip install torch)")
        torch_s = None
    else:
        run_torch(20, args.divergence)
        torch_s = min(run_torch(args.iters, args.divergence) for _ in range(3))
        result.update({"torch_seconds": torch_s, "torch_ms_per_iteration": 1e3 * torch_s / args.iters,
                       "ratio_torch_over_febm_ref": torch_s / ours,
                       "three_x_torch_needs_ms_per_iteration": 1e3 * torch_s / args.iters / 3})
    print(f"paper-protocol loop, {args.iters} iterations (alternating SGD, batch 1000 + 1000, critic 1-64-64-1 tanh)")
    print(f"  febm-ref : {1e3 * ours / args.iters:8.2f} ms/iteration  (30k: {ours * 30000 / args.iters / 60:.1f} min)")
    if torch_s is not None:
        print(f"  PyTorch  : {1e3 * torch_s / args.iters:8.2f} ms/iteration  "
              f"(30k: {torch_s * 30000 / args.iters / 60:.1f} min)")
        print(f"  ratio PyTorch / febm-ref = {torch_s / ours:.2f}x (one run, same machine, 1 thread each, CPU time)")
    parts = ", ".join(f"{k.replace('_', ' ')} {1e3 * v:.2f}" for k, v in floor.items() if k != "total")
    print(f"  floor    : {1e3 * floor['total']:8.2f} ms/iteration  (only the unavoidable products + activations: "
          f"{parts} ms)")
    if torch_s is not None:
        need = 1e3 * torch_s / args.iters / 3
        relation = "below" if need < 1e3 * floor["total"] else "above"
        print(f"  3x PyTorch would need {need:.2f} ms/iteration, {relation} the measured floor of "
              f"{1e3 * floor['total']:.2f} ms/iteration")
    atomic_write_json(args.out / "bench_fit1d.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
