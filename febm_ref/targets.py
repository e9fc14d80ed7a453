"""Data distributions with known, normalised log densities (DESIGN.md section 6).

A :class:`Target` has ``dim``, ``name``, ``log_density(x)`` (normalised, ``x`` of shape
``(n, d)``, or ``(n,)`` in 1-D) and ``sample(rng, n) -> (n, d)``, plus
``quadrature_bounds`` (a box outside which its mass is negligible, for quadrature) and
``breakpoints`` (features such as component means, for adaptive quadrature).

:class:`GaussianMixture1D` is general; :func:`paper_mixture_1d` is the paper's 1-D
target ``p = 0.33 N(-1, 0.25^2) + 0.67 N(2, 2)`` (variance 2, as the published code
states). Register further targets (2-D toys) in :data:`TARGETS`.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np
from scipy.special import logsumexp

from febm_ref._validation import as_float_array, check_generator, check_positive_int

__all__ = ["Target", "GaussianMixture1D", "paper_mixture_1d", "TARGETS", "get_target"]

LOG_2PI = math.log(2.0 * math.pi)


class Target:
    """Interface: ``dim``, ``name``, ``log_density(x) -> (n,)``, ``sample(rng, n) -> (n, d)``."""

    dim: int
    name: str

    def _check_x(self, x) -> np.ndarray:
        x = as_float_array(x, "x", ndim=(1, 2))
        if x.ndim == 1:
            if self.dim != 1:
                raise ValueError(f"x must have shape (n, {self.dim}), got {x.shape}")
            x = x[:, None]
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {x.shape}")
        return x

    def log_density(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, rng, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class GaussianMixture1D(Target):
    """``p(x) = sum_k w_k N(x; m_k, v_k)`` in 1-D (weights normalised to sum 1).

    Parameters
    ----------
    weights, means, variances : sequence of float
        Mixture weights (positive), component means, component variances (positive).
    name : str
    """

    dim = 1

    def __init__(self, weights, means, variances, *, name: str = "gaussian_mixture_1d"):
        w = as_float_array(weights, "weights", ndim=1)
        m = as_float_array(means, "means", ndim=1)
        v = as_float_array(variances, "variances", ndim=1)
        if not (w.shape == m.shape == v.shape) or w.size == 0:
            raise ValueError(f"weights, means and variances must have the same non-zero length, got "
                             f"{w.shape}, {m.shape}, {v.shape}")
        if np.any(w <= 0) or np.any(v <= 0):
            raise ValueError("weights and variances must be positive")
        self.weights = w / np.sum(w)
        self.means = m
        self.variances = v
        self.name = name
        self._log_w = np.log(self.weights)

    def log_density(self, x) -> np.ndarray:
        """Normalised ``log p(x)`` (log-sum-exp over components), shape ``(n,)``."""
        x = self._check_x(x)[:, 0]
        z = (x[:, None] - self.means) ** 2 / self.variances
        return logsumexp(self._log_w - 0.5 * (z + LOG_2PI + np.log(self.variances)), axis=1)

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact draws, shape ``(n, 1)``: a categorical component, then a Gaussian."""
        rng = check_generator(rng)
        n = check_positive_int(n, "n")
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        return (self.means[k] + np.sqrt(self.variances[k]) * rng.standard_normal(n))[:, None]

    def mean(self) -> float:
        """``E_p[x] = sum_k w_k m_k``."""
        return float(np.dot(self.weights, self.means))

    def variance(self) -> float:
        """``Var_p = sum_k w_k (v_k + m_k^2) - mean^2``."""
        return float(np.dot(self.weights, self.variances + self.means ** 2) - self.mean() ** 2)

    @property
    def quadrature_bounds(self):
        """``[(lo, hi)]`` with each component's mass outside below ``exp(-30^2/2)``."""
        s = np.sqrt(self.variances)
        return [(float(np.min(self.means - 30 * s)), float(np.max(self.means + 30 * s)))]

    @property
    def breakpoints(self):
        """Component means (peaks) for adaptive quadrature."""
        return [float(v) for v in np.sort(self.means)]

    @property
    def max_variance(self) -> float:
        """Largest component variance (it sets the tail of ``p``)."""
        return float(np.max(self.variances))

    def describe(self) -> dict:
        return {"name": self.name, "dim": 1, "weights": self.weights.tolist(), "means": self.means.tolist(),
                "variances": self.variances.tolist()}


def paper_mixture_1d() -> GaussianMixture1D:
    """The paper's 1-D target: ``0.33 N(-1, 0.25^2) + 0.67 N(2, 2)`` (DESIGN section 6)."""
    return GaussianMixture1D([0.33, 0.67], [-1.0, 2.0], [0.0625, 2.0], name="paper_mixture_1d")


TARGETS: Dict[str, Callable[[], Target]] = {
    "paper_mixture_1d": paper_mixture_1d,
}
"""Target factories by name (issue 8 adds the 2-D toys here)."""


def get_target(name: str) -> Target:
    """A fresh target by name (see :data:`TARGETS`)."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name]()
