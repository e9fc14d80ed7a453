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
"""

from __future__ import annotations

import numba

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's policy (:data:`JIT_OPTIONS`).

    Extra keyword arguments (``parallel=True`` for kernels that loop over chains) are
    allowed, but the policy keys in :data:`JIT_OPTIONS` may not be overridden.
    """
    clash = set(kwargs) & set(JIT_OPTIONS)
    if clash:
        raise TypeError(f"jit option(s) {sorted(clash)} are fixed by febm_ref._jit.JIT_OPTIONS")
    options = {**JIT_OPTIONS, **kwargs}
    if args and callable(args[0]) and len(args) == 1:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
