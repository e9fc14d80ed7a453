"""Input checks shared by the library: every failure is a ValueError/TypeError whose
message names the argument, says what was wrong and what to pass instead.

Validation happens once, at the public boundary (a function or class a user calls); inner
routines and the Numba kernels trust their (already validated) arguments. The checks are
grouped by what they validate:

* arrays            :func:`as_float_array`, :func:`check_vector`, :func:`check_same_length`;
* scalars           :func:`check_real_scalar`, :func:`check_in_interval`, :func:`check_positive_int`,
  :func:`check_nonnegative_int`;
* choices/objects   :func:`check_choice`, :func:`check_callable`, :func:`check_generator`,
  :func:`check_model`, :func:`check_interval`.

Classes of bad input and the error each gives: non-numeric, object or complex values and
``None`` where numbers are expected -> TypeError (complex is never silently cast to its real
part); a wrong rank or shape (no broadcasting of a shorter array), an empty array where data are
needed, NaN/inf, and values outside the domain -> ValueError.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_float_array(value, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   allow_nonfinite: bool = False, allow_inf: bool = False,
                   shape: tuple | None = None, nonempty: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array, checking its type, rank, shape and finiteness.

    Parameters
    ----------
    value : array_like
    name : str
        The argument's name, used in every message.
    ndim : int or tuple of int, optional
        Allowed ranks.
    allow_nonfinite : bool
        Accept NaN and +-inf (the caller handles them).
    allow_inf : bool
        Accept +-inf but not NaN.
    shape : tuple, optional
        The exact shape required; an entry ``None`` matches any length. No broadcasting: a
        ``(1,)`` array is not accepted where ``(3,)`` is required.
    nonempty : bool
        Reject an array with no elements.

    Raises
    ------
    TypeError
        If ``value`` is not an array of real numbers (strings, objects, ``None``, complex).
    ValueError
        If the rank or shape is wrong, the array is empty (``nonempty``), or it holds NaN/inf
        (unless allowed).
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested sequences and other non-arrays
        raise TypeError(f"{name} must be array-like of real numbers, got {type(value).__name__} "
                        f"{_describe(value)}") from exc
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real; got a complex array (pass the real part explicitly "
                        f"if that is what you mean)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__} "
                        f"{_describe(value)} (dtype {arr.dtype})")
    arr = arr.astype(np.float64, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                             f"got shape {arr.shape}")
    if shape is not None:
        shape = tuple(shape)
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {want}, got shape {arr.shape} "
                             "(arrays are never broadcast)")
    if nonempty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not allow_nonfinite:
        bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} contains a non-finite value ({float(arr[where])!r} at index {where}); "
                             f"pass {'numbers that are not NaN' if allow_inf else 'finite numbers'}")
    return arr


def check_vector(value, name: str, length: int | None = None, *, allow_nonfinite: bool = False) -> np.ndarray:
    """A 1-D float64 array of exactly ``length`` entries (any length if None; never broadcast).

    A float64 C-contiguous array of the right shape is returned as is (no copy), so this is
    cheap enough for a per-iteration public call such as an optimiser step.
    """
    if (type(value) is np.ndarray and value.dtype == np.float64 and value.ndim == 1
            and (length is None or value.shape[0] == length)):
        if not allow_nonfinite and not np.isfinite(value).all():
            as_float_array(value, name)  # raises, naming the first bad entry
        return value
    return as_float_array(value, name, ndim=1, shape=None if length is None else (length,),
                          allow_nonfinite=allow_nonfinite)


def check_real_scalar(value, name: str, *, positive: bool = False,
                      nonnegative: bool = False) -> float:
    """Return ``value`` as a finite Python float, raising a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        kind = "complex" if isinstance(value, (complex, np.complexfloating)) else type(value).__name__
        raise TypeError(f"{name} must be a real number, got {_describe(value)} ({kind})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    if positive and not out > 0:
        raise ValueError(f"{name} must be > 0, got {out}")
    if nonnegative and not out >= 0:
        raise ValueError(f"{name} must be >= 0, got {out}")
    return out


def check_in_interval(value, name: str, lower: float, upper: float, *, closed: str = "[]") -> float:
    """A finite real ``value`` in the interval from ``lower`` to ``upper``.

    ``closed`` is two characters, ``[`` / ``(`` for the lower end and ``]`` / ``)`` for the upper
    end (``"[)"`` is ``lower <= value < upper``).
    """
    out = check_real_scalar(value, name)
    lo_ok = out >= lower if closed[0] == "[" else out > lower
    hi_ok = out <= upper if closed[1] == "]" else out < upper
    if not (lo_ok and hi_ok):
        raise ValueError(f"{name} must be in {closed[0]}{lower}, {upper}{closed[1]}, got {out}")
    return out


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` (bools, floats and strings are rejected)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {_describe(value)} ({type(value).__name__})")
    out = int(value)
    if out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def check_nonnegative_int(value, name: str) -> int:
    """An int >= 0."""
    return check_positive_int(value, name, minimum=0)


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices`` (strings), else ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {_describe(value)}; choose one of {tuple(choices)}")
    return value


def check_callable(value, name: str, signature: str) -> None:
    """TypeError unless ``value`` is callable (``signature`` says how it is called)."""
    if not callable(value):
        raise TypeError(f"{name} must be a callable {signature}, got {type(value).__name__}")


def check_interval(pair, name: str) -> tuple[float, float]:
    """A pair ``(lo, hi)`` of finite reals with ``lo < hi``."""
    if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise TypeError(f"{name} must be a pair (lo, hi) of finite numbers, got {_describe(pair)}")
    lo = check_real_scalar(pair[0], f"{name} lower bound")
    hi = check_real_scalar(pair[1], f"{name} upper bound")
    if not lo < hi:
        raise ValueError(f"{name} must have lo < hi, got ({lo}, {hi})")
    return lo, hi


def check_generator(rng, name: str = "rng") -> np.random.Generator:
    """Require an explicit ``np.random.Generator`` (no global seeding anywhere)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator, e.g. np.random.default_rng(0); "
                        f"got {type(rng).__name__}")
    return rng


def check_model(model, name: str, dim: int | None = None):
    """An energy-model-like object: ``dim`` and callable ``energy(x)`` (febm_ref.models.energies
    interface); with ``dim`` given, its input dimension must match."""
    if not (isinstance(getattr(model, "dim", None), (int, np.integer))
            and callable(getattr(model, "energy", None))):
        raise TypeError(f"{name} must be an energy model with dim and energy(x) (e.g. "
                        f"febm_ref.models.energies.GaussianEnergy1D or a critic), got {type(model).__name__}")
    if dim is not None and model.dim != dim:
        raise ValueError(f"{name} has input dimension {model.dim}, expected {dim}")
    return model
