"""Test-session setup.

* The package's kernels and the jitted test helpers (``tests/test_kernels.py``, which call the
  package's kernels) have on-disk Numba caches that go stale when a kernel module changes;
  discard them then (see :func:`febm_ref._numba.jit.discard_stale_caches`; importing the package
  deletes nothing, so this is the explicit call for the test session).
* ``shared_golden_root``: one golden set (seed 0) for the whole session, built once even under
  pytest-xdist (``-n auto`` in pyproject's addopts): the workers' base temporary directories
  are siblings, so the cache lives in their common parent and a file lock lets the first
  worker build it while the others wait (then validate it, ~0.1 s).
"""

import fcntl
import os
from pathlib import Path

import pytest

from febm_ref._numba.jit import discard_stale_caches, discard_stale_package_caches

discard_stale_package_caches()
discard_stale_caches(Path(__file__).resolve().parent)


@pytest.fixture(scope="session")
def shared_golden_root(tmp_path_factory) -> Path:
    """A golden cache root holding the validated seed-0 set of this code (read-only by convention:
    a test that edits or rebuilds a set copies it into its own directory first)."""
    from febm_ref.conformance.cache import cached_golden_dir

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    root = base / "golden-cache-shared"
    with open(base / "golden-cache-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cached_golden_dir(0, root=root, quiet=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root
