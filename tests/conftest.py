"""Test-session setup: the package's kernels and the jitted test helpers (``tests/test_kernels.py``,
which call the package's kernels) have on-disk Numba caches that go stale when a kernel module
changes; discard them then (see :func:`febm_ref._numba.jit.discard_stale_caches`; importing the
package deletes nothing, so this is the explicit call for the test session)."""

from pathlib import Path

from febm_ref._numba.jit import discard_stale_caches, discard_stale_package_caches

discard_stale_package_caches()
discard_stale_caches(Path(__file__).resolve().parent)
