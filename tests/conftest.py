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


@pytest.fixture
def golden_builds_only(monkeypatch):
    """``golden_builds_only(*sections) -> builds``: from then on every golden build that goes
    through the cache (:func:`febm_ref.conformance.cache.cached_golden_dir`, hence ``check``
    without ``--golden``) writes only ``sections``; ``builds`` collects the seed of each build.

    For tests whose claim is about the cache, not the set's bytes (a full build costs ~5 s;
    sections draw from independent streams, so a section's bytes do not depend on which others
    are built)."""
    import febm_ref.conformance.golden as golden_module

    real_write_golden = golden_module.write_golden

    def restrict(*sections):
        builds = []

        def write_sections(out, seed, **options):
            builds.append(seed)
            return real_write_golden(out, seed, **{**options, "sections": list(sections)})

        monkeypatch.setattr(golden_module, "write_golden", write_sections)
        return builds

    return restrict
