"""Run an adapter (:mod:`.adapter`) against a golden set (:mod:`.golden`) and report.

One report row per (section, quantity): the worst error over the row's cases against the
tolerance the golden file states. Row status:

``pass``     every evaluated case is within tolerance;
``FAIL``     some value is out of tolerance, NaN, or a wrong infinity;
``ERROR``    the adapter raised, returned the wrong shape or something that is not a real
             numeric array (None, strings, complex, booleans, objects), could not be loaded,
             or (isolated runs, :mod:`.worker`) timed out or killed its worker process;
``skipped``  the adapter does not provide the function, or raised ``NotImplementedError``
             for every case of the row.

The verdict (:attr:`Report.verdict`) is ``PASSED`` only if no row is FAIL or ERROR *and*
at least one row passed: an adapter whose rows are all skipped is ``NOTHING CHECKED``
(a failure), and with ``strict`` a skipped row fails too.

Foreign code never crashes the checker: every exception becomes an ``ERROR`` row with its
type, message and the adapter source line that raised it (the innermost frame of the
adapter's own code, not of numpy, torch or jax: :func:`adapter_frame`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import sysconfig
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
           "format_table", "case_outcome", "build_rows", "auto_precision", "adapter_frame",
           "DEFAULT_TIMEOUT"]

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
    """All rows plus the verdict (:attr:`verdict`; ``passed`` iff it is ``PASSED``)."""

    golden: str
    adapter: str
    rows: list
    precision: str = "float64"
    strict: bool = False          #: a skipped row fails too (``check --strict``)
    adapter_output: str = ""      #: what the isolated adapter wrote to its fd 1 and 2
    events: list = field(default_factory=list)  #: worker restarts (crash, timeout) of an isolated run

    @property
    def counts(self) -> dict:
        return {status: sum(row.status == status for row in self.rows) for status in STATUS_ORDER}

    @property
    def verdict(self) -> str:
        """``FAILED`` if some row is FAIL or ERROR (or, with ``strict``, skipped);
        ``NOTHING CHECKED`` if no row passed (every row skipped); else ``PASSED``."""
        counts = self.counts
        if counts["FAIL"] or counts["ERROR"] or (self.strict and counts["skipped"]):
            return "FAILED"
        if counts["pass"] == 0:
            return "NOTHING CHECKED"
        return "PASSED"

    @property
    def passed(self) -> bool:
        return self.verdict == "PASSED"

    def as_json(self) -> dict:
        return {"golden": self.golden, "adapter": self.adapter, "precision": self.precision,
                "passed": self.passed, "verdict": self.verdict, "strict": self.strict,
                "counts": self.counts, "rows": [row.as_json() for row in self.rows],
                "worker_events": list(self.events), "adapter_output": self.adapter_output}


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


_LIBRARY_PACKAGES = frozenset({"numpy", "scipy", "torch", "jax", "jaxlib", "numba", "functorch",
                               "opt_einsum", "ml_dtypes"})
_OWN_DIR = str(Path(__file__).resolve().parent)


def _is_library_file(filename: str) -> bool:
    """True for frames of the numeric libraries (numpy, scipy, torch, jax, numba in any
    site-packages / dist-packages), of the Python standard library (``ctypes``, ``functools``)
    and of the checker itself: an error is reported at the innermost frame that is none of
    these, i.e. in the adapter's own code."""
    if not filename or filename.startswith("<"):
        return filename.startswith("<frozen")
    path = Path(filename)
    parts = path.parts
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            top = parts[i + 1].split(".")[0]
            return top in _LIBRARY_PACKAGES or top.startswith("_") and top.lstrip("_") in _LIBRARY_PACKAGES
    resolved = str(path.resolve()) if path.is_absolute() else filename
    if resolved.startswith(_OWN_DIR + "/"):
        return True
    for top in _LIBRARY_PACKAGES:  # a library installed outside site-packages (a source checkout)
        module = sys.modules.get(top)
        root = getattr(module, "__file__", None)
        if root and resolved.startswith(str(Path(root).resolve().parent) + "/"):
            return True
    return resolved.startswith(_STDLIB + "/")


_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())


def adapter_frame(frames) -> Optional[tuple]:
    """``(filename, lineno, name)`` of the innermost frame of ``frames`` (outermost first) that
    is the adapter's own code (:func:`_is_library_file`), else the innermost frame."""
    frames = [(f[0], f[1], f[2]) for f in frames]
    for filename, lineno, name in reversed(frames):
        if not _is_library_file(filename):
            return filename, lineno, name
    return frames[-1] if frames else None


def _describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``, naming the innermost frame of the
    adapter's own code (not numpy's, torch's or jax's internals; :func:`adapter_frame`)."""
    frames = traceback.extract_tb(exc.__traceback__)
    frame = adapter_frame([(f.filename, f.lineno, f.name) for f in frames])
    where = ""
    if frame:
        inner = frames[-1]
        where = f" (at {Path(frame[0]).name}:{frame[1]} in {frame[2]}"
        if (inner.filename, inner.lineno) != (frame[0], frame[1]):
            where += f"; raised inside {_library_name(inner.filename)}"
        where += ")"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"


def _library_name(filename: str) -> str:
    parts = Path(filename).parts
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            return parts[i + 1].split(".")[0].lstrip("_")
    return Path(filename).name


def _call(fn, args: list, cache: dict, key: str):
    if key in cache:
        outcome = cache[key]
    else:
        try:
            # Foreign output goes to stderr so that ``check --json`` stays parseable (in-process
            # checks; the isolated worker also redirects fd 1 and 2 at OS level, worker.py).
            with contextlib.redirect_stdout(sys.stderr):
                outcome = ("ok", fn(*args))
        except NotImplementedError as exc:
            outcome = ("skip", str(exc) or "NotImplementedError")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - foreign code
            outcome = ("error", _describe_exception(exc))
        cache[key] = outcome
    return outcome


def _short_repr(value, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - foreign __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _numeric_array(result, label: str) -> np.ndarray:
    """``result`` as a float64 array if it is real numeric data (float or integer dtype, a
    Python number, a CPU/GPU torch tensor, a JAX array); anything else raises ``TypeError``
    saying what was received. Rejected: None, str/bytes (numeric strings too), dicts, complex
    values (any complex dtype, even with zero imaginary part), booleans, object arrays."""
    if result is None:
        raise TypeError(f"{label} returned None, not convertible to a float64 array (a missing "
                        "return statement?); return a real numeric array")
    if isinstance(result, (str, bytes, bytearray)):
        raise TypeError(f"{label} returned a {type(result).__name__} ({_short_repr(result)}), not "
                        "convertible to a float64 array: strings are not accepted, even numeric ones")
    if isinstance(result, dict):
        raise TypeError(f"{label} returned a dict (keys {_short_repr(list(result))}), not "
                        "convertible to a float64 array")
    kind_name = type(result).__name__
    if hasattr(result, "detach") and hasattr(result, "cpu"):  # a torch tensor
        result = result.detach().cpu()
        if getattr(result, "is_complex", lambda: False)():
            raise TypeError(f"{label} returned a complex torch tensor ({result.dtype}); protocol "
                            "values are real (return the real part yourself if it is real by construction)")
        if "bfloat16" in str(getattr(result, "dtype", "")):  # numpy has no bfloat16: exact widening
            result = result.float()
        result = result.numpy()
    raw = np.asarray(result)
    kind = raw.dtype.kind
    if kind == "c":
        raise TypeError(f"{label} returned a complex {kind_name} (dtype {raw.dtype}); protocol "
                        "values are real: complex results are rejected even when the imaginary "
                        "part is zero (return the real part yourself)")
    if kind == "b":
        raise TypeError(f"{label} returned booleans ({kind_name}, dtype bool), not real numbers")
    if kind not in "fiu":
        raise TypeError(f"{label} returned a {kind_name} of dtype {raw.dtype} "
                        f"({_short_repr(result)}), not convertible to a float64 array: return "
                        "a real numeric array (float or integer dtype)")
    return raw.astype(np.float64)


def _to_array(result, output: Optional[int], expected_shape, function: str = "the adapter function") -> np.ndarray:
    """Select output ``output`` of a tuple result and convert it (:func:`_numeric_array`);
    ``TypeError`` / ``ValueError`` with the function, the output and the type received."""
    label = function
    if output is not None:
        if not isinstance(result, (tuple, list)) or len(result) <= output:
            raise TypeError(f"{function}: expected a tuple with at least {output + 1} results, got "
                            f"{type(result).__name__}")
        result = result[output]
        label = f"{function} (output {output})"
    try:
        array = _numeric_array(result, label)
    except TypeError:
        raise
    except Exception as exc:  # noqa: BLE001 - foreign objects: __array__, ragged lists, ...
        raise TypeError(f"{label} returned a {type(result).__name__}, not convertible to a float64 "
                        f"array ({type(exc).__name__}: {exc})") from None
    if array.shape != tuple(expected_shape):
        raise ValueError(f"{label}: wrong shape: expected {tuple(expected_shape)}, got {array.shape}")
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


def _expected_of(case: dict, section: GoldenSection) -> np.ndarray:
    ref = case["expected"]
    return (section.arrays[ref["array"]] if "array" in ref
            else np.asarray(ref["value"], dtype=np.float64))


def case_outcome(case: dict, section: GoldenSection, functions: dict, cache: dict) -> tuple:
    """Call the adapter on one golden case and convert its result.

    Returns one of ``("missing",)`` (no such function), ``("skip", message)``
    (``NotImplementedError``), ``("error", message)`` (an exception, or a result that is not
    a real numeric array of the expected shape) and ``("ok", array, precision)`` with the
    float64 array and the precision name of the returned dtype (or None). Calls shared by
    several cases (the outputs of one tuple) are made once (``cache``). Used in-process and
    by the isolated worker (:mod:`.worker`), so both paths judge the same outcomes."""
    fn = functions.get(case["function"])
    if fn is None:
        return ("missing",)
    args = [_resolve(case["args"][name], section.arrays) for name in case["args"]]
    call_key = case["function"] + json.dumps(case["args"], sort_keys=True)
    with np.errstate(all="ignore"):
        state, result = _call(fn, args, cache, call_key)
    if state != "ok":
        return (state, result)
    try:
        actual = _to_array(result, case["output"], _expected_of(case, section).shape, case["function"])
    except (TypeError, ValueError) as exc:
        return ("error", str(exc))
    try:
        precision = precision_of(result)
    except Exception:  # noqa: BLE001 - a foreign dtype attribute
        precision = None
    return ("ok", actual, precision)


def _judge_case(case: dict, section: GoldenSection, outcome: tuple, row: Row, tol: Tolerance,
                precision: str = "float64") -> None:
    """Fold one case's outcome (:func:`case_outcome`) into its row."""
    row.n_cases += 1
    state = outcome[0]
    if state in ("missing", "skip"):
        row.n_skipped += 1
        return
    if state == "error":
        row._errors.append(f"{case['id']}: {outcome[1]}")
        return
    actual, expected = outcome[1], _expected_of(case, section)
    if case.get("match") == "unordered_rows":
        actual = _match_rows(actual, expected)
    row.n_checked += 1
    with np.errstate(all="ignore"):
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


def auto_precision(outcomes) -> str:
    """``--precision auto``: the lowest floating precision among all results of the adapter
    (float64 if none carries a dtype)."""
    found = {outcome[2] for outcome in outcomes if outcome[0] == "ok"}
    for name in ("float16", "bfloat16", "float32"):
        if name in found:
            return name
    return "float64"


def build_rows(sections, outcomes: dict, provided, precision: str) -> list:
    """One :class:`Row` per (section, quantity) from the outcomes ``{(section index, case
    index): outcome}`` (:func:`case_outcome`; a case without an outcome is an ERROR: it was
    never evaluated). ``provided``: the protocol functions the adapter has."""
    rows = []
    for si, section in enumerate(sections):
        tolerances = {key: Tolerance(value["rtol"], value["atol"], value["why"])
                      for key, value in section.document["tolerances"].items()}
        by_quantity: dict = {}
        for ci, case in enumerate(section.document["cases"]):
            quantity = case["quantity"]
            tol = tolerances[case["tolerance"]]
            if quantity not in by_quantity:
                by_quantity[quantity] = Row(section.name, quantity, rtol=tol.rtol, atol=tol.atol)
            outcome = outcomes.get((si, ci), ("error", "not evaluated: no result was reported for this case"))
            _judge_case(case, section, outcome, by_quantity[quantity], tol, precision)
        for row in by_quantity.values():
            if row.n_checked == 0 and not row._errors and not row._fails:
                missing = {case["function"] for case in section.document["cases"]
                           if case["quantity"] == row.quantity} - set(provided)
                row.message = (f"adapter has no {', '.join(sorted(missing))}" if missing
                               else "NotImplementedError for every case")
            rows.append(_finish(row))
    return rows


def check_adapter(adapter: Any, golden_dir, *, adapter_name: str = "", precision: str = "float64") -> Report:
    """Evaluate ``adapter`` (an object with protocol functions) on the golden set, in this
    process (fast; no protection against ``os._exit``, crashes, hangs or raw fd writes: use
    :func:`run_check` for foreign code).

    ``precision``: ``float64``, ``float32``, ``bfloat16``, ``float16`` or ``auto`` (the lowest
    precision among the dtypes the adapter returns, :func:`auto_precision`): the tolerances
    of :mod:`febm_ref.conformance.tolerance`."""
    if precision != "auto":
        resolve_precision(precision)
    manifest, sections = load_golden(golden_dir)
    functions = provided_functions(adapter)
    cache: dict = {}
    outcomes = {(si, ci): case_outcome(case, section, functions, cache)
                for si, section in enumerate(sections) for ci, case in enumerate(section.document["cases"])}
    if precision == "auto":
        precision = auto_precision(outcomes.values())
    rows = build_rows(sections, outcomes, functions, precision)
    return Report(str(golden_dir), adapter_name or repr(adapter), rows, precision)


DEFAULT_TIMEOUT = 60.0
"""Seconds each case may take in the isolated worker (``check --timeout``)."""


def run_check(adapter_spec: str, golden_dir, *, precision: str = "float64", timeout: float = DEFAULT_TIMEOUT,
              isolated: bool = True) -> Report:
    """Load the adapter ``MODULE[:OBJECT]`` and check it; a load failure is one ERROR row.

    ``isolated`` (default): the adapter runs in a worker process (:mod:`.worker`) with its
    fd 1 and 2 captured, a per-case ``timeout`` in seconds, and a fresh worker after a crash
    (``os._exit``, a signal) or a timeout, so foreign code can neither crash the checker nor
    corrupt its output nor fake a result. ``isolated=False`` loads it in this process
    (:func:`check_adapter`).

    The golden set is validated first, so a bad golden directory raises :class:`GoldenError`
    before any foreign code is imported."""
    if precision != "auto":
        resolve_precision(precision)
    _, sections = load_golden(golden_dir)
    if isolated:
        from febm_ref.conformance.worker import run_isolated

        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        run = run_isolated(adapter_spec, golden_dir, sections, timeout=float(timeout))
        if run.load_error is not None:
            row = Row("adapter", "load", status="ERROR", message=run.load_error)
            return Report(str(golden_dir), adapter_spec, [row], adapter_output=run.output, events=run.events)
        if precision == "auto":
            precision = auto_precision(run.outcomes.values())
        rows = build_rows(sections, run.outcomes, run.provided, precision)
        return Report(str(golden_dir), adapter_spec, rows, precision, adapter_output=run.output,
                      events=run.events)
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
    for event in report.events:
        lines.append(f"worker: {event}")
    if report.adapter_output:
        n_lines = len(report.adapter_output.splitlines())
        lines.append(f"adapter output: {n_lines} line(s) written to fd 1/2 by the adapter (kept out of "
                     "this report; printed on stderr, 'adapter_output' in --json)")
    verdict = report.verdict
    lines.append(f"{verdict}: {counts['pass']} pass, {counts['FAIL']} FAIL, {counts['ERROR']} ERROR, "
                 f"{counts['skipped']} skipped")
    if verdict == "FAILED" and report.strict and counts["skipped"] and not (counts["FAIL"] or counts["ERROR"]):
        lines.append(f"--strict: the {counts['skipped']} skipped row(s) count as failures")
    if verdict == "NOTHING CHECKED":
        lines.append("nothing was checked: every row is skipped (the adapter provides no protocol function, "
                     "or raised NotImplementedError for every case); this is not a pass. "
                     "'febm-ref check --list-protocol' lists the functions")
    return "\n".join(lines)
