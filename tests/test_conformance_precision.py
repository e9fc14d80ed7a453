"""Precision-aware, architecture-agnostic conformance (issue 17): golden sections ``estimator``
and ``sampler_step``, the rounding-error scales, ``--precision``, the per-version golden
cache, :func:`febm_ref.testing.assert_conforms` and the pytest plugin.

Expected values are checked against direct formulas written here from docs/theory.md (the D7 maps
of the divergence table, D13, D14, D15, D16), not against the library. The float32 clients
below are independent NumPy / PyTorch implementations computing in float32.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from febm_ref.conformance.cache import cached_golden_dir
from febm_ref.conformance.checker import check_adapter, format_table, load_golden
from febm_ref.conformance.tolerance import SAFETY, case_scale, compare

ROOT = Path(__file__).resolve().parents[1]
U64 = 2.0 ** -53


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory, shared_golden_root) -> Path:
    """A private golden cache of this module (its tests corrupt and rebuild it), seeded with a
    copy of the session's set (conftest.py) so that it is not built a second time."""
    root = tmp_path_factory.mktemp("golden-cache")
    for built in shared_golden_root.iterdir():
        if built.is_dir() and not built.name.startswith("."):
            shutil.copytree(built, root / built.name)
    return root


@pytest.fixture(scope="module")
def golden(cache_root) -> Path:
    return cached_golden_dir(0, root=cache_root, quiet=True)


@pytest.fixture(scope="module")
def sections(golden) -> dict:
    _, loaded = load_golden(golden)
    return {section.name: section for section in loaded}


def _value(ref, arrays):
    return arrays[ref["array"]] if "array" in ref else np.asarray(ref["value"], dtype=np.float64)


def _rows(report):
    return {f"{row.section}.{row.quantity}": row for row in report.rows}


# ----------------------------------------------------------------------------- direct formulas

def direct_maps(name, params, s, xp=np):
    """(g_data, g_model, g_data', g_model') of the docs/theory.md table, in the dtype of ``s``."""
    one = xp.ones_like(s)
    log2 = math.log(2.0)
    if name == "kl":
        return 1 + s, xp.exp(s), one, xp.exp(s)
    if name == "reverse_kl":
        return -xp.exp(-s), s - 1, xp.exp(-s), one
    if name == "jensen_shannon":
        softplus = xp.logaddexp(s, 0 * s)
        sig = 1 / (1 + xp.exp(-s))
        return log2 + s - softplus, softplus - log2, 1 - sig, sig
    if name == "squared_hellinger":
        return 1 - xp.exp(-s / 2), xp.exp(s / 2) - 1, xp.exp(-s / 2) / 2, xp.exp(s / 2) / 2
    if name == "pearson_chi2":
        return 2 * (xp.exp(s) - 1), xp.exp(2 * s) - 1, 2 * xp.exp(s), 2 * xp.exp(2 * s)
    if name == "neyman_chi2":
        return 1 - xp.exp(-2 * s), 2 - 2 * xp.exp(-s), 2 * xp.exp(-2 * s), 2 * xp.exp(-s)
    a = params["alpha"]
    if a == 0.0:
        return 1 - xp.exp(-s), s, xp.exp(-s), one
    if a == 1.0:
        return s, xp.exp(s) - 1, one, xp.exp(s)
    return (xp.exp((a - 1) * s) - 1) / (a - 1), (xp.exp(a * s) - 1) / a, xp.exp((a - 1) * s), xp.exp(a * s)


def direct_estimator(name, params, e_pos, e_neg, h_pos, h_neg, lam):
    """D13 + D14 weights and values, written from the definitions."""
    r_pos, r_neg = h_pos + e_pos, h_neg + e_neg
    gd, _, gdp, _ = direct_maps(name, params, r_pos)
    _, gm, _, gmp = direct_maps(name, params, r_neg)
    n_pos, n_neg = e_pos.shape[0], e_neg.shape[0]
    energy = ((gdp + 2 * lam * e_pos) / n_pos, (-gmp + gm - np.mean(gm) + 2 * lam * e_neg) / n_neg)
    critic = ((-gdp + 2 * lam * h_pos) / n_pos, (gmp + 2 * lam * h_neg) / n_neg)
    L = np.mean(gd) - np.mean(gm)
    losses = (L, L + lam * (np.mean(e_pos ** 2) + np.mean(e_neg ** 2)),
              -L + lam * (np.mean(h_pos ** 2) + np.mean(h_neg ** 2)))
    return energy, critic, losses


def direct_ula(x, grad_x, noise, step_size):
    return x - 0.5 * step_size * grad_x + math.sqrt(step_size) * noise


def direct_d16(x, grad_x, noise, step_size, noise_scale, grad_clip, box):
    g = grad_x if grad_clip is None else np.clip(grad_x, -grad_clip, grad_clip)
    y = x + noise_scale * noise - step_size * g
    return y if box is None else np.clip(y, box[0], box[1])


def test_estimator_golden_values_equal_the_direct_formulas_within_their_float64_bound(sections):
    """Every weight and loss value of the golden set (the library's estimator on the identity
    model) agrees with D13/D14 written out here, within SAFETY u64 S, the float64 bound the
    golden file states (so the bound also covers two float64 evaluations in different order)."""
    section = sections["estimator"]
    n_cases = 0
    for case in section.document["cases"]:
        args = {k: (section.arrays[v["array"]] if isinstance(v, dict) and "array" in v else v)
                for k, v in case["args"].items()}
        energy, critic, losses = direct_estimator(args["name"], args["params"], args["e_pos"], args["e_neg"],
                                                  args["h_pos"], args["h_neg"], args["l2_weight"])
        direct = {"febm_energy_weights": energy, "febm_critic_weights": critic,
                  "febm_loss_values": losses}[case["function"]][case["output"]]
        expected = _value(case["expected"], section.arrays)
        bound = SAFETY * U64 * case_scale(case, section.arrays) + 1e-300
        assert np.all(np.abs(direct - expected) <= bound), (case["id"], np.max(np.abs(direct - expected) / bound))
        n_cases += 1
    assert n_cases == len(section.document["cases"]) > 400
    r = section.document["metadata"]["r_range"]
    assert r["n16x12"] == [-30.0, 30.0] and r["n4096x4096"] == [-30.0, 30.0]
    sizes = {(c["args"]["e_pos"]["array"].split("/")[0]) for c in section.document["cases"]}
    assert sizes == {"n1x1", "n3x2", "n16x12", "n64x48", "n4096x4096"}
    assert max(abs(v) for v in r["n64x48"]) < 5.5


def test_a_single_sample_batch_has_no_covariance_weight(sections):
    """n- = 1: the covariance weight g_model(r-) - <g_model(r-)> is exactly 0 (D13)."""
    section = sections["estimator"]
    for case in section.document["cases"]:
        if case["id"].startswith("n1x1/kl/l2=0/energy_weights/neg"):
            e_neg = section.arrays["n1x1/e_neg"]
            h_neg = section.arrays["n1x1/h_neg"]
            assert _value(case["expected"], section.arrays)[0] == -np.exp(e_neg[0] + h_neg[0])
            return
    raise AssertionError("case not found")


def test_sampler_step_golden_values_equal_the_direct_formulas(sections):
    section = sections["sampler_step"]
    for case in section.document["cases"]:
        args = {k: (section.arrays[v["array"]] if isinstance(v, dict) and "array" in v else v)
                for k, v in case["args"].items()}
        fn = direct_ula if case["function"] == "ula_step" else direct_d16
        direct = fn(*args.values())
        expected = _value(case["expected"], section.arrays)
        bound = SAFETY * U64 * case_scale(case, section.arrays)
        assert np.all(np.abs(direct - expected) <= bound), case["id"]
    activity = section.document["metadata"]["clipping_activity"]["d16_clipped"]
    assert 0 < activity["fraction_grad_clipped"] < 1 and 0 < activity["fraction_box_clipped"] < 1


# ----------------------------------------------------------------------------- float32 clients

def numpy_client(dtype=np.float32, **bugs):
    """The architecture-agnostic protocol functions in NumPy, computing in ``dtype``.

    ``bugs`` switch on realistic mistakes: ``g_model_offset`` (a constant added to g_model),
    ``no_covariance``, ``clip`` (exponents clipped to [-5, 5]), ``half`` (r cast to float16),
    ``bessel`` (covariance / (n - 1)), ``l2_score`` (a score term for the l2 penalty of the
    negatives), ``ula_no_half`` (gradient step eps instead of eps/2), ``ula_sqrt2`` (noise
    sqrt(2 eps))."""
    def cast(*values):
        return [np.asarray(v, dtype=dtype) for v in values]

    def maps(name, params, s):
        if bugs.get("half"):
            s = s.astype(np.float16).astype(dtype)
        if bugs.get("clip"):
            s = np.clip(s, dtype(-5), dtype(5))
        gd, gm, gdp, gmp = direct_maps(name, params, s)
        return gd, gm + dtype(bugs.get("g_model_offset", 0.0)), gdp, gmp

    def weights(name, params, e_pos, e_neg, h_pos, h_neg, l2_weight):
        e_pos, e_neg, h_pos, h_neg = cast(e_pos, e_neg, h_pos, h_neg)
        lam = dtype(l2_weight)
        _, _, gdp, _ = maps(name, params, h_pos + e_pos)
        _, gm, _, gmp = maps(name, params, h_neg + e_neg)
        n_pos, n_neg = e_pos.shape[0], e_neg.shape[0]
        cov = np.zeros_like(gm) if bugs.get("no_covariance") else gm - np.mean(gm)
        if bugs.get("bessel") and n_neg > 1:
            cov = cov * dtype(n_neg / (n_neg - 1))
        w_neg = (-gmp + cov + 2 * lam * e_neg) / n_neg
        if bugs.get("l2_score"):
            w_neg = w_neg + lam * (e_neg ** 2 - np.mean(e_neg ** 2)) / n_neg
        return ((gdp + 2 * lam * e_pos) / n_pos, w_neg), ((-gdp + 2 * lam * h_pos) / n_pos,
                                                          (gmp + 2 * lam * h_neg) / n_neg)

    def febm_loss_values(name, params, e_pos, e_neg, h_pos, h_neg, l2_weight):
        e_pos, e_neg, h_pos, h_neg = cast(e_pos, e_neg, h_pos, h_neg)
        lam = dtype(l2_weight)
        gd = maps(name, params, h_pos + e_pos)[0]
        gm = maps(name, params, h_neg + e_neg)[1]
        L = np.mean(gd) - np.mean(gm)
        return (L, L + lam * (np.mean(e_pos ** 2) + np.mean(e_neg ** 2)),
                -L + lam * (np.mean(h_pos ** 2) + np.mean(h_neg ** 2)))

    def ula_step(x, grad_x, noise, step_size):
        x, grad_x, noise = cast(x, grad_x, noise)
        eps = dtype(step_size)
        drift = eps if bugs.get("ula_no_half") else eps / 2
        kick = np.sqrt(2 * eps) if bugs.get("ula_sqrt2") else np.sqrt(eps)
        return x - drift * grad_x + kick * noise

    def decoupled_langevin_step(x, grad_x, noise, step_size, noise_scale, grad_clip, box):
        x, grad_x, noise = cast(x, grad_x, noise)
        g = grad_x if grad_clip is None else np.clip(grad_x, dtype(-grad_clip), dtype(grad_clip))
        y = x + dtype(noise_scale) * noise - dtype(step_size) * g
        return y if box is None else np.clip(y, dtype(box[0]), dtype(box[1]))

    return types.SimpleNamespace(
        febm_energy_weights=lambda *a: weights(*a)[0], febm_critic_weights=lambda *a: weights(*a)[1],
        febm_loss_values=febm_loss_values, ula_step=ula_step, decoupled_langevin_step=decoupled_langevin_step)


AGNOSTIC = ("estimator", "sampler_step")


def _agnostic_rows(report):
    return {k: r for k, r in _rows(report).items() if k.split(".")[0] in AGNOSTIC}


def test_a_float32_client_passes_in_float32_and_fails_in_float64(golden):
    rows32 = _agnostic_rows(check_adapter(numpy_client(), golden, precision="float32"))
    assert len(rows32) == 9 and all(r.status == "pass" for r in rows32.values()), \
        {k: (r.status, r.message) for k, r in rows32.items() if r.status != "pass"}
    assert max(r.worst_ratio for r in rows32.values()) < 0.5
    rows_auto = _agnostic_rows(check_adapter(numpy_client(), golden, precision="auto"))
    assert all(r.status == "pass" and r.precision == "float32" for r in rows_auto.values())
    rows64 = _agnostic_rows(check_adapter(numpy_client(), golden, precision="float64"))
    assert all(r.status == "FAIL" and r.worst_ratio > 1e3 for r in rows64.values()), \
        {k: (r.status, r.worst_ratio) for k, r in rows64.items()}
    rows64 = _agnostic_rows(check_adapter(numpy_client(np.float64), golden, precision="float64"))
    assert all(r.status == "pass" for r in rows64.values())


@pytest.mark.parametrize("bug, failing", [
    ("g_model_offset", {"estimator.objective_value", "estimator.energy_loss+l2", "estimator.critic_loss+l2"}),
    ("no_covariance", {"estimator.energy_weights", "estimator.energy_weights+l2"}),
    ("clip", {"estimator.energy_weights", "estimator.energy_weights+l2", "estimator.critic_weights",
              "estimator.critic_weights+l2", "estimator.objective_value", "estimator.energy_loss+l2",
              "estimator.critic_loss+l2"}),
    ("bessel", {"estimator.energy_weights", "estimator.energy_weights+l2"}),
    ("l2_score", {"estimator.energy_weights+l2"}),
    ("ula_no_half", {"sampler_step.ula_step"}),
    ("ula_sqrt2", {"sampler_step.ula_step"}),
])
def test_float32_tolerances_still_reject_real_bugs(golden, bug, failing):
    """Negative controls in float32: each bug fails exactly the rows that see it (a constant
    offset in g_model is invisible to every weight and caught by the loss values)."""
    value = 1.0 if bug == "g_model_offset" else True
    rows = _agnostic_rows(check_adapter(numpy_client(**{bug: value}), golden, precision="float32"))
    assert {k for k, r in rows.items() if r.status != "pass"} == failing
    assert all(rows[k].status == "FAIL" and rows[k].worst_ratio > 10 for k in failing)


def test_a_float16_cast_in_the_middle_fails_in_float32(golden):
    """r rounded to float16 (relative 2^-11) is rejected by every estimator row in float32, by
    orders of magnitude for the weights; the loss values see it in the batch of moderate log
    ratios (n64x48: elsewhere the |r| = 30 terms dominate their scale)."""
    rows = _agnostic_rows(check_adapter(numpy_client(half=True), golden, precision="float32"))
    failing = {k.split(".")[1] for k, r in rows.items() if r.status == "FAIL"}
    assert failing == {"energy_weights", "critic_weights", "energy_weights+l2", "critic_weights+l2",
                       "objective_value", "energy_loss+l2", "critic_loss+l2"}
    assert min(rows[f"estimator.{k}"].worst_ratio for k in ("energy_weights", "critic_weights")) > 100
    assert "n64x48" in rows["estimator.objective_value"].worst_case


def _torch_client(dtype, softplus="exact"):
    """Weights by autograd of the stop-gradient surrogates (docs/conformance.md), in torch."""
    torch = pytest.importorskip("torch")

    def maps(name, params, s):
        if name == "jensen_shannon":
            sp = torch.logaddexp(s, torch.zeros_like(s)) if softplus == "exact" else torch.nn.functional.softplus(s)
            return math.log(2.0) + s - sp, sp - math.log(2.0)
        gd, gm, _, _ = direct_maps(name, params, s, xp=torch)
        return gd, gm

    def tensors(*values):
        return [torch.tensor(np.asarray(v), dtype=dtype, requires_grad=True) for v in values]

    def surrogates(name, params, e_pos, e_neg, h_pos, h_neg, lam):
        e_pos, e_neg, h_pos, h_neg = tensors(e_pos, e_neg, h_pos, h_neg)
        gm_sg = maps(name, params, (h_neg + e_neg).detach())[1]
        energy = (maps(name, params, h_pos.detach() + e_pos)[0].mean()
                  - maps(name, params, h_neg.detach() + e_neg)[1].mean()
                  + ((gm_sg - gm_sg.mean()) * e_neg).mean()
                  + lam * ((e_pos ** 2).mean() + (e_neg ** 2).mean()))
        critic = (-(maps(name, params, h_pos + e_pos.detach())[0].mean()
                    - maps(name, params, h_neg + e_neg.detach())[1].mean())
                  + lam * ((h_pos ** 2).mean() + (h_neg ** 2).mean()))
        return energy, critic, (e_pos, e_neg, h_pos, h_neg)

    def febm_energy_weights(*args):
        energy, _, (e_pos, e_neg, _, _) = surrogates(*args)
        return tuple(g.detach() for g in torch.autograd.grad(energy, (e_pos, e_neg)))

    def febm_critic_weights(*args):
        _, critic, (_, _, h_pos, h_neg) = surrogates(*args)
        return tuple(g.detach() for g in torch.autograd.grad(critic, (h_pos, h_neg)))

    def febm_loss_values(name, params, e_pos, e_neg, h_pos, h_neg, lam):
        e_pos, e_neg, h_pos, h_neg = (torch.tensor(np.asarray(v), dtype=dtype) for v in (e_pos, e_neg, h_pos, h_neg))
        L = maps(name, params, h_pos + e_pos)[0].mean() - maps(name, params, h_neg + e_neg)[1].mean()
        return (L, L + lam * ((e_pos ** 2).mean() + (e_neg ** 2).mean()),
                -L + lam * ((h_pos ** 2).mean() + (h_neg ** 2).mean()))

    return types.SimpleNamespace(febm_energy_weights=febm_energy_weights, febm_critic_weights=febm_critic_weights,
                                 febm_loss_values=febm_loss_values)


def test_torch_stop_gradient_surrogates_give_the_golden_weights_in_float64_and_float32(golden):
    """The documented surrogates S_E, S_H differentiated by torch autograd reproduce the golden
    per-sample weights (stop-gradient semantics, l2 on the negatives pathwise only)."""
    torch = pytest.importorskip("torch")
    for dtype, precision in ((torch.float64, "float64"), (torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
        report = check_adapter(_torch_client(dtype), golden, precision="auto")
        assert report.precision == precision  # auto: the dtype of the returned tensors
        rows = {k: r for k, r in _agnostic_rows(report).items() if k.startswith("estimator")}
        assert len(rows) == 7 and all(r.status == "pass" for r in rows.values()), \
            (precision, {k: (r.status, r.message) for k, r in rows.items() if r.status != "pass"})


def test_torch_thresholded_softplus_is_caught_in_float64(golden):
    """torch.nn.functional.softplus returns s for s > 20 (error e^-s): the golden log ratios
    20.5 and 25 expose it through the Jensen-Shannon rows in float64."""
    torch = pytest.importorskip("torch")
    rows = _agnostic_rows(check_adapter(_torch_client(torch.float64, softplus="torch"), golden, precision="float64"))
    assert rows["estimator.objective_value"].status == "FAIL"
    assert "jensen_shannon" in rows["estimator.objective_value"].message


# ----------------------------------------------------------------------------- the comparison

def test_compare_semantics():
    e = np.array([1.0, 1e300, -1e300, 1e-300, math.inf, 2.0])
    S = np.array([1.0, 1e300, 1e300, 0.0, 0.0, 1.0])
    ok = compare([1.0 + 1e-7, math.inf, -math.inf, 0.0, math.inf, 2.0], e, rtol=1e-12, atol=0.0,
                 precision="float32", scale=S).ok
    assert ok.tolist() == [True, True, True, True, True, True]  # overflow to inf, underflow to 0
    bad = compare([1.0 + 1e-6, -math.inf, math.inf, math.nan, 1e308, math.nan], e, rtol=1e-12, atol=0.0,
                  precision="float32", scale=S)
    assert not bad.ok.any()
    # float64: the golden floor wins where the bound is smaller (0.1 tolerances unchanged)
    cmp64 = compare([1.0], [1.0], rtol=1e-12, atol=1e-14, precision="float64", scale=[1.0])
    assert cmp64.allowed[0] == 1e-14 + 1e-12
    # order 1/2 (minimisers) and a limit that leaves late elements out
    half = compare([1.0 + 1e-4], [1.0], rtol=0.0, atol=0.0, precision="float32", scale=[1.0], order=0.5)
    assert half.ok[0] and abs(half.allowed[0] - SAFETY * 2.0 ** -12) < 1e-12
    limited = compare([0.0, 5.0], [0.0, 0.0], rtol=0.0, atol=0.0, precision="float32", scale=[1.0, 1e9], limit=1.0)
    assert limited.ok.all() and limited.n_not_compared == 1
    with pytest.raises(ValueError, match="precision must be one of"):
        compare([1.0], [1.0], rtol=0, atol=0, precision="float8")


def test_float64_tolerances_of_the_0_1_sections_are_unchanged(sections):
    """The derived float64 bound SAFETY u64 S stays below the 0.1 golden tolerance in every
    0.1 section except optima (minimiser: sqrt(u) bound, <= 1.2x), the D17 eigenvalues
    (<= 4x on near-zero imaginary parts) and 8 catalogue values of g_data / g_model at
    |s| >= 25 (values ~0 from formulas with terms of size |s|: <= 32x the 0.1 atol)."""
    limits = {"catalogue": 1.0, "gaussians": 1.0, "mlp": 1.0, "objective": 1.0, "langevin": 1.0,
              "optima": 1.2, "convergence": 4.0}
    s_grid = sections["catalogue"].arrays["s"]
    for name, limit in limits.items():
        section = sections[name]
        tolerances = section.document["tolerances"]
        worst = 0.0
        for case in section.document["cases"]:
            if name == "catalogue" and case["quantity"] in ("g_data", "g_model"):
                e = _value(case["expected"], section.arrays)
                tol = tolerances[case["tolerance"]]
                ratio = SAFETY * U64 * case_scale(case, section.arrays) / (tol["atol"] + tol["rtol"] * np.abs(e))
                ratio = np.where(np.isfinite(e), ratio, 0.0)
                assert np.all(ratio[np.abs(s_grid) < 25] <= 1.0) and np.max(ratio) <= 32.0, case["id"]
                continue
            e = _value(case["expected"], section.arrays)
            tol = tolerances[case["tolerance"]]
            tight = tol["atol"] + tol["rtol"] * np.abs(e)
            u = U64 ** case.get("order", 1.0)
            bound = SAFETY * u * case_scale(case, section.arrays)
            finite = np.isfinite(e)
            worst = max(worst, float(np.max(np.where(finite, bound / np.where(tight > 0, tight, 1e-300), 0.0))))
        assert worst <= limit, (name, worst)


def test_long_float32_trajectory_is_compared_on_its_informative_steps(sections):
    meta = sections["langevin"].document["metadata"]["informative_steps"]
    assert meta["float64"] == 60 and 5 < meta["float32"] < 60 and meta["bfloat16"] < meta["float32"]


def test_softplus_preactivations_above_20_are_in_the_mlp_inputs(sections):
    assert sections["mlp"].document["metadata"]["max_first_layer_preactivation"]["softplus"] > 20


# ----------------------------------------------------------------------------- cache, testing, plugin, versions

def test_golden_cache_is_built_once_validated_and_rebuilt_if_corrupted(shared_golden_root, tmp_path,
                                                                      golden_builds_only):
    """Reuse, validation, rebuild after corruption, permissions and pruning of the cache.

    The cache starts as a copy of the session's full set; its two rebuilds write only the
    sections ``catalogue`` and ``sampler_step`` (0.05 s instead of ~5 s each). Each section
    draws from its own stream ``default_rng([seed, section])``, so the rebuilt
    ``sampler_step.json`` must be the full set's bytes. The claim here is the cache's logic;
    the bytes of a full build are claimed by
    ``test_conformance.py::test_golden_is_byte_for_byte_reproducible``."""
    from febm_ref import __version__

    (built,) = [p for p in shared_golden_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    cache_root = tmp_path / "cache"
    golden = cache_root / built.name
    shutil.copytree(built, golden)
    rebuilds = golden_builds_only("catalogue", "sampler_step")
    assert golden.parent == cache_root and golden.name.startswith(f"{__version__}-schema0.2.0-seed0-")
    stamp = (golden / "manifest.json").stat().st_mtime_ns
    assert cached_golden_dir(0, root=cache_root, quiet=True) == golden
    assert (golden / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["febm_ref_version"] == __version__ and manifest["schema_version"] == "0.2.0"
    assert manifest["source_revision"] == "unknown" or len(manifest["source_revision"].split("-")[0]) == 40
    victim = golden / "sampler_step.json"
    original = victim.read_bytes()
    victim.write_bytes(original.replace(b"ULA", b"ulA", 1))
    assert cached_golden_dir(0, root=cache_root, quiet=True) == golden
    assert victim.read_bytes() == original
    assert not [p for p in cache_root.iterdir() if p.name.startswith(".building-")]
    umask = os.umask(0)
    os.umask(umask)
    assert golden.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700: the cache may be shared
    stale = cache_root / (golden.name.rsplit("-", 1)[0] + "-0123456789abcdef")
    stale.mkdir()
    os.utime(stale, (0, 0))
    victim.write_bytes(b"corrupt")  # forces a rebuild, which prunes the stale sibling
    cached_golden_dir(0, root=cache_root, quiet=True)
    assert not stale.exists()
    assert rebuilds == [0, 0]  # built exactly twice: after each corruption, never on reuse


def test_assert_conforms_passes_raises_with_the_table_and_checks_its_arguments(golden):
    from febm_ref.testing import assert_conforms

    assert_conforms(numpy_client(), quantities=["estimator", "sampler_step"], precision="float32", golden=golden)
    with pytest.raises(AssertionError) as info:
        assert_conforms(numpy_client(no_covariance=True), quantities=["estimator"], precision="float32",
                        golden=golden)
    text = str(info.value)
    assert "estimator.energy_weights: FAIL" in text and "err/tol" in text and "FAILED:" in text
    assert "sampler_step" not in text  # only the selected rows are printed
    with pytest.raises(AssertionError, match="skipped"):
        assert_conforms(numpy_client(), quantities=["mlp"], precision="float32", golden=golden)
    assert_conforms(numpy_client(), quantities=["mlp.energy"], golden=golden, allow_skipped=True)
    with pytest.raises(ValueError, match="not in the golden set"):
        assert_conforms(numpy_client(), quantities=["estimater"], golden=golden)


def test_pytest_plugin_fixture_hands_the_golden_set_to_a_test(cache_root, golden, tmp_path):
    import tomllib

    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry == {"febm_ref": "febm_ref.pytest_plugin"}
    test_file = tmp_path / "test_user.py"
    test_file.write_text(
        "def test_golden(febm_golden):\n"
        "    assert (febm_golden / 'manifest.json').is_file()\n"
        "    assert (febm_golden / 'estimator.npz').is_file()\n")
    from importlib.metadata import distributions

    env = dict(os.environ, FEBM_REF_GOLDEN_CACHE=str(cache_root), PYTHONPATH=str(ROOT))
    # pytest loads the pytest11 entry points of *every* distribution on the path (as pluggy
    # does), so a stale egg-info next to an installed one must not hide the installed plugin.
    installed = any(ep.group == "pytest11" and ep.value == "febm_ref.pytest_plugin"
                    for dist in distributions() for ep in dist.entry_points)
    load = [] if installed else ["-p", "febm_ref.pytest_plugin"]  # not yet pip-installed: load it by name
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", *load, "-p", "no:cacheprovider", str(test_file)],
                            check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_versions_and_changelog_agree():
    import tomllib

    from febm_ref import __version__

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"] == __version__ == "0.2.0"
    assert "## 0.2.0" in (ROOT / "CHANGELOG.md").read_text()


def test_table_states_the_precision(golden):
    report = check_adapter(numpy_client(), golden, precision="float32")
    assert "precision: float32" in format_table(report)


def test_the_torch_example_with_FEBM_TORCH_DTYPE_float32_passes_every_row_it_implements(golden, monkeypatch):
    """The PyTorch example imported with ``FEBM_TORCH_DTYPE=float32`` (every model-based function
    in float32) passes every row it implements at --precision auto, which detects float32.
    This includes ``optima``: the example's first float32 run failed it (err/tol 20 and 855)
    on two real float32 bugs of its quadrature, which the rows caught: the integrand was
    masked after the exp (``torch.where(isfinite(...))``: the discarded inf gives a NaN
    gradient, BFGS stopped at its starting point) and the node spacing was ``x[1] - x[0]``
    (off by 2e-4 relative in float32). ~3 s: it runs the whole example once."""
    pytest.importorskip("torch")
    import importlib.util

    monkeypatch.setenv("FEBM_TORCH_DTYPE", "float32")
    spec = importlib.util.spec_from_file_location("_torch_adapter_float32", ROOT / "examples" / "torch_adapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert str(module.DTYPE) == "torch.float32"
    report = check_adapter(module, golden, precision="auto")
    assert report.precision == "float32"
    rows = _rows(report)
    assert not [k for k, r in rows.items() if r.status not in ("pass", "skipped")], \
        {k: r.message for k, r in rows.items() if r.status not in ("pass", "skipped")}
    assert sum(r.status == "pass" for r in rows.values()) == 45
    assert rows["optima.optimum"].worst_ratio < 0.1 and rows["optima.divergence_at_optimum"].worst_ratio < 1.0
    assert "beyond the float32 range" in rows["catalogue.g_model"].message
    _, loaded = load_golden(golden)
    steps = {sec.name: sec for sec in loaded}["langevin"].document["metadata"]["informative_steps"]["float32"]
    assert f"compared on steps 1..{steps} of 60" in rows["langevin.ula_long"].message
    monkeypatch.setenv("FEBM_TORCH_DTYPE", "float16")
    with pytest.raises(ValueError, match="FEBM_TORCH_DTYPE must be float64 or float32"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
