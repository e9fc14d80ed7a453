"""Decoupled Langevin dynamics of the published image experiments (docs/theory.md D16).

Step size and noise scale are two independent parameters. One step, for every chain::

    x' = x + sigma_n z,                  z ~ N(0, I)          (noise first)
    g  = grad_x E(x')                    (optionally clip(g, -c, c) element-wise)
    x  <- x' - lambda g                  (optionally clip(x, lo, hi) to a box)      (D16)

With ``lambda = eps/2`` and ``sigma_n = sqrt(eps)`` the drift is evaluated at the noised point
instead of the current one, so D16 is *not* D15 even then; with ``lambda != sigma_n^2 / 2`` it
targets a tempered law (for a quadratic energy, ``exp(-E / T)`` to first order, with
``T = sigma_n^2 / (2 lambda)``). On ``E = x^2/(2 s^2)`` the step is the AR(1) recursion
``x <- a (x + sigma_n z)`` with ``a = 1 - lambda/s^2``, whose exact stationary variance is
``a^2 sigma_n^2 / (1 - a^2)`` (:func:`stationary_variance_1d`). It is a heuristic sampler; nothing
here claims it is unbiased.

Both clippings are explicit options, **off by default**, and both change the dynamics:
gradient value-clipping bounds the drift (the chain no longer follows ``grad E`` where
``|dE/dx_i| > c``), and box clipping projects onto ``[lo, hi]^d``. The per-step info reports
how often each clipping was active.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from febm_ref._validation import check_interval, check_real_scalar
from febm_ref.samplers._base import (
    RunResult,
    as_chain_points,
    check_energy,
    check_finite_state,
    check_step_size,
    evaluate,
    gaussian_noise,
    run_steps,
)


class DecoupledState(NamedTuple):
    """Points of the chains (the gradient is taken at the noised point, so nothing is cached)."""

    x: np.ndarray  #: (n, d)


class DecoupledInfo(NamedTuple):
    """Diagnostics of one D16 step."""

    mean_energy: float            #: mean of E(x') at the noised points
    mean_grad_norm: float         #: mean |grad_x E(x')| before any clipping
    fraction_grad_clipped: float  #: fraction of gradient components clipped (0 if off)
    fraction_box_clipped: float   #: fraction of coordinates clipped to the box (0 if off)


def check_box(box) -> Optional[tuple[float, float]]:
    """``None`` or a validated ``(lo, hi)`` with ``lo < hi`` (both finite)."""
    if box is None:
        return None
    return check_interval(box, "box")


def step(rng_or_noise, state: DecoupledState, energy, step_size: float, noise_scale: float, *,
         grad_clip: Optional[float] = None, box=None) -> tuple[DecoupledState, DecoupledInfo]:
    """One decoupled Langevin step (D16) of every chain.

    Parameters
    ----------
    rng_or_noise : numpy.random.Generator or array (n, d)
        Source of ``z ~ N(0, I)`` or ``z`` itself.
    state : DecoupledState
    energy : object with ``energy(x)`` and ``grad_x(x)``
    step_size : float
        ``lambda > 0``, the gradient step.
    noise_scale : float
        ``sigma_n >= 0``, the standard deviation of the added noise.
    grad_clip : float or None
        If given (``c > 0``), clip each gradient component to ``[-c, c]`` (changes the dynamics).
    box : (lo, hi) or None
        If given, clip the new points to ``[lo, hi]`` (changes the dynamics).

    Raises TypeError/ValueError for a ``state`` that is not a finite :class:`DecoupledState`
    (build it with :func:`init`), an ``energy`` without the energy protocol, or a bad
    step size, noise scale, clip, box or pre-drawn noise.
    """
    _check_state(state)
    check_energy(energy)
    lam = check_step_size(step_size)
    sigma = check_real_scalar(noise_scale, "noise_scale", nonnegative=True)
    grad_clip = _check_grad_clip(grad_clip)
    return _step(rng_or_noise, state, energy, lam, sigma, grad_clip, check_box(box))


def _check_grad_clip(grad_clip) -> Optional[float]:
    return None if grad_clip is None else check_real_scalar(grad_clip, "grad_clip", positive=True)


def _check_state(state) -> DecoupledState:
    if not isinstance(state, DecoupledState):
        raise TypeError(f"state must be a DecoupledState, got {type(state).__name__}; build it with "
                        "decoupled_langevin.init(x)")
    as_chain_points(state.x, "state.x")
    return state


def _step(rng_or_noise, state: DecoupledState, energy, lam: float, sigma: float, grad_clip, box):
    """:func:`step` on validated arguments (the loop of :func:`run`)."""
    x = state.x
    z = gaussian_noise(rng_or_noise, x.shape)
    x_noised = x + sigma * z
    e, g = evaluate(energy, x_noised)
    check_finite_state(x_noised, e, g)
    grad_norm = float(np.mean(np.sqrt(np.sum(g * g, axis=1))))
    frac_g = 0.0
    if grad_clip is not None:
        frac_g = float(np.mean(np.abs(g) > grad_clip))
        g = np.clip(g, -grad_clip, grad_clip)
    x_new = x_noised - lam * g
    frac_b = 0.0
    if box is not None:
        frac_b = float(np.mean((x_new < box[0]) | (x_new > box[1])))
        x_new = np.clip(x_new, box[0], box[1])
    check_finite_state(x_new, np.zeros(0), None)
    return DecoupledState(x_new), DecoupledInfo(float(np.mean(e)), grad_norm, frac_g, frac_b)


def init(x) -> DecoupledState:
    """Initial :class:`DecoupledState` (validates ``x`` as finite ``(n, d)``)."""
    return DecoupledState(as_chain_points(x))


def run(rng: np.random.Generator, x0, energy, step_size: float, noise_scale: float, n_steps: int, *,
        grad_clip: Optional[float] = None, box=None, keep_samples: bool = False,
        thin: int = 1) -> RunResult:
    """Run ``n_steps`` D16 steps from ``x0`` (n_chains, d); see :class:`RunResult`."""
    check_energy(energy)
    lam = check_step_size(step_size)
    sigma = check_real_scalar(noise_scale, "noise_scale", nonnegative=True)
    grad_clip = _check_grad_clip(grad_clip)
    box = check_box(box)
    state = init(x0)
    return run_steps(lambda r, s: _step(r, s, energy, lam, sigma, grad_clip, box),
                     rng, state, n_steps, keep_samples=keep_samples, thin=thin)


def stationary_variance_1d(s: float, step_size: float, noise_scale: float) -> float:
    """Exact stationary variance of D16 (no clipping) on ``E = x^2/(2 s^2)``.

    The step is ``x <- a (x + sigma_n z)`` with ``a = 1 - lambda/s^2``, so
    ``v = a^2 (v + sigma_n^2)``, i.e. ``v = a^2 sigma_n^2 / (1 - a^2)`` (requires ``|a| < 1``,
    i.e. ``0 < lambda < 2 s^2``).
    """
    s = check_real_scalar(s, "s", positive=True)
    lam = check_step_size(step_size)
    sigma = check_real_scalar(noise_scale, "noise_scale", nonnegative=True)
    a = 1.0 - lam / (s * s)
    if not abs(a) < 1.0:
        raise ValueError(f"D16 on x^2/(2 s^2) is unstable for step_size >= 2 s^2 = {2 * s * s}; got {lam}")
    return a * a * sigma * sigma / (1.0 - a * a)
