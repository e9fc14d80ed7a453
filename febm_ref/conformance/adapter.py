"""The adapter protocol: what a foreign f-EBM implementation provides to be checked.

An *adapter* is a Python module (or an object in a module) with any subset of the functions
below. ``febm-ref check`` calls each function it finds on the golden inputs and compares the
results with the golden outputs; a function that is absent is reported as *skipped*, and a
function may raise ``NotImplementedError`` for individual inputs it does not support (e.g. a
divergence it does not implement), which skips those cases.

Conventions (shared by every function)
--------------------------------------
* Arrays are passed as C-contiguous float64 ``numpy.ndarray``. Return NumPy arrays or
  anything ``numpy.asarray(..., dtype=float64)`` accepts (a detached CPU ``torch.Tensor``
  works); the shape must be exactly the documented one.
* Precision: the golden inputs are float64. An implementation working in float32 (or
  bfloat16) casts them to its own dtype and returns results in that dtype; the tolerances
  of ``check --precision float32`` include that input rounding (docs/conformance.md,
  "Precision-aware tolerances"). ``--precision auto`` reads the dtype of the returned arrays.
* Architecture-agnostic rows (``febm_energy_weights``, ``febm_critic_weights``,
  ``febm_loss_values``, ``ula_step``, ``decoupled_langevin_step``) take per-sample VALUES
  (energies, critic values, gradients), not a model: an implementation with its own network
  (a ResNet, a convnet) feeds its loss / sampler code with these tensors.
* ``name`` and ``params`` identify a divergence of the catalogue (docs/theory.md section 2):
  ``name`` in ``kl, reverse_kl, jensen_shannon, squared_hellinger, pearson_chi2, neyman_chi2,
  alpha``; ``params`` is ``{}`` or ``{"alpha": a}`` (any real a; 0 and 1 are the reverse-KL and
  KL limits ``f = -log u + u - 1`` and ``f = u log u - u + 1``).
* An *MLP spec* is a dict ``{"params": (P,) array, "sizes": [d, h_1, ..., 1], "activation":
  str}``: the energy ``E: R^d -> R`` with layers ``z_l = a_{l-1} W_{l-1} + b_{l-1}``,
  ``a_l = act(z_l)`` and a linear scalar output. ``params`` is the flat layout
  ``W_0, b_0, W_1, b_1, ..., W_{L-1}, b_{L-1}``, ``W_l`` of shape ``(sizes[l], sizes[l+1])``
  stored row-major (``W_l[i, j]`` at ``offset_l + i * sizes[l+1] + j``), ``b_l`` right after
  it; ``P = sum_l (sizes[l] + 1) * sizes[l+1]`` (the output bias is the last entry).
  Activations: ``tanh``; ``softplus(z) = log(1 + e^z)`` (exact: no threshold linearisation);
  ``silu(z) = z sigmoid(z)``; ``elu(z) = z (z > 0), e^z - 1 (z <= 0)``.
* Sign convention of f-EBM (D6): ``q_theta ∝ exp(-E_theta)``; the log-ratio model is
  ``r(x) = H_omega(x) + E_theta(x)``; ``L = <g_data(r+)> - <g_model(r-)>`` (D8, D13), which
  the energy minimises and the critic maximises.

The functions are listed in :data:`PROTOCOL` (name -> :class:`FunctionSpec`), which is also
the single source of the argument order written into the golden files.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Tuple


@dataclass(frozen=True)
class FunctionSpec:
    """One protocol function: argument names (positional order), return shapes, meaning;
    ``inputs`` (type / shape of each argument, same order as ``args``) and ``summary`` (one
    line) are what ``febm-ref check --list-protocol`` prints."""

    name: str
    args: Tuple[str, ...]
    returns: str
    section: str
    doc: str
    inputs: Tuple[str, ...] = ()
    summary: str = ""

    def signature(self) -> str:
        return f"{self.name}({', '.join(self.args)}) -> {self.returns}"

    def as_json(self) -> dict:
        return {"name": self.name, "signature": self.signature(), "section": self.section,
                "args": [{"name": a, "type": t} for a, t in zip(self.args, self.inputs)],
                "returns": self.returns, "summary": self.summary, "doc": self.doc}


_SPECS = (
    FunctionSpec(
        "divergence_map", ("name", "params", "quantity", "x"), "(n,) array", "catalogue",
        "Element-wise map of the divergence (name, params) at x (n,): quantity is one of "
        "'f', 'f_prime', 'f_double_prime' (x = u > 0), 'conjugate' (x = t in the range of f', "
        "D3), 'g_data', 'g_model', 'g_data_prime', 'g_model_prime' (x = s = log(p/q), D7: "
        "g_data(s) = f'(e^s), g_model(s) = e^s f'(e^s) - f(e^s), g_data'(s) = e^s f''(e^s), "
        "g_model'(s) = e^{2s} f''(e^s)). Overflow must give +-inf, never nan."),
    FunctionSpec(
        "gaussian_f_divergence", ("name", "params", "mean_p", "cov_p", "mean_q", "cov_q"), "float",
        "gaussians",
        "D_f(P||Q) = E_q[f(p/q)] (D2, data first) for P = N(mean_p, cov_p), Q = N(mean_q, cov_q); "
        "means (d,), covariances (d, d); +inf where the integral diverges."),
    FunctionSpec(
        "mlp_energy", ("params", "sizes", "activation", "x"), "(n,) array", "mlp",
        "E(x_i) of the MLP (flat layout above) for x (n, d)."),
    FunctionSpec(
        "mlp_grad_x", ("params", "sizes", "activation", "x"), "(n, d) array", "mlp",
        "grad_x E(x_i)."),
    FunctionSpec(
        "mlp_grad_params", ("params", "sizes", "activation", "x"), "(n, P) array", "mlp",
        "Per-sample parameter gradients dE(x_i)/dparams in the flat layout."),
    FunctionSpec(
        "febm_loss_gradients",
        ("name", "params", "energy", "critic", "x_pos", "x_neg", "l2_weight"),
        "((P_E,) array, (P_H,) array)", "objective",
        "Gradients of the two minibatch losses that the optimisers descend, energy/critic MLP "
        "specs, positives x_pos (n+, d), negatives x_neg (n-, d) (constants: no gradient through "
        "the sampler). Energy: the D13 theta-gradient of L, "
        "<g_data'(r+) dE+> - <g_model'(r-) dE-> + <g_model(r-) dE-> - <g_model(r-)><dE->, plus "
        "l2_weight * grad_theta(<E+^2> + <E-^2>) (D14). Critic: minus the D13 omega-gradient, "
        "-(<g_data'(r+) dH+> - <g_model'(r-) dH->), plus l2_weight * grad_omega(<H+^2> + <H-^2>) "
        "(D14). <.> is a batch mean, r = H + E (D6)."),
    FunctionSpec(
        "ula_trajectory", ("energy", "x0", "noise", "step_size"), "(K, n, d) array", "langevin",
        "K steps of ULA (D15) x <- x - (eps/2) grad_x E(x) + sqrt(eps) z_k for the MLP energy "
        "spec, from x0 (n, d), with the pre-drawn standard normal noise (K, n, d); returns the "
        "points after each step."),
    FunctionSpec(
        "decoupled_langevin_trajectory",
        ("energy", "x0", "noise", "step_size", "noise_scale", "grad_clip", "box"),
        "(K, n, d) array", "langevin",
        "K steps of the decoupled variant (D16): x' = x + noise_scale z_k; g = grad_x E(x'), "
        "clipped element-wise to [-grad_clip, grad_clip] if grad_clip is not None; "
        "x <- x' - step_size g, clipped to [box[0], box[1]] if box is not None. Returns the "
        "points after each step."),
    FunctionSpec(
        "exact_optimum_1d", ("name", "params", "target"), "((2,) array, float)", "optima",
        "The minimiser (mu, sigma) of D_f(P || N(mu, sigma^2)) and the minimum value, for the "
        "1-D Gaussian-mixture target P given as a dict {'weights', 'means', 'variances'} of "
        "equal-length lists (docs/theory.md section 6)."),
    FunctionSpec(
        "convergence_jacobian", ("name", "params", "toy"),
        "((m, m) array, (m, 2) array, float)", "convergence",
        "Local convergence of the f-EBM dynamics (docs/theory.md section 5) for the toy described by "
        "the dict toy: for family 'gaussian_1d', p = N(mu, sigma^2), energy "
        "E = 0.5((x - m)/s)^2 with theta = (m, s), quadratic critic H = w0 + b x + c x^2 with "
        "omega = (w0, b, c), equilibrium z* = (mu, sigma, -mu^2/(2 sigma^2), mu/sigma^2, "
        "-1/(2 sigma^2)) (q = p, H = -E, r = 0). Returns the Jacobian at z* of the exact "
        "field v(z) = (-grad_theta L, +grad_omega L) (D8, D17; m = 5, order theta then omega), "
        "its eigenvalues as rows (Re, Im) in any order, and the step-size bound "
        "eta* = min 2|Re lambda| / |lambda|^2 of the simultaneous update z <- z + eta v(z)."),
    # ---- architecture-agnostic rows: per-sample values in, per-sample weights / values out
    FunctionSpec(
        "febm_energy_weights",
        ("name", "params", "e_pos", "e_neg", "h_pos", "h_neg", "l2_weight"),
        "((n+,) array, (n-,) array)", "estimator",
        "Per-sample weights of the energy's loss for ANY model: given the energies e_pos = "
        "E(x+_i) (n+,), e_neg = E(x-_j) (n-,) and critic values h_pos, h_neg, return "
        "w+_i = dLoss_E/dE(x+_i) and w-_j = dLoss_E/dE(x-_j), so that grad_theta Loss_E = "
        "sum_i w+_i dE(x+_i) + sum_j w-_j dE(x-_j) (D13 + D14). With r = h + e: "
        "w+_i = g_data'(r+_i)/n+ + 2 l2_weight e_pos_i/n+, "
        "w-_j = (-g_model'(r-_j) + g_model(r-_j) - <g_model(r-)>)/n- + 2 l2_weight e_neg_j/n- "
        "(stop-gradient semantics: the covariance (score) term is the plain batch estimate, "
        "divided by n-; the l2 term on the negatives is differentiated pathwise only, the "
        "negatives being constants)."),
    FunctionSpec(
        "febm_critic_weights",
        ("name", "params", "e_pos", "e_neg", "h_pos", "h_neg", "l2_weight"),
        "((n+,) array, (n-,) array)", "estimator",
        "Per-sample weights of the critic's loss -L + l2_weight (<H+^2> + <H-^2>) for ANY "
        "critic: v+_i = dLoss_H/dH(x+_i) = -g_data'(r+_i)/n+ + 2 l2_weight h_pos_i/n+, "
        "v-_j = dLoss_H/dH(x-_j) = g_model'(r-_j)/n- + 2 l2_weight h_neg_j/n- (r = h + e; the "
        "energy values are constants for the critic)."),
    FunctionSpec(
        "febm_loss_values",
        ("name", "params", "e_pos", "e_neg", "h_pos", "h_neg", "l2_weight"),
        "(float, float, float)", "estimator",
        "The objective VALUE L = <g_data(r+)> - <g_model(r-)> (D8; r = h + e), the energy's "
        "loss L + l2_weight (<e_pos^2> + <e_neg^2>) and the critic's loss "
        "-L + l2_weight (<h_pos^2> + <h_neg^2>) (D14). A constant offset in g_data or g_model "
        "is invisible to every gradient but changes L (the reported bound)."),
    FunctionSpec(
        "ula_step", ("x", "grad_x", "noise", "step_size"), "(n, d) array", "sampler_step",
        "One ULA step (D15) for ANY energy: x - (step_size/2) grad_x + sqrt(step_size) noise, "
        "with grad_x = grad_x E(x) (n, d) and standard normal noise (n, d) given."),
    FunctionSpec(
        "decoupled_langevin_step",
        ("x", "grad_x", "noise", "step_size", "noise_scale", "grad_clip", "box"),
        "(n, d) array", "sampler_step",
        "One decoupled Langevin step (D16) for ANY energy: x' = x + noise_scale noise; "
        "g = grad_x, the energy gradient AT THE NOISED POINT x' (given, (n, d)), clipped "
        "element-wise to [-grad_clip, grad_clip] unless grad_clip is None; returns "
        "x' - step_size g, clipped to [box[0], box[1]] unless box is None."),
)

_DIV = ("str: kl, reverse_kl, jensen_shannon, squared_hellinger, pearson_chi2, neyman_chi2, alpha",
        "dict: {} or {'alpha': a}")
_MLP = "dict MLP spec {'params': (P,), 'sizes': [d, h_1, ..., 1], 'activation': str}"
_VALUES = ("(n+,) float64: E(x+_i)", "(n-,) float64: E(x-_j)", "(n+,) float64: H(x+_i)",
           "(n-,) float64: H(x-_j)", "float >= 0: lambda of D14")
_FLAT = ("(P,) float64: flat layout W_0, b_0, ..., W_{L-1}, b_{L-1}", "list of int [d, h_1, ..., 1]",
         "str: tanh, softplus, silu, elu")

_DETAILS = {
    # name: (one-line meaning, types / shapes of the arguments in positional order)
    "divergence_map": ("an element-wise map f, f', f'', f*, g_data, g_model, g_data', g_model' (D3, D7)",
                       _DIV + ("str: f, f_prime, f_double_prime, conjugate, g_data, g_model, "
                               "g_data_prime, g_model_prime", "(n,) float64: u, t or s")),
    "gaussian_f_divergence": ("D_f(N(mean_p, cov_p) || N(mean_q, cov_q)) (D2); +inf where it diverges",
                              _DIV + ("(d,) float64", "(d, d) float64", "(d,) float64", "(d, d) float64")),
    "mlp_energy": ("the MLP energy E(x_i)", _FLAT + ("(n, d) float64",)),
    "mlp_grad_x": ("grad_x E(x_i) of the MLP energy", _FLAT + ("(n, d) float64",)),
    "mlp_grad_params": ("per-sample parameter gradients dE(x_i)/dparams", _FLAT + ("(n, d) float64",)),
    "febm_loss_gradients": ("gradients of the energy's and the critic's minibatch losses (D13, D14)",
                            _DIV + (_MLP + ": energy", _MLP + ": critic", "(n+, d) float64: positives",
                                    "(n-, d) float64: negatives (constants)", "float >= 0: lambda of D14")),
    "ula_trajectory": ("K steps of ULA (D15) with given noise",
                       (_MLP, "(n, d) float64", "(K, n, d) float64: standard normal", "float > 0")),
    "decoupled_langevin_trajectory": ("K steps of decoupled Langevin (D16) with clipping",
                                      (_MLP, "(n, d) float64", "(K, n, d) float64: standard normal",
                                       "float > 0", "float >= 0", "float > 0 or None",
                                       "[low, high] or None")),
    "exact_optimum_1d": ("argmin and min of D_f(P || N(mu, sigma^2)) for a 1-D Gaussian mixture P",
                         _DIV + ("dict {'weights', 'means', 'variances'}: lists of equal length",)),
    "convergence_jacobian": ("D17 Jacobian at equilibrium, its eigenvalues and the step-size bound",
                             _DIV + ("dict {'family': 'gaussian_1d', 'mu', 'sigma'}",)),
    "febm_energy_weights": ("per-sample weights dLoss_E/dE(x+_i), dLoss_E/dE(x-_j) for any model (D13, D14)",
                            _DIV + _VALUES),
    "febm_critic_weights": ("per-sample weights dLoss_H/dH(x+_i), dLoss_H/dH(x-_j) for any critic (D13, D14)",
                            _DIV + _VALUES),
    "febm_loss_values": ("the objective value L (D8) and the two losses with their l2 terms (D14)",
                         _DIV + _VALUES),
    "ula_step": ("one ULA step (D15) for any energy, gradient and noise given",
                 ("(n, d) float64", "(n, d) float64: grad_x E(x)", "(n, d) float64: standard normal",
                  "float > 0")),
    "decoupled_langevin_step": ("one decoupled Langevin step (D16) for any energy, gradient at x' given",
                                ("(n, d) float64", "(n, d) float64: grad_x E(x') at x' = x + noise_scale noise",
                                 "(n, d) float64: standard normal", "float > 0", "float >= 0",
                                 "float > 0 or None", "[low, high] or None")),
}

PROTOCOL = {spec.name: replace(spec, summary=_DETAILS[spec.name][0], inputs=tuple(_DETAILS[spec.name][1]))
            for spec in _SPECS}
"""Protocol function name -> :class:`FunctionSpec`, in documentation order."""


class AdapterLoadError(Exception):
    """The adapter could not be imported or the named object does not exist."""


def load_adapter(spec: str) -> Any:
    """Load ``MODULE[:OBJECT]``; MODULE is a dotted module name or a path to a ``.py`` file.

    If OBJECT names a class, it is instantiated without arguments. Returns the object whose
    attributes are looked up for the protocol functions.

    Raises
    ------
    AdapterLoadError
        With a one-line description of what went wrong (the import's own exception, with
        its type and message, is kept as ``__cause__``).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise AdapterLoadError("the adapter must be given as MODULE[:OBJECT], e.g. "
                               "examples/torch_adapter.py or mypkg.febm_adapter:Adapter")
    module_part, _, object_part = spec.strip().partition(":")
    # Windows drive letters ("C:\\x.py") are not supported as MODULE:OBJECT is ambiguous there.
    path = Path(module_part)
    try:
        if module_part.endswith(".py") or path.exists():
            if not path.is_file():
                raise AdapterLoadError(f"adapter file {module_part!r} does not exist")
            module_name = f"_febm_ref_adapter_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise AdapterLoadError(f"cannot load {module_part!r} as a Python module")
            module = importlib.util.module_from_spec(loader_spec)
            # The adapter's directory is importable for the duration of the import (helpers).
            sys.path.insert(0, str(path.resolve().parent))
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            module = importlib.import_module(module_part)
    except AdapterLoadError:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure of foreign code is reported
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AdapterLoadError(f"importing {module_part!r} failed: {type(exc).__name__}: {exc}") from exc
    if not object_part:
        return module
    try:
        obj = getattr(module, object_part)
    except AttributeError as exc:
        raise AdapterLoadError(f"{module_part!r} has no attribute {object_part!r}") from exc
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001
            raise AdapterLoadError(f"instantiating {object_part}() failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
    return obj


def provided_functions(adapter: Any) -> dict:
    """Protocol name -> callable for the protocol functions ``adapter`` provides."""
    found = {}
    for name in PROTOCOL:
        fn = getattr(adapter, name, None)
        if callable(fn):
            found[name] = fn
    return found
