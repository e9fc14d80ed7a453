"""Fused MLP kernels (Numba). The definition they implement -- the parameter layout and the
readable NumPy forward/backward pass they are tested against -- is :mod:`febm_ref.models.mlp`.

The MLP energy ``E: R^d -> R`` (docs/theory.md section 7, used for ``E_theta`` and the critic
``H_omega`` of D6) is described by three plain arrays, so that any ``njit`` code (the
Langevin loops of :mod:`febm_ref._numba.langevin`) can evaluate it without Python
objects:

``sizes``  int64 array ``[d, h_1, ..., h_{L-1}, 1]`` (``L = len(sizes) - 1`` affine layers,
           at least one hidden layer, last entry 1).
``act``    int activation code, see :data:`ACTIVATION_CODES`:
           0 tanh, 1 softplus, 2 silu, 3 elu (all C^1; tanh/softplus/silu are analytic).
``params`` float64 flat vector in the **full kernel layout**, layer by layer::

               W_0, b_0, W_1, b_1, ..., W_{L-1}, b_{L-1}

           where ``W_l`` has shape ``(sizes[l], sizes[l+1])`` stored row-major (C order):
           ``W_l[i, j]`` (input unit ``i`` -> output unit ``j``) sits at
           ``offset_l + i * sizes[l+1] + j``; ``b_l`` (length ``sizes[l+1]``) follows it.
           The output bias ``b_{L-1}`` (one number, the last entry) is always present in
           the kernel layout; a model without output bias (the gauge of docs/theory.md section 5)
           keeps it at 0 and drops its gradient (see :class:`febm_ref.models.energies.MLPEnergy`).
           Length: :func:`mlp_n_params` ``= sum_l (sizes[l] + 1) * sizes[l+1]``.

Forward pass, for a row ``x`` (``a_0 = x``)::

    z_l = a_{l-1} W_{l-1} + b_{l-1},   a_l = act(z_l)      (l = 1 .. L-1, hidden)
    E   = a_{L-1} W_{L-1} + b_{L-1}                         (linear scalar output)

Backward pass (hand-derived): ``delta_{L-1} = W_{L-1}[:, 0]``; for ``l = L-1 .. 1``:
``g_l = delta_l * act'(z_l)``, ``dE/dW_{l-1} = outer(a_{l-1}, g_l)``, ``dE/db_{l-1} = g_l``,
``delta_{l-1} = W_{l-1} g_l``; finally ``grad_x E = delta_0``, ``dE/dW_{L-1} = a_{L-1}``,
``dE/db_{L-1} = 1``.

Per-point kernels for use inside other ``njit`` code (no allocation)
---------------------------------------------------------------------
``mlp_energy_point(params, sizes, act, x_row, work) -> float``
    energy only.
``mlp_energy_and_grad_x_point(params, sizes, act, x_row, grad_out, work) -> float``
    energy, and ``grad_x E`` written into ``grad_out`` (length ``d``, overwritten).
``mlp_point_backward(mlp, x_row, grad_x_out, params_grad, work) -> float``
    energy; ``grad_x_out`` overwritten; ``mlp`` is the triple as an :class:`MLPParams`;
    if ``params_grad.wanted`` (a :class:`ParamsGradient` ``(out, weight, wanted)``),
    ``weight * dE/dparams`` is *added* to ``params_grad.out`` (full layout length).
``mlp_point_backward_transposed(mlp, wt, x_row, grad_x_out, params_grad, work) -> float``
    the same with the transposed weights ``wt`` (:func:`mlp_transposed_weights`).

``work`` is a caller-provided float64 buffer of length at least
:func:`mlp_work_size` ``(sizes) = 2 * sum(sizes[1:-1]) + 2 * max(sizes[:-1])``
(activations and activation derivatives of every hidden layer, plus two vectors for the
backward recursion). Allocate it once per chain / thread and reuse it.

Batch kernels (``X`` C-contiguous float64 ``(n, d)``) and their NumPy twins (suffix
``_numpy``; vectorised over the batch, accept complex ``params``/``X`` for complex-step
differentiation when the activation is analytic, i.e. not ELU):

* :func:`mlp_energy_batch` -> ``(n,)``
* :func:`mlp_energy_grad_x_batch` -> ``(E (n,), G (n, d))``
* :func:`mlp_grad_params_batch` -> ``(n, P_full)`` per-sample parameter gradients
* :func:`mlp_weighted_grad_params` -> ``(P_full,)`` = ``sum_i w_i dE(x_i)/dparams`` by
  one backward pass per sample, never forming the ``(n, P_full)`` matrix.

Performance notes (issue 3): from :data:`BATCH_MAJOR_MIN_SAMPLES` samples on,
:func:`mlp_energy_batch`, :func:`mlp_energy_grad_x_batch` and
:func:`mlp_weighted_grad_params` run the batch-major core of :mod:`febm_ref._numba.batched_mlp`
(layer by layer as BLAS products over blocks of 64 rows, bias + activation + derivative fused
into one vectorised pass; the same core serves the critic path of D13 and the blocked Langevin
loops), over fixed chunks of :data:`WEIGHTED_CHUNK` samples, the chunks split between
:func:`numba.get_num_threads` Python threads from :data:`PARALLEL_MIN_SAMPLES` on
(:func:`febm_ref._numba.threads.parallel_ranges` over the GIL-free serial kernel); results
do not depend on the thread count and agree with the per-point kernels and the NumPy twins
to rounding (~1e-14). Below that, and always for :func:`mlp_grad_params_batch`, the per-point
kernels run: the forward layer is a contiguous
axpy over the rows of ``W`` and the backward recursion an axpy over the rows of ``W^T``
(:func:`mlp_transposed_weights`, also usable per point through
:func:`mlp_point_backward_transposed`); both add the same products in the same order as the
plain loops, so those paths agree bit for bit. The one activation implementation is
:func:`febm_ref._numba.batched_mlp.activation_and_derivative` (tanh:
:func:`febm_ref._numba.batched_mlp.tanh_and_derivative`, no libm call). The batch kernels are
Python functions (they pick the path and start the threads); they are not callable from
``njit`` code (use the per-point kernels or the batch-major block there).

The kernels do not validate their inputs (they are called from validated wrappers and
from inner loops); :func:`check_mlp_spec` is the validation the wrappers use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from febm_ref._numba.batched_mlp import (
    _ELU_SWITCH,  # noqa: F401  (tested here)
    _forward_into,
    cache_length,
    mlp_energy_grad_x_block,
    mlp_weighted_backward_cached,
)
from febm_ref._numba.batched_mlp import TANH_RATIONAL_MAX as _TANH_SWITCH  # noqa: F401
from febm_ref._numba.batched_mlp import activation_and_derivative as _activation
from febm_ref._numba.jit import njit
from febm_ref._numba.threads import parallel_ranges
from febm_ref.models.mlp import (  # noqa: F401  (the layout, re-exported)
    ACTIVATION_CODES,
    ACTIVATION_NAMES,
    HOLOMORPHIC_ACTIVATIONS,
    activation_code,
    mlp_n_params,
)


class MLPParams(NamedTuple):
    """The kernel triple of an MLP energy (:mod:`febm_ref.models.mlp`): flat ``params`` (float64,
    read-only), layer ``sizes`` (int64, read-only) and the activation code ``act``."""

    params: np.ndarray
    sizes: np.ndarray
    act: int


class ParamsGradient(NamedTuple):
    """Where a per-point backward pass (:func:`mlp_point_backward`) adds ``weight * dE/dparams``.

    If ``wanted``, ``weight * dE/dparams`` is *added* to ``out`` (full kernel layout,
    :func:`mlp_n_params` long); otherwise nothing is written and ``out`` may be any float64
    vector (the kernels pass the input-gradient row: no allocation). ``wanted`` is a runtime
    value, not a compile-time switch, so the energy + ``grad_x`` path and the parameter-gradient
    paths share one compiled :func:`_point_backward_impl` (Numba types the fields of a named
    tuple as ordinary ``bool``/``float64``, never as literals).
    """

    out: np.ndarray
    weight: float
    wanted: bool


def mlp_work_size(sizes) -> int:
    """Length of the ``work`` buffer of the per-point kernels:
    ``2 * sum(sizes[1:-1]) + 2 * max(sizes[:-1])``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(2 * np.sum(sizes[1:-1]) + 2 * np.max(sizes[:-1]))


def read_only(a: np.ndarray) -> np.ndarray:
    """``a`` itself if it is read-only, else a read-only view of it (no copy).

    Numba compiles a kernel once per argument type, and writeability is part of the type:
    :meth:`febm_ref.models.energies.MLPEnergy.kernel_args` hands out read-only ``params`` and
    ``sizes``, and the public kernels pass writeable ones on as read-only views, so a caller
    with writeable arrays reuses the same compiled kernels instead of compiling them again.
    """
    if not a.flags.writeable:
        return a
    view = a.view()
    view.setflags(write=False)
    return view


def check_mlp_spec(params, sizes, act) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a kernel triple; return ``(params float64, sizes int64, act int)``, the arrays
    C-contiguous and read-only (:func:`read_only`).

    Raises ValueError for an empty hidden-layer list, non-positive widths, an output
    width other than 1, an unknown activation code, a wrong parameter length or
    non-finite parameters.
    """
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or sizes.size < 3:
        raise ValueError(f"sizes must be [d, h_1, ..., 1] with at least one hidden layer, got "
                         f"{sizes.tolist()}")
    if np.any(sizes <= 0) or sizes[-1] != 1:
        raise ValueError(f"sizes must be positive with a final 1 (scalar energy), got {sizes.tolist()}")
    act = int(act)
    if act not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation code {act}; valid codes: {ACTIVATION_CODES}")
    params = np.ascontiguousarray(params, dtype=np.float64)
    expected = mlp_n_params(sizes)
    if params.shape != (expected,):
        raise ValueError(f"params must have shape ({expected},) for sizes {sizes.tolist()}, "
                         f"got {params.shape}")
    if not np.all(np.isfinite(params)):
        raise ValueError("params contain a non-finite value; pass finite numbers")
    return read_only(params), read_only(sizes), act


# --------------------------------------------------------------------------- numba

PARALLEL_MIN_SAMPLES = 4096
"""Batch kernels split their chunks between threads from this many samples on, serial
below. On the shared 2-core development machine a parallel region was measured to cost
more than it saves below a few thousand samples (a busy core stalls the whole region)."""

SAMPLE_CHUNK = 64
"""Samples per parallel work item of the per-sample batch kernels."""

WEIGHTED_CHUNK = 256
"""Samples per partial sum of :func:`mlp_weighted_grad_params`. Fixed, so the summation
order (chunk partial sums, then the chunks in index order) and hence the result are
the same whatever the thread count."""

_TRANSPOSED_MIN_FAN_IN = 8
"""Backward recursion ``delta_{l-1} = W_{l-1} g_l`` uses the transposed copy of the
weights (contiguous axpy over the fan-in) from this fan-in on; both forms add the same
products in the same order, so the choice does not change a single bit."""


@njit(inline="always")
def _n_transposed(sizes):
    total = 0
    for l in range(sizes.shape[0] - 2):
        total += sizes[l] * sizes[l + 1]
    return total


@njit
def mlp_transposed_weights(params, sizes):
    """The hidden-layer weights ``W_0 .. W_{L-2}`` transposed, concatenated: ``W_l^T`` is a
    row-major ``(sizes[l+1], sizes[l])`` block. Argument ``wt`` of
    :func:`mlp_point_backward_transposed`; build it once per parameter value."""
    wt = np.empty(_n_transposed(sizes))
    p_off = 0
    t_off = 0
    for l in range(sizes.shape[0] - 2):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        for i in range(n_in):
            for j in range(n_out):
                wt[t_off + j * n_in + i] = params[p_off + i * n_out + j]
        p_off += (n_in + 1) * n_out
        t_off += n_in * n_out
    return wt


@njit(inline="always")
def _point_work_views(sizes, work):
    """The views of a per-point ``work`` buffer (at least :func:`mlp_work_size` ``(sizes)`` long).

    Returns
    -------
    acts, dacts : float64 arrays
        The activations ``a_l`` and activation derivatives ``act'(z_l)`` of every hidden layer,
        layer after layer (``sum(sizes[1:-1])`` each).
    delta, delta_prev : float64 arrays
        The two vectors of the backward recursion (``max(sizes[:-1])`` each).
    """
    n_layers = sizes.shape[0] - 1
    n_hidden_total = 0
    max_width = 0
    for l in range(n_layers):
        if sizes[l] > max_width:
            max_width = sizes[l]
    for l in range(1, n_layers):
        n_hidden_total += sizes[l]
    acts = work[:n_hidden_total]
    dacts = work[n_hidden_total:2 * n_hidden_total]
    delta = work[2 * n_hidden_total:2 * n_hidden_total + max_width]
    delta_prev = work[2 * n_hidden_total + max_width:2 * n_hidden_total + 2 * max_width]
    return acts, dacts, delta, delta_prev


@njit(inline="always")
def _hidden_layers_forward(mlp, x_row, acts, dacts):
    """Forward pass of one point through the hidden layers.

    Each layer is an axpy ``z = b; z += a_i W[i, :]`` over the contiguous rows of ``W``
    (vectorisable without reassociation: each ``z_j`` still sums ``b_j, a_0 W_0j, a_1 W_1j,
    ...`` in that order), accumulated in place in ``acts`` and then activated.

    Parameters
    ----------
    mlp : MLPParams
        The kernel triple.
    x_row : float64 array
        The point (length ``d``).
    acts, dacts : float64 arrays
        Overwritten with ``a_l`` and ``act'(z_l)`` of every hidden layer, layer after layer
        (:func:`_point_work_views`).

    Returns
    -------
    int
        The offset in ``mlp.params`` of the output layer's weights ``W_{L-1}``.
    """
    params, sizes, act = mlp.params, mlp.sizes, mlp.act
    n_layers = sizes.shape[0] - 1
    p_off = 0
    a_off = 0
    prev_off = -1  # -1 means "the input row"
    for l in range(n_layers - 1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        b_off = p_off + n_in * n_out
        z = acts[a_off:a_off + n_out]
        dz = dacts[a_off:a_off + n_out]
        bias = params[b_off:b_off + n_out]
        for j in range(n_out):
            z[j] = bias[j]
        for i in range(n_in):
            a_i = x_row[i] if prev_off < 0 else acts[prev_off + i]
            w_row = params[p_off + i * n_out:p_off + (i + 1) * n_out]
            for j in range(n_out):
                z[j] += a_i * w_row[j]
        for j in range(n_out):
            a, da = _activation(act, z[j])
            z[j] = a
            dz[j] = da
        prev_off = a_off
        a_off += n_out
        p_off = b_off + n_out
    return p_off


@njit
def _point_backward_impl(mlp, wt, x_row, grad_x_out, params_grad, work):
    """Core of :func:`mlp_point_backward` and :func:`mlp_point_backward_transposed`.

    The forward pass (:func:`_hidden_layers_forward`), the output layer, then the backward
    recursion (module docstring) from ``delta_{L-1} = W_{L-1}[:, 0]``, layer by layer:
    ``g_l = delta_l act'(z_l)``, the layer's parameter gradient (if wanted), and
    ``delta_{l-1} = W_{l-1} g_l``, with ``wt`` (and a fan-in of at least
    :data:`_TRANSPOSED_MIN_FAN_IN`) the axpy ``delta_{l-1} += g_j W^T[j, :]`` over the rows of
    ``W^T``, else one dot product per row of ``W`` (each component adds its products in the
    order ``j = 0, 1, ...`` either way: the same bits). The recursion stays in this function:
    split into ``inline="always"`` helpers (Numba copies a helper's IR into each caller) its
    pieces were measured to add 0.2-0.3 s to the cold compile time of this function.

    Parameters and return value as :func:`mlp_point_backward_transposed`; ``wt`` may also be an
    empty array (then the backward recursion reads ``W`` row-wise).
    """
    params, sizes = mlp.params, mlp.sizes
    acts, dacts, delta, delta_prev = _point_work_views(sizes, work)
    have_wt = wt.shape[0] > 0
    out_off = _hidden_layers_forward(mlp, x_row, acts, dacts)
    # output layer
    n_in = sizes[sizes.shape[0] - 2]
    prev_off = acts.shape[0] - n_in  # acts offset of the last hidden layer
    energy = params[out_off + n_in]
    for i in range(n_in):
        energy += acts[prev_off + i] * params[out_off + i]
    grad_params_out, weight, want_params = params_grad.out, params_grad.weight, params_grad.wanted
    if want_params:
        for i in range(n_in):
            grad_params_out[out_off + i] += weight * acts[prev_off + i]
        grad_params_out[out_off + n_in] += weight

    # backward pass: delta = dE/da_l
    for i in range(n_in):
        delta[i] = params[out_off + i]
    layer_end_p = out_off
    layer_end_a = acts.shape[0]
    layer_end_t = wt.shape[0]  # wt holds W^T of every hidden layer, or nothing
    for l in range(sizes.shape[0] - 3, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        p_start = layer_end_p - (n_in + 1) * n_out
        a_start = layer_end_a - n_out
        t_start = layer_end_t - n_in * n_out
        b_off = p_start + n_in * n_out
        g = delta[:n_out]
        dz = dacts[a_start:a_start + n_out]
        for j in range(n_out):
            g[j] *= dz[j]  # g_l
        if want_params:
            in_start = a_start - n_in  # acts offset of the layer input (if hidden)
            for i in range(n_in):
                a_i = x_row[i] if l == 0 else acts[in_start + i]
                wa = weight * a_i
                row = p_start + i * n_out
                gp_row = grad_params_out[row:row + n_out]
                for j in range(n_out):
                    gp_row[j] += wa * g[j]
            gp_b = grad_params_out[b_off:b_off + n_out]
            for j in range(n_out):
                gp_b[j] += weight * g[j]
        dp = delta_prev[:n_in]
        if have_wt and n_in >= _TRANSPOSED_MIN_FAN_IN:
            for i in range(n_in):
                dp[i] = 0.0
            for j in range(n_out):
                g_j = g[j]
                wt_row = wt[t_start + j * n_in:t_start + (j + 1) * n_in]
                for i in range(n_in):
                    dp[i] += g_j * wt_row[i]
        else:
            for i in range(n_in):
                acc = 0.0
                w_row = params[p_start + i * n_out:p_start + (i + 1) * n_out]
                for j in range(n_out):
                    acc += w_row[j] * g[j]
                dp[i] = acc
        for i in range(n_in):
            delta[i] = dp[i]
        layer_end_p = p_start
        layer_end_a = a_start
        layer_end_t = t_start
    for i in range(sizes[0]):
        grad_x_out[i] = delta[i]
    return energy


@njit(inline="always")
def mlp_point_backward(mlp, x_row, grad_x_out, params_grad, work):
    """Energy of one point; ``grad_x`` into ``grad_x_out``; optionally accumulate
    ``weight * dE/dparams`` into ``params_grad.out``. See the module docstring.

    Parameters
    ----------
    mlp : MLPParams
        The kernel triple.
    x_row : float64 array
        The point (length ``d``).
    grad_x_out : float64 array
        Overwritten with ``grad_x E`` (length ``d``).
    params_grad : ParamsGradient
        Where ``weight * dE/dparams`` is added, if wanted.
    work : float64 array
        Scratch, at least :func:`mlp_work_size` ``(sizes)`` long.

    Returns
    -------
    float
        The energy.
    """
    # work[:0]: an empty ``wt`` without allocating
    return _point_backward_impl(mlp, work[:0], x_row, grad_x_out, params_grad, work)


@njit(inline="always")
def mlp_point_backward_transposed(mlp, wt, x_row, grad_x_out, params_grad, work):
    """:func:`mlp_point_backward` with the transposed weights precomputed by the caller: the
    backward recursion becomes contiguous (faster for wide layers), the result is
    bit-identical.

    Parameters
    ----------
    mlp : MLPParams
        The kernel triple.
    wt : float64 array
        :func:`mlp_transposed_weights` ``(mlp.params, mlp.sizes)``.
    x_row : float64 array
        The point (length ``d``).
    grad_x_out : float64 array
        Overwritten with ``grad_x E`` (length ``d``).
    params_grad : ParamsGradient
        Where ``weight * dE/dparams`` is added, if wanted.
    work : float64 array
        Scratch, at least :func:`mlp_work_size` ``(sizes)`` long.

    Returns
    -------
    float
        The energy.
    """
    return _point_backward_impl(mlp, wt, x_row, grad_x_out, params_grad, work)


@njit(inline="always")
def mlp_energy_point(params, sizes, act, x_row, work):
    """Energy of one point (forward pass only); ``work`` as in :func:`mlp_work_size`."""
    n_layers = sizes.shape[0] - 1
    max_width = 0
    for l in range(n_layers):
        if sizes[l] > max_width:
            max_width = sizes[l]
    cur = work[:max_width]
    nxt = work[max_width:2 * max_width]
    for i in range(sizes[0]):
        cur[i] = x_row[i]
    p_off = 0
    for l in range(n_layers - 1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        b_off = p_off + n_in * n_out
        z = nxt[:n_out]
        bias = params[b_off:b_off + n_out]
        for j in range(n_out):
            z[j] = bias[j]
        for i in range(n_in):
            a_i = cur[i]
            w_row = params[p_off + i * n_out:p_off + (i + 1) * n_out]
            for j in range(n_out):
                z[j] += a_i * w_row[j]
        for j in range(n_out):
            a, _ = _activation(act, z[j])
            z[j] = a
        cur, nxt = nxt, cur
        p_off = b_off + n_out
    n_in = sizes[n_layers - 1]
    energy = params[p_off + n_in]
    for i in range(n_in):
        energy += cur[i] * params[p_off + i]
    return energy


@njit(inline="always")
def mlp_energy_and_grad_x_point(params, sizes, act, x_row, grad_out, work):
    """Energy of one point and its input gradient (written into ``grad_out``, length d)."""
    # grad_out doubles as the (untouched) parameter-gradient output: no allocation here
    return mlp_point_backward(MLPParams(params, sizes, act), x_row, grad_out,
                              ParamsGradient(grad_out, 0.0, False), work)


@njit(inline="always")
def _work_size(sizes):
    total = 0
    max_width = 0
    for l in range(1, sizes.shape[0] - 1):
        total += sizes[l]
    for l in range(sizes.shape[0] - 1):
        if sizes[l] > max_width:
            max_width = sizes[l]
    return 2 * total + 2 * max_width


# Compile time (the rules of febm_ref._numba.jit): every path has its own entry function, so a
# call compiles only what it runs (no mode argument selecting among all kernels; no separate
# parallel build: threads run the serial entries); the serial entries are called from Python
# directly (no driver layer); no int or bool constant is passed to a jitted callee.

# --- per-point batch kernels (below BATCH_MAJOR_MIN_SAMPLES, and mlp_grad_params_batch)

@njit
def _energy_batch_serial(params, sizes, act, X):
    """Energies of the rows of ``X`` by the per-point forward kernel."""
    energies = np.empty(X.shape[0])
    work = np.empty(_work_size(sizes))
    for k in range(X.shape[0]):
        energies[k] = mlp_energy_point(params, sizes, act, X[k], work)
    return energies


@njit
def _energy_grad_x_batch_serial(params, sizes, act, X):
    """Energies and input gradients of the rows of ``X`` by the per-point backward kernel."""
    energies = np.empty(X.shape[0])
    grads = np.empty((X.shape[0], sizes[0]))
    mlp = MLPParams(params, sizes, act)
    wt = mlp_transposed_weights(params, sizes)
    work = np.empty(_work_size(sizes))
    for k in range(X.shape[0]):
        # grads[k] doubles as the (untouched) parameter-gradient output
        energies[k] = _point_backward_impl(mlp, wt, X[k], grads[k], ParamsGradient(grads[k], 1.0, False),
                                           work)
    return energies, grads


@njit
def _grad_params_rows(params, wt, sizes, act, X, start, stop, out):
    """Per-sample parameter gradients of rows ``start .. stop-1`` into the rows of ``out``."""
    mlp = MLPParams(params, sizes, act)
    work = np.empty(_work_size(sizes))
    gx = np.empty(sizes[0])
    for k in range(start, stop):
        _point_backward_impl(mlp, wt, X[k], gx, ParamsGradient(out[k], 1.0, True), work)


@njit
def _weighted_grad_params_chunks(params, sizes, act, X, w):
    """Per-point backward passes: row ``c`` of the result is ``sum_k w_k dE(x_k)/dparams``
    over chunk ``c`` (:data:`WEIGHTED_CHUNK` samples, added in order); :func:`_sum_rows` adds
    the chunks."""
    n = X.shape[0]
    n_chunks = (n + WEIGHTED_CHUNK - 1) // WEIGHTED_CHUNK
    partial = np.zeros((n_chunks, params.shape[0]))
    mlp = MLPParams(params, sizes, act)
    wt = mlp_transposed_weights(params, sizes)
    work = np.empty(_work_size(sizes))
    gx = np.empty(sizes[0])
    for c in range(n_chunks):
        row = partial[c]
        for k in range(c * WEIGHTED_CHUNK, min(n, (c + 1) * WEIGHTED_CHUNK)):
            _point_backward_impl(mlp, wt, X[k], gx, ParamsGradient(row, w[k], True), work)
    return partial


def _sum_rows(partial):
    """``partial.sum(axis=0)`` with the rows added one after the other in index order, from
    zero (NumPy's own sum adds pairwise): a fixed order, whatever the thread count."""
    out = np.zeros(partial.shape[1])
    for row in partial:
        out += row
    return out


# --- batch-major kernels (from BATCH_MAJOR_MIN_SAMPLES samples on)
# The public batch kernels are plain Python functions that pick the per-point or the
# batch-major serial kernel and, for large batches, run it on ranges of chunks in threads.

BATCH_MAJOR_MIN_SAMPLES = 64
"""From this many samples on, the energy, energy + grad_x and weighted-gradient kernels run
the batch-major core of :mod:`febm_ref._numba.batched_mlp` (BLAS products, vectorised tanh);
below it the per-point kernels (less call overhead for a handful of samples)."""

BATCH_MAJOR_BLOCK = 64
"""Rows per batch-major block: each ``dgemm`` stays below OpenBLAS's multithreading
threshold (``m n k <= 2^18``) for hidden widths up to 64, so it runs in the calling (Numba)
thread; with wider layers, set ``OPENBLAS_NUM_THREADS=1`` for threaded batches. A divisor of :data:`WEIGHTED_CHUNK`,
so a serial call (blocks from row 0) and the threaded ranges (blocks from the start of
each chunk) cut a batch into the same blocks."""

if WEIGHTED_CHUNK % BATCH_MAJOR_BLOCK:  # not an assert: it must hold under python -O as well
    raise ImportError("BATCH_MAJOR_BLOCK must divide WEIGHTED_CHUNK (same blocks serial and parallel)")


@njit
def _energy_major(params, sizes, act, X, start, stop, energies):
    """Energies of rows ``start .. stop-1`` into ``energies``, by blocks of
    :data:`BATCH_MAJOR_BLOCK` rows through the batch-major forward pass."""
    cache = np.empty(cache_length(sizes, BATCH_MAJOR_BLOCK))
    for s in range(start, stop, BATCH_MAJOR_BLOCK):
        m = min(stop - s, BATCH_MAJOR_BLOCK)
        e = np.empty(m)
        _forward_into(params, sizes, act, np.ascontiguousarray(X[s:s + m]),
                      cache[:cache_length(sizes, m)], e, None)  # values only
        for k in range(m):
            energies[s + k] = e[k]


@njit
def _energy_grad_x_major(params, sizes, act, X, start, stop, energies, grads):
    """Energies and input gradients of rows ``start .. stop-1``, by blocks of
    :data:`BATCH_MAJOR_BLOCK` rows through the batch-major forward and backward passes."""
    d = sizes[0]
    cache = np.empty(cache_length(sizes, BATCH_MAJOR_BLOCK))
    for s in range(start, stop, BATCH_MAJOR_BLOCK):
        m = min(stop - s, BATCH_MAJOR_BLOCK)
        e = np.empty(m)
        g = np.empty((m, d))
        mlp_energy_grad_x_block(params, sizes, act, np.ascontiguousarray(X[s:s + m]), e, g,
                                cache[:cache_length(sizes, m)])
        for k in range(m):
            energies[s + k] = e[k]
            for i in range(d):
                grads[s + k, i] = g[k, i]


@njit
def _weighted_major(mlp, X, w, chunk, c_start, c_stop, partial):
    """Chunks ``c_start .. c_stop-1`` of ``chunk`` samples: chunk ``c`` adds
    ``sum_k w_k dE(x_k)/dparams`` of its blocks of :data:`BATCH_MAJOR_BLOCK` rows, block by
    block in order, to ``partial[c]`` (the batch-major weighted backward pass).

    Parameters
    ----------
    mlp : MLPParams
        The kernel triple.
    X : float64 array
        The samples ``(n, d)``.
    w : float64 array
        Their weights ``(n,)``, C-contiguous.
    chunk : int
        Samples per chunk (:data:`WEIGHTED_CHUNK`).
    c_start, c_stop : int
        The chunks to run.
    partial : float64 array
        ``(n_chunks, P_full)``; row ``c`` is added to.
    """
    params, sizes, act = mlp.params, mlp.sizes, mlp.act
    n = X.shape[0]
    cache = np.empty(cache_length(sizes, BATCH_MAJOR_BLOCK))
    for c in range(c_start, c_stop):
        row = partial[c]
        stop = min(n, (c + 1) * chunk)
        for s in range(c * chunk, stop, BATCH_MAJOR_BLOCK):
            m = min(stop - s, BATCH_MAJOR_BLOCK)
            xb = np.ascontiguousarray(X[s:s + m])
            cb = cache[:cache_length(sizes, m)]
            e = np.empty(m)
            _forward_into(params, sizes, act, xb, cb, e, cb)
            row += mlp_weighted_backward_cached(params, sizes, xb, cb,
                                                np.ascontiguousarray(w[s:s + m]))


def _n_chunks(n, chunk=WEIGHTED_CHUNK):
    """The number of chunks of ``chunk`` samples that ``n`` samples make (the last may be short)."""
    return (n + chunk - 1) // chunk


def _rows_of_chunks(c_start, c_stop, n, chunk=WEIGHTED_CHUNK):
    """Rows ``(start, stop)`` of chunks ``c_start .. c_stop-1`` of ``chunk`` samples."""
    return c_start * chunk, min(n, c_stop * chunk)


def mlp_energy_batch(params, sizes, act, X):
    """Energies ``(n,)`` of the rows of ``X``: per point below
    :data:`BATCH_MAJOR_MIN_SAMPLES`, batch-major from there on (in parallel from
    :data:`PARALLEL_MIN_SAMPLES` on; each energy is independent of the thread count)."""
    params, sizes = read_only(params), read_only(sizes)
    n = X.shape[0]
    if n < BATCH_MAJOR_MIN_SAMPLES:
        return _energy_batch_serial(params, sizes, act, X)
    energies = np.empty(n)
    if n >= PARALLEL_MIN_SAMPLES:
        def run(c_start, c_stop):
            _energy_major(params, sizes, act, X, *_rows_of_chunks(c_start, c_stop, n), energies)

        parallel_ranges(run, _n_chunks(n))
    else:
        _energy_major(params, sizes, act, X, 0, n, energies)
    return energies


def mlp_energy_grad_x_batch(params, sizes, act, X):
    """Energies ``(n,)`` and input gradients ``(n, d)`` (fused forward + backward): per point
    below :data:`BATCH_MAJOR_MIN_SAMPLES` samples, batch-major from there on (in parallel from
    :data:`PARALLEL_MIN_SAMPLES` on; results do not depend on the thread count)."""
    params, sizes = read_only(params), read_only(sizes)
    n = X.shape[0]
    if n < BATCH_MAJOR_MIN_SAMPLES:
        return _energy_grad_x_batch_serial(params, sizes, act, X)
    energies = np.empty(n)
    grads = np.empty((n, int(sizes[0])))
    if n >= PARALLEL_MIN_SAMPLES:
        def run(c_start, c_stop):
            _energy_grad_x_major(params, sizes, act, X, *_rows_of_chunks(c_start, c_stop, n), energies, grads)

        parallel_ranges(run, _n_chunks(n))
    else:
        _energy_grad_x_major(params, sizes, act, X, 0, n, energies, grads)
    return energies, grads


def mlp_grad_params_batch(params, sizes, act, X):
    """Per-sample parameter gradients ``(n, P_full)`` (full kernel layout; per-point kernel,
    samples in parallel from :data:`PARALLEL_MIN_SAMPLES` on)."""
    params, sizes = read_only(params), read_only(sizes)
    n = X.shape[0]
    out = np.zeros((n, params.shape[0]))
    wt = mlp_transposed_weights(params, sizes)
    if n >= PARALLEL_MIN_SAMPLES:
        def run(c_start, c_stop):
            _grad_params_rows(params, wt, sizes, act, X, *_rows_of_chunks(c_start, c_stop, n, SAMPLE_CHUNK), out)

        parallel_ranges(run, _n_chunks(n, SAMPLE_CHUNK))
    else:
        _grad_params_rows(params, wt, sizes, act, X, 0, n, out)
    return out


def mlp_weighted_grad_params(params, sizes, act, X, w):
    """``sum_i w_i dE(x_i)/dparams`` ``(P_full,)`` without forming the per-sample matrix.

    Below :data:`BATCH_MAJOR_MIN_SAMPLES` samples one per-point backward pass per sample;
    from there on the batch-major weighted backward pass
    (:func:`febm_ref._numba.batched_mlp.mlp_weighted_backward_cached`) over fixed chunks of
    :data:`WEIGHTED_CHUNK` samples (in parallel from :data:`PARALLEL_MIN_SAMPLES` on), whose
    partial sums are added in chunk order: the result does not depend on the thread count.
    """
    params, sizes = read_only(params), read_only(sizes)
    n = X.shape[0]
    if n < BATCH_MAJOR_MIN_SAMPLES:
        return _sum_rows(_weighted_grad_params_chunks(params, sizes, act, X, w))
    w = np.ascontiguousarray(w)
    n_chunks = _n_chunks(n)
    partial = np.zeros((n_chunks, params.shape[0]))
    mlp = MLPParams(params, sizes, act)
    if n >= PARALLEL_MIN_SAMPLES:
        parallel_ranges(lambda a, b: _weighted_major(mlp, X, w, WEIGHTED_CHUNK, a, b, partial), n_chunks)
    else:
        _weighted_major(mlp, X, w, WEIGHTED_CHUNK, 0, n_chunks, partial)
    return _sum_rows(partial)
