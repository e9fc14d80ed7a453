"""Bad-input campaign over the public API (issue 13, build point 3).

One data table, :data:`CASES`, of ``(case id, class, call, expected exception type(s), regex)``:
each call passes one bad argument to a public function or class of febm-ref (every public
module; ``divergences`` and ``gaussians`` are the :func:`divergence_cases` and
:func:`gaussian_cases` blocks). A case is

* **clear**   it raises the expected ValueError/TypeError (or the documented FloatingPointError),
  the message matches the regex (which names the offending argument), the exception is raised
  by febm_ref code (the innermost traceback frame is in the package, not in numpy, scipy or
  numba) and the message does not contradict itself ("must be (0, 0) ... got (0, 0)");
* **unclear** it raises, but not like that;
* **silent**  it returns (a result computed from bad input: the worst outcome).

``test_case`` runs each case on its own; ``test_campaign_counts`` prints the counts per class
(tried / clear / unclear / silent) and requires every case to be clear. The classes are those
of the issue: non-numeric, complex, object, None, empty, wrong shape (no silent broadcasting),
non-finite, out of range, raw arrays where a sampler state is expected, out-of-range pre-drawn
uniforms, wrong types of model or rng, inconsistent objective values.
"""

from __future__ import annotations

import os
import re
import traceback
import warnings
from collections import Counter, namedtuple

import numpy as np
import pytest

import febm_ref
from febm_ref import exact_objective as eo
from febm_ref import objective as ob
from febm_ref import optimizers as op
from febm_ref import reference_optima as ro
from febm_ref import targets as tg
from febm_ref.experiments import fit2d as e2
from febm_ref.models import critics, energies, sum_model
from febm_ref.samplers import _base, exact, hmc, mala, persistent, ula
from febm_ref.samplers import decoupled_langevin as d16
from febm_ref.samplers import diagnostics as dg
from febm_ref.samplers import mlp_langevin as ml
from febm_ref.samplers import replay_buffer as rb

PACKAGE_DIR = os.path.dirname(os.path.abspath(febm_ref.__file__))

Case = namedtuple("Case", "id cls call exc pattern")
CASES: list[Case] = []

V, T, F = ValueError, TypeError, FloatingPointError

# ------------------------------------------------------------------ bad values per class
COMPLEX_ARR = np.array([1.0 + 1.0j, 2.0, 3.0])
OBJECT_ARR = np.array([1.0, None, 3.0], dtype=object)

#: (class, bad scalar, expected exception) for an argument that must be a finite real number
SCALAR_BAD = [("non-numeric", "0.1", T), ("complex", 0.5 + 1e-3j, T), ("None", None, T),
              ("object", object(), T), ("non-finite", float("nan"), V), ("non-finite", float("inf"), V),
              ("wrong-shape", np.array([0.1, 0.2]), T)]
POSITIVE_BAD = SCALAR_BAD + [("out-of-range", 0.0, V), ("out-of-range", -1.0, V)]
NONNEG_BAD = SCALAR_BAD + [("out-of-range", -1e-3, V)]
PROB_BAD = SCALAR_BAD + [("out-of-range", -0.1, V), ("out-of-range", 1.5, V)]
INT_BAD = [("non-numeric", "3", T), ("None", None, T), ("non-numeric", 2.5, T), ("out-of-range", 0, V),
           ("out-of-range", -2, V)]
RNG_BAD = [("wrong-type", None, T), ("wrong-type", 0, T), ("non-numeric", "seed", T)]


def add(case_id, cls, call, exc, pattern):
    CASES.append(Case(case_id, cls, call, exc, pattern))


def add_scalar(prefix, build, arg, bad_list, pattern=None):
    """One case per bad value of the scalar argument ``arg`` (``build(value)`` -> thunk)."""
    for k, (cls, value, exc) in enumerate(bad_list):
        add(f"{prefix}:{arg}:{cls}:{k}", cls, build(value), exc, pattern or rf"\b{re.escape(arg)}\b")


def array_bad(shape_bad=(), *, empty=None, nonfinite=True, extra=()):
    """Bad values of an array argument: the generic classes plus the given wrong shapes."""
    out = [("non-numeric", ["a", "b", "c"], T), ("non-numeric", "abc", T), ("complex", COMPLEX_ARR, T),
           ("object", OBJECT_ARR, T), ("None", None, T)]
    if empty is not None:
        out.append(("empty", empty, V))
    if nonfinite:
        out.append(("non-finite", np.array([1.0, np.nan, 2.0]), V))
    out += [("wrong-shape", s, V) for s in shape_bad]
    out += list(extra)
    return out


def add_array(prefix, build, arg, bad_list, pattern=None):
    for k, (cls, value, exc) in enumerate(bad_list):
        add(f"{prefix}:{arg}:{cls}:{k}", cls, build(value), exc, pattern or rf"\b{re.escape(arg)}\b")


def add_rng(prefix, build, arg="rng"):
    add_scalar(prefix, build, arg, RNG_BAD, pattern=rf"{arg}.*Generator|Generator.*{arg}")


# ------------------------------------------------------------------ valid fixtures
G1 = energies.GaussianEnergy1D(0.0, 1.0)
G1LOG = energies.GaussianEnergy1D(0.0, 1.0, log_sigma=True)
Q2 = energies.QuadraticEnergy(np.zeros(2), np.eye(2))
MLP2 = energies.MLPEnergy.random_init(np.random.default_rng(0), 2, (3,), backend="numpy")
MLP2_NUMBA = energies.MLPEnergy.random_init(np.random.default_rng(0), 2, (3,))
C1 = critics.QuadraticCritic(1, np.zeros(3))
C2 = critics.QuadraticCritic(2, np.zeros(6))
X1 = np.linspace(-1.0, 1.0, 4)[:, None]
X2 = np.random.default_rng(1).standard_normal((4, 2))
RNG = np.random.default_rng(2)
ST1 = ula.init(np.zeros((3, 1)), G1)
Z3 = np.zeros((3, 1))
U3 = np.full(3, 0.5)
MIX1 = tg.paper_mixture_1d()
EIGHT = tg.eight_gaussians()
RINGS = tg.two_rings()
RULE1 = eo.gauss_legendre_box([(-12.0, 12.0)], 24, order=8)
OBJ1 = eo.ExactObjective.from_energy("kl", RULE1, energies.GaussianEnergy1D(0.2, 1.1))
GRID = e2.Grid2D((-1.0, 1.0), 8)
RAW_STATE = np.zeros((3, 1))  # a raw array where a ChainState is expected


def sampler_state_cases():
    """Raw arrays / wrong objects where a sampler state is expected, inconsistent states."""
    bad_states = [("raw-state", RAW_STATE, T), ("raw-state", (np.zeros((3, 1)),), T), ("None", None, T),
                  ("wrong-shape", _base.ChainState(np.zeros((3, 1)), np.zeros(2), np.zeros((3, 1))), V),
                  ("wrong-shape", _base.ChainState(np.zeros((3, 1)), np.zeros(3), np.zeros((3, 2))), V),
                  ("non-finite", _base.ChainState(np.full((3, 1), np.nan), np.zeros(3), np.zeros((3, 1))), V)]
    for k, (cls, s, exc) in enumerate(bad_states):
        add(f"ula.step:state:{cls}:{k}", cls, lambda s=s: ula.step(RNG, s, G1, 0.1), exc, r"\bstate\b")
        add(f"mala.step:state:{cls}:{k}", cls, lambda s=s: mala.step(RNG, s, G1, 0.1), exc, r"\bstate\b")
        add(f"hmc.step:state:{cls}:{k}", cls, lambda s=s: hmc.step(RNG, s, G1, 0.1, 2), exc, r"\bstate\b")
    for k, (cls, s, exc) in enumerate([("raw-state", RAW_STATE, T), ("None", None, T),
                                       ("raw-state", ST1, T)]):
        add(f"d16.step:state:{cls}:{k}", cls, lambda s=s: d16.step(RNG, s, G1, 0.1, 0.1), exc, r"\bstate\b")


# ------------------------------------------------------------------ optimizers
def optimizer_cases():
    add_scalar("SGD", lambda v: lambda: op.SGD(v), "n_params", INT_BAD)
    add_scalar("SGD", lambda v: lambda: op.SGD(3, momentum=v), "momentum",
               SCALAR_BAD + [("out-of-range", -0.1, V), ("out-of-range", 1.0, V)])
    p3, g3 = np.zeros(3), np.ones(3)
    for name, make in (("SGD", lambda: op.SGD(3)), ("SGDm", lambda: op.SGD(3, momentum=0.5)),
                       ("Adam", lambda: op.Adam(3))):
        add_array(f"{name}.step", lambda v, make=make: lambda: make().step(np.zeros(3), v, 0.1), "grad",
                  array_bad([np.ones(1), np.ones(2), np.ones((3, 1)), np.ones(4)], empty=np.ones(0)))
        add_array(f"{name}.step", lambda v, make=make: lambda: make().step(v, g3, 0.1), "params",
                  array_bad([np.zeros(1), np.zeros((1, 3))]))
        add_scalar(f"{name}.step", lambda v, make=make: lambda: make().step(p3, g3, v), "lr", POSITIVE_BAD)
    add_scalar("Adam", lambda v: lambda: op.Adam(3, beta1=v), "beta1",
               SCALAR_BAD[:5] + [("out-of-range", 1.0, V), ("out-of-range", -0.5, V)])
    add_scalar("Adam", lambda v: lambda: op.Adam(3, beta2=v), "beta2",
               [("out-of-range", 1.0, V), ("complex", 0.9j, T)])
    add_scalar("Adam", lambda v: lambda: op.Adam(3, eps=v), "eps", [("out-of-range", 0.0, V), ("None", None, T)])
    add_scalar("make_optimizer", lambda v: lambda: op.make_optimizer(v, 3), "optimizer",
               [("out-of-range", "rmsprop", V), ("None", None, V)], pattern=r"optimizer")
    for k, (cls, st, exc) in enumerate([("None", None, T), ("wrong-shape", {"velocity": np.zeros(2), "t": 1}, V),
                                        ("non-finite", {"velocity": np.full(3, np.nan), "t": 1}, V),
                                        ("empty", {}, V), ("out-of-range", {"velocity": np.zeros(3), "t": -1}, V),
                                        ("non-numeric", {"velocity": np.zeros(3), "t": "x"}, T)]):
        add(f"SGD.load_state_dict:{cls}:{k}", cls, lambda st=st: op.SGD(3).load_state_dict(st), exc,
            r"state|velocity|\bt\b")
    for k, (cls, st, exc) in enumerate([("wrong-shape", {"m": np.zeros(3), "v": np.zeros(2), "t": 1}, V),
                                        ("out-of-range", {"m": np.zeros(3), "v": -np.ones(3), "t": 1}, V),
                                        ("complex", {"m": COMPLEX_ARR, "v": np.zeros(3), "t": 1}, T)]):
        add(f"Adam.load_state_dict:{cls}:{k}", cls, lambda st=st: op.Adam(3).load_state_dict(st), exc,
            r"state|\bm\b|\bv\b")
    lr = op.learning_rate
    add_scalar("learning_rate", lambda v: lambda: lr(v, 0.1, 0, 10), "schedule",
               [("out-of-range", "linear", V), ("None", None, V)])
    add_scalar("learning_rate", lambda v: lambda: lr("cosine", v, 0, 10), "base",
               POSITIVE_BAD[:5] + [("out-of-range", -1.0, V)])
    add_scalar("learning_rate", lambda v: lambda: lr("cosine", 0.1, v, 10), "iteration",
               [("out-of-range", -1, V), ("non-numeric", "1", T), ("out-of-range", 11, V)])
    add_scalar("learning_rate", lambda v: lambda: lr("cosine", 0.1, 0, v), "total",
               [("out-of-range", 0, V), ("None", None, T)])
    add_scalar("learning_rate", lambda v: lambda: lr("cosine", 0.1, 0, 10, final_fraction=v), "final_fraction",
               [("out-of-range", -0.5, V), ("non-numeric", "0.1", T), ("non-finite", float("nan"), V)])


# ------------------------------------------------------------------ energies and critics
X1_BAD = array_bad([np.zeros((3, 2)), np.zeros((2, 2, 1)), np.float64(1.0)])
X2_BAD = array_bad([np.zeros((3, 3)), np.zeros(4), np.zeros((2, 2, 2))])


def energy_cases():
    for mname, model, bad in (("GaussianEnergy1D", G1, X1_BAD), ("QuadraticEnergy", Q2, X2_BAD),
                              ("MLPEnergy", MLP2, X2_BAD), ("QuadraticCritic", C2, X2_BAD)):
        for meth in ("energy", "grad_x", "energy_and_grad_x", "grad_params"):
            sel = bad if meth == "energy" else bad[2:6]  # the full list once per model
            add_array(f"{mname}.{meth}", lambda v, f=getattr(model, meth): lambda: f(v), "x", sel)
        xs = X1 if model.dim == 1 else X2
        add_array(f"{mname}.weighted_grad_params",
                  lambda v, model=model, xs=xs: lambda: model.weighted_grad_params(xs, v),
                  "w", array_bad([np.ones(3), np.ones((4, 1)), np.ones(1)]))
        add_array(f"{mname}.with_params", lambda v, model=model: lambda: model.with_params(v), "theta",
                  array_bad([np.zeros(model.n_params + 1), np.zeros((model.n_params, 1))], empty=np.zeros(0)))
    add_scalar("GaussianEnergy1D", lambda v: lambda: energies.GaussianEnergy1D(v, 1.0), "mu", SCALAR_BAD)
    add_scalar("GaussianEnergy1D", lambda v: lambda: energies.GaussianEnergy1D(0.0, v), "sigma", POSITIVE_BAD)
    add_scalar("GaussianEnergy1D", lambda v: lambda: energies.GaussianEnergy1D(0.0, v), "sigma",
               [("out-of-range", 1e200, V), ("out-of-range", 1e-200, V)])
    # log sigma = 800 (and beyond sigma^3 overflow) must be rejected at construction, not overflow later
    for k, ls in enumerate((800.0, -800.0, 400.0, -400.0)):
        add(f"GaussianEnergy1D.with_params:log_sigma:{k}", "out-of-range",
            lambda ls=ls: G1LOG.with_params([0.0, ls]), V, r"log sigma")
    add("GaussianEnergy1D.with_params:sigma:neg", "out-of-range", lambda: G1.with_params([0.0, -1.0]), V, r"sigma")
    add_rng("GaussianEnergy1D.sample", lambda v: lambda: G1.sample(v, 3))
    add_scalar("GaussianEnergy1D.sample", lambda v: lambda: G1.sample(RNG, v), "n",
               [("non-numeric", "3", T), ("out-of-range", -1, V), ("non-numeric", 2.5, T)])
    add_rng("GaussianEnergy1D.random_init", lambda v: lambda: energies.GaussianEnergy1D.random_init(v))
    # QuadraticEnergy
    QE = energies.QuadraticEnergy
    add_array("QuadraticEnergy", lambda v: lambda: QE(v, np.eye(3)), "mean",
              array_bad([np.zeros((3, 1))], empty=np.zeros(0)), pattern=r"mean|precision_factor")
    add_array("QuadraticEnergy", lambda v: lambda: QE(np.zeros(3), v), "precision_factor",
              array_bad([np.eye(2), np.eye(4)[:3], np.triu(np.ones((3, 3))), -np.eye(3), np.zeros((3, 3))]))
    add("QuadraticEnergy:empty:both", "empty", lambda: QE(np.zeros(0), np.zeros((0, 0))), V, r"mean")
    add_array("QuadraticEnergy.from_covariance", lambda v: lambda: QE.from_covariance(np.zeros(2), v), "cov",
              array_bad([np.eye(3), np.ones((2, 3)), np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones((2, 2)),
                         -np.eye(2)]))
    add_array("QuadraticEnergy.from_covariance", lambda v: lambda: QE.from_covariance(v, np.eye(2)), "mean",
              [("wrong-shape", np.zeros(3), V), ("wrong-shape", np.zeros(1), V), ("None", None, T)])
    add_rng("QuadraticEnergy.random_init", lambda v: lambda: QE.random_init(v, 2))
    add_scalar("QuadraticEnergy.random_init", lambda v: lambda: QE.random_init(RNG, v), "dim", INT_BAD[:4])
    add_scalar("QuadraticEnergy.random_init", lambda v: lambda: QE.random_init(RNG, 2, scale=v), "scale", POSITIVE_BAD)
    add("QuadraticEnergy.with_params:logdiag", "out-of-range",
        lambda: Q2.with_params([0.0, 0.0, 800.0, 0.0, 0.0]), V, r"log-diagonal")
    add_rng("QuadraticEnergy.sample", lambda v: lambda: Q2.sample(v, 3))
    # MLPEnergy
    ME = energies.MLPEnergy
    P = MLP2.get_params()
    add_scalar("MLPEnergy", lambda v: lambda: ME(v, (3,), params=P), "dim", INT_BAD)
    add_scalar("MLPEnergy", lambda v: lambda: ME(2, v, params=P), "hidden",
               [("empty", (), V), ("out-of-range", (0,), V), ("non-numeric", ("a",), T), ("non-numeric", (2.5,), T),
                ("None", None, T)], pattern=r"hidden")
    add_scalar("MLPEnergy", lambda v: lambda: ME(2, (3,), v, params=P), "activation",
               [("out-of-range", "relu", V), ("None", None, V)])
    add_scalar("MLPEnergy", lambda v: lambda: ME(2, (3,), params=P, backend=v), "backend",
               [("out-of-range", "torch", V), ("None", None, V)])
    add_array("MLPEnergy", lambda v: lambda: ME(2, (3,), params=v), "params",
              array_bad([P[:-1], P[None, :]], empty=np.zeros(0)))
    add_rng("MLPEnergy.random_init", lambda v: lambda: ME.random_init(v, 2, (3,)))
    add_scalar("MLPEnergy.random_init", lambda v: lambda: ME.random_init(RNG, 2, (3,), bias_scale=v), "bias_scale",
               NONNEG_BAD)
    add_scalar("MLPEnergy.random_init", lambda v: lambda: ME.random_init(RNG, 2, v), "hidden",
               [("empty", (), V), ("out-of-range", (0,), V), ("non-numeric", "ab", T)], pattern=r"hidden")
    add_scalar("MLPEnergy.with_backend", lambda v: lambda: MLP2.with_backend(v), "backend",
               [("out-of-range", "jax", V)])
    # QuadraticCritic and OffsetEnergy
    QC = critics.QuadraticCritic
    add_scalar("QuadraticCritic", lambda v: lambda: QC(v, np.zeros(3)), "dim", INT_BAD[:4])
    add_array("QuadraticCritic", lambda v: lambda: QC(1, v), "params", array_bad([np.zeros(4)], empty=np.zeros(0)))
    add_scalar("QuadraticCritic.n_params_for", lambda v: lambda: QC.n_params_for(v), "dim", INT_BAD[:4])
    add_scalar("QuadraticCritic.from_coefficients", lambda v: lambda: QC.from_coefficients(v, np.zeros(2), np.eye(2)),
               "w0", SCALAR_BAD)
    add_array("QuadraticCritic.from_coefficients", lambda v: lambda: QC.from_coefficients(0.0, v, np.eye(2)), "b",
              array_bad([np.zeros(3), np.zeros((2, 1))], empty=np.zeros(0)), pattern=r"\bb\b|\bC\b")
    add_array("QuadraticCritic.from_coefficients", lambda v: lambda: QC.from_coefficients(0.0, np.zeros(2), v), "C",
              array_bad([np.eye(3), np.array([[1.0, 2.0], [0.0, 1.0]])]))
    add_array("QuadraticCritic.negative_of_gaussian_energy",
              lambda v: lambda: QC.negative_of_gaussian_energy(np.zeros(2), v), "precision",
              array_bad([np.eye(3), np.eye(2)[None]]))
    add_array("QuadraticCritic.negative_of_gaussian_energy",
              lambda v: lambda: QC.negative_of_gaussian_energy(v, np.eye(2)), "mean",
              [("wrong-shape", np.zeros(3), V), ("complex", COMPLEX_ARR[:2], T), ("None", None, T)])
    add_scalar("OffsetEnergy", lambda v: lambda: critics.OffsetEnergy(G1, v), "offset", SCALAR_BAD)
    add_scalar("OffsetEnergy", lambda v: lambda: critics.OffsetEnergy(v), "base",
               [("None", None, T), ("wrong-type", np.zeros(2), T)])
    # SumModel
    SM = sum_model.SumModel
    add_scalar("SumModel", lambda v: lambda: SM(G1, v), "parts",
               [("None", None, T), ("wrong-type", np.zeros(2), T), ("wrong-type", "G1", T)], pattern=r"part|model")
    add_array("SumModel.with_params", lambda v: lambda: SM(G1, C1).with_params(v), "theta",
              array_bad([np.zeros(4), np.zeros(6)]))


# ------------------------------------------------------------------ objective
def objective_cases():
    grads = (("febm_gradient", ob.febm_gradient), ("febm_critic_gradient", ob.febm_critic_gradient),
             ("febm_energy_gradient", ob.febm_energy_gradient), ("febm_objective_value", ob.febm_objective_value))
    xbad = array_bad([np.zeros((3, 2)), np.zeros((2, 2, 1))], empty=np.zeros((0, 1)))
    for name, fn in grads:
        add_array(name, lambda v, fn=fn: lambda: fn("kl", G1, C1, v, X1), "x_pos", xbad)
        add_array(name, lambda v, fn=fn: lambda: fn("kl", G1, C1, X1, v), "x_neg", xbad[2:])
        add_scalar(name, lambda v, fn=fn: lambda: fn("kl", v, C1, X1, X1), "energy",
                   [("None", None, T), ("wrong-type", np.zeros(3), T)])
        add_scalar(name, lambda v, fn=fn: lambda: fn("kl", G1, v, X1, X1), "critic",
                   [("None", None, T), ("wrong-shape", C2, V)])
        add_scalar(name, lambda v, fn=fn: lambda: fn(v, G1, C1, X1, X1), "divergence",
                   [("out-of-range", "kullback", V), ("None", None, (T, V))], pattern=r"divergence")
    for name, fn in grads[:3]:
        add_scalar(name, lambda v, fn=fn: lambda: fn("kl", G1, C1, X1, X1, l2_weight=v), "l2_weight", NONNEG_BAD)
    # the alpha family: alpha must be a finite real (alpha = 0 and 1 are the KL limits, valid)
    for name, fn in grads:
        add_scalar(name, lambda v, fn=fn: lambda: fn("alpha", G1, C1, X1, X1, alpha=v), "alpha",
                   [b for b in SCALAR_BAD if b[0] != "None"])
    add_scalar("ExactObjective", lambda v: lambda: eo.ExactObjective("alpha", RULE1, -G1.energy(RULE1.nodes), alpha=v),
               "alpha", SCALAR_BAD[:2] + SCALAR_BAD[4:5])
    add_scalar("divergence_value", lambda v: lambda: ro.divergence_value("alpha", MIX1, 0.0, 1.0, alpha=v), "alpha",
               SCALAR_BAD[:2] + SCALAR_BAD[4:6])
    add_scalar("febm_gradient", lambda v: lambda: ob.febm_gradient("kl", G1, C1, X1, X1, covariance=v), "covariance",
               [("out-of-range", "unbiased", V), ("None", None, V)], pattern=r"covariance")
    # inf - inf: the objective value must raise like the gradient (the same FloatingPointError)
    big = critics.QuadraticCritic(1, [800.0, 0.0, 0.0])
    for name, fn in grads:
        add(f"{name}:overflow-r", "inconsistent", lambda fn=fn: fn("kl", G1, big, X1, X1), F, r"g_model\(r-\)")
    add_array("contrastive_divergence_gradient", lambda v: lambda: ob.contrastive_divergence_gradient(G1, v, X1),
              "x_pos", xbad)
    add_scalar("contrastive_divergence_gradient", lambda v: lambda: ob.contrastive_divergence_gradient(v, X1, X1),
               "energy", [("None", None, T)])
    add_scalar("contrastive_divergence_gradient",
               lambda v: lambda: ob.contrastive_divergence_gradient(G1, X1, X1, l2_weight=v), "l2_weight",
               NONNEG_BAD[:5])
    add_array("covariance_weights", lambda v: lambda: ob.covariance_weights(v), "g",
              array_bad([np.ones((3, 2))], empty=np.zeros(0)))
    add_scalar("covariance_weights", lambda v: lambda: ob.covariance_weights(np.ones(3), v), "estimator",
               [("out-of-range", "x", V)], pattern="covariance estimator")
    add_array("model_pass", lambda v: lambda: ob.model_pass(MLP2_NUMBA, v), "x", X2_BAD[:6])
    add_scalar("model_pass", lambda v: lambda: ob.model_pass(v, X1), "model", [("None", None, T)])


# ------------------------------------------------------------------ exact objective
def exact_objective_cases():
    add_scalar("gauss_legendre_box", lambda v: lambda: eo.gauss_legendre_box(v, 4), "bounds",
               [("None", None, T), ("empty", [], V), ("non-numeric", [("a", 1.0)], T),
                ("non-finite", [(0.0, np.inf)], V),
                ("out-of-range", [(1.0, 0.0)], V), ("wrong-shape", [(0.0, 1.0, 2.0)], V),
                ("complex", [(0.0, 1j)], T)], pattern=r"bound")
    add_scalar("gauss_legendre_box", lambda v: lambda: eo.gauss_legendre_box([(0.0, 1.0)], v), "n_panels",
               [("out-of-range", 1, V), ("non-numeric", "4", T), ("wrong-shape", [2, 3], V), ("None", None, T)])
    add_scalar("gauss_legendre_box", lambda v: lambda: eo.gauss_legendre_box([(0.0, 1.0)], 4, v), "order", INT_BAD)
    add_scalar("gauss_legendre_panels", lambda v: lambda: eo.gauss_legendre_panels(v), "edges_per_axis",
               [("None", None, T), ("empty", [], V), ("wrong-shape", [[0.0, 1.0]], V),
                ("out-of-range", [[0.0, 2.0, 1.0]], V),
                ("non-numeric", [["a", "b", "c"]], T), ("complex", [COMPLEX_ARR], T)], pattern=r"edge")
    add_array("QuadratureRule.integrate", lambda v: lambda: RULE1.integrate(v), "values",
              array_bad([np.ones(3), np.ones((RULE1.size, 1))], empty=np.zeros(0)))
    add_array("QuadratureRule", lambda v: lambda: eo.QuadratureRule(v, np.zeros(2), np.zeros(2, dtype=bool)), "nodes",
              array_bad([np.zeros(2), np.zeros((3, 1))]), pattern=r"\bnodes?\b")
    add_array("QuadratureRule", lambda v: lambda: eo.QuadratureRule(np.zeros((3, 1)), v, np.zeros(3, dtype=bool)),
              "log_weights", array_bad([np.zeros(2)]))
    add_scalar("ExactObjective", lambda v: lambda: eo.ExactObjective("kl", v, np.zeros(3)), "rule",
               [("None", None, T), ("wrong-type", np.zeros((3, 1)), T)])
    add_array("ExactObjective", lambda v: lambda: eo.ExactObjective("kl", RULE1, v), "log_p",
              array_bad([np.zeros(3), np.zeros((RULE1.size, 1))], extra=[
                  ("non-finite", np.full(RULE1.size, -np.inf), V),
                  ("wrong-type", lambda x: np.zeros(3), V)]))
    add_scalar("ExactObjective", lambda v: lambda: eo.ExactObjective("kl", RULE1, -G1.energy(RULE1.nodes),
                                                                     tail_tolerance=v), "tail_tolerance", POSITIVE_BAD)
    add_scalar("ExactObjective.from_energy", lambda v: lambda: eo.ExactObjective.from_energy("kl", RULE1, v),
               "target_energy", [("None", None, T), ("wrong-shape", Q2, V)])
    for meth in ("model_log_normaliser", "model_weights", "f_divergence", "optimal_log_ratio"):
        add_scalar(f"ExactObjective.{meth}", lambda v, meth=meth: lambda: getattr(OBJ1, meth)(v), "energy",
                   [("None", None, T), ("wrong-shape", Q2, V), ("wrong-type", np.zeros(2), T)])
    add_scalar("ExactObjective.evaluate", lambda v: lambda: OBJ1.evaluate(v, C1), "energy",
               [("None", None, T), ("wrong-shape", Q2, V)])
    add_scalar("ExactObjective.evaluate", lambda v: lambda: OBJ1.evaluate(G1, v), "critic",
               [("None", None, T), ("wrong-shape", C2, V)])
    add_array("ExactObjective.field_at", lambda v: lambda: OBJ1.field_at(G1, C1, v), "z",
              array_bad([np.zeros(4), np.zeros((5, 1))], empty=np.zeros(0)))


# ------------------------------------------------------------------ targets
def target_cases():
    GM = tg.GaussianMixture1D
    add_array("GaussianMixture1D", lambda v: lambda: GM(v, [0.0, 1.0], [1.0, 1.0]), "weights",
              array_bad([np.ones(3), np.ones((2, 1))], empty=np.zeros(0),
                        extra=[("out-of-range", [1.0, -1.0], V), ("out-of-range", [0.0, 0.0], V)]))
    add_array("GaussianMixture1D", lambda v: lambda: GM([1.0, 1.0], v, [1.0, 1.0]), "means", array_bad([np.ones(3)]))
    add_array("GaussianMixture1D", lambda v: lambda: GM([1.0, 1.0], [0.0, 1.0], v), "variances",
              array_bad([np.ones(1)], extra=[("out-of-range", [1.0, 0.0], V)]))
    add("GaussianMixture1D:empty:all", "empty", lambda: GM([], [], []), V, r"weights")
    for meth in ("log_density", "grad_log_density"):
        add_array(f"GaussianMixture1D.{meth}", lambda v, f=getattr(MIX1, meth): lambda: f(v), "x",
                  array_bad([np.zeros((3, 2))]))
    add_array("GaussianMixture1D.cdf", lambda v: lambda: MIX1.cdf(v), "x", array_bad())
    add_rng("GaussianMixture1D.sample", lambda v: lambda: MIX1.sample(v, 3))
    add_scalar("GaussianMixture1D.sample", lambda v: lambda: MIX1.sample(RNG, v), "n", INT_BAD)
    GM2 = tg.GaussianMixture2D
    add_array("GaussianMixture2D", lambda v: lambda: GM2(np.ones(2), np.zeros((2, 2)), v), "stds",
              array_bad([np.ones(3)], extra=[("out-of-range", [1.0, -1.0], V)]))
    add_array("GaussianMixture2D", lambda v: lambda: GM2(np.ones(2), v, 1.0), "means",
              array_bad([np.zeros((2, 3)), np.zeros(4)]))
    add("GaussianMixture2D:empty", "empty", lambda: GM2(np.ones(0), np.zeros((0, 2)), 1.0), V, r"weights")
    add_array("GaussianMixture2D.log_density", lambda v: lambda: EIGHT.log_density(v), "x", X2_BAD)
    add_rng("GaussianMixture2D.sample", lambda v: lambda: EIGHT.sample(v, 3))
    RM = tg.RadialMixture2D
    add_array("RadialMixture2D", lambda v: lambda: RM([1.0, 1.0], v, 0.2), "radii",
              array_bad([np.ones(3)], extra=[("out-of-range", [1.0, -1.0], V)]))
    add_array("RadialMixture2D", lambda v: lambda: RM([1.0, 1.0], [1.0, 2.0], v), "stds", array_bad([np.ones(3)]))
    add_array("RadialMixture2D.log_density", lambda v: lambda: RINGS.log_density(v), "x", X2_BAD[:6])
    add_scalar("RadialMixture2D.radius_cdf", lambda v: lambda: RINGS.radius_cdf(1.0, v), "k",
               [("out-of-range", 2, V), ("out-of-range", -1, V), ("non-numeric", 0.5, T), ("None", None, T)])
    add_array("RadialMixture2D.radius_cdf", lambda v: lambda: RINGS.radius_cdf(v, 0), "r",
              array_bad(extra=[("out-of-range", [-1.0], V)]))
    add_scalar("eight_gaussians", lambda v: lambda: tg.eight_gaussians(radius=v), "radius", NONNEG_BAD)
    add_scalar("eight_gaussians", lambda v: lambda: tg.eight_gaussians(std=v), "std", POSITIVE_BAD)
    add_array("two_rings", lambda v: lambda: tg.two_rings(radii=v), "radii",
              array_bad(empty=np.zeros(0), extra=[("out-of-range", [1.0, -2.0], V)]))
    add_scalar("two_rings", lambda v: lambda: tg.two_rings(std=v), "std",
               POSITIVE_BAD[:5] + [("out-of-range", -1.0, V)])
    add_scalar("two_moons", lambda v: lambda: tg.two_moons(n_per_moon=v), "n_per_moon", INT_BAD)
    add_scalar("two_moons", lambda v: lambda: tg.two_moons(scale=v), "scale",
               POSITIVE_BAD[:5] + [("out-of-range", 0.0, V)])
    add_scalar("two_moons", lambda v: lambda: tg.two_moons(std=v), "std", [("out-of-range", 0.0, V), ("None", None, T)])
    add_scalar("checkerboard", lambda v: lambda: tg.checkerboard(n_squares=v), "n_squares", INT_BAD)
    add_scalar("checkerboard", lambda v: lambda: tg.checkerboard(per_axis=v), "per_axis", INT_BAD[:4])
    add_scalar("checkerboard", lambda v: lambda: tg.checkerboard(side=v), "side",
               POSITIVE_BAD[:5] + [("out-of-range", -1.0, V)])
    add_scalar("checkerboard", lambda v: lambda: tg.checkerboard(std=v), "std", [("non-finite", float("nan"), V)])
    add_scalar("get_target", lambda v: lambda: tg.get_target(v), "name",
               [("out-of-range", "moons", V), ("None", None, V), ("wrong-type", ["two_rings"], V)], pattern=r"target")


# ------------------------------------------------------------------ reference optima
def reference_optima_cases():
    add_scalar("divergence_value", lambda v: lambda: ro.divergence_value("kl", MIX1, v, 1.0), "mu", SCALAR_BAD)
    add_scalar("divergence_value", lambda v: lambda: ro.divergence_value("kl", MIX1, 0.0, v), "sigma", POSITIVE_BAD)
    add_scalar("divergence_value", lambda v: lambda: ro.divergence_value("kl", v, 0.0, 1.0), "target",
               [("None", None, T), ("wrong-type", EIGHT, T)])
    add_scalar("divergence_gradient", lambda v: lambda: ro.divergence_gradient("kl", MIX1, 0.0, 1.0, h=v), "h",
               POSITIVE_BAD[3:])
    add_scalar("divergence_gradient", lambda v: lambda: ro.divergence_gradient("kl", MIX1, v, 1.0), "mu",
               SCALAR_BAD[:3])
    add_scalar("finite_variance_interval", lambda v: lambda: ro.finite_variance_interval(v, MIX1), "div",
               [("None", None, (T, V)), ("out-of-range", "kullback", V)], pattern=r"div")
    add_scalar("finite_variance_interval", lambda v: lambda: ro.finite_variance_interval("kl", v), "target",
               [("None", None, T)])
    add_scalar("reference_optimum", lambda v: lambda: ro.reference_optimum("kl", v), "target", [("None", None, T)])
    ed = ro.exact_descent
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=v), "iterations", INT_BAD)
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, lr=v), "lr", POSITIVE_BAD)
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, sigma0=v), "sigma0",
               POSITIVE_BAD[:5] + [("out-of-range", -1.0, V)])
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, mu0=v), "mu0", SCALAR_BAD[:4])
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, record_every=v), "record_every",
               INT_BAD[3:])
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, h=v), "h", [("out-of-range", 0.0, V)])
    add_scalar("exact_descent", lambda v: lambda: ed("kl", MIX1, iterations=2, schedule=v), "schedule",
               [("out-of-range", "linear", V)])
    add_scalar("exact_descent", lambda v: lambda: ed("kl", v, iterations=2), "target", [("None", None, T)])


# ------------------------------------------------------------------ samplers
def sampler_cases():
    x_bad = array_bad([np.zeros(3), np.zeros((2, 2, 1)), np.zeros((3, 2))], empty=np.zeros((0, 1)),
                      extra=[("empty", np.zeros((3, 0)), V)])
    add_array("init_state", lambda v: lambda: _base.init_state(v, G1), "x", x_bad)
    add_scalar("init_state", lambda v: lambda: _base.init_state(Z3, v), "energy",
               [("None", None, T), ("wrong-type", np.zeros(3), T)])
    add_scalar("CallableEnergy", lambda v: lambda: _base.CallableEnergy(v, v), "energy_fn", [("None", None, T)],
               pattern=r"callable")
    bad_shape_energy = _base.CallableEnergy(lambda x: np.zeros(1), lambda x: np.zeros_like(x))
    add("init_state:energy-returns-wrong-shape", "wrong-shape", lambda: _base.init_state(Z3, bad_shape_energy), V,
        r"energy\(x\)")
    for name, mod, extra in (("ula", ula, ()), ("mala", mala, ()), ("hmc", hmc, (2,))):
        add_scalar(f"{name}.step", lambda v, mod=mod, extra=extra: lambda: mod.step(RNG, ST1, G1, v, *extra),
                   "step_size", POSITIVE_BAD)
        add_scalar(f"{name}.step", lambda v, mod=mod, extra=extra: lambda: mod.step(RNG, ST1, v, 0.1, *extra),
                   "energy", [("None", None, T), ("wrong-type", np.zeros(3), T)])
        add_rng(f"{name}.run", lambda v, mod=mod, extra=extra: lambda: mod.run(v, Z3, G1, 0.1, *extra, 2))
        add_scalar(f"{name}.run", lambda v, mod=mod, extra=extra: lambda: mod.run(RNG, Z3, G1, 0.1, *extra, v),
                   "n_steps", INT_BAD)
        add_scalar(f"{name}.run", lambda v, mod=mod, extra=extra: lambda: mod.run(RNG, Z3, G1, 0.1, *extra, 2, thin=v),
                   "thin", INT_BAD[3:])
        add_array(f"{name}.run", lambda v, mod=mod, extra=extra: lambda: mod.run(RNG, v, G1, 0.1, *extra, 2), "x",
                  x_bad[:3])
    # ULA pre-drawn noise
    add_array("ula.step", lambda v: lambda: ula.step(v, ST1, G1, 0.1), "noise",
              array_bad([np.zeros(3), np.zeros((1, 1)), np.zeros((3, 2)), np.zeros((3, 1, 1))]),
              pattern=r"noise|rng_or_noise")
    # MALA / HMC: pre-drawn (normal, uniform) pairs; uniforms outside [0, 1) break detailed balance
    u_bad = array_bad([np.full(2, 0.5), np.full((3, 1), 0.5)],
                      extra=[("out-of-range", np.array([-0.1, 0.5, 0.5]), V),
                             ("out-of-range", np.array([0.5, 1.0, 0.5]), V),
                             ("out-of-range", np.array([0.5, 0.5, 7.0]), V), ("out-of-range", np.full(3, -np.inf), V)])
    add_array("mala.step", lambda v: lambda: mala.step((Z3, v), ST1, G1, 0.1), "u", u_bad)
    add_array("hmc.step", lambda v: lambda: hmc.step((Z3, v), ST1, G1, 0.1, 2), "u", u_bad)
    add_array("mala.step", lambda v: lambda: mala.step((v, U3), ST1, G1, 0.1), "z",
              array_bad([np.zeros(3), np.zeros((3, 2))]), pattern=r"\bz\b")
    add_array("hmc.step", lambda v: lambda: hmc.step((v, U3), ST1, G1, 0.1, 2), "p0",
              array_bad([np.zeros(3), np.zeros((2, 1))]), pattern=r"\bp0\b")
    for name, fn in (("mala.step", lambda r: mala.step(r, ST1, G1, 0.1)),
                     ("hmc.step", lambda r: hmc.step(r, ST1, G1, 0.1, 2))):
        add_scalar(name, lambda v, fn=fn: lambda: fn(v), "rng_or_noise",
                   [("wrong-type", None, T), ("wrong-type", Z3, T), ("wrong-type", (Z3,), T),
                    ("wrong-type", [Z3, U3], T),
                    ("wrong-type", 3, T)])
    add_scalar("hmc.step", lambda v: lambda: hmc.step(RNG, ST1, G1, 0.1, v), "n_leapfrog", INT_BAD)
    add_scalar("hmc.leapfrog", lambda v: lambda: hmc.leapfrog(Z3, Z3, Z3, G1, v, 2), "step_size", POSITIVE_BAD[4:])
    add_scalar("hmc.leapfrog", lambda v: lambda: hmc.leapfrog(Z3, Z3, Z3, G1, 0.1, v), "n_leapfrog", INT_BAD[3:])
    add_array("hmc.leapfrog", lambda v: lambda: hmc.leapfrog(Z3, v, Z3, G1, 0.1, 2), "p",
              [("wrong-shape", np.zeros(1), V), ("wrong-shape", np.zeros((3, 2)), V)])
    sampler_state_cases()
    # stationary laws
    add_scalar("ula.stationary_variance_1d", lambda v: lambda: ula.stationary_variance_1d(v, 0.1), "s", POSITIVE_BAD)
    add_scalar("ula.stationary_variance_1d", lambda v: lambda: ula.stationary_variance_1d(1.0, v), "step_size",
               POSITIVE_BAD[3:] + [("out-of-range", 4.0, V)])
    add_array("ula.stationary_covariance", lambda v: lambda: ula.stationary_covariance(v, 0.1), "precision",
              array_bad([np.ones((2, 3)), np.eye(2)[None]], empty=np.zeros((0, 0)),
                        extra=[("out-of-range", np.array([[1.0, 0.5], [0.0, 1.0]]), V),
                               ("out-of-range", -np.eye(2), V)]))
    add("ula.stationary_covariance:unstable", "out-of-range", lambda: ula.stationary_covariance(np.eye(2), 4.0), V,
        r"step_size")
    add_scalar("d16.stationary_variance_1d", lambda v: lambda: d16.stationary_variance_1d(1.0, 0.1, v), "noise_scale",
               NONNEG_BAD)
    add_scalar("d16.stationary_variance_1d", lambda v: lambda: d16.stationary_variance_1d(1.0, v, 0.1), "step_size",
               [("out-of-range", 2.0, V), ("out-of-range", 0.0, V)])
    # decoupled Langevin
    DS = d16.init(Z3)
    add_scalar("d16.step", lambda v: lambda: d16.step(RNG, DS, G1, v, 0.1), "step_size", POSITIVE_BAD)
    add_scalar("d16.step", lambda v: lambda: d16.step(RNG, DS, G1, 0.1, v), "noise_scale", NONNEG_BAD)
    add_scalar("d16.step", lambda v: lambda: d16.step(RNG, DS, G1, 0.1, 0.1, grad_clip=v), "grad_clip",
               [b for b in POSITIVE_BAD if b[0] != "None"])  # None: no clipping
    add_scalar("d16.step", lambda v: lambda: d16.step(RNG, DS, v, 0.1, 0.1), "energy", [("None", None, T)])
    add_scalar("d16.check_box", lambda v: lambda: d16.check_box(v), "box",
               [("wrong-shape", (0.0,), T), ("wrong-shape", (0.0, 1.0, 2.0), T), ("out-of-range", (1.0, 0.0), V),
                ("non-numeric", ("a", "b"), T), ("non-finite", (0.0, np.inf), V), ("complex", (0.0, 1j), T),
                ("wrong-type", 3.0, T)])
    add_array("d16.step", lambda v: lambda: d16.step(v, DS, G1, 0.1, 0.1), "noise",
              array_bad([np.zeros((3, 2)), np.zeros(3)]), pattern=r"noise")
    add_array("d16.init", lambda v: lambda: d16.init(v), "x", x_bad[:-2] + x_bad[-1:])  # (3, 2) is valid here
    add_scalar("d16.run", lambda v: lambda: d16.run(RNG, Z3, G1, 0.1, 0.1, v), "n_steps", INT_BAD)
    add_scalar("d16.run", lambda v: lambda: d16.run(RNG, Z3, G1, 0.1, 0.1, 2, grad_clip=v), "grad_clip",
               POSITIVE_BAD[:2] + POSITIVE_BAD[3:5] + [("out-of-range", 0.0, V)])
    # MLP Langevin
    X0 = np.zeros((3, 2))
    params, sizes, act = MLP2_NUMBA.kernel_args()
    for kind, fn in (("ula", lambda **kw: ml.ula(kw.pop("energy", MLP2_NUMBA), kw.pop("x0", X0),
                                                 kw.pop("step_size", 0.1), **kw)),
                     ("decoupled", lambda **kw: ml.decoupled(kw.pop("energy", MLP2_NUMBA), kw.pop("x0", X0),
                                                             kw.pop("step_size", 0.1), kw.pop("noise_scale", 0.1),
                                                             **kw))):
        pre = f"mlp_langevin.{kind}"
        add_scalar(pre, lambda v, fn=fn: lambda: fn(step_size=v, rng=RNG, n_steps=2), "step_size", POSITIVE_BAD)
        add_array(pre, lambda v, fn=fn: lambda: fn(x0=v, rng=RNG, n_steps=2), "x0",
                  array_bad([np.zeros((3, 3)), np.zeros(3)], empty=np.zeros((0, 2))))
        add_array(pre, lambda v, fn=fn: lambda: fn(noise=v), "noise",  # (noise=None: draw from rng)
                  [b for b in array_bad([np.zeros((2, 3, 3)), np.zeros((3, 2)), np.zeros((2, 4, 2))],
                                        empty=np.zeros((0, 3, 2))) if b[0] != "None"])
        add_scalar(pre, lambda v, fn=fn: lambda: fn(rng=RNG, n_steps=2, backend=v), "backend",
                   [("out-of-range", "cuda", V), ("None", None, V)])
        add_scalar(pre, lambda v, fn=fn: lambda: fn(rng=v, n_steps=2), "rng", RNG_BAD[1:],  # rng=None: pre-drawn noise
                   pattern=r"rng.*Generator")
        add_scalar(pre, lambda v, fn=fn: lambda: fn(rng=RNG, n_steps=v), "n_steps", INT_BAD[:1] + INT_BAD[2:])
        add_scalar(pre, lambda v, fn=fn: lambda: fn(energy=v, rng=RNG, n_steps=2), "energy",
                   [("None", None, T), ("wrong-type", G1, T)])
        add_array(pre, lambda v, fn=fn: lambda: fn(energy=(v, sizes, act), rng=RNG, n_steps=2), "params",
                  array_bad([params[:-1]]))
        add_scalar(pre, lambda v, fn=fn: lambda: fn(energy=(params, v, act), rng=RNG, n_steps=2), "sizes",
                   [("non-numeric", ["a", "b", "c"], T), ("complex", np.array([2, 3, 1j]), T),
                    ("non-numeric", [2.5, 3, 1], T), ("None", None, T)])
    add_scalar("mlp_langevin.decoupled", lambda v: lambda: ml.decoupled(MLP2_NUMBA, X0, 0.1, v, rng=RNG, n_steps=2),
               "noise_scale", NONNEG_BAD)
    # persistent chains
    PC = persistent.PersistentChains
    add_array("PersistentChains", lambda v: lambda: PC(v), "x0", x_bad[:8])
    add_scalar("PersistentChains", lambda v: lambda: PC(Z3, lambda r, n: np.zeros((n, 1)), reinit_prob=v),
               "reinit_prob",
               PROB_BAD)
    add_scalar("PersistentChains.from_reset", lambda v: lambda: PC.from_reset(RNG, 3, v), "reset",
               [("None", None, T), ("wrong-type", np.zeros((3, 1)), T)])
    add_array("PersistentChains.update", lambda v: lambda: PC(Z3).update(v), "x",
              array_bad([np.zeros((4, 1)), np.zeros((3, 2))]))
    add_scalar("PersistentChains.load_state_arrays", lambda v: lambda: PC(Z3).load_state_arrays(v), "arrays",
               [("None", None, V), ("wrong-shape", {"x": np.zeros((4, 1))}, V),
                ("non-finite", {"x": np.full((3, 1), np.nan)}, V),
                ("raw-state", Z3, V)], pattern=r"state|chains|\bx\b")
    add_rng("PersistentChains.starting_points", lambda v: lambda: PC(Z3).starting_points(v))
    # replay buffer
    reset = lambda r, n: r.random((n, 2))  # noqa: E731
    RB = rb.ReplayBuffer
    add_scalar("ReplayBuffer", lambda v: lambda: RB(v, 2, reset), "capacity", INT_BAD)
    add_scalar("ReplayBuffer", lambda v: lambda: RB(10, v, reset), "dim", INT_BAD[:4])
    add_scalar("ReplayBuffer", lambda v: lambda: RB(10, 2, v), "reset", [("None", None, T)])
    add_scalar("ReplayBuffer", lambda v: lambda: RB(10, 2, reset, restart_prob=v), "restart_prob", PROB_BAD)
    add_scalar("ReplayBuffer", lambda v: lambda: RB(10, 2, reset, quantize_8bit=True, box=v), "box",
               [("None", None, V), ("out-of-range", (1.0, 0.0), V)])
    add_array("ReplayBuffer.add", lambda v: lambda: RB(10, 2, reset).add(v), "x", X2_BAD)
    add_rng("ReplayBuffer.sample_initial", lambda v: lambda: RB(10, 2, reset).sample_initial(v, 3))
    add_scalar("ReplayBuffer.sample_initial", lambda v: lambda: RB(10, 2, reset).sample_initial(RNG, v), "n",
               INT_BAD[:4])
    bad_reset = RB(10, 2, lambda r, n: np.zeros((n, 3)))
    add("ReplayBuffer.sample_initial:reset-shape", "wrong-shape", lambda: bad_reset.sample_initial(RNG, 3), V, r"reset")
    add_scalar("ReplayBuffer.load_state_arrays", lambda v: lambda: RB(10, 2, reset).load_state_arrays(v), "arrays",
               [("None", None, V), ("wrong-shape", {"points": np.zeros((3, 3)), "next": np.array(3),
                                                     "capacity": np.array(10)}, V),
                ("non-finite", {"points": np.full((3, 2), np.nan), "next": np.array(3), "capacity": np.array(10)}, V),
                ("complex", {"points": np.zeros((3, 2), complex), "next": np.array(3), "capacity": np.array(10)},
                 (T, V))],
               pattern=r"state|points|dtype|buffer")
    add_scalar("quantize_8bit", lambda v: lambda: rb.quantize_8bit(np.zeros((2, 2)), v, 1.0), "lo",
               [("out-of-range", 1.0, V), ("out-of-range", 2.0, V), ("non-finite", float("nan"), V),
                ("non-numeric", "0", T)],
               pattern=r"\blo\b|box")
    add_array("quantize_8bit", lambda v: lambda: rb.quantize_8bit(v, 0.0, 1.0), "x", array_bad())
    add_array("dequantize_8bit", lambda v: lambda: rb.dequantize_8bit(v, 0.0, 1.0, RNG), "codes",
              array_bad(nonfinite=False, extra=[("out-of-range", np.array([0, 300]), V),
                                                 ("out-of-range", np.array([-1, 2]), V),
                                                 ("non-numeric", np.array([0.5, 1.0]), T)]))
    add_scalar("dequantize_8bit", lambda v: lambda: rb.dequantize_8bit(np.zeros(2, np.uint8), 1.0, v, RNG), "hi",
               [("out-of-range", 0.0, V), ("non-finite", float("inf"), V)], pattern=r"\bhi\b|box")
    # diagnostics
    draws_bad = array_bad([np.zeros((3, 3, 3))], empty=np.zeros(0), extra=[("empty", np.zeros((2, 1)), V)])
    for name in ("effective_sample_size", "integrated_autocorrelation_time", "split_rhat", "mean_estimate",
                 "thin_by_autocorrelation", "autocovariance", "autocorrelation"):
        add_array(f"diagnostics.{name}", lambda v, f=getattr(dg, name): lambda: f(v), "draws",
                  draws_bad if name == "effective_sample_size" else draws_bad[:4] + draws_bad[5:7])
    add_array("diagnostics.acceptance_rate", lambda v: lambda: dg.acceptance_rate(v), "accepted",
              array_bad(empty=np.zeros(0), extra=[("out-of-range", np.array([0.5, 1.5]), V),
                                                  ("out-of-range", np.array([-0.5, 0.5]), V)]))
    add_scalar("diagnostics.second_moment_estimate",
               lambda v: lambda: dg.second_moment_estimate(np.random.default_rng(0).random(50), v), "centre",
               SCALAR_BAD)
    add_array("diagnostics.covariance_estimates",
              lambda v: lambda: dg.covariance_estimates(np.random.default_rng(0).random((20, 2, 2)), v), "mean",
              array_bad([np.zeros(1), np.zeros(3), np.zeros((2, 1))]))
    add_array("diagnostics.covariance_estimates", lambda v: lambda: dg.covariance_estimates(v, np.zeros(2)), "samples",
              array_bad([np.zeros((20, 2))]))
    add_scalar("diagnostics.ks_test_thinned",
               lambda v: lambda: dg.ks_test_thinned(np.random.default_rng(0).random(50), "uniform", alpha=v), "alpha",
               PROB_BAD[:5] + [("out-of-range", 0.0, V), ("out-of-range", 1.0, V)])
    add_scalar("diagnostics.ks_test_thinned",
               lambda v: lambda: dg.ks_test_thinned(np.random.default_rng(0).random(50), v), "cdf",
               [("None", None, T), ("wrong-type", 3.0, T)])
    # exact sampling
    add_rng("exact.sample_gaussian", lambda v: lambda: exact.sample_gaussian(v, np.zeros(2), np.eye(2), 3))
    add_array("exact.sample_gaussian", lambda v: lambda: exact.sample_gaussian(RNG, np.zeros(2), v, 3), "cov",
              array_bad([np.eye(3), np.ones((2, 3))], extra=[("out-of-range", -np.eye(2), V),
                                                             ("out-of-range", np.array([[1.0, 1.0], [0.0, 1.0]]), V)]))
    add_array("exact.sample_gaussian", lambda v: lambda: exact.sample_gaussian(RNG, v, np.eye(2), 3), "mean",
              array_bad([np.zeros(3), np.zeros((2, 1))], empty=np.zeros(0)), pattern=r"mean|cov")
    add_array("exact.sample_quadratic", lambda v: lambda: exact.sample_quadratic(RNG, np.zeros(2), v, 3), "precision",
              array_bad([np.eye(3)], extra=[("out-of-range", np.zeros((2, 2)), V)]))
    add_scalar("exact.sample_gaussian", lambda v: lambda: exact.sample_gaussian(RNG, np.zeros(2), np.eye(2), v), "n",
               INT_BAD)
    add_scalar("exact.sample_gaussian_1d", lambda v: lambda: exact.sample_gaussian_1d(RNG, 0.0, v, 3), "sigma",
               POSITIVE_BAD)
    add_scalar("exact.sample_gaussian_1d", lambda v: lambda: exact.sample_gaussian_1d(RNG, v, 1.0, 3), "mu",
               SCALAR_BAD[:5])
    add_scalar("exact.sample", lambda v: lambda: exact.sample(RNG, v, 3), "energy",
               [("None", None, T), ("wrong-type", MLP2, T)])
    add_rng("exact.sample", lambda v: lambda: exact.sample(v, G1, 3))


# ------------------------------------------------------------------ 2-D experiments (validation only)
def experiments2d_cases():
    add_scalar("Grid2D", lambda v: lambda: e2.Grid2D(v, 8), "box",
               [("None", None, T), ("non-numeric", ("a", 1.0), T), ("out-of-range", (1.0, -1.0), V),
                ("non-finite", (-np.inf, 1.0), V), ("wrong-shape", (1.0,), T), ("complex", (0.0, 1j), T)])
    add_scalar("Grid2D", lambda v: lambda: e2.Grid2D((-1.0, 1.0), v), "n", INT_BAD)
    n2 = GRID.n ** 2
    for meth, arg in (("log_normalizer", "neg_log_unnormalized"), ("mass", "log_density"),
                      ("edge_mass", "log_density")):
        add_array(f"Grid2D.{meth}", lambda v, f=getattr(GRID, meth): lambda: f(v), arg,
                  array_bad([np.zeros(3), np.zeros((n2, 1))], nonfinite=meth == "log_normalizer"))
    add_array("Grid2D.divergence", lambda v: lambda: GRID.divergence("kl", np.full(n2, -1.4), v), "log_q",
              array_bad([np.zeros(1), np.zeros(3)]))
    add_array("Grid2D.divergence", lambda v: lambda: GRID.divergence("kl", v, np.full(n2, -1.4)), "log_p",
              array_bad([np.zeros(1)], nonfinite=False))
    add_array("Grid2D.bin_index", lambda v: lambda: GRID.bin_index(v), "x",
              array_bad([np.zeros((3, 3)), np.zeros(2)], extra=[("out-of-range", np.array([[0.0, 2.0]]), V)]))
    add_scalar("kde_on_grid", lambda v: lambda: e2.kde_on_grid(GRID, np.zeros((3, 2)), v), "bandwidth", POSITIVE_BAD)
    add_scalar("kde_on_grid", lambda v: lambda: e2.kde_on_grid(GRID, np.zeros((3, 2)), 0.1, uniform_weight=v),
               "uniform_weight", PROB_BAD[:5] + [("out-of-range", 0.0, V), ("out-of-range", 1.5, V)])
    add_array("kde_on_grid", lambda v: lambda: e2.kde_on_grid(GRID, v, 0.1), "x",
              array_bad([np.zeros((3, 3))], empty=np.zeros((0, 2))))
    add_scalar("kde_on_grid", lambda v: lambda: e2.kde_on_grid(v, np.zeros((3, 2)), 0.1), "grid", [("None", None, T)])
    cfg = e2.Experiment2DConfig
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(restart_prob=v), "restart_prob", PROB_BAD)
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(hidden=v), "hidden",
               [("empty", (), V), ("out-of-range", (0, 3), V), ("non-numeric", ("a",), T)])
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(critic_hidden=v), "critic_hidden",
               [("empty", (), V), ("non-numeric", (2.5,), T)])
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(activation=v), "activation", [("out-of-range", "relu", V)])
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(noise_scale=v), "noise_scale", POSITIVE_BAD)
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(step_size=v), "step_size",
               POSITIVE_BAD[:1] + POSITIVE_BAD[4:])
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(eval_every=v), "eval_every",
               INT_BAD[:3] + [("out-of-range", -1, V)])  # 0: no evaluation
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(grid_size=v), "grid_size", [("out-of-range", 4, V)])
    add_scalar("Experiment2DConfig", lambda v: lambda: cfg(target=v), "target", [("out-of-range", "moons", V)],
               pattern=r"target")


optimizer_cases()
energy_cases()
objective_cases()
exact_objective_cases()
target_cases()
reference_optima_cases()
sampler_cases()
experiments2d_cases()


# ------------------------------------------------------------------ divergence catalogue
def divergence_cases():
    """febm_ref.divergences: names, alpha, every element-wise map and the perspective."""
    from febm_ref import divergences as dv
    names = [("None", None, T), ("wrong-type", 3, T), ("object", object(), T), ("out-of-range", "kullback", V),
             ("empty", "", V)]
    add_scalar("get_divergence", lambda v: lambda: dv.get_divergence(v), "name", names,
               pattern=r"divergence name|unknown divergence")
    add_scalar("resolve_divergence", lambda v: lambda: dv.resolve_divergence(v), "divergence", names[:3],
               pattern=r"divergence name")
    alpha_bad = SCALAR_BAD + [("wrong-type", True, T)]
    add_scalar("get_divergence(alpha)", lambda v: lambda: dv.get_divergence("alpha", alpha=v), "alpha",
               [c for c in alpha_bad if c[0] != "None"] + [("None", None, T)])
    add_scalar("Alpha", lambda v: lambda: dv.Alpha(alpha=v), "alpha", alpha_bad)
    add_scalar("all_divergences", lambda v: lambda: dv.all_divergences(alphas=(v,)), "alpha", alpha_bad[:5])
    add("get_divergence:params:wrong-type:0", "wrong-type", lambda: dv.get_divergence("kl", alpha=0.5), T,
        r"takes no parameters")
    add("get_divergence:params:wrong-type:1", "wrong-type", lambda: dv.get_divergence("alpha", alpha=0.5, beta=1.0),
        T, r"unexpected parameter")
    elementwise_bad = [("None", None, T), ("non-numeric", "abc", T), ("non-numeric", ["a", "b"], T),
                       ("complex", COMPLEX_ARR, T), ("complex", 0.5 + 1e-3j, T), ("object", OBJECT_ARR, T),
                       ("non-numeric", [1.0, [2.0, 3.0]], T), ("empty", np.zeros(0), V), ("empty", [], V)]
    maps = (("f", "u"), ("f_prime", "u"), ("f_double_prime", "u"), ("conjugate", "t"), ("g_data", "s"),
            ("g_model", "s"), ("g_data_prime", "s"), ("g_model_prime", "s"))
    for div in (dv.KL(), dv.JensenShannon(), dv.Alpha(alpha=0.3)):
        for meth, arg in maps:
            add_array(f"{div.label}.{meth}", lambda v, m=getattr(div, meth): lambda: m(v), arg, elementwise_bad)
        perspective_bad = elementwise_bad + [("non-finite", np.array([0.0, np.nan]), V),
                                             ("non-finite", np.array([np.inf, 0.0]), V)]
        add_array(f"{div.label}.perspective", lambda v, d=div: lambda: d.perspective(v, np.zeros(2)), "log_p",
                  perspective_bad)
        add_array(f"{div.label}.perspective", lambda v, d=div: lambda: d.perspective(np.zeros(2), v), "log_q",
                  perspective_bad + [("wrong-shape", np.zeros(3), V), ("wrong-shape", np.zeros((2, 3)), V)])


divergence_cases()


# ------------------------------------------------------------------ gaussians (closed forms, quadrature, MC)
def gaussian_cases():
    """febm_ref.gaussians: every argument of every public function (issue 13, point 3)."""
    from febm_ref import gaussians as gs

    m2, s2, ln = np.zeros(2), np.eye(2), gs.gaussian_log_density(0.0, 1.0)
    ln2 = gs.gaussian_log_density(np.zeros(2), np.eye(2))
    bad_cov = [np.eye(3), np.ones((2, 3)), np.zeros(2)]
    pd_bad = [("out-of-range", np.array([[1.0, 0.5], [0.2, 1.0]]), V),      # not symmetric
              ("out-of-range", np.array([[1.0, 2.0], [2.0, 1.0]]), V),      # not positive definite
              ("out-of-range", np.zeros((2, 2)), V)]
    pair = {"mean_p": m2, "cov_p": s2, "mean_q": m2, "cov_q": s2}
    for fname in ("f_divergence", "f_divergence_quadrature_gaussians"):
        fn = getattr(gs, fname)
        for arg in pair:
            def build(v, fn=fn, arg=arg):
                kw = dict(pair, **{arg: v})
                return lambda: fn("kl", kw["mean_p"], kw["cov_p"], kw["mean_q"], kw["cov_q"])
            if arg.startswith("mean"):
                bad = array_bad([np.zeros(3), np.zeros((2, 1))], empty=np.zeros(0))
            else:
                bad = array_bad(bad_cov, nonfinite=False, extra=pd_bad + [("non-finite", np.array(
                    [[1.0, np.nan], [np.nan, 1.0]]), V), ("empty", np.zeros((0, 0)), V)])
            add_array(f"gaussians.{fname}", build, arg, bad)
        add_scalar(f"gaussians.{fname}", lambda v, fn=fn: lambda: fn(v, 0.0, 1.0, 0.0, 1.0), "div",
                   [("None", None, T), ("wrong-type", 3, T), ("out-of-range", "no_such", V)],
                   pattern=r"\bdiv\b|divergence")
        add(f"gaussians.{fname}:variance:out-of-range", "out-of-range",
            lambda fn=fn: fn("kl", 0.0, -1.0, 0.0, 1.0), V, r"\bcov_p\b")
        add(f"gaussians.{fname}:dimension:wrong-shape", "wrong-shape",
            lambda fn=fn: fn("kl", m2, s2, np.zeros(3), np.eye(3)), V, r"mean_q/cov_q have dimension 3")
    add("gaussians.f_divergence:div:no-closed-form", "out-of-range",
        lambda: gs.f_divergence("jensen_shannon", 0.0, 1.0, 0.0, 1.0), V, r"no closed form")
    for arg, bad in (("width", POSITIVE_BAD), ("rtol", POSITIVE_BAD)):
        add_scalar("gaussians.f_divergence_quadrature_gaussians",
                   lambda v, arg=arg: lambda: gs.f_divergence_quadrature_gaussians("kl", 0.0, 1.0, 0.0, 1.0,
                                                                                 **{arg: v}), arg, bad)
    add("gaussians.f_divergence_quadrature_gaussians:dim:out-of-range", "out-of-range",
        lambda: gs.f_divergence_quadrature_gaussians("kl", np.zeros(3), np.eye(3), np.zeros(3), np.eye(3)),
        V, r"dimension 3")
    for fname in ("has_closed_form", "power_exponent"):
        add_scalar(f"gaussians.{fname}", lambda v, f=getattr(gs, fname): lambda: f(v), "div",
                   [("None", None, T), ("wrong-type", 2.0, T)])
    # gaussian_log_density and its callable
    add_array("gaussians.gaussian_log_density", lambda v: lambda: gs.gaussian_log_density(v, s2), "mean",
              array_bad([np.zeros(3)], empty=np.zeros(0)))
    add_array("gaussians.gaussian_log_density", lambda v: lambda: gs.gaussian_log_density(m2, v), "cov",
              array_bad(bad_cov, nonfinite=False, extra=pd_bad))
    add_array("gaussians.log_density", lambda v: lambda: ln2(v), "x",
              array_bad([np.zeros(3), np.zeros((4, 3))], nonfinite=True))
    # generic quadrature in 1-D
    q1 = gs.f_divergence_quadrature_1d
    for arg in ("log_p", "log_q"):
        add_scalar("gaussians.f_divergence_quadrature_1d",
                   lambda v, arg=arg: lambda: q1("kl", **{"log_p": ln, "log_q": ln, arg: v}), arg,
                   [("None", None, T), ("wrong-type", np.zeros(3), T), ("non-numeric", "log", T)])
    limit_bad = [("None", None, T), ("non-numeric", "0", T), ("complex", 1j, T), ("non-finite", float("nan"), V),
                 ("wrong-shape", np.zeros(2), T)]
    add_scalar("gaussians.f_divergence_quadrature_1d", lambda v: lambda: q1("kl", ln, ln, v, 1.0), "lower",
               limit_bad + [("out-of-range", 2.0, V)])
    add_scalar("gaussians.f_divergence_quadrature_1d", lambda v: lambda: q1("kl", ln, ln, -1.0, v), "upper",
               limit_bad + [("out-of-range", -2.0, V)])
    not_none = [c for c in array_bad([np.zeros((2, 2))]) if c[0] != "None"]   # None is the default
    add_array("gaussians.f_divergence_quadrature_1d", lambda v: lambda: q1("kl", ln, ln, points=v), "points",
              not_none)
    for arg in ("rtol", "atol"):
        add_scalar("gaussians.f_divergence_quadrature_1d", lambda v, arg=arg: lambda: q1("kl", ln, ln, **{arg: v}),
                   arg, NONNEG_BAD)
    add_scalar("gaussians.f_divergence_quadrature_1d", lambda v: lambda: q1("kl", ln, ln, limit=v), "limit", INT_BAD)
    add("gaussians.f_divergence_quadrature_1d:log_p:wrong-shape", "wrong-shape",
        lambda: q1("kl", lambda x: np.zeros(2), ln), V, r"\blog_p\b returned shape")
    add("gaussians.f_divergence_quadrature_1d:log_p:complex", "complex",
        lambda: q1("kl", lambda x: np.zeros(1) + 0j, ln), T, r"\blog_p\b must return real")
    add("gaussians.f_divergence_quadrature_1d:log_p:non-finite", "non-finite",
        lambda: q1("kl", lambda x: np.full(1, np.nan), ln), V, r"\blog_p\b returned nan at x =")
    # generic cubature in 2-D
    q2 = gs.f_divergence_quadrature_2d
    box = ([-5.0, -5.0], [5.0, 5.0])
    for k, arg in enumerate(("lower", "upper")):
        def build(v, k=k):
            b = list(box)
            b[k] = v
            return lambda: q2("kl", ln2, ln2, b[0], b[1])
        add_array("gaussians.f_divergence_quadrature_2d", build, arg,
                  array_bad([np.zeros(3), np.zeros((2, 2))], extra=[("out-of-range", [9.0, 9.0] if k == 0
                                                                     else [-9.0, -9.0], V)]))
    for arg in ("breaks_x", "breaks_y"):
        add_array("gaussians.f_divergence_quadrature_2d",
                  lambda v, arg=arg: lambda: q2("kl", ln2, ln2, *box, **{arg: v}), arg, not_none)
    add_scalar("gaussians.f_divergence_quadrature_2d", lambda v: lambda: q2("kl", ln2, v, *box), "log_q",
               [("None", None, T), ("wrong-type", 1.0, T)])
    add_scalar("gaussians.f_divergence_quadrature_2d", lambda v: lambda: q2("kl", ln2, ln2, *box, rtol=v), "rtol",
               NONNEG_BAD)
    add_scalar("gaussians.f_divergence_quadrature_2d",
               lambda v: lambda: q2("kl", ln2, ln2, *box, max_subdivisions=v), "max_subdivisions", INT_BAD)
    add("gaussians.f_divergence_quadrature_2d:log_p:non-finite", "non-finite",
        lambda: q2("kl", lambda x: np.full(x.shape[0], np.inf), ln2, *box), V, r"\blog_p\b returned inf at x =")
    # Monte Carlo
    mc, xs = gs.f_divergence_monte_carlo, np.linspace(-1.0, 1.0, 5)
    add_array("gaussians.f_divergence_monte_carlo", lambda v: lambda: mc("kl", ln, ln, v), "samples",
              array_bad([np.zeros((2, 2, 2))], empty=np.zeros(0)))
    for arg in ("log_p", "log_q", "log_proposal"):
        def build(v, arg=arg):
            kw = dict({"log_p": ln, "log_q": ln, "log_proposal": ln}, **{arg: v})
            return lambda: mc("kl", kw["log_p"], kw["log_q"], xs, kw["log_proposal"])
        add_scalar("gaussians.f_divergence_monte_carlo", build, arg,
                   [("wrong-type", np.zeros(5), T), ("non-numeric", "log", T),
                    ("wrong-shape", lambda x: np.zeros(3), V), ("complex", lambda x: np.zeros(5) + 1j, T),
                    ("non-finite", lambda x: np.full(5, np.nan), V), ("object", lambda x: OBJECT_ARR, T)])
    add("gaussians.f_divergence_monte_carlo:samples:out-of-range", "out-of-range",
        lambda: mc("kl", ln, ln, xs, lambda x: np.full(5, -np.inf)), V, r"proposal density is 0 at the sample")
    mcg = gs.f_divergence_monte_carlo_gaussians
    add_rng("gaussians.f_divergence_monte_carlo_gaussians",
            lambda v: lambda: mcg("kl", 0.0, 1.0, 0.0, 1.0, rng=v, n=10))
    add_scalar("gaussians.f_divergence_monte_carlo_gaussians",
               lambda v: lambda: mcg("kl", 0.0, 1.0, 0.0, 1.0, rng=RNG, n=v), "n", INT_BAD + [("out-of-range", 1, V)])
    add_scalar("gaussians.f_divergence_monte_carlo_gaussians",
               lambda v: lambda: mcg("kl", 0.0, 1.0, 0.0, 1.0, rng=RNG, n=10, proposal=v), "proposal",
               [("None", None, V), ("out-of-range", "w", V), ("wrong-type", 1, V)])
    add_array("gaussians.f_divergence_monte_carlo_gaussians",
              lambda v: lambda: mcg("kl", v, s2, m2, s2, rng=RNG, n=10), "mean_p", array_bad([np.zeros(3)]))


gaussian_cases()


# ------------------------------------------------------------------ classification
_CONTRADICTION = re.compile(r"must[^;]*?(\([^()]*\))[^;]*?got (?:shape )?(\([^()]*\))")


def _raised_in_package(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(PACKAGE_DIR)


def classify(case: Case) -> tuple[str, str]:
    """``("clear" | "unclear" | "silent", detail)`` of one case (module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = case.call()
        except Exception as exc:  # noqa: BLE001 - every exception is classified
            msg = str(exc)
            what = f"{type(exc).__name__}: {msg}"
            if not isinstance(exc, case.exc):
                return "unclear", f"wrong type {what}"
            if not re.search(case.pattern, msg):
                return "unclear", f"message does not match {case.pattern!r}: {what}"
            if not _raised_in_package(exc):
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                return "unclear", f"raised inside {frame.filename}:{frame.lineno}: {what}"
            m = _CONTRADICTION.search(msg)
            if m and m.group(1) == m.group(2):
                return "unclear", f"self-contradicting message: {what}"
            return "clear", what
    return "silent", f"returned {type(out).__name__}: {str(out)[:120]}"


def campaign_counts() -> dict:
    """``{class: Counter(clear=, unclear=, silent=)}`` plus the ``"total"`` row."""
    rows: dict = {}
    for case in CASES:
        verdict, _ = classify(case)
        rows.setdefault(case.cls, Counter())[verdict] += 1
    total = Counter()
    for c in rows.values():
        total.update(c)
    rows["total"] = total
    return rows


def format_counts(rows: dict) -> str:
    lines = [f"{'class':<14}{'tried':>7}{'clear':>7}{'unclear':>9}{'silent':>8}"]
    for cls in sorted(k for k in rows if k != "total") + ["total"]:
        c = rows[cls]
        lines.append(f"{cls:<14}{sum(c.values()):>7}{c['clear']:>7}{c['unclear']:>9}{c['silent']:>8}")
    return "\n".join(lines)


def test_case_table_is_large_and_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert len(CASES) >= 300, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case):
    verdict, detail = classify(case)
    assert verdict == "clear", f"{case.id} [{case.cls}] is {verdict}: {detail}"


def test_campaign_counts(capsys):
    rows = campaign_counts()
    with capsys.disabled():
        print("\nbad-input campaign (tried / clear / unclear / silent):\n" + format_counts(rows))
    assert rows["total"]["silent"] == 0 and rows["total"]["unclear"] == 0, format_counts(rows)


def test_negative_controls_of_the_classifier():
    """The classifier itself can fail: a silent call, a numpy error and a contradicting message."""
    assert classify(Case("c", "x", lambda: 1.0, V, "x"))[0] == "silent"
    assert classify(Case("c", "x", lambda: np.zeros(2) + np.zeros(3), V, "operands"))[0] == "unclear"
    assert classify(Case("c", "x", lambda: float("abc"), V, "float"))[0] == "unclear"

    def clear_one():
        from febm_ref._validation import check_positive_int
        check_positive_int(0, "n")  # raised in the package, with a clear message
    assert classify(Case("c", "x", clear_one, V, r"\bn\b"))[0] == "clear"
    assert _CONTRADICTION.search("x must be (0, 0) for a mean of length 0, got (0, 0)")


# ------------------------------------------------------------------ regressions of the fixes (numerical claims)
def test_ula_stationary_covariance_is_exact_where_the_spectral_radius_rounds_to_one():
    """``Sigma_ii = 1 / (lam_i (1 - eps lam_i / 4))`` for a diagonal precision (closed form, D15).

    Before the fix these raised "unstable ... use step_size < 4e-200" for step_size 1e-201
    (a message contradicting its input): ``1 - eps lam / 2`` rounds to 1 for ``eps lam < 2^-53``.
    The closed form involves one division and one ``1 - small`` per entry: relative error below
    a few ulps, so the tolerance is 4 unit roundoffs.
    """
    u = np.finfo(float).eps / 2
    for lam, eps in (([1e200, 1e-200], 1e-201), ([1e-300, 1e-300], 1.0), ([3.0, 1e-12], 1.0)):
        lam = np.asarray(lam)
        exact_diag = 1.0 / (lam * (1.0 - eps * lam / 4.0))
        got = ula.stationary_covariance(np.diag(lam), eps)
        assert np.all(np.abs(np.diag(got) - exact_diag) <= 4 * u * exact_diag), (got, exact_diag)
        assert got[0, 1] == 0.0 and got[1, 0] == 0.0
    with pytest.raises(ValueError, match="eps lambda_max"):
        ula.stationary_covariance(np.diag([1e200, 1e-200]), 4e-200)


def test_ula_stationary_covariance_agrees_with_a_lyapunov_solver():
    """Independent check of the closed form against scipy's discrete Lyapunov solver on a dense,
    well-conditioned precision (both backward stable; cond(P) = 14, tolerance 1e-12 relative)."""
    import scipy.linalg

    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    P = q @ np.diag([0.5, 2.0, 7.0]) @ q.T
    P = 0.5 * (P + P.T)
    for eps in (0.01, 0.3):
        A = np.eye(3) - 0.5 * eps * P
        reference = scipy.linalg.solve_discrete_lyapunov(A, eps * np.eye(3))
        got = ula.stationary_covariance(P, eps)
        assert np.max(np.abs(got - reference)) <= 1e-12 * np.max(np.abs(reference))


def test_objective_value_equals_the_estimator_loss_and_raises_like_it():
    """``febm_objective_value`` and ``febm_gradient(...).loss`` are the same D8 batch mean (two
    code paths, same float operations up to summation order: 1e-14 relative), and on an
    overflowing ratio both raise the same FloatingPointError (formerly the value was -inf/nan)."""
    rng = np.random.default_rng(4)
    xp, xn = rng.normal(size=(64, 1)), rng.normal(size=(64, 1))
    critic = critics.QuadraticCritic(1, [0.1, -0.2, 0.05])
    for name in ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger"):
        value = ob.febm_objective_value(name, G1, critic, xp, xn)
        loss = ob.febm_gradient(name, G1, critic, xp, xn).loss
        assert abs(value - loss) <= 1e-14 * max(1.0, abs(loss)), (name, value, loss)
    big = critics.QuadraticCritic(1, [800.0, 0.0, 0.0])
    messages = []
    for fn in (ob.febm_objective_value, ob.febm_gradient):
        with pytest.raises(FloatingPointError) as info:
            fn("kl", G1, big, X1, X1)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_mala_and_hmc_accept_exactly_when_u_is_below_the_acceptance_probability():
    """Pre-drawn ``u`` in [0, 1) keep their meaning (accept iff ``u < min(1, alpha)``); the
    boundary values 0 and 1 - 2^-53 are valid, 1 and -0.0 - tiny are not."""
    z = np.full((3, 1), 0.7)
    _, info = mala.step((z, np.zeros(3)), ST1, G1, 0.5)
    prob = info.acceptance_probability
    u = np.array([0.0, np.nextafter(1.0, 0.0), 0.5])
    _, info2 = mala.step((z, u), ST1, G1, 0.5)
    np.testing.assert_array_equal(info2.acceptance_probability, prob)
    assert info2.acceptance_rate == float(np.mean(u < prob))
    for bad in (np.array([1.0, 0.5, 0.5]), np.array([-1e-300, 0.5, 0.5])):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            mala.step((z, bad), ST1, G1, 0.5)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            hmc.step((z, bad), ST1, G1, 0.5, 3)
