"""Conformance assertions for a user's own test suite, in the spirit of :mod:`numpy.testing`.

Example (a PyTorch f-EBM project, ``tests/test_febm_conformance.py``)::

    import my_febm.febm_adapter as adapter           # module with protocol functions
    from febm_ref.testing import assert_conforms

    def test_loss_and_sampler_match_the_reference():
        assert_conforms(adapter, quantities=["estimator", "sampler_step"], precision="float32")

:func:`assert_conforms` raises an ``AssertionError`` whose message is the table that
``febm-ref check`` prints (one row per quantity, the worst error against the tolerance of the
precision). The golden set of the installed febm-ref is built once into a per-version cache
(:mod:`febm_ref.conformance.cache`), so only the first call of a machine pays its ~5-10 s.
With pytest, the fixture ``febm_golden`` (plugin :mod:`febm_ref.pytest_plugin`, registered
through the ``pytest11`` entry point) hands the golden directory to a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

__all__ = ["assert_conforms", "conformance_report", "golden_dir"]


def golden_dir(seed: int = 0) -> Path:
    """The validated golden set of this febm-ref version (built once, then cached)."""
    from febm_ref.conformance.cache import cached_golden_dir

    return cached_golden_dir(seed, quiet=True)


def _selected(report, quantities: Optional[Iterable[str]]):
    """Rows whose ``section`` or ``section.quantity`` is listed (all rows if None)."""
    if quantities is None:
        return list(report.rows)
    if isinstance(quantities, str):
        quantities = [quantities]
    wanted = set(quantities)
    known = {row.section for row in report.rows} | {f"{row.section}.{row.quantity}" for row in report.rows}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"quantities {unknown} are not in the golden set; use section names "
                         f"({', '.join(sorted({row.section for row in report.rows}))}) or "
                         "'section.quantity' as printed by 'febm-ref check'")
    return [row for row in report.rows if row.section in wanted or f"{row.section}.{row.quantity}" in wanted]


def _isolated_spec(adapter) -> str:
    """The ``MODULE[:OBJECT]`` string a worker process can import for ``adapter``."""
    if isinstance(adapter, str):
        return adapter
    import types

    if isinstance(adapter, types.ModuleType):
        filename = getattr(adapter, "__file__", None)
        if adapter.__name__.startswith("_febm_ref_adapter_") and filename:  # loaded from a file
            return filename
        return adapter.__name__
    raise TypeError(f"isolated=True needs the adapter as a 'MODULE[:OBJECT]' string or a module, got "
                    f"{type(adapter).__name__}; a worker process cannot receive an object")


def conformance_report(adapter, *, precision: str = "float64", golden: Union[str, Path, None] = None,
                       isolated: bool = False, timeout: float = 60.0):
    """The :class:`febm_ref.conformance.checker.Report` of ``adapter`` (an object or module
    with protocol functions, or a ``"MODULE[:OBJECT]"`` string) on the golden set.

    ``isolated=True`` runs it in a worker process as ``febm-ref check`` does (a crash, a hang
    beyond ``timeout`` seconds per case or raw fd output of the adapter cannot break the
    test run; ~0.5 s more, plus the adapter's imports); the default evaluates in-process."""
    from febm_ref.conformance.checker import check_adapter, run_check

    directory = golden_dir() if golden is None else Path(golden)
    if isolated:
        return run_check(_isolated_spec(adapter), directory, precision=precision, timeout=timeout)
    if isinstance(adapter, str):
        return run_check(adapter, directory, precision=precision, isolated=False)
    return check_adapter(adapter, directory, adapter_name=getattr(adapter, "__name__", repr(adapter)),
                         precision=precision)


def assert_conforms(adapter, quantities: Optional[Iterable[str]] = None, precision: str = "float64", *,
                    golden: Union[str, Path, None] = None, allow_skipped: bool = False,
                    isolated: bool = False, timeout: float = 60.0) -> None:
    """Assert that ``adapter`` reproduces the golden values within the tolerances of ``precision``.

    Parameters
    ----------
    adapter : module, object or str
        Provides some of the protocol functions (docs/conformance.md); a string is loaded as
        ``febm-ref check --adapter`` would.
    quantities : iterable of str, optional
        Section names (``"estimator"``) and/or rows (``"estimator.energy_weights"``) to
        judge; default: every row.
    precision : {"float64", "float32", "bfloat16", "auto"}
        The implementation's precision (tolerance ``C u S``, see docs/conformance.md).
    golden : path, optional
        A golden directory (default: the cached set of this febm-ref version).
    allow_skipped : bool
        If False (default), a selected row that the adapter does not provide fails too, so a
        typo in a function name cannot pass silently.
    isolated : bool
        True: evaluate in a worker process like ``febm-ref check`` (:func:`conformance_report`;
        ``adapter`` must then be a string or a module); default False (in-process, faster).
    timeout : float
        Seconds per case in the worker (``isolated=True`` only).

    Raises
    ------
    AssertionError
        Listing the table of the selected rows if any is FAIL or ERROR (or skipped, unless
        ``allow_skipped``).
    ValueError
        If ``quantities`` names something that is not in the golden set.
    """
    from febm_ref.conformance.checker import Report, format_table

    report = conformance_report(adapter, precision=precision, golden=golden, isolated=isolated,
                                timeout=timeout)
    load_error = [row for row in report.rows if row.section == "adapter"]
    rows = load_error or _selected(report, quantities)
    bad = [row for row in rows if row.status in ("FAIL", "ERROR") or (row.status == "skipped" and not allow_skipped)]
    if bad:
        table = format_table(Report(report.golden, report.adapter, rows, report.precision))
        raise AssertionError(f"{len(bad)} of {len(rows)} conformance row(s) did not pass "
                             f"({', '.join(f'{r.section}.{r.quantity}: {r.status}' for r in bad[:5])}"
                             f"{', ...' if len(bad) > 5 else ''})\n{table}")
