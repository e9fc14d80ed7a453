"""The batch-major MLP core's activations (:mod:`febm_ref._numba.batched_mlp`): the vectorisable
tanh and its derivative against mpmath, the layer pass against the scalar tanh bit for bit, and
the pure-Python fallback against the compiled code (moved from tests/test_samplers.py so that
the tests mirror the package)."""

from __future__ import annotations

import math

import numpy as np


def _tanh_grid(rng):
    """Random points, both sides of the 0.625 switch, of every switch of the exponent ``n``
    (``|z| = (k + 1/2) ln(2)/2``), tiny and saturated values."""
    switches = np.concatenate([[0.625], (np.arange(40) + 0.5) * math.log(2.0) / 2])
    near = np.concatenate([np.nextafter(switches, 0.0), switches, np.nextafter(switches, 1e3),
                           (switches[:, None] + np.linspace(-1e-3, 1e-3, 11)).ravel()])
    xs = np.concatenate([rng.standard_normal(1500) * 3, np.linspace(0.6, 0.65, 101), near,
                         np.logspace(-300, 1.3, 200), [1e-8, 18.0, 19.5, 21.9, 22.0]])
    return np.concatenate([xs, -xs])


def test_tanh_vectorizable_within_two_ulp_of_mpmath():
    """tanh_and_derivative (the one tanh of the package, vectorisable) against mpmath at 50
    digits: relative error below 4.5e-16 (2 ulp) on random points, around the 0.625 branch
    switch and every switch of the exponent n, and in the tails; exact saturation at +-1,
    tanh(+-0) = +-0, NaN propagates."""
    import mpmath

    from febm_ref._numba.batched_mlp import tanh_and_derivative

    def tanh_vectorizable(v):
        return tanh_and_derivative(v)[0]

    xs = _tanh_grid(np.random.default_rng(17))
    with mpmath.workdps(50):
        exact = np.array([float(mpmath.tanh(mpmath.mpf(float(v)))) for v in xs])
    got = np.array([tanh_vectorizable(float(v)) for v in xs])
    rel = np.abs(got - exact) / np.abs(exact)
    assert rel.max() < 4.5e-16, (rel.max(), xs[np.argmax(rel)])
    assert tanh_vectorizable(25.0) == 1.0 and tanh_vectorizable(-1e300) == -1.0
    assert tanh_vectorizable(np.inf) == 1.0 and tanh_vectorizable(-np.inf) == -1.0
    assert math.copysign(1.0, tanh_vectorizable(-0.0)) == -1.0 and tanh_vectorizable(0.0) == 0.0
    assert math.isnan(tanh_vectorizable(np.nan))


def test_sech2_full_relative_accuracy_including_saturation():
    """The derivative output sech^2 z against mpmath at 50 digits: relative error below 1e-15
    wherever it is a normal number (|z| < 354, incl. saturation, where 1 - tanh^2 would
    cancel), within 2 units of 2^-1074 in the subnormal range and 0 from |z| = 373.3 on
    (where the exact value rounds to 0); sech^2(+-inf) = 0, NaN propagates."""
    import mpmath

    from febm_ref._numba.batched_mlp import tanh_and_derivative

    rng = np.random.default_rng(18)
    xs = np.concatenate([_tanh_grid(rng), rng.uniform(19.0, 354.0, 400),
                         np.linspace(354.0, 374.0, 201), [373.3, 374.9, 375.0, 375.1, 1e300]])
    with mpmath.workdps(50):
        exact = np.array([float(mpmath.sech(mpmath.mpf(float(v))) ** 2) for v in xs])
    got = np.array([tanh_and_derivative(float(v))[1] for v in xs])
    normal = exact >= np.finfo(np.float64).tiny
    rel = np.abs(got[normal] - exact[normal]) / exact[normal]
    assert rel.max() < 1e-15, (rel.max(), xs[normal][np.argmax(rel)])
    assert np.all(np.abs(got[~normal] - exact[~normal]) <= 2 * 5e-324)
    assert np.all(got[np.abs(xs) >= 373.3] == 0.0)
    assert tanh_and_derivative(np.inf)[1] == 0.0 and tanh_and_derivative(-np.inf)[1] == 0.0
    assert tanh_and_derivative(0.0)[1] == 1.0 and math.isnan(tanh_and_derivative(np.nan)[1])


def test_activation_layer_pass_equals_scalar_tanh_bit_for_bit():
    """The vectorised layer pass (_activate_layer: bias add, tanh and sech^2 over a block,
    SIMD) gives exactly the numbers of the scalar function on each element."""
    from febm_ref._numba.batched_mlp import _activate_layer, tanh_and_derivative

    rng = np.random.default_rng(19)
    n, h = 37, 67  # row length not a multiple of the vector width: remainder loops too
    Z = rng.standard_normal((n, h)) * 4
    Z.ravel()[:7] = [0.0, -0.0, np.inf, -np.inf, np.nan, 400.0, 1e-310]
    b = rng.standard_normal(h) * 0.5
    b[:7] = 0.0
    A, D = Z.copy(), np.empty_like(Z)
    _activate_layer(0, A, b, D)
    ref = [tanh_and_derivative(float(z + c)) for z, c in zip(Z.ravel(), np.tile(b, n))]
    np.testing.assert_array_equal(A.ravel(), [r[0] for r in ref])
    np.testing.assert_array_equal(D.ravel(), [r[1] for r in ref])


_TANH_NO_JIT_SCRIPT = """
import sys, numpy as np, numba
assert numba.config.DISABLE_JIT
from febm_ref._numba.batched_mlp import tanh_and_derivative
xs = np.frombuffer(bytes.fromhex(sys.stdin.read()), dtype=np.float64)
out = np.array([tanh_and_derivative(float(v)) for v in xs])
print(out.tobytes().hex())
"""


def test_tanh_pure_python_fallback_equals_compiled_bit_for_bit():
    """Under NUMBA_DISABLE_JIT the bit casts (int64 wraparound) and the fused multiply-add
    (exact integer arithmetic, rounded once) of tanh_and_derivative are Python functions:
    they give exactly the compiled numbers, incl. both switches, the tails and specials."""
    import os
    import pathlib
    import subprocess
    import sys

    from febm_ref._numba.batched_mlp import tanh_and_derivative

    rng = np.random.default_rng(20)
    xs = np.concatenate([_tanh_grid(rng)[::4], [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-320,
                                                 360.0, -365.5, 374.0, 1e300]])
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _TANH_NO_JIT_SCRIPT], input=xs.tobytes().hex(),
                         env=env, cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    python = np.frombuffer(bytes.fromhex(out.stdout.strip()), dtype=np.float64).reshape(-1, 2)
    compiled = np.array([tanh_and_derivative(float(v)) for v in xs])
    nan = np.isnan(compiled)  # NaN payloads may differ; NaN itself may not
    np.testing.assert_array_equal(np.isnan(python), nan)
    np.testing.assert_array_equal(python[~nan].view(np.int64), compiled[~nan].view(np.int64))
