"""Pieces shared by every sampler of :mod:`febm_ref.samplers` (docs/theory.md section 4).

Energy protocol
---------------
A sampler only needs an object with two vectorised methods (duck typing, no base class):

``energy(x) -> (n,)``   the energy ``E(x_i)`` of each row of ``x`` (shape ``(n, d)``);
``grad_x(x) -> (n, d)`` its input gradient ``grad_x E(x_i)``.

If the object also has ``energy_and_grad_x(x) -> (E, G)`` it is used instead (one fused
pass). Plain functions are wrapped with :class:`CallableEnergy`.

Chain state
-----------
``ChainState(x, energy, grad_x)`` caches the energy and gradient at the current points, so a
step evaluates the energy model once (ULA, MALA) or ``L`` times (HMC).

Non-finite values
-----------------
A chain that produces NaN or inf never continues silently: :func:`check_finite_state` raises
:class:`NonFiniteChainError` naming the chain, the coordinate and the value, and the
``run`` helpers add the step number.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

from febm_ref._validation import as_float_array, check_callable, check_generator, check_real_scalar


class NonFiniteChainError(FloatingPointError):
    """A chain produced NaN or inf (raised with the step, chain, coordinate and value)."""


class ChainState(NamedTuple):
    """Points of ``n`` chains with their cached energies and input gradients."""

    x: np.ndarray        #: (n, d) current points
    energy: np.ndarray   #: (n,) E(x)
    grad_x: np.ndarray   #: (n, d) grad_x E(x)


class CallableEnergy:
    """Wrap plain vectorised functions ``energy_fn(x)->(n,)``, ``grad_fn(x)->(n, d)`` as an energy."""

    def __init__(self, energy_fn: Callable, grad_fn: Callable):
        check_callable(energy_fn, "energy_fn", "energy_fn(x) -> (n,)")
        check_callable(grad_fn, "grad_fn", "grad_fn(x) -> (n, d)")
        self._energy_fn = energy_fn
        self._grad_fn = grad_fn

    def energy(self, x):
        return self._energy_fn(x)

    def grad_x(self, x):
        return self._grad_fn(x)


def check_energy(energy) -> None:
    """Raise TypeError unless ``energy`` follows the energy protocol (module docstring)."""
    if not (callable(getattr(energy, "energy", None)) and callable(getattr(energy, "grad_x", None))):
        raise TypeError("energy must have methods energy(x)->(n,) and grad_x(x)->(n, d) "
                        f"(got {type(energy).__name__}); wrap plain functions in "
                        "febm_ref.samplers.CallableEnergy(energy_fn, grad_fn)")


def as_chain_points(x, name: str = "x") -> np.ndarray:
    """Validate chain positions: a finite float64 ``(n, d)`` array (a 1-D array is one chain)."""
    arr = as_float_array(x, name, ndim=(1, 2))
    if arr.ndim == 1:
        raise ValueError(f"{name} must have shape (n_chains, dim); got shape {arr.shape}. "
                         f"For n 1-D chains pass x.reshape(-1, 1); for one chain pass x.reshape(1, -1)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one chain and one dimension, got shape {arr.shape}")
    return np.array(arr, dtype=np.float64, order="C", copy=True)


def check_chain_state(state, name: str = "state") -> ChainState:
    """A :class:`ChainState` with consistent shapes and finite values (the public ``step``
    functions check their ``state`` once; the ``run`` loops pass states they produced).

    Raises
    ------
    TypeError
        If ``state`` is not a ChainState (e.g. a raw array of points: build the state with
        ``init(x, energy)``).
    ValueError
        If ``energy`` is not ``(n,)`` or ``grad_x`` not ``(n, d)`` for ``x`` of shape ``(n, d)``,
        or a value is NaN/inf.
    """
    if not isinstance(state, ChainState):
        raise TypeError(f"{name} must be a ChainState (points with their cached energy and gradient), got "
                        f"{type(state).__name__}; build it with init(x, energy) of the sampler module")
    x, e, g = state
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == np.float64):
        raise ValueError(f"{name}.x must be a float64 array (n, d), got {type(x).__name__} "
                         f"{getattr(x, 'shape', '')}; build the state with init(x, energy)")
    n = x.shape[0]
    if np.shape(e) != (n,) or np.shape(g) != x.shape:
        raise ValueError(f"{name} is inconsistent: x {x.shape} needs energy ({n},) and grad_x {x.shape}, got "
                         f"{np.shape(e)} and {np.shape(g)}; build the state with init(x, energy)")
    for label, arr in (("x", x), ("energy", e), ("grad_x", g)):
        as_float_array(arr, f"{name}.{label}")
    return state


def check_step_size(step_size, name: str = "step_size") -> float:
    """A finite, strictly positive step size (ValueError otherwise)."""
    return check_real_scalar(step_size, name, positive=True)


def evaluate(energy, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E(x) (n,), grad_x E(x) (n, d))``, shape-checked, using a fused method if available."""
    fused = getattr(energy, "energy_and_grad_x", None)
    if callable(fused):
        e, g = fused(x)
    else:
        e, g = energy.energy(x), energy.grad_x(x)
    e = np.asarray(e, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    n, d = x.shape
    if e.shape != (n,):
        raise ValueError(f"energy(x) must return shape ({n},) for x of shape {x.shape}, got {e.shape}")
    if g.shape != (n, d):
        raise ValueError(f"grad_x(x) must return shape ({n}, {d}) for x of shape {x.shape}, got {g.shape}")
    return e, g


def check_finite_state(x: np.ndarray, energy: np.ndarray, grad: Optional[np.ndarray],
                       what: str = "chain") -> None:
    """Raise :class:`NonFiniteChainError` if any position, energy or gradient is NaN/inf."""
    for label, arr in (("position x", x), ("energy", energy), ("gradient grad_x E", grad)):
        if arr is None:
            continue
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise NonFiniteChainError(
                f"{what} {idx[0]} produced a non-finite {label} = {float(arr[idx])!r} at index {idx}; "
                "reduce the step size or check the energy model")


def init_state(x, energy) -> ChainState:
    """Validate ``x`` (n, d) and ``energy``; evaluate and cache ``E`` and ``grad_x E`` at ``x``."""
    check_energy(energy)
    x = as_chain_points(x)
    e, g = evaluate(energy, x)
    check_finite_state(x, e, g)
    return ChainState(x, e, g)


def _predrawn(values, shape: tuple, name: str) -> np.ndarray:
    """A pre-drawn finite float64 array of exactly ``shape`` (no broadcasting)."""
    return as_float_array(values, f"pre-drawn {name}", shape=tuple(shape))


def gaussian_noise(rng_or_noise, shape: tuple, name: str = "noise") -> np.ndarray:
    """Standard normal noise of ``shape``: drawn from a Generator, or a pre-drawn array checked."""
    if isinstance(rng_or_noise, np.random.Generator):
        return rng_or_noise.standard_normal(shape)
    if rng_or_noise is None or isinstance(rng_or_noise, (int, np.integer)):
        check_generator(rng_or_noise, "rng_or_noise")
    return _predrawn(rng_or_noise, shape, name)


def gaussian_and_uniform(rng_or_noise, shape: tuple, normal_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The randomness of one Metropolis-adjusted step: standard normals of ``shape`` (the
    proposal noise or momentum, called ``normal_name``) and one uniform per chain for the
    accept test, drawn in that order from a Generator, or a pre-drawn pair checked.

    Pre-drawn uniforms must lie in ``[0, 1)`` (the range of ``Generator.random``): the test
    ``u < min(1, alpha)`` accepts with probability ``min(1, alpha)`` only for such ``u``; a
    negative ``u`` would accept every proposal and break detailed balance.
    """
    n = shape[0]
    if isinstance(rng_or_noise, np.random.Generator):
        return rng_or_noise.standard_normal(shape), rng_or_noise.random(n)
    if not (isinstance(rng_or_noise, tuple) and len(rng_or_noise) == 2):
        raise TypeError(f"rng_or_noise must be a numpy.random.Generator or a pair ({normal_name}, u) of "
                        f"pre-drawn normal {tuple(shape)} and uniform ({n},) arrays, got {type(rng_or_noise).__name__}")
    normal = _predrawn(rng_or_noise[0], shape, normal_name)
    u = _predrawn(rng_or_noise[1], (n,), "u")
    if not np.all((u >= 0.0) & (u < 1.0)):
        bad = int(np.argmax(~((u >= 0.0) & (u < 1.0))))
        raise ValueError(f"pre-drawn u must be uniforms in [0, 1) (detailed balance needs P(u < a) = a), "
                         f"got u[{bad}] = {u[bad]!r}")
    return normal, u


class RunResult(NamedTuple):
    """Output of a ``run`` helper.

    ``samples`` has shape ``(n_kept, n_chains, d)`` (the state after steps
    ``thin, 2 thin, ...``; ``None`` if not kept); ``info`` maps each diagnostic field to an
    array with one row per step (``(n_steps,)`` for scalars, ``(n_steps, n_chains)`` for
    per-chain fields).
    """

    state: object
    samples: Optional[np.ndarray]
    info: dict


def run_steps(step: Callable, rng: np.random.Generator, state, n_steps: int, *,
              keep_samples: bool, thin: int) -> RunResult:
    """Apply ``state, info = step(rng, state)`` ``n_steps`` times, stacking the infos.

    A :class:`NonFiniteChainError` is re-raised with the (1-based) step number.
    """
    from febm_ref._validation import check_positive_int

    check_generator(rng)
    n_steps = check_positive_int(n_steps, "n_steps")
    thin = check_positive_int(thin, "thin")
    samples = None  # (n_steps // thin, *x.shape), filled in place (no list of copies to stack)
    infos = []
    for k in range(n_steps):
        try:
            state, info = step(rng, state)
        except NonFiniteChainError as exc:
            raise NonFiniteChainError(f"step {k + 1} of {n_steps}: {exc}") from exc
        infos.append(info)
        if keep_samples and (k + 1) % thin == 0:
            if samples is None:
                samples = np.empty((n_steps // thin,) + state.x.shape, dtype=state.x.dtype)
            samples[(k + 1) // thin - 1] = state.x
    fields = infos[0]._fields
    info = {f: np.asarray([getattr(i, f) for i in infos]) for f in fields}
    return RunResult(state, samples, info)
