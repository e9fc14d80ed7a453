"""Exact reference optima argmin D_f(P||N(mu, sigma^2)) for the paper's 1-D target
(docs/theory.md section 6), the explicit +inf regions, and the quadrature behind them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from febm_ref.divergences import get_divergence
from febm_ref.gaussians import f_divergence, f_divergence_quadrature_1d
from febm_ref.reference_optima import divergence_value, exact_descent, finite_variance_interval, reference_optimum
from febm_ref.targets import GaussianMixture1D, paper_mixture_1d

TARGET = paper_mixture_1d()


def test_target_moments_closed_form():
    assert TARGET.mean() == pytest.approx(0.33 * -1 + 0.67 * 2, abs=1e-15)
    var = 0.33 * (0.0625 + 1.0) + 0.67 * (2.0 + 4.0) - 1.01 ** 2
    assert TARGET.variance() == pytest.approx(var, rel=1e-14)
    # sampling agrees with the density (mean within 5 standard errors)
    x = TARGET.sample(np.random.default_rng(0), 200000)[:, 0]
    se = math.sqrt(var / x.size)
    assert abs(x.mean() - 1.01) < 5 * se, (x.mean(), se)


def test_kl_optimum_is_moment_matching():
    opt = reference_optimum("kl", TARGET)
    assert opt.mu == pytest.approx(1.01, abs=1e-7)
    assert opt.sigma == pytest.approx(math.sqrt(3.350525), abs=1e-7)
    assert max(abs(g) for g in opt.gradient) < 1e-6


@pytest.mark.parametrize("a,b", [(("neyman_chi2", {}), ("alpha", {"alpha": -1.0})),
                                 (("squared_hellinger", {}), ("alpha", {"alpha": 0.5})),
                                 (("pearson_chi2", {}), ("alpha", {"alpha": 2.0}))])
def test_optima_of_proportional_divergences_coincide(a, b):
    """Neyman = 2 alpha(-1), squared Hellinger = alpha(1/2)/2, Pearson = 2 alpha(2): different
    generators (different code paths) with the same minimiser and a known value ratio."""
    da, db = get_divergence(a[0], **a[1]), get_divergence(b[0], **b[1])
    oa, ob = reference_optimum(da, TARGET), reference_optimum(db, TARGET)
    assert oa.mu == pytest.approx(ob.mu, abs=2e-6)
    assert oa.sigma == pytest.approx(ob.sigma, abs=2e-6)
    ratio = {"neyman_chi2": 2.0, "squared_hellinger": 0.5, "pearson_chi2": 2.0}[da.name]
    assert oa.value == pytest.approx(ratio * ob.value, rel=1e-10)


@pytest.mark.parametrize("name,params", [("reverse_kl", {}), ("jensen_shannon", {}), ("alpha", {"alpha": 0.9})])
def test_optimum_is_a_stationary_minimum(name, params):
    div = get_divergence(name, **params)
    opt = reference_optimum(div, TARGET)
    assert max(abs(g) for g in opt.gradient) < 1e-6, opt
    for dm, ds in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert divergence_value(div, TARGET, opt.mu + dm, opt.sigma + ds) > opt.value


def test_finite_regions_and_explicit_infinity():
    assert finite_variance_interval(get_divergence("pearson_chi2"), TARGET) == (1.0, math.inf)
    assert finite_variance_interval(get_divergence("neyman_chi2"), TARGET) == (0.0, 4.0)
    assert finite_variance_interval(get_divergence("alpha", alpha=-0.5), TARGET) == (0.0, 6.0)
    assert finite_variance_interval(get_divergence("kl"), TARGET) == (0.0, math.inf)
    assert divergence_value("pearson_chi2", TARGET, 1.0, math.sqrt(0.99)) == math.inf
    assert divergence_value("pearson_chi2", TARGET, 1.0, 1.0) == math.inf
    assert divergence_value("neyman_chi2", TARGET, 1.0, 2.0) == math.inf
    assert divergence_value("neyman_chi2", TARGET, 1.0, 2.01) == math.inf
    # just inside: finite, large, and growing towards the boundary
    v1 = divergence_value("pearson_chi2", TARGET, 1.0, math.sqrt(1.2))
    v2 = divergence_value("pearson_chi2", TARGET, 1.0, math.sqrt(1.05))
    assert math.isfinite(v1) and math.isfinite(v2) and v2 > v1 > 1.0
    with pytest.raises(ValueError, match="sigma > 0"):
        divergence_value("kl", TARGET, 0.0, -1.0)


@pytest.mark.parametrize("name,params", [("kl", {}), ("jensen_shannon", {}), ("pearson_chi2", {}),
                                         ("neyman_chi2", {}), ("alpha", {"alpha": -0.5})])
def test_fixed_rule_value_matches_adaptive_quadrature(name, params):
    div = get_divergence(name, **params)
    for mu, sigma in [(0.4, 1.3), (1.5, 1.9)]:
        exact = divergence_value(div, TARGET, mu, sigma)
        adaptive = f_divergence_quadrature_1d(
            div, lambda x: TARGET.log_density(x),
            lambda x: -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi),
            points=[-1.0, 2.0, mu])
        assert exact == pytest.approx(adaptive.value, rel=1e-9, abs=1e-12), (mu, sigma)


@pytest.mark.parametrize("name,params", [("kl", {}), ("reverse_kl", {}), ("squared_hellinger", {}),
                                         ("pearson_chi2", {}), ("neyman_chi2", {}), ("alpha", {"alpha": 0.9})])
def test_single_gaussian_target_matches_closed_form(name, params):
    div = get_divergence(name, **params)
    target = GaussianMixture1D([1.0], [0.3], [1.5])
    got = divergence_value(div, target, 0.1, 1.3)
    want = f_divergence(div, [0.3], [[1.5]], [0.1], [[1.69]])
    assert got == pytest.approx(want, rel=1e-11)
    opt = reference_optimum(div, target)
    assert opt.mu == pytest.approx(0.3, abs=1e-6) and opt.sigma == pytest.approx(math.sqrt(1.5), abs=1e-6)


def test_exact_descent_follows_sgd_on_the_exact_gradient():
    theta, traj, values = exact_descent("kl", TARGET, iterations=40, optimizer="sgd", lr=0.05)
    assert np.all(np.diff(values) < 0), "exact gradient descent with a small step must decrease D_f"
    with pytest.raises(ValueError, match="finite"):
        exact_descent("pearson_chi2", TARGET, iterations=5)


def test_far_tilted_peak_near_the_boundary_and_float_overflow():
    """alpha(-1) at sigma^2 = 3.96 (boundary 4): the integrand p^-1 q^2 peaks near x = -248
    (tilted Gaussian); the value must match adaptive quadrature told about that peak. Closer
    to the boundary the value exceeds float64 and is +inf, never nan or a wrong number."""
    div = get_divergence("alpha", alpha=-1.0)
    mu, sigma = -0.5, 1.99
    lam = -1.0 / 2.0 + 2.0 / sigma ** 2
    peak = (-1.0 * 2.0 / 2.0 + 2.0 * mu / sigma ** 2) / lam
    got = divergence_value(div, TARGET, mu, sigma)
    ref = f_divergence_quadrature_1d(
        div, lambda x: TARGET.log_density(x),
        lambda x: -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi),
        points=[peak - 150, peak, peak + 150, -1.0, 2.0, mu])
    assert got == pytest.approx(ref.value, rel=1e-9)
    assert divergence_value("pearson_chi2", TARGET, 0.0, 1.001) == math.inf
