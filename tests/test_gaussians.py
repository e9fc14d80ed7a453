"""Tests of febm_ref.gaussians: exact Gaussian f-divergences (docs/theory.md section 3, D2).

Every expected value is independent of the code under test: textbook formulas written
out here, scipy/QUADPACK quadrature of the D2 integrand, mpmath at 60 digits, or Monte
Carlo with a tolerance of 5 standard errors.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from febm_ref import get_divergence
from febm_ref.divergences import all_divergences
from febm_ref.gaussians import (
    f_divergence,
    f_divergence_monte_carlo,
    f_divergence_monte_carlo_gaussians,
    f_divergence_quadrature_1d,
    f_divergence_quadrature_2d,
    f_divergence_quadrature_gaussians,
    gaussian_log_density,
    has_closed_form,
)
from febm_ref.verification.check_gaussians import rotated_cov, rotation

CLOSED_FORM = [d for d in all_divergences() if has_closed_form(d)]
EVERY = list(all_divergences())
QUADRATURE_RTOL = 1e-8
SE_TOLERANCE = 5.0

hyp = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def relative_error(value, reference):
    return abs(value - reference) / abs(reference)


# ----------------------------------------------------------------------------------
# Closed forms vs quadrature of the D2 integrand
# ----------------------------------------------------------------------------------

@hyp
@given(mean_p=st.floats(-2, 2), mean_q=st.floats(-2, 2),
       log_var_p=st.floats(math.log(0.2), math.log(5.0)), log_var_q=st.floats(math.log(0.2), math.log(5.0)))
def test_D2_closed_form_equals_1d_quadrature(mean_p, mean_q, log_var_p, log_var_q):
    """D2 in 1-D: closed form == adaptive quadrature of q f(p/q), rel. error <= 1e-8, all divergences.

    25 examples x 11 integrals by the default tanh-sinh route (vectorised: ~1 s in all; by
    QUADPACK, one point per call, it took ~40 s)."""
    var_p, var_q = math.exp(log_var_p), math.exp(log_var_q)
    checked = 0
    for div in CLOSED_FORM:
        exact = f_divergence(div, mean_p, var_p, mean_q, var_q)
        if not (1e-4 <= exact <= 1e6):      # infinite, or too small for quadrature's absolute accuracy
            continue
        value, error = f_divergence_quadrature_gaussians(div, mean_p, var_p, mean_q, var_q)
        assert relative_error(value, exact) <= QUADRATURE_RTOL, (div.label, exact, value, error)
        checked += 1
    assume(checked > 0)


@st.composite
def gaussian_2d(draw):
    mean = np.array([draw(st.floats(-1.5, 1.5)), draw(st.floats(-1.5, 1.5))])
    eig = np.exp([draw(st.floats(math.log(0.3), math.log(3.0))) for _ in range(2)])
    R = rotation(draw(st.floats(0.0, math.pi)))
    return mean, R @ np.diag(eig) @ R.T


@hyp
@given(p=gaussian_2d(), q=gaussian_2d(), index=st.integers(0, len(CLOSED_FORM) - 1))
def test_D2_closed_form_equals_2d_cubature(p, q, index):
    """D2 in 2-D: closed form == adaptive 2-D cubature of q f(p/q), rel. error <= 1e-8."""
    div = CLOSED_FORM[index]
    exact = f_divergence(div, p[0], p[1], q[0], q[1])
    assume(1e-4 <= exact <= 1e6)
    value, error = f_divergence_quadrature_gaussians(div, p[0], p[1], q[0], q[1])
    assert relative_error(value, exact) <= QUADRATURE_RTOL, (div.label, exact, value, error)


def test_D2_jensen_shannon_1d_quadrature_matches_mpmath():
    """Jensen-Shannon (2 JSD, no closed form): our quadrature == mpmath.quad of
    p log(2p/(p+q)) + q log(2q/(p+q)) written out independently."""
    mp.mp.dps = 30
    mean_p, var_p, mean_q, var_q = 0.4, 0.7, -0.3, 1.6

    def density(x, m, v):
        return mp.exp(-(x - m) ** 2 / (2 * v)) / mp.sqrt(2 * mp.pi * v)

    def integrand(x):
        p, q = density(x, mean_p, var_p), density(x, mean_q, var_q)
        return p * mp.log(2 * p / (p + q)) + q * mp.log(2 * q / (p + q))

    reference = float(mp.quad(integrand, [-mp.inf, -0.3, 0.4, mp.inf]))
    value, error = f_divergence_quadrature_gaussians("jensen_shannon", mean_p, var_p, mean_q, var_q)
    assert relative_error(value, reference) <= 1e-10, (value, reference, error)
    assert error <= 1e-10 * reference


def test_D2_generic_quadrature_laplace_vs_gaussian_kl():
    """Quadrature of non-Gaussian log densities: KL(Laplace(0, b) || N(0, s^2)) =
    -log(2b) - 1 + log(2 pi s^2)/2 + b^2/s^2 (textbook), in 1-D and (product) 2-D."""
    b, s2 = 0.7, 1.3
    exact_1d = -math.log(2 * b) - 1 + 0.5 * math.log(2 * math.pi * s2) + b * b / s2

    def log_laplace(x):
        return -np.abs(x) / b - math.log(2 * b)

    def log_normal(x):
        return -0.5 * x * x / s2 - 0.5 * math.log(2 * math.pi * s2)

    value, error = f_divergence_quadrature_1d("kl", log_laplace, log_normal, points=[0.0])
    assert relative_error(value, exact_1d) <= 1e-10, (value, exact_1d, error)
    value2, error2 = f_divergence_quadrature_2d(
        "kl", lambda x: log_laplace(x[:, 0]) + log_laplace(x[:, 1]),
        lambda x: log_normal(x[:, 0]) + log_normal(x[:, 1]), [-60.0, -60.0], [60.0, 60.0],
        breaks_x=[0.0], breaks_y=[0.0])
    assert relative_error(value2, 2 * exact_1d) <= 1e-8, (value2, 2 * exact_1d, error2)


# ----------------------------------------------------------------------------------
# 5-D: closed forms vs Monte Carlo (tolerance from the standard error)
# ----------------------------------------------------------------------------------

def random_close_pair(rng, dim):
    """A 5-D pair whose relative eigenvalues lie in [0.8, 1.25]: every Monte Carlo summand
    below has finite variance, so the standard error is meaningful."""
    Q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    S_q = Q @ np.diag(np.exp(rng.uniform(-1.0, 1.0, dim))) @ Q.T
    L = np.linalg.cholesky(S_q)
    V, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    S_p = L @ V @ np.diag(np.exp(rng.uniform(-0.2, 0.2, dim))) @ V.T @ L.T
    S_p = 0.5 * (S_p + S_p.T)
    return rng.normal(0, 0.3, dim), S_p, rng.normal(0, 0.3, dim), S_q


@pytest.mark.parametrize("seed", [0, 1])
def test_D2_closed_form_equals_monte_carlo_5d(seed):
    """D2 in 5-D: closed form within 5 standard errors of importance-sampling Monte Carlo."""
    rng = np.random.default_rng(seed)
    mean_p, S_p, mean_q, S_q = random_close_pair(rng, 5)
    for div in CLOSED_FORM:
        exact = f_divergence(div, mean_p, S_p, mean_q, S_q)
        value, se = f_divergence_monte_carlo_gaussians(div, mean_p, S_p, mean_q, S_q, rng=rng, n=100_000)
        z = abs(value - exact) / se
        assert z <= SE_TOLERANCE, f"{div.label}: exact {exact}, MC {value} +- {se} (SE), {z:.2f} SE off"


@pytest.mark.parametrize("proposal", ["q", "p", "mixture"])
def test_D2_jensen_shannon_monte_carlo_5d_reduces_to_1d_quadrature(proposal):
    """If P and Q differ only in coordinate 0, p/q depends on x_0 alone, so the 5-D
    Jensen-Shannon divergence equals the 1-D one (computed by quadrature)."""
    rng = np.random.default_rng(7)
    mean_p, mean_q = np.zeros(5), np.zeros(5)
    mean_p[0] = 0.8
    S_p, S_q = np.eye(5), np.eye(5)
    S_p[0, 0] = 1.5
    exact, _ = f_divergence_quadrature_gaussians("jensen_shannon", 0.8, 1.5, 0.0, 1.0)
    value, se = f_divergence_monte_carlo_gaussians("jensen_shannon", mean_p, S_p, mean_q, S_q, rng=rng,
                                                   n=100_000, proposal=proposal)
    z = abs(value - exact) / se
    assert z <= SE_TOLERANCE, f"JS 1-D quadrature {exact}, 5-D MC {value} +- {se} (SE), {z:.2f} SE off"


def test_monte_carlo_with_predrawn_samples_from_q():
    """f_divergence_monte_carlo with samples from Q (log_proposal=None) estimates E_q[f(p/q)]:
    KL(N(1,1)||N(0,1)) = 1/2 within 5 SE."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200_000)
    log_p, log_q = gaussian_log_density(1.0, 1.0), gaussian_log_density(0.0, 1.0)
    value, se = f_divergence_monte_carlo("kl", log_p, log_q, x)
    assert abs(value - 0.5) <= SE_TOLERANCE * se, (value, se)


# ----------------------------------------------------------------------------------
# +inf where the integral diverges (alpha family: a S_p^-1 + (1-a) S_q^-1 not PD)
# ----------------------------------------------------------------------------------

S2 = np.array([[2.0, 0.3], [0.3, 1.0]])
DIVERGENT = [
    ("pearson_chi2", {}, 0.0, 2.0, 0.0, 1.0),            # var_p = 2 var_q: ∫p^2/q has a flat exponent
    ("pearson_chi2", {}, 0.5, 3.0, 0.0, 1.0),            # var_p > 2 var_q
    ("neyman_chi2", {}, 0.0, 1.0, 0.3, 2.0),             # var_q = 2 var_p
    ("neyman_chi2", {}, 0.0, 1.0, 0.0, 5.0),
    ("alpha", {"alpha": 2.0}, 0.0, 2.0, 0.0, 1.0),
    ("alpha", {"alpha": 3.0}, 0.0, 1.5, 0.0, 1.0),       # 3/1.5 - 2/1 = 0
    ("alpha", {"alpha": -2.0}, 0.0, 1.0, 0.0, 1.5),      # -2/1 + 3/1.5 = 0
    ("alpha", {"alpha": -1.0}, 0.0, 1.0, 1.0, 2.5),
    ("pearson_chi2", {}, np.zeros(2), 2.0 * S2, np.ones(2), S2),
    ("pearson_chi2", {}, np.zeros(2), np.diag([1.0, 3.0]), np.zeros(2), np.eye(2)),
    ("neyman_chi2", {}, np.zeros(2), S2, np.ones(2), 2.0 * S2),
    ("alpha", {"alpha": 5.0}, np.zeros(3), np.diag([1.0, 1.0, 1.3]), np.zeros(3), np.eye(3)),
]


@pytest.mark.parametrize("name, params, mean_p, cov_p, mean_q, cov_q", DIVERGENT)
def test_divergent_integral_returns_inf(name, params, mean_p, cov_p, mean_q, cov_q):
    """D_a = +inf exactly (never nan, never finite) when a S_p^-1 + (1-a) S_q^-1 is not PD."""
    value = f_divergence(name, mean_p, cov_p, mean_q, cov_q, **params)
    assert value == math.inf, value


def test_just_finite_pearson_matches_quadrature():
    """Just inside the boundary (var_p = 1.9 var_q) Pearson is finite and equals quadrature."""
    exact = f_divergence("pearson_chi2", 0.2, 1.9, 0.0, 1.0)
    value, error = f_divergence_quadrature_gaussians("pearson_chi2", 0.2, 1.9, 0.0, 1.0)
    assert math.isfinite(exact) and relative_error(value, exact) <= QUADRATURE_RTOL, (exact, value, error)


# ----------------------------------------------------------------------------------
# Textbook closed forms, computed independently here
# ----------------------------------------------------------------------------------

@hyp
@given(mean_p=st.floats(-3, 3), mean_q=st.floats(-3, 3), sd_p=st.floats(0.05, 20), sd_q=st.floats(0.05, 20))
def test_textbook_1d_kl_hellinger_pearson(mean_p, mean_q, sd_p, sd_q):
    """KL = log(s_q/s_p) + (s_p^2 + (m_p-m_q)^2)/(2 s_q^2) - 1/2; squared Hellinger =
    2(1 - BC) with the Bhattacharyya coefficient BC = sqrt(2 s_p s_q/(s_p^2+s_q^2))
    exp(-(m_p-m_q)^2/(4(s_p^2+s_q^2))); Pearson = s_q^2/(s_p sqrt(2 s_q^2 - s_p^2))
    exp((m_p-m_q)^2/(2 s_q^2 - s_p^2)) - 1 if 2 s_q^2 > s_p^2 else inf."""
    vp, vq, dm = sd_p ** 2, sd_q ** 2, mean_p - mean_q
    kl = math.log(sd_q / sd_p) + (vp + dm * dm) / (2 * vq) - 0.5
    bc = math.sqrt(2 * sd_p * sd_q / (vp + vq)) * math.exp(-dm * dm / (4 * (vp + vq)))
    hellinger = 2 * (1 - bc)
    ours_kl = f_divergence("kl", mean_p, vp, mean_q, vq)
    ours_h = f_divergence("squared_hellinger", mean_p, vp, mean_q, vq)
    # The textbook forms cancel catastrophically for nearly equal Gaussians; compare
    # with an absolute floor of 1e-13 that covers their own rounding.
    assert abs(ours_kl - kl) <= 1e-11 * kl + 1e-13, (ours_kl, kl)
    assert abs(ours_h - hellinger) <= 1e-11 * hellinger + 1e-13, (ours_h, hellinger)
    ours_p = f_divergence("pearson_chi2", mean_p, vp, mean_q, vq)
    if 2 * vq > vp * (1 + 1e-9):
        exponent = dm * dm / (2 * vq - vp)
        if exponent < 600:
            pearson = vq / (sd_p * math.sqrt(2 * vq - vp)) * math.exp(exponent) - 1
            assert abs(ours_p - pearson) <= 1e-9 * pearson + 1e-13, (ours_p, pearson)
    elif 2 * vq <= vp:
        assert ours_p == math.inf


def test_textbook_multivariate_kl_and_bhattacharyya():
    """d-D: KL = (tr(S_q^-1 S_p) + D^T S_q^-1 D - d + log|S_q|/|S_p|)/2 and squared
    Hellinger = 2(1 - |S_p|^{1/4}|S_q|^{1/4}/|S_m|^{1/2} exp(-D^T S_m^-1 D/8)),
    S_m = (S_p + S_q)/2, on a well-conditioned 4-D pair (explicit inverses are fine here)."""
    rng = np.random.default_rng(11)
    A, B = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    S_p, S_q = A @ A.T + np.eye(4), B @ B.T + np.eye(4)
    m_p, m_q = rng.standard_normal(4), rng.standard_normal(4)
    D = m_p - m_q
    kl = 0.5 * (np.trace(np.linalg.inv(S_q) @ S_p) + D @ np.linalg.inv(S_q) @ D - 4
                + np.log(np.linalg.det(S_q) / np.linalg.det(S_p)))
    S_m = 0.5 * (S_p + S_q)
    bc = (np.linalg.det(S_p) * np.linalg.det(S_q)) ** 0.25 / np.sqrt(np.linalg.det(S_m)) \
        * np.exp(-D @ np.linalg.inv(S_m) @ D / 8)
    assert relative_error(f_divergence("kl", m_p, S_p, m_q, S_q), kl) <= 1e-12
    assert relative_error(f_divergence("squared_hellinger", m_p, S_p, m_q, S_q), 2 * (1 - bc)) <= 1e-12


def test_catalogue_identities_between_closed_forms():
    """reverse_kl(P||Q) = kl(Q||P); D_a(P||Q) = D_{1-a}(Q||P); Pearson = 2 D_2,
    Neyman = 2 D_{-1}, squared Hellinger = D_{1/2}/2 (relative 1e-13)."""
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    P = (rng.standard_normal(3), A @ A.T + np.eye(3))
    Q = (rng.standard_normal(3), B @ B.T + 2 * np.eye(3))
    assert relative_error(f_divergence("reverse_kl", *P, *Q), f_divergence("kl", *Q, *P)) <= 1e-13
    for a in (-0.7, 0.2, 0.5, 0.8, 1.3):
        forward, backward = f_divergence("alpha", *P, *Q, alpha=a), f_divergence("alpha", *Q, *P, alpha=1 - a)
        if math.isinf(forward):
            assert backward == math.inf
        else:
            assert relative_error(forward, backward) <= 1e-13, (a, forward, backward)
    near = ((0.1, 1.2), (-0.2, 0.9))
    pairs = [("pearson_chi2", 2.0, 2.0), ("neyman_chi2", -1.0, 2.0), ("squared_hellinger", 0.5, 0.5)]
    for name, a, factor in pairs:
        named = f_divergence(name, *near[0], *near[1])
        alpha = f_divergence("alpha", *near[0], *near[1], alpha=a)
        assert relative_error(named, factor * alpha) <= 1e-14, (name, named, alpha)


def test_affine_invariance_and_scalar_vs_matrix_inputs():
    """f-divergences are invariant under x -> A x + b (A invertible); 1-D scalars (mean,
    variance) and (1,)/(1, 1) arrays give identical values."""
    rng = np.random.default_rng(2)
    m_p, m_q = rng.standard_normal(2), rng.standard_normal(2)
    S_p, S_q = np.array([[1.2, 0.4], [0.4, 0.9]]), np.array([[0.8, -0.1], [-0.1, 1.1]])
    A, b = np.array([[2.0, 0.5], [-0.3, 0.7]]), np.array([1.0, -2.0])
    for div in CLOSED_FORM:
        base = f_divergence(div, m_p, S_p, m_q, S_q)
        moved = f_divergence(div, A @ m_p + b, A @ S_p @ A.T, A @ m_q + b, A @ S_q @ A.T)
        assert relative_error(moved, base) <= 1e-12, (div.label, base, moved)
        scalar = f_divergence(div, 0.3, 1.4, -0.1, 0.8)
        arrays = f_divergence(div, np.array([0.3]), np.array([[1.4]]), np.array([-0.1]), np.array([[0.8]]))
        assert scalar == arrays


# ----------------------------------------------------------------------------------
# Alpha limits, tiny divergences, ill-conditioning (mpmath references)
# ----------------------------------------------------------------------------------

def test_alpha_continuity_at_zero_and_one():
    """D_a -> KL as a -> 1 and -> reverse KL as a -> 0, and a = 1, a = 0 reproduce kl and
    reverse_kl to rounding. D_a is smooth in a, so with the central slope
    c = (D_{a0+h0} - D_{a0-h0})/(2 h0), h0 = 1e-3, every |D_{a0+-h} - D_{a0}| for
    h = 1e-4 ... 1e-10 must be <= 1.01 |c| h + 1e-13 D_{a0} (linear approach, no jump)."""
    rng = np.random.default_rng(9)
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    P = (rng.standard_normal(3), A @ A.T + np.eye(3))
    Q = (rng.standard_normal(3), B @ B.T + np.eye(3))
    kl, rkl = f_divergence("kl", *P, *Q), f_divergence("reverse_kl", *P, *Q)
    assert relative_error(f_divergence("alpha", *P, *Q, alpha=1.0), kl) <= 1e-15
    assert relative_error(f_divergence("alpha", *P, *Q, alpha=0.0), rkl) <= 1e-15

    def alpha_div(a):
        return f_divergence("alpha", *P, *Q, alpha=a)

    for a0, limit in ((1.0, kl), (0.0, rkl)):
        slope = (alpha_div(a0 + 1e-3) - alpha_div(a0 - 1e-3)) / 2e-3
        for h in (1e-4, 1e-6, 1e-8, 1e-10):
            for sign in (-1, 1):
                value = alpha_div(a0 + sign * h)
                bound = 1.01 * abs(slope) * h + 1e-13 * limit
                assert abs(value - limit) <= bound, (a0, h, sign, value, limit, slope)


def mp_log_power_integral(a, m_p, S_p, m_q, S_q):
    """log ∫ p^a q^{1-a} at 60 digits from the direct formula with S_a = a S_q + (1-a) S_p;
    None if S_a is not positive definite (divergent integral)."""
    a = mp.mpf(a)
    Sp, Sq = mp.matrix(np.atleast_2d(S_p).tolist()), mp.matrix(np.atleast_2d(S_q).tolist())
    D = mp.matrix(np.atleast_1d(np.asarray(m_p) - np.asarray(m_q)).tolist())
    Sa = a * Sq + (1 - a) * Sp
    try:
        mp.cholesky(Sa)
    except ValueError:
        return None
    quad = (D.T * mp.lu_solve(Sa, D))[0]
    return -a * (1 - a) / 2 * quad - (mp.log(mp.det(Sa)) - (1 - a) * mp.log(mp.det(Sp))
                                      - a * mp.log(mp.det(Sq))) / 2


def mp_kl(m_p, S_p, m_q, S_q):
    Sp, Sq = mp.matrix(np.atleast_2d(S_p).tolist()), mp.matrix(np.atleast_2d(S_q).tolist())
    D = mp.matrix(np.atleast_1d(np.asarray(m_p) - np.asarray(m_q)).tolist())
    d = Sp.rows
    M = mp.inverse(Sq) * Sp
    return (sum(M[i, i] for i in range(d)) + (D.T * mp.lu_solve(Sq, D))[0] - d
            + mp.log(mp.det(Sq)) - mp.log(mp.det(Sp))) / 2


def mp_reference(div, m_p, S_p, m_q, S_q):
    """60-digit value of the closed form (direct formulas, independent of the eigenbasis)."""
    name = div.name
    if name == "kl" or (name == "alpha" and div.alpha == 1.0):
        return mp_kl(m_p, S_p, m_q, S_q)
    if name == "reverse_kl" or (name == "alpha" and div.alpha == 0.0):
        return mp_kl(m_q, S_q, m_p, S_p)
    a, factor = {"pearson_chi2": (2.0, 2.0), "neyman_chi2": (-1.0, 2.0),
                 "squared_hellinger": (0.5, 0.5)}.get(name, (getattr(div, "alpha", None), 1.0))
    log_i = mp_log_power_integral(a, m_p, S_p, m_q, S_q)
    if log_i is None:
        return mp.inf
    return factor * mp.expm1(log_i) / (mp.mpf(a) * (mp.mpf(a) - 1))


def test_tiny_divergences_keep_relative_accuracy():
    """Nearly equal Gaussians (divergence ~1e-13): relative error <= 1e-9 against mpmath
    (expm1 of log I_a and the series for log(1+x) - x avoid cancellation)."""
    mp.mp.dps = 60
    cases = [(1e-6, 1.0, 0.0, 1.0), (0.0, 1.0 + 1e-6, 0.0, 1.0), (3e-7, 1.0 - 2e-7, 0.0, 1.0)]
    for m_p, v_p, m_q, v_q in cases:
        for div in CLOSED_FORM:
            reference = mp_reference(div, m_p, v_p, m_q, v_q)
            value = f_divergence(div, m_p, v_p, m_q, v_q)
            assert 0 < value < 1e-10
            assert float(abs(value - reference) / reference) <= 1e-9, (div.label, m_p, v_p, value, reference)
    # d-D with S_p = S_q (1 + 1e-7 perturbation): lambda - 1 comes from the eigenvalues of
    # L_q^-1 (S_p - S_q) L_q^-T (the difference formed from the inputs), so the error is
    # ~ cond(S) eps ~ 1e-15 relative to lambda - 1, not to lambda (measured 6e-16; the
    # previous SVD route needed 1e-6 here). 1e-12 leaves a factor > 100.
    S = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.5]])
    S_p = S + 1e-7 * np.diag([1.0, -0.5, 0.3])
    m = np.array([0.1, 0.2, -0.3])
    for div in CLOSED_FORM:
        reference = mp_reference(div, m + 1e-7, S_p, m, S)
        value = f_divergence(div, m + 1e-7, S_p, m, S)
        assert float(abs(value - reference) / reference) <= 1e-12, (div.label, value, reference)


def test_condition_number_1e8_matches_mpmath():
    """Covariances with condition number 1e8 (nearly aligned, slightly rotated): closed form
    == 60-digit mpmath evaluation of the direct formulas, rel. error <= 1e-7, or both inf."""
    mp.mp.dps = 60
    S_q, S_p = rotated_cov([1.0, 1e-8], 0.3), rotated_cov([1.5, 2e-8], 0.3 + 1e-5)
    assert np.linalg.cond(S_q) > 9e7
    m_p, m_q = np.array([1e-4, 2e-4]), np.zeros(2)
    finite = 0
    for div in CLOSED_FORM + [get_divergence("alpha", alpha=a) for a in (0.3, 1.2, 1.6, -0.4)]:
        reference = mp_reference(div, m_p, S_p, m_q, S_q)
        value = f_divergence(div, m_p, S_p, m_q, S_q)
        if reference == mp.inf:
            assert value == math.inf, div.label
            continue
        finite += 1
        assert float(abs(value - reference) / reference) <= 1e-7, (div.label, value, reference)
    assert finite >= 8


# ----------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------

BAD_INPUTS = [
    (("kl", 0.0, -1.0, 0.0, 1.0), "not > 0"),
    (("kl", 0.0, 0.0, 0.0, 1.0), "not > 0"),
    (("kl", np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "same space"),
    (("kl", np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), "shape"),
    (("kl", np.zeros(2), 1.0, np.zeros(2), np.eye(2)), "scalar variance"),
    (("kl", np.nan, 1.0, 0.0, 1.0), "non-finite"),
    (("kl", 0.0, 1.0, 0.0, np.inf), "non-finite"),
    (("kl", np.zeros(2), np.array([[1.0, 0.5], [0.2, 1.0]]), np.zeros(2), np.eye(2)), "not symmetric"),
    (("kl", np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros(2), np.eye(2)), "not positive definite"),
    (("jensen_shannon", 0.0, 1.0, 0.0, 1.0), "no closed form"),
    (("no_such_divergence", 0.0, 1.0, 0.0, 1.0), "valid names"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS)
def test_bad_input_raises_clear_value_error(args, message):
    """Non-PD / non-symmetric covariance, mismatched shapes, NaN/inf, JS, unknown name."""
    with pytest.raises(ValueError, match=message):
        f_divergence(*args)


def test_bad_input_to_numerical_routes():
    """Quadrature in d > 2, bad limits, too few Monte Carlo samples, no Generator."""
    with pytest.raises(ValueError, match="1-D and 2-D"):
        f_divergence_quadrature_gaussians("kl", np.zeros(3), np.eye(3), np.zeros(3), np.eye(3))
    log_n = gaussian_log_density(0.0, 1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        f_divergence_quadrature_1d("kl", log_n, log_n, 1.0, -1.0)
    with pytest.raises(ValueError, match="at least 2"):
        f_divergence_monte_carlo("kl", log_n, log_n, np.zeros(1))
    with pytest.raises(TypeError, match="Generator"):
        f_divergence_monte_carlo_gaussians("kl", 0.0, 1.0, 0.0, 1.0, rng=0, n=10)
