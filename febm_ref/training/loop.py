"""The training loop: draws the batches, applies a pure step (:mod:`febm_ref.training.steps`),
commits its state, and owns the history, the evaluation schedule, the checkpoints and the
progress bar.

A step is committed by one assignment (``state = ...``), after which its history row is final.
A ``KeyboardInterrupt`` anywhere therefore finds ``state`` at the last committed step, and the
checkpoint written then is that state: the generator and a stateful sampler's state are the
copies taken at that commit (:class:`~febm_ref.training.state.TrainState`), the history row of
an uncommitted step is cleared, and an evaluation cut short is undone (it is redone on resume).
A resumed run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from febm_ref._progress import progress
from febm_ref.training.checkpoint import Checkpointer, _state_copy
from febm_ref.training.steps import TrainingDivergedError

__all__ = ["new_history", "run_loop"]


def new_history(iterations: int, n_params: int, record_theta: bool) -> dict:
    """Empty history arrays: rows ``loss``, ``mean_exp_r_neg`` (and ``theta`` when ``record_theta``)
    for every iteration (NaN until done), and the (iteration, value) pairs of the evaluations."""
    return {"loss": np.full(iterations, np.nan), "mean_exp_r_neg": np.full(iterations, np.nan),
            "theta": np.full((iterations, n_params) if record_theta else (0, n_params), np.nan),
            "exact_iteration": np.zeros(0, dtype=np.int64), "exact_divergence": np.zeros(0)}


def _record_exact(hist: dict, evaluate: Optional[Callable], state) -> None:
    if evaluate is None:
        return
    value = float(evaluate(state.energy))
    new_iterations = np.append(hist["exact_iteration"], state.iteration)
    new_values = np.append(hist["exact_divergence"], value)
    hist["exact_iteration"], hist["exact_divergence"] = new_iterations, new_values


def _recorded_at(hist: dict, iteration: int) -> bool:
    return hist["exact_iteration"].size > 0 and int(hist["exact_iteration"][-1]) == iteration


def _write_rows(hist: dict, t: int, info, theta) -> None:
    hist["loss"][t] = info.loss
    hist["mean_exp_r_neg"][t] = info.mean_exp_r_neg
    if hist["theta"].shape[0]:
        hist["theta"][t] = theta


def _clear_rows(hist: dict, t: int) -> None:
    """Undo :func:`_write_rows` of the uncommitted step ``t`` (before checkpointing an interrupt)."""
    if t < hist["loss"].shape[0]:
        for key in ("loss", "mean_exp_r_neg", "theta"):
            if hist[key].shape[0]:
                hist[key][t] = np.nan


def run_loop(state, step: Callable, *, rng, draw: Callable, sampler, hist: dict, end: int, eval_every: int,
             evaluate: Optional[Callable] = None, snapshot_evaluator: bool = False,
             snapshot_sampler: bool = False, ckpt: Optional[Checkpointer] = None, bar_options: dict):
    """Run ``state = step(state, *draw(rng, state.energy))`` up to iteration ``end``.

    ``draw(rng, energy) -> (x_pos, x_neg)`` samples the batches; ``evaluate(energy) -> float``
    (optional) is recorded in ``hist`` every ``eval_every`` iterations; ``ckpt`` (optional)
    writes every ``ckpt.every`` iterations and on ``KeyboardInterrupt``; ``snapshot_sampler`` /
    ``snapshot_evaluator``: copy the stateful ``sampler``'s state at each commit and the
    evaluator's before each evaluation (for the checkpoint of an interrupt). Returns the last
    committed state; a :class:`TrainingDivergedError` names the last good checkpoint.
    """
    # the evaluation due at the start (at 0, or one that an interrupt cut short before the checkpoint)
    if evaluate is not None and eval_every and state.iteration % eval_every == 0 \
            and not _recorded_at(hist, state.iteration):
        _record_exact(hist, evaluate, state)
    exact_before = None  # the evaluator's state before an evaluation in progress
    bar = progress(range(state.iteration, end), initial=state.iteration, **bar_options)
    try:
        for t in bar:
            new, info = step(state, *draw(rng, state.energy))
            _write_rows(hist, t, info, new.theta)
            state = new._replace(rng_state=rng.bit_generator.state,  # the commit
                                 sampler_state=_state_copy(sampler, "sampler") if snapshot_sampler else None)
            if eval_every and state.iteration % eval_every == 0:
                if snapshot_evaluator:
                    exact_before = _state_copy(evaluate, "exact_divergence")
                _record_exact(hist, evaluate, state)
                exact_before = None
            if ckpt is not None and state.iteration % ckpt.every == 0:
                ckpt.save(state, hist)
    except KeyboardInterrupt:
        if ckpt is not None:
            _clear_rows(hist, state.iteration)
            cut_short = exact_before is not None and not _recorded_at(hist, state.iteration)
            ckpt.save(state, hist, exact_before if cut_short else None)
        raise
    except TrainingDivergedError as exc:
        if ckpt is None or ckpt.last is None:
            raise
        raise TrainingDivergedError(exc.iteration, exc.quantity, exc.detail, ckpt.last) from exc.__cause__
    finally:
        bar.close()
    return state


def finish(state, hist: dict, *, iterations: int, evaluate: Optional[Callable], ckpt: Optional[Checkpointer]):
    """After the loop: the final evaluation (when the run completed) and the final checkpoint;
    returns the history trimmed to the iterations done."""
    done = state.iteration
    if done >= iterations and evaluate is not None and not _recorded_at(hist, done):
        _record_exact(hist, evaluate, state)
    if ckpt is not None and ckpt.last != done:
        ckpt.save(state, hist)
    return {"loss": hist["loss"][:done], "mean_exp_r_neg": hist["mean_exp_r_neg"][:done],
            "theta": hist["theta"][:done] if hist["theta"].shape[0] else hist["theta"],
            "exact_iteration": hist["exact_iteration"], "exact_divergence": hist["exact_divergence"]}
