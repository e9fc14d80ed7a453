"""2-D toy targets of issue 8 (febm_ref.targets): exact normalisation (grid and 1-D radial
quadrature), exact samplers against closed-form moments in standard-error units, the closed-form
radius CDF of the rings against quadrature, and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from febm_ref.experiments.fit2d import Grid2D
from febm_ref.targets import (
    TARGETS_2D,
    GaussianMixture2D,
    RadialMixture2D,
    checkerboard,
    eight_gaussians,
    get_target,
    two_moons,
    two_rings,
)

N_SAMPLES = 20000


@pytest.mark.parametrize("name", TARGETS_2D)
def test_log_density_integrates_to_one_on_grid(name):
    t = get_target(name)
    grid = Grid2D(t.box, 200)
    mass = grid.mass(t.log_density(grid.points))
    assert t.mass_outside_box() < 1e-10
    assert abs(mass - 1.0) < 1e-9, f"{name}: grid mass {mass!r}"


def _ring_radius_density(t: RadialMixture2D, r):
    """``2 pi r p(r)`` from the normalised log density (the radial marginal)."""
    return 2.0 * math.pi * r * math.exp(t.log_density(np.array([[r, 0.0]]))[0])


def test_rings_normaliser_against_radial_quadrature():
    t = two_rings()
    total = sum(quad(lambda r: _ring_radius_density(t, r), a, b, limit=200, epsabs=1e-14, epsrel=1e-13)[0]
                for a, b in ((0, 1), (1, 2.5), (2.5, 10)))
    assert abs(total - 1.0) < 1e-11, total


def test_rings_radius_cdf_against_quadrature():
    t = two_rings()
    for k in range(2):
        R, s, log_c = t.radii[k], t.stds[k], t._log_c[k]
        dens = lambda r: 2 * math.pi * r * math.exp(-0.5 * ((r - R) / s) ** 2 - log_c)
        for r in (0.3, R - s, R, R + 0.5 * s, R + 3 * s):
            expected = quad(dens, 0.0, r, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
            assert abs(t.radius_cdf(r, k) - expected) < 1e-12, (k, r)
        assert abs(t.radius_cdf(R + 40 * s, k) - 1.0) < 1e-13


def _exact_moments(t):
    """(E x, E y, E x^2, E y^2, E xy) in closed form (mixtures) or by radial quadrature (rings)."""
    if isinstance(t, GaussianMixture2D):
        m, S = t.mean(), t.second_moment()
        return np.array([m[0], m[1], S[0, 0], S[1, 1], S[0, 1]])
    er2 = quad(lambda r: r ** 2 * _ring_radius_density(t, r), 0, 10, limit=200, points=list(t.radii))[0]
    return np.array([0.0, 0.0, er2 / 2, er2 / 2, 0.0])


@pytest.mark.parametrize("name", TARGETS_2D)
def test_sampler_moments_within_standard_errors(name):
    t = get_target(name)
    x = t.sample(np.random.default_rng(7), N_SAMPLES)
    stats = np.column_stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 1] ** 2, x[:, 0] * x[:, 1]])
    est = stats.mean(axis=0)
    se = stats.std(axis=0, ddof=1) / math.sqrt(N_SAMPLES)
    z = (est - _exact_moments(t)) / se
    assert np.all(np.abs(z) < 5.0), f"{name}: z-scores {z} (SE {se})"


def test_sampler_is_reproducible_and_uses_only_the_generator():
    t = two_rings()
    a = t.sample(np.random.default_rng(3), 100)
    b = t.sample(np.random.default_rng(3), 100)
    assert np.array_equal(a, b)


def test_geometry_of_the_toys():
    g = eight_gaussians()
    assert np.allclose(np.hypot(*g.means.T), 2.0, atol=1e-15)
    moons = two_moons()
    assert moons.means.shape == (128, 2) and abs(moons.mean()[0]) < 1e-12
    board = checkerboard()
    # 8 black squares of a 4x4 board, 16 Gaussians each; none centred on a white square
    assert board.means.shape == (128, 2)
    cell = np.floor(board.means + 2.0).astype(int)
    assert np.all((cell.sum(axis=1) % 2) == 0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="shape"):
        eight_gaussians().log_density(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="positive"):
        GaussianMixture2D([1.0, -1.0], np.zeros((2, 2)), 0.1)
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture2D([1.0, 1.0], np.zeros((3, 2)), 0.1)
    with pytest.raises(ValueError, match="positive"):
        RadialMixture2D([1.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="unknown target"):
        get_target("spiral")
