"""Unadjusted Langevin algorithm, textbook form (docs/theory.md D15).

One step, for every chain independently, with ``z ~ N(0, I)``::

    x <- x - (eps / 2) grad_x E(x) + sqrt(eps) z                                   (D15)

It has no Metropolis correction, so its stationary law is *not* ``exp(-E)/Z``. For a
quadratic energy ``E(x) = (x - m)^T P (x - m) / 2`` the chain is the Gaussian AR(1)
process ``x' - m = A (x - m) + sqrt(eps) z`` with ``A = I - (eps/2) P``; if
``rho(A) < 1`` its stationary law is ``N(m, Sigma_eps)`` where ``Sigma_eps`` solves the
discrete Lyapunov equation ``Sigma = A Sigma A^T + eps I`` (:func:`stationary_covariance`).
In 1-D with ``E = x^2 / (2 s^2)`` this is ``s^2 / (1 - eps / (4 s^2))``
(:func:`stationary_variance_1d`): the bias is ``+eps/4`` to first order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from febm_ref._validation import as_float_array, check_real_scalar
from febm_ref.samplers._base import (
    ChainState,
    RunResult,
    check_chain_state,
    check_energy,
    check_finite_state,
    check_step_size,
    evaluate,
    gaussian_noise,
    init_state,
    run_steps,
)


class ULAInfo(NamedTuple):
    """Diagnostics of one ULA step (at the new points)."""

    mean_energy: float     #: mean over chains of E(x_new)
    mean_grad_norm: float  #: mean over chains of |grad_x E(x_new)|


def step(rng_or_noise, state: ChainState, energy, step_size: float) -> tuple[ChainState, ULAInfo]:
    """One ULA step (D15) of every chain.

    Parameters
    ----------
    rng_or_noise : numpy.random.Generator or array (n, d)
        Source of the standard normal ``z``, or ``z`` itself (pre-drawn).
    state : ChainState
        Current points with cached energy and gradient (:func:`init`).
    energy : object with ``energy(x)`` and ``grad_x(x)``
        The energy model ``E``.
    step_size : float
        ``eps > 0``.

    Returns
    -------
    state : ChainState
    info : ULAInfo

    Raises
    ------
    NonFiniteChainError
        If a new point, its energy or its gradient is NaN/inf.
    TypeError, ValueError
        For a ``state`` that is not a consistent finite :class:`ChainState` (e.g. a raw array),
        an ``energy`` without the energy protocol, or a bad step size or noise.
    """
    check_chain_state(state)
    check_energy(energy)
    return _step(rng_or_noise, state, energy, check_step_size(step_size))


def _step(rng_or_noise, state: ChainState, energy, eps: float) -> tuple[ChainState, ULAInfo]:
    """:func:`step` on a validated state, energy and step size (the loop of :func:`run`)."""
    z = gaussian_noise(rng_or_noise, state.x.shape)
    x_new = state.x - (0.5 * eps) * state.grad_x + np.sqrt(eps) * z
    check_finite_state(x_new, np.zeros(0), None)
    e, g = evaluate(energy, x_new)
    check_finite_state(x_new, e, g)
    with np.errstate(over="ignore"):  # a finite gradient above ~1e154 has an inf norm: reported as is
        info = ULAInfo(float(np.mean(e)), float(np.mean(np.sqrt(np.sum(g * g, axis=1)))))
    return ChainState(x_new, e, g), info


def init(x, energy) -> ChainState:
    """Initial :class:`ChainState` at ``x`` (n_chains, d)."""
    return init_state(x, energy)


BACKENDS = ("numpy", "numba", "numba-parallel")
"""Backends of :func:`run`: ``numpy`` the generic step (any energy); ``numba`` /
``numba-parallel`` the fused loop of :func:`febm_ref.samplers.mlp_langevin.run_ula` (MLP energies)."""


def run(rng: np.random.Generator, x0, energy, step_size: float, n_steps: int, *,
        keep_samples: bool = False, thin: int = 1, backend: str = "numpy", use_blas: bool = True) -> RunResult:
    """Run ``n_steps`` ULA steps (D15) from ``x0`` (n_chains, d); see :class:`RunResult`.

    ``backend`` (:data:`BACKENDS`): ``"numpy"`` (default) runs :func:`step` on any energy;
    ``"numba"`` and ``"numba-parallel"`` run the fused loop for an
    :class:`~febm_ref.models.energies.MLPEnergy` (same arguments, same result, the same chain to
    rounding; ``use_blas`` selects its MLP evaluation), see
    :func:`febm_ref.samplers.mlp_langevin.run_ula`.
    """
    if backend != "numpy":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        from febm_ref.samplers.mlp_langevin import run_ula

        return run_ula(rng, x0, energy, step_size, n_steps, keep_samples=keep_samples, thin=thin,
                       backend=backend, use_blas=use_blas)
    eps = check_step_size(step_size)
    state = init(x0, energy)
    return run_steps(lambda r, s: _step(r, s, energy, eps), rng, state, n_steps,
                     keep_samples=keep_samples, thin=thin)


def stationary_variance_1d(s: float, step_size: float) -> float:
    """Exact stationary variance of ULA on ``E = x^2/(2 s^2)``: ``s^2 / (1 - eps/(4 s^2))`` (D15).

    Requires ``eps < 4 s^2`` (otherwise the AR(1) chain ``x' = (1 - eps/(2 s^2)) x + sqrt(eps) z``
    is not stable and has no stationary law).
    """
    s = check_real_scalar(s, "s", positive=True)
    eps = check_step_size(step_size)
    if not eps < 4.0 * s * s:
        raise ValueError(f"ULA on x^2/(2 s^2) is unstable for step_size >= 4 s^2 = {4 * s * s}; got {eps}")
    return s * s / (1.0 - eps / (4.0 * s * s))


def stationary_covariance(precision, step_size: float) -> np.ndarray:
    """Exact stationary covariance of ULA on ``E = (x-m)^T P (x-m) / 2`` (D15).

    ``Sigma`` solves the discrete Lyapunov equation ``Sigma = A Sigma A^T + eps I`` with
    ``A = I - (eps/2) P``. With ``P = V diag(lam) V^T`` (symmetric eigendecomposition) ``A`` is
    diagonal in the same basis, ``a_i = 1 - eps lam_i / 2``, and the solution is the closed form

        ``Sigma = V diag(1 / (lam_i (1 - eps lam_i / 4))) V^T``,

    since ``1 - a_i^2 = eps lam_i (1 - eps lam_i / 4)``. This form has no cancellation: it stays
    exact where ``a_i`` rounds to 1 (``eps lam_i`` below the unit roundoff, e.g. ``P = 1e-300 I``),
    where a solver of the Lyapunov equation in ``A`` would see a spectral radius of 1. The
    stationary mean is ``m`` (ULA is unbiased for the mean of a quadratic energy).

    Raises
    ------
    ValueError
        If ``P`` is not a symmetric positive definite ``(d, d)`` matrix, or ``eps lam_max >= 4``
        (then ``|a_i| >= 1``: no stationary law; reduce the step size below ``4 / lambda_max(P)``).
    """
    P = as_float_array(precision, "precision", ndim=2, nonempty=True)
    eps = check_step_size(step_size)
    d = P.shape[0]
    if P.shape != (d, d):
        raise ValueError(f"precision must be square, got shape {P.shape}")
    if not np.allclose(P, P.T, rtol=1e-12, atol=1e-12 * np.max(np.abs(P))):
        raise ValueError("precision must be symmetric")
    lam, V = np.linalg.eigh(0.5 * (P + P.T))
    if not lam[0] > 0:
        raise ValueError(f"precision must be positive definite, smallest eigenvalue {lam[0]}")
    if not eps * lam[-1] < 4.0:
        raise ValueError(f"ULA is unstable for this precision and step size: eps lambda_max(P) = {eps * lam[-1]} "
                         f">= 4 (the spectral radius of I - eps P/2 is >= 1); use step_size < 4 / lambda_max(P) = "
                         f"{4 / lam[-1]}, got step_size {eps}")
    with np.errstate(over="ignore"):  # a variance above 1.8e308 is +inf in float64
        s = 1.0 / (lam * (1.0 - 0.25 * eps * lam))
    sigma = (V * s) @ V.T
    return 0.5 * (sigma + sigma.T)
