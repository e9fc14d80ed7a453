"""The registry behind ``febm-ref verify``.

A *check* is a function ``check(quick: bool) -> Measurement`` that computes one
numerical claim of the theory (docs/theory.md) and returns the measured error next to the
tolerance it must meet. Checks register themselves with :func:`register`; every
module of the :mod:`verification` package whose name starts with ``check_`` is
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
import pkgutil
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence


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

    def as_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "description": self.description,
                "error": self.error, "tolerance": self.tolerance, "passed": self.passed,
                "seconds": self.seconds, "details": self.details, "exception": self.exception,
                "negative_control": self.negative_control}


_REGISTRY: Dict[str, Check] = {}


def register(name: str, *, group: str, description: str):
    """Decorator: register ``function(quick) -> Measurement`` under a unique ``name``."""

    def decorator(function: Callable[[bool], Measurement]):
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"a verification check named {name!r} is already registered")
        _REGISTRY[name] = Check(name=name, group=group, description=description, function=function)
        return function

    return decorator


def load_all_checks() -> Dict[str, Check]:
    """Import every ``verification.check_*`` module and return the registry (name -> Check)."""
    import verification

    for info in sorted(pkgutil.iter_modules(verification.__path__), key=lambda m: m.name):
        if info.name.startswith("check_"):
            importlib.import_module(f"verification.{info.name}")
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


def run_check(check: Check, *, quick: bool) -> CheckResult:
    """Run one check, turning an exception into a failed result (never a crash of the report)."""
    start = time.perf_counter()
    try:
        measurement = check.function(quick)
        if not isinstance(measurement, Measurement):
            raise TypeError(f"check {check.name} returned {type(measurement).__name__}, not Measurement")
        seconds = time.perf_counter() - start
        return CheckResult(check.name, check.group, check.description, float(measurement.error),
                           float(measurement.tolerance), measurement.ok(), seconds,
                           dict(measurement.details), negative_control=measurement.negative_control)
    except Exception as exc:  # report, do not crash the whole verify run
        seconds = time.perf_counter() - start
        return CheckResult(check.name, check.group, check.description, math.nan, math.nan, False,
                           seconds, {}, exception="".join(traceback.format_exception_only(type(exc), exc)).strip())
