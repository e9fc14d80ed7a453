"""Training: f-EBM (Algorithm 1, "single-step f-EBM"; docs/theory.md sections 2 and 6), the
contrastive-divergence baseline, histories and checkpoints.

Layout (the BlackJAX anatomy): :mod:`~febm_ref.training.steps` holds Algorithm 1 as the pure
function ``febm_step(state, x_pos, x_neg, ...) -> (state, info)`` (and ``cd_step``), the one file
to open to read the algorithm; :mod:`~febm_ref.training.state` the immutable ``TrainState``;
:mod:`~febm_ref.training.loop` the loop (evaluation schedule, progress, non-finite guard,
checkpoint schedule); :mod:`~febm_ref.training.checkpoint` the checkpoint files;
:mod:`~febm_ref.training.config` ``TrainingConfig`` and ``TrainingResult``. :func:`train` (below)
is the public entry, a thin wrapper that builds the state and runs the loop.

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
their checkpoints are unchanged. On ``KeyboardInterrupt`` the checkpoint holds the last committed
state (a step changes nothing before it commits; a stateful sampler's state is copied at each
commit while checkpointing), so the interrupted step is redone exactly.

NaN/inf guard: a non-finite loss, gradient or parameter, or an invalid energy parameter
(``sigma <= 0``), stops training with :class:`TrainingDivergedError` naming the iteration
and the quantity; the last checkpoint on disk is the last good one (nothing is written
after a bad step).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from febm_ref._validation import check_positive_int
from febm_ref.divergences import resolve_divergence
from febm_ref.optimizers import make_optimizer
from febm_ref.training.checkpoint import (
    STATE_ROLES,
    Checkpointer,
    CheckpointError,
    CheckpointWriteError,
    _fingerprint,
    _state_copy,
    has_state_protocol,
    load_checkpoint,
    resume_state,
)
from febm_ref.training.config import METHODS, UPDATES, TrainingConfig, TrainingResult
from febm_ref.training.loop import finish, new_history, run_loop
from febm_ref.training.state import WORK_COUNTERS, TrainState, init_state
from febm_ref.training.steps import StepInfo, TrainingDivergedError, cd_step, febm_step

__all__ = ["TrainingConfig", "TrainingResult", "TrainingDivergedError", "CheckpointError", "CheckpointWriteError",
           "train", "load_checkpoint", "TrainState", "StepInfo", "febm_step", "cd_step",
           "has_state_protocol", "METHODS", "UPDATES", "STATE_ROLES", "WORK_COUNTERS"]

_MAX_RECORDED_PARAMS = 64


def _default_sampler(rng, energy, n):
    from febm_ref.samplers.exact import sample

    return sample(rng, energy, n)


def _check_arguments(config, energy, critic, checkpoint_every, stop_after):
    """``(critic, checkpoint_every, stop_after)`` of :func:`train`, validated (critic None for CD)."""
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
    return critic, checkpoint_every, stop_after


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
    critic, checkpoint_every, stop_after = _check_arguments(config, energy, critic, checkpoint_every, stop_after)
    febm = config.method == "febm"
    sampler = sample_negatives if sample_negatives is not None else _default_sampler
    stateful = {"sampler": has_state_protocol(sampler, "sample_negatives"),
                "exact_divergence": exact_divergence is not None and has_state_protocol(exact_divergence,
                                                                                        "exact_divergence")}
    owners = {"sampler": sampler, "exact_divergence": exact_divergence}
    div = resolve_divergence(config.divergence, alpha=config.alpha) if febm else None
    opt_e = make_optimizer(config.optimizer, energy.n_params, **config.optimizer_options())
    opt_h = make_optimizer(config.optimizer, critic.n_params, **config.optimizer_options()) if febm else None
    rng = np.random.default_rng(config.seed)
    hist = new_history(config.iterations, energy.n_params, energy.n_params <= _MAX_RECORDED_PARAMS)
    ckpt = (Checkpointer(checkpoint_path, checkpoint_every, _fingerprint(config, target, energy, critic, sampler_name),
                         opt_e, opt_h, owners, stateful) if checkpoint_path is not None else None)
    state = init_state(energy, critic, opt_e, opt_h, rng.bit_generator.state)
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs checkpoint_path")
        state = resume_state(ckpt, state, hist)
        rng.bit_generator.state = state.rng_state
    snapshot_sampler = stateful["sampler"] and ckpt is not None
    if snapshot_sampler:
        state = state._replace(sampler_state=_state_copy(sampler, "sampler"))

    def step(s, x_pos, x_neg):
        return febm_step(s, x_pos, x_neg, config, div, opt_e, opt_h) if febm else cd_step(s, x_pos, x_neg,
                                                                                       config, opt_e)

    def draw(generator, model):
        return target.sample(generator, config.batch_size), sampler(generator, model, config.n_negatives)

    t0 = time.perf_counter()
    end = config.iterations if stop_after is None else min(config.iterations, stop_after)
    state = run_loop(state, step, rng=rng, draw=draw, sampler=sampler, hist=hist, end=end,
                     eval_every=config.eval_every, evaluate=exact_divergence,
                     snapshot_evaluator=stateful["exact_divergence"] and ckpt is not None,
                     snapshot_sampler=snapshot_sampler, ckpt=ckpt,
                     bar_options={"total": config.iterations, "desc": desc or config.divergence,
                                  "enabled": show_progress})
    history = finish(state, hist, iterations=config.iterations, evaluate=exact_divergence, ckpt=ckpt)
    averaged = state.avg.copy() if (config.average_from is not None and state.avg_count > 0) else None
    return TrainingResult(state.energy, state.critic, averaged, history, state.iteration,
                          state.iteration >= config.iterations, time.perf_counter() - t0, config,
                          work=dict(zip(WORK_COUNTERS, state.work)) if state.work is not None else None)
