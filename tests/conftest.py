"""Test-session setup: jitted test helpers (``tests/test_kernels.py``) call the package's
kernels, so their on-disk Numba caches go stale when a kernel module changes; discard them
then (see :func:`febm_ref._jit.discard_stale_caches`)."""

from pathlib import Path

from febm_ref._jit import discard_stale_caches

discard_stale_caches(Path(__file__).resolve().parent)
