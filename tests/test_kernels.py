"""Numba MLP kernels against their NumPy twins (febm_ref._numba.kernels).

The twins are vectorised matrix code written independently of the per-point loops of the
kernels; agreement to 1e-12 (relative to the size of the numbers) checks the loops, the
flat-layout offsets and the work-buffer slicing. Derivative correctness itself is checked
against complex step / finite differences in tests/test_energies.py.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from febm_ref._numba import kernels as K
from febm_ref._numba.jit import njit
from febm_ref.models import mlp as M

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-12


def _close(a, b, tol=TOL):
    scale = max(1.0, float(np.max(np.abs(b))) if np.size(b) else 1.0)
    return float(np.max(np.abs(a - b))) / scale if np.size(b) else 0.0


architectures = st.fixed_dictionaries({
    "dim": st.integers(1, 4),
    "hidden": st.lists(st.integers(1, 9), min_size=1, max_size=3),
    "act": st.integers(0, 3),
    "n": st.integers(0, 6),
    "seed": st.integers(0, 2**32 - 1),
    "scale": st.floats(0.1, 3.0),
})


def _case(arch):
    rng = np.random.default_rng(arch["seed"])
    sizes = np.array([arch["dim"], *arch["hidden"], 1], dtype=np.int64)
    params = arch["scale"] * rng.standard_normal(K.mlp_n_params(sizes))
    X = 2.0 * rng.standard_normal((arch["n"], arch["dim"]))
    w = rng.standard_normal(arch["n"])
    return params, sizes, arch["act"], X, w


@settings(max_examples=40, deadline=None)
@given(architectures)
def test_batch_kernels_match_numpy_twins(arch):
    params, sizes, act, X, w = _case(arch)
    e_nb, g_nb = K.mlp_energy_grad_x_batch(params, sizes, act, X)
    e_np, g_np = M.mlp_energy_grad_x_batch_numpy(params, sizes, act, X)
    assert _close(e_nb, e_np) <= TOL
    assert _close(K.mlp_energy_batch(params, sizes, act, X), e_np) <= TOL
    assert _close(g_nb, g_np) <= TOL
    G_nb = K.mlp_grad_params_batch(params, sizes, act, X)
    G_np = M.mlp_grad_params_batch_numpy(params, sizes, act, X)
    assert G_nb.shape == (X.shape[0], params.size)
    assert _close(G_nb, G_np) <= TOL
    wg_nb = K.mlp_weighted_grad_params(params, sizes, act, X, w)
    wg_np = M.mlp_weighted_grad_params_numpy(params, sizes, act, X, w)
    # the fused weighted pass equals the weighted sum of the per-sample gradients
    assert _close(wg_nb, wg_np) <= TOL
    assert _close(wg_nb, w @ G_np) <= TOL


@njit
def _loop_over_points(params, sizes, act, X, work):
    """How a Langevin kernel uses the per-point functions: one work buffer, no allocation."""
    n, d = X.shape
    energies = np.empty(n)
    energies_fwd = np.empty(n)
    grads = np.empty((n, d))
    for k in range(n):
        energies[k] = K.mlp_energy_and_grad_x_point(params, sizes, act, X[k], grads[k], work)
        energies_fwd[k] = K.mlp_energy_point(params, sizes, act, X[k], work)
    return energies, energies_fwd, grads


@pytest.mark.parametrize("act", sorted(K.ACTIVATION_NAMES))
def test_per_point_kernels_callable_from_njit(act):
    rng = np.random.default_rng(act)
    sizes = np.array([2, 7, 3, 5, 1], dtype=np.int64)
    params = rng.standard_normal(K.mlp_n_params(sizes))
    X = rng.standard_normal((11, 2))
    work = np.full(K.mlp_work_size(sizes), np.nan)
    energies, energies_fwd, grads = _loop_over_points(params, sizes, act, X, work)
    e_np, g_np = M.mlp_energy_grad_x_batch_numpy(params, sizes, act, X)
    assert _close(energies, e_np) <= TOL
    assert _close(energies_fwd, e_np) <= TOL
    assert _close(grads, g_np) <= TOL


def test_work_size_formula():
    sizes = np.array([3, 10, 4, 1], dtype=np.int64)
    assert K.mlp_work_size(sizes) == 2 * (10 + 4) + 2 * 10
    assert K.mlp_n_params(sizes) == (3 + 1) * 10 + (10 + 1) * 4 + (4 + 1) * 1


def test_flat_layout_is_row_major_weight_then_bias():
    """An independent evaluation from the documented layout (W_l (fan_in, fan_out) C order, then b_l)."""
    rng = np.random.default_rng(7)
    sizes = np.array([2, 3, 1], dtype=np.int64)
    p = rng.standard_normal(K.mlp_n_params(sizes))
    x = rng.standard_normal(2)
    W0, b0, W1, b1 = p[:6].reshape(2, 3), p[6:9], p[9:12], p[12]
    expected = sum(np.tanh(x[0] * W0[0, j] + x[1] * W0[1, j] + b0[j]) * W1[j] for j in range(3)) + b1
    assert abs(K.mlp_energy_batch(p, sizes, 0, x[None, :])[0] - expected) <= 1e-14


def test_activation_names_and_validation():
    assert K.activation_code("silu") == 2
    with pytest.raises(ValueError, match="tanh, softplus, silu, elu"):
        K.activation_code("relu")
    good = np.zeros(K.mlp_n_params([2, 3, 1]))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        K.check_mlp_spec(np.zeros(3), [2, 1], 0)
    with pytest.raises(ValueError, match="shape"):
        K.check_mlp_spec(good[:-1], [2, 3, 1], 0)
    with pytest.raises(ValueError, match="non-finite"):
        K.check_mlp_spec(np.where(np.arange(good.size) == 0, np.nan, good), [2, 3, 1], 0)
    with pytest.raises(ValueError, match="unknown activation code"):
        K.check_mlp_spec(good, [2, 3, 1], 9)


def test_activation_stable_at_large_arguments():
    """No overflow at |z| = 800; softplus(-30) keeps full relative accuracy (log1p form)."""
    z = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for act in range(4):
            a, da = M.activation_numpy(act, z)
            assert np.all(np.isfinite(a)) and np.all(np.isfinite(da))
    a, da = M.activation_numpy(1, z)
    series = np.exp(-30.0) - np.exp(-60.0) / 2 + np.exp(-90.0) / 3  # log1p(t) Taylor series, t = e^-30
    assert a[-1] == 800.0 and abs(a[1] - series) <= 1e-15 * series
    assert abs(da[1] - 1.0 / (1.0 + np.exp(30.0))) <= 1e-15 * da[1]


_DISABLED_JIT_SCRIPT = textwrap.dedent("""
    import numpy as np
    import numba
    from febm_ref._numba import kernels as K
    from febm_ref.models import mlp as M
    assert numba.config.DISABLE_JIT
    rng = np.random.default_rng(3)
    sizes = np.array([3, 4, 5, 1], dtype=np.int64)
    worst = 0.0
    for act in range(4):
        p = rng.standard_normal(K.mlp_n_params(sizes))
        X = rng.standard_normal((4, 3))
        w = rng.standard_normal(4)
        e, g = K.mlp_energy_grad_x_batch(p, sizes, act, X)
        e2, g2 = M.mlp_energy_grad_x_batch_numpy(p, sizes, act, X)
        G = K.mlp_grad_params_batch(p, sizes, act, X)
        wg = K.mlp_weighted_grad_params(p, sizes, act, X, w)
        work = np.empty(K.mlp_work_size(sizes))  # exact size: Python indexing raises on overflow
        gp = np.empty(3)
        ep = K.mlp_energy_and_grad_x_point(p, sizes, act, X[0], gp, work)
        mlp = K.MLPParams(p, sizes, act)
        gpt, Gt = np.empty(3), np.zeros(p.size)
        ept = K.mlp_point_backward_transposed(mlp, K.mlp_transposed_weights(p, sizes), X[1], gpt,
                                              K.ParamsGradient(Gt, 2.0, True), work)
        worst = max(worst, abs(e - e2).max(), abs(g - g2).max(),
                    abs(G - M.mlp_grad_params_batch_numpy(p, sizes, act, X)).max(),
                    abs(wg - M.mlp_weighted_grad_params_numpy(p, sizes, act, X, w)).max(),
                    abs(ep - e2[0]), abs(gp - g2[0]).max(),
                    abs(ept - e2[1]), abs(gpt - g2[1]).max(), abs(Gt - 2.0 * G[1]).max())
    print(repr(float(worst)))
""")


def test_kernels_under_numba_disable_jit():
    """The pure-Python path of every kernel (NUMBA_DISABLE_JIT=1) matches the NumPy twins."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _DISABLED_JIT_SCRIPT], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    worst = float(out.stdout.strip().splitlines()[-1])
    assert worst <= 1e-12, f"max |kernel - twin| under NUMBA_DISABLE_JIT = {worst}"


_MP_ACTIVATIONS = {
    0: (lambda z: mpmath.tanh(z), lambda z: mpmath.sech(z) ** 2),
    1: (lambda z: mpmath.log1p(mpmath.exp(z)), lambda z: 1 / (1 + mpmath.exp(-z))),
    2: (lambda z: z / (1 + mpmath.exp(-z)),
        lambda z: 1 / (1 + mpmath.exp(-z)) + z * mpmath.exp(-z) / (1 + mpmath.exp(-z)) ** 2),
    3: (lambda z: z if z > 0 else mpmath.expm1(z), lambda z: mpmath.mpf(1) if z > 0 else mpmath.exp(z)),
}


@pytest.mark.parametrize("act", sorted(K.ACTIVATION_NAMES))
def test_activation_and_derivative_against_mpmath(act):
    """act(z) and act'(z) to a few ulps (50-digit mpmath oracle), including saturation where
    the naive 1 - tanh^2 or s + z s (1 - s) would lose relative accuracy."""
    z = np.array([-40.0, -20.0, -5.0, -1.2784645, -0.1, 0.0, 1e-3, 0.1, 1.0, 5.0, 20.0, 40.0])
    a_np, da_np = M.activation_numpy(act, z)
    a_nb = np.array([K._activation(act, float(t))[0] for t in z])
    da_nb = np.array([K._activation(act, float(t))[1] for t in z])
    f, df = _MP_ACTIVATIONS[act]
    with mpmath.workdps(50):
        a_ex = np.array([float(f(mpmath.mpf(t))) for t in z])
        da_ex = np.array([float(df(mpmath.mpf(t))) for t in z])
    for got in (a_np, a_nb):
        err = np.abs(got - a_ex) / np.maximum(np.abs(a_ex), 1e-300)
        assert np.max(err[a_ex != 0]) <= 1e-14 and np.all(got[a_ex == 0] == 0), err
    for got in (da_np, da_nb):
        err = np.abs(got - da_ex) / np.abs(da_ex)
        # silu' has a root near z = -1.2785: there only an absolute bound is meaningful
        near_root = np.abs(da_ex) < 1e-6
        assert np.max(err[~near_root]) <= 1e-14, err
        assert np.max(np.abs(got - da_ex)[near_root], initial=0.0) <= 1e-15


@pytest.mark.parametrize("act", [K.ACTIVATION_CODES["tanh"], K.ACTIVATION_CODES["elu"]])
def test_single_transcendental_activation_across_branch_switch_against_mpmath(act):
    """tanh (expm1 form for |z| <= ln(2)/2, exp form above) and ELU (expm1 form for
    -ln 2 <= z <= 0, exp form below) keep relative accuracy 1e-14 on both sides of the
    switch and on a dense grid (50-digit mpmath oracle)."""
    switches = [K._TANH_SWITCH, -K._TANH_SWITCH, K._ELU_SWITCH]
    z = np.concatenate([np.linspace(-3.0, 3.0, 601),
                        [np.nextafter(s, d) for s in switches for d in (-np.inf, np.inf)],
                        switches, [-1e-300, 1e-300, -1e-8, 1e-8, -0.0]])
    f, df = _MP_ACTIVATIONS[act]
    for t in z:
        a, da = K._activation(act, float(t))
        with mpmath.workdps(50):
            a_ex = float(f(mpmath.mpf(float(t))))
            da_ex = float(df(mpmath.mpf(float(t))))
        assert abs(a - a_ex) <= 1e-14 * abs(a_ex), (t, a, a_ex)
        assert abs(da - da_ex) <= 1e-14 * abs(da_ex), (t, da, da_ex)
    assert math.copysign(1.0, K._activation(0, -0.0)[0]) == -1.0  # tanh(-0) = -0


def _parallel_case():
    """A batch large enough for the parallel path and several weighted chunks, with fan-ins
    >= 8 so the transposed-weight backward recursion is used."""
    rng = np.random.default_rng(20240613)
    sizes = np.array([2, 9, 8, 1], dtype=np.int64)
    params = 0.7 * rng.standard_normal(K.mlp_n_params(sizes))
    import numba
    # under NUMBA_DISABLE_JIT the kernels are slow Python: a batch with several weighted chunks suffices
    n_min = 2 * K.WEIGHTED_CHUNK if numba.config.DISABLE_JIT else K.PARALLEL_MIN_SAMPLES
    n = n_min + K.WEIGHTED_CHUNK // 2 + 3
    X = 1.5 * rng.standard_normal((n, 2))
    w = rng.standard_normal(n)
    assert n > 2 * K.WEIGHTED_CHUNK and n >= n_min
    return params, sizes, X, w


def _batch_outputs(params, sizes, act, X, w):
    e, g = K.mlp_energy_grad_x_batch(params, sizes, act, X)
    return (e, g, K.mlp_energy_batch(params, sizes, act, X),
            K.mlp_grad_params_batch(params, sizes, act, X),
            K.mlp_weighted_grad_params(params, sizes, act, X, w))


@pytest.mark.parametrize("act", [0, 3])
def test_parallel_batch_kernels_identical_for_1_and_2_threads(act):
    """Parallel sample loop and fixed-chunk weighted reduction: bit-identical results
    whatever the thread count, and equal to the NumPy twins to 1e-12."""
    import numba
    params, sizes, X, w = _parallel_case()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _batch_outputs(params, sizes, act, X, w)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _batch_outputs(params, sizes, act, X, w)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    e_np, g_np = M.mlp_energy_grad_x_batch_numpy(params, sizes, act, X)
    assert _close(two[0], e_np) <= TOL and _close(two[1], g_np) <= TOL
    assert _close(two[2], e_np) <= TOL
    assert _close(two[3], M.mlp_grad_params_batch_numpy(params, sizes, act, X)) <= TOL
    assert _close(two[4], M.mlp_weighted_grad_params_numpy(params, sizes, act, X, w)) <= TOL


@njit
def _per_point_transposed(params, sizes, act, X, work):
    """:func:`_per_point_reference` through ``mlp_point_backward_transposed`` (weight 1)."""
    n, d = X.shape
    energies = np.empty(n)
    grads = np.empty((n, d))
    per_sample = np.zeros((n, params.shape[0]))
    mlp = K.MLPParams(params, sizes, act)
    wt = K.mlp_transposed_weights(params, sizes)
    for k in range(n):
        energies[k] = K.mlp_point_backward_transposed(mlp, wt, X[k], grads[k],
                                                      K.ParamsGradient(per_sample[k], 1.0, True), work)
    return energies, grads, per_sample


@njit
def _per_point_reference(params, sizes, act, X, work):
    """Row-wise (non-transposed) per-point path for every sample, serial, sequential sums."""
    n, d = X.shape
    energies = np.empty(n)
    grads = np.empty((n, d))
    per_sample = np.zeros((n, params.shape[0]))
    mlp = K.MLPParams(params, sizes, act)
    for k in range(n):
        energies[k] = K.mlp_point_backward(mlp, X[k], grads[k], K.ParamsGradient(per_sample[k], 1.0, True),
                                           work)
    return energies, grads, per_sample


def test_transposed_backward_is_bit_identical_to_row_backward():
    """The per-point batch kernels (transposed weights, parallel) and the per-point kernel
    ``mlp_point_backward`` (rows of W) add the same products in the same order: the
    energies, input gradients and per-sample parameter gradients agree bit for bit. The
    public energy + grad_x kernel runs the batch-major (BLAS) core at this size: equal to
    rounding."""
    params, sizes, X, w = _parallel_case()
    e_bm, g_bm, e_fwd_bm, G, _ = _batch_outputs(params, sizes, 0, X, w)
    e, g = K._energy_grad_x_batch_serial(params, sizes, 0, X)
    e_fwd = K._energy_batch_serial(params, sizes, 0, X)
    e_ref, g_ref, G_ref = _per_point_reference(params, sizes, 0, X,
                                               np.empty(K.mlp_work_size(sizes)))
    assert np.abs(e_bm - e_ref).max() <= 1e-12 * max(1.0, np.abs(e_ref).max())
    assert np.abs(e_fwd_bm - e_ref).max() <= 1e-12 * max(1.0, np.abs(e_ref).max())
    assert np.abs(g_bm - g_ref).max() <= 1e-12 * max(1.0, np.abs(g_ref).max())
    assert np.array_equal(e, e_ref) and np.array_equal(e_fwd, e_ref)
    assert np.array_equal(g, g_ref) and np.array_equal(G, G_ref)
    e_t, g_t, G_t = _per_point_transposed(params, sizes, 0, X, np.empty(K.mlp_work_size(sizes)))
    assert np.array_equal(e_t, e_ref) and np.array_equal(g_t, g_ref) and np.array_equal(G_t, G_ref)
    wt = K.mlp_transposed_weights(params, sizes)
    assert np.array_equal(wt[:2 * 9].reshape(9, 2), params[:18].reshape(2, 9).T)


# --------------------------------------------------------------------------- stale caches

def test_kernel_modules_list_every_module_that_defines_jitted_functions():
    """KERNEL_MODULES (the sources that key the cache stamp) names every module of the package
    that imports the jit decorator, so an edit of any kernel invalidates the caches."""
    from febm_ref._numba import jit as _jit

    package = Path(_jit.__file__).resolve().parent
    users = {str(p.relative_to(package)) for p in package.rglob("*.py")
             if "from febm_ref._numba.jit import njit" in p.read_text()}
    assert users | {"jit.py"} == set(_jit.KERNEL_MODULES)
    outside = [str(p) for p in package.parent.rglob("*.py")
               if package not in p.parents and "from febm_ref._numba.jit import njit" in p.read_text()]
    assert outside == []  # every jitted function of the package lives in febm_ref/_numba/


def test_stale_caches_are_discarded_when_the_kernel_sources_change(tmp_path, monkeypatch):
    """discard_stale_caches deletes *.nbi/*.nbc (not other files) when the stamp is missing or
    differs from the fingerprint of the kernel sources, writes the stamp, and leaves a
    directory with the current stamp alone."""
    import numba

    from febm_ref._numba import jit as _jit

    if numba.config.DISABLE_JIT:
        assert _jit.discard_stale_caches(tmp_path) == 0
        return
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    for name in ("m.f-1.py311.nbi", "m.f-1.py311.1.nbc", "m.cpython-311.pyc"):
        (cache / name).write_text("x")
    assert _jit.discard_stale_caches(tmp_path) == 2
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        ["m.cpython-311.pyc", _jit._STAMP_NAME])
    assert (cache / _jit._STAMP_NAME).read_text() == _jit.kernel_source_fingerprint()
    (cache / "m.g-2.py311.nbi").write_text("x")
    assert _jit.discard_stale_caches(tmp_path) == 0  # current stamp: kept
    (cache / _jit._STAMP_NAME).write_text("an older fingerprint")
    assert _jit.discard_stale_caches(tmp_path) == 1


@pytest.mark.parametrize("with_cache_dir", [False, True], ids=["in-tree", "NUMBA_CACHE_DIR"])
def test_stale_cache_guard_finds_the_files_numba_really_writes(tmp_path, monkeypatch, with_cache_dir):
    """A real cached function, compiled from a module in a temporary directory, writes its
    index and machine code where numba_cache_dirs says (in __pycache__, or below
    NUMBA_CACHE_DIR as Numba's own locator names it), and discard_stale_caches deletes them."""
    import importlib.util

    import numba

    from febm_ref._numba import jit as _jit

    if numba.config.DISABLE_JIT:
        pytest.skip("nothing is cached without the JIT")
    source = tmp_path / "src"
    source.mkdir()
    (source / "tiny_kernel.py").write_text(
        "from febm_ref._numba.jit import njit\n\n@njit\ndef twice(x):\n    return 2.0 * x\n")
    cache_root = tmp_path / "numba_cache"
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(cache_root) if with_cache_dir else "")
    spec = importlib.util.spec_from_file_location("tiny_kernel_for_cache_test", source / "tiny_kernel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.twice(1.5) == 3.0
    root = cache_root if with_cache_dir else source
    written = sorted(p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert written, "Numba wrote no cache files"
    expected_dir = _jit.numba_cache_dirs(source)[1 if with_cache_dir else 0]
    assert {p.parent for p in written} == {expected_dir}
    assert _jit.discard_stale_caches(source) == len(written)
    assert not any(p.exists() for p in written)


_IMPORT_DELETES_SCRIPT = """
import os, pathlib, sys
calls = []
sys.setprofile(lambda frame, event, arg: calls.append(frame.f_code.co_name)
               if event == "call" and frame.f_code.co_name == "discard_stale_caches" else None)
real_unlink, real_remove = pathlib.Path.unlink, os.remove
pathlib.Path.unlink = lambda self, *a, **k: calls.append(str(self))
os.remove = os.unlink = lambda path, *a, **k: calls.append(str(path))
import importlib, pkgutil
import febm_ref
names = [m.name for m in pkgutil.walk_packages(febm_ref.__path__, "febm_ref.")]
for name in names:  # every module of the package, febm_ref.verification's checks included
    importlib.import_module(name)
sys.setprofile(None)
assert len(names) > 80 and "febm_ref.verification.check_samplers" in names, names
print(len(calls))
"""


def test_importing_the_package_deletes_no_file():
    """No file deletion at import (issue 14): the stale-cache cleanup is an explicit call (the CLI
    at startup, tests/conftest.py); importing the package and its kernel modules removes 0 files
    and never calls discard_stale_caches, counted in a fresh interpreter by replacing Path.unlink
    and os.remove/os.unlink and by a profile hook on calls (an import-time cleanup is counted
    even when the caches are current and it deletes nothing)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _IMPORT_DELETES_SCRIPT], env=env, cwd=repo, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", out.stdout
