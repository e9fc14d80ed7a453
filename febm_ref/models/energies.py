"""Energy models ``E_theta(x)`` with hand-derived gradients (docs/theory.md sections 1-2, 7).

``q_theta(x) = exp(-E_theta(x)) / Z_theta``. The same interface serves the energy
``E_theta`` and the critic ``H_omega`` of D6.

The interface (:class:`EnergyModel`)
------------------------------------
Models are **immutable**: ``model.params`` is a read-only float64 vector, ``get_params()``
returns a writable copy and ``with_params(theta)`` returns a new model (validated, same
structure). Inputs ``x`` are ``(n, d)`` float64 arrays; for models with ``dim == 1`` a
1-D array of length ``n`` is also accepted and read as ``n`` points (for ``d > 1`` a 1-D
array is rejected, because a single point would be ambiguous with a batch).

``energy(x) -> (n,)``, ``grad_x(x) -> (n, d)``, ``energy_and_grad_x(x) -> ((n,), (n, d))``,
``grad_params(x) -> (n, P)`` (per-sample ``grad_theta E(x_i)``, the ``dE`` of D9/D13),
``weighted_grad_params(x, w) -> (P,)`` ``= sum_i w_i grad_theta E(x_i)`` computed by one
backward pass without forming the ``(n, P)`` matrix, ``n_params``, ``dim``,
``energy_complex(x, params)`` (NumPy evaluation at arbitrary, possibly complex, ``x`` and
``params`` without validation: the hook for complex-step and finite-difference tests;
exact complex step requires ``is_holomorphic``), and a reproducible classmethod
``random_init(rng, ...)`` taking a ``np.random.Generator``.

Models
------
:class:`GaussianEnergy1D`   ``E = 0.5 ((x - mu) / sigma)^2`` (the paper's 1-D model).
:class:`QuadraticEnergy`    ``E = 0.5 |L^T (x - m)|^2``, precision ``L L^T``.
:class:`MLPEnergy`          ``d -> h_1 -> ... -> 1`` with a smooth activation; flat
                            parameter layout documented in :mod:`febm_ref._numba.kernels`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy.linalg import solve_triangular

from febm_ref._numba import kernels as K
from febm_ref._validation import as_float_array, check_choice, check_generator, check_positive_int, check_real_scalar
from febm_ref.models import mlp as M

__all__ = ["EnergyModel", "GaussianEnergy1D", "QuadraticEnergy", "MLPEnergy", "BACKENDS"]

BACKENDS = ("numba", "numpy")
LOG_2PI = math.log(2.0 * math.pi)
LOG_SIGMA_LIMIT = 100.0 * math.log(10.0)
"""``|log sigma|`` bound of :class:`GaussianEnergy1D` (``1e-100 <= sigma <= 1e100``): inside it
``sigma^3`` and ``sigma^-3`` (the gradients) are normal float64 numbers, so every method is exact
to rounding; outside it the model is rejected at construction instead of overflowing later."""


class EnergyModel:
    """Base class: input validation and the immutable-parameter protocol.

    Subclasses set ``dim`` and implement ``_validate_params(theta)`` and the array
    methods ``_energy``, ``_energy_and_grad_x``, ``_grad_params``,
    ``_weighted_grad_params`` on validated inputs.
    """

    dim: int
    is_holomorphic: bool = True

    # ---------------------------------------------------------------- parameters
    @property
    def params(self) -> np.ndarray:
        """The flat parameter vector ``theta`` (read-only view)."""
        return self._params

    @property
    def n_params(self) -> int:
        """``P``, the length of :attr:`params`."""
        return self._params.shape[0]

    def get_params(self) -> np.ndarray:
        """A writable copy of :attr:`params`."""
        return self._params.copy()

    def with_params(self, theta) -> "EnergyModel":
        """A new model of the same structure with parameters ``theta`` (shape ``(P,)``)."""
        theta = as_float_array(theta, "theta", ndim=1)
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},) for {type(self).__name__}, "
                             f"got {theta.shape}")
        new = copy.copy(self)
        new._set_params(theta)
        return new

    def _set_params(self, theta: np.ndarray) -> None:
        theta = np.array(theta, dtype=np.float64)  # own copy
        self._validate_params(theta)
        theta.setflags(write=False)
        self._params = theta

    def _validate_params(self, theta: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- inputs
    def _check_x(self, x) -> np.ndarray:
        x = as_float_array(x, "x", ndim=(1, 2))
        if x.ndim == 1:
            if self.dim != 1:
                raise ValueError(f"x must have shape (n, {self.dim}); a 1-D array is only accepted "
                                 f"for dim == 1 models, got shape {x.shape}")
            x = x[:, None]
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}) for this {self.dim}-dimensional "
                             f"model, got {x.shape}")
        return np.ascontiguousarray(x)

    def _check_w(self, w, n: int) -> np.ndarray:
        w = as_float_array(w, "w", ndim=1)
        if w.shape != (n,):
            raise ValueError(f"w must have one weight per sample, shape ({n},), got {w.shape}")
        return np.ascontiguousarray(w)

    # ---------------------------------------------------------------- public API
    def energy(self, x) -> np.ndarray:
        """``E_theta(x_i)`` for each row, shape ``(n,)``."""
        return self._energy(self._check_x(x))

    def energy_and_grad_x(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(E(x_i), grad_x E(x_i))``, shapes ``(n,)`` and ``(n, d)`` (one fused pass)."""
        return self._energy_and_grad_x(self._check_x(x))

    def grad_x(self, x) -> np.ndarray:
        """``grad_x E_theta(x_i)``, shape ``(n, d)`` (the Langevin drift of D15 is ``-eps/2`` times it)."""
        return self._energy_and_grad_x(self._check_x(x))[1]

    def grad_params(self, x) -> np.ndarray:
        """Per-sample ``grad_theta E_theta(x_i)``, shape ``(n, P)`` (``dE`` in D9, D13)."""
        return self._grad_params(self._check_x(x))

    def weighted_grad_params(self, x, w) -> np.ndarray:
        """``sum_i w_i grad_theta E(x_i)``, shape ``(P,)``, without forming ``(n, P)``.

        With ``w_i = g'(r_i)/n`` this is one batch-mean term of estimator D13.
        """
        x = self._check_x(x)
        return self._weighted_grad_params(x, self._check_w(w, x.shape[0]))

    def energy_complex(self, x, params) -> np.ndarray:  # pragma: no cover - abstract
        """NumPy energy at ``(x (n, d), params (P,))``, real or complex, unvalidated."""
        raise NotImplementedError


# =========================================================================== Gaussian 1-D

class GaussianEnergy1D(EnergyModel):
    """The paper's 1-D energy ``E(x) = 0.5 ((x - mu) / sigma)^2`` (docs/theory.md section 6).

    ``q_theta = N(mu, sigma^2)`` exactly, with ``log Z = log(sigma) + 0.5 log(2 pi)``.

    Parameters
    ----------
    mu, sigma : float
        Mean and standard deviation (``sigma > 0``); defaults are the paper's start (0, 1).
    log_sigma : bool
        Parametrisation: ``theta = (mu, sigma)`` (False, the paper's) or
        ``theta = (mu, log sigma)`` (True, unconstrained).

    Gradients: ``dE/dmu = -(x - mu)/sigma^2``, ``dE/dsigma = -(x - mu)^2/sigma^3``,
    ``dE/dlog sigma = -(x - mu)^2/sigma^2``, ``dE/dx = (x - mu)/sigma^2``.
    """

    dim = 1

    def __init__(self, mu: float = 0.0, sigma: float = 1.0, *, log_sigma: bool = False):
        mu = check_real_scalar(mu, "mu")
        sigma = check_real_scalar(sigma, "sigma", positive=True)
        self.log_sigma = bool(log_sigma)
        self._set_params([mu, math.log(sigma) if self.log_sigma else sigma])

    @classmethod
    def random_init(cls, rng, *, log_sigma: bool = False) -> "GaussianEnergy1D":
        """``mu ~ N(0, 1)``, ``log sigma ~ N(0, 0.5^2)``."""
        rng = check_generator(rng)
        return cls(float(rng.normal()), float(np.exp(0.5 * rng.normal())), log_sigma=log_sigma)

    def _validate_params(self, theta):
        if theta.shape != (2,) or not np.all(np.isfinite(theta)):
            raise ValueError(f"GaussianEnergy1D parameters must be 2 finite numbers, got {theta}")
        if not self.log_sigma and not theta[1] > 0:
            raise ValueError(f"sigma must be > 0, got {theta[1]} (use log_sigma=True for an "
                             "unconstrained parametrisation)")
        log_sigma = theta[1] if self.log_sigma else math.log(theta[1])
        if not abs(log_sigma) <= LOG_SIGMA_LIMIT:
            what = f"log sigma = {theta[1]}" if self.log_sigma else f"sigma = {theta[1]} (log sigma = {log_sigma:.6g})"
            raise ValueError(f"{what} is outside |log sigma| <= {LOG_SIGMA_LIMIT:.4f} (1e-100 <= sigma <= 1e100), "
                             "where sigma^3 and 1/sigma^3 overflow; rescale x instead")

    @property
    def mu(self) -> float:
        return float(self._params[0])

    @property
    def sigma(self) -> float:
        return float(math.exp(self._params[1]) if self.log_sigma else self._params[1])

    def energy_complex(self, x, params):
        mu = params[0]
        sigma = np.exp(params[1]) if self.log_sigma else params[1]
        return 0.5 * ((x[:, 0] - mu) / sigma) ** 2

    def _energy(self, x):
        return 0.5 * ((x[:, 0] - self.mu) / self.sigma) ** 2

    def _energy_and_grad_x(self, x):
        r = x[:, 0] - self.mu
        s2 = self.sigma ** 2
        return 0.5 * r * r / s2, (r / s2)[:, None]

    def _grad_params(self, x):
        r = x[:, 0] - self.mu
        s = self.sigma
        d_sigma_part = -r * r / s ** 2 if self.log_sigma else -r * r / s ** 3
        return np.stack([-r / s ** 2, d_sigma_part], axis=1)

    def _weighted_grad_params(self, x, w):
        r = x[:, 0] - self.mu
        s = self.sigma
        rr = np.dot(w, r * r)
        return np.array([-np.dot(w, r) / s ** 2, -rr / s ** 2 if self.log_sigma else -rr / s ** 3])

    def log_normalizer(self) -> float:
        """``log Z = log sigma + 0.5 log(2 pi)`` (exact)."""
        return math.log(self.sigma) + 0.5 * LOG_2PI

    def grad_log_normalizer(self) -> np.ndarray:
        """``grad_theta log Z`` = ``(0, 1/sigma)`` or ``(0, 1)`` (log-sigma); by D1 it
        equals ``-E_q[grad_theta E]``."""
        return np.array([0.0, 1.0 if self.log_sigma else 1.0 / self.sigma])

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact samples of ``q_theta = N(mu, sigma^2)``, shape ``(n, 1)``."""
        rng = check_generator(rng)
        n = check_positive_int(n, "n", minimum=0)
        return self.mu + self.sigma * rng.standard_normal((n, 1))


# =========================================================================== quadratic

class QuadraticEnergy(EnergyModel):
    """``E(x) = 0.5 |L^T (x - m)|^2``: ``q_theta = N(m, (L L^T)^{-1})``.

    ``L`` is lower-triangular with positive diagonal (the Cholesky factor of the precision).
    Flat parameters, ``P = 2d + d(d-1)/2``::

        theta = [ m (d), log diag(L) (d), strictly-lower entries of L, row-major (d(d-1)/2) ]

    (row-major strict lower order: ``L[1,0], L[2,0], L[2,1], L[3,0], ...``).

    Gradients, with ``r = x - m``, ``u = L^T r``: ``grad_x E = L u``, ``grad_m E = -L u``,
    ``dE/dL_ij = r_i u_j`` (``i > j``), ``dE/dlog L_ii = r_i u_i L_ii``.
    ``log Z = (d/2) log(2 pi) - sum_i log L_ii``.
    """

    def __init__(self, mean, precision_factor):
        mean = as_float_array(mean, "mean", ndim=1, nonempty=True)
        L = as_float_array(precision_factor, "precision_factor", ndim=2)
        d = mean.shape[0]
        if L.shape != (d, d):
            raise ValueError(f"precision_factor must be ({d}, {d}) for a mean of length {d}, "
                             f"got {L.shape}")
        if np.any(np.triu(L, 1) != 0):
            raise ValueError("precision_factor must be lower-triangular (Cholesky factor of the "
                             "precision); use QuadraticEnergy.from_covariance for a covariance")
        if not np.all(np.diag(L) > 0):
            raise ValueError(f"precision_factor must have a positive diagonal, got {np.diag(L)}")
        self.dim = d
        self._tril = np.tril_indices(d, -1)
        self._set_params(np.concatenate([mean, np.log(np.diag(L)), L[self._tril]]))

    @classmethod
    def from_covariance(cls, mean, cov) -> "QuadraticEnergy":
        """The energy of ``N(mean, cov)``: ``L = U^{-T}`` with ``cov = U U^T``, ``U``
        upper-triangular (reverse Cholesky), so only a triangular inverse is formed."""
        mean = as_float_array(mean, "mean", ndim=1, nonempty=True)
        cov = as_float_array(cov, "cov", ndim=2)
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) for a mean of length {d}, got {cov.shape}")
        if not np.allclose(cov, cov.T, rtol=1e-12, atol=0):
            raise ValueError("cov must be symmetric")
        try:
            C = np.linalg.cholesky(cov[::-1, ::-1])
        except np.linalg.LinAlgError as exc:
            raise ValueError("cov must be positive definite") from exc
        U = C[::-1, ::-1]
        L = solve_triangular(U, np.eye(d), lower=False).T
        return cls(mean, np.tril(L))

    @classmethod
    def random_init(cls, rng, dim: int, *, scale: float = 1.0) -> "QuadraticEnergy":
        """``m ~ N(0, scale^2 I)``, ``log L_ii ~ N(0, 0.3^2)``, ``L_ij ~ N(0, 0.3^2)``."""
        rng = check_generator(rng)
        d = check_positive_int(dim, "dim")
        scale = check_real_scalar(scale, "scale", positive=True)
        L = np.tril(0.3 * rng.standard_normal((d, d)), -1) + np.diag(np.exp(0.3 * rng.standard_normal(d)))
        return cls(scale * rng.standard_normal(d), L)

    def _validate_params(self, theta):
        d = self.dim
        if theta.shape != (2 * d + d * (d - 1) // 2,) or not np.all(np.isfinite(theta)):
            raise ValueError(f"QuadraticEnergy parameters must be {2 * d + d * (d - 1) // 2} finite "
                             f"numbers, got shape {theta.shape}")
        if not np.all(np.isfinite(np.exp(theta[d:2 * d]))) or np.any(np.exp(theta[d:2 * d]) == 0):
            raise ValueError("log-diagonal of the precision factor over/underflows exp; "
                             f"got {theta[d:2 * d]}")

    def _unpack(self, params):
        d = self.dim
        L = np.zeros((d, d), dtype=np.result_type(params, np.float64))
        L[np.diag_indices(d)] = np.exp(params[d:2 * d])
        L[self._tril] = params[2 * d:]
        return params[:d], L

    @property
    def mean(self) -> np.ndarray:
        return self._params[:self.dim].copy()

    @property
    def precision_factor(self) -> np.ndarray:
        """``L`` (lower-triangular, positive diagonal), precision ``= L L^T``."""
        return self._unpack(self._params)[1]

    def covariance(self) -> np.ndarray:
        """``(L L^T)^{-1} = L^{-T} L^{-1}`` via a triangular inverse."""
        Linv = solve_triangular(self.precision_factor, np.eye(self.dim), lower=True)
        return Linv.T @ Linv

    def energy_complex(self, x, params):
        m, L = self._unpack(params)
        u = (x - m) @ L
        return 0.5 * np.sum(u * u, axis=1)

    def _ru(self, x):
        m, L = self._unpack(self._params)
        r = x - m
        return r, r @ L, L

    def _energy(self, x):
        _, u, _ = self._ru(x)
        return 0.5 * np.sum(u * u, axis=1)

    def _energy_and_grad_x(self, x):
        _, u, L = self._ru(x)
        return 0.5 * np.sum(u * u, axis=1), u @ L.T

    def _grad_params(self, x):
        r, u, L = self._ru(x)
        i, j = self._tril
        return np.concatenate([-(u @ L.T), r * u * np.diag(L), r[:, i] * u[:, j]], axis=1)

    def _weighted_grad_params(self, x, w):
        r, u, L = self._ru(x)
        M = (w[:, None] * r).T @ u  # sum_k w_k r_k u_k^T, (d, d)
        g_m = -L @ (w @ u)
        return np.concatenate([g_m, np.diag(M) * np.diag(L), M[self._tril]])

    def log_normalizer(self) -> float:
        """``log Z = (d/2) log(2 pi) - sum_i log L_ii`` (exact)."""
        return 0.5 * self.dim * LOG_2PI - float(np.sum(self._params[self.dim:2 * self.dim]))

    def grad_log_normalizer(self) -> np.ndarray:
        """``grad_theta log Z``: ``-1`` on the log-diagonal entries, ``0`` elsewhere (D1)."""
        g = np.zeros(self.n_params)
        g[self.dim:2 * self.dim] = -1.0
        return g

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact samples ``x = m + L^{-T} z``, ``z ~ N(0, I)``; shape ``(n, d)``."""
        rng = check_generator(rng)
        n = check_positive_int(n, "n", minimum=0)
        z = rng.standard_normal((self.dim, n))
        m, L = self._unpack(self._params)
        return m + solve_triangular(L, z, lower=True, trans="T").T


# =========================================================================== MLP

def _check_hidden(hidden) -> tuple:
    """Hidden-layer widths: an int or a non-empty sequence of positive ints."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list, np.ndarray)):
        raise TypeError(f"hidden must be a sequence of hidden-layer widths, e.g. (64, 64); got {hidden!r}")
    widths = tuple(check_positive_int(h, "hidden width") for h in hidden)
    if not widths:
        raise ValueError("hidden must list at least one hidden-layer width, e.g. (64, 64); "
                         "got an empty layer list")
    return widths


class MLPEnergy(EnergyModel):
    """MLP energy ``d -> h_1 -> ... -> h_k -> 1`` with a smooth activation.

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    hidden : sequence of int
        Hidden widths (at least one layer).
    activation : {"tanh", "softplus", "silu", "elu"}
    params : array (P,)
        Flat parameters in the layout of :mod:`febm_ref._numba.kernels` (``W_0, b_0, ...,
        W_k, b_k``, each ``W_l`` of shape (fan_in, fan_out) row-major), **without** the
        final output bias when ``output_bias=False``. Use :meth:`random_init` to draw them.
    output_bias : bool
        Whether the scalar output bias (the additive gauge of docs/theory.md section 5) is a free
        parameter. When False it is fixed at 0 and absent from ``params``.
    backend : {"numba", "numpy"}
        Numba kernels (default) or their vectorised NumPy twins (same numbers to ~1e-14).

    Notes
    -----
    Njit code should call the per-point kernels of :mod:`febm_ref._numba.kernels` with
    :meth:`kernel_args` ``-> (kernel_params, sizes, act_code)``; ``kernel_params`` is the
    full layout (output bias included, 0 when disabled).
    """

    def __init__(self, dim, hidden, activation="tanh", *, params, output_bias: bool = True,
                 backend: str = "numba"):
        self.dim = check_positive_int(dim, "dim")
        hidden = _check_hidden(hidden)
        self.activation = activation
        self.act_code = K.activation_code(activation)
        self.is_holomorphic = activation in K.HOLOMORPHIC_ACTIVATIONS
        self.backend = check_choice(backend, "backend", BACKENDS)
        self.output_bias = bool(output_bias)
        self.sizes = np.array((self.dim, *hidden, 1), dtype=np.int64)
        self.sizes.setflags(write=False)
        self.hidden = hidden
        self._set_params(as_float_array(params, "params", ndim=1, allow_nonfinite=True))

    @classmethod
    def random_init(cls, rng, dim, hidden, activation="tanh", *, output_bias: bool = True,
                    backend: str = "numba", bias_scale: float = 0.0) -> "MLPEnergy":
        """LeCun-normal weights ``W_l ~ N(0, 1/fan_in)``, biases ``N(0, bias_scale^2)``."""
        rng = check_generator(rng)
        sizes = [check_positive_int(dim, "dim")] + list(_check_hidden(hidden)) + [1]
        bias_scale = check_real_scalar(bias_scale, "bias_scale", nonnegative=True)
        blocks = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            blocks.append(rng.standard_normal(n_in * n_out) / math.sqrt(n_in))
            blocks.append(bias_scale * rng.standard_normal(n_out))
        params = np.concatenate(blocks)
        if not output_bias:
            params = params[:-1]
        return cls(dim, tuple(sizes[1:-1]), activation, params=params, output_bias=output_bias,
                   backend=backend)

    def with_backend(self, backend: str) -> "MLPEnergy":
        """The same model evaluated by the other backend."""
        check_choice(backend, "backend", BACKENDS)
        new = copy.copy(self)
        new.backend = backend
        return new

    def _validate_params(self, theta):
        expected = K.mlp_n_params(self.sizes) - (0 if self.output_bias else 1)
        if theta.shape != (expected,):
            raise ValueError(f"params must have shape ({expected},) for sizes {self.sizes.tolist()} "
                             f"(output_bias={self.output_bias}), got {theta.shape}")
        if not np.all(np.isfinite(theta)):
            raise ValueError("params contain a non-finite value; pass finite numbers")
        self._kernel_params = self._full(theta)
        self._kernel_params.setflags(write=False)

    def _full(self, params):
        if self.output_bias:
            return np.ascontiguousarray(params)
        return np.concatenate([params, np.zeros(1, dtype=params.dtype)])

    def kernel_args(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(kernel_params, sizes, act_code)`` for the njit kernels of :mod:`febm_ref._numba.kernels`."""
        return self._kernel_params, self.sizes, self.act_code

    def _trim(self, g):
        return g if self.output_bias else g[..., :-1]

    def energy_complex(self, x, params):
        return M.mlp_energy_batch_numpy(self._full(np.asarray(params)), self.sizes, self.act_code, x)

    def _energy(self, x):
        f = K.mlp_energy_batch if self.backend == "numba" else M.mlp_energy_batch_numpy
        return f(self._kernel_params, self.sizes, self.act_code, x)

    def _energy_and_grad_x(self, x):
        f = K.mlp_energy_grad_x_batch if self.backend == "numba" else M.mlp_energy_grad_x_batch_numpy
        return f(self._kernel_params, self.sizes, self.act_code, x)

    def _grad_params(self, x):
        f = K.mlp_grad_params_batch if self.backend == "numba" else M.mlp_grad_params_batch_numpy
        return self._trim(f(self._kernel_params, self.sizes, self.act_code, x))

    def _weighted_grad_params(self, x, w):
        f = (K.mlp_weighted_grad_params if self.backend == "numba"
             else M.mlp_weighted_grad_params_numpy)
        return self._trim(f(self._kernel_params, self.sizes, self.act_code, x, w))
