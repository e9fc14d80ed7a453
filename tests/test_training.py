"""Training loop: optimisers against hand formulas, checkpoint/resume bit-for-bit (also
after a KeyboardInterrupt), configuration mismatch, the NaN/inf guard, CD on a Gaussian."""

from __future__ import annotations

import math

import numpy as np
import pytest

from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy
from febm_ref.optimizers import SGD, Adam, learning_rate, make_optimizer
from febm_ref.targets import GaussianMixture1D, paper_mixture_1d
from febm_ref.training import TrainingConfig, TrainingDivergedError, load_checkpoint, train

TARGET = paper_mixture_1d()


def _small(**kw):
    base = dict(divergence="jensen_shannon", iterations=40, batch_size=30, n_negatives=25, optimizer="adam",
                lr_energy=1e-2, lr_critic=5e-3, average_from=20, eval_every=0, seed=3)
    base.update(kw)
    return TrainingConfig(**base)


def _critic(seed=0):
    return MLPEnergy.random_init(np.random.default_rng(seed), 1, (6,), "tanh")


# ------------------------------------------------------------------ optimisers

def test_sgd_on_quadratic_matches_closed_form():
    a, lr, x0 = 3.0, 0.1, np.array([2.0, -1.0])
    opt, x = SGD(2), x0.copy()
    for _ in range(25):
        x = opt.step(x, a * x, lr)
    np.testing.assert_allclose(x, (1 - lr * a) ** 25 * x0, rtol=1e-13)


def test_adam_first_steps_match_hand_formula_and_beta1_zero():
    g1, g2 = np.array([0.5, -2.0]), np.array([1.5, 1.0])
    opt = Adam(2, beta1=0.9, beta2=0.999, eps=1e-8)
    x = opt.step(np.zeros(2), g1, 0.1)
    np.testing.assert_allclose(x, -0.1 * g1 / (np.abs(g1) + 1e-8), rtol=1e-14)
    x = opt.step(x, g2, 0.1)
    m = (0.9 * 0.1 * g1 + 0.1 * g2) / (1 - 0.9 ** 2)
    v = (0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2) / (1 - 0.999 ** 2)
    np.testing.assert_allclose(x, -0.1 * g1 / (np.abs(g1) + 1e-8) - 0.1 * m / (np.sqrt(v) + 1e-8), rtol=1e-13)
    opt0 = Adam(2, beta1=0.0)
    y = opt0.step(np.zeros(2), g1, 0.1)
    y = opt0.step(y, g2, 0.1)
    v = (0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2) / (1 - 0.999 ** 2)
    np.testing.assert_allclose(y, -0.1 * g1 / (np.abs(g1) + 1e-8) - 0.1 * g2 / (np.sqrt(v) + 1e-8), rtol=1e-13)
    with pytest.raises(ValueError, match="beta1"):
        Adam(2, beta1=1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", 2)


def test_cosine_schedule_endpoints():
    assert learning_rate("cosine", 0.2, 0, 100) == pytest.approx(0.2, rel=1e-15)
    assert learning_rate("cosine", 0.2, 50, 100, final_fraction=0.1) == pytest.approx(0.2 * (0.1 + 0.9 * 0.5))
    with pytest.raises(ValueError, match="schedule"):
        learning_rate("warm", 0.1, 0, 10)


# ------------------------------------------------------------------ checkpoint / resume

@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
def test_resume_is_bit_for_bit(tmp_path, update):
    cfg = _small(update=update)
    full = train(cfg, TARGET, GaussianEnergy1D(), _critic())
    ck = tmp_path / "run.npz"
    part = train(cfg, TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=ck, checkpoint_every=7, stop_after=17)
    assert not part.completed and part.iterations_done == 17
    assert load_checkpoint(ck)["meta"]["iteration"] == 17
    rest = train(cfg, TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=ck, checkpoint_every=7, resume=True)
    assert rest.completed
    np.testing.assert_array_equal(rest.energy.params, full.energy.params)
    np.testing.assert_array_equal(rest.critic.params, full.critic.params)
    np.testing.assert_array_equal(rest.averaged_theta, full.averaged_theta)
    np.testing.assert_array_equal(rest.history["loss"], full.history["loss"])
    np.testing.assert_array_equal(rest.history["theta"], full.history["theta"])


def test_keyboard_interrupt_loses_only_the_current_step(tmp_path):
    cfg = _small(method="febm", update="alternating")
    full = train(cfg, TARGET, GaussianEnergy1D(), _critic())
    calls = {"n": 0}

    def flaky_sampler(rng, energy, n):
        calls["n"] += 1
        x = energy.sample(rng, n)  # draw first: the generator has advanced when we interrupt
        if calls["n"] == 24:
            raise KeyboardInterrupt
        return x

    ck = tmp_path / "ck.npz"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, TARGET, GaussianEnergy1D(), _critic(), sample_negatives=flaky_sampler, checkpoint_path=ck,
              checkpoint_every=1000)
    assert load_checkpoint(ck)["meta"]["iteration"] == 23
    rest = train(cfg, TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=ck, resume=True)
    np.testing.assert_array_equal(rest.energy.params, full.energy.params)
    np.testing.assert_array_equal(rest.history["loss"], full.history["loss"])


def test_resume_with_a_different_configuration_is_a_clear_error(tmp_path):
    ck = tmp_path / "ck.npz"
    train(_small(), TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=ck, stop_after=5)
    with pytest.raises(ValueError, match=r"different configuration.*lr_energy"):
        train(_small(lr_energy=2e-2), TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=ck, resume=True)
    with pytest.raises(ValueError, match=r"critic.initial_params"):
        train(_small(), TARGET, GaussianEnergy1D(), _critic(seed=1), checkpoint_path=ck, resume=True)
    with pytest.raises(ValueError, match="no checkpoint"):
        train(_small(), TARGET, GaussianEnergy1D(), _critic(), checkpoint_path=tmp_path / "nope.npz", resume=True)


# ------------------------------------------------------------------ NaN guard

def test_nan_guard_names_iteration_and_quantity_and_keeps_last_checkpoint(tmp_path):
    def bad_sampler(rng, energy, n):
        x = energy.sample(rng, n)
        if bad_sampler.calls == 12:
            x[3, 0] = np.nan
        bad_sampler.calls += 1
        return x

    bad_sampler.calls = 0
    ck = tmp_path / "ck.npz"
    with pytest.raises(TrainingDivergedError, match=r"iteration 12: negative samples x-.*checkpoint \(iteration 10\)"):
        train(_small(), TARGET, GaussianEnergy1D(), _critic(), sample_negatives=bad_sampler, checkpoint_path=ck,
              checkpoint_every=5)
    assert load_checkpoint(ck)["meta"]["iteration"] == 10


def test_guard_reports_invalid_sigma_after_a_huge_sgd_step():
    """Narrow target: the CD gradient in sigma is ~ +1, so sigma <- 1 - 50 * 1 < 0."""
    cfg = _small(method="cd", optimizer="sgd", lr_energy=50.0, divergence="kl")
    narrow = GaussianMixture1D([1.0], [0.0], [0.01])
    with pytest.raises(TrainingDivergedError, match=r"iteration 0: energy parameters theta.*sigma must be > 0"):
        train(cfg, narrow, GaussianEnergy1D(), None)


def test_guard_reports_overflowing_g_model():
    cfg = _small(divergence="kl", lr_critic=1e-3)
    crit = MLPEnergy.random_init(np.random.default_rng(0), 1, (4,), "tanh")
    crit = crit.with_params(np.concatenate([crit.params[:-1], [800.0]]))  # output bias 800: e^r overflows
    with pytest.raises(TrainingDivergedError, match=r"iteration 0: g_model"):
        train(cfg, TARGET, GaussianEnergy1D(), crit)


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match="iterations"):
        TrainingConfig(iterations=0)
    with pytest.raises(ValueError, match="lr_energy"):
        TrainingConfig(lr_energy=-1.0)
    with pytest.raises(ValueError, match="unknown method"):
        TrainingConfig(method="gan")
    with pytest.raises(TypeError, match="alpha"):
        TrainingConfig(divergence="alpha")
    with pytest.raises(ValueError, match="average_from"):
        TrainingConfig(iterations=10, average_from=10)
    with pytest.raises(ValueError, match="critic"):
        train(TrainingConfig(iterations=2), TARGET, GaussianEnergy1D(), None)


# ------------------------------------------------------------------ CD reaches moment matching

def test_cd_with_exact_samples_reaches_the_maximum_likelihood_gaussian():
    """CD on N(mu, sigma^2) with exact negatives: stationary point mu = E_p x, sigma^2 = Var_p.
    Averaged SGD iterates; tolerance 5 x the standard error of the averaged estimate, which we
    bound by the per-step gradient noise (sigma_g / sqrt(B)) times lr over the averaging window."""
    target = GaussianMixture1D([0.5, 0.5], [-1.0, 1.0], [0.5, 0.5])
    cfg = TrainingConfig(method="cd", iterations=1500, batch_size=400, n_negatives=400, optimizer="sgd",
                         lr_energy=0.05, average_from=500, seed=1)
    res = train(cfg, target, GaussianEnergy1D(0.0, 1.0), None)
    mu, sigma = res.averaged_theta
    # the averaged iterate's fluctuation: O(sqrt(lr / window)) relative; 0.02 is > 5 of them here
    assert abs(mu - target.mean()) < 0.02, (mu, target.mean())
    assert abs(sigma - math.sqrt(target.variance())) < 0.02, (sigma, math.sqrt(target.variance()))


def test_critic_warmup_freezes_theta_then_trains_it():
    cfg = _small(critic_warmup=10, update="simultaneous")
    res = train(cfg, TARGET, GaussianEnergy1D(0.0, 1.0), _critic())
    th = res.history["theta"]
    np.testing.assert_array_equal(th[:10], np.tile([0.0, 1.0], (10, 1)))
    assert np.all(th[10] != th[9]), "the energy must move once the warm-up is over"
    with pytest.raises(ValueError, match="critic_warmup"):
        TrainingConfig(iterations=10, critic_warmup=10)


def test_nan_guard_covers_positive_samples():
    """A data source that yields NaN stops with the iteration named, not a bare input error."""

    class FlakyTarget:
        dim = 1

        def __init__(self):
            self.calls = 0

        def sample(self, rng, n):
            x = TARGET.sample(rng, n)
            if self.calls == 7:
                x[0] = np.nan
            self.calls += 1
            return x

        def log_density(self, x):
            return TARGET.log_density(x)

    with pytest.raises(TrainingDivergedError, match=r"iteration 7: positive samples x\+"):
        train(_small(), FlakyTarget(), GaussianEnergy1D(), _critic())
