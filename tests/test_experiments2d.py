"""The 2-D experiment machinery of issue 8 (febm_ref.experiments.fit2d): the grid normaliser and grid
divergences against exact Gaussian values (D2), the binned KDE against its closed form, the batched
MLP energy against the NumPy twin, short training runs that lower the exact KL, and the divergence
guards (an injected NaN and a runaway energy, each named with its iteration)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from febm_ref.experiments.fit2d import (
    EnergyRunawayError,
    Experiment2DConfig,
    Grid2D,
    LangevinNegatives,
    kde_on_grid,
    run_experiment,
)
from febm_ref.gaussians import f_divergence
from febm_ref.models.energies import MLPEnergy, QuadraticEnergy
from febm_ref.training import load_checkpoint

BOX = (-4.0, 4.0)


def _gaussian_log_density(grid, mean, cov):
    e = QuadraticEnergy.from_covariance(mean, cov)
    return -e.energy(grid.points) - e.log_normalizer(), e


def test_grid_log_normalizer_matches_exact_gaussian_log_z():
    grid = Grid2D(BOX, 160)
    e = QuadraticEnergy.from_covariance(np.array([0.5, -0.3]), np.array([[0.12, 0.03], [0.03, 0.08]]))
    assert abs(grid.log_normalizer(e.energy(grid.points)) - e.log_normalizer()) < 1e-12
    # an offset in the energy shifts log Z by exactly that offset
    assert abs(grid.log_normalizer(e.energy(grid.points) + 7.5) - (e.log_normalizer() - 7.5)) < 1e-12


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "squared_hellinger"])
def test_grid_divergences_match_gaussian_closed_forms(name):
    grid = Grid2D(BOX, 160)
    mp, Sp = np.array([0.2, 0.1]), np.array([[0.10, 0.02], [0.02, 0.15]])
    mq, Sq = np.array([-0.3, 0.4]), np.array([[0.14, -0.03], [-0.03, 0.09]])
    log_p, _ = _gaussian_log_density(grid, mp, Sp)
    log_q, _ = _gaussian_log_density(grid, mq, Sq)
    exact = f_divergence(name, mp, Sp, mq, Sq)
    assert abs(grid.divergence(name, log_p, log_q) - exact) < 1e-12 * exact + 1e-14


def test_kde_of_one_point_is_the_gaussian_kernel():
    """A single sample at a cell centre: the binned KDE is the sampled Gaussian kernel normalised
    on the grid, whose value at the centre is 1/(2 pi b^2) up to a Poisson-summation error
    exp(-2 pi^2 (b/h)^2) ~ 1e-53, mixed with 1e-6 of the uniform law on the box."""
    grid = Grid2D(BOX, 160)
    b = 0.1
    x = grid.points[[80 * 160 + 80]]
    log_kde = kde_on_grid(grid, x, b)
    expected = (1 - 1e-6) / (2 * math.pi * b ** 2) + 1e-6 / 64.0
    assert abs(math.exp(log_kde[80 * 160 + 80]) - expected) < 1e-10 * expected
    assert abs(grid.mass(log_kde) - 1.0) < 1e-12


def test_mlp_energy_batch_path_matches_numpy_twin():
    rng = np.random.default_rng(0)
    e = MLPEnergy.random_init(rng, 2, (16, 8), "tanh", output_bias=False)
    twin = MLPEnergy(2, (16, 8), "tanh", params=e.params, output_bias=False, backend="numpy")
    x, w = rng.standard_normal((300, 2)), rng.standard_normal(300)
    assert np.max(np.abs(e.energy(x) - twin.energy(x))) < 1e-12
    assert np.max(np.abs(e.weighted_grad_params(x, w) - twin.weighted_grad_params(x, w))) < 1e-11
    moved = e.with_params(e.params + 0.1)
    assert type(moved) is MLPEnergy
    assert np.max(np.abs(moved.energy(x) - twin.with_params(e.params + 0.1).energy(x))) < 1e-12


def _small(**kw):
    base = dict(target="eight_gaussians", iterations=200, batch_size=128, eval_every=50, grid_size=80,
                n_eval_samples=500, buffer_capacity=2000, schedule="constant", lr_energy=5e-3, lr_critic=1e-2)
    base.update(kw)
    return Experiment2DConfig(**base)


@pytest.mark.parametrize("kw", [dict(method="febm", divergence="squared_hellinger"),
                                dict(method="cd", sampler="ula")])
def test_short_training_lowers_exact_kl(kw):
    r = run_experiment(_small(**kw), show_progress=False)
    assert r["status"] == "ok", r.get("message")
    init, final = r["initial"]["kl"], r["final"]["kl"]
    assert final < 0.8 * init, f"exact KL {init:.4f} -> {final:.4f} after 200 iterations ({kw})"
    # reported numbers are the exact grid divergences of the returned parameters
    assert r["curve"]["kl"][0] == init and r["curve"]["kl"][-1] == final


def test_injected_nan_is_reported_with_iteration_and_last_good_checkpoint(tmp_path, monkeypatch):
    """A NaN injected into the negatives at iteration 13: the run reports the iteration and the
    quantity, and the checkpoint of iteration 10 (every 5) stays on disk with finite parameters."""
    import febm_ref.experiments.fit2d as X

    class BlowsUpAt13(X.LangevinNegatives):
        def __call__(self, rng, energy, n):
            x = super().__call__(rng, energy, n)
            if self.iteration - 1 == 13:
                x = x.copy()
                x[0, 0] = np.nan
            return x

    monkeypatch.setattr(X, "LangevinNegatives", BlowsUpAt13)
    cfg = _small(method="febm", divergence="kl", iterations=40)
    r = X.run_experiment(cfg, out_dir=tmp_path, show_progress=False, checkpoint_every=5)
    assert r["status"] == "diverged"
    assert r["iteration"] == 13 and "iteration 13" in r["message"] and "negative samples" in r["quantity"]
    assert r["last_good_checkpoint"] == 10
    ck = load_checkpoint(r["checkpoint"])
    assert ck["meta"]["iteration"] == 10 and np.all(np.isfinite(ck["theta"]))


def test_runaway_energy_is_reported_with_iteration():
    cfg = _small(energy_limit=50.0)
    energy = MLPEnergy.random_init(np.random.default_rng(1), 2, (8,), "tanh", output_bias=False)
    negatives = LangevinNegatives(cfg, BOX, start_iteration=42)
    rng = np.random.default_rng(2)
    x = negatives(rng, energy, 64)  # |E| of order 1: accepted
    assert np.all((x >= BOX[0]) & (x <= BOX[1])) and negatives.iteration == 43
    big = energy.with_params(energy.params * 1e3)
    with pytest.raises(EnergyRunawayError, match="iteration 43") as info:
        negatives(rng, big, 64)
    assert info.value.iteration == 43 and "energy_limit = 50" in str(info.value)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="2-D target"):
        Experiment2DConfig(target="paper_mixture_1d")
    with pytest.raises(ValueError, match="sampler"):
        Experiment2DConfig(sampler="hmc")
    with pytest.raises(ValueError, match="restart_prob"):
        Experiment2DConfig(restart_prob=1.5)


def test_runaway_on_the_evaluation_grid_names_the_iteration():
    import febm_ref.experiments.fit2d as X

    grid = Grid2D(BOX, 32)
    ev = X.Evaluator(grid, np.zeros(grid.points.shape[0]), 50.0, current_iteration=lambda: 99)
    energy = MLPEnergy.random_init(np.random.default_rng(1), 2, (8,), "tanh", output_bias=False)
    assert math.isfinite(ev(energy))
    with pytest.raises(EnergyRunawayError, match="iteration 99"):
        ev(energy.with_params(energy.params * 1e3))


# ----------------------------------------------------------------------------- published image-code mode
def _image_code_maps(name, r, c=5.0):
    """The image code's maps (image_generation/f_divergence.py), written out independently: values
    with stable_exp(x) = exp(clip(x, -c, c)), derivatives by TensorFlow's rule for clip_by_value
    (gradient 1 inside [-c, c], bounds included, 0 outside)."""
    e = lambda x: np.exp(np.clip(x, -c, c))  # noqa: E731
    m = lambda x: ((x >= -c) & (x <= c)).astype(float)  # noqa: E731
    if name == "kl":
        return 1 + r, e(r), np.ones_like(r), e(r) * m(r)
    if name == "reverse_kl":
        return -e(-r), r - 1, e(-r) * m(-r), np.ones_like(r)
    if name == "jensen_shannon":
        s = e(r) / (1 + e(r)) * m(r)
        return math.log(2) + r - np.log(1 + e(r)), -math.log(2) + np.log(1 + e(r)), 1 - s, s
    if name == "squared_hellinger":
        return 1 - e(-r / 2), e(r / 2) - 1, 0.5 * e(-r / 2) * m(-r / 2), 0.5 * e(r / 2) * m(r / 2)
    return 2 * (e(r) - 1), e(2 * r) - 1, 2 * e(r) * m(r), 2 * e(2 * r) * m(2 * r)


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "jensen_shannon", "squared_hellinger", "pearson_chi2"])
def test_clipped_maps_are_the_image_codes_and_the_catalogues_inside_the_clip(name):
    from febm_ref.divergences import get_divergence
    from febm_ref.published_image import clipped_divergence

    div, base = clipped_divergence(name), get_divergence(name)
    r = np.linspace(-14.0, 14.0, 561)  # clipped and unclipped arguments, the bounds +-5, +-10, +-2.5 on the grid
    got = (div.g_data(r), div.g_model(r), div.g_data_prime(r), div.g_model_prime(r))
    for g, want in zip(got, _image_code_maps(name, r)):
        # the same expressions: equal to the last bits
        assert np.array_equal(g, want)
    # where no argument reaches the clip (|r| < 2.5 covers 2r), the catalogue's maps: different
    # but equivalent forms (softplus / expm1), so agreement to ~4 ulp of values of size <= e^5
    inner = np.abs(r) < 2.5
    for g, want in zip(got, (base.g_data(r), base.g_model(r), base.g_data_prime(r), base.g_model_prime(r))):
        assert np.max(np.abs(g[inner] - want[inner])) < 4 * np.finfo(float).eps * max(1.0, np.max(np.abs(want[inner])))
    assert div.label == f"{name}+exp_clip(5)"
    with pytest.raises(TypeError, match="only the g maps"):
        div.f(np.array([1.0]))


def test_default_configuration_and_objective_are_unchanged_by_the_published_mode():
    """The default config has no exp_clip/published entries (so fingerprints of default runs are as
    before), its objective is the catalogue's by name, and a clip that never binds (c = 1e6) gives
    the default run bit for bit (kl: the clipped maps are then the same expressions)."""
    from febm_ref.experiments.fit2d import published_config

    cfg = Experiment2DConfig()
    d = cfg.as_dict()
    assert "exp_clip" not in d and "published" not in d and d["l2_weight"] == 0.01
    assert cfg.training_config().divergence == "kl" and cfg.training_config().l2_weight == 0.01
    a = run_experiment(_small(iterations=20, eval_every=10), show_progress=False)
    b = run_experiment(_small(iterations=20, eval_every=10, exp_clip=1e6), show_progress=False)
    assert a["curve"]["kl"] == b["curve"]["kl"] and a["final"] == b["final"]
    assert b["config"]["exp_clip"] == 1e6
    pub = published_config(divergence="jensen_shannon")
    assert (pub.l2_weight, pub.exp_clip, pub.sampler, pub.restart_prob, pub.published) == (1.0, 5.0, "d16", 0.95, True)
    assert pub.label == "published_jensen_shannon"
    assert published_config(method="cd").exp_clip is None
    assert pub.training_config().divergence.label == "jensen_shannon+exp_clip(5)"
    with pytest.raises(ValueError, match="published image-code settings; differing: l2_weight"):
        Experiment2DConfig(published=True, exp_clip=5.0)
    with pytest.raises(ValueError, match="CD has none"):
        Experiment2DConfig(method="cd", exp_clip=5.0)


def test_fit2d_published_names_every_stabilisation_and_records_it(tmp_path, capsys):
    from febm_ref.cli import build_parser, main
    from febm_ref.experiments.fit2d import PUBLISHED_STABILISATIONS

    help_text = build_parser()._subparsers._group_actions[0].choices["fit2d"].format_help()
    flat = " ".join(help_text.split())
    for key, text in PUBLISHED_STABILISATIONS.items():
        assert f"{key}: {' '.join(text.split())}" in flat
    assert main(["fit2d", "--published", "--iters", "20", "--divergence", "squared_hellinger", "--out",
                 str(tmp_path)]) == 0
    run = json.loads((tmp_path / "runs" / "eight_gaussians__published_squared_hellinger__s0.json").read_text())
    assert set(run["stabilisations"]) == set(PUBLISHED_STABILISATIONS)
    assert run["config"]["exp_clip"] == 5.0 and run["config"]["l2_weight"] == 1.0 and run["config"]["published"]
