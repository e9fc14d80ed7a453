"""The configuration and the result of a training run (:func:`febm_ref.training.train`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from febm_ref._validation import check_positive_int, check_real_scalar
from febm_ref.divergences import resolve_divergence
from febm_ref.objective import COVARIANCE_ESTIMATORS
from febm_ref.optimizers import OPTIMIZERS, SCHEDULES

__all__ = ["TrainingConfig", "TrainingResult", "METHODS", "UPDATES"]

METHODS = ("febm", "cd")
UPDATES = ("alternating", "simultaneous")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a run (besides the target, the models and the sampler).

    The defaults are the paper's 1-D protocol (docs/theory.md section 6): SGD with lr 1e-3 on
    both players, alternating, 30,000 iterations, batches of 1000 + 1000.
    """

    divergence: str = "kl"
    alpha: Optional[float] = None
    method: str = "febm"
    iterations: int = 30000
    batch_size: int = 1000
    n_negatives: int = 1000
    optimizer: str = "sgd"
    lr_energy: float = 1e-3
    lr_critic: float = 1e-3
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    schedule: str = "constant"
    final_lr_fraction: float = 0.0
    update: str = "alternating"
    critic_steps: int = 1
    l2_weight: float = 0.0
    covariance: str = "batch"
    average_from: Optional[int] = None
    critic_warmup: int = 0
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.method == "febm":
            resolve_divergence(self.divergence, alpha=self.alpha)  # raises for unknown / bad alpha
        check_positive_int(self.iterations, "iterations")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.n_negatives, "n_negatives")
        check_positive_int(self.critic_steps, "critic_steps")
        check_positive_int(self.eval_every, "eval_every", minimum=0)
        check_positive_int(self.critic_warmup, "critic_warmup", minimum=0)
        if self.critic_warmup >= self.iterations:
            raise ValueError(f"critic_warmup ({self.critic_warmup}) must be < iterations ({self.iterations})")
        check_positive_int(self.seed, "seed", minimum=0)
        for name in ("lr_energy", "lr_critic"):
            check_real_scalar(getattr(self, name), name, positive=True)
        check_real_scalar(self.l2_weight, "l2_weight", nonnegative=True)
        check_real_scalar(self.final_lr_fraction, "final_lr_fraction", nonnegative=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.update not in UPDATES:
            raise ValueError(f"unknown update {self.update!r}; choose one of {UPDATES}")
        if self.covariance not in COVARIANCE_ESTIMATORS:
            raise ValueError(f"unknown covariance estimator {self.covariance!r}; choose one of "
                             f"{COVARIANCE_ESTIMATORS}")
        if self.average_from is not None:
            check_positive_int(self.average_from, "average_from", minimum=0)
            if self.average_from >= self.iterations:
                raise ValueError(f"average_from ({self.average_from}) must be < iterations ({self.iterations})")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not isinstance(self.divergence, str):  # a Divergence object (e.g. a clipped variant): its label
            d["divergence"] = resolve_divergence(self.divergence).label
        return d

    def optimizer_options(self) -> dict:
        if self.optimizer == "adam":
            return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.adam_eps}
        return {"momentum": self.momentum}


@dataclass
class TrainingResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    energy, critic : EnergyModel
        Final models (``critic`` is None for CD).
    averaged_theta : ndarray or None
        Polyak average of ``theta`` over iterations ``>= average_from``.
    history : dict of ndarray
        ``loss (T,)``, ``mean_exp_r_neg (T,)``, ``theta (T, P)`` (when ``P <= 64``),
        ``exact_iteration``, ``exact_divergence`` (every ``eval_every`` iterations and at
        the end, when an exact divergence is available), for the iterations done.
    iterations_done : int
    completed : bool
        False when stopped early by ``stop_after``.
    seconds : float
        Wall time of this call.
    work : dict or None
        Per-point network passes of the trainer over all iterations done
        (:data:`~febm_ref.training.state.WORK_COUNTERS`), counted where they are made; None when
        resumed from a checkpoint written without them. The negatives' sampler counts its own work.
    """

    energy: object
    critic: object
    averaged_theta: Optional[np.ndarray]
    history: dict
    iterations_done: int
    completed: bool
    seconds: float
    config: TrainingConfig
    work: Optional[dict] = None

    @property
    def theta(self) -> np.ndarray:
        """The final (or averaged, when averaging was requested) energy parameters."""
        return self.averaged_theta if self.averaged_theta is not None else self.energy.get_params()
