"""The registry behind ``febm-ref verify``.

A *check* is a function ``check(quick: bool) -> Measurement`` that computes one
numerical claim of the theory (docs/theory.md) and returns the measured error next to the
tolerance it must meet. Checks register themselves with :func:`register`; every
module of the :mod:`febm_ref.verification` package whose name starts with ``check_`` is
imported by :func:`load_all_checks`, so a later issue adds checks by adding a module.

Conventions
-----------
* ``error`` is a non-negative number where smaller is better (a relative error, a
  number of standard errors, ...); ``tolerance`` is the bound it must not exceed.
  A check passes iff ``error <= tolerance`` and both are finite, unless it sets
  ``passed`` explicitly (e.g. a negative control that must *fail* its inner test).
* A *negative control* (a deliberately wrong law or formula that the claim must reject)
  sets ``negative_control=True``: it passes iff ``error > tolerance``, i.e. the inner
  check fails as it must; the report prints its tolerance as ``>tol``.
* ``details`` holds the numbers a reader needs to judge the claim (exact value,
  estimate, standard error, ...); they are printed with ``--json``.
* ``quick=True`` must keep a check to a few seconds; the full mode may take longer.
"""

from __future__ import annotations

import importlib
import math
import os
import pkgutil
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Measurement:
    """What a check measured: ``error`` against ``tolerance`` (see module docstring)."""

    error: float
    tolerance: float
    details: dict = field(default_factory=dict)
    passed: Optional[bool] = None
    negative_control: bool = False

    def ok(self) -> bool:
        if self.passed is not None:
            return bool(self.passed)
        if not (math.isfinite(self.tolerance) and not math.isnan(self.error)):
            return False
        if self.negative_control:
            return self.error > self.tolerance
        return math.isfinite(self.error) and self.error <= self.tolerance


@dataclass(frozen=True)
class Check:
    name: str
    group: str
    description: str
    function: Callable[[bool], Measurement]


@dataclass(frozen=True)
class CheckResult:
    name: str
    group: str
    description: str
    error: float
    tolerance: float
    passed: bool
    seconds: float
    details: dict
    exception: Optional[str] = None
    negative_control: bool = False
    cpu_seconds: float = math.nan
    """CPU time of the process running the check (all its threads), ``time.process_time``:
    unlike ``seconds`` (wall) it does not grow when other programs share the cores."""

    def as_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "description": self.description,
                "error": self.error, "tolerance": self.tolerance, "passed": self.passed,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "details": self.details,
                "exception": self.exception, "negative_control": self.negative_control}


_REGISTRY: Dict[str, Check] = {}

PACKAGE = "febm_ref.verification"
"""The package whose ``check_*`` modules :func:`load_all_checks` imports."""


def register(name: str, *, group: str, description: str):
    """Decorator: register ``function(quick) -> Measurement`` under a unique ``name``."""

    def decorator(function: Callable[[bool], Measurement]):
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"a verification check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, group=group, description=description, function=function)
        return function

    return decorator


def load_all_checks() -> Dict[str, Check]:
    """Import every ``febm_ref.verification.check_*`` module and return the registry (name -> Check)."""
    package = importlib.import_module(PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("check_"):
            importlib.import_module(f"{PACKAGE}.{info.name}")
    return dict(_REGISTRY)


def select_checks(only: Optional[Sequence[str]] = None) -> List[Check]:
    """Checks whose name or group contains any of the strings in ``only`` (all if None)."""
    checks = load_all_checks()
    if not only:
        return list(checks.values())
    selected = [c for c in checks.values() if any(s in c.name or s == c.group for s in only)]
    if not selected:
        raise ValueError(f"no verification check matches {list(only)}; known checks: "
                         f"{', '.join(sorted(checks))}")
    return selected


def _single_threaded_blas() -> None:
    """Every check runs with one BLAS thread, in whichever process it runs.

    A multi-threaded BLAS sums in an order that depends on its thread count, and some checks set
    the count themselves (the 1-D fit calls ``limit_blas_threads(1)``, a process-wide switch):
    without this, a check's last digits depended on which checks had run before it in the same
    process, so ``--jobs 2`` and ``--jobs 1`` differed (measured: the observed rates of
    ``convergence.linear_rate`` at 1e-8 relative). One thread also keeps parallel processes from
    oversubscribing the cores.
    """
    from febm_ref._numba.batched_mlp import limit_blas_threads

    limit_blas_threads(1)


def run_check(check: Check, *, quick: bool) -> CheckResult:
    """Run one check, turning an exception into a failed result (never a crash of the report)."""
    _single_threaded_blas()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        measurement = check.function(quick)
        if not isinstance(measurement, Measurement):
            raise TypeError(f"check {check.name} returned {type(measurement).__name__}, not Measurement")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return CheckResult(check.name, check.group, check.description, float(measurement.error),
                           float(measurement.tolerance), measurement.ok(), seconds,
                           dict(measurement.details), negative_control=measurement.negative_control,
                           cpu_seconds=cpu)
    except Exception as exc:  # report, do not crash the whole verify run
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return CheckResult(check.name, check.group, check.description, math.nan, math.nan, False,
                           seconds, {}, exception="".join(traceback.format_exception_only(type(exc), exc)).strip(),
                           cpu_seconds=cpu)


# ----------------------------------------------------------------------------------
# Parallel runs (``febm-ref verify --jobs N``)
# ----------------------------------------------------------------------------------

SHARED_WORK: Tuple[Tuple[str, ...], ...] = (
    ("samplers.ula_variance_1d", "samplers.ula_variance_1d_negative_control"),
    ("samplers.ula_covariance_lyapunov", "samplers.ula_covariance_negative_control"),
    ("samplers.mala_unbiased_gaussian", "samplers.hmc_unbiased_gaussian",
     "samplers.ula_large_step_negative_control"),
)
"""Checks that read the same cached run (``functools.lru_cache`` in their module: a claim and
its negative control share chains). Each tuple is one *unit*: it runs in one process, in
registry order, so the shared run is computed once."""

COST_SECONDS: Dict[str, float] = {
    # Seconds of each check in a full cold run on an idle 2-core machine (the ``seconds`` column of
    # ``febm-ref verify --json``; benchmarks/verify_times.md). Only the ORDER matters: units start
    # longest first (a greedy longest-processing-time schedule), which keeps the last process from
    # starting a long check when the others are done. A check missing here costs DEFAULT_COST.
    "bounds.D5_optimal_critic_quadrature": 0.36,
    "bounds.D5_optimal_critic_monte_carlo_5d": 2.46,
    "bounds.D5_perturbed_critic_gap_1d": 1.22,
    "bounds.D5_perturbed_critic_gap_2d": 4.25,
    "bounds.D10_learned_critic": 14.85,
    "bounds.negative_controls": 0.15,
    "catalogue.D7_maps_vs_mpmath": 1.24,
    "catalogue.generator_vs_mpmath": 0.13,
    "catalogue.D4_legendre_identity": 0.00,
    "catalogue.D5_fenchel_young": 0.37,
    "catalogue.alpha_limits_continuous": 0.00,
    "convergence.jacobian_d17.gaussian_1d": 0.02,
    "convergence.jacobian_d17.gaussian_2d": 0.31,
    "convergence.jacobian_d17.mlp_1d": 2.57,
    "convergence.jacobian_d17.mlp_2d": 10.31,
    "convergence.linear_rate": 11.79,
    "convergence.step_size_boundary": 1.08,
    "convergence.stochastic_d13": 3.16,
    "convergence.gauge_control": 0.59,
    "convergence.l2_repair": 0.43,
    "convergence.nonrealisable": 0.65,
    "fit1d.reference_kl_moment_matching": 0.07,
    "fit1d.reference_stationary": 1.04,
    "fit1d.training_reaches_optimum": 19.18,
    "fit2d.grid_log_normalizer": 0.02,
    "fit2d.grid_divergences": 0.01,
    "fit2d.target_mass": 0.27,
    "gaussians.closed_form_vs_quadrature_1d": 0.60,
    "gaussians.closed_form_vs_quadrature_2d": 4.75,
    "gaussians.closed_form_vs_monte_carlo_5d": 5.87,
    "gaussians.divergent_integrals_are_inf": 0.00,
    "gaussians.closed_form_vs_mpmath_extremes": 1.61,
    "gradients.gaussian1d": 0.00,
    "gradients.quadratic": 0.00,
    "gradients.mlp_tanh": 4.30,
    "gradients.mlp_softplus": 3.56,
    "gradients.mlp_silu": 3.09,
    "gradients.mlp_elu": 0.03,
    "objective.D13_unbiased": 1.93,
    "objective.batch_covariance_bias": 4.30,
    "objective.D11_optimal_critic": 0.16,
    "objective.D12_kl_scaled_cd": 0.00,
    "objective.surrogate_gradient": 0.01,
    "samplers.ula_variance_1d": 4.77,
    "samplers.ula_variance_1d_negative_control": 1.44,
    "samplers.ula_covariance_lyapunov": 4.56,
    "samplers.ula_covariance_negative_control": 1.33,
    "samplers.mala_unbiased_gaussian": 6.68,
    "samplers.hmc_unbiased_gaussian": 2.69,
    "samplers.ula_large_step_negative_control": 5.32,
    "samplers.mala_mixture_ks": 4.38,
    "samplers.hmc_mixture_ks": 7.12,
    "samplers.mixture_ks_negative_control": 7.04,
    "samplers.decoupled_variance_1d": 1.26,
    "samplers.mlp_langevin_twins": 7.39,
    "samplers.ess_ar1": 0.36,
}
COST_SECONDS_QUICK: Dict[str, float] = {
    # The same for ``--quick`` (``febm-ref verify --quick --json``, cold, idle 2-core machine).
    "bounds.D5_optimal_critic_quadrature": 0.35,
    "bounds.D5_optimal_critic_monte_carlo_5d": 0.69,
    "bounds.D5_perturbed_critic_gap_1d": 0.98,
    "bounds.D5_perturbed_critic_gap_2d": 1.07,
    "bounds.D10_learned_critic": 3.52,
    "bounds.negative_controls": 0.14,
    "catalogue.D7_maps_vs_mpmath": 0.34,
    "catalogue.generator_vs_mpmath": 0.12,
    "catalogue.D4_legendre_identity": 0.00,
    "catalogue.D5_fenchel_young": 0.01,
    "catalogue.alpha_limits_continuous": 0.00,
    "convergence.jacobian_d17.gaussian_1d": 0.02,
    "convergence.jacobian_d17.gaussian_2d": 0.17,
    "convergence.jacobian_d17.mlp_1d": 2.40,
    "convergence.jacobian_d17.mlp_2d": 5.30,
    "convergence.linear_rate": 0.67,
    "convergence.step_size_boundary": 0.34,
    "convergence.stochastic_d13": 0.32,
    "convergence.gauge_control": 0.15,
    "convergence.l2_repair": 0.14,
    "convergence.nonrealisable": 0.22,
    "fit1d.reference_kl_moment_matching": 0.07,
    "fit1d.reference_stationary": 0.32,
    "fit1d.training_reaches_optimum": 0.29,
    "fit2d.grid_log_normalizer": 0.00,
    "fit2d.grid_divergences": 0.00,
    "fit2d.target_mass": 0.14,
    "gaussians.closed_form_vs_quadrature_1d": 0.31,
    "gaussians.closed_form_vs_quadrature_2d": 1.54,
    "gaussians.closed_form_vs_monte_carlo_5d": 0.10,
    "gaussians.divergent_integrals_are_inf": 0.00,
    "gaussians.closed_form_vs_mpmath_extremes": 0.99,
    "gradients.gaussian1d": 0.00,
    "gradients.quadratic": 0.00,
    "gradients.mlp_tanh": 2.09,
    "gradients.mlp_softplus": 0.41,
    "gradients.mlp_silu": 0.40,
    "gradients.mlp_elu": 0.00,
    "objective.D13_unbiased": 0.15,
    "objective.batch_covariance_bias": 0.27,
    "objective.D11_optimal_critic": 0.05,
    "objective.D12_kl_scaled_cd": 0.00,
    "objective.surrogate_gradient": 0.01,
    "samplers.ula_variance_1d": 1.05,
    "samplers.ula_variance_1d_negative_control": 0.27,
    "samplers.ula_covariance_lyapunov": 1.13,
    "samplers.ula_covariance_negative_control": 0.27,
    "samplers.mala_unbiased_gaussian": 1.15,
    "samplers.hmc_unbiased_gaussian": 0.27,
    "samplers.ula_large_step_negative_control": 0.55,
    "samplers.mala_mixture_ks": 1.05,
    "samplers.hmc_mixture_ks": 1.77,
    "samplers.mixture_ks_negative_control": 1.79,
    "samplers.decoupled_variance_1d": 0.28,
    "samplers.mlp_langevin_twins": 6.45,
    "samplers.ess_ar1": 0.14,
}
DEFAULT_COST = 1.0


def default_jobs() -> int:
    """The number of cores this process may run on (``os.sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def plan_units(checks: Sequence[Check], quick: bool = False) -> List[List[Check]]:
    """Split ``checks`` into units (:data:`SHARED_WORK`, else one check each), longest first
    (:data:`COST_SECONDS`, or :data:`COST_SECONDS_QUICK` for ``quick``).

    Within a unit the checks keep their registry order; units of equal cost keep the order of
    their first check (a stable sort), so the plan is a function of the selection only.
    """
    position = {c.name: i for i, c in enumerate(checks)}
    units, placed = [], set()
    for check in checks:
        if check.name in placed:
            continue
        group = next((g for g in SHARED_WORK if check.name in g), (check.name,))
        names = sorted((n for n in group if n in position and n not in placed), key=position.get)
        placed.update(names)
        units.append([checks[position[n]] for n in names])
    costs = COST_SECONDS_QUICK if quick else COST_SECONDS
    return sorted(units, key=lambda u: -sum(costs.get(c.name, DEFAULT_COST) for c in u))


def _failed(check: Check, exc: BaseException) -> CheckResult:
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return CheckResult(check.name, check.group, check.description, math.nan, math.nan, False,
                       math.nan, {}, exception=message)


def _run_unit(names: Sequence[str], quick: bool) -> List[CheckResult]:
    """Worker side: run the named checks in order in this (fresh) process."""
    checks = load_all_checks()
    results = []
    for name in names:
        if name in checks:
            results.append(run_check(checks[name], quick=quick))
        else:
            check = Check(name, name.split(".")[0], "", lambda quick: None)
            results.append(_failed(check, LookupError(f"check {name} is not registered in a fresh process")))
    return results


def _importable(check: Check) -> bool:
    """Whether a fresh process finds ``check`` by importing the verification package."""
    module = getattr(check.function, "__module__", "") or ""
    return module.startswith(f"{PACKAGE}.check_")


def _run_pool(units: List[List[Check]], quick: bool, jobs: int, record: Callable[[CheckResult], None]) -> None:
    """Run ``units`` (longest first) on this process plus ``jobs - 1`` spawned ones.

    Every process takes the next unit from one shared list when it becomes free (a greedy
    longest-processing-time schedule). This process runs its units in place (its imports are
    already paid); each spawned one is fed by a thread here that waits for its result.
    """
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    lock = threading.Lock()
    queue = list(units)

    def take() -> Optional[List[Check]]:
        with lock:
            return queue.pop(0) if queue else None

    def feed(pool) -> None:
        while (unit := take()) is not None:
            try:
                results = pool.submit(_run_unit, [c.name for c in unit], quick).result()
            except Exception as exc:  # a worker died (e.g. killed): fail its checks, not the run
                results = [_failed(c, exc) for c in unit]
            with lock:
                for result in results:
                    record(result)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs - 1, mp_context=context) as pool:
        feeders = [threading.Thread(target=feed, args=(pool,), daemon=True) for _ in range(jobs - 1)]
        for thread in feeders:
            thread.start()
        try:
            while (unit := take()) is not None:
                for check in unit:
                    result = run_check(check, quick=quick)
                    with lock:
                        record(result)
        except BaseException:  # e.g. Ctrl-C: hand out no more units, do not wait for queued ones
            with lock:
                queue.clear()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        for thread in feeders:
            thread.join()


def run_checks(checks: Sequence[Check], *, quick: bool, jobs: int = 1,
               on_result: Optional[Callable[[CheckResult], None]] = None) -> List[CheckResult]:
    """Run ``checks`` and return their results in the order of ``checks``.

    ``jobs > 1`` runs the units of :func:`plan_units` in this process and ``jobs - 1`` fresh
    ones (start method ``spawn``: they inherit no state of this process, e.g. a monkeypatch),
    see :func:`_run_pool`. A check's numbers do not depend on where it runs: each check draws
    from its own seeded ``np.random.Generator`` and shares cached runs only within its unit.
    Checks defined outside ``febm_ref.verification.check_*`` modules (registered at run time) run in
    this process. ``on_result`` is called once per finished check (progress display).
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    done: Dict[str, CheckResult] = {}

    def record(result: CheckResult) -> None:
        done[result.name] = result
        if on_result is not None:
            on_result(result)

    remote = [c for c in checks if _importable(c)] if jobs > 1 else []
    units = plan_units(remote, quick)
    if len(units) > 1:
        _run_pool(units, quick, min(jobs, len(units)), record)
    for check in checks:
        if check.name not in done:
            record(run_check(check, quick=quick))
    return [done[c.name] for c in checks]
