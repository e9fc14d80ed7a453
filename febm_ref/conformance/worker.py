"""Run a foreign adapter isolated in a worker process (``febm-ref check``, :func:`run_check`).

Isolation model
---------------
The parent (the checker) never imports the adapter. It starts a worker with
``subprocess`` (a fresh interpreter: ``python -u -X faulthandler -c ...``, its own session)
whose

* fd 1 and fd 2 are one temporary file (set at OS level by the parent when it creates the
  process, so ``print``, ``os.write(1, ...)``, C-level ``printf`` and faulthandler's crash
  traceback all land there, never in the checker's stdout or a ``--json`` report); the
  parent keeps that output and shows it as *adapter output*;
* stdin is ``/dev/null``;
* results travel on a private pipe (inherited file descriptor, not fd 0/1/2): one JSON line
  per golden case, arrays as base64 float64 bytes (no pickle: the parent never executes
  anything the worker sends).

The worker loads the (already validated) golden set itself, imports the adapter, reports the
protocol functions it found (``ready``) and then, case by case in golden order, calls the
adapter and sends the outcome of :func:`.checker.case_outcome` (the result already converted
to a float64 array of the expected shape, or the error message). The parent keeps every
outcome as it arrives, so nothing is lost when the worker dies, and judges them
(tolerances, FAIL/ERROR/pass) itself.

Timeouts and crashes
--------------------
* Every case must report within ``timeout`` seconds of the previous report (cases that share
  one call, the outputs of a tuple, report together). Starting the worker and importing
  the adapter may take ``max(timeout, LOAD_TIMEOUT)``.
* On a timeout the worker's process group is killed (SIGKILL); on a death (``os._exit``, a
  signal such as SIGSEGV, SIGKILL from outside, a closed result pipe) the case in flight is
  ERROR ("timed out after 2 s in ..." / "worker died with SIGSEGV while evaluating ..."),
  with the adapter's source line when faulthandler's traceback names one.
* The remaining cases continue in a fresh worker. A function that timed out once, or killed
  the worker :data:`MAX_DEATHS_PER_FUNCTION` times, is not called again (its remaining cases
  are ERROR "not run: ..."), and after :data:`MAX_WORKERS` workers every remaining case is
  ERROR "not run": the cost of a hostile adapter is bounded.
* A case without a reported outcome is never a pass: :func:`.checker.build_rows` makes it
  ERROR, so a worker that exits early cannot produce a false green.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["IsolatedRun", "run_isolated", "main", "LOAD_TIMEOUT", "MAX_DEATHS_PER_FUNCTION",
           "MAX_WORKERS", "OUTPUT_LIMIT"]

LOAD_TIMEOUT = 120.0
"""Seconds allowed for starting a worker and importing the adapter (torch ~2 s, jax ~3 s)
when ``timeout`` is smaller."""

MAX_DEATHS_PER_FUNCTION = 3
"""A protocol function that killed the worker this many times is not called again."""

MAX_WORKERS = 12
"""At most this many worker processes per check (the first plus restarts)."""

OUTPUT_LIMIT = 64_000
"""Characters of adapter output kept per worker (head and tail)."""

_BOOT = "from febm_ref.conformance.worker import main; main()"


@dataclass
class IsolatedRun:
    """What the parent learnt from its workers."""

    outcomes: dict = field(default_factory=dict)  #: (section index, case index) -> outcome
    provided: set = field(default_factory=set)    #: protocol functions the adapter has
    load_error: Optional[str] = None              #: the adapter could not be loaded
    output: str = ""                              #: fd 1/2 output of all workers
    events: list = field(default_factory=list)    #: one line per worker restart


# --------------------------------------------------------------------------- wire format

def _encode(si: int, ci: int, outcome: tuple) -> dict:
    if outcome[0] == "ok":
        array = np.array(outcome[1], dtype="<f8", order="C")  # (ascontiguousarray makes 0-d 1-d)
        return {"case": [si, ci], "state": "ok", "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode("ascii"), "precision": outcome[2]}
    if outcome[0] == "missing":
        return {"case": [si, ci], "state": "missing"}
    return {"case": [si, ci], "state": outcome[0], "message": str(outcome[1])}


def _decode(message: dict) -> tuple:
    """An outcome from a worker message; anything malformed is an error outcome."""
    state = message.get("state")
    if state == "ok":
        try:
            shape = tuple(int(n) for n in message["shape"])
            array = np.frombuffer(base64.b64decode(message["data"]), dtype="<f8").reshape(shape)
            precision = message.get("precision")
            if precision not in (None, "float16", "bfloat16", "float32", "float64"):
                raise ValueError(f"unknown precision {precision!r}")
            return ("ok", array.astype(np.float64), precision)
        except (KeyError, TypeError, ValueError) as exc:
            return ("error", f"malformed result from the worker ({type(exc).__name__}: {exc})")
    if state == "missing":
        return ("missing",)
    if state in ("skip", "error"):
        return (state, str(message.get("message", "")))
    return ("error", f"malformed result from the worker (state {state!r})")


# --------------------------------------------------------------------------- the worker

def _sender(fd: int):
    def send(message: dict) -> None:
        data = (json.dumps(message) + "\n").encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
    return send


def _flush_c_stdio() -> None:
    """Flush Python's and the C library's stdio buffers (a C-level ``printf`` of the adapter
    is block-buffered into the output file and ``os._exit`` would drop it)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - best effort (no libc, a replaced sys.stdout)
        pass


def main() -> None:
    """Entry point of the worker process (``sys.argv[1]``: the JSON job file)."""
    job = json.loads(Path(sys.argv[1]).read_text())
    sys.path[:] = job["sys_path"]
    os.set_inheritable(job["fd"], False)  # processes the adapter starts do not get the result pipe
    send = _sender(job["fd"])
    from febm_ref.conformance.adapter import AdapterLoadError, load_adapter, provided_functions
    from febm_ref.conformance.checker import _describe_exception as describe_exception
    from febm_ref.conformance.checker import case_outcome, load_golden

    _, sections = load_golden(job["golden"])
    try:
        adapter = load_adapter(job["adapter"])
    except AdapterLoadError as exc:
        send({"load_error": str(exc)})
        _flush_c_stdio()
        os._exit(0)
    functions = provided_functions(adapter)
    send({"ready": sorted(functions)})
    cache: dict = {}
    for si, ci in job["cases"]:
        try:
            outcome = case_outcome(sections[si].document["cases"][ci], sections[si], functions, cache)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt raised by the adapter itself
            outcome = ("error", describe_exception(exc))
        send(_encode(si, ci, outcome))
    send({"done": True})
    _flush_c_stdio()
    os._exit(0)  # no atexit handlers / non-daemon threads of the adapter can hang the worker


# --------------------------------------------------------------------------- the parent

def _death(returncode: Optional[int]) -> str:
    """``"died with SIGSEGV"`` / ``"exited with status 0"``."""
    if returncode is None:
        return "closed its result pipe"
    if returncode < 0:
        try:
            return f"died with {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died with signal {-returncode}"
    return f"exited with status {returncode}"


_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)')


def _crash_location(output: str) -> str:
    """``" (at file.py:12 in fn)"`` from the last faulthandler traceback in ``output``
    (most recent call first), the adapter's own frame (:func:`.checker.adapter_frame`)."""
    from febm_ref.conformance.checker import adapter_frame

    start = output.rfind("Fatal Python error")
    if start < 0:
        return ""
    frames = []
    for line in output[start:].splitlines()[1:]:
        match = _FRAME.match(line)
        if match:
            frames.append((match["file"], int(match["line"]), match["name"]))
        elif frames and not line.strip():
            break  # the current thread's stack ends at the first blank line
    frame = adapter_frame(list(reversed(frames)))
    return f" (at {Path(frame[0]).name}:{frame[1]} in {frame[2]})" if frame else ""


def _last_line(output: str) -> str:
    """``" (last output: ...)"``: the last non-empty line the worker wrote (e.g. the
    exception of a traceback), or ``""``."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return f" (last output: {lines[-1][:200]})" if lines else ""


def _trim(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    half = OUTPUT_LIMIT // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


class _Worker:
    """One worker process: start, read messages with a deadline, kill."""

    def __init__(self, spec: str, golden, cases: list, scratch: str, index: int):
        read_fd, write_fd = os.pipe()
        job = Path(scratch) / f"job{index}.json"
        job.write_text(json.dumps({"adapter": spec, "golden": str(golden), "cases": cases,
                                   "fd": write_fd, "sys_path": [p for p in sys.path if isinstance(p, str)]}))
        self.output_file = tempfile.TemporaryFile(dir=scratch)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # the febm_ref the parent uses
        env["PYTHONPATH"] = os.pathsep.join([package_root]
                                            + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-X", "faulthandler", "-c", _BOOT, str(job)],
                stdin=subprocess.DEVNULL, stdout=self.output_file, stderr=subprocess.STDOUT,
                pass_fds=(write_fd,), env=env, start_new_session=True)
        finally:
            os.close(write_fd)
        self.fd = read_fd
        self.partial = b""
        self.lines: deque = deque()

    def next_message(self, timeout: float):
        """The next JSON message; ``"timeout"`` or ``"eof"`` (pipe closed, or the process
        ended: a grandchild that inherited the pipe cannot hold it open)."""
        deadline = time.monotonic() + timeout
        while not self.lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.5))
            if not ready:
                if self.process.poll() is not None and not select.select([self.fd], [], [], 0)[0]:
                    return "eof"
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return "eof"
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            self.lines.extend(complete)
        line = self.lines.popleft()
        try:
            message = json.loads(line.decode("utf-8"))
        except ValueError:
            message = None
        return message if isinstance(message, dict) else {"malformed": line[:80].decode("utf-8", "replace")}

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        self.process.wait()

    def finish(self, grace: float = 5.0) -> str:
        """Wait for the process (killing it after ``grace`` s), close the pipe and return
        the captured fd 1/2 output."""
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # children the adapter left behind
        except (ProcessLookupError, PermissionError):
            pass
        os.close(self.fd)
        self.output_file.seek(0)
        text = self.output_file.read().decode("utf-8", "replace")
        self.output_file.close()
        return text


def _drive(worker: _Worker, pending: list, run: IsolatedRun, sections, timeout: float, first: bool):
    """Read one worker's messages into ``run``. Returns ``(how, detail)``: ``("done", None)``,
    ``("load_error", message)``, ``("timeout", phase)`` or ``("died", phase)``, phase being
    ``"load"`` or the key of the case in flight."""
    message = worker.next_message(max(timeout, LOAD_TIMEOUT))
    if message in ("timeout", "eof"):
        return ("timeout" if message == "timeout" else "died", "load")
    if "load_error" in message:
        return ("load_error", str(message["load_error"]))
    if "ready" not in message:
        return ("died", "load")
    if first:
        run.provided = set(map(str, message["ready"]))
    queue = list(pending)
    while queue:
        message = worker.next_message(timeout)
        if message in ("timeout", "eof"):
            return ("timeout" if message == "timeout" else "died", queue[0])
        key = tuple(message.get("case", ())) if "case" in message else None
        if key != queue[0]:
            run.outcomes[queue[0]] = ("error", f"the worker sent an unexpected message ({str(message)[:80]})")
        else:
            run.outcomes[key] = _decode(message)
        queue.pop(0)
    return ("done", None)


def _case_label(sections, key) -> tuple:
    case = sections[key[0]].document["cases"][key[1]]
    return case["id"], case["function"]


def run_isolated(spec: str, golden, sections, *, timeout: float) -> IsolatedRun:
    """Evaluate every golden case of ``sections`` (loaded from ``golden``) with the adapter
    ``spec`` in worker processes (module docstring); never raises for adapter failures."""
    run = IsolatedRun()
    all_keys = [(si, ci) for si, section in enumerate(sections) for ci in range(len(section.document["cases"]))]
    deaths: dict = {}
    struck: dict = {}
    outputs = []
    with tempfile.TemporaryDirectory(prefix="febm-ref-worker-") as scratch:
        for index in range(MAX_WORKERS):
            pending = [k for k in all_keys if k not in run.outcomes]
            if index:
                for key in list(pending):
                    _, function = _case_label(sections, key)
                    if function not in run.provided:
                        run.outcomes[key] = ("missing",)
                    elif function in struck:
                        run.outcomes[key] = ("error", f"not run: {struck[function]}")
                pending = [k for k in pending if k not in run.outcomes]
            if not pending:
                break
            worker = _Worker(spec, golden, [list(k) for k in pending], scratch, index)
            try:
                how, detail = _drive(worker, pending, run, sections, timeout, first=index == 0)
            except BaseException:  # KeyboardInterrupt, a bug: never leave a worker behind
                worker.kill()
                worker.finish(grace=0.0)
                raise
            if how == "timeout":
                worker.kill()
            output = worker.finish()
            returncode = worker.process.returncode
            header = f"--- worker {index + 1} ---\n" if index or how != "done" else ""
            if output:
                outputs.append(header + output)
            if how == "done":
                break
            if how == "load_error" or detail == "load":
                reason = (detail if how == "load_error" else
                          f"importing the adapter timed out after {max(timeout, LOAD_TIMEOUT):g} s" if how == "timeout"
                          else f"the worker {_death(returncode)} while importing the adapter"
                          f"{_crash_location(output) or _last_line(output)}")
                if index == 0:
                    run.load_error = reason
                    break
                for key in pending:
                    run.outcomes[key] = ("error", f"not run: a restarted worker could not load the adapter: {reason}")
                break
            case_id, function = _case_label(sections, detail)
            if how == "timeout":
                message = (f"timed out after {timeout:g} s in {function} (the worker was killed; "
                           "raise --timeout SECONDS if the function is just slow)")
                struck[function] = f"{function} timed out earlier (case {case_id})"
            else:
                message = f"worker {_death(returncode)} while evaluating {function}{_crash_location(output)}"
                if returncode is not None and returncode >= 0:
                    message += " (the adapter ended the process: os._exit, exit() from C, or a lost result pipe)"
                deaths[function] = deaths.get(function, 0) + 1
                if deaths[function] >= MAX_DEATHS_PER_FUNCTION:
                    struck[function] = f"{function} killed the worker {deaths[function]} times (last on case {case_id})"
            run.outcomes[detail] = ("error", message)
            run.events.append(f"case {case_id}: {message}; continuing in a fresh worker")
        else:
            left = [key for key in all_keys if key not in run.outcomes]
            for key in left:
                run.outcomes[key] = ("error", f"not run: the adapter killed or hung {MAX_WORKERS} workers")
            if left:
                run.events.append(f"gave up after {MAX_WORKERS} workers; the {len(left)} remaining case(s) "
                                  "are ERROR (not run)")
    run.output = _trim("".join(outputs))
    return run
