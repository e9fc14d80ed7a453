"""Driver of the published 1-D algorithm (``febm-ref fit1d --published``): iterates
:func:`febm_ref.published.published_step` with exact model samples and the NaN/inf guard
(:class:`febm_ref.training.TrainingDivergedError`), recording the trajectory.

No checkpoints (a run of the paper protocol takes minutes); ``--resume`` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from febm_ref.published import (
    PublishedState,
    published_maps,
    published_step,
    torch_default_init,
)

__all__ = ["PublishedResult", "train_published"]


class PublishedResult(NamedTuple):
    """``theta`` (last iterate), ``history`` (arrays), ``iterations`` done, ``clipping`` on/off."""

    theta: np.ndarray
    history: dict
    iterations: int
    clipping: bool


def train_published(divergence, target, *, alpha=None, iterations: int = 30000, batch_size: int = 1000,
                    n_negatives: int = 1000, lr_energy: float = 1e-3, lr_critic: float = 1e-3,
                    theta0=(0.0, 1.0), seed: int = 0, clipping: bool = True, eval_every: int = 600,
                    exact_divergence: Callable | None = None, show_progress: bool | None = False,
                    desc: str = "") -> PublishedResult:
    """Run the published algorithm on the 1-D Gaussian energy from ``theta0``.

    Generators: data and model samples from ``default_rng(seed)``; the critic from
    ``default_rng([seed, 1])`` (:func:`~febm_ref.published.torch_default_init`), as
    :func:`febm_ref.experiments.fit1d.make_critic` seeds the default critic.

    Raises
    ------
    TrainingDivergedError
        A g map, gradient or parameter became non-finite, or ``sigma <= 0``.
    """
    from febm_ref._progress import progress
    from febm_ref.models.energies import GaussianEnergy1D
    from febm_ref.training import TrainingDivergedError

    maps = published_maps(divergence, alpha=alpha, clipping=clipping)
    energy = GaussianEnergy1D(*theta0)
    critic = torch_default_init(np.random.default_rng([seed, 1]))
    state = PublishedState(energy.get_params(), critic.get_params(), 0)
    rng = np.random.default_rng(seed)
    hist = {k: np.full(iterations, np.nan) for k in ("loss", "mean_exp_r_neg", "clip_fraction_pos",
                                                     "clip_fraction_neg")}
    hist["theta"] = np.full((iterations, 2), np.nan)
    exact_it, exact_val = [], []

    def record(t):
        if exact_divergence is not None:
            exact_it.append(t)
            exact_val.append(float(exact_divergence(energy.with_params(state.theta))))

    record(0)
    bar = progress(range(iterations), total=iterations, desc=desc or maps.divergence.label, enabled=show_progress)
    try:
        for t in bar:
            x_pos = target.sample(rng, batch_size)
            mu, sigma = float(state.theta[0]), float(state.theta[1])
            if not sigma > 0:
                raise TrainingDivergedError(t, "energy parameters theta", f"sigma = {sigma} <= 0")
            x_neg = (mu + sigma * rng.standard_normal(n_negatives))[:, None]
            try:
                state, info = published_step(state, x_pos, x_neg, maps, energy, critic, lr_energy, lr_critic)
                energy.with_params(state.theta)  # validates sigma > 0
            except (FloatingPointError, ValueError) as exc:
                raise TrainingDivergedError(t, str(exc).split(" is not finite")[0], str(exc)) from exc
            for key in ("loss", "mean_exp_r_neg", "clip_fraction_pos", "clip_fraction_neg"):
                hist[key][t] = info[key]
            hist["theta"][t] = state.theta
            if eval_every and (t + 1) % eval_every == 0:
                record(t + 1)
    finally:
        bar.close()
    hist["exact_iteration"] = np.asarray(exact_it, dtype=np.int64)
    hist["exact_divergence"] = np.asarray(exact_val)
    return PublishedResult(state.theta.copy(), hist, iterations, clipping)
