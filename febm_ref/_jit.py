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
  not use; the ``parallel=True`` variants are separate and compiled only when called);
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
  writeable as :func:`febm_ref._kernels.read_only` makes ``params`` and ``sizes``).
"""

from __future__ import annotations

import numba

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's policy (:data:`JIT_OPTIONS`).

    Extra keyword arguments (``parallel=True`` for kernels that loop over chains,
    ``inline="always"`` for small helpers, see the module docstring) are allowed, but the
    policy keys in :data:`JIT_OPTIONS` may not be overridden.
    """
    clash = set(kwargs) & set(JIT_OPTIONS)
    if clash:
        raise TypeError(f"jit option(s) {sorted(clash)} are fixed by febm_ref._jit.JIT_OPTIONS")
    options = {**JIT_OPTIONS, **kwargs}
    if args and callable(args[0]) and len(args) == 1:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
