"""Tests of the exact (quadrature) f-EBM objective D8-D10 and the linear critics.

Expected values: scipy.integrate.quad of the D9/D10 integrands written out independently,
closed-form Gaussian f-divergences (febm_ref.gaussians, docs/theory.md section 3) at the optimal
critic (D8 remark, D11), finite differences of closed forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad

from febm_ref.divergences import all_divergences
from febm_ref.exact_objective import ExactObjective, gauss_legendre_box, gauss_legendre_panels
from febm_ref.gaussians import f_divergence
from febm_ref.models.critics import OffsetEnergy, QuadraticCritic
from febm_ref.models.energies import GaussianEnergy1D, QuadraticEnergy

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

DIVS = all_divergences(alphas=(-0.5, 0.5, 2.0))
RULE_1D = gauss_legendre_box([(-16.0, 16.0)], 64, 16)


def _quad(fun):
    return quad(fun, -30, 30, epsabs=1e-14, epsrel=1e-13, limit=400, points=[-2, 0, 2])[0]


@pytest.mark.parametrize("div", DIVS, ids=[d.label for d in DIVS])
def test_d9_d10_match_adaptive_quadrature_1d(div):
    """D8-D10 on the rule vs scipy quad of the integrands (p = N(0.2, 1.1^2), q = N(0.5, 0.9^2))."""
    target = GaussianEnergy1D(0.2, 1.1)
    energy = GaussianEnergy1D(0.5, 0.9)
    critic = QuadraticCritic(1, [0.1, -0.05, -0.45])  # keeps every integral finite
    ev = ExactObjective.from_energy(div, RULE_1D, target).evaluate(energy, critic)
    p = lambda x: math.exp(-0.5 * ((x - 0.2) / 1.1) ** 2) / (1.1 * math.sqrt(2 * math.pi))  # noqa: E731
    q = lambda x: math.exp(-0.5 * ((x - 0.5) / 0.9) ** 2) / (0.9 * math.sqrt(2 * math.pi))  # noqa: E731
    r = lambda x: 0.1 - 0.05 * x - 0.45 * x * x + 0.5 * ((x - 0.5) / 0.9) ** 2  # noqa: E731
    dE = lambda x: np.array([-(x - 0.5) / 0.81, -(x - 0.5) ** 2 / 0.729])  # noqa: E731
    dH = lambda x: np.array([1.0, x, x * x])  # noqa: E731
    gd, gm = lambda x: float(div.g_data(r(x))), lambda x: float(div.g_model(r(x)))  # noqa: E731
    gdp, gmp = lambda x: float(div.g_data_prime(r(x))), lambda x: float(div.g_model_prime(r(x)))  # noqa: E731
    value = _quad(lambda x: p(x) * gd(x)) - _quad(lambda x: q(x) * gm(x))
    mq = np.array([_quad(lambda x, k=k: q(x) * dE(x)[k]) for k in range(2)])
    mean_gm = _quad(lambda x: q(x) * gm(x))
    g_theta = np.array([_quad(lambda x, k=k: p(x) * gdp(x) * dE(x)[k] - q(x) * gmp(x) * dE(x)[k]
                              + q(x) * gm(x) * dE(x)[k]) for k in range(2)]) - mean_gm * mq
    g_omega = np.array([_quad(lambda x, k=k: p(x) * gdp(x) * dH(x)[k] - q(x) * gmp(x) * dH(x)[k]) for k in range(3)])
    assert abs(ev.value - value) <= 1e-11 * max(1.0, abs(value)), (ev.value, value)
    np.testing.assert_allclose(ev.grad_theta, g_theta, rtol=0, atol=1e-11 * max(1, np.abs(g_theta).max()))
    np.testing.assert_allclose(ev.grad_omega, g_omega, rtol=0, atol=1e-11 * max(1, np.abs(g_omega).max()))
    assert ev.edge_fraction < 1e-12


@pytest.mark.parametrize("div", [d for d in DIVS if d.name != "jensen_shannon"], ids=lambda d: d.label)
def test_optimal_critic_gives_closed_form_divergence_and_d11(div):
    """At the optimal critic r = log(p/q): L = D_f(P||Q) (closed form) and D9 = grad_theta D_f (D11)."""
    mp_, sp = 0.2, 1.1
    target = GaussianEnergy1D(mp_, sp)
    obj = ExactObjective.from_energy(div, RULE_1D, target)

    def optimal(mu, s):
        # r = log p - log q = -E_p + E_q + log(s/sp), so H = r - E_q = -E_p + log(s/sp)
        return QuadraticCritic.from_coefficients(-0.5 * mp_ ** 2 / sp ** 2 + math.log(s / sp), [mp_ / sp ** 2],
                                                 [[-0.5 / sp ** 2]])

    mu, s = 0.5, 1.3
    ev = obj.evaluate(GaussianEnergy1D(mu, s), optimal(mu, s))
    exact = f_divergence(div, [mp_], [[sp ** 2]], [mu], [[s ** 2]])
    assert abs(ev.value - exact) <= 1e-11 * max(1.0, exact), (ev.value, exact)
    assert abs(obj.f_divergence(GaussianEnergy1D(mu, s)) - exact) <= 1e-11 * max(1.0, exact)
    h = 1e-5
    fd = np.array([(f_divergence(div, [mp_], [[sp ** 2]], [mu + h], [[s ** 2]])
                    - f_divergence(div, [mp_], [[sp ** 2]], [mu - h], [[s ** 2]])) / (2 * h),
                   (f_divergence(div, [mp_], [[sp ** 2]], [mu], [[(s + h) ** 2]])
                    - f_divergence(div, [mp_], [[sp ** 2]], [mu], [[(s - h) ** 2]])) / (2 * h)])
    np.testing.assert_allclose(ev.grad_theta, fd, rtol=0, atol=1e-8)


def test_divergent_integral_is_reported_not_hidden():
    """Pearson's E_q[e^{2r}] diverges when r grows faster than E/2: ValueError, never a number."""
    obj = ExactObjective.from_energy("pearson_chi2", RULE_1D, GaussianEnergy1D(0.0, 1.0))
    critic = QuadraticCritic(1, [0.0, 0.0, 0.3])  # r = 0.8 x^2: q e^{2r} grows like e^{1.1 x^2}
    with pytest.raises(ValueError, match="diverges|not finite"):
        obj.evaluate(GaussianEnergy1D(0.0, 1.0), critic)


def test_bad_inputs():
    with pytest.raises(TypeError, match="QuadratureRule"):
        ExactObjective("kl", "not a rule", np.zeros(3))
    with pytest.raises(ValueError, match="one value per node"):
        ExactObjective("kl", RULE_1D, np.zeros(3))
    with pytest.raises(ValueError, match="edge panels"):
        ExactObjective.from_energy("kl", gauss_legendre_box([(-2.0, 2.0)], 4), GaussianEnergy1D(0.0, 1.0))
    obj = ExactObjective.from_energy("kl", RULE_1D, GaussianEnergy1D(0.0, 1.0))
    with pytest.raises(ValueError, match="2-D|dim"):
        obj.evaluate(QuadraticEnergy([0.0, 0.0], np.eye(2)), QuadraticCritic(2, np.zeros(6)))
    with pytest.raises(ValueError, match="strictly increasing"):
        gauss_legendre_panels([[0.0, 1.0, 1.0]])


def test_rule_integrates_gaussian_moments_2d():
    """Tensor rule: E[x x^T] of N(m, S) equals S + m m^T to 1e-13."""
    mean, cov = np.array([0.3, -0.2]), np.array([[1.0, 0.4], [0.4, 0.7]])
    e = QuadraticEnergy.from_covariance(mean, cov)
    rule = gauss_legendre_box([(-12, 12), (-12, 12)], 24, 10)
    obj = ExactObjective.from_energy("kl", rule, e)
    x = rule.nodes
    second = x.T @ (obj.p_weights[:, None] * x)
    np.testing.assert_allclose(second, cov + np.outer(mean, mean), rtol=0, atol=1e-13)


def test_quadratic_critic_interface():
    rng = np.random.default_rng(3)
    C = np.array([[0.3, -0.2], [-0.2, 0.5]])
    crit = QuadraticCritic.from_coefficients(0.7, [0.1, -0.4], C)
    x = rng.normal(size=(6, 2))
    expected = 0.7 + x @ np.array([0.1, -0.4]) + np.einsum("ni,ij,nj->n", x, C, x)
    np.testing.assert_allclose(crit.energy(x), expected, rtol=1e-14)
    np.testing.assert_allclose(crit.grad_x(x), np.array([0.1, -0.4]) + 2 * x @ C, rtol=1e-14)
    h = 1e-6
    fd = np.stack([(crit.energy_complex(x, crit.params + h * e) - crit.energy_complex(x, crit.params - h * e)) / (2 * h)
                   for e in np.eye(crit.n_params)], axis=1)
    np.testing.assert_allclose(crit.grad_params(x), fd, atol=1e-9)
    w = rng.normal(size=6)
    np.testing.assert_allclose(crit.weighted_grad_params(x, w), w @ crit.grad_params(x), rtol=1e-13)
    e = QuadraticEnergy.from_covariance([0.3, -0.2], [[1.0, 0.4], [0.4, 0.7]])
    L = e.precision_factor
    neg = QuadraticCritic.negative_of_gaussian_energy(e.mean, L @ L.T)
    np.testing.assert_allclose(neg.energy(x), -e.energy(x), atol=1e-13)
    with pytest.raises(ValueError, match="needs 6 finite"):
        QuadraticCritic(2, np.zeros(5))


def test_offset_energy():
    base = GaussianEnergy1D(0.3, 1.2)
    off = OffsetEnergy(base, 0.25)
    x = np.linspace(-2, 2, 5)
    np.testing.assert_allclose(off.energy(x), base.energy(x) + 0.25, rtol=1e-15)
    g = off.grad_params(x)
    np.testing.assert_allclose(g[:, :2], base.grad_params(x), rtol=1e-15)
    np.testing.assert_array_equal(g[:, 2], 1.0)
    w = np.arange(5.0)
    np.testing.assert_allclose(off.weighted_grad_params(x, w), w @ g, rtol=1e-13)
    np.testing.assert_allclose(off.with_params([0.3, 1.2, -1.0]).energy(x), base.energy(x) - 1.0, rtol=1e-15)
