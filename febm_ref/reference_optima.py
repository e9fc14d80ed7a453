"""Exact reference optima ``argmin_{mu, sigma} D_f(P || N(mu, sigma^2))`` for a 1-D
Gaussian-mixture target (docs/theory.md section 6: the model is misspecified, so each
divergence has its own optimum, which f-EBM must reach).

Where the divergence is infinite
--------------------------------
For the divergences that are affine in ``I_a = ∫ p^a q^{1-a}`` (Pearson ``a = 2``,
Neyman ``a = -1``, squared Hellinger ``a = 1/2``, the alpha family ``a = alpha``), the
tail of the integrand is ``exp(-x^2 (a/v_max + (1-a)/sigma^2) / 2)`` up to lower-order
terms, ``v_max`` the largest component variance of ``P``. So

* ``a > 1``: ``D < inf`` iff ``sigma^2 > (a - 1) v_max / a`` (Pearson: ``sigma^2 > 1``);
* ``a < 0``: ``D < inf`` iff ``sigma^2 < (1 - a) v_max / (-a)`` (Neyman: ``sigma^2 < 4``);
* otherwise (KL, reverse KL, Jensen-Shannon, ``0 < a < 1``) ``D < inf`` for every
  ``sigma > 0``.

:func:`finite_variance_interval` returns that open interval; :func:`divergence_value`
returns ``+inf`` outside it (and also inside it where the value exceeds the float64
range, which happens within ~1e-3 of the boundary) (explicitly, never a quadrature of a divergent integral),
and the optimiser searches only inside it through a smooth bijection
(``sigma^2 = lo + (hi - lo) sigmoid(t)`` etc.), so it never sees ``+inf``.

Quadrature
----------
``D_f(P||Q) = ∫ q f(p/q)`` with the integrand computed stably from log densities
(``Divergence.perspective``) on a composite Gauss-Legendre rule
(:func:`febm_ref.exact_objective.gauss_legendre_box`) whose box covers
``15`` tail standard deviations of the integrand and whose panels are at most one
narrowest length scale; the mass of the integrand on the outermost panels is checked
(< 1e-14 relative) on every evaluation. The optimiser is deterministic: Nelder-Mead to
``1e-4`` in the parameters, then BFGS with central-difference gradients (step 1e-6) to a
gradient norm of 1e-9; the result records a central-difference gradient in
``(mu, sigma)`` at the optimum as a certificate.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import numpy as np
from scipy import optimize
from scipy.special import expit, logit

from febm_ref._validation import check_choice, check_positive_int, check_real_scalar
from febm_ref.divergences import Divergence, resolve_divergence
from febm_ref.exact_objective import gauss_legendre_box
from febm_ref.gaussians import f_divergence_quadrature_1d, power_exponent
from febm_ref.targets import GaussianMixture1D

__all__ = ["ReferenceOptimum", "finite_variance_interval", "divergence_value", "divergence_gradient",
           "reference_optimum", "exact_descent", "PAPER_TABLE"]

PAPER_TABLE = (("kl", None), ("reverse_kl", None), ("jensen_shannon", None), ("squared_hellinger", None),
               ("pearson_chi2", None), ("neyman_chi2", None), ("alpha", -1.0), ("alpha", -0.5),
               ("alpha", 0.5), ("alpha", 0.9), ("alpha", 2.0))
"""The divergences of the paper's 1-D table: ``(name, alpha)``."""

_TAIL_SDS = 15.0
_EDGE_TOL = 1e-14
_LOG_2PI = math.log(2.0 * math.pi)


class ReferenceOptimum(NamedTuple):
    """``argmin_{mu, sigma} D_f(P||N(mu, sigma^2))``.

    Attributes
    ----------
    mu, sigma : float
    value : float
        ``D_f`` at the optimum.
    gradient : tuple of float
        Central-difference ``(dD/dmu, dD/dsigma)`` at the optimum (certificate, ~0).
    variance_interval : tuple of float
        The open interval of ``sigma^2`` where ``D_f < inf``.
    evaluations : int
    """

    mu: float
    sigma: float
    value: float
    gradient: Tuple[float, float]
    variance_interval: Tuple[float, float]
    evaluations: int


def _check_target(target) -> GaussianMixture1D:
    if not isinstance(target, GaussianMixture1D):
        raise TypeError(f"target must be a febm_ref.targets.GaussianMixture1D (e.g. paper_mixture_1d()), "
                        f"got {type(target).__name__}")
    return target


def _check_mu_sigma(mu, sigma) -> Tuple[float, float]:
    mu = check_real_scalar(mu, "mu")
    sigma = check_real_scalar(sigma, "sigma")
    if not sigma > 0:
        raise ValueError(f"need sigma > 0, got mu={mu}, sigma={sigma}")
    return mu, sigma


def finite_variance_interval(div: Divergence, target: GaussianMixture1D) -> Tuple[float, float]:
    """The open interval ``(lo, hi)`` of ``sigma^2`` on which ``D_f(P||N(mu, sigma^2)) < inf``
    (independent of ``mu``; see the module docstring). ``div`` is a Divergence or its name."""
    div = resolve_divergence(div)
    _check_target(target)
    a = power_exponent(div)
    v = target.max_variance
    if a is None or 0.0 < a < 1.0:
        return (0.0, math.inf)
    if a > 1.0:
        return ((a - 1.0) * v / a, math.inf)
    return (0.0, (1.0 - a) * v / (-a))


def _tail_shape(div: Divergence, target: GaussianMixture1D, mu: float, var_q: float):
    """``(tail variance, centres)`` of the integrand ``q f(p/q)``.

    For the power-type divergences the tails of ``p^a q^{1-a}`` are those of the tilted
    Gaussian ``N_k^a N(mu, var_q)^{1-a}`` of the widest component(s) ``k``: precision
    ``lam = a/v_k + (1-a)/var_q`` and centre ``(a m_k/v_k + (1-a) mu/var_q)/lam``, which moves
    far out when ``lam`` is small (next to the boundary of the finite region).
    """
    a = power_exponent(div)
    v = target.max_variance
    if a is None or 0.0 < a < 1.0:
        return max(v, var_q), []
    lam = a / v + (1.0 - a) / var_q
    centres = [float((a * m / v + (1.0 - a) * mu / var_q) / lam)
               for m, vk in zip(target.means, target.variances) if vk == v]
    return 1.0 / lam, centres


def _log_q(mu: float, var_q: float):
    return lambda x: -0.5 * ((x - mu) ** 2 / var_q + _LOG_2PI + math.log(var_q))


def _log_p(target: GaussianMixture1D):
    return lambda x: target.log_density(np.asarray(x, dtype=np.float64).reshape(-1))


def divergence_value(div, target: GaussianMixture1D, mu: float, sigma: float, *, alpha=None) -> float:
    """``D_f(P || N(mu, sigma^2))`` by quadrature; ``+inf`` outside :func:`finite_variance_interval`.

    Raises
    ------
    ValueError
        If ``sigma <= 0`` or the quadrature box check fails (it should not).
    """
    d = resolve_divergence(div, alpha=alpha)
    _check_target(target)
    mu, sigma = _check_mu_sigma(mu, sigma)
    var_q = sigma * sigma
    lo, hi = finite_variance_interval(d, target)
    if not lo < var_q < hi:
        return math.inf
    v_tail, tilted_centres = _tail_shape(d, target, mu, var_q)
    if v_tail > 1e4 * max(target.max_variance, var_q):
        # next to the boundary of the finite region: adaptive quadrature on the real line
        est = f_divergence_quadrature_1d(d, _log_p(target), _log_q(mu, var_q), points=target.breakpoints + [mu])
        return float(est.value)
    centres = list(target.means) + [mu] + tilted_centres
    width = _TAIL_SDS * math.sqrt(v_tail) + 8.0 * math.sqrt(max(target.max_variance, var_q))
    lower, upper = min(centres) - width, max(centres) + width
    scale = min(math.sqrt(float(np.min(target.variances))), sigma, math.sqrt(v_tail))
    n_panels = int(min(max(math.ceil((upper - lower) / scale), 8), 40000))
    rule = gauss_legendre_box([(lower, upper)], n_panels, order=16)
    x = rule.nodes[:, 0]
    integrand = d.perspective(target.log_density(x), _log_q(mu, var_q)(x))
    if np.any(integrand == math.inf):
        # the integrand alone exceeds the float64 range at a node (next to the boundary of
        # the finite region, e.g. Pearson at sigma^2 = 1.002): D_f > 1.8e308, i.e. +inf in float64
        return math.inf
    w = np.exp(rule.log_weights)
    total = float(np.dot(w, integrand))
    mass = float(np.dot(w, np.abs(integrand)))
    edge = float(np.dot(w[rule.edge], np.abs(integrand[rule.edge])))
    if not math.isfinite(total) or edge > _EDGE_TOL * max(mass, 1e-300):
        raise ValueError(f"quadrature of D_f({d.label}) at mu={mu}, sigma={sigma} is not reliable "
                         f"(edge mass fraction {edge / max(mass, 1e-300):.1e}); please report this")
    return total


def divergence_gradient(div, target, mu: float, sigma: float, *, h: float = 1e-5, alpha=None):
    """Central differences ``(dD/dmu, dD/dsigma)`` of :func:`divergence_value` (step ``h > 0``)."""
    d = resolve_divergence(div, alpha=alpha)
    _check_target(target)
    mu, sigma = _check_mu_sigma(mu, sigma)
    h = check_real_scalar(h, "h", positive=True)
    g_mu = (divergence_value(d, target, mu + h, sigma) - divergence_value(d, target, mu - h, sigma)) / (2 * h)
    g_s = (divergence_value(d, target, mu, sigma + h) - divergence_value(d, target, mu, sigma - h)) / (2 * h)
    return float(g_mu), float(g_s)


def _to_variance(t: float, lo: float, hi: float) -> float:
    if math.isinf(hi):
        return lo + math.exp(t) if lo > 0 else math.exp(t)
    return lo + (hi - lo) * float(expit(t))


def _from_variance(var: float, lo: float, hi: float) -> float:
    if math.isinf(hi):
        return math.log(var - lo) if lo > 0 else math.log(var)
    return float(logit((var - lo) / (hi - lo)))


def reference_optimum(div, target: GaussianMixture1D, *, alpha=None) -> ReferenceOptimum:
    """``argmin_{mu, sigma} D_f(P || N(mu, sigma^2))`` (see the module docstring).

    Starts from moment matching (clamped into the finite region); Nelder-Mead, then BFGS,
    on ``(mu, t(sigma^2))``.
    """
    d = resolve_divergence(div, alpha=alpha)
    _check_target(target)
    lo, hi = finite_variance_interval(d, target)
    var0 = target.variance()
    if not lo < var0 < hi:
        var0 = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * lo
    evaluations = 0

    def objective(z):
        nonlocal evaluations
        evaluations += 1
        var = _to_variance(float(z[1]), lo, hi)
        if not lo < var < hi or var <= 0:
            return math.inf
        return divergence_value(d, target, float(z[0]), math.sqrt(var))

    z = np.array([target.mean(), _from_variance(var0, lo, hi)])
    res = optimize.minimize(objective, z, method="Nelder-Mead",
                            options={"xatol": 1e-4, "fatol": 1e-10, "maxiter": 2000,
                                     "initial_simplex": np.array([z, z + [0.3, 0.0], z + [0.0, 0.3]])})
    z = res.x

    def central_gradient(zz, h=1e-6):
        return np.array([(objective(zz + h * e) - objective(zz - h * e)) / (2 * h) for e in np.eye(2)])

    res = optimize.minimize(objective, z, jac=central_gradient, method="BFGS", options={"gtol": 1e-9, "maxiter": 200})
    z = res.x
    mu = float(z[0])
    sigma = math.sqrt(_to_variance(float(z[1]), lo, hi))
    value = divergence_value(d, target, mu, sigma)
    grad = divergence_gradient(d, target, mu, sigma)
    return ReferenceOptimum(mu, sigma, value, grad, (lo, hi), evaluations)


def exact_descent(div, target: GaussianMixture1D, *, iterations: int, optimizer: str = "sgd", lr: float = 1e-3,
                  schedule: str = "constant", final_lr_fraction: float = 0.0, mu0: float = 0.0,
                  sigma0: float = 1.0, optimizer_options: Optional[dict] = None, h: float = 1e-6,
                  record_every: int = 1, alpha=None):
    """Baseline "direct minimisation of the exact D_f" (docs/theory.md section 6): the same
    optimiser and schedule as a training run, on ``theta = (mu, sigma)`` from
    ``(mu0, sigma0)``, with the exact gradient (central differences of
    :func:`divergence_value`, step ``h``) instead of the f-EBM estimate. It separates
    what the optimiser achieves in ``iterations`` steps from the estimator's noise and bias.

    Returns
    -------
    (theta (2,), trajectory (n, 2) of the iterates every ``record_every`` steps, values (n,))
    Raises ValueError if an iterate leaves the region where ``D_f`` is finite.
    """
    from febm_ref.optimizers import SCHEDULES, learning_rate, make_optimizer

    d = resolve_divergence(div, alpha=alpha)
    _check_target(target)
    iterations = check_positive_int(iterations, "iterations")
    record_every = check_positive_int(record_every, "record_every")
    lr = check_real_scalar(lr, "lr", positive=True)
    h = check_real_scalar(h, "h", positive=True)
    check_choice(schedule, "learning-rate schedule", SCHEDULES)
    theta = np.array([check_real_scalar(mu0, "mu0"), check_real_scalar(sigma0, "sigma0", positive=True)])
    opt = make_optimizer(optimizer, 2, **(optimizer_options or {}))
    lo, hi = finite_variance_interval(d, target)
    if not lo < theta[1] ** 2 < hi:
        raise ValueError(f"sigma0 = {theta[1]} is outside the region where D_f({d.label}) is finite "
                         f"(sigma^2 must lie in ({lo}, {hi}))")
    traj, values = [], []
    for t in range(iterations):
        if not (theta[1] > 0 and lo < theta[1] ** 2 < hi):
            raise ValueError(f"exact descent left the region where D_f({d.label}) is finite at step {t}: "
                             f"sigma = {theta[1]} (sigma^2 must lie in ({lo}, {hi})); lower the learning rate")
        g = np.array(divergence_gradient(d, target, theta[0], theta[1], h=h))
        if t % record_every == 0:
            traj.append(theta.copy())
            values.append(divergence_value(d, target, theta[0], theta[1]))
        theta = opt.step(theta, g, learning_rate(schedule, lr, t, iterations, final_fraction=final_lr_fraction))
    return theta, np.array(traj), np.array(values)
