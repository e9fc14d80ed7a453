"""Benchmark: ULA (D15) chain-steps per second on a 2-64-64-1 tanh MLP energy, float64.

For each number of chains ``N`` (default 1, 64, 1024, 16384) and ``K`` steps, the same
pre-drawn noise ``(K, N, 2)`` drives every implementation, measured in the same run:

* ``numba``          :func:`febm_ref.samplers.mlp_langevin.ula` (one thread, blocked BLAS path);
* ``numba-parallel`` the same loop with the blocks of chains split between threads;
* ``numba-point``    one thread, the per-point fused kernel of :mod:`febm_ref._numba.kernels`;
* ``numpy``          the NumPy twin (vectorised over chains, a Python loop over steps);
* ``torch``          PyTorch CPU eager, autograd for the input gradient (if installed);
* ``jax``            JAX CPU, ``jit`` + ``lax.scan`` over the steps, x64 enabled (if installed),
                     with its default thread pool;
* ``jax-1thread``    the same in a subprocess with XLA's intra-op parallelism off
                     (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``)
                     and, on Linux, pinned to one CPU (``sched_setaffinity``: with the flags
                     alone jax 0.10 still kept both cores busy, CPU time > wall time), the
                     like-for-like peer of the one-thread ``numba`` column.

Each entry is the best of ``--repeats`` timed calls after a warm-up call (so JIT compilation is
excluded; it is reported separately: Numba's first call in a fresh process with an empty cache
and with a warm cache). Every implementation's end points are compared with the NumPy twin's
(``max |dx|`` column): the peers compute the same trajectory. The table (markdown) goes to
stdout and, with ``--output``, to a file. Absolute numbers depend on the machine and its load;
the ratios are what the issue's targets refer to. Never used in tests.

A second table gives the **per-core** rates: each implementation in a fresh subprocess restricted
to one thread (``OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1``, ``torch.set_num_threads(1)``, XLA
intra-op parallelism off), chain-steps per CPU-second from the median of ``--repeats`` rounds of
``time.process_time`` (load from other jobs on a shared machine does not count as our time).

    python3 benchmarks/bench_langevin.py [--chains 1 64 1024 16384] [--steps-budget 200000]
                                         [--repeats 3] [--output PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import best_time, markdown_table  # noqa: E402
from bench_kernels import cpu_median, hidden_layer_floor, run_one_thread_child  # noqa: E402

from febm_ref._io import atomic_write_text  # noqa: E402
from febm_ref.models.energies import MLPEnergy  # noqa: E402
from febm_ref.samplers import mlp_langevin  # noqa: E402

EPS = 0.01
HIDDEN = (64, 64)

COLD_SNIPPET = """
import time, numpy as np
from febm_ref.models.energies import MLPEnergy
from febm_ref.samplers import mlp_langevin
m = MLPEnergy.random_init(np.random.default_rng(0), 2, (64, 64))
x = np.zeros((4, 2)); z = np.random.default_rng(1).standard_normal((3, 4, 2))
t = time.perf_counter()
mlp_langevin.ula(m, x, 0.01, noise=z, backend="{backend}")
print(time.perf_counter() - t)
"""


def compile_times(backend: str) -> dict:
    """First call of the ULA loop in fresh processes: empty Numba cache, then warm cache."""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        out = {}
        for label in ("cold", "cached"):
            res = subprocess.run([sys.executable, "-c", COLD_SNIPPET.format(backend=backend)], env=env,
                                 check=True, capture_output=True, text=True)
            out[label] = float(res.stdout.split()[-1])
        return out


def torch_runner(model, x0, noise):
    try:
        import torch
    except ImportError:
        return None, None
    params, sizes, _ = model.kernel_args()
    p = torch.from_numpy(params.copy())
    W0 = p[:128].reshape(2, 64)
    b0 = p[128:192]
    W1 = p[192:4288].reshape(64, 64)
    b1 = p[4288:4352]
    w2 = p[4352:4416]
    b2 = p[4416]
    z = torch.from_numpy(noise)
    root = float(np.sqrt(EPS))

    def run():
        x = torch.from_numpy(x0.copy())
        for k in range(z.shape[0]):
            xr = x.detach().requires_grad_(True)
            e = torch.tanh(torch.tanh(xr @ W0 + b0) @ W1 + b1) @ w2 + b2
            (g,) = torch.autograd.grad(e.sum(), xr)
            x = x - (0.5 * EPS) * g + root * z[k]
        return x.numpy()

    return run, f"torch {torch.__version__} ({torch.get_num_threads()} threads)"


def jax_runner(model, x0, noise):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None, None
    jax.config.update("jax_enable_x64", True)
    params, _, _ = model.kernel_args()
    W0 = jnp.asarray(params[:128].reshape(2, 64))
    b0 = jnp.asarray(params[128:192])
    W1 = jnp.asarray(params[192:4288].reshape(64, 64))
    b1 = jnp.asarray(params[4288:4352])
    w2 = jnp.asarray(params[4352:4416])
    b2 = float(params[4416])

    def energy_sum(x):
        return jnp.sum(jnp.tanh(jnp.tanh(x @ W0 + b0) @ W1 + b1) @ w2 + b2)

    grad = jax.grad(energy_sum)

    @jax.jit
    def scan(x, z):
        def body(x, zk):
            return x - (0.5 * EPS) * grad(x) + jnp.sqrt(EPS) * zk, None
        return jax.lax.scan(body, x, z)[0]

    xj = jnp.asarray(x0)
    zj = jnp.asarray(noise)
    return (lambda: np.asarray(scan(xj, zj).block_until_ready())), f"jax {jax.__version__}"


def problem(n: int, k: int):
    """Starting points (n, 2) and noise (k, n, 2) from a seed that depends only on n and k."""
    rng = np.random.default_rng([1, n, k])
    return rng.standard_normal((n, 2)), rng.standard_normal((k, n, 2))


def model_under_test() -> MLPEnergy:
    return MLPEnergy.random_init(np.random.default_rng(0), 2, HIDDEN, "tanh", bias_scale=0.1)


def jax_single_thread_rate(n: int, k: int, repeats: int) -> float:
    """Chain-steps/s of the JAX runner in a fresh process with one intra-op thread, pinned to
    one CPU where the OS allows it."""
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    pin = None
    if hasattr(os, "sched_setaffinity"):
        one_cpu = {min(os.sched_getaffinity(0))}

        def pin():
            os.sched_setaffinity(0, one_cpu)
    res = subprocess.run([sys.executable, __file__, "--jax-only", str(n), str(k), "--repeats", str(repeats)],
                         env=env, check=True, capture_output=True, text=True, preexec_fn=pin)
    return float(res.stdout.split()[-1])


def all_runners(model, x0, noise):
    """``({name: run() -> end points}, {peer: version})`` for every implementation available:
    ours (numba one thread, numba-parallel, the per-point path, the NumPy twin) and the
    installed peers (torch, jax), all on the same start points and pre-drawn noise."""
    runners = {
        "numba": lambda: mlp_langevin.ula(model, x0, EPS, noise=noise, backend="numba").x,
        "numba-parallel": lambda: mlp_langevin.ula(model, x0, EPS, noise=noise,
                                                   backend="numba-parallel").x,
        "numba-point": lambda: mlp_langevin.ula(model, x0, EPS, noise=noise, backend="numba",
                                                use_blas=False).x,
        "numpy": lambda: mlp_langevin.ula(model, x0, EPS, noise=noise, backend="numpy").x,
    }
    versions = {}
    for name, factory in (("torch", torch_runner), ("jax", jax_runner)):
        run, version = factory(model, x0, noise)
        if run is not None:
            runners[name] = run
            versions[name] = version
    return runners, versions


def per_core_child(n: int, k: int, repeats: int) -> dict:
    """Chain-steps per CPU-second, one thread, of every implementation (child process)."""
    model = model_under_test()
    x0, noise = problem(n, k)
    runners, _ = all_runners(model, x0, noise)
    del runners["numba-parallel"]  # one thread here
    if "torch" in runners:
        __import__("torch").set_num_threads(1)
    rates = {name: n * k / cpu_median(run, runs=repeats) for name, run in runners.items()}
    floor = hidden_layer_floor(n, repeats)
    rates["floor_products"] = 1.0 / floor["products"]
    rates["floor_products_numpy_tanh"] = 1.0 / floor["products_and_numpy_tanh"]
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, nargs="+", default=[1, 64, 1024, 16384])
    parser.add_argument("--steps-budget", type=int, default=200_000,
                        help="chain-steps per timed call: K = clip(budget / N, 20, 2000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile-times", action="store_true")
    parser.add_argument("--output", help="also write the markdown report to this file")
    parser.add_argument("--jax-only", type=int, nargs=2, metavar=("N", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--per-core-child", type=int, nargs=2, metavar=("N", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.per_core_child:
        import json
        print(json.dumps(per_core_child(*args.per_core_child, args.repeats)))
        return 0

    model = model_under_test()
    if args.jax_only:
        n, k = args.jax_only
        run, _ = jax_runner(model, *problem(n, k))
        print(n * k / best_time(run, min_seconds=0.05, repeats=args.repeats))
        return 0
    names = ["numba", "numba-parallel", "numba-point", "numpy", "torch", "jax", "jax-1thread"]
    rows = []
    core_names = ["numba", "numba-point", "numpy", "torch", "jax"]
    core_rows = []
    core_rates = {}
    versions = {}
    ratios = []
    for n in args.chains:
        k = int(np.clip(args.steps_budget // n, 20, 2000))
        x0, noise = problem(n, k)
        runners, run_versions = all_runners(model, x0, noise)
        versions.update(run_versions)
        reference = runners["numpy"]()
        rate = {}
        diff = {}
        for name in names:
            if name == "jax-1thread" and "jax" in runners:
                rate[name] = jax_single_thread_rate(n, k, args.repeats)
                print(f"N={n:6d} K={k:5d} {name:15s} {rate[name]:14,.0f} chain-steps/s", file=sys.stderr,
                      flush=True)
                continue
            if name not in runners:
                continue
            diff[name] = float(np.max(np.abs(runners[name]() - reference)))
            seconds = best_time(runners[name], min_seconds=0.05, repeats=args.repeats)
            rate[name] = n * k / seconds
            print(f"N={n:6d} K={k:5d} {name:15s} {rate[name]:14,.0f} chain-steps/s  max|dx|={diff[name]:.1e}",
                  file=sys.stderr, flush=True)
        best_numba = max(rate["numba"], rate["numba-parallel"])
        row = [n, k] + [f"{rate[m]:,.0f}" if m in rate else "n/a" for m in names]
        row += [f"{best_numba / rate['numpy']:.1f}x",
                f"{best_numba / rate['torch']:.2f}x" if "torch" in rate else "n/a",
                f"{best_numba / rate['jax']:.2f}x" if "jax" in rate else "n/a",
                f"{rate['numba'] / rate['jax-1thread']:.2f}x" if "jax-1thread" in rate else "n/a",
                f"{max(diff.values()):.1e}"]
        rows.append(row)
        ratios.append((n, best_numba, rate))
        core = run_one_thread_child(__file__, ["--per-core-child", n, k, "--repeats", args.repeats])
        core_rows.append([n, k] + [f"{core[m]:,.0f}" if m in core else "n/a" for m in core_names]
                         + [f"{core['numba'] / core['numpy']:.1f}x",
                            f"{core['numba'] / core['torch']:.2f}x" if "torch" in core else "n/a",
                            f"{core['numba'] / core['jax']:.2f}x" if "jax" in core else "n/a"])
        core_rates[n] = core

    header = ["N", "K"] + [f"{m} (chain-steps/s)" for m in names] + [
        "best numba / numpy", "best numba / torch", "best numba / jax",
        "numba (1 thread) / jax-1thread", "max |dx| vs numpy"]
    lines = ["# ULA on a 2-64-64-1 tanh MLP energy (float64), chain-steps per second", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
             f"python {platform.python_version()}, numpy {np.__version__}; "
             + ", ".join(versions.values()) + ". Best of "
             f"{args.repeats} timed calls after a warm-up; eps = {EPS}; same pre-drawn noise for all.",
             "", "Wall clock, best of the timed calls (default thread counts):", "",
             markdown_table(header, rows), "",
             f"Per core: one thread each, chain-steps per CPU-second (median of {args.repeats} rounds):",
             "", markdown_table(["N", "K"] + core_names + ["numba / numpy", "numba / torch", "numba / jax"],
                                core_rows), ""]
    lines.append("Targets (issue 4):")
    for n, best, rate in ratios:
        if n == 1:
            r = best / rate["numpy"]
            lines.append(f"- N = 1: >= 20x the NumPy twin: {r:.1f}x -> {'met' if r >= 20 else 'MISSED'}")
        if n == 1024:
            if "jax" in rate:
                r = best / rate["jax"]
                lines.append(f"- N = 1024: >= JAX CPU: {r:.2f}x -> {'met' if r >= 1 else 'MISSED'}")
            if "jax-1thread" in rate:
                r = rate["numba"] / rate["jax-1thread"]
                lines.append(f"- N = 1024, one thread each (numba vs jax-1thread): {r:.2f}x -> "
                             f"{'met' if r >= 1 else 'MISSED'}")
            if "torch" in rate:
                r = best / rate["torch"]
                lines.append(f"- N = 1024: >= 3x PyTorch CPU: {r:.2f}x -> {'met' if r >= 3 else 'MISSED'}")
            if "jax" in core_rates.get(n, {}):
                r = core_rates[n]["numba"] / core_rates[n]["jax"]
                lines.append(f"- N = 1024, per core (CPU time, one thread each) >= JAX: {r:.2f}x -> "
                             f"{'met' if r >= 1 else 'MISSED'}")
            core = core_rates.get(n, {})
            if "torch" in core:
                r = core["numba"] / core["torch"]
                need = 1e6 / (3 * core["torch"])
                lines.append(
                    f"- N = 1024, per core >= 3x PyTorch: {r:.2f}x -> {'met' if r >= 3 else 'MISSED'}. "
                    f"3x torch needs {need:.3f} us per chain-step; in the same process the two "
                    f"(N, 64) x (64, 64) products every gradient needs take "
                    f"{1e6 / core['floor_products']:.3f} us alone and "
                    f"{1e6 / core['floor_products_numpy_tanh']:.3f} us with NumPy's SIMD np.tanh "
                    f"(tanh only, no derivative) over both hidden layers")
    if not args.no_compile_times:
        lines.append("")
        lines.append("Numba compile time (first call in a fresh process, seconds):")
        for backend in ("numba", "numba-parallel"):
            t = compile_times(backend)
            lines.append(f"- {backend}: cold (empty cache) {t['cold']:.2f} s, cached {t['cached']:.3f} s")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        atomic_write_text(args.output, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
