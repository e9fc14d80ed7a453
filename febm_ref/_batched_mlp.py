"""The batch-major MLP core and the one activation implementation of the package.

Every MLP evaluation of :mod:`febm_ref` (the energy ``E_theta`` and the critic ``H_omega``,
DESIGN.md section 7; the Langevin loops of D15/D16; the weighted backward pass of the
estimator D13) goes through this module or through the per-point kernels of
:mod:`febm_ref._kernels`, and both use the activations defined here:

* :func:`tanh_and_derivative` ``(z) -> (tanh z, sech^2 z)``: no libm call, branch-free
  arithmetic that LLVM vectorises over a layer (SIMD), full relative accuracy of both
  values, including saturation (tested against mpmath on both sides of every switch);
* :func:`activation_and_derivative` ``(act, z)``: every activation code of
  :data:`febm_ref._kernels.ACTIVATION_CODES` (tanh through the function above).

The MLP is the kernel triple ``(params, sizes, act)`` of :mod:`febm_ref._kernels` (full
parameter layout ``W_0, b_0, ..., W_{L-1}, b_{L-1}``, ``W_l`` row-major ``(sizes[l],
sizes[l+1])``). Here a block of ``n`` points is processed layer by layer as matrix products
(BLAS ``dgemm`` through Numba's ``np.dot``), the bias, activation and its derivative fused
into one vectorised pass over each layer, and the activations cached for the backward pass:

* :func:`mlp_forward_cached` ``(params, sizes, act, X, cache) -> E (n,)`` fills ``cache``
  (per hidden layer ``l``: an ``(n, h_l)`` block of activations ``a_l``, then one of
  derivatives ``act'(z_l)``; length :func:`cache_size`);
* :func:`mlp_grad_x_from_cache` ``(params, sizes, X, cache, grad)``: input gradients
  ``(n, d)``; consumes the cache (overwrites it with the backward quantities);
* :func:`mlp_energy_grad_x_block` = both, into caller-provided arrays (no allocation: the
  inner call of the Langevin loops and of the large-batch kernels of :mod:`febm_ref._kernels`);
* :func:`mlp_weighted_backward_cached` ``(params, sizes, X, cache, w) -> (P_full,)``
  ``= sum_i w_i dE(x_i)/dparams`` without forming the per-sample matrix (D13's critic path,
  :class:`BatchedMLP`).

Mathematics (same as :mod:`febm_ref._kernels`): ``z_l = a_{l-1} W_{l-1} + b_{l-1}``,
``a_l = act(z_l)``, ``E = a_{L-1} W_{L-1} + b_{L-1}``; backward ``G_l = delta_l * act'(z_l)``,
``delta_{L-1} = W_{L-1}[:, 0]``, ``delta_{l-1} = G_l W_{l-1}^T``, ``grad_x E = delta_0``,
``dW_{l-1} = a_{l-1}^T G_l``. Only the summation order differs from the per-point kernels
(BLAS): results agree with the NumPy twins :func:`febm_ref._kernels.mlp_energy_grad_x_batch_numpy`
etc. to ~1e-14, not bit for bit. Blocks of at most 64 points keep each ``dgemm`` below
OpenBLAS's multithreading threshold (``m n k <= 2^18``), so the products run in the calling
thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from febm_ref._jit import njit

__all__ = ["cache_size", "tanh_and_derivative", "activation_and_derivative",
           "mlp_forward_cached", "mlp_grad_x_from_cache", "mlp_energy_grad_x_block",
           "mlp_weighted_backward_cached", "BatchedMLP", "limit_blas_threads"]


def cache_size(sizes, n: int) -> int:
    """Length of the float64 cache for ``n`` points: ``2 n sum(hidden widths)``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(2 * n * np.sum(sizes[1:-1]))


# --------------------------------------------------------------------------- activations
# Numba has no SIMD tanh without Intel SVML (math.tanh/exp are scalar libm calls), so tanh is
# written as polynomial/rational arithmetic plus an exponent assembled from bits; the bit
# casts are LLVM intrinsics (plain NumPy views under NUMBA_DISABLE_JIT).

if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the no-JIT test run
    def _float64_bits(f):
        return int(np.float64(f).view(np.int64))

    def _float64_from_bits(i):
        return float(np.int64(i).view(np.float64))
else:
    from llvmlite import ir as _ir
    from numba import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _float64_bits(typingctx, f):
        """The IEEE-754 bits of a float64 as int64 (LLVM bitcast)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.IntType(64))
        return _types.int64(_types.float64), codegen

    @_intrinsic
    def _float64_from_bits(typingctx, i):
        """The float64 whose IEEE-754 bits are the int64 ``i`` (LLVM bitcast)."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], _ir.DoubleType())
        return _types.float64(_types.int64), codegen


TANH_RATIONAL_MAX = 0.625
"""``|z|`` below which tanh uses the Cephes rational form, at and above which ``exp(-2|z|)``."""

_EXP_ARG_MAX = 1000.0
"""Cap of ``y = 2|z|`` in :func:`tanh_and_derivative`: there ``tanh`` rounds to 1 and
``sech^2 = 4 e^{-y}`` to 0 in float64 already (from ``y > 747``), so the cap changes no
result; it keeps ``2^{-n} = 2^{-n_1} 2^{-n_2}`` (``n <= 1443``) two normal factors."""


@njit
def tanh_and_derivative(z):
    """``(tanh z, sech^2 z)`` in float64 without libm calls (LLVM vectorises loops over it).

    ``|z| < 0.625`` (:data:`TANH_RATIONAL_MAX`): ``tanh z = z + z s P(s)/Q(s)``, ``s = z^2``
    (Cephes rational, S. Moshier), computed as ``(z Q + z s P)/Q``; ``sech^2 = (1 - t)(1 + t)``
    (``t < 0.56``: no cancellation). Otherwise, with ``e = exp(-y)``, ``y = 2|z|``:
    ``tanh|z| = (1 - e)/(1 + e)`` and ``sech^2 z = 4 e/(1 + e)^2`` (``e <= 0.29``: no
    cancellation, full relative accuracy also when saturated, where ``1 - tanh^2`` would
    cancel). ``e`` by Cody-Waite reduction ``y = n ln 2 + r``, ``|r| <= ln(2)/2`` and the Cephes
    Pade form ``exp(-r) = (Q - rP)/(Q + rP)`` (``P, Q`` of ``r^2``): with ``u = 2^{-n}(Q - rP)``
    and ``v = Q + rP``, ``tanh|z| = (v - u)/(v + u)`` and ``sech^2 = 4uv/(v + u)^2``. Both
    branches are computed and one is selected (two divisions per call, no data-dependent
    control flow; measured 2.0 ns per value in a loop vs 6.5 ns with libm). Measured against mpmath: ``tanh`` within 2 ulp, ``sech^2`` within 1e-15
    relative while it is a normal number (``|z| < 354``). Odd/even symmetry restores the
    sign; ``tanh(+-0) = +-0``, ``tanh(+-inf) = +-1``, ``sech^2(+-inf) = 0``; NaN propagates.
    """
    az = abs(z)
    # rational branch. Every quantity of both branches is computed unconditionally and the
    # ternaries only select between named values: LLVM then turns them into selects and
    # vectorises the loop (a ternary with arithmetic inside stays a branch and blocks it).
    s = az * az
    p = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s - 1.61468768441708447952e3
    q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s + 4.84406305325125486048e3
    num_small = az * q + az * s * p
    # exponential branch: y = n ln2 + r (ln2 = C1 + C2, C1 with few bits so n C1 is exact)
    y = 2.0 * az
    cap = _EXP_ARG_MAX
    y = y if y < cap else cap  # NaN -> the cap too (the result is replaced below)
    n = math.floor(1.4426950408889634073599 * y + 0.5)
    r = y - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = (((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
           + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0)
    # 2^{-n} = 2^{-n1} 2^{-n2}, both normal for 0 <= n <= 2044; n + 1.5 * 2^52 carries the
    # integer n in its low mantissa bits
    n_int = _float64_bits(n + 6755399441055744.0) - 0x4338000000000000
    n1 = n_int >> 1
    n2 = n_int - n1
    u = (qx - px) * _float64_from_bits((1023 - n1) << 52) * _float64_from_bits((1023 - n2) << 52)
    v = qx + px
    num_large = v - u
    den_large = v + u
    small = az < TANH_RATIONAL_MAX
    num = num_small if small else num_large
    den = q if small else den_large
    t = num / den
    dnum_small = (den - num) * (den + num)  # (1 - t)(1 + t) den^2
    dnum_large = 4.0 * u * v
    dnum = dnum_small if small else dnum_large
    d = dnum / (den * den)
    t = math.copysign(t, z)
    is_num = z == z
    return (t if is_num else z), (d if is_num else z)


_ELU_SWITCH = -math.log(2.0)
"""``z`` above which (for ``z <= 0``) ELU uses ``expm1`` (``exp(z) >= 1/2``), below ``exp``."""


@njit
def activation_and_derivative(act, z):
    """Return ``(act(z), act'(z))`` for a real scalar (stable forms, no clipping).

    tanh (code 0): :func:`tanh_and_derivative`. Softplus (1) and SiLU (2) with one ``exp``
    of ``-|z|`` (``1 - sigmoid`` as ``sigmoid(-z)``, without cancellation). ELU (3) for
    ``z <= 0``: ``expm1(z)`` and ``1 + expm1(z)`` for ``z >= -ln 2``, ``exp(z) - 1`` and
    ``exp(z)`` below (full relative accuracy on both sides).
    """
    if act == 0:
        return tanh_and_derivative(z)
    if act == 1:
        if z > 0.0:
            e = math.exp(-z)
            return z + math.log1p(e), 1.0 / (1.0 + e)
        e = math.exp(z)
        return math.log1p(e), e / (1.0 + e)
    if act == 2:
        # silu' = s (1 + z (1 - s)) with 1 - s = sigmoid(-z) computed without cancellation
        if z > 0.0:
            e = math.exp(-z)
            s = 1.0 / (1.0 + e)
            s_neg = e / (1.0 + e)
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
            s_neg = 1.0 / (1.0 + e)
        return z * s, s * (1.0 + z * s_neg)
    if act == 3:
        if z > 0.0:
            return z, 1.0
        if z >= _ELU_SWITCH:
            t = math.expm1(z)
            return t, 1.0 + t
        e = math.exp(z)
        return e - 1.0, e
    return math.nan, math.nan


# --------------------------------------------------------------------------- batch-major core

BLAS_MIN_FAN_IN = 8
"""Hidden layers with a smaller fan-in (e.g. the input layer of a 2-D model) form
``a_{l-1} W_{l-1}`` by axpy loops over the rows of ``W`` instead of a ``dgemm`` call."""


@njit
def _activate_layer(act, Z, b, D):
    """In place over the rows of ``Z`` (n, h): ``Z <- act(Z + b)``, ``D <- act'(Z + b)`` (the
    fused bias + activation + derivative pass; tanh has no libm call, so it vectorises)."""
    n = Z.shape[0]
    h = Z.shape[1]
    if act == 0:
        for k in range(n):
            zr = Z[k]
            dr = D[k]
            for j in range(h):
                a, da = tanh_and_derivative(zr[j] + b[j])
                zr[j] = a
                dr[j] = da
    else:
        for k in range(n):
            zr = Z[k]
            dr = D[k]
            for j in range(h):
                a, da = activation_and_derivative(act, zr[j] + b[j])
                zr[j] = a
                dr[j] = da


@njit
def _forward_into(params, sizes, act, X, cache, energy):
    """Forward pass of the rows of ``X`` into ``energy`` (n,); fills ``cache``."""
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    p_off = 0
    c_off = 0
    prev = X
    for l in range(n_layers - 1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        W = params[p_off:p_off + n_in * n_out].reshape((n_in, n_out))
        b = params[p_off + n_in * n_out:p_off + (n_in + 1) * n_out]
        A = cache[c_off:c_off + n * n_out].reshape((n, n_out))
        D = cache[c_off + n * n_out:c_off + 2 * n * n_out].reshape((n, n_out))
        if n_in < BLAS_MIN_FAN_IN:
            for k in range(n):
                ar = A[k]
                for j in range(n_out):
                    ar[j] = 0.0
                for i in range(n_in):
                    a_i = prev[k, i]
                    w_row = W[i]
                    for j in range(n_out):
                        ar[j] += a_i * w_row[j]
        else:
            np.dot(prev, W, A)
        _activate_layer(act, A, b, D)
        prev = A
        c_off += 2 * n * n_out
        p_off += (n_in + 1) * n_out
    n_in = sizes[n_layers - 1]
    np.dot(prev, params[p_off:p_off + n_in], energy)
    b_out = params[p_off + n_in]
    for k in range(n):
        energy[k] += b_out


@njit
def mlp_forward_cached(params, sizes, act, X, cache):
    """Energies ``(n,)`` of the C-contiguous rows of ``X`` (n, d); hidden activations and
    their derivatives stored in ``cache`` (length :func:`cache_size`, layout in the module
    docstring)."""
    energy = np.empty(X.shape[0])
    _forward_into(params, sizes, act, X, cache, energy)
    return energy


@njit
def mlp_grad_x_from_cache(params, sizes, X, cache, grad):
    """Input gradients ``grad`` (n, d) from the cache of :func:`mlp_forward_cached`.

    ``G_l = delta_l * act'(z_l)`` overwrites the derivative block of layer ``l`` and
    ``delta_{l-1} = G_l W_l^T`` the activation block of layer ``l - 1`` (the cache is
    consumed); ``grad = G_0 W_0^T``.
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    c_end = cache_length(sizes, n)
    p_end = params.shape[0]
    h = sizes[n_layers - 1]
    w_out = params[p_end - h - 1:p_end - 1]
    p_end -= h + 1
    G = cache[c_end - n * h:c_end].reshape((n, h))
    for k in range(n):
        gr = G[k]
        for j in range(h):
            gr[j] *= w_out[j]
    for l in range(n_layers - 2, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        p_start = p_end - (n_in + 1) * n_out
        Wt = params[p_start:p_start + n_in * n_out].reshape((n_in, n_out)).T
        c_start = c_end - 2 * n * n_out
        G = cache[c_start + n * n_out:c_end].reshape((n, n_out))
        if l == 0:
            # dgemm also for a small fan-in: a dot-product loop here would be a strict-order
            # (latency-bound) reduction over the hidden units
            np.dot(G, Wt, grad)
        else:
            delta = cache[c_start - 2 * n * n_in:c_start - n * n_in].reshape((n, n_in))
            np.dot(G, Wt, delta)
            D_prev = cache[c_start - n * n_in:c_start].reshape((n, n_in))
            for k in range(n):
                dr = D_prev[k]
                er = delta[k]
                for i in range(n_in):
                    dr[i] *= er[i]
        c_end = c_start
        p_end = p_start


@njit
def cache_length(sizes, n):
    """:func:`cache_size` inside compiled code."""
    total = 0
    for l in range(1, sizes.shape[0] - 1):
        total += sizes[l]
    return 2 * n * total


@njit
def mlp_energy_grad_x_block(params, sizes, act, X, energy, grad, cache):
    """Energies into ``energy`` (n,) and input gradients into ``grad`` (n, d) of the rows of
    the C-contiguous ``X`` (n, d), by matrix products; ``cache`` is scratch of length at
    least :func:`cache_size` ``(sizes, n)``. No allocation: the inner call of the blocked
    Langevin loops and of the large-batch kernels."""
    _forward_into(params, sizes, act, X, cache, energy)
    mlp_grad_x_from_cache(params, sizes, X, cache, grad)


@njit
def _hidden_product(prev, W, A):
    """``A <- prev W`` for one hidden layer: axpy loops over the rows of ``W`` below
    :data:`BLAS_MIN_FAN_IN`, a ``dgemm`` from there on (the same operations as in
    :func:`_forward_into`, hence the same numbers)."""
    n = prev.shape[0]
    n_in = W.shape[0]
    n_out = W.shape[1]
    if n_in < BLAS_MIN_FAN_IN:
        for k in range(n):
            ar = A[k]
            for j in range(n_out):
                ar[j] = 0.0
            for i in range(n_in):
                a_i = prev[k, i]
                w_row = W[i]
                for j in range(n_out):
                    ar[j] += a_i * w_row[j]
    else:
        np.dot(prev, W, A)


@njit
def _activate_values(act, Z, b):
    """In place over the rows of ``Z`` (n, h): ``Z <- act(Z + b)``, the value only.

    The same scalar functions as :func:`_activate_layer` (so the same numbers); their
    derivative output is unused, and LLVM removes its arithmetic (measured: 25 % less time
    per tanh value than with the derivative).
    """
    n = Z.shape[0]
    h = Z.shape[1]
    if act == 0:
        for k in range(n):
            zr = Z[k]
            for j in range(h):
                a, _ = tanh_and_derivative(zr[j] + b[j])
                zr[j] = a
    else:
        for k in range(n):
            zr = Z[k]
            for j in range(h):
                a, _ = activation_and_derivative(act, zr[j] + b[j])
                zr[j] = a


@njit
def mlp_forward_values(params, sizes, act, X, cache):
    """Energies ``(n,)`` of the C-contiguous rows of ``X`` (n, d) by the batch-major forward
    pass of :func:`mlp_forward_cached`, without the activation derivatives.

    The activation blocks are written where :func:`mlp_forward_cached` writes them (the
    derivative blocks of ``cache`` are left untouched), and every operation is the same, so
    the energies equal those of :func:`mlp_forward_cached` bit for bit. For evaluations that
    need no backward pass (the critic in the energy step of D13).
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    p_off = 0
    c_off = 0
    prev = X
    for l in range(n_layers - 1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        W = params[p_off:p_off + n_in * n_out].reshape((n_in, n_out))
        b = params[p_off + n_in * n_out:p_off + (n_in + 1) * n_out]
        A = cache[c_off:c_off + n * n_out].reshape((n, n_out))
        _hidden_product(prev, W, A)
        _activate_values(act, A, b)
        prev = A
        c_off += 2 * n * n_out
        p_off += (n_in + 1) * n_out
    energy = np.empty(n)
    n_in = sizes[n_layers - 1]
    np.dot(prev, params[p_off:p_off + n_in], energy)
    b_out = params[p_off + n_in]
    for k in range(n):
        energy[k] += b_out
    return energy


@njit
def mlp_weighted_backward_cached(params, sizes, X, cache, w):
    """``sum_i w_i dE(x_i)/dparams`` ``(P_full,)`` from the (unconsumed) cache of
    :func:`mlp_forward_cached`: ``dW_{l-1} = a_{l-1}^T (w * G_l)``, ``db = sum_i w_i G_l``.

    Per hidden layer one pass over the ``(n, h_l)`` block forms ``w_i G_l`` and adds it to
    ``db`` (and, for a fan-in below :data:`BLAS_MIN_FAN_IN`, to ``dW``), each sum over the
    samples in sample order; ``dW`` otherwise and ``delta_{l-1}`` are ``dgemm`` products
    written into preallocated blocks.
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    grad = np.zeros(params.shape[0])
    c_end = cache_length(sizes, n)
    p_end = params.shape[0]
    # output layer: dE/dW_out = a_last, dE/db_out = 1
    h = sizes[n_layers - 1]
    po = p_end - h - 1
    A_last = cache[c_end - 2 * n * h:c_end - n * h].reshape((n, h))
    grad[po:po + h] = np.dot(w, A_last)
    grad[po + h] = np.sum(w)
    w_out = params[po:po + h]
    p_end = po
    h_max = 0
    for l in range(1, n_layers):
        h_max = max(h_max, sizes[l])
    work = np.empty((2, n * h_max))  # delta_l = w_i dE/da_l and delta_{l-1}, alternating rows
    cur = 0
    delta = work[0, :n * h].reshape((n, h))
    for l in range(n_layers - 2, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        p_start = p_end - (n_in + 1) * n_out
        c_start = c_end - 2 * n * n_out
        D = cache[c_start + n * n_out:c_end].reshape((n, n_out))
        gW = grad[p_start:p_start + n_in * n_out].reshape((n_in, n_out))
        gb = grad[p_start + n_in * n_out:p_end]
        A_in = X if l == 0 else cache[c_start - 2 * n * n_in:c_start - n * n_in].reshape((n, n_in))
        small_fan_in = n_in < BLAS_MIN_FAN_IN
        for k in range(n):
            dr = delta[k]
            d_act = D[k]
            if l == n_layers - 2:
                w_k = w[k]
                for j in range(n_out):
                    v = (w_k * w_out[j]) * d_act[j]  # w_i G_l of the last hidden layer
                    dr[j] = v
                    gb[j] += v
            else:
                for j in range(n_out):
                    v = dr[j] * d_act[j]  # w_i G_l = delta_l act'(z_l)
                    dr[j] = v
                    gb[j] += v
            if small_fan_in:
                for i in range(n_in):
                    a_i = A_in[k, i]
                    g_row = gW[i]
                    for j in range(n_out):
                        g_row[j] += a_i * dr[j]
        if not small_fan_in:
            np.dot(A_in.T, delta, gW)
        if l > 0:
            W = params[p_start:p_start + n_in * n_out].reshape((n_in, n_out))
            cur = 1 - cur
            new_delta = work[cur, :n * n_in].reshape((n, n_in))
            np.dot(delta, W.T, new_delta)
            delta = new_delta
        c_end = c_start
        p_end = p_start
    return grad


class BatchedMLP:
    """Forward once, backward with any weights: the critic's hot path in D13.

    Parameters
    ----------
    model : febm_ref.energies.MLPEnergy
    X : ndarray (n, d)
        The points (C-contiguous float64).
    backward : bool
        False: only :attr:`values` are needed (no activation derivatives are computed,
        :meth:`weighted_grad_params` is unavailable); the values are the same bit for bit.

    Attributes
    ----------
    values : ndarray (n,)
        ``model.energy(X)``.
    """

    def __init__(self, model, X, *, backward: bool = True):
        params, sizes, act = model.kernel_args()
        self._model = model
        self._params, self._sizes = params, sizes
        self._X = np.ascontiguousarray(X, dtype=np.float64)
        self._cache = np.empty(cache_size(sizes, self._X.shape[0]))
        self._backward = bool(backward)
        forward = mlp_forward_cached if self._backward else mlp_forward_values
        self.values = forward(params, sizes, act, self._X, self._cache)

    def weighted_grad_params(self, w) -> np.ndarray:
        """``sum_i w_i grad_params E(x_i)`` in the model's parameter layout."""
        if not self._backward:
            raise RuntimeError("this BatchedMLP was evaluated with backward=False (values only)")
        g = mlp_weighted_backward_cached(self._params, self._sizes, self._X, self._cache,
                                         np.ascontiguousarray(w, dtype=np.float64))
        return g if self._model.output_bias else g[:-1]


def limit_blas_threads(n_threads: int = 1) -> int:
    """Best effort: set the thread count of the OpenBLAS libraries loaded in this process.

    The matrices of :func:`mlp_forward_cached` are small (``2000 x 64 x 64``); a
    multi-threaded BLAS spends more time synchronising than computing, and on a shared
    machine it oversubscribes the cores (measured: 9 ms vs 108 ms per critic
    forward/backward on a loaded 2-core machine). ``OPENBLAS_NUM_THREADS`` only works
    before NumPy is imported, so the training command calls this instead.

    Returns the number of libraries whose thread count was set (0 if none was found;
    nothing else changes then).
    """
    import ctypes

    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that Numba's np.dot calls)

    count = 0
    try:
        with open("/proc/self/maps", encoding="utf-8") as handle:
            paths = {line.split()[-1] for line in handle if "openblas" in line.lower() and "/" in line}
    except OSError:
        return 0
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(int(n_threads)))
                count += 1
                break
    return count
