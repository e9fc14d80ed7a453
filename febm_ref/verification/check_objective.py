"""Checks of the f-EBM estimator (docs/theory.md section 2): D13 against the exact D9/D10, the
O(1/n) bias of the batch covariance term, D11, D12 and the stop-gradient surrogate.

Setting: ``p = N(0.5, 1.3^2)``, ``q_theta = N(0.2, 1.1^2)`` (Gaussian energy), a quadratic
critic near the optimal one (so every exact integral of every divergence is finite),
quadrature on a 50-panel Gauss-Legendre rule (:mod:`febm_ref.exact_objective`). The pieces
(the critics, the D12 and covariance-bias formulas, the stop-gradient surrogate, the finite
differences of D_f) are functions that tests/test_objective.py uses too.
"""

from __future__ import annotations

import math

import numpy as np

from febm_ref.divergences import get_divergence
from febm_ref.exact_objective import ExactObjective, gauss_legendre_box
from febm_ref.models.critics import QuadraticCritic
from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy
from febm_ref.objective import contrastive_divergence_gradient, febm_energy_gradient, febm_gradient
from febm_ref.reference_optima import PAPER_TABLE, divergence_value
from febm_ref.targets import paper_mixture_1d
from febm_ref.verification.registry import Measurement, register

TARGET = GaussianEnergy1D(0.5, 1.3)
MODEL = GaussianEnergy1D(0.2, 1.1)


def _divergences():
    return [get_divergence(n, **({} if a is None else {"alpha": a})) for n, a in PAPER_TABLE]


def near_optimal_critic():
    """``H = -E_p`` plus a small quadratic perturbation: ``r = log(p/q) + const + delta(x)``."""
    h = QuadraticCritic.negative_of_gaussian_energy([0.5], [[1.0 / 1.69]])
    return h.with_params(h.params + np.array([0.05, 0.05, -0.02]))


def kl_optimal_critic():
    """The exact KL critic ``H* = -E_p + log Z_q - log Z_p`` (so ``r = log p/q`` and ``E_q[e^r] = 1``)."""
    h_star = QuadraticCritic.negative_of_gaussian_energy([0.5], [[1.0 / 1.69]])
    return h_star.with_params(h_star.params + np.array([MODEL.log_normalizer() - TARGET.log_normalizer(), 0, 0]))


def quadrature_rule():
    """50 Gauss-Legendre panels on [-25, 25]."""
    return gauss_legendre_box([(-25.0, 25.0)], 50)


def batch_covariance_term(div, critic, rule):
    """``(D9, Cov_q(g_model(r), dE))`` by quadrature: D9 is the exact theta-gradient and the
    covariance the term whose batch estimate is biased by ``-Cov/n``."""
    obj = ExactObjective.from_energy(div, rule, TARGET, tail_tolerance=1e-9)
    ev = obj.evaluate(MODEL, critic)
    x = rule.nodes
    wq = obj.model_weights(MODEL)
    gm = div.g_model(critic.energy(x) + MODEL.energy(x))
    return ev.grad_theta, MODEL.weighted_grad_params(x, wq * (gm - wq @ gm))


def kl_d12_quadrature(obj, rule, critic):
    """D12 for KL by quadrature: ``E_p[dE] - E_q[e^r] E_q[dE]`` (``q = MODEL``)."""
    x = rule.nodes
    wp, wq = obj.p_weights, obj.model_weights(MODEL)
    dE = MODEL.grad_params(x)
    er = np.exp(critic.energy(x) + MODEL.energy(x))
    return wp @ dE - (wq @ er) * (wq @ dE)


def kl_d12_minibatch(critic, xp, xn):
    """D12 for KL on one batch: ``<dE+> - <e^r-> <dE->``."""
    ern = np.exp(critic.energy(xn) + MODEL.energy(xn))
    return MODEL.grad_params(xp).mean(0) - ern.mean() * MODEL.grad_params(xn).mean(0)


def d13_z_scores(div, critic, rule, rng, reps: int, n: int, covariance: str):
    """``(z, standard_error, mean)`` of the D13 estimate of ``(grad_theta, grad_omega)`` over
    ``reps`` independent batches of ``n`` positives (``TARGET``) and ``n`` negatives (``MODEL``),
    against the exact D9/D10 by quadrature: ``z = |mean - exact| / standard_error`` per component
    (inf or nan where the standard error is 0)."""
    ev = ExactObjective.from_energy(div, rule, TARGET, tail_tolerance=1e-9).evaluate(MODEL, critic)
    est = np.array([np.concatenate([g.grad_theta, g.grad_omega]) for g in (
        febm_gradient(div, MODEL, critic, TARGET.sample(rng, n), MODEL.sample(rng, n), covariance=covariance)
        for _ in range(reps))])
    ref = np.concatenate([ev.grad_theta, ev.grad_omega])
    se = est.std(0, ddof=1) / math.sqrt(reps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(est.mean(0) - ref) / se, se, est.mean(0)


@register("objective.D13_unbiased", group="objective",
          description="mean of the D13 minibatch estimator (covariance from independent halves) over "
                      "independent batches = exact D9/D10 by quadrature, every divergence; error = worst |z|")
def check_unbiased(quick: bool) -> Measurement:
    reps, n = (150, 200) if quick else (2000, 200)
    critic, rule = near_optimal_critic(), quadrature_rule()
    rng = np.random.default_rng(20240)
    worst, per = 0.0, {}
    for div in _divergences():
        z, _, _ = d13_z_scores(div, critic, rule, rng, reps, n, "halves")
        per[div.label] = float(z.max())
        worst = max(worst, float(z.max()))
    # 55 components: a 4.5-sigma bound has a family-wise false-alarm rate ~4e-4
    return Measurement(worst, 4.5, {"max_z_per_divergence": per, "batches": reps, "batch_size": n})


@register("objective.batch_covariance_bias", group="objective",
          description="the batch covariance term of D13 has expectation (1 - 1/n) Cov_q(g_model, dE): "
                      "the mean estimate matches D9 - Cov/n (KL, n = 2); error = worst |z|")
def check_bias(quick: bool) -> Measurement:
    div = get_divergence("kl")
    critic, rule = near_optimal_critic(), quadrature_rule()
    d9, cov = batch_covariance_term(div, critic, rule)
    n, reps = 2, (6000 if quick else 100000)
    rng = np.random.default_rng(5)
    est = np.array([febm_energy_gradient(div, MODEL, critic, TARGET.sample(rng, n), MODEL.sample(rng, n)).grad_theta
                    for _ in range(reps)])
    se = est.std(0, ddof=1) / math.sqrt(reps)
    predicted = d9 - cov / n
    z = np.abs(est.mean(0) - predicted) / se
    return Measurement(float(z.max()), 4.5, {"mean": est.mean(0), "D9": d9,
                                             "D9_minus_cov_over_n": predicted, "standard_error": se})


def d9_at_optimal_critic(div, target, energy, rule) -> np.ndarray:
    """D9 with ``r = log p - log q_theta`` exactly (the optimal critic), by quadrature."""
    x = rule.nodes
    w = np.exp(rule.log_weights)
    log_p = target.log_density(x)
    log_q = -energy.energy(x) - energy.log_normalizer()
    r = log_p - log_q
    p, q = np.exp(log_p), np.exp(log_q)
    dE = energy.grad_params(x)
    with np.errstate(over="ignore", invalid="ignore"):
        qgm = np.where(q > 0, q * div.g_model(r), 0.0)
        qgmp = np.where(q > 0, q * div.g_model_prime(r), 0.0)
    return (w * p * div.g_data_prime(r)) @ dE - (w * qgmp) @ dE + (w * (qgm - q * (w @ qgm))) @ dE


def divergence_gradient_fd(div, target, mu: float, sigma: float, h: float = 1e-5) -> np.ndarray:
    """``grad_(mu, sigma) D_f(P || N(mu, sigma^2))`` by central differences of the divergence
    quadrature (:func:`febm_ref.reference_optima.divergence_value`)."""
    return np.array([divergence_value(div, target, mu + h, sigma) - divergence_value(div, target, mu - h, sigma),
                     divergence_value(div, target, mu, sigma + h) - divergence_value(div, target, mu, sigma - h)]
                    ) / (2 * h)


@register("objective.D11_optimal_critic", group="objective",
          description="D11: at r = log(p/q) the f-EBM theta-gradient D9 equals grad_theta D_f(P||Q_theta) "
                      "(central differences of the divergence quadrature), paper mixture, every divergence")
def check_d11(quick: bool) -> Measurement:
    target = paper_mixture_1d()
    rule = gauss_legendre_box([(-40.0, 40.0)], 320)
    points = [(1.2, 1.6)] if quick else [(1.2, 1.6), (0.4, 1.3), (1.8, 1.9)]
    worst, per = 0.0, {}
    h = 1e-5
    for div in _divergences():
        for mu, sigma in points:
            d9 = d9_at_optimal_critic(div, target, GaussianEnergy1D(mu, sigma), rule)
            fd = divergence_gradient_fd(div, target, mu, sigma, h)
            err = float(np.max(np.abs(d9 - fd)) / max(np.max(np.abs(fd)), 1e-12))
            per[f"{div.label}@({mu},{sigma})"] = err
            worst = max(worst, err)
    return Measurement(worst, 1e-6, {"relative_error": per})


@register("objective.D12_kl_scaled_cd", group="objective",
          description="D12: for KL, D9 = E_p[dE] - E_q[e^r] E_q[dE] (quadrature, any critic) and at the optimal "
                      "critic it equals the CD gradient; minibatch identity exact")
def check_d12(quick: bool) -> Measurement:
    critic, rule = near_optimal_critic(), quadrature_rule()
    obj = ExactObjective.from_energy("kl", rule, TARGET, tail_tolerance=1e-9)
    x = rule.nodes
    wp, wq = obj.p_weights, obj.model_weights(MODEL)
    dE = MODEL.grad_params(x)
    e1 = np.max(np.abs(obj.evaluate(MODEL, critic).grad_theta - kl_d12_quadrature(obj, rule, critic)))
    h_star = kl_optimal_critic()
    e2 = np.max(np.abs(obj.evaluate(MODEL, h_star).grad_theta - (wp @ dE - wq @ dE)))
    rng = np.random.default_rng(1)
    xp, xn = TARGET.sample(rng, 64), MODEL.sample(rng, 64)
    g = febm_energy_gradient("kl", MODEL, h_star, xp, xn).grad_theta
    e3 = np.max(np.abs(g - kl_d12_minibatch(h_star, xp, xn)))
    cd = contrastive_divergence_gradient(MODEL, xp, xn).grad_theta
    return Measurement(float(max(e1, e2, e3)), 1e-11,
                       {"identity_any_critic": e1, "optimal_critic_vs_cd": e2, "minibatch_identity": e3,
                        "minibatch_fEBM_minus_CD_at_optimal_critic": np.abs(g - cd).max()})


def surrogate_problem(rng):
    """``(energy, critic, positives, negatives)`` of the surrogate check: ``N(0.3, 1.2^2)``, a
    1-6-5-1 tanh critic (NumPy backend), 40 positives from ``N(0.5, 1.3^2)``, 30 negatives."""
    energy = GaussianEnergy1D(0.3, 1.2)
    critic = MLPEnergy.random_init(rng, 1, (6, 5), "tanh", bias_scale=0.2, backend="numpy")
    return energy, critic, rng.normal(0.5, 1.3, (40, 1)), energy.sample(rng, 30)


def surrogate_theta(div, energy, critic, xp, xn, theta, gm_frozen, lam: float) -> float:
    """The published stop-gradient surrogate for the energy, in NumPy: the negatives and the
    centred ``g_model(r-)`` weights ``gm_frozen`` are frozen (no gradient)."""
    e = energy.with_params(theta)
    ep, en = e.energy(xp), e.energy(xn)
    hp, hn = critic.energy(xp), critic.energy(xn)
    return (np.mean(div.g_data(hp + ep)) - np.mean(div.g_model(hn + en))
            + np.mean((gm_frozen - gm_frozen.mean()) * en) + lam * (np.mean(ep ** 2) + np.mean(en ** 2)))


def surrogate_omega(div, energy, critic, xp, xn, omega, lam: float) -> float:
    """The critic's surrogate (D10 on the batch, minus the D14 l2 terms)."""
    c = critic.with_params(omega)
    a, b = c.energy(xp), c.energy(xn)
    return (np.mean(div.g_data(a + energy.energy(xp))) - np.mean(div.g_model(b + energy.energy(xn)))
            - lam * (np.mean(a ** 2) + np.mean(b ** 2)))


@register("objective.surrogate_gradient", group="objective",
          description="the explicit D13 (+D14) equals the gradient of the published stop-gradient surrogate "
                      "loss (NumPy, frozen negatives and weights) by central differences, every divergence")
def check_surrogate(quick: bool) -> Measurement:
    rng = np.random.default_rng(3)
    energy, critic, xp, xn = surrogate_problem(rng)
    worst = 0.0
    h = 1e-6
    for div in _divergences():
        for lam in (0.0, 0.5):
            g = febm_gradient(div, energy, critic, xp, xn, l2_weight=lam)
            gm0 = div.g_model(critic.energy(xn) + energy.energy(xn))
            s_theta = lambda theta: surrogate_theta(div, energy, critic, xp, xn, theta, gm0, lam)
            s_omega = lambda omega: surrogate_omega(div, energy, critic, xp, xn, omega, lam)
            fd_t = np.array([(s_theta(energy.params + h * e) - s_theta(energy.params - h * e)) / (2 * h)
                             for e in np.eye(2)])
            worst = max(worst, float(np.max(np.abs(fd_t - g.grad_theta)) / np.max(np.abs(fd_t))))
            u = rng.standard_normal(critic.n_params)
            u /= np.linalg.norm(u)
            fd_o = (s_omega(critic.params + h * u) - s_omega(critic.params - h * u)) / (2 * h)
            worst = max(worst, abs(fd_o - g.grad_omega @ u) / np.linalg.norm(g.grad_omega))
    return Measurement(worst, 1e-6, {"note": "relative error of central differences, h = 1e-6"})
