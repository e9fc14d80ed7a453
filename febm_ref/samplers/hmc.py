"""Hamiltonian Monte Carlo with ``L`` leapfrog steps and a Metropolis correction
(docs/theory.md section 4). Unit mass matrix; ``H(x, p) = E(x) + |p|^2 / 2``.

One step, for each chain: draw ``p ~ N(0, I)``; run ``L`` leapfrog steps of size ``eps``::

    p <- p - (eps/2) grad E(x);  x <- x + eps p;  p <- p - (eps/2) grad E(x)

(consecutive half kicks fused); accept the end point with probability
``min(1, exp(H(x, p) - H(x_L, p_L)))``. Leapfrog is volume preserving and reversible, so
``exp(-E)/Z`` is exactly invariant. With ``L = 1`` HMC is MALA with step ``eps^2``.

A trajectory that leaves the finite domain (non-finite position, energy ``+inf`` or an
overflowing gradient) is *divergent*: it is rejected and counted in the info. A NaN energy at a
finite point is an error of the energy model (:class:`NonFiniteChainError`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from febm_ref._validation import as_float_array, check_positive_int
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


class HMCInfo(NamedTuple):
    """Diagnostics of one HMC step."""

    acceptance_rate: float               #: fraction of chains that accepted
    acceptance_probability: np.ndarray   #: (n,) min(1, exp(-Delta H)) per chain
    n_divergent: int                     #: trajectories rejected for leaving the finite domain
    mean_energy: float                   #: mean of E at the new state
    mean_grad_norm: float                #: mean |grad E| at the new state


def _evaluate_finite_rows(energy, x):
    """Energy and gradient at the finite rows of ``x``; ``+inf`` / NaN for the others
    (energy models may refuse non-finite input)."""
    finite = np.all(np.isfinite(x), axis=1)
    if finite.all():
        return evaluate(energy, x)
    e = np.full(x.shape[0], np.inf)
    g = np.full(x.shape, np.nan)
    if finite.any():
        e[finite], g[finite] = evaluate(energy, x[finite])
    return e, g


def leapfrog(x, p, grad, energy, step_size: float, n_leapfrog: int):
    """``n_leapfrog`` leapfrog steps from ``(x, p)`` with ``grad = grad E(x)``.

    Returns ``(x_L, p_L, E(x_L), grad E(x_L))``. ``x``, ``p`` and ``grad`` must be finite arrays
    of one shape ``(n, d)``, ``step_size > 0`` and ``n_leapfrog >= 1`` (TypeError/ValueError).
    """
    check_energy(energy)
    x = as_float_array(x, "x", ndim=2)
    p = as_float_array(p, "p", shape=x.shape)
    grad = as_float_array(grad, "grad", shape=x.shape)
    return _leapfrog(x, p, grad, energy, check_step_size(step_size), check_positive_int(n_leapfrog, "n_leapfrog"))


def _leapfrog(x, p, grad, energy, eps: float, n_leapfrog: int):
    """:func:`leapfrog` on validated arguments (the trajectory of :func:`step`)."""
    p = p - 0.5 * eps * grad
    e = None
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(n_leapfrog):
            x = x + eps * p
            e, grad = _evaluate_finite_rows(energy, x)
            if i < n_leapfrog - 1:
                p = p - eps * grad
        p = p - 0.5 * eps * grad
    return x, p, e, grad


def step(rng_or_noise, state: ChainState, energy, step_size: float,
         n_leapfrog: int) -> tuple[ChainState, HMCInfo]:
    """One HMC step of every chain.

    Parameters
    ----------
    rng_or_noise : numpy.random.Generator or tuple (p0, u)
        A Generator, or pre-drawn momenta ``p0`` (n, d) ~ N(0, I) and uniforms ``u`` (n,).
    state : ChainState
    energy : object with ``energy(x)`` and ``grad_x(x)``
    step_size : float
        Leapfrog step ``eps > 0``.
    n_leapfrog : int
        Number of leapfrog steps ``L >= 1``.

    Raises TypeError/ValueError for a ``state`` that is not a consistent finite
    :class:`ChainState`, an ``energy`` without the energy protocol, a bad step size or
    ``n_leapfrog``, or pre-drawn ``(p0, u)`` of the wrong shape or with ``u`` outside ``[0, 1)``.
    """
    check_chain_state(state)
    check_energy(energy)
    return _step(rng_or_noise, state, energy, check_step_size(step_size), check_positive_int(n_leapfrog, "n_leapfrog"))


def _step(rng_or_noise, state: ChainState, energy, eps: float, n_leapfrog: int) -> tuple[ChainState, HMCInfo]:
    """:func:`step` on validated arguments (the loop of :func:`run`)."""
    x, e_x, g_x = state
    p0, u = gaussian_and_uniform(rng_or_noise, x.shape, "p0")
    y, p1, e_y, g_y = _leapfrog(x, p0, g_x, energy, eps, n_leapfrog)
    finite_pos = np.all(np.isfinite(y), axis=1)
    if (finite_pos & np.isnan(e_y)).any():
        bad = int(np.argwhere(finite_pos & np.isnan(e_y))[0, 0])
        raise NonFiniteChainError(f"chain {bad}: energy is NaN at the finite point {y[bad]!r}; "
                                  "check the energy model")
    with np.errstate(over="ignore", invalid="ignore"):
        h0 = e_x + 0.5 * np.sum(p0 * p0, axis=1)
        h1 = e_y + 0.5 * np.sum(p1 * p1, axis=1)
        log_alpha = h0 - h1
    ok = finite_pos & np.isfinite(e_y) & np.all(np.isfinite(g_y), axis=1) & np.isfinite(log_alpha)
    log_alpha = np.where(ok, log_alpha, -np.inf)
    prob = np.exp(np.minimum(log_alpha, 0.0))
    accept = u < prob
    x_new = np.where(accept[:, None], y, x)
    e_new = np.where(accept, e_y, e_x)
    g_new = np.where(accept[:, None], g_y, g_x)
    info = HMCInfo(float(np.mean(accept)), prob, int(np.sum(~ok)), float(np.mean(e_new)),
                   float(np.mean(np.sqrt(np.sum(g_new * g_new, axis=1)))))
    return ChainState(x_new, e_new, g_new), info


def init(x, energy) -> ChainState:
    """Initial :class:`ChainState` at ``x`` (n_chains, d)."""
    return init_state(x, energy)


def run(rng: np.random.Generator, x0, energy, step_size: float, n_leapfrog: int, n_steps: int, *,
        keep_samples: bool = False, thin: int = 1) -> RunResult:
    """Run ``n_steps`` HMC steps from ``x0``; ``info['acceptance_rate']`` has one entry per step."""
    eps = check_step_size(step_size)
    n_leapfrog = check_positive_int(n_leapfrog, "n_leapfrog")
    state = init(x0, energy)
    return run_steps(lambda r, s: _step(r, s, energy, eps, n_leapfrog), rng, state, n_steps,
                     keep_samples=keep_samples, thin=thin)
