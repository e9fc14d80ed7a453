"""Checks of the divergence catalogue (docs/theory.md section 2): D4, D5, D7 and the alpha limits.

The per-divergence measures (:func:`map_errors`, :func:`legendre_error`) are what
tests/test_divergences.py asserts on its own grids.
"""

from __future__ import annotations

import math

import numpy as np

from febm_ref.divergences import Alpha, all_divergences
from febm_ref.verification.mp_reference import FLOAT_TINY, reference_maps, relative_error
from febm_ref.verification.registry import Measurement, register

_MAPS = ("g_data", "g_model", "g_data_prime", "g_model_prime")
_ALPHAS = (-2.5, -1.0, -0.5, 0.0, 0.3, 0.5, 0.9, 1.0, 2.0, 3.5)


def map_errors(div, s_values) -> dict:
    """Map name -> ``(worst relative error, first s where it occurs)`` of ``g_data``,
    ``g_model`` and their derivatives at ``s_values`` against the 80-digit naive composition
    (:func:`febm_ref.verification.mp_reference.reference_maps`); subnormal truths are left out
    (only absolute accuracy is promised there). ``(0.0, nan)`` if no point counts."""
    alpha = getattr(div, "alpha", None)
    worst = {}
    for name in _MAPS:
        largest, at = 0.0, math.nan
        for s, value in zip(s_values, getattr(div, name)(s_values)):
            exact = reference_maps(div.name, float(s), alpha)[name]
            if exact != 0 and abs(exact) < FLOAT_TINY:
                continue
            err = relative_error(float(value), exact)
            if err > largest:
                largest, at = err, float(s)
        worst[name] = (largest, at)
    return worst


def legendre_error(div, u) -> float:
    """D4: ``max |f*(f'(u)) - (u f'(u) - f(u))| / (|u f'(u) - f(u)| + 1e-12)`` over ``u``."""
    t = div.f_prime(u)
    lhs, rhs = div.conjugate(t), u * t - div.f(u)
    return float(np.max(np.abs(lhs - rhs) / (np.abs(rhs) + 1e-12)))


@register("catalogue.D7_maps_vs_mpmath", group="catalogue",
          description="g_data, g_model and derivatives vs 80-digit naive composition, |s| <= 745")
def check_maps_vs_mpmath(quick: bool) -> Measurement:
    s_grid = np.array([-745.0, -700.0, -355.5, -36.0, -1.0, -0.7, -1e-9, 0.0, 1e-9, 0.7, 1.0, 36.0,
                       354.0, 355.5, 700.0, 709.5, 745.0])
    if not quick:
        s_grid = np.union1d(s_grid, np.linspace(-700.0, 700.0, 57))
    worst, where = 0.0, ""
    for div in all_divergences(alphas=_ALPHAS):
        for name, (err, s) in map_errors(div, s_grid).items():
            if err > worst:
                worst, where = err, f"{div.label}.{name}(s={s:g})"
    return Measurement(worst, 1e-12, {"worst_at": where, "n_points": int(s_grid.size)})


@register("catalogue.D4_legendre_identity", group="catalogue",
          description="f*(f'(u)) = u f'(u) - f(u) for u in [1e-3, 1e3]")
def check_legendre(quick: bool) -> Measurement:
    u = np.geomspace(1e-3, 1e3, 201 if quick else 2001)
    worst, where = 0.0, ""
    for div in all_divergences(alphas=_ALPHAS):
        err = legendre_error(div, u)
        if err > worst:
            worst, where = err, div.label
    return Measurement(worst, 1e-10, {"worst_divergence": where})


@register("catalogue.D5_fenchel_young", group="catalogue",
          description="u t - f(u) <= f*(t) on random (u, t); reports the largest relative violation")
def check_fenchel_young(quick: bool) -> Measurement:
    rng = np.random.default_rng(20200303)
    n = 20_000 if quick else 500_000
    u = np.exp(rng.uniform(-10, 10, n))
    t = rng.uniform(-30, 30, n)
    worst = 0.0
    for div in all_divergences(alphas=_ALPHAS):
        lhs = u * t - div.f(u)
        rhs = div.conjugate(t)
        if np.any(np.isnan(rhs)):
            return Measurement(float("inf"), 1e-12, {"nan_conjugate": div.label})
        finite = np.isfinite(rhs)  # rhs = +inf (outside the domain) satisfies it trivially
        violation = (lhs[finite] - rhs[finite]) / (1.0 + np.abs(lhs[finite]) + np.abs(rhs[finite]))
        worst = max(worst, float(np.max(violation, initial=0.0)))
    return Measurement(worst, 1e-12, {"n_pairs": n})


@register("catalogue.alpha_limits_continuous", group="catalogue",
          description="alpha -> 0 and alpha -> 1 members approach the exact limit objects")
def check_alpha_limits(quick: bool) -> Measurement:
    s = np.linspace(-30.0, 30.0, 121)
    worst = 0.0
    for limit in (0.0, 1.0):
        exact = Alpha(alpha=limit)
        for eps in (1e-7, -1e-7):
            near = Alpha(alpha=limit + eps)
            for name in _MAPS:
                a, b = getattr(near, name)(s), getattr(exact, name)(s)
                # first-order change in alpha is O(eps s^2 e^{|s|eps}); normalise by eps
                err = np.max(np.abs(a - b) / (np.abs(b) + 1.0)) / abs(eps)
                worst = max(worst, float(err))
    # An O(eps) difference with a bounded constant (<= s^2/2 ~ 450 here) is continuity;
    # a wrong limit gives O(1)/eps ~ 1e7.
    return Measurement(worst, 1e3, {"epsilon": 1e-7})


def _edge_points():
    """u at and around the places where the generators lose precision or overflow."""
    one = [float(np.nextafter(1.0, d)) for d in (0.0, 2.0)]
    near_one = [1.0 + k * 2.0 ** -52 for k in (-32, -3, 2, 64)] + [1.0 + 2.0 ** -30, 1.0 - 1e-5, 1.0 + 1e-5]
    return np.array(one + near_one + [5e-324, 1e-300, 0.36787944117144233, 0.3, 0.9, 1.2, 3.0, 1e20,
                                      1e154, 1e200, 1e306, 1.7e308])


@register("catalogue.generator_vs_mpmath", group="catalogue",
          description="f, f', f'' at u = 1 +- ulps, subnormal and huge u; f* one ulp either side of its "
                      "domain boundaries; vs naive mpmath")
def check_generator_vs_mpmath(quick: bool) -> Measurement:
    from febm_ref.verification.mp_reference import reference_conjugate, reference_generator

    alphas = _ALPHAS + ((5e-324, 1.0 - 2.0 ** -53) if not quick else ())
    worst, where, n = 0.0, "", 0
    u_grid = _edge_points()
    for div in all_divergences(alphas=alphas):
        alpha = getattr(div, "alpha", None)
        for which in ("f", "f_prime", "f_double_prime"):
            for u, value in zip(u_grid, getattr(div, which)(u_grid)):
                exact = reference_generator(div.name, which, float(u), alpha, check=False)
                n += 1
                if exact != 0 and abs(exact) < FLOAT_TINY:
                    continue
                err = relative_error(float(value), exact)
                if err > worst:
                    worst, where = err, f"{div.label}.{which}(u={u!r})"
        bound = {"jensen_shannon": 0.6931471805599453, "squared_hellinger": 1.0, "neyman_chi2": 1.0,
                 "reverse_kl": 0.0, "pearson_chi2": -2.0}.get(div.name, 1.0 / (1.0 - alpha) if alpha not in
                                                             (None, 1.0) else 0.0)
        t_grid = np.array([np.nextafter(bound, -np.inf), bound, np.nextafter(bound, np.inf), 1e-8, -1e-8, -1e300])
        for t, value in zip(t_grid, div.conjugate(t_grid)):
            exact = reference_conjugate(div.name, float(t), alpha, check=False)
            n += 1
            if exact != 0 and abs(exact) < FLOAT_TINY:
                continue
            err = relative_error(float(value), exact)
            if err > worst:
                worst, where = err, f"{div.label}.conjugate(t={t!r})"
    return Measurement(worst, 1e-12, {"worst_at": where, "n_points": n})
