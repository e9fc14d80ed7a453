"""Energy models (febm_ref.models.energies): hand-derived gradients against complex-step and
finite-difference derivatives, exact normalisers and samplers against closed forms and
quadrature, identity D1, and input validation.

Error measures
--------------
* complex step (analytic activations): the full per-sample matrices ``dE(x_i)/dx`` and
  ``dE(x_i)/dtheta`` are recovered coordinate by coordinate as ``Im E(. + i h e_k) / h``
  (``h = 1e-30``, no subtractive cancellation); error = ``max_i ||a_i - b_i|| / ||b_i||``.
* central finite differences along a random unit direction ``v`` (step ``h = 1e-5``):
  error = ``|fd - g.v| / ||g||`` (relative to the gradient norm, so a direction nearly
  orthogonal to ``g`` does not inflate it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from febm_ref.models.energies import GaussianEnergy1D, MLPEnergy, QuadraticEnergy

# The complex-step measure (h = 1e-30, tolerance CS_TOL = 1e-12) is the verification check's own
# (febm_ref/verification/check_gradients.py); the finite differences here are a finer O(h^4)
# stencil with ELU's kinks left out, not the check's second-order one.
from febm_ref.verification.check_gradients import CS_TOL, complex_step_errors

FD_H = 1e-3  # with the O(h^4) stencil: truncation ~1e-12, rounding ~1e-13
FD_TOL = 1e-7


# --------------------------------------------------------------------------- helpers

def _branch_pattern(model, x, theta):
    """Signs ``z > 0`` of every hidden pre-activation of the MLP at rows ``x`` (n, sum h)."""
    full = model._full(np.asarray(theta))
    sizes = [int(k) for k in model.sizes]
    a, offset, signs = x, 0, []
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        weights = full[offset:offset + n_in * n_out].reshape(n_in, n_out)
        bias = full[offset + n_in * n_out:offset + (n_in + 1) * n_out]
        offset += (n_in + 1) * n_out
        z = a @ weights + bias
        signs.append(z > 0)
        a = np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    return np.concatenate(signs, axis=1)


def _same_branches(patterns):
    """Rows whose branch pattern is the same at every stencil point (one smooth piece of ELU)."""
    return np.all([np.all(p == patterns[0], axis=1) for p in patterns[1:]], axis=0)


def finite_difference_errors(model, x, w, rng):
    """Worst relative errors of the three gradients vs central differences along random directions."""
    n, d = x.shape
    v = rng.standard_normal((n, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    u = rng.standard_normal(model.n_params)
    u /= np.linalg.norm(u)
    theta = model.params

    def central(function):
        """Fourth-order central difference along the chosen direction, h = 1e-3 (truncation
        O(h^4) ~ 1e-12, so saturated units with a large third derivative do not masquerade as
        gradient errors). ELU is only C^1 (E'' jumps where a pre-activation crosses 0): rows
        whose stencil crosses such a kink are left out below, and on one smooth piece ELU is
        analytic, so the same stencil and the same rounding floor apply."""
        return (8.0 * (function(FD_H) - function(-FD_H))
                - (function(2 * FD_H) - function(-2 * FD_H))) / (12.0 * FD_H)

    fd_x = central(lambda h: model.energy_complex(x + h * v, theta))
    fd_p = central(lambda h: model.energy_complex(x, theta + h * u))
    fd_w = w @ fd_p
    g_x, g_p, g_w = model.grad_x(x), model.grad_params(x), model.weighted_grad_params(x, w)
    if not model.is_holomorphic:
        # ELU: a stencil on which some hidden pre-activation changes sign crosses a kink of
        # E'' and has truncation error ~ h |jump of E''|, which is no gradient error. Such
        # rows are left out (not the example: the other rows still count).
        steps = FD_H * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
        ok_x = _same_branches([_branch_pattern(model, x + h * v, theta) for h in steps])
        ok_p = _same_branches([_branch_pattern(model, x, theta + h * u) for h in steps])
        keep = ok_x & ok_p
        if not np.any(keep):
            return 0.0, 0.0, 0.0
        x, v, w, fd_x, fd_p, g_x, g_p = x[keep], v[keep], w[keep], fd_x[keep], fd_p[keep], g_x[keep], g_p[keep]
        fd_w, g_w = w @ fd_p, w @ g_p
    # A difference quotient cannot resolve a gradient below its rounding floor
    # eps |E| / h ~ 2e-13 |E| (saturated units give |grad E| ~ 1e-7 with |E| ~ 1, where the
    # complex-step test still checks every digit). Errors are therefore relative to
    # max(|grad|, 1e-5 (|E| + 1)): any absolute error above ~1e-12 (|E| + 1) still fails.
    floor = 1e-5 * (np.abs(model.energy(x)) + 1.0)
    err_x = np.max(np.abs(fd_x - np.sum(g_x * v, axis=1)) / np.maximum(np.linalg.norm(g_x, axis=1), floor))
    err_p = np.max(np.abs(fd_p - g_p @ u) / np.maximum(np.linalg.norm(g_p, axis=1), floor))
    err_w = abs(fd_w - g_w @ u) / max(np.linalg.norm(g_w), 1e-5 * (abs(w) @ (np.abs(model.energy(x)) + 1.0)))
    return float(err_x), float(err_p), float(err_w)


mlp_specs = st.fixed_dictionaries({
    "dim": st.integers(1, 3),
    "hidden": st.lists(st.integers(1, 8), min_size=1, max_size=3),
    "activation": st.sampled_from(["tanh", "softplus", "silu", "elu"]),
    "output_bias": st.booleans(),
    "n": st.integers(1, 5),
    "seed": st.integers(0, 2**32 - 1),
    "bias_scale": st.floats(0.0, 1.0),
})


def _mlp_case(spec, backend="numba"):
    rng = np.random.default_rng(spec["seed"])
    model = MLPEnergy.random_init(rng, spec["dim"], spec["hidden"], spec["activation"],
                                  output_bias=spec["output_bias"], backend=backend,
                                  bias_scale=spec["bias_scale"])
    x = 1.5 * rng.standard_normal((spec["n"], spec["dim"]))
    w = rng.standard_normal(spec["n"])
    return model, x, w, rng


# --------------------------------------------------------------------------- MLP gradients

@settings(max_examples=30, deadline=None)
@given(mlp_specs)
def test_mlp_gradients_match_complex_step(spec):
    """grad_x, grad_params (dE of D9/D13) and the fused weighted pass, to 1e-12 (analytic activations)."""
    if spec["activation"] == "elu":
        spec = {**spec, "activation": "tanh"}
    model, x, w, _ = _mlp_case(spec)
    errs = complex_step_errors(model, x, w)
    assert max(errs) <= CS_TOL, f"complex-step relative errors (x, params, weighted) = {errs}"


@settings(max_examples=30, deadline=None)
@given(mlp_specs)
def test_mlp_gradients_match_finite_differences(spec):
    model, x, w, rng = _mlp_case(spec)
    errs = finite_difference_errors(model, x, w, rng)
    assert max(errs) <= FD_TOL, f"finite-difference relative errors (x, params, weighted) = {errs}"


@settings(max_examples=30, deadline=None)
@given(mlp_specs)
def test_mlp_numba_and_numpy_backends_agree(spec):
    model, x, w, _ = _mlp_case(spec)
    twin = model.with_backend("numpy")
    for a, b in [(model.energy(x), twin.energy(x)), (model.grad_x(x), twin.grad_x(x)),
                 (model.grad_params(x), twin.grad_params(x)),
                 (model.weighted_grad_params(x, w), twin.weighted_grad_params(x, w))]:
        assert np.max(np.abs(a - b)) <= 1e-12 * max(1.0, np.max(np.abs(b)))


def test_mlp_output_bias_is_the_additive_gauge():
    """Without output bias the energy is the biased model minus its bias; the gradient of E
    with respect to the bias is identically 1 (docs/theory.md section 5)."""
    rng = np.random.default_rng(5)
    biased = MLPEnergy.random_init(rng, 2, (4, 3), "softplus", bias_scale=0.5)
    theta = biased.get_params()
    theta[-1] = 0.7
    biased = biased.with_params(theta)
    unbiased = MLPEnergy(2, (4, 3), "softplus", params=theta[:-1], output_bias=False)
    x = rng.standard_normal((6, 2))
    assert unbiased.n_params == biased.n_params - 1
    assert np.max(np.abs(biased.energy(x) - 0.7 - unbiased.energy(x))) <= 1e-14
    assert np.all(biased.grad_params(x)[:, -1] == 1.0)
    assert np.max(np.abs(biased.grad_params(x)[:, :-1] - unbiased.grad_params(x))) == 0.0


def test_mlp_random_init_is_reproducible_and_params_immutable():
    a = MLPEnergy.random_init(np.random.default_rng(11), 2, (8, 8), "silu")
    b = MLPEnergy.random_init(np.random.default_rng(11), 2, (8, 8), "silu")
    assert np.array_equal(a.params, b.params) and a.n_params == (2 + 1) * 8 + 9 * 8 + 9
    with pytest.raises(ValueError):
        a.params[0] = 1.0
    theta = a.get_params()
    theta[0] += 1.0
    c = a.with_params(theta)
    assert c.params[0] == a.params[0] + 1.0 and not np.array_equal(c.energy(np.ones((1, 2))),
                                                                   a.energy(np.ones((1, 2))))


# --------------------------------------------------------------------------- Gaussian / quadratic

@pytest.mark.parametrize("log_sigma", [False, True])
def test_gaussian1d_gradients_complex_step_and_fd(log_sigma):
    rng = np.random.default_rng(2)
    model = GaussianEnergy1D(0.4, 1.3, log_sigma=log_sigma)
    x = rng.normal(0.0, 2.0, size=(7, 1))
    w = rng.standard_normal(7)
    assert max(complex_step_errors(model, x, w)) <= CS_TOL
    assert max(finite_difference_errors(model, x, w, rng)) <= FD_TOL


@pytest.mark.parametrize("log_sigma", [False, True])
def test_D1_gaussian_score_identity_by_quadrature(log_sigma):
    """D1: E_q[grad_theta E] = -grad_theta log Z, with the exact log Z, to 1e-10."""
    model = GaussianEnergy1D(-0.8, 0.6, log_sigma=log_sigma)
    log_z = model.log_normalizer()
    assert abs(log_z - math.log(math.sqrt(2 * math.pi) * 0.6)) <= 1e-15
    mass = integrate.quad(lambda t: math.exp(-model.energy([t])[0] - log_z), -np.inf, np.inf,
                          epsabs=1e-14, epsrel=1e-13)[0]
    assert abs(mass - 1.0) <= 1e-10
    expect = np.array([integrate.quad(lambda t, k=k: math.exp(-model.energy([t])[0] - log_z)
                                      * model.grad_params([t])[0, k], -np.inf, np.inf,
                                      epsabs=1e-14, epsrel=1e-13)[0] for k in range(2)])
    assert np.max(np.abs(expect + model.grad_log_normalizer())) <= 1e-10, expect


def test_gaussian1d_sampler_moments():
    model = GaussianEnergy1D(1.5, 0.7)
    n = 40_000
    x = model.sample(np.random.default_rng(3), n)[:, 0]
    se_mean = 0.7 / math.sqrt(n)
    se_var = 0.49 * math.sqrt(2.0 / n)
    assert abs(x.mean() - 1.5) <= 5 * se_mean, f"mean {x.mean()}, SE {se_mean}"
    assert abs(np.mean((x - 1.5) ** 2) - 0.49) <= 5 * se_var, f"var, SE {se_var}"


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_quadratic_gradients_complex_step_and_fd(dim):
    rng = np.random.default_rng(dim)
    model = QuadraticEnergy.random_init(rng, dim)
    x = rng.standard_normal((5, dim))
    w = rng.standard_normal(5)
    assert max(complex_step_errors(model, x, w)) <= CS_TOL
    assert max(finite_difference_errors(model, x, w, rng)) <= FD_TOL


def test_quadratic_log_normalizer_by_quadrature_1d_2d():
    rng = np.random.default_rng(8)
    q1 = QuadraticEnergy.random_init(rng, 1)
    z1 = integrate.quad(lambda t: math.exp(-q1.energy([t])[0]), -np.inf, np.inf,
                        epsabs=0, epsrel=1e-13)[0]
    assert abs(math.log(z1) - q1.log_normalizer()) <= 1e-10
    q2 = QuadraticEnergy.from_covariance([0.3, -0.2], [[1.0, 0.6], [0.6, 0.8]])
    z2 = integrate.dblquad(lambda b, a: math.exp(-q2.energy(np.array([[a, b]]))[0]),
                           -12, 12, -12, 12, epsabs=0, epsrel=1e-12)[0]
    exact = math.log(2 * math.pi) + 0.5 * math.log(1.0 * 0.8 - 0.36)  # log(2 pi sqrt(det cov))
    assert abs(q2.log_normalizer() - exact) <= 1e-13
    assert abs(math.log(z2) - exact) <= 1e-10


def test_quadratic_log_normalizer_and_covariance_closed_form_4d():
    rng = np.random.default_rng(9)
    q = QuadraticEnergy.random_init(rng, 4)
    L = q.precision_factor
    precision = L @ L.T
    sign, logdet = np.linalg.slogdet(precision)
    assert sign > 0
    assert abs(q.log_normalizer() - (2 * math.log(2 * math.pi) - 0.5 * logdet)) <= 1e-12
    assert np.max(np.abs(q.covariance() @ precision - np.eye(4))) <= 1e-12
    back = QuadraticEnergy.from_covariance(q.mean, q.covariance())
    assert np.max(np.abs(back.params - q.params)) <= 1e-10


def test_quadratic_sampler_moments_within_standard_errors():
    """Mean and covariance entries within 5 SE; SE of the (i, j) second moment about the
    true mean is sqrt((S_ii S_jj + S_ij^2)/n) for a Gaussian."""
    rng = np.random.default_rng(10)
    q = QuadraticEnergy.from_covariance([1.0, -2.0, 0.5], [[2.0, 0.8, -0.3], [0.8, 1.0, 0.2],
                                                           [-0.3, 0.2, 0.5]])
    S = q.covariance()
    n = 40_000
    x = q.sample(rng, n)
    m = q.mean
    se_mean = np.sqrt(np.diag(S) / n)
    z_mean = np.abs(x.mean(axis=0) - m) / se_mean
    assert np.all(z_mean <= 5), f"mean errors in SE units {z_mean}"
    r = x - m
    emp = r.T @ r / n
    se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / n)
    z_cov = np.abs(emp - S) / se_cov
    assert np.all(z_cov <= 5), f"covariance errors in SE units {z_cov}"


def test_D1_quadratic_score_identity_by_quadrature_2d():
    """D1 in 2-D: E_q[grad_theta E] = -grad_theta log Z (log-diagonal entries -> +1 each)."""
    q = QuadraticEnergy.from_covariance([0.2, -0.1], [[0.9, 0.3], [0.3, 0.6]])
    log_z = q.log_normalizer()

    def moment(k):
        f = lambda b, a: math.exp(-q.energy(np.array([[a, b]]))[0] - log_z) * q.grad_params(np.array([[a, b]]))[0, k]
        return integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-12, epsrel=1e-10)[0]

    expect = np.array([moment(k) for k in range(q.n_params)])
    assert np.max(np.abs(expect + q.grad_log_normalizer())) <= 1e-9, expect


# --------------------------------------------------------------------------- bad input

def test_bad_inputs_raise_clear_value_errors():
    rng = np.random.default_rng(0)
    mlp = MLPEnergy.random_init(rng, 2, (4,), "tanh")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        mlp.energy(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="only accepted for dim == 1"):
        mlp.grad_x(np.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        mlp.grad_params(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="non-finite"):
        mlp.energy(np.array([[np.inf, 0.0]]))
    bad = mlp.get_params()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        mlp.with_params(bad)
    with pytest.raises(ValueError, match="non-finite"):
        MLPEnergy(2, (4,), "tanh", params=bad)
    with pytest.raises(ValueError, match="shape"):
        mlp.with_params(mlp.get_params()[:-1])
    with pytest.raises(ValueError, match="tanh, softplus, silu, elu"):
        MLPEnergy.random_init(rng, 2, (4,), "relu")
    with pytest.raises(ValueError, match="at least one hidden"):
        MLPEnergy(2, (), "tanh", params=np.zeros(3))
    with pytest.raises(ValueError, match="at least one hidden"):
        MLPEnergy.random_init(rng, 2, [], "tanh")
    with pytest.raises(ValueError, match="backend"):
        mlp.with_backend("torch")
    with pytest.raises(ValueError, match="one weight per sample"):
        mlp.weighted_grad_params(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GaussianEnergy1D(0.0, 1.0).with_params([0.0, -1.0])
    with pytest.raises(ValueError, match="finite"):
        GaussianEnergy1D(0.0, 1.0, log_sigma=True).with_params([0.0, np.inf])
    with pytest.raises(ValueError, match="lower-triangular"):
        QuadraticEnergy([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="positive definite"):
        QuadraticEnergy.from_covariance([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        QuadraticEnergy.random_init(rng, 3).energy(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="Generator"):
        GaussianEnergy1D().sample(0, 5)


def test_one_dimensional_inputs_accepted_for_dim_one():
    model = GaussianEnergy1D(0.5, 2.0)
    x = np.array([0.0, 1.0, -3.0])
    assert np.array_equal(model.energy(x), model.energy(x[:, None]))
    assert np.array_equal(model.energy(x), 0.5 * ((x - 0.5) / 2.0) ** 2)
