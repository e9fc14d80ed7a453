"""Exact and numerical f-divergences, with Gaussians as the exactly solvable case (docs/theory.md section 3).

Everything here evaluates the f-divergence of D2, data first,

    D_f(P || Q) = E_q[ f(p(x)/q(x)) ] = ∫ q(x) f(p(x)/q(x)) dx,

in one of three ways:

* :func:`f_divergence` -- the closed form between ``P = N(m_p, S_p)`` and
  ``Q = N(m_q, S_q)`` in any dimension, for every catalogue divergence except
  Jensen-Shannon (which has none; it raises a ``ValueError`` pointing to the two
  numerical routes below). ``+inf`` is returned exactly where the integral diverges.
* :func:`f_divergence_quadrature_1d` / :func:`f_divergence_quadrature_2d` -- adaptive
  quadrature of the integrand ``q f(p/q)`` (``Divergence.perspective``, computed from the
  log densities) for *any* divergence and *any* densities given as log-density callables,
  returning an :class:`IntegralEstimate` ``(value, error)``.
  :func:`f_divergence_quadrature_gaussians` builds the log densities, the integration box
  and the break points for two Gaussians in 1-D or 2-D.
* :func:`f_divergence_monte_carlo` (any log densities, samples from a proposal) and
  :func:`f_divergence_monte_carlo_gaussians` -- importance-sampling estimates returning
  a :class:`MonteCarloEstimate` ``(value, standard_error)``, for d > 2.

Closed forms (docs/theory.md section 3)
---------------------------------------
All closed forms are evaluated in the *relative eigenbasis* of the pair, in log form.
The affine map ``x -> L_q^{-1}(x - m_q)`` (``S_q = L_q L_q^T``; it leaves every
f-divergence unchanged) sends ``Q`` to ``N(0, I)`` and ``P`` to ``N(delta, A A^T)``,
``A = L_q^{-1} L_p``, ``delta = L_q^{-1}(m_p - m_q)``; the SVD ``A = U diag(sigma) V^T``
rotates to ``P = N(U^T delta, diag(lambda))``, ``lambda_i = sigma_i^2`` the generalised
eigenvalues of ``(S_p, S_q)``: d independent 1-D pairs. What is stored per direction
(:class:`_RelativeSpectrum`) is ``l_i = log lambda_i``, ``t_i/2 = (U^T delta)_i^2/2`` and
``log(t_i/2)``, never ``lambda_i`` or ``1/lambda_i`` (which overflow for variance ratios
beyond 1e308, and lose all digits of ``lambda - 1`` near 1 or of ``log(1 + (lambda - 1))``
near 0). How they are computed without over/underflow (:func:`_relative_spectrum`):

* 1-D: ``l = log(v_p/v_q)``, or ``log1p((v_p - v_q)/v_q)`` for ``1/2 < lambda < 2`` (the
  difference is exact), or ``log v_p - log v_q`` outside the normal range;
* d-D: exact power-of-2 diagonal scaling of both covariances before Cholesky, the diagonal
  ratio factored out as a power of 2, one-sided Jacobi SVD (relative accuracy per singular
  value, also for graded covariances), ``l_i = 2 log sigma_i + 2c log 2``; for nearly equal
  covariances ``lambda_i - 1`` from the eigenvalues of ``L_q^{-1}(S_p - S_q)L_q^{-T}``;
* the shifts from the mean difference scaled by a power of 2 (half of it if it overflows).

With ``phi(l) = e^l - 1 - l >= 0`` (Taylor series for ``|l| < 1/2``):

* KL (P||Q) ``= sum_i [t_i/2 + phi(l_i)/2]`` (= the tr/Mahalanobis/log-det formula): a sum of
  non-negative terms; reverse KL ``= KL(Q||P)`` from the spectrum of ``(Q, P)``.
* alpha family ``D_a = (I_a - 1)/(a(a-1))``, ``I_a = ∫ p^a q^{1-a}``. With ``b = 1 - a``,
  ``s_i = a + b lambda_i`` (completing the square per direction)

      log I_a = sum_i [ -a b t_i/(2 s_i) - (log s_i - b l_i)/2 ] =: -b J,

  ``J = sum_i [a t_i/(2 s_i) + chi_i/2] >= 0`` with ``chi_i = (log s_i - b l_i)/b >= 0``
  (:func:`_chi`: ``phi(l) + e h1(b e)``, ``e = expm1 l``, ``h1(x) = (log1p x - x)/x``, or a
  log-sum form where those would cancel), and ``D = J E(-bJ)/a`` with
  ``E(y) = expm1(y)/y`` (or ``-expm1(-bJ)/(ab)``, or ``exp(...)`` in logs near overflow;
  :func:`_alpha_from_j`). For ``a < 1/2`` the symmetry ``D_a(P||Q) = D_{1-a}(Q||P)`` is
  used with the spectrum of ``(Q, P)``, so that ``a >= 1/2`` always. ``a = 1`` and ``a = 0``
  are the KL and reverse-KL limits (the alpha generator differs from ``kl``'s by a linear
  term, which does not change the divergence of normalised densities).
* pearson_chi2 ``= ∫p^2/q - 1 = 2 D_{a=2}``; neyman_chi2 ``= ∫q^2/p - 1 = 2 D_{a=-1}``;
  squared_hellinger ``= 2(1 - ∫sqrt(pq)) = D_{a=1/2}/2``.

Finiteness: ``I_a`` is finite iff every ``s_i > 0`` (equivalently ``a S_q + (1-a) S_p`` is
positive definite); ``+inf`` is returned if either test says "not positive definite" (the
``s_i``, or a Cholesky factorisation of ``a S_q + (1-a) S_p`` formed from the inputs, scaled
by a power of 2). In 1-D ``s`` is computed in exact rational arithmetic, so the boundary
(e.g. Pearson at ``var_p = 2 var_q``) is decided exactly and values just inside it are
accurate; in d-D cases within ``~kappa eps`` of the boundary may be classified either way.

Accuracy (tests/test_gaussians_domain.py against 50+-digit mpmath of the matrix formulas,
febm_ref/verification/mp_gaussians.py): relative error <= 1e-12 wherever the value is a normal
float -- variances 1e-300..1e300, means up to 1e300, alpha near 0 and 1 -- measured max
~2e-13 in 1-D and ~3e-13 in 2-D/3-D (condition numbers <= 100 of each covariance after
diagonal scaling); exactly ``+inf`` where the integral diverges or the value overflows.
In d-D the error grows like ``eps * kappa`` with the condition number of the scaled
covariances and like ``eps kappa / s_min`` near the boundary of finiteness (any
backward-stable eigensolver does).
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from scipy import linalg

from febm_ref._validation import (
    as_float_array,
    check_callable,
    check_choice,
    check_generator,
    check_positive_int,
    check_real_scalar,
)
from febm_ref.divergences import Divergence, resolve_divergence
from febm_ref.quadrature import check_method, integrate_pieces

__all__ = [
    "IntegralEstimate",
    "MonteCarloEstimate",
    "has_closed_form",
    "power_exponent",
    "f_divergence",
    "gaussian_log_density",
    "f_divergence_quadrature_1d",
    "f_divergence_quadrature_2d",
    "f_divergence_quadrature_gaussians",
    "f_divergence_monte_carlo",
    "f_divergence_monte_carlo_gaussians",
]

LOG_2PI = math.log(2.0 * math.pi)
_SYMMETRY_RTOL = 1e-10


class IntegralEstimate(NamedTuple):
    """A quadrature result: ``value`` and an absolute ``error`` estimate (unpacks as a tuple)."""

    value: float
    error: float


class MonteCarloEstimate(NamedTuple):
    """A Monte Carlo result: ``value`` and its ``standard_error`` (unpacks as a tuple)."""

    value: float
    standard_error: float


# ----------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------

class _Gaussian(NamedTuple):
    mean: np.ndarray      # (d,)
    cov: np.ndarray       # (d, d), exactly symmetric
    chol: np.ndarray      # (d, d) lower Cholesky factor
    scalar: bool          # given as scalar mean and scalar variance


def _parse_gaussian(mean, cov, which: str) -> _Gaussian:
    """Validate one Gaussian: ``mean`` (scalar or (d,)) and ``cov`` (variance or (d, d)).

    ``which`` is the suffix of the argument names in messages (``"p"`` -> ``mean_p``,
    ``cov_p``; ``""`` -> ``mean``, ``cov``).
    """
    mn, cn = ("mean_" + which, "cov_" + which) if which else ("mean", "cov")
    m = as_float_array(mean, mn, ndim=(0, 1))
    S = as_float_array(cov, cn, ndim=(0, 1, 2))
    scalar = m.ndim == 0
    d = 1 if scalar else m.shape[0]
    if d == 0:
        raise ValueError(f"{mn} is empty; pass a scalar (1-D) or a vector of length d >= 1")
    if S.ndim == 0 or S.shape == (1,):
        if d != 1:
            raise ValueError(f"{cn} is a scalar variance but {mn} has length {d}; "
                             f"pass a ({d}, {d}) covariance matrix")
        S = S.reshape(1, 1)
    elif S.ndim == 1:
        raise ValueError(f"{cn} has shape {S.shape}; pass a ({d}, {d}) covariance matrix "
                         "(for a diagonal covariance use np.diag(variances))")
    if S.shape != (d, d):
        raise ValueError(f"{cn} has shape {S.shape} but {mn} has length {d}; "
                         f"pass a ({d}, {d}) covariance matrix")
    scale = float(np.max(np.abs(S)))
    with np.errstate(over="ignore"):
        asym = float(np.max(np.abs(S - S.T)))
    if asym > _SYMMETRY_RTOL * scale:
        raise ValueError(f"{cn} is not symmetric (max |S - S^T| = {asym:.3g}, max |S| = "
                         f"{scale:.3g}); pass a symmetric matrix, e.g. (S + S.T) / 2")
    # (S + S^T)/2 would overflow near 1.8e308 and halving loses subnormal entries: exact if symmetric
    S = np.where(S == S.T, S, 0.5 * S + 0.5 * S.T)
    if d == 1 and not S[0, 0] > 0:
        raise ValueError(f"the variance {cn} = {float(S[0, 0])!r} is not > 0; pass a positive variance")
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise ValueError(f"{cn} is not positive definite (its Cholesky factorisation "
                         "failed); pass a symmetric positive-definite covariance matrix") from None
    return _Gaussian(m.reshape(d), S, L, scalar)


def _parse_pair(mean_p, cov_p, mean_q, cov_q) -> Tuple[_Gaussian, _Gaussian]:
    P = _parse_gaussian(mean_p, cov_p, "p")
    Q = _parse_gaussian(mean_q, cov_q, "q")
    if P.mean.shape != Q.mean.shape:
        raise ValueError(f"mean_p/cov_p have dimension {P.mean.shape[0]} but mean_q/cov_q have dimension "
                         f"{Q.mean.shape[0]}; pass two Gaussians on the same space (same dimension)")
    return P, Q


def _resolve(div, params) -> Divergence:
    if not isinstance(div, (Divergence, str)):
        raise TypeError(f"div must be a Divergence or a divergence name (febm_ref.DIVERGENCE_NAMES), "
                        f"got {type(div).__name__}")
    return resolve_divergence(div, **params)


# ----------------------------------------------------------------------------------
# Closed forms
# ----------------------------------------------------------------------------------

def power_exponent(div: Divergence) -> Optional[float]:
    """The exponent ``a`` such that ``D_f`` is an affine function of ``∫ p^a q^{1-a}``.

    Returns ``alpha`` for the alpha family with ``alpha`` not in {0, 1}, ``2`` for
    pearson_chi2, ``-1`` for neyman_chi2, ``1/2`` for squared_hellinger and ``None``
    otherwise (KL, reverse KL, Jensen-Shannon, alpha = 0 or 1).
    """
    div = _resolve(div, {})
    fixed = {"pearson_chi2": 2.0, "neyman_chi2": -1.0, "squared_hellinger": 0.5}
    if div.name in fixed:
        return fixed[div.name]
    if div.name == "alpha" and div.alpha not in (0.0, 1.0):
        return float(div.alpha)
    return None


def has_closed_form(div, **params) -> bool:
    """True iff :func:`f_divergence` has a closed form for ``div`` (all but Jensen-Shannon)."""
    d = _resolve(div, params)
    return d.name in ("kl", "reverse_kl", "squared_hellinger", "pearson_chi2", "neyman_chi2", "alpha")


# ----------------------------------------------------------------------------------
# Scalar building blocks of the closed forms (all vectorised over the d directions)
# ----------------------------------------------------------------------------------

LOG2 = math.log(2.0)
_TINY = float(np.finfo(np.float64).tiny)
# Coefficients 2/(2k+1), k = 1..14, of the atanh series used by _h1.
_ATANH_TAIL = 2.0 / (2.0 * np.arange(1, 15) + 1.0)
# 1/k!, k = 2..19, for the series of phi(l) = e^l - 1 - l.
_EXP_TAIL = np.array([1.0 / math.factorial(k) for k in range(2, 20)])


def _phi(l: np.ndarray) -> np.ndarray:
    """``phi(l) = e^l - 1 - l >= 0`` (``= lambda - 1 - log lambda`` for ``l = log lambda``).

    For ``|l| < 1/2`` the Taylor series ``sum_{k>=2} l^k/k!`` (18 terms, truncation
    ``< 0.5^18/20! < 1e-23`` relative) avoids the cancellation of ``expm1(l) - l``; for
    ``|l| >= 1/2``, ``expm1(l) - l`` cancels by at most a factor
    ``(|expm1 l| + |l|)/phi(l) <= 7.6`` (worst at ``l = -1/2``), i.e. a few ulps.
    """
    l = np.asarray(l, dtype=np.float64)
    out = np.empty_like(l)
    small = np.abs(l) < 0.5
    ls = l[small]
    acc = np.zeros_like(ls)
    for c in _EXP_TAIL[::-1]:
        acc = acc * ls + c
    out[small] = ls * ls * acc
    ll = l[~small]
    with np.errstate(over="ignore"):
        out[~small] = np.expm1(ll) - ll
    return out


def _half_phi(l: np.ndarray) -> np.ndarray:
    """``phi(l)/2``, finite also for ``709.78 < l < 710.47`` where ``e^l`` overflows but
    ``e^l/2`` does not (there ``exp(l - log 2) - (1 + l)/2``)."""
    l = np.asarray(l, dtype=np.float64)
    big = l > 700.0
    out = 0.5 * _phi(np.where(big, 0.0, l))
    with np.errstate(over="ignore"):
        out[big] = np.exp(l[big] - LOG2) - 0.5 * (1.0 + l[big])
    return out


def _h1(x: np.ndarray) -> np.ndarray:
    """``h1(x) = (log(1 + x) - x)/x`` for ``x > -1`` (``h1(0) = 0``), to a few ulps.

    For ``|x| < 1/4`` put ``t = x/(2 + x)`` (so ``log(1+x) = 2 atanh t``, ``x = 2t/(1-t)``):
    ``log(1+x) - x = -2t^2/(1-t) + sum_{k>=1} 2 t^{2k+1}/(2k+1)`` and dividing by ``x``,
    ``h1 = -t + t^2 (1 - t) S/2``, ``S = sum_{k>=1} 2 t^{2k-2}/(2k+1)`` -- two terms of
    which the second is ``<= |t|/3.5``, so no cancellation and no underflow of ``x^2``
    for tiny ``x`` (``h1 ~ -x/2``). Elsewhere ``log1p(x)/x - 1`` loses at most a digit.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    small = np.abs(x) < 0.25
    xs = x[small]
    t = xs / (2.0 + xs)
    t2 = t * t
    tail = np.zeros_like(t)
    for c in _ATANH_TAIL[::-1]:          # Horner in t^2: sum_k c_k t^{2k-2}
        tail = tail * t2 + c
    out[small] = -t + 0.5 * t2 * (1.0 - t) * tail
    xl = x[~small]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[~small] = np.log1p(xl) / xl - 1.0
    return out


def _expm1_ratio(y: float) -> float:
    """``E(y) = (e^y - 1)/y`` (``E(0) = 1``), accurate to a few ulps for ``y <= 709``."""
    if y == 0.0:
        return 1.0
    return math.expm1(y) / y


class _RelativeSpectrum(NamedTuple):
    """The pair in its relative eigenbasis: P = N(delta, diag(lambda)), Q = N(0, I).

    Stored in log form so that no entry over- or underflows where the divergence does not:
    ``log_lam = log lambda_i`` (generalised eigenvalues of (S_p, S_q)), ``half_t =
    delta_i^2/2`` (``inf`` if that overflows) and ``log_half_t = log(delta_i^2/2)``
    (``-inf`` for a zero shift; finite wherever ``delta_i != 0``).
    """

    log_lam: np.ndarray
    half_t: np.ndarray
    log_half_t: np.ndarray


def _shift_terms(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(delta^2/2, log(delta^2/2))`` for ``delta = z 2^k`` (z moderate, k any integer)."""
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        half_t = np.ldexp(0.5 * z * z, 2 * k)
        log_half_t = 2.0 * np.log(np.abs(z)) + (2 * k - 1) * LOG2
    return half_t, log_half_t


def _exponent(x: np.ndarray) -> np.ndarray:
    """The integer ``k`` with ``2^(k-1) <= |x| < 2^k`` (``frexp``'s exponent; 0 for 0)."""
    return np.frexp(x)[1].astype(np.int64)


def _mean_difference(P: _Gaussian, Q: _Gaussian) -> tuple[np.ndarray, int]:
    """``(D, k)`` with ``m_p - m_q = D 2^k`` and ``D`` finite: halved if the difference overflows."""
    with np.errstate(over="ignore"):
        diff = P.mean - Q.mean
    if np.all(np.isfinite(diff)):
        return diff, 0
    return 0.5 * P.mean - 0.5 * Q.mean, 1


def _relative_spectrum_1d(P: _Gaussian, Q: _Gaussian) -> _RelativeSpectrum:
    """1-D: ``log lambda`` from ``vp/vq`` (or ``log1p((vp - vq)/vq)`` for ``1/2 < lambda < 2``,
    where ``vp - vq`` is exact by Sterbenz's lemma, or ``log vp - log vq`` where the ratio
    leaves the normal range: abs. error ``<= 2 eps |log lambda|``); ``delta = (m_p - m_q)/sd_q``."""
    vp, vq = float(P.cov[0, 0]), float(Q.cov[0, 0])
    r = vp / vq
    if math.isfinite(r) and r >= _TINY:
        log_lam = math.log1p((vp - vq) / vq) if 0.5 < r < 2.0 else math.log(r)
    else:
        log_lam = math.log(vp) - math.log(vq)
    diff, k = _mean_difference(P, Q)
    # delta = diff 2^k / sqrt(vq): split vq = m 2^(2j) exactly so that z = diff/sqrt(m) 2^-j
    # is computed with scaling by powers of 2 only (no overflow of the quotient)
    j = int(_exponent(np.array([vq]))[0]) // 2
    kd = int(_exponent(diff)[0])
    z = np.ldexp(diff, -kd) / math.sqrt(math.ldexp(vq, -2 * j))
    half_t, log_half_t = _shift_terms(z, k + kd - j)
    return _RelativeSpectrum(np.array([log_lam]), half_t, log_half_t)


def _one_sided_jacobi(B: np.ndarray, sweeps: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """``(U, sigma)`` with ``B = U diag(sigma) V^T`` by one-sided (Hestenes) Jacobi rotations.

    Columns are rotated pairwise until mutually orthogonal (``|b_i . b_j| <= eps ||b_i||
    ||b_j||``); then ``sigma_i = ||b_i||`` and ``U`` has the normalised columns. Unlike the
    bidiagonalising SVD, whose error is ``eps sigma_max`` for every ``sigma_i``, this is
    accurate *relative to each* ``sigma_i`` when ``B`` is a well-conditioned matrix times a
    diagonal (Demmel & Veselic 1992), e.g. ``S_p`` diagonal with entries 1e-300 and 1.
    """
    B = np.array(B, dtype=np.float64)
    n = B.shape[1]
    for _ in range(sweeps):
        rotated = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                # dot products of the columns scaled by powers of 2 (b = b~ 2^e): no underflow
                ei, ej = int(_exponent(np.max(np.abs(B[:, i])))), int(_exponent(np.max(np.abs(B[:, j]))))
                bi_s, bj_s = np.ldexp(B[:, i], -ei), np.ldexp(B[:, j], -ej)
                alpha, beta, gamma = float(bi_s @ bi_s), float(bj_s @ bj_s), float(bi_s @ bj_s)
                if abs(gamma) <= 2.2e-16 * math.sqrt(alpha * beta) or gamma == 0.0:
                    continue
                rotated = True
                with np.errstate(over="ignore"):  # zeta = (beta - alpha)/(2 gamma) of the unscaled columns
                    zeta = float((np.ldexp(beta, ej - ei) - np.ldexp(alpha, ei - ej)) / (2.0 * gamma))
                if abs(zeta) > 1e30:
                    # t ~ 1/(2 zeta) < 1e-30: cos = 1 and the rotation is the projection of the
                    # smaller column off the larger one (the larger changes by < 1e-30 relative);
                    # formed from the scaled columns, so that t itself may underflow harmlessly
                    if 2 * ej + math.log2(beta) > 2 * ei + math.log2(alpha):   # ||b_j|| > ||b_i||
                        B[:, i] = B[:, i] - np.ldexp((gamma / beta) * bj_s, ei)
                    else:
                        B[:, j] = B[:, j] - np.ldexp((gamma / alpha) * bi_s, ej)
                    continue
                t = math.copysign(1.0, zeta) / (abs(zeta) + math.hypot(1.0, zeta))
                cs = 1.0 / math.hypot(1.0, t)
                sn = cs * t
                bi = B[:, i].copy()
                B[:, i] = cs * bi - sn * B[:, j]
                B[:, j] = sn * bi + cs * B[:, j]
        if not rotated:
            break
    scale = np.max(np.abs(B), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.where(scale > 0, scale * np.linalg.norm(B / np.where(scale > 0, scale, 1.0), axis=0), 0.0)
        U = B / sigma
    return U, sigma


def _relative_spectrum(P: _Gaussian, Q: _Gaussian) -> _RelativeSpectrum:
    """``log lambda_i`` and the shifts of P relative to Q, without over- or underflow.

    Exact power-of-2 scaling first: with ``T_q = diag(2^-kq_i)``, ``2^(2 kq_i) ~ (S_q)_ii``,
    and ``T_p`` likewise, ``C_q C_q^T = T_q S_q T_q`` and ``C_p C_p^T = T_p S_p T_p`` are
    Cholesky factors of matrices with unit-sized diagonals (Cholesky is accurate relative
    to the condition number of these *scaled* matrices). Then ``L_q^-1 L_p =
    C_q^-1 G C_p`` with ``G = T_q T_p^-1 = 2^c G'``, ``G' = diag(2^(kp_i - kq_i - c))``,
    ``c = max_i (kp_i - kq_i)``, so the SVD ``C_q^-1 G' C_p = U diag(sigma) V^T`` never
    overflows and ``log lambda_i = 2 log sigma_i + 2c log 2`` (a diagonal pair is exact).
    The shifts are ``U^T C_q^-1 T_q (m_p - m_q)``, scaled by a power of 2 as well. When every
    ``lambda_i`` lies in (1/4, 9/4) the excess ``mu_i = lambda_i - 1`` is instead taken
    from the eigenvalues of ``C_q^-1 T_q (S_p - S_q) T_q C_q^-T`` (the difference of the
    inputs is formed entrywise, rounding relative to the difference), and
    ``log lambda_i = log1p(mu_i)``: nearly equal pairs keep their relative accuracy.
    """
    d = P.mean.shape[0]
    if d == 1:
        return _relative_spectrum_1d(P, Q)
    kq, kp = _exponent(np.diag(Q.cov)) // 2, _exponent(np.diag(P.cov)) // 2
    q_shift = -(kq[:, None] + kq[None, :])
    with np.errstate(under="ignore"):
        Sq = np.ldexp(Q.cov, q_shift)
        Sp = np.ldexp(P.cov, -(kp[:, None] + kp[None, :]))
    try:
        Cq, Cp = np.linalg.cholesky(Sq), np.linalg.cholesky(Sp)
    except np.linalg.LinAlgError:  # pragma: no cover - the inputs passed the same test unscaled
        raise ValueError("a covariance is not positive definite after exact diagonal scaling; "
                         "pass well-conditioned symmetric positive-definite covariances") from None
    c = int(np.max(kp - kq))
    with np.errstate(under="ignore"):
        B = linalg.solve_triangular(Cq, np.ldexp(1.0, kp - kq - c)[:, None] * Cp, lower=True)
    U, sigma = _one_sided_jacobi(B)
    with np.errstate(divide="ignore"):
        log_lam = 2.0 * np.log(sigma) + 2 * c * LOG2
    if np.all(np.abs(log_lam) < math.log(2.25)):
        E = np.ldexp(P.cov, q_shift) - Sq
        X = linalg.solve_triangular(Cq, E, lower=True)
        M = linalg.solve_triangular(Cq, X.T, lower=True)
        mu, U = np.linalg.eigh(0.5 * (M + M.T))
        log_lam = np.log1p(mu)
    if not np.all(np.isfinite(log_lam)):
        raise ValueError("a generalised eigenvalue of (cov_p, cov_q) underflowed: the ratio of the "
                         "covariances spans more than the float64 range; rescale the coordinates")
    diff, k = _mean_difference(P, Q)
    kd = int(np.max(_exponent(diff) - kq)) if np.any(diff != 0) else 0
    with np.errstate(under="ignore"):
        scaled = np.ldexp(diff, -kq - kd)
    z = U.T @ linalg.solve_triangular(Cq, scaled, lower=True)
    half_t, log_half_t = _shift_terms(z, k + kd)
    return _RelativeSpectrum(log_lam, half_t, log_half_t)


def _kl_from_spectrum(spec: _RelativeSpectrum) -> float:
    """``KL(P||Q) = sum_i [t_i/2 + phi(l_i)/2]`` with ``phi(l) = e^l - 1 - l`` (D2 closed form).

    From the textbook form ``(1/2)[tr(S_q^-1 S_p) + t - d - log det(S_q^-1 S_p)]`` in the
    relative eigenbasis: ``tr = sum lambda_i``, ``log det = sum l_i``, so each direction
    contributes ``(t_i + lambda_i - 1 - log lambda_i)/2``: non-negative terms, no cancellation
    in the sum, and ``phi`` is evaluated without cancellation (:func:`_phi`).
    """
    with np.errstate(over="ignore"):
        return float(np.sum(spec.half_t) + np.sum(_half_phi(spec.log_lam)))


def _log_s(b: float, log_lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s_i, log s_i)``, ``s_i = a + b lambda_i = 1 + b (lambda_i - 1)`` with ``a = 1 - b``.

    ``s = 1 + b expm1(l)``, ``log s = log1p(b expm1(l))``; for ``b > 0`` and ``l > 700``
    (``lambda`` may overflow) ``log s = logaddexp(log1p(-b), log b + l)`` and ``s = e^{log s}``.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x = b * np.expm1(np.minimum(log_lam, 700.0))
        s, log_s = 1.0 + x, np.log1p(x)
        if b > 0:
            big = log_lam > 700.0
            log_s = np.where(big, np.logaddexp(math.log1p(-b), math.log(b) + log_lam), log_s)
            s = np.where(big, np.exp(log_s), s)
    return s, log_s


def _chi(b: float, log_lam: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """``chi_i = (log s_i - b l_i)/b >= 0``, the log-determinant part of ``-log I_a / b``.

    With ``e = expm1(l)`` and ``x = b e``: ``log s - b l = log1p(x) - b l = h(x) + b phi(l)``
    where ``h(x) = log1p(x) - x = x h1(x)``, hence ``chi = phi(l) + e h1(b e)``. For ``b < 0``
    both terms are ``>= 0`` (no cancellation for any ``l``); for ``0 < b <= 1/2`` they have
    opposite signs but cancel by at most ``1/(1-b) <= 2`` while ``l <= 1``. For ``b > 0`` and
    ``l > 1`` (where ``e`` and ``-e h1`` would cancel) ``chi = e L1(x) - l`` with
    ``L1(x) = log1p(x)/x = 1 + h1(x)`` while ``x < 1`` (cancellation ``<= e/(e - l) < 2.4``),
    else ``chi = log s / b - l`` (``log s >= log 2`` and ``b l <= 1/2`` there).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.expm1(np.minimum(log_lam, 709.0))
        x = b * e
        out = _phi(np.minimum(log_lam, 709.0)) + e * _h1(np.maximum(x, -1.0))
        if b > 0:
            big = log_lam > 1.0
            lb = log_lam[big]
            via_l1 = e[big] * (1.0 + _h1(np.where(x[big] < 1.0, x[big], 0.0))) - lb
            via_log = log_s[big] / b - lb
            out[big] = np.where((x[big] < 1.0) & (lb <= 709.0), via_l1, via_log)
    return out


def _t_term(a: float, spec: _RelativeSpectrum, s: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """``a t_i/(2 s_i)``, directly where nothing leaves the normal range, else from logs
    (``exp(log a + log(t_i/2) - log s_i)``, abs. error of the exponent ``<~ 2e3 eps``)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        direct = a * (spec.half_t / s)
        via_logs = np.exp(math.log(a) + spec.log_half_t - log_s)
        ok = (np.isfinite(direct) & (direct >= _TINY)) | (spec.log_half_t == -math.inf)
        return np.where(ok, np.where(spec.log_half_t == -math.inf, 0.0, direct), via_logs)


def _tilted_covariance_is_pd(a: float, P: _Gaussian, Q: _Gaussian) -> bool:
    """Cholesky test of ``M_a = a S_q + (1-a) S_p`` (``<=> a S_p^-1 + (1-a) S_q^-1 > 0``),
    after dividing both covariances by one power of 2 (no overflow of ``a S``)."""
    if 0.0 <= a <= 1.0:
        return True
    k = int(_exponent(np.array([max(np.max(np.abs(P.cov)), np.max(np.abs(Q.cov)))]))[0])
    with np.errstate(under="ignore", over="ignore"):
        M = a * np.ldexp(Q.cov, -k) + (1.0 - a) * np.ldexp(P.cov, -k)
    if M.shape == (1, 1):
        return bool(M[0, 0] > 0)
    try:
        np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return False
    return True


def _alpha_from_j(a: float, b: float, J: float) -> float:
    """``D_a = (I_a - 1)/(a(a-1))`` from ``J = -log(I_a)/b >= 0``, without cancellation.

    ``I_a - 1 = expm1(-b J)`` and ``a(a-1) = -a b``, so ``D = J E(-b J)/a`` with
    ``E(y) = expm1(y)/y`` (no division of two small numbers when ``b`` is tiny). For
    ``b > 0`` and ``b J > 1``: ``D = -expm1(-b J)/(a b)`` (``J = inf`` gives ``1/(ab)``,
    the value for ``I_a = 0``). For ``b < 0`` and ``x = -b J > 700`` (``e^x`` near overflow):
    ``D = exp(x - log a - log(-b) + log1p(-e^-x))``.
    """
    if b > 0:
        y = b * J
        if y <= 1.0:
            return J * _expm1_ratio(-y) / a
        return -math.expm1(-y) / (a * b)
    x = -b * J
    if x <= 700.0:
        return (J / a) * _expm1_ratio(x)
    if math.isinf(x):
        return math.inf
    exponent = x - math.log(a) - math.log(-b) + math.log1p(-math.exp(-x))
    return math.exp(exponent) if exponent < 709.782712893384 else math.inf


def _exact_s_1d(alpha: float, P: _Gaussian, Q: _Gaussian) -> float:
    """1-D ``s = a + b lambda`` correctly rounded, in exact rational arithmetic.

    ``s = (alpha v_q + (1 - alpha) v_p)/v_q`` for ``alpha >= 1/2`` (``lambda = v_p/v_q``) and
    ``((1 - alpha) v_p + alpha v_q)/v_p`` in the swapped orientation: near the boundary of
    finiteness (``s -> 0``, e.g. Pearson with ``v_p -> 2 v_q``) ``1 + b (lambda - 1)``
    computed in floats has an absolute error of a few eps, i.e. a relative error
    ``eps/s``, which the divergence (``~ s^(-1/2)``) inherits; the exact form does not.
    """
    vp, vq, al = Fraction(float(P.cov[0, 0])), Fraction(float(Q.cov[0, 0])), Fraction(alpha)
    numerator = al * vq + (1 - al) * vp
    return float(numerator / (vq if alpha >= 0.5 else vp))


def _alpha_divergence(alpha: float, P: _Gaussian, Q: _Gaussian) -> float:
    """The alpha divergence ``D_a = (I_a - 1)/(a(a-1))``, ``I_a = ∫ p^a q^{1-a}`` (D2).

    Derivation. In the relative eigenbasis (``Q = N(0, I)``, ``P = N(delta, diag lambda)``)
    ``I_a`` factorises; per direction, completing the square in
    ``a (x - delta)^2/lambda + b x^2`` (``b = 1 - a``) gives
    ``log I_a = sum_i [-a b t_i/(2 s_i) - (log s_i - b l_i)/2]``, ``s_i = a + b lambda_i``,
    ``l_i = log lambda_i``, ``t_i = delta_i^2``; finite iff every ``s_i > 0``. Writing
    ``log I_a = -b J``,

        J = sum_i [ a t_i/(2 s_i) + chi_i/2 ],   chi_i = (log s_i - b l_i)/b >= 0,

    a sum of non-negative terms (for ``a >= 1/2``; :func:`_chi` evaluates ``chi`` without
    cancellation, :func:`_t_term` the shift terms without over/underflow), and ``D`` follows
    from ``J`` by :func:`_alpha_from_j`. For ``a < 1/2`` the symmetry
    ``D_a(P||Q) = D_{1-a}(Q||P)`` is used with the spectrum of ``(Q, P)`` computed from the
    inputs (so ``a >= 1/2`` always and ``b = alpha`` is exact); for ``1/2 <= a <= 2``,
    ``b = 1 - a`` is exact (Sterbenz). ``+inf`` where ``M_a = a S_q + b S_p`` is not PD
    (:func:`_tilted_covariance_is_pd`) or a computed ``s_i <= 0``.
    """
    if not _tilted_covariance_is_pd(alpha, P, Q):
        return math.inf
    if alpha >= 0.5:
        a, b, spec = alpha, 1.0 - alpha, _relative_spectrum(P, Q)
    else:
        a, b, spec = 1.0 - alpha, alpha, _relative_spectrum(Q, P)
    s, log_s = _log_s(b, spec.log_lam)
    near_boundary = False
    if P.mean.shape[0] == 1 and b < 0:
        s = np.array([_exact_s_1d(alpha, P, Q)])
        near_boundary = bool(s[0] < 0.5)
        if near_boundary:
            with np.errstate(divide="ignore"):
                log_s = np.log(s)
    if not np.all(s > 0):
        return math.inf
    with np.errstate(over="ignore", invalid="ignore"):
        chi = _chi(b, spec.log_lam, log_s)
        if near_boundary:                # (log s - b l)/b: |log s| >= log 2 > |b l|/1.45 here
            chi = (log_s - b * spec.log_lam) / b
        J = float(np.sum(_t_term(a, spec, s, log_s)) + 0.5 * np.sum(chi))
    if math.isnan(J):
        raise FloatingPointError(f"internal error: nan in the alpha = {alpha!r} closed form; please report")
    return _alpha_from_j(a, b, J)


def f_divergence(div, mean_p, cov_p, mean_q, cov_q, **params) -> float:
    """Exact ``D_f(P || Q) = E_q[f(p/q)]`` (D2) between two Gaussians (docs/theory.md section 3).

    Parameters
    ----------
    div : Divergence or str
        A catalogue divergence, or its name (``febm_ref.DIVERGENCE_NAMES``); for
        ``"alpha"`` pass ``alpha=<real>`` in ``params``.
    mean_p, cov_p : float or array_like
        ``P = N(mean_p, cov_p)``: in 1-D a scalar mean and a scalar **variance**; in d-D a
        ``(d,)`` mean and a symmetric positive-definite ``(d, d)`` covariance.
    mean_q, cov_q : float or array_like
        ``Q = N(mean_q, cov_q)``, same conventions and dimension as ``P``.
    **params
        Parameters of a divergence given by name (``alpha=...``).

    Returns
    -------
    float
        The divergence, ``>= 0``; ``+inf`` exactly where ``∫ q f(p/q)`` diverges (alpha
        family with ``a S_p^{-1} + (1-a) S_q^{-1}`` not positive definite, e.g. Pearson
        chi^2 with ``var_p >= 2 var_q``, Neyman with ``var_q >= 2 var_p``), or where the
        finite value exceeds the float64 range.

    Raises
    ------
    ValueError
        Jensen-Shannon (no closed form: use :func:`f_divergence_quadrature_gaussians` in
        1-D/2-D or :func:`f_divergence_monte_carlo_gaussians`), non-finite inputs,
        mismatched shapes, a non-symmetric or non-positive-definite covariance.
    TypeError
        Non-numeric, complex, object or ``None`` inputs; ``div`` not a Divergence or name.

    Notes
    -----
    KL: ``1/2 [tr(S_q^-1 S_p) + (m_p-m_q)^T S_q^-1 (m_p-m_q) - d + log|S_q|/|S_p|]``;
    reverse KL is ``KL(Q||P)``; the alpha family is ``(I_a - 1)/(a(a-1))`` with
    ``I_a = ∫ p^a q^{1-a}``; Pearson ``= 2 D_2``, Neyman ``= 2 D_{-1}``, squared
    Hellinger ``= D_{1/2}/2``. All are evaluated in log form in the relative eigenbasis
    described in the module docstring (scaled Cholesky + Jacobi SVD, log-eigenvalues, no
    explicit inverses, no ``1/lambda``): relative error <= 1e-12 over the float64 domain
    (variance ratios 1e-300..1e300 and beyond), ``+inf`` exactly where the integral
    diverges or the value overflows, never nan or -0.0.

    Examples
    --------
    >>> f_divergence("kl", 0.0, 1.0, 1.0, 1.0)   # (m_p - m_q)^2 / (2 var_q)
    0.5
    """
    d = _resolve(div, params)
    if not has_closed_form(d):
        raise ValueError(f"{d.label} has no closed form between Gaussians; use "
                         "f_divergence_quadrature_gaussians (1-D and 2-D, adaptive quadrature) or "
                         "f_divergence_monte_carlo_gaussians (any dimension, with a standard error)")
    P, Q = _parse_pair(mean_p, cov_p, mean_q, cov_q)
    if d.name == "kl" or (d.name == "alpha" and d.alpha == 1.0):
        return _kl_from_spectrum(_relative_spectrum(P, Q))
    if d.name == "reverse_kl" or (d.name == "alpha" and d.alpha == 0.0):
        return _kl_from_spectrum(_relative_spectrum(Q, P))
    a = d.alpha if d.name == "alpha" else power_exponent(d)
    value = _alpha_divergence(a, P, Q)
    if d.name in ("pearson_chi2", "neyman_chi2"):
        return 2.0 * value
    if d.name == "squared_hellinger":
        return 0.5 * value
    return value


# ----------------------------------------------------------------------------------
# Log densities
# ----------------------------------------------------------------------------------

def _whiten(L: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows of ``y`` times ``L^{-T}``, i.e. ``(L^{-1} y_i)_i``, by forward substitution.

    For the small d used here an explicit loop over the d coordinates (vectorised over
    the points) is much faster than a LAPACK call per batch.
    """
    d = L.shape[0]
    if d > 16:
        return linalg.solve_triangular(L, y.T, lower=True).T
    z = np.empty_like(y)
    for i in range(d):
        z[:, i] = (y[:, i] - z[:, :i] @ L[i, :i]) / L[i, i]
    return z


def _log_density_from(G: _Gaussian) -> Callable[[np.ndarray], np.ndarray]:
    d = G.mean.shape[0]
    half_log_det = float(np.sum(np.log(np.diag(G.chol))))
    constant = -half_log_det - 0.5 * d * LOG_2PI

    def log_density(x):
        x = as_float_array(x, "x", allow_inf=True)
        if d == 1:
            shape = x.shape[:-1] if (x.ndim == 2 and x.shape[-1] == 1) else x.shape
            z = (x.reshape(-1) - G.mean[0]) / G.chol[0, 0]
            return (constant - 0.5 * z * z).reshape(shape)
        if x.ndim == 0 or x.shape[-1] != d:
            raise ValueError(f"x must have shape (..., {d}) (points in {d}-D), got shape {x.shape}")
        z = _whiten(G.chol, x.reshape(-1, d) - G.mean)
        return (constant - 0.5 * np.sum(z * z, axis=1)).reshape(x.shape[:-1])

    return log_density


def gaussian_log_density(mean, cov) -> Callable[[np.ndarray], np.ndarray]:
    """``log N(x; mean, cov)`` as a vectorised callable (Cholesky based).

    In 1-D (scalar mean and variance) the callable maps an array of any shape to the
    same shape; in d-D it maps ``(..., d)`` to ``(...)``.
    """
    return _log_density_from(_parse_gaussian(mean, cov, ""))


# ----------------------------------------------------------------------------------
# Quadrature
# ----------------------------------------------------------------------------------

def _check_callable(fn, name):
    check_callable(fn, name, "mapping an array of points to an array of log densities")


def _check_limit(value, name: str) -> float:
    """A real integration limit: finite or +-inf, never NaN, bool, complex or a string."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number (or +-inf), got {value!r} ({type(value).__name__})")
    out = float(value)
    if math.isnan(out):
        raise ValueError(f"{name} is NaN; pass a real number or +-inf")
    return out


def _checked_log_density(fn, x: np.ndarray, name: str, n: int) -> np.ndarray:
    """``fn(x)`` as a float64 ``(n,)`` array, raising on anything that is not a log density.

    ``-inf`` (a zero density) is legitimate; NaN and ``+inf`` are not: the first such value
    raises a ValueError naming the point, so that no estimator silently integrates a
    broken density (the perspective of the divergence may map NaN to a finite number).
    """
    values = np.asarray(fn(x))
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{name} must return real log densities, got dtype {values.dtype} at x = {x!r}")
    values = values.astype(np.float64, copy=False)
    if values.size != n:
        raise ValueError(f"{name} returned shape {values.shape} for {n} point(s); it must return one "
                         "log density per point")
    values = values.reshape(n)
    bad = np.isnan(values) | (values == math.inf)
    if bad.any():
        i = int(np.argmax(bad))
        point = x[i] if x.ndim else x
        raise ValueError(f"{name} returned {float(values[i])!r} at x = {np.asarray(point).tolist()!r}; a log "
                         "density must be a real number or -inf (zero density) at every point: fix "
                         f"{name} there or restrict the integration range / samples")
    return values


def _checked_perspective(div: Divergence, lp: np.ndarray, lq: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``div.perspective(lp, lq)``, 0 where both densities are 0 (the convention
    ``0 f(0/0) = 0``), and a NaN anywhere else reported at its point."""
    out = np.asarray(div.perspective(lp, lq), dtype=np.float64)
    out = np.where((lp == -math.inf) & (lq == -math.inf), 0.0, out)   # p = q = 0: q f(p/q) = 0
    if np.isnan(out).any():
        i = int(np.argmax(np.isnan(out)))
        raise ValueError(f"the integrand q f(p/q) of {div.label} is NaN at x = "
                         f"{np.asarray(x[i]).tolist()!r} (log p = {float(lp[i])!r}, log q = {float(lq[i])!r}); "
                         "check the log densities there")
    return out


def _check_tolerance(value, name: str) -> float:
    return check_real_scalar(value, name, nonnegative=True)


def f_divergence_quadrature_1d(div, log_p, log_q, lower: float = -math.inf, upper: float = math.inf,
                               *, points: Optional[Sequence[float]] = None, rtol: float = 1e-11,
                               atol: float = 1e-15, limit: int = 2000, method: str = "quadpack",
                               **params) -> IntegralEstimate:
    """``D_f(P||Q) = ∫ q f(p/q) dx`` (D2) in 1-D by adaptive quadrature (QUADPACK or tanh-sinh).

    The integrand is ``div.perspective(log_p(x), log_q(x))``, i.e. ``q f(p/q)`` computed
    from the log densities (finite where ``p/q`` overflows), so the densities may be
    unnormalised only if the caller accepts the resulting (non-f-divergence) integral.

    Parameters
    ----------
    div : Divergence or str
        Any catalogue divergence (Jensen-Shannon included) or its name (+ ``params``).
    log_p, log_q : callable
        Vectorised log densities: ``(n,)`` array of points -> ``(n,)`` array.
    lower, upper : float
        Integration limits (may be infinite; QUADPACK maps infinite ranges to finite).
    points : sequence of float, optional
        Break points (peaks, kinks) inside ``(lower, upper)``; the range is split there and
        each piece integrated separately, so narrow features are never missed.
    rtol, atol : float
        Requested relative / absolute accuracy per piece (``scipy.integrate.quad``'s
        ``epsrel`` / ``epsabs``, or ``scipy.integrate.tanhsinh``'s ``rtol`` / ``atol``).
    limit : int
        Maximum number of subintervals per piece (``"quadpack"``).
    method : {"quadpack", "tanh-sinh"}
        ``"quadpack"`` (adaptive Gauss-Kronrod, one point per call; adapts to kinks) or
        ``"tanh-sinh"`` (vectorised, ~40x cheaper where ``q f(p/q)`` is analytic on every
        piece, e.g. Gaussians; a piece where it does not converge goes to QUADPACK). See
        :mod:`febm_ref.quadrature`.

    Returns
    -------
    IntegralEstimate
        ``(value, error)``, ``error`` the sum of the integrator's absolute error estimates.
    """
    d = _resolve(div, params)
    _check_callable(log_p, "log_p")
    _check_callable(log_q, "log_q")
    lower, upper = _check_limit(lower, "lower"), _check_limit(upper, "upper")
    if not lower < upper:
        raise ValueError(f"need lower < upper, got lower={lower}, upper={upper}")
    check_positive_int(limit, "limit")
    rtol, atol = _check_tolerance(rtol, "rtol"), _check_tolerance(atol, "atol")
    if rtol == 0.0 and atol == 0.0:
        raise ValueError("rtol and atol are both 0; pass a positive rtol (e.g. 1e-11) or atol")
    cuts_in = () if points is None else as_float_array(points, "points", ndim=(0, 1)).reshape(-1)
    cuts = sorted({float(c) for c in cuts_in if lower < float(c) < upper})
    edges = [lower] + cuts + [upper]

    largest = [0.0]  # the largest |integrand| seen, to tell a sum that overflowed from an inf integral

    def integrand(x):
        lp = _checked_log_density(log_p, x, "log_p", x.size)
        lq = _checked_log_density(log_q, x, "log_q", x.size)
        value = _checked_perspective(d, lp, lq, x)
        _refuse_overflowed_integrand(value, lp, lq, x)
        largest[0] = max(largest[0], float(np.max(np.abs(value), initial=0.0)))
        return value

    value, error = integrate_pieces(integrand, edges, rtol=rtol, atol=atol, method=method, limit=limit)
    _refuse_overflowed_sum(value, error, largest[0])
    return IntegralEstimate(value, error)


def _refuse_overflowed_integrand(values, lp, lq, x) -> None:
    """Raise where ``q f(p/q)`` overflowed to inf at a point where both log densities are finite:
    the true integrand is finite there (only ``q = 0 < p`` makes it infinite), so the integral may
    well be finite, and ``inf`` would be a wrong answer."""
    bad = np.isinf(values) & np.isfinite(lp) & np.isfinite(lq)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise FloatingPointError(
            f"the integrand q f(p/q) overflows float64 at x = {np.asarray(x)[i].tolist()} (log p = {lp[i]:.6g}, "
            f"log q = {lq[i]:.6g}) although both densities are finite there: the divergence is beyond what "
            "quadrature in float64 can represent; for two Gaussians use gaussians.f_divergence (the closed "
            "form in log form)")


def _refuse_overflowed_sum(value: float, error: float, largest: float) -> None:
    """Raise where the quadrature's own sums overflowed although every integrand value was finite:
    the integral is then finite (the integrand is bounded on the pieces it was evaluated on) but
    beyond what this route can represent, so ``inf`` would be a wrong answer."""
    if math.isfinite(largest) and not (math.isfinite(value) and math.isfinite(error)):
        raise FloatingPointError(
            f"the quadrature's sums overflowed float64 (value {value}, error {error}) although every "
            f"integrand value was finite (largest {largest:.3g}): the divergence is finite but too large "
            "for this route; for two Gaussians use gaussians.f_divergence (the closed form in log form)")


def f_divergence_quadrature_2d(div, log_p, log_q, lower: Sequence[float], upper: Sequence[float],
                               *, breaks_x: Optional[Sequence[float]] = None,
                               breaks_y: Optional[Sequence[float]] = None, rtol: float = 1e-11,
                               atol: float = 1e-15, max_subdivisions: int = 20000,
                               **params) -> IntegralEstimate:
    """``D_f(P||Q) = ∫∫ q f(p/q) dx dy`` (D2) in 2-D by adaptive cubature.

    The box ``[lower[0], upper[0]] x [lower[1], upper[1]]`` (finite or infinite) is cut
    at the break points into a grid of cells; each cell is integrated with
    ``scipy.integrate.cubature`` (21-point Gauss-Kronrod product rule, global adaptive
    subdivision, vectorised integrand). An absolute tolerance of
    ``rtol * (coarse estimate of ∫|q f(p/q)|)`` is shared between the cells, so tiny tail
    cells are not refined to relative accuracy.

    Parameters
    ----------
    div : Divergence or str
        Any catalogue divergence (Jensen-Shannon included) or its name (+ ``params``).
    log_p, log_q : callable
        Vectorised log densities: ``(n, 2)`` array of points -> ``(n,)`` array.
    lower, upper : sequence of 2 floats
        Corners of the integration box.
    breaks_x, breaks_y : sequence of float, optional
        Cut positions along each axis (put them at peaks and a few widths around them).
    rtol, atol : float
        Requested relative accuracy of the total and absolute floor.
    max_subdivisions : int
        Subdivision budget per cell.

    Returns
    -------
    IntegralEstimate
        ``(value, error)``, ``error`` the sum of the cells' error estimates.
    """
    try:
        from scipy.integrate import cubature
    except ImportError as exc:  # pragma: no cover - scipy < 1.15
        raise ImportError("f_divergence_quadrature_2d needs scipy >= 1.15 (scipy.integrate.cubature); "
                          "upgrade with `pip install -U scipy`") from exc
    d = _resolve(div, params)
    _check_callable(log_p, "log_p")
    _check_callable(log_q, "log_q")
    lo = as_float_array(lower, "lower", shape=(2,), allow_inf=True)
    hi = as_float_array(upper, "upper", shape=(2,), allow_inf=True)
    if not np.all(lo < hi):
        raise ValueError(f"lower and upper must be 2-vectors with lower < upper, got {lo}, {hi}")
    check_positive_int(max_subdivisions, "max_subdivisions")
    rtol, atol = _check_tolerance(rtol, "rtol"), _check_tolerance(atol, "atol")
    if rtol == 0.0 and atol == 0.0:
        raise ValueError("rtol and atol are both 0; pass a positive rtol (e.g. 1e-11) or atol")

    def grid(axis, breaks, name):
        given = () if breaks is None else as_float_array(breaks, name, ndim=(0, 1)).reshape(-1)
        cuts = sorted({float(c) for c in given if lo[axis] < float(c) < hi[axis]})
        return [lo[axis]] + cuts + [hi[axis]]

    gx, gy = grid(0, breaks_x, "breaks_x"), grid(1, breaks_y, "breaks_y")
    cells = [((x0, y0), (x1, y1)) for x0, x1 in zip(gx[:-1], gx[1:]) for y0, y1 in zip(gy[:-1], gy[1:])]

    largest = [0.0]  # the largest |integrand| seen (see _refuse_overflowed_sum)

    def integrand(x):
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        lp = _checked_log_density(log_p, x, "log_p", n)
        lq = _checked_log_density(log_q, x, "log_q", n)
        values = _checked_perspective(d, lp, lq, x)
        _refuse_overflowed_integrand(values, lp, lq, x)
        if values.size:
            largest[0] = max(largest[0], float(np.max(np.abs(values))))
        return values

    def absolute_integrand(x):
        return np.abs(integrand(x))

    # Pass 1: a coarse estimate of ∫|integrand| sets the shared absolute tolerance.
    scale = 0.0
    for a, b in cells:
        scale += float(cubature(absolute_integrand, a, b, rtol=1e-3, atol=0.0,
                                max_subdivisions=max_subdivisions).estimate)
    cell_atol = max(atol, rtol * scale) / len(cells)
    value, error = 0.0, 0.0
    for a, b in cells:
        res = cubature(integrand, a, b, rtol=rtol, atol=cell_atol, max_subdivisions=max_subdivisions)
        value += float(res.estimate)
        error += float(res.error)  # a cell that hit max_subdivisions shows up here
    _refuse_overflowed_sum(value, error, largest[0])
    return IntegralEstimate(value, error)


def _tilted_gaussian(a: float, P: _Gaussian, Q: _Gaussian) -> Optional[_Gaussian]:
    """``p^a q^{1-a}`` normalised (precision ``a S_p^-1 + (1-a) S_q^-1``), or None if not PD."""
    Pp = linalg.cho_solve((P.chol, True), np.eye(P.mean.shape[0]))
    Pq = linalg.cho_solve((Q.chol, True), np.eye(Q.mean.shape[0]))
    precision = a * Pp + (1.0 - a) * Pq
    precision = 0.5 * (precision + precision.T)
    try:
        Lprec = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        return None
    cov = linalg.cho_solve((Lprec, True), np.eye(precision.shape[0]))
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (a * Pp @ P.mean + (1.0 - a) * Pq @ Q.mean)
    return _Gaussian(mean, cov, np.linalg.cholesky(cov), False)


def _integration_layout(P: _Gaussian, Q: _Gaussian, div: Divergence, width: float):
    """Box (lo, hi per axis) and break points covering every Gaussian the integrand contains."""
    pieces = [P, Q]
    a = power_exponent(div)
    if a is not None and not 0.0 <= a <= 1.0:
        tilted = _tilted_gaussian(a, P, Q)
        if tilted is None:
            return None
        pieces.append(tilted)
    dim = P.mean.shape[0]
    sds = [np.sqrt(np.diag(G.cov)) for G in pieces]
    widest = np.max(sds, axis=0)
    lo = np.min([G.mean for G in pieces], axis=0) - width * widest
    hi = np.max([G.mean for G in pieces], axis=0) + width * widest
    breaks = []
    for axis in range(dim):
        cuts = set()
        # A piece much narrower than the widest one is invisible to the first Gauss-Kronrod
        # rule on its interval (e.g. var_p = 1e-17 next to var_q = 1: the quadrature returned
        # KL = 0 for 19.07); cuts at its mean +- (1, 4, 16) sd make it an interval of its own.
        # In 1-D always (cheap); in 2-D only for such a narrow piece (more cells are slow).
        ratio = float(np.max([sd[axis] for sd in sds]) / np.min([sd[axis] for sd in sds]))
        offsets = (0.0, -1.0, 1.0, -4.0, 4.0, -16.0, 16.0) if dim == 1 or ratio > 10.0 else (0.0,)
        for G, sd in zip(pieces, sds):
            cuts.update(float(G.mean[axis] + k * sd[axis]) for k in offsets)
        breaks.append(sorted(cuts))
    return lo, hi, breaks


def f_divergence_quadrature_gaussians(div, mean_p, cov_p, mean_q, cov_q, *, width: float = 40.0,
                                      rtol: float = 1e-11, method: str = "tanh-sinh",
                                      **params) -> IntegralEstimate:
    """``D_f(N(m_p, S_p) || N(m_q, S_q))`` by adaptive quadrature in 1-D or 2-D (any divergence).

    Builds the log densities and integrates ``q f(p/q)`` over the box
    ``[min mean - width sd, max mean + width sd]`` per axis, where the means and standard
    deviations range over ``P``, ``Q`` and, for the power divergences (alpha family,
    Pearson, Neyman), the "tilted" Gaussian ``∝ p^a q^{1-a}`` that the integrand
    contains; break points sit at each of these means (more cuts only slowed the 2-D
    cubature down without changing the result, which agreed with the closed forms to
    ~1e-14). Beyond 40 sd every Gaussian
    factor is below ``e^{-800}`` (underflow), so the truncation error is nil.

    Parameters are as in :func:`f_divergence` (1-D: scalar mean and variance; 2-D: (2,)
    mean and (2, 2) covariance). ``rtol`` is passed to the 1-D/2-D integrator. ``method``
    chooses the 1-D integrator of :func:`f_divergence_quadrature_1d`: ``"tanh-sinh"`` by
    default, since ``log p - log q`` is a quadratic and every catalogue ``f`` is analytic on
    ``(0, inf)``, so the integrand is analytic on every piece; ``"quadpack"`` is the
    one-point-per-call QUADPACK route (0.2.0's default, ~40x the CPU). 2-D always uses
    cubature.

    Returns
    -------
    IntegralEstimate
        ``(value, error)``. For the power divergences whose integral diverges (the tilted
        precision is not positive definite) ``(inf, 0.0)`` is returned without integrating.
    """
    d = _resolve(div, params)
    check_method(method)
    P, Q = _parse_pair(mean_p, cov_p, mean_q, cov_q)
    width = check_real_scalar(width, "width", positive=True)
    rtol = check_real_scalar(rtol, "rtol", positive=True)
    dim = P.mean.shape[0]
    if dim > 2:
        raise ValueError(f"quadrature is available in 1-D and 2-D, got dimension {dim}; use "
                         "f_divergence_monte_carlo_gaussians (or f_divergence for a closed form)")
    layout = _integration_layout(P, Q, d, width)
    if layout is None:
        return IntegralEstimate(math.inf, 0.0)
    lo, hi, breaks = layout
    log_p, log_q = _log_density_from(P), _log_density_from(Q)
    if dim == 1:
        return f_divergence_quadrature_1d(d, lambda x: log_p(x), lambda x: log_q(x), lo[0], hi[0],
                                          points=breaks[0], rtol=rtol, method=method)
    return f_divergence_quadrature_2d(d, log_p, log_q, lo, hi, breaks_x=breaks[0],
                                      breaks_y=breaks[1], rtol=rtol)


# ----------------------------------------------------------------------------------
# Monte Carlo
# ----------------------------------------------------------------------------------

def f_divergence_monte_carlo(div, log_p, log_q, samples, log_proposal=None, **params) -> MonteCarloEstimate:
    """Importance-sampling estimate of ``D_f(P||Q) = ∫ q f(p/q)`` (D2) with a standard error.

    With ``x_i ~ w`` (the proposal), ``D = E_w[q f(p/q) / w]``, and by the 1-homogeneity of
    the perspective the summand is ``perspective(log p - log w, log q - log w)`` (stable
    from logs). With ``log_proposal=None`` the proposal is ``Q`` and the summand is
    ``f(p/q)``.

    Parameters
    ----------
    div : Divergence or str
        Any catalogue divergence or its name (+ ``params``).
    log_p, log_q : callable
        Vectorised log densities ``(n, d) -> (n,)`` (or ``(n,) -> (n,)`` in 1-D).
    samples : ndarray
        ``n >= 2`` draws from the proposal (pre-drawn: the randomness stays with the caller).
    log_proposal : callable, optional
        Log density of the proposal the samples come from; ``None`` means ``log_q``.

    Returns
    -------
    MonteCarloEstimate
        ``(value, standard_error)`` with ``standard_error = std(summands, ddof=1)/sqrt(n)``.
        The standard error is only meaningful when the summand has finite variance (e.g.
        Pearson needs ``3 S_p^-1 - 2 S_w^-1`` positive definite for Gaussians).
    """
    d = _resolve(div, params)
    _check_callable(log_p, "log_p")
    _check_callable(log_q, "log_q")
    if log_proposal is not None:
        _check_callable(log_proposal, "log_proposal")
    x = as_float_array(samples, "samples", ndim=(1, 2))
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"samples: need at least 2 samples for a standard error, got {n}")
    lp = _checked_log_density(log_p, x, "log_p", n)
    lq = _checked_log_density(log_q, x, "log_q", n)
    lw = lq if log_proposal is None else _checked_log_density(log_proposal, x, "log_proposal", n)
    return _monte_carlo_from_logs(d, lp, lq, lw, x)


def _monte_carlo_from_logs(d: Divergence, lp, lq, lw, x) -> MonteCarloEstimate:
    """The estimate of :func:`f_divergence_monte_carlo` from the checked log densities of
    ``P``, ``Q`` and the proposal at the samples ``x``."""
    n = x.shape[0]
    if np.any(lw == -math.inf):
        i = int(np.argmax(lw == -math.inf))
        raise ValueError(f"the proposal density is 0 at the sample x = {np.asarray(x[i]).tolist()!r}; "
                         "samples must come from the proposal (log_proposal > -inf at every sample)")
    with np.errstate(invalid="ignore"):
        summands = _checked_perspective(d, lp - lw, lq - lw, x)
    if not np.all(np.isfinite(summands)):
        # a summand is +inf (p > 0 where q = 0 for KL, ...): the estimate is +inf, and so is its
        # standard error (np.std would give nan from inf - inf)
        return MonteCarloEstimate(float(np.sum(summands)), math.inf)
    value = float(np.mean(summands))
    standard_error = float(np.std(summands, ddof=1) / math.sqrt(n))
    return MonteCarloEstimate(value, standard_error)


def f_divergence_monte_carlo_gaussians(div, mean_p, cov_p, mean_q, cov_q, *, rng: np.random.Generator,
                                       n: int, proposal: str = "mixture", **params) -> MonteCarloEstimate:
    """Monte Carlo ``D_f(N(m_p, S_p) || N(m_q, S_q))`` in any dimension, with a standard error.

    Parameters
    ----------
    div, mean_p, cov_p, mean_q, cov_q, params
        As in :func:`f_divergence`.
    rng : numpy.random.Generator
        The only source of randomness.
    n : int
        Number of samples.
    proposal : {"mixture", "q", "p"}
        Sampling distribution: the equal mixture ``(p + q)/2`` (default; robust for
        Jensen-Shannon and for both tails), ``Q`` itself, or ``P``.

    Returns
    -------
    MonteCarloEstimate
        ``(value, standard_error)``.
    """
    d = _resolve(div, params)
    check_generator(rng)
    n = check_positive_int(n, "n", minimum=2)
    check_choice(proposal, "proposal", ("mixture", "q", "p"))
    P, Q = _parse_pair(mean_p, cov_p, mean_q, cov_q)
    dim = P.mean.shape[0]
    log_p, log_q = _log_density_from(P), _log_density_from(Q)

    def draw(G, count):
        return G.mean + rng.standard_normal((count, dim)) @ G.chol.T

    if proposal == "q":
        x = draw(Q, n)
    elif proposal == "p":
        x = draw(P, n)
    else:
        from_p = rng.random(n) < 0.5
        x = np.empty((n, dim))
        x[from_p] = draw(P, int(from_p.sum()))
        x[~from_p] = draw(Q, int((~from_p).sum()))
    # each log density once at the samples (the mixture's needs both): the same numbers as
    # f_divergence_monte_carlo with log_proposal = log((p + q)/2), at half the cost
    lp, lq = _checked_log_density(log_p, x, "log_p", n), _checked_log_density(log_q, x, "log_q", n)
    if proposal == "q":
        lw = lq
    elif proposal == "p":
        lw = lp
    else:
        lw = np.logaddexp(lp, lq) - math.log(2.0)
    return _monte_carlo_from_logs(d, lp, lq, lw, x)
