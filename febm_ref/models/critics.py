"""Critics ``H_omega`` that are linear in their parameters (D6), same interface as the energies.

:class:`QuadraticCritic` ``H(x) = w0 + b^T x + x^T C x`` (``C`` symmetric) is the critic
that can represent the exact log ratio ``log(p/q)`` between two Gaussians (docs/theory.md
section 3), so with a Gaussian energy the realisable equilibrium ``H* = -E_theta*``
(docs/theory.md section 5) lies in its family. Being linear in ``omega``, its parameter gradient
``dH = phi(x)`` is a fixed feature vector and its parameter Hessian is zero.
"""

from __future__ import annotations

import numpy as np

from febm_ref._validation import as_float_array, check_positive_int, check_real_scalar
from febm_ref.models.energies import EnergyModel

__all__ = ["QuadraticCritic"]


class QuadraticCritic(EnergyModel):
    """``H(x) = w0 + b^T x + x^T C x`` with symmetric ``C`` (upper-triangle parameters).

    Parameters
    ----------
    dim : int
        Input dimension ``d``.
    params : array (Q,)
        ``Q = 1 + d + d(d+1)/2``, laid out as ``[w0, b_1..b_d, C_ij for i <= j
        (row-major upper triangle)]``, so that
        ``x^T C x = sum_i C_ii x_i^2 + 2 sum_{i<j} C_ij x_i x_j``.

    Notes
    -----
    ``dH/domega = phi(x) = [1, x_1..x_d, c_ij x_i x_j]`` with ``c_ii = 1``, ``c_ij = 2``
    (``i < j``); ``grad_x H = b + 2 C x``.
    """

    def __init__(self, dim, params):
        self.dim = check_positive_int(dim, "dim")
        self._iu = np.triu_indices(self.dim)
        self._pair_factor = np.where(self._iu[0] == self._iu[1], 1.0, 2.0)
        self._set_params(as_float_array(params, "params", ndim=1))

    @classmethod
    def n_params_for(cls, dim: int) -> int:
        """``Q = 1 + d + d(d+1)/2``."""
        d = check_positive_int(dim, "dim")
        return 1 + d + d * (d + 1) // 2

    @classmethod
    def from_coefficients(cls, w0, b, C) -> "QuadraticCritic":
        """From the constant ``w0``, the vector ``b (d,)`` and a symmetric matrix ``C (d, d)``."""
        w0 = check_real_scalar(w0, "w0")
        b = as_float_array(b, "b", ndim=1, nonempty=True)
        C = as_float_array(C, "C", ndim=2)
        d = b.shape[0]
        if C.shape != (d, d):
            raise ValueError(f"C must have shape ({d}, {d}) to match b of length {d}, got {C.shape}")
        if not np.allclose(C, C.T, rtol=1e-13, atol=1e-300):
            raise ValueError("C must be symmetric (C == C.T)")
        iu = np.triu_indices(d)
        return cls(d, np.concatenate([[w0], b, C[iu]]))

    @classmethod
    def negative_of_gaussian_energy(cls, mean, precision) -> "QuadraticCritic":
        """The critic ``H = -E`` for ``E(x) = 0.5 (x - m)^T P (x - m)``: the equilibrium
        critic of docs/theory.md section 5 for a Gaussian energy (``C = -P/2``, ``b = P m``,
        ``w0 = -m^T P m / 2``)."""
        m = np.atleast_1d(as_float_array(mean, "mean", ndim=(0, 1)))
        P = np.atleast_2d(as_float_array(precision, "precision", ndim=(0, 2)))
        if P.shape != (m.shape[0], m.shape[0]):
            raise ValueError(f"precision must have shape ({m.shape[0]}, {m.shape[0]}) to match mean of "
                             f"length {m.shape[0]}, got {P.shape}")
        return cls.from_coefficients(-0.5 * m @ P @ m, P @ m, -0.5 * P)

    def _validate_params(self, theta):
        expected = self.n_params_for(self.dim)
        if theta.shape != (expected,) or not np.all(np.isfinite(theta)):
            raise ValueError(f"params: a QuadraticCritic in {self.dim}-D needs {expected} finite parameters "
                             f"[w0, b ({self.dim}), upper triangle of C], got shape {theta.shape}")

    def coefficients(self, params=None):
        """``(w0, b, C)`` with ``C`` the full symmetric matrix."""
        params = self._params if params is None else params
        d = self.dim
        C = np.zeros((d, d), dtype=np.result_type(params, np.float64))
        C[self._iu] = params[1 + d:]
        C = C + C.T - np.diag(np.diag(C))
        return params[0], params[1:1 + d], C

    def features(self, x) -> np.ndarray:
        """``phi(x) = dH/domega``, shape ``(n, Q)``."""
        return self._features(self._check_x(x))

    def _features(self, x):
        i, j = self._iu
        return np.concatenate([np.ones((x.shape[0], 1)), x, self._pair_factor * x[:, i] * x[:, j]], axis=1)

    def energy_complex(self, x, params):
        w0, b, C = self.coefficients(params)
        return w0 + x @ b + np.einsum("ni,ij,nj->n", x, C, x)

    def _energy(self, x):
        return self._features(x) @ self._params

    def _energy_and_grad_x(self, x):
        _, b, C = self.coefficients()
        return self._energy(x), b[None, :] + 2.0 * x @ C

    def _grad_params(self, x):
        return self._features(x)

    def _weighted_grad_params(self, x, w):
        return w @ self._features(x)


class OffsetEnergy(EnergyModel):
    """``E(x) = base(x) + b``: any model plus a free additive constant (the gauge of
    docs/theory.md section 5). ``params = [base params, b]``; ``dE/db = 1``."""

    def __init__(self, base, offset: float = 0.0):
        if not isinstance(base, EnergyModel):
            raise TypeError(f"base must be an EnergyModel (febm_ref.models.energies), got {type(base).__name__}")
        offset = check_real_scalar(offset, "offset")
        self.base = base
        self.dim = base.dim
        self._set_params(np.concatenate([base.params, [offset]]))

    def _validate_params(self, theta):
        if theta.shape != (self.base.n_params + 1,) or not np.all(np.isfinite(theta)):
            raise ValueError(f"OffsetEnergy needs {self.base.n_params + 1} finite parameters "
                             f"(base, then offset), got shape {theta.shape}")
        self._base_now = self.base.with_params(theta[:-1])

    def energy_complex(self, x, params):
        return self.base.energy_complex(x, params[:-1]) + params[-1]

    def _energy(self, x):
        return self._base_now.energy(x) + self._params[-1]

    def _energy_and_grad_x(self, x):
        e, g = self._base_now.energy_and_grad_x(x)
        return e + self._params[-1], g

    def _grad_params(self, x):
        g = self._base_now.grad_params(x)
        return np.concatenate([g, np.ones((g.shape[0], 1))], axis=1)

    def _weighted_grad_params(self, x, w):
        return np.concatenate([self._base_now.weighted_grad_params(x, w), [np.sum(w)]])
