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


def reference_maps(name: str, s: float, alpha=None) -> dict:
    """g_data, g_model, g_data', g_model' at the float ``s`` (exactly converted), in mpmath."""
    # e^s = 1 + s + ... must keep the digits of a tiny s: raise the precision with -log10|s|.
    # The naive g_model = e^s f'(e^s) - f(e^s) cancels terms of size e^{2|s|}: add
    # ~0.87 |s| digits for that as well.
    digits = 80 if s == 0 else max(80, 60 + int(-mp.log10(abs(mp.mpf(s))))) + int(0.9 * abs(s))
    with mp.workdps(digits):
        f, fp, fpp = generator(name, alpha)
        s = mp.mpf(s)
        u = mp.exp(s)
        return {
            "g_data": +fp(u),
            "g_model": u * fp(u) - f(u),
            "g_data_prime": u * fpp(u),
            "g_model_prime": u**2 * fpp(u),
        }


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
