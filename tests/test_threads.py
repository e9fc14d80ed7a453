"""febm_ref._numba.threads.parallel_ranges: the ranges, the threads and the errors."""

from __future__ import annotations

import threading

import numba
import pytest

from febm_ref._numba.threads import parallel_ranges


def _record(n_items, n_threads):
    calls = []
    lock = threading.Lock()

    def run(start, stop):
        with lock:
            calls.append((start, stop, threading.get_ident()))

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(n_threads)
        parallel_ranges(run, n_items)
    finally:
        numba.set_num_threads(before)
    return sorted(calls)


@pytest.mark.parametrize("n_items", [1, 2, 7, 17])
def test_ranges_cover_every_item_once_in_equal_contiguous_parts(n_items):
    """The ranges partition [0, n) into min(threads, n) contiguous parts differing in size by at
    most one, the first run by the calling thread and the others by other threads."""
    n_threads = min(2, numba.config.NUMBA_NUM_THREADS)
    calls = _record(n_items, n_threads)
    assert [c[0] for c in calls][0] == 0 and calls[-1][1] == n_items
    assert all(a[1] == b[0] for a, b in zip(calls, calls[1:]))
    sizes = [stop - start for start, stop, _ in calls]
    assert len(calls) == min(n_threads, n_items) and max(sizes) - min(sizes) <= 1
    assert calls[0][2] == threading.get_ident()
    assert len({ident for _, _, ident in calls}) == len(calls)


def test_one_thread_runs_everything_in_the_caller():
    assert _record(9, 1) == [(0, 9, threading.get_ident())]


def test_an_error_in_another_thread_is_raised_after_every_range_finished():
    """The second range raises; the first (in the caller) still finishes, then the error is raised."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    done = []

    def run(start, stop):
        if start > 0:
            raise ArithmeticError(f"range {start}..{stop}")
        done.append((start, stop))

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        with pytest.raises(ArithmeticError, match="range 2..4"):
            parallel_ranges(run, 4)
    finally:
        numba.set_num_threads(before)
    assert done == [(0, 2)]


FORK_SCRIPT = """
import multiprocessing, threading
import numba
from febm_ref._numba.threads import parallel_ranges

def ranges():
    calls, lock = [], threading.Lock()
    def run(start, stop):
        with lock:
            calls.append((start, stop))
    numba.set_num_threads(2)
    parallel_ranges(run, 4)
    return sorted(calls)

if __name__ == "__main__":
    assert ranges() == [(0, 2), (2, 4)]          # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        print(pool.apply_async(ranges).get(timeout=30))
"""


def test_a_forked_child_gets_threads_of_its_own(tmp_path):
    """A child forked after the parent used the pool inherits the executor but not its threads; it
    must still finish (before keying the pools by process id it waited forever: a 30 s timeout).
    Run in a fresh interpreter, so that no other library's threads (JAX in this test process)
    are forked along."""
    import subprocess
    import sys

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    script = tmp_path / "fork_child.py"
    script.write_text(FORK_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(0, 2), (2, 4)]", done.stdout
