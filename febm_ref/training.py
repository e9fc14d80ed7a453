"""The f-EBM training loop (Algorithm 1, "single-step f-EBM"; docs/theory.md sections 2 and 6),
the contrastive-divergence baseline, histories and checkpoints.

One iteration ``t`` (0-based):

1. draw ``x+ ~ p`` (``target.sample(rng, batch_size)``) and ``x- ~ q_theta``
   (``sample_negatives(rng, energy, n_negatives)``; by default exact sampling,
   :func:`febm_ref.samplers.exact.sample`), in this order, from one
   ``np.random.Generator`` seeded by ``config.seed``;
2. f-EBM, ``update="alternating"`` (the published order): ``critic_steps`` ascent steps
   of the critic on ``grad_omega`` (D13, D14), then one descent step of the energy on
   ``grad_theta`` evaluated with the *updated* critic, on the same batch;
   ``update="simultaneous"``: both gradients at the current ``(theta, omega)``, one step each;
   ``method="cd"``: a descent step on the maximum-likelihood gradient ``<dE+> - <dE->``;
3. optional Polyak averaging of ``theta`` from iteration ``average_from`` on;
4. during the first ``critic_warmup`` iterations only the critic is updated (``theta`` and
   the energy's optimiser state stay fixed), so that the first energy steps see a trained
   critic instead of a random one.

Checkpoints (``checkpoint_path``) are ``.npz`` archives written atomically with
:mod:`febm_ref._io` every ``checkpoint_every`` iterations, when ``stop_after`` is reached
and on ``KeyboardInterrupt`` (so an interrupted run loses only the current step). They hold
the parameters, the optimiser states, the generator state, the averages and the
history, plus a *fingerprint* of the configuration, target and models; resuming from a
checkpoint with a different fingerprint is a ``ValueError`` naming the differences. A
resumed run reproduces the uninterrupted run bit for bit. Each checkpoint carries a sha256
digest of its contents: a truncated, corrupted or edited checkpoint is refused with
:class:`CheckpointError` (a ``ValueError``) instead of being resumed from. A checkpoint that cannot
be written (a full disk) raises :class:`CheckpointWriteError` (an ``OSError``) naming the
iteration; the previous checkpoint on disk is left intact (atomic writes, :mod:`febm_ref._io`).

Stateful samplers and evaluators (the state protocol)
-----------------------------------------------------
``sample_negatives`` and ``exact_divergence`` are plain callables. When one of them also carries
state that the next calls depend on (a replay buffer, persistent chains, an evaluator's curve),
it makes that state part of the checkpoint by defining both methods

``state_arrays() -> dict[str, numpy.ndarray]``
    Its complete state as named arrays (names of letters, digits, ``_`` and ``.``; numeric or
    boolean dtypes, no objects). The trainer copies them, so views of live buffers are fine.
``load_state_arrays(arrays: dict[str, numpy.ndarray]) -> None``
    Restore exactly that state (raising ``ValueError`` on arrays that do not fit the object).

The checkpoint stores them as ``sampler.<name>`` and ``exact_divergence.<name>`` and lists the
names in its metadata; on resume they are loaded back after the fingerprint check, so a
stateful sampler resumes bit for bit. The rule is strict both ways: a checkpoint written with
a role's state cannot be resumed with an object lacking the protocol, a checkpoint written
without it cannot be resumed with an object that has it, and the names must agree; each case is
a ``ValueError``. An object defining only one of the two methods is a ``TypeError``. Callables
without the protocol (the default exact sampler, plain functions) are handled as before and
their checkpoints are unchanged. On ``KeyboardInterrupt`` the sampler's state is saved as it was
at the start of the interrupted step, and so are the generator, the parameters, both optimiser
states, the averages and the history (copies taken each iteration while checkpointing: an
interrupt may come after an optimiser step of the critic or the energy), so the interrupted
step is redone exactly.

NaN/inf guard: a non-finite loss, gradient or parameter, or an invalid energy parameter
(``sigma <= 0``), stops training with :class:`TrainingDivergedError` naming the iteration
and the quantity; the last checkpoint on disk is the last good one (nothing is written
after a bad step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from febm_ref._io import atomic_save_npz
from febm_ref._progress import progress
from febm_ref._validation import check_positive_int, check_real_scalar
from febm_ref.divergences import resolve_divergence
from febm_ref.objective import (COVARIANCE_ESTIMATORS, _stack_batches, contrastive_divergence_gradient,
                                febm_terms_checked)
from febm_ref.optimizers import OPTIMIZERS, SCHEDULES, learning_rate, make_optimizer

__all__ = ["TrainingConfig", "TrainingResult", "TrainingDivergedError", "CheckpointError", "CheckpointWriteError",
           "train", "load_checkpoint",
           "has_state_protocol", "METHODS", "UPDATES", "STATE_ROLES", "WORK_COUNTERS"]

METHODS = ("febm", "cd")
UPDATES = ("alternating", "simultaneous")
_MAX_RECORDED_PARAMS = 64


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is left intact."""


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite or invalid value; ``iteration`` and ``quantity`` say where."""

    def __init__(self, iteration: int, quantity: str, detail: str = "", checkpoint: Optional[int] = None):
        self.iteration = iteration
        self.quantity = quantity
        where = (f"; the last good checkpoint (iteration {checkpoint}) is kept" if checkpoint is not None
                 else "")
        super().__init__(f"training diverged at iteration {iteration}: {quantity} is not finite or invalid"
                         f"{' (' + detail + ')' if detail else ''}{where}. Lower the learning rate, "
                         "use Adam, or add the l2 terms (l2_weight)")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a run (besides the target, the models and the sampler).

    The defaults are the paper's 1-D protocol (docs/theory.md section 6): SGD with lr 1e-3 on
    both players, alternating, 30,000 iterations, batches of 1000 + 1000.
    """

    divergence: str = "kl"
    alpha: Optional[float] = None
    method: str = "febm"
    iterations: int = 30000
    batch_size: int = 1000
    n_negatives: int = 1000
    optimizer: str = "sgd"
    lr_energy: float = 1e-3
    lr_critic: float = 1e-3
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    schedule: str = "constant"
    final_lr_fraction: float = 0.0
    update: str = "alternating"
    critic_steps: int = 1
    l2_weight: float = 0.0
    covariance: str = "batch"
    average_from: Optional[int] = None
    critic_warmup: int = 0
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.method == "febm":
            resolve_divergence(self.divergence, alpha=self.alpha)  # raises for unknown / bad alpha
        check_positive_int(self.iterations, "iterations")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.n_negatives, "n_negatives")
        check_positive_int(self.critic_steps, "critic_steps")
        check_positive_int(self.eval_every, "eval_every", minimum=0)
        check_positive_int(self.critic_warmup, "critic_warmup", minimum=0)
        if self.critic_warmup >= self.iterations:
            raise ValueError(f"critic_warmup ({self.critic_warmup}) must be < iterations ({self.iterations})")
        check_positive_int(self.seed, "seed", minimum=0)
        for name in ("lr_energy", "lr_critic"):
            check_real_scalar(getattr(self, name), name, positive=True)
        check_real_scalar(self.l2_weight, "l2_weight", nonnegative=True)
        check_real_scalar(self.final_lr_fraction, "final_lr_fraction", nonnegative=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}; choose one of {UPDATES}")
        if self.covariance not in COVARIANCE_ESTIMATORS:
            raise ValueError(f"unknown covariance estimator {self.covariance!r}; choose one of "
                             f"{COVARIANCE_ESTIMATORS}")
        if self.average_from is not None:
            check_positive_int(self.average_from, "average_from", minimum=0)
            if self.average_from >= self.iterations:
                raise ValueError(f"average_from ({self.average_from}) must be < iterations ({self.iterations})")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not isinstance(self.divergence, str):  # a Divergence object (e.g. a clipped variant): its label
            d["divergence"] = resolve_divergence(self.divergence).label
        return d

    def optimizer_options(self) -> dict:
        if self.optimizer == "adam":
            return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.adam_eps}
        return {"momentum": self.momentum}


@dataclass
class TrainingResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    energy, critic : EnergyModel
        Final models (``critic`` is None for CD).
    averaged_theta : ndarray or None
        Polyak average of ``theta`` over iterations ``>= average_from``.
    history : dict of ndarray
        ``loss (T,)``, ``mean_exp_r_neg (T,)``, ``theta (T, P)`` (when ``P <= 64``),
        ``exact_iteration``, ``exact_divergence`` (every ``eval_every`` iterations and at
        the end, when an exact divergence is available), for the iterations done.
    iterations_done : int
    completed : bool
        False when stopped early by ``stop_after``.
    seconds : float
        Wall time of this call.
    work : dict or None
        Per-point network passes of the trainer over all iterations done (:data:`WORK_COUNTERS`),
        counted where they are made; None when resumed from a checkpoint written without them.
        The negatives' sampler counts its own work.
    """

    energy: object
    critic: object
    averaged_theta: Optional[np.ndarray]
    history: dict
    iterations_done: int
    completed: bool
    seconds: float
    config: TrainingConfig
    work: Optional[dict] = None

    @property
    def theta(self) -> np.ndarray:
        """The final (or averaged, when averaging was requested) energy parameters."""
        return self.averaged_theta if self.averaged_theta is not None else self.energy.get_params()


def _hash_params(params: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(params, dtype=np.float64).tobytes()).hexdigest()[:16]


def _model_description(model) -> dict:
    if model is None:
        return {"type": None}
    desc = {"type": type(model).__name__, "n_params": int(model.n_params), "dim": int(model.dim)}
    for attr in ("hidden", "activation", "output_bias", "log_sigma"):
        if hasattr(model, attr):
            value = getattr(model, attr)
            desc[attr] = list(value) if isinstance(value, tuple) else value
    return desc


def _fingerprint(config, target, energy, critic, sampler_name) -> dict:
    return {
        "config": config.as_dict(),
        "target": target.describe() if hasattr(target, "describe") else type(target).__name__,
        "energy": {**_model_description(energy), "initial_params": _hash_params(energy.params)},
        "critic": ({**_model_description(critic), "initial_params": _hash_params(critic.params)}
                   if critic is not None else None),
        "sampler": sampler_name,
    }


def _diff(a, b, prefix=""):
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{prefix}{key}.")
        return out
    if a != b:
        out.append(f"{prefix.rstrip('.')}: checkpoint {a!r} vs requested {b!r}")
    return out


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted: unreadable (truncated, not an ``.npz``), or whose
    contents do not match the sha256 digest written with them (edited or corrupted)."""


def _checkpoint_digest(meta: dict, arrays: dict) -> str:
    """sha256 over the metadata (canonical JSON, without ``integrity``) and every array's name,
    dtype, shape and bytes, in name order: any change to a saved value changes it."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "integrity"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _unreadable(path, why: str) -> CheckpointError:
    return CheckpointError(f"the checkpoint at {path} {why}; it was not used. Delete it to restart the run "
                           "from iteration 0 (without --resume), or restore a good copy")


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`train`: ``{"meta": dict, arrays...}``.

    The contents are checked against the sha256 digest stored with them (``meta["integrity"]``,
    removed from the returned ``meta``).

    Raises
    ------
    ValueError
        No file at ``path``.
    CheckpointError
        A truncated or corrupted file, one that is not a checkpoint, or contents that do not match
        their digest (never a silent resume from altered state).
    """
    import zipfile

    path = Path(path)
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise _unreadable(path, "is a single .npy array, not a checkpoint archive")
            out = {key: data[key] for key in data.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, f"is unreadable, truncated or corrupted ({type(exc).__name__}: {exc})") from exc
    if "meta_json" not in out:
        raise _unreadable(path, "has no metadata (meta_json): it is not a febm-ref checkpoint")
    try:
        meta = json.loads(str(out.pop("meta_json")))
    except ValueError as exc:
        raise _unreadable(path, f"has corrupted metadata ({exc})") from exc
    stored = meta.get("integrity", {}).get("sha256") if isinstance(meta, dict) else None
    if stored is None:
        raise _unreadable(path, "has no integrity digest (written by an older febm-ref, or edited)")
    if _checkpoint_digest(meta, out) != stored:
        raise _unreadable(path, "does not match its sha256 digest (edited or corrupted)")
    meta.pop("integrity")
    out["meta"] = meta
    return out


WORK_COUNTERS = ("energy_forward", "energy_grad_theta", "critic_forward", "critic_grad_omega")
"""What :attr:`TrainingResult.work` counts, in points (one point through one network): ``*_forward``
values only, ``energy_grad_theta`` / ``critic_grad_omega`` a forward and a backward pass (the gradient
with respect to the parameters). Exact evaluations (``exact_divergence``) are not training work."""

STATE_ROLES = ("sampler", "exact_divergence")
"""The arguments of :func:`train` whose state travels in the checkpoint (module docstring)."""
_STATE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


def has_state_protocol(obj, role: str = "object") -> bool:
    """True when ``obj`` defines both ``state_arrays`` and ``load_state_arrays`` (module docstring).

    Raises
    ------
    TypeError
        When it defines only one of the two.
    """
    has_get = callable(getattr(obj, "state_arrays", None))
    has_load = callable(getattr(obj, "load_state_arrays", None))
    if has_get != has_load:
        present, missing = ("state_arrays", "load_state_arrays") if has_get else ("load_state_arrays",
                                                                                 "state_arrays")
        raise TypeError(f"{role} {type(obj).__name__} defines {present} but not {missing}: a stateful "
                        "callable needs both (see the module docstring of febm_ref.training)")
    return has_get


def _state_copy(obj, role: str) -> dict:
    """Copies of ``obj.state_arrays()``, checked against the protocol."""
    arrays = obj.state_arrays()
    if not isinstance(arrays, dict):
        raise TypeError(f"{role} {type(obj).__name__}.state_arrays() must return a dict of arrays, "
                        f"got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not _STATE_NAME.match(name):
            raise TypeError(f"{role} state name {name!r} must be a non-empty string of letters, digits, "
                            "'_' and '.'")
        a = np.array(value, copy=True)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{role} state array {name!r} has dtype {a.dtype}; only boolean, integer and "
                            "float arrays can be checkpointed")
        out[name] = a
    return out


def _check_checkpoint_state(ck: dict, role: str, obj, stateful: bool, path) -> Optional[dict]:
    """The arrays of ``role`` in checkpoint ``ck`` (None for a stateless role), after checking that
    the checkpoint and the object agree on having state and on its names."""
    names = ck["meta"].get("state", {}).get(role)
    kind = type(obj).__name__
    if names is None and stateful:
        raise ValueError(f"cannot resume: the checkpoint at {path} holds no {role} state, but the {role} "
                         f"{kind} carries state (state_arrays/load_state_arrays); resuming would restart "
                         "that state and break the continuation. Start a fresh run")
    if names is not None and not stateful:
        raise ValueError(f"cannot resume: the checkpoint at {path} holds the state of a stateful {role} "
                         f"({', '.join(names) or 'no arrays'}), but the {role} {kind} has no "
                         f"load_state_arrays to take it. Resume with the {role} of the original run")
    if names is None:
        return None
    current = sorted(obj.state_arrays())
    if sorted(names) != current:
        raise ValueError(f"cannot resume: the {role} state in the checkpoint at {path} has arrays "
                         f"{sorted(names)}, the {role} {kind} has {current}")
    return {name: ck[f"{role}.{name}"] for name in names}


@dataclass(frozen=True)
class _StepStart:
    """The state at the start of a training step, written instead of the live state when the step is
    interrupted: the generator state, the sampler's state arrays (None when not checkpointed) and
    the training state of ``train``'s ``training_state()`` (None when not checkpointing)."""

    rng_state: dict
    sampler_state: Optional[dict]
    training_state: Optional[dict]


def _default_sampler(rng, energy, n):
    from febm_ref.samplers.exact import sample

    return sample(rng, energy, n)


def train(config: TrainingConfig, target, energy, critic=None, *,
          sample_negatives: Optional[Callable] = None, sampler_name: str = "exact",
          exact_divergence: Optional[Callable] = None, checkpoint_path=None, checkpoint_every: int = 1000,
          resume: bool = False, stop_after: Optional[int] = None, show_progress: Optional[bool] = None,
          desc: str = "") -> TrainingResult:
    """Run f-EBM (or CD) training; see the module docstring for the algorithm.

    Parameters
    ----------
    config : TrainingConfig
    target : Target
        ``sample(rng, n)`` for the positives (and ``describe()`` for the fingerprint).
    energy : EnergyModel
        Initial ``E_theta``.
    critic : EnergyModel or None
        Initial ``H_omega`` (required for ``method="febm"``).
    sample_negatives : callable ``(rng, energy, n) -> (n, d)``, optional
        Any sampler of ``q_theta``; exact sampling by default (Gaussian energies). A sampler with
        state of its own (a replay buffer, persistent chains) defines ``state_arrays()`` and
        ``load_state_arrays(arrays)`` (the state protocol, module docstring) and its state is
        checkpointed and restored with the rest.
    sampler_name : str or dict
        Recorded in the fingerprint (a dict, e.g. the sampler's settings, must be JSON-able; a
        resume compares it field by field).
    exact_divergence : callable ``energy -> float``, optional
        The exact ``D_f(P||Q_theta)`` (quadrature), recorded every ``eval_every`` iterations.
        It may follow the state protocol too (e.g. an evaluator that keeps a curve of metrics).
    checkpoint_path : path, optional
    checkpoint_every : int
    resume : bool
        Continue from ``checkpoint_path`` (which must exist, match the fingerprint and hold
        state for exactly the stateful ones of ``sample_negatives`` and ``exact_divergence``).
    stop_after : int, optional
        Stop (and checkpoint) once this many iterations are done in total; the run can
        be resumed later.
    show_progress : bool, optional
        Progress bar (default: when stderr is a terminal).

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDivergedError
        On a non-finite loss, gradient or parameter (names the iteration and quantity).
    ValueError
        Bad configuration, a checkpoint of a different configuration, or a checkpoint whose
        sampler (evaluator) state does not match the given sampler (evaluator).
    TypeError
        A sampler or evaluator that defines only one of the two state-protocol methods.
    """
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
    febm = config.method == "febm"
    if febm and critic is None:
        raise ValueError("method='febm' needs a critic H_omega (e.g. MLPEnergy.random_init(rng, 1, (64, 64)))")
    if not febm:
        critic = None
    if febm and critic.dim != energy.dim:
        raise ValueError(f"critic dim {critic.dim} != energy dim {energy.dim}")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    if stop_after is not None:
        stop_after = check_positive_int(stop_after, "stop_after")
    sampler = sample_negatives if sample_negatives is not None else _default_sampler
    stateful = {"sampler": has_state_protocol(sampler, "sample_negatives"),
                "exact_divergence": exact_divergence is not None and has_state_protocol(exact_divergence,
                                                                                        "exact_divergence")}
    state_owner = {"sampler": sampler, "exact_divergence": exact_divergence}
    div = resolve_divergence(config.divergence, alpha=config.alpha) if febm else None
    lam = float(config.l2_weight)  # validated by TrainingConfig
    fingerprint = _fingerprint(config, target, energy, critic, sampler_name)
    T = config.iterations
    P = energy.n_params
    opt_e = make_optimizer(config.optimizer, P, **config.optimizer_options())
    opt_h = make_optimizer(config.optimizer, critic.n_params, **config.optimizer_options()) if febm else None
    rng = np.random.default_rng(config.seed)
    record_theta = P <= _MAX_RECORDED_PARAMS
    hist = {"loss": np.full(T, np.nan), "mean_exp_r_neg": np.full(T, np.nan),
            "theta": np.full((T, P) if record_theta else (0, P), np.nan),
            "exact_iteration": np.zeros(0, dtype=np.int64), "exact_divergence": np.zeros(0)}
    avg = np.zeros(P)
    avg_count = 0
    start = 0
    theta = energy.get_params()
    omega = critic.get_params() if febm else None
    last_checkpoint: Optional[int] = None
    work: Optional[dict] = dict.fromkeys(WORK_COUNTERS, 0)

    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs checkpoint_path")
        ck = load_checkpoint(checkpoint_path)
        differences = _diff(ck["meta"]["fingerprint"], json.loads(json.dumps(fingerprint)))
        if differences:
            raise ValueError("cannot resume: the checkpoint at " f"{checkpoint_path} belongs to a different "
                             "configuration (" + "; ".join(differences) + "). Use a new --out directory "
                             "or the original settings")
        saved_state = {role: _check_checkpoint_state(ck, role, state_owner[role], stateful[role],
                                                     checkpoint_path) for role in STATE_ROLES}
        start = int(ck["meta"]["iteration"])
        theta = ck["theta"].copy()
        energy = energy.with_params(theta)
        if febm:
            omega = ck["omega"].copy()
            critic = critic.with_params(omega)
            opt_h.load_state_dict({k[6:]: v for k, v in ck.items() if k.startswith("opt_h_")})
        opt_e.load_state_dict({k[6:]: v for k, v in ck.items() if k.startswith("opt_e_")})
        rng.bit_generator.state = ck["meta"]["rng_state"]
        for key in hist:
            hist[key] = ck["hist_" + key].copy()
        avg = ck["avg"].copy()
        avg_count = int(ck["meta"]["avg_count"])
        saved_work = ck["meta"].get("work")
        work = {k: int(saved_work[k]) for k in WORK_COUNTERS} if saved_work is not None else None
        for role in STATE_ROLES:
            if saved_state[role] is not None:
                state_owner[role].load_state_arrays(saved_state[role])
        last_checkpoint = start

    def save(iteration: int, rng_state=None, role_state: Optional[dict] = None) -> None:
        """Checkpoint ``iteration``; ``rng_state`` and ``role_state[role]`` replace the current
        generator and sampler/evaluator states (the states at the start of an interrupted step)."""
        nonlocal last_checkpoint
        if checkpoint_path is None:
            return
        role_state = role_state or {}
        states = {role: (role_state[role] if role_state.get(role) is not None
                         else _state_copy(state_owner[role], role))
                  for role in STATE_ROLES if stateful[role]}
        meta = {"fingerprint": fingerprint, "iteration": iteration,
                "rng_state": rng_state if rng_state is not None else rng.bit_generator.state,
                "avg_count": avg_count, "work": work}
        if states:  # absent for stateless runs: their checkpoints are as before
            meta["state"] = {role: (sorted(states[role]) if role in states else None) for role in STATE_ROLES}
        arrays = {"meta_json": np.array(json.dumps(meta)), "theta": theta, "avg": avg}
        for role, named in states.items():
            arrays.update({f"{role}.{name}": value for name, value in named.items()})
        if febm:
            arrays["omega"] = omega
            arrays.update({"opt_h_" + k: v for k, v in opt_h.state_dict().items()})
        arrays.update({"opt_e_" + k: v for k, v in opt_e.state_dict().items()})
        arrays.update({"hist_" + k: v for k, v in hist.items()})
        meta["integrity"] = {"sha256": _checkpoint_digest(meta, {k: v for k, v in arrays.items()
                                                                  if k != "meta_json"})}
        arrays["meta_json"] = np.array(json.dumps(meta))
        try:
            atomic_save_npz(checkpoint_path, **arrays)
        except OSError as exc:
            kept = (f"the previous checkpoint (iteration {last_checkpoint}) is intact" if last_checkpoint is not None
                    else "no earlier checkpoint exists")
            raise CheckpointWriteError(exc.errno, f"cannot write the checkpoint of iteration {iteration}: "
                                       f"{exc.strerror}; {kept}. Free space (or fix the directory) and "
                                       "continue with --resume") from exc
        last_checkpoint = iteration

    def record_exact(iteration: int) -> None:
        if exact_divergence is None:
            return
        value = float(exact_divergence(energy))
        new_iterations = np.append(hist["exact_iteration"], iteration)
        new_values = np.append(hist["exact_divergence"], value)
        hist["exact_iteration"], hist["exact_divergence"] = new_iterations, new_values

    def exact_recorded_at(iteration: int) -> bool:
        return hist["exact_iteration"].size > 0 and int(hist["exact_iteration"][-1]) == iteration

    def fail(t: int, quantity: str, detail: str = ""):
        raise TrainingDivergedError(t, quantity, detail, last_checkpoint)

    t0 = time.perf_counter()
    end = T if stop_after is None else min(T, stop_after)
    # the evaluation due at `start` (at 0, or one that an interrupt cut short before the checkpoint)
    if (exact_divergence is not None and config.eval_every and start % config.eval_every == 0
            and not exact_recorded_at(start)):
        record_exact(start)
    committed = start
    t = start
    # the state at the start of the step being drawn (_StepStart), None between steps: the generator
    # state always; when checkpointing also copies of all else the step changes before it commits
    # (sampler state, optimiser states, parameters, averages, the step's history rows)
    step_start = None
    snapshot_state = checkpoint_path is not None
    snapshot_sampler = stateful["sampler"] and snapshot_state

    def training_state() -> dict:
        """What the step mutates besides the generator and the sampler (copies where mutated in place)."""
        averaging = config.average_from is not None and t >= config.average_from
        hist_rows = {"loss": hist["loss"][t], "mean_exp_r_neg": hist["mean_exp_r_neg"][t]}
        if record_theta:
            hist_rows["theta"] = hist["theta"][t].copy()
        return {"theta": theta, "omega": omega, "opt_e": opt_e.state_dict(),
                "opt_h": opt_h.state_dict() if febm else None,
                "avg": avg.copy() if averaging else avg, "avg_count": avg_count, "hist_rows": hist_rows}

    def rewind_training_state(state: dict) -> None:
        """Put back :func:`training_state` (before writing the checkpoint of an interrupted step)."""
        nonlocal theta, omega, avg, avg_count
        theta, omega, avg, avg_count = state["theta"], state["omega"], state["avg"], state["avg_count"]
        opt_e.load_state_dict(state["opt_e"])
        if febm:
            opt_h.load_state_dict(state["opt_h"])
        for key, row in state["hist_rows"].items():
            hist[key][t] = row

    # the evaluator's state before an evaluation in progress (restored if it is interrupted)
    exact_before = None
    bar = progress(range(start, end), total=T, initial=start, desc=desc or config.divergence,
                   enabled=show_progress)
    try:
        for t in bar:
            step_start = _StepStart(rng.bit_generator.state,
                                    _state_copy(sampler, "sampler") if snapshot_sampler else None,
                                    training_state() if snapshot_state else None)
            lr_e = learning_rate(config.schedule, config.lr_energy, t, T, final_fraction=config.final_lr_fraction)
            lr_h = learning_rate(config.schedule, config.lr_critic, t, T, final_fraction=config.final_lr_fraction)
            x_pos = target.sample(rng, config.batch_size)
            x_neg = sampler(rng, energy, config.n_negatives)
            if not np.all(np.isfinite(x_pos)):
                fail(t, "positive samples x+")
            if not np.all(np.isfinite(x_neg)):
                fail(t, "negative samples x-")
            new_omega = omega
            new_critic = critic
            n_all = config.batch_size + config.n_negatives
            step_work = dict.fromkeys(WORK_COUNTERS, 0)  # added to `work` when the step commits
            try:
                if not febm:
                    step_work["energy_forward"] += n_all  # e_all, then one weighted backward pass
                    step_work["energy_grad_theta"] += n_all
                    g = contrastive_divergence_gradient(energy, x_pos, x_neg, l2_weight=config.l2_weight)
                    grad_theta, loss, exp_r = g.grad_theta, g.loss, math.nan
                else:
                    # shapes checked here, finiteness just above: the estimator trusts both
                    x_pos, _, x_all = _stack_batches(x_pos, x_neg, energy.dim, finite_checked=True)
                    n_pos = x_pos.shape[0]
                    e_all = energy.energy(x_all)  # unchanged by the critic steps: evaluated once
                    step_work["energy_forward"] += n_all
                    if config.update == "simultaneous":
                        g = febm_terms_checked(div, energy, critic, x_all, n_pos, l2_weight=lam,
                                               covariance=config.covariance, energy_values=e_all)
                        if not np.all(np.isfinite(g.grad_omega)):
                            fail(t, "grad_omega")
                        new_omega = opt_h.step(omega, -g.grad_omega, lr_h)
                        step_work["critic_grad_omega"] += n_all
                        step_work["energy_grad_theta"] += n_all
                        grad_theta, loss, exp_r = g.grad_theta, g.loss, g.diagnostics["mean_exp_r_neg"]
                    else:
                        for _ in range(config.critic_steps):
                            gh = febm_terms_checked(div, energy, new_critic, x_all, n_pos, l2_weight=lam,
                                                    covariance="batch", energy_values=e_all, want_theta=False,
                                                    want_diagnostics=False)
                            step_work["critic_grad_omega"] += n_all
                            if not np.all(np.isfinite(gh.grad_omega)):
                                fail(t, "grad_omega")
                            new_omega = opt_h.step(new_omega, -gh.grad_omega, lr_h)
                            if not np.all(np.isfinite(new_omega)):
                                fail(t, "critic parameters omega")
                            new_critic = critic.with_params(new_omega)
                        g = febm_terms_checked(div, energy, new_critic, x_all, n_pos, l2_weight=lam,
                                               covariance=config.covariance, energy_values=e_all,
                                               want_omega=False)
                        step_work["critic_forward"] += n_all
                        step_work["energy_grad_theta"] += n_all
                        grad_theta, loss, exp_r = g.grad_theta, gh.loss, g.diagnostics["mean_exp_r_neg"]
            except FloatingPointError as exc:
                if isinstance(exc, TrainingDivergedError):
                    raise
                fail(t, str(exc).split(" is not finite")[0], str(exc))
            if not math.isfinite(loss):
                fail(t, "loss")
            if not np.all(np.isfinite(grad_theta)):
                fail(t, "grad_theta")
            # critic warm-up: the first critic_warmup iterations update the critic only
            new_theta = opt_e.step(theta, grad_theta, lr_e) if (not febm or t >= config.critic_warmup) else theta
            if not np.all(np.isfinite(new_theta)):
                fail(t, "energy parameters theta")
            try:
                new_energy = energy.with_params(new_theta)
            except ValueError as exc:
                fail(t, "energy parameters theta", str(exc))
            if febm and new_critic is critic:
                if not np.all(np.isfinite(new_omega)):
                    fail(t, "critic parameters omega")
                new_critic = critic.with_params(new_omega)
            # commit the step
            theta, energy = new_theta, new_energy
            if febm:
                omega, critic = new_omega, new_critic
            hist["loss"][t] = loss
            hist["mean_exp_r_neg"][t] = exp_r
            if record_theta:
                hist["theta"][t] = theta
            if config.average_from is not None and t >= config.average_from:
                avg_count += 1
                avg += (theta - avg) / avg_count
            committed = t + 1
            if work is not None:
                for key in WORK_COUNTERS:
                    work[key] += step_work[key]
            step_start = None
            if config.eval_every and committed % config.eval_every == 0:
                if stateful["exact_divergence"] and checkpoint_path is not None:
                    exact_before = _state_copy(exact_divergence, "exact_divergence")
                record_exact(committed)
                exact_before = None
            if checkpoint_path is not None and committed % checkpoint_every == 0:
                save(committed)
    except KeyboardInterrupt:
        # keep everything but the interrupted step: the generator, the sampler's state, the
        # optimiser states, the parameters, the averages and the history are rewound to the start
        # of that step (if it had not committed yet), an evaluation cut short is undone (and redone
        # on resume), so a resumed run equals an uninterrupted one
        rng_state, role_state = None, {}
        if step_start is not None and committed == t:
            rng_state, role_state["sampler"] = step_start.rng_state, step_start.sampler_state
            if step_start.training_state is not None:
                rewind_training_state(step_start.training_state)
        if exact_before is not None and not exact_recorded_at(committed):
            role_state["exact_divergence"] = exact_before
        save(committed, rng_state, role_state)
        raise
    finally:
        bar.close()
    done = committed
    completed = done >= T
    if completed and exact_divergence is not None and (
            hist["exact_iteration"].size == 0 or hist["exact_iteration"][-1] != done):
        record_exact(done)
    if checkpoint_path is not None and last_checkpoint != done:
        save(done)
    n = done
    history = {"loss": hist["loss"][:n], "mean_exp_r_neg": hist["mean_exp_r_neg"][:n],
               "theta": hist["theta"][:n] if record_theta else hist["theta"],
               "exact_iteration": hist["exact_iteration"], "exact_divergence": hist["exact_divergence"]}
    averaged = avg.copy() if (config.average_from is not None and avg_count > 0) else None
    return TrainingResult(energy, critic, averaged, history, done, completed, time.perf_counter() - t0, config,
                          work=dict(work) if work is not None else None)
