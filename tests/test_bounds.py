"""Tests of febm_ref.verification.bounds / check_bounds: the variational bound D5 with D7 maps.

Expected values come from the Gaussian closed forms (febm_ref.gaussians), from adaptive
quadrature of ``q f(p/q)`` (Jensen-Shannon) and from the Taylor expansion of the gap
derived in febm_ref/verification/bounds.py, never from earlier runs of this code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from febm_ref.divergences import get_divergence
from febm_ref.models.energies import MLPEnergy
from febm_ref.verification import bounds as B
from febm_ref.verification import check_bounds as C

PAIRS = B.standard_pairs()


@pytest.fixture(scope="module")
def pair1():
    return PAIRS["1d"]


@pytest.mark.parametrize("div", B.all_bound_divergences(), ids=lambda d: d.label)
def test_D5_bound_at_optimal_critic_equals_divergence_1d(div, pair1):
    row = B.optimal_critic_error(div, pair1)
    assert row["relative_error"] < 1e-8, row


@pytest.mark.parametrize("name", ["kl", "neyman_chi2", "jensen_shannon"])
def test_D5_bound_at_optimal_critic_equals_divergence_2d(name):
    row = B.optimal_critic_error(get_divergence(name), PAIRS["2d"])
    assert row["relative_error"] < 1e-8, row


def test_D5_bound_at_optimal_critic_monte_carlo_5d_in_se_units():
    m = C.measure_optimal_critic_monte_carlo(B.all_bound_divergences(), PAIRS["5d"], n=20_000, seed=11)
    assert m.ok(), f"max |B - D|/SE = {m.error:.2f} >= {m.tolerance}; {m.details['per_case']}"


def test_gap_is_bound_minus_divergence_two_ways(pair1):
    """gap_quadrature (one Bregman integral) = closed-form D - bound_quadrature (two integrals)."""
    h = B.bounded_perturbation(1)
    for name in ("kl", "pearson_chi2", "reverse_kl"):
        div = get_divergence(name)
        critic = lambda x: pair1.optimal_log_ratio(x) + 0.7 * h(x)  # noqa: E731
        gap, _ = B.gap_quadrature(div, pair1, critic)
        bound, _ = B.bound_quadrature(div, pair1, critic)
        exact = B.exact_divergence(div, pair1)["value"]
        assert gap > 0
        assert abs((exact - bound) - gap) < 1e-10 * exact, (name, exact - bound, gap)


@pytest.mark.parametrize("name,alpha", [("kl", None), ("squared_hellinger", None), ("pearson_chi2", None),
                                        ("alpha", -0.5), ("jensen_shannon", None)])
def test_D5_gap_matches_second_and_third_order_prediction(name, alpha, pair1):
    div = get_divergence(name, alpha=alpha) if alpha is not None else get_divergence(name)
    st = B.perturbation_study(div, pair1, eps=(0.1, 0.05, 0.025), large_eps=(-1.0, 1.0))
    assert st.min_gap > 0
    # ratio -> 1 with the predicted first-order slope G3/(3 G2)
    slope = st.G3 / (3 * st.G2)
    measured_slope = (st.ratio - 1.0) / st.eps
    assert abs(st.ratio[-1] - 1.0) < 0.05
    deviation = np.abs(measured_slope - slope)   # O(eps): shrinks as eps halves
    assert deviation[-1] < 0.05 * max(abs(slope), 0.05), (measured_slope, slope)
    assert np.all(np.diff(deviation) < 0) or deviation[-1] < 1e-6, deviation
    order = st.remainder_order
    assert np.all(np.abs(order - 4.0) < 0.5), order


def test_third_order_term_vanishes_for_alpha_half(pair1):
    """For alpha = 1/2: 3u^2 f'' + 2u^3 f''' = (2 alpha - 1) u^alpha = 0, so G3 = 0."""
    for div in (get_divergence("alpha", alpha=0.5), get_divergence("squared_hellinger")):
        G2, G3 = B._expansion_integrals(div, pair1, B.bounded_perturbation(1))
        # f''' is a central difference of f'' with relative step 1e-4 (error ~1e-8 relative),
        # so the exact cancellation is seen to ~1e-8 of the scale of G2.
        assert abs(G3) < 1e-7 * G2, (G2, G3)


def test_G2_equals_data_side_form(pair1):
    """G2 = E_q[u^2 f''(u) h^2] (from f'') equals E_p[g_data'(s*) h^2] (from the D7 map)."""
    h = B.bounded_perturbation(1)
    for div in B.all_bound_divergences():
        G2, _ = B._expansion_integrals(div, pair1, h)

        def data_side(x):
            s = pair1.optimal_log_ratio(x)
            return np.exp(pair1.log_p(x)) * div.g_data_prime(s) * h(x) ** 2

        other, _ = B.integrate_pair(pair1, data_side)
        assert abs(G2 - other) < 1e-9 * G2, (div.label, G2, other)


def test_gauss_legendre_rule_matches_adaptive_quadrature_for_mlp_critic(pair1):
    rng = np.random.default_rng(3)
    critic = MLPEnergy.random_init(rng, 1, (8, 8), "tanh")
    rule = B.gauss_legendre_rule(pair1)
    for name in ("kl", "neyman_chi2", "jensen_shannon"):
        div = get_divergence(name)
        gl, _ = B.exact_bound_and_gradient(div, pair1, critic, rule)
        quad, err = B.bound_quadrature(div, pair1, critic.energy)
        assert abs(gl - quad) < 1e-10 * (1 + abs(quad)), (name, gl, quad, err)
        assert gl < B.exact_divergence(div, pair1)["value"]


def test_D10_exact_gradient_is_gradient_of_bound(pair1):
    """grad_omega B = ∫[p g_data'(s) - q g_model'(s)] dH vs central differences of B."""
    rng = np.random.default_rng(4)
    critic = MLPEnergy.random_init(rng, 1, (6,), "tanh", backend="numpy")
    rule = B.gauss_legendre_rule(pair1, panels=30, order=16)
    for name in ("kl", "pearson_chi2", "jensen_shannon"):
        div = get_divergence(name)
        _, grad = B.exact_bound_and_gradient(div, pair1, critic, rule)
        for _ in range(3):
            u = rng.standard_normal(critic.n_params)
            u /= np.linalg.norm(u)
            step = 1e-5
            plus = B.exact_bound_and_gradient(div, pair1, critic.with_params(critic.params + step * u), rule)[0]
            minus = B.exact_bound_and_gradient(div, pair1, critic.with_params(critic.params - step * u), rule)[0]
            fd = (plus - minus) / (2 * step)
            assert abs(fd - grad @ u) < 1e-7 * np.linalg.norm(grad), (name, fd, grad @ u)


def test_D10_learned_critic_rises_towards_divergence_from_below():
    pair = B.mixture_vs_gaussian_pair()
    div = get_divergence("kl")
    run = B.train_critic(div, pair, rng=np.random.default_rng(0), steps=800, eval_every=100)
    exact_q = B.exact_divergence(div, pair)["value"]
    assert run.exact == pytest.approx(exact_q, rel=1e-12)
    assert np.all(run.bound <= run.exact + 1e-9), run.bound - run.exact
    assert run.final_gap < 0.1 * run.initial_gap
    assert run.final_gap / run.exact < 0.1, run.final_gap / run.exact


def test_mixture_pair_divergences_match_gaussians_module_quadrature():
    """The mixture pair's log densities integrate to 1 and its KL equals an independent quad."""
    pair = B.mixture_vs_gaussian_pair()
    mass_p, _ = B.integrate_pair(pair, lambda x: np.exp(pair.log_p(x)))
    mass_q, _ = B.integrate_pair(pair, lambda x: np.exp(pair.log_q(x)))
    assert abs(mass_p - 1) < 1e-12 and abs(mass_q - 1) < 1e-12
    from scipy import integrate
    kl = integrate.quad(lambda t: math.exp(pair.log_p(np.array([[t]]))[0])
                        * float(pair.optimal_log_ratio(np.array([[t]]))[0]), -np.inf, np.inf, points=None,
                        epsabs=1e-13, epsrel=1e-12, limit=500)[0]
    assert B.exact_divergence("kl", pair)["value"] == pytest.approx(kl, rel=1e-9)


# ----------------------------------------------------------------------------------
# Negative controls: broken divergences must make the checks fail
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("broken", C.broken_divergences(), ids=lambda d: type(d).__name__)
def test_negative_control_fails_optimal_critic_check(broken, pair1):
    m = C.measure_optimal_critic_quadrature([broken], [pair1])
    assert not m.ok(), m
    assert m.error > 1e-2


@pytest.mark.parametrize("broken", C.broken_divergences(), ids=lambda d: type(d).__name__)
def test_negative_control_fails_perturbed_gap_check(broken, pair1):
    m = C.measure_perturbed_gap([broken], pair1, (0.1, 0.05, 0.025))
    assert not m.ok(), m


def test_negative_control_fails_monte_carlo_check():
    m = C.measure_optimal_critic_monte_carlo([C.WrongConjugateKL()], PAIRS["5d"], n=20_000, seed=1)
    assert not m.ok() and m.error > 50, m.error


def test_wrong_conjugate_control_is_really_a_wrong_conjugate():
    """The control's f* violates the Legendre identity D4 (so it is the conjugate that is wrong)."""
    broken, good = C.WrongConjugateKL(), get_divergence("kl")
    u = np.array([0.5, 1.0, 3.0])
    t = broken.f_prime(u)
    assert np.allclose(good.conjugate(t), u * t - good.f(u), rtol=1e-14)
    assert np.all(np.abs(broken.conjugate(t) - (u * t - broken.f(u))) > 0.5)


def test_gaussian_pair_rejects_box_with_underflowing_density():
    with pytest.raises(ValueError, match="log density"):
        B.gaussian_pair(0.0, 1e-4, 0.0, 100.0)


def test_quadrature_rejects_high_dimension():
    with pytest.raises(ValueError, match="1-D and 2-D"):
        B.bound_quadrature(get_divergence("kl"), PAIRS["5d"])
