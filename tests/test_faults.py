"""Fault campaign (issue 13, build point 4): ``fit1d`` / ``fit2d`` under kill -9, SIGINT, a full
disk, a second writer and tampered files.

The claim of every case is exact: after the fault, the run either stops with a one-line error that
names the file and says what to do (and leaves the last checkpoint intact and loadable), or
``--resume`` finishes it with results *bit for bit* equal to those of an uninterrupted run of the
same settings (every array and every JSON value except wall times). Nothing is silently wrong.

Kill points are deterministic: a fault-injection hook in the atomic writer
(``FEBM_REF_FAULT``, :mod:`febm_ref._io`) SIGKILLs or SIGINTs the process at a chosen phase of
the n-th write (``synced``: the temporary file written and fsynced, not renamed; ``partial``:
half of it written; ``renamed``: the result file in place but the next one not yet written),
with the write numbers drawn from ``default_rng(13)``. Two cases send the signal from outside
(the parent) once the run's checkpoint has advanced: where it lands is not fixed, but the claim
holds wherever it lands. Every subprocess wait has a timeout; temporary directories and the
tmpfs mount are removed in ``finally`` blocks.

Runs are tiny (fit1d: 60 iterations, a checkpoint every 5; fit2d: 12 iterations, every 3), the
module takes about 30-50 s on a loaded 2-core machine (about 13 interpreter start-ups of ~3 s:
the price of real processes, which a kill -9 needs).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from febm_ref import _io, cli
from febm_ref._io import FAULT_ENV, LOCK_NAME, OutputLock, OutputLockedError
from febm_ref.training import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds per subprocess: generous for a loaded machine, finite so CI never hangs
RNG = np.random.default_rng(13)  # the seeded choice of kill points (drawn at import: fixed order)

FIT1D = ["fit1d", "--divergence", "kl", "--iters", "60", "--checkpoint-every", "5", "--seed", "3", "--json"]
CKPT1D = "kl_febm_converged.ckpt.npz"
STEM1D = "kl_febm_converged"
FIT2D = ["fit2d", "--target", "two_moons", "--divergence", "kl", "--iters", "12", "--checkpoint-every", "3",
         "--json"]
RUN2D = "two_moons__kl__s0"
WALL_TIME_KEYS = {"seconds_train", "seconds_reference", "seconds", "resumed_from"}


# ----------------------------------------------------------------------------- helpers
def _env(fault: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if fault:
        env[FAULT_ENV] = fault
    return env


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A job started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so the SIGINT cases would test the shell, not the CLI."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(argv, out: Path, *, resume=False, fault=None) -> subprocess.CompletedProcess:
    """``python3 -m febm_ref.cli ARGV --out OUT [--resume]`` in a subprocess (timeout TIMEOUT)."""
    cmd = [sys.executable, "-m", "febm_ref.cli", *argv, "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.run(cmd, cwd=ROOT, env=_env(fault), capture_output=True, text=True, timeout=TIMEOUT,
                          preexec_fn=_default_sigint)


def _popen(argv, out: Path, *, resume=False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "febm_ref.cli", *argv, "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


def _checkpoint_iteration(path: Path) -> int | None:
    """The iteration of the checkpoint at ``path`` (None if absent); it must load (digest checked)."""
    return int(load_checkpoint(path)["meta"]["iteration"]) if path.exists() else None


def _signal_when_checkpoint_advances(proc: subprocess.Popen, ckpt: Path, sig: int, delay: float) -> int:
    """Send ``sig`` ``delay`` s after the checkpoint's iteration has advanced (or the process ended)."""
    start = _checkpoint_iteration(ckpt)
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(CheckpointError, ValueError, OSError):
            if _checkpoint_iteration(ckpt) != start:
                break
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    return proc.returncode


def _stale_temporaries(out: Path) -> list:
    return sorted(p.name for d in (out, *(q for q in out.iterdir() if q.is_dir())) for p in d.iterdir()
                  if p.name.endswith(".tmp"))


def _assert_same_npz(a: Path, b: Path):
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        assert sorted(x.files) == sorted(y.files), (a, b)
        for key in x.files:
            u, v = x[key], y[key]
            assert u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes(), f"{b}: {key}"


def _assert_same_json(a: Path, b: Path):
    x, y = json.loads(a.read_text()), json.loads(b.read_text())
    for d in (x, y):
        for key in WALL_TIME_KEYS:
            d.pop(key, None)
    # compared as JSON text: floats are written with repr (shortest round trip), so equal text is equal bits
    assert json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True), b


def _assert_same_checkpoint(a: Path, b: Path):
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert json.dumps(x.pop("meta"), sort_keys=True) == json.dumps(y.pop("meta"), sort_keys=True)
    assert sorted(x) == sorted(y)
    for key in x:
        assert x[key].dtype == y[key].dtype and x[key].tobytes() == y[key].tobytes(), key


def _assert_same_1d(ref: Path, out: Path):
    _assert_same_json(ref / f"{STEM1D}.json", out / f"{STEM1D}.json")
    _assert_same_npz(ref / f"{STEM1D}.history.npz", out / f"{STEM1D}.history.npz")
    _assert_same_checkpoint(ref / CKPT1D, out / CKPT1D)
    assert _stale_temporaries(out) == []


def _assert_same_2d(ref: Path, out: Path):
    _assert_same_json(ref / "runs" / f"{RUN2D}.json", out / "runs" / f"{RUN2D}.json")
    _assert_same_npz(ref / "runs" / f"{RUN2D}.npz", out / "runs" / f"{RUN2D}.npz")
    assert _stale_temporaries(out) == []


def _in_process(argv, out: Path, capsys, *, resume=False, fault=None, monkeypatch=None) -> tuple[int, str]:
    """``cli.main`` in this process (exit status, stderr), with ``FEBM_REF_FAULT`` set if given."""
    if fault is not None:
        monkeypatch.setenv(FAULT_ENV, fault)
        monkeypatch.setitem(_io._fault_counter, "count", 0)
    try:
        capsys.readouterr()
        code = cli.main([*argv, "--out", str(out)] + (["--resume"] if resume else []))
        return code, capsys.readouterr().err
    finally:
        if fault is not None:
            monkeypatch.delenv(FAULT_ENV)


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="febm-ref-faults-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def reference_1d(scratch) -> Path:
    """The uninterrupted fit1d run (in this process: the same code path as the CLI, no start-up)."""
    out = scratch / "ref1d"
    assert cli.main([*FIT1D, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference_2d(scratch) -> Path:
    out = scratch / "ref2d"
    assert cli.main([*FIT2D, "--out", str(out)]) == 0
    return out


# ----------------------------------------------------------------------------- kill -9 and SIGINT
# (write number among the checkpoint writes of that process, phase), drawn once from RNG
KILL_1D = [int(RNG.integers(2, 5)), int(RNG.integers(1, 4)), float(RNG.uniform(0.0, 0.2))]
KILL_2D = [int(RNG.integers(2, 4)), int(RNG.integers(1, 3))]


def test_fit1d_survives_kill9_and_sigint_at_chosen_points_bit_for_bit(reference_1d, scratch, capsys):
    """One run, interrupted 5 times, each resumed from the checkpoint on disk (the lock of each killed
    process is stale and taken over; its temporary file is removed); the end results equal the
    uninterrupted run's bit for bit (fit JSON, history, final checkpoint)."""
    out = scratch / "chain1d"
    ckpt = out / CKPT1D
    steps = [  # (fault, expected exit status)
        (f"action=kill,at={KILL_1D[0]},phase=synced,match=.ckpt.npz", -signal.SIGKILL),
        (f"action=sigint,at={KILL_1D[1]},phase=partial,match=.ckpt.npz", 130),
        ("parent-sigkill", -signal.SIGKILL),
        ("action=kill,at=1,phase=renamed,match=.json", -signal.SIGKILL),
    ]
    codes, iterations = [], []
    for i, (fault, status) in enumerate(steps):
        if fault == "parent-sigkill":
            code = _signal_when_checkpoint_advances(_popen(FIT1D, out, resume=True), ckpt, signal.SIGKILL,
                                                    KILL_1D[2])
            assert code in (status, 0), code  # 0: the run ended before the signal came
        else:
            proc = _cli(FIT1D, out, resume=i > 0, fault=fault)
            code = proc.returncode
            assert code == status, (fault, code, proc.stderr[-2000:])
        codes.append(code)
        iterations.append(_checkpoint_iteration(ckpt))
        if fault == "parent-sigkill":  # its kill may land after the run wrote its results
            history_after_parent_kill = (out / f"{STEM1D}.history.npz").exists()
        if code == -signal.SIGKILL and fault != "parent-sigkill":  # (that one may land after the release)
            holder = (out / LOCK_NAME).read_text().split("\n")[0]
            assert holder.isdigit()  # the dead process's pid: a stale lock, taken over by the next run
    # the kill at "synced" left the checkpoint before it (and a temporary file, removed on resume)
    assert iterations[0] == 5 * (KILL_1D[0] - 1)
    assert iterations[-1] == 60 and (out / f"{STEM1D}.json").exists()
    if not history_after_parent_kill:
        assert not (out / f"{STEM1D}.history.npz").exists()  # killed between the two result files
    proc = _cli(FIT1D, out, resume=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_same_1d(reference_1d, out)


def test_fit1d_sigint_from_outside_keeps_a_checkpoint_and_resumes_bit_for_bit(reference_1d, scratch):
    """Ctrl-C (SIGINT from the parent, wherever it lands after the first checkpoints): exit 130,
    a loadable checkpoint, and the resumed results equal the uninterrupted run's."""
    out = scratch / "sigint1d"
    code = _signal_when_checkpoint_advances(_popen(FIT1D, out), out / CKPT1D, signal.SIGINT, 0.0)
    assert code in (130, 0), code
    assert _checkpoint_iteration(out / CKPT1D) is not None
    proc = _cli(FIT1D, out, resume=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_same_1d(reference_1d, out)


def test_fit2d_survives_kill9_and_sigint_at_chosen_points_bit_for_bit(reference_2d, scratch):
    """fit2d (replay buffer, evaluator curve in the checkpoint): kill -9 mid-checkpoint, SIGINT
    mid-checkpoint, kill -9 between the result arrays and the result JSON; resumed results equal the
    uninterrupted run's bit for bit."""
    out = scratch / "chain2d"
    ckpt = out / f"{RUN2D}.ckpt.npz"
    steps = [(f"action=kill,at={KILL_2D[0]},phase=synced,match=.ckpt.npz", -signal.SIGKILL),
             (f"action=sigint,at={KILL_2D[1]},phase=written,match=.ckpt.npz", 130),
             ("action=kill,at=1,phase=renamed,match=s0.npz", -signal.SIGKILL)]
    for i, (fault, status) in enumerate(steps):
        proc = _cli(FIT2D, out, resume=i > 0, fault=fault)
        assert proc.returncode == status, (fault, proc.returncode, proc.stderr[-2000:])
        assert _checkpoint_iteration(ckpt) is not None
    assert (out / "runs" / f"{RUN2D}.npz").exists() and not (out / "runs" / f"{RUN2D}.json").exists()
    proc = _cli(FIT2D, out, resume=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assert_same_2d(reference_2d, out)


def test_kill9_before_the_first_checkpoint_gives_a_clear_resume_error(scratch, capsys):
    """Killed while writing the very first checkpoint: nothing to resume from, and --resume says so."""
    out = scratch / "first2d"
    proc = _cli(FIT2D, out, fault="action=kill,at=1,phase=synced,match=.ckpt.npz")
    assert proc.returncode == -signal.SIGKILL
    assert not (out / f"{RUN2D}.ckpt.npz").exists()
    code, err = _in_process(FIT2D, out, capsys, resume=True)
    assert code == 2 and "no checkpoint at" in err and f"{RUN2D}.ckpt.npz" in err, err


# ----------------------------------------------------------------------------- a full disk
@contextlib.contextmanager
def _tmpfs(size_bytes: int):
    """A tmpfs of ``size_bytes`` mounted on a fresh directory (skip if this process cannot mount)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC tests cover the code path)")
    mount_point = Path(tempfile.mkdtemp(prefix="febm-ref-tmpfs-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)
        shutil.rmtree(mount_point, ignore_errors=True)


def _assert_full_disk_outcome(code, err, ckpt: Path, expected_iteration: int, result: Path):
    assert code == 1, err
    assert "No space left on device" in err and str(ckpt.name) in err and "--resume" in err, err
    assert f"previous checkpoint (iteration {expected_iteration}) is intact" in err, err
    assert "Traceback" not in err
    assert _checkpoint_iteration(ckpt) == expected_iteration  # intact and loadable (digest checked)
    assert not result.exists() and _stale_temporaries(ckpt.parent) == []


def test_fit1d_on_a_full_tmpfs_keeps_the_previous_checkpoint_and_resumes_bit_for_bit(reference_1d, capsys):
    """A real full disk: a tmpfs of 1.5 checkpoints holds the first checkpoint but not the temporary
    file of the second (an atomic write needs old + new); after 'freeing space' (remount larger)
    --resume gives the uninterrupted results."""
    size = int(1.5 * (reference_1d / CKPT1D).stat().st_size)
    with _tmpfs(size) as disk:
        out = disk / "out"
        code, err = _in_process(FIT1D, out, capsys)
        _assert_full_disk_outcome(code, err, out / CKPT1D, 5, out / f"{STEM1D}.json")
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True, timeout=30)
        code, err = _in_process(FIT1D, out, capsys, resume=True)
        assert code == 0, err
        _assert_same_1d(reference_1d, out)


def test_injected_enospc_in_a_checkpoint_and_in_a_result_file(reference_1d, reference_2d, scratch, capsys,
                                                              monkeypatch):
    """ENOSPC injected half-way through a write (no root needed): fit2d at its 3rd checkpoint, fit1d
    at its result JSON. Clear one-line errors, the previous checkpoint intact, no partial files, and
    --resume gives the uninterrupted results bit for bit."""
    out = scratch / "enospc2d"
    code, err = _in_process(FIT2D, out, capsys, fault="action=enospc,at=3,match=.ckpt.npz",
                            monkeypatch=monkeypatch)
    _assert_full_disk_outcome(code, err, out / f"{RUN2D}.ckpt.npz", 6, out / "runs" / f"{RUN2D}.json")
    code, err = _in_process(FIT2D, out, capsys, resume=True)
    assert code == 0, err
    _assert_same_2d(reference_2d, out)

    out = scratch / "enospc1d"
    code, err = _in_process(FIT1D, out, capsys, fault="action=enospc,at=1,match=.json", monkeypatch=monkeypatch)
    assert code == 1 and f"cannot write {out / (STEM1D + '.json')}: No space left on device" in err, err
    assert "it was not created" in err and not (out / f"{STEM1D}.json").exists()
    assert _checkpoint_iteration(out / CKPT1D) == 60 and _stale_temporaries(out) == []
    code, err = _in_process(FIT1D, out, capsys, resume=True)
    assert code == 0, err
    _assert_same_1d(reference_1d, out)


# ----------------------------------------------------------------------------- two writers
def test_a_second_process_on_the_same_output_directory_is_refused_naming_the_first(scratch):
    """Process A (a long fit1d) holds --out; process B on the same --out exits 2 naming A's pid and
    command, and writes nothing."""
    out = scratch / "two_writers"
    argv_a = ["fit1d", "--divergence", "kl", "--iters", "100000", "--checkpoint-every", "5", "--seed", "3"]
    a = _popen(argv_a, out)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / CKPT1D).exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.poll() is None, a.stderr.read()[-2000:] if a.stderr else ""
        # A keeps writing its checkpoint atomically (temporary, then rename), so its in-flight
        # temporaries come and go; what B must not touch is every committed file.
        before = sorted(p.name for p in out.iterdir() if not p.name.endswith(".tmp"))
        b = _cli(["fit2d", "--iters", "3"], out)
        assert b.returncode == 2, b.stderr
        assert f"is in use by process {a.pid} (febm-ref fit1d" in b.stderr and "--out" in b.stderr, b.stderr
        assert "Traceback" not in b.stderr
        assert not any(name.startswith("eight_gaussians") for name in os.listdir(out))
        assert set(before) <= set(os.listdir(out))
    finally:
        a.kill()
        a.wait(timeout=TIMEOUT)


def test_output_lock_refuses_a_second_holder_and_takes_over_a_dead_one(tmp_path):
    """In one process: a second OutputLock on the directory is refused (flock per open file); a lock
    file naming a dead pid (its process gone, so its flock released) is taken over."""
    with OutputLock(tmp_path, "holder"):
        with pytest.raises(OutputLockedError, match=f"process {os.getpid()} \\(holder\\)"):
            OutputLock(tmp_path, "second").__enter__()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=TIMEOUT)
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid}\nfebm-ref fit1d (killed)\n")
    stale_tmp = tmp_path / f".x.ckpt.npz.{dead.pid}.abc123.tmp"
    stale_tmp.write_bytes(b"partial")
    with OutputLock(tmp_path, "new"):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\nnew\n"
        assert not stale_tmp.exists()  # the dead writer's temporary file is removed


# ----------------------------------------------------------------------------- tampered files
def _truncate_half(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_a_byte(p: Path):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))


def _resave(p: Path, change):
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(p, **arrays)


def _nudge_avg(arrays):  # one ulp on the averaged theta: the reported fit would be silently wrong
    arrays["avg"] = np.nextafter(arrays["avg"], np.inf)


def _edit_meta(key, value):
    def change(arrays):
        meta = json.loads(str(arrays["meta_json"]))
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
        arrays["meta_json"] = np.array(json.dumps(meta))
    return change


TAMPERS = {
    "truncated_half": (_truncate_half, "unreadable, truncated or corrupted"),
    "truncated_empty": (lambda p: p.write_bytes(b""), "unreadable, truncated or corrupted"),
    "one_byte_flipped": (_flip_a_byte, "unreadable, truncated or corrupted|does not match its sha256"),
    "not_an_archive": (lambda p: p.write_text("hello"), "unreadable, truncated or corrupted"),
    "array_edited": (lambda p: _resave(p, _nudge_avg), "does not match its sha256"),
    "iteration_edited": (lambda p: _resave(p, _edit_meta("iteration", 30)), "does not match its sha256"),
    "digest_removed": (lambda p: _resave(p, _edit_meta("integrity", None)), "no integrity digest"),
    "meta_removed": (lambda p: _resave(p, lambda a: a.pop("meta_json")), "no metadata"),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_tampered_checkpoint_is_refused_never_resumed(tamper, reference_1d, tmp_path, capsys):
    """--resume from a truncated, corrupted or edited checkpoint: exit 2, one line naming the file
    and saying what to do; the checkpoint is left as it was and no result is written."""
    change, message = TAMPERS[tamper]
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(reference_1d / CKPT1D, out / CKPT1D)
    change(out / CKPT1D)
    tampered = (out / CKPT1D).read_bytes()
    code, err = _in_process(FIT1D, out, capsys, resume=True)
    assert code == 2, err
    assert str(out / CKPT1D) in err and "it was not used" in err and "Traceback" not in err, err
    assert __import__("re").search(message, err), err
    assert (out / CKPT1D).read_bytes() == tampered
    assert not (out / f"{STEM1D}.json").exists()


def test_a_checkpoint_of_other_settings_is_refused(reference_1d, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(reference_1d / CKPT1D, out / CKPT1D)
    argv = [a if a != "3" else "4" for a in FIT1D]  # --seed 4
    code, err = _in_process(argv, out, capsys, resume=True)
    assert code == 2 and "different configuration" in err and "config.seed: checkpoint 3 vs requested 4" in err


@pytest.fixture(scope="module")
def golden_small(scratch) -> Path:
    from febm_ref.conformance.golden import section_builders, write_golden

    out = scratch / "golden"
    write_golden(out, seed=0, sections=["catalogue"], builders=section_builders())
    return out


def _drop_manifest_entry_and_edit(golden: Path):
    manifest = json.loads((golden / "manifest.json").read_text())
    manifest["files"] = [e for e in manifest["files"] if e["file"] != "catalogue.npz"]
    (golden / "manifest.json").write_text(json.dumps(manifest))
    _flip_a_byte(golden / "catalogue.npz")


GOLDEN_TAMPERS = {
    "npz_truncated": (lambda g: _truncate_half(g / "catalogue.npz"), "does not match its sha256"),
    "json_byte_flipped": (lambda g: _flip_a_byte(g / "catalogue.json"), "does not match its sha256"),
    "npz_missing": (lambda g: (g / "catalogue.npz").unlink(), "listed in the manifest is missing"),
    "manifest_truncated": (lambda g: _truncate_half(g / "manifest.json"), "cannot read"),
    "manifest_not_an_object": (lambda g: (g / "manifest.json").write_text("[]"), "not a JSON object"),
    "manifest_entry_dropped_and_file_edited": (_drop_manifest_entry_and_edit, "has no sha256 entry"),
}


@pytest.mark.parametrize("tamper", sorted(GOLDEN_TAMPERS))
def test_a_tampered_golden_set_is_refused_by_check(tamper, golden_small, tmp_path, capsys):
    """``febm-ref check`` on a truncated or edited golden set: exit 2 and a message naming the
    problem, before any adapter code runs (the golden values are never silently used)."""
    change, message = GOLDEN_TAMPERS[tamper]
    golden = tmp_path / "g"
    shutil.copytree(golden_small, golden)
    change(golden)
    capsys.readouterr()
    assert cli.main(["check", "--adapter", "math", "--golden", str(golden)]) == 2
    err = capsys.readouterr().err
    assert message in err and "febm-ref check: error:" in err, err


def test_the_untampered_golden_set_loads(golden_small):
    """Negative control of the golden cases: the same copy procedure without a change passes the checks."""
    from febm_ref.conformance.checker import load_golden

    manifest, sections = load_golden(golden_small)
    assert [s.name for s in sections] == ["catalogue"] and manifest["sections"] == ["catalogue"]
