"""Numba Langevin loops for MLP energies: ``K`` steps of ``N`` chains in one call
(docs/theory.md D15, D16; section 4: "Langevin chains are the hot loop").

The MLP is the kernel triple ``(params, sizes, act)`` of :mod:`febm_ref._numba.kernels`
(:meth:`febm_ref.models.energies.MLPEnergy.kernel_args`).

One block driver, :func:`_langevin_block`, runs both samplers (they differ only in where the
noise enters and in the optional clippings), and two ways to evaluate the MLP inside it
(``use_blas``):

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
function of ``N`` only, never of the thread count; ``prange`` over blocks in
the ``_parallel`` build); each block keeps its chains in a private buffer for all ``K`` steps;
per-step sums over chains are accumulated per block and then added in block order, so results
and diagnostics are bit-identical whatever the thread count.

Kernels (no input validation: call them through :mod:`febm_ref.samplers.mlp_langevin`)
----------------------------------------------------------------------------------------
``ula_mlp_loop_{serial,parallel}(params, sizes, act, x, noise, step_size, energy_sum,
grad_norm_sum, bad_step, bad_value, use_blas)``
    D15, in place on ``x`` (N, d): for ``k = 0..K-1``,
    ``x <- x - (eps/2) grad E(x) + sqrt(eps) noise[k]``.
``decoupled_mlp_loop_{serial,parallel}(params, sizes, act, x, noise, step_size, noise_scale,
grad_clip, box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas)``
    D16, in place: ``x' = x + sigma_n noise[k]``, ``g = grad E(x')`` (clipped to
    ``[-grad_clip, grad_clip]`` if ``grad_clip > 0``), ``x <- x' - lambda g``, then
    ``clip(x, box_lo, box_hi)`` if ``use_box``.

Outputs: ``energy_sum[k]`` / ``grad_norm_sum[k]`` (length K) are the sums over chains of
``E`` and ``|grad E|`` at the point where step ``k`` evaluates the gradient (``x_k`` for ULA,
the noised point for D16); divide by N for the means. ``bad_step[c]`` (int64, N) is ``-1`` or
the first step (0-based) at which chain ``c`` produced a non-finite energy, gradient or
position, with the offending value in ``bad_value[c]``; its block of chains then stops and the
wrapper raises. The NumPy twins (``ula_mlp_loop_numpy``,
``decoupled_mlp_loop_numpy``) have the same signature and stop all chains at the first bad step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from febm_ref._numba.batched_mlp import cache_size, mlp_energy_grad_x_block
from febm_ref._numba.jit import njit
from febm_ref._numba.kernels import mlp_energy_and_grad_x_point, mlp_work_size
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
``prange`` loop each product then started OpenBLAS threads of its own, and the parallel loop
fell from 3.5M to 1.6M chain-steps/s (N = 1024, 2 cores). The limit holds for hidden widths up
to 64 (the 2-64-64-1 models of the paper's toys); with wider layers the products of a block
exceed it, and the ``numba-parallel`` backend should run with ``OPENBLAS_NUM_THREADS=1``."""


def chains_per_block(n_chains: int) -> int:
    """Chains per block for ``n_chains`` chains: the unit of parallel work and of the
    deterministic per-step reduction (depends on ``n_chains`` only, so results do not depend on
    the number of threads)."""
    return LARGE_BLOCK if n_chains >= LARGE_BLOCK_FROM else SMALL_BLOCK


@njit
def _langevin_block(params, sizes, act, x, noise, pre_scale, drift, post_scale, grad_clip, box_lo,
                    box_hi, use_box, partial_e, partial_g, b, block, point_work_len,
                    blas_cache_per_chain, bad_step, bad_value):
    """All ``K`` steps of the chains of block ``b``; per step ``k`` and chain:
    ``x' = x + pre_scale z_k`` (skipped if ``pre_scale == 0``), ``g = grad E(x')`` (clipped to
    ``[-grad_clip, grad_clip]`` if ``grad_clip > 0``),
    ``x <- x' - drift g + post_scale z_k`` (last term skipped if ``post_scale == 0``), then
    ``clip(x, box_lo, box_hi)`` if ``use_box``. ULA (D15): ``(0, eps/2, sqrt(eps))``; D16:
    ``(sigma, lambda, 0)``. Sums of E and |grad E| over the block's chains into
    ``partial_*[k, b]`` (chain order); the block stops at its first non-finite step.

    The MLP is evaluated by the batch-major core
    (:func:`febm_ref._numba.batched_mlp.mlp_energy_grad_x_block`, scratch of
    ``blas_cache_per_chain`` per chain) or, if ``blas_cache_per_chain`` is None, by the
    per-point kernel row by row (scratch of ``point_work_len``, None on the BLAS path).
    Exactly one of the two is None: Numba drops an ``if arg is not None`` block at compile
    time when ``arg`` is None, so each path compiles only its own MLP evaluation."""
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


@njit(parallel=True)
def _langevin_blocks_parallel(params, sizes, act, x, noise, pre_scale, drift, post_scale,
                              grad_clip, box_lo, box_hi, use_box, partial_e, partial_g, block,
                              point_work_len, blas_cache_per_chain, bad_step, bad_value):
    """:func:`_langevin_block` for every block, ``prange`` over blocks (the same numbers as
    the blocks in order). Entered from Python only (a cached njit caller of a parallel
    function does not start the pool)."""
    for b in prange(partial_e.shape[1]):
        _langevin_block(params, sizes, act, x, noise, pre_scale, drift, post_scale, grad_clip,
                        box_lo, box_hi, use_box, partial_e, partial_g, np.int64(b), block,
                        point_work_len, blas_cache_per_chain, bad_step, bad_value)


def _run(parallel, params, sizes, act, x, noise, pre_scale, drift, post_scale, grad_clip,
         box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas):
    """Every block of chains (in order in this thread, or in parallel), then the per-step sums
    over blocks in block order. The serial loop over blocks is Python: one jitted function
    less to compile, and at most a few dozen calls per run."""
    block = chains_per_block(x.shape[0])
    n_blocks = (x.shape[0] + block - 1) // block
    partial_e = np.zeros((noise.shape[0], n_blocks))
    partial_g = np.zeros((noise.shape[0], n_blocks))
    point_work_len = None if use_blas else mlp_work_size(sizes)
    blas_cache_per_chain = cache_size(sizes, 1) if use_blas else None
    args = (params, sizes, act, x, noise, float(pre_scale), float(drift), float(post_scale),
            float(grad_clip), float(box_lo), float(box_hi), bool(use_box), partial_e, partial_g)
    scratch = (point_work_len, blas_cache_per_chain, bad_step, bad_value)
    if parallel:
        _langevin_blocks_parallel(*args, block, *scratch)
    else:
        for b in range(n_blocks):
            _langevin_block(*args, b, block, *scratch)
    energy_sum[:] = _sum_blocks(partial_e)
    grad_norm_sum[:] = _sum_blocks(partial_g)


def _ula(parallel, params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum, bad_step,
         bad_value, use_blas):
    _run(parallel, params, sizes, act, x, noise, 0.0, 0.5 * step_size, math.sqrt(step_size),
         0.0, 0.0, 0.0, False, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas)


def _decoupled(parallel, params, sizes, act, x, noise, step_size, noise_scale, grad_clip, box_lo,
               box_hi, use_box, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas):
    _run(parallel, params, sizes, act, x, noise, noise_scale, step_size, 0.0, grad_clip, box_lo,
         box_hi, use_box, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas)


def ula_mlp_loop_serial(params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
                        bad_step, bad_value, use_blas):
    """D15 loop, one thread (see the module docstring)."""
    _ula(False, params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
         bad_step, bad_value, use_blas)


def ula_mlp_loop_parallel(params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
                          bad_step, bad_value, use_blas):
    """D15 loop, ``prange`` over blocks of chains (same numbers as the serial loop)."""
    _ula(True, params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
         bad_step, bad_value, use_blas)


def decoupled_mlp_loop_serial(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                              box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
                              bad_value, use_blas):
    """D16 loop, one thread."""
    _decoupled(False, params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
               box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step, bad_value, use_blas)


def decoupled_mlp_loop_parallel(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                                box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
                                bad_value, use_blas):
    """D16 loop, ``prange`` over blocks of chains (same numbers as the serial loop)."""
    _decoupled(True, params, sizes, act, x, noise, step_size, noise_scale,
               grad_clip, box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
               bad_value, use_blas)


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


def ula_mlp_loop_numpy(params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
                       bad_step, bad_value, use_blas=True):
    """NumPy twin of the D15 loop (vectorised over chains; stops all chains at the first
    non-finite step; ``use_blas`` is ignored, it only mirrors the jitted signature)."""
    bad_step[:] = -1
    for k in range(noise.shape[0]):
        e, g = mlp_energy_grad_x_batch_numpy(params, sizes, act, x)
        if _first_bad(e, g, None, k, bad_step, bad_value):
            return
        energy_sum[k] = np.sum(e)
        grad_norm_sum[k] = np.sum(np.sqrt(np.sum(g * g, axis=1)))
        with np.errstate(over="ignore", invalid="ignore"):
            x_new = x - (0.5 * step_size) * g + math.sqrt(step_size) * noise[k]
        x[...] = x_new
        if _first_bad(e, g, x_new, k, bad_step, bad_value):
            return


def decoupled_mlp_loop_numpy(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                             box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
                             bad_value, use_blas=True):
    """NumPy twin of :func:`decoupled_mlp_loop`."""
    bad_step[:] = -1
    for k in range(noise.shape[0]):
        x[...] = x + noise_scale * noise[k]
        e, g = mlp_energy_grad_x_batch_numpy(params, sizes, act, x)
        if _first_bad(e, g, None, k, bad_step, bad_value):
            return
        energy_sum[k] = np.sum(e)
        grad_norm_sum[k] = np.sum(np.sqrt(np.sum(g * g, axis=1)))
        if grad_clip > 0.0:
            g = np.clip(g, -grad_clip, grad_clip)
        with np.errstate(over="ignore", invalid="ignore"):
            x_new = x - step_size * g
        if use_box:
            x_new = np.clip(x_new, box_lo, box_hi)
        x[...] = x_new
        if _first_bad(e, g, x_new, k, bad_step, bad_value):
            return
