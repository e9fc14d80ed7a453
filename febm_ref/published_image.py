"""The published *image* code's exponent clipping, as an explicit, named variant of the catalogue's
``g`` maps (issue 16; the 1-D script's stabilisations live in :mod:`febm_ref.published`).

What the image code does (``image_generation/f_divergence.py`` and ``train_febm.py`` of
github:ermongroup/f-EBM, read at commit ``19e4740``): every exponential inside the maps of D7 is
``stable_exp(x) = exp(clip(x, -5, 5))``, and TensorFlow differentiates the clip (its gradient is 0
where ``x`` is outside ``[-5, 5]``, 1 inside and at the bounds). With ``e_c(x) = exp(clip(x, -c, c))``,
``m_c(x) = 1[-c <= x <= c]`` and ``r = H_omega + E_theta`` (the same ``r`` as D7):

============================  ====================================  ==================================
divergence                    ``g_data(r)`` (``grad_exp``)           ``g_model(r)`` (``conjugate_grad_exp``)
============================  ====================================  ==================================
``kl``                        ``1 + r`` (not clipped)                ``e_c(r)``
``reverse_kl``                ``-e_c(-r)``                           ``r - 1`` (not clipped)
``jensen_shannon``            ``log 2 + r - log(1 + e_c(r))``        ``-log 2 + log(1 + e_c(r))``
``squared_hellinger``         ``1 - e_c(-r/2)``                      ``e_c(r/2) - 1``
``pearson_chi2``              ``2 (e_c(r) - 1)``                     ``e_c(2r) - 1``
============================  ====================================  ==================================

The derivatives are those of the clipped maps (what autodiff of the image code computes), e.g.
``g_model'(r) = e_c(r) m_c(r)`` for ``kl`` and ``g_data'(r) = 0.5 e_c(-r/2) m_c(-r/2)`` for
``squared_hellinger``. Inside ``|argument| <= c`` every map equals the catalogue's (up to rounding:
``log(1 + e)`` and ``exp(x) - 1`` are the image code's forms, not ``softplus`` / ``expm1``); outside,
the objective is a different one, whose optimum is not ``argmin D_f``. The clip is therefore never
applied unless asked for (``exp_clip`` of :class:`febm_ref.experiments.fit2d.Experiment2DConfig`).
The estimator (D13 with the covariance term, D14 l2 terms) is unchanged: only the maps are clipped,
exactly as in the image code's ``loss_dis`` / ``loss_model``.
"""

from __future__ import annotations

import math

import numpy as np

from febm_ref._validation import check_real_scalar
from febm_ref.divergences import Divergence, get_divergence

__all__ = ["ClippedImageCodeDivergence", "clipped_divergence", "IMAGE_CODE_CLIP", "CLIPPED_DIVERGENCES"]

IMAGE_CODE_CLIP = 5.0
"""The bound ``c`` of ``stable_exp`` in the image code."""
CLIPPED_DIVERGENCES = ("kl", "reverse_kl", "jensen_shannon", "squared_hellinger", "pearson_chi2")
"""The divergences that the image code defines (``get_divergence_funcs``)."""
LOG2 = math.log(2.0)


class ClippedImageCodeDivergence(Divergence):
    """The image code's clipped ``g`` maps of ``base`` (module docstring: table and derivatives).

    Only the four maps of D7 are defined (all that the estimator D13/D14 uses); ``f``, the
    conjugate and the perspective are those of an *unclipped* divergence and are refused.

    Parameters
    ----------
    base : str
        One of :data:`CLIPPED_DIVERGENCES`.
    clip : float
        ``c > 0`` of ``exp(clip(x, -c, c))``; the image code uses 5.
    """

    def __init__(self, base: str, clip: float = IMAGE_CODE_CLIP):
        if base not in CLIPPED_DIVERGENCES:
            raise ValueError(f"the image code clips only {CLIPPED_DIVERGENCES}, got {base!r}")
        self.base = get_divergence(base)
        self.clip = check_real_scalar(clip, "clip", positive=True)
        self.name = base
        self.f_double_prime_at_one = self.base.f_double_prime_at_one

    @property
    def label(self) -> str:
        return f"{self.name}+exp_clip({self.clip:g})"

    def _e(self, x):
        return np.exp(np.clip(x, -self.clip, self.clip))

    def _m(self, x):
        return ((x >= -self.clip) & (x <= self.clip)).astype(np.float64)

    def _g_data(self, s):
        n = self.name
        if n == "kl":
            return 1.0 + s
        if n == "reverse_kl":
            return -self._e(-s)
        if n == "jensen_shannon":
            return LOG2 + s - np.log(1.0 + self._e(s))
        if n == "squared_hellinger":
            return 1.0 - self._e(-0.5 * s)
        return 2.0 * (self._e(s) - 1.0)

    def _g_model(self, s):
        n = self.name
        if n == "kl":
            return self._e(s)
        if n == "reverse_kl":
            return s - 1.0
        if n in ("jensen_shannon",):
            return -LOG2 + np.log(1.0 + self._e(s))
        if n == "squared_hellinger":
            return self._e(0.5 * s) - 1.0
        return self._e(2.0 * s) - 1.0

    def _g_data_prime(self, s):
        n = self.name
        if n == "kl":
            return np.ones_like(s)
        if n == "reverse_kl":
            return self._e(-s) * self._m(-s)
        if n == "jensen_shannon":
            e = self._e(s)
            return 1.0 - e / (1.0 + e) * self._m(s)
        if n == "squared_hellinger":
            return 0.5 * self._e(-0.5 * s) * self._m(-0.5 * s)
        return 2.0 * self._e(s) * self._m(s)

    def _g_model_prime(self, s):
        n = self.name
        if n == "kl":
            return self._e(s) * self._m(s)
        if n == "reverse_kl":
            return np.ones_like(s)
        if n == "jensen_shannon":
            e = self._e(s)
            return e / (1.0 + e) * self._m(s)
        if n == "squared_hellinger":
            return 0.5 * self._e(0.5 * s) * self._m(0.5 * s)
        return 2.0 * self._e(2.0 * s) * self._m(2.0 * s)

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self.label} defines only the g maps of D7 (the estimator's); f, its conjugate "
                        f"and the perspective are those of the unclipped {self.name!r}: use get_divergence")

    _f = _f_core = _f_prime = _f_double_prime = _conjugate = _perspective = _refuse


def clipped_divergence(name: str, clip: float = IMAGE_CODE_CLIP) -> ClippedImageCodeDivergence:
    """:class:`ClippedImageCodeDivergence` of ``name`` with bound ``clip``."""
    return ClippedImageCodeDivergence(name, clip)
