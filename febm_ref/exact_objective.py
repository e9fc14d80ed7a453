"""The exact (quadrature) counterpart of the f-EBM objective, D8-D10, in 1-D and 2-D.

For a data density ``p``, an energy ``E_theta`` (``q_theta = exp(-E_theta) / Z_theta``)
and a critic ``H_omega``, with the modelled log ratio (D6) ``r = H_omega + E_theta``:

(D8)  ``L(theta, omega) = E_p[g_data(r)] - E_q[g_model(r)]``

(D9)  ``grad_theta L = E_p[g_data'(r) dE] - E_q[g_model'(r) dE] + Cov_q(g_model(r), dE)``

(D10) ``grad_omega L = E_p[g_data'(r) dH] - E_q[g_model'(r) dH]``

with ``dE = grad_theta E_theta(x)`` and ``dH = grad_omega H_omega(x)``. Every expectation
here is a *deterministic* quadrature sum over one fixed rule (never Monte Carlo): a
composite Gauss-Legendre rule on a box, tensor product in 2-D. ``p`` and ``q_theta`` are
normalised by the same rule (log-sum-exp), so they are exactly normalised discrete
measures on the nodes and every identity of the continuous theory that only uses
linearity and the score identity (D1) holds for them to rounding error; the rule itself
approximates the continuous integrals to ~1e-13 when the box and the panels are chosen
as documented in :func:`gauss_legendre_box`.

Because the nodes do not move with the parameters, the exact field is a smooth function
of ``(theta, omega)``: central finite differences of it are accurate (the point of
docs/theory.md section 5).

Any energy/critic object with the interface of :class:`febm_ref.models.energies.EnergyModel`
(``dim``, ``params``, ``n_params``, ``energy(x)``, ``grad_params(x)``,
``weighted_grad_params(x, w)``, ``with_params(theta)``) can be used, e.g.
:class:`~febm_ref.models.energies.GaussianEnergy1D`, :class:`~febm_ref.models.energies.QuadraticEnergy`,
:class:`~febm_ref.models.energies.MLPEnergy` and :class:`febm_ref.models.critics.QuadraticCritic`.

Divergent integrals (for example ``E_q[e^{2r}]`` of Pearson chi^2 when ``r`` grows
faster than ``E``) are not hidden: the integrands' mass on the outermost panels of the
box is measured on every evaluation, and a :class:`ValueError` is raised when it is not
negligible (``tail_tolerance``), so a wrong finite number is never returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from febm_ref._logsumexp import logsumexp
from febm_ref._validation import as_float_array, check_model, check_positive_int, check_real_scalar
from febm_ref.divergences import Divergence, resolve_divergence

__all__ = [
    "QuadratureRule",
    "gauss_legendre_box",
    "gauss_legendre_panels",
    "ExactEvaluation",
    "ExactObjective",
]


# ----------------------------------------------------------------------------------
# Quadrature rules
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuadratureRule:
    """A fixed quadrature rule on ``R^d``: ``int phi(x) dx ~= sum_i exp(log_weights_i) phi(nodes_i)``.

    Attributes
    ----------
    nodes : ndarray, shape (n, d)
    log_weights : ndarray, shape (n,)
        Logarithms of the (positive) weights.
    edge : ndarray of bool, shape (n,)
        True for nodes in an outermost panel of the box along some axis: the mass an
        integrand puts there measures whether the box is wide enough.
    """

    nodes: np.ndarray
    log_weights: np.ndarray
    edge: np.ndarray

    def __post_init__(self):
        nodes = np.ascontiguousarray(as_float_array(self.nodes, "nodes", ndim=2, nonempty=True))
        n = nodes.shape[0]
        log_weights = as_float_array(self.log_weights, "log_weights (one per node)", shape=(n,))
        edge = np.asarray(self.edge)
        if edge.dtype != bool or edge.shape != (n,):
            raise ValueError(f"edge must be a boolean array of shape ({n},), got {edge.dtype} {edge.shape}")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "log_weights", log_weights)
        object.__setattr__(self, "edge", edge)

    @property
    def dim(self) -> int:
        return int(self.nodes.shape[1])

    @property
    def size(self) -> int:
        return int(self.nodes.shape[0])

    def integrate(self, values) -> float:
        """``sum_i w_i values_i`` for values at the nodes (shape ``(n,)``, finite)."""
        values = as_float_array(values, "values", shape=(self.size,))
        return float(np.dot(np.exp(self.log_weights), values))


def gauss_legendre_box(bounds: Sequence[Sequence[float]], n_panels, order: int = 16) -> QuadratureRule:
    """Composite Gauss-Legendre rule on a box with equal panels, tensor product over the axes.

    Parameters
    ----------
    bounds : sequence of (lo, hi)
        One interval per dimension (``d = len(bounds)``, 1 or 2 in practice).
    n_panels : int or sequence of int
        Number of equal panels per axis (at least 2).
    order : int
        Gauss-Legendre points per panel.

    Returns
    -------
    QuadratureRule

    Notes
    -----
    For an integrand analytic in a strip of half-width ``a`` around the real axis, the
    error of an ``order``-point rule on a panel of width ``w`` decays like
    ``(w / (4 a))^(2 order)``; with panels about one length scale wide and ``order=16``
    the rule is exact to rounding for Gaussian-like integrands. The box must be wide
    enough that the integrands are negligible outside it (checked by
    :class:`ExactObjective` through :attr:`QuadratureRule.edge`).
    """
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__iter__"):
        raise TypeError(f"bounds must be a sequence of (lo, hi) pairs, one per axis, got {bounds!r}")
    bounds = [tuple(check_real_scalar(v, "bound") for v in b) for b in bounds]
    if not bounds or any(len(b) != 2 or not b[0] < b[1] for b in bounds):
        raise ValueError(f"bounds must be a non-empty list of (lo, hi) with lo < hi, got {bounds}")
    d = len(bounds)
    panels = [n_panels] * d if np.ndim(n_panels) == 0 else list(n_panels)
    if len(panels) != d:
        raise ValueError(f"n_panels must be an int or one int per axis ({d}), got {n_panels}")
    panels = [check_positive_int(k, "n_panels", minimum=2) for k in panels]
    return gauss_legendre_panels([np.linspace(lo, hi, k + 1) for (lo, hi), k in zip(bounds, panels)], order)


def gauss_legendre_panels(edges_per_axis: Sequence[Sequence[float]], order: int = 16) -> QuadratureRule:
    """Composite Gauss-Legendre rule on given panel edges (graded panels allowed).

    Parameters
    ----------
    edges_per_axis : sequence of 1-D arrays
        Strictly increasing panel edges for each axis (at least 3 edges: the first and
        last panels form the *edge* of the box).
    order : int
        Gauss-Legendre points per panel.

    Notes
    -----
    Wide panels are accurate where the integrand is ``exp(linear) x smooth`` (the tails
    of energies that grow linearly, e.g. softplus MLPs), so a graded mesh (narrow near
    the mass, wide in the tails) keeps 2-D tensor rules small.
    """
    order = check_positive_int(order, "order")
    if isinstance(edges_per_axis, (str, bytes)) or not hasattr(edges_per_axis, "__len__"):
        raise TypeError(f"edges_per_axis must be a sequence of panel-edge arrays, one per axis, got {edges_per_axis!r}")
    if len(edges_per_axis) == 0:
        raise ValueError("edges_per_axis must list the panel edges of at least one axis, got an empty sequence")
    t, w = np.polynomial.legendre.leggauss(order)
    axes_x, axes_w, axes_e = [], [], []
    for edges in edges_per_axis:
        edges = as_float_array(edges, "panel edges", ndim=1)
        if edges.shape[0] < 3 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"panel edges must be strictly increasing with at least 3 entries, got {edges}")
        k = edges.shape[0] - 1
        half = 0.5 * np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        axes_x.append((mid[:, None] + half[:, None] * t[None, :]).ravel())
        axes_w.append((half[:, None] * w[None, :]).ravel())
        panel = np.repeat(np.arange(k), order)
        axes_e.append((panel == 0) | (panel == k - 1))
    grids = np.meshgrid(*axes_x, indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=1)
    log_w = sum(np.log(g.ravel()) for g in np.meshgrid(*axes_w, indexing="ij"))
    edge = np.zeros(nodes.shape[0], dtype=bool)
    for g in np.meshgrid(*axes_e, indexing="ij"):
        edge |= g.ravel()
    return QuadratureRule(np.ascontiguousarray(nodes), np.asarray(log_w, dtype=np.float64), edge)


# ----------------------------------------------------------------------------------
# The exact objective
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExactEvaluation:
    """Exact values at one ``(theta, omega)``.

    Attributes
    ----------
    value : float
        ``L(theta, omega)`` (D8).
    grad_theta : ndarray (P,)
        D9.
    grad_omega : ndarray (Q,)
        D10.
    edge_fraction : float
        Largest fraction of any integrand's absolute mass on the edge panels of the rule.
    """

    value: float
    grad_theta: np.ndarray
    grad_omega: np.ndarray
    edge_fraction: float

    @property
    def field(self) -> np.ndarray:
        """The descent-ascent field ``v = (-grad_theta L, +grad_omega L)`` (docs/theory.md section 5)."""
        return np.concatenate([-self.grad_theta, self.grad_omega])


def _normalised_weights(log_w: np.ndarray, log_density: np.ndarray) -> np.ndarray:
    a = log_w + log_density
    return np.exp(a - logsumexp(a))


def _edge_fraction(edge: np.ndarray, *weighted: np.ndarray) -> float:
    worst = 0.0
    for values in weighted:
        total = float(np.sum(values))
        if total > 0:
            worst = max(worst, float(np.sum(values[edge])) / total)
    return worst


class ExactObjective:
    """``L``, ``grad_theta L`` and ``grad_omega L`` (D8-D10) by quadrature.

    Parameters
    ----------
    divergence : Divergence or str
        A catalogue divergence (or its name; pass ``alpha=`` for the alpha family).
    rule : QuadratureRule
        The fixed rule (see :func:`gauss_legendre_box`).
    log_p : callable or array
        Unnormalised ``log p`` as a function ``x (n, d) -> (n,)`` or its values at the
        nodes; it is normalised on the rule.
    tail_tolerance : float
        Largest allowed fraction of any integrand's absolute mass on the edge panels;
        above it evaluation raises :class:`ValueError` (box too small, or the integral
        diverges).
    alpha : float, optional
        Parameter of the alpha family when ``divergence`` is a name.

    Examples
    --------
    >>> from febm_ref.models.energies import GaussianEnergy1D
    >>> from febm_ref.models.critics import QuadraticCritic
    >>> rule = gauss_legendre_box([(-14.0, 14.0)], 28)
    >>> target = GaussianEnergy1D(0.5, 1.2)
    >>> obj = ExactObjective.from_energy("kl", rule, target)
    >>> ev = obj.evaluate(GaussianEnergy1D(0.0, 1.0), QuadraticCritic(1, [0.0, 0.0, 0.0]))
    """

    def __init__(self, divergence, rule: QuadratureRule, log_p, *, tail_tolerance: float = 1e-12,
                 alpha: Optional[float] = None):
        self.divergence: Divergence = resolve_divergence(divergence, alpha=alpha)
        if not isinstance(rule, QuadratureRule):
            raise TypeError(f"rule must be a QuadratureRule (see gauss_legendre_box), got {type(rule).__name__}")
        self.rule = rule
        values = log_p(rule.nodes) if callable(log_p) else log_p
        values = as_float_array(values, "log_p at the nodes", ndim=1, allow_nonfinite=True)
        if values.shape != (rule.size,):
            raise ValueError(f"log_p must give one value per node ({rule.size}), got shape {values.shape}")
        if np.any(np.isnan(values)) or np.any(values == np.inf):
            raise ValueError("log_p is nan or +inf at some node; pass a finite log density (-inf allowed)")
        if not np.any(np.isfinite(values)):
            raise ValueError("log_p is -inf at every node (zero density on the whole rule): the target cannot "
                             "be normalised; check log_p or move the quadrature box")
        self.log_p_unnormalised = values
        self.log_normaliser_p = float(logsumexp(rule.log_weights + values))
        self.p_weights = _normalised_weights(rule.log_weights, values)
        self._radius2 = 1.0 + np.sum(rule.nodes * rule.nodes, axis=1)
        self.tail_tolerance = check_real_scalar(tail_tolerance, "tail_tolerance", positive=True)
        p_edge = _edge_fraction(rule.edge, self.p_weights)
        if p_edge > self.tail_tolerance:
            raise ValueError(f"the target puts {p_edge:.2e} of its mass on the edge panels of the "
                             f"quadrature box (tolerance {self.tail_tolerance:.0e}); widen the box")

    @classmethod
    def from_energy(cls, divergence, rule: QuadratureRule, target_energy, **kwargs) -> "ExactObjective":
        """The objective whose data density is ``p ∝ exp(-target_energy)`` (normalised on the rule)."""
        if isinstance(rule, QuadratureRule):
            check_model(target_energy, "target_energy", rule.dim)
        return cls(divergence, rule, -target_energy.energy(rule.nodes), **kwargs)

    # ------------------------------------------------------------------ densities
    @property
    def log_p(self) -> np.ndarray:
        """Normalised ``log p`` at the nodes."""
        return self.log_p_unnormalised - self.log_normaliser_p

    def model_log_normaliser(self, energy) -> float:
        """``log Z_theta = log int exp(-E_theta)`` on the rule."""
        self._check_model(energy, "energy")
        return float(logsumexp(self.rule.log_weights - energy.energy(self.rule.nodes)))

    def model_weights(self, energy) -> np.ndarray:
        """Normalised quadrature masses of ``q_theta`` at the nodes (``sum = 1``)."""
        self._check_model(energy, "energy")
        return _normalised_weights(self.rule.log_weights, -energy.energy(self.rule.nodes))

    # ------------------------------------------------------------------ objective
    def evaluate(self, energy, critic, *, gradients: bool = True) -> ExactEvaluation:
        """``L`` (D8) and, if ``gradients``, D9 and D10 at the models' current parameters.

        Raises
        ------
        ValueError
            If the models' input dimension differs from the rule's, a value is not finite,
            or an integrand is not negligible on the edge of the box.
        """
        x = self.rule.nodes
        self._check_model(energy, "energy")
        self._check_model(critic, "critic")
        div = self.divergence
        e = energy.energy(x)
        r = critic.energy(x) + e
        wp = self.p_weights
        wq = _normalised_weights(self.rule.log_weights, -e)
        with np.errstate(over="ignore", invalid="ignore"):
            gd, gm = div.g_data(r), div.g_model(r)
            value = float(np.dot(wp, gd) - np.dot(wq, gm))
            if not gradients:
                self._check_finite(value)
                self._check_edge(wp * np.abs(gd), wq * np.abs(gm))
                return ExactEvaluation(value, np.empty(0), np.empty(0),
                                       _edge_fraction(self.rule.edge, wp * np.abs(gd), wq * np.abs(gm)))
            gdp, gmp = div.g_data_prime(r), div.g_model_prime(r)
            c_omega = wp * gdp - wq * gmp
            mean_gm = float(np.dot(wq, gm))
            c_theta = c_omega + wq * (gm - mean_gm)
        self._check_finite(value, c_omega, c_theta)
        fraction = self._check_edge(wp * np.abs(gd), wq * np.abs(gm), wp * np.abs(gdp), wq * np.abs(gmp),
                                    np.abs(c_theta) * self._radius2)
        grad_theta = energy.weighted_grad_params(x, c_theta)
        grad_omega = critic.weighted_grad_params(x, c_omega)
        return ExactEvaluation(value, np.asarray(grad_theta, dtype=np.float64),
                               np.asarray(grad_omega, dtype=np.float64), fraction)

    def field(self, energy, critic) -> np.ndarray:
        """``v(theta, omega) = (-grad_theta L, +grad_omega L)`` (docs/theory.md section 5), shape ``(P + Q,)``."""
        return self.evaluate(energy, critic).field

    def field_at(self, energy, critic, z) -> np.ndarray:
        """:meth:`field` at the stacked parameters ``z = (theta, omega)``."""
        z = as_float_array(z, "z", ndim=1)
        P = energy.n_params
        if z.shape != (P + critic.n_params,):
            raise ValueError(f"z must have length {P + critic.n_params} (theta then omega), got {z.shape}")
        return self.field(energy.with_params(z[:P]), critic.with_params(z[P:]))

    def f_divergence(self, energy) -> float:
        """``D_f(P || Q_theta) = int q f(p/q)`` (D2) on the rule, from log densities (stable)."""
        self._check_model(energy, "energy")
        log_q = -energy.energy(self.rule.nodes) - self.model_log_normaliser(energy)
        integrand = self.divergence.perspective(self.log_p, log_q)
        self._check_finite(float(np.dot(np.exp(self.rule.log_weights), integrand)))
        self._check_edge(np.exp(self.rule.log_weights) * np.abs(integrand))
        return float(np.dot(np.exp(self.rule.log_weights), integrand))

    def optimal_log_ratio(self, energy) -> np.ndarray:
        """``log(p/q_theta)`` at the nodes: the ``r`` of the optimal critic (D8 remark)."""
        self._check_model(energy, "energy")
        return self.log_p + energy.energy(self.rule.nodes) + self.model_log_normaliser(energy)

    # ------------------------------------------------------------------ checks
    def _check_model(self, model, name: str) -> None:
        """An energy model on the rule's dimension (TypeError/ValueError naming ``name``)."""
        check_model(model, name)
        if model.dim != self.rule.dim:
            raise ValueError(f"{name} has dim {model.dim} but the quadrature rule is {self.rule.dim}-D")

    @staticmethod
    def _check_finite(*values) -> None:
        for v in values:
            if not np.all(np.isfinite(v)):
                raise ValueError("a quadrature sum of the f-EBM objective is not finite (an integrand "
                                 "overflows on the box: the modelled ratio r = H + E is too large; "
                                 "the exact integral probably diverges)")

    def _check_edge(self, *weighted: np.ndarray) -> float:
        fraction = _edge_fraction(self.rule.edge, *weighted)
        if fraction > self.tail_tolerance:
            raise ValueError(f"an integrand of the f-EBM objective puts {fraction:.2e} of its mass on the "
                             f"edge panels of the quadrature box (tolerance {self.tail_tolerance:.0e}): "
                             "widen the box, or the exact integral diverges")
        return fraction
