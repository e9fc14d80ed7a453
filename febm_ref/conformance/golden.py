"""Writer of the golden reference set (``febm-ref golden``), see :mod:`.schema` for the format.

Every section is built by a function ``build_<section>(rng) -> Section`` that draws its
inputs from its own random stream and computes the expected outputs with the reference
modules of this package (nothing is recomputed here: the catalogue comes from
:mod:`febm_ref.divergences`, Gaussian values from :mod:`febm_ref.gaussians`, MLP values
from :class:`febm_ref.models.energies.MLPEnergy`, ...). A section whose reference module is not
part of this version is omitted and listed under ``"omitted"`` in the manifest.

The output is byte-for-byte reproducible for a given febm-ref version, seed and platform:
no timestamps, stable key order, NPZ entries with a fixed date (:mod:`._files`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from febm_ref import __version__
from febm_ref.conformance import error_bounds, schema
from febm_ref.conformance._files import json_bytes, npz_bytes, write_file
from febm_ref.conformance.adapter import PROTOCOL
from febm_ref.conformance.schema import TOLERANCES
from febm_ref.conformance.tolerance import K_FN, SAFETY

__all__ = ["Section", "write_golden", "SECTION_BUILDERS", "section_builders", "divergence_key",
           "CATALOGUE_ALPHAS"]

CATALOGUE_ALPHAS = (-1.0, -0.5, 0.0, 0.5, 0.9, 1.0, 2.0)
"""Alpha values at which the alpha family appears in every section."""

U_GRID = (1e-12, 1e-6, 1e-3, 0.1, 0.5, 1.0 - 1e-6, 1.0, 1.0 + 1e-6, 2.0, 10.0, 1e3, 1e6, 1e12)
CONJUGATE_U_GRID = (1e-3, 0.01, 0.1, 0.5, 0.9, 1.0 - 1e-6, 1.0, 1.0 + 1e-6, 1.1, 2.0, 10.0, 100.0, 1e3)
S_GRID = (-700.0, -300.0, -50.0, -25.0, -10.0, -5.5, -1.0, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.5, 1.0,
          3.0, 5.5, 10.0, 20.5, 25.0, 50.0, 300.0, 700.0)
"""s-grid of the D7 maps: |s| = 5.5 and 10 lie beyond the published clipping ``clip(s, -5, 5)``;
s = 20.5 and 25 lie beyond torch's thresholded ``softplus`` (returns s for s > 20, an error
e^-s that the float64 tolerance of the Jensen-Shannon g_model sees at 20.5)."""

_MAP_DERIVATIVE = {"f": "f_prime", "f_prime": "f_double_prime", "g_data": "g_data_prime",
                   "g_model": "g_model_prime"}
"""Quantity -> the catalogue map that is its exact derivative (others: finite differences)."""


@dataclass
class Section:
    """The content of one section: its JSON metadata/cases and its NPZ arrays."""

    name: str
    description: str
    cases: list = field(default_factory=list)
    arrays: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def add_array(self, key: str, value) -> dict:
        """Store ``value`` under ``key`` (unique) and return the reference ``{"array": key}``."""
        if key in self.arrays:
            raise ValueError(f"duplicate golden array key {key!r} in section {self.name}")
        self.arrays[key] = np.ascontiguousarray(value)
        return {"array": key}

    def add_case(self, case_id: str, quantity: str, function: str, args: dict, expected,
                 *, output: Optional[int] = None, tolerance: Optional[str] = None,
                 match: Optional[str] = None, scale=None, order: Optional[float] = None,
                 limit: Optional[float] = None) -> None:
        """Append one case; ``args`` must follow the protocol order of ``function``.

        ``scale`` is the first-order rounding-error scale of ``expected`` (same shape, units
        of the unit roundoff; :mod:`.error_bounds`), ``order`` its power of ``u`` (default 1),
        ``limit`` the allowed error beyond which an element is not compared
        (:mod:`.tolerance`)."""
        spec = PROTOCOL[function]
        if tuple(args) != spec.args:
            raise ValueError(f"case {case_id}: arguments {tuple(args)} do not match the protocol "
                             f"{spec.signature()}")
        tol_key = tolerance or quantity
        if tol_key not in TOLERANCES[self.name]:
            raise ValueError(f"case {case_id}: no tolerance {tol_key!r} in section {self.name}")
        if not isinstance(expected, dict):
            value = np.asarray(expected, dtype=np.float64)
            if value.ndim == 0:
                expected = {"value": float(value)}
            else:
                expected = self.add_array(f"{case_id}/expected", value)
        ref = self.arrays[expected["array"]] if "array" in expected else np.asarray(expected["value"])
        if np.any(np.isnan(ref)):
            raise ValueError(f"case {case_id}: the expected value contains NaN")
        case = {"id": case_id, "quantity": quantity, "tolerance": tol_key, "function": function,
                "args": args, "output": output, "expected": expected}
        if scale is not None:
            case["scale"] = self._scale_ref(case_id, scale, ref)
        if order is not None:
            case["order"] = float(order)
        if limit is not None:
            case["limit"] = float(limit)
        if match is not None:
            if match != "unordered_rows":
                raise ValueError(f"unknown match mode {match!r}")
            case["match"] = match
        self.cases.append(case)


    def _scale_ref(self, case_id: str, scale, ref) -> dict:
        value = np.broadcast_to(np.asarray(scale, dtype=np.float64), np.shape(ref))
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError(f"case {case_id}: the rounding-error scale must be finite and >= 0")
        if value.ndim == 0:
            return {"value": float(value)}
        return self.add_array(f"{case_id}/scale", np.array(value))


def divergence_key(div) -> str:
    """``kl``, ``alpha(0.5)``: the catalogue label, used in case ids and array keys."""
    return div.label


def _divergences():
    from febm_ref.divergences import all_divergences

    return all_divergences(alphas=CATALOGUE_ALPHAS)


# --------------------------------------------------------------------------- catalogue

def build_catalogue(rng: np.random.Generator) -> Section:
    """f, f', f'', f* and the four D7 maps of every divergence on fixed grids (no randomness)."""
    section = Section("catalogue",
                      "Element-wise maps of every catalogue divergence (D2-D7): f, f', f'' on a "
                      "u-grid spanning 1e-12..1e12, f* on t = f'(u) for u in 1e-3..1e3, and "
                      "g_data, g_model, g_data', g_model' on an s-grid including |s| = 700 "
                      "(values that overflow are +-inf and must be returned as such).")
    u = section.add_array("u", np.array(U_GRID))
    s = section.add_array("s", np.array(S_GRID))
    section.metadata["grids"] = {"u": list(U_GRID), "s": list(S_GRID),
                                 "conjugate_u": list(CONJUGATE_U_GRID)}
    for div in _divergences():
        key = divergence_key(div)
        t_values = div.f_prime(np.array(CONJUGATE_U_GRID))
        t = section.add_array(f"{key}/t", t_values)
        inputs = {"f": (u, U_GRID), "f_prime": (u, U_GRID), "f_double_prime": (u, U_GRID),
                  "conjugate": (t, t_values), "g_data": (s, S_GRID), "g_model": (s, S_GRID),
                  "g_data_prime": (s, S_GRID), "g_model_prime": (s, S_GRID)}
        for quantity, (ref, values) in inputs.items():
            x = np.asarray(values, dtype=np.float64)
            expected = getattr(div, quantity)(x)
            if quantity == "conjugate":  # (f*)'(f'(u)) = u
                derivative = np.array(CONJUGATE_U_GRID)
            elif quantity in _MAP_DERIVATIVE:
                derivative = getattr(div, _MAP_DERIVATIVE[quantity])(x)
            else:
                derivative = None
            scale = error_bounds.map_scale(getattr(div, quantity), x, expected, derivative,
                                           powers=quantity in ("f", "f_prime", "f_double_prime"),
                                           offset=0.0 if quantity == "f_double_prime" else 1.0,
                                           linear_terms=quantity in ("g_data", "g_model"))
            # alpha held in the implementation's precision (at fixed x: x is its own input)
            scale = scale + error_bounds.alpha_rounding_scale(div, lambda d, q=quantity, x=x: getattr(d, q)(x))
            section.add_case(f"{key}/{quantity}", quantity, "divergence_map",
                             {"name": div.name, "params": div.params, "quantity": quantity, "x": ref},
                             section.add_array(f"{key}/{quantity}", expected), scale=scale)
    return section


# --------------------------------------------------------------------------- gaussians

def _random_rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _gaussian_pair(rng, d):
    """``(m_p, S_p, m_q, S_q)`` with eigenvalues of S_q in [0.5, 2] and generalised eigenvalues
    of (S_p, S_q) in [0.6, 1.6]: every power integral of the catalogue is finite and far from
    its divergence boundary (ratio 1/2 for Neyman, 2 for Pearson)."""
    V = _random_rotation(rng, d)
    S_q = (V * rng.uniform(0.5, 2.0, d)) @ V.T
    L_q = np.linalg.cholesky(S_q)
    W = _random_rotation(rng, d)
    S_p = L_q @ ((W * rng.uniform(0.6, 1.6, d)) @ W.T) @ L_q.T
    S_p, S_q = 0.5 * (S_p + S_p.T), 0.5 * (S_q + S_q.T)
    return 0.5 * rng.standard_normal(d), S_p, 0.5 * rng.standard_normal(d), S_q


def _input_sensitivity(fn, inputs) -> float:
    """``sum_k |d fn / d x_k| |x_k|`` over every input entry (central differences with the
    relative step 1e-6; symmetric matrices are perturbed symmetrically, since rounding a
    symmetric matrix entry-wise keeps it symmetric). The first-order effect of rounding the
    inputs, in units of ``u``."""
    total = 0.0
    for index, x in enumerate(inputs):
        symmetric = x.ndim == 2
        for pos in zip(*np.triu_indices(x.shape[0])) if symmetric else ((i,) for i in range(x.shape[0])):
            if x[pos] == 0.0:
                continue
            h = 1e-6 * abs(x[pos])
            values = []
            for sign in (1.0, -1.0):
                y = [v.copy() for v in inputs]
                y[index][pos] += sign * h
                if symmetric:
                    y[index][pos[::-1]] = y[index][pos]
                values.append(fn(*y))
            total += abs(values[0] - values[1]) / (2 * h) * abs(x[pos])
    return total


QUADRATURE_DEPTH = 64
"""Stands for the ``(m - 1)`` of a sum of ``m`` terms where ``m`` is the implementation's own
choice (quadrature points): quadrature sums are assumed pairwise (numpy, torch, scipy),
depth ``log2 m <= 64``."""


def _gaussian_scale(div, value, m_p, S_p, m_q, S_q, closed_form: bool) -> float:
    """Scale of ``D_f`` between Gaussians: ``(d + 2) kappa_in + kappa_alpha + K_FN d (1 + |D|) w``.

    ``kappa_in`` (:func:`_input_sensitivity`) is the input rounding, ``kappa_alpha``
    (:func:`.error_bounds.alpha_rounding_scale`) the rounding of alpha; a Cholesky / triangular
    solve is backward stable with a relative backward error ``(d + 1) u`` per entry, i.e.
    another ``(d + 1) kappa_in``; the closed forms add O(d) terms (trace, Mahalanobis,
    log-determinants, ``-d``) that cancel to ``D``: ``K_FN d (1 + |D|)``, times
    ``w = max(1, 1/|a(a - 1)|)`` for ``(I_a - 1)/(a(a - 1))``. Jensen-Shannon (quadrature,
    no closed form): ``QUADRATURE_DEPTH (d + 2) K_FN (1 + |D|)``."""
    from febm_ref.conformance.tolerance import K_FN
    from febm_ref.gaussians import f_divergence

    d = m_p.shape[0]
    if not np.isfinite(value):
        return 0.0
    if not closed_form:
        return QUADRATURE_DEPTH * (d + 2) * K_FN * (1.0 + abs(value))
    a = div.params.get("alpha")
    w = 1.0 if a is None or a in (0.0, 1.0) else max(1.0, 1.0 / abs(a * (a - 1.0)))
    kappa = _input_sensitivity(lambda *xs: f_divergence(div, *xs), [m_p, S_p, m_q, S_q])
    kappa_alpha = float(error_bounds.alpha_rounding_scale(div, lambda d: f_divergence(d, m_p, S_p, m_q, S_q)))
    return (d + 2) * kappa + kappa_alpha + K_FN * d * (1.0 + abs(value)) * w


def build_gaussians(rng: np.random.Generator) -> Section:
    """Exact D_f between Gaussian pairs in 1, 2 and 5 dimensions (docs/theory.md section 3)."""
    from febm_ref.gaussians import (
        f_divergence,
        f_divergence_quadrature_gaussians,
        has_closed_form,
    )

    section = Section("gaussians",
                      "D_f(P||Q) for Gaussian pairs P = N(mean_p, cov_p), Q = N(mean_q, cov_q) in "
                      "1, 2 and 5 dimensions: closed forms for every divergence except Jensen-"
                      "Shannon, which is given by adaptive quadrature in 1-D and 2-D only. Pair "
                      "'d1_divergent' has cov_p = 3 cov_q, where the Pearson and alpha(2) "
                      "integrals diverge (+inf).")
    pairs = []
    for d in (1, 2, 5):
        for index in range(2):
            pairs.append((f"d{d}_{index}", _gaussian_pair(rng, d)))
    pairs.append(("d1_divergent", (np.array([0.3]), np.array([[3.0]]), np.array([-0.2]), np.array([[1.0]]))))
    quadrature_errors = {}
    for pair_id, (m_p, S_p, m_q, S_q) in pairs:
        refs = {"mean_p": section.add_array(f"{pair_id}/mean_p", m_p),
                "cov_p": section.add_array(f"{pair_id}/cov_p", S_p),
                "mean_q": section.add_array(f"{pair_id}/mean_q", m_q),
                "cov_q": section.add_array(f"{pair_id}/cov_q", S_q)}
        for div in _divergences():
            key = divergence_key(div)
            if has_closed_form(div):
                value = f_divergence(div, m_p, S_p, m_q, S_q)
                tolerance = "closed_form"
            elif m_p.shape[0] <= 2:
                estimate = f_divergence_quadrature_gaussians(div, m_p, S_p, m_q, S_q)
                value = estimate.value
                quadrature_errors[f"{pair_id}/{key}"] = estimate.error
                tolerance = "jensen_shannon"
            else:
                continue  # no exact reference for Jensen-Shannon in 5-D
            scale = _gaussian_scale(div, value, m_p, S_p, m_q, S_q, tolerance == "closed_form")
            section.add_case(f"{pair_id}/{key}", key, "gaussian_f_divergence",
                             {"name": div.name, "params": div.params, **refs}, value,
                             tolerance=tolerance, scale=scale)
    section.metadata["quadrature_error_estimates"] = quadrature_errors
    return section


# --------------------------------------------------------------------------- MLP

MLP_SIZES = (3, 6, 5, 1)


def _beyond_softplus_threshold(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` if some first-layer pre-activation ``z = x W_0 + b_0`` of the MLP exceeds 20
    (torch's softplus threshold), else the point ``w (25 - b_j) / |w|^2`` along the column
    ``w = W_0[:, j]`` of largest norm, where ``z_j = 25``: for some seeds the fixed point
    (18, -22.5, 15) points away from every unit (seed 0 keeps it)."""
    n_w = MLP_SIZES[0] * MLP_SIZES[1]
    W = params[:n_w].reshape(MLP_SIZES[0], MLP_SIZES[1])
    b = params[n_w:n_w + MLP_SIZES[1]]
    if np.max(x @ W + b) > 20.0:
        return x
    j = int(np.argmax(np.sum(W * W, axis=0)))
    return W[:, j] * (25.0 - b[j]) / float(W[:, j] @ W[:, j])


def build_mlp(rng: np.random.Generator) -> Section:
    """Energies, input gradients and per-sample parameter gradients of one MLP per activation."""
    from febm_ref.models.energies import MLPEnergy
    from febm_ref.models.mlp import ACTIVATION_CODES

    section = Section("mlp",
                      "MLP energies d=3 -> 6 -> 5 -> 1 (flat layout W_0, b_0, ..., row-major W_l "
                      "of shape (fan_in, fan_out), output bias last), one per activation, at 9 "
                      "inputs (the last two large: saturating the activations, and driving "
                      "softplus pre-activations beyond 20).")
    section.metadata["sizes"] = list(MLP_SIZES)
    max_preactivation = {}
    for activation in ACTIVATION_CODES:
        model = MLPEnergy.random_init(rng, MLP_SIZES[0], MLP_SIZES[1:-1], activation, bias_scale=0.5)
        x = 1.5 * rng.standard_normal((9, MLP_SIZES[0]))
        x[-2] = np.array([6.0, -7.5, 5.0])
        x[-1] = np.array([18.0, -22.5, 15.0])  # softplus pre-activations beyond 20
        if activation == "softplus":
            x[-1] = _beyond_softplus_threshold(model.params, x[-1])
        energy, grad_x = model.energy_and_grad_x(x)
        grad_params = model.grad_params(x)
        bounds = error_bounds.MLPBounds(model.params, MLP_SIZES, activation, x)
        n_w = MLP_SIZES[0] * MLP_SIZES[1]
        z_first = x @ model.params[:n_w].reshape(MLP_SIZES[0], MLP_SIZES[1]) + model.params[n_w:n_w + MLP_SIZES[1]]
        max_preactivation[activation] = float(np.max(z_first))
        args = {"params": section.add_array(f"{activation}/params", model.params),
                "sizes": list(MLP_SIZES), "activation": activation,
                "x": section.add_array(f"{activation}/x", x)}
        section.add_case(f"{activation}/energy", "energy", "mlp_energy", args,
                         section.add_array(f"{activation}/energy", energy), scale=bounds.E_energy)
        section.add_case(f"{activation}/grad_x", "grad_x", "mlp_grad_x", args,
                         section.add_array(f"{activation}/grad_x", grad_x), scale=bounds.E_grad_x)
        section.add_case(f"{activation}/grad_params", "grad_params", "mlp_grad_params", args,
                         section.add_array(f"{activation}/grad_params", grad_params),
                         scale=bounds.E_grad_params)
    if max_preactivation["softplus"] <= 20.0:
        raise RuntimeError("the MLP golden inputs do not reach softplus pre-activations above 20")
    section.metadata["max_first_layer_preactivation"] = max_preactivation
    return section


# --------------------------------------------------------------------------- objective

OBJECTIVE_ENERGY_SIZES = (2, 8, 6, 1)
OBJECTIVE_CRITIC_SIZES = (2, 10, 1)
OBJECTIVE_L2_WEIGHTS = (0.0, 1.0)


def _mlp_spec(section: Section, key: str, model) -> dict:
    return {"params": section.add_array(f"{key}/params", model.params),
            "sizes": [int(v) for v in model.sizes], "activation": model.activation}


def build_objective(rng: np.random.Generator) -> Section:
    """D13 minibatch gradients (with and without the D14 l2 terms) for every divergence."""
    from febm_ref.models.energies import MLPEnergy
    from febm_ref.objective import febm_gradient

    section = Section("objective",
                      "The f-EBM minibatch estimator D13 at fixed positives (16), negatives (12), "
                      "energy E (2-8-6-1 tanh MLP) and critic H (2-10-1 softplus MLP), r = H + E, "
                      "for every divergence, with l2 weight 0 and 1 (D14). energy_grad is the "
                      "gradient of the energy's loss L + lam(<E+^2> + <E-^2>); critic_grad is the "
                      "gradient of the critic's loss -L + lam(<H+^2> + <H-^2>) (both descended). "
                      "The covariance term is the plain batch estimate <g dE> - <g><dE>.")
    energy = MLPEnergy.random_init(rng, 2, OBJECTIVE_ENERGY_SIZES[1:-1], "tanh", bias_scale=0.3)
    critic = MLPEnergy.random_init(rng, 2, OBJECTIVE_CRITIC_SIZES[1:-1], "softplus", bias_scale=0.3)
    x_pos = rng.standard_normal((16, 2)) + np.array([0.5, -0.3])
    x_neg = 1.3 * rng.standard_normal((12, 2))
    refs = {"energy": _mlp_spec(section, "energy", energy),
            "critic": _mlp_spec(section, "critic", critic),
            "x_pos": section.add_array("x_pos", x_pos), "x_neg": section.add_array("x_neg", x_neg)}
    r = np.concatenate([critic.energy(x_pos) + energy.energy(x_pos),
                        critic.energy(x_neg) + energy.energy(x_neg)])
    section.metadata["r_range"] = [float(r.min()), float(r.max())]
    x_all = np.concatenate([x_pos, x_neg])
    n_pos = x_pos.shape[0]
    e_b = error_bounds.MLPBounds(energy.params, OBJECTIVE_ENERGY_SIZES, "tanh", x_all)
    h_b = error_bounds.MLPBounds(critic.params, OBJECTIVE_CRITIC_SIZES, "softplus", x_all)
    split = (lambda v: (v[:n_pos], v[n_pos:]))
    for div in _divergences():
        key = divergence_key(div)
        for lam in OBJECTIVE_L2_WEIGHTS:
            result = febm_gradient(div, energy, critic, x_pos, x_neg, l2_weight=lam)
            bounds = error_bounds.estimator_weight_scales(
                div, *split(e_b.energy), *split(h_b.energy), lam, E_e=split(e_b.E_energy),
                E_h=split(h_b.E_energy))
            scales = {name: error_bounds.weighted_gradient_scale(
                np.concatenate(bounds["weights"][name]), np.concatenate(bounds[name]),
                model.grad_params, model.E_grad_params) for name, model in (("energy", e_b), ("critic", h_b))}
            suffix = "" if lam == 0.0 else "+l2"
            args = {"name": div.name, "params": div.params, "energy": refs["energy"],
                    "critic": refs["critic"], "x_pos": refs["x_pos"], "x_neg": refs["x_neg"],
                    "l2_weight": lam}
            section.add_case(f"{key}/l2={lam:g}/energy_grad", "energy_grad" + suffix,
                             "febm_loss_gradients", args, result.grad_theta, output=0,
                             tolerance="energy_grad", scale=scales["energy"])
            section.add_case(f"{key}/l2={lam:g}/critic_grad", "critic_grad" + suffix,
                             "febm_loss_gradients", args, -result.grad_omega, output=1,
                             tolerance="critic_grad", scale=scales["critic"])
    return section


# --------------------------------------------------------------------------- langevin

LANGEVIN_SIZES = (2, 8, 8, 1)
LANGEVIN_STEPS = 6
LANGEVIN_LONG_STEPS = 60
LANGEVIN_LIMIT = 1e-4
"""A trajectory element is compared only while its allowed error is below ``LANGEVIN_LIMIT
sqrt(step_size)``: a wrong drift or noise scale (the bugs this row is for) moves a step by at
least ~1e-2 sqrt(step_size), and a bound within 1e-2 of that no longer separates them from
rounding. (D16 cases use ``noise_scale`` for ``sqrt(step_size)``.) The float64 bound is
informative on every stored step (checked when the golden set is built)."""


def _hessian_x(energy, x: np.ndarray) -> np.ndarray:
    """``Hess_x E`` (n, d, d) by central differences of the exact gradient (error ~1e-10)."""
    h = 1e-5
    cols = [(energy.grad_x(x + h * e) - energy.grad_x(x - h * e)) / (2 * h) for e in np.eye(x.shape[1])]
    return np.stack(cols, axis=2)


def _informative_steps(scale: np.ndarray, limit: float) -> dict:
    """Precision -> number of leading steps whose every allowed error is below ``limit``."""
    from febm_ref.conformance.tolerance import PRECISIONS, SAFETY

    out = {}
    for name, prec in PRECISIONS.items():
        bad = np.nonzero(np.any((SAFETY * prec.unit_roundoff * scale > limit).reshape(scale.shape[0], -1), axis=1))[0]
        out[name] = int(bad[0]) if bad.size else int(scale.shape[0])
    if out["float64"] < scale.shape[0]:
        raise RuntimeError("a golden trajectory is not informative in float64 over all its steps")
    return out


def _gradient_bounds(energy, x: np.ndarray):
    bounds = error_bounds.MLPBounds(energy.params, energy.sizes, energy.activation, x)
    return bounds.grad_x, bounds.E_grad_x


def _ula_scales(energy, spec, x0, noise, eps):
    """Points and error scales of a ULA trajectory: per step
    ``E_{k+1} = |I - (eps/2) H(x_k)| E_k + (eps/2) S_grad(x_k) + local rounding``
    (:func:`error_bounds.ula_step_scale`), ``E_0 = |x0|``."""
    x, E = x0.copy(), np.abs(x0)
    points, scales = [], []
    for z in noise:
        g, E_g = _gradient_bounds(energy, x)
        M = np.abs(np.eye(x.shape[1])[None] - 0.5 * eps * _hessian_x(energy, x))
        E_prop = np.einsum("nij,nj->ni", M, E)
        E = error_bounds.ula_step_scale(x, g, z, eps, E_x=E_prop, E_grad=E_g)
        x = x - 0.5 * eps * g + np.sqrt(eps) * z
        points.append(x)
        scales.append(E)
    return np.stack(points), np.stack(scales)


def _d16_scales(energy, spec, x0, noise, lam, sigma, clip, box):
    """Error scales of a D16 trajectory: the gradient at the noised point carries
    ``|H(x')| E_{x'} + S_grad(x')`` (:func:`error_bounds.decoupled_step_scale`)."""
    x, E = x0.copy(), np.abs(x0)
    scales = []
    for z in noise:
        xn = x + sigma * z
        g, S_g = _gradient_bounds(energy, xn)
        E_xn = E + 3 * np.abs(sigma * z) + np.abs(xn)
        E_g = np.einsum("nij,nj->ni", np.abs(_hessian_x(energy, xn)), E_xn) + S_g
        x, E, _, _ = error_bounds.decoupled_step_scale(x, g, z, lam, sigma, clip, box, E_x=E, E_grad=E_g)
        scales.append(E)
    return np.stack(scales)


def build_langevin(rng: np.random.Generator) -> Section:
    """ULA (D15) and decoupled Langevin (D16) trajectories with pre-drawn noise."""
    from febm_ref.models.energies import MLPEnergy
    from febm_ref.samplers import decoupled_langevin, ula

    section = Section("langevin",
                      f"{LANGEVIN_STEPS} steps of ULA (D15) and of the decoupled variant (D16, "
                      "without and with gradient value-clipping and a box) on a 2-8-8-1 tanh MLP "
                      "energy from fixed initial points with pre-drawn standard normal noise "
                      "(K, n, d); the expected output is the (K, n, d) array of points after each "
                      "step.")
    energy = MLPEnergy.random_init(rng, 2, LANGEVIN_SIZES[1:-1], "tanh", bias_scale=0.3)
    x0 = 1.2 * rng.standard_normal((5, 2))
    x0[-1] = [2.3, -2.2]  # starts outside the box of the clipped D16 case
    noise = rng.standard_normal((LANGEVIN_STEPS,) + x0.shape)
    spec = _mlp_spec(section, "energy", energy)
    x0_ref, noise_ref = section.add_array("x0", x0), section.add_array("noise", noise)

    eps = 0.05
    state = ula.init(x0, energy)
    points = []
    for k in range(LANGEVIN_STEPS):
        state, _ = ula.step(noise[k], state, energy, eps)
        points.append(state.x)
    _, scale = _ula_scales(energy, spec, x0, noise, eps)
    section.add_case("ula", "ula", "ula_trajectory",
                     {"energy": spec, "x0": x0_ref, "noise": noise_ref, "step_size": eps},
                     np.stack(points), tolerance="trajectory", scale=scale,
                     limit=LANGEVIN_LIMIT * np.sqrt(eps))
    # a long chain, compared only on the steps where the precision's bound is informative
    long_noise = rng.standard_normal((LANGEVIN_LONG_STEPS,) + x0.shape)
    long_eps = 0.2
    state = ula.init(x0, energy)
    points = []
    for k in range(LANGEVIN_LONG_STEPS):
        state, _ = ula.step(long_noise[k], state, energy, long_eps)
        points.append(state.x)
    _, long_scale = _ula_scales(energy, spec, x0, long_noise, long_eps)
    section.add_case("ula_long", "ula_long", "ula_trajectory",
                     {"energy": spec, "x0": x0_ref, "noise": section.add_array("long_noise", long_noise),
                      "step_size": long_eps},
                     np.stack(points), tolerance="trajectory", scale=long_scale,
                     limit=LANGEVIN_LIMIT * np.sqrt(long_eps))
    section.metadata["informative_steps"] = _informative_steps(long_scale, LANGEVIN_LIMIT * np.sqrt(long_eps))

    grad_scale = float(np.median(np.abs(energy.grad_x(x0))))
    settings = (("d16", 0.02, 0.1, None, None),
                ("d16_clipped", 0.05, 0.2, round(0.5 * grad_scale, 3), (-2.0, 2.0)))
    fractions = {}
    for case_id, lam, sigma, clip, box in settings:
        state = decoupled_langevin.init(x0)
        points, frac_g, frac_b = [], [], []
        for k in range(LANGEVIN_STEPS):
            state, info = decoupled_langevin.step(noise[k], state, energy, lam, sigma,
                                                  grad_clip=clip, box=box)
            points.append(state.x)
            frac_g.append(info.fraction_grad_clipped)
            frac_b.append(info.fraction_box_clipped)
        if clip is not None and not (0 < np.mean(frac_g) < 1 and np.max(frac_b) > 0):
            raise RuntimeError("the clipped D16 golden case does not exercise both clippings")
        fractions[case_id] = {"fraction_grad_clipped": frac_g, "fraction_box_clipped": frac_b}
        scale = _d16_scales(energy, spec, x0, noise, lam, sigma, clip, box)
        section.add_case(case_id, case_id, "decoupled_langevin_trajectory",
                         {"energy": spec, "x0": x0_ref, "noise": noise_ref, "step_size": lam,
                          "noise_scale": sigma, "grad_clip": clip,
                          "box": None if box is None else list(box)},
                         np.stack(points), tolerance="trajectory", scale=scale,
                         limit=LANGEVIN_LIMIT * sigma)
    section.metadata["clipping_activity"] = fractions
    return section


# --------------------------------------------------------------------------- optima

OPTIMA_DIVERGENCES = (("kl", {}), ("jensen_shannon", {}), ("pearson_chi2", {}))
"""A subset of the paper's 1-D table (``reference_optima.PAPER_TABLE``): each optimum costs
about 1.5 s of quadrature + Nelder-Mead, and these three cover the closed-form anchor (KL:
moment matching), the paper's headline divergence and a divergence with a finite-variance
constraint (Pearson: sigma^2 > max component variance)."""


def _optimum_scales(div, target, mu: float, sigma: float, value: float):
    """``(S_value, S_location)`` of the optimum (:mod:`.tolerance`: ``order`` 1 and 1/2).

    ``S_value = QUADRATURE_DEPTH K_FN (int q |f(p/q)| dx + |D|)``: the rounding of a quadrature
    of the integrand (its L1 norm, by a 40001-point trapezoid rule) summed pairwise. A
    minimiser located on an objective with error ``delta = u S_value`` is off by up to
    ``sqrt(2 delta / lambda_min)`` along the softest direction (``lambda_min``: the smallest
    eigenvalue of the Hessian of D in (mu, sigma), by central differences of the reference
    quadrature with step 1e-3), so ``S_location = sqrt(2 S_value / lambda_min)`` with
    ``u^(1/2)``. The input rounding of the target is O(u), negligible against ``sqrt(u)``."""
    from febm_ref.conformance.tolerance import K_FN
    from febm_ref.reference_optima import divergence_value

    x = np.linspace(mu - 30 * sigma - 10, mu + 30 * sigma + 10, 40001)
    log_q = -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    with np.errstate(all="ignore"):
        integrand = np.nan_to_num(np.abs(div.perspective(target.log_density(x), log_q)))
    l1 = float(np.sum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(x)))
    s_value = QUADRATURE_DEPTH * K_FN * (l1 + abs(value))
    h = 1e-3

    def D(a, b):
        return divergence_value(div, target, mu + a * h, sigma + b * h)

    centre = D(0, 0)
    hess = np.array([[(D(1, 0) - 2 * centre + D(-1, 0)) / h ** 2,
                      (D(1, 1) - D(1, -1) - D(-1, 1) + D(-1, -1)) / (4 * h ** 2)],
                     [0.0, (D(0, 1) - 2 * centre + D(0, -1)) / h ** 2]])
    hess[1, 0] = hess[0, 1]
    lam_min = float(np.min(np.linalg.eigvalsh(hess)))
    if not lam_min > 0:
        raise RuntimeError(f"the Hessian at the {div.label} optimum is not positive definite")
    return s_value, np.sqrt(2 * s_value / lam_min), lam_min


def build_optima(rng: np.random.Generator) -> Section:
    """argmin_{mu, sigma} D_f(P || N(mu, sigma^2)) for the paper's 1-D mixture (no randomness)."""
    from febm_ref.divergences import get_divergence
    from febm_ref.reference_optima import reference_optimum
    from febm_ref.targets import paper_mixture_1d

    target = paper_mixture_1d()
    section = Section("optima",
                      "Exact optima argmin_{mu, sigma} D_f(P || N(mu, sigma^2)) of the misspecified "
                      "1-D problem of the paper (docs/theory.md section 6), P = 0.33 N(-1, 0.0625) + "
                      "0.67 N(2, 2), by quadrature and Nelder-Mead; output 0 is (mu, sigma), output 1 "
                      "the divergence at the optimum.")
    target_json = {"weights": [float(v) for v in target.weights],
                   "means": [float(v) for v in target.means],
                   "variances": [float(v) for v in target.variances]}
    certificates = {}
    for name, params in OPTIMA_DIVERGENCES:
        div = get_divergence(name, **params)
        key = divergence_key(div)
        optimum = reference_optimum(div, target)
        s_value, s_location, lam_min = _optimum_scales(div, target, optimum.mu, optimum.sigma, optimum.value)
        certificates[key] = {"gradient_at_optimum": list(optimum.gradient),
                             "finite_variance_interval": list(optimum.variance_interval),
                             "hessian_min_eigenvalue": lam_min}
        args = {"name": div.name, "params": div.params, "target": target_json}
        section.add_case(f"{key}/optimum", "optimum", "exact_optimum_1d", args,
                         np.array([optimum.mu, optimum.sigma]), output=0, scale=s_location, order=0.5)
        section.add_case(f"{key}/value", "divergence_at_optimum", "exact_optimum_1d", args,
                         optimum.value, output=1, scale=s_value)
    section.metadata["certificates"] = certificates
    return section


# --------------------------------------------------------------------------- convergence
# (the mathematics is febm_ref.local_convergence, shared with febm_ref.verification.convergence)

CONVERGENCE_TOYS = ((0.3, 1.2), (-1.0, 0.5))
"""(mu, sigma) of the 1-D Gaussian toys: p = N(mu, sigma^2) (docs/theory.md section 5)."""


def build_convergence(rng: np.random.Generator) -> Section:
    """D17 Jacobians, eigenvalues and step-size bounds of the 1-D Gaussian toy (no randomness)."""
    from febm_ref.local_convergence import (
        fd_jacobian,
        gaussian_1d_problem,
        gaussian_closed_form_jacobian,
        relative_error,
        step_size_bound,
    )

    section = Section("convergence",
                      "Local convergence (docs/theory.md section 5, D17) of the 1-D Gaussian toy: p = "
                      "N(mu, sigma^2), energy E = 0.5((x - m)/s)^2 with theta = (m, s), critic "
                      "H = w0 + b x + c x^2 with omega = (w0, b, c), at the equilibrium q = p, "
                      "H = -E. Output 0: the Jacobian J (5x5) of v = (-grad_theta L, "
                      "+grad_omega L); output 1: its eigenvalues (rows Re, Im; any order); "
                      "output 2: eta* = min 2|Re lambda|/|lambda|^2.")
    certificates = {}
    for mu, sigma in CONVERGENCE_TOYS:
        problem = gaussian_1d_problem(mu, sigma)
        toy = {"family": "gaussian_1d", "mu": mu, "sigma": sigma}
        toy_id = f"mu={mu:g},sigma={sigma:g}"
        for index, div in enumerate(_divergences()):
            key = divergence_key(div)
            J = gaussian_closed_form_jacobian(problem, div.f_double_prime_at_one)
            eig = np.linalg.eigvals(J)
            eig_rows = np.stack([eig.real, eig.imag], axis=1)
            order = np.lexsort((eig_rows[:, 1], eig_rows[:, 0]))
            eig_rows = eig_rows[order]
            if index == 0:  # certificate: finite differences of the exact (quadrature) field
                J_fd = fd_jacobian(lambda z: problem.field(div, z), problem.z_star)
                certificates[toy_id] = {"equilibrium": problem.z_star.tolist(),
                                        "divergence": key,
                                        "fd_of_exact_field_vs_d17": relative_error(J_fd, J)}
            args = {"name": div.name, "params": div.params, "toy": toy}
            scales = convergence_scales(J, eig, order)
            section.add_case(f"{toy_id}/{key}/jacobian", "jacobian", "convergence_jacobian", args,
                             J, output=0, scale=scales[0])
            section.add_case(f"{toy_id}/{key}/eigenvalues", "eigenvalues", "convergence_jacobian",
                             args, eig_rows, output=1, match="unordered_rows", scale=scales[1])
            section.add_case(f"{toy_id}/{key}/eta_star", "step_size_bound", "convergence_jacobian",
                             args, step_size_bound(eig), output=2, scale=scales[2])
    section.metadata["certificates"] = certificates
    return section


def convergence_scales(J, eig, order):
    """Rounding-error scales (:mod:`febm_ref.conformance.tolerance`) of the D17 outputs.

    Jacobian entries are expectations computed by the implementation's own quadrature (or
    closed form) of O(1) terms: ``QUADRATURE_DEPTH K_FN (|J_ij| + max |J|)`` (the max for the
    structurally zero entries, which are sums that cancel). Eigenvalue ``k`` (first-order
    perturbation, Wilkinson): ``|d lambda_k| <= |y_k| S_J |x_k|`` with right eigenvector
    ``x_k`` and left eigenvector ``y_k`` normalised to ``y_k x_k = 1``; rows ordered as the
    golden eigenvalue rows (``order``). ``eta* = 2|a|/(a^2 + b^2)`` at the minimising
    eigenvalue ``a + ib``: ``(|d eta/da| + |d eta/db|) S_lambda``."""
    S_J = QUADRATURE_DEPTH * K_FN * (np.abs(J) + np.max(np.abs(J)))
    values, V = np.linalg.eig(J)
    W = np.linalg.inv(V)
    S_lam = np.array([float(np.abs(W[k]) @ S_J @ np.abs(V[:, k])) for k in range(V.shape[1])])
    # match np.linalg.eig's order to the eigvals order used for the golden rows
    match = [int(np.argmin(np.abs(values - lam))) for lam in eig]
    S_lam = S_lam[match]
    S_eig = np.repeat(S_lam[order][:, None], 2, axis=1)
    a, b = np.abs(eig.real), eig.imag
    m2 = a * a + b * b
    k = int(np.argmin(2 * a / m2))
    d_a = abs(2 / m2[k] - 4 * a[k] ** 2 / m2[k] ** 2)
    d_b = abs(4 * a[k] * b[k] / m2[k] ** 2)
    return S_J, S_eig, (d_a + d_b) * S_lam[k]


# --------------------------------------------------------------------------- estimator (values only)

ESTIMATOR_BATCHES = (("n1x1", 1, 1), ("n3x2", 3, 2), ("n16x12", 16, 12), ("n64x48", 64, 48),
                     ("n4096x4096", 4096, 4096))
"""(id, n+, n-) of the value batches; the 4096 batch is checked with the l2 term only. n64x48
has no extreme log ratios (|r| of a trained model): there the values L are not dominated by
e^{2|r|} terms, so their tolerance resolves small errors (a float16 cast, an offset)."""

R_EXTREMES = (-30.0, -12.0, -7.0, -5.5, 5.5, 7.0, 12.0, 20.5, 25.0, 30.0)
"""Log ratios r placed in the batches: beyond the published clipping (|r| > 5), beyond torch's
softplus threshold (r > 20, the Jensen-Shannon g_model), and up to |r| = 30, where
e^{2|r|} = 1e26 still fits float32."""


def _value_batch(rng, n_pos: int, n_neg: int):
    """``(e_pos, e_neg, h_pos, h_neg)``: energies ~ 3 N(0, 1), log ratios ~ 1.5 N(0, 1) with the
    extremes of :data:`R_EXTREMES` spread over both halves (not in the 64x48 batch), h = r - e."""
    r_pos, r_neg = 1.5 * rng.standard_normal(n_pos), 1.5 * rng.standard_normal(n_neg)
    if (n_pos, n_neg) == (1, 1):
        r_pos[:], r_neg[:] = 7.0, -5.5
    elif (n_pos, n_neg) == (3, 2):
        r_pos[:], r_neg[:] = [-12.0, 0.3, 5.5], [7.0, -1.0]
    elif (n_pos, n_neg) == (64, 48):
        pass  # moderate log ratios only
    else:
        k = min(len(R_EXTREMES), n_pos, n_neg)
        picks_pos = rng.permutation(R_EXTREMES)[:k]
        picks_neg = rng.permutation(R_EXTREMES)[:k]
        r_pos[rng.choice(n_pos, k, replace=False)] = picks_pos
        r_neg[rng.choice(n_neg, k, replace=False)] = picks_neg
    e_pos, e_neg = 3.0 * rng.standard_normal(n_pos), 3.0 * rng.standard_normal(n_neg)
    return e_pos, e_neg, r_pos - e_pos, r_neg - e_neg


def _estimator_reference(div, e_pos, e_neg, h_pos, h_neg, lam):
    """Weights and loss values from the library's estimator (:func:`febm_ref.objective.febm_terms_checked`)
    applied to the identity "model" ``E(x) = x`` (so dE/dtheta at sample i is the unit vector
    e_i and grad_theta is the weight vector itself)."""
    from febm_ref.objective import febm_objective_value, febm_terms_checked

    n_pos = e_pos.shape[0]
    energy, critic = _ValueModel(np.concatenate([e_pos, e_neg])), _ValueModel(np.concatenate([h_pos, h_neg]))
    index = np.arange(n_pos + e_neg.shape[0], dtype=np.float64)[:, None]
    result = febm_terms_checked(div, energy, critic, index, n_pos, l2_weight=lam, covariance="batch")
    w, v = result.grad_theta, -result.grad_omega
    loss = febm_objective_value(div, energy, critic, index[:n_pos], index[n_pos:])
    reg_e, reg_h = result.diagnostics["l2_energy"], result.diagnostics["l2_critic"]
    return (w[:n_pos], w[n_pos:]), (v[:n_pos], v[n_pos:]), np.array([loss, loss + lam * reg_e, -loss + lam * reg_h])


class _ValueModel:
    """A "model" whose parameters are its per-sample values: ``E(x_i) = values[int(x_i)]``,
    ``weighted_grad_params(x, w) = w`` scattered to the samples. Lets the library's estimator
    compute value-gradients (the architecture-agnostic weights) without a network."""

    dim = 1

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def energy(self, x):
        return self.values[np.asarray(x, dtype=np.int64).reshape(-1)]

    def weighted_grad_params(self, x, w):
        out = np.zeros_like(self.values)
        np.add.at(out, np.asarray(x, dtype=np.int64).reshape(-1), w)
        return out


def build_estimator(rng: np.random.Generator) -> Section:
    """Architecture-agnostic D13/D14 rows: per-sample weights and loss values from values."""
    section = Section("estimator",
                      "The f-EBM estimator (D13, D14) as a function of per-sample VALUES, for any "
                      "model: energies e_pos = E(x+), e_neg = E(x-) and critic values h_pos, h_neg "
                      "in, the per-sample weights dLoss/dE(x+_i), dLoss/dE(x-_j) of the energy's "
                      "loss and dLoss/dH of the critic's loss, and the values (L, energy loss, "
                      "critic loss) out. Batches of 1x1 to 4096x4096 samples; log ratios up to "
                      f"|r| = 30 ({', '.join(f'{v:g}' for v in R_EXTREMES)} are included).")
    r_ranges = {}
    for batch_id, n_pos, n_neg in ESTIMATOR_BATCHES:
        e_pos, e_neg, h_pos, h_neg = _value_batch(rng, n_pos, n_neg)
        r_ranges[batch_id] = [float(min(np.min(h_pos + e_pos), np.min(h_neg + e_neg))),
                              float(max(np.max(h_pos + e_pos), np.max(h_neg + e_neg)))]
        refs = {key: section.add_array(f"{batch_id}/{key}", value)
                for key, value in (("e_pos", e_pos), ("e_neg", e_neg), ("h_pos", h_pos), ("h_neg", h_neg))}
        lams = (1.0,) if n_pos > 1000 else (0.0, 1.0)
        for div in _divergences():
            key = divergence_key(div)
            for lam in lams:
                _add_estimator_cases(section, f"{batch_id}/{key}/l2={lam:g}", div, refs,
                                     (e_pos, e_neg, h_pos, h_neg), lam)
    section.metadata["r_range"] = r_ranges
    section.metadata["batches"] = [list(b) for b in ESTIMATOR_BATCHES]
    return section


def _add_estimator_cases(section: Section, prefix: str, div, refs: dict, values, lam: float) -> None:
    args = {"name": div.name, "params": div.params, **refs, "l2_weight": lam}
    weights_e, weights_h, losses = _estimator_reference(div, *values, lam)
    scales = error_bounds.estimator_weight_scales(div, *values, lam)
    loss_scales = error_bounds.loss_value_scales(div, *values, lam)
    suffix = "" if lam == 0.0 else "+l2"
    for name, function, weights in (("energy_weights", "febm_energy_weights", weights_e),
                                    ("critic_weights", "febm_critic_weights", weights_h)):
        for output, side in enumerate(("pos", "neg")):
            section.add_case(f"{prefix}/{name}/{side}", name + suffix, function, args, weights[output],
                             output=output, tolerance="weights", scale=scales[name.split("_")[0]][output])
    if lam == 0.0:
        section.add_case(f"{prefix}/objective_value", "objective_value", "febm_loss_values", args, losses[0],
                         output=0, tolerance="loss", scale=loss_scales[0])
    else:
        for output, name in ((1, "energy_loss+l2"), (2, "critic_loss+l2")):
            section.add_case(f"{prefix}/{name.split('+')[0]}", name, "febm_loss_values", args, losses[output],
                             output=output, tolerance="loss", scale=loss_scales[output])


# --------------------------------------------------------------------------- one sampler step

def build_sampler_step(rng: np.random.Generator) -> Section:
    """One ULA (D15) / D16 step from given points, gradients and noise: any energy."""
    from febm_ref.samplers import decoupled_langevin, ula

    section = Section("sampler_step",
                      "One Langevin step for ANY energy: x (64, 3), the energy gradient (given; "
                      "magnitudes 1e-3 to 1e2) and standard normal noise in, the new points out. "
                      "ULA (D15) with step sizes 0.05 and 1e-4; the decoupled step (D16), plain and "
                      "with gradient value-clipping and a box, where grad_x is the gradient at the "
                      "noised point x + noise_scale noise.")
    n, d = 64, 3
    x = 1.5 * rng.standard_normal((n, d))
    x[:4] = [[2.5, -2.4, 0.1], [-3.0, 2.2, 1.9], [1.9, 1.9, -1.95], [0.0, 0.0, 0.0]]
    grad = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-3, 2, (n, 1))
    noise = rng.standard_normal((n, d))
    refs = {"x": section.add_array("x", x), "grad_x": section.add_array("grad_x", grad),
            "noise": section.add_array("noise", noise)}
    activity = {}
    for case_id, eps in (("ula/step=0.05", 0.05), ("ula/step=1e-4", 1e-4)):
        expected, _ = ula.step(noise, ula.init(x, _GivenGradient(grad)), _GivenGradient(grad), eps)
        section.add_case(case_id, "ula_step", "ula_step", {**refs, "step_size": eps}, expected.x,
                         tolerance="step", scale=error_bounds.ula_step_scale(x, grad, noise, eps))
    clip = float(np.round(np.median(np.abs(grad)), 3))
    for case_id, lam, sigma, gclip, box in (("d16", 0.02, 0.1, None, None),
                                             ("d16_clipped", 0.05, 0.2, clip, (-2.0, 2.0))):
        state, info = decoupled_langevin.step(noise, decoupled_langevin.init(x), _GivenGradient(grad), lam, sigma,
                                              grad_clip=gclip, box=box)
        y, scale, _, _ = error_bounds.decoupled_step_scale(x, grad, noise, lam, sigma, gclip, box)
        if not np.array_equal(y, state.x):
            raise RuntimeError("the D16 step of the error bound differs from the sampler's")
        activity[case_id] = {"fraction_grad_clipped": info.fraction_grad_clipped,
                             "fraction_box_clipped": info.fraction_box_clipped}
        section.add_case(case_id, "d16_step", "decoupled_langevin_step",
                         {**refs, "step_size": lam, "noise_scale": sigma, "grad_clip": gclip,
                          "box": None if box is None else list(box)},
                         state.x, tolerance="step", scale=scale)
    section.metadata["clipping_activity"] = activity
    return section


class _GivenGradient:
    """An "energy" whose gradient is a given array (for one sampler step at fixed points):
    the sampler's own step functions compute the golden values."""

    def __init__(self, grad):
        self.grad = np.asarray(grad, dtype=np.float64)
        self.dim = self.grad.shape[1]

    def grad_x(self, x):
        return self.grad

    def energy(self, x):
        return np.zeros(x.shape[0])

    def energy_and_grad_x(self, x):
        return np.zeros(x.shape[0]), self.grad


# --------------------------------------------------------------------------- writer

SECTION_BUILDERS: dict[str, Callable[[np.random.Generator], Section]] = {
    "catalogue": build_catalogue,
    "gaussians": build_gaussians,
    "mlp": build_mlp,
    "objective": build_objective,
    "langevin": build_langevin,
    "optima": build_optima,
    "convergence": build_convergence,
    "estimator": build_estimator,
    "sampler_step": build_sampler_step,
}
"""Section name -> builder, in schema order; sections of :data:`schema.SECTIONS` that are
missing here are reported as omitted."""


def section_builders() -> dict:
    """All golden sections this installation can build (a copy of :data:`SECTION_BUILDERS`;
    since the ``convergence`` builder moved here from the CLI, every section)."""
    return dict(SECTION_BUILDERS)


def source_revision() -> str:
    """The git revision the installed febm_ref was built from: ``<sha>`` (``<sha>-dirty`` if
    ``febm_ref/`` has uncommitted changes), or ``"unknown"`` outside a
    git checkout (an installed wheel). Recorded in the manifest; the golden bytes depend on
    it only through this string, so they stay reproducible for a given revision."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "febm_ref"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if len(sha) != 40:
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _header(seed: int) -> dict:
    return {"format": schema.FORMAT, "schema_version": schema.SCHEMA_VERSION,
            "febm_ref_version": __version__, "seed": seed}


def section_documents(section: Section, seed: int) -> tuple[dict, bytes]:
    """The section's JSON document and its NPZ bytes."""
    tolerances = TOLERANCES[section.name]
    used = sorted({case["tolerance"] for case in section.cases})
    document = {**_header(seed), "section": section.name, "arrays_file": f"{section.name}.npz",
                "description": section.description,
                "tolerances": {key: tolerances[key].as_json() for key in used},
                "metadata": section.metadata,
                "arrays": {key: {"shape": list(value.shape), "dtype": "float64" if value.dtype.kind == "f"
                                 else "int64"} for key, value in sorted(section.arrays.items())},
                "cases": section.cases}
    return document, npz_bytes(section.arrays)


def write_golden(out, seed: int = 0, *, sections=None, progress: Optional[Callable] = None,
                 builders: Optional[dict] = None) -> dict:
    """Write the golden set into directory ``out``; return the manifest.

    Parameters
    ----------
    out : path
        Output directory (created if needed; existing golden files are replaced atomically).
    seed : int
        Seed of the random inputs (``np.random.default_rng([seed, section_index])``).
    sections : iterable of str, optional
        Subset of the available sections (default: all).
    progress : callable, optional
        ``progress(section_name, seconds)`` called after each section.
    builders : dict, optional
        Section name -> builder (default :data:`SECTION_BUILDERS`, every section).
    """
    builders = dict(SECTION_BUILDERS if builders is None else builders)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    wanted = tuple(builders) if sections is None else tuple(sections)
    unknown = [name for name in wanted if name not in builders]
    if unknown:
        raise ValueError(f"unknown or unavailable golden section(s) {unknown}; available: "
                         f"{', '.join(builders)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in schema.SECTIONS:
        if name not in wanted:
            continue
        started = time.perf_counter()
        section = builders[name](np.random.default_rng([seed, schema.SECTION_STREAMS[name]]))
        document, npz = section_documents(section, seed)
        files.append(write_file(out, f"{name}.npz", npz))
        files.append(write_file(out, f"{name}.json", json_bytes(document)))
        if progress is not None:
            progress(name, time.perf_counter() - started)
    manifest = {**_header(seed),
                "description": "Golden reference values of febm-ref, the float64 reference "
                               "implementation of f-EBM; see docs/conformance.md.",
                "source_revision": source_revision(),
                "precisions": "see febm_ref.conformance.tolerance: allowed = max(atol + rtol |e|, "
                              f"C u^order S + tiny), C = {SAFETY:g}, K_FN = {K_FN:g}",
                "sections": [name for name in schema.SECTIONS if name in wanted],
                "omitted": {name: "no reference module for this section in this febm-ref version"
                            for name in schema.SECTIONS if name not in builders},
                "files": files}
    write_file(out, "manifest.json", json_bytes(manifest))
    return manifest
