"""Writer of the golden reference set (``febm-ref golden``), see :mod:`.schema` for the format.

Every section is built by a function ``build_<section>(rng) -> Section`` that draws its
inputs from its own random stream and computes the expected outputs with the reference
modules of this package (nothing is recomputed here: the catalogue comes from
:mod:`febm_ref.divergences`, Gaussian values from :mod:`febm_ref.gaussians`, MLP values
from :class:`febm_ref.energies.MLPEnergy`, ...). A section whose reference module is not
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
from febm_ref.conformance import schema
from febm_ref.conformance._files import json_bytes, npz_bytes, write_file
from febm_ref.conformance.adapter import PROTOCOL
from febm_ref.conformance.schema import TOLERANCES

__all__ = ["Section", "write_golden", "SECTION_BUILDERS", "divergence_key", "CATALOGUE_ALPHAS"]

CATALOGUE_ALPHAS = (-1.0, -0.5, 0.0, 0.5, 0.9, 1.0, 2.0)
"""Alpha values at which the alpha family appears in every section."""

U_GRID = (1e-12, 1e-6, 1e-3, 0.1, 0.5, 1.0 - 1e-6, 1.0, 1.0 + 1e-6, 2.0, 10.0, 1e3, 1e6, 1e12)
CONJUGATE_U_GRID = (1e-3, 0.01, 0.1, 0.5, 0.9, 1.0 - 1e-6, 1.0, 1.0 + 1e-6, 1.1, 2.0, 10.0, 100.0, 1e3)
S_GRID = (-700.0, -300.0, -50.0, -10.0, -1.0, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.5, 1.0, 3.0, 10.0,
          50.0, 300.0, 700.0)


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
                 match: Optional[str] = None) -> None:
        """Append one case; ``args`` must follow the protocol order of ``function``."""
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
        if match is not None:
            if match != "unordered_rows":
                raise ValueError(f"unknown match mode {match!r}")
            case["match"] = match
        self.cases.append(case)


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
            expected = getattr(div, quantity)(np.asarray(values, dtype=np.float64))
            section.add_case(f"{key}/{quantity}", quantity, "divergence_map",
                             {"name": div.name, "params": div.params, "quantity": quantity, "x": ref},
                             section.add_array(f"{key}/{quantity}", expected))
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


def build_gaussians(rng: np.random.Generator) -> Section:
    """Exact D_f between Gaussian pairs in 1, 2 and 5 dimensions (DESIGN section 3)."""
    from febm_ref.gaussians import f_divergence, f_divergence_quadrature_gaussians, has_closed_form

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
            section.add_case(f"{pair_id}/{key}", key, "gaussian_f_divergence",
                             {"name": div.name, "params": div.params, **refs}, value,
                             tolerance=tolerance)
    section.metadata["quadrature_error_estimates"] = quadrature_errors
    return section


# --------------------------------------------------------------------------- MLP

MLP_SIZES = (3, 6, 5, 1)


def build_mlp(rng: np.random.Generator) -> Section:
    """Energies, input gradients and per-sample parameter gradients of one MLP per activation."""
    from febm_ref._kernels import ACTIVATION_CODES
    from febm_ref.energies import MLPEnergy

    section = Section("mlp",
                      "MLP energies d=3 -> 6 -> 5 -> 1 (flat layout W_0, b_0, ..., row-major W_l "
                      "of shape (fan_in, fan_out), output bias last), one per activation, at 8 "
                      "inputs (the last one large, saturating the activations).")
    section.metadata["sizes"] = list(MLP_SIZES)
    for activation in ACTIVATION_CODES:
        model = MLPEnergy.random_init(rng, MLP_SIZES[0], MLP_SIZES[1:-1], activation, bias_scale=0.5)
        x = 1.5 * rng.standard_normal((8, MLP_SIZES[0]))
        x[-1] = np.array([6.0, -7.5, 5.0])
        energy, grad_x = model.energy_and_grad_x(x)
        grad_params = model.grad_params(x)
        args = {"params": section.add_array(f"{activation}/params", model.params),
                "sizes": list(MLP_SIZES), "activation": activation,
                "x": section.add_array(f"{activation}/x", x)}
        section.add_case(f"{activation}/energy", "energy", "mlp_energy", args,
                         section.add_array(f"{activation}/energy", energy))
        section.add_case(f"{activation}/grad_x", "grad_x", "mlp_grad_x", args,
                         section.add_array(f"{activation}/grad_x", grad_x))
        section.add_case(f"{activation}/grad_params", "grad_params", "mlp_grad_params", args,
                         section.add_array(f"{activation}/grad_params", grad_params))
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
    from febm_ref.energies import MLPEnergy
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
    for div in _divergences():
        key = divergence_key(div)
        for lam in OBJECTIVE_L2_WEIGHTS:
            result = febm_gradient(div, energy, critic, x_pos, x_neg, l2_weight=lam)
            suffix = "" if lam == 0.0 else "+l2"
            args = {"name": div.name, "params": div.params, "energy": refs["energy"],
                    "critic": refs["critic"], "x_pos": refs["x_pos"], "x_neg": refs["x_neg"],
                    "l2_weight": lam}
            section.add_case(f"{key}/l2={lam:g}/energy_grad", "energy_grad" + suffix,
                             "febm_loss_gradients", args, result.grad_theta, output=0,
                             tolerance="energy_grad")
            section.add_case(f"{key}/l2={lam:g}/critic_grad", "critic_grad" + suffix,
                             "febm_loss_gradients", args, -result.grad_omega, output=1,
                             tolerance="critic_grad")
    return section


# --------------------------------------------------------------------------- langevin

LANGEVIN_SIZES = (2, 8, 8, 1)
LANGEVIN_STEPS = 6


def build_langevin(rng: np.random.Generator) -> Section:
    """ULA (D15) and decoupled Langevin (D16) trajectories with pre-drawn noise."""
    from febm_ref.energies import MLPEnergy
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
    section.add_case("ula", "ula", "ula_trajectory",
                     {"energy": spec, "x0": x0_ref, "noise": noise_ref, "step_size": eps},
                     np.stack(points), tolerance="trajectory")

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
        section.add_case(case_id, case_id, "decoupled_langevin_trajectory",
                         {"energy": spec, "x0": x0_ref, "noise": noise_ref, "step_size": lam,
                          "noise_scale": sigma, "grad_clip": clip,
                          "box": None if box is None else list(box)},
                         np.stack(points), tolerance="trajectory")
    section.metadata["clipping_activity"] = fractions
    return section


# --------------------------------------------------------------------------- optima

OPTIMA_DIVERGENCES = (("kl", {}), ("jensen_shannon", {}), ("pearson_chi2", {}))
"""A subset of the paper's 1-D table (``reference_optima.PAPER_TABLE``): each optimum costs
about 1.5 s of quadrature + Nelder-Mead, and these three cover the closed-form anchor (KL:
moment matching), the paper's headline divergence and a divergence with a finite-variance
constraint (Pearson: sigma^2 > max component variance)."""


def build_optima(rng: np.random.Generator) -> Section:
    """argmin_{mu, sigma} D_f(P || N(mu, sigma^2)) for the paper's 1-D mixture (no randomness)."""
    from febm_ref.divergences import get_divergence
    from febm_ref.reference_optima import reference_optimum
    from febm_ref.targets import paper_mixture_1d

    target = paper_mixture_1d()
    section = Section("optima",
                      "Exact optima argmin_{mu, sigma} D_f(P || N(mu, sigma^2)) of the misspecified "
                      "1-D problem of the paper (DESIGN section 6), P = 0.33 N(-1, 0.0625) + "
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
        certificates[key] = {"gradient_at_optimum": list(optimum.gradient),
                             "finite_variance_interval": list(optimum.variance_interval)}
        args = {"name": div.name, "params": div.params, "target": target_json}
        section.add_case(f"{key}/optimum", "optimum", "exact_optimum_1d", args,
                         np.array([optimum.mu, optimum.sigma]), output=0)
        section.add_case(f"{key}/value", "divergence_at_optimum", "exact_optimum_1d", args,
                         optimum.value, output=1)
    section.metadata["certificates"] = certificates
    return section


# --------------------------------------------------------------------------- writer

SECTION_BUILDERS: dict[str, Callable[[np.random.Generator], Section]] = {
    "catalogue": build_catalogue,
    "gaussians": build_gaussians,
    "mlp": build_mlp,
    "objective": build_objective,
    "langevin": build_langevin,
    "optima": build_optima,
}
"""Section name -> builder, in schema order; sections of :data:`schema.SECTIONS` that are
missing here are reported as omitted."""


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
        Section name -> builder (default :data:`SECTION_BUILDERS`). The library cannot import
        ``verification/``, so the CLI adds the ``convergence`` section built from
        ``verification.convergence`` here (:func:`febm_ref.commands.golden.section_builders`).
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
                "sections": [name for name in schema.SECTIONS if name in wanted],
                "omitted": {name: "no reference module for this section in this febm-ref version"
                            for name in schema.SECTIONS if name not in builders},
                "files": files}
    write_file(out, "manifest.json", json_bytes(manifest))
    return manifest
