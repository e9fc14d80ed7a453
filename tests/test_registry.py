"""The verify registry's pass rule, including negative controls and exceptions."""

from __future__ import annotations

import math

from verification.registry import Check, Measurement, run_check


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
