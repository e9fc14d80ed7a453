"""Numba Langevin loops for MLP energies: ``K`` steps of ``N`` chains in one call
(docs/theory.md D15, D16; section 4: "Langevin chains are the hot loop").

The MLP is the kernel triple ``(params, sizes, act)`` of :mod:`febm_ref._numba.kernels`
(:meth:`febm_ref.models.energies.MLPEnergy.kernel_args`).

One block driver, :func:`_langevin_block` (8 positional parameters: the named tuples below), runs
both samplers (they differ only in where the noise enters and in the optional clippings), and
two ways to evaluate the MLP inside it (``use_blas``):

* ``use_blas=True`` (the fast default of :mod:`febm_ref.samplers.mlp_langevin`): the
  batch-major core :func:`febm_ref._numba.batched_mlp.mlp_energy_grad_x_block` over a block of
  :func:`chains_per_block` chains (``np.dot`` -> BLAS ``dgemm``, vectorised tanh);
* ``use_blas=False``: per chain, the fused per-point kernel
  :func:`febm_ref._numba.kernels.mlp_energy_and_grad_x_point` (the reference path).

The two agree to rounding (~1e-15), not bit for bit.

Reproducibility: the noise is **pre-drawn** by the caller (``noise`` of shape ``(K, N, d)``
from a ``numpy.random.Generator``), so the trajectory does not depend on the number of threads,
and the NumPy twins (suffix ``_numpy``) fed the same noise give the same trajectory to
rounding. Chains are processed in fixed blocks of :func:`chains_per_block` ``(N)`` chains (a
function of ``N`` only, never of the thread count; the blocks are split between threads
when ``parallel``); each block keeps its chains in a private buffer for all ``K`` steps;
per-step sums over chains are accumulated per block and then added in block order, so results
and diagnostics are bit-identical whatever the thread count.

Kernels (no input validation: call them through :mod:`febm_ref.samplers.mlp_langevin`)
----------------------------------------------------------------------------------------
``langevin_loop(mlp, chains, settings, stats, *, use_blas, parallel)``
    ``K`` steps in place on ``chains.x`` (N, d), with ``mlp`` an :class:`MLPParams`, ``chains``
    :class:`ChainArrays` ``(x, noise)``, ``settings`` a :class:`LangevinSettings` built by
    :meth:`LangevinSettings.ula` (D15: ``x <- x - (eps/2) grad E(x) + sqrt(eps) noise[k]``) or
    :meth:`LangevinSettings.decoupled` (D16: ``x' = x + sigma_n noise[k]``, ``g = grad E(x')``
    clipped to ``[-grad_clip, grad_clip]`` if ``grad_clip > 0``, ``x <- x' - lambda g``, then
    ``clip(x, box_lo, box_hi)`` if ``use_box``), and ``stats`` a :class:`StepStats`.

Outputs: ``energy_sum[k]`` / ``grad_norm_sum[k]`` (length K) are the sums over chains of
``E`` and ``|grad E|`` at the point where step ``k`` evaluates the gradient (``x_k`` for ULA,
the noised point for D16); divide by N for the means. ``bad_step[c]`` (int64, N) is ``-1`` or
the first step (0-based) at which chain ``c`` produced a non-finite energy, gradient or
position, with the offending value in ``bad_value[c]``; its block of chains then stops and the
wrapper raises. The NumPy twins (``ula_mlp_loop_numpy``,
``decoupled_mlp_loop_numpy``) take the same four tuples and stop all chains at the first bad step.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from febm_ref._numba.batched_mlp import cache_size, mlp_energy_grad_x_block
from febm_ref._numba.jit import njit
from febm_ref._numba.kernels import MLPParams, mlp_energy_and_grad_x_point, mlp_work_size
from febm_ref._numba.threads import parallel_ranges
from febm_ref.models.mlp import mlp_energy_grad_x_batch_numpy

SMALL_BLOCK = 32
LARGE_BLOCK = 64
LARGE_BLOCK_FROM = 1024
"""Chains per block (:func:`chains_per_block`): :data:`SMALL_BLOCK` below
:data:`LARGE_BLOCK_FROM` chains (two blocks, one per thread, from 64 chains on),
:data:`LARGE_BLOCK` from there: longer ``dgemm`` calls, measured 2-7 % fewer CPU seconds per
chain-step than 32-chain blocks at N = 1024 (one thread, three interleaved runs). 64 is the largest
block whose ``64 x 64 x 64`` products stay at OpenBLAS's single-thread size limit
(``m n k <= 2^18``): 128-chain blocks were another 3-8 % faster on one thread, but inside the
parallel loop each product then started OpenBLAS threads of its own, and the parallel loop
fell from 3.5M to 1.6M chain-steps/s (N = 1024, 2 cores). The limit holds for hidden widths up
to 64 (the 2-64-64-1 models of the paper's toys); with wider layers the products of a block
exceed it, and the ``numba-parallel`` backend should run with ``OPENBLAS_NUM_THREADS=1``."""


def chains_per_block(n_chains: int) -> int:
    """Chains per block for ``n_chains`` chains: the unit of parallel work and of the
    deterministic per-step reduction (depends on ``n_chains`` only, so results do not depend on
    the number of threads)."""
    return LARGE_BLOCK if n_chains >= LARGE_BLOCK_FROM else SMALL_BLOCK


class ChainArrays(NamedTuple):
    """The chains ``x`` (N, d), updated in place, and their pre-drawn noise (K, N, d)."""

    x: np.ndarray
    noise: np.ndarray


class LangevinSettings(NamedTuple):
    """One step of the fused loop, for each chain, with ``z_k = noise[k]``::

        x' = x + pre_scale z_k                       (skipped if pre_scale == 0)
        g  = grad E(x')                              (clipped to [-grad_clip, grad_clip] if grad_clip > 0)
        x <- x' - drift g + post_scale z_k           (last term skipped if post_scale == 0)
        x <- clip(x, box_lo, box_hi)                 (if use_box)

    Build it with :meth:`ula` (D15) or :meth:`decoupled` (D16), not by position."""

    pre_scale: float
    drift: float
    post_scale: float
    grad_clip: float
    box_lo: float
    box_hi: float
    use_box: bool

    @classmethod
    def ula(cls, step_size: float) -> "LangevinSettings":
        """ULA (D15) ``x <- x - (eps/2) grad E(x) + sqrt(eps) z``: ``(0, eps/2, sqrt(eps))``."""
        return cls(0.0, 0.5 * step_size, math.sqrt(step_size), 0.0, 0.0, 0.0, False)

    @classmethod
    def decoupled(cls, step_size: float, noise_scale: float, grad_clip: float = 0.0, box_lo: float = 0.0,
                  box_hi: float = 0.0, use_box: bool = False) -> "LangevinSettings":
        """Decoupled Langevin (D16) ``x' = x + sigma z``, ``x <- x' - lambda clip(grad E(x'))``:
        ``(sigma, lambda, 0)`` (``grad_clip = 0``: no clipping; the box only if ``use_box``)."""
        return cls(float(noise_scale), float(step_size), 0.0, float(grad_clip), float(box_lo), float(box_hi),
                   bool(use_box))


class StepStats(NamedTuple):
    """Outputs of a loop: ``energy_sum[k]`` / ``grad_norm_sum[k]`` (K,) the sums over chains of
    ``E`` and ``|grad E|`` where step ``k`` takes its gradient; ``bad_step[c]`` (int64, N) -1 or
    the first non-finite step of chain ``c``, with the value in ``bad_value[c]``."""

    energy_sum: np.ndarray
    grad_norm_sum: np.ndarray
    bad_step: np.ndarray
    bad_value: np.ndarray

    @classmethod
    def empty(cls, n_steps: int, n_chains: int) -> "StepStats":
        return cls(np.zeros(n_steps), np.zeros(n_steps), np.full(n_chains, -1, dtype=np.int64),
                   np.zeros(n_chains))


class _BlockSums(NamedTuple):
    """Per block ``b`` and step ``k``: the sums ``partial_e[k, b]``, ``partial_g[k, b]``, and the
    per-chain ``bad_step``/``bad_value`` of :class:`StepStats`."""

    partial_e: np.ndarray
    partial_g: np.ndarray
    bad_step: np.ndarray
    bad_value: np.ndarray


@njit
def _langevin_block(mlp, chains, settings, sums, b, block, point_work_len, blas_cache_per_chain):
    """All ``K`` steps (:class:`LangevinSettings`) of the chains of block ``b`` (``block`` chains
    per block) of ``chains`` (:class:`ChainArrays`) on the MLP ``mlp`` (:class:`MLPParams`).
    Sums of E and |grad E| over the block's chains into ``sums.partial_*[k, b]`` (chain order,
    :class:`_BlockSums`); the block stops at its first non-finite step.

    The MLP is evaluated by the batch-major core
    (:func:`febm_ref._numba.batched_mlp.mlp_energy_grad_x_block`, scratch of
    ``blas_cache_per_chain`` per chain) or, if ``blas_cache_per_chain`` is None, by the
    per-point kernel row by row (scratch of ``point_work_len``, None on the BLAS path).
    Exactly one of the two is None: Numba drops an ``if arg is not None`` block at compile
    time when ``arg`` is None, so each path compiles only its own MLP evaluation."""
    params, sizes, act = mlp.params, mlp.sizes, mlp.act
    x, noise = chains.x, chains.noise
    pre_scale, drift, post_scale = settings.pre_scale, settings.drift, settings.post_scale
    grad_clip, box_lo, box_hi, use_box = settings.grad_clip, settings.box_lo, settings.box_hi, settings.use_box
    partial_e, partial_g, bad_step, bad_value = sums.partial_e, sums.partial_g, sums.bad_step, sums.bad_value
    n_steps = noise.shape[0]
    d = x.shape[1]
    c0 = b * block
    c1 = min(x.shape[0], c0 + block)
    nb = c1 - c0
    xb = np.ascontiguousarray(x[c0:c1])
    energy = np.empty(nb)
    grad = np.empty((nb, d))
    if blas_cache_per_chain is not None:
        cache = np.empty(nb * blas_cache_per_chain)
    if point_work_len is not None:
        work = np.empty(point_work_len)
    for c in range(c0, c1):
        bad_step[c] = -1
    for k in range(n_steps):
        if pre_scale != 0.0:
            for r in range(nb):
                for i in range(d):
                    xb[r, i] = xb[r, i] + pre_scale * noise[k, c0 + r, i]
        if blas_cache_per_chain is not None:
            mlp_energy_grad_x_block(params, sizes, act, xb, energy, grad, cache)
        if point_work_len is not None:
            for r in range(nb):
                energy[r] = mlp_energy_and_grad_x_point(params, sizes, act, xb[r], grad[r], work)
        stop = False
        for r in range(nb):
            e = energy[r]
            gn = 0.0
            for i in range(d):
                gn += grad[r, i] * grad[r, i]
            gn = math.sqrt(gn)
            if not (math.isfinite(e) and math.isfinite(gn)):
                bad_step[c0 + r] = k
                bad_value[c0 + r] = e if not math.isfinite(e) else gn
                stop = True
                continue
            partial_e[k, b] += e
            partial_g[k, b] += gn
            for i in range(d):
                g = grad[r, i]
                if grad_clip > 0.0:
                    g = min(max(g, -grad_clip), grad_clip)
                v = xb[r, i] - drift * g
                if post_scale != 0.0:
                    v = v + post_scale * noise[k, c0 + r, i]
                if use_box:
                    v = min(max(v, box_lo), box_hi)
                xb[r, i] = v
                if not math.isfinite(v):
                    bad_step[c0 + r] = k
                    bad_value[c0 + r] = v
                    stop = True
        if stop:
            break
    for r in range(nb):  # (an element loop: a slice assignment compiles Numba's shape-error text)
        for i in range(d):
            x[c0 + r, i] = xb[r, i]



def _sum_blocks(partial):
    """Per-step sums over blocks ``(K,)`` of ``partial`` ``(K, n_blocks)``: the blocks added
    one after the other in block order, from zero (deterministic whatever the thread count)."""
    out = np.zeros(partial.shape[0])
    for b in range(partial.shape[1]):
        out += partial[:, b]
    return out


def langevin_loop(mlp: MLPParams, chains: ChainArrays, settings: LangevinSettings, stats: StepStats, *,
                  use_blas: bool = True, parallel: bool = False) -> None:
    """Every block of chains (in order in this thread, or the blocks split between threads
    when ``parallel``: :func:`febm_ref._numba.threads.parallel_ranges`, the same numbers), then
    the per-step sums over blocks in block order into ``stats``; ``chains.x`` is updated in
    place. The loop over blocks is Python: no jitted driver to compile (a ``parallel=True``
    driver cost several seconds of compile on a cold start), and at most a few dozen calls."""
    x, noise = chains
    block = chains_per_block(x.shape[0])
    n_blocks = (x.shape[0] + block - 1) // block
    sums = _BlockSums(np.zeros((noise.shape[0], n_blocks)), np.zeros((noise.shape[0], n_blocks)),
                      stats.bad_step, stats.bad_value)
    point_work_len = None if use_blas else mlp_work_size(mlp.sizes)
    blas_cache_per_chain = cache_size(mlp.sizes, 1) if use_blas else None
    settings = LangevinSettings(*(float(v) for v in settings[:6]), bool(settings.use_box))
    def run(b_start, b_stop):
        for b in range(b_start, b_stop):
            _langevin_block(mlp, chains, settings, sums, b, block, point_work_len, blas_cache_per_chain)

    if parallel:
        parallel_ranges(run, n_blocks)
    else:
        run(0, n_blocks)
    stats.energy_sum[:] = _sum_blocks(sums.partial_e)
    stats.grad_norm_sum[:] = _sum_blocks(sums.partial_g)


# --------------------------------------------------------------------------- NumPy twins

def _first_bad(e, g, x_new, k, bad_step, bad_value):
    gn = np.sqrt(np.sum(g * g, axis=1))
    bad_eg = ~(np.isfinite(e) & np.isfinite(gn))
    if bad_eg.any():
        c = np.flatnonzero(bad_eg)
        bad_step[c] = k
        bad_value[c] = np.where(~np.isfinite(e[c]), e[c], gn[c])
        return True
    if x_new is not None:
        bad_x = ~np.all(np.isfinite(x_new), axis=1)
        if bad_x.any():
            c = np.flatnonzero(bad_x)
            bad_step[c] = k
            bad_value[c] = [row[~np.isfinite(row)][-1] for row in x_new[c]]
            return True
    return False


def ula_mlp_loop_numpy(mlp: MLPParams, chains: ChainArrays, settings: LangevinSettings, stats: StepStats,
                       use_blas: bool = True) -> None:
    """NumPy twin of :func:`langevin_loop` with ULA settings (:meth:`LangevinSettings.ula`):
    vectorised over chains, stops all chains at the first non-finite step; ``use_blas`` is
    ignored, it only mirrors the signature of the fused loop."""
    params, sizes, act = mlp
    x, noise = chains
    energy_sum, grad_norm_sum, bad_step, bad_value = stats
    bad_step[:] = -1
    for k in range(noise.shape[0]):
        e, g = mlp_energy_grad_x_batch_numpy(params, sizes, act, x)
        if _first_bad(e, g, None, k, bad_step, bad_value):
            return
        energy_sum[k] = np.sum(e)
        grad_norm_sum[k] = np.sum(np.sqrt(np.sum(g * g, axis=1)))
        with np.errstate(over="ignore", invalid="ignore"):
            x_new = x - settings.drift * g + settings.post_scale * noise[k]
        x[...] = x_new
        if _first_bad(e, g, x_new, k, bad_step, bad_value):
            return


def decoupled_mlp_loop_numpy(mlp: MLPParams, chains: ChainArrays, settings: LangevinSettings, stats: StepStats,
                             use_blas: bool = True) -> None:
    """NumPy twin of :func:`langevin_loop` with D16 settings (:meth:`LangevinSettings.decoupled`)."""
    params, sizes, act = mlp
    x, noise = chains
    energy_sum, grad_norm_sum, bad_step, bad_value = stats
    bad_step[:] = -1
    for k in range(noise.shape[0]):
        x[...] = x + settings.pre_scale * noise[k]
        e, g = mlp_energy_grad_x_batch_numpy(params, sizes, act, x)
        if _first_bad(e, g, None, k, bad_step, bad_value):
            return
        energy_sum[k] = np.sum(e)
        grad_norm_sum[k] = np.sum(np.sqrt(np.sum(g * g, axis=1)))
        if settings.grad_clip > 0.0:
            g = np.clip(g, -settings.grad_clip, settings.grad_clip)
        with np.errstate(over="ignore", invalid="ignore"):
            x_new = x - settings.drift * g
        if settings.use_box:
            x_new = np.clip(x_new, settings.box_lo, settings.box_hi)
        x[...] = x_new
        if _first_bad(e, g, x_new, k, bad_step, bad_value):
            return
