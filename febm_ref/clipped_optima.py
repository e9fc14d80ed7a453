"""The exact fixed point of the published (clipped) 1-D algorithm, by quadrature and a root
finder (docs/theory.md, "The published code's clipped objective").

Derivation (population version of :func:`febm_ref.published.published_step`)
-------------------------------------------------------------------------------
With a critic free to be any function, ``r = H + E`` is free pointwise and the critic's
population objective is ``∫ phi_x(r(x)) dx``, ``phi_x(r) = p g~_data(r) - q g~_model(r)``
(D8 with the clipped maps ``g~``). Its gradient flow is ``dr/dt = p g~_data'(r) - q g~_model'(r)``.
Below every bound ``b = min(b_data, b_model)`` this is ``e^r f''(e^r) (p - q e^r)``
(D7): positive below ``l = log(p/q)``, negative above, so ``l`` is the attracting
stationary critic wherever ``l <= b``. Where ``l > b`` the flow crosses the bounds:

* KL (``g_model`` clipped at 3, ``g_data = s``): beyond 3, ``phi' = p > 0``, the critic
  grows without bound; there is **no** stationary critic (the clipped KL objective is even
  unbounded above in ``r``, so "the optimal critic of the clipped objective" does not exist);
* Pearson (``g_model`` at 3, ``g_data`` at 6): ``phi' = 2 p e^r > 0`` on ``(3, 6]``, ``0``
  beyond 6: the critic stops on the plateau ``r > 6``, where both maps are constant. (The
  global maximiser of ``phi_x`` is this plateau wherever ``2p > q``, value ``(e^6 - 1)(2p - q)``
  against ``(p - q)^2/q`` at ``l``: the *optimal* critic of the clipped objective is not the
  one the alternating updates, started below the bounds, converge to. The fixed point of the
  published dynamics is the local maximiser ``l``.)

So the stationary critic ``r*`` is ``l`` where ``l <= b`` and "beyond every bound" elsewhere
(the maps are then evaluated at ``max(finite bounds) + 1``, valid because there each of
``g~_data'``, ``g~_model'``, ``g~_model`` is constant). The energy step (D13, population) is then

    G(theta) = ∫_A (p g~_data'(r*) - q g~_model'(r*)) dE + Cov_q(g~_model(r*), dE),
    A = {l > b},

the pathwise terms cancelling exactly off ``A`` (``p g'_data(l) = q g'_model(l)``, D7).
Off ``A`` entirely, ``G`` is ``Cov_q(f*(f'(p/q)), dE) = grad_theta D_f`` (D9), so for every
unclipped divergence, and for a clipped one whose optimum has ``max l <= b``, the fixed point
is ``argmin D_f``. A fixed point of the alternating dynamics needs ``G = 0`` *and* a
stationary critic: :attr:`ClippedOptimum.critic_stationary` reports the latter (KL: ``A``
empty).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import optimize

from febm_ref.divergences import resolve_divergence
from febm_ref.exact_objective import gauss_legendre_box
from febm_ref.published import PublishedMaps
from febm_ref.reference_optima import (
    _check_target,
    _log_q,
    _tail_shape,
    finite_variance_interval,
)

__all__ = ["ClippedOptimum", "clipped_energy_gradient", "clipped_fixed_point", "optimum_table"]

_TAIL_SDS = 15.0
_EDGE_TOL = 1e-13


class ClippedOptimum(NamedTuple):
    """Root of the population energy step of the published algorithm.

    Attributes
    ----------
    mu, sigma : float
    residual : tuple of float
        ``G(mu, sigma)`` at the root (D13 population, ~0).
    max_log_ratio : float
        ``max_x log(p/q)`` on the quadrature nodes at the root.
    bound : float
        The smallest clip bound on ``s`` (``inf``: unclipped).
    mass_beyond : tuple of float
        ``(P(A), Q(A))`` of ``A = {log(p/q) > bound}``.
    critic_stationary : bool
        True iff the stationary critic exists (KL: ``A`` empty; Pearson: always).
    """

    mu: float
    sigma: float
    residual: tuple
    max_log_ratio: float
    bound: float
    mass_beyond: tuple
    critic_stationary: bool


def _rule(div, target, mu, sigma):
    var_q = sigma * sigma
    v_tail, tilted = _tail_shape(div, target, mu, var_q)
    centres = list(target.means) + [mu] + tilted
    width = _TAIL_SDS * math.sqrt(v_tail) + 8.0 * math.sqrt(max(target.max_variance, var_q))
    lower, upper = min(centres) - width, max(centres) + width
    scale = min(math.sqrt(float(np.min(target.variances))), sigma, math.sqrt(v_tail))
    n_panels = int(min(max(math.ceil((upper - lower) / scale), 8), 40000))
    return gauss_legendre_box([(lower, upper)], n_panels, order=16)


def _stationary_parts(maps: PublishedMaps, lp, lq):
    """``(pathwise integrand factor on A, g~_model(r*), A, critic stationary?)``."""
    b_d, b_m = maps.bounds["g_data"], maps.bounds["g_model"]
    b = min(b_d, b_m)
    ell = lp - lq
    beyond = ell > b
    finite_bounds = [v for v in (b_d, b_m) if math.isfinite(v)]
    r_beyond = (max(finite_bounds) + 1.0) if finite_bounds else 0.0
    r = np.where(beyond, r_beyond, ell)
    with np.errstate(over="ignore", invalid="ignore"):
        gm = maps.g_model(r)
        gdp_b, gmp_b = maps.g_data_prime(np.array([r_beyond])), maps.g_model_prime(np.array([r_beyond]))
    if finite_bounds and not math.isfinite(b_d):
        # g_data unclipped: its derivative must be constant beyond the bounds (KL: g_data = s)
        probe = maps.g_data_prime(np.array([r_beyond, r_beyond + 10.0]))
        if probe[0] != probe[1]:
            raise ValueError(f"{maps.divergence.label}: g_data' is not constant beyond the clip bounds; "
                             "the stationary critic is not defined by this rule")
    p, q = np.exp(lp), np.exp(lq)
    pathwise = np.where(beyond, p * gdp_b[0] - q * gmp_b[0], 0.0)
    stationary = bool(gdp_b[0] == 0.0 and gmp_b[0] == 0.0) or not np.any(beyond & (p > 0))
    return pathwise, gm, beyond, stationary, b


def clipped_energy_gradient(div, target, mu: float, sigma: float, *, clips=None, alpha=None, details=False):
    """``G(mu, sigma)`` of the module docstring: the population energy step of the published
    algorithm at its stationary critic (``clips=()``: unclipped, ``= grad D_f``).

    ``dE = (-(x - mu)/sigma^2, -(x - mu)^2/sigma^3)`` is centred analytically under
    ``q = N(mu, sigma^2)`` (``E_q dE = (0, -1/sigma)``), so ``Cov_q(g, dE) = ∫ q g (dE - E_q dE)``.
    Returns ``ndarray (2,)`` (with ``details``: also a dict of diagnostics). ValueError if the
    quadrature's edge-panel mass exceeds ``1e-13`` of the total (the box is too small).
    """
    maps = PublishedMaps(div, clips, alpha=alpha)
    d = maps.divergence
    _check_target(target)
    rule = _rule(d, target, mu, sigma)
    x = rule.nodes[:, 0]
    lp, lq = target.log_density(x), _log_q(mu, sigma * sigma)(x)
    pathwise, gm, beyond, stationary, b = _stationary_parts(maps, lp, lq)
    z = x - mu
    de = np.stack([-z / sigma ** 2, -z * z / sigma ** 3 + 1.0 / sigma])
    q = np.exp(lq)
    with np.errstate(over="ignore", invalid="ignore"):
        integrand = pathwise * de + q * gm * de
    w = np.exp(rule.log_weights)
    total = integrand @ w
    mass = np.abs(integrand) @ w
    edge = np.abs(integrand[:, rule.edge]) @ w[rule.edge]
    if not np.all(np.isfinite(total)) or np.any(edge > _EDGE_TOL * np.maximum(mass, 1e-300)):
        raise ValueError(f"quadrature of the clipped energy gradient ({d.label}) at mu={mu}, sigma={sigma} "
                         f"is not reliable (edge mass {edge}, total mass {mass})")
    if not details:
        return total
    p = np.exp(lp)
    info = {"max_log_ratio": float(np.max(lp - lq)), "bound": b, "critic_stationary": stationary,
            "mass_beyond": (float(np.dot(w, np.where(beyond, p, 0.0))), float(np.dot(w, np.where(beyond, q, 0.0))))}
    return total, info


def clipped_fixed_point(div, target, *, clips=None, alpha=None, start=None, tol: float = 1e-13) -> ClippedOptimum:
    """Solve ``G(mu, sigma) = 0`` (:func:`clipped_energy_gradient`) with MINPACK's hybrid method
    (``scipy.optimize.root``, ``hybr``, Jacobian by forward differences), from ``start`` or, by
    default, the moment-matching ``(E_p x, sqrt Var_p x)`` moved into the region where the
    divergence is finite (:func:`febm_ref.reference_optima.finite_variance_interval`).

    Raises
    ------
    ValueError
        If the root finder does not converge (the message gives scipy's reason).
    """
    d = resolve_divergence(div, alpha=alpha)
    _check_target(target)
    lo, hi = finite_variance_interval(d, target)
    if start is None:
        var0 = target.variance()
        if not lo < var0 < hi:
            var0 = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * lo
        start = (target.mean(), math.sqrt(var0))

    def fun(z):
        if not (z[1] > 0 and lo < z[1] ** 2 < hi):
            return np.array([1e3, 1e3])
        return clipped_energy_gradient(d, target, float(z[0]), float(z[1]), clips=clips)

    sol = optimize.root(fun, np.asarray(start, dtype=np.float64), method="hybr", tol=tol)
    if not sol.success:
        raise ValueError(f"clipped fixed point of {d.label}: the root finder did not converge ({sol.message})")
    mu, sigma = float(sol.x[0]), float(sol.x[1])
    res, info = clipped_energy_gradient(d, target, mu, sigma, clips=clips, details=True)
    return ClippedOptimum(mu, sigma, (float(res[0]), float(res[1])), info["max_log_ratio"], info["bound"],
                          info["mass_beyond"], info["critic_stationary"])


def optimum_table(target, entries=None) -> list:
    """Rows ``{divergence, exact (mu, sigma), clipped (mu, sigma), max log ratio, bound}`` for
    the paper's table (:data:`febm_ref.reference_optima.PAPER_TABLE`)."""
    from febm_ref.reference_optima import PAPER_TABLE, reference_optimum

    rows = []
    for name, alpha in (entries or PAPER_TABLE):
        d = resolve_divergence(name, alpha=alpha)
        ref = reference_optimum(d, target)
        cl = clipped_fixed_point(d, target)
        rows.append({"divergence": d.label, "exact_mu": ref.mu, "exact_sigma": ref.sigma, "clipped_mu": cl.mu,
                     "clipped_sigma": cl.sigma, "max_log_ratio": cl.max_log_ratio, "bound": cl.bound,
                     "mass_beyond_p": cl.mass_beyond[0], "critic_stationary": cl.critic_stationary,
                     "residual": cl.residual})
    return rows
