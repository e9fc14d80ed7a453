"""Metropolis-adjusted Langevin algorithm (MALA): the ULA proposal (D15) with its
Metropolis-Hastings correction, so ``exp(-E)/Z`` is exactly invariant (docs/theory.md section 4).

Proposal, for each chain, with ``z ~ N(0, I)``::

    y = x - (eps/2) grad E(x) + sqrt(eps) z,     q(y | x) = N(y; x - (eps/2) grad E(x), eps I)

Accept ``y`` with probability ``min(1, exp(log_alpha))``, where::

    log_alpha = E(x) - E(y) + log q(x | y) - log q(y | x)
    log q(y | x) = -|y - x + (eps/2) grad E(x)|^2 / (2 eps)   (+ a constant that cancels)

A proposal whose energy is ``+inf`` (zero density) is rejected; a NaN energy or gradient, or a
non-finite gradient at a finite-energy point, is an error (:class:`NonFiniteChainError`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from febm_ref.samplers._base import (
    ChainState,
    NonFiniteChainError,
    RunResult,
    check_chain_state,
    check_energy,
    check_step_size,
    evaluate,
    gaussian_and_uniform,
    init_state,
    run_steps,
)


class MALAInfo(NamedTuple):
    """Diagnostics of one MALA step."""

    acceptance_rate: float            #: fraction of chains that accepted
    acceptance_probability: np.ndarray  #: (n,) min(1, exp(log_alpha)) per chain
    mean_energy: float                #: mean of E at the new state
    mean_grad_norm: float             #: mean |grad E| at the new state


def _log_proposal(y, x, grad_x, eps):
    r = y - x + 0.5 * eps * grad_x
    return -np.sum(r * r, axis=1) / (2.0 * eps)


def step(rng_or_noise, state: ChainState, energy, step_size: float) -> tuple[ChainState, MALAInfo]:
    """One MALA step of every chain.

    Parameters
    ----------
    rng_or_noise : numpy.random.Generator or tuple (z, u)
        A Generator, or pre-drawn ``z`` (n, d) standard normal and ``u`` (n,) uniform on [0, 1).
    state : ChainState
    energy : object with ``energy(x)`` and ``grad_x(x)``
    step_size : float
        ``eps > 0`` (same convention as ULA, D15).

    Raises TypeError/ValueError for a ``state`` that is not a consistent finite
    :class:`ChainState`, an ``energy`` without the energy protocol, a bad step size, or
    pre-drawn ``(z, u)`` of the wrong shape or with ``u`` outside ``[0, 1)``.
    """
    check_chain_state(state)
    check_energy(energy)
    return _step(rng_or_noise, state, energy, check_step_size(step_size))


def _step(rng_or_noise, state: ChainState, energy, eps: float) -> tuple[ChainState, MALAInfo]:
    """:func:`step` on a validated state, energy and step size (the loop of :func:`run`)."""
    x, e_x, g_x = state
    z, u = gaussian_and_uniform(rng_or_noise, x.shape, "z")
    y = x - 0.5 * eps * g_x + np.sqrt(eps) * z
    e_y, g_y = evaluate(energy, y)
    if np.isnan(e_y).any() or (np.isfinite(e_y)[:, None] & ~np.isfinite(g_y)).any():
        bad = int(np.argwhere(np.isnan(e_y) | ~np.all(np.isfinite(g_y), axis=1))[0, 0])
        raise NonFiniteChainError(f"chain {bad} proposed y = {y[bad]!r} with energy {e_y[bad]!r} "
                                  f"and gradient {g_y[bad]!r}; check the energy model or reduce the step size")
    with np.errstate(invalid="ignore", over="ignore"):
        log_alpha = (e_x - e_y) + _log_proposal(x, y, g_y, eps) - _log_proposal(y, x, g_x, eps)
    log_alpha = np.where(np.isfinite(e_y), log_alpha, -np.inf)
    prob = np.exp(np.minimum(log_alpha, 0.0))
    accept = u < prob
    x_new = np.where(accept[:, None], y, x)
    e_new = np.where(accept, e_y, e_x)
    g_new = np.where(accept[:, None], g_y, g_x)
    info = MALAInfo(float(np.mean(accept)), prob, float(np.mean(e_new)),
                    float(np.mean(np.sqrt(np.sum(g_new * g_new, axis=1)))))
    return ChainState(x_new, e_new, g_new), info


def init(x, energy) -> ChainState:
    """Initial :class:`ChainState` at ``x`` (n_chains, d)."""
    return init_state(x, energy)


def run(rng: np.random.Generator, x0, energy, step_size: float, n_steps: int, *,
        keep_samples: bool = False, thin: int = 1) -> RunResult:
    """Run ``n_steps`` MALA steps from ``x0``; ``info['acceptance_rate']`` has one entry per step."""
    eps = check_step_size(step_size)
    state = init(x0, energy)
    return run_steps(lambda r, s: _step(r, s, energy, eps), rng, state, n_steps,
                     keep_samples=keep_samples, thin=thin)
