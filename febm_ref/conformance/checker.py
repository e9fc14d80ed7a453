"""Run an adapter (:mod:`.adapter`) against a golden set (:mod:`.golden`) and report.

One report row per (section, quantity): the worst error over the row's cases against the
tolerance the golden file states. Row status:

``pass``     every evaluated case is within tolerance;
``FAIL``     some value is out of tolerance, NaN, or a wrong infinity;
``ERROR``    the adapter raised, returned the wrong shape / type, or could not be loaded;
``skipped``  the adapter does not provide the function, or raised ``NotImplementedError``
             for every case of the row.

Foreign code never crashes the checker: every exception becomes an ``ERROR`` row with its
type, message and the adapter source line that raised it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from febm_ref.conformance import schema
from febm_ref.conformance._files import read_json, read_npz, sha256_of
from febm_ref.conformance.adapter import AdapterLoadError, load_adapter, provided_functions
from febm_ref.conformance.schema import Tolerance
from febm_ref.conformance.tolerance import compare_case, describe_left_out, precision_of, resolve_precision

__all__ = ["GoldenError", "Row", "Report", "load_golden", "check_adapter", "run_check",
           "format_table"]

STATUS_ORDER = ("ERROR", "FAIL", "pass", "skipped")


class GoldenError(ValueError):
    """The golden directory is missing, incomplete, corrupted or of another schema version."""


@dataclass
class Row:
    """The result for one (section, quantity)."""

    section: str
    quantity: str
    status: str = "skipped"
    n_cases: int = 0
    n_checked: int = 0
    n_skipped: int = 0
    worst_ratio: float = 0.0      #: max |a - e| / (atol + rtol |e|); <= 1 passes
    worst_abs_error: float = 0.0  #: |a - e| at the worst element
    worst_case: str = ""
    rtol: float = float("nan")
    atol: float = float("nan")
    message: str = ""
    precision: str = ""           #: precision the row was compared in
    notes: str = ""               #: values beyond range / not compared (precision-aware tolerances)
    _errors: list = field(default_factory=list, repr=False)
    _fails: list = field(default_factory=list, repr=False)

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("_errors")
        out.pop("_fails")
        return out


@dataclass
class Report:
    """All rows plus the verdict (``passed`` is False iff some row is FAIL or ERROR)."""

    golden: str
    adapter: str
    rows: list
    precision: str = "float64"

    @property
    def counts(self) -> dict:
        return {status: sum(row.status == status for row in self.rows) for status in STATUS_ORDER}

    @property
    def passed(self) -> bool:
        counts = self.counts
        return counts["FAIL"] == 0 and counts["ERROR"] == 0

    def as_json(self) -> dict:
        return {"golden": self.golden, "adapter": self.adapter, "precision": self.precision,
                "passed": self.passed,
                "counts": self.counts, "rows": [row.as_json() for row in self.rows]}


# --------------------------------------------------------------------------- golden files

@dataclass
class GoldenSection:
    name: str
    document: dict
    arrays: dict


def load_golden(directory) -> tuple[dict, list]:
    """Read and validate a golden directory: ``(manifest, [GoldenSection, ...])``.

    Checks the format name, the schema version and the sha256 of every file listed in the
    manifest, so an edited or truncated golden file is reported, not silently used.
    """
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise GoldenError(f"{directory} is not a golden directory (no manifest.json); create one "
                          "with 'febm-ref golden --out DIR'")
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError) as exc:
        raise GoldenError(f"cannot read {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise GoldenError(f"{manifest_path} is not a febm-ref golden manifest (not a JSON object)")
    if manifest.get("format") != schema.FORMAT:
        raise GoldenError(f"{manifest_path} is not a febm-ref golden manifest (format "
                          f"{manifest.get('format')!r})")
    if manifest.get("schema_version") != schema.SCHEMA_VERSION:
        raise GoldenError(f"golden schema version {manifest.get('schema_version')!r} is not the "
                          f"version {schema.SCHEMA_VERSION!r} this checker reads; regenerate the "
                          "golden set with this febm-ref version")
    verified = set()
    for entry in manifest.get("files", []):
        path = directory / entry["file"]
        verified.add(entry["file"])
        if not path.is_file():
            raise GoldenError(f"golden file {path} listed in the manifest is missing")
        if sha256_of(path) != entry["sha256"]:
            raise GoldenError(f"golden file {path} does not match its sha256 in the manifest "
                              "(edited or truncated); regenerate the golden set")
    sections = []
    for name in manifest.get("sections", []):
        if f"{name}.json" not in verified:  # every file used must have been checked against its sha256
            raise GoldenError(f"golden section {name!r} has no sha256 entry for {name}.json in {manifest_path} "
                              "(edited manifest); regenerate the golden set")
        document = read_json(directory / f"{name}.json")
        if document.get("arrays_file") not in verified:
            raise GoldenError(f"golden section {name!r}: its arrays file {document.get('arrays_file')!r} has no "
                              f"sha256 entry in {manifest_path} (edited manifest); regenerate the golden set")
        arrays = read_npz(directory / document["arrays_file"])
        sections.append(GoldenSection(name, document, arrays))
    return manifest, sections


# --------------------------------------------------------------------------- evaluation

def _resolve(value, arrays):
    """Replace ``{"array": KEY}`` by a fresh copy of the array (the adapter may modify it)."""
    if isinstance(value, dict):
        if set(value) == {"array"}:
            return np.array(arrays[value["array"]], dtype=arrays[value["array"]].dtype, copy=True)
        return {k: _resolve(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, arrays) for v in value]
    return value


def _describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, naming the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        frame = frames[-1]
        where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"


class _Skip(Exception):
    pass


def _call(fn, args: list, cache: dict, key: str):
    if key in cache:
        outcome = cache[key]
    else:
        try:
            # Foreign output goes to stderr so that ``check --json`` stays parseable.
            with contextlib.redirect_stdout(sys.stderr):
                outcome = ("ok", fn(*args))
        except NotImplementedError as exc:
            outcome = ("skip", str(exc) or "NotImplementedError")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - foreign code
            outcome = ("error", _describe_exception(exc))
        cache[key] = outcome
    return outcome


def _to_array(result, output: Optional[int], expected_shape) -> np.ndarray:
    if output is not None:
        if not isinstance(result, (tuple, list)) or len(result) <= output:
            raise TypeError(f"expected a tuple with at least {output + 1} results, got "
                            f"{type(result).__name__}")
        result = result[output]
    if hasattr(result, "detach") and hasattr(result, "cpu"):  # a torch tensor
        result = result.detach().cpu()
        if "bfloat16" in str(getattr(result, "dtype", "")):  # numpy has no bfloat16: exact widening
            result = result.float()
        result = result.numpy()
    try:
        array = np.asarray(result, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"result of type {type(result).__name__} is not convertible to a float64 "
                        f"array ({type(exc).__name__}: {exc})") from None
    if array.shape != tuple(expected_shape):
        raise ValueError(f"wrong shape: expected {tuple(expected_shape)}, got {array.shape}")
    return array


def _match_rows(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Reorder the rows of ``actual`` so that each expected row (in order) gets the nearest
    actual row not yet taken (for results without a canonical row order, e.g. eigenvalues)."""
    free = list(range(actual.shape[0]))
    order = []
    for row in expected:
        with np.errstate(invalid="ignore"):
            dist = [float(np.nan_to_num(np.sum((actual[i] - row) ** 2), nan=np.inf)) for i in free]
        order.append(free.pop(int(np.argmin(dist))))
    return actual[order]


def _evaluate_case(case: dict, section: GoldenSection, functions: dict, cache: dict, row: Row,
                   tol: Tolerance, precision: str = "float64") -> None:
    row.n_cases += 1
    fn = functions.get(case["function"])
    if fn is None:
        row.n_skipped += 1
        return
    args = [_resolve(case["args"][name], section.arrays) for name in case["args"]]
    call_key = case["function"] + json.dumps(case["args"], sort_keys=True)
    state, result = _call(fn, args, cache, call_key)
    if state == "skip":
        row.n_skipped += 1
        return
    if state == "error":
        row._errors.append(f"{case['id']}: {result}")
        return
    expected_ref = case["expected"]
    expected = (section.arrays[expected_ref["array"]] if "array" in expected_ref
                else np.asarray(expected_ref["value"], dtype=np.float64))
    try:
        actual = _to_array(result, case["output"], expected.shape)
    except (TypeError, ValueError) as exc:
        row._errors.append(f"{case['id']}: {exc}")
        return
    if case.get("match") == "unordered_rows":
        actual = _match_rows(actual, expected)
    row.n_checked += 1
    comparison = compare_case(actual, expected, case, section.arrays, rtol=tol.rtol, atol=tol.atol,
                              precision=precision)
    ok, ratio = comparison.ok, comparison.ratio
    row.precision = precision
    note = describe_left_out(comparison, precision)
    if note:
        row.notes = f"{case['id']}: {note}" if not row.notes else row.notes
    worst = int(np.argmax(ratio)) if ratio.size else 0
    worst_ratio = float(ratio.flat[worst]) if ratio.size else 0.0
    if worst_ratio >= row.worst_ratio:
        a, e = float(actual.flat[worst]), float(expected.flat[worst])
        row.worst_ratio = worst_ratio
        row.worst_abs_error = abs(a - e) if np.isfinite(a) and np.isfinite(e) else (
            0.0 if a == e else float("inf"))
        row.worst_case = case["id"]
    if not np.all(ok):
        n_nan = int(np.sum(np.isnan(actual)))
        index = np.unravel_index(worst, expected.shape) if expected.ndim else ()
        a, e = float(actual.flat[worst]), float(expected.flat[worst])
        detail = f"{n_nan} NaN value(s); " if n_nan else ""
        row._fails.append((worst_ratio, f"{case['id']}: {detail}{int(np.sum(~ok))}/{ok.size} value(s) out of "
                          f"tolerance; worst at index {tuple(int(i) for i in index)}: got {a!r}, "
                          f"expected {e!r}"))


def _finish(row: Row) -> Row:
    if row._errors:
        row.status = "ERROR"
        extra = f" (+{len(row._errors) - 1} more case(s) with errors)" if len(row._errors) > 1 else ""
        row.message = row._errors[0] + extra
    elif row._fails:
        row.status = "FAIL"
        extra = f" (+{len(row._fails) - 1} more failing case(s))" if len(row._fails) > 1 else ""
        row.message = max(row._fails, key=lambda item: item[0])[1] + extra  # the worst case
    elif row.n_checked:
        row.status = "pass"
        if row.n_skipped:
            row.message = f"{row.n_skipped} case(s) skipped (NotImplementedError)"
        if row.notes:
            row.message = "; ".join(m for m in (row.message, row.notes) if m)
    else:
        row.status = "skipped"
    return row


def _auto_precision(sections, functions: dict, cache: dict) -> str:
    """``--precision auto``: the lowest floating precision among all results of the adapter
    (float64 if none carries a dtype). The calls are cached, so the checking pass that
    follows does not repeat them."""
    found = set()
    for section in sections:
        for case in section.document["cases"]:
            fn = functions.get(case["function"])
            if fn is None:
                continue
            args = [_resolve(case["args"][name], section.arrays) for name in case["args"]]
            key = case["function"] + json.dumps(case["args"], sort_keys=True)
            with np.errstate(all="ignore"):
                state, result = _call(fn, args, cache, key)
            if state == "ok":
                found.add(precision_of(result))
    for name in ("float16", "bfloat16", "float32"):
        if name in found:
            return name
    return "float64"


def check_adapter(adapter: Any, golden_dir, *, adapter_name: str = "", precision: str = "float64") -> Report:
    """Evaluate ``adapter`` (an object with protocol functions) on the golden set.

    ``precision``: ``float64``, ``float32``, ``bfloat16``, ``float16`` or ``auto`` (the lowest
    precision among the dtypes the adapter returns, :func:`_auto_precision`): the tolerances
    of :mod:`febm_ref.conformance.tolerance`."""
    if precision != "auto":
        resolve_precision(precision)
    manifest, sections = load_golden(golden_dir)
    functions = provided_functions(adapter)
    rows = []
    cache: dict = {}
    if precision == "auto":
        precision = _auto_precision(sections, functions, cache)
    for section in sections:
        tolerances = {key: Tolerance(value["rtol"], value["atol"], value["why"])
                      for key, value in section.document["tolerances"].items()}
        by_quantity: dict = {}
        for case in section.document["cases"]:
            quantity = case["quantity"]
            if quantity not in by_quantity:
                tol = tolerances[case["tolerance"]]
                by_quantity[quantity] = Row(section.name, quantity, rtol=tol.rtol, atol=tol.atol)
            row = by_quantity[quantity]
            with np.errstate(all="ignore"):
                _evaluate_case(case, section, functions, cache, row, tolerances[case["tolerance"]],
                               precision)
        for row in by_quantity.values():
            if row.n_checked == 0 and not row._errors and not row._fails:
                missing = {case["function"] for case in section.document["cases"]
                           if case["quantity"] == row.quantity} - set(functions)
                row.message = (f"adapter has no {', '.join(sorted(missing))}" if missing
                               else "NotImplementedError for every case")
            rows.append(_finish(row))
    return Report(str(golden_dir), adapter_name or repr(adapter), rows, precision)


def run_check(adapter_spec: str, golden_dir, *, precision: str = "float64") -> Report:
    """Load the adapter ``MODULE[:OBJECT]`` and check it; a load failure is one ERROR row.

    The golden set is validated first, so a bad golden directory raises :class:`GoldenError`
    before any foreign code is imported."""
    load_golden(golden_dir)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            adapter = load_adapter(adapter_spec)
    except AdapterLoadError as exc:
        row = Row("adapter", "load", status="ERROR", message=str(exc))
        return Report(str(golden_dir), adapter_spec, [row])
    return check_adapter(adapter, golden_dir, adapter_name=adapter_spec, precision=precision)


# --------------------------------------------------------------------------- output

def _fmt(value: float) -> str:
    if value != value:
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.1e}"


def format_table(report: Report) -> str:
    """A fixed-width pass/fail table, one row per quantity, messages below failing rows."""
    header = (f"{'section':<11} {'quantity':<22} {'status':<7} {'checked':>9} {'err/tol':>8} "
              f"{'max abs err':>11} {'rtol':>7} {'atol':>7}  worst case")
    lines = [f"golden:  {report.golden}", f"adapter: {report.adapter}",
             f"precision: {report.precision} (err/tol is |a - e| / max(atol + rtol |e|, 2 u S); "
             "rtol, atol below are the float64 floor; docs/conformance.md)", "", header,
             "-" * len(header)]
    for row in report.rows:
        checked = f"{row.n_checked}/{row.n_cases}"
        shown_ratio = _fmt(row.worst_ratio) if row.n_checked else "-"
        shown_abs = _fmt(row.worst_abs_error) if row.n_checked else "-"
        lines.append(f"{row.section:<11} {row.quantity:<22} {row.status:<7} {checked:>9} "
                     f"{shown_ratio:>8} {shown_abs:>11} {_fmt(row.rtol):>7} {_fmt(row.atol):>7}  "
                     f"{row.worst_case if row.n_checked else ''}")
        if row.message and row.status in ("FAIL", "ERROR", "skipped"):
            lines.append(f"{'':<11} -> {row.message}")
        elif row.message:
            lines.append(f"{'':<11}    ({row.message})")
    counts = report.counts
    lines.append("")
    lines.append(f"{'PASSED' if report.passed else 'FAILED'}: {counts['pass']} pass, "
                 f"{counts['FAIL']} FAIL, {counts['ERROR']} ERROR, {counts['skipped']} skipped")
    if counts["pass"] == 0 and report.passed:
        lines.append("warning: nothing was checked (the adapter provides no protocol function); "
                     "see docs/conformance.md")
    return "\n".join(lines)
