"""Persistent chains: the state of ``n`` Langevin chains kept across training iterations
(persistent contrastive divergence style). Composes with any sampler's ``run`` and, if wanted,
with a :class:`~febm_ref.samplers.replay_buffer.ReplayBuffer` (restart some chains each time).

Like the replay buffer, it implements the sampler-state protocol of
:func:`febm_ref.training.train` (``state_arrays`` / ``load_state_arrays``), so a sampler
object built on it can hand its chains to the trainer's checkpoints and resume bit for bit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from febm_ref._validation import check_callable, check_generator, check_in_interval, check_positive_int
from febm_ref.samplers._base import as_chain_points


class PersistentChains:
    """Current points ``x`` (n_chains, d) of persistent chains.

    ``reinit_prob`` (default 0) is the per-iteration probability that a chain is restarted from
    ``reset(rng, n)`` in :meth:`starting_points`.
    """

    def __init__(self, x0, reset: Callable | None = None, *, reinit_prob: float = 0.0):
        self.x = as_chain_points(x0, "x0")
        p = check_in_interval(reinit_prob, "reinit_prob", 0.0, 1.0)
        if p > 0 and not callable(reset):
            raise ValueError("reinit_prob > 0 needs a reset(rng, n) callable")
        self.reset = reset
        self.reinit_prob = p

    @classmethod
    def from_reset(cls, rng: np.random.Generator, n_chains: int, reset: Callable, *,
                   reinit_prob: float = 0.0) -> "PersistentChains":
        """Start ``n_chains`` chains from ``reset(rng, n_chains)``."""
        check_generator(rng)
        n = check_positive_int(n_chains, "n_chains")
        check_callable(reset, "reset", "reset(rng, n) -> array (n, d)")
        return cls(reset(rng, n), reset, reinit_prob=reinit_prob)

    def starting_points(self, rng: np.random.Generator) -> np.ndarray:
        """Copy of the current points, with each chain restarted with probability ``reinit_prob``."""
        check_generator(rng)
        x = self.x.copy()
        if self.reinit_prob > 0:
            mask = rng.random(x.shape[0]) < self.reinit_prob
            if mask.any():
                x[mask] = as_chain_points(self.reset(rng, int(mask.sum())), "reset(rng, n)")
        return x

    def update(self, x) -> None:
        """Store the end points of this iteration's chains (same shape as before)."""
        x = as_chain_points(x)
        if x.shape != self.x.shape:
            raise ValueError(f"update expects shape {self.x.shape} for x (the same chains), got {x.shape}")
        self.x = x

    def state_arrays(self) -> dict:
        """The complete state: ``{"x": current points (n_chains, d)}`` (a view; the trainer
        copies it). ``reset`` and ``reinit_prob`` are configuration, not state."""
        return {"x": self.x}

    def load_state_arrays(self, arrays: dict) -> None:
        """Restore the points saved by :meth:`state_arrays` (same number of chains and
        dimension); nothing changes if the check fails.

        Raises
        ------
        ValueError
            Other arrays than ``x``, another shape, or non-finite points.
        """
        if not isinstance(arrays, dict) or set(arrays) != {"x"}:
            got = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise ValueError(f"a PersistentChains state has the single array 'x', got {got}")
        x = as_chain_points(arrays["x"], "x")
        if x.shape != self.x.shape:
            raise ValueError(f"saved chains have shape {x.shape}, these chains {self.x.shape}")
        self.x = x.copy()
