"""febm-ref: reference implementation of f-EBM (energy-based models trained by
f-divergence minimisation; Yu, Song, Song & Ermon, ICML 2020).

The maths is specified in docs/theory.md (equation labels D1-D17 are cited throughout).
The modules form layers, lowest first: base utilities -> mathematics (divergences, models and
their Numba kernels, objectives) -> samplers -> training (Algorithm 1: ``training/steps.py``) ->
experiments -> conformance | verification -> commands/cli; no import runs back up a layer
(:mod:`febm_ref._layers`, checked by tests/test_layers.py).
"""

__version__ = "0.2.0"

from febm_ref.divergences import DIVERGENCE_NAMES, Divergence, get_divergence  # noqa: E402

__all__ = ["DIVERGENCE_NAMES", "Divergence", "get_divergence", "__version__"]
