"""Input checks shared by the library: every failure is a ValueError/TypeError whose
message says what was wrong and what to pass instead."""

from __future__ import annotations

import numbers

import numpy as np


def as_float_array(value, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array, checking its rank and finiteness.

    Raises
    ------
    TypeError
        If ``value`` cannot be converted to a real float64 array (strings, complex).
    ValueError
        If the rank is not ``ndim`` or the array holds NaN/inf (unless allowed).
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds
        raise TypeError(f"{name} must be array-like of real numbers, got {type(value).__name__}") from exc
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real; got a complex array")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                             f"got shape {arr.shape}")
    if not allow_nonfinite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        where = tuple(int(i) for i in bad[0]) if bad.size else ()
        raise ValueError(f"{name} contains a non-finite value ({arr[where] if where else arr!r} "
                         f"at index {where}); pass finite numbers")
    return arr


def check_real_scalar(value, name: str, *, positive: bool = False,
                      nonnegative: bool = False) -> float:
    """Return ``value`` as a finite Python float, raising a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if nonnegative and not out >= 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    out = int(value)
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def check_generator(rng, name: str = "rng") -> np.random.Generator:
    """Require an explicit ``np.random.Generator`` (no global seeding anywhere)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, e.g. np.random.default_rng(0); "
                        f"got {type(rng).__name__}")
    return rng
