"""ULA (D15) and decoupled Langevin (D16) for MLP energies: ``K`` steps of ``N`` chains in one
Numba call (:mod:`febm_ref._numba.langevin`), with pre-drawn noise so that the result does not
depend on the thread count and equals the NumPy twin to rounding.

This is the fused backend of the one ULA API, :func:`febm_ref.samplers.ula.run`
(``backend="numba"`` / ``"numba-parallel"`` calls :func:`run_ula`, with ``ula.run``'s arguments
and result); :func:`ula` and :func:`decoupled` are the raw fused calls (pre-drawn noise allowed,
end points and per-step means at the gradient points).

The energy is an :class:`febm_ref.models.energies.MLPEnergy` (anything with ``kernel_args() ->
(params, sizes, act_code)``) or the kernel triple itself.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from febm_ref._numba import langevin as LK
from febm_ref._numba.kernels import check_mlp_spec
from febm_ref._validation import as_float_array, check_generator, check_positive_int, check_real_scalar
from febm_ref.samplers._base import NonFiniteChainError, RunResult, as_chain_points, check_step_size, init_state
from febm_ref.samplers.decoupled_langevin import check_box

BACKENDS = ("numba", "numba-parallel", "numpy")
"""``numba``: one thread; ``numba-parallel``: the blocks of chains split between threads (identical numbers;
for hidden layers wider than 64, run it with ``OPENBLAS_NUM_THREADS=1``, see
:data:`febm_ref._numba.langevin.LARGE_BLOCK`); ``numpy``: the vectorised twin."""


class MLPLangevinResult(NamedTuple):
    """End points and per-step diagnostics of a Langevin run on an MLP energy."""

    x: np.ndarray               #: (N, d) end points
    mean_energy: np.ndarray     #: (K,) mean over chains of E where step k takes its gradient
    mean_grad_norm: np.ndarray  #: (K,) mean over chains of |grad_x E| there


def _kernel_args(energy):
    if hasattr(energy, "kernel_args"):
        return check_mlp_spec(*energy.kernel_args())
    if not (isinstance(energy, (tuple, list)) and len(energy) == 3):
        raise TypeError("energy must be an MLPEnergy (with kernel_args()) or a triple (params, sizes, act_code), "
                        f"got {type(energy).__name__}")
    params, sizes, act = energy
    params = as_float_array(params, "params", ndim=1)
    sizes_arr = np.asarray(sizes)
    if sizes_arr.ndim != 1 or sizes_arr.dtype.kind not in "iu":
        raise TypeError(f"sizes must be a 1-D sequence of integer layer widths [d, h_1, ..., 1], got {sizes!r}")
    check_positive_int(act, "act_code", minimum=0)
    return check_mlp_spec(params, sizes_arr, act)


def _prepare(energy, x0, noise, rng, n_steps):
    params, sizes, act = _kernel_args(energy)
    x = as_chain_points(x0, "x0")
    if x.shape[1] != sizes[0]:
        raise ValueError(f"x0 has dimension {x.shape[1]} but the MLP takes {sizes[0]} inputs")
    if noise is None:
        if rng is None or n_steps is None:
            raise ValueError("pass either pre-drawn noise (K, N, d) or rng and n_steps")
        check_generator(rng)
        n_steps = check_positive_int(n_steps, "n_steps")
        noise = rng.standard_normal((n_steps,) + x.shape)
    else:
        if rng is not None:
            raise ValueError("pass either pre-drawn noise or rng, not both")
        noise = np.ascontiguousarray(as_float_array(noise, "noise", ndim=3))
        if noise.shape[1:] != x.shape or noise.shape[0] == 0:
            raise ValueError(f"noise must have shape (K, {x.shape[0]}, {x.shape[1]}) with K >= 1, "
                             f"got {noise.shape}")
        if n_steps is not None and check_positive_int(n_steps, "n_steps") != noise.shape[0]:
            raise ValueError(f"n_steps={n_steps} disagrees with noise.shape[0]={noise.shape[0]}")
    return LK.MLPParams(params, sizes, act), LK.ChainArrays(x, noise), LK.StepStats.empty(noise.shape[0], x.shape[0])


def _finish(x, stats, what):
    energy_sum, grad_sum, bad_step, bad_value = stats
    bad = np.flatnonzero(bad_step >= 0)
    if bad.size:
        first = bad[np.argmin(bad_step[bad])]
        raise NonFiniteChainError(
            f"{what}: chain {int(first)} produced the non-finite value {float(bad_value[first])!r} at step "
            f"{int(bad_step[first]) + 1} of {energy_sum.shape[0]} ({bad.size} chain(s) non-finite); "
            f"reduce the step size, clip the gradient or check the energy parameters")
    n = x.shape[0]
    return MLPLangevinResult(x, energy_sum / n, grad_sum / n)


def _loop(kind, backend, n_chains):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "numba-parallel" and n_chains <= LK.chains_per_block(n_chains):
        backend = "numba"  # a single block: same numbers, no parallel-region overhead
    if backend == "numpy":
        return LK.ula_mlp_loop_numpy if kind == "ula" else LK.decoupled_mlp_loop_numpy
    parallel = backend == "numba-parallel"

    def fused(mlp, chains, settings, stats, use_blas):
        LK.langevin_loop(mlp, chains, settings, stats, use_blas=use_blas, parallel=parallel)

    return fused


def ula(energy, x0, step_size: float, *, noise=None, rng: Optional[np.random.Generator] = None,
        n_steps: Optional[int] = None, backend: str = "numba", use_blas: bool = True) -> MLPLangevinResult:
    """``K`` ULA steps (D15) ``x <- x - (eps/2) grad E(x) + sqrt(eps) z`` of ``N`` chains.

    Parameters
    ----------
    energy : MLPEnergy or (params, sizes, act_code)
    x0 : array (N, d)
        Starting points (not modified).
    step_size : float
        ``eps > 0``.
    noise : array (K, N, d), optional
        Pre-drawn standard normal noise; otherwise drawn from ``rng`` (``n_steps`` steps).
    backend : {"numba", "numba-parallel", "numpy"}
    use_blas : bool
        Numba backends: block matrix products (fast) or the per-point kernel.

    Raises
    ------
    NonFiniteChainError
        Naming the first step (1-based) at which a chain produced a NaN/inf energy, gradient
        norm or position, and the value (a gradient norm above ~1e154 overflows and counts).
    """
    eps = check_step_size(step_size)
    mlp, chains, stats = _prepare(energy, x0, noise, rng, n_steps)
    _loop("ula", backend, chains.x.shape[0])(mlp, chains, LK.LangevinSettings.ula(eps), stats, bool(use_blas))
    return _finish(chains.x, stats, "ULA on an MLP energy")


def run_ula(rng: np.random.Generator, x0, energy, step_size: float, n_steps: int, *, keep_samples: bool = False,
            thin: int = 1, backend: str = "numba", use_blas: bool = True) -> RunResult:
    """:func:`febm_ref.samplers.ula.run` with the fused loop as its backend (the one ULA API:
    ``ula.run(..., backend="numba")`` calls this): the same arguments in the same order and the
    same :class:`~febm_ref.samplers._base.RunResult` -- the end state as a ``ChainState`` (energy
    and gradient evaluated once at the end points) and ``info`` of ``mean_energy`` and
    ``mean_grad_norm`` at the new points of each step (D15). The noise is drawn from ``rng`` as
    ``ula.run`` draws it (one ``(n_chains, d)`` standard normal block per step, in order), so the
    two backends give the same chain to rounding.

    Raises ValueError for ``keep_samples=True`` (the fused loop keeps only the end points; use
    ``backend="numpy"`` of ``ula.run``) and for an energy without the energy protocol (a kernel
    triple has no ``energy``/``grad_x``; pass the MLPEnergy).
    """
    check_positive_int(thin, "thin")
    if keep_samples:
        raise ValueError("keep_samples=True needs ula.run(..., backend='numpy'): the fused loop keeps only the "
                         "end points")
    check_generator(rng)
    res = ula(energy, x0, step_size, rng=rng, n_steps=n_steps, backend=backend, use_blas=use_blas)
    state = init_state(res.x, energy)
    with np.errstate(over="ignore"):  # as ula.step: a finite gradient above ~1e154 has an inf norm
        last_norm = np.mean(np.sqrt(np.sum(state.grad_x * state.grad_x, axis=1)))
    info = {"mean_energy": np.append(res.mean_energy[1:], np.mean(state.energy)),
            "mean_grad_norm": np.append(res.mean_grad_norm[1:], last_norm)}
    return RunResult(state, None, info)


def decoupled(energy, x0, step_size: float, noise_scale: float, *, noise=None,
              rng: Optional[np.random.Generator] = None, n_steps: Optional[int] = None,
              grad_clip: Optional[float] = None, box=None, backend: str = "numba",
              use_blas: bool = True) -> MLPLangevinResult:
    """``K`` decoupled Langevin steps (D16) of ``N`` chains; see
    :mod:`febm_ref.samplers.decoupled_langevin` for the step and the meaning of the clippings
    (both off by default; both change the dynamics)."""
    lam = check_step_size(step_size)
    sigma = check_real_scalar(noise_scale, "noise_scale", nonnegative=True)
    clip = 0.0 if grad_clip is None else check_real_scalar(grad_clip, "grad_clip", positive=True)
    box = check_box(box)
    lo, hi = (0.0, 0.0) if box is None else box
    mlp, chains, stats = _prepare(energy, x0, noise, rng, n_steps)
    settings = LK.LangevinSettings.decoupled(lam, sigma, clip, lo, hi, box is not None)
    _loop("d16", backend, chains.x.shape[0])(mlp, chains, settings, stats, bool(use_blas))
    return _finish(chains.x, stats, "decoupled Langevin on an MLP energy")
