"""febm_ref.quadrature: the piecewise 1-D integrators against closed-form integrals.

Expected values are closed forms (erf, elementary antiderivatives), so a tolerance of 1e-13
relative leaves ~100 ulp for the rule's own rounding (a sum of ~260-16000 weighted values,
each with a relative error of a few ulp, against positive weights summing to the width).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from febm_ref.quadrature import METHODS, integrate_pieces

RTOL = 1e-13


def gaussian_integral(mean, sd, a, b):
    """∫_a^b N(x; mean, sd^2) dx by erf (the closed form)."""
    z = lambda t: (t - mean) / (sd * math.sqrt(2.0))  # noqa: E731
    return 0.5 * (erf(z(b)) - erf(z(a)))


def gaussian_density(mean, sd):
    return lambda x: np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mean, sd", [(0.0, 1.0), (0.3, 0.05), (-2.0, 3.0), (10.0, 1e-3)])
def test_gaussian_mass_over_cut_pieces_equals_erf(method, mean, sd):
    """Mass of N(mean, sd^2) over [mean - 40 sd, mean + 40 sd] cut at mean + (-4, -1, 0, 1, 4) sd:
    the erf closed form (1 - erfc(40/sqrt 2) = 1 to the last bit), and the error estimate is
    at least the actual error (an honest estimate) or below the rounding level.

    Tolerance: 1e-13 plus the conditioning of the abscissae. A node x is a float, off its
    ideal place by u |x| (u = 2^-53); on the density's scale sd that is a relative shift of
    u |x| / sd, which moves the rule's value by up to ~that much (10 u |x|/sd for the ~10
    largest weights adding up): 2.2e-11 at mean 10, sd 1e-3, below 1e-13 elsewhere."""
    cuts = [mean + k * sd for k in (-40, -4, -1, 0, 1, 4, 40)]
    value, error = integrate_pieces(gaussian_density(mean, sd), cuts, rtol=1e-11, atol=1e-15, method=method)
    exact = gaussian_integral(mean, sd, cuts[0], cuts[-1])
    actual = abs(value - exact)
    tol = RTOL + 10 * 2.0 ** -53 * (abs(mean) + 40 * sd) / sd
    assert actual <= tol * exact, (value, exact, error, tol)
    assert actual <= max(error, tol * exact), (actual, error)


@pytest.mark.parametrize("method", METHODS)
def test_signed_integrand_with_cancellation(method):
    """∫_{-1}^{2} x e^{-x^2} dx = (e^{-1} - e^{-4}) / 2: the pieces have opposite signs."""
    exact = 0.5 * (math.exp(-1.0) - math.exp(-4.0))
    value, _ = integrate_pieces(lambda x: x * np.exp(-x * x), [-1.0, 0.0, 0.5, 2.0], rtol=1e-12, atol=0.0,
                                method=method)
    assert abs(value - exact) <= RTOL * abs(exact), (value, exact)


def test_tanh_sinh_hands_a_kinked_piece_to_quadpack():
    """|x - 0.3| on [-1, 2] with no cut at the kink: tanh-sinh stalls on that piece, QUADPACK
    integrates it, and the result is the exact 0.5 (1.3^2 + 1.7^2) = 2.29 to the requested 1e-11
    relative, within QUADPACK's own error estimate (tanh-sinh alone stops at its maximum level 1.7e-7 off)."""
    exact = 0.5 * (1.3 ** 2 + 1.7 ** 2)
    value, error = integrate_pieces(lambda x: np.abs(x - 0.3), [-1.0, 2.0], rtol=1e-11, atol=0.0,
                                    method="tanh-sinh")
    assert abs(value - exact) <= min(error, 1e-11 * exact), (value, exact, error)


def test_a_piece_one_ulp_wide_is_integrated_not_nan():
    """SciPy's tanh-sinh returns NaN on [1, 1 + ulp]; that piece goes to QUADPACK, and the sum
    over [0, 1, 1 + ulp, 2] of e^{-x} is 1 - e^{-2} within 1e-13."""
    edges = [0.0, 1.0, float(np.nextafter(1.0, 2.0)), 2.0]
    value, _ = integrate_pieces(lambda x: np.exp(-x), edges, rtol=1e-12, atol=0.0, method="tanh-sinh")
    exact = -math.expm1(-2.0)
    assert abs(value - exact) <= RTOL * exact, (value, exact)


def test_the_two_methods_agree_on_the_quadpack_route_bit_for_bit_with_scipy_quad():
    """``method="quadpack"`` is ``scipy.integrate.quad`` per piece, nothing else: the same numbers."""
    from scipy import integrate

    f = gaussian_density(0.2, 0.7)
    value, error = integrate_pieces(f, [-3.0, 0.2, 4.0], rtol=1e-11, atol=1e-15, method="quadpack")
    pieces = [integrate.quad(lambda t: float(f(np.array([t]))[0]), a, b, epsabs=1e-15, epsrel=1e-11,
                             limit=2000) for a, b in ((-3.0, 0.2), (0.2, 4.0))]
    assert value == pieces[0][0] + pieces[1][0] and error == pieces[0][1] + pieces[1][1]


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown quadrature method 'simpson'.*tanh-sinh"):
        integrate_pieces(np.exp, [0.0, 1.0], rtol=1e-10, atol=0.0, method="simpson")
