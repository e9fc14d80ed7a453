"""Exact (i.i.d.) sampling where the energy is Gaussian (docs/theory.md section 4; the paper's
1-D experiment draws its model samples this way).

For ``E(x) = (x - m)^T P (x - m) / 2`` the law ``exp(-E)/Z`` is ``N(m, P^{-1})``. With the
Cholesky factor ``P = L L^T``, ``x = m + L^{-T} z`` (``z ~ N(0, I)``) has covariance
``L^{-T} L^{-1} = P^{-1}``, so no inverse is formed. From a covariance ``S = C C^T``,
``x = m + C z``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from febm_ref._validation import as_float_array, check_generator, check_positive_int


def _mean_and_matrix(mean, matrix, name):
    m = as_float_array(mean, "mean", ndim=1, nonempty=True)
    M = as_float_array(matrix, name, ndim=2)
    d = m.shape[0]
    if M.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}) to match mean, got {M.shape}")
    if not np.allclose(M, M.T, rtol=1e-12, atol=1e-14 * max(1.0, float(np.max(np.abs(M))))):
        raise ValueError(f"{name} must be symmetric")
    try:
        chol = np.linalg.cholesky(M)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"{name} must be positive definite (Cholesky failed)") from exc
    return m, chol


def sample_gaussian(rng: np.random.Generator, mean, cov, n: int) -> np.ndarray:
    """``n`` i.i.d. draws ``(n, d)`` from ``N(mean, cov)`` (``x = m + C z``, ``cov = C C^T``)."""
    check_generator(rng)
    n = check_positive_int(n, "n")
    m, chol = _mean_and_matrix(mean, cov, "cov")
    z = rng.standard_normal((n, m.shape[0]))
    return m + z @ chol.T


def sample_quadratic(rng: np.random.Generator, mean, precision, n: int) -> np.ndarray:
    """``n`` i.i.d. draws from ``exp(-(x-m)^T P (x-m)/2)/Z = N(m, P^{-1})`` (``x = m + L^{-T} z``)."""
    check_generator(rng)
    n = check_positive_int(n, "n")
    m, chol = _mean_and_matrix(mean, precision, "precision")
    z = rng.standard_normal((n, m.shape[0]))
    # rows: x_i = m + L^{-T} z_i  <=>  L^T x_i' = z_i
    y = scipy.linalg.solve_triangular(chol, z.T, lower=True, trans="T")
    return m + y.T


def sample_gaussian_1d(rng: np.random.Generator, mu: float, sigma: float, n: int) -> np.ndarray:
    """``n`` draws ``(n, 1)`` from the 1-D Gaussian energy ``E = ((x - mu)/sigma)^2 / 2``."""
    from febm_ref._validation import check_real_scalar

    check_generator(rng)
    n = check_positive_int(n, "n")
    mu = check_real_scalar(mu, "mu")
    sigma = check_real_scalar(sigma, "sigma", positive=True)
    return (mu + sigma * rng.standard_normal(n)).reshape(n, 1)


def sample(rng: np.random.Generator, energy, n: int) -> np.ndarray:
    """Exact draws from a Gaussian energy object.

    Uses ``energy.sample(rng, n)`` if the object has it; otherwise its ``mean`` and
    ``precision`` (or ``cov``) attributes. Raises TypeError for an energy that cannot be
    sampled exactly (use ULA/MALA/HMC instead).
    """
    own = getattr(energy, "sample", None)
    if callable(own):
        return np.asarray(own(rng, n), dtype=np.float64)
    mean = getattr(energy, "mean", None)
    if mean is not None and getattr(energy, "precision", None) is not None:
        return sample_quadratic(rng, np.atleast_1d(mean), np.atleast_2d(energy.precision), n)
    if mean is not None and getattr(energy, "cov", None) is not None:
        return sample_gaussian(rng, np.atleast_1d(mean), np.atleast_2d(energy.cov), n)
    raise TypeError(f"energy ({type(energy).__name__}) cannot be sampled exactly: it has no sample(rng, n) "
                    "method nor mean/precision attributes; use an MCMC sampler (ula, mala, hmc)")
