"""The published-code mode (febm_ref.published, febm_ref.published_run, febm_ref.clipped_optima,
``fit1d --published``): clipped maps, torch-default init, the published step against two
independent implementations (NumPy by hand; torch float64 with its own clamp), the exact
clipped fixed point against argmin D_f, and the CLI's JSON record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from febm_ref.divergences import get_divergence, resolve_divergence
from febm_ref.models.energies import GaussianEnergy1D
from febm_ref.published import (
    PUBLISHED_CLIPS,
    PublishedState,
    published_maps,
    published_step,
    torch_default_init,
)
from febm_ref.reference_optima import PAPER_TABLE
from febm_ref.targets import paper_mixture_1d

EPS = np.finfo(np.float64).eps


def _clipped_cases():
    return [("kl", None), ("pearson_chi2", None)]


# ---------------------------------------------------------------------------------------------
# 1. clipped maps
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["kl", "pearson_chi2"])
def test_clipped_maps_equal_inside_and_constant_beyond(name):
    div = get_divergence(name)
    maps = published_maps(div)
    for which in ("g_data", "g_model"):
        b = maps.bounds[which]
        plain, plain_prime = getattr(div, which), getattr(div, which + "_prime")
        clipped, clipped_prime = getattr(maps, which), getattr(maps, which + "_prime")
        top = b if math.isfinite(b) else 8.0
        inside = np.linspace(-8.0, top, 1001)  # includes s = b exactly: torch passes the gradient there
        np.testing.assert_array_equal(clipped(inside), plain(inside))
        np.testing.assert_array_equal(clipped_prime(inside), plain_prime(inside))
        if math.isfinite(b):
            beyond = b + np.array([1e-12, 1e-3, 0.5, 7.0, 300.0, 1e6])
            # exactly constant: the value g(b) and the derivative 0, bit for bit
            np.testing.assert_array_equal(clipped(beyond), np.full(beyond.shape, plain(np.array([b]))[0]))
            np.testing.assert_array_equal(clipped_prime(beyond), np.zeros(beyond.shape))


@pytest.mark.parametrize("name", ["kl", "pearson_chi2"])
def test_clipped_derivative_matches_finite_differences_away_from_kinks(name):
    # Central differences with h = 1e-5: truncation error h^2 |g'''| / 6 <= 1e-10 * 8 e^6 / 6 and
    # rounding error eps |g| / h <= 2.2e-16 * 2 e^6 / 1e-5; both < 1e-7 * (1 + |g'|) for |s| <= 9
    # (|g'''| <= 8 e^{2s} below the bounds, g' = 0 beyond); points closer than 1e-3 to a bound skipped.
    maps = published_maps(name)
    h = 1e-5
    s = np.linspace(-4.0, 9.0, 2601)
    for which in ("g_data", "g_model"):
        b = maps.bounds[which]
        ok = np.abs(s - b) > 1e-3 if math.isfinite(b) else np.ones_like(s, dtype=bool)
        g, gp = getattr(maps, which), getattr(maps, which + "_prime")
        fd = (g(s[ok] + h) - g(s[ok] - h)) / (2 * h)
        exact = gp(s[ok])
        assert np.all(np.abs(fd - exact) <= 1e-7 * (1.0 + np.abs(exact))), (which, np.max(np.abs(fd - exact)))


def test_unclipped_divergences_have_identity_maps_and_default_maps_are_untouched():
    s = np.linspace(-20.0, 20.0, 401)
    for name, alpha in PAPER_TABLE:
        div = resolve_divergence(name, alpha=alpha)
        maps = published_maps(div)
        if name in PUBLISHED_CLIPS:
            continue
        assert maps.clips == ()
        for which in ("g_data", "g_model", "g_data_prime", "g_model_prime"):
            np.testing.assert_array_equal(getattr(maps, which)(s), getattr(div, which)(s))
    # the default catalogue is not clipped: KL g_model(10) = e^10, Pearson g_data(10) = 2(e^10 - 1)
    # (exp/expm1 forms, within 4 ulp of the mpmath values 22026.4657948067165 and 44050.9315896134330)
    assert get_divergence("kl").g_model(np.array([10.0]))[0] == pytest.approx(22026.4657948067165, rel=4 * EPS)
    assert get_divergence("pearson_chi2").g_data(np.array([10.0]))[0] == pytest.approx(44050.9315896134330,
                                                                                         rel=4 * EPS)
    assert get_divergence("pearson_chi2").g_model_prime(np.array([10.0]))[0] > 0


# ---------------------------------------------------------------------------------------------
# 2. the torch-default initialisation law
# ---------------------------------------------------------------------------------------------

def _layers(params, sizes=(1, 64, 64, 1)):
    out, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = params[off:off + n_in * n_out].reshape(n_in, n_out)
        off += n_in * n_out
        b = params[off:off + n_out]
        off += n_out
        out.append((W, b))
    assert off == params.size
    return out


def test_torch_default_init_law():
    # 20 draws: per layer, every weight and bias is U(-c, c), c = 1/sqrt(fan_in).
    draws = [_layers(torch_default_init(np.random.default_rng([7, k])).get_params()) for k in range(20)]
    for layer, fan_in in enumerate((1, 64, 64)):
        c = 1.0 / math.sqrt(fan_in)
        values = np.concatenate([np.concatenate([d[layer][0].ravel(), d[layer][1]]) for d in draws])
        n = values.size
        assert np.all(np.abs(values) <= c)
        # moments: mean 0 (SE c/sqrt(3n)), E x^2 = c^2/3 (SE c^2 sqrt(4/45)/sqrt(n)); 5 SE bounds
        se_mean = c / math.sqrt(3 * n)
        se_var = c * c * math.sqrt(4.0 / 45.0) / math.sqrt(n)
        assert abs(values.mean()) < 5 * se_mean, (layer, values.mean(), se_mean)
        assert abs(np.mean(values ** 2) - c * c / 3) < 5 * se_var, (layer, np.mean(values ** 2), se_var)
        # Kolmogorov-Smirnov against U(-c, c): p-value of a correct law is U(0, 1); reject below 1e-6
        p = stats.kstest(values, stats.uniform(loc=-c, scale=2 * c).cdf).pvalue
        assert p > 1e-6, (layer, p)
    # the 1-D input layer's bound is 1: nn.Linear(1, 64) draws U(-1, 1)
    assert np.max(np.abs(np.concatenate([d[0][0].ravel() for d in draws]))) > 0.99


# ---------------------------------------------------------------------------------------------
# 3. the published step against independent implementations
# ---------------------------------------------------------------------------------------------

def _numpy_mlp(params, x):
    """1-64-64-1 tanh MLP, value and per-sample parameter gradient (rows), by hand."""
    (W1, b1), (W2, b2), (W3, b3) = _layers(params)
    z1 = x[:, None] @ W1 + b1
    a1 = np.tanh(z1)
    z2 = a1 @ W2 + b2
    a2 = np.tanh(z2)
    h = (a2 @ W3 + b3)[:, 0]
    d2 = (1 - a2 ** 2) * W3[:, 0]                     # dh/dz2 (n, 64)
    d1 = (1 - a1 ** 2) * (d2 @ W2.T)                  # dh/dz1 (n, 64)
    grads = [x[:, None, None] * d1[:, None, :], d1, a1[:, :, None] * d2[:, None, :], d2,
             a2[:, :, None], np.ones((x.size, 1))]
    return h, np.concatenate([g.reshape(x.size, -1) for g in grads], axis=1)


def _numpy_published_step(theta, omega, xp, xn, div, lr_e, lr_c):
    """The published iteration without clipping, from D7/D13 by hand (no febm_ref estimator)."""
    mu, sigma = theta
    x = np.concatenate([xp, xn])
    n = xp.size
    E = 0.5 * ((x - mu) / sigma) ** 2
    dE = np.stack([-(x - mu) / sigma ** 2, -(x - mu) ** 2 / sigma ** 3], axis=1)
    h, dh = _numpy_mlp(omega, x)
    r = h + E
    g_omega = (div.g_data_prime(r[:n]) @ dh[:n]) / n - (div.g_model_prime(r[n:]) @ dh[n:]) / xn.size
    omega_new = omega + lr_c * g_omega
    r2 = _numpy_mlp(omega_new, x)[0] + E
    gm = div.g_model(r2[n:])
    g_theta = ((div.g_data_prime(r2[:n]) @ dE[:n]) / n - (div.g_model_prime(r2[n:]) @ dE[n:]) / xn.size
               + (gm @ dE[n:]) / xn.size - gm.mean() * dE[n:].mean(axis=0))
    return theta - lr_e * g_theta, omega_new


@pytest.mark.parametrize("name,alpha", [("kl", None), ("jensen_shannon", None), ("pearson_chi2", None),
                                        ("neyman_chi2", None), ("alpha", 0.5)])
def test_published_step_unclipped_equals_numpy(name, alpha):
    div = resolve_divergence(name, alpha=alpha)
    rng = np.random.default_rng(3)
    critic = torch_default_init(rng)
    energy = GaussianEnergy1D(0.3, 1.4)
    xp = paper_mixture_1d().sample(rng, 300)[:, 0]
    xn = 0.3 + 1.4 * rng.standard_normal(200)
    state = PublishedState(energy.get_params(), critic.get_params(), 0)
    lr = 0.05  # larger than 1e-3 so that the critic update visibly changes the energy step
    new, info = published_step(state, xp[:, None], xn[:, None], published_maps(div, clipping=False), energy,
                               critic, lr, lr)
    theta_ref, omega_ref = _numpy_published_step(state.theta, state.omega, xp, xn, div, lr, lr)
    # Same sums in different orders: each entry is a mean of <= 500 terms whose magnitudes are
    # <= M; rounding differences <= 500 eps M per mean, M <= 1e3 for these r: atol 1e-10 on the
    # updates (lr = 0.05 times the gradients), rtol 1e-12 on the parameters.
    np.testing.assert_allclose(new.omega, omega_ref, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(new.theta, theta_ref, rtol=1e-12, atol=1e-10)
    assert new.iteration == 1 and state.iteration == 0
    assert not np.array_equal(new.omega, state.omega)
    assert info["clip_fraction_pos"] == 0.0 and info["clip_fraction_neg"] == 0.0


def _torch_published_step(theta, omega, xp, xn, name, lr):
    """The published loop body in torch float64, its own clamp and autograd (the script's semantics)."""
    torch = pytest.importorskip("torch")
    (W1, b1), (W2, b2), (W3, b3) = _layers(omega)
    net = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                              torch.nn.Tanh(), torch.nn.Linear(64, 1)).double()
    with torch.no_grad():
        for lin, (W, b) in zip((net[0], net[2], net[4]), ((W1, b1), (W2, b2), (W3, b3))):
            lin.weight.copy_(torch.tensor(W.T))
            lin.bias.copy_(torch.tensor(b))
    if name == "kl":
        def gd(s):
            return 1.0 + s

        def gm(s):
            return torch.exp(s.clamp(max=3.0))
    else:
        def gd(s):
            return 2.0 * torch.exp(s.clamp(max=6.0)) - 2.0

        def gm(s):
            return torch.exp((2.0 * s).clamp(max=6.0)) - 1.0
    mu = torch.tensor(theta[0], dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(theta[1], dtype=torch.float64, requires_grad=True)
    real, fake = torch.tensor(xp)[:, None], torch.tensor(xn)[:, None]
    opt_f = torch.optim.SGD(net.parameters(), lr=lr)
    opt_e = torch.optim.SGD([mu, sigma], lr=lr)
    e_r, e_f = 0.5 * ((real[:, 0] - mu) / sigma) ** 2, 0.5 * ((fake[:, 0] - mu) / sigma) ** 2
    loss_f = -(gd(net(real)[:, 0] + e_r).mean() - gm(net(fake)[:, 0] + e_f).mean())
    opt_f.zero_grad()
    loss_f.backward()
    opt_f.step()
    e_r, e_f = 0.5 * ((real[:, 0] - mu) / sigma) ** 2, 0.5 * ((fake[:, 0] - mu) / sigma) ** 2
    r_f = net(fake)[:, 0] + e_f
    loss_e = (gd(net(real)[:, 0] + e_r).mean() + (e_f * gm(r_f).detach()).mean()
              - e_f.mean() * gm(r_f).mean().detach() - gm(r_f).mean())
    opt_e.zero_grad()
    loss_e.backward()
    opt_e.step()
    new_omega = np.concatenate([np.concatenate([lin.weight.detach().numpy().T.ravel(), lin.bias.detach().numpy()])
                                for lin in (net[0], net[2], net[4])])
    return np.array([mu.item(), sigma.item()]), new_omega


@pytest.mark.parametrize("name", ["kl", "pearson_chi2"])
def test_published_step_clipped_equals_torch(name):
    rng = np.random.default_rng(11)
    critic = torch_default_init(rng)
    energy = GaussianEnergy1D(0.0, 0.6)  # narrow q: r = H + E exceeds the bounds on part of both batches
    xp = paper_mixture_1d().sample(rng, 400)[:, 0]
    xn = 0.6 * rng.standard_normal(400) * 2.2  # wide negatives so that r- > 3 on some of them
    state = PublishedState(energy.get_params(), critic.get_params(), 0)
    lr = 1e-3
    new, info = published_step(state, xp[:, None], xn[:, None], published_maps(name), energy, critic, lr, lr)
    theta_ref, omega_ref = _torch_published_step(state.theta, state.omega, xp, xn, name, lr)
    assert info["clip_fraction_neg"] > 0.05, info  # the clamps bind: the test exercises them
    if name == "pearson_chi2":
        assert info["clip_fraction_pos"] > 0.05, info
    # float64 both; same rounding argument as the NumPy comparison (sums of <= 800 terms, |terms| <= e^6)
    np.testing.assert_allclose(new.omega, omega_ref, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(new.theta, theta_ref, rtol=1e-12, atol=1e-11)
    try:  # the clipping changes the step here: without it the step differs, or overflows to inf
        unclipped, _ = published_step(state, xp[:, None], xn[:, None], published_maps(name, clipping=False),
                                      energy, critic, lr, lr)
        assert np.max(np.abs(unclipped.theta - new.theta)) > 1e-6
    except FloatingPointError as exc:
        assert "is not finite" in str(exc)


# ---------------------------------------------------------------------------------------------
# 4. the exact fixed point of the clipped objective
# ---------------------------------------------------------------------------------------------

def test_unclipped_gradient_is_grad_of_exact_divergence():
    # G with clips=() is D9 (Cov_q(g_model(log p/q), dE)), against central differences of the
    # quadrature D_f. The truncation error of the step-h difference is c h^2, so the difference
    # between the steps 2h and h is 3 c h^2: |fd(2h) - fd(h)| bounds it with a factor 3 to spare;
    # rounding adds eps |D| / h < 1e-10 (D <= 10, h = 1e-5): tol = |fd(2h) - fd(h)| + 1e-9.
    from febm_ref.clipped_optima import clipped_energy_gradient
    from febm_ref.reference_optima import divergence_gradient

    target = paper_mixture_1d()
    for name, alpha in PAPER_TABLE:
        div = resolve_divergence(name, alpha=alpha)
        g = clipped_energy_gradient(div, target, 0.7, 1.65, clips=())
        fd_h = np.array(divergence_gradient(div, target, 0.7, 1.65, h=1e-5))
        fd_2h = np.array(divergence_gradient(div, target, 0.7, 1.65, h=2e-5))
        tol = np.abs(fd_2h - fd_h) + 1e-9
        assert np.all(np.abs(g - fd_h) <= tol), (div.label, g, fd_h, tol)


def test_clipped_fixed_point_equals_exact_optimum_where_nothing_clips():
    from febm_ref.clipped_optima import clipped_energy_gradient, clipped_fixed_point
    from febm_ref.reference_optima import reference_optimum

    target = paper_mixture_1d()
    for name, alpha in PAPER_TABLE:
        div = resolve_divergence(name, alpha=alpha)
        ref = reference_optimum(div, target)
        cl = clipped_fixed_point(div, target)
        # at the published root no clamp binds: max log(p/q) < the smallest bound, A is empty
        assert cl.max_log_ratio < cl.bound and cl.mass_beyond == (0.0, 0.0) and cl.critic_stationary
        # Tolerance: the reference stops at |grad| <= 1e-9 (BFGS gtol, in (mu, log var)) with a
        # gradient error <= 1e-16 / 1e-6 (central differences of a quadrature accurate to ~1e-16);
        # the parameter error is <= (1.1e-9 * max(1, 2/sigma)) / lambda_min(J), J the Jacobian of G
        # (the Hessian of D_f) at the root, here by central differences; times 10 for safety.
        h = 1e-5
        jac = np.column_stack([(clipped_energy_gradient(div, target, cl.mu + h * e[0], cl.sigma + h * e[1])
                                - clipped_energy_gradient(div, target, cl.mu - h * e[0], cl.sigma - h * e[1]))
                               / (2 * h) for e in np.eye(2)])
        lam_min = float(np.min(np.abs(np.linalg.eigvals(0.5 * (jac + jac.T)))))
        tol = 10 * 1.1e-9 * max(1.0, 2.0 / cl.sigma) / lam_min
        assert abs(cl.mu - ref.mu) <= tol and abs(cl.sigma - ref.sigma) <= tol, (div.label, cl, ref, tol)


def test_kl_has_no_stationary_critic_where_the_clamp_binds():
    # at (0, 1) q is narrower than the wide data component: log(p/q) -> +inf in the tails, above
    # the KL bound 3 on a set A of positive mass (P(A) > 0): no stationary critic exists there
    from febm_ref.clipped_optima import clipped_energy_gradient

    _, info = clipped_energy_gradient("kl", paper_mixture_1d(), 0.0, 1.0, details=True)
    assert info["max_log_ratio"] > 3.0 and info["mass_beyond"][0] > 0 and not info["critic_stationary"]
    _, info = clipped_energy_gradient("pearson_chi2", paper_mixture_1d(), 0.0, 1.1, details=True)
    assert info["mass_beyond"][0] > 0 and info["critic_stationary"]  # the plateau r > 6 is stationary


# ---------------------------------------------------------------------------------------------
# 5. the CLI
# ---------------------------------------------------------------------------------------------

def test_cli_published_flag_reaches_json(tmp_path, capsys):
    from febm_ref.cli import main

    code = main(["fit1d", "--divergence", "pearson_chi2", "--protocol", "paper", "--published", "--iters", "30",
                 "--out", str(tmp_path)])
    assert code == 0
    row = json.loads((tmp_path / "pearson_chi2_febm_paper_published.json").read_text())
    block = row["published"]
    assert block["clipping"] == [c._asdict() for c in PUBLISHED_CLIPS["pearson_chi2"]]
    assert "U(-1/sqrt(fan_in)" in block["init"] and "critic" in block["update_order"]
    assert row["iterations"] == 30 and math.isfinite(row["fit_sigma"])
    history = np.load(tmp_path / "pearson_chi2_febm_paper_published.history.npz")
    assert history["theta"].shape == (30, 2) and np.all(np.isfinite(history["theta"]))
    code = main(["fit1d", "--divergence", "kl", "--protocol", "paper", "--iters", "5", "--out", str(tmp_path)])
    assert code == 0
    assert "published" not in json.loads((tmp_path / "kl_febm_paper.json").read_text())
    capsys.readouterr()


def test_cli_published_help_and_refusals(capsys):
    from febm_ref.cli import main
    from febm_ref.experiments.fit1d import run_fit

    with pytest.raises(SystemExit):
        main(["fit1d", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("exp(clamp(s, max=3))", "2 exp(clamp(s, max=6)) - 2", "exp(clamp(2 s, max=6)) - 1",
                   "U(-1/sqrt(fan_in), 1/sqrt(fan_in))", "critic SGD step, then the energy SGD step"):
        assert phrase in text, phrase
    with pytest.raises(ValueError, match="--protocol paper"):
        run_fit("kl", published=True, protocol="converged", iterations=2)
    with pytest.raises(ValueError, match="--method febm"):
        run_fit("kl", published=True, protocol="paper", method="cd", iterations=2)


def test_published_guard_stops_unclipped_alpha2_at_iteration_0():
    # alpha = 2 is unclipped in the published script. On the first batch (seed 0, sigma = 1),
    # max r+ = 18.7, so g_data'(r+) = e^{r+} reaches 1.3e8 and the first critic step moves
    # parameters by up to 216; then r- reaches 695 and g_model'(r-) = e^{2 r-} overflows float64
    # (e^{1390}). The guard names the quantity and the iteration instead of continuing with inf.
    from febm_ref.experiments.fit1d import run_fit
    from febm_ref.training import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="iteration 0: g_model'\\(r-\\)"):
        run_fit("alpha", 2.0, published=True, protocol="paper", iterations=5, show_progress=False)
