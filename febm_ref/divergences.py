"""The f-divergence catalogue (docs/theory.md section 2).

Every divergence is one small immutable object. For a convex generator ``f`` with
``f(1) = 0`` the divergence is, data first (D2),

    D_f(P || Q) = E_q[ f(p(x) / q(x)) ],

and f-EBM (D6-D8) only ever evaluates ``f`` through two scalar maps of the modelled
log density ratio ``s = log(p/q)`` (D7):

    g_data(s)  = f'(e^s)                                  (the critic T on data)
    g_model(s) = f*(f'(e^s)) = e^s f'(e^s) - f(e^s)       (Legendre identity D4)
    g_data'(s)  = e^s f''(e^s)
    g_model'(s) = e^{2s} f''(e^s)

These four are written directly in ``s`` (log space) with ``expm1``, ``log1p`` and
softplus, so they are accurate to a few ulps for every ``s`` whose value is finite in
float64 (|s| up to ~700 and beyond), and overflow to ``+-inf`` (never ``nan``) where
the true value does. Nothing is clipped.

Conventions
-----------
* ``f(u)`` is defined for ``u >= 0`` (``u > 0`` where ``f(0)`` is infinite) and is
  ``+inf`` for ``u < 0`` (the convex-analysis convention: outside its domain a convex
  function is ``+inf``).
* ``conjugate(t) = sup_{u >= 0} {u t - f(u)}`` (D3) is the exact conjugate of that
  ``f``; it is ``+inf`` outside its domain. For Pearson and the alpha family with
  ``alpha > 1`` the supremum sits at ``u = 0`` for small ``t``, where the conjugate is
  the constant ``-f(0)`` (the f-GAN tables print the unconstrained polynomial instead,
  which is also a valid, looser, conjugate for D5).
* Element-wise functions follow NumPy/IEEE semantics: ``nan`` in gives ``nan`` out;
  overflow gives ``+-inf`` silently (callers such as the trainer detect non-finite
  values themselves). Scalars in give NumPy scalars out.
* Relative accuracy of ``g_*`` is guaranteed for results in the normal float64 range;
  a result that is subnormal (|value| < 2.2e-308) carries only absolute accuracy.

Catalogue (``f''(1)`` governs the local dynamics, docs/theory.md section 5):

============================  ======================================  ========
name                          f(u)                                    f''(1)
============================  ======================================  ========
kl                            u log u                                 1
reverse_kl                    -log u                                  1
jensen_shannon                u log u - (u+1) log((u+1)/2)            1/2
squared_hellinger             (sqrt(u) - 1)^2                         1/2
pearson_chi2                  (u - 1)^2                               2
neyman_chi2                   (1 - u)^2 / u                           2
alpha (any real alpha)        (u^a - 1 - a(u - 1)) / (a(a - 1))       1
============================  ======================================  ========

``alpha = 1`` and ``alpha = 0`` are evaluated as their exact limits
(``u log u - u + 1`` and ``-log u + u - 1``), never by dividing by zero.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np

__all__ = [
    "DIVERGENCE_NAMES",
    "Divergence",
    "KL",
    "ReverseKL",
    "JensenShannon",
    "SquaredHellinger",
    "PearsonChi2",
    "NeymanChi2",
    "Alpha",
    "get_divergence",
    "resolve_divergence",
    "all_divergences",
]

LOG2 = math.log(2.0)
# expm1(x) overflows for x > log(max float) ~ 709.78; above this threshold we evaluate
# scale * expm1(x) as sign(scale) * exp(x + log|scale|), which is exact to rounding
# because expm1(x) == exp(x) to the last bit for x > 37.
_EXPM1_OVERFLOW = 709.0


# ----------------------------------------------------------------------------------
# Element-wise helpers (log-space building blocks)
# ----------------------------------------------------------------------------------

def _as_array(x) -> Tuple[np.ndarray, bool]:
    arr = np.asarray(x, dtype=np.float64)
    return np.atleast_1d(arr), arr.ndim == 0


def _finish(out: np.ndarray, scalar: bool):
    return out[0] if scalar else out


def _elementwise(function: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """Apply ``function`` to a float64 array view of the input; overflow to inf is silent."""

    def wrapper(x):
        arr, scalar = _as_array(x)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            out = function(arr)
        return _finish(np.asarray(out, dtype=np.float64), scalar)

    return wrapper


def _piecewise(x: np.ndarray, condition: np.ndarray, if_true: Callable, if_false: Callable) -> np.ndarray:
    """Evaluate each branch only where it is selected (no spurious overflow or nan)."""
    out = np.empty_like(x)
    out[condition] = if_true(x[condition])
    rest = ~condition
    out[rest] = if_false(x[rest])
    return out


def scaled_expm1(x: np.ndarray, scale: float) -> np.ndarray:
    """``scale * (e^x - 1)`` without intermediate overflow.

    For ``x > 709`` the product is computed as ``sign(scale) exp(x + log|scale|)``, so a
    result that is finite in float64 is returned finite (e.g. ``expm1(1419)/2``).
    """
    x = np.asarray(x, dtype=np.float64)
    if scale == 0.0:
        return np.zeros_like(x)
    log_scale = math.log(abs(scale))
    sign = 1.0 if scale > 0 else -1.0
    return _piecewise(x, x > _EXPM1_OVERFLOW,
                      lambda v: sign * np.exp(v + log_scale),
                      lambda v: scale * np.expm1(v))


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + e^x)`` for any real x (no overflow, full relative accuracy)."""
    x = np.asarray(x, dtype=np.float64)
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^{-x})`` with full relative accuracy on both tails."""
    x = np.asarray(x, dtype=np.float64)

    def negative(v):
        e = np.exp(v)
        return e / (1.0 + e)

    return _piecewise(x, x >= 0, lambda v: 1.0 / (1.0 + np.exp(-v)), negative)


def _xlogx(u: np.ndarray) -> np.ndarray:
    """``u log u`` with ``0 log 0 = 0``."""
    out = np.zeros_like(u)
    positive = u > 0
    out[positive] = u[positive] * np.log(u[positive])
    return out


def _outside_domain_is_inf(u: np.ndarray, values: np.ndarray) -> np.ndarray:
    values = np.where(u < 0, np.inf, values)
    return values


# ----------------------------------------------------------------------------------
# The base class
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Divergence:
    """Base class of the catalogue; subclasses implement the element-wise maps.

    Attributes
    ----------
    name : str
        Registry name, one of :data:`DIVERGENCE_NAMES`.
    f_double_prime_at_one : float
        ``f''(1)``; the Jacobian of the training dynamics at equilibrium is
        proportional to it (D17).
    """

    name = "abstract"
    formula = ""
    conjugate_formula = ""
    conjugate_domain = ""
    induced = ""
    precision = ""
    f_double_prime_at_one = float("nan")

    @property
    def label(self) -> str:
        """A short human-readable label (``"kl"``, ``"alpha(0.5)"``)."""
        return self.name

    @property
    def params(self) -> dict:
        """Parameters that :func:`get_divergence` needs to rebuild this object."""
        return {}

    # The element-wise maps, implemented by subclasses as ``_name(array) -> array``.
    def f(self, u):
        """Generator ``f(u)``; ``+inf`` for ``u < 0``."""
        return _elementwise(lambda v: _outside_domain_is_inf(v, self._f(np.maximum(v, 0.0))))(u)

    def f_prime(self, u):
        """First derivative ``f'(u)`` for ``u > 0`` (``nan`` for ``u < 0``)."""
        return _elementwise(lambda v: np.where(v < 0, np.nan, self._f_prime(np.maximum(v, 0.0))))(u)

    def f_double_prime(self, u):
        """Second derivative ``f''(u)`` for ``u > 0`` (``nan`` for ``u < 0``)."""
        return _elementwise(lambda v: np.where(v < 0, np.nan, self._f_double_prime(np.maximum(v, 0.0))))(u)

    def conjugate(self, t):
        """Fenchel conjugate ``f*(t) = sup_{u>=0} (u t - f(u))`` (D3); ``+inf`` outside its domain."""
        return _elementwise(self._conjugate)(t)

    def g_data(self, s):
        """``g_data(s) = f'(e^s)`` (D7): the critic on data, as a function of ``s = log(p/q)``."""
        return _elementwise(self._g_data)(s)

    def g_model(self, s):
        """``g_model(s) = f*(f'(e^s)) = e^s f'(e^s) - f(e^s)`` (D7, via the Legendre identity D4)."""
        return _elementwise(self._g_model)(s)

    def g_data_prime(self, s):
        """``g_data'(s) = e^s f''(e^s)`` (D7)."""
        return _elementwise(self._g_data_prime)(s)

    def g_model_prime(self, s):
        """``g_model'(s) = e^{2s} f''(e^s)`` (D7)."""
        return _elementwise(self._g_model_prime)(s)

    def perspective(self, log_p, log_q):
        """``q f(p/q)`` from log densities: the integrand of D2, stable in the tails.

        Parameters
        ----------
        log_p, log_q : array_like
            ``log p(x)`` and ``log q(x)`` at the same points (broadcast together).

        Returns
        -------
        ndarray
            ``q(x) f(p(x)/q(x))``, finite wherever both densities are finite (including
            where ``p/q`` itself overflows), ``0`` where both densities underflow.
        """
        lp, lq = np.broadcast_arrays(np.asarray(log_p, dtype=np.float64),
                                     np.asarray(log_q, dtype=np.float64))
        scalar = lp.ndim == 0
        lp, lq = np.atleast_1d(lp).astype(np.float64), np.atleast_1d(lq).astype(np.float64)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            out = self._perspective(lp, lq)
        return _finish(np.asarray(out, dtype=np.float64), scalar)

    def describe(self) -> dict:
        """Formula, domain, induced divergence and precision notes (for ``febm-ref divergences``)."""
        return {"name": self.name, "label": self.label, "params": self.params, "f": self.formula,
                "conjugate": self.conjugate_formula, "conjugate_domain": self.conjugate_domain,
                "induced": self.induced, "f_double_prime_at_one": self.f_double_prime_at_one,
                "precision": self.precision}


# ----------------------------------------------------------------------------------
# The catalogue
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class KL(Divergence):
    """Kullback-Leibler divergence ``KL(P||Q) = E_p[log(p/q)]``.

    ``f(u) = u log u``; ``f*(t) = exp(t - 1)`` on all of R; ``f''(1) = 1``.
    ``g_data(s) = 1 + s``, ``g_model(s) = e^s``, ``g_data' = 1``, ``g_model' = e^s``.
    With these maps the f-EBM gradient D9 reduces to contrastive divergence with the
    negative phase scaled by ``E_q[e^r]`` (D12). ``g_model`` overflows for s > 709.78.
    """

    name = "kl"
    formula = "u log u"
    conjugate_formula = "exp(t - 1)"
    conjugate_domain = "all real t"
    induced = "KL(P||Q) = E_p[log p/q]"
    precision = "exact to rounding; e^s overflows to inf for s > 709.78"
    f_double_prime_at_one = 1.0

    def _f(self, u):
        return _xlogx(u)

    def _f_prime(self, u):
        return np.log(u) + 1.0

    def _f_double_prime(self, u):
        return 1.0 / u

    def _conjugate(self, t):
        return np.exp(t - 1.0)

    def _g_data(self, s):
        return 1.0 + s

    def _g_model(self, s):
        return np.exp(s)

    def _g_data_prime(self, s):
        return np.ones_like(s)

    def _g_model_prime(self, s):
        return np.exp(s)

    def _perspective(self, lp, lq):
        p = np.exp(lp)
        return np.where(p > 0, p * (lp - lq), 0.0)


@dataclass(frozen=True)
class ReverseKL(Divergence):
    """Reverse Kullback-Leibler divergence ``KL(Q||P) = E_q[log(q/p)]``.

    ``f(u) = -log u``; ``f*(t) = -1 - log(-t)`` for ``t < 0``; ``f''(1) = 1``.
    ``g_data(s) = -e^{-s}``, ``g_model(s) = s - 1``, ``g_data' = e^{-s}``, ``g_model' = 1``.
    ``g_data`` overflows to -inf for s < -709.78.
    """

    name = "reverse_kl"
    formula = "-log u"
    conjugate_formula = "-1 - log(-t)"
    conjugate_domain = "t < 0"
    induced = "KL(Q||P) = E_q[log q/p]"
    precision = "exact to rounding; e^{-s} overflows for s < -709.78"
    f_double_prime_at_one = 1.0

    def _f(self, u):
        return -np.log(u)

    def _f_prime(self, u):
        return -1.0 / u

    def _f_double_prime(self, u):
        return 1.0 / (u * u)

    def _conjugate(self, t):
        return _piecewise(t, t < 0, lambda v: -1.0 - np.log(-v), lambda v: np.full_like(v, np.inf))

    def _g_data(self, s):
        return -np.exp(-s)

    def _g_model(self, s):
        return s - 1.0

    def _g_data_prime(self, s):
        return np.exp(-s)

    def _g_model_prime(self, s):
        return np.ones_like(s)

    def _perspective(self, lp, lq):
        q = np.exp(lq)
        return np.where(q > 0, q * (lq - lp), 0.0)


@dataclass(frozen=True)
class JensenShannon(Divergence):
    """Jensen-Shannon divergence in the f-GAN form (``2 JSD``).

    ``f(u) = u log u - (u + 1) log((u + 1)/2)``, inducing
    ``KL(P||M) + KL(Q||M)`` with ``M = (P + Q)/2``; ``f*(t) = -log(2 - e^t)`` for
    ``t < log 2``; ``f''(1) = 1/2``.

    ``g_data(s) = log 2 - softplus(-s)``, ``g_model(s) = softplus(s) - log 2``,
    ``g_data'(s) = sigmoid(-s)``, ``g_model'(s) = sigmoid(s)``. Near ``s = 0``, where both
    maps vanish, they are evaluated as ``-log1p(expm1(-s)/2)`` and ``log1p(expm1(s)/2)`` so
    that small values keep full relative accuracy (the naive difference of logs does not).
    """

    name = "jensen_shannon"
    formula = "u log u - (u + 1) log((u + 1)/2)"
    conjugate_formula = "-log(2 - exp(t))"
    conjugate_domain = "t < log 2"
    induced = "2 JSD(P||Q) = KL(P||M) + KL(Q||M), M = (P+Q)/2"
    precision = "log1p/expm1 forms near s = 0; no overflow for any finite s"
    f_double_prime_at_one = 0.5

    def _f(self, u):
        return _xlogx(u) - (u + 1.0) * (np.log1p(u) - LOG2)

    def _f_prime(self, u):
        return LOG2 + np.log(u) - np.log1p(u)

    def _f_double_prime(self, u):
        return 1.0 / (u * (u + 1.0))

    def _conjugate(self, t):
        # -log(2 - e^t) = -log 2 - log1p(-e^t / 2); +inf at and beyond t = log 2.
        return _piecewise(t, t < LOG2, lambda v: -LOG2 - np.log1p(-0.5 * np.exp(v)),
                          lambda v: np.full_like(v, np.inf))

    def _g_data(self, s):
        # log 2 + s - softplus(s) = -log((1 + e^{-s})/2)
        return _piecewise(s, s > -1.0, lambda v: -np.log1p(0.5 * np.expm1(-v)),
                          lambda v: (LOG2 + v) - np.log1p(np.exp(v)))

    def _g_model(self, s):
        # softplus(s) - log 2 = log((1 + e^s)/2)
        return _piecewise(s, s < 1.0, lambda v: np.log1p(0.5 * np.expm1(v)),
                          lambda v: (v - LOG2) + np.log1p(np.exp(-v)))

    def _g_data_prime(self, s):
        return sigmoid(-s)

    def _g_model_prime(self, s):
        return sigmoid(s)

    def _perspective(self, lp, lq):
        # p log(2p/(p+q)) + q log(2q/(p+q)); each term is written from logs.
        lm = np.logaddexp(lp, lq)
        p, q = np.exp(lp), np.exp(lq)
        term_p = np.where(p > 0, p * (LOG2 + lp - lm), 0.0)
        term_q = np.where(q > 0, q * (LOG2 + lq - lm), 0.0)
        return term_p + term_q


@dataclass(frozen=True)
class SquaredHellinger(Divergence):
    """Squared Hellinger distance ``∫(sqrt p - sqrt q)^2 = 2 (1 - ∫ sqrt(p q))``.

    ``f(u) = (sqrt u - 1)^2``; ``f*(t) = t/(1 - t)`` for ``t < 1``; ``f''(1) = 1/2``.
    ``g_data(s) = 1 - e^{-s/2}``, ``g_model(s) = e^{s/2} - 1`` (both via ``expm1``),
    ``g_data' = e^{-s/2}/2``, ``g_model' = e^{s/2}/2``. Equal to half the alpha = 1/2
    member of the alpha family.
    """

    name = "squared_hellinger"
    formula = "(sqrt(u) - 1)^2"
    conjugate_formula = "t / (1 - t)"
    conjugate_domain = "t < 1"
    induced = "H^2(P,Q) = ∫ (sqrt p - sqrt q)^2 = 2 (1 - ∫ sqrt(pq))"
    precision = "expm1 forms; overflow only for |s| > 1419"
    f_double_prime_at_one = 0.5

    def _f(self, u):
        return (np.sqrt(u) - 1.0) ** 2

    def _f_prime(self, u):
        return 1.0 - 1.0 / np.sqrt(u)

    def _f_double_prime(self, u):
        return 0.5 * u ** -1.5

    def _conjugate(self, t):
        return _piecewise(t, t < 1.0, lambda v: v / (1.0 - v), lambda v: np.full_like(v, np.inf))

    def _g_data(self, s):
        return scaled_expm1(-0.5 * s, -1.0)

    def _g_model(self, s):
        return scaled_expm1(0.5 * s, 1.0)

    def _g_data_prime(self, s):
        return 0.5 * np.exp(-0.5 * s)

    def _g_model_prime(self, s):
        return 0.5 * np.exp(0.5 * s)

    def _perspective(self, lp, lq):
        return (np.exp(0.5 * lp) - np.exp(0.5 * lq)) ** 2


def _chi2_perspective(lp, lq):
    """``(p - q)^2 / q`` from logs, finite where ``p/q`` overflows."""
    lr = lp - lq
    small = np.exp(lq) * np.expm1(lr) ** 2            # q (p/q - 1)^2
    large = np.exp(2.0 * lp - lq) * (-np.expm1(-lr)) ** 2   # (p^2/q) (1 - q/p)^2
    out = np.where(lr <= 0, small, large)
    return np.where(np.isneginf(lp) & np.isfinite(lq), np.exp(lq), out)


@dataclass(frozen=True)
class PearsonChi2(Divergence):
    """Pearson chi-squared divergence ``∫ (p - q)^2 / q = ∫ p^2/q - 1``.

    ``f(u) = (u - 1)^2``; ``f*(t) = t^2/4 + t`` for ``t >= -2`` and ``-1`` for ``t < -2``
    (the supremum over ``u >= 0`` sits at ``u = 0`` there); ``f''(1) = 2``.
    ``g_data(s) = 2(e^s - 1)``, ``g_model(s) = e^{2s} - 1``, ``g_data' = 2e^s``,
    ``g_model' = 2e^{2s}``. ``g_model`` overflows for s > 354.9: Pearson is the most
    overflow-prone member of the catalogue. Equal to twice the alpha = 2 member.
    """

    name = "pearson_chi2"
    formula = "(u - 1)^2"
    conjugate_formula = "t^2/4 + t  (t >= -2);  -1  (t < -2)"
    conjugate_domain = "all real t"
    induced = "chi2_P(P||Q) = ∫ (p - q)^2 / q"
    precision = "expm1 forms; e^{2s} overflows for s > 354.9"
    f_double_prime_at_one = 2.0

    def _f(self, u):
        return (u - 1.0) ** 2

    def _f_prime(self, u):
        return 2.0 * (u - 1.0)

    def _f_double_prime(self, u):
        return np.full_like(u, 2.0)

    def _conjugate(self, t):
        return np.where(t >= -2.0, 0.25 * t * t + t, -1.0)

    def _g_data(self, s):
        return scaled_expm1(s, 2.0)

    def _g_model(self, s):
        return scaled_expm1(2.0 * s, 1.0)

    def _g_data_prime(self, s):
        return 2.0 * np.exp(s)

    def _g_model_prime(self, s):
        return 2.0 * np.exp(2.0 * s)

    def _perspective(self, lp, lq):
        return _chi2_perspective(lp, lq)


@dataclass(frozen=True)
class NeymanChi2(Divergence):
    """Neyman chi-squared divergence ``∫ (p - q)^2 / p = ∫ q^2/p - 1``.

    ``f(u) = (1 - u)^2 / u``; ``f*(t) = 2 - 2 sqrt(1 - t)`` for ``t <= 1`` (the bound
    ``f*(1) = 2`` is attained as ``u -> inf``), ``+inf`` beyond; ``f''(1) = 2``.
    ``g_data(s) = 1 - e^{-2s}``, ``g_model(s) = 2 - 2e^{-s}``, ``g_data' = 2e^{-2s}``,
    ``g_model' = 2e^{-s}``. Overflows to -inf for s < -354.9. Equal to twice the
    alpha = -1 member.
    """

    name = "neyman_chi2"
    formula = "(1 - u)^2 / u"
    conjugate_formula = "2 - 2 sqrt(1 - t)"
    conjugate_domain = "t <= 1"
    induced = "chi2_N(P||Q) = ∫ (p - q)^2 / p"
    precision = "expm1 forms; e^{-2s} overflows for s < -354.9"
    f_double_prime_at_one = 2.0

    def _f(self, u):
        return (1.0 - u) ** 2 / u

    def _f_prime(self, u):
        return 1.0 - 1.0 / (u * u)

    def _f_double_prime(self, u):
        return 2.0 / u ** 3

    def _conjugate(self, t):
        # 2 - 2 sqrt(1 - t) = 2 t / (1 + sqrt(1 - t)) (no cancellation near t = 0)
        return _piecewise(t, t <= 1.0, lambda v: 2.0 * v / (1.0 + np.sqrt(1.0 - v)),
                          lambda v: np.full_like(v, np.inf))

    def _g_data(self, s):
        return scaled_expm1(-2.0 * s, -1.0)

    def _g_model(self, s):
        return scaled_expm1(-s, -2.0)

    def _g_data_prime(self, s):
        return 2.0 * np.exp(-2.0 * s)

    def _g_model_prime(self, s):
        return 2.0 * np.exp(-s)

    def _perspective(self, lp, lq):
        return _chi2_perspective(lq, lp)


@dataclass(frozen=True)
class Alpha(Divergence):
    """The alpha family (Amari / Cressie-Read), for every real ``alpha``.

    ``f(u) = (u^a - 1 - a(u - 1)) / (a(a - 1))``, inducing
    ``D_a(P||Q) = (∫ p^a q^{1-a} - 1) / (a(a - 1))``; ``f''(u) = u^{a-2}``, ``f''(1) = 1``.

    Conjugate (D3) ``f*(t) = ((a-1)t + 1)^{a/(a-1)}/a - 1/a``, evaluated as
    ``expm1((a/(a-1)) log1p((a-1)t))/a``. Domain: ``t < 1/(1-a)`` for ``0 <= a < 1``;
    ``t <= 1/(1-a)`` for ``a < 0``; all t for ``a >= 1`` (for ``a > 1`` and
    ``t <= -1/(a-1)`` the supremum is at ``u = 0`` and ``f* = -1/a``).

    D7 maps: ``g_data(s) = expm1((a-1)s)/(a-1)``, ``g_model(s) = expm1(a s)/a``,
    ``g_data'(s) = e^{(a-1)s}``, ``g_model'(s) = e^{a s}``.

    Limits (evaluated exactly, not by dividing by zero): ``a = 1`` gives
    ``f = u log u - u + 1`` (KL), ``g_data = s``, ``g_model = e^s - 1``; ``a = 0`` gives
    ``f = -log u + u - 1`` (reverse KL), ``g_data = 1 - e^{-s}``, ``g_model = s``. They
    differ from ``kl``/``reverse_kl`` by linear terms in ``f``, which leave the
    divergence of normalised densities unchanged. ``a = 2`` is Pearson/2, ``a = -1``
    Neyman/2, ``a = 1/2`` twice the squared Hellinger distance.

    Precision: for ``a`` within ~1e-8 of 0 or 1 the ``expm1`` forms remain accurate
    (the division by ``a`` or ``a-1`` is exact up to rounding); ``f`` itself loses
    relative precision near ``u = 1``, where it vanishes quadratically.
    """

    alpha: float = 0.5

    name = "alpha"
    formula = "(u^a - 1 - a(u - 1)) / (a(a - 1))"
    conjugate_formula = "((a - 1) t + 1)^(a/(a - 1)) / a - 1/a"
    induced = "D_a(P||Q) = (∫ p^a q^(1-a) - 1) / (a(a - 1))"
    precision = "expm1/log1p forms; exact limits at a = 0 and a = 1"
    f_double_prime_at_one = 1.0

    def __post_init__(self):
        value = self.alpha
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"alpha must be a real number, got {value!r} ({type(value).__name__})")
        if not math.isfinite(float(value)):
            raise ValueError(f"alpha must be finite, got {value}; alpha = 0 and alpha = 1 are "
                             "the reverse-KL and KL limits, use those values for the limits")
        object.__setattr__(self, "alpha", float(value))

    @property
    def label(self) -> str:
        return f"alpha({self.alpha:g})"

    @property
    def params(self) -> dict:
        return {"alpha": self.alpha}

    @property
    def conjugate_domain(self) -> str:  # type: ignore[override]
        a = self.alpha
        if a >= 1.0:
            return "all real t"
        bound = 1.0 / (1.0 - a)
        return f"t < {bound:g}" if a >= 0.0 else f"t <= {bound:g}"

    def _f(self, u):
        a = self.alpha
        with np.errstate(divide="ignore"):
            log_u = np.log(u)
        if a == 1.0:
            return _xlogx(u) - u + 1.0
        if a == 0.0:
            return -log_u + u - 1.0
        positive = u > 0
        safe_log = np.where(positive, log_u, 0.0)
        # Two exact rewritings of (u^a - 1 - a(u - 1)) / (a(a - 1)), each free of the
        # 1/(a(a-1)) cancellation near one of the limits:
        #   near a = 1: [u expm1((a-1) log u)/(a-1) - (u - 1)] / a
        #   near a = 0: [expm1(a log u)/a - (u - 1)] / (a - 1)
        if a > 0.5:
            value = (u * (np.expm1((a - 1.0) * safe_log) / (a - 1.0)) - (u - 1.0)) / a
        else:
            value = (np.expm1(a * safe_log) / a - (u - 1.0)) / (a - 1.0)
        # u = 0: f(0) = 1/a for a > 0 (u^a -> 0), +inf for a < 0 (u^a -> inf).
        return np.where(positive, value, (1.0 / a) if a > 0 else np.inf)

    def _f_prime(self, u):
        a = self.alpha
        log_u = np.log(u)
        if a == 1.0:
            return log_u
        return np.expm1((a - 1.0) * log_u) / (a - 1.0)

    def _f_double_prime(self, u):
        return u ** (self.alpha - 2.0)

    def _conjugate(self, t):
        a = self.alpha
        if a == 1.0:
            return np.expm1(t)
        if a == 0.0:
            return _piecewise(t, t < 1.0, lambda v: -np.log1p(-v), lambda v: np.full_like(v, np.inf))
        base = (a - 1.0) * t  # (a-1) t + 1 = 1 + base
        interior = base > -1.0

        def inside(v):
            return np.expm1((a / (a - 1.0)) * np.log1p((a - 1.0) * v)) / a

        if a > 1.0:
            # base <= -1: supremum at u = 0, f* = -f(0) = -1/a.
            return _piecewise(t, interior, inside, lambda v: np.full_like(v, -1.0 / a))
        if a > 0.0:
            # 0 < a < 1: +inf at and beyond t = 1/(1-a).
            return _piecewise(t, interior, inside, lambda v: np.full_like(v, np.inf))
        # a < 0: f*(1/(1-a)) = -1/a is attained as u -> inf; +inf beyond.
        return _piecewise(t, interior, inside,
                          lambda v: np.where(v == 1.0 / (1.0 - a), -1.0 / a, np.inf))

    def _g_data(self, s):
        a = self.alpha
        if a == 1.0:
            return s.copy()
        return scaled_expm1((a - 1.0) * s, 1.0 / (a - 1.0))

    def _g_model(self, s):
        a = self.alpha
        if a == 0.0:
            return s.copy()
        return scaled_expm1(a * s, 1.0 / a)

    def _g_data_prime(self, s):
        return np.exp((self.alpha - 1.0) * s)

    def _g_model_prime(self, s):
        return np.exp(self.alpha * s)

    def _perspective(self, lp, lq):
        a = self.alpha
        p, q = np.exp(lp), np.exp(lq)
        if a == 1.0:
            return np.where(p > 0, p * (lp - lq), 0.0) - p + q
        if a == 0.0:
            return np.where(q > 0, q * (lq - lp), 0.0) + p - q
        lr = lp - lq
        # q f(p/q) with the same two exact rewritings as f (no 1/(a(a-1)) cancellation):
        #   a > 1/2:  p expm1((a-1) r) / (a(a-1)) - (p - q) / a
        #   a <= 1/2: q expm1(a r) / (a(a-1))     - (p - q) / (a - 1)
        scale = 1.0 / (a * (a - 1.0))
        if a > 0.5:
            return _scaled_density_times_expm1(lp, (a - 1.0) * lr, scale) - (p - q) / a
        return _scaled_density_times_expm1(lq, a * lr, scale) - (p - q) / (a - 1.0)


def _scaled_density_times_expm1(log_density, x, scale):
    """``scale * exp(log_density) * expm1(x)`` without overflow or underflow of the factors.

    For ``x > 1`` it is ``sign(scale) exp(log_density + x + log|scale|) - scale * density``
    (no cancellation: ``e^x - 1 > 0.63 e^x`` there), so a tiny density times a huge
    ``e^x`` keeps its finite value.
    """
    density = np.exp(log_density)
    big = x > 1.0
    small_part = scale * density * np.expm1(np.where(big, 0.0, x))
    sign = 1.0 if scale > 0 else -1.0
    big_part = sign * np.exp(log_density + np.where(big, x, 0.0) + math.log(abs(scale))) - scale * density
    return np.where(big, big_part, small_part)


# ----------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------

_CATALOGUE = {
    "kl": KL,
    "reverse_kl": ReverseKL,
    "jensen_shannon": JensenShannon,
    "squared_hellinger": SquaredHellinger,
    "pearson_chi2": PearsonChi2,
    "neyman_chi2": NeymanChi2,
    "alpha": Alpha,
}

DIVERGENCE_NAMES: Tuple[str, ...] = tuple(_CATALOGUE)


def get_divergence(name: str, **params) -> Divergence:
    """Return the catalogue divergence ``name`` (one of :data:`DIVERGENCE_NAMES`).

    Parameters
    ----------
    name : str
        ``"kl"``, ``"reverse_kl"``, ``"jensen_shannon"``, ``"squared_hellinger"``,
        ``"pearson_chi2"``, ``"neyman_chi2"`` or ``"alpha"``.
    **params
        ``alpha=<real>`` for ``"alpha"`` (required); no parameters for the others.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or a non-finite alpha.
    TypeError
        Missing or unexpected parameters, or a non-real alpha.
    """
    if not isinstance(name, str):
        raise TypeError(f"divergence name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _CATALOGUE:
        raise ValueError(f"unknown divergence {name!r}; valid names are: {', '.join(DIVERGENCE_NAMES)}")
    if key == "alpha":
        unexpected = set(params) - {"alpha"}
        if unexpected:
            raise TypeError(f"unexpected parameter(s) {sorted(unexpected)} for 'alpha'; it takes alpha=<real>")
        if "alpha" not in params or params["alpha"] is None:
            raise TypeError("the 'alpha' divergence needs a parameter, e.g. get_divergence('alpha', alpha=0.5)")
        return Alpha(alpha=params["alpha"])
    given = {k: v for k, v in params.items() if v is not None}
    if given:
        raise TypeError(f"divergence {key!r} takes no parameters, got {sorted(given)}")
    return _CATALOGUE[key]()


def resolve_divergence(divergence, **params) -> Divergence:
    """Accept a :class:`Divergence` instance or a name (+ params) and return the object."""
    if isinstance(divergence, Divergence):
        if any(v is not None for v in params.values()):
            raise TypeError("parameters are only accepted together with a divergence name")
        return divergence
    return get_divergence(divergence, **params)


def all_divergences(alphas=(-1.0, -0.5, 0.0, 0.5, 0.9, 1.0, 2.0)) -> Tuple[Divergence, ...]:
    """One instance of every catalogue entry, the alpha family at ``alphas``."""
    fixed = tuple(get_divergence(n) for n in DIVERGENCE_NAMES if n != "alpha")
    return fixed + tuple(Alpha(alpha=a) for a in alphas)
