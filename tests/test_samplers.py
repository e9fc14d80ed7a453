"""Unit tests of febm_ref.samplers (docs/theory.md section 4, D15, D16): deterministic algebra of each
step against independent computations, exact laws, diagnostics on AR(1) processes with a
closed-form autocorrelation time, the replay buffer, input validation and NaN detection."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from scipy.signal import lfilter

from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy, QuadraticEnergy
from febm_ref.samplers import (
    CallableEnergy,
    NonFiniteChainError,
    PersistentChains,
    ReplayBuffer,
    decoupled_langevin,
    exact,
    hmc,
    mala,
    mlp_langevin,
    ula,
)
from febm_ref.samplers import diagnostics as D
from febm_ref.samplers.replay_buffer import dequantize_8bit, quantize_8bit
from febm_ref.verification.check_samplers import fused_run, twin_deviation


def quartic():
    """E = sum x^4 / 4 (grad x^3): ULA with a large step overflows."""
    return CallableEnergy(lambda x: 0.25 * np.sum(x ** 4, axis=1), lambda x: x ** 3)


def gauss(s=1.0):
    return CallableEnergy(lambda x: 0.5 * np.sum(x ** 2, axis=1) / s ** 2, lambda x: x / s ** 2)


# --------------------------------------------------------------------------- exact laws

def test_d15_lyapunov_matches_eigen_closed_form():
    """Sigma from solve_discrete_lyapunov = P^-1 (I - eps P/4)^-1 (P symmetric), and the 1-D
    closed form s^2/(1 - eps/(4 s^2)) (D15)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lam = np.array([0.5, 1.0, 3.0, 7.0])
    P = q @ np.diag(lam) @ q.T
    for eps in (0.01, 0.1, 0.5):
        closed = q @ np.diag(1.0 / (lam * (1.0 - eps * lam / 4.0))) @ q.T
        np.testing.assert_allclose(ula.stationary_covariance(P, eps), closed, rtol=1e-11, atol=1e-13)
    for s, eps in ((1.0, 0.05), (2.5, 0.3)):
        one_d = ula.stationary_covariance([[1 / s ** 2]], eps)[0, 0]
        assert abs(one_d - ula.stationary_variance_1d(s, eps)) <= 1e-13 * one_d
        assert abs(ula.stationary_variance_1d(s, eps) - s * s / (1 - eps / (4 * s * s))) == 0.0


def test_d15_unstable_step_raises():
    with pytest.raises(ValueError, match="unstable"):
        ula.stationary_variance_1d(1.0, 4.0)
    with pytest.raises(ValueError, match="4 / lambda_max"):
        ula.stationary_covariance(np.diag([1.0, 10.0]), 0.5)
    with pytest.raises(ValueError, match="positive definite"):
        ula.stationary_covariance(np.diag([1.0, -1.0]), 0.1)


def test_d16_exact_variance_is_fixed_point_of_recursion():
    """v = a^2 (v + sigma^2) with a = 1 - lambda/s^2 (D16 on x^2/(2 s^2))."""
    s, lam, sig = 1.3, 0.07, 0.4
    v = decoupled_langevin.stationary_variance_1d(s, lam, sig)
    a = 1 - lam / s ** 2
    assert abs(v - a * a * (v + sig * sig)) <= 1e-14 * v
    with pytest.raises(ValueError, match="unstable"):
        decoupled_langevin.stationary_variance_1d(1.0, 2.0, 0.1)


# --------------------------------------------------------------------------- step algebra

def test_ula_step_formula_with_predrawn_noise():
    """x' = x - eps/2 grad E(x) + sqrt(eps) z (D15), energy and gradient cached at x'."""
    rng = np.random.default_rng(1)
    model = MLPEnergy.random_init(rng, 2, (8,), "tanh")
    x = rng.standard_normal((5, 2))
    z = rng.standard_normal((5, 2))
    state = ula.init(x, model)
    new, info = ula.step(z, state, model, 0.3)
    expected = x - 0.15 * model.grad_x(x) + math.sqrt(0.3) * z
    np.testing.assert_allclose(new.x, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(new.grad_x, model.grad_x(expected), rtol=0, atol=1e-15)
    assert abs(info.mean_energy - model.energy(expected).mean()) < 1e-14


def test_decoupled_step_formula_and_clipping():
    """D16: x' = x + sigma z; x <- clip(x' - lambda clip(grad E(x'), -c, c), lo, hi)."""
    rng = np.random.default_rng(2)
    model = MLPEnergy.random_init(rng, 3, (16,), "softplus")
    x = rng.standard_normal((40, 3))
    z = rng.standard_normal((40, 3))
    lam, sig, c, box = 0.8, 0.3, 0.2, (-1.0, 1.0)
    new, info = decoupled_langevin.step(z, decoupled_langevin.init(x), model, lam, sig,
                                        grad_clip=c, box=box)
    xn = x + sig * z
    g = model.grad_x(xn)
    expected = np.clip(xn - lam * np.clip(g, -c, c), *box)
    np.testing.assert_allclose(new.x, expected, rtol=0, atol=1e-15)
    assert info.fraction_grad_clipped == np.mean(np.abs(g) > c) > 0
    assert info.fraction_box_clipped == np.mean(np.abs(xn - lam * np.clip(g, -c, c)) > 1) > 0
    # clipping off by default: plain step
    plain, info0 = decoupled_langevin.step(z, decoupled_langevin.init(x), model, lam, sig)
    np.testing.assert_allclose(plain.x, xn - lam * g, rtol=0, atol=1e-15)
    assert info0.fraction_grad_clipped == 0 and info0.fraction_box_clipped == 0


def test_mala_acceptance_probability_matches_independent_formula():
    """MH ratio of MALA on N(0, s^2) in closed form: log pi(y) - log pi(x) + log N(x; y - eps/2
    grad E(y), eps) - log N(y; x - eps/2 grad E(x), eps), evaluated with scipy.stats."""
    s, eps = 1.7, 0.9
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 1)) * 2
    z = rng.standard_normal((50, 1))
    u = rng.random(50)
    state = mala.init(x, gauss(s))
    new, info = mala.step((z, u), state, gauss(s), eps)
    y = x - 0.5 * eps * x / s ** 2 + math.sqrt(eps) * z
    norm = scipy.stats.norm
    log_a = (norm.logpdf(y, 0, s) - norm.logpdf(x, 0, s)
             + norm.logpdf(x, y - 0.5 * eps * y / s ** 2, math.sqrt(eps))
             - norm.logpdf(y, x - 0.5 * eps * x / s ** 2, math.sqrt(eps)))[:, 0]
    prob = np.exp(np.minimum(log_a, 0))
    np.testing.assert_allclose(info.acceptance_probability, prob, rtol=1e-12, atol=1e-15)
    accept = u < prob
    assert 0 < accept.sum() < 50
    np.testing.assert_allclose(new.x, np.where(accept[:, None], y, x), rtol=0, atol=1e-14)
    assert info.acceptance_rate == accept.mean()


def test_hmc_one_leapfrog_is_mala_with_step_eps_squared():
    """L = 1 HMC with leapfrog step h proposes the MALA point with eps = h^2 and has the same
    acceptance probability (a classical identity)."""
    rng = np.random.default_rng(4)
    model = MLPEnergy.random_init(rng, 2, (16,), "tanh", bias_scale=0.3)
    x = rng.standard_normal((30, 2))
    p = rng.standard_normal((30, 2))
    u = rng.random(30)
    h = 0.7
    nh, ih = hmc.step((p, u), hmc.init(x, model), model, h, 1)
    nm, im = mala.step((p, u), mala.init(x, model), model, h * h)
    np.testing.assert_allclose(ih.acceptance_probability, im.acceptance_probability, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(nh.x, nm.x, rtol=0, atol=1e-13)


def test_hmc_leapfrog_is_reversible_and_conserves_shadow_energy_on_gaussian():
    """Leapfrog on E = x^2/2 is reversible (negating p returns home) and conserves the shadow
    Hamiltonian p^2/2 + (1 - h^2/4) x^2/2 exactly (a closed-form invariant of the linear map)."""
    energy = gauss(1.0)
    x = np.array([[1.0], [-0.5]])
    p = np.array([[0.3], [1.2]])
    x1, p1, _, g1 = hmc.leapfrog(x, p, x.copy(), energy, 0.1, 25)
    x2, p2, _, _ = hmc.leapfrog(x1, -p1, g1, energy, 0.1, 25)
    np.testing.assert_allclose(x2, x, atol=1e-12)
    np.testing.assert_allclose(-p2, p, atol=1e-12)
    c = 1 - 0.1 ** 2 / 4
    np.testing.assert_allclose(0.5 * p1 ** 2 + 0.5 * c * x1 ** 2, 0.5 * p ** 2 + 0.5 * c * x ** 2,
                               rtol=1e-13)


def test_hmc_divergent_trajectories_are_rejected_and_counted():
    energy = quartic()
    x = np.array([[0.5], [3.0]])
    p = np.array([[0.0], [50.0]])
    new, info = hmc.step((p, np.array([0.5, 0.5])), hmc.init(x, energy), energy, 0.5, 20)
    assert info.n_divergent >= 1
    assert new.x[1, 0] == 3.0 and np.all(np.isfinite(new.x))


# --------------------------------------------------------------------------- exact sampling

def test_exact_quadratic_sampler_moments():
    """x = m + L^-T z has covariance P^-1: sample covariance within 5 standard errors."""
    rng = np.random.default_rng(5)
    P = np.array([[2.0, 0.6], [0.6, 1.0]])
    m = np.array([1.0, -2.0])
    n = 200_000
    x = exact.sample_quadratic(rng, m, P, n)
    S = np.linalg.inv(P)
    c = x - m
    for i in range(2):
        for j in range(2):
            prod = c[:, i] * c[:, j]
            se = prod.std(ddof=1) / math.sqrt(n)
            assert abs(prod.mean() - S[i, j]) < 5 * se, (i, j, prod.mean(), S[i, j], se)
    y = exact.sample_gaussian(rng, m, S, n)
    assert np.all(np.abs(y.mean(0) - m) < 5 * np.sqrt(np.diag(S) / n))
    q = QuadraticEnergy(m, np.linalg.cholesky(P))
    z = exact.sample(rng, q, 1000)
    assert z.shape == (1000, 2)


def test_exact_sample_rejects_non_gaussian_energy():
    with pytest.raises(TypeError, match="cannot be sampled exactly"):
        exact.sample(np.random.default_rng(0), gauss(), 10)
    with pytest.raises(ValueError, match="positive definite"):
        exact.sample_gaussian(np.random.default_rng(0), [0, 0], [[1, 2], [2, 1]], 5)


# --------------------------------------------------------------------------- diagnostics

def ar1(rng, phi, n, m, burn=1000):
    e = rng.standard_normal((n + burn, m)) * math.sqrt(1 - phi ** 2)
    return lfilter([1.0], [1.0, -phi], e, axis=0)[burn:]


@pytest.mark.parametrize("phi", [0.0, 0.8, -0.4])
def test_ess_of_ar1_matches_closed_form(phi):
    """ESS = n m (1-phi)/(1+phi); mean ratio over replicates within 4 SE (+1% truncation bias)."""
    rng = np.random.default_rng(int(100 * (phi + 1)))
    ratios = np.array([D.effective_sample_size(ar1(rng, phi, 10_000, 4)) / (40_000 * (1 - phi) / (1 + phi))
                       for _ in range(12)])
    se = ratios.std(ddof=1) / math.sqrt(ratios.size)
    assert abs(ratios.mean() - 1) <= 4 * se + 0.01, (ratios.mean(), se)


def test_autocorrelation_of_ar1():
    """rho_t = phi^t: the estimate at lags 1..5 within 4/sqrt(n) (Bartlett-scale error)."""
    rng = np.random.default_rng(8)
    x = ar1(rng, 0.6, 200_000, 1)
    rho = D.autocorrelation(x)[:6, 0]
    assert np.all(np.abs(rho - 0.6 ** np.arange(6)) < 4 * math.sqrt(4.0 / 200_000))


def test_split_rhat_converged_and_shifted_chains():
    """Stationary i.i.d. chains: R-hat^2 = (n-1)/n + B/(n W) ~ 1 within 1e-3; half the chains
    shifted by delta: R-hat^2 -> 1 + var(chain means) = 1 + (delta^2/4) 2m/(2m-1) (split chains)."""
    rng = np.random.default_rng(9)
    n, m = 20_000, 8
    x = rng.standard_normal((n, m))
    assert abs(D.split_rhat(x) - 1) < 1e-3
    delta = 0.5
    x[:, : m // 2] += delta
    expected = math.sqrt((n / 2 - 1) / (n / 2) + (delta ** 2 / 4) * (2 * m) / (2 * m - 1))
    assert abs(D.split_rhat(x) - expected) < 0.01, (D.split_rhat(x), expected)
    trend = np.linspace(0, 3, n)[:, None] + rng.standard_normal((n, m))
    assert D.split_rhat(trend) > 1.2


def test_thinned_ks_is_calibrated_on_ar1():
    """Thinned AR(1) (phi = 0.95) against its N(0,1) law: over 40 replicates the KS p-values are
    not concentrated near 0 (fewer than 6 below 0.05; Binomial(40, 0.05) gives P(>=6) ~ 0.05...
    we use >= 9: P ~ 1e-3)."""
    rng = np.random.default_rng(10)
    pvals = [D.ks_test_thinned(ar1(rng, 0.95, 4000, 4), scipy.stats.norm.cdf).p_value for _ in range(40)]
    assert sum(p < 0.05 for p in pvals) < 9, sorted(pvals)[:10]


def test_diagnostics_reject_bad_input():
    with pytest.raises(ValueError, match="constant"):
        D.effective_sample_size(np.ones((100, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        D.split_rhat(np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least one"):
        D.acceptance_rate([])


# --------------------------------------------------------------------------- replay buffer

def uniform_reset(rng, n):
    return rng.random((n, 2))


def test_replay_buffer_restart_fraction_and_fifo():
    rng = np.random.default_rng(11)
    buf = ReplayBuffer(100, 2, uniform_reset)
    x, mask = buf.sample_initial(rng, 50)
    assert not mask.any() and np.all((x >= 0) & (x < 1))  # empty buffer: reset only
    buf.add(np.full((80, 2), 5.0))
    buf.add(np.full((40, 2), 7.0))  # overwrites the 20 oldest
    stored = buf.stored()
    assert len(buf) == 100 and np.sum(stored[:, 0] == 7.0) == 40 and np.sum(stored[:, 0] == 5.0) == 60
    n = 40_000
    x, mask = buf.sample_initial(rng, n)
    # fraction from the buffer ~ Binomial(n, 0.95): within 5 SE
    assert abs(mask.mean() - 0.95) < 5 * math.sqrt(0.95 * 0.05 / n)
    assert np.all(np.isin(x[mask, 0], [5.0, 7.0])) and np.all(x[~mask] < 1)
    # uniform choice among stored points: fraction of 7s among buffer draws ~ 0.4
    frac7 = np.mean(x[mask, 0] == 7.0)
    assert abs(frac7 - 0.4) < 5 * math.sqrt(0.24 / mask.sum())


def test_8bit_quantisation_roundtrip_and_uniformity():
    """Restored points lie in the stored bin; a uniform variable is restored uniform (KS)."""
    rng = np.random.default_rng(12)
    u = rng.random(100_000)
    codes = quantize_8bit(u, 0.0, 1.0)
    back = dequantize_8bit(codes, 0.0, 1.0, rng)
    assert codes.dtype == np.uint8 and np.all(np.floor(256 * back) == codes)
    assert np.max(np.abs(back - u)) < 1 / 256
    assert scipy.stats.kstest(back, "uniform").pvalue > 1e-3
    assert quantize_8bit(np.array([-1.0, 1.0, 2.0]), 0, 1).tolist() == [0, 255, 255]
    buf = ReplayBuffer(10, 2, uniform_reset, quantize_8bit=True, box=(-1, 1))
    buf.add(np.array([[0.0, 0.5]]))
    assert np.all(np.abs(buf.stored(rng) - [[0.0, 0.5]]) < 2 / 256)


def test_persistent_chains_keep_state():
    rng = np.random.default_rng(13)
    chains = PersistentChains.from_reset(rng, 5, uniform_reset, reinit_prob=0.0)
    x = chains.starting_points(rng)
    res = ula.run(rng, x, gauss(), 0.1, 3)
    chains.update(res.state.x)
    np.testing.assert_array_equal(chains.starting_points(rng), res.state.x)
    with pytest.raises(ValueError, match="update expects shape"):
        chains.update(np.zeros((4, 2)))


def test_replay_buffer_rejects_bad_configuration():
    with pytest.raises(ValueError, match="restart_prob"):
        ReplayBuffer(10, 2, uniform_reset, restart_prob=1.5)
    with pytest.raises(ValueError, match="needs box"):
        ReplayBuffer(10, 2, uniform_reset, quantize_8bit=True)
    with pytest.raises(TypeError, match="reset"):
        ReplayBuffer(10, 2, None)


# --------------------------------------------------------------------------- validation / NaN

@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_step_size_raises(bad):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="step_size"):
        ula.run(rng, np.zeros((2, 1)), gauss(), bad, 3)
    with pytest.raises(ValueError, match="step_size"):
        mala.run(rng, np.zeros((2, 1)), gauss(), bad, 3)


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="non-finite"):
        ula.run(rng, np.array([[np.nan]]), gauss(), 0.1, 3)
    with pytest.raises(ValueError, match=r"\(n_chains, dim\)"):
        ula.run(rng, np.zeros(3), gauss(), 0.1, 3)
    with pytest.raises(TypeError, match="energy"):
        ula.run(rng, np.zeros((3, 1)), lambda x: x, 0.1, 3)
    with pytest.raises(ValueError, match="must have shape"):
        ula.step(np.zeros((3, 2)), ula.init(np.zeros((3, 1)), gauss()), gauss(), 0.1)
    with pytest.raises(TypeError, match="Generator"):
        ula.run(0, np.zeros((3, 1)), gauss(), 0.1, 3)
    with pytest.raises(ValueError, match="grad_x"):
        ula.init(np.zeros((3, 2)), CallableEnergy(lambda x: np.zeros(3), lambda x: np.zeros((3, 1))))
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc.run(rng, np.zeros((3, 1)), gauss(), 0.1, 0, 3)
    model = MLPEnergy.random_init(rng, 2, (4,), "tanh")
    with pytest.raises(ValueError, match="dimension"):
        mlp_langevin.ula(model, np.zeros((3, 3)), 0.1, rng=rng, n_steps=2)
    with pytest.raises(ValueError, match="noise must have shape"):
        mlp_langevin.ula(model, np.zeros((3, 2)), 0.1, noise=np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="backend"):
        mlp_langevin.ula(model, np.zeros((3, 2)), 0.1, rng=rng, n_steps=2, backend="gpu")
    with pytest.raises(ValueError, match="box"):
        decoupled_langevin.run(rng, np.zeros((3, 1)), gauss(), 0.1, 0.1, 2, box=(1, 0))


def _expected_divergence_step(seed, x0, eps, n_steps):
    """Replicate ULA on E = x^4/4 with the same draws; first step with non-finite x, E or grad."""
    rng = np.random.default_rng(seed)
    x = x0.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, n_steps + 1):
            x = x - 0.5 * eps * x ** 3 + math.sqrt(eps) * rng.standard_normal(x.shape)
            if not (np.all(np.isfinite(x)) and np.all(np.isfinite(x ** 3)) and np.all(np.isfinite(x ** 4))):
                return k
    return None


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_ula_divergence_stops_naming_the_step():
    x0 = np.array([[3.0]])
    k = _expected_divergence_step(21, x0, 1.0, 50)
    assert k is not None and k > 2
    with pytest.raises(NonFiniteChainError, match=rf"step {k} of 50: chain 0 produced a non-finite"):
        ula.run(np.random.default_rng(21), x0, quartic(), 1.0, 50)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_mlp_loop_overflow_stops_naming_step_and_value():
    """softplus MLP with output weights 1e307: E(30, 30) = 1e307 * 60 overflows to inf at the
    first evaluation (chain 1), while chain 0 at (-800, -800) stays finite (softplus underflows to 0)."""
    sizes = np.array([2, 2, 1], dtype=np.int64)
    params = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1e307, 1e307, 0.0])
    x0 = np.array([[-800.0, -800.0], [30.0, 30.0]])
    for backend in mlp_langevin.BACKENDS:
        for use_blas in (True, False):
            with pytest.raises(NonFiniteChainError,
                               match=r"chain 1 produced the non-finite value inf at step 1 of 4"):
                mlp_langevin.ula((params, sizes, 1), x0, 0.1, rng=np.random.default_rng(0),
                                 n_steps=4, backend=backend, use_blas=use_blas)
            with pytest.raises(NonFiniteChainError,
                               match=r"chain 1 produced the non-finite value inf at step 1 of 4"):
                mlp_langevin.decoupled((params, sizes, 1), x0, 0.1, 0.01, rng=np.random.default_rng(0),
                                       n_steps=4, backend=backend, use_blas=use_blas)


# --------------------------------------------------------------------------- MLP loops

@pytest.mark.skipif(numba.config.DISABLE_JIT,
                    reason="pure Python: 300 steps x 70 chains x a 64-wide MLP x 8 runs takes hours; "
                           "test_langevin_kernels_under_numba_disable_jit covers the no-JIT path")
@pytest.mark.parametrize("n_chains, large_block_from", [(70, None), (150, 128)],
                         ids=["3-small-blocks", "3-large-blocks"])
def test_mlp_loops_equal_numpy_twin_and_are_thread_count_invariant(monkeypatch, n_chains,
                                                                   large_block_from):
    """Numba ULA/D16 loops (BLAS and per-point paths, serial and parallel) = NumPy twin to 1e-10
    over 300 steps; the parallel build gives bit-identical numbers with 1 and 2 threads. Both
    block sizes of ``chains_per_block``: 70 chains = 3 blocks of 32, and (with the switch moved
    down to 128 chains) 150 chains = 3 blocks of 64; the last block partial in both."""
    import numba

    from febm_ref._numba import langevin as LK

    if large_block_from is not None:
        monkeypatch.setattr(LK, "LARGE_BLOCK_FROM", large_block_from)
    block = LK.chains_per_block(n_chains)
    assert -(-n_chains // block) == 3 and n_chains % block != 0
    rng = np.random.default_rng(14)
    model = MLPEnergy.random_init(rng, 2, (64, 64), "tanh", bias_scale=0.2)
    x0 = rng.standard_normal((n_chains, 2))
    noise = rng.standard_normal((300, n_chains, 2))
    settings = {"step": 0.02, "noise_scale": 0.1, "grad_clip": 0.3, "box": (-2.5, 2.5)}
    for kind in ("ula", "d16"):
        def go(backend):
            return fused_run(kind, model, x0, noise, backend, **settings)
        ref, deviation = twin_deviation(kind, model, x0, noise, **settings)
        assert np.max(np.abs(ref.x - x0)) > 0.5  # the chains moved
        assert deviation < 1e-10  # x, mean energy, mean gradient norm; both backends, both paths
        previous = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = go("numba-parallel")
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            two = go("numba-parallel")
        finally:
            numba.set_num_threads(previous)
        np.testing.assert_array_equal(one.x, two.x)
        np.testing.assert_array_equal(one.mean_energy, two.mean_energy)
        np.testing.assert_array_equal(one.x, go("numba").x)


def test_mlp_ula_matches_generic_ula_step():
    """The fused loop and the generic ula.step on the MLPEnergy object give the same chain."""
    rng = np.random.default_rng(15)
    model = MLPEnergy.random_init(rng, 2, (16, 16), "silu")
    x0 = rng.standard_normal((6, 2))
    noise = rng.standard_normal((20, 6, 2))
    fused = mlp_langevin.ula(model, x0, 0.05, noise=noise)
    state = ula.init(x0, model)
    energies = []
    for k in range(20):
        energies.append(state.energy.mean())
        state, _ = ula.step(noise[k], state, model, 0.05)
    np.testing.assert_allclose(fused.x, state.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.mean_energy, energies, rtol=0, atol=1e-12)


def test_ula_run_backends_are_one_api():
    """ula.run with backend="numba"/"numba-parallel" (the fused loop) takes the same arguments and
    returns the same RunResult as the generic NumPy step: end state (points, energies, gradients)
    and per-step info agree to 1e-12 (the tolerance of test_mlp_ula_matches_generic_ula_step:
    the two evaluate the MLP in different summation orders, ~1e-15 relative per step, over 20
    steps of size 0.05 of a smooth 16-16 MLP), the noise being drawn from the same generator in
    the same order (one (N, d) block per step)."""
    model = MLPEnergy.random_init(np.random.default_rng(16), 2, (16, 16), "tanh")
    x0 = np.random.default_rng(17).standard_normal((70, 2))  # 70 chains: three blocks in parallel
    ref = ula.run(np.random.default_rng(3), x0, model, 0.05, 20)
    for backend in ("numba", "numba-parallel"):
        for use_blas in (True, False):
            got = ula.run(np.random.default_rng(3), x0, model, 0.05, 20, backend=backend, use_blas=use_blas)
            assert type(got) is type(ref) and type(got.state) is type(ref.state) and got.samples is None
            assert sorted(got.info) == sorted(ref.info)
            for a, b in ((got.state.x, ref.state.x), (got.state.energy, ref.state.energy),
                         (got.state.grad_x, ref.state.grad_x)):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
            for key in ref.info:
                assert got.info[key].shape == ref.info[key].shape == (20,)
                np.testing.assert_allclose(got.info[key], ref.info[key], rtol=0, atol=1e-12, err_msg=key)
    with pytest.raises(ValueError, match="keep_samples"):
        ula.run(np.random.default_rng(3), x0, model, 0.05, 20, keep_samples=True, backend="numba")
    with pytest.raises(ValueError, match="backend"):
        ula.run(np.random.default_rng(3), x0, model, 0.05, 20, backend="gpu")


def test_gaussian_energy_object_works_with_samplers():
    """The samplers accept febm_ref.models.energies objects (duck typing)."""
    rng = np.random.default_rng(16)
    g = GaussianEnergy1D(0.5, 2.0)
    res = mala.run(rng, np.zeros((4, 1)), g, 0.5, 5)
    assert res.info["acceptance_probability"].shape == (5, 4)
    assert np.all((res.info["acceptance_rate"] >= 0) & (res.info["acceptance_rate"] <= 1))


_NO_JIT_SCRIPT = """
import numpy as np, numba
assert numba.config.DISABLE_JIT
from febm_ref._numba import langevin as LK
rng = np.random.default_rng(3)
sizes = np.array([2, 4, 3, 1], dtype=np.int64)
worst = 0.0
for act in (0, 1):
    p = rng.standard_normal(int(np.sum((sizes[:-1] + 1) * sizes[1:])))
    x0 = rng.standard_normal((35, 2)); z = rng.standard_normal((4, 35, 2))
    outs = []
    mlp = LK.MLPParams(p, sizes, act)
    ula = LK.LangevinSettings.ula(0.1)
    for f, blas in ((lambda *a: LK.langevin_loop(*a[:4], use_blas=a[4]), True),
                    (lambda *a: LK.langevin_loop(*a[:4], use_blas=a[4], parallel=True), False),
                    (LK.ula_mlp_loop_numpy, True)):
        x = x0.copy(); stats = LK.StepStats.empty(4, 35)
        f(mlp, LK.ChainArrays(x, z), ula, stats, blas)
        outs.append((x, stats.energy_sum))
    for x, es in outs[:2]:
        worst = max(worst, abs(x - outs[2][0]).max(), abs(es - outs[2][1]).max())
    d16 = LK.LangevinSettings.decoupled(0.1, 0.2, 0.5, -1.0, 1.0, True)
    x = x0.copy()
    LK.langevin_loop(mlp, LK.ChainArrays(x, z), d16, LK.StepStats.empty(4, 35), use_blas=True)
    y = x0.copy()
    LK.decoupled_mlp_loop_numpy(mlp, LK.ChainArrays(y, z), d16, LK.StepStats.empty(4, 35))
    worst = max(worst, abs(x - y).max())
print(repr(float(worst)))
"""


def test_langevin_kernels_under_numba_disable_jit():
    """The pure-Python path of the loops (NUMBA_DISABLE_JIT=1, incl. the bit-cast fallback of
    tanh_vectorizable) matches the NumPy twins to 1e-12."""
    import os
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _NO_JIT_SCRIPT], env=env, cwd=repo,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    worst = float(out.stdout.strip().splitlines()[-1])
    assert worst <= 1e-12, f"max |loop - twin| under NUMBA_DISABLE_JIT = {worst}"
