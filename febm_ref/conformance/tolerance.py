"""Precision-aware comparison of an adapter's result with a golden value.

Every golden case may carry, next to its expected value ``e``, a **rounding-error scale**
``S`` (same shape, computed by the reference in float64, :mod:`.error_bounds`): a
first-order running error bound in the style of Higham (*Accuracy and Stability of
Numerical Algorithms*, ch. 3), in units of the unit roundoff, that covers

* the rounding of the inputs to the implementation's precision (condition number of the
  quantity with respect to its inputs: ``sum_k |d y / d x_k| |x_k|``),
* the rounding of every operation of a straightforward algorithm (``(m - 1) sum |t_i|``
  for a sum of ``m`` terms, whatever the summation order; ``|W| |a| + |b|`` per layer of
  an MLP; ``K_FN |y|`` per elementary function; the derivative chain of a gradient; the
  per-step amplification ``|I - (eps/2) Hess E|`` of a Langevin trajectory).

For a precision with unit roundoff ``u`` the allowed error of an element is::

    allowed = max(atol + rtol |e|,  C u^order S + tiny)

* ``atol + rtol |e|`` is the float64 tolerance of the golden file (a floor: the float64
  tolerances of febm-ref 0.1 are unchanged), ``C = SAFETY`` (second-order terms and the
  evaluation of the bound itself), ``order`` is 1 except for minimisers (``1/2``: a
  minimum located from an objective with rounding error ``delta`` is off by
  ``sqrt(2 delta / lambda_min)``), ``tiny`` the smallest normal number of the precision
  (gradual underflow to 0 is correct).
* An element whose expected magnitude exceeds the precision's largest finite number passes
  with the infinity of the same sign (overflow is the correct result there) or a value
  within tolerance; such elements are counted as "beyond range".
* A case may state a ``limit``: elements whose allowed error exceeds it are not compared
  (the bound is no longer informative there, e.g. the late steps of a long float32
  trajectory); the row reports how many were left out.
* Expected infinities must be returned exactly; NaN never passes.

Precisions: ``float64`` (``u = 2^-53``), ``float32`` (``2^-24``), ``bfloat16`` (``2^-8``),
``float16`` (``2^-11``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Precision", "PRECISIONS", "SAFETY", "K_FN", "Comparison", "compare", "precision_of",
           "resolve_precision"]

SAFETY = 2.0
"""``C``: the allowed error is ``C u S``. ``S`` is already a worst-case first-order bound, so
``C`` only covers the second-order terms and the rounding of the bound itself."""

K_FN = 4.0
"""Relative error, in units of ``u``, allowed for one elementary function (exp, log, log1p,
tanh, sigmoid, softplus, sqrt, ...): 2 ulps, what vectorised float32 libraries (XLA, SLEEF,
MKL VML) guarantee; correctly rounded libraries need 1."""


@dataclass(frozen=True)
class Precision:
    """A floating-point format: unit roundoff, smallest normal, largest finite number."""

    name: str
    unit_roundoff: float
    tiny: float
    max: float


PRECISIONS = {
    "float64": Precision("float64", 2.0 ** -53, float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).max)),
    "float32": Precision("float32", 2.0 ** -24, float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)),
    "bfloat16": Precision("bfloat16", 2.0 ** -8, float(np.finfo(np.float32).tiny), 3.3895313892515355e38),
    "float16": Precision("float16", 2.0 ** -11, float(np.finfo(np.float16).tiny), float(np.finfo(np.float16).max)),
}
"""Precision name -> :class:`Precision` (``--precision`` choices besides ``auto``)."""


def resolve_precision(name) -> Precision:
    """:class:`Precision` from its name (or a Precision); ValueError naming the choices."""
    if isinstance(name, Precision):
        return name
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (or 'auto' for check), "
                         f"got {name!r}")
    return PRECISIONS[name]


def precision_of(result) -> Optional[str]:
    """The precision name of a returned array / tensor / tuple of them (the lowest precision
    found), or ``None`` if no floating dtype is recognisable (Python floats: float64)."""
    items = result if isinstance(result, (tuple, list)) else (result,)
    found = []
    for item in items:
        dtype = getattr(item, "dtype", None)
        if dtype is None:
            continue
        text = str(dtype).replace("torch.", "")
        if "bfloat16" in text:
            found.append("bfloat16")
        elif text in ("float16", "half"):
            found.append("float16")
        elif text in ("float32", "float"):
            found.append("float32")
        elif text in ("float64", "double"):
            found.append("float64")
    order = ("float16", "bfloat16", "float32", "float64")
    for name in order:
        if name in found:
            return name
    return None


@dataclass
class Comparison:
    """Element-wise outcome of :func:`compare`.

    ``ok`` and ``ratio`` (``|a - e| / allowed``, ``<= 1`` passes) cover every element;
    elements left out (``compared`` False) have ``ok`` True and ratio 0.
    """

    ok: np.ndarray
    ratio: np.ndarray
    compared: np.ndarray
    n_beyond_range: int
    allowed: np.ndarray

    @property
    def n_not_compared(self) -> int:
        return int(np.sum(~self.compared))


def compare(actual, expected, *, rtol: float, atol: float, precision="float64", scale=None,
            order: float = 1.0, limit: Optional[float] = None) -> Comparison:
    """Compare ``actual`` with ``expected`` in ``precision`` (see the module docstring).

    Parameters
    ----------
    actual, expected : array_like
        Same shape; converted to float64.
    rtol, atol : float
        The float64 tolerance of the golden file (the floor of the allowed error).
    precision : str or Precision
    scale : array_like, optional
        The rounding-error scale ``S`` of the golden case (broadcast to ``expected``);
        None: only ``atol + rtol |e|`` (golden sets of schema 1).
    order : float
        Exponent of ``u`` (1, or 0.5 for minimisers).
    limit : float, optional
        Elements whose allowed error exceeds ``limit`` are not compared.
    """
    prec = resolve_precision(precision)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(all="ignore"):
        allowed = atol + rtol * np.abs(e)
        if scale is not None:
            s = np.broadcast_to(np.asarray(scale, dtype=np.float64), e.shape)
            allowed = np.maximum(allowed, SAFETY * prec.unit_roundoff ** order * s + prec.tiny)
        allowed = np.where(np.isfinite(e), allowed, 0.0)
        compared = np.ones(e.shape, dtype=bool)
        if limit is not None:
            compared = ~(allowed > limit)
        finite = np.isfinite(e)
        ratio = np.full(e.shape, np.inf)
        ratio[~finite & (a == e)] = 0.0
        both = finite & np.isfinite(a)
        diff = np.abs(a - e)
        ratio = np.where(both, np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0),
                                        np.where(diff == 0, 0.0, np.inf)), ratio)
        beyond = finite & (np.abs(e) > prec.max) & np.isinf(a) & (np.sign(a) == np.sign(e))
        ratio = np.where(beyond, 0.0, ratio)
        ratio = np.where(np.isnan(a), np.inf, ratio)
    ratio = np.where(compared, ratio, 0.0)
    ok = ratio <= 1.0
    return Comparison(ok, ratio, compared, int(np.sum(beyond & compared)), allowed)


def case_scale(case: dict, arrays: dict):
    """The ``scale`` of a golden case as an array (None for schema-1 cases without one)."""
    ref = case.get("scale")
    if ref is None:
        return None
    return arrays[ref["array"]] if "array" in ref else np.asarray(ref["value"], dtype=np.float64)


def compare_case(actual, expected, case: dict, arrays: dict, *, rtol: float, atol: float,
                 precision="float64") -> Comparison:
    """:func:`compare` with the ``scale``, ``order`` and ``limit`` of a golden ``case``
    (``arrays``: the section's NPZ arrays). The one call the checker makes per case."""
    return compare(actual, expected, rtol=rtol, atol=atol, precision=precision,
                   scale=case_scale(case, arrays), order=float(case.get("order", 1.0)),
                   limit=case.get("limit"))


def describe_left_out(comparison: Comparison, precision: str) -> str:
    """A short note for a row: values beyond the precision's range, values not compared."""
    notes = []
    if comparison.n_beyond_range:
        notes.append(f"{comparison.n_beyond_range} value(s) beyond the {precision} range returned as inf")
    if comparison.n_not_compared:
        mask = comparison.compared
        if mask.ndim >= 2:  # trajectories (K, n, d): the first step left out
            first = int(np.nonzero(~np.all(mask.reshape(mask.shape[0], -1), axis=1))[0][0])
            compared = f"compared on steps 1..{first}" if first else "no step compared"
            notes.append(f"{compared} of {mask.shape[0]} (the {precision} bound exceeds the "
                         "case's limit from there on)")
        else:
            notes.append(f"{comparison.n_not_compared} value(s) not compared (the {precision} bound "
                         "exceeds the case's limit)")
    return "; ".join(notes)
