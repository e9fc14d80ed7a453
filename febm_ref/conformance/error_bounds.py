"""First-order rounding-error scales of the golden quantities (computed in float64).

Each function returns ``S`` (the shape of the quantity) such that an implementation working
in a precision with unit roundoff ``u`` computes the quantity, *including the rounding of
its float64 inputs to that precision*, with an error of at most ``u S`` to first order
(the running error bounds of Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., sections 3.1-3.3: a computed sum of ``m`` terms is off by at most
``(m - 1) u sum |t_i|`` in any order, a product by ``u |x y|``, a correctly-evaluated
elementary function by ``K_FN u |y|``). :mod:`.tolerance` turns ``S`` into the allowed error
``SAFETY u S``. All scales are in units of ``u`` and absolute (same units as the quantity).

Notation: ``E_v`` is the error scale of an intermediate ``v`` (so ``|fl(v) - v| <= u E_v``).
An input ``x`` rounded to the precision has ``E_x = |x|``.
"""

from __future__ import annotations

import math

import numpy as np

from febm_ref.conformance.tolerance import K_FN
from febm_ref.models.mlp import _unpack_numpy

__all__ = ["map_scale", "map_derivative", "alpha_rounding_scale", "MLPBounds", "mlp_bounds", "estimator_weight_scales",
           "loss_value_scales", "ula_step_scale", "decoupled_step_scale"]


# --------------------------------------------------------------------------- element-wise maps

def map_derivative(fn, x: np.ndarray, *, positive: bool = False) -> np.ndarray:
    """``fn'(x)`` by central differences in float64 (step ``1e-5 max(1, |x|)``; relative
    accuracy ~1e-9, ample for an error scale). Non-finite differences count as 0: they
    occur only where the value itself overflows (compared as "beyond range").

    ``positive``: ``fn`` is defined on ``x > 0`` only (the u-grid maps), so the step is
    relative, ``1e-5 x``: with the absolute step ``1e-5`` the difference at ``u = 1e-12``
    would evaluate ``fn`` at a negative ``u`` (NaN, counted as 0) and drop the input-rounding
    term ``|u y'|`` of :func:`map_scale` exactly where it dominates (``u^(a-2)`` at
    ``u = 1e-12``: ``|u y'| = |a - 2| |y|``)."""
    x = np.asarray(x, dtype=np.float64)
    h = 1e-5 * (np.abs(x) if positive else np.maximum(1.0, np.abs(x)))
    with np.errstate(all="ignore"):
        d = (np.asarray(fn(x + h), dtype=np.float64) - np.asarray(fn(x - h), dtype=np.float64)) / (2 * h)
    return np.where(np.isfinite(d), d, 0.0)


def map_scale(fn, x: np.ndarray, value: np.ndarray, derivative=None, *, powers: bool = False,
              offset: float = 1.0, linear_terms: bool = False) -> np.ndarray:
    """Scale of an element-wise map ``y = fn(x)``:
    ``|x y'(x)| (1 + K_FN |log x| [powers]) + K_FN (|y| + offset) + 2 |x| [linear_terms]``.

    ``|x y'|``: the input ``x`` rounded to the precision (condition number times ``|y|``);
    ``K_FN |y|``: the final elementary function; ``K_FN * 1``: intermediate terms of
    magnitude O(1) that cancel where ``y`` crosses 0 (``log 2 + s - softplus(s)`` near
    ``s = 0``, ``u^a - 1 - a(u - 1)`` near ``u = 1``), the float32 analogue of the float64
    ``atol`` (``offset = 0`` for maps without such terms: f'', a product of powers).
    ``powers`` (maps of ``u > 0`` built from ``u^c = exp(c log u)`` and
    ``u log u``): the argument ``c log u`` carries the error ``K_FN u |c log u|`` of the
    logarithm, i.e. ``K_FN |log u| |u y'|`` since ``|c y| = |u y'|`` for a power; the same
    term bounds the cancellation of ``u log u - (u + 1) log((u + 1)/2)`` (Jensen-Shannon) at
    large u. ``linear_terms`` (the D7 maps ``g_data``, ``g_model``): formulas such as
    ``log 2 + s - softplus(s)`` or ``1 + s`` carry terms of size ``|s|`` that cancel at large
    ``|s|`` (``s - softplus(s)`` -> 0), each rounded once: ``2 |s|``. ``derivative`` (the exact ``y'``) replaces
    the finite difference if given.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(value, dtype=np.float64)
    dy = map_derivative(fn, x, positive=powers) if derivative is None else np.asarray(derivative, dtype=np.float64)
    with np.errstate(all="ignore"):
        log_factor = 1.0 + K_FN * np.abs(np.log(np.abs(x))) if powers else 1.0
        s = np.abs(x * dy) * log_factor + K_FN * (np.abs(y) + offset) + (2.0 * np.abs(x) if linear_terms else 0.0)
    return np.where(np.isfinite(s), s, 0.0)


def _representable(a: float, bits: int = 8) -> bool:
    """``a`` has at most ``bits`` significant bits: it is exact in bfloat16 (8 bits) and in
    every wider binary format (-1, -0.5, 0, 0.5, 1, 2 are; 0.9 is not)."""
    mantissa, _ = math.frexp(float(a))
    return float(mantissa * 2 ** bits).is_integer()


def alpha_rounding_scale(div, evaluate):
    """``|alpha| |dy/d alpha|``: the first-order effect of the implementation holding the
    divergence parameter ``alpha`` in its own precision (``fl(alpha) = alpha (1 + d)``,
    ``|d| <= u``) and deriving everything from it, e.g. ``alpha - 1`` from the rounded alpha,
    which amplifies the rounding by ``|alpha/(alpha - 1)|`` (9 at alpha = 0.9). ``evaluate``
    maps a divergence to the quantity (``lambda d: d.g_model(r)``); the derivative is a
    central difference in alpha (relative step 1e-6, accuracy ~1e-10 relative). 0 for
    divergences without alpha and for alphas that every supported precision represents
    exactly (:func:`_representable`); non-finite differences (the value overflows) count as 0.
    """
    a = div.params.get("alpha") if div.params else None
    if a is None or _representable(a):
        return 0.0
    from febm_ref.divergences import get_divergence

    h = 1e-6 * abs(a)
    with np.errstate(all="ignore"):
        up = np.asarray(evaluate(get_divergence("alpha", alpha=a + h)), dtype=np.float64)
        down = np.asarray(evaluate(get_divergence("alpha", alpha=a - h)), dtype=np.float64)
        d = abs(a) * np.abs(up - down) / (2 * h)
    return np.where(np.isfinite(d), d, 0.0)


# --------------------------------------------------------------------------- MLP

def _activation(name: str, z: np.ndarray):
    """``(act(z), act'(z), act''(z), E_act')`` of the protocol's activations.

    ``E_act'`` is the error scale of the derivative as autodiff evaluates it: tanh' as
    ``1 - a^2`` from ``a = tanh z``, itself off by ``K_FN |a|`` (absolute
    ``K_FN (2 a^2 + |1 - a^2|)``: at saturation ~2 K_FN, not relative to the tiny true
    derivative); elu' on ``z <= 0`` likewise from the output as ``a + 1`` (absolute
    ``K_FN (|a| + e^z)``); silu' as ``s + z s (1 - s)`` (the sum of the magnitudes);
    softplus' = sigmoid relative ``K_FN``."""
    if name == "tanh":
        a = np.tanh(z)
        d1 = 1.0 - a * a
        return a, d1, -2.0 * a * d1, K_FN * (2.0 * a * a + d1)
    sig = 0.5 * (1.0 + np.tanh(0.5 * z))
    if name == "softplus":
        return np.logaddexp(0.0, z), sig, sig * (1.0 - sig), K_FN * sig
    if name == "silu":
        d1 = sig + z * sig * (1.0 - sig)
        return (z * sig, d1, sig * (1.0 - sig) * (2.0 + z * (1.0 - 2.0 * sig)),
                K_FN * (sig + np.abs(z) * sig * (1.0 - sig)))
    if name == "elu":
        ez = np.exp(np.minimum(z, 0.0))
        pos = z > 0
        # elu' on z <= 0 as autodiff forms it from the output, a + 1: absolute |a| + K_FN e^z
        return (np.where(pos, z, ez - 1.0), np.where(pos, 1.0, ez), np.where(pos, 0.0, ez),
                np.where(pos, 0.0, K_FN * ((1.0 - ez) + ez)))
    raise ValueError(f"unknown activation {name!r}")


def _layers(params: np.ndarray, sizes):
    """``[(W_l, b_l), ...]`` of the protocol's flat layout (the same unpacking as the reference)."""
    return _unpack_numpy(params, sizes)


class MLPBounds:
    """Values and error scales of one MLP (protocol flat layout) on a batch ``x (n, d)``.

    Attributes (``E_*`` are scales in units of ``u``)
    ------------------------------------------------
    energy, E_energy : (n,)
    grad_x, E_grad_x : (n, d)
    grad_params, E_grad_params : (n, P)
    """

    def __init__(self, params, sizes, activation, x):
        params = np.asarray(params, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        layers = _layers(params, list(sizes))
        self._forward(layers, activation, x)
        self._backward(layers, activation)

    def _forward(self, layers, activation, x):
        # z_l = a W + b: E_z = E_a |W| + (fan_in + 2)(|a||W| + |b|)  [products, the sum of
        # fan_in + 1 terms and the rounding of W and b]; a' = act(z): E = |act'| E_z + K_FN |a'|
        a, E_a = x, np.abs(x)
        self._acts, self._zs = [(a, E_a)], []
        for index, (W, b) in enumerate(layers):
            z = a @ W + b
            E_z = E_a @ np.abs(W) + (W.shape[0] + 2) * (np.abs(a) @ np.abs(W) + np.abs(b))
            if index == len(layers) - 1:
                self.energy, self.E_energy = z[:, 0], E_z[:, 0]
                break
            act, d1, d2, E_d1 = _activation(activation, z)
            self._zs.append((z, E_z, d1, d2, E_d1))
            a, E_a = act, np.abs(d1) * E_z + K_FN * np.abs(act)
            self._acts.append((a, E_a))

    def _backward(self, layers, activation):
        # delta_L = 1; da = delta W^T: E = E_delta |W^T| + (fan_out + 2) |delta| |W^T|;
        # delta_l = da * act'(z_l): E = |act'| E_da + |da| (|act''| E_z + E_act') + |delta|
        n = self.energy.shape[0]
        delta, E_delta = np.ones((n, 1)), np.zeros((n, 1))
        grads, E_grads = [], []
        for index in range(len(layers) - 1, -1, -1):
            W, _ = layers[index]
            a, E_a = self._acts[index]
            gW = a[:, :, None] * delta[:, None, :]
            E_gW = (E_a[:, :, None] * np.abs(delta)[:, None, :] + np.abs(a)[:, :, None] * E_delta[:, None, :]
                    + np.abs(gW))
            grads.append(np.concatenate([gW.reshape(n, -1), delta], axis=1))
            E_grads.append(np.concatenate([E_gW.reshape(n, -1), E_delta], axis=1))
            da = delta @ W.T
            E_da = E_delta @ np.abs(W.T) + (W.shape[1] + 2) * (np.abs(delta) @ np.abs(W.T))
            if index == 0:
                self.grad_x, self.E_grad_x = da, E_da
                break
            _, E_z, d1, d2, E_d1 = self._zs[index - 1]
            delta = da * d1
            E_delta = np.abs(d1) * E_da + np.abs(da) * (np.abs(d2) * E_z + E_d1) + np.abs(delta)
        self.grad_params = np.concatenate(grads[::-1], axis=1)
        self.E_grad_params = np.concatenate(E_grads[::-1], axis=1)


def mlp_bounds(spec: dict, x) -> MLPBounds:
    """:class:`MLPBounds` of a protocol MLP spec ``{"params", "sizes", "activation"}``."""
    return MLPBounds(spec["params"], spec["sizes"], spec["activation"], x)


# --------------------------------------------------------------------------- estimator (D13, D14)

def _g_terms(div, r, E_r):
    """``(g, E_g, g', E_g')`` for g in (g_data, g_model) at r with input error scale ``E_r``.

    As for the catalogue rows (:func:`map_scale`), each map carries ``K_FN (|value| + 1)``
    (plus ``2 |r|`` for the values, ``linear_terms``): the ``+ 1`` covers O(1) terms that
    cancel, e.g. autodiff of the Jensen-Shannon ``g_data = log 2 + s - softplus(s)`` gives
    ``1 - sigmoid(s)``, 0 in float32 for s > 17; the alpha family adds the rounding of alpha
    (:func:`alpha_rounding_scale`)."""
    out = {}
    for name, prime in (("g_data", "g_data_prime"), ("g_model", "g_model_prime")):
        g = getattr(div, name)(r)
        gp = getattr(div, prime)(r)
        gpp = map_derivative(getattr(div, prime), r)
        E_g = (np.abs(gp) * E_r + K_FN * (np.abs(g) + 1.0) + 2.0 * np.abs(r)
               + alpha_rounding_scale(div, lambda d, fn=name: getattr(d, fn)(r)))
        E_gp = (np.abs(gpp) * E_r + K_FN * (np.abs(gp) + 1.0)
                + alpha_rounding_scale(div, lambda d, fn=prime: getattr(d, fn)(r)))
        out[name] = (g, E_g, gp, E_gp)
    return out


def _mean_scale(values, E_values):
    """Scale of ``mean(values)`` (``sum`` of m terms then ``/ m``): ``(sum E + (m - 1) sum |v|)/m + |mean|``."""
    m = values.shape[0]
    return (np.sum(E_values) + (m - 1) * np.sum(np.abs(values))) / m + abs(float(np.mean(values)))


def estimator_weight_scales(div, e_pos, e_neg, h_pos, h_neg, lam, E_e=None, E_h=None):
    """Error scales of the energy and critic weights (``febm_energy_weights``,
    ``febm_critic_weights``) given the value scales ``E_e``, ``E_h`` (default: input
    rounding, ``|e|``, ``|h|``).

    Returns ``{"energy": (S+, S-), "critic": (S+, S-)}``.
    """
    e_pos, e_neg, h_pos, h_neg = (np.asarray(v, dtype=np.float64) for v in (e_pos, e_neg, h_pos, h_neg))
    n_pos, n_neg = e_pos.shape[0], e_neg.shape[0]
    E_e = (np.abs(e_pos), np.abs(e_neg)) if E_e is None else E_e
    E_h = (np.abs(h_pos), np.abs(h_neg)) if E_h is None else E_h
    r_pos, r_neg = h_pos + e_pos, h_neg + e_neg
    E_rp = E_e[0] + E_h[0] + np.abs(r_pos)
    E_rn = E_e[1] + E_h[1] + np.abs(r_neg)
    pos = _g_terms(div, r_pos, E_rp)
    neg = _g_terms(div, r_neg, E_rn)
    _, _, gdp, E_gdp = pos["g_data"]
    gm, E_gm, gmp, E_gmp = neg["g_model"]
    E_mean = _mean_scale(gm, E_gm)
    mean = float(np.mean(gm))
    # energy: (g_data'(r+) + 2 lam e+)/n+ ; (-g_model'(r-) + g_model(r-) - <g_model> + 2 lam e-)/n-
    l2e_p, l2e_n = 2 * lam * (E_e[0] + np.abs(e_pos)), 2 * lam * (E_e[1] + np.abs(e_neg))
    w_pos = (gdp + 2 * lam * e_pos) / n_pos
    w_neg = (-gmp + gm - mean + 2 * lam * e_neg) / n_neg
    S_ep = (E_gdp + l2e_p + np.abs(gdp) + 2 * lam * np.abs(e_pos)) / n_pos + 2 * np.abs(w_pos)
    S_en = (E_gmp + E_gm + E_mean + l2e_n
            + 3 * (np.abs(gmp) + np.abs(gm) + abs(mean) + 2 * lam * np.abs(e_neg))) / n_neg + 2 * np.abs(w_neg)
    # critic: (-g_data'(r+) + 2 lam h+)/n+ ; (g_model'(r-) + 2 lam h-)/n-
    l2h_p, l2h_n = 2 * lam * (E_h[0] + np.abs(h_pos)), 2 * lam * (E_h[1] + np.abs(h_neg))
    v_pos = (-gdp + 2 * lam * h_pos) / n_pos
    v_neg = (gmp + 2 * lam * h_neg) / n_neg
    S_cp = (E_gdp + l2h_p + np.abs(gdp) + 2 * lam * np.abs(h_pos)) / n_pos + 2 * np.abs(v_pos)
    S_cn = (E_gmp + l2h_n + np.abs(gmp) + 2 * lam * np.abs(h_neg)) / n_neg + 2 * np.abs(v_neg)
    return {"energy": (S_ep, S_en), "critic": (S_cp, S_cn),
            "weights": {"energy": (w_pos, w_neg), "critic": (v_pos, v_neg)}}


def loss_value_scales(div, e_pos, e_neg, h_pos, h_neg, lam):
    """Scales of ``(L, L + lam(<e+^2> + <e-^2>), -L + lam(<h+^2> + <h-^2>))`` (input rounding
    of the values included)."""
    e_pos, e_neg, h_pos, h_neg = (np.asarray(v, dtype=np.float64) for v in (e_pos, e_neg, h_pos, h_neg))
    r_pos, r_neg = h_pos + e_pos, h_neg + e_neg
    pos = _g_terms(div, r_pos, np.abs(e_pos) + np.abs(h_pos) + np.abs(r_pos))
    neg = _g_terms(div, r_neg, np.abs(e_neg) + np.abs(h_neg) + np.abs(r_neg))
    gd, E_gd = pos["g_data"][:2]
    gm, E_gm = neg["g_model"][:2]
    L = float(np.mean(gd) - np.mean(gm))
    S_L = _mean_scale(gd, E_gd) + _mean_scale(gm, E_gm) + abs(L)

    def l2(values):
        squares = values * values
        return _mean_scale(squares, 3 * squares)  # input rounding 2|v|^2 + the product |v|^2

    S_E = S_L + lam * (l2(e_pos) + l2(e_neg)) + 2 * abs(L + lam * (np.mean(e_pos ** 2) + np.mean(e_neg ** 2)))
    S_H = S_L + lam * (l2(h_pos) + l2(h_neg)) + 2 * abs(-L + lam * (np.mean(h_pos ** 2) + np.mean(h_neg ** 2)))
    return np.array([S_L, S_E, S_H])


def weighted_gradient_scale(w, S_w, grads, S_grads):
    """Scale of ``sum_i w_i g_i`` (``(N, P)`` per-sample gradients, ``N`` terms):
    ``sum_i (|w_i| S_g_i + S_w_i |g_i|) + (N + 1) sum_i |w_i g_i|``."""
    aw, ag = np.abs(w)[:, None], np.abs(grads)
    n = grads.shape[0]
    return np.sum(aw * S_grads + np.asarray(S_w)[:, None] * ag, axis=0) + (n + 1) * np.sum(aw * ag, axis=0)


# --------------------------------------------------------------------------- Langevin

def ula_step_scale(x, grad, noise, eps, E_x=None, E_grad=None):
    """Scale of ``x - (eps/2) grad + sqrt(eps) z`` (D15); defaults: inputs rounded once."""
    x, grad, noise = (np.asarray(v, dtype=np.float64) for v in (x, grad, noise))
    E_x = np.abs(x) if E_x is None else E_x
    E_grad = np.abs(grad) if E_grad is None else E_grad
    drift = 0.5 * eps * grad
    kick = np.sqrt(eps) * noise
    y = x - drift + kick
    # eps/2 and sqrt(eps) rounded (1 each), products (1), z rounded (1), two additions
    return E_x + 0.5 * eps * E_grad + 2 * np.abs(drift) + 3 * np.abs(kick) + np.abs(x - drift) + np.abs(y)


def decoupled_step_scale(x, grad, noise, step, noise_scale, grad_clip, box, E_x=None, E_grad=None):
    """Scale of one D16 step ``clip_box(x + sigma z - step clip(grad))`` with ``grad`` the
    gradient at the noised point. Clipping is 1-Lipschitz: an active clip adds the rounding
    of its bound (``|c|``, ``|box|``) to the propagated scale."""
    x, grad, noise = (np.asarray(v, dtype=np.float64) for v in (x, grad, noise))
    E_x = np.abs(x) if E_x is None else E_x
    E_grad = np.abs(grad) if E_grad is None else E_grad
    kick = noise_scale * noise
    xn = x + kick
    E_xn = E_x + 3 * np.abs(kick) + np.abs(xn)
    g, E_g = grad, E_grad
    if grad_clip is not None:
        clipped = np.abs(g) > grad_clip
        g = np.clip(g, -grad_clip, grad_clip)
        E_g = E_g + np.where(clipped, grad_clip, 0.0)
    y = xn - step * g
    E_y = E_xn + step * E_g + 2 * np.abs(step * g) + np.abs(y)
    if box is not None:
        lo, hi = box
        E_y = E_y + np.where(y < lo, abs(lo), 0.0) + np.where(y > hi, abs(hi), 0.0)
        y = np.clip(y, lo, hi)
    return y, E_y, xn, E_xn
