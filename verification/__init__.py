"""Numerical checks of the f-EBM theory (docs/theory.md), run by ``febm-ref verify``.

Each ``check_*`` module registers functions that return a
:class:`verification.registry.Measurement`; see :mod:`verification.registry`.
"""

from verification.registry import Measurement, register

__all__ = ["Measurement", "register"]
