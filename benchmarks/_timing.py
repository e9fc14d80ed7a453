"""Timing helpers shared by the benchmarks: best-of-repeats wall time and markdown tables.

Benchmarks report *ratios against peers measured in the same run*; absolute numbers
depend on the machine and its load. Never use these in tests.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence


def best_time(function: Callable[[], object], *, min_seconds: float = 0.2, repeats: int = 5) -> float:
    """Best (smallest) mean seconds per call over ``repeats`` rounds of >= ``min_seconds`` each."""
    function()  # warm-up (compilation, caches)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= 1 << 20:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(repeats - 1):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
