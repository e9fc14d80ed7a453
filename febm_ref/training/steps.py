"""Algorithm 1 ("single-step f-EBM", docs/theory.md sections 2 and 6) and the contrastive-divergence
baseline, each as one pure function ``step(state, x_pos, x_neg, ...) -> (state, info)``.

Nothing here draws random numbers, writes files or modifies its inputs: the loop
(:mod:`febm_ref.training.loop`) draws ``x+ ~ p`` and ``x- ~ q_theta`` and commits the returned
:class:`~febm_ref.training.state.TrainState`. A non-finite loss, gradient or parameter, or an
invalid energy parameter (``sigma <= 0``), raises :class:`TrainingDivergedError` naming the
iteration and the quantity.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from febm_ref.objective import (
    _stack_batches,
    contrastive_divergence_gradient,
    febm_terms_checked,
)
from febm_ref.optimizers import learning_rate
from febm_ref.training.state import add_work

__all__ = ["StepInfo", "TrainingDivergedError", "febm_step", "cd_step"]


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite or invalid value; ``iteration`` and ``quantity`` say where."""

    def __init__(self, iteration: int, quantity: str, detail: str = "", checkpoint: Optional[int] = None):
        self.iteration = iteration
        self.quantity = quantity
        self.detail = detail
        where = (f"; the last good checkpoint (iteration {checkpoint}) is kept" if checkpoint is not None
                 else "")
        super().__init__(f"training diverged at iteration {iteration}: {quantity} is not finite or invalid"
                         f"{' (' + detail + ')' if detail else ''}{where}. Lower the learning rate, "
                         "use Adam, or add the l2 terms (l2_weight)")


class StepInfo(NamedTuple):
    """What a step reports besides the new state: the loss ``L`` (D13) and ``<exp r(x-)>``."""

    loss: float
    mean_exp_r_neg: float


def febm_step(state, x_pos, x_neg, config, div, opt_e, opt_h):
    """One iteration of f-EBM (Algorithm 1) on the batches ``x+ ~ p``, ``x- ~ q_theta``.

    ``update="alternating"`` (the published order): ``critic_steps`` ascent steps of the critic on
    ``grad_omega`` (D13, D14), then one descent step of the energy on ``grad_theta`` at the
    *updated* critic; ``"simultaneous"``: both gradients at the current ``(theta, omega)``. During
    the first ``critic_warmup`` iterations ``theta`` and its optimiser state stay fixed.
    ``config`` is a TrainingConfig, ``div`` the resolved divergence, ``opt_e``/``opt_h`` the
    optimisers (``update(state, params, grad, lr)``). Returns ``(new_state, StepInfo)``.
    """
    t = state.iteration
    lr_e, lr_h = _learning_rates(config, t)
    _check_samples(t, x_pos, x_neg)
    energy, critic, omega, opt_h_state = state.energy, state.critic, state.omega, state.opt_h
    lam = float(config.l2_weight)  # validated by TrainingConfig
    try:  # shapes checked here, finiteness in _check_samples: the estimator trusts both
        x_pos, _, x_all = _stack_batches(x_pos, x_neg, energy.dim, finite_checked=True)
        n_pos, n_all = x_pos.shape[0], x_all.shape[0]
        e_all = energy.energy(x_all)  # unchanged by the critic steps: evaluated once
        work = add_work(state.work, energy_forward=n_all)  # counted where the passes are made
        if config.update == "simultaneous":
            g = febm_terms_checked(div, energy, critic, x_all, n_pos, l2_weight=lam,
                                   covariance=config.covariance, energy_values=e_all)
            _require_finite(t, g.grad_omega, "grad_omega")
            omega, opt_h_state = opt_h.update(opt_h_state, omega, -g.grad_omega, lr_h)
            loss = g.loss
            work = add_work(work, critic_grad_omega=n_all, energy_grad_theta=n_all)
        else:
            for _ in range(config.critic_steps):
                gh = febm_terms_checked(div, energy, critic, x_all, n_pos, l2_weight=lam, covariance="batch",
                                        energy_values=e_all, want_theta=False, want_diagnostics=False)
                work = add_work(work, critic_grad_omega=n_all)
                _require_finite(t, gh.grad_omega, "grad_omega")
                omega, opt_h_state = opt_h.update(opt_h_state, omega, -gh.grad_omega, lr_h)
                _require_finite(t, omega, "critic parameters omega")
                critic = state.critic.with_params(omega)
            g = febm_terms_checked(div, energy, critic, x_all, n_pos, l2_weight=lam,
                                   covariance=config.covariance, energy_values=e_all, want_omega=False)
            loss = gh.loss
            work = add_work(work, critic_forward=n_all, energy_grad_theta=n_all)
    except FloatingPointError as exc:
        _reraise(t, exc)
    info = StepInfo(loss, g.diagnostics["mean_exp_r_neg"])
    theta, opt_e_state = _energy_update(state, config, t, info.loss, g.grad_theta, opt_e, lr_e,
                                        warm_up=t < config.critic_warmup)
    new_energy = _energy_at(t, state.energy, theta)
    if config.update == "simultaneous":
        _require_finite(t, omega, "critic parameters omega")
        critic = state.critic.with_params(omega)
    new_state = _advance(state, config, theta, new_energy, opt_e_state, omega, critic, opt_h_state)
    return new_state._replace(work=work), info


def cd_step(state, x_pos, x_neg, config, opt_e):
    """One descent step of contrastive divergence (maximum likelihood): the gradient
    ``<dE(x+)> - <dE(x-)>`` (plus the l2 terms) at ``theta``. Returns ``(new_state, StepInfo)``
    (``mean_exp_r_neg`` is NaN: there is no critic)."""
    t = state.iteration
    lr_e, _ = _learning_rates(config, t)
    _check_samples(t, x_pos, x_neg)
    try:
        g = contrastive_divergence_gradient(state.energy, x_pos, x_neg, l2_weight=config.l2_weight)
    except FloatingPointError as exc:
        _reraise(t, exc)
    theta, opt_e_state = _energy_update(state, config, t, g.loss, g.grad_theta, opt_e, lr_e, warm_up=False)
    new_energy = _energy_at(t, state.energy, theta)
    n_all = np.shape(x_pos)[0] + np.shape(x_neg)[0]  # e_all, then one weighted backward pass
    work = add_work(state.work, energy_forward=n_all, energy_grad_theta=n_all)
    new_state = _advance(state, config, theta, new_energy, opt_e_state, None, None, None)
    return new_state._replace(work=work), StepInfo(g.loss, math.nan)


def _learning_rates(config, t: int) -> tuple[float, float]:
    T, f = config.iterations, config.final_lr_fraction
    return (learning_rate(config.schedule, config.lr_energy, t, T, final_fraction=f),
            learning_rate(config.schedule, config.lr_critic, t, T, final_fraction=f))


def _require_finite(t: int, value, quantity: str) -> None:
    if not np.all(np.isfinite(value)):
        raise TrainingDivergedError(t, quantity)


def _check_samples(t: int, x_pos, x_neg) -> None:
    _require_finite(t, x_pos, "positive samples x+")
    _require_finite(t, x_neg, "negative samples x-")


def _reraise(t: int, exc: FloatingPointError):
    """An estimator's FloatingPointError as a TrainingDivergedError naming the quantity."""
    if isinstance(exc, TrainingDivergedError):
        raise exc
    raise TrainingDivergedError(t, str(exc).split(" is not finite")[0], str(exc)) from exc


def _energy_update(state, config, t, loss, grad_theta, opt_e, lr_e, *, warm_up: bool):
    """The energy's descent step on ``grad_theta`` (none during the critic warm-up)."""
    if not math.isfinite(loss):
        raise TrainingDivergedError(t, "loss")
    _require_finite(t, grad_theta, "grad_theta")
    if warm_up:
        return state.theta, state.opt_e
    return opt_e.update(state.opt_e, state.theta, grad_theta, lr_e)


def _energy_at(t: int, energy, theta):
    _require_finite(t, theta, "energy parameters theta")
    try:
        return energy.with_params(theta)
    except ValueError as exc:
        raise TrainingDivergedError(t, "energy parameters theta", str(exc)) from exc


def _advance(state, config, theta, energy, opt_e, omega, critic, opt_h):
    """The state after the step: new parameters and optimiser states, the Polyak average updated
    (``avg += (theta - avg) / n`` from iteration ``average_from`` on), the iteration counted."""
    avg, avg_count = state.avg, state.avg_count
    if config.average_from is not None and state.iteration >= config.average_from:
        avg_count += 1
        avg = avg + (theta - avg) / avg_count
    return state._replace(theta=theta, omega=omega, energy=energy, critic=critic, opt_e=opt_e, opt_h=opt_h,
                          iteration=state.iteration + 1, avg=avg, avg_count=avg_count)
