"""``H(x) = H_1(x) + H_2(x) + ...``: a sum of models with concatenated parameters.

Used for the critic ``H_omega`` of the converged 1-D protocol: a 1-64-64-1 tanh MLP
*plus* a quadratic ``w0 + b x + c x^2`` (:class:`febm_ref.models.critics.QuadraticCritic`).
Why: the optimal critic is ``H* = log p + log Z_theta`` (D6, D8), which for a Gaussian
mixture decreases like ``-x^2/(2 v_max)`` in the tails, while a tanh MLP is bounded in
``x``. With a bounded ``H`` the modelled ratio ``r = H + E`` grows like ``E`` in the
tails of ``q_theta``, so ``E_q[g_model(r)]`` diverges for every divergence whose
``g_model`` grows like ``e^{a s}`` with ``a >= 1`` (KL, Pearson, alpha >= 1), the
estimator D13 becomes heavy tailed, and the rare far negatives bias theta towards a
too narrow model. The quadratic part lets ``H`` represent ``log p`` in the tails.

Parameters are ``[params of H_1, params of H_2, ...]``; every method of the
:class:`~febm_ref.models.energies.EnergyModel` interface is the sum (values, ``grad_x``) or the
concatenation (parameter gradients) of the parts'.
"""

from __future__ import annotations

import copy

import numpy as np

from febm_ref._validation import as_float_array
from febm_ref.models.energies import EnergyModel

__all__ = ["SumModel"]


class SumModel(EnergyModel):
    """Sum of models of the same input dimension (see the module docstring)."""

    def __init__(self, *parts):
        if len(parts) < 2:
            raise ValueError("SumModel needs at least two models")
        for k, part in enumerate(parts):
            if not isinstance(part, EnergyModel):
                raise TypeError(f"SumModel parts must be EnergyModel instances; part {k} is {type(part).__name__}")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise ValueError(f"all parts must have the same input dimension, got {sorted(dims)}")
        self.dim = parts[0].dim
        self.parts = tuple(parts)
        self.is_holomorphic = all(getattr(p, "is_holomorphic", False) for p in parts)
        self._sizes = [p.n_params for p in parts]
        self._set_params(np.concatenate([p.params for p in parts]))

    def _split(self, theta):
        out, off = [], 0
        for k in self._sizes:
            out.append(theta[off:off + k])
            off += k
        return out

    def _validate_params(self, theta):
        if theta.shape != (sum(self._sizes),):
            raise ValueError(f"theta of a SumModel must have shape ({sum(self._sizes)},) (the parts' parameters "
                             f"concatenated), got {theta.shape}")
        # validate and store the parts (each part's own checks apply)
        self.parts = tuple(p.with_params(t) for p, t in zip(self.parts, self._split(theta)))

    def with_params(self, theta) -> "SumModel":
        theta = as_float_array(theta, "theta", ndim=1)
        new = copy.copy(self)
        new._set_params(theta)
        return new

    def energy_complex(self, x, params):
        return sum(p.energy_complex(x, t) for p, t in zip(self.parts, self._split(params)))

    def _energy(self, x):
        return sum(p._energy(x) for p in self.parts)

    def _energy_and_grad_x(self, x):
        values = [p._energy_and_grad_x(x) for p in self.parts]
        return sum(v[0] for v in values), sum(v[1] for v in values)

    def _grad_params(self, x):
        return np.concatenate([p._grad_params(x) for p in self.parts], axis=1)

    def _weighted_grad_params(self, x, w):
        return np.concatenate([p._weighted_grad_params(x, w) for p in self.parts])
