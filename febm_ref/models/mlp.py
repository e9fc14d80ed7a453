"""The MLP energy, defined: parameter layout and a readable NumPy forward/backward pass.

This module is the definition of the MLP ``E: R^d -> R`` (docs/theory.md section 7, used for
``E_theta`` and the critic ``H_omega`` of D6); the fused Numba kernels of
:mod:`febm_ref._numba.kernels` and :mod:`febm_ref._numba.batched_mlp` implement the same
function fast and are tested against the functions here (to rounding).

``sizes``  int64 array ``[d, h_1, ..., h_{L-1}, 1]`` (``L = len(sizes) - 1`` affine layers,
           at least one hidden layer, last entry 1).
``act``    int activation code, see :data:`ACTIVATION_CODES`:
           0 tanh, 1 softplus, 2 silu, 3 elu (all C^1; tanh/softplus/silu are analytic).
``params`` float64 flat vector, layer by layer ``W_0, b_0, W_1, b_1, ..., W_{L-1}, b_{L-1}``
           with ``W_l`` of shape ``(sizes[l], sizes[l+1])`` row-major; length
           :func:`mlp_n_params` ``= sum_l (sizes[l] + 1) * sizes[l+1]``.

Forward pass, for a row ``x`` (``a_0 = x``)::

    z_l = a_{l-1} W_{l-1} + b_{l-1},   a_l = act(z_l)      (l = 1 .. L-1, hidden)
    E   = a_{L-1} W_{L-1} + b_{L-1}                         (linear scalar output)

Backward pass: ``delta_{L-1} = W_{L-1}[:, 0]``; for ``l = L-1 .. 1``:
``g_l = delta_l * act'(z_l)``, ``dE/dW_{l-1} = outer(a_{l-1}, g_l)``, ``dE/db_{l-1} = g_l``,
``delta_{l-1} = W_{l-1} g_l``; finally ``grad_x E = delta_0``, ``dE/dW_{L-1} = a_{L-1}``,
``dE/db_{L-1} = 1``.

The functions are vectorised over a batch ``X (n, d)`` and accept complex ``params``/``X``
(complex-step differentiation) when the activation is analytic (not ELU). Their names keep the
``_numpy`` suffix of the 0.2.0 API (``febm_ref._kernels.*_numpy``).
"""

from __future__ import annotations

import numpy as np

ACTIVATION_CODES = {"tanh": 0, "softplus": 1, "silu": 2, "elu": 3}
"""Activation name -> integer code used by the kernels."""

ACTIVATION_NAMES = {code: name for name, code in ACTIVATION_CODES.items()}
HOLOMORPHIC_ACTIVATIONS = ("tanh", "softplus", "silu")
"""Activations whose NumPy twin is analytic, so complex-step derivatives are exact."""


def activation_code(name) -> int:
    """Return the kernel code of activation ``name`` (ValueError naming the valid ones)."""
    if isinstance(name, str) and name in ACTIVATION_CODES:
        return ACTIVATION_CODES[name]
    raise ValueError(f"unknown activation {name!r}; valid activations: "
                     f"{', '.join(ACTIVATION_CODES)}")


def mlp_n_params(sizes) -> int:
    """Length of the full kernel parameter layout: ``sum_l (sizes[l] + 1) sizes[l+1]``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(np.sum((sizes[:-1] + 1) * sizes[1:]))


def _sigmoid_numpy(z):
    out = np.empty_like(z)
    pos = z.real > 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def activation_value_numpy(act: int, z):
    """``act(z)`` elementwise: the value of :func:`activation_numpy`, by the same expressions
    (an energy needs no derivative; for softplus the derivative, a sigmoid, costs as much)."""
    if act == 0:
        return np.tanh(z)
    if act == 1:
        a = np.empty_like(z)
        pos = z.real > 0
        a[pos] = z[pos] + np.log1p(np.exp(-z[pos]))
        a[~pos] = np.log1p(np.exp(z[~pos]))
        return a
    if act == 2:
        return z * _sigmoid_numpy(z)
    if act == 3:
        if np.iscomplexobj(z):
            raise ValueError("ELU is not holomorphic at 0: use finite differences, not the complex step")
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    raise ValueError(f"unknown activation code {act}; valid codes: {ACTIVATION_CODES}")


def activation_numpy(act: int, z):
    """``(act(z), act'(z))`` elementwise; analytic (complex-step safe) except ELU.

    Softplus and the sigmoid branch on ``Re z`` between two expressions of the same
    analytic function, so they stay holomorphic and overflow-free. The values are those of
    :func:`activation_value_numpy`.
    """
    if act == 0:
        # sech^2 = 4t/(1+t)^2 with t = exp(-2z) (Re z > 0) or exp(2z): stable and analytic
        t = np.exp(np.where(z.real > 0, -2.0, 2.0) * z)
        return activation_value_numpy(act, z), 4.0 * t / ((1.0 + t) * (1.0 + t))
    if act == 1:
        return activation_value_numpy(act, z), _sigmoid_numpy(z)
    if act == 2:
        s = _sigmoid_numpy(z)
        return z * s, s * (1.0 + z * _sigmoid_numpy(-z))
    if act == 3:
        return activation_value_numpy(act, z), np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0)))
    raise ValueError(f"unknown activation code {act}; valid codes: {ACTIVATION_CODES}")


def _unpack_numpy(params, sizes):
    layers = []
    off = 0
    for l in range(len(sizes) - 1):
        n_in, n_out = int(sizes[l]), int(sizes[l + 1])
        W = params[off:off + n_in * n_out].reshape(n_in, n_out)
        off += n_in * n_out
        b = params[off:off + n_out]
        off += n_out
        layers.append((W, b))
    return layers


def _forward_numpy(params, sizes, act, X, derivatives: bool = True):
    """Energies, layers, activations and (if ``derivatives``; else ``[]``) their derivatives."""
    layers = _unpack_numpy(params, sizes)
    acts = [X]
    dacts = []
    a = X
    for W, b in layers[:-1]:
        if derivatives:
            a, da = activation_numpy(act, a @ W + b)
            dacts.append(da)
        else:
            a = activation_value_numpy(act, a @ W + b)
        acts.append(a)
    W, b = layers[-1]
    energy = (a @ W + b)[:, 0]
    return energy, layers, acts, dacts


def _backward_numpy(layers, acts, dacts):
    """Return ``grad_x (n, d)`` and the per-layer ``g_l (n, h_l)`` of the backward pass."""
    W_out = layers[-1][0]
    delta = np.broadcast_to(W_out[:, 0], acts[-1].shape)
    gs = []
    for l in range(len(layers) - 2, -1, -1):
        g = delta * dacts[l]
        gs.append(g)
        delta = g @ layers[l][0].T
    return delta, gs[::-1]


def mlp_energy_batch_numpy(params, sizes, act, X):
    """NumPy twin of :func:`mlp_energy_batch` (complex inputs allowed)."""
    return _forward_numpy(params, sizes, act, X, derivatives=False)[0]


def mlp_energy_grad_x_batch_numpy(params, sizes, act, X):
    """NumPy twin of :func:`mlp_energy_grad_x_batch`."""
    energy, layers, acts, dacts = _forward_numpy(params, sizes, act, X)
    grad_x, _ = _backward_numpy(layers, acts, dacts)
    return energy, np.ascontiguousarray(grad_x)


def mlp_grad_params_batch_numpy(params, sizes, act, X):
    """NumPy twin of :func:`mlp_grad_params_batch` (forms ``(n, P_full)``)."""
    energy, layers, acts, dacts = _forward_numpy(params, sizes, act, X)
    _, gs = _backward_numpy(layers, acts, dacts)
    n = X.shape[0]
    blocks = []
    for l, g in enumerate(gs):
        blocks.append((acts[l][:, :, None] * g[:, None, :]).reshape(n, acts[l].shape[1] * g.shape[1]))
        blocks.append(g)
    blocks.append(acts[-1])
    blocks.append(np.ones((n, 1), dtype=acts[-1].dtype))
    return np.concatenate(blocks, axis=1)


def mlp_weighted_grad_params_numpy(params, sizes, act, X, w):
    """NumPy twin of :func:`mlp_weighted_grad_params`: one weighted backward pass,
    ``dW_l = a_{l-1}^T (w * g_l)``; never forms ``(n, P_full)``."""
    energy, layers, acts, dacts = _forward_numpy(params, sizes, act, X)
    _, gs = _backward_numpy(layers, acts, dacts)
    blocks = []
    for l, g in enumerate(gs):
        wg = w[:, None] * g
        blocks.append((acts[l].T @ wg).ravel())
        blocks.append(wg.sum(axis=0))
    blocks.append(w @ acts[-1])
    blocks.append(np.atleast_1d(np.sum(w)))
    return np.concatenate(blocks)
