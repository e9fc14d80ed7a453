"""Batch-major MLP forward pass with cached activations and one weighted backward pass.

The hot path of f-EBM training (estimator D13) evaluates the critic ``H_omega`` on the
positive and the negative batch, forms per-sample weights from ``r = H + E`` and then
needs ``sum_i w_i grad_omega H(x_i)``. The per-point kernels of :mod:`febm_ref._kernels`
do this with two forward passes and scalar loops; here the batch is processed layer by
layer as matrix products (BLAS through Numba's ``np.dot``), and the forward activations
are kept so that the backward pass reuses them:

* :func:`mlp_forward_cached` ``(params, sizes, act, X, cache) -> E (n,)`` fills ``cache``
  (hidden activations and their derivatives, layer-major, each layer an ``(n, h_l)``
  C-contiguous block);
* :func:`mlp_weighted_backward_cached` ``(params, sizes, X, cache, w) -> (P_full,)``
  ``= sum_i w_i dE(x_i)/dparams`` (the layout of :mod:`febm_ref._kernels`).

Same mathematics as :func:`febm_ref._kernels.mlp_weighted_grad_params` (forward
``z_l = a_{l-1} W_{l-1} + b_{l-1}``, backward ``G_l = delta_l * act'(z_l)``,
``dW_{l-1} = a_{l-1}^T G_l``, ``delta_{l-1} = G_l W_{l-1}^T``), only the loop order and
the summation order differ; the plain-NumPy twins are
:func:`febm_ref._kernels.mlp_energy_batch_numpy` and
:func:`febm_ref._kernels.mlp_weighted_grad_params_numpy` (tests compare to ~1e-12).
"""

from __future__ import annotations

import math

import numpy as np

from febm_ref._jit import njit
from febm_ref._kernels import _activation

__all__ = ["cache_size", "mlp_forward_cached", "mlp_weighted_backward_cached", "BatchedMLP",
           "limit_blas_threads", "tanh_and_derivative"]


def cache_size(sizes, n: int) -> int:
    """Length of the float64 cache for ``n`` points: ``2 n sum(hidden widths)``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return int(2 * n * np.sum(sizes[1:-1]))


@njit
def tanh_and_derivative(z):
    """``(tanh z, sech^2 z)`` with one transcendental call, full relative accuracy.

    With ``t = exp(-2|z|)``: ``tanh|z| = (1 - t)/(1 + t)`` and ``sech^2 z = 4t/(1 + t)^2``.
    For ``|z| <= 0.35`` ``1 - t`` would cancel, so ``t - 1 = expm1(-2|z|)`` is used
    instead (then ``t >= 0.49`` carries no cancellation). Matches
    :func:`febm_ref._kernels._activation` (code 0) to a few ulps.
    """
    az = abs(z)
    if az > 0.35:
        t = math.exp(-2.0 * az)
        a = (1.0 - t) / (1.0 + t)
    else:
        em = math.expm1(-2.0 * az)
        t = 1.0 + em
        a = -em / (2.0 + em)
    if z < 0.0:
        a = -a
    return a, 4.0 * t / ((1.0 + t) * (1.0 + t))


@njit
def mlp_forward_cached(params, sizes, act, X, cache):
    """Energies ``(n,)``; hidden activations and derivatives stored in ``cache``.

    ``cache`` layout: for each hidden layer ``l`` (in order) an ``(n, h_l)`` block of
    activations followed by an ``(n, h_l)`` block of activation derivatives.
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
        b = params[p_off + n_in * n_out:p_off + n_in * n_out + n_out]
        A = cache[c_off:c_off + n * n_out].reshape((n, n_out))
        D = cache[c_off + n * n_out:c_off + 2 * n * n_out].reshape((n, n_out))
        if n_in == 1:
            for k in range(n):
                xk = prev[k, 0]
                for j in range(n_out):
                    A[k, j] = xk * W[0, j]
        else:
            np.dot(prev, W, A)
        if act == 0:
            for k in range(n):
                for j in range(n_out):
                    a, da = tanh_and_derivative(A[k, j] + b[j])
                    A[k, j] = a
                    D[k, j] = da
        else:
            for k in range(n):
                for j in range(n_out):
                    a, da = _activation(act, A[k, j] + b[j])
                    A[k, j] = a
                    D[k, j] = da
        prev = A
        c_off += 2 * n * n_out
        p_off += (n_in + 1) * n_out
    n_in = sizes[n_layers - 1]
    w_out = params[p_off:p_off + n_in]
    out = np.dot(prev, w_out)
    b_out = params[p_off + n_in]
    for k in range(n):
        out[k] += b_out
    return out


@njit
def mlp_weighted_backward_cached(params, sizes, X, cache, w):
    """``sum_i w_i dE(x_i)/dparams`` ``(P_full,)`` from a cache of :func:`mlp_forward_cached`."""
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    grad = np.zeros(params.shape[0])
    # offsets of every layer in params and in the cache
    p_offs = np.empty(n_layers, dtype=np.int64)
    c_offs = np.empty(n_layers, dtype=np.int64)
    p_off = 0
    c_off = 0
    for l in range(n_layers):
        p_offs[l] = p_off
        c_offs[l] = c_off
        p_off += (sizes[l] + 1) * sizes[l + 1]
        if l < n_layers - 1:
            c_off += 2 * n * sizes[l + 1]
    # output layer: dE/dW_out = a_last, dE/db_out = 1
    h = sizes[n_layers - 1]
    po = p_offs[n_layers - 1]
    A_last = cache[c_offs[n_layers - 2]:c_offs[n_layers - 2] + n * h].reshape((n, h))
    grad[po:po + h] = np.dot(w, A_last)
    grad[po + h] = np.sum(w)
    # delta_{L-1} = w_i * W_out (n, h)
    delta = np.empty((n, h))
    for k in range(n):
        for j in range(h):
            delta[k, j] = w[k] * params[po + j]
    for l in range(n_layers - 2, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        c = c_offs[l]
        D = cache[c + n * n_out:c + 2 * n * n_out].reshape((n, n_out))
        for k in range(n):
            for j in range(n_out):
                delta[k, j] *= D[k, j]  # G_l
        pl = p_offs[l]
        gW = grad[pl:pl + n_in * n_out].reshape((n_in, n_out))
        gb = grad[pl + n_in * n_out:pl + (n_in + 1) * n_out]
        for k in range(n):
            for j in range(n_out):
                gb[j] += delta[k, j]
        if l == 0:
            if n_in == 1:
                for k in range(n):
                    xk = X[k, 0]
                    for j in range(n_out):
                        gW[0, j] += xk * delta[k, j]
            else:
                gW[:, :] = np.dot(np.ascontiguousarray(X.T), delta)
        else:
            A_in = cache[c_offs[l - 1]:c_offs[l - 1] + n * n_in].reshape((n, n_in))
            gW[:, :] = np.dot(np.ascontiguousarray(A_in.T), delta)
            W = params[pl:pl + n_in * n_out].reshape((n_in, n_out))
            delta = np.dot(delta, np.ascontiguousarray(W.T))
    return grad


class BatchedMLP:
    """Forward once, backward with any weights: the critic's hot path in D13.

    Parameters
    ----------
    model : febm_ref.energies.MLPEnergy
    X : ndarray (n, d)
        The points (C-contiguous float64).

    Attributes
    ----------
    values : ndarray (n,)
        ``model.energy(X)``.
    """

    def __init__(self, model, X):
        params, sizes, act = model.kernel_args()
        self._model = model
        self._params, self._sizes = params, sizes
        self._X = np.ascontiguousarray(X, dtype=np.float64)
        self._cache = np.empty(cache_size(sizes, self._X.shape[0]))
        self.values = mlp_forward_cached(params, sizes, act, self._X, self._cache)

    def weighted_grad_params(self, w) -> np.ndarray:
        """``sum_i w_i grad_params E(x_i)`` in the model's parameter layout."""
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
