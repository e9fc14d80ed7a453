"""Numerical checks of the f-EBM theory (docs/theory.md), run by ``febm-ref verify``.

Each ``check_*`` module registers functions that return a
:class:`febm_ref.verification.registry.Measurement`; see :mod:`febm_ref.verification.registry`.
"""

from febm_ref.verification.registry import Measurement, register

__all__ = ["Measurement", "register"]
