"""Data distributions with known, normalised log densities (docs/theory.md section 6).

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
from scipy.special import logsumexp, ndtr

from febm_ref._logsumexp import logsumexp_rows
from febm_ref._validation import (
    as_float_array,
    check_generator,
    check_nonnegative_int,
    check_positive_int,
    check_real_scalar,
)

__all__ = ["Target", "GaussianMixture1D", "paper_mixture_1d", "TARGETS", "get_target",
           "GaussianMixture2D", "RadialMixture2D", "eight_gaussians", "two_rings", "two_moons",
           "checkerboard", "TARGETS_2D"]

LOG_2PI = math.log(2.0 * math.pi)


def _check_positive(name: str, values: np.ndarray) -> None:
    if np.any(values <= 0):
        raise ValueError(f"{name} must be positive, got {values.tolist()}")


def _check_stds(stds, n_components: int) -> np.ndarray:
    """Component standard deviations: one positive number for all, or one per component."""
    s = as_float_array(np.atleast_1d(stds) if np.ndim(stds) == 0 else stds, "stds", ndim=1)
    if s.shape not in ((1,), (n_components,)):
        raise ValueError(f"stds must be one number or one per component ({n_components}), got shape {s.shape}")
    _check_positive("stds", s)
    return np.broadcast_to(s, (n_components,)).astype(np.float64)


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
        w = as_float_array(weights, "weights", ndim=1, nonempty=True)
        m = as_float_array(means, "means", ndim=1)
        v = as_float_array(variances, "variances", ndim=1)
        if not (w.shape == m.shape == v.shape):
            raise ValueError(f"weights, means and variances must have the same length, got "
                             f"{w.shape}, {m.shape}, {v.shape}")
        _check_positive("weights", w)
        _check_positive("variances", v)
        self.weights = w / np.sum(w)
        self.means = m
        self.variances = v
        self.name = name
        self._log_w = np.log(self.weights)

    def _log_components(self, x: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x_i; m_k, v_k)``, shape ``(n, K)``, for validated ``x`` of shape ``(n,)``."""
        return self._log_w - 0.5 * ((x[:, None] - self.means) ** 2 / self.variances + LOG_2PI + np.log(self.variances))

    def log_density(self, x) -> np.ndarray:
        """Normalised ``log p(x)`` (log-sum-exp over components), shape ``(n,)``."""
        return logsumexp_rows(self._log_components(self._check_x(x)[:, 0]))[:, 0]

    def grad_log_density(self, x) -> np.ndarray:
        """``d log p / dx = -sum_k r_k(x) (x - m_k) / v_k`` (``r_k`` the responsibilities), ``(n, 1)``."""
        return self.log_density_and_grad(x)[1]

    def log_density_and_grad(self, x) -> tuple[np.ndarray, np.ndarray]:
        """``(log p(x) (n,), d log p/dx (n, 1))`` from one log-sum-exp (the same numbers as
        :meth:`log_density` and :meth:`grad_log_density`; a sampler needs both at every step)."""
        x = self._check_x(x)[:, 0]
        log_components = self._log_components(x)
        log_p = logsumexp_rows(log_components)
        r = np.exp(log_components - log_p)
        return log_p[:, 0], -np.sum(r * (x[:, None] - self.means) / self.variances, axis=1, keepdims=True)

    def cdf(self, x) -> np.ndarray:
        """``P(X <= x) = sum_k w_k Phi((x - m_k) / sqrt(v_k))`` for an array of scalars ``x``
        (``+-inf`` allowed: ``F = 1`` / ``0``; NaN is an error)."""
        x = as_float_array(x, "x", allow_inf=True)[..., None]
        return np.sum(self.weights * ndtr((x - self.means) / np.sqrt(self.variances)), axis=-1)

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact draws, shape ``(n, 1)``: a categorical component, then a Gaussian.

        The component of each draw is ``searchsorted(cdf, u, side="right")`` with ``u``
        from ``rng.random(n)`` and ``cdf`` the normalised cumulative weights: exactly what
        ``rng.choice(K, size=n, p=weights)`` computes (same draws, same numbers), without
        its per-call validation of ``p`` (the weights were validated at construction).
        """
        rng = check_generator(rng)
        n = check_positive_int(n, "n")
        cdf = self.weights.cumsum()
        cdf /= cdf[-1]
        k = cdf.searchsorted(rng.random(n), side="right")
        return (self.means[k] + np.sqrt(self.variances)[k] * rng.standard_normal(n))[:, None]

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
    """The paper's 1-D target: ``0.33 N(-1, 0.25^2) + 0.67 N(2, 2)`` (docs/theory.md section 6)."""
    return GaussianMixture1D([0.33, 0.67], [-1.0, 2.0], [0.0625, 2.0], name="paper_mixture_1d")


TARGETS: Dict[str, Callable[[], Target]] = {
    "paper_mixture_1d": paper_mixture_1d,
    "eight_gaussians": lambda: eight_gaussians(),
    "two_rings": lambda: two_rings(),
    "two_moons": lambda: two_moons(),
    "checkerboard": lambda: checkerboard(),
}
"""Target factories by name (issue 8 adds the 2-D toys here)."""


def get_target(name: str) -> Target:
    """A fresh target by name (see :data:`TARGETS`)."""
    if not isinstance(name, str) or name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name]()


# ------------------------------------------------------------------------------ 2-D toys (issue 8)
#: Half-width of the square box ``[-L, L]^2`` that holds every 2-D toy (target mass outside
#: it is below 1e-10, see ``mass_outside_box``); the learned models live on this box.
BOX_HALF_WIDTH_2D = 4.0
_CHUNK = 8192


class _Target2D(Target):
    dim = 2
    box_half_width = BOX_HALF_WIDTH_2D

    @property
    def box(self):
        """``(lo, hi)`` of the square box ``[lo, hi]^2`` (for quadrature, the samplers and the models)."""
        return (-self.box_half_width, self.box_half_width)

    @property
    def quadrature_bounds(self):
        lo, hi = self.box
        return [(lo, hi), (lo, hi)]

    @property
    def breakpoints(self):
        return []


class GaussianMixture2D(_Target2D):
    """``p(x) = sum_k w_k N(x; m_k, s_k^2 I)`` in 2-D (isotropic components, weights normalised).

    Parameters
    ----------
    weights : sequence of float (K,)
    means : array (K, 2)
    stds : float or sequence (K,)
        Component standard deviations (positive).
    name : str
    """

    def __init__(self, weights, means, stds, *, name: str = "gaussian_mixture_2d"):
        w = as_float_array(weights, "weights", ndim=1, nonempty=True)
        m = as_float_array(means, "means", ndim=2)
        if m.shape != (w.size, 2):
            raise ValueError(f"means must have shape ({w.size}, 2) to match the weights, got {m.shape}")
        _check_positive("weights", w)
        s = _check_stds(stds, w.size)
        self.weights = w / np.sum(w)
        self.means = m
        self.stds = s
        self.name = name
        self._log_norm = np.log(self.weights) - LOG_2PI - 2.0 * np.log(s)

    def log_density(self, x) -> np.ndarray:
        """Normalised ``log p(x)`` (log-sum-exp over components), shape ``(n,)``."""
        x = self._check_x(x)
        out = np.empty(x.shape[0])
        inv_var = 1.0 / self.stds ** 2
        for start in range(0, x.shape[0], _CHUNK):
            xb = x[start:start + _CHUNK]
            # |x - m|^2 per coordinate difference (not the expanded form, which cancels near m)
            d2 = (np.subtract.outer(xb[:, 0], self.means[:, 0]) ** 2
                  + np.subtract.outer(xb[:, 1], self.means[:, 1]) ** 2)
            a = self._log_norm - 0.5 * d2 * inv_var
            top = a.max(axis=1)
            out[start:start + _CHUNK] = top + np.log(np.exp(a - top[:, None]).sum(axis=1))
        return out

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact draws ``(n, 2)``: a categorical component, then an isotropic Gaussian."""
        rng = check_generator(rng)
        n = check_positive_int(n, "n")
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        return self.means[k] + self.stds[k, None] * rng.standard_normal((n, 2))

    def mean(self) -> np.ndarray:
        """``E_p[x] = sum_k w_k m_k``."""
        return self.weights @ self.means

    def second_moment(self) -> np.ndarray:
        """``E_p[x x^T] = sum_k w_k (s_k^2 I + m_k m_k^T)``."""
        return (np.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
                + np.dot(self.weights, self.stds ** 2) * np.eye(2))

    def mass_outside_box(self) -> float:
        """Upper bound on ``P(x not in box)``: union bound over components and the 4 sides."""
        from scipy.special import log_ndtr

        lo, hi = self.box
        logs = []
        for axis in range(2):
            logs.append(log_ndtr((lo - self.means[:, axis]) / self.stds))
            logs.append(log_ndtr((self.means[:, axis] - hi) / self.stds))
        return float(np.exp(logsumexp(np.log(self.weights) + logsumexp(np.stack(logs), axis=0))))

    def describe(self) -> dict:
        return {"name": self.name, "dim": 2, "n_components": int(self.weights.size),
                "weights": self.weights.tolist(), "means": self.means.tolist(), "stds": self.stds.tolist(),
                "box": list(self.box)}


class RadialMixture2D(_Target2D):
    """Concentric rings: ``p(x) = sum_k w_k exp(-(|x| - R_k)^2 / (2 s_k^2)) / C_k``, uniform angle.

    The exact normaliser of one ring, with ``u = r - R``:
    ``C = 2 pi int_0^inf r exp(-(r-R)^2/(2s^2)) dr = 2 pi [s^2 exp(-R^2/(2s^2)) + R s sqrt(2 pi) Phi(R/s)]``.
    The radius of ring ``k`` has density ``2 pi r exp(-(r-R)^2/(2s^2)) / C`` with the closed-form CDF
    ``F(r) = (2 pi / C)[s^2 (exp(-R^2/(2s^2)) - exp(-(r-R)^2/(2s^2))) + R s sqrt(2 pi)(Phi((r-R)/s) - Phi(-R/s))]``,
    inverted by bisection for exact sampling (to ~1e-15 relative).
    """

    def __init__(self, weights, radii, stds, *, name: str = "radial_mixture_2d"):
        w = as_float_array(weights, "weights", ndim=1, nonempty=True)
        R = as_float_array(radii, "radii", ndim=1)
        if R.shape != w.shape:
            raise ValueError(f"weights and radii must have the same length, got {w.shape}, {R.shape}")
        _check_positive("weights", w)
        if np.any(R < 0):
            raise ValueError(f"radii must be non-negative, got {R.tolist()}")
        s = _check_stds(stds, w.size)
        self.weights = w / np.sum(w)
        self.radii = R
        self.stds = s
        self.name = name
        self._log_c = np.log(2.0 * math.pi) + np.logaddexp(
            2.0 * np.log(s) - 0.5 * (R / s) ** 2,
            np.log(np.maximum(R, 1e-300)) + np.log(s) + 0.5 * LOG_2PI + _log_ndtr(R / s))
        self._log_c = np.where(R > 0, self._log_c, np.log(2.0 * math.pi) + 2.0 * np.log(s))

    def log_density(self, x) -> np.ndarray:
        """Normalised ``log p(x)``, shape ``(n,)``."""
        x = self._check_x(x)
        r = np.hypot(x[:, 0], x[:, 1])
        z = (r[:, None] - self.radii) / self.stds
        return logsumexp(np.log(self.weights) - self._log_c - 0.5 * z ** 2, axis=1)

    def radius_cdf(self, r, k: int) -> np.ndarray:
        """``F_k(r)``, the exact CDF of the radius of ring ``k`` (class docstring)."""
        k = check_nonnegative_int(k, "k")
        if k >= self.radii.size:
            raise ValueError(f"k must be a ring index in [0, {self.radii.size - 1}], got {k}")
        r = as_float_array(r, "r", allow_inf=True)
        if np.any(r < 0):
            raise ValueError("r (a radius) must be >= 0")
        return self._radius_cdf(r, k)

    def _radius_cdf(self, r: np.ndarray, k: int) -> np.ndarray:
        """:meth:`radius_cdf` on validated arguments (the bisection of :meth:`sample`)."""
        from scipy.special import ndtr

        R, s = self.radii[k], self.stds[k]
        a = s ** 2 * (np.exp(-0.5 * (R / s) ** 2) - np.exp(-0.5 * ((r - R) / s) ** 2))
        b = R * s * math.sqrt(2.0 * math.pi) * (ndtr((r - R) / s) - ndtr(-R / s))
        return 2.0 * math.pi * (a + b) / math.exp(self._log_c[k])

    def sample(self, rng, n: int) -> np.ndarray:
        """``n`` exact draws: a ring, a radius by inverse CDF (bisection), a uniform angle."""
        rng = check_generator(rng)
        n = check_positive_int(n, "n")
        k = rng.choice(self.weights.size, size=n, p=self.weights)
        u = rng.random(n)
        phi = 2.0 * math.pi * rng.random(n)
        lo = np.zeros(n)
        hi = self.radii[k] + 40.0 * self.stds[k]
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            below = np.empty(n, dtype=bool)
            for j in range(self.weights.size):
                sel = k == j
                below[sel] = self._radius_cdf(mid[sel], j) < u[sel]
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        r = 0.5 * (lo + hi)
        return np.column_stack([r * np.cos(phi), r * np.sin(phi)])

    def mass_outside_box(self) -> float:
        """Upper bound on ``P(x not in box)``: ``P(|x| > L)``, computed from the radius CDF."""
        L = self.box_half_width
        return float(sum(w * max(0.0, 1.0 - float(self.radius_cdf(L, k))) for k, w in enumerate(self.weights)))

    def describe(self) -> dict:
        return {"name": self.name, "dim": 2, "weights": self.weights.tolist(), "radii": self.radii.tolist(),
                "stds": self.stds.tolist(), "box": list(self.box)}


def _log_ndtr(z):
    from scipy.special import log_ndtr

    return log_ndtr(z)


def eight_gaussians(radius: float = 2.0, std: float = 0.25) -> GaussianMixture2D:
    """8 equal Gaussians ``N(m_k, std^2 I)`` with ``m_k = radius (cos 2 pi k/8, sin 2 pi k/8)``."""
    radius = check_real_scalar(radius, "radius", nonnegative=True)
    std = check_real_scalar(std, "std", positive=True)
    angles = 2.0 * math.pi * np.arange(8) / 8.0
    means = radius * np.column_stack([np.cos(angles), np.sin(angles)])
    return GaussianMixture2D(np.ones(8), means, std, name="eight_gaussians")


def two_rings(radii=(1.0, 2.5), std: float = 0.2) -> RadialMixture2D:
    """Two concentric rings, weights proportional to the radii (equal density along both rings)."""
    radii = as_float_array(radii, "radii", ndim=1, nonempty=True)
    if not np.all(radii > 0):
        raise ValueError(f"radii must be positive (they are also the ring weights), got {radii.tolist()}")
    std = check_real_scalar(std, "std", positive=True)
    return RadialMixture2D(radii, radii, std, name="two_rings")


def two_moons(n_per_moon: int = 64, scale: float = 1.75, std: float = 0.2) -> GaussianMixture2D:
    """Two interleaved moons as a smoothed density: ``2 n_per_moon`` equal Gaussians ``N(m, std^2 I)``
    with centres evenly spaced in angle along the arcs ``(cos t, sin t)`` and ``(1 - cos t, 0.5 - sin t)``,
    ``t in [0, pi]``, shifted by ``(-0.5, -0.25)`` (centred) and scaled by ``scale``."""
    n_per_moon = check_positive_int(n_per_moon, "n_per_moon")
    scale = check_real_scalar(scale, "scale", positive=True)
    std = check_real_scalar(std, "std", positive=True)
    t = np.linspace(0.0, math.pi, n_per_moon)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    means = scale * (np.vstack([upper, lower]) - np.array([0.5, 0.25]))
    return GaussianMixture2D(np.ones(2 * n_per_moon), means, std, name="two_moons")


def checkerboard(n_squares: int = 4, side: float = 1.0, per_axis: int = 4, std: float = 0.15) -> GaussianMixture2D:
    """A smoothed checkerboard: the ``n_squares^2 / 2`` 'black' squares ``(i + j`` even) of a board of
    squares of side ``side`` centred at the origin, each filled by a ``per_axis x per_axis`` lattice of
    equal Gaussians ``N(m, std^2 I)`` at the centres of its sub-cells."""
    n_squares = check_positive_int(n_squares, "n_squares")
    per_axis = check_positive_int(per_axis, "per_axis")
    side = check_real_scalar(side, "side", positive=True)
    std = check_real_scalar(std, "std", positive=True)
    offset = -0.5 * n_squares * side
    sub = (np.arange(per_axis) + 0.5) * side / per_axis
    means = []
    for i in range(n_squares):
        for j in range(n_squares):
            if (i + j) % 2 == 0:
                xs, ys = np.meshgrid(offset + i * side + sub, offset + j * side + sub, indexing="ij")
                means.append(np.column_stack([xs.ravel(), ys.ravel()]))
    means = np.vstack(means)
    return GaussianMixture2D(np.ones(means.shape[0]), means, std, name="checkerboard")


TARGETS_2D = ("eight_gaussians", "two_rings", "two_moons", "checkerboard")
"""Names of the 2-D toys in :data:`TARGETS`."""
