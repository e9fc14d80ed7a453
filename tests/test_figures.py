"""Smoke test of every figure script (figures/fig_*.py) at a tiny size.

Each script runs in this process (``main(argv)``, Agg backend) into ``tmp_path``: ``--tiny`` for
the scripts that compute their own numbers, and tiny runs of the real commands (``febm-ref
fit1d --iters 40``, ``fit2d --iters 5``) for the scripts that read runs. Beyond "it ran", every
PNG is a valid image of the pixel size its ``figsize x dpi`` gives and not blank, and the
numbers the scripts save are held against the theory or an independent computation: the bound
D5 is tight at the optimal critic and never above D_f, eta* against the Isserlis closed form of
D17, ULA's variance against the D15 law, a first-order optimality test of the exact optimum, the
clipped fixed point against argmin D_f, a grid KL against the run's own.

The tiny sizes keep the whole file near 9 s on two shared cores, no test above 3 s (measured:
fig_bounds 2.6 s, fig_samplers 1.6 s, fit2d run + figure 1.2 s); a cold Numba cache adds the
kernels' compile time once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "figures"


def run_figure(name: str, argv: list) -> str:
    """Run ``figures/<name>.py``'s ``main(argv)`` here; return what it printed."""
    spec = importlib.util.spec_from_file_location(f"_figure_{name}", FIGURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert module.main([str(a) for a in argv]) == 0
    return printed.getvalue()


def run_cli(argv: list) -> None:
    from febm_ref.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main([str(a) for a in argv]) == 0


def assert_image(path: Path, width: int, height: int) -> None:
    """A PNG of ``width x height`` pixels with more than a handful of distinct colours."""
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[:2] == (height, width), (path.name, image.shape)
    channels = np.round(image * 255).astype(np.uint32)  # one integer per pixel (RGB or RGBA)
    codes = sum(channels[..., k] << (8 * k) for k in range(image.shape[2]))
    colours = np.unique(codes).size
    assert colours > 10, (path.name, colours)  # axes, text and lines: not a blank canvas


def test_every_figure_script_has_a_smoke_test():
    tested = {"fig_bounds", "fig_convergence", "fig_samplers", "fig_fit1d", "fig_published", "fig_fit2d"}
    assert {p.stem for p in FIGURES.glob("fig_*.py")} == tested


def test_assert_image_rejects_a_blank_png_and_a_wrong_size(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1))
    fig.savefig(tmp_path / "blank.png", dpi=50)
    plt.close(fig)
    with pytest.raises(AssertionError):
        assert_image(tmp_path / "blank.png", 100, 50)
    with pytest.raises(AssertionError):
        assert_image(tmp_path / "blank.png", 100, 60)


def test_fig_bounds(tmp_path):
    run_figure("fig_bounds", ["--out", tmp_path, "--tiny"])
    for name, size in (("perturbation", (1320, 715)), ("training", (1320, 495)), ("critics", (880, 770))):
        assert_image(tmp_path / f"fig_bounds_{name}.png", *size)  # figsize x dpi 110
    summary = json.loads((tmp_path / "fig_bounds.json").read_text())
    arrays = np.load(tmp_path / "fig_bounds.npz")
    eps = arrays["eps"]
    assert eps.tolist() == [-1.5, 0.0, 1.5]
    for name, info in summary["perturbation"].items():
        bound = arrays[f"bound_{name}"]
        # D5: the bound is tight at the optimal critic (quadrature of the bound's integrand against
        # the closed-form D_f) and strictly below it at a perturbed critic; G2 > 0 (f convex)
        assert bound[1] == pytest.approx(info["exact"], rel=1e-9), name
        assert np.all(bound[[0, 2]] < info["exact"]) and info["G2"] > 0 and info["min_gap"] > -1e-12, name
    assert len(summary["training"]) == 6  # 3 critics x (mixture, Gaussian pair)
    for key, row in summary["training"].items():
        assert row["max_bound_minus_exact"] <= 1e-10 and 0 <= row["relative_gap"] < 1, key


def test_fig_convergence(tmp_path):
    from febm_ref.divergences import get_divergence
    from febm_ref.local_convergence import gaussian_1d_problem, gaussian_closed_form_jacobian, step_size_bound

    run_figure("fig_convergence", ["--out", tmp_path, "--tiny"])
    assert_image(tmp_path / "fig_convergence.png", 2200, 528)  # (20, 4.8) x 110
    summary = json.loads((tmp_path / "fig_convergence.json").read_text())
    # the figure's eta* and spectra come from quadrature moments; the Isserlis closed form of D17
    # (no quadrature) scales with f''(1)
    J_kl = gaussian_closed_form_jacobian(gaussian_1d_problem(), 1.0)
    assert summary["eta_star_kl"] == pytest.approx(step_size_bound(np.linalg.eigvals(J_kl)), rel=1e-10)
    kl_max = float(np.max(np.linalg.eigvals(J_kl).real))
    assert kl_max < 0
    for label, value in summary["max_real_eig"].items():
        name, _, alpha = label.partition("(")
        div = get_divergence(name, **({"alpha": float(alpha[:-1])} if alpha else {}))
        assert value == pytest.approx(div.f_double_prime_at_one * kl_max, rel=1e-10), label
    run = summary["runs"]["gaussian_1d/simultaneous"]
    assert run["predicted_rate"] < 1 and run["rate_relative_error"] < 1e-6  # exact dynamics at the D17 rate


def test_fig_samplers(tmp_path):
    from febm_ref.samplers import ula
    from febm_ref.targets import paper_mixture_1d

    run_figure("fig_samplers", ["--out", tmp_path, "--tiny"])
    assert_image(tmp_path / "fig_samplers.png", 1320, 480)  # (11, 4) x 120
    rows = json.loads((tmp_path / "fig_samplers.json").read_text())
    arrays = np.load(tmp_path / "fig_samplers.npz")
    fine = arrays["fine"]
    assert fine[0] == 0.0 and arrays["exact"][0] == 1.0  # eps -> 0: the unbiased variance
    exact = np.array([ula.stationary_variance_1d(1.0, f) for f in fine[1:]])
    np.testing.assert_allclose(arrays["exact"][1:], exact, rtol=1e-14)  # the plotted D15 curve
    for sampler, rows_ in rows.items():
        assert len(rows_) == 6
        for row in rows_:
            law = ula.stationary_variance_1d(1.0, row["eps_over_s2"]) if sampler == "ula" else 1.0
            # 18 estimates, 5 standard errors: the family-wise false-alarm rate is ~1e-5 (fixed seeds)
            assert abs(row["variance_ratio"] - law) <= 5 * row["se"], (sampler, row)
    worst = rows["ula"][-1]  # eps = 1.2 s^2: ULA's 43 % bias is resolved at this size
    assert (worst["variance_ratio"] - 1.0) / worst["se"] > 10
    target = paper_mixture_1d()
    mean = float(target.weights @ target.means)  # 1.01
    for sampler in ("mala", "hmc"):  # draws thinned by their autocorrelation time: about independent
        draws = arrays[f"mix_{sampler}"]
        assert draws.size >= 100 and abs(draws.mean() - mean) <= 5 * draws.std() / math.sqrt(draws.size), sampler


@pytest.fixture(scope="module")
def fit1d_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("fit1d_runs")
    run_cli(["fit1d", "--divergence", "kl", "--protocol", "converged", "--iters", 40, "--out", runs])
    run_cli(["fit1d", "--divergence", "kl", "--protocol", "paper", "--published", "--iters", 40, "--out", runs])
    return runs


def test_fig_fit1d(tmp_path, fit1d_runs):
    from febm_ref.divergences import get_divergence
    from febm_ref.targets import paper_mixture_1d
    from febm_ref.verification.check_objective import divergence_gradient_fd

    run_figure("fig_fit1d", ["--out", tmp_path, "--runs", fit1d_runs, "--only", "kl"])
    for name, size in (("fits", (396, 297)), ("log_ratio", (396, 297)), ("curves", (1210, 440))):
        assert_image(tmp_path / f"fig_fit1d_{name}.png", *size)  # one panel (3.6, 2.7); (11, 4); dpi 110
    (row,) = json.loads((tmp_path / "fig_fit1d.json").read_text())["rows"]
    run = json.loads((fit1d_runs / "kl_febm_converged.json").read_text())
    assert (row["fit_mu"], row["fit_sigma"]) == (run["fit_mu"], run["fit_sigma"])
    # the exact optimum it draws is a stationary point of D_f (central differences of the quadrature)
    grad = divergence_gradient_fd(get_divergence("kl"), paper_mixture_1d(), row["exact_mu"], row["exact_sigma"])
    assert np.max(np.abs(grad)) < 1e-6, grad
    arrays = np.load(tmp_path / "fig_fit1d.npz")
    p = arrays["p"]
    assert np.sum(p) * (arrays["x"][1] - arrays["x"][0]) == pytest.approx(1.0, abs=1e-3)  # the target density


def test_fig_published(tmp_path, fit1d_runs):
    from febm_ref.targets import paper_mixture_1d

    run_figure("fig_published", ["--runs", fit1d_runs, "--out", tmp_path, "--only", "kl"])
    assert_image(tmp_path / "fig_published_optima.png", 1320, 780)  # (11, 6.5) x 120
    assert_image(tmp_path / "fig_published_curves.png", 1000, 160)  # (10, 1.6 x 1 row) x 100
    (row,) = json.loads((tmp_path / "fig_published.json").read_text())["rows"]
    run = json.loads((fit1d_runs / "kl_febm_paper_published.json").read_text())
    assert row["published"] == [run["fit_mu"], run["fit_sigma"]]
    # two different computations agree: no clamp binds at the optimum (docs/theory.md section 6.1),
    # so the clipped algorithm's fixed point (root finder) is argmin D_f (quadrature + Nelder-Mead)
    np.testing.assert_allclose(row["clipped"], row["exact"], rtol=1e-6)
    # and for KL the optimum is moment matching: the mixture's mean and standard deviation
    target = paper_mixture_1d()
    mean = float(target.weights @ target.means)
    sd = math.sqrt(float(target.weights @ (target.variances + target.means ** 2)) - mean ** 2)
    np.testing.assert_allclose(row["exact"], [mean, sd], rtol=1e-6)
    table = (tmp_path / "published_table.md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith("| kl | (1.0100, 1.8304) |")


def test_fig_fit2d(tmp_path):
    runs = tmp_path / "runs2d"
    run_cli(["fit2d", "--all", "--targets", "eight_gaussians", "--seeds", 1, "--iters", 5, "--out", runs])
    out = tmp_path / "fig"
    run_figure("fig_fit2d", ["--runs", runs, "--out", out, "--seeds", 1, "--targets", "eight_gaussians"])
    assert_image(out / "fig_fit2d_eight_gaussians.png", 1560, 540)  # (2.6 x 6 columns, 5.4) x 100
    assert_image(out / "fig_fit2d_curves.png", 420, 360)  # (4.2 x 1 target, 3.6) x 100
    data = np.load(out / "fig_fit2d_eight_gaussians.npz")
    from febm_ref.targets import get_target

    lo, hi = get_target("eight_gaussians").box
    cell = ((hi - lo) / data["target_density"].shape[0]) ** 2
    methods = [k[:-len("_density")] for k in data.files if k.endswith("_density") and k != "target_density"]
    assert sorted(methods) == ["cd", "jensen_shannon", "kl", "reverse_kl", "squared_hellinger"]
    p = data["target_density"]
    assert np.sum(p) * cell == pytest.approx(1.0, abs=1e-9)
    for method in methods:
        q = data[f"{method}_density"]
        assert np.sum(q) * cell == pytest.approx(1.0, rel=1e-12)  # grid-normalised
        result = json.loads((runs / "runs" / f"eight_gaussians__{method}__s0.json").read_text())
        # KL(p||q) on this 160-cell grid against the run's own evaluation (200 cells; measured 1e-7)
        kl = float(np.sum(np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)) * cell)
        assert kl == pytest.approx(result["final"]["kl"], rel=1e-5), method
        assert float(data[f"{method}_kl"]) == result["final"]["kl"]
        assert math.isfinite(kl)
