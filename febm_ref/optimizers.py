"""First-order optimisers (minimisers) with explicit, checkpointable state.

Each optimiser maps ``(params, grad, lr) -> new params`` for a flat float64 vector and
keeps its state in a small NamedTuple of plain arrays. The functional API is the one the
trainer uses: ``state = opt.init()`` and ``new_params, new_state = opt.update(state, params,
grad, lr)`` (nothing is modified; the optimiser object holds only hyper-parameters), with
``opt.state_arrays(state)`` / ``opt.state_from_arrays(arrays)`` for checkpoints, so a training
run can be checkpointed and resumed bit-for-bit. The stateful convenience form
``opt.step(params, grad, lr)`` (with :meth:`state_dict` / :meth:`load_state_dict`) applies
``update`` to the state the object keeps. They *minimise*: pass the
gradient of the loss (for the critic of f-EBM, which ascends ``L``, pass ``-grad_omega``).

* :class:`SGD`   ``theta <- theta - lr g`` (optional heavy-ball momentum).
* :class:`Adam`  Kingma & Ba with bias correction; ``beta1 = 0`` (no first moment, the
  variant used by the published f-EBM image code) is allowed.

Learning-rate schedules (:func:`learning_rate`) are functions of the iteration only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from febm_ref._validation import (
    as_float_array,
    check_choice,
    check_nonnegative_int,
    check_positive_int,
    check_real_scalar,
    check_vector,
)

__all__ = ["SGD", "Adam", "SGDState", "AdamState", "make_optimizer", "OPTIMIZERS", "SCHEDULES", "learning_rate"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "inverse_sqrt")


class SGDState(NamedTuple):
    """State of :class:`SGD`: the heavy-ball velocity and the number of steps taken."""

    velocity: np.ndarray
    t: int


class AdamState(NamedTuple):
    """State of :class:`Adam`: the running moments ``m``, ``v`` and the number of steps taken."""

    m: np.ndarray
    v: np.ndarray
    t: int


class _Optimizer:
    """Shared stateful wrapper: :meth:`step` applies the pure :meth:`update` to ``self.state``."""

    def step(self, params: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        """Return the updated parameters and keep the new state (the inputs are not modified).

        Raises ValueError/TypeError unless ``params`` and ``grad`` are finite real arrays of
        shape ``(n_params,)`` and ``lr > 0`` (the optimiser state is then unchanged)."""
        new_params, self.state = self.update(self.state, params, grad, lr)
        return new_params

    def state_dict(self) -> dict:
        return self.state_arrays(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = self.state_from_arrays(state)

    def __getattr__(self, name):  # the fields of the state (velocity, m, v, t) read as attributes
        state = self.__dict__.get("state")
        if state is not None and name in type(state)._fields:
            return getattr(state, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class SGD(_Optimizer):
    """Stochastic gradient descent, ``v <- m v + g``, ``theta <- theta - lr v`` (``m = 0``: plain).

    Pure API: ``state = opt.init()``; ``params, state = opt.update(state, params, grad, lr)``.
    """

    name = "sgd"

    def __init__(self, n_params: int, *, momentum: float = 0.0):
        self.n_params = check_positive_int(n_params, "n_params")
        self.momentum = check_real_scalar(momentum, "momentum", nonnegative=True)
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        self.state = self.init()

    def init(self) -> SGDState:
        """The state before the first step (zero velocity)."""
        return SGDState(np.zeros(self.n_params), 0)

    def update(self, state: SGDState, params: np.ndarray, grad: np.ndarray, lr: float):
        """``(new_params, new_state)``; neither the inputs nor ``state`` are modified."""
        params, grad, lr = _check_step(self, params, grad, lr)
        if self.momentum > 0.0:
            velocity = self.momentum * state.velocity + grad
            return params - lr * velocity, SGDState(velocity, state.t + 1)
        return params - lr * grad, SGDState(state.velocity, state.t + 1)

    @staticmethod
    def state_arrays(state: SGDState) -> dict:
        """The checkpoint form of ``state``: ``{"velocity": array, "t": 0-d int array}`` (copies)."""
        return {"velocity": state.velocity.copy(), "t": np.array(state.t)}

    def state_from_arrays(self, state: dict) -> SGDState:
        """Inverse of :meth:`state_arrays`, validated against this optimiser."""
        _check_state_dict(state, ("velocity", "t"), "SGD")
        v = as_float_array(state["velocity"], "SGD state velocity", ndim=1)
        if v.shape != (self.n_params,):
            raise ValueError(f"SGD state velocity has {v.shape[0]} parameters, expected {self.n_params}")
        return SGDState(v.copy(), _load_step_count(state))

    def config(self) -> dict:
        return {"name": self.name, "momentum": self.momentum}


class Adam(_Optimizer):
    """Adam: ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``theta <- theta - lr m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m/(1-b1^t)``,
    ``v_hat = v/(1-b2^t)``. With ``beta1 = 0`` the update is ``g / (sqrt(v_hat) + eps)``.

    Pure API: ``state = opt.init()``; ``params, state = opt.update(state, params, grad, lr)``.
    """

    name = "adam"

    def __init__(self, n_params: int, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.n_params = check_positive_int(n_params, "n_params")
        self.beta1 = check_real_scalar(beta1, "beta1", nonnegative=True)
        self.beta2 = check_real_scalar(beta2, "beta2", nonnegative=True)
        self.eps = check_real_scalar(eps, "eps", positive=True)
        if not (self.beta1 < 1.0 and self.beta2 < 1.0):
            raise ValueError(f"Adam needs 0 <= beta1 < 1 and 0 <= beta2 < 1, got {beta1}, {beta2}")
        self.state = self.init()

    def init(self) -> AdamState:
        """The state before the first step (zero moments)."""
        return AdamState(np.zeros(self.n_params), np.zeros(self.n_params), 0)

    def update(self, state: AdamState, params: np.ndarray, grad: np.ndarray, lr: float):
        """``(new_params, new_state)``; neither the inputs nor ``state`` are modified."""
        params, grad, lr = _check_step(self, params, grad, lr)
        t = state.t + 1
        b1, b2 = self.beta1, self.beta2
        m = state.m
        if b1 > 0.0:
            m = b1 * state.m + (1.0 - b1) * grad
            m_hat = m / (1.0 - b1 ** t)
        else:
            m_hat = grad
        v = b2 * state.v + (1.0 - b2) * grad * grad
        v_hat = v / (1.0 - b2 ** t)
        return params - lr * m_hat / (np.sqrt(v_hat) + self.eps), AdamState(m, v, t)

    @staticmethod
    def state_arrays(state: AdamState) -> dict:
        """The checkpoint form of ``state``: ``{"m", "v": arrays, "t": 0-d int array}`` (copies)."""
        return {"m": state.m.copy(), "v": state.v.copy(), "t": np.array(state.t)}

    def state_from_arrays(self, state: dict) -> AdamState:
        """Inverse of :meth:`state_arrays`, validated against this optimiser."""
        _check_state_dict(state, ("m", "v", "t"), "Adam")
        for key in ("m", "v"):
            arr = as_float_array(state[key], f"Adam state {key}", ndim=1)
            if arr.shape != (self.n_params,):
                raise ValueError(f"Adam state {key!r} has {arr.shape[0]} parameters, expected {self.n_params}")
        if np.any(np.asarray(state["v"]) < 0):
            raise ValueError("Adam state v (running mean of squared gradients) must be >= 0")
        t = _load_step_count(state)
        return AdamState(np.array(state["m"], dtype=np.float64), np.array(state["v"], dtype=np.float64), t)

    def config(self) -> dict:
        return {"name": self.name, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


def _check_step(opt, params, grad, lr):
    """Validate the arguments of ``opt.step`` (shapes exactly ``(n_params,)``: no broadcasting)."""
    params = check_vector(params, "params", opt.n_params)
    grad = check_vector(grad, "grad", opt.n_params)
    return params, grad, check_real_scalar(lr, "lr", positive=True)


def _load_step_count(state: dict) -> int:
    t = state["t"]
    if isinstance(t, np.ndarray) and t.shape == () and t.dtype.kind in "iu":
        t = t.item()
    return check_nonnegative_int(t, "optimizer state t")


def _check_state_dict(state, keys, kind: str) -> None:
    if not isinstance(state, dict):
        raise TypeError(f"an {kind} state must be a dict with the entries {sorted(keys)} (from state_dict()), "
                        f"got {type(state).__name__}")
    if not set(keys) <= set(state):
        got = sorted(state)
        raise ValueError(f"an {kind} state must be a dict with the entries {sorted(keys)}, got {got}")


def make_optimizer(name: str, n_params: int, **options):
    """``"sgd"`` (option ``momentum``) or ``"adam"`` (options ``beta1, beta2, eps``)."""
    check_choice(name, "optimizer", OPTIMIZERS)
    if name == "sgd":
        return SGD(n_params, **options)
    if name == "adam":
        return Adam(n_params, **options)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def learning_rate(schedule: str, base: float, iteration: int, total: int, *, final_fraction: float = 0.0) -> float:
    """Learning rate at ``iteration`` (0-based) of ``total``.

    ``constant``: ``base``. ``cosine``: ``base (f + (1 - f)(1 + cos(pi t/T))/2)`` with
    ``f = final_fraction``. ``inverse_sqrt``: ``base / sqrt(1 + t / (T/100))``.

    Raises ValueError/TypeError unless ``base > 0``, ``total >= 1``, ``0 <= iteration <= total``
    and ``final_fraction >= 0``.
    """
    check_choice(schedule, "learning-rate schedule", SCHEDULES)
    base = check_real_scalar(base, "base", positive=True)
    total = check_positive_int(total, "total")
    iteration = check_nonnegative_int(iteration, "iteration")
    if iteration > total:
        raise ValueError(f"iteration must be in [0, total] = [0, {total}], got {iteration}")
    final_fraction = check_real_scalar(final_fraction, "final_fraction", nonnegative=True)
    if schedule == "constant":
        return base
    if schedule == "cosine":
        c = 0.5 * (1.0 + math.cos(math.pi * iteration / total))
        return base * (final_fraction + (1.0 - final_fraction) * c)
    if schedule == "inverse_sqrt":
        return base / math.sqrt(1.0 + iteration / max(total / 100.0, 1.0))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {SCHEDULES}")
