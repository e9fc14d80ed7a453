"""High-precision (mpmath) closed forms of the Gaussian f-divergences: the oracle for
``febm_ref.gaussians.f_divergence`` over the whole float64 domain (issue 13).

Written from the textbook *matrix* formulas, with no eigenbasis, no log-form rewriting
and no code shared with :mod:`febm_ref.gaussians`:

* ``KL(P||Q) = 1/2 [tr(S_q^-1 S_p) + D^T S_q^-1 D - d + log det S_q - log det S_p]``,
  ``D = m_p - m_q``; reverse KL is ``KL(Q||P)``;
* ``I_a = ∫ p^a q^{1-a} dx`` with ``b = 1 - a`` and ``M_a = a S_q + b S_p``:
  ``log I_a = (b/2) log det S_p + (a/2) log det S_q - (1/2) log det M_a
  - (a b/2) D^T M_a^-1 D`` if ``M_a`` is positive definite, ``I_a = +inf`` otherwise
  (for ``0 < a < 1`` ``M_a`` is always PD); ``D_a = (I_a - 1)/(a(a-1))``, Pearson
  ``= 2 D_2``, Neyman ``= 2 D_{-1}``, squared Hellinger ``= D_{1/2}/2``.

Every input float is converted exactly; the value is computed at a working precision and
again 40 digits higher, and the precision is raised until the two agree to 1e-30
relative (the formulas cancel catastrophically for nearly equal Gaussians or ``a`` near
0 or 1; the retry loop makes the reference certify its own digits).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np

FLOAT_MAX = mp.mpf("1.7976931348623157e308")
FLOAT_TINY = mp.mpf("2.2250738585072014e-308")
_POWER = {"pearson_chi2": (2.0, 2), "neyman_chi2": (-1.0, 2), "squared_hellinger": (0.5, mp.mpf(1) / 2)}


def _matrix(x):
    arr = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return mp.matrix([[mp.mpf(float(v)) for v in row] for row in arr])


def _vector(x):
    return mp.matrix([mp.mpf(float(v)) for v in np.atleast_1d(np.asarray(x, dtype=np.float64))])


def _solve(A, B):
    """``A^-1 B`` by Gaussian elimination with partial pivoting and no singularity tolerance
    (mpmath's ``lu_solve`` refuses well-conditioned matrices with entries of 1e300 and 1)."""
    n = A.rows
    M = [[A[i, j] for j in range(n)] + [B[i, k] for k in range(B.cols)] for i in range(n)]
    for j in range(n):
        p = max(range(j, n), key=lambda i: abs(M[i][j]))
        M[j], M[p] = M[p], M[j]
        for i in range(j + 1, n):
            f = M[i][j] / M[j][j]
            M[i] = [x - f * y for x, y in zip(M[i], M[j])]
    X = mp.matrix(n, B.cols)
    for k in range(B.cols):
        for i in reversed(range(n)):
            X[i, k] = (M[i][n + k] - sum(M[i][j] * X[j, k] for j in range(i + 1, n))) / M[i][i]
    return X


def _det(M):
    """Determinant by the same elimination (exact up to the working precision)."""
    n = M.rows
    R = [[M[i, j] for j in range(n)] for i in range(n)]
    det = mp.mpf(1)
    for j in range(n):
        p = max(range(j, n), key=lambda i: abs(R[i][j]))
        if R[p][j] == 0:
            return mp.mpf(0)
        if p != j:
            R[j], R[p] = R[p], R[j]
            det = -det
        det *= R[j][j]
        for i in range(j + 1, n):
            f = R[i][j] / R[j][j]
            R[i] = [x - f * y for x, y in zip(R[i], R[j])]
    return det


def _logdet(M):
    return mp.log(_det(M))


def _is_pd(M) -> bool:
    """Positive definiteness from the exact leading principal minors (Sylvester's criterion)."""
    n = M.rows
    return all(_det(M[:k, :k]) > 0 for k in range(1, n + 1))


def _kl(mp_, Sp, mq, Sq):
    D = mp_ - mq
    d = Sp.rows
    X = _solve(Sq, Sp)
    tr = sum(X[j, j] for j in range(d))
    quad = (D.T * _solve(Sq, D))[0]
    return (tr + quad - d + _logdet(Sq) - _logdet(Sp)) / 2


def _alpha(a, mp_, Sp, mq, Sq):
    a = mp.mpf(a)
    b = 1 - a
    M = a * Sq + b * Sp
    if not _is_pd(M):
        return mp.inf
    D = mp_ - mq
    log_i = (b * _logdet(Sp) + a * _logdet(Sq) - _logdet(M)) / 2 - a * b / 2 * (D.T * _solve(M, D))[0]
    return _expm1(log_i) / (a * (a - 1))


_HUGE_EXPONENT = 10_000
"""``|x|`` from which :func:`_expm1` reduces the argument itself: mpmath's ``expm1``/``exp``
spend ~0.1 s on such an argument (an integer power of ``e``), 30 of the 34 s of the extreme
grid test; the result is far outside float64 either way (``e^10000 ~ 10^4343``)."""


def _expm1(x):
    """``e^x - 1`` at the working precision; for ``|x| > 10^4`` as ``2^k e^r - 1`` with
    ``k = floor(x / log 2)``, ``r = x - k log 2`` formed with ``log10 |x|`` extra digits (so
    that ``r``, in ``[0, log 2)``, keeps the working precision)."""
    if abs(x) <= _HUGE_EXPONENT:
        return mp.expm1(x)
    with mp.workdps(mp.mp.dps + int(mp.log10(abs(x))) + 10):  # |x| > 1e4 here
        k = mp.floor(x / mp.ln2)
        r = x - k * mp.ln2
        value = mp.ldexp(mp.exp(r), int(k)) - 1
    return +value


def _evaluate(name, alpha, m_p, S_p, m_q, S_q):
    mp_, Sp, mq, Sq = _vector(m_p), _matrix(S_p), _vector(m_q), _matrix(S_q)
    if name == "kl" or (name == "alpha" and alpha == 1.0):
        return _kl(mp_, Sp, mq, Sq)
    if name == "reverse_kl" or (name == "alpha" and alpha == 0.0):
        return _kl(mq, Sq, mp_, Sp)
    if name in _POWER:
        a, factor = _POWER[name]
        return factor * _alpha(a, mp_, Sp, mq, Sq)
    if name == "alpha":
        return _alpha(alpha, mp_, Sp, mq, Sq)
    raise KeyError(f"no Gaussian closed form for {name!r}")


def gaussian_divergence(name: str, m_p, S_p, m_q, S_q, alpha=None, dps: int = 60):
    """Certified high-precision closed form (an ``mpf``, ``mp.inf`` where the integral diverges).

    ``m_*`` scalars or (d,) arrays, ``S_*`` variances or (d, d) covariances (floats, taken
    exactly). Raises ``RuntimeError`` if 4 doublings of the precision do not give two
    evaluations (40 digits apart) agreeing to 1e-30.
    """
    same = (np.array_equal(np.asarray(m_p, dtype=np.float64), np.asarray(m_q, dtype=np.float64))
            and np.array_equal(np.asarray(S_p, dtype=np.float64), np.asarray(S_q, dtype=np.float64)))
    if same:                # D_f(P||P) = f(1) = 0 exactly (the formulas would return rounding noise)
        return mp.mpf(0)
    if alpha is not None and alpha not in (0.0, 1.0):
        # log I_a = O(a b): the matrix formula cancels ~ -log10 min(|a|, |1-a|) digits
        a = mp.mpf(alpha)
        dps += int(max(0, -mp.log10(abs(a)), -mp.log10(abs(1 - a))))
    for _ in range(5):
        with mp.workdps(dps):
            low = _evaluate(name, alpha, m_p, S_p, m_q, S_q)
        with mp.workdps(dps + 40):
            high = _evaluate(name, alpha, m_p, S_p, m_q, S_q)
            if mp.isinf(low) and mp.isinf(high):
                return high
            if high != 0 and abs(low - high) <= mp.mpf("1e-30") * abs(high):
                return +high
        dps *= 2
    raise RuntimeError(f"mpmath reference for {name} did not converge (last {low} vs {high})")


def relative_error(computed: float, exact) -> float:
    """Relative error of a float64 result against an mpmath value.

    0 when the truth overflows float64 and ``computed`` is ``+inf`` (and when both are
    ``+inf``); ``inf`` when only one of them is infinite or ``computed`` is nan / negative
    zero for a positive truth.
    """
    if math.isnan(computed):
        return float("inf")
    if exact == mp.inf or exact > FLOAT_MAX:
        return 0.0 if computed == float("inf") else float("inf")
    if computed in (float("inf"), float("-inf")):
        return float("inf")
    if exact == 0:
        return 0.0 if computed == 0 else float("inf")
    return float(abs((mp.mpf(computed) - exact) / exact))


def is_normal(exact) -> bool:
    """True iff the exact value is a finite float64 normal number (the 1e-12 claim's range)."""
    return exact != mp.inf and FLOAT_TINY <= abs(exact) <= FLOAT_MAX
