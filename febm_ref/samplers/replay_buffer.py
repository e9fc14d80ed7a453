"""Replay buffer for short-run Langevin chains (docs/theory.md D16, the image experiments).

The buffer keeps the end points of past chains (a FIFO ring of ``capacity`` points). At each
training iteration the ``n`` new chains start, independently for each chain, from a point drawn
uniformly (with replacement) from the buffer with probability ``restart_prob`` (0.95 as
published) and otherwise from the *reset distribution* (e.g. uniform noise). An empty buffer
gives reset draws only. The end points are pushed back with :meth:`ReplayBuffer.add`.

Optional 8-bit storage (as in the published code for images in ``[0, 1]``): each coordinate is
stored as the index ``k = min(floor(256 u), 255)`` of its bin, ``u = (x - lo)/(hi - lo)``
clipped to ``[0, 1]``, and restored with uniform dequantisation ``lo + (hi - lo)(k + U)/256``,
``U ~ U[0, 1)``, so a restored point lies in the same bin as the stored one (error below
``(hi - lo)/256``) and a uniform variable is restored uniform. Quantisation needs a box and clips
to it: an explicit choice, documented here, never applied without ``quantize_8bit=True``.
(The published code uses ``floor(255 clip(x, 0, 1))`` and ``k/256 + U/256``, which shrinks the
range by 1/256; we use the consistent 256-bin form.)

Checkpointing: the buffer follows the trainer's state protocol (:mod:`febm_ref.training`).
:meth:`ReplayBuffer.state_arrays` returns its complete state, the stored rows in their storage
dtype (float64, or the uint8 bin indices of an 8-bit buffer; only the filled rows), the position
of the next write and the capacity; :meth:`ReplayBuffer.load_state_arrays` restores it exactly,
so that the restarts drawn after a resume are those of an uninterrupted run.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from febm_ref._validation import (
    as_float_array,
    check_callable,
    check_generator,
    check_in_interval,
    check_interval,
    check_positive_int,
)


def quantize_8bit(x, lo: float, hi: float) -> np.ndarray:
    """Bin index ``min(floor(256 (clip(x, lo, hi) - lo)/(hi - lo)), 255)`` as uint8.

    ``x`` must be real and not NaN (``+-inf`` go to the end bins); ``lo < hi`` finite."""
    lo, hi = check_interval((lo, hi), "box (lo, hi)")
    return _quantize(as_float_array(x, "x", allow_inf=True), lo, hi)


def _quantize(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    u = (np.clip(x, lo, hi) - lo) / (hi - lo)
    return np.minimum(np.floor(256.0 * u), 255.0).astype(np.uint8)


def dequantize_8bit(codes, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform dequantisation ``lo + (hi - lo)(k + U)/256`` of bin indices ``k`` in ``0..255``
    (an integer array; ``lo < hi`` finite)."""
    check_generator(rng)
    lo, hi = check_interval((lo, hi), "box (lo, hi)")
    codes = _as_codes(codes)
    if codes.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array of 8-bit bin indices 0..255, got dtype {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() > 255):
        raise ValueError(f"codes must be 8-bit bin indices in 0..255, got values in [{codes.min()}, {codes.max()}]")
    return _dequantize(codes, lo, hi, rng)


def _as_codes(codes) -> np.ndarray:
    try:
        return np.asarray(codes)
    except Exception as exc:
        raise TypeError("codes must be an integer array of 8-bit bin indices 0..255, "
                        f"got {type(codes).__name__}") from exc


def _dequantize(codes: np.ndarray, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    k = np.asarray(codes, dtype=np.float64)
    return lo + (hi - lo) * (k + rng.random(k.shape)) / 256.0


class ReplayBuffer:
    """FIFO replay buffer of chain end points (module docstring).

    Parameters
    ----------
    capacity : int
        Maximum number of stored points; the oldest are overwritten first.
    dim : int
        Dimension ``d`` of the points.
    reset : callable ``reset(rng, n) -> (n, d)``
        The reset distribution for chains not drawn from the buffer.
    restart_prob : float
        Probability that a chain starts from the buffer (0.95 as published).
    quantize_8bit : bool
        Store points as 8-bit bin indices over ``box`` (requires ``box``).
    box : (lo, hi) or None
        Box of the 8-bit quantisation.
    """

    def __init__(self, capacity: int, dim: int, reset: Callable, *, restart_prob: float = 0.95,
                 quantize_8bit: bool = False, box=None):
        self.capacity = check_positive_int(capacity, "capacity")
        self.dim = check_positive_int(dim, "dim")
        check_callable(reset, "reset", "reset(rng, n) -> array (n, d)")
        self.reset = reset
        self.restart_prob = check_in_interval(restart_prob, "restart_prob", 0.0, 1.0)
        self.quantize = bool(quantize_8bit)
        if self.quantize:
            if box is None:
                raise ValueError("quantize_8bit=True needs box=(lo, hi), the range of the 256 bins")
            from febm_ref.samplers.decoupled_langevin import check_box

            self.box = check_box(box)
            self._store = np.zeros((self.capacity, self.dim), dtype=np.uint8)
        else:
            self.box = None
            self._store = np.zeros((self.capacity, self.dim), dtype=np.float64)
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def state_arrays(self) -> dict:
        """The complete state (module docstring): ``points`` (the ``len(self)`` stored rows, in
        storage order and dtype), ``next`` (index of the next row to overwrite) and ``capacity``.

        ``points`` is a view of the live store; copy it to keep it (the trainer does)."""
        return {"points": self._store[:self._size], "next": np.array(self._next, dtype=np.int64),
                "capacity": np.array(self.capacity, dtype=np.int64)}

    def load_state_arrays(self, arrays: dict) -> None:
        """Restore a state from :meth:`state_arrays` (of a buffer with the same capacity, dimension
        and storage).

        Raises
        ------
        ValueError
            Missing or extra arrays, another capacity, dimension or storage dtype, or a write
            position that does not fit the number of rows (which a buffer filled by :meth:`add`
            always satisfies: ``next == len`` until the buffer is full).
        """
        if not isinstance(arrays, dict) or set(arrays) != {"points", "next", "capacity"}:
            got = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise ValueError(f"a ReplayBuffer state has the arrays ['capacity', 'next', 'points'], got {got}")
        capacity = np.asarray(arrays["capacity"])
        nxt = np.asarray(arrays["next"])
        points = np.asarray(arrays["points"])
        if capacity.shape != () or capacity.dtype.kind not in "iu" or int(capacity) != self.capacity:
            raise ValueError(f"the saved buffer has capacity {capacity!r}, this one {self.capacity}")
        if points.ndim != 2 or points.shape[1] != self.dim or points.shape[0] > self.capacity:
            raise ValueError(f"saved points must have shape (k <= {self.capacity}, {self.dim}), got {points.shape}")
        if points.dtype != self._store.dtype:
            raise ValueError(f"saved points have dtype {points.dtype}, this buffer stores {self._store.dtype} "
                             f"({'8-bit' if self.quantize else 'float64'} storage)")
        if not self.quantize:
            as_float_array(points, "saved points")  # no NaN/inf in a float64 buffer
        if nxt.shape != () or nxt.dtype.kind not in "iu":
            raise ValueError(f"next must be an integer scalar, got {nxt!r}")
        size, nxt = points.shape[0], int(nxt)
        full = size == self.capacity
        if not (0 <= nxt < self.capacity) or (not full and nxt != size):
            raise ValueError(f"write position next = {nxt} does not fit {size} stored rows of capacity "
                             f"{self.capacity}")
        store = np.zeros_like(self._store)
        store[:size] = points
        self._store, self._size, self._next = store, size, nxt

    def _reset_draws(self, rng, n):
        x = as_float_array(self.reset(rng, n), "reset(rng, n)", ndim=2)
        if x.shape != (n, self.dim):
            raise ValueError(f"reset(rng, {n}) must return shape ({n}, {self.dim}), got {x.shape}")
        return x

    def add(self, x) -> None:
        """Push the rows of ``x`` (n, d), overwriting the oldest stored points when full."""
        x = as_float_array(x, "x", ndim=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have {self.dim} columns, got shape {x.shape}")
        if x.shape[0] > self.capacity:  # only the newest `capacity` rows survive
            x = x[-self.capacity:]
        n = x.shape[0]
        rows = x if not self.quantize else _quantize(x, *self.box)
        idx = (self._next + np.arange(n)) % self.capacity
        self._store[idx] = rows
        self._next = int((self._next + n) % self.capacity)
        self._size = min(self.capacity, self._size + n)

    def stored(self, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Copy of the stored points (dequantised with ``rng`` if 8-bit)."""
        data = self._store[:self._size]
        if self.quantize:
            if rng is None:
                raise ValueError("an 8-bit buffer needs rng to dequantise its points")
            check_generator(rng)
            return _dequantize(data, *self.box, rng)
        return data.copy()

    def sample_initial(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Starting points for ``n`` chains and the boolean mask of those drawn from the buffer.

        Each chain independently comes from the buffer with probability ``restart_prob``
        (uniform choice with replacement among the stored points), else from ``reset``.
        """
        check_generator(rng)
        n = check_positive_int(n, "n")
        x = self._reset_draws(rng, n)
        if self._size == 0:
            return x, np.zeros(n, dtype=bool)
        from_buffer = rng.random(n) < self.restart_prob
        k = int(from_buffer.sum())
        if k:
            idx = rng.integers(0, self._size, size=k)
            rows = self._store[idx]
            x[from_buffer] = _dequantize(rows, *self.box, rng) if self.quantize else rows
        return x, from_buffer
