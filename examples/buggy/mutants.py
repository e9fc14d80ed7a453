"""Thirteen one-bug variants of the JAX client: ``febm-ref check`` must reject every one.

Each class derives from the correct :class:`jax_adapter.JaxFEBM` and overrides exactly one
building block (``maps``, ``activation``, ``loss_weights`` / ``loss_values``, ``ula_update``,
``_grad_x``) to reproduce a bug that real f-EBM code has had. Everything else is the correct
implementation, so a variant differs from a passing client by one mistake, in float64 and in
float32 alike (``Class("float32")``). :data:`MUTANTS` lists them with the rows expected to
catch them; ``tests/test_conformance_mutants.py`` measures which rows actually do.

Run one: ``febm-ref check --adapter examples/buggy/mutants.py:CovarianceDropped`` (float64),
``FEBM_JAX_DTYPE=float32 febm-ref check --precision float32 --adapter ...`` (float32).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

_EXAMPLES = str(Path(__file__).resolve().parents[1])
if _EXAMPLES not in sys.path:
    sys.path.append(_EXAMPLES)

import jax
import jax.numpy as jnp
import jax_adapter
from jax_adapter import JaxFEBM

LOG2 = math.log(2.0)
G_MAPS = ("g_data", "g_model", "g_data_prime", "g_model_prime")


class CovarianceDropped(JaxFEBM):
    """The score (covariance) term of D13 is missing: the negatives are treated as if they
    did not depend on theta (``grad_theta log Z`` of D1 forgotten)."""

    def loss_weights(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        (wE_pos, wE_neg), critic = super().loss_weights(maps, E_pos, E_neg, H_pos, H_neg, l2_weight)
        g_neg = maps["g_model"](H_neg + E_neg)
        return (wE_pos, wE_neg - (g_neg - jnp.mean(g_neg)) / E_neg.shape[0]), critic


class CovarianceSignFlipped(JaxFEBM):
    """The covariance term enters with the wrong sign (``- Cov(g_model, dE)``: a sign slip
    in ``grad log Z = -E_q[dE]``)."""

    def loss_weights(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        (wE_pos, wE_neg), critic = super().loss_weights(maps, E_pos, E_neg, H_pos, H_neg, l2_weight)
        g_neg = maps["g_model"](H_neg + E_neg)
        return (wE_pos, wE_neg - 2.0 * (g_neg - jnp.mean(g_neg)) / E_neg.shape[0]), critic


class JSConjugateOffByLog2(JaxFEBM):
    """Jensen-Shannon conjugate ``-log(1 - e^t / 2)`` instead of ``-log(2 - e^t)`` (off by
    log 2, mixing the f-GAN table's two JS normalisations), and ``g_model = f*(g_data)``
    built from it: ``softplus(s)`` instead of ``softplus(s) - log 2``. No gradient changes
    (a constant offset); the objective value and the conjugate do."""

    def maps(self, name, params):
        maps = dict(super().maps(name, params))
        if name == "jensen_shannon":
            maps["conjugate"] = lambda t: -jnp.log1p(-0.5 * jnp.exp(t))
            maps["g_model"] = jax.nn.softplus
        return maps


class ExponentClipped(JaxFEBM):
    """The published code's silent stabilisation: the four maps of s see ``clip(s, -5, 5)``
    (``exp(clip(s, -5, 5))``), which changes the objective wherever |r| > 5."""

    def maps(self, name, params):
        maps = dict(super().maps(name, params))
        for key in G_MAPS:
            maps[key] = lambda s, fn=maps[key]: fn(jnp.clip(s, -5.0, 5.0))
        return maps


class LangevinHalfMissing(JaxFEBM):
    """ULA drift ``- eps grad E`` instead of ``- (eps/2) grad E`` (D15): samples the
    tempered density exp(-2E)."""

    def ula_update(self, x, grad, z, step_size):
        return x - step_size * grad + math.sqrt(step_size) * z


class LangevinNoiseSqrt2Eps(JaxFEBM):
    """ULA noise ``sqrt(2 eps) z`` with drift ``(eps/2) grad E``: two conventions mixed
    (``x - eps grad E + sqrt(2 eps) z`` is the other correct parametrisation)."""

    def ula_update(self, x, grad, z, step_size):
        return x - (0.5 * step_size) * grad + math.sqrt(2.0 * step_size) * z


class CriticAscentDescentSwapped(JaxFEBM):
    """The critic descends L instead of ascending it: its loss is ``+L + l2`` (the optimiser
    minimises, so the sign of the critic's loss must be flipped, and was not)."""

    def loss_weights(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        energy, _ = super().loss_weights(maps, E_pos, E_neg, H_pos, H_neg, l2_weight)
        r_pos, r_neg = H_pos + E_pos, H_neg + E_neg
        wH_pos = (maps["g_data_prime"](r_pos) + 2.0 * l2_weight * H_pos) / H_pos.shape[0]
        wH_neg = (-maps["g_model_prime"](r_neg) + 2.0 * l2_weight * H_neg) / H_neg.shape[0]
        return energy, (wH_pos, wH_neg)

    def loss_values(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        bound, energy_loss, critic_loss = super().loss_values(maps, E_pos, E_neg, H_pos, H_neg, l2_weight)
        return bound, energy_loss, critic_loss + 2.0 * bound


class L2OnWrongNetwork(JaxFEBM):
    """A copy-paste slip: the energy's loss gets ``lambda(<H+^2> + <H-^2>)`` and the critic's
    ``lambda(<E+^2> + <E-^2>)``; neither term depends on the network it is added to, so
    both l2 gradients vanish (D14)."""

    def loss_weights(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        return super().loss_weights(maps, E_pos, E_neg, H_pos, H_neg, 0.0)

    def loss_values(self, maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
        bound, _, _ = super().loss_values(maps, E_pos, E_neg, H_pos, H_neg, l2_weight)
        energy_l2 = jnp.mean(jnp.square(E_pos)) + jnp.mean(jnp.square(E_neg))
        critic_l2 = jnp.mean(jnp.square(H_pos)) + jnp.mean(jnp.square(H_neg))
        return bound, bound + l2_weight * critic_l2, -bound + l2_weight * energy_l2


class AlphaSwapped(JaxFEBM):
    """The alpha family in the dual convention: ``alpha`` and ``1 - alpha`` exchanged (Amari's
    and Cichocki's parametrisations differ exactly so)."""

    def maps(self, name, params):
        if name == "alpha":
            return super().maps(name, {"alpha": 1.0 - float(params["alpha"])})
        return super().maps(name, params)


class ReverseKLGModelPlusOne(JaxFEBM):
    """Reverse KL ``g_model(s) = s + 1`` instead of ``s - 1`` (sign of the conjugate's
    constant, ``f*(t) = -1 - log(-t)``): invisible to every gradient, wrong in every value."""

    def maps(self, name, params):
        maps = dict(super().maps(name, params))
        if name == "reverse_kl":
            maps["g_model"] = lambda s: s + 1.0
        return maps


@jax.custom_jvp
def _tanh_with_wrong_derivative(z):
    return jnp.tanh(z)


@_tanh_with_wrong_derivative.defjvp
def _tanh_wrong_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    y = jnp.tanh(z)
    return y, (1.0 - y) * dz  # BUG: tanh' = 1 - tanh^2


class TanhDerivativeWrong(JaxFEBM):
    """A hand-written backward pass with ``tanh'(z) = 1 - tanh(z)`` instead of
    ``1 - tanh(z)^2``: values are right, every gradient through a tanh layer is wrong."""

    def activation(self, name):
        if name == "tanh":
            return _tanh_with_wrong_derivative
        return super().activation(name)


class Float16Cast(JaxFEBM):
    """A float16 cast in the middle of the network (a mixed-precision context left on around
    the hidden layers): the pre-activations are rounded to float16 and back."""

    def activation(self, name):
        act = super().activation(name)
        return lambda z: act(z.astype(jnp.float16)).astype(z.dtype)


class LangevinGradOfBatchMean(JaxFEBM):
    """Mean over the wrong axis: the sampler's gradient is ``grad_x mean_i E(x_i)`` (the mean
    taken over the batch axis, as in ``energy(x).mean().backward()``) instead of the
    per-sample ``grad_x E(x_i)``, so every drift is 1/n too small."""

    def _grad_x(self, spec, x):
        params = self._in(spec["params"])
        return jax.grad(lambda y: jnp.mean(self.energies(params, spec["sizes"], spec["activation"], y)))(x)


MUTANTS = {
    "CovarianceDropped": (CovarianceDropped, "objective.energy_grad*, estimator.energy_weights*"),
    "CovarianceSignFlipped": (CovarianceSignFlipped, "objective.energy_grad*, estimator.energy_weights*"),
    "JSConjugateOffByLog2": (JSConjugateOffByLog2, "catalogue.conjugate, catalogue.g_model, estimator values"),
    "ExponentClipped": (ExponentClipped, "catalogue g maps, estimator (|r| > 5)"),
    "LangevinHalfMissing": (LangevinHalfMissing, "langevin.ula*, sampler_step.ula_step"),
    "LangevinNoiseSqrt2Eps": (LangevinNoiseSqrt2Eps, "langevin.ula*, sampler_step.ula_step"),
    "CriticAscentDescentSwapped": (CriticAscentDescentSwapped, "objective.critic_grad*, estimator critic rows"),
    "L2OnWrongNetwork": (L2OnWrongNetwork, "objective.*+l2, estimator *+l2"),
    "AlphaSwapped": (AlphaSwapped, "catalogue, gaussians, objective, estimator, convergence (alpha rows)"),
    "ReverseKLGModelPlusOne": (ReverseKLGModelPlusOne, "catalogue.g_model, estimator values"),
    "TanhDerivativeWrong": (TanhDerivativeWrong, "mlp.grad_*, objective, langevin"),
    "Float16Cast": (Float16Cast, "mlp, objective, langevin"),
    "LangevinGradOfBatchMean": (LangevinGradOfBatchMean,
                                "mlp.grad_x (the same helper), langevin (trajectories)"),
}
"""Variant name -> (class, the rows expected to reject it)."""

__all__ = list(MUTANTS) + ["MUTANTS", "jax_adapter"]
