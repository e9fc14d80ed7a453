"""Run a GIL-free serial kernel over ranges of work items in a few Python threads.

Every jitted kernel is compiled with ``nogil=True`` (:data:`febm_ref._numba.jit.JIT_OPTIONS`),
so Python threads calling it run in parallel. :func:`parallel_ranges` splits ``n_items``
independent work items (chunks of samples, blocks of chains) into one contiguous range per
thread and calls ``run(start, stop)`` for each range; the kernel itself is the serial one.

This replaces ``@njit(parallel=True)`` drivers with ``prange`` loops: such a driver is
compiled on its own (Numba's parfor pass, then the serial kernel compiled into it again),
which cost 2-6 s per driver on a cold start (``_weighted_major_parallel`` alone: 6.3 s,
measured with Numba's compile events), and the serial kernel is needed anyway for batches
below the parallel threshold. The numbers do not depend on the split: each item writes its
own outputs, and the callers add the items' partial sums in item order afterwards.

The number of threads is :func:`numba.get_num_threads` (``NUMBA_NUM_THREADS``,
``numba.set_num_threads``), as it was for ``prange``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Tuple

import numba

_POOLS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}
"""Executors by ``(process id, workers)``: a process forked from one that used a pool inherits
the executor but not its threads (it would wait forever for them), so it makes its own."""


def _pool(n_threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), n_threads)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="febm-ref-kernel")
    return _POOLS[key]


def parallel_ranges(run: Callable[[int, int], None], n_items: int) -> None:
    """``run(start, stop)`` over ``[0, n_items)`` cut into one contiguous range per thread.

    Ranges are as equal as possible (static scheduling, like ``prange``); the calling thread
    runs the first range and waits for the others. An exception in any range is re-raised.
    """
    n_threads = max(1, min(int(numba.get_num_threads()), n_items))
    bounds = [n_items * t // n_threads for t in range(n_threads + 1)]
    if n_threads == 1:
        run(0, n_items)
        return
    futures = [_pool(n_threads - 1).submit(run, bounds[t], bounds[t + 1]) for t in range(1, n_threads)]
    try:
        run(bounds[0], bounds[1])
    finally:
        errors = [future.exception() for future in futures]  # waits: no range outlives the call
    for error in errors:
        if error is not None:
            raise error
