"""The variational bound D5 measured against exact f-divergences (docs/theory.md sections 1-3).

For a critic written in log space, ``T(x) = f'(e^{s(x)})`` (D7), the bound D5 reads

    B(s) = E_p[T] - E_q[f*(T)] = E_p[g_data(s)] - E_q[g_model(s)]  <=  D_f(P || Q),

with equality at the optimal critic ``s* = log p - log q`` (quadratic in ``x`` between
two Gaussians, docs/theory.md section 3). Everything here returns numbers; the registered checks
live in :mod:`febm_ref.verification.check_bounds`.

The gap is a Bregman integral
-----------------------------
With ``u = p/q = e^{s*}`` and ``v = e^s``, the Legendre identity D4 gives
``g_model(s) = v f'(v) - f(v)``, hence, pointwise,

    q f(u) - [p g_data(s) - q g_model(s)] = q [f(u) - f(v) - f'(v)(u - v)]  >= 0,

so ``D - B(s) = E_q[Bregman_f(u, v)]`` (strictly positive unless ``v = u`` q-a.e., for
strictly convex ``f``). :func:`gap_quadrature` integrates the left-hand side in one
quadrature (``q f(u)`` from ``Divergence.perspective``, the bracket from ``g_data`` and
``g_model``), which avoids the cancellation of ``D`` against ``B`` for small gaps.

Second- and third-order gap along a perturbation (derived from D5/D7)
---------------------------------------------------------------------
Let ``s = s* + eps h`` and ``v = e^s``. Differentiating D7,
``g_data' = v f''``, ``g_data'' = v f'' + v^2 f'''``, ``g_data''' = v f'' + 3 v^2 f''' + v^3 f''''``;
``g_model' = v^2 f''``, ``g_model'' = 2 v^2 f'' + v^3 f'''``,
``g_model''' = 4 v^2 f'' + 5 v^3 f''' + v^4 f''''``. At ``s*`` we have ``E_p[X] = E_q[u X]``, so

    dB/deps     = E_q[(u g_data' - g_model') h]         = 0,
    d2B/deps2   = E_q[(u g_data'' - g_model'') h^2]     = -E_q[u^2 f''(u) h^2],
    d3B/deps3   = E_q[(u g_data''' - g_model''') h^3]   = -E_q[(3 u^2 f''(u) + 2 u^3 f'''(u)) h^3],

and therefore

    gap(eps) = D - B(s* + eps h) = (eps^2 / 2) G2 + (eps^3 / 6) G3 + O(eps^4),
    G2 = E_q[u^2 f''(u) h^2] = E_p[g_data'(s*) h^2],   G3 = E_q[(3 u^2 f''(u) + 2 u^3 f'''(u)) h^3].

So ``gap / ((eps^2/2) G2) = 1 + eps G3 / (3 G2) + O(eps^2)``. For the alpha family
``3 u^2 f'' + 2 u^3 f''' = (2 alpha - 1) u^alpha``: ``G3 = 0`` for squared Hellinger and
``alpha = 1/2`` (the Bregman gap is then even in ``eps``). The predictions use
``Divergence.f_double_prime`` (and a central difference of it for ``f'''``), not the
``g_*`` maps that the measured gap uses.

Learned critics (D10)
---------------------
:func:`train_critic` runs gradient *ascent* on ``B`` for a critic ``s = H_omega(x)`` (an
:class:`febm_ref.models.energies.MLPEnergy`) with the minibatch omega-gradient of D13,
``<g_data'(s+) dH+> - <g_model'(s-) dH->`` (:mod:`febm_ref.objective`), and Adam
(:mod:`febm_ref.optimizers`); the bound at the learned critic is
evaluated *exactly* (a fixed composite Gauss-Legendre rule, independent of the
minibatches) along the way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from febm_ref._validation import as_float_array, check_generator, check_positive_int, check_real_scalar
from febm_ref.divergences import Divergence, get_divergence, resolve_divergence
from febm_ref.exact_objective import gauss_legendre_panels
from febm_ref.gaussians import (
    f_divergence,
    f_divergence_monte_carlo_gaussians,
    f_divergence_quadrature_1d,
    f_divergence_quadrature_2d,
    gaussian_log_density,
    has_closed_form,
)
from febm_ref.quadrature import integrate_pieces
from febm_ref.targets import paper_mixture_1d

__all__ = [
    "DensityPair",
    "gaussian_pair",
    "mixture_vs_gaussian_pair",
    "standard_pairs",
    "closed_form_divergences",
    "all_bound_divergences",
    "bound_integrand",
    "gap_integrand",
    "integrate_pair",
    "gauss_legendre_rule",
    "exact_divergence",
    "bound_quadrature",
    "gap_quadrature",
    "bound_monte_carlo",
    "optimal_critic_error",
    "PerturbationStudy",
    "bounded_perturbation",
    "perturbation_study",
    "CriticTraining",
    "train_critic",
    "exact_bound_and_gradient",
]

# The lowest log density allowed on the integration box: exp(-700) is still a normal
# float64, so no 0 * inf products can arise in p g_data(s) or q g_model(s).
_LOG_DENSITY_FLOOR = -700.0


# ----------------------------------------------------------------------------------
# Density pairs
# ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DensityPair:
    """Two normalised densities ``P`` (data) and ``Q`` (model) with samplers and a box.

    Attributes
    ----------
    name : str
        Short label for reports.
    dim : int
        Dimension ``d``.
    log_p, log_q : callable
        Vectorised log densities, ``(n, d) -> (n,)``.
    sample_p, sample_q : callable
        ``(rng, n) -> (n, d)`` exact samplers.
    lower, upper : ndarray (d,)
        Integration box (holds all but a negligible fraction of every integrand's mass).
    breaks : tuple of tuples
        Break points per axis (peaks of the densities).
    gaussians : tuple or None
        ``(mean_p, cov_p, mean_q, cov_q)`` when both are Gaussian (closed forms exist).
    """

    name: str
    dim: int
    log_p: Callable[[np.ndarray], np.ndarray]
    log_q: Callable[[np.ndarray], np.ndarray]
    sample_p: Callable[[np.random.Generator, int], np.ndarray]
    sample_q: Callable[[np.random.Generator, int], np.ndarray]
    lower: np.ndarray
    upper: np.ndarray
    breaks: Tuple[Tuple[float, ...], ...]
    gaussians: Optional[tuple] = None

    def optimal_log_ratio(self, x) -> np.ndarray:
        """``s*(x) = log p(x) - log q(x)`` (the exact optimal critic of D5 in log space)."""
        x = np.asarray(x, dtype=np.float64)
        return self.log_p(x) - self.log_q(x)


def _gaussian_sampler(mean: np.ndarray, cov: np.ndarray):
    chol = np.linalg.cholesky(cov)

    def sample(rng: np.random.Generator, n: int) -> np.ndarray:
        return mean + rng.standard_normal((n, mean.shape[0])) @ chol.T

    return sample


def _as_mean_cov(mean, cov, which):
    m = np.atleast_1d(as_float_array(mean, f"mean_{which}", ndim=(0, 1)))
    S = np.atleast_2d(as_float_array(cov, f"cov_{which}", ndim=(0, 2)))
    if S.shape != (m.shape[0], m.shape[0]):
        raise ValueError(f"cov_{which} must be ({m.shape[0]}, {m.shape[0]}) for a mean of length "
                         f"{m.shape[0]}, got {S.shape}")
    return m, S


def _check_box(pair_name, log_p, log_q, lower, upper):
    """Raise if a log density drops below the floor on the box (0 * inf risk)."""
    d = lower.shape[0]
    corners = np.array(np.meshgrid(*[(lo, hi) for lo, hi in zip(lower, upper)])).reshape(d, -1).T
    faces = np.concatenate([corners, 0.5 * (corners + (lower + upper) / 2)])
    lowest = float(min(np.min(log_p(faces)), np.min(log_q(faces))))
    if lowest < _LOG_DENSITY_FLOOR:
        raise ValueError(f"pair {pair_name!r}: a log density reaches {lowest:.1f} < "
                         f"{_LOG_DENSITY_FLOOR} on the integration box; use a smaller width or "
                         "Gaussians of more similar scale")


def gaussian_pair(mean_p, cov_p, mean_q, cov_q, *, name: str = "gaussians",
                  width: float = 12.0) -> DensityPair:
    """``P = N(mean_p, cov_p)``, ``Q = N(mean_q, cov_q)`` in any dimension.

    The box is ``[min mean - width sd_max, max mean + width sd_max]`` per axis, with
    ``sd_max`` the larger marginal standard deviation of the two; it must keep both log
    densities above -700 (checked), so pick Gaussians of comparable scale.
    """
    mp, Sp = _as_mean_cov(mean_p, cov_p, "p")
    mq, Sq = _as_mean_cov(mean_q, cov_q, "q")
    if mp.shape != mq.shape:
        raise ValueError("P and Q must have the same dimension")
    width = check_real_scalar(width, "width", positive=True)
    d = mp.shape[0]
    lp_1 = gaussian_log_density(mp, Sp) if d > 1 else gaussian_log_density(mp[0], Sp[0, 0])
    lq_1 = gaussian_log_density(mq, Sq) if d > 1 else gaussian_log_density(mq[0], Sq[0, 0])

    def log_p(x):
        x = np.asarray(x, dtype=np.float64)
        return lp_1(x.reshape(-1)) if d == 1 else lp_1(x)

    def log_q(x):
        x = np.asarray(x, dtype=np.float64)
        return lq_1(x.reshape(-1)) if d == 1 else lq_1(x)

    sd = np.maximum(np.sqrt(np.diag(Sp)), np.sqrt(np.diag(Sq)))
    lower = np.minimum(mp, mq) - width * sd
    upper = np.maximum(mp, mq) + width * sd
    if d <= 2:
        _check_box(name, log_p, log_q, lower, upper)
    breaks = tuple(tuple(sorted({float(mp[i]), float(mq[i])})) for i in range(d))
    return DensityPair(name, d, log_p, log_q, _gaussian_sampler(mp, Sp), _gaussian_sampler(mq, Sq),
                       lower, upper, breaks, gaussians=(mp, Sp, mq, Sq))


def mixture_vs_gaussian_pair(mean_q: float = 1.0, var_q: float = 2.25, *, width: float = 12.0) -> DensityPair:
    """The paper's mixture ``P`` (:func:`febm_ref.targets.paper_mixture_1d`) against a fixed Gaussian ``Q``.

    The default ``Q = N(1, 1.5^2)`` keeps every catalogue divergence finite (Pearson needs
    ``var_q > 1``, half the widest component variance; Neyman needs ``var_q < 4``).
    """
    target = paper_mixture_1d()

    def log_p(x):
        return target.log_density(np.asarray(x, dtype=np.float64).reshape(-1, 1))

    def sample_p(rng, n):
        return target.sample(rng, n)

    lq_1 = gaussian_log_density(float(mean_q), float(var_q))

    def log_q(x):
        return lq_1(np.asarray(x, dtype=np.float64).reshape(-1))

    sd = max(math.sqrt(target.max_variance), math.sqrt(var_q))
    lower = np.array([min(float(np.min(target.means)), mean_q) - width * sd])
    upper = np.array([max(float(np.max(target.means)), mean_q) + width * sd])
    _check_box("mixture", log_p, log_q, lower, upper)
    return DensityPair("mixture_vs_gaussian", 1, log_p, log_q, sample_p,
                       _gaussian_sampler(np.array([float(mean_q)]), np.array([[float(var_q)]])),
                       lower, upper, (tuple(sorted(target.breakpoints + [float(mean_q)])),), gaussians=None)


def standard_pairs() -> Dict[str, DensityPair]:
    """The Gaussian pairs of the checks (1-D, 2-D, 5-D).

    The covariances' generalised eigenvalues lie in ``[0.8, 1.25]`` so that every catalogue
    divergence (Pearson and Neyman need them in ``(1/2, 2)``) and the Monte Carlo variance
    of every term in 5-D (needs them in ``(3/4, 4/3)``) is finite.
    """
    pairs = {"1d": gaussian_pair(0.6, 0.8, -0.2, 1.0, name="1d")}
    cov_p2 = np.array([[0.9, 0.15], [0.15, 0.75]])   # generalised eigenvalues 0.794, 1.030
    cov_q2 = np.array([[1.0, 0.05], [0.05, 0.8]])
    pairs["2d"] = gaussian_pair([0.5, -0.3], cov_p2, [0.0, 0.2], cov_q2, name="2d")
    rng = np.random.default_rng(5)
    A = rng.standard_normal((5, 5))
    rot, _ = np.linalg.qr(A)
    lam = np.array([0.82, 0.9, 1.0, 1.1, 1.22])
    cov_q5 = np.diag([1.0, 0.8, 1.2, 0.9, 1.1])
    Lq = np.linalg.cholesky(cov_q5)
    cov_p5 = Lq @ rot @ np.diag(lam) @ rot.T @ Lq.T
    cov_p5 = 0.5 * (cov_p5 + cov_p5.T)
    mean_p5 = np.array([0.3, -0.2, 0.1, 0.25, -0.15])
    pairs["5d"] = gaussian_pair(mean_p5, cov_p5, np.zeros(5), cov_q5, name="5d")
    return pairs


def closed_form_divergences(alphas: Sequence[float] = (-0.5, 0.0, 0.3, 0.5, 1.0, 1.5)) -> List[Divergence]:
    """Every catalogue divergence with a Gaussian closed form (alpha at ``alphas``)."""
    names = ("kl", "reverse_kl", "squared_hellinger", "pearson_chi2", "neyman_chi2")
    return [get_divergence(n) for n in names] + [get_divergence("alpha", alpha=a) for a in alphas]


def all_bound_divergences(alphas: Sequence[float] = (-0.5, 0.0, 0.3, 0.5, 1.0, 1.5)) -> List[Divergence]:
    """:func:`closed_form_divergences` plus Jensen-Shannon (no closed form)."""
    return closed_form_divergences(alphas) + [get_divergence("jensen_shannon")]


# ----------------------------------------------------------------------------------
# Integrands and quadrature
# ----------------------------------------------------------------------------------

def bound_integrand(div: Divergence, log_p, log_q, s) -> np.ndarray:
    """``p g_data(s) - q g_model(s)``: the integrand of ``B(s)`` (D5 with D7)."""
    lp, lq, s = np.asarray(log_p), np.asarray(log_q), np.asarray(s)
    return np.exp(lp) * div.g_data(s) - np.exp(lq) * div.g_model(s)


def gap_integrand(div: Divergence, log_p, log_q, s) -> np.ndarray:
    """``q f(p/q) - (p g_data(s) - q g_model(s)) = q Bregman_f(p/q, e^s) >= 0`` pointwise."""
    return div.perspective(log_p, log_q) - bound_integrand(div, log_p, log_q, s)


def integrate_pair(pair: DensityPair, integrand: Callable[[np.ndarray], np.ndarray], *,
                   rtol: float = 1e-11, atol: float = 1e-15, method: str = "tanh-sinh") -> Tuple[float, float]:
    """Adaptive quadrature of ``integrand((n, d) points) -> (n,)`` over the pair's box.

    1-D: :func:`febm_ref.quadrature.integrate_pieces` on the pieces between break points,
    by tanh-sinh (the pairs' densities, critics and perturbations here are analytic, so
    every integrand is analytic on each piece) or ``method="quadpack"``; 2-D:
    ``scipy.integrate.cubature`` on each cell. Returns ``(value, error estimate)``.
    """
    if pair.dim == 1:
        edges = [pair.lower[0]] + [b for b in pair.breaks[0] if pair.lower[0] < b < pair.upper[0]] \
            + [pair.upper[0]]
        return integrate_pieces(lambda t: integrand(t.reshape(-1, 1)), edges, rtol=rtol, atol=atol,
                                method=method)
    if pair.dim == 2:
        from scipy.integrate import cubature
        gx = [pair.lower[0]] + list(pair.breaks[0]) + [pair.upper[0]]
        gy = [pair.lower[1]] + list(pair.breaks[1]) + [pair.upper[1]]
        value, error = 0.0, 0.0
        for x0, x1 in zip(gx[:-1], gx[1:]):
            for y0, y1 in zip(gy[:-1], gy[1:]):
                res = cubature(integrand, [x0, y0], [x1, y1], rtol=rtol, atol=atol,
                               max_subdivisions=20000)
                value += float(res.estimate)
                error += float(res.error)
        return value, error
    raise ValueError(f"quadrature is available in 1-D and 2-D, got dimension {pair.dim}; "
                     "use bound_monte_carlo")


def gauss_legendre_rule(pair: DensityPair, *, panels: int = 60, order: int = 20) -> Tuple[np.ndarray, np.ndarray]:
    """A fixed composite Gauss-Legendre rule on a 1-D pair's box: ``(nodes (m, 1), weights (m,))``.

    ``panels`` equal panels (plus cuts at the break points), ``order`` nodes each. Used to
    evaluate the bound at a learned critic cheaply and deterministically; the tests compare
    it with adaptive quadrature.
    """
    if pair.dim != 1:
        raise ValueError("gauss_legendre_rule is 1-D only")
    check_positive_int(panels, "panels")
    check_positive_int(order, "order")
    edges = np.union1d(np.linspace(pair.lower[0], pair.upper[0], panels + 1),
                       [b for b in pair.breaks[0] if pair.lower[0] < b < pair.upper[0]])
    rule = gauss_legendre_panels([edges], order)
    return rule.nodes, np.exp(rule.log_weights)


def exact_divergence(div: Divergence, pair: DensityPair, *, rng: Optional[np.random.Generator] = None,
                     n_mc: int = 400_000) -> Dict[str, float]:
    """The reference ``D_f(P||Q)``: closed form, else quadrature (1-D/2-D), else Monte Carlo.

    Returns ``{"value", "uncertainty", "method"}``; ``uncertainty`` is 0 for a closed form,
    the quadrature error estimate, or a Monte Carlo standard error (``rng`` required).
    """
    div = resolve_divergence(div)
    if pair.gaussians is not None and has_closed_form(div):
        mp, Sp, mq, Sq = pair.gaussians
        return {"value": f_divergence(div, mp, Sp, mq, Sq), "uncertainty": 0.0, "method": "closed form"}
    if pair.dim == 1:
        est = f_divergence_quadrature_1d(div, pair.log_p, pair.log_q, pair.lower[0], pair.upper[0],
                                         points=pair.breaks[0], method="tanh-sinh")
        return {"value": est.value, "uncertainty": est.error, "method": "quadrature"}
    if pair.dim == 2:
        est = f_divergence_quadrature_2d(div, pair.log_p, pair.log_q, pair.lower, pair.upper,
                                         breaks_x=pair.breaks[0], breaks_y=pair.breaks[1])
        return {"value": est.value, "uncertainty": est.error, "method": "quadrature"}
    if pair.gaussians is None or rng is None:
        raise ValueError("a Monte Carlo reference needs a Gaussian pair and rng=np.random.default_rng(...)")
    mp, Sp, mq, Sq = pair.gaussians
    est = f_divergence_monte_carlo_gaussians(div, mp, Sp, mq, Sq, rng=check_generator(rng), n=n_mc)
    return {"value": est.value, "uncertainty": est.standard_error, "method": "monte carlo"}


def _critic_values(pair: DensityPair, critic: Optional[Callable],
                   x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    lp, lq = pair.log_p(x), pair.log_q(x)
    s = lp - lq if critic is None else np.asarray(critic(x), dtype=np.float64)
    return lp, lq, s


def bound_quadrature(div: Divergence, pair: DensityPair, critic: Optional[Callable] = None,
                     *, rtol: float = 1e-11) -> Tuple[float, float]:
    """``B(s) = ∫ [p g_data(s) - q g_model(s)]`` by adaptive quadrature (1-D/2-D).

    ``critic(x) -> s(x)`` (``None``: the optimal ``s* = log p - log q``). Returns
    ``(value, error estimate)``.
    """
    def integrand(x):
        lp, lq, s = _critic_values(pair, critic, x)
        return bound_integrand(div, lp, lq, s)

    return integrate_pair(pair, integrand, rtol=rtol)


def gap_quadrature(div: Divergence, pair: DensityPair, critic: Optional[Callable] = None,
                   *, rtol: float = 1e-11) -> Tuple[float, float]:
    """``D - B(s) = ∫ q Bregman_f(p/q, e^s)`` in one quadrature (no cancellation of D and B)."""
    def integrand(x):
        lp, lq, s = _critic_values(pair, critic, x)
        return gap_integrand(div, lp, lq, s)

    return integrate_pair(pair, integrand, rtol=rtol)


def bound_monte_carlo(div: Divergence, pair: DensityPair, rng: np.random.Generator, n: int,
                      critic: Optional[Callable] = None) -> Tuple[float, float]:
    """Monte Carlo ``B(s) = <g_data(s(x+))> - <g_model(s(x-))>``, ``x+ ~ P``, ``x- ~ Q`` (n each).

    Returns ``(value, standard error)``, the standard error ``sqrt(var_+/n + var_-/n)``
    (the two sample sets are independent).
    """
    rng = check_generator(rng)
    n = check_positive_int(n, "n", minimum=2)
    xp, xq = pair.sample_p(rng, n), pair.sample_q(rng, n)
    s_p = _critic_values(pair, critic, xp)[2]
    s_q = _critic_values(pair, critic, xq)[2]
    a, b = div.g_data(s_p), div.g_model(s_q)
    value = float(np.mean(a) - np.mean(b))
    se = float(math.sqrt(np.var(a, ddof=1) / n + np.var(b, ddof=1) / n))
    return value, se


def optimal_critic_error(div: Divergence, pair: DensityPair, *, rng: Optional[np.random.Generator] = None,
                         n_mc: int = 200_000) -> Dict[str, float]:
    """The bound at the exact optimal critic ``T* = f'(p/q)`` against the exact divergence.

    1-D/2-D: adaptive quadrature of the bound; returns the relative error. d > 2: Monte
    Carlo bound with its standard error; returns the error in standard-error units
    (``z``), the reference's own uncertainty (Jensen-Shannon: a Monte Carlo value from
    independent draws) included in the combined standard error.
    """
    ref = exact_divergence(div, pair, rng=rng, n_mc=n_mc)
    if pair.dim <= 2:
        bound, err = bound_quadrature(div, pair)
        rel = abs(bound - ref["value"]) / abs(ref["value"])
        return {"divergence": div.label, "pair": pair.name, "bound": bound, "bound_quad_error": err,
                "exact": ref["value"], "exact_method": ref["method"], "relative_error": rel}
    if rng is None:
        raise ValueError("Monte Carlo in d > 2 needs rng=np.random.default_rng(...)")
    bound, se = bound_monte_carlo(div, pair, rng, n_mc)
    combined = math.hypot(se, ref["uncertainty"])
    return {"divergence": div.label, "pair": pair.name, "bound": bound, "bound_se": se,
            "exact": ref["value"], "exact_method": ref["method"], "exact_se": ref["uncertainty"],
            "z": abs(bound - ref["value"]) / combined}


# ----------------------------------------------------------------------------------
# Perturbed critics: strict inequality and the second/third-order gap
# ----------------------------------------------------------------------------------

def bounded_perturbation(dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """A fixed bounded, asymmetric direction ``h(x) = tanh(w.x - c) + 0.3`` (|h| < 1.3).

    Bounded, so every perturbed integral is finite whenever the divergence is; asymmetric,
    so the third-order term ``G3`` is non-zero for most divergences.
    """
    w = np.linspace(0.9, 0.5, dim) * np.where(np.arange(dim) % 2 == 0, 1.0, -1.0)

    def h(x):
        x = np.asarray(x, dtype=np.float64).reshape(-1, dim)
        return np.tanh(x @ w - 0.4) + 0.3

    return h


def _f_triple_prime(div: Divergence, u: np.ndarray, rel_step: float = 1e-4) -> np.ndarray:
    """``f'''(u)`` by a central difference of ``f''`` with a relative step (error ~1e-8 relative)."""
    return (div.f_double_prime(u * (1.0 + rel_step)) - div.f_double_prime(u * (1.0 - rel_step))) \
        / (2.0 * rel_step * u)


def _expansion_integrals(div: Divergence, pair: DensityPair, h) -> Tuple[float, float]:
    """``G2 = E_q[u^2 f''(u) h^2]`` and ``G3 = E_q[(3 u^2 f'' + 2 u^3 f''') h^3]`` by quadrature."""

    def g2(x):
        lp, lq = pair.log_p(x), pair.log_q(x)
        u = np.exp(lp - lq)
        return np.exp(lq) * u * u * div.f_double_prime(u) * h(x) ** 2

    def g3(x):
        lp, lq = pair.log_p(x), pair.log_q(x)
        u = np.exp(lp - lq)
        c = 3.0 * u * u * div.f_double_prime(u) + 2.0 * u ** 3 * _f_triple_prime(div, u)
        return np.exp(lq) * c * h(x) ** 3

    G2 = integrate_pair(pair, g2, rtol=1e-10)[0]
    # G3 vanishes exactly for alpha = 1/2 (squared Hellinger): an absolute tolerance on the
    # scale of G2 stops the integrator from chasing relative accuracy on a zero.
    G3 = integrate_pair(pair, g3, rtol=1e-9, atol=1e-11 * abs(G2))[0]
    return G2, G3


@dataclass
class PerturbationStudy:
    """Gaps ``D - B(s* + eps h)`` against their Taylor predictions (see module docstring).

    ``ratio = gap / ((eps^2/2) G2)`` must tend to 1, ``ratio - 1 ~ eps G3/(3 G2)``, and the
    remainder after the cubic term must shrink like ``eps^4`` (observed order ~4).
    """

    divergence: str
    pair: str
    eps: np.ndarray
    gap: np.ndarray
    gap_error: np.ndarray
    G2: float
    G3: float
    large_eps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    large_gap: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def prediction2(self) -> np.ndarray:
        return 0.5 * self.eps ** 2 * self.G2

    @property
    def prediction3(self) -> np.ndarray:
        return self.prediction2 + self.eps ** 3 * self.G3 / 6.0

    @property
    def ratio(self) -> np.ndarray:
        return self.gap / self.prediction2

    @property
    def remainder_order(self) -> np.ndarray:
        """``log2`` of successive remainders ``|gap - prediction3|`` as eps halves (expect 4)."""
        r = np.abs(self.gap - self.prediction3)
        return np.log(r[:-1] / r[1:]) / np.log(self.eps[:-1] / self.eps[1:])

    @property
    def min_gap(self) -> float:
        return float(min(np.min(self.gap), np.min(self.large_gap, initial=np.inf)))

    def as_dict(self) -> dict:
        return {"divergence": self.divergence, "pair": self.pair, "eps": self.eps.tolist(),
                "gap": self.gap.tolist(), "ratio": self.ratio.tolist(), "G2": self.G2, "G3": self.G3,
                "predicted_slope": self.G3 / (3 * self.G2), "remainder_order": self.remainder_order.tolist(),
                "large_eps": self.large_eps.tolist(), "large_gap": self.large_gap.tolist()}


def perturbation_study(div: Divergence, pair: DensityPair, eps: Sequence[float] = (0.1, 0.05, 0.025),
                       large_eps: Sequence[float] = (-1.0, 0.5, 1.0), h=None) -> PerturbationStudy:
    """Measure ``gap(eps) = D - B(s* + eps h)`` by quadrature (1-D/2-D) and its predictions."""
    h = bounded_perturbation(pair.dim) if h is None else h
    eps = as_float_array(eps, "eps", ndim=1)
    large = as_float_array(large_eps, "large_eps", ndim=1)
    G2, G3 = _expansion_integrals(div, pair, h)

    def gap_at(e):
        return gap_quadrature(div, pair, lambda x: pair.optimal_log_ratio(x) + e * h(x))

    gaps = [gap_at(float(e)) for e in eps]
    large_gaps = [gap_at(float(e))[0] for e in large]
    return PerturbationStudy(div.label, pair.name, eps, np.array([g[0] for g in gaps]),
                             np.array([g[1] for g in gaps]), G2, G3, large, np.array(large_gaps))


# ----------------------------------------------------------------------------------
# Learned critics (D10)
# ----------------------------------------------------------------------------------

class _ZeroEnergy:
    """``E_theta = 0``: with it the modelled log ratio of D6 is ``r = H_omega`` itself, the
    critic of a *fixed* pair ``(P, Q)`` (``febm_critic_gradient`` only evaluates the energy)."""

    def __init__(self, dim: int):
        self.dim = dim

    def energy(self, x) -> np.ndarray:
        return np.zeros(np.asarray(x).shape[0])


@dataclass
class CriticTraining:
    """History of one learned-critic run: exact bound (Gauss-Legendre) at checkpoints."""

    divergence: str
    pair: str
    exact: float
    steps: np.ndarray
    bound: np.ndarray
    batch_bound: np.ndarray
    critic: object

    @property
    def final_gap(self) -> float:
        return float(self.exact - self.bound[-1])

    @property
    def initial_gap(self) -> float:
        return float(self.exact - self.bound[0])

    def as_dict(self) -> dict:
        return {"divergence": self.divergence, "pair": self.pair, "exact": self.exact,
                "steps": self.steps.tolist(), "bound": self.bound.tolist(),
                "final_gap": self.final_gap, "relative_final_gap": self.final_gap / self.exact}


def train_critic(div: Divergence, pair: DensityPair, *, rng: np.random.Generator, steps: int = 3000,
                 batch: int = 256, hidden: Sequence[int] = (32, 32), lr: float = 3e-3,
                 eval_every: int = 100, exact: Optional[float] = None,
                 final_lr_fraction: float = 0.1, backend: str = "numba") -> CriticTraining:
    """Train ``s = H_omega(x)`` (tanh :class:`~febm_ref.models.energies.MLPEnergy`) by Adam ascent on ``B``.

    Fresh minibatches ``x+ ~ P``, ``x- ~ Q`` of size ``batch`` at every step; the
    omega-gradient is D10 as estimated by D13,
    ``<g_data'(s+) dH+> - <g_model'(s-) dH->`` (:func:`febm_ref.objective.febm_critic_gradient`
    with ``E = 0``); :class:`febm_ref.optimizers.Adam` on ``-grad`` (ascent) with a cosine
    learning rate decaying to ``final_lr_fraction * lr``. Every ``eval_every`` steps the
    bound at the current critic is evaluated *exactly* by a fixed Gauss-Legendre rule on
    the pair's box (1-D only), independent of the minibatches.
    """
    from febm_ref.models.energies import MLPEnergy
    from febm_ref.objective import febm_critic_gradient
    from febm_ref.optimizers import Adam, learning_rate

    rng = check_generator(rng)
    steps = check_positive_int(steps, "steps")
    eval_every = check_positive_int(eval_every, "eval_every")
    if pair.dim != 1:
        raise ValueError("train_critic evaluates the exact bound by 1-D quadrature; pass a 1-D pair")
    nodes, weights = gauss_legendre_rule(pair)
    lp_nodes, lq_nodes = pair.log_p(nodes), pair.log_q(nodes)
    if exact is None:
        exact = exact_divergence(div, pair)["value"]
    critic = MLPEnergy.random_init(rng, pair.dim, tuple(hidden), "tanh", backend=backend)
    zero = _ZeroEnergy(pair.dim)
    opt = Adam(critic.n_params)
    hist_steps, hist_bound, hist_batch = [], [], []

    def exact_bound(model):
        return float(weights @ bound_integrand(div, lp_nodes, lq_nodes, model.energy(nodes)))

    params = critic.get_params()
    batch_bound = float("nan")
    for t in range(steps + 1):
        if t % eval_every == 0 or t == steps:
            hist_steps.append(t)
            hist_bound.append(exact_bound(critic))
            hist_batch.append(batch_bound)
        if t == steps:
            break
        est = febm_critic_gradient(div, zero, critic, pair.sample_p(rng, batch), pair.sample_q(rng, batch))
        batch_bound = est.loss
        rate = learning_rate("cosine", lr, t, steps, final_fraction=final_lr_fraction)
        params = opt.step(params, -est.grad_omega, rate)
        critic = critic.with_params(params)
    return CriticTraining(div.label, pair.name, float(exact), np.array(hist_steps), np.array(hist_bound),
                          np.array(hist_batch), critic)


def exact_bound_and_gradient(div: Divergence, pair: DensityPair, critic, rule=None) -> Tuple[float, np.ndarray]:
    """``B(H_omega)`` and its exact omega-gradient (D10) on a fixed Gauss-Legendre rule (1-D).

    ``grad_omega B = ∫ [p g_data'(s) - q g_model'(s)] dH`` with ``s = H_omega(x)``: the
    population version of the D13 critic estimator, for finite-difference tests.
    """
    nodes, weights = gauss_legendre_rule(pair) if rule is None else rule
    lp, lq = pair.log_p(nodes), pair.log_q(nodes)
    s = critic.energy(nodes)
    value = float(weights @ bound_integrand(div, lp, lq, s))
    w = weights * (np.exp(lp) * div.g_data_prime(s) - np.exp(lq) * div.g_model_prime(s))
    return value, np.asarray(critic.weighted_grad_params(nodes, w), dtype=np.float64)
