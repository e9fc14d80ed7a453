"""The golden set of the installed febm-ref, built once into a per-version cache directory.

``febm-ref check`` without ``--golden``, :func:`febm_ref.testing.assert_conforms` and the
pytest fixture ``febm_golden`` use :func:`cached_golden_dir`: the first call writes the golden
set (seed 0, ~5-10 s) into ::

    $FEBM_REF_GOLDEN_CACHE | $XDG_CACHE_HOME/febm-ref/golden | ~/.cache/febm-ref/golden
        /<version>-schema<schema>-seed<seed>-<source digest>/

and every later call validates its sha256 manifest (~0.1 s) and returns it. The source digest
(sha256 of the ``febm_ref`` sources, ``febm_ref.verification`` included) changes with any change of the code
that computes the golden values, so a stale set is never used, even between releases. The
directory is written into a temporary sibling and renamed into place, so concurrent first
calls (pytest-xdist workers) never see a half-written set. Sets of the same version and seed
built from other sources are removed after :data:`STALE_DAYS` days.

Why a cache and not package data: the set is ~5.2 MB (the 4096-sample estimator batches are
3.8 MB of it), it is byte-for-byte what ``febm-ref golden`` writes for the installed code, and
it cannot drift from that code (shipped files would need their own consistency test and a
rebuild on every change of the reference).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

from febm_ref import __version__
from febm_ref.conformance import schema

__all__ = ["cache_root", "source_digest", "cached_golden_dir"]


def cache_root() -> Path:
    """The directory holding cached golden sets (see the module docstring)."""
    explicit = os.environ.get("FEBM_REF_GOLDEN_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "febm-ref" / "golden"


def source_digest() -> str:
    """sha256 (first 16 hex digits) of the sources that compute the golden values."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package.parent)).encode())
        digest.update(path.read_bytes())
    from febm_ref.conformance.golden import source_revision

    digest.update(source_revision().encode())  # the manifest records it: part of the bytes
    return digest.hexdigest()[:16]


def cached_golden_dir(seed: int = 0, *, root: Optional[Path] = None, quiet: bool = False) -> Path:
    """Path of the validated golden set of this febm-ref version and seed (built if missing).

    Raises
    ------
    OSError
        If the cache directory cannot be created (set ``FEBM_REF_GOLDEN_CACHE`` to a writable
        directory, or pass ``--golden DIR`` / ``golden=DIR``).
    """
    from febm_ref.conformance.checker import GoldenError, load_golden
    from febm_ref.conformance.golden import write_golden

    root = cache_root() if root is None else Path(root)
    target = root / f"{__version__}-schema{schema.SCHEMA_VERSION}-seed{int(seed)}-{source_digest()}"
    if target.is_dir():
        try:
            load_golden(target)
            return target
        except GoldenError:
            shutil.rmtree(target, ignore_errors=True)  # corrupted: rebuild
    root.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"febm-ref: building the golden set once into {target} (a few seconds)", file=sys.stderr)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        write_golden(scratch, seed)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o777 & ~umask)  # mkdtemp makes 0700; the cache may be shared
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real error
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    load_golden(target)
    _prune(root, target)
    return target


STALE_DAYS = 7
"""Cached sets of the same version, schema and seed but other sources (a developer's earlier
edits) are removed once unused for this many days (5 MB each)."""


def _prune(root: Path, keep: Path) -> None:
    import time

    prefix = keep.name.rsplit("-", 1)[0] + "-"
    cutoff = time.time() - STALE_DAYS * 86400
    for other in root.glob(prefix + "*"):
        try:
            if other != keep and other.is_dir() and other.stat().st_mtime < cutoff:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass
