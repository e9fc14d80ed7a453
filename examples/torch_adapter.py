"""A PyTorch (float64, CPU) f-EBM implementation, written as a conformance-kit adapter.

This is what a foreign implementation looks like when it is checked by ``febm-ref check``:
nothing here imports febm_ref. Everything is written independently in torch:

* the divergence catalogue (f, f', f'', f* and the D7 maps g_data, g_model and their
  derivatives) in log space with expm1/log1p/logaddexp;
* an autograd MLP that loads the golden files' flat parameter layout
  (``W_0, b_0, W_1, b_1, ...``, ``W_l`` of shape (fan_in, fan_out) row-major);
* per-sample parameter gradients with ``torch.func.vmap(torch.func.grad(...))``;
* the f-EBM gradients as autodiff of stop-gradient **surrogate losses**, the way the
  published code writes them (the explicit estimator D13 is what febm-ref computes; the
  checker shows the two agree);
* Gaussian f-divergences from the textbook closed forms (Jensen-Shannon: not implemented,
  so the checker skips it);
* ULA (D15) and decoupled Langevin (D16) with the pre-drawn noise, and single steps from
  a given gradient (any energy);
* the architecture-agnostic value rows (per-sample weights by autograd of the same
  surrogates with the per-sample values as leaves, and the loss values).

Run: ``febm-ref check --adapter examples/torch_adapter.py``.

Precision
---------
Every function computes in the module's ``DTYPE``: float64 by default, float32 with
``FEBM_TORCH_DTYPE=float32`` in the environment (read at import). Inputs arrive as float64
and are rounded to ``DTYPE`` on entry (``_t``); results are returned in ``DTYPE``. The
objects ``adapter_float64`` and ``adapter_float32`` carry the same functions with a fixed
dtype, so both precisions can be checked in one process:
``febm-ref check --precision float32 --adapter examples/torch_adapter.py:adapter_float32``.

The surrogate losses
--------------------
With ``r = H + E`` (D6), negatives ``x-`` treated as constants and ``sg`` the stop-gradient
(``.detach()``), the energy's surrogate is

    S_E(theta) = <g_data(sg(H+) + E+)> - <g_model(sg(H-) + E-)>
                 + < sg(g_model(r-) - <g_model(r-)>) * E- >

Differentiating: the first two terms give ``<g_data'(r+) dE+> - <g_model'(r-) dE->`` (the
pathwise part of D13), the third gives ``<g_model(r-) dE-> - <g_model(r-)><dE->``, the
covariance (score) term that comes from ``grad log Z_theta`` (D1) because the negatives are
drawn from ``q_theta``. Their sum is exactly the D13 theta-gradient. The critic's surrogate
is ``S_H(omega) = -(<g_data(H+ + sg(E+))> - <g_model(H- + sg(E-))>)``, whose gradient is
minus the D13 omega-gradient. The l2 terms (D14) are added to both losses as they are.
"""

from __future__ import annotations

import functools
import math
import os

import torch

torch.set_num_threads(1)
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
if os.environ.get("FEBM_TORCH_DTYPE", "float64") not in _DTYPES:
    raise ValueError(f"FEBM_TORCH_DTYPE must be float64 or float32, got {os.environ['FEBM_TORCH_DTYPE']!r}")
DTYPE = _DTYPES[os.environ.get("FEBM_TORCH_DTYPE", "float64")]
LOG2 = math.log(2.0)


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=DTYPE)


# ----------------------------------------------------------------------------- catalogue

def _alpha_maps(a: float) -> dict:
    if a == 1.0:  # KL limit of the alpha family: f = u log u - u + 1
        return {"f": lambda u: torch.xlogy(u, u) - u + 1.0, "f_prime": torch.log,
                "f_double_prime": lambda u: 1.0 / u, "conjugate": torch.expm1,
                "g_data": lambda s: s.clone(), "g_model": torch.expm1,
                "g_data_prime": torch.ones_like, "g_model_prime": torch.exp}
    if a == 0.0:  # reverse-KL limit: f = -log u + u - 1
        return {"f": lambda u: -torch.log(u) + u - 1.0, "f_prime": lambda u: 1.0 - 1.0 / u,
                "f_double_prime": lambda u: u ** -2,
                "conjugate": lambda t: -torch.log1p(-t),
                "g_data": lambda s: -torch.expm1(-s), "g_model": lambda s: s.clone(),
                "g_data_prime": lambda s: torch.exp(-s), "g_model_prime": torch.ones_like}
    return {
        "f": lambda u: (u ** a - 1.0 - a * (u - 1.0)) / (a * (a - 1.0)),
        "f_prime": lambda u: torch.expm1((a - 1.0) * torch.log(u)) / (a - 1.0),
        "f_double_prime": lambda u: u ** (a - 2.0),
        "conjugate": lambda t: torch.expm1((a / (a - 1.0)) * torch.log1p((a - 1.0) * t)) / a,
        "g_data": lambda s: torch.expm1((a - 1.0) * s) / (a - 1.0),
        "g_model": lambda s: torch.expm1(a * s) / a,
        "g_data_prime": lambda s: torch.exp((a - 1.0) * s),
        "g_model_prime": lambda s: torch.exp(a * s),
    }


def divergence_maps(name: str, params: dict) -> dict:
    """The eight element-wise maps of one divergence, as torch functions."""
    if name == "kl":
        return {"f": lambda u: torch.xlogy(u, u), "f_prime": lambda u: torch.log(u) + 1.0,
                "f_double_prime": lambda u: 1.0 / u, "conjugate": lambda t: torch.exp(t - 1.0),
                "g_data": lambda s: 1.0 + s, "g_model": torch.exp,
                "g_data_prime": torch.ones_like, "g_model_prime": torch.exp}
    if name == "reverse_kl":
        return {"f": lambda u: -torch.log(u), "f_prime": lambda u: -1.0 / u,
                "f_double_prime": lambda u: u ** -2, "conjugate": lambda t: -1.0 - torch.log(-t),
                "g_data": lambda s: -torch.exp(-s), "g_model": lambda s: s - 1.0,
                "g_data_prime": lambda s: torch.exp(-s), "g_model_prime": torch.ones_like}
    if name == "jensen_shannon":
        return {"f": lambda u: torch.xlogy(u, u) - (u + 1.0) * (torch.log1p(u) - LOG2),
                "f_prime": lambda u: LOG2 - torch.log1p(1.0 / u),
                "f_double_prime": lambda u: 1.0 / (u * (u + 1.0)),
                "conjugate": lambda t: -LOG2 - torch.log1p(-0.5 * torch.exp(t)),
                "g_data": lambda s: LOG2 - torch.logaddexp(torch.zeros_like(s), -s),
                "g_model": lambda s: torch.logaddexp(torch.zeros_like(s), s) - LOG2,
                "g_data_prime": lambda s: torch.sigmoid(-s), "g_model_prime": torch.sigmoid}
    if name == "squared_hellinger":
        return {"f": lambda u: (torch.sqrt(u) - 1.0) ** 2, "f_prime": lambda u: 1.0 - u ** -0.5,
                "f_double_prime": lambda u: 0.5 * u ** -1.5, "conjugate": lambda t: t / (1.0 - t),
                "g_data": lambda s: -torch.expm1(-0.5 * s), "g_model": lambda s: torch.expm1(0.5 * s),
                "g_data_prime": lambda s: 0.5 * torch.exp(-0.5 * s),
                "g_model_prime": lambda s: 0.5 * torch.exp(0.5 * s)}
    if name == "pearson_chi2":
        return {"f": lambda u: (u - 1.0) ** 2, "f_prime": lambda u: 2.0 * (u - 1.0),
                "f_double_prime": lambda u: torch.full_like(u, 2.0),
                "conjugate": lambda t: 0.25 * t * t + t,
                "g_data": lambda s: 2.0 * torch.expm1(s), "g_model": lambda s: torch.expm1(2.0 * s),
                "g_data_prime": lambda s: 2.0 * torch.exp(s),
                "g_model_prime": lambda s: 2.0 * torch.exp(2.0 * s)}
    if name == "neyman_chi2":
        return {"f": lambda u: (1.0 - u) ** 2 / u, "f_prime": lambda u: 1.0 - u ** -2,
                "f_double_prime": lambda u: 2.0 * u ** -3,
                "conjugate": lambda t: 2.0 * t / (1.0 + torch.sqrt(1.0 - t)),
                "g_data": lambda s: -torch.expm1(-2.0 * s), "g_model": lambda s: -2.0 * torch.expm1(-s),
                "g_data_prime": lambda s: 2.0 * torch.exp(-2.0 * s),
                "g_model_prime": lambda s: 2.0 * torch.exp(-s)}
    if name == "alpha":
        return _alpha_maps(float(params["alpha"]))
    raise NotImplementedError(f"divergence {name!r}")


def divergence_map(name, params, quantity, x):
    return divergence_maps(name, params)[quantity](_t(x)).numpy()


# ----------------------------------------------------------------------------- Gaussians

def _kl_gaussians(m_p, S_p, m_q, S_q):
    d = m_p.shape[0]
    L_q = torch.linalg.cholesky(S_q)
    delta = (m_q - m_p)[:, None]
    trace = torch.trace(torch.cholesky_solve(S_p, L_q))
    maha = (delta.T @ torch.cholesky_solve(delta, L_q))[0, 0]
    return 0.5 * (trace + maha - d + torch.logdet(S_q) - torch.logdet(S_p))


def _alpha_gaussians(a, m_p, S_p, m_q, S_q):
    """(I_a - 1)/(a(a-1)), I_a = ∫ p^a q^(1-a) = |S_p|^((1-a)/2) |S_q|^(a/2) |S_a|^(-1/2)
    exp(-a(1-a)/2 delta^T S_a^{-1} delta), S_a = (1-a) S_p + a S_q; +inf if S_a is not PD."""
    if a == 1.0:
        return _kl_gaussians(m_p, S_p, m_q, S_q)
    if a == 0.0:
        return _kl_gaussians(m_q, S_q, m_p, S_p)
    S_a = (1.0 - a) * S_p + a * S_q
    L_a, info = torch.linalg.cholesky_ex(S_a)
    if int(info) != 0:
        return torch.tensor(math.inf, dtype=DTYPE)
    delta = (m_p - m_q)[:, None]
    maha = (delta.T @ torch.cholesky_solve(delta, L_a))[0, 0]
    log_i = (-0.5 * a * (1.0 - a) * maha - torch.sum(torch.log(torch.diagonal(L_a)))
             + 0.5 * (1.0 - a) * torch.logdet(S_p) + 0.5 * a * torch.logdet(S_q))
    return torch.expm1(log_i) / (a * (a - 1.0))


def gaussian_f_divergence(name, params, mean_p, cov_p, mean_q, cov_q):
    m_p, S_p, m_q, S_q = _t(mean_p), _t(cov_p), _t(mean_q), _t(cov_q)
    if name == "kl":
        value = _kl_gaussians(m_p, S_p, m_q, S_q)
    elif name == "reverse_kl":
        value = _kl_gaussians(m_q, S_q, m_p, S_p)
    elif name == "alpha":
        value = _alpha_gaussians(float(params["alpha"]), m_p, S_p, m_q, S_q)
    elif name == "pearson_chi2":
        value = 2.0 * _alpha_gaussians(2.0, m_p, S_p, m_q, S_q)
    elif name == "neyman_chi2":
        value = 2.0 * _alpha_gaussians(-1.0, m_p, S_p, m_q, S_q)
    elif name == "squared_hellinger":
        value = 0.5 * _alpha_gaussians(0.5, m_p, S_p, m_q, S_q)
    else:
        raise NotImplementedError(f"no closed form for {name!r} in this adapter")
    return value.detach().numpy()  # a 0-d array of DTYPE (float() would hide the precision)


# ----------------------------------------------------------------------------- MLP

def _activation(name: str):
    if name == "tanh":
        return torch.tanh
    if name == "softplus":  # exact log(1 + e^z): torch's softplus linearises above z = 20
        return lambda z: torch.logaddexp(torch.zeros_like(z), z)
    if name == "silu":
        return lambda z: z * torch.sigmoid(z)
    if name == "elu":
        return lambda z: torch.where(z > 0, z, torch.expm1(torch.clamp(z, max=0.0)))
    raise NotImplementedError(f"activation {name!r}")


def mlp_forward(params: torch.Tensor, sizes, activation: str, x: torch.Tensor) -> torch.Tensor:
    """E(x) for x (n, d) from the flat layout W_0, b_0, ..., W_l (fan_in, fan_out) row-major."""
    act = _activation(activation)
    a, offset = x, 0
    n_layers = len(sizes) - 1
    for layer in range(n_layers):
        n_in, n_out = int(sizes[layer]), int(sizes[layer + 1])
        W = params[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        b = params[offset:offset + n_out]
        offset += n_out
        a = a @ W + b
        if layer < n_layers - 1:
            a = act(a)
    if offset != params.shape[0]:
        raise ValueError(f"{params.shape[0]} parameters do not fit sizes {list(sizes)}")
    return a[:, 0]


def mlp_energy(params, sizes, activation, x):
    return mlp_forward(_t(params), sizes, activation, _t(x)).numpy()


def _grad_x(params, sizes, activation, x):
    x = x.clone().requires_grad_(True)
    energy = mlp_forward(params, sizes, activation, x)
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return grad


def mlp_grad_x(params, sizes, activation, x):
    return _grad_x(_t(params), sizes, activation, _t(x)).numpy()


def mlp_grad_params(params, sizes, activation, x):
    def energy_of_one(p, x_row):
        return mlp_forward(p, sizes, activation, x_row[None, :])[0]

    per_sample = torch.func.vmap(torch.func.grad(energy_of_one), in_dims=(None, 0))
    return per_sample(_t(params), _t(x)).numpy()


# ----------------------------------------------------------------------------- f-EBM

def energy_surrogate(maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
    """S_E (module docstring): its theta-gradient is the D13 theta-gradient (+ D14)."""
    r_pos = H_pos.detach() + E_pos
    r_neg = H_neg.detach() + E_neg
    g_neg = maps["g_model"](r_neg)
    score_weight = (g_neg - g_neg.mean()).detach()
    loss = maps["g_data"](r_pos).mean() - g_neg.mean() + (score_weight * E_neg).mean()
    return loss + l2_weight * ((E_pos ** 2).mean() + (E_neg ** 2).mean())


def critic_surrogate(maps, E_pos, E_neg, H_pos, H_neg, l2_weight):
    """S_H: minus L with the energy detached (the critic maximises L), plus D14."""
    bound = maps["g_data"](H_pos + E_pos.detach()).mean() - maps["g_model"](H_neg + E_neg.detach()).mean()
    return -bound + l2_weight * ((H_pos ** 2).mean() + (H_neg ** 2).mean())


def febm_loss_gradients(name, params, energy, critic, x_pos, x_neg, l2_weight):
    maps = divergence_maps(name, params)
    theta = _t(energy["params"]).requires_grad_(True)
    omega = _t(critic["params"]).requires_grad_(True)
    x_pos, x_neg = _t(x_pos), _t(x_neg)
    E_pos = mlp_forward(theta, energy["sizes"], energy["activation"], x_pos)
    E_neg = mlp_forward(theta, energy["sizes"], energy["activation"], x_neg)
    H_pos = mlp_forward(omega, critic["sizes"], critic["activation"], x_pos)
    H_neg = mlp_forward(omega, critic["sizes"], critic["activation"], x_neg)
    (grad_theta,) = torch.autograd.grad(
        energy_surrogate(maps, E_pos, E_neg, H_pos, H_neg, l2_weight), theta)
    (grad_omega,) = torch.autograd.grad(
        critic_surrogate(maps, E_pos, E_neg, H_pos, H_neg, l2_weight), omega)
    return grad_theta.numpy(), grad_omega.numpy()


# ----------------------------------------------------------------------------- value rows (any model)

def febm_energy_weights(name, params, e_pos, e_neg, h_pos, h_neg, l2_weight):
    """dS_E/dE(x+_i), dS_E/dE(x-_j): autograd of the same surrogate S_E as the model
    gradients, with the given per-sample values as the leaves (what a ResNet
    implementation's loss code sees)."""
    E_pos, E_neg = _t(e_pos).requires_grad_(True), _t(e_neg).requires_grad_(True)
    loss = energy_surrogate(divergence_maps(name, params), E_pos, E_neg, _t(h_pos), _t(h_neg), l2_weight)
    return tuple(g.numpy() for g in torch.autograd.grad(loss, (E_pos, E_neg)))


def febm_critic_weights(name, params, e_pos, e_neg, h_pos, h_neg, l2_weight):
    """dS_H/dH(x+_i), dS_H/dH(x-_j) by autograd of the critic's surrogate."""
    H_pos, H_neg = _t(h_pos).requires_grad_(True), _t(h_neg).requires_grad_(True)
    loss = critic_surrogate(divergence_maps(name, params), _t(e_pos), _t(e_neg), H_pos, H_neg, l2_weight)
    return tuple(g.numpy() for g in torch.autograd.grad(loss, (H_pos, H_neg)))


def febm_loss_values(name, params, e_pos, e_neg, h_pos, h_neg, l2_weight):
    """(L, L + lambda(<E+^2> + <E-^2>), -L + lambda(<H+^2> + <H-^2>)): the objective VALUE."""
    maps = divergence_maps(name, params)
    E_pos, E_neg, H_pos, H_neg = (_t(v) for v in (e_pos, e_neg, h_pos, h_neg))
    bound = maps["g_data"](H_pos + E_pos).mean() - maps["g_model"](H_neg + E_neg).mean()
    energy_loss = bound + l2_weight * ((E_pos ** 2).mean() + (E_neg ** 2).mean())
    critic_loss = -bound + l2_weight * ((H_pos ** 2).mean() + (H_neg ** 2).mean())
    return bound.numpy(), energy_loss.numpy(), critic_loss.numpy()


# ----------------------------------------------------------------------------- Langevin

def ula_update(x, grad, z, step_size):
    """D15: x - (eps/2) grad_x E(x) + sqrt(eps) z."""
    return x - 0.5 * step_size * grad + math.sqrt(step_size) * z


def decoupled_update(x_noised, grad_noised, step_size, grad_clip, box):
    """D16 from the noised point x' = x + sigma z and g = grad_x E(x'):
    clip(x' - lambda clip(g, +-grad_clip), box)."""
    if grad_clip is not None:
        grad_noised = torch.clamp(grad_noised, -grad_clip, grad_clip)
    x = x_noised - step_size * grad_noised
    return x if box is None else torch.clamp(x, box[0], box[1])


def ula_trajectory(energy, x0, noise, step_size):
    params, sizes, act = _t(energy["params"]), energy["sizes"], energy["activation"]
    x, noise = _t(x0), _t(noise)
    points = []
    for z in noise:
        x = ula_update(x, _grad_x(params, sizes, act, x), z, step_size)
        points.append(x)
    return torch.stack(points).numpy()


def decoupled_langevin_trajectory(energy, x0, noise, step_size, noise_scale, grad_clip, box):
    params, sizes, act = _t(energy["params"]), energy["sizes"], energy["activation"]
    x, noise = _t(x0), _t(noise)
    points = []
    for z in noise:
        x_noised = x + noise_scale * z
        x = decoupled_update(x_noised, _grad_x(params, sizes, act, x_noised), step_size, grad_clip, box)
        points.append(x)
    return torch.stack(points).numpy()


def ula_step(x, grad_x, noise, step_size):
    """One D15 step from a given gradient (any energy)."""
    return ula_update(_t(x), _t(grad_x), _t(noise), step_size).numpy()


def decoupled_langevin_step(x, grad_x, noise, step_size, noise_scale, grad_clip, box):
    """One D16 step; ``grad_x`` is the gradient at the noised point x + noise_scale noise."""
    x_noised = _t(x) + noise_scale * _t(noise)
    return decoupled_update(x_noised, _t(grad_x), step_size, grad_clip, box).numpy()


# ----------------------------------------------------------------------------- 1-D optima

def _mixture_log_density(target, x):
    w = _t(target["weights"])
    m, v = _t(target["means"]), _t(target["variances"])
    log_comp = torch.log(w) - 0.5 * ((x[:, None] - m) ** 2 / v + torch.log(2.0 * math.pi * v))
    return torch.logsumexp(log_comp, dim=1)


def exact_optimum_1d(name, params, target):
    """Quadrature of q f(p/q) on a fine uniform grid (trapezoid rule: spectrally accurate for
    these smooth, fast-decaying integrands), gradients by autograd, BFGS over (mu, log sigma)."""
    from scipy import optimize

    f = divergence_maps(name, params)["f"]
    x = torch.linspace(-30.0, 35.0, 13001, dtype=DTYPE)
    # The node spacing from the interval, not x[1] - x[0]: in float32 that difference of two
    # numbers near -30 is off by ~2e-4 relative (cancellation), and so is every integral.
    h = 65.0 / 13000
    log_p = _mixture_log_density(target, x)

    def divergence(z):
        mu, log_sigma = z[0], z[1]
        log_q = -0.5 * ((x - mu) / torch.exp(log_sigma)) ** 2 - log_sigma - 0.5 * math.log(2.0 * math.pi)
        # Nodes where p and q are both below e^-60 or p/q is beyond e^+-40 are dropped (a
        # truncation of the domain, not of f). The mask is applied to the log ratio BEFORE
        # the exp: masking the integrand afterwards (torch.where(isfinite(...))) leaves an
        # inf in the discarded branch, whose gradient 0 * inf is NaN; in float32 e^(log p -
        # log q) overflows in the tails, BFGS then sees a NaN gradient and stops at its
        # starting point (caught by the optima rows of `febm-ref check --precision float32`).
        keep = (torch.maximum(log_p, log_q) > -60.0) & ((log_p - log_q).abs() < 40.0)
        log_ratio = torch.where(keep, log_p - log_q, torch.zeros_like(log_q))
        integrand = torch.where(keep, torch.exp(log_q) * f(torch.exp(log_ratio)), torch.zeros_like(log_q))
        return h * (integrand.sum() - 0.5 * (integrand[0] + integrand[-1]))

    def value_and_grad(z_np):
        z = torch.tensor(z_np, dtype=DTYPE, requires_grad=True)
        value = divergence(z)
        (grad,) = torch.autograd.grad(value, z)
        return float(value.detach()), grad.numpy()

    w, m, v = (torch.tensor(target[k], dtype=DTYPE) for k in ("weights", "means", "variances"))
    mean = float((w * m).sum())
    var = float((w * (v + m ** 2)).sum()) - mean ** 2
    z0 = [mean, 0.5 * math.log(var)]
    result = optimize.minimize(value_and_grad, z0, jac=True, method="BFGS", options={"gtol": 1e-12})
    result = optimize.minimize(value_and_grad, result.x, jac=True, method="BFGS", options={"gtol": 1e-12})
    mu, sigma = float(result.x[0]), math.exp(float(result.x[1]))
    return [mu, sigma], float(result.fun)


# ----------------------------------------------------------------------------- local convergence

def convergence_jacobian(name, params, toy):
    """Jacobian of v = (-grad_theta L, +grad_omega L) at the equilibrium, by autograd of the
    exact objective L = E_p[g_data(r)] - E_q[g_model(r)] (D8). Expectations under the
    Gaussians p = N(mu, sigma^2) and q = N(m, s^2) use Gauss-Hermite nodes (reparametrised
    x = m + s u, so the theta-dependence of q is differentiated pathwise)."""
    import numpy as np

    if toy.get("family") != "gaussian_1d":
        raise NotImplementedError(f"toy family {toy.get('family')!r}")
    maps = divergence_maps(name, params)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    u, w = _t(nodes), _t(weights / weights.sum())
    mu, sigma = float(toy["mu"]), float(toy["sigma"])

    def objective(theta, omega):
        def r(x):
            energy = 0.5 * ((x - theta[0]) / theta[1]) ** 2
            critic = omega[0] + omega[1] * x + omega[2] * x ** 2
            return critic + energy

        x_p = mu + sigma * u
        x_q = theta[0] + theta[1] * u
        return (w * maps["g_data"](r(x_p))).sum() - (w * maps["g_model"](r(x_q))).sum()

    def vector_field(z):
        theta, omega = z[:2], z[2:]
        g_theta, g_omega = torch.autograd.grad(objective(theta, omega), (theta, omega), create_graph=True)
        return torch.cat([-g_theta, g_omega])

    def field_of(z):
        return vector_field(z if z.requires_grad else z.requires_grad_(True))

    precision = 1.0 / sigma ** 2
    z_star = _t([mu, sigma, -0.5 * mu * mu * precision, mu * precision, -0.5 * precision])
    J = torch.autograd.functional.jacobian(field_of, z_star)
    eig = torch.linalg.eigvals(J)
    eta_star = float(torch.min(2.0 * eig.real.abs() / eig.abs() ** 2))
    return J.detach().numpy(), torch.stack([eig.real, eig.imag], dim=1).numpy(), eta_star


# ----------------------------------------------------------------------------- fixed-dtype objects

PROTOCOL_FUNCTIONS = ("divergence_map", "gaussian_f_divergence", "mlp_energy", "mlp_grad_x",
                      "mlp_grad_params", "febm_loss_gradients", "ula_trajectory",
                      "decoupled_langevin_trajectory", "exact_optimum_1d", "convergence_jacobian",
                      "febm_energy_weights", "febm_critic_weights", "febm_loss_values", "ula_step",
                      "decoupled_langevin_step")


class TorchFEBM:
    """The functions of this module with a fixed dtype: each call runs the module function
    with ``DTYPE`` set to ``dtype`` (and restores it), so ``adapter_float64`` and
    ``adapter_float32`` can be checked in one process. Not thread-safe (neither is the
    checker's call sequence meant to be)."""

    def __init__(self, dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")
        self.dtype = dtype
        for name in PROTOCOL_FUNCTIONS:
            setattr(self, name, self._bind(globals()[name]))

    def __repr__(self) -> str:
        return f"TorchFEBM({self.dtype})"

    def _bind(self, fn):
        @functools.wraps(fn)
        def call(*args):
            global DTYPE
            saved, DTYPE = DTYPE, self.dtype
            try:
                return fn(*args)
            finally:
                DTYPE = saved
        return call


adapter_float64 = TorchFEBM(torch.float64)
adapter_float32 = TorchFEBM(torch.float32)
