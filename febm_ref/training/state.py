"""The training state: everything one step of :mod:`febm_ref.training.steps` reads and returns.

A :class:`TrainState` is never modified; a step returns a new one, and the loop
(:mod:`febm_ref.training.loop`) *commits* a step by a single assignment of it. So an interrupt
at any point leaves the last committed state intact, and that is what an interrupted run writes
to its checkpoint (no rewind).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

__all__ = ["TrainState", "init_state", "WORK_COUNTERS", "add_work"]

WORK_COUNTERS = ("energy_forward", "energy_grad_theta", "critic_forward", "critic_grad_omega")
"""What :attr:`TrainState.work` counts, in points (one point through one network): ``*_forward``
values only, ``energy_grad_theta`` / ``critic_grad_omega`` a forward and a backward pass (the gradient
with respect to the parameters). Exact evaluations (``exact_divergence``) are not training work; the
negatives' sampler counts its own work."""


class TrainState(NamedTuple):
    """The state after ``iteration`` committed steps.

    Attributes
    ----------
    theta, omega : ndarray
        Parameters of the energy ``E_theta`` and of the critic ``H_omega`` (``omega`` is None
        for contrastive divergence).
    energy, critic : EnergyModel
        The models at ``theta`` and ``omega`` (``model.with_params(params)``), kept so that a
        step does not rebuild them; ``critic`` is None for contrastive divergence.
    opt_e, opt_h : SGDState or AdamState
        Optimiser states of the energy and the critic (:mod:`febm_ref.optimizers`; ``opt_h`` is
        None for contrastive divergence).
    iteration : int
        Number of steps done (0-based index of the next step).
    avg, avg_count : ndarray, int
        Polyak average of ``theta`` over the iterations ``>= average_from`` done so far, and
        their number.
    rng_state : dict
        ``bit_generator.state`` of the run's generator after the draws of the last committed step
        (the loop owns the generator; the state is what a checkpoint stores).
    sampler_state : dict or None
        Copies of a stateful sampler's ``state_arrays()`` after the last committed step (None for
        a stateless sampler or when not checkpointing).
    work : tuple of int or None
        Network passes of the steps done, one count per :data:`WORK_COUNTERS` entry (None when
        resumed from a checkpoint written without them).
    """

    theta: np.ndarray
    omega: Optional[np.ndarray]
    energy: object
    critic: object
    opt_e: tuple
    opt_h: Optional[tuple]
    iteration: int
    avg: np.ndarray
    avg_count: int
    rng_state: dict
    sampler_state: Optional[dict] = None
    work: Optional[tuple] = (0, 0, 0, 0)


def add_work(work: Optional[tuple], **counts: int) -> Optional[tuple]:
    """``work`` plus ``counts`` (keyword per :data:`WORK_COUNTERS` entry); None stays None."""
    if work is None:
        return None
    return tuple(w + counts.get(name, 0) for w, name in zip(work, WORK_COUNTERS))


def init_state(energy, critic, opt_e, opt_h, rng_state: dict) -> TrainState:
    """The state before the first step: the models' parameters, fresh optimiser states
    (``opt.init()``), a zero average and the generator state ``rng_state``."""
    theta = energy.get_params()
    omega = critic.get_params() if critic is not None else None
    return TrainState(theta, omega, energy, critic, opt_e.init(), opt_h.init() if opt_h is not None else None,
                      0, np.zeros(energy.n_params), 0, rng_state)
