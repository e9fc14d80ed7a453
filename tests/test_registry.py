"""The verify registry's pass rule, including negative controls and exceptions."""

from __future__ import annotations

import math

from febm_ref.verification.registry import Check, Measurement, run_check


def test_measurement_passes_iff_error_within_tolerance():
    assert Measurement(1e-13, 1e-12).ok()
    assert not Measurement(2e-12, 1e-12).ok()
    assert not Measurement(math.nan, 1e-12).ok()
    assert not Measurement(math.inf, 1e-12).ok()


def test_negative_control_passes_iff_error_exceeds_tolerance():
    assert Measurement(6.9, 4.0, negative_control=True).ok()
    assert not Measurement(1.9, 4.0, negative_control=True).ok()
    assert Measurement(math.inf, 4.0, negative_control=True).ok()
    assert not Measurement(math.nan, 4.0, negative_control=True).ok()


def test_a_check_that_raises_is_a_failed_row_not_a_crash():
    def broken(quick):
        raise ValueError("integrand has mass on the box edge")

    result = run_check(Check("demo.broken", "demo", "raises", broken), quick=True)
    assert not result.passed and "mass on the box edge" in result.exception and math.isnan(result.error)


# ----------------------------------------------------------------------------- verify --jobs

CHEAP = ["catalogue.D4_legendre_identity", "fit2d.grid_log_normalizer", "gradients.gaussian1d",
         "objective.D12_kl_scaled_cd", "samplers.ess_ar1"]


def _numbers(results):
    """Everything a check reports except its timings."""
    return [{k: v for k, v in r.as_dict().items() if k not in ("seconds", "cpu_seconds")} for r in results]


def test_parallel_report_is_bit_identical_and_in_registry_order():
    """--jobs 2 runs the checks in spawned processes; every number (errors, tolerances,
    details, incl. the Monte Carlo AR(1) ESS check) equals the serial run's, in the same order."""
    from febm_ref.verification.registry import run_checks, select_checks

    checks = select_checks(CHEAP)
    serial = run_checks(checks, quick=True, jobs=1)
    parallel = run_checks(checks, quick=True, jobs=2)
    assert [r.name for r in parallel] == [c.name for c in checks]
    assert _numbers(parallel) == _numbers(serial)
    assert all(r.passed for r in parallel)


def test_plan_keeps_shared_runs_together_longest_first():
    from febm_ref.verification.registry import (
        COST_SECONDS,
        COST_SECONDS_QUICK,
        SHARED_WORK,
        load_all_checks,
        plan_units,
    )

    checks = list(load_all_checks().values())
    for quick, table in ((False, COST_SECONDS), (True, COST_SECONDS_QUICK)):
        units = plan_units(checks, quick)
        assert sorted(c.name for u in units for c in u) == sorted(c.name for c in checks)
        names = [tuple(c.name for c in u) for u in units]
        for group in SHARED_WORK:
            assert group in names, group
        costs = [sum(table.get(n, 1.0) for n in u) for u in names]
        assert costs == sorted(costs, reverse=True)
        assert set(table) == {c.name for c in checks}, "the cost table names exactly the registered checks"


def test_jobs_must_be_a_positive_integer():
    import pytest

    from febm_ref.verification.registry import run_checks

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="jobs must be a positive integer"):
            run_checks([], quick=True, jobs=bad)
