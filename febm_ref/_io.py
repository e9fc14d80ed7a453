"""Atomic output, output-directory locks and a fault-injection hook for the fault tests.

Atomic writes
-------------
A file written through :func:`atomic_write_bytes` (and the text / JSON / ``.npz`` helpers built
on it) is either absent, the old version, or the complete new version: the data go to a
temporary file ``.<name>.<pid>.<random>.tmp`` in the same directory, which is flushed, fsynced
and renamed over the target (``os.replace``, atomic on POSIX), and the directory is fsynced so
the rename itself survives a crash. On any error (a full disk included) the temporary file is
removed and an ``OSError`` naming the file and saying that its previous version is unchanged is
raised. A ``kill -9`` between writing and renaming can leave the temporary file behind (nothing
runs on SIGKILL); :class:`OutputLock` removes such files of dead processes.

Output-directory locks
----------------------
:class:`OutputLock` makes one process the only writer of an output directory: an exclusive
``fcntl.flock`` on ``<dir>/.febm-ref.lock``, which also holds the owner's pid and command line.
The kernel releases the lock when its process dies, however it dies, so a lock file left by a
dead process (a *stale* lock) is simply taken over. A second process is refused with
:class:`OutputLockedError` naming the holder's pid and command. Child processes forked by the
holder (``--jobs``) share its lock. POSIX only (``fcntl``); elsewhere the lock is a no-op.

Fault injection (tests only)
----------------------------
The environment variable ``FEBM_REF_FAULT`` makes the ``at``-th atomic write of this process
(1-based, counting only the files whose name ends with ``match``, default all) fail on purpose,
so the test suite can kill a run at a chosen point of a checkpoint write (``tests/test_faults.py``)::

    FEBM_REF_FAULT="action=kill,at=3,phase=synced,match=.ckpt.npz"

``action``: ``kill`` (SIGKILL itself), ``sigint`` (send itself SIGINT, as Ctrl-C does) or
``enospc`` (raise ``OSError(ENOSPC)`` after writing half the data, as a full disk does).
``phase`` (for ``kill``/``sigint``): ``start`` (before the temporary file exists), ``partial``
(half the data written), ``written`` (all written and flushed, not fsynced), ``synced`` (fsynced,
not renamed) or ``renamed`` (renamed, directory not yet fsynced). Unset, the hook costs one
dictionary look-up per write.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

FAULT_ENV = "FEBM_REF_FAULT"
FAULT_ACTIONS = ("kill", "sigint", "enospc")
FAULT_PHASES = ("start", "partial", "written", "synced", "renamed")
LOCK_NAME = ".febm-ref.lock"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
_fault_counter = {"spec": None, "count": 0}


def _fault_spec() -> Optional[dict]:
    """The parsed ``FEBM_REF_FAULT`` (None when unset); a malformed value is a ValueError."""
    text = os.environ.get(FAULT_ENV)
    if not text:
        return None
    try:
        spec = dict(item.split("=", 1) for item in text.split(","))
        spec["at"] = int(spec["at"])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"{FAULT_ENV}={text!r} is malformed ({exc}); expected e.g. "
                         "'action=kill,at=3,phase=synced,match=.ckpt.npz'") from exc
    spec.setdefault("phase", "partial")
    spec.setdefault("match", "")
    if spec.get("action") not in FAULT_ACTIONS or spec["phase"] not in FAULT_PHASES or spec["at"] < 1:
        raise ValueError(f"{FAULT_ENV}={text!r}: action must be one of {FAULT_ACTIONS}, phase one of "
                         f"{FAULT_PHASES}, at >= 1")
    return spec


def _fault_for(path: Path) -> Optional[dict]:
    """The fault to inject into this write of ``path`` (None for almost every write)."""
    spec = _fault_spec()
    if spec is None or not path.name.endswith(spec["match"]):
        return None
    _fault_counter["count"] += 1
    return spec if _fault_counter["count"] == spec["at"] else None


def _maybe_fault(fault: Optional[dict], phase: str, path: Path) -> None:
    if fault is None or fault["phase"] != phase or fault["action"] == "enospc":
        return
    print(f"{FAULT_ENV}: {fault['action']} at phase {phase} of the write of {path}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL if fault["action"] == "kill" else signal.SIGINT)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (module docstring): temporary file, fsync, ``os.replace``.

    Raises
    ------
    OSError
        The write failed (e.g. ``ENOSPC``, no space left on device); the message names ``path``
        and the previous version of the file, if any, is unchanged.
    """
    path = Path(path)
    fault = _fault_for(path)
    _maybe_fault(fault, "start", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            half = len(data) // 2
            handle.write(data[:half])
            if fault is not None and fault["action"] == "enospc":
                handle.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected by {FAULT_ENV})")
            _maybe_fault(fault, "partial", path)
            handle.write(data[half:])
            handle.flush()
            _maybe_fault(fault, "written", path)
            os.fsync(handle.fileno())
        _maybe_fault(fault, "synced", path)
        os.replace(tmp, path)
        tmp = None
        _maybe_fault(fault, "renamed", path)
        _fsync_directory(path.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        previous = "its previous version is unchanged" if path.exists() else "it was not created"
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; {previous}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _remove_quietly(tmp: Optional[str]) -> None:
    if tmp is not None:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """JSON text with NumPy scalars/arrays converted; ``inf``/``nan`` kept as JSON extensions."""
    return json.dumps(obj, indent=indent, default=_json_default, sort_keys=False)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON (NumPy values converted)."""
    return atomic_write_text(path, to_json(obj, indent=indent) + "\n")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Atomically write an uncompressed ``.npz`` archive of ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------- output-directory lock
class OutputLockedError(RuntimeError):
    """Another live process holds the lock of the output directory (``pid``, ``command``)."""

    def __init__(self, directory: Path, pid: Optional[int], command: str):
        self.directory, self.pid, self.command = directory, pid, command
        who = f"process {pid} ({command})" if pid is not None else "another process"
        super().__init__(f"output directory {directory} is in use by {who}; wait for it to finish, stop it, "
                         "or use another --out directory")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list:
    """Remove the temporary files of :func:`atomic_write_bytes` whose writing process is dead
    (left by a SIGKILL between writing and renaming) in ``directory`` and its subdirectories
    (one level: e.g. ``runs/``); return their paths."""
    removed = []
    directory = Path(directory)
    entries = [p for d in (directory, *(p for p in directory.iterdir() if p.is_dir())) for p in d.iterdir()]
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            _remove_quietly(str(entry))
            removed.append(entry)
    return removed


class OutputLock:
    """Exclusive lock of an output directory for one process (module docstring).

    Use as a context manager::

        with OutputLock(out_dir, "fit1d --divergence kl"):
            ...  # write checkpoints and results

    Raises
    ------
    OutputLockedError
        On entering, when another live process holds the lock; the message names its pid and
        command. A lock file left by a dead process is taken over (the kernel released its lock).
    """

    def __init__(self, directory: str | os.PathLike, command: str = ""):
        self.directory = Path(directory)
        self.command = command or " ".join(sys.argv)
        self._handle = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_NAME

    def __enter__(self) -> "OutputLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (module docstring)
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip().split("\n", 1)
            handle.close()
            pid = int(holder[0]) if holder and holder[0].isdigit() else None
            raise OutputLockedError(self.directory, pid, holder[1] if len(holder) > 1 else "unknown command") \
                from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n{self.command}\n")
        handle.flush()
        self._handle = handle
        remove_stale_temporaries(self.directory)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is None:
            return
        import fcntl

        # the lock file stays (unlinking a flock'd file lets two processes hold "the" lock)
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.flush()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
