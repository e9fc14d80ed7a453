"""A deliberately broken variant of :mod:`torch_adapter`: ``febm-ref check`` must reject it.

Two classic mistakes, everything else delegated to the correct adapter:

1. The energy's surrogate loss forgets the score (covariance) term
   ``<sg(g_model(r-) - <g_model(r-)>) E->``: it treats the negatives as if they did not
   depend on theta, i.e. drops ``grad_theta log Z`` (D1). Its gradient is then only the
   pathwise part of D13. Expected: ``objective.energy_grad`` and ``energy_grad+l2`` FAIL,
   the critic rows still pass (the critic never sees that term).
2. The KL conjugate is written ``exp(t)``, the conjugate of ``u log u - u`` rather than of
   ``f(u) = u log u`` (``exp(t - 1)``): a common mix-up of two tables. Expected:
   ``catalogue.conjugate`` FAILs; ``g_model`` (written directly in s) still passes.

Run: ``febm-ref check --adapter examples/torch_adapter_broken.py`` (exit status 1).
"""

from __future__ import annotations

import torch
import torch_adapter as correct

# Everything that is not overridden below is the correct implementation.
gaussian_f_divergence = correct.gaussian_f_divergence
mlp_energy = correct.mlp_energy
mlp_grad_x = correct.mlp_grad_x
mlp_grad_params = correct.mlp_grad_params
ula_trajectory = correct.ula_trajectory
decoupled_langevin_trajectory = correct.decoupled_langevin_trajectory
exact_optimum_1d = correct.exact_optimum_1d
convergence_jacobian = correct.convergence_jacobian


def divergence_map(name, params, quantity, x):
    if name == "kl" and quantity == "conjugate":
        return torch.exp(correct._t(x)).numpy()  # BUG: should be exp(t - 1)
    return correct.divergence_map(name, params, quantity, x)


def _energy_surrogate_without_score_term(maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
    r_pos = H_pos.detach() + E_pos
    r_neg = H_neg.detach() + E_neg
    loss = maps["g_data"](r_pos).mean() - maps["g_model"](r_neg).mean()  # BUG: no score term
    return loss + l2_weight * ((E_pos ** 2).mean() + (E_neg ** 2).mean())


def febm_loss_gradients(name, params, energy, critic, x_pos, x_neg, l2_weight):
    maps = correct.divergence_maps(name, params)
    theta = correct._t(energy["params"]).requires_grad_(True)
    omega = correct._t(critic["params"]).requires_grad_(True)
    x_pos, x_neg = correct._t(x_pos), correct._t(x_neg)
    E_pos = correct.mlp_forward(theta, energy["sizes"], energy["activation"], x_pos)
    E_neg = correct.mlp_forward(theta, energy["sizes"], energy["activation"], x_neg)
    H_pos = correct.mlp_forward(omega, critic["sizes"], critic["activation"], x_pos)
    H_neg = correct.mlp_forward(omega, critic["sizes"], critic["activation"], x_neg)
    (grad_theta,) = torch.autograd.grad(
        _energy_surrogate_without_score_term(maps, E_pos, E_neg, H_pos, H_neg, l2_weight), theta)
    (grad_omega,) = torch.autograd.grad(
        correct.critic_surrogate(maps, E_pos, E_neg, H_pos, H_neg, l2_weight), omega)
    return grad_theta.numpy(), grad_omega.numpy()
