"""2-D experiments (issue 8): MLP energies trained by f-EBM (D13) or contrastive divergence (D1,
D12) with short-run Langevin negatives and a replay buffer (D16 or textbook ULA D15), judged by
exact divergences between the target and the grid-normalised model (docs/theory.md section 6).

The model
---------
A tanh MLP energy is bounded, so ``exp(-E)`` is not integrable on ``R^2``. The model is therefore
defined on the target's square box ``B = [lo, hi]^2`` (``targets.BOX_HALF_WIDTH_2D``), which holds all
but ``< 1e-10`` of every target's mass:

    ``q_theta(x) = exp(-E_theta(x)) 1_B(x) / Z_B``,  ``Z_B = int_B exp(-E_theta)``.

The Langevin negatives respect this support: D16 clips the chains to the box (its ``box`` option),
ULA end points are projected onto the box (:class:`LangevinNegatives`); the replay buffer resets
chains to the uniform law on ``B``.

Exact evaluation (:class:`Grid2D`)
----------------------------------
The midpoint rule on an ``n x n`` grid of cells of area ``h^2``: ``log Z_B = logsumexp(-E(x_ij)) +
log h^2``, and ``D_f(P||Q) = sum_ij q f(p/q) h^2`` through ``Divergence.perspective`` (D2) with the
target restricted to ``B``. For the smooth densities here (Gaussian features of width >= 0.15 against
``h = 0.04``) the rule is accurate to far below the reported digits; ``febm_ref/verification/check_fit2d.py``
checks it against a Gaussian's exact ``log Z`` and closed-form divergences. ``edge_mass`` (the model
mass in the outermost ring of cells) reports whether the model piles up against the box.

Sample quality of the sampler
-----------------------------
``n`` negatives drawn exactly as in training (buffer restarts + K Langevin steps) are turned into a
binned Gaussian kernel density estimate on the same grid (bandwidth ``kde_bandwidth``, mixed with a
``1e-6`` weight of the uniform law on ``B`` so that its logarithm is finite), and compared with the
target and with the learned model. The same estimator applied to ``n`` exact target draws gives the
*floor* (the estimator's own error at this ``n``), reported next to it.

Checkpoints and resume
----------------------
Everything a run carries from one iteration to the next is in the trainer's checkpoint
(``<out_dir>/<run>.ckpt.npz``): besides parameters, optimiser and generator states, the replay
buffer and iteration counter of :class:`LangevinNegatives` and the metric curve of the
:class:`Evaluator`, through the trainer's state protocol (``state_arrays`` /
``load_state_arrays``, :mod:`febm_ref.training`). ``run_experiment(..., resume=True)`` therefore
continues an interrupted run and reproduces the uninterrupted run bit for bit. The checkpoint's
fingerprint holds the whole :class:`Experiment2DConfig` (as the sampler's description), so a
resume with other settings is refused, naming them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.special import logsumexp

from febm_ref._numba import kernels as _kernels
from febm_ref._validation import (
    as_float_array,
    check_in_interval,
    check_interval,
    check_positive_int,
    check_real_scalar,
)
from febm_ref.divergences import get_divergence
from febm_ref.models.energies import MLPEnergy, _check_hidden
from febm_ref.samplers import mlp_langevin
from febm_ref.samplers.replay_buffer import ReplayBuffer
from febm_ref.targets import TARGETS_2D, get_target
from febm_ref.training import TrainingConfig, TrainingDivergedError, load_checkpoint, train

__all__ = ["Experiment2DConfig", "Grid2D", "LangevinNegatives", "EnergyRunawayError", "make_models",
           "run_experiment", "kde_on_grid", "EVAL_DIVERGENCES", "FEBM_DIVERGENCES_2D", "SAMPLERS",
           "published_config", "published_settings", "PUBLISHED_STABILISATIONS", "compute_record",
           "equal_compute_langevin_steps", "gradient_evaluations_per_iteration", "SAMPLER_WORK_COUNTERS"]

EVAL_DIVERGENCES = ("kl", "reverse_kl", "squared_hellinger", "jensen_shannon")
"""Exact divergences reported between the target ``p`` and the model ``q`` (data first, D2)."""
FEBM_DIVERGENCES_2D = ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger")
"""The f-EBM objectives of the results table (issue 8)."""
SAMPLERS = ("d16", "ula")
KDE_UNIFORM_WEIGHT = 1e-6


@dataclass(frozen=True)
class Experiment2DConfig:
    """One 2-D run. Defaults: the configuration of the results table (``docs/results2d.md``).

    Energy ``E_theta``: 2-32-32-1 tanh MLP without output bias (no free additive gauge, docs/theory.md
    section 5). Critic ``H_omega``: 2-32-32-1 tanh MLP with output bias (it must carry
    ``log Z``: at the optimum ``H = log p + log Z_B``). Adam (beta1 0.5) on both, alternating
    updates (critic first), learning rates 2e-3 (energy) and 6e-3 (critic) cosine-decayed to 10%,
    D14 l2 terms with weight 0.01 (for CD on the energy only), 2000 iterations of batches
    256 + 256. Without the l2 terms the f-EBM energy drifted by a constant (log Z_B ~ -100) and
    training stalled; with energy lr 3e-3 the f-EBM KL run oscillated (both measured on
    eight_gaussians, seed 0, before the table was run). Negatives: ``langevin_steps`` steps of
    D16 with noise ``noise_scale`` and step ``step_size = noise_scale^2 / 2`` by default
    (temperature 1), from a replay buffer (restart probability 0.95, uniform resets on the box).
    """

    target: str = "eight_gaussians"
    divergence: str = "kl"
    method: str = "febm"
    sampler: str = "d16"
    iterations: int = 2000
    batch_size: int = 256
    hidden: tuple = (32, 32)
    critic_hidden: tuple = (32, 32)
    activation: str = "tanh"
    lr_energy: float = 2e-3
    lr_critic: float = 6e-3
    beta1: float = 0.5
    schedule: str = "cosine"
    final_lr_fraction: float = 0.1
    l2_weight: float = 0.01
    langevin_steps: int = 15
    noise_scale: float = 0.2
    step_size: Optional[float] = None
    buffer_capacity: int = 10000
    restart_prob: float = 0.95
    energy_limit: float = 1e4
    eval_every: int = 100
    grid_size: int = 200
    n_eval_samples: int = 5000
    kde_bandwidth: float = 0.1
    seed: int = 0
    exp_clip: Optional[float] = None
    published: bool = False

    def __post_init__(self):
        if self.target not in TARGETS_2D:
            raise ValueError(f"unknown 2-D target {self.target!r}; choose one of {TARGETS_2D}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        check_positive_int(self.langevin_steps, "langevin_steps")
        check_positive_int(self.buffer_capacity, "buffer_capacity")
        check_positive_int(self.grid_size, "grid_size", minimum=8)
        check_positive_int(self.n_eval_samples, "n_eval_samples")
        check_real_scalar(self.noise_scale, "noise_scale", positive=True)
        check_real_scalar(self.energy_limit, "energy_limit", positive=True)
        check_real_scalar(self.kde_bandwidth, "kde_bandwidth", positive=True)
        if self.step_size is not None:
            check_real_scalar(self.step_size, "step_size", positive=True)
        check_in_interval(self.restart_prob, "restart_prob", 0.0, 1.0)
        for name in ("hidden", "critic_hidden"):
            try:
                _check_hidden(getattr(self, name))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}: {exc}") from None
        _kernels.activation_code(self.activation)
        if self.exp_clip is not None:
            check_real_scalar(self.exp_clip, "exp_clip", positive=True)
            if self.method != "febm":
                raise ValueError("exp_clip clips the exponents of the f-EBM maps (D7); CD has none: leave "
                                 "exp_clip=None with method='cd'")
        if self.published:
            wrong = {k: (getattr(self, k), v) for k, v in published_settings(self.method).items()
                     if getattr(self, k) != v}
            if wrong:
                raise ValueError("published=True needs the published image-code settings; differing: " + ", ".join(
                    f"{k}={a!r} (published {b!r})" for k, (a, b) in wrong.items()) + ". Build it with "
                    "published_config(...)")
        self.training_config()  # validates the trainer settings

    @property
    def langevin_step_size(self) -> float:
        """D16 step ``lambda`` (default ``sigma_n^2 / 2``) or the ULA ``eps`` (default ``sigma_n^2``)."""
        if self.step_size is not None:
            return float(self.step_size)
        return self.noise_scale ** 2 / 2.0 if self.sampler == "d16" else self.noise_scale ** 2

    @property
    def label(self) -> str:
        base = "cd" if self.method == "cd" else self.divergence
        return f"published_{base}" if self.published else base

    def run_name(self) -> str:
        return f"{self.target}__{self.label}__s{self.seed}"

    def training_config(self) -> TrainingConfig:
        divergence = self.divergence
        if self.exp_clip is not None:
            from febm_ref.published_image import clipped_divergence

            divergence = clipped_divergence(self.divergence, self.exp_clip)
        return TrainingConfig(divergence=divergence, method=self.method, iterations=self.iterations,
                              batch_size=self.batch_size, n_negatives=self.batch_size, optimizer="adam",
                              lr_energy=self.lr_energy, lr_critic=self.lr_critic, beta1=self.beta1,
                              schedule=self.schedule, final_lr_fraction=self.final_lr_fraction,
                              update="alternating", l2_weight=self.l2_weight, eval_every=self.eval_every,
                              seed=self.seed)

    def as_dict(self) -> dict:
        """The fields as a JSON-able dict; ``exp_clip`` and ``published`` only when set, so that the
        default configuration (and the checkpoint fingerprint of default runs) is as before them."""
        d = dataclasses.asdict(self)
        d["hidden"], d["critic_hidden"] = list(self.hidden), list(self.critic_hidden)
        if self.exp_clip is None:
            del d["exp_clip"]
        if not self.published:
            del d["published"]
        return d


PUBLISHED_STABILISATIONS = {
    "l2_weight": "D14 l2 terms with weight 1 on energy and critic (image code: l2_coeff = 1.0)",
    "exp_clip": "every exponential of the g maps is exp(clip(x, -5, 5)) (image code: stable_exp), "
                "f-EBM only (febm_ref.published_image)",
    "sampler": "D16 decoupled Langevin, clipped to the box (image code: noise, then a gradient step, then "
               "clip_by_value to the data range)",
    "restart_prob": "replay buffer, 5 % of chains restarted from uniform noise (image code: replay_batch, "
                    "mask uniform > 0.05)",
    "buffer_capacity": "replay buffer of 10,000 points (image code: ReplayBuffer(10000))",
}
"""The published image code's stabilisations that ``published=True`` applies, by config field."""


def published_settings(method: str = "febm") -> dict:
    """The config fields of :data:`PUBLISHED_STABILISATIONS` at the image code's values (no
    ``exp_clip`` for CD, which has no exponent to clip)."""
    out = {"l2_weight": 1.0, "exp_clip": 5.0, "sampler": "d16", "restart_prob": 0.95, "buffer_capacity": 10000}
    if method == "cd":
        out["exp_clip"] = None
    return out


def published_config(**kw) -> "Experiment2DConfig":
    """:class:`Experiment2DConfig` with the published image-code stabilisations
    (:data:`PUBLISHED_STABILISATIONS`); everything else as given or the defaults. Not reproduced
    (a different model or schedule, stated in docs/results2d_equal_compute.md): spectral
    normalisation, Adam with beta1 = 0 and lr 3e-4, ten l2-only warm-up iterations, and negatives
    taken at the chains' starting points (one Langevin run behind)."""
    return Experiment2DConfig(**{**kw, **published_settings(kw.get("method", "febm")), "published": True})


# ----------------------------------------------------------------------------- grid quadrature
class Grid2D:
    """Midpoint rule on ``[lo, hi]^2`` with ``n x n`` cells (module docstring).

    Attributes
    ----------
    points : ndarray (n*n, 2)
        Cell centres, row-major in (x, y) with x the slow index.
    cell_area : float
    """

    def __init__(self, box, n: int):
        lo, hi = check_interval(box, "box")
        self.n = check_positive_int(n, "n")
        self.box = (lo, hi)
        self.h = (hi - lo) / self.n
        self.centres = lo + self.h * (np.arange(self.n) + 0.5)
        xs, ys = np.meshgrid(self.centres, self.centres, indexing="ij")
        self.points = np.column_stack([xs.ravel(), ys.ravel()])
        self.cell_area = self.h ** 2
        edge = np.zeros((self.n, self.n), dtype=bool)
        edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
        self._edge = edge.ravel()

    def log_normalizer(self, neg_log_unnormalized) -> float:
        """``log sum_ij exp(-E_ij) h^2`` from the energies ``E_ij`` at the cell centres."""
        e = self._check_cells(neg_log_unnormalized, "neg_log_unnormalized")
        return float(logsumexp(-e) + math.log(self.cell_area))

    def _check_cells(self, values, name: str) -> np.ndarray:
        """One value per cell, shape ``(n*n,)`` (no broadcasting), not NaN (``+-inf`` allowed)."""
        return as_float_array(values, name, shape=(self.n * self.n,), allow_inf=True)

    def model_log_density(self, energy) -> tuple[np.ndarray, float]:
        """``(log q_theta at the cell centres, log Z_B)`` of ``q ∝ exp(-E) 1_B``."""
        e = energy.energy(self.points)
        log_z = self.log_normalizer(e)
        return -e - log_z, log_z

    def mass(self, log_density) -> float:
        """``sum_ij exp(log_density_ij) h^2``."""
        log_density = self._check_cells(log_density, "log_density")
        return float(np.exp(logsumexp(log_density) + math.log(self.cell_area)))

    def edge_mass(self, log_density) -> float:
        """Mass in the outermost ring of cells (a model that piles up against the box shows here)."""
        log_density = self._check_cells(log_density, "log_density")
        return float(np.exp(logsumexp(log_density[self._edge]) + math.log(self.cell_area)))

    def divergence(self, name: str, log_p, log_q) -> float:
        """``D_f(P||Q) ≈ sum_ij q f(p/q) h^2`` (D2) with the catalogue's stable perspective."""
        log_p = self._check_cells(log_p, "log_p")
        log_q = self._check_cells(log_q, "log_q")
        return float(np.sum(get_divergence(name).perspective(log_p, log_q)) * self.cell_area)

    def divergences(self, log_p, log_q, names=EVAL_DIVERGENCES) -> dict:
        return {name: self.divergence(name, log_p, log_q) for name in names}

    def bin_index(self, x) -> np.ndarray:
        """Flat cell index of each point ``x (m, 2)`` (points outside the box are an error)."""
        x = as_float_array(x, "x", shape=(None, 2))
        lo, hi = self.box
        if np.any(x < lo) or np.any(x > hi):
            raise ValueError(f"x has points outside the grid box [{lo}, {hi}]^2, which cannot be binned; "
                             "clip or project them first")
        ij = np.minimum(((x - lo) / self.h).astype(np.int64), self.n - 1)
        return ij[:, 0] * self.n + ij[:, 1]


def kde_on_grid(grid: Grid2D, x, bandwidth: float, *, uniform_weight: float = KDE_UNIFORM_WEIGHT) -> np.ndarray:
    """Log density (at the cell centres) of a binned Gaussian KDE of ``x`` with standard deviation
    ``bandwidth``, normalised on the grid and mixed with ``uniform_weight`` of the uniform law on the
    box (so the logarithm is finite everywhere); ``0 < uniform_weight <= 1``."""
    from scipy.ndimage import gaussian_filter

    if not isinstance(grid, Grid2D):
        raise TypeError(f"grid must be a Grid2D, got {type(grid).__name__}")
    x = as_float_array(x, "x", shape=(None, 2), nonempty=True)
    bandwidth = check_real_scalar(bandwidth, "bandwidth", positive=True)
    uniform_weight = check_in_interval(uniform_weight, "uniform_weight", 0.0, 1.0, closed="(]")
    counts = np.bincount(grid.bin_index(x), minlength=grid.n ** 2).reshape(grid.n, grid.n).astype(np.float64)
    smooth = gaussian_filter(counts, sigma=bandwidth / grid.h, mode="constant", truncate=8.0).ravel()
    density = smooth / (smooth.sum() * grid.cell_area)
    box_area = (grid.box[1] - grid.box[0]) ** 2
    return np.log((1.0 - uniform_weight) * density + uniform_weight / box_area)


# ----------------------------------------------------------------------------- negatives
class EnergyRunawayError(TrainingDivergedError):
    """The energy left ``[-energy_limit, energy_limit]`` on the samples (a runaway, not yet inf)."""


SAMPLER_WORK_COUNTERS = ("chain_steps", "energy_forward")
"""What :attr:`LangevinNegatives.work` counts during training, in points: ``chain_steps`` Langevin
steps of one chain (each one gradient of the energy in ``x``, a forward and a backward pass),
``energy_forward`` energies of the new negatives (the runaway guard). Draws after training
(``draw(push=False)``) are evaluation, not counted."""


class LangevinNegatives:
    """``sample_negatives(rng, energy, n)`` for :func:`febm_ref.training.train`: short-run Langevin
    (D16, or ULA D15) on the MLP energy from a :class:`ReplayBuffer`, end points pushed back.

    It also guards against divergence between the trainer's own checks: a non-finite chain
    (``NonFiniteChainError``) or ``max |E| > energy_limit`` on the new negatives raises
    :class:`EnergyRunawayError` naming the training iteration (the number of calls so far plus
    ``start_iteration``).

    Its state (the buffer, the call counter ``iteration`` and ``last_mean_energy``) follows the
    trainer's state protocol, :meth:`state_arrays` / :meth:`load_state_arrays`, so it is part of
    the checkpoint and a resumed run continues with the same buffer.
    """

    def __init__(self, config: Experiment2DConfig, box, *, start_iteration: int = 0):
        self.config = config
        self.box = (float(box[0]), float(box[1]))
        lo, hi = self.box
        self.buffer = ReplayBuffer(config.buffer_capacity, 2, lambda rng, n: rng.uniform(lo, hi, size=(n, 2)),
                                   restart_prob=config.restart_prob)
        self.iteration = start_iteration
        self.last_mean_energy = math.nan
        self.work = dict.fromkeys(SAMPLER_WORK_COUNTERS, 0)

    def state_arrays(self) -> dict:
        """The complete state: the buffer's arrays (:meth:`ReplayBuffer.state_arrays`) as
        ``buffer.<name>``, ``iteration``, ``last_mean_energy`` and the work counters as
        ``work.<name>`` (0-d arrays)."""
        out = {f"buffer.{k}": v for k, v in self.buffer.state_arrays().items()}
        out["iteration"] = np.array(self.iteration, dtype=np.int64)
        out["last_mean_energy"] = np.array(self.last_mean_energy, dtype=np.float64)
        out.update({f"work.{k}": np.array(v, dtype=np.int64) for k, v in self.work.items()})
        return out

    def load_state_arrays(self, arrays: dict) -> None:
        """Restore a state from :meth:`state_arrays` (``ValueError`` if it does not fit)."""
        arrays = dict(arrays)
        expected = {"iteration", "last_mean_energy", *(f"work.{k}" for k in SAMPLER_WORK_COUNTERS)}
        missing = expected - set(arrays)
        if missing:
            raise ValueError(f"a LangevinNegatives state needs the arrays {sorted(missing)}")
        iteration, mean_energy = np.asarray(arrays.pop("iteration")), np.asarray(arrays.pop("last_mean_energy"))
        work = {k: np.asarray(arrays.pop(f"work.{k}")) for k in SAMPLER_WORK_COUNTERS}
        for k, v in work.items():
            if v.shape != () or v.dtype.kind not in "iu" or int(v) < 0:
                raise ValueError(f"work.{k} must be a non-negative integer scalar, got {v!r}")
        if iteration.shape != () or iteration.dtype.kind not in "iu" or int(iteration) < 0:
            raise ValueError(f"iteration must be a non-negative integer scalar, got {iteration!r}")
        if mean_energy.shape != () or mean_energy.dtype.kind != "f":
            raise ValueError(f"last_mean_energy must be a float scalar, got {mean_energy!r}")
        foreign = [k for k in arrays if not k.startswith("buffer.")]
        if foreign:
            raise ValueError(f"unknown LangevinNegatives state arrays {sorted(foreign)}")
        self.buffer.load_state_arrays({k[len("buffer."):]: v for k, v in arrays.items()})
        self.iteration = int(iteration)
        self.last_mean_energy = float(mean_energy)
        self.work = {k: int(v) for k, v in work.items()}

    def run_chains(self, rng, energy, x0) -> np.ndarray:
        """``langevin_steps`` steps of the configured sampler from ``x0``; result inside the box."""
        cfg = self.config
        if cfg.sampler == "d16":
            res = mlp_langevin.decoupled(energy, x0, cfg.langevin_step_size, cfg.noise_scale, rng=rng,
                                         n_steps=cfg.langevin_steps, box=self.box)
            return res.x
        res = mlp_langevin.ula(energy, x0, cfg.langevin_step_size, rng=rng, n_steps=cfg.langevin_steps)
        return np.clip(res.x, *self.box)  # projection onto the model's support B (module docstring)

    def draw(self, rng, energy, n: int, *, push: bool = True) -> np.ndarray:
        x0, _ = self.buffer.sample_initial(rng, n)
        x = self.run_chains(rng, energy, x0)
        if push:
            self.buffer.add(x)
        return x

    def __call__(self, rng, energy, n: int) -> np.ndarray:
        t = self.iteration
        self.iteration += 1
        try:
            x = self.draw(rng, energy, n)
        except FloatingPointError as exc:
            raise EnergyRunawayError(t, "Langevin negatives", str(exc)) from exc
        # one energy gradient in x per chain and step (D16 / D15), then the guard's forward pass
        self.work["chain_steps"] += n * self.config.langevin_steps
        e = energy.energy(x)
        self.work["energy_forward"] += n
        worst = float(np.max(np.abs(e)))
        if not worst <= self.config.energy_limit:
            raise EnergyRunawayError(t, "energy on the negatives",
                                     f"max |E| = {worst:.4g} > energy_limit = {self.config.energy_limit:g}")
        self.last_mean_energy = float(np.mean(e))
        return x


# ----------------------------------------------------------------------------- models and runs
def make_models(config: Experiment2DConfig):
    """Initial energy (no output bias) and critic (with output bias; None for CD), drawn from a
    generator seeded by ``(seed, 1)`` so that the training stream (seeded by ``seed``) is separate."""
    rng = np.random.default_rng([config.seed, 1])
    energy = MLPEnergy.random_init(rng, 2, config.hidden, config.activation, output_bias=False)
    critic = MLPEnergy.random_init(rng, 2, config.critic_hidden, config.activation, output_bias=True)
    return energy, (critic if config.method == "febm" else None)


CURVE_METRICS = (*EVAL_DIVERGENCES, "log_z", "edge_mass")
"""The entries of each point of :attr:`Evaluator.curve`, in order."""


@dataclass
class Evaluator:
    """Exact metrics of a model against the target on the grid; keeps the curve over training.

    The curve is state across iterations: it follows the trainer's state protocol
    (:meth:`state_arrays` / :meth:`load_state_arrays`) and travels in the checkpoint.
    """

    grid: Grid2D
    log_p: np.ndarray
    energy_limit: float
    curve: list = field(default_factory=list)
    current_iteration: Optional[object] = None  #: callable () -> int, for the runaway message

    def metrics(self, energy) -> dict:
        e = energy.energy(self.grid.points)
        worst = float(np.max(np.abs(e)))
        if not worst <= self.energy_limit:  # also catches NaN
            it = self.current_iteration() if self.current_iteration is not None else -1
            raise EnergyRunawayError(it, "energy on the evaluation grid",
                                     f"max |E| = {worst:.4g} > energy_limit = {self.energy_limit:g}")
        log_z = self.grid.log_normalizer(e)
        log_q = -e - log_z
        out = self.grid.divergences(self.log_p, log_q)
        out["log_z"] = log_z
        out["edge_mass"] = self.grid.edge_mass(log_q)
        return out

    def __call__(self, energy) -> float:
        m = self.metrics(energy)
        self.curve.append(m)
        return m["kl"]

    def state_arrays(self) -> dict:
        """``curve``: array ``(len(curve), len(CURVE_METRICS))`` of the metrics, in that order."""
        return {"curve": np.array([[m[k] for k in CURVE_METRICS] for m in self.curve],
                                  dtype=np.float64).reshape(len(self.curve), len(CURVE_METRICS))}

    def load_state_arrays(self, arrays: dict) -> None:
        """Restore the curve from :meth:`state_arrays` (``ValueError`` if it does not fit)."""
        if set(arrays) != {"curve"}:
            raise ValueError(f"an Evaluator state has the single array 'curve', got {sorted(arrays)}")
        curve = np.asarray(arrays["curve"])
        if curve.ndim != 2 or curve.shape[1] != len(CURVE_METRICS) or curve.dtype != np.float64:
            raise ValueError(f"curve must be a float64 array (n, {len(CURVE_METRICS)}), got {curve.dtype} "
                             f"{curve.shape}")
        self.curve = [dict(zip(CURVE_METRICS, (float(v) for v in row))) for row in curve]


def run_experiment(config: Experiment2DConfig, *, out_dir=None, show_progress: Optional[bool] = None,
                   checkpoint_every: int = 250, resume: bool = False, stop_after: Optional[int] = None) -> dict:
    """Train one configuration and evaluate it (module docstring). Returns a JSON-able dict.

    Parameters
    ----------
    config : Experiment2DConfig
    out_dir : path, optional
        Directory of the checkpoint ``<run>.ckpt.npz``, written every ``checkpoint_every``
        iterations. Without ``resume`` an existing checkpoint of the run is deleted first.
    show_progress : bool, optional
    checkpoint_every : int
    resume : bool
        Continue from the checkpoint in ``out_dir`` (which must exist and belong to ``config``);
        the result equals that of an uninterrupted run bit for bit, except ``seconds``, the
        wall time of this call only. The dict then also has ``resumed_from`` (the iteration).
    stop_after : int, optional
        Stop (and checkpoint) after this many iterations in total; the dict then has
        ``status = "stopped"`` and ``iterations`` (continue with ``resume=True``).

    Returns
    -------
    dict
        On divergence ``status = "diverged"``, the iteration, the quantity, the message and the
        iteration of the last good checkpoint (kept on disk under ``out_dir``); nothing is raised.

    Raises
    ------
    ValueError
        ``resume`` without ``out_dir`` or without a checkpoint there, or a checkpoint of another
        configuration.
    """
    from febm_ref._numba.batched_mlp import limit_blas_threads

    limit_blas_threads(1)  # small matrices: threads only oversubscribe the shared cores
    target = get_target(config.target)
    grid = Grid2D(target.box, config.grid_size)
    log_p = target.log_density(grid.points)
    evaluator = Evaluator(grid, log_p, config.energy_limit)
    energy, critic = make_models(config)
    negatives = LangevinNegatives(config, target.box)
    evaluator.current_iteration = lambda: negatives.iteration - 1  # the step just committed
    ckpt = _checkpoint_of_run(config, out_dir, resume)
    resumed_from = int(load_checkpoint(ckpt)["meta"]["iteration"]) if resume else None
    out = {"config": config.as_dict(), "target": target.describe(),
           "target_grid_mass": grid.mass(log_p), "target_mass_outside_box": target.mass_outside_box()}
    if resume:
        out["resumed_from"] = resumed_from
    if config.published:
        out["stabilisations"] = {k: v for k, v in PUBLISHED_STABILISATIONS.items()
                                 if not (k == "exp_clip" and config.method == "cd")}
    t0 = time.perf_counter()
    try:
        result = train(config.training_config(), target, energy, critic, sample_negatives=negatives,
                       sampler_name=sampler_description(config), exact_divergence=evaluator,
                       checkpoint_path=ckpt, checkpoint_every=checkpoint_every, resume=resume,
                       stop_after=stop_after, show_progress=show_progress,
                       desc=f"{config.target} {config.label} s{config.seed}")
    except TrainingDivergedError as exc:
        last = None
        if ckpt is not None and ckpt.exists():
            last = int(load_checkpoint(ckpt)["meta"]["iteration"])
        out.update(status="diverged", iteration=exc.iteration, quantity=exc.quantity, message=str(exc),
                   last_good_checkpoint=last, checkpoint=str(ckpt) if last is not None else None,
                   seconds=time.perf_counter() - t0, curve=_curve(evaluator, config))
        return out
    seconds = time.perf_counter() - t0
    out["compute"] = compute_record(result.work, negatives.work)
    if not result.completed:
        out.update(status="stopped", iterations=result.iterations_done, seconds=seconds,
                   checkpoint=str(ckpt) if ckpt is not None else None, curve=_curve(evaluator, config))
        return out
    final = evaluator.curve[-1]
    samples, x_langevin = _sample_quality(config, target, grid, log_p, negatives, result.energy)
    out.update(
        status="ok", seconds=seconds, iterations=result.iterations_done,
        final={k: final[k] for k in (*EVAL_DIVERGENCES, "log_z", "edge_mass")},
        initial={k: evaluator.curve[0][k] for k in EVAL_DIVERGENCES},
        samples=samples,
        curve=_curve(evaluator, config),
        loss_tail_mean=float(np.mean(result.history["loss"][-100:])),
        theta=result.energy.get_params(),
        langevin_samples=x_langevin[:2000],
    )
    return out


def _checkpoint_of_run(config: Experiment2DConfig, out_dir, resume: bool) -> Optional[Path]:
    """The checkpoint path of a run, ``<out_dir>/<run>.ckpt.npz`` (None without ``out_dir``).

    Creates ``out_dir``; without ``resume`` an existing checkpoint of the run is deleted (a fresh
    run). Raises ValueError for ``resume`` without ``out_dir`` or without a checkpoint there.
    """
    if out_dir is None:
        if resume:
            raise ValueError("resume needs out_dir (the checkpoint lives there)")
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / f"{config.run_name()}.ckpt.npz"
    if resume and not ckpt.exists():
        raise ValueError(f"resume: no checkpoint at {ckpt}")
    if not resume and ckpt.exists():
        ckpt.unlink()  # a fresh run
    return ckpt


def _sample_quality(config: Experiment2DConfig, target, grid: Grid2D, log_p, negatives: "LangevinNegatives",
                    energy) -> tuple:
    """Sample quality of the sampler (module docstring): ``config.n_eval_samples`` negatives drawn
    as in training and as many exact target draws, from ``default_rng([seed, 2])``, as KDEs on
    the grid, compared with the target ``log_p`` and the trained model ``energy``.

    Returns
    -------
    samples : dict
        The ``"samples"`` block of :func:`run_experiment`'s result.
    x_langevin : numpy.ndarray
        The negatives ``(n_eval_samples, 2)``.
    """
    rng = np.random.default_rng([config.seed, 2])
    x_langevin = negatives.draw(rng, energy, config.n_eval_samples, push=False)
    x_exact = target.sample(rng, config.n_eval_samples)
    log_q, _ = grid.model_log_density(energy)
    kde_l = kde_on_grid(grid, x_langevin, config.kde_bandwidth)
    kde_e = kde_on_grid(grid, np.clip(x_exact, *target.box), config.kde_bandwidth)
    samples = {"target_vs_langevin_kde": grid.divergences(log_p, kde_l),
               "model_vs_langevin_kde": grid.divergences(log_q, kde_l),
               "target_vs_exact_kde_floor": grid.divergences(log_p, kde_e),
               "n": config.n_eval_samples, "bandwidth": config.kde_bandwidth}
    return samples, x_langevin


def compute_record(trainer_work: Optional[dict], sampler_work: dict) -> dict:
    """The training compute of a run from the counters (:data:`febm_ref.training.WORK_COUNTERS`,
    :data:`SAMPLER_WORK_COUNTERS`), in points through a network:

    ``gradient_evaluations = chain_steps + energy_grad_theta + critic_grad_omega`` (each a forward
    and a backward pass, in ``x`` for the sampler, in the parameters for the trainer),
    ``forward_evaluations`` the values-only passes (trainer and guard), ``sampler_steps =
    chain_steps``. ``None`` totals when the trainer's counts are unknown (a resume from a
    checkpoint written without them)."""
    rec = {"trainer": trainer_work, "sampler": dict(sampler_work), "sampler_steps": sampler_work["chain_steps"]}
    if trainer_work is None:
        rec.update(gradient_evaluations=None, forward_evaluations=None)
        return rec
    rec["gradient_evaluations"] = (sampler_work["chain_steps"] + trainer_work["energy_grad_theta"]
                                   + trainer_work["critic_grad_omega"])
    rec["forward_evaluations"] = (sampler_work["energy_forward"] + trainer_work["energy_forward"]
                                  + trainer_work["critic_forward"])
    return rec


def gradient_evaluations_per_iteration(config: Experiment2DConfig) -> int:
    """``K n_- + (1 + c) (n_+ + n_-)`` for f-EBM (``c = 1`` critic step, alternating updates) and
    ``K n_- + (n_+ + n_-)`` for CD: what :func:`compute_record` counts per iteration."""
    n_all = 2 * config.batch_size  # n_+ = n_- = batch_size
    critic = n_all if config.method == "febm" else 0
    return config.langevin_steps * config.batch_size + n_all + critic


def equal_compute_langevin_steps(febm_config: Experiment2DConfig) -> int:
    """Langevin steps ``K'`` that give CD the gradient evaluations of the f-EBM run ``febm_config``
    per iteration: ``K' n_- + N = K n_- + 2 N`` with ``N = n_+ + n_-``, i.e.
    ``K' = K + N / n_-`` (``ValueError`` if not an integer)."""
    if febm_config.method != "febm":
        raise ValueError("equal_compute_langevin_steps needs the f-EBM configuration whose budget CD gets")
    extra, rem = divmod(2 * febm_config.batch_size, febm_config.batch_size)
    if rem:
        raise ValueError("the critic's work is not a whole number of Langevin steps")
    return febm_config.langevin_steps + extra


def sampler_description(config: Experiment2DConfig) -> dict:
    """The sampler's entry of the checkpoint fingerprint: its name and the whole configuration
    (Langevin settings, buffer, energy limit, grid of the evaluator: everything a resume must keep)."""
    return {"name": f"{config.sampler}+replay", "experiment": json.loads(json.dumps(config.as_dict()))}


def _curve(evaluator: Evaluator, config: Experiment2DConfig) -> dict:
    n = len(evaluator.curve)
    its = [min(i * config.eval_every, config.iterations) for i in range(n)]
    return {"iteration": its, **{k: [m[k] for m in evaluator.curve] for k in (*EVAL_DIVERGENCES, "edge_mass")}}


def energy_from_result(result: dict) -> MLPEnergy:
    """The final energy of a :func:`run_experiment` result (``theta`` and the config)."""
    cfg = result["config"]
    return MLPEnergy(2, tuple(cfg["hidden"]), cfg["activation"], params=np.asarray(result["theta"]),
                     output_bias=False)
