"""Tests of the divergence catalogue (docs/theory.md section 2, D2-D7).

Every expected value is either an identity that must hold exactly (f(1) = 0, the
Legendre identity D4, Fenchel-Young), an independent 80-digit mpmath evaluation of
the naive definitions (``febm_ref/verification/mp_reference.py``), or a numerical supremum / finite
difference computed here. The D7-vs-mpmath and D4 measures are the verification checks' own
(``febm_ref/verification/check_catalogue.py``), asserted here on wider grids and more alphas.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from febm_ref import DIVERGENCE_NAMES, get_divergence
from febm_ref.divergences import Alpha, all_divergences
from febm_ref.verification.check_catalogue import legendre_error, map_errors
from febm_ref.verification.mp_reference import (
    FLOAT_TINY,
    generator,
    reference_conjugate,
    relative_error,
)

CATALOGUE = all_divergences(alphas=(-2.5, -1.0, -0.5, 0.0, 1e-9, 0.3, 0.5, 0.9, 1.0 - 1e-9, 1.0, 2.0, 3.5))
IDS = [d.label for d in CATALOGUE]
MAPS = ("g_data", "g_model", "g_data_prime", "g_model_prime")
# s where the maps are evaluated against mpmath: both tails (|s| up to 700 and beyond,
# where some maps overflow), the neighbourhood of 0 where g_data/g_model vanish.
S_GRID = np.array([-745.0, -710.0, -700.0, -355.5, -300.0, -36.0, -20.0, -1.5, -1.0, -0.7, -1e-3,
                   -1e-9, -1e-300, 0.0, 1e-300, 1e-9, 1e-3, 0.4, 0.7, 1.0, 1.5, 20.0, 36.0, 300.0,
                   354.0, 355.5, 700.0, 709.5, 710.0, 745.0])


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D7_maps_match_80_digit_reference_on_extreme_grid(div):
    worst = map_errors(div, S_GRID)
    for name, (err, s) in worst.items():
        assert err <= 1e-12, f"{div.label}.{name}: relative error {err:.3e} at s={s}"


@settings(max_examples=40, deadline=None)
@given(s=st.floats(-700.0, 700.0, allow_nan=False), index=st.integers(0, len(CATALOGUE) - 1))
def test_D7_maps_match_80_digit_reference_random_s(s, index):
    div = CATALOGUE[index]
    worst = map_errors(div, np.array([s]))
    for name, (err, _) in worst.items():
        assert err <= 1e-12, f"{div.label}.{name}: relative error {err:.3e} at s={s!r}"


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D7_maps_never_nan_and_overflow_to_signed_inf(div):
    s = np.linspace(-1500.0, 1500.0, 3001)
    for name in MAPS:
        values = getattr(div, name)(s)
        assert not np.any(np.isnan(values)), f"{div.label}.{name} returned nan"


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D2_f_vanishes_at_one_and_f_double_prime_at_one(div):
    assert div.f(1.0) == 0.0
    expected_slope = {"kl": 1.0, "reverse_kl": -1.0}.get(div.name, 0.0)
    assert div.f_prime(1.0) == pytest.approx(expected_slope, abs=1e-15)
    assert div.f_double_prime(1.0) == pytest.approx(div.f_double_prime_at_one, rel=1e-15)


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D2generator_is_convex(div):
    u = np.geomspace(1e-4, 1e4, 400)
    assert np.all(div.f_double_prime(u) > 0)
    rng = np.random.default_rng(11)
    a, b = rng.uniform(1e-3, 50.0, size=(2, 2000))
    lam = rng.uniform(size=2000)
    mid = div.f(lam * a + (1 - lam) * b)
    chord = lam * div.f(a) + (1 - lam) * div.f(b)
    slack = 1e-12 * (np.abs(chord) + 1)
    assert np.all(mid <= chord + slack), "convexity violated"
    assert div.f(-0.5) == np.inf, "f must be +inf outside u >= 0"


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D4_legendre_identity(div):
    u = np.geomspace(1e-3, 1e3, 301)
    assert legendre_error(div, u) <= 1e-10  # the check's measure: relative to |rhs| + 1e-12


def _sup_over_u(div, t, u_guess):
    """max_u (u t - f(u)) by Brent's method in z = log u around a bracket (independent of f*)."""
    z0 = math.log(u_guess)
    result = minimize_scalar(lambda z: -(math.exp(z) * t - float(div.f(math.exp(z)))),
                             bracket=(z0 - 1.0, z0 + 0.1, z0 + 1.0), method="brent", tol=1e-12)
    return -result.fun


def _conjugate_domain_bound(div):
    """sup of f' over u > 0 (the right end of the conjugate's domain), None if unbounded."""
    bounds = {"reverse_kl": 0.0, "jensen_shannon": math.log(2.0), "squared_hellinger": 1.0,
              "neyman_chi2": 1.0}
    if div.name == "alpha":
        return 1.0 / (1.0 - div.alpha) if div.alpha < 1 else None
    return bounds.get(div.name)


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D3_conjugate_is_the_supremum(div):
    """f*(t) against a numerical sup over u > 0; +inf beyond the domain."""
    for u_star in (0.05, 0.5, 1.0, 3.0, 40.0):
        t = float(div.f_prime(u_star))
        assert float(div.conjugate(t)) == pytest.approx(_sup_over_u(div, t, u_star), rel=1e-10, abs=1e-12)
    bound = _conjugate_domain_bound(div)
    if bound is not None:
        assert div.conjugate(bound + 0.5) == np.inf
        closed = div.name == "neyman_chi2" or (div.name == "alpha" and div.alpha < 0)
        if closed:  # attained as u -> inf: f*(bound) = lim (u t - f(u))
            limit = 2.0 if div.name == "neyman_chi2" else -1.0 / div.alpha
            truth = reference_conjugate(div.name, bound, getattr(div, "alpha", None))
            if truth == limit:  # the float is the real bound
                assert div.conjugate(bound) == pytest.approx(limit, rel=1e-14)
            else:  # 1/(1 - a) rounded: just inside (a value near the limit) or outside (inf)
                assert relative_error(float(div.conjugate(bound)), truth) <= 1e-12
        else:
            # Open domain t < t*: inf at the float bound only if it is not below the real t*
            # (float(log 2) is below log 2, and 1/(1 - a) may round either way).
            with mp.workdps(60):
                exact_bound = (mp.log(2) if div.name == "jensen_shannon" else
                               1 / (1 - mp.mpf(div.alpha)) if div.name == "alpha" else mp.mpf(bound))
            if mp.mpf(bound) >= exact_bound:
                assert div.conjugate(bound) == np.inf
            else:
                truth = reference_conjugate(div.name, bound, getattr(div, "alpha", None))
                assert relative_error(float(div.conjugate(bound)), truth) <= 1e-12
                assert div.conjugate(np.nextafter(bound, np.inf)) == np.inf


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(u=st.floats(1e-6, 1e6), t=st.floats(-50.0, 50.0))
def test_D5_fenchel_young_inequality(div, u, t):
    lhs = u * t - float(div.f(u))
    rhs = float(div.conjugate(t))
    assert lhs <= rhs + 1e-9 * (1 + abs(lhs) + abs(rhs)), f"u t - f(u) = {lhs} > f*(t) = {rhs}"


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D7_maps_equal_naive_composition(div):
    s = np.linspace(-15.0, 15.0, 601)
    u = np.exp(s)
    t = div.f_prime(u)
    np.testing.assert_allclose(div.g_data(s), t, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(div.g_model(s), div.conjugate(t), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(div.g_data_prime(s), u * div.f_double_prime(u), rtol=1e-12)
    np.testing.assert_allclose(div.g_model_prime(s), u * u * div.f_double_prime(u), rtol=1e-12)


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_derivatives_against_central_finite_differences(div):
    h = 1e-6
    u = np.geomspace(0.05, 20.0, 50)
    fd_f = (div.f(u * (1 + h)) - div.f(u * (1 - h))) / (2 * h * u)
    np.testing.assert_allclose(div.f_prime(u), fd_f, rtol=1e-7, atol=1e-8)
    fd_fp = (div.f_prime(u * (1 + h)) - div.f_prime(u * (1 - h))) / (2 * h * u)
    np.testing.assert_allclose(div.f_double_prime(u), fd_fp, rtol=1e-7, atol=1e-8)
    s = np.linspace(-5.0, 5.0, 41)
    for value, slope in (("g_data", "g_data_prime"), ("g_model", "g_model_prime")):
        fd = (getattr(div, value)(s + h) - getattr(div, value)(s - h)) / (2 * h)
        np.testing.assert_allclose(getattr(div, slope)(s), fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("limit", [0.0, 1.0])
def test_alpha_limits_are_continuous(limit):
    s = np.linspace(-30.0, 30.0, 121)
    u = np.geomspace(1e-3, 1e3, 61)
    exact = Alpha(alpha=limit)
    for eps in (1e-6, -1e-6, 1e-9, -1e-9):
        near = Alpha(alpha=limit + eps)
        for name in MAPS:
            np.testing.assert_allclose(getattr(near, name)(s), getattr(exact, name)(s),
                                       rtol=100 * abs(eps) * 30, atol=1e-12)
        np.testing.assert_allclose(near.f(u), exact.f(u), rtol=1e-5, atol=1e3 * abs(eps))
        t = np.linspace(-3.0, 0.45, 30)
        np.testing.assert_allclose(near.conjugate(t), exact.conjugate(t), rtol=1e-4, atol=1e3 * abs(eps))


def test_alpha_members_match_named_divergences():
    """alpha = 2 is Pearson/2, alpha = -1 Neyman/2, alpha = 1/2 twice squared Hellinger;
    alpha = 1 and 0 differ from kl / reverse_kl by linear terms in f (constants in g)."""
    s = np.linspace(-40.0, 40.0, 161)
    pairs = [(2.0, "pearson_chi2", 0.5), (-1.0, "neyman_chi2", 0.5), (0.5, "squared_hellinger", 2.0)]
    for a, name, scale in pairs:
        alpha, named = Alpha(alpha=a), get_divergence(name)
        for m in MAPS:
            np.testing.assert_allclose(getattr(alpha, m)(s), scale * getattr(named, m)(s), rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(Alpha(alpha=1.0).g_data(s), get_divergence("kl").g_data(s) - 1.0,
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(Alpha(alpha=1.0).g_model(s), get_divergence("kl").g_model(s) - 1.0,
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(Alpha(alpha=0.0).g_data(s), get_divergence("reverse_kl").g_data(s) + 1.0,
                               rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(Alpha(alpha=0.0).g_model(s), get_divergence("reverse_kl").g_model(s) + 1.0,
                               rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("div", CATALOGUE, ids=IDS)
def test_D2_perspective_is_q_f_of_ratio(div):
    rng = np.random.default_rng(5)
    log_p = rng.uniform(-30, 5, 500)
    log_q = rng.uniform(-30, 5, 500)
    naive = np.exp(log_q) * div.f(np.exp(log_p - log_q))
    np.testing.assert_allclose(div.perspective(log_p, log_q), naive, rtol=1e-9, atol=1e-30)
    # Far tails, where p/q itself overflows float64: against 80-digit q f(p/q); a true
    # value beyond float64 must come back as +inf, and both densities underflowing as 0.
    f_mp = generator(div.name, getattr(div, "alpha", None))[0]
    log_p = np.array([-1000.0, -1710.0, -720.0, -1e4])
    log_q = np.array([-1710.0, -1000.0, -5.0, -1e4])
    computed = div.perspective(log_p, log_q)
    for lp, lq, c in zip(log_p, log_q, computed):
        with mp.workdps(200):
            exact = mp.exp(lq) * f_mp(mp.exp(lp - lq))
        if abs(exact) < FLOAT_TINY:
            assert abs(c) < 1e-300, (lp, lq, c, exact)
        else:
            assert relative_error(float(c), exact) < 1e-9, (lp, lq, c, exact)


def test_scalars_in_give_scalars_out():
    kl = get_divergence("kl")
    assert isinstance(kl.g_model(0.0), np.float64) and kl.g_model(0.0) == 1.0
    assert kl.g_data(np.array([[1.0, 2.0]])).tolist() == [[2.0, 3.0]]


def test_registry_lists_the_catalogue():
    assert DIVERGENCE_NAMES == ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger",
                                "pearson_chi2", "neyman_chi2", "alpha")
    expected = {"kl": 1.0, "reverse_kl": 1.0, "jensen_shannon": 0.5, "squared_hellinger": 0.5,
                "pearson_chi2": 2.0, "neyman_chi2": 2.0}
    for name, value in expected.items():
        assert get_divergence(name).f_double_prime_at_one == value
    assert get_divergence("alpha", alpha=-3.0).f_double_prime_at_one == 1.0


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="valid names are: kl, reverse_kl"):
        get_divergence("kullback")
    with pytest.raises(ValueError, match="alpha must be finite"):
        get_divergence("alpha", alpha=float("nan"))
    with pytest.raises(ValueError, match="alpha must be finite"):
        get_divergence("alpha", alpha=float("inf"))
    with pytest.raises(TypeError, match="needs a parameter"):
        get_divergence("alpha")
    with pytest.raises(TypeError, match="real number"):
        get_divergence("alpha", alpha=True)
    with pytest.raises(TypeError, match="takes no parameters"):
        get_divergence("kl", alpha=0.5)
    with pytest.raises(TypeError, match="unexpected parameter"):
        get_divergence("alpha", alpha=0.5, beta=1.0)
    with pytest.raises(TypeError):
        get_divergence(3)
