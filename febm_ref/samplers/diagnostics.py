"""MCMC diagnostics and the statistical harness every sampler is verified with.

Conventions: ``draws`` is an array ``(n_draws, n_chains)`` of a scalar function of the chain
(one column per chain); a 1-D array is one chain.

Effective sample size (multi-chain, Geyer's initial-positive-sequence estimator, as in
Stan / Vehtari et al. 2021 without rank normalisation). With ``W`` the mean within-chain
variance, ``var+ = (n-1)/n W + B/n`` and ``acov_t`` the chain-averaged autocovariance at lag ``t``::

    rho_t = 1 - (W - acov_t) / var+
    Gamma_k = rho_{2k} + rho_{2k+1}     (summed while positive, made monotone)
    tau = -1 + 2 sum_k Gamma_k,         ESS = m n / tau

For an AR(1) chain ``x_t = phi x_{t-1} + e_t``, ``rho_t = phi^t`` and
``tau = (1 + phi) / (1 - phi)``: the closed form the tests use.

Split R-hat (Gelman et al., BDA3): each chain is cut in two halves, ``m' = 2m`` chains of
length ``n' = floor(n/2)``; ``R = sqrt(var+ / W)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.stats

from febm_ref._validation import as_float_array, check_in_interval, check_real_scalar


def _as_draws(draws, name="draws", min_draws=4) -> np.ndarray:
    a = as_float_array(draws, name, ndim=(1, 2))
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[0] < min_draws:
        raise ValueError(f"{name} needs at least {min_draws} draws per chain, got shape {a.shape}")
    return a


def autocovariance(draws) -> np.ndarray:
    """Biased (divide by n) autocovariance of each chain at lags ``0..n-1``, by FFT: ``(n, m)``."""
    a = _as_draws(draws, min_draws=2)
    n = a.shape[0]
    centred = a - a.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n]
    return acov / n


def autocorrelation(draws) -> np.ndarray:
    """Autocorrelation of each chain, ``(n, m)`` (``rho_0 = 1``)."""
    acov = autocovariance(draws)
    return acov / acov[0]


def _mean_autocovariance(a, chunk=256):
    """Chain-averaged autocovariance ``(n,)`` and per-chain variances ``acov_0`` ``(m,)``.

    The same numbers as averaging :func:`autocovariance` over chains, computed with less work:
    the transform is linear, so the chains' power spectra ``|F_j|^2`` are summed first and
    inverted once, ``mean_j acov_j = irfft(sum_j |F_j|^2) / (n m)``; the zero padding is to
    ``scipy.fft.next_fast_len(2n - 1)`` (any length >= 2n - 1 gives the linear, not circular,
    autocovariance) and ``acov_0`` of each chain is its sum of squares / n. Chains are
    transformed ``chunk`` at a time (contiguous rows) to bound the memory.
    """
    import scipy.fft

    n, m = a.shape
    size = scipy.fft.next_fast_len(2 * n - 1, real=True)
    power = np.zeros(size // 2 + 1)
    var0 = np.empty(m)
    for start in range(0, m, chunk):
        centred = np.ascontiguousarray((a[:, start:start + chunk] - a[:, start:start + chunk].mean(axis=0)).T)
        var0[start:start + chunk] = np.einsum("ij,ij->i", centred, centred) / n
        f = scipy.fft.rfft(centred, n=size, axis=1)
        power += (f.real ** 2 + f.imag ** 2).sum(axis=0)
    total = scipy.fft.irfft(power, n=size)[:n]
    return total / (n * m), var0


def effective_sample_size(draws) -> float:
    """Multi-chain effective sample size (module docstring; Geyer initial positive sequence).

    Returns ``m n`` for i.i.d. draws, ``m n (1 - phi)/(1 + phi)`` for AR(1) chains; for
    antithetic chains (``phi < 0``) it may exceed ``m n``. A constant input raises ValueError.
    """
    a = _as_draws(draws)
    n, m = a.shape
    mean_acov, var0 = _mean_autocovariance(a)
    chain_var = var0 * n / (n - 1.0)
    W = float(np.mean(chain_var))
    B_over_n = float(np.var(a.mean(axis=0), ddof=1)) if m > 1 else 0.0
    var_plus = (n - 1.0) / n * W + B_over_n
    if not var_plus > 0:
        raise ValueError("draws are constant: the effective sample size is undefined")
    rho = 1.0 - (W - mean_acov) / var_plus
    rho[0] = 1.0
    # Geyer: pair sums Gamma_k = rho_2k + rho_2k+1, truncated at the first non-positive one
    n_pairs = n // 2
    gamma = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]
    positive = gamma > 0
    k_max = int(np.argmin(positive)) if not positive.all() else n_pairs
    gamma = gamma[:k_max]
    if gamma.size == 0:
        return float(m * n)
    gamma = np.minimum.accumulate(gamma)  # initial monotone sequence
    tau = -1.0 + 2.0 * float(np.sum(gamma))
    # tau >= 1/log10(n m) guards against absurd ESS for strongly antithetic chains (Stan)
    tau = max(tau, 1.0 / math.log10(max(n * m, 10)))
    return float(m * n / tau)


def integrated_autocorrelation_time(draws) -> float:
    """``tau = (n m) / ESS``: the number of steps per effectively independent draw."""
    a = _as_draws(draws)
    return a.size / effective_sample_size(a)


def split_rhat(draws) -> float:
    """Split R-hat over chains (module docstring); ~1 for converged chains, > 1.01 is suspicious."""
    a = _as_draws(draws)
    half = a.shape[0] // 2
    split = np.concatenate([a[:half], a[a.shape[0] - half:]], axis=1)
    n = split.shape[0]
    W = float(np.mean(np.var(split, axis=0, ddof=1)))
    B_over_n = float(np.var(split.mean(axis=0), ddof=1))
    if not W > 0:
        raise ValueError("draws are constant within chains: R-hat is undefined")
    return math.sqrt(((n - 1.0) / n * W + B_over_n) / W)


def acceptance_rate(accepted) -> float:
    """Fraction of accepted proposals (booleans or per-step rates in [0, 1], averaged)."""
    a = as_float_array(accepted, "accepted")
    if a.size == 0:
        raise ValueError("acceptance_rate needs at least one proposal (accepted is empty)")
    if np.any((a < 0) | (a > 1)):
        raise ValueError("accepted must hold booleans or acceptance rates in [0, 1]")
    return float(np.mean(a))


class Estimate(NamedTuple):
    """A Monte Carlo estimate with its ESS-based standard error."""

    value: float
    standard_error: float
    ess: float

    def z_score(self, exact: float) -> float:
        """``(value - exact) / standard_error``."""
        return (self.value - exact) / self.standard_error


def mean_estimate(draws) -> Estimate:
    """Mean over all draws with standard error ``sd / sqrt(ESS)``."""
    a = _as_draws(draws)
    ess = effective_sample_size(a)
    return Estimate(float(a.mean()), float(a.std(ddof=1) / math.sqrt(ess)), ess)


def second_moment_estimate(draws, centre: float) -> Estimate:
    """``E[(x - c)^2]`` about a *known* centre ``c`` (the exact mean) with an ESS-based SE.

    This is the variance estimator of the stationary-law checks: the squared deviations are
    themselves a stationary series, whose ESS gives the standard error.
    """
    a = _as_draws(draws)
    return mean_estimate((a - check_real_scalar(centre, "centre")) ** 2)


def covariance_estimates(samples, mean) -> tuple[np.ndarray, np.ndarray]:
    """Entry-wise ``E[(x_i - m_i)(x_j - m_j)]`` about a known mean and their ESS-based SEs.

    ``samples`` has shape ``(n_draws, n_chains, d)``; returns two ``(d, d)`` arrays.
    """
    s = as_float_array(samples, "samples", ndim=3)
    m = as_float_array(mean, "mean", shape=(s.shape[2],))
    c = s - m
    d = s.shape[2]
    value = np.empty((d, d))
    se = np.empty((d, d))
    for i in range(d):
        for j in range(i, d):
            est = mean_estimate(c[:, :, i] * c[:, :, j])
            value[i, j] = value[j, i] = est.value
            se[i, j] = se[j, i] = est.standard_error
    return value, se


def thin_by_autocorrelation(draws) -> tuple[np.ndarray, int]:
    """Keep every ``k``-th draw of every chain, ``k = ceil(2 tau)``; return (flat sample, k).

    After thinning by twice the integrated autocorrelation time the retained draws are close
    to independent (for AR(1) the lag-k correlation is ``phi^k <= exp(-2 tau (1-phi)) < e^-1`` and
    much smaller for moderate ``phi``), which is what a KS test assumes.
    """
    a = _as_draws(draws)
    k = max(1, int(math.ceil(2.0 * integrated_autocorrelation_time(a))))
    return a[::k].ravel(order="F"), k


class KSResult(NamedTuple):
    """A one-sample Kolmogorov-Smirnov test of thinned MCMC draws."""

    statistic: float
    p_value: float
    critical_value: float   #: KS statistic at significance ``alpha`` for this sample size
    n: int                  #: number of (thinned) draws used
    thin: int               #: thinning interval


def ks_test_thinned(draws, cdf, alpha: float = 1e-3) -> KSResult:
    """KS test of MCMC draws against ``cdf`` (a callable or a scipy.stats distribution name) after
    :func:`thin_by_autocorrelation`, at significance ``0 < alpha < 1``."""
    if not (callable(cdf) or isinstance(cdf, str)):
        raise TypeError(f"cdf must be a callable cdf(x) or a scipy.stats distribution name, got {type(cdf).__name__}")
    alpha = check_in_interval(alpha, "alpha", 0.0, 1.0, closed="()")
    flat, k = thin_by_autocorrelation(draws)
    res = scipy.stats.kstest(flat, cdf)
    crit = float(scipy.stats.kstwo.ppf(1.0 - alpha, flat.size))
    return KSResult(float(res.statistic), float(res.pvalue), crit, int(flat.size), k)
