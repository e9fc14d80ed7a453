"""Local convergence of f-EBM training, confirmed by linearisation (docs/theory.md section 5, D17).

Functions here return numbers (dicts of floats/arrays); :mod:`febm_ref.verification.check_convergence`
turns them into registered checks and ``figures/fig_convergence.py`` plots them. The shared
mathematics (:class:`Problem`, the 1-D Gaussian toy, the exact field, finite-difference and D17
Jacobians, the Gaussian closed form, ``eta*``) lives in :mod:`febm_ref.local_convergence`, which
the golden set's ``convergence`` section also uses; it is imported here under the same names.

Set-up. ``z = (theta, omega)``, field ``v(z) = (-grad_theta L, +grad_omega L)`` computed
exactly by quadrature (:class:`febm_ref.exact_objective.ExactObjective`, never Monte
Carlo). At the realisable equilibrium ``q_theta* = p``, ``H_omega* = -E_theta*`` (so
``r = 0``) the Jacobian is claimed to be (D17)

    J = f''(1) [[-A, m h^T], [-h m^T, -G]],
    A = E_p[dE dE^T] - 2 m m^T,  G = E_p[dH dH^T],  m = E_p[dE],  h = E_p[dH].

Derivation (checked numerically below). With ``c = f''(1)``: ``g_data(0) = g_model(0) = f'(1)``,
``g_data'(0) = g_model'(0) = c``, ``g_data''(0) = c + f'''(1)``, ``g_model''(0) = 2c + f'''(1)``,
and ``grad_theta q = q (E_q[dE] - dE)`` (D1). Differentiating D9/D10 at ``p = q``, ``r = 0``:
the ``f'''(1)`` terms cancel between data and model, the parameter-Hessian terms cancel
because ``g_data'(0) = g_model'(0)``, and the score terms give ``-m m^T`` (twice, once from
``E_q[g_model' dE]`` and once from the covariance), hence ``d grad_theta L / d theta = c A``,
``d grad_theta L / d omega = -c m h^T``, ``d grad_omega L / d theta = -c h m^T``,
``d grad_omega L / d omega = -c G``: exactly D17.

Linear maps. Simultaneous: ``z <- z + eta v(z)``, linearisation ``I + eta J``.
Alternating, critic first (as published): ``omega' = omega + eta v_omega(theta, omega)``,
``theta' = theta + eta v_theta(theta, omega')``; with the blocks ``J_tt, J_to, J_ot, J_oo``
of ``J`` its linearisation is

    M_alt = [[I + eta J_tt + eta^2 J_to J_ot,  eta J_to (I + eta J_oo)],
             [eta J_ot,                        I + eta J_oo          ]].

Model families: a Gaussian energy with a quadratic critic (1-D and 2-D) and realisable
softplus MLP pairs (1-D and 2-D; target ``p ∝ exp(-E_theta*)`` normalised by quadrature,
critic of the same architecture with the last layer negated and an output bias, so that
``H* = -E*``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from febm_ref.divergences import Divergence, all_divergences
from febm_ref.exact_objective import gauss_legendre_panels
from febm_ref.local_convergence import (
    Problem,
    d17_jacobian,
    fd_jacobian,
    gaussian_1d_problem,
    gaussian_closed_form_jacobian,
    graded_edges,
    relative_error,
    step_size_bound,
)
from febm_ref.models.critics import OffsetEnergy, QuadraticCritic
from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy, QuadraticEnergy

# One instance per catalogue entry, alpha at -0.5, 0.5, 2 (the catalogue table of docs/theory.md, section 2.1).
CATALOGUE: Tuple[Divergence, ...] = all_divergences(alphas=(-0.5, 0.5, 2.0))

# ----------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------


def gaussian_2d_problem(mean=(0.3, -0.2), cov=((1.0, 0.4), (0.4, 0.7))) -> Problem:
    """:class:`QuadraticEnergy` (mean, log-diagonal and off-diagonal of the precision's
    Cholesky factor: 5 parameters) with a 2-D quadratic critic (6 parameters), target
    ``p = N(mean, cov)``; tensor rule of graded 10-point panels (14,400 nodes; 3e-14
    relative agreement of the field with an 83k-node rule)."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    energy = QuadraticEnergy.from_covariance(mean, cov)
    L = energy.precision_factor
    critic = QuadraticCritic.negative_of_gaussian_energy(mean, L @ L.T)
    axes = []
    for i in range(2):
        s = math.sqrt(cov[i, i])
        axes.append(graded_edges(mean[i], 6 * s, 2.0 * s, s * np.array([9.0, 12.0, 13.0])))
    rule = gauss_legendre_panels(axes, 10)
    return Problem("gaussian_2d", rule, -energy.energy(rule.nodes), energy, critic)


def _mlp_pair(W0, b0, W1, *, energy_output_bias: bool):
    W0 = np.atleast_2d(np.asarray(W0, dtype=np.float64))
    d, hidden = W0.shape
    core = [W0.ravel(), np.asarray(b0, dtype=np.float64)]
    W1 = np.asarray(W1, dtype=np.float64)
    energy = MLPEnergy(d, (hidden,), "softplus",
                       params=np.concatenate(core + [W1] + ([np.zeros(1)] if energy_output_bias else [])),
                       output_bias=energy_output_bias)
    critic = MLPEnergy(d, (hidden,), "softplus", params=np.concatenate(core + [-W1, np.zeros(1)]),
                       output_bias=True)
    return energy, critic


def mlp_1d_problem(*, energy_output_bias: bool = False) -> Problem:
    """Softplus MLP 1-2-1, ``E = 1.0 sp(2x - 0.5) + 1.3 sp(-1.5x + 0.5)`` (grows linearly on
    both sides, so ``exp(-E)`` is normalisable), no output bias unless
    ``energy_output_bias`` (the gauge control); critic: same hidden layer, negated output
    weights, free output bias (``H* = -E*``)."""
    energy, critic = _mlp_pair([[2.0, -1.5]], [-0.5, 0.5], [1.0, 1.3], energy_output_bias=energy_output_bias)
    edges = graded_edges(0.0, 4.0, 0.5, [6.0, 10.0, 16.0, 24.0, 34.0, 35.0])
    rule = gauss_legendre_panels([edges], 16)
    name = "mlp_1d_output_bias" if energy_output_bias else "mlp_1d"
    return Problem(name, rule, -energy.energy(rule.nodes), energy, critic)


def mlp_2d_problem() -> Problem:
    """Softplus MLP 2-3-1 with hidden directions 120 degrees apart (``exp(-E)`` decays
    exponentially in every direction), no output bias; critic as in :func:`mlp_1d_problem`.
    Tensor rule of graded 10-point panels (19,600 nodes; 2e-13 relative agreement of the
    field with a 1.6M-node rule)."""
    ang = 0.3 + np.array([0.0, 2.0, 4.0]) * np.pi / 3
    W0 = 1.5 * np.stack([np.cos(ang), np.sin(ang)])
    energy, critic = _mlp_pair(W0, [0.3, -0.2, 0.1], [3.0, 2.5, 3.5], energy_output_bias=False)
    edges = np.array([-17, -16, -10, -6, -4, -2.5, -1, 0, 1, 2.5, 4, 6, 10, 16, 17], dtype=np.float64)
    rule = gauss_legendre_panels([edges, edges], 10)
    return Problem("mlp_2d", rule, -energy.energy(rule.nodes), energy, critic)


def gaussian_1d_offset_problem() -> Problem:
    """:func:`gaussian_1d_problem` with a free additive constant in the energy
    (:class:`OffsetEnergy`, offset 0 at the equilibrium): the gauge control on a
    well-conditioned family (the critic's ``w0`` is its partner)."""
    base = gaussian_1d_problem()
    energy = OffsetEnergy(base.energy, 0.0)
    return Problem("gaussian_1d_offset", base.rule, base.log_p, energy, base.critic)


PAPER_MIXTURE = ((0.33, -1.0, 0.25), (0.67, 2.0, math.sqrt(2.0)))
"""The paper's 1-D target (docs/theory.md section 6): (weight, mean, std) per component."""


def mixture_log_density(x: np.ndarray, components=PAPER_MIXTURE) -> np.ndarray:
    """``log sum_k w_k N(x; m_k, s_k^2)`` for ``x (n, 1)`` (log-sum-exp)."""
    x = np.asarray(x, dtype=np.float64)[:, 0]
    terms = [math.log(w) - 0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
             for w, m, s in components]
    return np.logaddexp.reduce(np.stack(terms), axis=0)


def nonrealisable_problem() -> Problem:
    """Gaussian energy + quadratic critic against the paper's mixture (not realisable).
    The models start at the moment-matched Gaussian (the KL optimum) and its negation."""
    w = np.array([c[0] for c in PAPER_MIXTURE])
    m = np.array([c[1] for c in PAPER_MIXTURE])
    s = np.array([c[2] for c in PAPER_MIXTURE])
    mean = float(w @ m)
    sd = math.sqrt(float(w @ (s ** 2 + m ** 2)) - mean ** 2)
    energy = GaussianEnergy1D(mean, sd)
    critic = QuadraticCritic.negative_of_gaussian_energy(mean, 1.0 / sd ** 2)
    rule = gauss_legendre_panels([np.linspace(-40.0, 40.0, 161)], 16)
    return Problem("nonrealisable_1d", rule, mixture_log_density(rule.nodes), energy, critic, realisable=False)


@lru_cache(maxsize=None)
def problem(name: str) -> Problem:
    """The named problem (cached): gaussian_1d, gaussian_2d, mlp_1d, mlp_2d,
    mlp_1d_output_bias, nonrealisable_1d."""
    builders: Dict[str, Callable[[], Problem]] = {
        "gaussian_1d": gaussian_1d_problem, "gaussian_2d": gaussian_2d_problem,
        "mlp_1d": mlp_1d_problem, "mlp_2d": mlp_2d_problem,
        "mlp_1d_output_bias": lambda: mlp_1d_problem(energy_output_bias=True),
        "nonrealisable_1d": nonrealisable_problem,
        "gaussian_1d_offset": gaussian_1d_offset_problem,
    }
    if name not in builders:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(builders)}")
    return builders[name]()


REALISABLE = ("gaussian_1d", "gaussian_2d", "mlp_1d", "mlp_2d")

# ----------------------------------------------------------------------------------
# Jacobians
# ----------------------------------------------------------------------------------


def field(prob: Problem, div: Divergence, z, *, l2_weight: float = 0.0) -> np.ndarray:
    """The exact field ``v(z)`` (:meth:`Problem.field`), optionally with the D14 l2 terms
    (:func:`l2_field`)."""
    v = prob.field(div, z)
    if l2_weight:
        v = v + l2_field(prob, div, z, l2_weight)
    return v


def equilibrium_moments(prob: Problem) -> Dict[str, np.ndarray]:
    """``m, h, A, G`` of D17 at ``z*`` by quadrature under ``p``."""
    x = prob.rule.nodes
    wp = prob.objective(CATALOGUE[0]).p_weights
    dE = prob.energy.grad_params(x)
    dH = prob.critic.grad_params(x)
    m = wp @ dE
    h = wp @ dH
    S = dE.T @ (wp[:, None] * dE)
    return {"m": m, "h": h, "A": S - 2.0 * np.outer(m, m), "G": dH.T @ (wp[:, None] * dH),
            "fisher": S - np.outer(m, m)}


def jacobian_report(name: str, divergences: Sequence[Divergence] = CATALOGUE, *, step: float = 1e-5) -> dict:
    """For each divergence: D17 (quadrature moments) vs finite differences of the exact
    field, vs the closed form (Gaussian families), the D17 symmetric-part identity on the
    FD Jacobian, the spectrum, and the scaling with ``f''(1)``.

    Returns
    -------
    dict
        ``{"per_divergence": {label: {...}}, "A_min_eig", "G_min_eig", "fisher_min_eig",
        "scaling_error", "field_at_equilibrium"}``.
    """
    prob = problem(name)
    mom = equilibrium_moments(prob)
    P = prob.n_theta
    out = {}
    scaled = []
    worst_field = 0.0
    for div in divergences:
        c = div.f_double_prime_at_one
        J17 = d17_jacobian(c, mom["A"], mom["G"], mom["m"], mom["h"])
        v0 = field(prob, div, prob.z_star)
        worst_field = max(worst_field, float(np.max(np.abs(v0))))
        Jfd = fd_jacobian(lambda z: field(prob, div, z), prob.z_star, step=step)
        sym = Jfd + Jfd.T
        target_sym = -2.0 * c * np.block([[mom["A"], np.zeros((P, mom["G"].shape[0]))],
                                          [np.zeros((mom["G"].shape[0], P)), mom["G"]]])
        eig = np.linalg.eigvals(J17)
        entry = {"fpp1": c, "fd_vs_d17": relative_error(Jfd, J17), "sym_part_error": relative_error(sym, target_sym),
                 "max_real_eig": float(np.max(eig.real)), "eigenvalues": eig,
                 "eta_star": step_size_bound(eig)}
        if prob.name.startswith("gaussian"):
            Jcf = gaussian_closed_form_jacobian(prob, c)
            entry["closed_vs_d17"] = relative_error(J17, Jcf)
            entry["closed_vs_fd"] = relative_error(Jfd, Jcf)
        out[div.label] = entry
        scaled.append(Jfd / c)
    scaling = max(relative_error(s, scaled[0]) for s in scaled)
    return {"per_divergence": out, "A_min_eig": float(np.linalg.eigvalsh(mom["A"]).min()),
            "G_min_eig": float(np.linalg.eigvalsh(mom["G"]).min()),
            "fisher_min_eig": float(np.linalg.eigvalsh(mom["fisher"]).min()),
            "scaling_error": scaling, "field_at_equilibrium": worst_field}


# ----------------------------------------------------------------------------------
# Linear maps and step-size bounds
# ----------------------------------------------------------------------------------


def simultaneous_map(J, eta: float) -> np.ndarray:
    """``I + eta J``."""
    return np.eye(J.shape[0]) + eta * J


def alternating_map(J, n_theta: int, eta: float) -> np.ndarray:
    """Linearisation of the critic-first alternating update (module docstring)."""
    Jtt, Jto = J[:n_theta, :n_theta], J[:n_theta, n_theta:]
    Jot, Joo = J[n_theta:, :n_theta], J[n_theta:, n_theta:]
    It, Io = np.eye(n_theta), np.eye(J.shape[0] - n_theta)
    return np.block([[It + eta * Jtt + eta ** 2 * Jto @ Jot, eta * Jto @ (Io + eta * Joo)],
                     [eta * Jot, Io + eta * Joo]])


def spectral_radius(M) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(M))))


def alternating_bound(J, n_theta: int, *, eta_max: Optional[float] = None, grid: int = 400) -> float:
    """Smallest ``eta > 0`` with ``rho(M_alt(eta)) = 1`` (grid scan, then bisection to 1e-12)."""
    if eta_max is None:
        eta_max = 8.0 * step_size_bound(np.linalg.eigvals(J))
    etas = np.linspace(eta_max / grid, eta_max, grid)
    rho = np.array([spectral_radius(alternating_map(J, n_theta, e)) for e in etas])
    above = np.nonzero(rho >= 1.0)[0]
    if above.size == 0:
        return math.inf
    hi = float(etas[above[0]])
    lo = float(etas[above[0] - 1]) if above[0] > 0 else 0.0
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if spectral_radius(alternating_map(J, n_theta, mid)) >= 1.0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------------
# Deterministic dynamics with the exact field
# ----------------------------------------------------------------------------------


def run_dynamics(prob: Problem, div: Divergence, z0, eta: float, n_steps: int, *,
                 scheme: str = "simultaneous", l2_weight: float = 0.0,
                 stop_distance: float = math.inf, z_ref=None) -> np.ndarray:
    """Iterate the exact-field updates from ``z0``; returns the trajectory ``(k+1, n)``.

    ``scheme="simultaneous"``: ``z <- z + eta v(z)``; ``"alternating"``: critic first,
    ``omega <- omega + eta grad_omega L(theta, omega)``, then
    ``theta <- theta - eta grad_theta L(theta, omega_new)``. Stops early when
    ``|z - z_ref| > stop_distance`` (divergence detected) or a value is not finite.
    """
    if scheme not in ("simultaneous", "alternating"):
        raise ValueError(f"scheme must be 'simultaneous' or 'alternating', got {scheme!r}")
    z = np.array(z0, dtype=np.float64)
    z_ref = prob.z_star if z_ref is None else z_ref
    P = prob.n_theta
    traj = [z.copy()]
    for _ in range(n_steps):
        try:
            if scheme == "simultaneous":
                z = z + eta * field(prob, div, z, l2_weight=l2_weight)
            else:
                v = field(prob, div, z, l2_weight=l2_weight)
                z = z.copy()
                z[P:] += eta * v[P:]
                v = field(prob, div, z, l2_weight=l2_weight)
                z[:P] += eta * v[:P]
        except ValueError:
            break
        traj.append(z.copy())
        if not np.all(np.isfinite(z)) or np.linalg.norm(z - z_ref) > stop_distance:
            break
    return np.array(traj)


def _slow_mode_direction(M) -> Tuple[np.ndarray, float]:
    """Unit real direction of the eigenvector of ``M`` with the largest modulus, and that modulus."""
    mu, V = np.linalg.eig(M)
    k = int(np.argmax(np.abs(mu)))
    v = V[:, k]
    v = v * np.exp(-1j * np.angle(v[np.argmax(np.abs(v))]))  # make the largest entry real
    d = v.real
    return d / np.linalg.norm(d), float(np.abs(mu[k]))


def rate_experiment(name: str, div: Divergence, *, scheme: str, eta_fraction: float, n_steps: int,
                    eps: float = 1e-6) -> dict:
    """Run the exact dynamics from ``z* + eps d``, ``d`` the dominant mode of the linear map
    at ``eta = eta_fraction x (its stability bound)``, ``J`` from D17; compare the observed rate
    ``(|e_N| / |e_0|)^(1/N)`` with the predicted spectral radius (see :func:`linear_rate_run`)."""
    prob = problem(name)
    mom = equilibrium_moments(prob)
    J = d17_jacobian(div.f_double_prime_at_one, mom["A"], mom["G"], mom["m"], mom["h"])
    out = linear_rate_run(prob, div, prob.z_star, J, scheme=scheme, eta_fraction=eta_fraction,
                          n_steps=n_steps, eps=eps)
    out["problem"] = name
    return out


def linear_rate_run(prob: Problem, div: Divergence, z_ref, J, *, scheme: str, eta_fraction: float,
                    n_steps: int, eps: float = 1e-6, l2_weight: float = 0.0) -> dict:
    """Exact-field dynamics near the fixed point ``z_ref`` with Jacobian ``J``.

    ``eta = eta_fraction x`` the stability bound of the scheme's linear map (``I + eta J`` or
    the alternating map); start ``z_ref + eps d`` with ``d`` the real direction of the
    dominant eigenvector of that map. Returns the observed rate ``(|e_N|/|e_0|)^(1/N)``, the
    predicted spectral radius, and the trajectory's deviation from the linear prediction
    ``M^k e_0`` relative to the largest distance reached (``O(max distance)`` when the
    linearisation is right). Runs stop at ``1e3 eps`` (divergence) or ``1e-6 eps``
    (rounding floor).
    """
    P = prob.n_theta
    if scheme == "simultaneous":
        bound = step_size_bound(np.linalg.eigvals(J))
        eta = eta_fraction * bound
        M = simultaneous_map(J, eta)
    else:
        bound = alternating_bound(J, P)
        eta = eta_fraction * bound
        M = alternating_map(J, P, eta)
    d, rho = _slow_mode_direction(M)
    e0 = eps * d
    traj = run_dynamics(prob, div, z_ref + e0, eta, n_steps, scheme=scheme, l2_weight=l2_weight,
                        stop_distance=1e3 * eps, z_ref=z_ref)
    err = traj - z_ref
    dist = np.linalg.norm(err, axis=1)
    below = np.nonzero(dist < 1e-6 * eps)[0]
    if below.size:
        err, dist = err[:below[0] + 1], dist[:below[0] + 1]
    n = err.shape[0] - 1
    observed = float((dist[-1] / dist[0]) ** (1.0 / n)) if n > 0 else math.nan
    lin = np.empty_like(err)
    lin[0] = e0
    for k in range(n):
        lin[k + 1] = M @ lin[k]
    deviation = float(np.max(np.linalg.norm(err - lin, axis=1)) / np.max(dist))
    return {"divergence": div.label, "scheme": scheme, "eta": eta, "eta_bound": bound,
            "eta_fraction": eta_fraction, "predicted_rate": rho, "observed_rate": observed,
            "rate_relative_error": abs(math.log(observed) - math.log(rho)) / max(abs(math.log(rho)), 1e-300),
            "n_steps": n, "linear_deviation": deviation, "distance": dist,
            "linear_distance": np.linalg.norm(lin, axis=1)}


# ----------------------------------------------------------------------------------
# Stochastic minibatch dynamics (D13)
# ----------------------------------------------------------------------------------
# The estimator is the library's (febm_ref.objective.febm_gradient, D13); this adapter turns
# it into the field convention v = (-grad_theta, +grad_omega).


def minibatch_field_d13(div: Divergence, energy, critic, x_pos, x_neg) -> np.ndarray:
    """The D13 estimate of ``v = (-grad_theta L, +grad_omega L)`` from positives ``x_pos ~ p``
    and negatives ``x_neg ~ q_theta`` (samples are constants), via
    :func:`febm_ref.objective.febm_gradient`."""
    from febm_ref.objective import febm_gradient

    g = febm_gradient(div, energy, critic, x_pos, x_neg)
    return np.concatenate([-g.grad_theta, g.grad_omega])


def stochastic_experiment(div: Divergence, *, eta: float, n_steps: int, n_runs: int, batch: int,
                          rng: np.random.Generator, eps: float = 0.05, burn_in: float = 0.5) -> dict:
    """Simultaneous minibatch (D13) dynamics on the 1-D Gaussian problem with exact samples
    from ``p`` and ``q_theta``, from ``z* + eps d`` (``d`` a fixed unit direction).

    Per run, the iterates after ``burn_in x n_steps`` are averaged (Polyak averaging); the
    mean over runs and its standard error (over the ``n_runs`` independent runs) are
    compared with ``z*``.
    """
    prob = problem("gaussian_1d")
    target = prob.energy
    z_star = prob.z_star
    n = z_star.shape[0]
    direction = np.cos(np.arange(1, n + 1))
    direction /= np.linalg.norm(direction)
    start = z_star + eps * direction
    averages, finals = [], []
    first = int(burn_in * n_steps)
    for _ in range(n_runs):
        z = start.copy()
        acc = np.zeros(n)
        for k in range(n_steps):
            energy, critic = prob.models(z)
            x_pos = target.sample(rng, batch)
            x_neg = energy.sample(rng, batch)
            z = z + eta * minibatch_field_d13(div, energy, critic, x_pos, x_neg)
            if k >= first:
                acc += z
        averages.append(acc / (n_steps - first))
        finals.append(z)
    averages = np.array(averages)
    mean = averages.mean(axis=0)
    se = averages.std(axis=0, ddof=1) / math.sqrt(n_runs)
    z_scores = (mean - z_star) / se
    return {"divergence": div.label, "eta": eta, "n_steps": n_steps, "n_runs": n_runs, "batch": batch,
            "initial_distance": eps, "mean_distance": float(np.linalg.norm(mean - z_star)),
            "final_distance_rms": float(np.sqrt(np.mean(np.sum((np.array(finals) - z_star) ** 2, axis=1)))),
            "max_abs_z": float(np.max(np.abs(z_scores))), "z_scores": z_scores, "standard_error": se,
            "mean": mean, "z_star": z_star}


# ----------------------------------------------------------------------------------
# Negative controls: the output-bias gauge, its D14 repair, a non-realisable target
# ----------------------------------------------------------------------------------


def l2_field(prob: Problem, div: Divergence, z, weight: float) -> np.ndarray:
    """Expected contribution of the D14 l2 terms to the field (samples held constant, as in
    the estimator): ``v_theta += -2 lambda (E_p[E dE] + E_q[E dE])``,
    ``v_omega += -2 lambda (E_p[H dH] + E_q[H dH])``."""
    energy, critic = prob.models(z)
    obj = prob.objective(div)
    x = prob.rule.nodes
    w = obj.p_weights + obj.model_weights(energy)
    e, h = energy.energy(x), critic.energy(x)
    return -2.0 * weight * np.concatenate([energy.weighted_grad_params(x, w * e),
                                           critic.weighted_grad_params(x, w * h)])


def l2_jacobian(prob: Problem, div: Divergence, z, weight: float, *, step: float = 1e-5) -> np.ndarray:
    """Derived Jacobian of :func:`l2_field` (the D14 contribution to J), with ``w = p + q``::

        d v_theta/d theta = -2 lambda (sum w (dE dE^T + E d2E) + E_q[E dE (E_q[dE] - dE)^T])
        d v_theta/d omega = 0
        d v_omega/d theta = -2 lambda E_q[H dH (E_q[dE] - dE)^T]
        d v_omega/d omega = -2 lambda sum w (dH dH^T + H d2H)

    The weighted parameter-Hessian terms ``sum w E d2E`` are the derivative of the
    hand-derived ``weighted_grad_params(x, w E)`` with the weights frozen (central
    differences); everything else is quadrature.
    """
    energy, critic = prob.models(z)
    obj = prob.objective(div)
    x = prob.rule.nodes
    wq = obj.model_weights(energy)
    w = obj.p_weights + wq
    e, hv = energy.energy(x), critic.energy(x)
    dE, dH = energy.grad_params(x), critic.grad_params(x)
    mq = wq @ dE
    theta, omega = prob.split(np.asarray(z, dtype=np.float64))
    hess_E = fd_jacobian(lambda t: energy.with_params(t).weighted_grad_params(x, w * e), theta, step=step)
    hess_H = fd_jacobian(lambda o: critic.with_params(o).weighted_grad_params(x, w * hv), omega, step=step)
    Jtt = dE.T @ (w[:, None] * dE) + hess_E + dE.T @ ((wq * e)[:, None] * (mq[None, :] - dE))
    Jot = dH.T @ ((wq * hv)[:, None] * (mq[None, :] - dE))
    Joo = dH.T @ (w[:, None] * dH) + hess_H
    P, Q = dE.shape[1], dH.shape[1]
    return -2.0 * weight * np.block([[Jtt, np.zeros((P, Q))], [Jot, Joo]])


def newton_fixed_point(fun: Callable[[np.ndarray], np.ndarray], z0, *, tol: float = 1e-13,
                       max_iter: int = 30) -> Tuple[np.ndarray, float, int]:
    """Newton's method on ``fun(z) = 0`` with finite-difference Jacobians; returns
    ``(z, |fun(z)|_inf, iterations)``."""
    z = np.array(z0, dtype=np.float64)
    res = fun(z)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007  (its last value is returned)
        J = fd_jacobian(fun, z)
        z = z - np.linalg.lstsq(J, res, rcond=None)[0]
        res = fun(z)
        if np.max(np.abs(res)) < tol:
            break
    return z, float(np.max(np.abs(res))), it


def gauge_experiment(div: Divergence, *, n_steps: int, delta: float = 1e-4, eta_fraction: float = 0.5,
                     name: str = "mlp_1d_output_bias") -> dict:
    """Negative control: MLP energy *with* a free output bias ``b`` (critic bias ``b'``).

    Predictions (derived): the field depends on ``(b, b')`` only through ``b + b'`` (gauge
    direction ``u = e_b - e_b'`` is a line of equilibria, ``J u = 0``) and, because
    ``dE/db = dH/db' = 1``, ``grad_b L = grad_b' L`` for every f, so ``v_b + v_b' = 0``:
    ``b + b'`` is conserved (left null vector ``l = e_b + e_b'``, ``l^T J = 0``). As
    ``l^T u = 0`` the zero eigenvalue is not semisimple: a zero pair with a Jordan block, so
    a perturbation of ``b + b'`` is never undone and the gauge coordinate ``b - b'`` drifts
    (linearly in the linearised dynamics). Note ``A_bb = E_p[1] - 2 m_b^2 = -1``: the bias
    makes ``A`` indefinite, not singular. The bias is the last energy parameter and the
    critic's constant its partner (``w0``, the first critic parameter, for the quadratic
    critic; the output bias, the last, for the MLP critic).
    """
    prob = problem(name)
    P = prob.n_theta
    n = prob.z_star.shape[0]
    partner = P if isinstance(prob.critic, QuadraticCritic) else n - 1
    Jfd = fd_jacobian(lambda z: field(prob, div, z), prob.z_star)
    mom = equilibrium_moments(prob)
    J17 = d17_jacobian(div.f_double_prime_at_one, mom["A"], mom["G"], mom["m"], mom["h"])
    eig = np.linalg.eigvals(Jfd)
    order = np.argsort(np.abs(eig))
    u = np.zeros(n)
    u[P - 1], u[partner] = 1.0, -1.0
    ell = np.zeros(n)
    ell[P - 1], ell[partner] = 1.0, 1.0
    nonzero = eig[order[2:]]
    eta = eta_fraction * step_size_bound(nonzero)
    z0 = prob.z_star.copy()
    z0[P - 1] += delta
    traj = run_dynamics(prob, div, z0, eta, n_steps)
    conserved = traj[:, P - 1] + traj[:, partner]
    gauge = 0.5 * (traj[:, P - 1] - traj[:, partner])
    M = simultaneous_map(J17, eta)
    lin = [z0 - prob.z_star]
    for _ in range(traj.shape[0] - 1):
        lin.append(M @ lin[-1])
    lin = np.array(lin)
    return {"problem": name, "divergence": div.label, "fd_vs_d17": relative_error(Jfd, J17),
            "two_smallest_abs_eig": np.abs(eig[order[:2]]), "third_smallest_abs_eig": float(np.abs(eig[order[2]])),
            "max_real_nonzero": float(np.max(nonzero.real)),
            "A_bb": float(mom["A"][P - 1, P - 1]), "A_min_eig": float(np.linalg.eigvalsh(mom["A"]).min()),
            "J_u": float(np.max(np.abs(Jfd @ u))), "l_J": float(np.max(np.abs(ell @ Jfd))),
            "eta": eta, "n_steps": traj.shape[0] - 1, "delta": delta,
            "conservation_error": float(np.max(np.abs(conserved - conserved[0]))),
            "gauge_drift": gauge - gauge[0],
            "linear_gauge_drift": 0.5 * (lin[:, P - 1] - lin[:, partner]) - 0.5 * delta,
            "final_gauge_drift": float(gauge[-1] - gauge[0]),
            "final_distance": float(np.linalg.norm(traj[-1] - prob.z_star))}


def l2_repair_experiment(div: Divergence, *, weight: float = 0.1, n_steps: int = 300, eps: float = 1e-6,
                         name: str = "gaussian_1d_offset") -> dict:
    """The D14 l2 terms on the gauge control: fixed point by Newton, its Jacobian (finite
    differences of the regularised exact field) against ``J_0 + K`` with ``K`` the derived l2
    contribution (:func:`l2_jacobian`), its spectrum, the bias of the fixed point
    (``D_f(P || Q_theta_lambda) > 0``: the l2 terms move the equilibrium off ``q = p``), and the
    dynamics' observed rate against ``rho(I + eta J_lambda)``."""
    prob = problem(name)
    fun = lambda z: field(prob, div, z, l2_weight=weight)  # noqa: E731
    z_fp, residual, iterations = newton_fixed_point(fun, prob.z_star)
    J = fd_jacobian(fun, z_fp)
    J0 = fd_jacobian(lambda z: field(prob, div, z), z_fp)
    K = l2_jacobian(prob, div, z_fp, weight)
    eig = np.linalg.eigvals(J)
    energy, _ = prob.models(z_fp)
    run = linear_rate_run(prob, div, z_fp, J, scheme="simultaneous", eta_fraction=0.5,
                          n_steps=n_steps, eps=eps, l2_weight=weight)
    return {"problem": name, "divergence": div.label, "weight": weight, "newton_residual": residual,
            "newton_iterations": iterations,
            "fixed_point_shift": float(np.linalg.norm(z_fp - prob.z_star)),
            "divergence_at_fixed_point": prob.objective(div).f_divergence(energy),
            "K_error": relative_error(J, J0 + K), "max_real_eig": float(np.max(eig.real)),
            "eigenvalues": eig, "rate": run}


def nonrealisable_experiment(div: Divergence, *, n_steps: int = 400) -> dict:
    """Gaussian energy + quadratic critic against the paper's mixture (not realisable).

    Finds the fixed point of the exact field by Newton from the moment-matched Gaussian,
    compares its ``theta`` with ``argmin_theta D_f(P || N(mu, sigma^2))`` (exact, by
    quadrature and Nelder-Mead on ``(mu, log sigma)``), reports the spectrum of the
    finite-difference Jacobian there, and runs the simultaneous dynamics from the
    moment-matched start (perturbed by 0.05). Failures (Newton not converging, a divergent integral) are
    reported in ``status``, never hidden.
    """
    from scipy.optimize import minimize

    prob = problem("nonrealisable_1d")
    obj = prob.objective(div)
    out = {"divergence": div.label}

    def dfun(t):
        try:
            return obj.f_divergence(GaussianEnergy1D(t[0], math.exp(t[1])))
        except ValueError:
            return math.inf

    start = np.array([prob.energy.mu, math.log(prob.energy.sigma)])
    res = minimize(dfun, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    out["argmin_theta"] = np.array([res.x[0], math.exp(res.x[1])])
    out["min_divergence"] = float(res.fun)
    fun = lambda z: field(prob, div, z)  # noqa: E731
    try:
        z_fp, residual, iterations = newton_fixed_point(fun, prob.z_star)
        out.update(newton_residual=residual, newton_iterations=iterations, fixed_point=z_fp,
                   fixed_point_theta=z_fp[:2])
        if not residual < 1e-10:
            out["status"] = "newton did not converge"
            return out
        J = fd_jacobian(fun, z_fp)
        eig = np.linalg.eigvals(J)
        out.update(max_real_eig=float(np.max(eig.real)), eigenvalues=eig,
                   theta_gap=float(np.linalg.norm(z_fp[:2] - out["argmin_theta"])),
                   divergence_at_fixed_point=obj.f_divergence(prob.models(z_fp)[0]))
        eta = 0.5 * step_size_bound(eig) if np.all(eig.real < 0) else 0.01
        direction = np.cos(np.arange(1, z_fp.shape[0] + 1))
        start = prob.z_star + 0.05 * direction / np.linalg.norm(direction)
        traj = run_dynamics(prob, div, start, eta, n_steps, z_ref=z_fp, stop_distance=1e3)
        out.update(eta=eta, steps_run=traj.shape[0] - 1,
                   final_distance_to_fixed_point=float(np.linalg.norm(traj[-1] - z_fp)),
                   initial_distance_to_fixed_point=float(np.linalg.norm(traj[0] - z_fp)),
                   status="ok")
    except ValueError as exc:
        out["status"] = f"error: {exc}"
    return out
