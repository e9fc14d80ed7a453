"""Gradient checks of the energy models (febm_ref.models.energies): hand-derived derivatives
against complex-step (analytic activations) or central finite differences (ELU).

Each check reports the worst relative error over ``grad_x``, per-sample ``grad_params``
(``dE`` of D9/D13) and the fused ``weighted_grad_params``, and, for MLPs, the largest
difference between the Numba kernels and their NumPy twins.

* complex step: ``dE/dz_k = Im E(z + i h e_k) / h`` with ``h = 1e-30`` (no cancellation),
  every coordinate; error ``max_i ||a_i - b_i|| / ||b_i||``; tolerance 1e-12.
* central differences along random unit directions, ``h = 1e-5``; error
  ``|fd - g.v| / ||g||``; tolerance 1e-7.
"""

from __future__ import annotations

import numpy as np

from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy, QuadraticEnergy
from febm_ref.verification.registry import Measurement, register

CS_H = 1e-30
CS_TOL = 1e-12
FD_H = 1e-5
FD_TOL = 1e-7
BACKEND_TOL = 1e-12


def _rel_rows(a, b) -> float:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))


def complex_step_errors(model, x, w) -> tuple:
    """Relative errors ``(grad_x, grad_params, weighted_grad_params)`` of the analytic
    gradients against the complex step (every coordinate; ``max_i ||a_i - b_i|| / ||b_i||``)."""
    theta = model.params.astype(complex)
    xc = x.astype(complex)
    cs_x = np.stack([model.energy_complex(xc + 1j * CS_H * e, theta).imag / CS_H
                     for e in np.eye(model.dim)], axis=1)
    cs_p = np.stack([model.energy_complex(xc, theta + 1j * CS_H * e).imag / CS_H
                     for e in np.eye(model.n_params)], axis=1)
    return (_rel_rows(model.grad_x(x), cs_x), _rel_rows(model.grad_params(x), cs_p),
            _rel_rows(model.weighted_grad_params(x, w), w @ cs_p))


def complex_step_error(model, x, w) -> float:
    """Worst relative error of the three analytic gradients against the complex step."""
    return max(complex_step_errors(model, x, w))


def finite_difference_error(model, x, w, rng, n_directions: int) -> float:
    """Worst relative error of the three gradients against central differences."""
    g_x, g_p, g_w = model.grad_x(x), model.grad_params(x), model.weighted_grad_params(x, w)
    theta = model.params
    worst = 0.0
    for _ in range(n_directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        u = rng.standard_normal(model.n_params)
        u /= np.linalg.norm(u)
        fd_x = (model.energy_complex(x + FD_H * v, theta)
                - model.energy_complex(x - FD_H * v, theta)) / (2 * FD_H)
        e_plus, e_minus = model.energy_complex(x, theta + FD_H * u), model.energy_complex(x, theta - FD_H * u)
        fd_p = (e_plus - e_minus) / (2 * FD_H)
        fd_w = (w @ e_plus - w @ e_minus) / (2 * FD_H)
        worst = max(worst,
                    float(np.max(np.abs(fd_x - np.sum(g_x * v, axis=1)) / np.linalg.norm(g_x, axis=1))),
                    float(np.max(np.abs(fd_p - g_p @ u) / np.linalg.norm(g_p, axis=1))),
                    abs(fd_w - g_w @ u) / float(np.linalg.norm(g_w)))
    return worst


def _backend_difference(model, x, w) -> float:
    twin = model.with_backend("numpy")
    diffs = [(model.energy(x), twin.energy(x)), (model.grad_x(x), twin.grad_x(x)),
             (model.grad_params(x), twin.grad_params(x)),
             (model.weighted_grad_params(x, w), twin.weighted_grad_params(x, w))]
    return max(float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b)))) for a, b in diffs)


@register("gradients.gaussian1d", group="gradients",
          description="1-D Gaussian energy (mu, sigma) and (mu, log sigma): gradients vs complex step")
def check_gaussian1d(quick: bool) -> Measurement:
    rng = np.random.default_rng(101)
    n = 16 if quick else 256
    worst = {}
    for log_sigma in (False, True):
        for _ in range(3 if quick else 20):
            model = GaussianEnergy1D.random_init(rng, log_sigma=log_sigma)
            x = model.mu + 3 * model.sigma * rng.standard_normal((n, 1))
            key = "log_sigma" if log_sigma else "sigma"
            worst[key] = max(worst.get(key, 0.0), complex_step_error(model, x, rng.standard_normal(n)))
    return Measurement(max(worst.values()), CS_TOL, details={"worst_by_parametrisation": worst})


@register("gradients.quadratic", group="gradients",
          description="d-dim quadratic energy 0.5|L^T(x-m)|^2: gradients vs complex step")
def check_quadratic(quick: bool) -> Measurement:
    rng = np.random.default_rng(102)
    dims = (1, 2, 4) if quick else (1, 2, 3, 5, 8)
    n = 16 if quick else 128
    worst = {}
    for d in dims:
        model = QuadraticEnergy.random_init(rng, d)
        x = model.sample(rng, n)
        worst[f"d={d}"] = complex_step_error(model, x, rng.standard_normal(n))
    return Measurement(max(worst.values()), CS_TOL, details={"worst_by_dim": worst})


def _mlp_check(activation: str, quick: bool) -> Measurement:
    rng = np.random.default_rng(103)
    archs = [(1, (64, 64)), (2, (16, 8))] if quick else [(1, (64, 64)), (2, (64, 64)), (2, (16, 8, 4)),
                                                          (3, (32,)), (4, (8, 8, 8))]
    n = 8 if quick else 64
    holomorphic = activation != "elu"
    errors, backend = {}, 0.0
    for dim, hidden in archs:
        model = MLPEnergy.random_init(rng, dim, hidden, activation, bias_scale=0.5)
        x = 1.5 * rng.standard_normal((n, dim))
        w = rng.standard_normal(n)
        key = "-".join(map(str, (dim, *hidden, 1)))
        if holomorphic:
            errors[key] = complex_step_error(model, x, w)
        else:
            errors[key] = finite_difference_error(model, x, w, rng, 4 if quick else 16)
        backend = max(backend, _backend_difference(model, x, w))
    tolerance = CS_TOL if holomorphic else FD_TOL
    error = max(errors.values())
    return Measurement(error, tolerance,
                       details={"method": "complex step" if holomorphic else "central differences",
                                "worst_by_architecture": errors,
                                "numba_vs_numpy_max_rel_diff": backend,
                                "numba_vs_numpy_tolerance": BACKEND_TOL},
                       passed=bool(error <= tolerance and backend <= BACKEND_TOL))


for _act in ("tanh", "softplus", "silu", "elu"):
    register(f"gradients.mlp_{_act}", group="gradients",
             description=f"MLP energy ({_act}): gradients vs "
                         f"{'complex step' if _act != 'elu' else 'finite differences'}, Numba vs NumPy")(
        lambda quick, _a=_act: _mlp_check(_a, quick))
