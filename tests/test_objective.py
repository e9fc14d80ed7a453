"""Tests of the f-EBM minibatch estimator (D13, D14), its exact counterpart (D9, D10),
D11, D12, the published stop-gradient surrogate, and the batched critic kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from febm_ref._numba.batched_mlp import BatchedMLP
from febm_ref.divergences import get_divergence
from febm_ref.exact_objective import ExactObjective, gauss_legendre_box
from febm_ref.models import mlp as M
from febm_ref.models.critics import QuadraticCritic
from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy
from febm_ref.models.sum_model import SumModel
from febm_ref.objective import (
    contrastive_divergence_gradient,
    covariance_weights,
    febm_critic_gradient,
    febm_energy_gradient,
    febm_gradient,
    febm_objective_value,
    model_pass,
)
from febm_ref.targets import GaussianMixture1D, paper_mixture_1d
from febm_ref.verification.check_objective import (
    MODEL,
    TARGET,
    batch_covariance_term,
    d9_at_optimal_critic,
    d13_z_scores,
    divergence_gradient_fd,
    kl_d12_minibatch,
    kl_d12_quadrature,
    kl_optimal_critic,
    near_optimal_critic,
    quadrature_rule,
    surrogate_omega,
    surrogate_problem,
    surrogate_theta,
)

TABLE = [("kl", {}), ("reverse_kl", {}), ("jensen_shannon", {}), ("squared_hellinger", {}),
         ("pearson_chi2", {}), ("neyman_chi2", {}), ("alpha", {"alpha": -1.0}), ("alpha", {"alpha": -0.5}),
         ("alpha", {"alpha": 0.5}), ("alpha", {"alpha": 0.9}), ("alpha", {"alpha": 2.0})]
IDS = [n + str(k.get("alpha", "")) for n, k in TABLE]

# p = N(0.5, 1.3^2), q_theta = N(0.2, 1.1^2) (TARGET, MODEL), the near-optimal quadratic critic
# and the quadrature rule are those of the verification checks (febm_ref/verification/check_objective.py).
RULE = quadrature_rule()


# ------------------------------------------------------------------ D13 mean == D9/D10

@pytest.mark.parametrize("name,params", TABLE, ids=IDS)
def test_D13_mean_equals_exact_D9_D10_within_standard_error(name, params):
    div = get_divergence(name, **params)
    z, se, mean = d13_z_scores(div, near_optimal_critic(), RULE, np.random.default_rng(2024), 300, 200, "halves")
    assert z.shape == (5,) and np.all(se > 0)  # (grad_theta (D9): mu, sigma; grad_omega (D10): 3 params)
    assert np.all(z < 4.5), f"{div.label}: mean {mean}, SE {se}, z {z}"


def test_D13_batch_covariance_has_the_predicted_O_1_over_n_bias():
    """covariance='batch' has expectation D9 - Cov_q(g_model, dE)/n (exact, by quadrature)."""
    div = get_divergence("kl")
    critic = near_optimal_critic()
    d9, cov = batch_covariance_term(div, critic, RULE)
    n, reps = 2, 12000
    rng = np.random.default_rng(7)
    xp = TARGET.sample(rng, n * reps).reshape(reps, n, 1)
    xn = MODEL.sample(rng, n * reps).reshape(reps, n, 1)
    est = np.array([febm_energy_gradient(div, MODEL, critic, xp[k], xn[k]).grad_theta for k in range(reps)])
    se = est.std(axis=0, ddof=1) / math.sqrt(reps)
    predicted = d9 - cov / n
    z = np.abs(est.mean(0) - predicted) / se
    assert np.all(z < 4.5), f"mean {est.mean(0)} vs D9 - Cov/n {predicted} (D9 {d9}), SE {se}"
    # and the bias is detectable: the unbiased target is rejected for at least one component
    assert np.max(np.abs(est.mean(0) - d9) / se) > 6.0, "bias Cov/n not resolved; test too weak"


MLP_FINITE_VARIANCE = [("reverse_kl", {}), ("jensen_shannon", {}), ("neyman_chi2", {}), ("alpha", {"alpha": -1.0}),
                       ("alpha", {"alpha": -0.5})]


@pytest.mark.parametrize("name,params", MLP_FINITE_VARIANCE, ids=lambda v: str(v))
def test_D13_mean_equals_exact_for_an_mlp_critic(name, params):
    """MLP critics (bounded H): r = H + E grows like E in the tails, so E_q[g_model(r)^2]
    is finite only when g_model grows at most like e^{s/2}... strictly slower (otherwise the
    sample standard error is meaningless); for those divergences D13's mean must match
    D9/D10 on every critic parameter."""
    div = get_divergence(name, **params)
    critic = MLPEnergy.random_init(np.random.default_rng(3), 1, (8,), "tanh", bias_scale=0.3)
    z, se, _ = d13_z_scores(div, critic, RULE, np.random.default_rng(11), 200, 200, "bessel")
    ok = se > 0
    z = z[ok]
    assert np.all(z < 4.8), f"{div.label}: worst z {z.max():.2f} over {ok.sum()} components"


# ------------------------------------------------------------------ surrogate loss

@pytest.mark.parametrize("lam", [0.0, 0.7])
@pytest.mark.parametrize("name,params", TABLE, ids=IDS)
def test_explicit_D13_equals_gradient_of_stop_gradient_surrogate(name, params, lam):
    div = get_divergence(name, **params)
    rng = np.random.default_rng(5)
    energy, critic, xp, xn = surrogate_problem(rng)
    g = febm_gradient(div, energy, critic, xp, xn, l2_weight=lam)
    gm0 = div.g_model(critic.energy(xn) + energy.energy(xn))
    h = 1e-6
    fd_theta = np.array([(surrogate_theta(div, energy, critic, xp, xn, energy.params + h * e, gm0, lam)
                          - surrogate_theta(div, energy, critic, xp, xn, energy.params - h * e, gm0, lam)) / (2 * h)
                         for e in np.eye(2)])
    np.testing.assert_allclose(g.grad_theta, fd_theta, rtol=1e-6, atol=1e-8 * np.abs(fd_theta).max())
    for _ in range(3):
        u = rng.standard_normal(critic.n_params)
        u /= np.linalg.norm(u)
        fd = (surrogate_omega(div, energy, critic, xp, xn, critic.params + h * u, lam)
              - surrogate_omega(div, energy, critic, xp, xn, critic.params - h * u, lam)) / (2 * h)
        assert abs(g.grad_omega @ u - fd) <= 1e-6 * np.linalg.norm(g.grad_omega) + 1e-9, (g.grad_omega @ u, fd)
    # the estimator's loss is the surrogate's value without the frozen terms (D8)
    assert g.loss == pytest.approx(surrogate_omega(div, energy, critic, xp, xn, critic.params, 0.0), rel=1e-13)


# ------------------------------------------------------------------ D11 and D12

@pytest.mark.parametrize("name,params", TABLE, ids=IDS)
def test_D11_optimal_critic_gradient_equals_gradient_of_D_f(name, params):
    """At r = log(p/q_theta), D9 (quadrature) equals grad_theta D_f(P||Q_theta) (finite
    differences of the independent divergence quadrature), for the paper's mixture target."""
    div = get_divergence(name, **params)
    target = paper_mixture_1d()
    mu, sigma = 1.2, 1.6
    energy = GaussianEnergy1D(mu, sigma)
    d9 = d9_at_optimal_critic(div, target, energy, gauss_legendre_box([(-40.0, 40.0)], 320))
    fd = divergence_gradient_fd(div, target, mu, sigma, h=1e-5)
    np.testing.assert_allclose(d9, fd, rtol=1e-7, atol=1e-9)


def test_D12_kl_gradient_is_scaled_contrastive_divergence():
    """KL: D9 = E_p[dE] - E_q[e^r] E_q[dE] for any critic (quadrature, ~1e-13), and the
    minibatch identity <dE+> - <e^r-><dE-> holds exactly on every batch."""
    critic = near_optimal_critic()
    obj = ExactObjective.from_energy("kl", RULE, TARGET, tail_tolerance=1e-9)
    ev = obj.evaluate(MODEL, critic)
    np.testing.assert_allclose(ev.grad_theta, kl_d12_quadrature(obj, RULE, critic), rtol=1e-11, atol=1e-13)
    rng = np.random.default_rng(0)
    xp, xn = TARGET.sample(rng, 50), MODEL.sample(rng, 70)
    g = febm_energy_gradient("kl", MODEL, critic, xp, xn)
    np.testing.assert_allclose(g.grad_theta, kl_d12_minibatch(critic, xp, xn), rtol=1e-12, atol=1e-14)
    cd = contrastive_divergence_gradient(MODEL, xp, xn)
    np.testing.assert_allclose(cd.grad_theta, MODEL.grad_params(xp).mean(0) - MODEL.grad_params(xn).mean(0),
                               rtol=1e-13, atol=1e-15)


def test_D12_at_the_optimal_critic_kl_gradient_equals_cd_gradient():
    """With the exact critic (quadratic, Gaussian target) E_q[e^r] = 1 and D9 = E_p[dE] - E_q[dE]."""
    h_star = kl_optimal_critic()
    obj = ExactObjective.from_energy("kl", RULE, TARGET, tail_tolerance=1e-9)
    ev = obj.evaluate(MODEL, h_star)
    x = RULE.nodes
    dE = MODEL.grad_params(x)
    cd = obj.p_weights @ dE - obj.model_weights(MODEL) @ dE
    np.testing.assert_allclose(ev.grad_theta, cd, rtol=1e-11, atol=1e-13)


# ------------------------------------------------------------------ pieces

def test_covariance_weights_halves_and_bessel_formulas():
    g = np.array([1.0, 4.0, -2.0, 0.5, 3.0])
    dE = np.array([0.3, -1.0, 2.0, 0.7, 1.1])
    n = 5
    assert covariance_weights(g, "batch") @ dE == pytest.approx(np.mean(g * dE) - g.mean() * dE.mean(), rel=1e-14)
    assert covariance_weights(g, "bessel") @ dE == pytest.approx(np.cov(g, dE)[0, 1], rel=1e-14)
    a, b = slice(0, 2), slice(2, 5)
    halves = 0.5 * (np.mean(g[a] * dE[a]) - g[b].mean() * dE[a].mean()) + \
        0.5 * (np.mean(g[b] * dE[b]) - g[a].mean() * dE[b].mean())
    assert covariance_weights(g, "halves") @ dE == pytest.approx(halves, rel=1e-14)
    with pytest.raises(ValueError, match="unknown covariance"):
        covariance_weights(g, "nope")
    assert n == 5


def test_batched_mlp_matches_numpy_twins():
    rng = np.random.default_rng(1)
    for act in ("tanh", "softplus"):
        for hidden in ((64, 64), (7,), (5, 3, 4)):
            for dim in (1, 2):
                model = MLPEnergy.random_init(rng, dim, hidden, act, bias_scale=0.5)
                x = 3 * rng.standard_normal((37, dim))
                w = rng.standard_normal(37)
                b = BatchedMLP(model, x)
                params, sizes, code = model.kernel_args()
                np.testing.assert_allclose(b.values, M.mlp_energy_batch_numpy(params, sizes, code, x),
                                           rtol=1e-13, atol=1e-13)
                ref = M.mlp_weighted_grad_params_numpy(params, sizes, code, x, w)
                np.testing.assert_allclose(b.weighted_grad_params(w), ref, rtol=1e-12,
                                           atol=1e-13 * np.abs(ref).max())


def test_values_only_pass_equals_the_cached_forward_bit_for_bit():
    """``backward=False`` (the critic in the energy step) skips the activation derivatives
    but gives the same values to the last bit; it has no backward pass."""
    rng = np.random.default_rng(12)
    for act in ("tanh", "softplus", "silu", "elu"):
        for hidden, dim in (((64, 64), 1), ((5, 3, 4), 2), ((16, 9), 9)):
            model = MLPEnergy.random_init(rng, dim, hidden, act, bias_scale=0.5)
            x = 3 * rng.standard_normal((301, dim))
            values_only = BatchedMLP(model, x, backward=False)
            np.testing.assert_array_equal(values_only.values, BatchedMLP(model, x).values)
            with pytest.raises(RuntimeError, match="backward=False"):
                values_only.weighted_grad_params(np.ones(301))
    mlp = MLPEnergy.random_init(rng, 1, (9, 9), "tanh", output_bias=False, bias_scale=0.3)
    critic = SumModel(mlp, QuadraticCritic(1, [0.1, -0.2, -0.05]))
    x = rng.standard_normal((25, 1))
    np.testing.assert_array_equal(model_pass(critic, x, backward=False).values, model_pass(critic, x).values)


def test_batch_mean_and_g_maps_are_the_public_numbers_bit_for_bit():
    """The estimator's shortcuts (``np.add.reduce / n`` for ``np.mean``, the array methods of
    the catalogue divergences under one errstate) return exactly the public functions' numbers,
    also where ``g`` overflows."""
    from febm_ref.objective import _batch_mean, _g_maps

    rng = np.random.default_rng(13)
    for n in (1, 2, 7, 1000, 4097):
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
        assert _batch_mean(v) == float(np.mean(v))
    r_pos = np.concatenate([rng.normal(0.0, 3.0, 500), [-800.0, -50.0, 0.0, 50.0, 800.0]])
    r_neg = np.concatenate([rng.normal(-1.0, 3.0, 400), [-800.0, -50.0, 0.0, 50.0, 800.0]])
    for name, params in TABLE:
        div = get_divergence(name, **params)
        with np.errstate(all="ignore"):
            public = (div.g_data(r_pos), div.g_model(r_neg), div.g_data_prime(r_pos), div.g_model_prime(r_neg))
        for fast, slow in zip(_g_maps(div, r_pos, r_neg), public):
            np.testing.assert_array_equal(fast, slow)
            assert fast.dtype == np.float64

    class Overriding(type(get_divergence("kl"))):  # a public map overridden: called through it
        def g_data(self, s):
            return 2.0 + s

    assert np.array_equal(_g_maps(Overriding(), r_pos, r_neg)[0], 2.0 + r_pos)


def test_sum_model_critic_and_model_pass_fast_path_agree_with_plain_path():
    rng = np.random.default_rng(4)
    mlp = MLPEnergy.random_init(rng, 1, (9, 9), "tanh", output_bias=False, bias_scale=0.3)
    critic = SumModel(mlp, QuadraticCritic(1, [0.1, -0.2, -0.05]))
    x = rng.standard_normal((25, 1))
    w = rng.standard_normal(25)
    fast = model_pass(critic, x)
    np.testing.assert_allclose(fast.values, critic.energy(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(fast.weighted_grad_params(w), critic.weighted_grad_params(x, w), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(critic.weighted_grad_params(x, w), w @ critic.grad_params(x), rtol=1e-12, atol=1e-14)


def test_critic_only_and_energy_only_match_full_gradient():
    rng = np.random.default_rng(9)
    critic = MLPEnergy.random_init(rng, 1, (8,), "tanh")
    xp, xn = rng.standard_normal((30, 1)), MODEL.sample(rng, 20)
    for name, params in TABLE:
        full = febm_gradient(name, MODEL, critic, xp, xn, l2_weight=0.3, **params)
        np.testing.assert_array_equal(febm_critic_gradient(name, MODEL, critic, xp, xn, l2_weight=0.3,
                                                           **params).grad_omega, full.grad_omega)
        np.testing.assert_array_equal(febm_energy_gradient(name, MODEL, critic, xp, xn, l2_weight=0.3,
                                                           **params).grad_theta, full.grad_theta)
        assert febm_objective_value(name, MODEL, critic, xp, xn, **params) == pytest.approx(full.loss, rel=1e-13)


def test_bad_input_and_overflow_are_reported():
    critic = QuadraticCritic(1, [0.0, 0.0, 0.0])
    x = np.zeros((3, 1))
    with pytest.raises(ValueError, match="unknown covariance"):
        febm_gradient("kl", MODEL, critic, x, x, covariance="bogus")
    with pytest.raises(ValueError, match="unknown divergence|valid"):
        febm_gradient("klx", MODEL, critic, x, x)
    with pytest.raises(ValueError, match="shape"):
        febm_gradient("kl", MODEL, critic, np.zeros((3, 2)), x)
    with pytest.raises(ValueError, match="l2_weight"):
        febm_gradient("kl", MODEL, critic, x, x, l2_weight=-1.0)
    huge = QuadraticCritic(1, [800.0, 0.0, 0.0])
    with pytest.raises(FloatingPointError, match="g_model"):
        febm_gradient("kl", MODEL, huge, x, x)


def test_single_component_mixture_is_the_gaussian_target():
    t = GaussianMixture1D([1.0], [0.5], [1.69])
    x = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(t.log_density(x), -TARGET.energy(x) - TARGET.log_normalizer(), rtol=1e-14, atol=1e-14)


def test_checked_hot_path_still_refuses_batches_without_both_parts():
    """febm_terms_checked (the trainer's pre-validated path) gives a clear ValueError, not a
    ZeroDivisionError, when x_all holds no negatives or no positives."""
    from febm_ref.objective import febm_terms_checked

    x_all = np.linspace(-1.0, 1.0, 6)[:, None]
    critic = MLPEnergy.random_init(np.random.default_rng(0), 1, (4,), "tanh")
    for n_pos in (0, 6):
        with pytest.raises(ValueError, match="0 < n_pos"):
            febm_terms_checked(get_divergence("kl"), GaussianEnergy1D(), critic, x_all, n_pos,
                               l2_weight=0.0, covariance="batch")
    g = febm_terms_checked(get_divergence("kl"), GaussianEnergy1D(), critic, x_all, 3,
                           l2_weight=0.0, covariance="batch")
    # the loss of D13 on this batch: mean g_data(r+) - mean g_model(r-) with r = H + E
    r = critic.energy(x_all) + GaussianEnergy1D().energy(x_all)
    div = get_divergence("kl")
    assert abs(g.loss - (np.mean(div.g_data(r[:3])) - np.mean(div.g_model(r[3:])))) <= 1e-14
