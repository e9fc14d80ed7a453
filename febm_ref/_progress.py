"""Progress bars for long work: tqdm on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from typing import Iterable, Optional

from tqdm.auto import tqdm


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None,
             desc: str = "", enabled: Optional[bool] = None, **kwargs):
    """Wrap ``iterable`` in a tqdm bar written to stderr.

    ``enabled=None`` (the default) shows the bar only when stderr is a TTY, so logs,
    CI and ``--json`` output stay clean.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=False, **kwargs)
