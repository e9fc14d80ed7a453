"""The paper's 1-D mixture target: density, score and cdf against independent computations."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from febm_ref.targets import paper_mixture_1d


def _density_by_hand(t: float) -> float:
    """0.33 N(-1, 0.25^2) + 0.67 N(2, 2) written out (docs/theory.md section 6)."""
    return (0.33 * math.exp(-0.5 * (t + 1.0) ** 2 / 0.0625) / math.sqrt(2 * math.pi * 0.0625)
            + 0.67 * math.exp(-0.5 * (t - 2.0) ** 2 / 2.0) / math.sqrt(2 * math.pi * 2.0))


def test_log_density_matches_the_formula_and_integrates_to_one():
    target = paper_mixture_1d()
    x = np.linspace(-6.0, 9.0, 301)
    expected = np.log([_density_by_hand(t) for t in x])
    np.testing.assert_allclose(target.log_density(x[:, None]), expected, rtol=1e-14, atol=1e-14)
    mass, err = integrate.quad(_density_by_hand, -np.inf, np.inf, points=None, epsabs=1e-14)
    assert abs(mass - 1.0) < 1e-12


def test_cdf_is_the_integral_of_the_density():
    target = paper_mixture_1d()
    for t in (-3.0, -1.0, 0.3, 2.0, 5.0):
        expected, _ = integrate.quad(_density_by_hand, -40.0, t, points=[-1.0] if t > -1.0 else None,
                                     epsabs=1e-15, epsrel=1e-13, limit=200)
        assert abs(float(target.cdf(np.array(t))) - expected) < 1e-12, t


def test_grad_log_density_against_central_differences():
    target = paper_mixture_1d()
    x = np.linspace(-4.0, 7.0, 111)
    h = 1e-5
    fd = (np.log([_density_by_hand(t + h) for t in x]) - np.log([_density_by_hand(t - h) for t in x])) / (2 * h)
    np.testing.assert_allclose(target.grad_log_density(x[:, None])[:, 0], fd, rtol=1e-7, atol=1e-7)
    # the fused evaluation the samplers use gives the separate methods' numbers bit for bit
    log_p, grad = target.log_density_and_grad(x[:, None])
    assert np.array_equal(log_p, target.log_density(x[:, None]))
    assert np.array_equal(grad, target.grad_log_density(x[:, None]))
    assert np.all(np.abs(np.exp(log_p) - [_density_by_hand(t) for t in x]) <= 1e-15 + 1e-13 * np.exp(log_p))


def test_mixture_sample_draws_exactly_what_rng_choice_draws():
    """``sample`` picks components by ``searchsorted`` on the cumulative weights: the same
    uniforms and the same components as ``rng.choice(K, size=n, p=weights)``, then the same
    Gaussians, bit for bit (the training histories depend on it)."""
    target = paper_mixture_1d()
    for seed, n in ((0, 1), (1, 7), (2, 1000), (3, 4096)):
        rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
        k = rng_b.choice(target.weights.size, size=n, p=target.weights)
        expected = (target.means[k] + np.sqrt(target.variances[k]) * rng_b.standard_normal(n))[:, None]
        got = target.sample(rng_a, n)
        assert got.shape == (n, 1)
        np.testing.assert_array_equal(got, expected)
        assert rng_a.bit_generator.state == rng_b.bit_generator.state


def test_mixture_logsumexp_is_scipys_bit_for_bit():
    """The row log-sum-exp (a fast path for the samplers and the exact objective) returns scipy's numbers exactly,
    ties, -inf, +inf and NaN rows included (scipy.special.logsumexp is the independent reference)."""
    from scipy.special import logsumexp

    from febm_ref._logsumexp import logsumexp as whole_array
    from febm_ref._logsumexp import logsumexp_rows

    rng = np.random.default_rng(3)
    for k in (1, 2, 3):
        a = 30.0 * rng.standard_normal((2000, k))
        a[:50] = a[:50, :1]
        a[50:60, 0] = -np.inf
        a[60:65] = -np.inf
        a[65:68, 0] = np.nan
        a[68:70, 0] = np.inf
        with np.errstate(all="ignore"):
            expected = logsumexp(a, axis=1, keepdims=True)
        assert np.array_equal(logsumexp_rows(a), expected, equal_nan=True)
    # the whole-array form (the exact objective's weights): every row above, and long arrays
    for row in a:
        with np.errstate(all="ignore"):
            assert np.array_equal(whole_array(row), logsumexp(row), equal_nan=True), row
    for n in (1, 7, 128, 1000, 4097):
        b = 200.0 * rng.standard_normal(n)
        assert whole_array(b) == logsumexp(b)
