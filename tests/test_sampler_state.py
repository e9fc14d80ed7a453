"""Checkpoints carry the state of stateful samplers and evaluators (the state protocol of
:mod:`febm_ref.training`): the replay buffer's state round trip, a stateful 1-D sampler resumed bit
for bit, the protocol mismatches as clear errors, 2-D runs (LangevinNegatives + replay buffer)
stopped or interrupted and resumed equal to the uninterrupted run bit for bit, and ``fit2d
--resume``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import febm_ref.experiments.fit2d as X
import febm_ref.training.steps as training_steps
from febm_ref.cli import main
from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy
from febm_ref.samplers import ReplayBuffer
from febm_ref.targets import paper_mixture_1d
from febm_ref.training import TrainingConfig, has_state_protocol, load_checkpoint, train

TARGET_1D = paper_mixture_1d()


def _uniform_reset(rng, n):
    return rng.uniform(-1.0, 1.0, size=(n, 2))


# ------------------------------------------------------------------ replay buffer state

@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("n_added", [7, 23])  # partly filled; wrapped around (capacity 10)
def test_replay_buffer_state_round_trip(quantize, n_added):
    kw = dict(quantize_8bit=True, box=(-1.0, 1.0)) if quantize else {}
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(10, 2, _uniform_reset, restart_prob=0.7, **kw)
    for chunk in np.array_split(rng.uniform(-1, 1, size=(n_added, 2)), 3):
        buf.add(chunk)
    state = {k: np.array(v) for k, v in buf.state_arrays().items()}
    twin = ReplayBuffer(10, 2, _uniform_reset, restart_prob=0.7, **kw)
    twin.load_state_arrays(state)
    assert len(twin) == len(buf) == min(n_added, 10)
    assert twin._next == buf._next and twin._store.dtype == buf._store.dtype
    np.testing.assert_array_equal(twin._store, buf._store)  # unused rows included
    # the same draws and pushes afterwards
    for b in (buf, twin):
        r = np.random.default_rng(5)
        x0, mask = b.sample_initial(r, 12)
        b.add(x0 + 0.01)
        b.draws = (x0, mask, b.stored(np.random.default_rng(6)))
    for a, b in zip(buf.draws, twin.draws):
        np.testing.assert_array_equal(a, b)
    assert has_state_protocol(buf)


def test_replay_buffer_rejects_states_that_do_not_fit():
    buf = ReplayBuffer(10, 2, _uniform_reset)
    buf.add(np.zeros((4, 2)))
    good = {k: np.array(v) for k, v in buf.state_arrays().items()}
    fresh = ReplayBuffer(10, 2, _uniform_reset)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(12, 2, _uniform_reset).load_state_arrays(good)
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(10, 3, _uniform_reset).load_state_arrays(good)
    with pytest.raises(ValueError, match="dtype"):
        ReplayBuffer(10, 2, _uniform_reset, quantize_8bit=True, box=(-1, 1)).load_state_arrays(good)
    with pytest.raises(ValueError, match="write position"):
        fresh.load_state_arrays({**good, "next": np.array(1)})
    with pytest.raises(ValueError, match="has the arrays"):
        fresh.load_state_arrays({"points": good["points"]})
    assert len(fresh) == 0  # nothing was changed by the refused loads


# ------------------------------------------------------------------ the protocol in train()

class ReusingSampler:
    """Exact samples of which the first ``keep`` are replaced by those of the previous call:
    the output depends on state carried between calls."""

    def __init__(self, keep=5):
        self.keep = keep
        self.last = np.zeros((0, 1))
        self.calls = 0

    def __call__(self, rng, energy, n):
        x = energy.sample(rng, n)
        k = min(self.keep, self.last.shape[0])
        x[:k] = self.last[:k]
        self.last = x.copy()
        self.calls += 1
        return x

    def state_arrays(self):
        return {"last": self.last, "calls": np.array(self.calls)}

    def load_state_arrays(self, arrays):
        self.last = np.array(arrays["last"])
        self.calls = int(arrays["calls"])


def _small_1d(**kw):
    base = dict(divergence="jensen_shannon", iterations=30, batch_size=30, n_negatives=25, optimizer="adam",
                lr_energy=1e-2, lr_critic=5e-3, eval_every=0, seed=3)
    base.update(kw)
    return TrainingConfig(**base)


def _critic():
    return MLPEnergy.random_init(np.random.default_rng(0), 1, (6,), "tanh")


def _train_1d(sampler, config=None, **kw):
    return train(config or _small_1d(), TARGET_1D, GaussianEnergy1D(), _critic(), sample_negatives=sampler,
                 sampler_name="reusing", **kw)


def test_stateful_sampler_resumes_bit_for_bit(tmp_path):
    full_sampler = ReusingSampler()
    full = _train_1d(full_sampler)
    ck = tmp_path / "ck.npz"
    part = _train_1d(ReusingSampler(), checkpoint_path=ck, checkpoint_every=4, stop_after=11)
    assert part.iterations_done == 11
    saved = load_checkpoint(ck)
    assert saved["meta"]["state"] == {"sampler": ["calls", "last"], "exact_divergence": None}
    assert int(saved["sampler.calls"]) == 11
    resumed_sampler = ReusingSampler()
    rest = _train_1d(resumed_sampler, checkpoint_path=ck, resume=True)
    np.testing.assert_array_equal(rest.energy.params, full.energy.params)
    np.testing.assert_array_equal(rest.critic.params, full.critic.params)
    np.testing.assert_array_equal(rest.history["loss"], full.history["loss"])
    np.testing.assert_array_equal(rest.history["theta"], full.history["theta"])
    np.testing.assert_array_equal(resumed_sampler.last, full_sampler.last)
    assert resumed_sampler.calls == full_sampler.calls == 30


class PersistentLangevinSampler:
    """PCD-style negatives: persistent chains (some restarted each call) moved by two ULA
    steps (D15) on the energy; all state lives in a PersistentChains."""

    def __init__(self, n=25):
        from febm_ref.samplers import PersistentChains

        self.chains = PersistentChains(np.linspace(-2.0, 2.0, n)[:, None], _normal_reset, reinit_prob=0.2)

    def __call__(self, rng, energy, n):
        x = self.chains.starting_points(rng)
        for _ in range(2):
            x = x - 0.05 * energy.grad_x(x) + np.sqrt(0.1) * rng.standard_normal(x.shape)
        self.chains.update(x)
        return x

    def state_arrays(self):
        return self.chains.state_arrays()

    def load_state_arrays(self, arrays):
        self.chains.load_state_arrays(arrays)


def _normal_reset(rng, n):
    return rng.standard_normal((n, 1))


def test_persistent_chains_resume_bit_for_bit(tmp_path):
    """A sampler built on PersistentChains, stopped at iteration 9 and resumed, equals the
    uninterrupted run (parameters, losses and the chains themselves)."""
    full_sampler = PersistentLangevinSampler()
    full = _train_1d(full_sampler)
    ck = tmp_path / "ck.npz"
    _train_1d(PersistentLangevinSampler(), checkpoint_path=ck, checkpoint_every=4, stop_after=9)
    resumed_sampler = PersistentLangevinSampler()
    rest = _train_1d(resumed_sampler, checkpoint_path=ck, resume=True)
    np.testing.assert_array_equal(rest.energy.params, full.energy.params)
    np.testing.assert_array_equal(rest.history["loss"], full.history["loss"])
    np.testing.assert_array_equal(resumed_sampler.chains.x, full_sampler.chains.x)
    assert not np.array_equal(full_sampler.chains.x, PersistentLangevinSampler().chains.x)


def test_persistent_chains_state_round_trip_and_errors():
    from febm_ref.samplers import PersistentChains

    a = PersistentChains(np.arange(6.0).reshape(3, 2))
    b = PersistentChains(np.zeros((3, 2)))
    b.load_state_arrays(a.state_arrays())
    np.testing.assert_array_equal(b.x, a.x)
    with pytest.raises(ValueError, match="shape"):
        PersistentChains(np.zeros((4, 2))).load_state_arrays(a.state_arrays())
    with pytest.raises(ValueError, match="single array"):
        b.load_state_arrays({"x": a.x, "extra": a.x})
    with pytest.raises(ValueError, match="finite"):
        b.load_state_arrays({"x": np.full((3, 2), np.nan)})
    np.testing.assert_array_equal(b.x, a.x)  # the refused loads changed nothing


_INTERRUPTED_ITERATION = 16


class InterruptedAfterDrawing(ReusingSampler):
    """Raises KeyboardInterrupt in the sampler of iteration 16, after its state has advanced."""

    def __call__(self, rng, energy, n):
        x = super().__call__(rng, energy, n)
        if self.calls == _INTERRUPTED_ITERATION + 1:
            raise KeyboardInterrupt
        return x


def _interrupt_gradient(monkeypatch, kind, call):
    """Make ``febm_terms_checked`` (as called by ``train``) raise KeyboardInterrupt on its ``call``-th
    (1-based) call of ``kind``: "critic" (a critic gradient, ``want_theta=False``) or "energy"
    (the energy gradient of the alternating update, after the critic's optimiser steps)."""
    real = training_steps.febm_terms_checked
    calls = {"critic": 0, "energy": 0}

    def wrapped(*args, want_omega=True, want_theta=True, **kw):
        this = "critic" if not want_theta else "energy"
        calls[this] += 1
        if this == kind and calls[this] == call:
            raise KeyboardInterrupt
        return real(*args, want_omega=want_omega, want_theta=want_theta, **kw)

    monkeypatch.setattr(training_steps, "febm_terms_checked", wrapped)


@pytest.mark.parametrize("where, critic_steps", [("sampler", 1), ("sampler", 2), ("energy_step", 1),
                                                 ("energy_step", 2), ("critic_step_2", 2)])
def test_keyboard_interrupt_rewinds_to_the_start_of_the_step(tmp_path, monkeypatch, where, critic_steps):
    """An interrupt anywhere in a step (in the sampler, or after Adam steps of the critic) writes the
    checkpoint of the step's start, equal to that of a run stopped there (alternating updates,
    Polyak averaging on); the resumed run equals the uninterrupted one bit for bit."""
    config = _small_1d(critic_steps=critic_steps, average_from=5)
    assert config.optimizer == "adam" and config.update == "alternating"
    full = _train_1d(ReusingSampler(), config)
    stopped = tmp_path / "stopped.npz"
    _train_1d(ReusingSampler(), config, checkpoint_path=stopped, stop_after=_INTERRUPTED_ITERATION)

    ck = tmp_path / "ck.npz"
    sampler = ReusingSampler()
    if where == "sampler":
        sampler = InterruptedAfterDrawing()
    elif where == "energy_step":
        _interrupt_gradient(monkeypatch, "energy", _INTERRUPTED_ITERATION + 1)
    else:  # in the gradient of the second critic step of iteration 16, after the first one's Adam step
        _interrupt_gradient(monkeypatch, "critic", _INTERRUPTED_ITERATION * critic_steps + 2)
    with pytest.raises(KeyboardInterrupt):
        _train_1d(sampler, config, checkpoint_path=ck, checkpoint_every=1000)
    monkeypatch.undo()

    saved, expected = load_checkpoint(ck), load_checkpoint(stopped)
    assert saved["meta"]["iteration"] == _INTERRUPTED_ITERATION and int(saved["sampler.calls"]) == 16
    # the checkpoint is the state at the start of iteration 16, whatever the step had changed
    assert saved["meta"] == expected["meta"]
    assert sorted(saved) == sorted(expected)
    for key in saved:
        if key != "meta":
            np.testing.assert_array_equal(saved[key], expected[key], err_msg=key)

    rest = _train_1d(ReusingSampler(), config, checkpoint_path=ck, resume=True)
    assert rest.completed and rest.iterations_done == full.iterations_done
    np.testing.assert_array_equal(rest.energy.params, full.energy.params)
    np.testing.assert_array_equal(rest.critic.params, full.critic.params)
    assert full.averaged_theta is not None
    np.testing.assert_array_equal(rest.averaged_theta, full.averaged_theta)
    for key in full.history:
        np.testing.assert_array_equal(rest.history[key], full.history[key], err_msg=key)


def test_state_protocol_mismatch_is_a_clear_error(tmp_path):
    with_state, without_state = tmp_path / "with.npz", tmp_path / "without.npz"
    _train_1d(ReusingSampler(), checkpoint_path=with_state, stop_after=5)
    plain = ReusingSampler().__call__  # the same sampling, without the protocol
    _train_1d(plain, checkpoint_path=without_state, stop_after=5)
    assert "state" not in load_checkpoint(without_state)["meta"]  # stateless checkpoints as before
    with pytest.raises(ValueError, match="holds the state of a stateful sample.*calls, last"):
        _train_1d(ReusingSampler().__call__, checkpoint_path=with_state, resume=True)
    with pytest.raises(ValueError, match="holds no sampler state.*ReusingSampler carries state"):
        _train_1d(ReusingSampler(), checkpoint_path=without_state, resume=True)

    class Renamed(ReusingSampler):
        def state_arrays(self):
            return {"previous": self.last, "calls": np.array(self.calls)}

    with pytest.raises(ValueError, match=r"has arrays \['calls', 'last'\].*\['calls', 'previous'\]"):
        _train_1d(Renamed(), checkpoint_path=with_state, resume=True)

    class HalfProtocol:
        def __call__(self, rng, energy, n):
            return energy.sample(rng, n)

        def state_arrays(self):
            return {}

    with pytest.raises(TypeError, match="defines state_arrays but not load_state_arrays"):
        _train_1d(HalfProtocol())


# ------------------------------------------------------------------ 2-D runs

def _tiny_2d(**kw):
    base = dict(target="eight_gaussians", iterations=30, batch_size=32, hidden=(8, 8), critic_hidden=(8, 8),
                langevin_steps=5, buffer_capacity=100, eval_every=10, grid_size=24, n_eval_samples=100,
                schedule="cosine")
    base.update(kw)
    return X.Experiment2DConfig(**base)


def _assert_same_result(a: dict, b: dict, path=""):
    """Equal bit for bit (floats by their bytes), except the wall times."""
    if isinstance(a, dict):
        keys = set(a) - {"seconds", "resumed_from"}
        assert keys == set(b) - {"seconds", "resumed_from"}, path
        for k in keys:
            _assert_same_result(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same_result(u, v, f"{path}[{i}]")
    elif isinstance(a, (np.ndarray, float)):
        u, v = np.asarray(a), np.asarray(b)
        assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes(), path
    else:
        assert a == b, path


def _assert_same_checkpoint(path_a, path_b):
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    assert set(a) == set(b)
    assert json.dumps(a.pop("meta"), sort_keys=True) == json.dumps(b.pop("meta"), sort_keys=True)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.parametrize("kw", [dict(method="febm", divergence="kl", sampler="d16"),
                                dict(method="cd", sampler="ula")])
def test_2d_run_stopped_and_resumed_equals_the_uninterrupted_run(tmp_path, kw):
    cfg = _tiny_2d(**kw)
    full = X.run_experiment(cfg, out_dir=tmp_path / "full", show_progress=False, checkpoint_every=7)
    part = X.run_experiment(cfg, out_dir=tmp_path / "split", show_progress=False, checkpoint_every=7,
                            stop_after=13)
    assert part["status"] == "stopped" and part["iterations"] == 13
    ck = tmp_path / "split" / f"{cfg.run_name()}.ckpt.npz"
    saved = load_checkpoint(ck)
    assert saved["meta"]["iteration"] == 13 and int(saved["sampler.iteration"]) == 13
    assert saved["sampler.buffer.points"].shape == (100, 2)  # 13 x 32 pushes wrapped the buffer
    assert saved["exact_divergence.curve"].shape == (2, len(X.CURVE_METRICS))  # iterations 0 and 10
    rest = X.run_experiment(cfg, out_dir=tmp_path / "split", show_progress=False, checkpoint_every=7,
                            resume=True)
    assert full["status"] == rest["status"] == "ok" and rest["resumed_from"] == 13
    _assert_same_result(full, rest)  # parameters, curves, final metrics, Langevin samples, KDEs
    # the final checkpoints: parameters, optimiser, generator, histories, buffer, counter, curve
    _assert_same_checkpoint(tmp_path / "full" / f"{cfg.run_name()}.ckpt.npz", ck)


@pytest.mark.parametrize("where", ["sampler", "evaluator"])
def test_2d_run_interrupted_mid_step_resumes_bit_for_bit(tmp_path, monkeypatch, where):
    """Ctrl-C after the sampler pushed its chains (iteration 17) or after the evaluator appended
    its metrics (iteration 20): the checkpoint holds the states before, and the resumed run
    equals the uninterrupted one."""
    cfg = _tiny_2d()
    full = X.run_experiment(cfg, out_dir=tmp_path / "full", show_progress=False)

    class InterruptedNegatives(X.LangevinNegatives):
        def __call__(self, rng, energy, n):
            x = super().__call__(rng, energy, n)
            if self.iteration == 18:
                raise KeyboardInterrupt
            return x

    class InterruptedEvaluator(X.Evaluator):
        def __call__(self, energy):
            value = super().__call__(energy)
            if len(self.curve) == 3:
                raise KeyboardInterrupt
            return value

    if where == "sampler":
        monkeypatch.setattr(X, "LangevinNegatives", InterruptedNegatives)
    else:
        monkeypatch.setattr(X, "Evaluator", InterruptedEvaluator)
    with pytest.raises(KeyboardInterrupt):
        X.run_experiment(cfg, out_dir=tmp_path / "split", show_progress=False)
    monkeypatch.undo()
    saved = load_checkpoint(tmp_path / "split" / f"{cfg.run_name()}.ckpt.npz")
    if where == "sampler":
        assert saved["meta"]["iteration"] == 17 and int(saved["sampler.iteration"]) == 17
    else:
        assert saved["meta"]["iteration"] == 20 and saved["exact_divergence.curve"].shape[0] == 2
        assert list(saved["hist_exact_iteration"]) == [0, 10]
    rest = X.run_experiment(cfg, out_dir=tmp_path / "split", show_progress=False, resume=True)
    _assert_same_result(full, rest)


def test_2d_resume_with_other_settings_or_without_checkpoint_is_refused(tmp_path):
    cfg = _tiny_2d(iterations=12)
    X.run_experiment(cfg, out_dir=tmp_path, show_progress=False, stop_after=4)
    with pytest.raises(ValueError, match=r"different configuration.*langevin_steps: checkpoint 5 vs requested 6"):
        X.run_experiment(_tiny_2d(iterations=12, langevin_steps=6), out_dir=tmp_path, show_progress=False,
                         resume=True)
    with pytest.raises(ValueError, match="no checkpoint"):
        X.run_experiment(_tiny_2d(iterations=12, seed=1), out_dir=tmp_path, show_progress=False, resume=True)
    with pytest.raises(ValueError, match="needs out_dir"):
        X.run_experiment(cfg, show_progress=False, resume=True)


def test_langevin_negatives_state_round_trip():
    cfg = _tiny_2d()
    energy = MLPEnergy.random_init(np.random.default_rng(1), 2, (8,), "tanh", output_bias=False)
    a = X.LangevinNegatives(cfg, (-4.0, 4.0))
    rng = np.random.default_rng(2)
    for _ in range(5):
        a(rng, energy, 32)
    b = X.LangevinNegatives(cfg, (-4.0, 4.0))
    b.load_state_arrays({k: np.array(v) for k, v in a.state_arrays().items()})
    assert b.iteration == a.iteration == 5 and b.last_mean_energy == a.last_mean_energy
    np.testing.assert_array_equal(b(np.random.default_rng(3), energy, 32), a(np.random.default_rng(3), energy, 32))
    with pytest.raises(ValueError, match="unknown LangevinNegatives state"):
        b.load_state_arrays({**a.state_arrays(), "extra": np.zeros(1)})


# ------------------------------------------------------------------ fit2d --resume

def test_fit2d_resume_needs_out_and_a_checkpoint(tmp_path, capsys):
    assert main(["fit2d", "--resume", "--iters", "5"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["fit2d", "--resume", "--iters", "5", "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_fit2d_all_resume_continues_runs_with_a_checkpoint_and_skips_finished_ones(tmp_path, monkeypatch,
                                                                                  capsys):
    calls = []

    def fake_run_experiment(cfg, *, out_dir=None, resume=False, **kw):
        calls.append((cfg.run_name(), resume))
        return {"config": cfg.as_dict(), "status": "diverged", "iteration": 0, "quantity": "none",
                "message": "fake run", "seconds": 0.0}

    monkeypatch.setattr(X, "run_experiment", fake_run_experiment)
    (tmp_path / "runs").mkdir()
    (tmp_path / "two_moons__reverse_kl__s0.ckpt.npz").write_bytes(b"")  # unfinished: resumed
    argv = ["fit2d", "--all", "--targets", "two_moons", "--seeds", "1", "--out", str(tmp_path)]
    (tmp_path / "runs" / "two_moons__kl__s0.json").write_text(json.dumps(  # finished: skipped
        {"config": {"target": "two_moons", "method": "febm", "divergence": "kl", "seed": 0}, "status": "diverged",
         "iteration": 0, "quantity": "none", "message": "fake", "seconds": 0.0}))
    assert main([*argv, "--resume"]) == 0
    assert calls == [("two_moons__reverse_kl__s0", True), ("two_moons__jensen_shannon__s0", False),
                     ("two_moons__squared_hellinger__s0", False), ("two_moons__cd__s0", False)]
    capsys.readouterr()
