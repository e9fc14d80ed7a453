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
  values themselves). Scalars in give NumPy scalars out. Input that is not real
  (``None``, strings, complex, object arrays) raises TypeError and an empty array
  ValueError, naming the argument (``u``, ``t``, ``s``, ``log_p``, ``log_q``).
* The perspective never swallows a nan: a log density that is nan or ``+inf`` raises
  ValueError naming its index (``-inf``, a zero density, is valid).
* Every public map (``f``, ``f'``, ``f''``, ``f*``, the four ``g`` maps, the perspective)
  is accurate to 1e-12 relative (measured: a few 1e-14 at worst) over its whole float64
  domain, for every real ``alpha`` including subnormal ones, wherever the true value is
  a normal float; it returns the exact signed infinity where the true value overflows
  and exact limits at ``u = 0``, ``u = inf``, ``s = +-inf``. (The perspective from log
  densities with |log p| + |log q| > 3800, far beyond float64 densities, is accurate to
  2^-53 (2 (|log p| + |log q|) + 1420): the rounding of sums of that size.) A result that is subnormal
  (|value| < 2.2e-308) carries only absolute accuracy. The techniques: series near
  ``u = 1`` with thresholds derived from the truncation error, ``expm1``/``log1p``
  forms, factoring out ``u`` for huge ``u``, log-space products, and conjugate domain
  boundaries decided by error-free arithmetic (tests/test_divergences_domain.py).

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
# float(log 2) is below log 2 by LOG2_LO (mpmath, 50 digits: log 2 - float(log 2)); the
# Jensen-Shannon conjugate's domain boundary t < log 2 is decided with the pair.
LOG2_LO = 2.3190468138462996e-17
# 1/e as a double-double (mpmath: float(1/e) and 1/e - float(1/e)) and e rounded: the zero of
# log(y) + 1 (KL f', reverse-KL conjugate) is approached through y - 1/e, exact to ~2^-106.
INV_E_HI = 0.36787944117144233
INV_E_LO = -1.2428753672788363e-17
E = math.e
TINY = np.finfo(np.float64).tiny
# expm1(x) overflows for x > log(max float) ~ 709.78; above this threshold we evaluate
# scale * expm1(x) as sign(scale) * exp(x + log|scale|), which is exact to rounding
# because expm1(x) == exp(x) to the last bit for x > 37.
_EXPM1_OVERFLOW = 709.0
# Dekker's splitter 2^27 + 1 (exact product of two doubles as a double-double).
_SPLITTER = 134217729.0


# ----------------------------------------------------------------------------------
# Element-wise helpers (log-space building blocks)
# ----------------------------------------------------------------------------------

_REAL_KINDS = "biuf"


def _real_array(x, name: str) -> Tuple[np.ndarray, bool]:
    """``x`` as a 1-d float64 array (and whether it was a scalar); clear errors otherwise.

    Raises
    ------
    TypeError
        ``None``, strings, complex or object input (the argument ``name`` is named).
    ValueError
        An empty array.
    """
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a real number or an array of real numbers, got "
                        f"{type(x).__name__}; pass floats")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged sequences and the like
        raise TypeError(f"{name} could not be read as an array of real numbers ({exc}); pass floats") from None
    if arr.dtype.kind not in _REAL_KINDS:
        what = {"c": "complex", "O": "object", "U": "string", "S": "bytes"}.get(arr.dtype.kind, str(arr.dtype))
        raise TypeError(f"{name} must be real (float or int), got a {what} array (dtype {arr.dtype}); "
                        "pass a float64 array, e.g. np.asarray(x, dtype=float)")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one value")
    arr = arr.astype(np.float64)
    return np.atleast_1d(arr), arr.ndim == 0


def _finish(out: np.ndarray, scalar: bool):
    return out[0] if scalar else out


def _elementwise(function: Callable[[np.ndarray], np.ndarray], name: str = "x") -> Callable:
    """Apply ``function`` to a float64 array view of the input; overflow to inf is silent."""

    def wrapper(x):
        arr, scalar = _real_array(x, name)
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


def _phi1(x: np.ndarray) -> np.ndarray:
    """``phi1(x) = (e^x - 1)/x`` with ``phi1(0) = 1``; accurate to ~2 ulp for |x| <= 1.

    Both ``expm1`` and the division are correctly rounded to <1 ulp, and a relative error
    ``d`` in ``x`` moves phi1 by ``d x phi1'/phi1 <= d/2`` for |x| <= 1, so a subnormal
    (rounded) ``x`` costs nothing: phi1 = 1 + x/2 + ... is then 1 to the last bit.
    """
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, np.expm1(safe) / safe)


def _expm1_ratio(c: float, y: np.ndarray) -> np.ndarray:
    """``(e^{c y} - 1)/c`` for any real ``c`` (``y`` at ``c = 0``), any ``y`` incl. +-inf.

    Three branches: ``|c y| <= 1`` as ``y phi1(c y)`` (no division by a tiny or subnormal
    ``c``, whose reciprocal may overflow); ``c y <= 709`` as ``expm1(c y)/c``; beyond as
    ``sign(c) exp(c y - log|c|)`` (finite wherever the true value is).
    """
    y = np.asarray(y, dtype=np.float64)
    if c == 0.0:
        return y.copy()
    x = c * y
    out = np.empty_like(y)
    small = np.abs(x) <= 1.0
    out[small] = y[small] * _phi1(x[small])
    mid = ~small & (x <= _EXPM1_OVERFLOW)
    out[mid] = np.expm1(x[mid]) / c
    big = ~small & ~mid
    out[big] = math.copysign(1.0, c) * np.exp(x[big] - math.log(abs(c)))
    return out


def _g_expm1_ratio(c: float, s: np.ndarray) -> np.ndarray:
    """``(e^{c s} - 1)/c`` for the alpha g maps: bit for bit the historical
    ``scaled_expm1(c s, 1/c)`` wherever that is accurate (``|c s| >= 2^-54`` and ``1/c``
    finite), else :func:`_expm1_ratio` (a subnormal ``c s`` or an overflowing ``1/c``).

    For ``|c s| < 2^-54`` the value is ``s (1 + c s/2 + ...)``, which rounds to ``s``.
    """
    if c == 0.0:
        return s.copy()
    inv = 1.0 / c
    if not math.isfinite(inv):
        return _expm1_ratio(c, s)
    x = c * s
    tiny = np.abs(x) < 2.0 ** -54
    out = scaled_expm1(np.where(tiny, 0.0, x), inv)
    out[tiny] = s[tiny] * (1.0 + 0.5 * x[tiny])
    return out


def _exp_times_half(x: np.ndarray) -> np.ndarray:
    """``e^x / 2`` finite up to x = 710.47 (``exp(x)`` alone overflows at 709.78).

    ``0.5 exp(x)`` (exact halving) wherever ``exp(x)`` is finite; where it overflows,
    ``(e^{x/2}/2) e^{x/2}``: ``x/2`` and the halving are exact, so ~2 ulp.
    """
    plain = 0.5 * np.exp(x)
    half = 0.5 * x
    return np.where(np.isposinf(plain) & np.isfinite(x), (0.5 * np.exp(half)) * np.exp(half), plain)


def _two_sum(a, b):
    """Knuth's error-free sum: ``a + b = s + e`` exactly (``s = fl(a + b)``)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _split(a):
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """Dekker's error-free product: ``a b = p + e`` exactly (no fma), for |a|, |b| < 1e150."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _one_plus_product(c_hi: float, c_lo: float, t: np.ndarray) -> np.ndarray:
    """``1 + (c_hi + c_lo) t`` to ~2^-106 absolute (the exact sign decides a domain).

    ``c t`` is formed exactly as a double-double after scaling ``c_hi`` by a power of two
    (and ``t`` by its inverse, both exact) so that Dekker's split cannot overflow.
    """
    _, expo = math.frexp(c_hi)
    cs = math.ldexp(c_hi, -expo)
    ts = np.ldexp(t, expo)
    p, e = _two_prod(cs, ts)
    head = 1.0 + p  # exact where it matters (p ~ -1, Sterbenz)
    return head + (e + c_lo * t)


def _log_plus_one(y: np.ndarray) -> np.ndarray:
    """``log(y) + 1`` for ``y >= 0``, accurate also next to its zero ``y = 1/e``.

    On [0.2, 0.7] it is ``log1p(e (y - 1/e))`` with ``y - INV_E_HI`` exact (Sterbenz) and
    the low part of 1/e added: the argument of log1p keeps full relative accuracy, and
    log1p is well conditioned. Elsewhere ``|log y + 1| >= 0.6`` and ``|log y| <= 1.7``
    (or the sum has no cancellation), so the plain sum loses at most ~3 ulp.
    """
    out = np.log(y) + 1.0
    near = (y >= 0.2) & (y <= 0.7)
    d = (y[near] - INV_E_HI) - INV_E_LO
    out[near] = np.log1p(d * E)
    return out


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    if values.ndim == 0:
        return f"(the scalar value {float(values)!r})"
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"at index {index} (value {float(values[index])!r}; {int(bad.sum())} such value(s) in all)"


# ----------------------------------------------------------------------------------
# The base class
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Divergence:
    """Base class of the catalogue; subclasses implement the element-wise maps.

    Subclasses provide ``_f_core(L, u, um1)``: ``f(u)`` from ``L = log u``, ``u`` and
    ``um1 = u - 1`` (each accurate to rounding; the caller forms them from ``u`` or, for
    the perspective, from a log ratio ``r`` as ``r, e^r, expm1(r)``), valid for finite
    ``L`` (``u`` may have underflowed to 0 there); ``L = -inf`` and ``u = inf`` come from
    ``f_at_zero`` / ``f_at_inf``.

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
    f_at_inf = float("inf")

    @property
    def label(self) -> str:
        """A short human-readable label (``"kl"``, ``"alpha(0.5)"``)."""
        return self.name

    @property
    def params(self) -> dict:
        """Parameters that :func:`get_divergence` needs to rebuild this object."""
        return {}

    @property
    def f_at_zero(self) -> float:
        """``f(0) = lim_{u -> 0+} f(u)`` (may be ``+inf``)."""
        raise NotImplementedError

    def dual(self) -> Divergence:
        """The entry whose generator is ``v f(1/v)`` (same perspective with p and q swapped)."""
        raise NotImplementedError

    def _f_values(self, L, u, um1):
        """``f`` for ``u >= 0`` (no nan in ``u``), end points included."""
        out = self._f_core(L, u, um1)
        out = np.where(np.isneginf(L), self.f_at_zero, out)  # u = 0 exactly (not an underflowed e^L)
        return np.where(np.isposinf(u), self.f_at_inf, out)

    def _log_f_values(self, L, u, um1, values):
        """``log f`` where ``values = f > 0`` may have overflowed (overridden where it can)."""
        return np.log(values)

    def _f_from_u(self, u):
        out = np.full_like(u, np.inf)  # outside the domain u >= 0
        out[np.isnan(u)] = np.nan
        ok = u >= 0.0
        v = u[ok]
        out[ok] = self._f_values(np.log(v), v, v - 1.0)
        return out

    # The element-wise maps, implemented by subclasses as ``_name(array) -> array``.
    def f(self, u):
        """Generator ``f(u)``; ``+inf`` for ``u < 0``."""
        return _elementwise(self._f_from_u, "u")(u)

    def f_prime(self, u):
        """First derivative ``f'(u)`` for ``u > 0`` (``nan`` for ``u < 0``)."""
        return _elementwise(lambda v: np.where(v < 0, np.nan, self._f_prime(np.maximum(v, 0.0))), "u")(u)

    def f_double_prime(self, u):
        """Second derivative ``f''(u)`` for ``u > 0`` (``nan`` for ``u < 0``)."""
        return _elementwise(lambda v: np.where(v < 0, np.nan, self._f_double_prime(np.maximum(v, 0.0))),
                            "u")(u)

    def conjugate(self, t):
        """Fenchel conjugate ``f*(t) = sup_{u>=0} (u t - f(u))`` (D3); ``+inf`` outside its domain."""
        return _elementwise(self._conjugate, "t")(t)

    def g_data(self, s):
        """``g_data(s) = f'(e^s)`` (D7): the critic on data, as a function of ``s = log(p/q)``."""
        return _elementwise(self._g_data, "s")(s)

    def g_model(self, s):
        """``g_model(s) = f*(f'(e^s)) = e^s f'(e^s) - f(e^s)`` (D7, via the Legendre identity D4)."""
        return _elementwise(self._g_model, "s")(s)

    def g_data_prime(self, s):
        """``g_data'(s) = e^s f''(e^s)`` (D7)."""
        return _elementwise(self._g_data_prime, "s")(s)

    def g_model_prime(self, s):
        """``g_model'(s) = e^{2s} f''(e^s)`` (D7)."""
        return _elementwise(self._g_model_prime, "s")(s)

    def perspective(self, log_p, log_q):
        """``q f(p/q)`` from log densities: the integrand of D2, stable in the tails.

        With ``r = log p - log q`` it is ``q f(e^r)`` for ``r <= 0`` and ``p f~(e^{-r})`` for
        ``r > 0``, ``f~(v) = v f(1/v)`` (:meth:`dual`), so the ratio never overflows; ``f`` is
        evaluated from ``(r, e^r, expm1(r))`` (no cancellation in ``e^r - 1`` near p = q), and
        where the product of the density and ``f`` leaves the normal range it is formed as
        ``exp(log density + log f)``.

        Parameters
        ----------
        log_p, log_q : array_like
            ``log p(x)`` and ``log q(x)`` at the same points (broadcast together); each
            finite or ``-inf`` (a zero density).

        Returns
        -------
        ndarray
            ``q(x) f(p(x)/q(x))``: finite wherever the true value is (including where
            ``p/q`` itself overflows), ``0`` where both densities are zero, ``q f(0)`` /
            ``p f~(0)`` (possibly ``+inf``) where exactly one is.

        Raises
        ------
        ValueError
            A log density that is nan or ``+inf`` (named with its index): it is never
            swallowed into a finite sum.
        """
        lp_in, _ = _real_array(log_p, "log_p")
        lq_in, _ = _real_array(log_q, "log_q")
        shape_p, shape_q = np.shape(log_p), np.shape(log_q)
        try:
            shape = np.broadcast_shapes(shape_p, shape_q)
        except ValueError:
            raise ValueError(f"log_p (shape {shape_p}) and log_q (shape {shape_q}) do not broadcast "
                             "together; pass arrays of one shape") from None
        lp = np.broadcast_to(lp_in.reshape(shape_p), shape).astype(np.float64)
        lq = np.broadcast_to(lq_in.reshape(shape_q), shape).astype(np.float64)
        for name, values in (("log_p", lp), ("log_q", lq)):
            bad = np.isnan(values) | np.isposinf(values)
            if np.any(bad):
                raise ValueError(f"{name} is not finite {_first_bad(values, bad)}; a log density must be "
                                 "finite or -inf (zero density): fix the density at that point")
        scalar = lp.ndim == 0
        lp, lq = np.atleast_1d(lp), np.atleast_1d(lq)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            out = self._perspective(lp.ravel(), lq.ravel()).reshape(lp.shape)
        return _finish(np.asarray(out, dtype=np.float64), scalar)

    def _perspective(self, lp, lq):
        both_zero = np.isneginf(lp) & np.isneginf(lq)
        r = np.where(both_zero, 0.0, lp - lq)
        lower = r <= 0.0
        x = np.where(lower, r, -r)  # <= 0: the ratio e^x <= 1 never overflows
        log_density = np.where(lower, lq, lp)
        u, um1 = np.exp(x), np.expm1(x)
        values = np.empty_like(x)
        dual = self.dual()
        for div, part in ((self, lower), (dual, ~lower)):
            values[part] = div._f_values(x[part], u[part], um1[part])
        out = np.exp(log_density) * values
        # Redo in log space where the product left the normal range, or where f itself is
        # subnormal (only KL's f = u log u -> 0 gets there, through a subnormal e^x).
        # A zero f at a finite x < 0 is an underflow (again only KL: f(e^x) = x e^x).
        nonzero = (values != 0.0) | (np.isfinite(x) & (x < 0.0))
        out[~nonzero] = 0.0  # p = q: f(1) = 0 times a density that may overflow (no inf * 0)
        redo = (nonzero & np.isfinite(log_density)
                & ~((np.abs(out) >= TINY) & np.isfinite(out) & (np.abs(values) >= TINY)))
        if np.any(redo):
            log_abs = np.empty(int(redo.sum()))
            for div, part in ((self, lower & redo), (dual, ~lower & redo)):
                sel = part[redo]
                log_abs[sel] = div._log_f_values(x[part], u[part], um1[part], np.abs(values[part]))
            sign = np.where(values[redo] != 0.0, np.sign(values[redo]), np.sign(x[redo]))
            out[redo] = sign * np.exp(log_density[redo] + log_abs)
        return np.where(both_zero, 0.0, out)

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
    ``f'(u) = log u + 1`` is evaluated as ``log1p(e (u - 1/e))`` next to its zero 1/e.
    """

    name = "kl"
    formula = "u log u"
    conjugate_formula = "exp(t - 1)"
    conjugate_domain = "all real t"
    induced = "KL(P||Q) = E_p[log p/q]"
    precision = "exact to rounding (f' via log1p near u = 1/e); e^s overflows to inf for s > 709.78"
    f_double_prime_at_one = 1.0
    f_at_zero = 0.0

    def dual(self):
        return ReverseKL()

    def _f_core(self, L, u, um1):
        return u * L

    def _log_f_values(self, L, u, um1, values):
        # |u log u| = exp(L + log|L|): exact also where e^L is subnormal (perspective tails)
        return L + np.log(np.abs(L))

    def _f_prime(self, u):
        return _log_plus_one(u)

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


@dataclass(frozen=True)
class ReverseKL(Divergence):
    """Reverse Kullback-Leibler divergence ``KL(Q||P) = E_q[log(q/p)]``.

    ``f(u) = -log u``; ``f*(t) = -1 - log(-t)`` for ``t < 0``; ``f''(1) = 1``.
    ``g_data(s) = -e^{-s}``, ``g_model(s) = s - 1``, ``g_data' = e^{-s}``, ``g_model' = 1``.
    ``g_data`` overflows to -inf for s < -709.78. The conjugate is evaluated as
    ``-log1p(e (-t - 1/e))`` next to its zero ``t = -1/e``.
    """

    name = "reverse_kl"
    formula = "-log u"
    conjugate_formula = "-1 - log(-t)"
    conjugate_domain = "t < 0"
    induced = "KL(Q||P) = E_q[log q/p]"
    precision = "exact to rounding (f* via log1p near t = -1/e); e^{-s} overflows for s < -709.78"
    f_double_prime_at_one = 1.0
    f_at_zero = float("inf")
    f_at_inf = float("-inf")

    def dual(self):
        return KL()

    def _f_core(self, L, u, um1):
        return -L

    def _f_prime(self, u):
        return -1.0 / u

    def _f_double_prime(self, u):
        inv = 1.0 / u  # (1/u)^2: no subnormal u*u for u < 1.5e-154
        return inv * inv

    def _conjugate(self, t):
        return _piecewise(t, t < 0, lambda v: -_log_plus_one(-v), lambda v: np.full_like(v, np.inf))

    def _g_data(self, s):
        return -np.exp(-s)

    def _g_model(self, s):
        return s - 1.0

    def _g_data_prime(self, s):
        return np.exp(-s)

    def _g_model_prime(self, s):
        return np.ones_like(s)


# Jensen-Shannon near u = 1: with w = (u - 1)/(u + 1), f(u) = (u + 1)/2 N(w) and
# N(w) = (1+w) log(1+w) + (1-w) log(1-w) = sum_{k>=1} w^{2k} / (k (2k - 1)), all terms
# positive. For |w| <= 0.1 (u in [9/11, 11/9]) the terms after k = 8 sum to at most
# w^16/153 / (1 - w^2) < 6.6e-19 of the first, far below the 2^-53 = 1.1e-16 roundoff;
# outside, the closed form cancels by at most a factor ~20 (at |w| = 0.1), i.e. < 1e-14.
_JS_SERIES_W = 0.1
_JS_SERIES = tuple(1.0 / (k * (2 * k - 1)) for k in range(1, 9))


def _js_log_ratio(L, u, um1):
    """``log(2u/(u+1)) = f'_JS(u)`` with full relative accuracy (zero at u = 1)."""
    w = um1 / (u + 1.0)
    # u >= 2: log 2 - log1p(1/u) cancels by < 2.4x; [1/3, 2): log1p(w), w in [-1/2, 1/3)
    # carries a relative error <= 2 ulp and log1p is well conditioned there; u < 1/3:
    # log(2u) - log1p(u) adds two negative terms.
    return np.where(u >= 2.0, LOG2 - np.log1p(1.0 / u),
                    np.where(u >= 1.0 / 3.0, np.log1p(w), (LOG2 + L) - np.log1p(u)))


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

    ``f`` is ``u log(2u/(u+1)) - log1p((u-1)/2)`` (no overflow for huge u) and, for
    ``|u - 1| <= 0.2 (u + 1)/2``, the positive series ``(u+1)/2 sum w^{2k}/(k(2k-1))`` in
    ``w = (u-1)/(u+1)``. The conjugate's boundary ``t < log 2`` is decided with log 2 as
    a double-double, and near it ``2 - e^t = -2 expm1(-(log 2 - t))``.
    """

    name = "jensen_shannon"
    formula = "u log u - (u + 1) log((u + 1)/2)"
    conjugate_formula = "-log(2 - exp(t))"
    conjugate_domain = "t < log 2"
    induced = "2 JSD(P||Q) = KL(P||M) + KL(Q||M), M = (P+Q)/2"
    precision = "log1p/expm1 forms near s = 0, series near u = 1; no overflow for any finite s"
    f_double_prime_at_one = 0.5
    f_at_zero = LOG2

    def dual(self):
        return self

    def _f_core(self, L, u, um1):
        w = um1 / (u + 1.0)
        w2 = w * w
        series = 0.0
        for c in reversed(_JS_SERIES):
            series = series * w2 + c
        near = 0.5 * (u + 1.0) * (w2 * series)
        far = u * _js_log_ratio(L, u, um1) - np.log1p(0.5 * um1)
        return np.where(np.abs(w) <= _JS_SERIES_W, near, far)

    def _f_prime(self, u):
        return _js_log_ratio(np.log(u), u, u - 1.0)

    def _f_double_prime(self, u):
        return (1.0 / u) / (u + 1.0)

    def _conjugate(self, t):
        # t < log(2)/2: -log1p(-expm1(t)) (log1p(-x) for x <= 0.414 is well conditioned).
        # t >= log(2)/2: d = log 2 - t from the double-double (LOG2 - t exact, Sterbenz);
        # d <= 0 is outside the domain, else f* = -log 2 - log(-expm1(-d)).
        out = np.full_like(t, np.inf)
        low = t < 0.5 * LOG2
        out[low] = -np.log1p(-np.expm1(t[low]))
        high = (t >= 0.5 * LOG2) & (t <= 2.0 * LOG2)
        d = (LOG2 - t[high]) + LOG2_LO
        inside = d > 0.0
        val = np.full_like(d, np.inf)
        val[inside] = -LOG2 - np.log(-np.expm1(-d[inside]))
        out[high] = val
        out[np.isnan(t)] = np.nan
        return out

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


@dataclass(frozen=True)
class SquaredHellinger(Divergence):
    """Squared Hellinger distance ``∫(sqrt p - sqrt q)^2 = 2 (1 - ∫ sqrt(p q))``.

    ``f(u) = (sqrt u - 1)^2``; ``f*(t) = t/(1 - t)`` for ``t < 1``; ``f''(1) = 1/2``.
    ``g_data(s) = 1 - e^{-s/2}``, ``g_model(s) = e^{s/2} - 1`` (both via ``expm1``),
    ``g_data' = e^{-s/2}/2``, ``g_model' = e^{s/2}/2`` (finite up to |s| = 1420.9). Equal
    to half the alpha = 1/2 member of the alpha family. ``sqrt u - 1`` is evaluated as
    ``(u - 1)/(sqrt u + 1)`` (no cancellation near u = 1).
    """

    name = "squared_hellinger"
    formula = "(sqrt(u) - 1)^2"
    conjugate_formula = "t / (1 - t)"
    conjugate_domain = "t < 1"
    induced = "H^2(P,Q) = ∫ (sqrt p - sqrt q)^2 = 2 (1 - ∫ sqrt(pq))"
    precision = "expm1 forms; overflow only for |s| > 1420.9"
    f_double_prime_at_one = 0.5
    f_at_zero = 1.0

    def dual(self):
        return self

    def _f_core(self, L, u, um1):
        root_m1 = um1 / (np.sqrt(u) + 1.0)
        return root_m1 * root_m1

    def _f_prime(self, u):
        root = np.sqrt(u)
        return np.where(np.isposinf(u), 1.0, ((u - 1.0) / (root + 1.0)) / root)

    def _f_double_prime(self, u):
        return (0.5 / u) / np.sqrt(u)  # no overflow of u^-1.5 where 0.5 u^-1.5 is finite

    def _conjugate(self, t):
        return _piecewise(t, t < 1.0, lambda v: np.where(np.isneginf(v), -1.0, v / (1.0 - v)),
                          lambda v: np.where(np.isnan(v), np.nan, np.inf))

    def _g_data(self, s):
        return scaled_expm1(-0.5 * s, -1.0)

    def _g_model(self, s):
        return scaled_expm1(0.5 * s, 1.0)

    def _g_data_prime(self, s):
        return _exp_times_half(-0.5 * s)

    def _g_model_prime(self, s):
        return _exp_times_half(0.5 * s)


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
    f_at_zero = 1.0

    def dual(self):
        return NeymanChi2()

    def _f_core(self, L, u, um1):
        return um1 * um1

    def _f_prime(self, u):
        return 2.0 * (u - 1.0)

    def _f_double_prime(self, u):
        return np.full_like(u, 2.0)

    def _conjugate(self, t):
        # t (t/4 + 1): no overflow of t*t where t^2/4 + t is finite
        return np.where(t >= -2.0, t * (0.25 * t + 1.0), np.where(np.isnan(t), np.nan, -1.0))

    def _g_data(self, s):
        return scaled_expm1(s, 2.0)

    def _g_model(self, s):
        return scaled_expm1(2.0 * s, 1.0)

    def _g_data_prime(self, s):
        return 2.0 * np.exp(s)

    def _g_model_prime(self, s):
        return 2.0 * np.exp(2.0 * s)


@dataclass(frozen=True)
class NeymanChi2(Divergence):
    """Neyman chi-squared divergence ``∫ (p - q)^2 / p = ∫ q^2/p - 1``.

    ``f(u) = (1 - u)^2 / u``; ``f*(t) = 2 - 2 sqrt(1 - t)`` for ``t <= 1`` (the bound
    ``f*(1) = 2`` is attained as ``u -> inf``), ``+inf`` beyond; ``f''(1) = 2``.
    ``g_data(s) = 1 - e^{-2s}``, ``g_model(s) = 2 - 2e^{-s}``, ``g_data' = 2e^{-2s}``,
    ``g_model' = 2e^{-s}``. Overflows to -inf for s < -354.9. Equal to twice the
    alpha = -1 member. ``f`` is ``(u - 1) ((u - 1)/u)`` and ``f'`` is
    ``((u - 1)/u) ((u + 1)/u)`` (no overflow of ``(u-1)^2`` or ``u^2``).
    """

    name = "neyman_chi2"
    formula = "(1 - u)^2 / u"
    conjugate_formula = "2 - 2 sqrt(1 - t)"
    conjugate_domain = "t <= 1"
    induced = "chi2_N(P||Q) = ∫ (p - q)^2 / p"
    precision = "expm1 forms; e^{-2s} overflows for s < -354.9"
    f_double_prime_at_one = 2.0
    f_at_zero = float("inf")

    def dual(self):
        return PearsonChi2()

    def _f_core(self, L, u, um1):
        return um1 * (um1 / u)

    def _log_f_values(self, L, u, um1, values):
        # log((1 - u)^2 / u) = 2 log(1 - u) - log u, for the perspective's u <= 1
        return np.where(np.isfinite(values), np.log(values), 2.0 * np.log(-um1) - L)

    def _f_prime(self, u):
        return np.where(np.isposinf(u), 1.0, ((u - 1.0) / u) * (1.0 + 1.0 / u))

    def _f_double_prime(self, u):
        inv = 1.0 / u
        return 2.0 * (inv * inv * inv)

    def _conjugate(self, t):
        # 2 - 2 sqrt(1 - t) = 2 t / (1 + sqrt(1 - t)) (no cancellation near t = 0)
        return _piecewise(t, t <= 1.0,
                          lambda v: np.where(np.isneginf(v), -np.inf, 2.0 * (v / (1.0 + np.sqrt(1.0 - v)))),
                          lambda v: np.where(np.isnan(v), np.nan, np.inf))

    def _g_data(self, s):
        return scaled_expm1(-2.0 * s, -1.0)

    def _g_model(self, s):
        return scaled_expm1(-s, -2.0)

    def _g_data_prime(self, s):
        return 2.0 * np.exp(-2.0 * s)

    def _g_model_prime(self, s):
        return 2.0 * np.exp(-s)


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

    Precision (every real a, including a next to 0 and 1 and subnormal a): ``f`` is the
    series ``sum_k (1 + a + ... + a^{k-2}) (log u)^k / k!`` for ``max(1,|a|) |log u| <= 0.1``
    (no division by ``a`` or ``a - 1``; it vanishes quadratically at u = 1 with full
    relative accuracy) and one of two ``expm1`` rewritings beyond, in log space where
    ``u^a`` overflows; ``(e^{cx} - 1)/c`` is ``x phi1(cx)`` where ``cx`` is small, so a
    subnormal ``a`` (whose reciprocal overflows) is an ordinary member; the conjugate's
    domain ``1 + (a - 1) t > 0`` is decided from an error-free product.
    """

    alpha: float = 0.5

    name = "alpha"
    formula = "(u^a - 1 - a(u - 1)) / (a(a - 1))"
    conjugate_formula = "((a - 1) t + 1)^(a/(a - 1)) / a - 1/a"
    induced = "D_a(P||Q) = (∫ p^a q^(1-a) - 1) / (a(a - 1))"
    precision = "series near u = 1, expm1/log1p forms; exact limits at a = 0 and a = 1, any real a"
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

    @property
    def f_at_zero(self) -> float:  # type: ignore[override]
        # u^a -> 0 for a > 0 (f(0) = 1/a, +inf when 1/a overflows); u^a -> inf for a <= 0.
        return 1.0 / self.alpha if self.alpha > 0 else float("inf")

    def dual(self):
        return Alpha(alpha=1.0 - self.alpha)

    def _series_coefficients(self):
        """``c_k`` of ``f = L^2/2 sum_k c_k y^{k-2}``, ``y = m L``, ``m = max(1, |a|)``.

        ``f(e^L) = sum_{k>=2} h_{k-1}(a) L^k / k!`` with ``h_j(a) = 1 + a + ... + a^{j-1}``
        (the exact expansion of ``(e^{aL} - 1 - aL - a(e^L - 1 - L)) / (a(a-1))``, which has no
        division by ``a`` or ``a - 1``: the limits a = 0, 1 and subnormal a are ordinary
        members). ``c_k = 2 h_{k-1}(a) / (k! m^{k-2})``, formed by the recurrence
        ``h_j / m^{j-1} = m^{-(j-1)} + (a/m) h_{j-1} / m^{j-2}`` so nothing overflows for huge a.
        """
        a = self.alpha
        m = max(1.0, abs(a))
        coeffs, h_hat, inv_m_power, factorial = [], 1.0, 1.0, 2.0
        for k in range(2, _ALPHA_SERIES_TERMS + 2):
            coeffs.append(2.0 * h_hat / factorial)
            inv_m_power /= m
            h_hat = inv_m_power + (a / m) * h_hat
            factorial *= k + 1
        return m, coeffs

    def _f_core(self, L, u, um1):
        a = self.alpha
        m, coeffs = self._series_coefficients()
        y = m * L
        near = np.abs(y) <= _ALPHA_SERIES_Y
        out = np.empty_like(L)
        poly = np.zeros(int(near.sum()))
        for c in reversed(coeffs):
            poly = poly * y[near] + c
        out[near] = 0.5 * L[near] * L[near] * poly
        far = ~near
        out[far] = (self._f_far_low if a <= 0.5 else self._f_far_high)(L[far], u[far], um1[far])
        return out

    def _f_far_low(self, L, u, um1):
        """a <= 1/2, |m L| > 0.1: ``f = (expm1(aL)/a - (u - 1)) / (a - 1)``.

        The difference is ``L (phi1(aL) - phi1(L))`` and phi1 is increasing, so it cancels
        by at most ~``2/((1 - a)|L|) <= 2/|m L| < 20``. Where ``aL > 700`` (a < 0, u -> 0)
        ``f = e^{aL} / (a(a-1))`` to within ``(1 + |aL|) e^{-700}``, formed in log space.
        """
        a = self.alpha
        out = (_expm1_ratio(a, L) - um1) / (a - 1.0)
        if a < 0:
            x = a * L
            big = x > 700.0
            out[big] = np.exp(x[big] - math.log(-a) - math.log1p(-a))
        return out

    def _f_far_high(self, L, u, um1):
        """a > 1/2, |m L| > 0.1: ``f = u (expm1(bL)/b - (u - 1)/u) / a``, ``b = a - 1``.

        The bracket is ``L (phi1(bL) - phi1(-L))`` (cancellation < ``2/(a|L|) <= 20``);
        the product is redone as ``exp(L + log B - log a)`` where it overflows, and for
        ``bL > 700`` ``f = e^{aL} / (a b)`` to within ``(1 + bL) e^{-700}``.
        """
        a = self.alpha
        b = a - 1.0
        ratio = _expm1_ratio(b, L)
        # u <= 1: u E_b - (u - 1) has no overflow (|E_b| <= max(1/|b|, |L|)); u > 1: factor
        # out u, the bracket E_b - (u - 1)/u is bounded by E_b and u times it may overflow.
        low = u <= 1.0
        out = np.empty_like(L)
        # u e^{...}: (e^{aL} - e^L)/b -> 0; where e^L underflowed to 0 the product is 0 (not
        # 0 * inf): it is below e^{-372}/|b| there, against u - 1 = -1.
        product = np.where(u[low] == 0.0, 0.0, u[low] * ratio[low])
        out[low] = (product - um1[low]) / a
        high = ~low
        bracket = ratio[high] - um1[high] / u[high]
        value = (u[high] * bracket) / a
        redo = ~np.isfinite(value)
        value[redo] = np.exp(L[high][redo] + np.log(bracket[redo]) - math.log(a))
        out[high] = value
        if b > 0:
            big = b * L > 700.0
            out[big] = np.exp(a * L[big] - math.log(a) - math.log(b))
        return out

    def _log_f_values(self, L, u, um1, values):
        a = self.alpha
        if a >= 0:
            return np.log(values)
        # perspective, u <= 1: f overflows only through u^a = e^{aL}, f ~ e^{aL} / (a(a-1))
        return np.where(np.isfinite(values), np.log(values), a * L - math.log(-a) - math.log1p(-a))

    def _f_prime(self, u):
        return _expm1_ratio(self.alpha - 1.0, np.log(u))

    def _f_double_prime(self, u):
        return np.power(u, self.alpha - 2.0)

    def _conjugate(self, t):
        a = self.alpha
        if a == 1.0:
            return np.expm1(t)
        if a == 0.0:
            return _piecewise(t, t < 1.0, lambda v: -np.log1p(-v),
                              lambda v: np.where(np.isnan(v), np.nan, np.inf))
        b_hi, b_lo = _two_sum(a, -1.0)  # a - 1 exactly
        bt = b_hi * t + b_lo * t
        near = np.abs(1.0 + bt) < 0.5
        v = 1.0 + bt
        v[near] = _one_plus_product(b_hi, b_lo, t[near])  # sign exact: decides the domain
        log_v = np.log1p(bt)
        log_v[near] = np.log(v[near])
        huge = np.isposinf(bt) & np.isfinite(t)
        log_v[huge] = math.log(abs(b_hi)) + np.log(np.abs(t[huge]))
        inside = v > 0.0
        out = np.empty_like(t)
        # log(v)/(a - 1): where (a - 1) t is below 2^-1000 (a next to 1, t tiny but normal)
        # log1p of a subnormal product would lose digits; log1p(z)/z = 1 - z/2 + ... there.
        tiny = np.abs(bt) < 2.0 ** -1000
        log_v_over_b = np.where(tiny, t * (1.0 - 0.5 * bt), log_v / b_hi)
        out[inside] = self._conjugate_inside(log_v[inside], log_v_over_b[inside], b_hi)
        if a > 1.0:
            outside = -1.0 / a  # supremum at u = 0
        elif a > 0.0:
            outside = np.inf
        else:
            outside = np.where(v[~inside] == 0.0, -1.0 / a, np.inf)  # attained as u -> inf
        out[~inside] = outside
        out[np.isnan(t)] = np.nan
        return out

    def _conjugate_inside(self, log_v, log_v_over_b, b):
        """``(v^p - 1)/a``, ``p = a/(a-1)``, from ``W = log v``: ``(W/(a-1)) phi1(pW)`` for
        |pW| <= 1 (no division by a tiny or subnormal a), ``expm1(pW)/a`` up to 709, log space
        beyond."""
        a = self.alpha
        p = a / b
        x = p * log_v
        out = np.empty_like(x)
        small = np.abs(x) <= 1.0
        out[small] = log_v_over_b[small] * _phi1(x[small])
        mid = ~small & (x <= _EXPM1_OVERFLOW)
        out[mid] = np.expm1(x[mid]) / a
        big = ~small & ~mid
        out[big] = math.copysign(1.0, a) * np.exp(x[big] - math.log(abs(a)))
        return out

    def _g_data(self, s):
        return _g_expm1_ratio(self.alpha - 1.0, s)

    def _g_model(self, s):
        return _g_expm1_ratio(self.alpha, s)

    def _g_data_prime(self, s):
        if self.alpha == 1.0:
            return np.ones_like(s)  # e^{0 s} = 1, also at s = +-inf (no 0 * inf)
        return np.exp((self.alpha - 1.0) * s)

    def _g_model_prime(self, s):
        if self.alpha == 0.0:
            return np.ones_like(s)
        return np.exp(self.alpha * s)


# Alpha near u = 1: series in y = m log u, m = max(1, |a|), used for |y| <= 0.1. With
# |h_{k-1}(a)| <= (k-1) m^{k-2}, term k is at most 2 (k-1) 0.1^{k-2} / k! of L^2/2 and
# the sum of terms 3.. at most 0.07 of it, so after 12 terms (k = 2..13) the remainder
# is below 4.3e-20 / 0.93 of f, far below the 1.1e-16 roundoff. Outside, the closed
# forms cancel by at most ~20x (_f_far_low/_f_far_high): < 1e-14 relative.
_ALPHA_SERIES_Y = 0.1
_ALPHA_SERIES_TERMS = 12


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
