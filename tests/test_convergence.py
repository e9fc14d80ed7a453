"""Tests of the local convergence machinery (docs/theory.md section 5, D17).

The expensive families (2-D, MLPs) are covered by the registered checks
(``febm-ref verify --only convergence``); here the 1-D Gaussian family and the linear
algebra, with expected values from hand derivations.
"""

from __future__ import annotations

import numpy as np
import pytest

from febm_ref.divergences import get_divergence
from febm_ref.verification import convergence as C


def test_d17_equals_fd_jacobian_and_closed_form_gaussian_1d():
    """D17 (quadrature moments) = FD of the exact field = hand-derived closed form, all divergences."""
    rep = C.jacobian_report("gaussian_1d")
    for label, e in rep["per_divergence"].items():
        assert e["fd_vs_d17"] <= 1e-6, (label, e["fd_vs_d17"])
        assert e["closed_vs_d17"] <= 1e-13, (label, e["closed_vs_d17"])
        assert e["sym_part_error"] <= 1e-6, (label, e["sym_part_error"])
        # A = I / sigma^2 for theta = (mu, sigma): the largest real part is -f''(1)/sigma^2
        assert abs(e["max_real_eig"] + e["fpp1"] / 1.2 ** 2) <= 1e-12, (label, e["max_real_eig"])
    assert rep["scaling_error"] <= 1e-6
    assert rep["field_at_equilibrium"] <= 1e-14


def test_closed_form_moments_1d_by_hand():
    """A = diag(1,1)/sigma^2, m = (0, -1/sigma), h = (1, mu, mu^2 + sigma^2) for the 1-D family."""
    prob = C.problem("gaussian_1d")
    mom = C.equilibrium_moments(prob)
    mu, s = 0.3, 1.2
    np.testing.assert_allclose(mom["A"], np.eye(2) / s ** 2, atol=1e-13)
    np.testing.assert_allclose(mom["m"], [0.0, -1.0 / s], atol=1e-13)
    np.testing.assert_allclose(mom["h"], [1.0, mu, mu ** 2 + s ** 2], atol=1e-13)


def test_step_size_bound_on_known_spectra():
    assert C.step_size_bound(np.array([-1.0, -2.0])) == pytest.approx(1.0, rel=1e-15)
    # lambda = -1 +- i: 2 * 1 / 2 = 1, and |1 + eta lambda| = 1 exactly at eta = 1
    J = np.array([[-1.0, 1.0], [-1.0, -1.0]])
    eta = C.step_size_bound(np.linalg.eigvals(J))
    assert eta == pytest.approx(1.0, rel=1e-14)
    assert C.spectral_radius(C.simultaneous_map(J, eta)) == pytest.approx(1.0, rel=1e-14)


def test_alternating_map_is_the_linear_alternating_update():
    """M_alt equals one critic-first alternating step of the linear field v(z) = J z."""
    rng = np.random.default_rng(0)
    J = rng.normal(size=(5, 5))
    P, eta = 2, 0.3
    M = C.alternating_map(J, P, eta)
    cols = []
    for z in np.eye(5):
        z = z.copy()
        z[P:] += eta * (J @ z)[P:]
        z[:P] += eta * (J @ z)[:P]
        cols.append(z)
    np.testing.assert_allclose(M, np.array(cols).T, atol=1e-15)


@pytest.mark.parametrize("scheme", ["simultaneous", "alternating"])
def test_observed_rate_matches_spectral_radius_gaussian_1d(scheme):
    r = C.rate_experiment("gaussian_1d", get_divergence("jensen_shannon"), scheme=scheme, eta_fraction=0.7,
                          n_steps=200)
    assert r["rate_relative_error"] <= 5e-3, r
    assert r["linear_deviation"] <= 1e-2, r
    above = C.rate_experiment("gaussian_1d", get_divergence("jensen_shannon"), scheme=scheme, eta_fraction=1.05,
                              n_steps=200)
    assert above["observed_rate"] > 1.0 and above["predicted_rate"] > 1.0, above


def test_gauge_pair_conserves_b_plus_b_prime():
    """Free additive constant: J u = 0, l^T J = 0 with l^T u = 0 (Jordan pair), b + b' conserved."""
    g = C.gauge_experiment(get_divergence("squared_hellinger"), n_steps=200, name="gaussian_1d_offset")
    assert g["J_u"] <= 1e-8 and g["l_J"] <= 1e-8, g
    assert g["A_bb"] == pytest.approx(-1.0, abs=1e-12)
    assert g["conservation_error"] <= 1e-13
    drift, lin = g["gauge_drift"], g["linear_gauge_drift"]
    assert np.max(np.abs(drift - lin)) <= 1e-2 * np.max(np.abs(lin))
    assert drift[-1] > 10 * g["delta"]


def test_l2_contribution_to_jacobian():
    r = C.l2_repair_experiment(get_divergence("kl"), weight=0.1, n_steps=100)
    assert r["newton_residual"] <= 1e-12
    assert r["K_error"] <= 1e-6, r["K_error"]
    assert r["max_real_eig"] < 0
    assert r["divergence_at_fixed_point"] > 1e-3  # D14 biases the equilibrium off q = p


def test_nonrealisable_kl_fixed_point_is_moment_matching():
    """With a quadratic critic, the KL fixed point is the moment-matched Gaussian (derived): mean 1.01."""
    r = C.nonrealisable_experiment(get_divergence("kl"), n_steps=50)
    assert r["status"] == "ok"
    w, m, s = np.array([0.33, 0.67]), np.array([-1.0, 2.0]), np.array([0.25, np.sqrt(2.0)])
    mean = w @ m
    sd = np.sqrt(w @ (s ** 2 + m ** 2) - mean ** 2)
    np.testing.assert_allclose(r["fixed_point_theta"], [mean, sd], atol=1e-12)
    assert r["max_real_eig"] < 0
