"""The batch-major MLP core and the one activation implementation of the package.

Every MLP evaluation of :mod:`febm_ref` (the energy ``E_theta`` and the critic ``H_omega``,
docs/theory.md section 7; the Langevin loops of D15/D16; the weighted backward pass of the
estimator D13) goes through this module or through the per-point kernels of
:mod:`febm_ref._numba.kernels`, and both use the activations defined here:

* :func:`tanh_and_derivative` ``(z) -> (tanh z, sech^2 z)``: no libm call, branch-free
  arithmetic that LLVM vectorises over a layer (SIMD), full relative accuracy of both
  values, including saturation (tested against mpmath on both sides of every switch);
* :func:`activation_and_derivative` ``(act, z)``: every activation code of
  :data:`febm_ref._numba.kernels.ACTIVATION_CODES` (tanh through the function above).

The MLP is the kernel triple ``(params, sizes, act)`` of :mod:`febm_ref._numba.kernels` (full
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
  inner call of the Langevin loops and of the large-batch kernels of :mod:`febm_ref._numba.kernels`);
* :func:`mlp_weighted_backward_cached` ``(params, sizes, X, cache, w) -> (P_full,)``
  ``= sum_i w_i dE(x_i)/dparams`` without forming the per-sample matrix (D13's critic path,
  :class:`BatchedMLP`).

Mathematics (same as :mod:`febm_ref._numba.kernels`): ``z_l = a_{l-1} W_{l-1} + b_{l-1}``,
``a_l = act(z_l)``, ``E = a_{L-1} W_{L-1} + b_{L-1}``; backward ``G_l = delta_l * act'(z_l)``,
``delta_{L-1} = W_{L-1}[:, 0]``, ``delta_{l-1} = G_l W_{l-1}^T``, ``grad_x E = delta_0``,
``dW_{l-1} = a_{l-1}^T G_l``. Only the summation order differs from the per-point kernels
(BLAS): results agree with the NumPy twins :func:`febm_ref.models.mlp.mlp_energy_grad_x_batch_numpy`
etc. to ~1e-14, not bit for bit. Blocks of at most 64 points keep each ``dgemm`` below
OpenBLAS's multithreading threshold (``m n k <= 2^18``), so the products run in the calling
thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from febm_ref._numba.jit import njit

__all__ = ["cache_size", "tanh_and_derivative", "activation_and_derivative",
           "mlp_forward_cached", "mlp_grad_x_from_cache", "mlp_energy_grad_x_block",
           "mlp_weighted_backward_cached", "BatchedMLP", "limit_blas_threads"]


def cache_size(sizes, n: int) -> int:
    """Length of the float64 cache for ``n`` points: ``2 n sum(hidden widths)``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(2 * n * np.sum(sizes[1:-1]))


# --------------------------------------------------------------------------- activations
# Numba has no SIMD tanh without Intel SVML (math.tanh/exp are scalar libm calls), so tanh is
# written as rational arithmetic plus an exponent assembled from bits. The bit casts and the
# fused multiply-add are LLVM intrinsics (exact Python equivalents under NUMBA_DISABLE_JIT).

if numba.config.DISABLE_JIT:  # pragma: no cover - exercised by the no-JIT test run
    def _float64_bits(f):
        return int(np.float64(f).view(np.int64))

    def _float64_from_bits(i):
        # int64 wraparound, as in the compiled code (Python integers do not wrap)
        return float(np.int64((int(i) + 2**63) % 2**64 - 2**63).view(np.float64))

    def _fma(a, b, c):
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
            return a * b + c
        # the exact a b + c as a ratio of integers, rounded once (int / int is correctly
        # rounded in Python); an exact zero takes IEEE's sign from a * b + c
        na, da = float(a).as_integer_ratio()
        nb, db = float(b).as_integer_ratio()
        nc, dc = float(c).as_integer_ratio()
        num = na * nb * dc + nc * da * db
        if num == 0:
            return a * b + c
        try:
            return num / (da * db * dc)
        except OverflowError:
            return math.inf if num > 0 else -math.inf

    def _prefer_512_bit_vectors():
        return None
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

    @_intrinsic
    def _fma(typingctx, a, b, c):
        """``a b + c`` rounded once: IEEE-754 fusedMultiplyAdd (``llvm.fma``; one instruction
        on CPUs with FMA, a correctly rounded libm call elsewhere). Not a fastmath
        contraction: the result is specified exactly, the same on every machine."""
        def codegen(context, builder, signature, args):
            return builder.fma(args[0], args[1], args[2])
        return _types.float64(_types.float64, _types.float64, _types.float64), codegen

    @_intrinsic
    def _prefer_512_bit_vectors(typingctx):
        """Let LLVM vectorise the loops of the calling function with 512-bit registers where
        the CPU has them (function attribute ``"prefer-vector-width"="512"``, as clang's
        ``-mprefer-vector-width=512``; LLVM's default for AVX-512 CPUs is 256 bits). Vector
        width changes no result (element-wise IEEE arithmetic)."""
        def codegen(context, builder, signature, args):
            # llvmlite's attribute set accepts only keyword attributes; this key="value"
            # string attribute goes into the underlying set as LLVM spells it (should a
            # later llvmlite refuse that, the hint is dropped: same numbers, 256-bit code)
            try:
                set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            except (AttributeError, TypeError):  # pragma: no cover
                pass
            return context.get_dummy_value()
        return _types.none(), codegen


TANH_RATIONAL_MAX = 0.625
"""``|z|`` below which tanh is the Cephes rational itself, at and above which it is formed
from ``exp(-2|z|)``."""

_TANH_ARG_CAP = 375.0
"""Cap of ``|z|`` in :func:`tanh_and_derivative`. From ``|z| > 373.26`` the exact
``sech^2 z < 4 e^{-2|z|} < 2^{-1075}`` rounds to 0 and ``tanh z`` to ``+-1`` (already from
``|z| > 19.1``), so the cap changes no result; it bounds ``n <= 1082`` (below)."""

_SCALE = 2.0 ** 60
"""Power-of-two factor of the rational's coefficients (exact): ``Q ~ 2^72`` keeps
``2^{-n} (Q - N)`` a normal number for every ``n <= 1082``."""

# Cephes tanh on |x| < 0.625 (S. Moshier): tanh x = x + x s P(s)/Q(s), s = x^2, Q monic;
# coefficients times _SCALE
_TANH_P2 = -9.64399179425052238628e-1 * _SCALE
_TANH_P1 = -9.92877231001918586564e1 * _SCALE
_TANH_P0 = -1.61468768441708447952e3 * _SCALE
_TANH_Q2 = 1.12811678491632931402e2 * _SCALE
_TANH_Q1 = 2.23548839060100448583e3 * _SCALE
_TANH_Q0 = 4.84406305325125486048e3 * _SCALE
# Cody-Waite ln(2)/2 = hi + lo, hi with few bits (n hi exact for n < 2^11)
_LN2_HALF_HI = 3.465728759765625e-1
_LN2_HALF_LO = 7.14303410154708616060e-7
_TWO_OVER_LN2 = 2.8853900817779268147198
_ROUND_MAGIC = 6755399441055743.0
"""``1.5 2^52 - 1``: ``k = 2|z|/ln 2 + _ROUND_MAGIC`` rounds to an integer, ``n = k -
_ROUND_MAGIC``, and the low mantissa bits of ``k`` are ``n - 1``: ``bits(k) << 52`` is
``(n - 1) << 52`` modulo ``2^64``, the exponent-field offset of ``2^{1 - n}``."""


@njit
def tanh_and_derivative(z):
    """``(tanh z, sech^2 z)`` in float64 without libm calls (LLVM vectorises loops over it).

    One rational ``N(x)/Q(x) ~ tanh x`` on ``|x| < 0.625``, the Cephes form
    ``x + x s P(s)/Q(s)`` (``s = x^2``, S. Moshier) computed as ``N = x (Q + s P)``, serves
    both ranges, and one division ``w`` gives both outputs:

    * ``|z| <`` :data:`TANH_RATIONAL_MAX` ``= 0.625``: ``x = |z|``, ``w = N/Q = tanh|z|``,
      ``m = 1 - tanh|z| = 1 - w`` (``w < 0.56``: no cancellation);
    * otherwise ``2|z| = n ln 2 + 2x`` (Cody-Waite, ``|x| <= ln(2)/4``) and, as ``N/Q =
      tanh x``, ``exp(-2x) = (Q - N)/(Q + N)``: with ``u = 2^{-n} (Q - N)`` (``2u`` is
      ``Q - N`` with its exponent field lowered by ``n - 1``) and ``v = Q + N``,
      ``e = exp(-2|z|) = u/v`` and
      ``m = 1 - tanh|z| = 2e/(1 + e) = w = 2u/(v + u)`` (``w <= 0.45``), ``tanh|z| = 1 - w``;

    ``sech^2 z = (1 - tanh)(1 + tanh) = m (2 - m)``: full relative accuracy also when
    saturated, where ``1 - tanh^2`` would cancel. Both ranges are computed and selected
    without branches (one division per call; fused multiply-adds, :func:`_fma`, exact IEEE,
    in the polynomials and the reduction). Measured against mpmath (a dense grid with every
    switch and the tails) and a long-double reference (6 million points): ``tanh`` within
    2 ulp (max relative error 3.4e-16), ``sech^2`` within 5.4e-16 relative while it is a
    normal number (``|z| < 354``), within 2 units of ``2^-1074`` below. Odd/even symmetry
    restores the sign; ``tanh(+-0) = +-0``, ``tanh(+-inf) = +-1``, ``sech^2(+-inf) = 0``;
    NaN propagates.
    """
    az = abs(z)
    small = az < TANH_RATIONAL_MAX
    # the ternaries only select between named values: LLVM turns them into selects and
    # vectorises the loop (a ternary with arithmetic inside stays a branch and blocks it)
    ac = _TANH_ARG_CAP if az > _TANH_ARG_CAP else az  # NaN stays NaN
    k = _fma(_TWO_OVER_LN2, ac, _ROUND_MAGIC)
    n = k - _ROUND_MAGIC
    n = 0.0 if small else n
    x = _fma(n, -_LN2_HALF_HI, ac)
    x = _fma(n, -_LN2_HALF_LO, x)
    s = x * x
    p = _fma(_fma(_TANH_P2, s, _TANH_P1), s, _TANH_P0)
    q = _fma(_fma(_fma(s, _SCALE, _TANH_Q2), s, _TANH_Q1), s, _TANH_Q0)
    nx = x * _fma(s, p, q)
    two_u = _float64_from_bits(_float64_bits(q - nx) - (_float64_bits(k) << 52))
    v = q + nx
    vu = _fma(0.5, two_u, v)
    num = nx if small else two_u
    den = q if small else vu
    w = num / den
    one_minus_w = 1.0 - w
    t = w if small else one_minus_w
    one_minus_t = one_minus_w if small else w
    d = one_minus_t * (2.0 - one_minus_t)
    return math.copysign(t, z), d


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
    fused bias + activation + derivative pass; tanh has no libm call, so it vectorises, with
    512-bit vectors where the CPU has them: measured 1.3 -> 1.1 ns per tanh value on a
    128 x 64 block, same numbers)."""
    _prefer_512_bit_vectors()
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


@njit(inline="always")
def _forward_into(params, sizes, act, X, cache, energy, derivatives):
    """Forward pass of the rows of ``X`` into ``energy`` (n,); the hidden activations go to
    the activation blocks of ``cache``. ``derivatives`` is ``cache`` again (``act'(z_l)`` into
    its derivative blocks, for a backward pass) or ``None`` (values only: Numba removes the
    other branch at compile time, and the values are the same bit for bit)."""
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
        if derivatives is None:
            _activate_values(act, A, b)
        else:
            D = derivatives[c_off + n * n_out:c_off + 2 * n * n_out].reshape((n, n_out))
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
    _forward_into(params, sizes, act, X, cache, energy, cache)
    return energy


@njit(inline="always")
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


@njit(inline="always")
def cache_length(sizes, n):
    """:func:`cache_size` inside compiled code."""
    total = 0
    for l in range(1, sizes.shape[0] - 1):
        total += sizes[l]
    return 2 * n * total


@njit(inline="always")
def mlp_energy_grad_x_block(params, sizes, act, X, energy, grad, cache):
    """Energies into ``energy`` (n,) and input gradients into ``grad`` (n, d) of the rows of
    the C-contiguous ``X`` (n, d), by matrix products; ``cache`` is scratch of length at
    least :func:`cache_size` ``(sizes, n)``. No allocation: the inner call of the blocked
    Langevin loops and of the large-batch kernels."""
    _forward_into(params, sizes, act, X, cache, energy, cache)
    mlp_grad_x_from_cache(params, sizes, X, cache, grad)


@njit
def _hidden_product(prev, W, A):
    """``A <- prev W`` for one hidden layer: axpy loops over the rows of ``W`` below
    :data:`BLAS_MIN_FAN_IN`, a ``dgemm`` from there on (every forward pass of this module
    forms its hidden products here, hence the same numbers)."""
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

    The same scalar functions as :func:`_activate_layer` (so the same numbers), also with
    512-bit vectors where the CPU has them; their derivative output is unused, and LLVM
    removes its arithmetic.
    """
    _prefer_512_bit_vectors()
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
    energy = np.empty(X.shape[0])
    _forward_into(params, sizes, act, X, cache, energy, None)
    return energy


@njit(inline="always")
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
    g_out = np.dot(w, A_last)
    for j in range(h):  # an element loop: slice assignment compiles Numba's shape-error text
        grad[po + j] = g_out[j]
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
    model : febm_ref.models.energies.MLPEnergy
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
