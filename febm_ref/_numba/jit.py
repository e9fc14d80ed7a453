"""The single place where Numba's jit options are set.

Every kernel in :mod:`febm_ref` is compiled through :func:`njit` below, so the policy
is uniform and auditable:

* ``cache=True``: compiled machine code is cached on disk next to the module, so only
  the first process pays the compile time (the cold start is measured in the README);
* ``error_model="numpy"``: division by zero gives ``inf``/``nan`` as in NumPy instead
  of raising, which keeps the kernels bit-compatible with their NumPy twins;
* no ``fastmath``: IEEE semantics are kept, so float64 results can be compared with
  the NumPy twins to ~1e-12.

``NUMBA_DISABLE_JIT=1`` turns every kernel into its Python function; the test-suite
runs under that setting too.

Compile time (the first call in a process with an empty cache) is part of the cost. Numba
compiles a jitted function for each distinct tuple of argument types, and compiles every
jitted callee on its own and then again, linked into each caller (LLVM re-optimises and
re-emits the whole call graph below every compiled function). Hence the rules the kernels
follow:

* one entry function per path (no mode argument selecting among kernels that a call does
  not use);
* no ``parallel=True`` drivers: a ``prange`` driver is compiled on its own, with the serial
  kernel compiled into it once more (2-6 s each on a cold start); threads run the GIL-free
  serial kernels on ranges of work instead (:mod:`febm_ref._numba.threads`);
* serial loops over blocks or chunks are run from Python or inside the entry function, not
  through extra jitted driver layers;
* small helpers and thin wrappers are ``njit(inline="always")`` (an extra option, allowed
  like ``parallel``): Numba inlines their code into each caller and never compiles them on
  their own. The arithmetic is the same (LLVM inlined them already), so are the numbers;
* no ``int`` or ``bool`` constant is passed to a jitted callee: Numba types it as a literal
  and compiles the callee once more for that value (``bool(False)``, ``np.int64(0)`` or a
  computed value is an ordinary ``bool``/``int64``);
* arguments that only select a path can be ``None``: Numba removes ``if arg is not None``
  blocks at compile time when ``arg`` is None, so the path that is not taken is not
  compiled;
* arrays of the same role have the same type at every call (C-contiguous; read-only or
  writeable as :func:`febm_ref._numba.kernels.read_only` makes ``params`` and ``sizes``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}

KERNEL_MODULES = ("jit.py", "batched_mlp.py", "kernels.py", "langevin.py")
"""The modules of :mod:`febm_ref._numba` that define jitted functions (a test keeps this list
complete; no module outside :mod:`febm_ref._numba` defines one). Their sources together key the
on-disk caches, see :func:`discard_stale_caches`."""

_STAMP_NAME = "febm_ref_kernel_sources.sha256"


def kernel_source_fingerprint() -> str:
    """SHA-256 of the sources of :data:`KERNEL_MODULES`, in that order."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for name in KERNEL_MODULES:
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def numba_cache_dirs(source_dir) -> list:
    """Where Numba keeps the caches of functions defined in ``source_dir``: its ``__pycache__``
    and, when ``NUMBA_CACHE_DIR`` is set, the subdirectory that Numba's own locator derives
    from ``source_dir`` there (``<dir name>_<sha1 of the path>`` in numba 0.68)."""
    source_dir = Path(source_dir).resolve()
    dirs = [source_dir / "__pycache__"]
    if numba.config.CACHE_DIR:
        from numba.core import caching

        locator = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
        subpath = locator.get_suitable_cache_subpath(str(source_dir / "module.py"))
        dirs.append(Path(numba.config.CACHE_DIR) / subpath)
    return dirs


def discard_stale_caches(source_dir) -> int:
    """Delete Numba's cached machine code of the functions defined in ``source_dir`` if it may
    contain an older version of a kernel; return the number of files deleted.

    Numba checks a cached function against the modification time of *its own* source file
    only, but the cached code contains every jitted callee compiled in: after an edit of,
    say, :func:`febm_ref._numba.batched_mlp.tanh_and_derivative`, the cached Langevin loops of
    :mod:`febm_ref._numba.langevin` (and jitted test helpers that call the kernels) would
    still run the old tanh. So each cache directory carries a stamp with
    :func:`kernel_source_fingerprint`; when it differs (or is missing) the directory's
    ``*.nbi``/``*.nbc`` files are deleted and the stamp rewritten. Importing the package deletes
    nothing: this is called explicitly, for the package (:func:`discard_stale_package_caches`) by
    the CLI at startup (:func:`febm_ref.cli.main`) and by ``tests/conftest.py``, and for ``tests/``
    by ``tests/conftest.py``; a library user who edits a kernel source calls
    :func:`discard_stale_package_caches` once (or deletes ``febm_ref/_numba/__pycache__``).
    Directories that cannot be written are left alone (an installed, read-only package is not
    edited).
    """
    if numba.config.DISABLE_JIT:
        return 0
    fingerprint = kernel_source_fingerprint()
    deleted = 0
    for cache_dir in numba_cache_dirs(source_dir):
        stamp = cache_dir / _STAMP_NAME
        try:
            if stamp.read_text() == fingerprint:
                continue
        except OSError:
            pass
        try:
            if cache_dir.is_dir():
                for path in list(cache_dir.glob("*.nbi")) + list(cache_dir.glob("*.nbc")):
                    path.unlink(missing_ok=True)
                    deleted += 1
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache_dir / f"{_STAMP_NAME}.{os.getpid()}.tmp"
            tmp.write_text(fingerprint)
            os.replace(tmp, stamp)
        except OSError:
            continue
    return deleted


def njit(*args, **kwargs):
    """``numba.njit`` with the project's policy (:data:`JIT_OPTIONS`).

    Extra keyword arguments (``inline="always"`` for small helpers, see the module
    docstring) are allowed, but the policy keys in :data:`JIT_OPTIONS` may not be overridden.
    """
    clash = set(kwargs) & set(JIT_OPTIONS)
    if clash:
        raise TypeError(f"jit option(s) {sorted(clash)} are fixed by febm_ref._numba.jit.JIT_OPTIONS")
    options = {**JIT_OPTIONS, **kwargs}
    if args and callable(args[0]) and len(args) == 1:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def discard_stale_package_caches() -> int:
    """:func:`discard_stale_caches` for the kernels of the package (:mod:`febm_ref._numba`)."""
    return discard_stale_caches(Path(__file__).resolve().parent)
