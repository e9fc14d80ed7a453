"""High-precision (mpmath) reference for the divergence catalogue.

Written straight from the generators f of docs/theory.md section 2, composed *naively*
(``g_model(s) = e^s f'(e^s) - f(e^s)`` with 80 significant digits), so it shares no
code and no algebraic rewriting with :mod:`febm_ref.divergences`. It is the
independent oracle for the 1e-12 relative-accuracy claims, used by the tests and by
``febm-ref verify`` (mpmath is a runtime dependency for this reason alone).
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 80


def generator(name: str, alpha=None):
    """Return (f, f', f'') as mpmath callables for a catalogue entry."""
    if name == "kl":
        return (lambda u: u * mp.log(u), lambda u: mp.log(u) + 1, lambda u: 1 / u)
    if name == "reverse_kl":
        return (lambda u: -mp.log(u), lambda u: -1 / u, lambda u: 1 / u**2)
    if name == "jensen_shannon":
        return (lambda u: u * mp.log(u) - (u + 1) * mp.log((u + 1) / 2),
                lambda u: mp.log(2 * u / (u + 1)),
                lambda u: 1 / (u * (u + 1)))
    if name == "squared_hellinger":
        return (lambda u: (mp.sqrt(u) - 1) ** 2, lambda u: 1 - 1 / mp.sqrt(u),
                lambda u: u ** mp.mpf(-1.5) / 2)
    if name == "pearson_chi2":
        return (lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda u: mp.mpf(2))
    if name == "neyman_chi2":
        return (lambda u: (1 - u) ** 2 / u, lambda u: 1 - 1 / u**2, lambda u: 2 / u**3)
    if name == "alpha":
        a = mp.mpf(alpha)
        if a == 1:
            return (lambda u: u * mp.log(u) - u + 1, lambda u: mp.log(u), lambda u: 1 / u)
        if a == 0:
            return (lambda u: -mp.log(u) + u - 1, lambda u: 1 - 1 / u, lambda u: 1 / u**2)
        return (lambda u: (u**a - 1 - a * (u - 1)) / (a * (a - 1)),
                lambda u: (u ** (a - 1) - 1) / (a - 1),
                lambda u: u ** (a - 2))
    raise KeyError(name)


def _extra_digits(*small) -> int:
    """Digits the naive formulas lose: ~2 log10(1/x) per small quantity x (u - 1, alpha,
    1 - alpha, a log ratio), because f ~ (u - 1)^2 and 1/(a (a - 1)) multiplies a numerator
    that cancels to O(a (1 - a)). Generous on purpose; :func:`_checked` verifies it."""
    extra = 0
    for x in small:
        x = mp.mpf(x)
        if x != 0 and mp.isfinite(x) and abs(x) < 1:
            extra += 2 * int(-mp.log10(abs(x))) + 2
    return extra


def _magnitude_digits(x) -> int:
    """log10|x| digits: an argument of exp must be resolved to the unit, not relatively."""
    x = mp.mpf(x)
    return int(mp.log10(abs(x))) + 2 if mp.isfinite(x) and abs(x) > 1 else 0


def _alpha_smalls(alpha):
    return () if alpha is None else (alpha, 1 - mp.mpf(alpha))


def _checked(compute, digits: int, check: bool):
    """Evaluate ``compute()`` at ``digits`` and, if ``check``, again with 30 more digits;
    the two must agree to 1e-25 relative (or be the same infinity / zero), else the oracle
    itself is not converged and an AssertionError says so."""
    with mp.workdps(digits):
        value = compute()
    if check:
        with mp.workdps(digits + 30):
            again = compute()
        same = (value == again) or (mp.isfinite(value) and mp.isfinite(again)
                                    and abs(value - again) <= mp.mpf("1e-25") * abs(again))
        assert same, f"mpmath reference not converged at {digits} digits: {value} vs {again}"
    return value


def reference_maps(name: str, s: float, alpha=None, check: bool = False, only=None) -> dict:
    """g_data, g_model, g_data', g_model' at the float ``s`` (exactly converted), in mpmath.

    ``only``: the one map to compute (the others are omitted from the dict), for speed."""
    # e^s = 1 + s + ... must keep the digits of a tiny s: raise the precision with -log10|s|.
    # The naive g_model = e^s f'(e^s) - f(e^s) cancels terms of size e^{2|s|}: add
    # ~0.87 |s| digits for that as well.
    digits = 80 if s == 0 else max(80, 60 + int(-mp.log10(abs(mp.mpf(s))))) + int(0.9 * abs(s))
    digits += _extra_digits(*_alpha_smalls(alpha))

    def compute_all():
        f, fp, fpp = generator(name, alpha)
        x = mp.mpf(s)
        u = mp.exp(x)
        maps = {
            "g_data": lambda: +fp(u),
            "g_model": lambda: u * fp(u) - f(u),
            "g_data_prime": lambda: u * fpp(u),
            "g_model_prime": lambda: u**2 * fpp(u),
        }
        return {key: value() for key, value in maps.items() if only is None or key == only}

    with mp.workdps(digits):
        out = compute_all()
    if check:  # the same convergence test as _checked, for the four values at once
        with mp.workdps(digits + 30):
            again = compute_all()
        for key, value in out.items():
            same = (value == again[key]) or (mp.isfinite(value) and abs(value - again[key])
                                             <= mp.mpf("1e-25") * abs(again[key]))
            assert same, f"mpmath reference not converged at {digits} digits: {key} {value} vs {again[key]}"
    return out


def reference_generator(name: str, which: str, u: float, alpha=None, check: bool = True):
    """``f``, ``f_prime`` or ``f_double_prime`` (``which``) at the float ``u > 0``, naively."""
    index = {"f": 0, "f_prime": 1, "f_double_prime": 2}[which]
    digits = 40 + _extra_digits(mp.mpf(u) - 1, *_alpha_smalls(alpha))
    if name == "kl" or name == "reverse_kl":
        digits += 20  # log u + 1 vanishes at u = 1/e
    return _checked(lambda: generator(name, alpha)[index](mp.mpf(u)), digits, check)


def conjugate_formula(name: str, alpha=None):
    """The textbook closed form of f*(t) with its domain (mp.inf outside), naive."""
    if name == "kl":
        return lambda t: mp.exp(t - 1)
    if name == "reverse_kl":
        return lambda t: -1 - mp.log(-t) if t < 0 else mp.inf
    if name == "jensen_shannon":
        return lambda t: -mp.log(2 - mp.exp(t)) if mp.exp(t) < 2 else mp.inf
    if name == "squared_hellinger":
        return lambda t: t / (1 - t) if t < 1 else mp.inf
    if name == "pearson_chi2":
        return lambda t: t**2 / 4 + t if t >= -2 else mp.mpf(-1)
    if name == "neyman_chi2":
        return lambda t: 2 - 2 * mp.sqrt(1 - t) if t <= 1 else mp.inf
    a = mp.mpf(alpha)
    if a == 1:
        return lambda t: mp.exp(t) - 1
    if a == 0:
        return lambda t: -mp.log(1 - t) if t < 1 else mp.inf

    def general(t):
        base = (a - 1) * t + 1
        if base > 0:
            return base ** (a / (a - 1)) / a - 1 / a
        if a > 1:
            return -1 / a          # sup at u = 0
        if a < 0 and base == 0:
            return -1 / a          # attained as u -> inf
        return mp.inf

    return general


def reference_conjugate(name: str, t: float, alpha=None, check: bool = True):
    """f*(t) at the float ``t`` (exactly converted), from :func:`conjugate_formula`."""
    # (a - 1) t + 1 must be exact: a - 1 needs up to ~330 digits for a tiny a (in _extra_digits)
    # and exp(t - 1) of a huge |t| needs t - 1 to the unit: log10|t| digits more.
    digits = 60 + _extra_digits(mp.mpf(t), *_alpha_smalls(alpha)) + _magnitude_digits(t)
    return _checked(lambda: conjugate_formula(name, alpha)(mp.mpf(t)), digits, check)


def reference_perspective(name: str, log_p: float, log_q: float, alpha=None, check: bool = True):
    """``q f(p/q)`` for finite float log densities, as ``e^{log q} f(e^{log p - log q})``."""
    r = mp.mpf(log_p) - mp.mpf(log_q)
    digits = 40 + _extra_digits(r, *_alpha_smalls(alpha))
    f = generator(name, alpha)[0]
    return _checked(lambda: mp.exp(mp.mpf(log_q)) * f(mp.exp(mp.mpf(log_p) - mp.mpf(log_q))), digits, check)


FLOAT_MAX = mp.mpf("1.7976931348623157e308")
FLOAT_TINY = mp.mpf("2.2250738585072014e-308")


def relative_error(computed: float, exact) -> float:
    """Relative error of a float64 result against an mpmath value.

    Returns 0 when both overflow to the same signed infinity; ``inf`` when only one
    does, or when the float is nan.
    """
    if computed != computed:
        return float("inf")
    if abs(exact) > FLOAT_MAX:
        same = computed == (float("inf") if exact > 0 else float("-inf"))
        return 0.0 if same else float("inf")
    if computed in (float("inf"), float("-inf")):
        return float("inf")
    if exact == 0:
        return 0.0 if computed == 0 else float("inf")
    return float(abs((mp.mpf(computed) - exact) / exact))
