"""The golden-file schema: format name, version, file list and per-quantity tolerances.

A golden set is a directory::

    manifest.json            format, versions, seed, the section list, sha256 + size of every file
    <section>.json           metadata, tolerances and the list of cases of one section
    <section>.npz            the arrays the cases refer to (uncompressed, float64/int64)

Every JSON file carries ``format``, ``schema_version``, ``febm_ref_version`` and ``seed``.
A *case* is one call of one adapter function (see :mod:`febm_ref.conformance.adapter`)::

    {"id": "kl/g_data", "quantity": "g_data", "function": "divergence_map",
     "args": {"name": "kl", "params": {}, "quantity": "g_data", "x": {"array": "kl/s"}},
     "output": null, "expected": {"array": "kl/g_data"}}

``args`` lists the arguments in the positional order of the adapter function; a value of the
form ``{"array": KEY}`` stands for the array ``KEY`` of the section's NPZ file (also inside
nested objects), every other JSON value is passed as is. ``output`` selects an element of a
tuple-valued result (``null`` for a single result). ``expected`` is ``{"array": KEY}`` or
``{"value": number}``. ``scale`` (schema 0.2.0; same form as ``expected``) is the first-order
rounding-error scale ``S`` of the expected value, in units of the unit roundoff (see
:mod:`febm_ref.conformance.tolerance`); ``order`` (default 1) and ``limit`` (default none)
refine it. A case with ``"match": "unordered_rows"`` compares the rows of
a result whose row order is not canonical (eigenvalues): each expected row is paired with
the nearest unused actual row before comparing. JSON numbers are written with Python's shortest round-trip ``repr``, so
they are exact float64 values, and ``Infinity``/``-Infinity`` (Python's JSON extension)
stand for +-inf.

Comparison (:func:`febm_ref.conformance.tolerance.compare`; :func:`within_tolerance` is the
float64 special case without scales): an element passes iff it equals an infinite expected
value exactly, or is finite with ``|actual - expected| <= max(atol + rtol |expected|,
C u S + tiny)`` for the unit roundoff ``u`` of the checked precision; NaN never passes. The
*error ratio* ``|actual - expected| / (atol + rtol * |expected|)`` is what the
checker reports (``<= 1`` passes).

Why these tolerances
--------------------
These are the float64 floors. In any precision (float32, bfloat16, ...) the allowed error is
the larger of the floor and ``C u S``, with ``S`` the per-case rounding-error scale
(:mod:`febm_ref.conformance.tolerance`, :mod:`febm_ref.conformance.error_bounds`). A
floor is the error a *correct* float64 implementation can
legitimately have, given the conditioning of the quantity, with a margin of ~10-100: tight
enough that a wrong formula (a missing term, a wrong constant, float32 arithmetic) fails by
orders of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMAT = "febm-ref-golden"
SCHEMA_VERSION = "0.2.0"
"""Bumped when a file, key, argument order or tolerance meaning changes incompatibly.
0.2.0 (febm-ref 0.2.0; "1" before): per-case rounding-error ``scale`` (precision-aware
tolerances, see :mod:`febm_ref.conformance.tolerance`), optional ``order`` and ``limit``; sections
``estimator`` and ``sampler_step``; the manifest records ``source_revision``."""

SECTIONS = ("catalogue", "gaussians", "mlp", "objective", "langevin", "optima", "convergence",
            "estimator", "sampler_step")
"""All sections the schema knows, in file order. A golden set may omit sections whose
reference module is not part of this febm-ref version (the manifest lists those present)."""

SECTION_STREAMS = {name: index for index, name in enumerate(SECTIONS)}
"""Each section draws its random inputs from ``np.random.default_rng([seed, index])``, so
adding a section never changes the inputs of another."""


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|`` element-wise; ``why`` explains it."""

    rtol: float
    atol: float
    why: str

    def as_json(self) -> dict:
        return {"rtol": self.rtol, "atol": self.atol, "why": self.why}


_CATALOGUE_G = Tolerance(
    1e-12, 1e-14,
    "Element-wise maps of s; the reference is accurate to a few ulps (tested against 80-digit "
    "mpmath). The largest legitimate relative error is that of exp(c s) for |c s| <= 1050, "
    "about |c s| eps = 2.3e-13 (the product c*s is rounded). atol 1e-14 admits implementations "
    "that evaluate a map through O(1) intermediate terms where its value crosses 0 "
    "(e.g. log 2 + s - softplus(s) at s ~ 1e-9).")

TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "catalogue": {
        "f": Tolerance(1e-12, 1e-14,
                       "f(u) on u in [1e-12, 1e12]; few-ulp reference. atol 1e-14 because f "
                       "vanishes quadratically at u = 1 and an implementation that forms "
                       "u^a - 1 - a(u - 1) directly loses relative (not absolute) accuracy there."),
        "f_prime": Tolerance(1e-12, 1e-14, "f'(u): same reasoning as f."),
        "f_double_prime": Tolerance(1e-12, 0.0, "f''(u) is a product of powers of u: no cancellation."),
        "conjugate": Tolerance(
            1e-11, 1e-14,
            "f*(t) at t = f'(u), u in [1e-3, 1e3] (the range of f', where f* is unambiguous; "
            "outside it conventions differ). Its condition number |t u / f*(t)| reaches 500 "
            "(Neyman near u = 1e-3), so a correct evaluation can be off by ~500 eps = 1.1e-13."),
        "g_data": _CATALOGUE_G,
        "g_model": _CATALOGUE_G,
        "g_data_prime": _CATALOGUE_G,
        "g_model_prime": _CATALOGUE_G,
    },
    "gaussians": {
        "closed_form": Tolerance(
            1e-10, 0.0,
            "Closed forms (trace / Mahalanobis / log-det, and log of the Gaussian power integral) "
            "of well-conditioned pairs (cond <= 30): a textbook implementation using inverses "
            "and log-determinants is accurate to ~1e-13 relative; +inf where the integral "
            "diverges must be returned as +inf."),
        "jensen_shannon": Tolerance(
            1e-8, 0.0,
            "No closed form: the reference is adaptive quadrature of q f(p/q) in log space (1-D "
            "and 2-D only) with an estimated error below 1e-10 relative; 1e-8 admits any "
            "careful quadrature."),
    },
    "mlp": {
        "energy": Tolerance(1e-11, 1e-13,
                            "Forward pass of a small MLP with O(1) weights: rounding ~ depth x width x "
                            "eps relative to the magnitude of the summands; atol covers energies "
                            "near 0."),
        "grad_x": Tolerance(1e-11, 1e-13, "Backward pass: same reasoning as energy."),
        "grad_params": Tolerance(1e-11, 1e-13,
                                 "Per-sample parameter gradients (one row per input), same "
                                 "reasoning as energy."),
    },
    "objective": {
        "energy_grad": Tolerance(
            1e-9, 1e-12,
            "Batch means of products of maps of r = H + E (D13): r itself carries ~1e-15 "
            "absolute error, the maps amplify it by |g'/g| <= e^{2|r|}, and the covariance "
            "term <g dE> - <g><dE> cancels; 1e-9 relative (atol 1e-12 for near-zero "
            "components) is ~1e4 eps per term. Forgetting the covariance (score) term, a "
            "sign, or the l2 term changes the result at O(1)."),
        "critic_grad": Tolerance(1e-9, 1e-12, "Same reasoning as energy_grad (D13, D14)."),
    },
    "langevin": {
        "trajectory": Tolerance(
            1e-10, 1e-12,
            "K steps of an explicit map whose Lipschitz constant is ~1 + eps |Hess E|: "
            "rounding of order 1e-15 per step grows at most geometrically over the few steps "
            "stored; 1e-10 leaves a wide margin. The noise is pre-drawn, so the trajectory is "
            "deterministic."),
    },
    "optima": {
        "optimum": Tolerance(
            1e-6, 1e-8,
            "The reference locates the minimiser to ~1e-8 relative (measured: the Neyman and "
            "alpha(-1) optima, which coincide mathematically, agree to 3e-9; squared Hellinger "
            "and alpha(0.5) to 8e-9), and any converged optimiser of an accurate quadrature "
            "does as well; 1e-6 leaves a margin of 100 while the optima of different "
            "divergences differ at 1e-1."),
        "divergence_at_optimum": Tolerance(
            1e-9, 1e-12,
            "The value at the optimum is insensitive (to second order) to the location error, "
            "so it carries the quadrature accuracy (~1e-12 relative) plus a margin."),
    },
    "estimator": {
        "weights": Tolerance(
            1e-12, 0.0,
            "Per-sample weights: maps of r = h + e divided by the batch size (D13, D14). The "
            "float64 floor is the catalogue's few-ulp accuracy; the per-element running error "
            "bound (input rounding of e and h, g' and g'' chain, the (n - 1) sum |g| of the "
            "covariance mean) sets the tolerance where it is larger, in every precision."),
        "loss": Tolerance(
            1e-12, 0.0,
            "The objective value L = <g_data(r+)> - <g_model(r-)> and the two losses: batch "
            "means of the catalogue maps; floor as for the weights, plus the running bound of "
            "the two means (cancellation between them included)."),
    },
    "sampler_step": {
        "step": Tolerance(
            1e-14, 0.0,
            "One explicit Langevin step from given x, gradient and noise: three products and "
            "two additions, so a few ulps of the magnitudes involved (the running bound)."),
    },
    "convergence": {
        "jacobian": Tolerance(
            1e-9, 1e-12,
            "D17 Jacobian of the 1-D Gaussian toy from closed-form (Isserlis) moments; entries "
            "are O(1) rational functions of (mu, sigma) times f''(1), so a correct float64 "
            "evaluation (closed form, exact quadrature or autodiff) agrees to ~1e-14; atol "
            "for the structurally zero entries. Finite-difference Jacobians (error ~1e-9) are "
            "not accurate enough: use autodiff or closed forms."),
        "eigenvalues": Tolerance(
            1e-9, 1e-12,
            "Eigenvalues (rows Re, Im, matched to the nearest expected row since their order is "
            "not canonical) of a 5x5 non-normal Jacobian with well-separated eigenvalues "
            "(condition numbers < 10): as accurate as the entries."),
        "step_size_bound": Tolerance(
            1e-9, 0.0, "eta* = min 2|Re lambda|/|lambda|^2, a smooth function of the eigenvalues."),
    },
}


def within_tolerance(actual, expected, tol: Tolerance):
    """Element-wise pass mask and error ratios (see the module docstring).

    Returns
    -------
    ok : ndarray of bool
    ratio : ndarray of float
        ``|a - e| / (atol + rtol |e|)``; 0 where an infinite expected value is matched, +inf
        where a required infinity or a finite value is missed, or ``actual`` is NaN.
    """
    import numpy as np

    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    ratio = np.full(e.shape, np.inf)
    finite = np.isfinite(e)
    infinite_match = ~finite & (a == e)
    ratio[infinite_match] = 0.0
    both = finite & np.isfinite(a)
    allowed = tol.atol + tol.rtol * np.abs(e[both])
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(a[both] - e[both])
        r = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0),
                     np.where(diff == 0, 0.0, np.inf))
    ratio[both] = r
    return ratio <= 1.0, ratio
