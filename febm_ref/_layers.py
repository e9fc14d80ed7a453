"""The layers of the package, lowest first: a module imports only from its own layer or a lower one.

====  ============  ==========================================================================
  0   base          ``_io``, ``_validation``, ``_progress``, ``_layers``, ``_logsumexp``
  1   mathematics   ``divergences``, ``gaussians``, ``targets``, ``optimizers``, ``models/`` and
                    ``_numba/`` (the MLP's layout and its compiled kernels use each other),
                    ``objective``, ``exact_objective``, ``reference_optima``,
                    ``local_convergence``, ``quadrature``; the package ``__init__`` (it
                    re-exports divergences)
  2   samplers      ``samplers/``
  3   training      ``training/`` (Algorithm 1 is ``training/steps.py``), ``published``,
                    ``published_run``, ``published_image``, ``clipped_optima``
  4   experiments   ``experiments/``, ``sweep2d``
  5   references    ``conformance/`` with ``testing`` and ``pytest_plugin``, and
                    ``verification/``: two siblings, neither imports the other (what both need,
                    e.g. the D17 Jacobians of the 1-D Gaussian toy, is ``local_convergence``)
  6   interface     ``commands/``, ``cli``: parse arguments, call a lower layer, print
====  ============  ==========================================================================

``tests/test_layers.py`` parses every module of the package (``ast``, imports inside functions
included) and fails on an import from a higher layer or across siblings, and on a module that
is not placed here: a new module is added to :data:`LAYERS` first.
"""

from __future__ import annotations

from typing import Optional, Tuple

LAYERS: Tuple[Tuple[str, Tuple[Tuple[str, ...], ...]], ...] = (
    ("base", (("_io", "_validation", "_progress", "_layers", "_logsumexp"),)),
    ("mathematics", (("__init__", "divergences", "gaussians", "targets", "optimizers", "models", "_numba",
                      "objective", "exact_objective", "reference_optima", "local_convergence", "quadrature"),)),
    ("samplers", (("samplers",),)),
    ("training", (("training", "published", "published_run", "published_image", "clipped_optima"),)),
    ("experiments", (("experiments", "sweep2d"),)),
    ("references", (("conformance", "testing", "pytest_plugin"), ("verification",))),
    ("interface", (("commands", "cli"),)),
)
"""(layer name, sibling groups of module names relative to ``febm_ref``), lowest layer first.
A name stands for the module and, for a subpackage, everything in it; ``__init__`` is the
package's own ``febm_ref/__init__.py``."""


def place(module: str) -> Optional[Tuple[int, int]]:
    """``(layer index, sibling group index)`` of the dotted ``module`` (``febm_ref`` or
    ``febm_ref.<...>``), or None if :data:`LAYERS` does not place it."""
    if module == "febm_ref":
        relative = "__init__"
    elif module.startswith("febm_ref."):
        relative = module[len("febm_ref."):]
    else:
        return None
    top = relative.split(".")[0]
    for index, (_, groups) in enumerate(LAYERS):
        for group_index, group in enumerate(groups):
            if top in group:
                return index, group_index
    return None


def may_import(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import module ``imported`` (both ``febm_ref.<...>``):
    ``imported`` is in a lower layer, or in the same layer and the same sibling group."""
    a, b = place(importer), place(imported)
    if a is None or b is None:
        raise ValueError(f"not placed in febm_ref._layers.LAYERS: {importer if a is None else imported}")
    return b[0] < a[0] or b == a
