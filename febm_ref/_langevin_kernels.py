"""Numba Langevin loops for MLP energies: ``K`` steps of ``N`` chains in one call
(DESIGN.md D15, D16; section 4: "Langevin chains are the hot loop").

The MLP is the kernel triple ``(params, sizes, act)`` of :mod:`febm_ref._kernels`
(:meth:`febm_ref.energies.MLPEnergy.kernel_args`).

Two ways to evaluate the MLP inside the loop (``use_blas``):

* ``use_blas=False``: per chain, the fused per-point forward/backward
  :func:`febm_ref._kernels.mlp_energy_and_grad_x_point` (the reference path);
* ``use_blas=True`` (the fast default of :mod:`febm_ref.samplers.mlp_langevin`): the same
  forward/backward written as matrix products over a block of :data:`BLOCK` chains
  (``np.dot`` -> BLAS ``dgemm``), :func:`_block_energy_grad`. It agrees with the per-point path
  to rounding (~1e-15), not bit for bit.

Reproducibility: the noise is **pre-drawn** by the caller (``noise`` of shape ``(K, N, d)``
from a ``numpy.random.Generator``), so the trajectory does not depend on the number of threads,
and the NumPy twins (suffix ``_numpy``) fed the same noise give the same trajectory to
rounding. Chains are processed in fixed blocks of :data:`BLOCK` chains (``prange`` over blocks in
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
position, with the offending value in ``bad_value[c]``; the chain (BLAS path: its whole block)
then stops and the wrapper raises. The NumPy twins (``ula_mlp_loop_numpy``,
``decoupled_mlp_loop_numpy``) have the same signature and stop all chains at the first bad step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from febm_ref._batched_mlp import _activate_layer
from febm_ref._jit import njit
from febm_ref._kernels import (mlp_energy_and_grad_x_point,
                               mlp_energy_grad_x_batch_numpy)

BLOCK = 32
"""Chains per block: the unit of parallel work and of the deterministic per-step reduction."""


@njit
def _work_len(sizes):
    """Length of the per-point work buffer (:func:`febm_ref._kernels.mlp_work_size`)."""
    total = 0
    max_width = 0
    for l in range(1, sizes.shape[0] - 1):
        total += sizes[l]
    for l in range(sizes.shape[0] - 1):
        if sizes[l] > max_width:
            max_width = sizes[l]
    return 2 * total + 2 * max_width


@njit
def _ula_block(params, sizes, act, x, noise, step_size, partial_e, partial_g, b, bad_step,
               bad_value):
    """ULA (D15) for the chains of block ``b``; sums of E and |grad E| into ``partial_*[:, b]``."""
    n_steps = noise.shape[0]
    n = x.shape[0]
    d = x.shape[1]
    half = 0.5 * step_size
    root = math.sqrt(step_size)
    work = np.empty(_work_len(sizes))
    grad = np.empty(d)
    for c in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
        xc = x[c]
        bad_step[c] = -1
        for k in range(n_steps):
            e = mlp_energy_and_grad_x_point(params, sizes, act, xc, grad, work)
            gn = 0.0
            for i in range(d):
                gn += grad[i] * grad[i]
            gn = math.sqrt(gn)
            if not (math.isfinite(e) and math.isfinite(gn)):
                bad_step[c] = k
                bad_value[c] = e if not math.isfinite(e) else gn
                break
            partial_e[k, b] += e
            partial_g[k, b] += gn
            ok = True
            for i in range(d):
                v = xc[i] - half * grad[i] + root * noise[k, c, i]
                xc[i] = v
                if not math.isfinite(v):
                    ok = False
                    bad_value[c] = v
            if not ok:
                bad_step[c] = k
                break


@njit
def _decoupled_block(params, sizes, act, x, noise, step_size, noise_scale, grad_clip, box_lo,
                     box_hi, use_box, partial_e, partial_g, b, bad_step, bad_value):
    """D16 for the chains of block ``b`` (see the module docstring)."""
    n_steps = noise.shape[0]
    n = x.shape[0]
    d = x.shape[1]
    work = np.empty(_work_len(sizes))
    grad = np.empty(d)
    for c in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
        xc = x[c]
        bad_step[c] = -1
        for k in range(n_steps):
            for i in range(d):
                xc[i] = xc[i] + noise_scale * noise[k, c, i]
            e = mlp_energy_and_grad_x_point(params, sizes, act, xc, grad, work)
            gn = 0.0
            for i in range(d):
                gn += grad[i] * grad[i]
            gn = math.sqrt(gn)
            if not (math.isfinite(e) and math.isfinite(gn)):
                bad_step[c] = k
                bad_value[c] = e if not math.isfinite(e) else gn
                break
            partial_e[k, b] += e
            partial_g[k, b] += gn
            ok = True
            for i in range(d):
                g = grad[i]
                if grad_clip > 0.0:
                    g = min(max(g, -grad_clip), grad_clip)
                v = xc[i] - step_size * g
                if use_box:
                    v = min(max(v, box_lo), box_hi)
                xc[i] = v
                if not math.isfinite(v):
                    ok = False
                    bad_value[c] = v
            if not ok:
                bad_step[c] = k
                break


@njit
def _unpack_layers(params, sizes):
    """Weight matrices ``W_l`` (n_in, n_out), their transposes and biases of the hidden layers,
    plus the output weights and bias, as contiguous arrays (copies) for BLAS calls."""
    n_layers = sizes.shape[0] - 1
    ws = []
    wts = []
    bs = []
    off = 0
    for l in range(n_layers - 1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        w = np.ascontiguousarray(params[off:off + n_in * n_out]).reshape(n_in, n_out)
        ws.append(w)
        wts.append(np.ascontiguousarray(w.T))
        bs.append(np.ascontiguousarray(params[off + n_in * n_out:off + n_in * n_out + n_out]))
        off += (n_in + 1) * n_out
    n_in = sizes[n_layers - 1]
    w_out = np.ascontiguousarray(params[off:off + n_in])
    b_out = params[off + n_in]
    return ws, wts, bs, w_out, b_out


@njit
def _block_energy_grad(ws, wts, bs, w_out, b_out, act, xb, energy, grad, hs, das):
    """Energies ``(B,)`` and input gradients ``(B, d)`` of the rows of ``xb`` (B, d):
    the MLP forward/backward of :mod:`febm_ref._kernels` written with matrix products
    (BLAS ``dgemm`` through ``np.dot``) over a block of chains. ``hs``/``das`` hold the
    activations and their derivatives per hidden layer (overwritten)."""
    n_hidden = len(ws)
    nb = xb.shape[0]
    for l in range(n_hidden):
        z = hs[l]
        if l == 0:
            np.dot(xb, ws[0], z)
        else:
            np.dot(hs[l - 1], ws[l], z)
        b = bs[l]
        da = das[l]
        width = z.shape[1]
        _activate_layer(act, z, b, da)
    last = hs[n_hidden - 1]
    for c in range(nb):
        e = b_out
        for j in range(last.shape[1]):
            e += last[c, j] * w_out[j]
        energy[c] = e
    # backward: g_l = dE/dz_l, stored in das[l] (overwriting act'(z_l))
    gl = das[n_hidden - 1]
    for c in range(nb):
        for j in range(gl.shape[1]):
            gl[c, j] *= w_out[j]
    for l in range(n_hidden - 1, 0, -1):
        d_prev = hs[l - 1]  # activations of layer l-1 are no longer needed: reuse for dE/da
        np.dot(das[l], wts[l], d_prev)
        g_prev = das[l - 1]
        for c in range(nb):
            for j in range(g_prev.shape[1]):
                g_prev[c, j] *= d_prev[c, j]
    np.dot(das[0], wts[0], grad)


@njit
def _ula_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size, partial_e, partial_g,
                    b, block, bad_step, bad_value):
    """ULA (D15) for the chains of block ``b`` (``block`` chains per block), by matrix products."""
    n_steps = noise.shape[0]
    d = x.shape[1]
    c0 = b * block
    c1 = min(x.shape[0], c0 + block)
    nb = c1 - c0
    xb = np.ascontiguousarray(x[c0:c1])
    energy = np.empty(nb)
    grad = np.empty((nb, d))
    hs = [np.empty((nb, w.shape[1])) for w in ws]
    das = [np.empty((nb, w.shape[1])) for w in ws]
    half = 0.5 * step_size
    root = math.sqrt(step_size)
    for c in range(c0, c1):
        bad_step[c] = -1
    for k in range(n_steps):
        _block_energy_grad(ws, wts, bs, w_out, b_out, act, xb, energy, grad, hs, das)
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
                v = xb[r, i] - half * grad[r, i] + root * noise[k, c0 + r, i]
                xb[r, i] = v
                if not math.isfinite(v):
                    bad_step[c0 + r] = k
                    bad_value[c0 + r] = v
                    stop = True
        if stop:
            break
    x[c0:c1] = xb


@njit
def _decoupled_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size, noise_scale,
                          grad_clip, box_lo, box_hi, use_box, partial_e, partial_g, b, block,
                          bad_step, bad_value):
    """D16 for the chains of block ``b``, by matrix products."""
    n_steps = noise.shape[0]
    d = x.shape[1]
    c0 = b * block
    c1 = min(x.shape[0], c0 + block)
    nb = c1 - c0
    xb = np.ascontiguousarray(x[c0:c1])
    energy = np.empty(nb)
    grad = np.empty((nb, d))
    hs = [np.empty((nb, w.shape[1])) for w in ws]
    das = [np.empty((nb, w.shape[1])) for w in ws]
    for c in range(c0, c1):
        bad_step[c] = -1
    for k in range(n_steps):
        for r in range(nb):
            for i in range(d):
                xb[r, i] = xb[r, i] + noise_scale * noise[k, c0 + r, i]
        _block_energy_grad(ws, wts, bs, w_out, b_out, act, xb, energy, grad, hs, das)
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
                v = xb[r, i] - step_size * g
                if use_box:
                    v = min(max(v, box_lo), box_hi)
                xb[r, i] = v
                if not math.isfinite(v):
                    bad_step[c0 + r] = k
                    bad_value[c0 + r] = v
                    stop = True
        if stop:
            break
    x[c0:c1] = xb


@njit
def _reduce_blocks(partial_e, partial_g, energy_sum, grad_norm_sum):
    """Per-step sums over blocks, in block order (deterministic whatever the thread count)."""
    for k in range(partial_e.shape[0]):
        se = 0.0
        sg = 0.0
        for b in range(partial_e.shape[1]):
            se += partial_e[k, b]
            sg += partial_g[k, b]
        energy_sum[k] = se
        grad_norm_sum[k] = sg


@njit
def ula_mlp_loop_serial(params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
                        bad_step, bad_value, use_blas):
    """D15 loop, one thread (see the module docstring)."""
    n_blocks = (x.shape[0] + BLOCK - 1) // BLOCK
    partial_e = np.zeros((noise.shape[0], n_blocks))
    partial_g = np.zeros((noise.shape[0], n_blocks))
    ws, wts, bs, w_out, b_out = _unpack_layers(params, sizes)
    for b in range(n_blocks):
        if use_blas:
            _ula_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size, partial_e,
                            partial_g, b, BLOCK, bad_step, bad_value)
        else:
            _ula_block(params, sizes, act, x, noise, step_size, partial_e, partial_g, b,
                       bad_step, bad_value)
    _reduce_blocks(partial_e, partial_g, energy_sum, grad_norm_sum)


@njit(parallel=True)
def ula_mlp_loop_parallel(params, sizes, act, x, noise, step_size, energy_sum, grad_norm_sum,
                          bad_step, bad_value, use_blas):
    """D15 loop, ``prange`` over blocks of chains (same numbers as the serial loop)."""
    n_blocks = (x.shape[0] + BLOCK - 1) // BLOCK
    partial_e = np.zeros((noise.shape[0], n_blocks))
    partial_g = np.zeros((noise.shape[0], n_blocks))
    ws, wts, bs, w_out, b_out = _unpack_layers(params, sizes)
    for b in prange(n_blocks):
        if use_blas:
            _ula_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size, partial_e,
                            partial_g, b, BLOCK, bad_step, bad_value)
        else:
            _ula_block(params, sizes, act, x, noise, step_size, partial_e, partial_g, b,
                       bad_step, bad_value)
    _reduce_blocks(partial_e, partial_g, energy_sum, grad_norm_sum)


@njit
def decoupled_mlp_loop_serial(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                              box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
                              bad_value, use_blas):
    """D16 loop, one thread."""
    n_blocks = (x.shape[0] + BLOCK - 1) // BLOCK
    partial_e = np.zeros((noise.shape[0], n_blocks))
    partial_g = np.zeros((noise.shape[0], n_blocks))
    ws, wts, bs, w_out, b_out = _unpack_layers(params, sizes)
    for b in range(n_blocks):
        if use_blas:
            _decoupled_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size,
                                  noise_scale, grad_clip, box_lo, box_hi, use_box, partial_e,
                                  partial_g, b, BLOCK, bad_step, bad_value)
        else:
            _decoupled_block(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                             box_lo, box_hi, use_box, partial_e, partial_g, b, bad_step,
                             bad_value)
    _reduce_blocks(partial_e, partial_g, energy_sum, grad_norm_sum)


@njit(parallel=True)
def decoupled_mlp_loop_parallel(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                                box_lo, box_hi, use_box, energy_sum, grad_norm_sum, bad_step,
                                bad_value, use_blas):
    """D16 loop, ``prange`` over blocks of chains (same numbers as the serial loop)."""
    n_blocks = (x.shape[0] + BLOCK - 1) // BLOCK
    partial_e = np.zeros((noise.shape[0], n_blocks))
    partial_g = np.zeros((noise.shape[0], n_blocks))
    ws, wts, bs, w_out, b_out = _unpack_layers(params, sizes)
    for b in prange(n_blocks):
        if use_blas:
            _decoupled_block_blas(ws, wts, bs, w_out, b_out, act, x, noise, step_size,
                                  noise_scale, grad_clip, box_lo, box_hi, use_box, partial_e,
                                  partial_g, b, BLOCK, bad_step, bad_value)
        else:
            _decoupled_block(params, sizes, act, x, noise, step_size, noise_scale, grad_clip,
                             box_lo, box_hi, use_box, partial_e, partial_g, b, bad_step,
                             bad_value)
    _reduce_blocks(partial_e, partial_g, energy_sum, grad_norm_sum)


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
