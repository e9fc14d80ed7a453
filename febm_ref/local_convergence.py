"""The linearisation of f-EBM training at its realisable equilibrium (docs/theory.md section 5, D17).

The mathematics shared by the verification checks (:mod:`febm_ref.verification.convergence`,
which builds the experiments on it) and the ``convergence`` section of the golden set
(:func:`febm_ref.conformance.golden.build_convergence`).

Set-up. ``z = (theta, omega)``, field ``v(z) = (-grad_theta L, +grad_omega L)`` computed
exactly by quadrature (:class:`febm_ref.exact_objective.ExactObjective`, never Monte Carlo). At
the realisable equilibrium ``q_theta* = p``, ``H_omega* = -E_theta*`` (so ``r = 0``) the
Jacobian is (D17, derived in docs/theory.md section 5)

    J = f''(1) [[-A, m h^T], [-h m^T, -G]],
    A = E_p[dE dE^T] - 2 m m^T,  G = E_p[dH dH^T],  m = E_p[dE],  h = E_p[dH].

Here: a :class:`Problem` (a model pair at its equilibrium with a quadrature rule), the 1-D
Gaussian toy (:func:`gaussian_1d_problem`), the exact field (:meth:`Problem.field`), central
finite differences (:func:`fd_jacobian`), D17 (:func:`d17_jacobian`), its hand-derived closed
form for the Gaussian families (:func:`gaussian_closed_form_jacobian`, Isserlis moments) and
the step-size bound ``eta*`` of simultaneous gradient steps (:func:`step_size_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Tuple

import numpy as np

from febm_ref.divergences import Divergence
from febm_ref.exact_objective import ExactObjective, QuadratureRule, gauss_legendre_panels
from febm_ref.models.critics import QuadraticCritic
from febm_ref.models.energies import GaussianEnergy1D, QuadraticEnergy

__all__ = ["Problem", "graded_edges", "gaussian_1d_problem", "fd_jacobian", "d17_jacobian",
           "gaussian_closed_form_jacobian", "relative_error", "step_size_bound"]


@dataclass
class Problem:
    """A model family at its realisable equilibrium (or a non-realisable target).

    Attributes
    ----------
    name : str
    rule : QuadratureRule
    log_p : ndarray
        Unnormalised target log density at the nodes.
    energy, critic
        Models at the equilibrium parameters (their ``params`` form ``z*``).
    realisable : bool
    """

    name: str
    rule: QuadratureRule
    log_p: np.ndarray
    energy: object
    critic: object
    realisable: bool = True
    _objectives: dict = field(default_factory=dict, repr=False)

    @property
    def n_theta(self) -> int:
        return self.energy.n_params

    @property
    def z_star(self) -> np.ndarray:
        return np.concatenate([self.energy.params, self.critic.params])

    def objective(self, divergence: Divergence) -> ExactObjective:
        key = divergence.label
        if key not in self._objectives:
            self._objectives[key] = ExactObjective(divergence, self.rule, self.log_p)
        return self._objectives[key]

    def split(self, z) -> Tuple[np.ndarray, np.ndarray]:
        return z[:self.n_theta], z[self.n_theta:]

    def models(self, z):
        theta, omega = self.split(np.asarray(z, dtype=np.float64))
        return self.energy.with_params(theta), self.critic.with_params(omega)

    def field(self, divergence: Divergence, z) -> np.ndarray:
        """The exact field ``v(z) = (-grad_theta L, +grad_omega L)`` (quadrature)."""
        energy, critic = self.models(z)
        return self.objective(divergence).field(energy, critic)


def graded_edges(center: float, inner: float, inner_width: float, outer: Sequence[float]) -> np.ndarray:
    """Panel edges: equal panels of ``inner_width`` on ``center +- inner``, then the
    ``outer`` offsets (increasing, beyond ``inner``) on both sides; the last outer panel is
    the thin *edge* panel whose mass the objective monitors."""
    k = int(round(2 * inner / inner_width))
    mid = center + np.linspace(-inner, inner, k + 1)
    out = np.asarray(outer, dtype=np.float64)
    return np.concatenate([center - out[::-1], mid, center + out])


def gaussian_1d_problem(mu: float = 0.3, sigma: float = 1.2) -> Problem:
    """``E = 0.5((x-mu)/sigma)^2`` (theta = (mu, sigma)), quadratic critic ``w0 + b x + c x^2``,
    target ``p = N(mu, sigma^2)``; rule: 16-point panels of width ``sigma/2`` on +-7 sigma,
    wider panels to +-15 sigma (integrands below e^-100 at the edge)."""
    energy = GaussianEnergy1D(mu, sigma)
    critic = QuadraticCritic.negative_of_gaussian_energy(mu, 1.0 / sigma ** 2)
    edges = graded_edges(mu, 7 * sigma, 0.5 * sigma, sigma * np.array([9.0, 11.0, 14.0, 15.0]))
    rule = gauss_legendre_panels([edges], 16)
    return Problem("gaussian_1d", rule, -energy.energy(rule.nodes), energy, critic)


def fd_jacobian(fun: Callable[[np.ndarray], np.ndarray], z, *, step: float = 1e-5) -> np.ndarray:
    """Central finite differences ``(v(z + h e_k) - v(z - h e_k)) / 2h`` with ``h = step max(1, |z_k|)``
    (truncation error ``O(h^2)``, rounding ``O(1e-16/h)``)."""
    z = np.asarray(z, dtype=np.float64)
    cols = []
    for k in range(z.shape[0]):
        h = step * max(1.0, abs(z[k]))
        e = np.zeros_like(z)
        e[k] = h
        cols.append((fun(z + e) - fun(z - e)) / (2 * h))
    return np.stack(cols, axis=1)


def d17_jacobian(fpp1: float, A, G, m, h) -> np.ndarray:
    """D17: ``J = f''(1) [[-A, m h^T], [-h m^T, -G]]``."""
    return fpp1 * np.block([[-A, np.outer(m, h)], [-np.outer(h, m), -G]])


# ---- hand-derived closed form for the Gaussian family ----------------------------
# Every dE and dH component is a polynomial of degree <= 2 in u ~ N(0, I):
# phi_k(u) = c_k + b_k.u + u^T Q_k u (Q_k symmetric). Isserlis gives
# E[phi_k] = c_k + tr Q_k,
# E[phi_k phi_l] = (c_k + tr Q_k)(c_l + tr Q_l) + b_k.b_l + 2 tr(Q_k Q_l).


def _poly_moments(polys):
    c = np.array([p[0] for p in polys])
    B = np.stack([p[1] for p in polys])
    Q = np.stack([p[2] for p in polys])
    mean = c + np.trace(Q, axis1=1, axis2=2)
    second = np.outer(mean, mean) + B @ B.T + 2.0 * np.einsum("kij,lji->kl", Q, Q)
    return mean, second


def _sym(a, b):
    return 0.5 * (np.outer(a, b) + np.outer(b, a))


def _quadratic_critic_polys(mean, R):
    """dH for ``QuadraticCritic`` at ``x = mean + R u``: 1, x_a, c_ab x_a x_b."""
    d = mean.shape[0]
    zero_b, zero_Q = np.zeros(d), np.zeros((d, d))
    polys = [(1.0, zero_b, zero_Q)]
    polys += [(mean[a], R[a], zero_Q) for a in range(d)]
    for a, b in zip(*np.triu_indices(d)):
        f = 1.0 if a == b else 2.0
        polys.append((f * mean[a] * mean[b], f * (mean[a] * R[b] + mean[b] * R[a]), f * _sym(R[a], R[b])))
    return polys


def gaussian_closed_form_jacobian(prob: Problem, fpp1: float) -> np.ndarray:
    """J at ``z*`` for the Gaussian families from hand-derived moments (no quadrature).

    1-D (``theta = (mu, sigma)``, ``x = mu + sigma u``): ``dE/dmu = -u/sigma``,
    ``dE/dsigma = -u^2/sigma``. 2-D :class:`QuadraticEnergy` (``x = m + L^{-T} u``,
    ``u = L^T (x - m)``): ``dE/dm = -L u``, ``dE/dlog L_ii = L_ii r_i u_i``,
    ``dE/dL_ij = r_i u_j`` with ``r = L^{-T} u``. The critic's ``dH`` are the monomials
    ``1, x_a, c_ab x_a x_b`` expanded in ``u``. The moments follow from Isserlis.
    """
    energy = prob.energy
    if isinstance(energy, GaussianEnergy1D):
        s = energy.sigma
        mean, R = np.array([energy.mu]), np.array([[s]])
        e_polys = [(0.0, np.array([-1.0 / s]), np.zeros((1, 1))), (0.0, np.zeros(1), np.array([[-1.0 / s]]))]
    elif isinstance(energy, QuadraticEnergy):
        d = energy.dim
        L = energy.precision_factor
        mean, R = energy.mean, np.linalg.solve(L.T, np.eye(d))  # R = L^{-T}
        e_polys = [(0.0, -L[a], np.zeros((d, d))) for a in range(d)]
        eye = np.eye(d)
        e_polys += [(0.0, np.zeros(d), L[i, i] * _sym(R[i], eye[i])) for i in range(d)]
        e_polys += [(0.0, np.zeros(d), _sym(R[i], eye[j])) for i, j in zip(*np.tril_indices(d, -1))]
    else:
        raise TypeError("closed-form Jacobian only for GaussianEnergy1D / QuadraticEnergy problems")
    nE = len(e_polys)
    mean_all, second = _poly_moments(e_polys + _quadratic_critic_polys(mean, R))
    m, h = mean_all[:nE], mean_all[nE:]
    A = second[:nE, :nE] - 2.0 * np.outer(m, m)
    G = second[nE:, nE:]
    return d17_jacobian(fpp1, A, G, m, h)


def relative_error(a, b) -> float:
    """``max|a - b| / max|b|``."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def step_size_bound(eigenvalues) -> float:
    """``eta* = min_lambda 2|Re lambda| / |lambda|^2``: ``rho(I + eta J) < 1`` iff ``eta < eta*``
    (all ``Re lambda < 0``)."""
    lam = np.asarray(eigenvalues)
    return float(np.min(2.0 * np.abs(lam.real) / np.abs(lam) ** 2))
