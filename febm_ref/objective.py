"""The f-EBM minibatch estimator (D13), the l2 terms (D14) and the contrastive-divergence
(maximum-likelihood) baseline, written out explicitly (docs/theory.md section 2).

Notation: energy ``E_theta`` (``q_theta ∝ exp(-E_theta)``), critic ``H_omega``, modelled
log ratio (D6) ``r = H_omega + E_theta``, positives ``x+ ~ p``, negatives ``x- ~ q_theta``
(constants: no gradient flows through the sampler), ``<.>`` a batch mean,
``dE = grad_theta E_theta``, ``dH = grad_omega H_omega``.

(D8)  ``L_hat = <g_data(r+)> - <g_model(r-)>``

(D13) ``grad_theta L ≈ <g_data'(r+) dE+> - <g_model'(r-) dE-> + <g_model(r-) dE-> - <g_model(r-)><dE->``

      ``grad_omega L ≈ <g_data'(r+) dH+> - <g_model'(r-) dH->``

Every term is a weighted sum of per-sample parameter gradients, so each model needs only
one weighted backward pass per batch (``weighted_grad_params``): the weights of
``dE-`` are ``(-g_model'(r-) + g_model(r-) - <g_model(r-)>) / n-``, the covariance term
``<g dE> - <g><dE>`` being ``sum_i (g_i - <g>) dE_i / n``.

The covariance term (the score term of D1) has expectation ``(1 - 1/n) Cov_q(g_model, dE)``
(bias ``O(1/n)``, as in the published stop-gradient surrogate). ``covariance="halves"``
makes it unbiased: the negatives are split into halves ``A``, ``B`` and each half is
centred by the *other* half's mean,
``0.5 [<g dE>_A - <g>_B <dE>_A] + 0.5 [<g dE>_B - <g>_A <dE>_B]``, whose expectation is
exactly ``Cov_q(g_model, dE)`` because the halves are independent.
``covariance="bessel"`` divides by ``n - 1`` instead of ``n`` (also unbiased).

(D14) optional l2 terms with weight ``lam``: ``lam (<E+^2> + <E-^2>)`` is added to the
energy's loss and ``lam (<H+^2> + <H-^2>)`` to the critic's loss.

Sign conventions of :class:`FEBMGradient`
------------------------------------------
``grad_theta`` is the gradient of the quantity the energy *minimises*,
``L + lam (<E+^2> + <E-^2>)``; ``grad_omega`` is the gradient of the quantity the critic
*maximises*, ``L - lam (<H+^2> + <H-^2>)``. With ``lam = 0`` they are the estimates of
D9 and D10 (the same sign convention as :class:`febm_ref.exact_objective.ExactObjective`).
An optimiser that minimises takes ``+grad_theta`` for theta and ``-grad_omega`` for omega.

Contrastive divergence (maximum likelihood)
-------------------------------------------
``-E_p[log q_theta] = E_p[E_theta] + log Z_theta`` has gradient (D1)
``E_p[dE] - E_q[dE]``, estimated by ``<dE+> - <dE->``. D12: with KL, D9 is
``E_p[dE] - E_q[e^r] E_q[dE]``, which equals the CD gradient at the optimal critic.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from febm_ref._validation import as_float_array, check_choice, check_model, check_real_scalar
from febm_ref.divergences import Divergence, resolve_divergence
from febm_ref.models.energies import EnergyModel

__all__ = [
    "COVARIANCE_ESTIMATORS",
    "FEBMGradient",
    "ModelPass",
    "model_pass",
    "covariance_weights",
    "febm_gradient",
    "febm_critic_gradient",
    "febm_energy_gradient",
    "febm_objective_value",
    "contrastive_divergence_gradient",
]

COVARIANCE_ESTIMATORS = ("batch", "halves", "bessel")
"""Estimators of ``Cov_q(g_model(r), dE)`` in D13 (see the module docstring)."""


class FEBMGradient(NamedTuple):
    """Result of one evaluation of the minibatch estimator.

    Attributes
    ----------
    grad_theta : ndarray (P,)
        Gradient of the energy's loss ``L + lam(<E+^2> + <E-^2>)`` (D13, D14);
        empty for :func:`febm_critic_gradient`.
    grad_omega : ndarray (Q,)
        Gradient of the critic's objective ``L - lam(<H+^2> + <H-^2>)`` (D13, D14; to be
        *ascended*); empty for CD.
    loss : float
        ``L_hat = <g_data(r+)> - <g_model(r-)>`` (D8) for f-EBM; for CD the mean-energy
        gap ``<E+> - <E->`` (the CD surrogate whose gradient is returned).
    diagnostics : dict
        Batch statistics: means of ``r+``, ``r-``, ``exp(r-)`` (``E_q[p/q] = 1`` at the
        optimal critic), the covariance-term estimate's norm, the l2 values.
    """

    grad_theta: np.ndarray
    grad_omega: np.ndarray
    loss: float
    diagnostics: dict


class ModelPass:
    """One forward pass of a model on a batch, and weighted backward passes from it.

    For a Numba-backend :class:`~febm_ref.models.energies.MLPEnergy` the forward activations are
    cached (:class:`febm_ref._numba.batched_mlp.BatchedMLP`), so the backward pass does not
    repeat the forward one; any other model with the ``EnergyModel`` interface falls back
    to ``energy(x)`` and ``weighted_grad_params(x, w)``.

    Parameters
    ----------
    model : EnergyModel
    x : ndarray (n, d), or (n,) in 1-D
    backward : bool
        False when only :attr:`values` are needed (the critic in the energy step of D13):
        a Numba MLP then skips the activation derivatives (same values bit for bit) and
        :meth:`weighted_grad_params` is unavailable.
    """

    def __init__(self, model, x, *, backward: bool = True):
        check_model(model, "model")
        self.model = model
        self.x = x
        self._batched = None
        self._parts = None
        if getattr(model, "backend", None) == "numba" and hasattr(model, "kernel_args"):
            from febm_ref._numba.batched_mlp import BatchedMLP

            self._batched = BatchedMLP(model, model._check_x(x), backward=backward)
            self.values = self._batched.values
        elif hasattr(model, "parts"):  # febm_ref.models.sum_model.SumModel: one pass per part
            self._parts = [ModelPass(p, x, backward=backward) for p in model.parts]
            self.values = sum(p.values for p in self._parts)
        else:
            self.values = model.energy(x)

    def weighted_grad_params(self, w) -> np.ndarray:
        """``sum_i w_i grad_params(x_i)``."""
        if self._batched is not None:
            return self._batched.weighted_grad_params(w)
        if self._parts is not None:
            return np.concatenate([p.weighted_grad_params(w) for p in self._parts])
        return self.model.weighted_grad_params(self.x, w)


def model_pass(model, x, *, backward: bool = True) -> ModelPass:
    """:class:`ModelPass` of ``model`` on ``x`` (shape ``(n, d)``, or ``(n,)`` in 1-D)."""
    return ModelPass(model, x, backward=backward)


def _stack_batches(x_pos, x_neg, dim: int, *, finite_checked: bool = False):
    """``(x_pos (n+, d), x_neg (n-, d), concatenate([x_pos, x_neg]))`` as C-contiguous float64.

    Raises ValueError for a wrong shape, an empty batch or (unless the caller has already
    checked it, ``finite_checked``) a non-finite sample.
    """
    x_pos = as_float_array(x_pos, "x_pos", ndim=(1, 2), allow_nonfinite=finite_checked)
    x_neg = as_float_array(x_neg, "x_neg", ndim=(1, 2), allow_nonfinite=finite_checked)
    if x_pos.ndim == 1:
        x_pos = x_pos[:, None]
    if x_neg.ndim == 1:
        x_neg = x_neg[:, None]
    if x_pos.shape[1] != dim or x_neg.shape[1] != dim:
        raise ValueError(f"x_pos and x_neg must have shape (n, {dim}) for {dim}-dimensional models, "
                         f"got {x_pos.shape} and {x_neg.shape}")
    if x_pos.shape[0] < 1:
        raise ValueError("x_pos must hold at least one positive sample")
    if x_neg.shape[0] < 1:
        raise ValueError("x_neg must hold at least one negative sample")
    return x_pos, x_neg, np.ascontiguousarray(np.concatenate([x_pos, x_neg], axis=0))


def covariance_weights(g, estimator: str = "batch") -> np.ndarray:
    """Weights ``c`` with ``sum_i c_i dE_i`` the estimate of ``Cov_q(g, dE)``.

    ``batch``: ``c_i = (g_i - <g>) / n`` (D13 as written, expectation ``(1 - 1/n) Cov``);
    ``bessel``: ``(g_i - <g>) / (n - 1)``;
    ``halves``: for ``i`` in half ``A``, ``(g_i - <g>_B) / (2 n_A)`` and symmetrically
    (first ``floor(n/2)`` samples form ``A``; unbiased because the halves are independent).

    ``g`` must be a non-empty finite 1-D array (ValueError/TypeError otherwise).
    """
    g = as_float_array(g, "g", ndim=1, nonempty=True)
    return _covariance_weights(g, check_choice(estimator, "covariance estimator", COVARIANCE_ESTIMATORS))


def _covariance_weights(g: np.ndarray, estimator: str) -> np.ndarray:
    """:func:`covariance_weights` on a validated batch (the estimator's hot path)."""
    n = g.shape[0]
    if estimator == "batch":
        return (g - _batch_mean(g)) / n
    if estimator == "bessel":
        if n < 2:
            raise ValueError("covariance='bessel' needs at least 2 negatives")
        return (g - _batch_mean(g)) / (n - 1)
    if estimator == "halves":
        if n < 2:
            raise ValueError("covariance='halves' needs at least 2 negatives")
        h = n // 2
        a, b = g[:h], g[h:]
        return np.concatenate([(a - np.mean(b)) / (2 * h), (b - np.mean(a)) / (2 * (n - h))])
    raise ValueError(f"unknown covariance estimator {estimator!r}; choose one of {COVARIANCE_ESTIMATORS}")


def _check_lam(l2_weight) -> float:
    return check_real_scalar(l2_weight, "l2_weight", nonnegative=True)


def _batch_mean(values: np.ndarray) -> float:
    """``float(np.mean(values))`` of a non-empty 1-D float64 batch: the same number (``np.mean``
    divides this pairwise sum by the count) without the generic dispatch of ``np.mean``."""
    return float(np.add.reduce(values)) / values.shape[0]


_G_MAP_WRAPPERS = (Divergence.g_data, Divergence.g_model, Divergence.g_data_prime, Divergence.g_model_prime)


def _g_maps(div: Divergence, r_pos: np.ndarray, r_neg: np.ndarray):
    """``(g_data(r+), g_model(r-), g_data'(r+), g_model'(r-))`` (D7) on 1-D float64 batches.

    Each public map of :class:`~febm_ref.divergences.Divergence` applies its array method
    (``_g_data`` ...) to a float64 array view of its input with every floating-point warning
    ignored; for a divergence that keeps those wrappers (every catalogue entry) the array
    methods are called here directly under one ``errstate`` (the same numbers, without four
    wrapper calls per batch). A divergence that overrides a public map is called through it.
    """
    cls = type(div)
    if (cls.g_data, cls.g_model, cls.g_data_prime, cls.g_model_prime) != _G_MAP_WRAPPERS:
        with np.errstate(over="ignore", invalid="ignore"):
            return div.g_data(r_pos), div.g_model(r_neg), div.g_data_prime(r_pos), div.g_model_prime(r_neg)
    with np.errstate(all="ignore"):
        return (np.asarray(div._g_data(r_pos), dtype=np.float64), np.asarray(div._g_model(r_neg), dtype=np.float64),
                np.asarray(div._g_data_prime(r_pos), dtype=np.float64),
                np.asarray(div._g_model_prime(r_neg), dtype=np.float64))


def _energy_of_checked(model, x: np.ndarray) -> np.ndarray:
    """``model.energy(x)`` for an ``x`` already validated (C-contiguous finite float64 ``(n, d)``):
    an :class:`~febm_ref.models.energies.EnergyModel` skips its input checks, other models are called as usual."""
    if isinstance(model, EnergyModel):
        return model._energy(x)
    return model.energy(x)


def _weighted_grad_of_checked(model, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``model.weighted_grad_params(x, w)`` for validated ``x`` and a C-contiguous float64 ``w``
    of length ``n`` (computed by the estimator itself)."""
    if isinstance(model, EnergyModel):
        return model._weighted_grad_params(x, w)
    return model.weighted_grad_params(x, w)


def _check_finite(name: str, values) -> None:
    if not np.isfinite(values).all():
        raise FloatingPointError(
            f"{name} is not finite (the modelled log ratio r = H + E is so large that "
            "g(r) overflows); lower the learning rate or add the l2 terms (D14)")


def _check_models(energy, critic) -> None:
    """Both arguments are energy models (``dim``, ``energy(x)``) of one input dimension."""
    check_model(energy, "energy")
    check_model(critic, "critic")
    if energy.dim != critic.dim:
        raise ValueError(f"energy (dim {energy.dim}) and critic (dim {critic.dim}) must share the input dimension")


def _febm_terms(divergence, energy, critic, x_pos, x_neg, *, l2_weight, covariance, alpha,
                critic_pass, want_theta: bool, want_omega: bool) -> FEBMGradient:
    """Validate the arguments of the public estimators, then :func:`febm_terms_checked`."""
    div: Divergence = resolve_divergence(divergence, alpha=alpha)
    lam = _check_lam(l2_weight)
    check_choice(covariance, "covariance estimator", COVARIANCE_ESTIMATORS)
    _check_models(energy, critic)
    x_pos, _, x_all = _stack_batches(x_pos, x_neg, energy.dim)
    return febm_terms_checked(div, energy, critic, x_all, x_pos.shape[0], l2_weight=lam, covariance=covariance,
                              critic_pass=critic_pass, want_theta=want_theta, want_omega=want_omega)


def febm_terms_checked(div: Divergence, energy, critic, x_all: np.ndarray, n_pos: int, *, l2_weight: float,
                       covariance: str, critic_pass=None, energy_values=None, want_theta: bool = True,
                       want_omega: bool = True, want_diagnostics: bool = True) -> FEBMGradient:
    """The estimator D13 (+ D14) on arguments that the caller has validated once.

    The hot path of :func:`febm_ref.training.train`, which checks its configuration once
    and every batch itself; the public functions (:func:`febm_gradient`, ...) validate and
    call this.

    Parameters
    ----------
    div : Divergence
        A resolved divergence object.
    energy, critic : EnergyModel
        Same input dimension ``d``.
    x_all : ndarray (n+ + n-, d)
        ``concatenate([x_pos, x_neg])``: C-contiguous, float64, finite, both parts non-empty.
    n_pos : int
        Number of positives (the first ``n_pos`` rows).
    l2_weight : float
        ``lam >= 0`` of D14.
    covariance : {"batch", "halves", "bessel"}
    critic_pass : ModelPass, optional
        A precomputed :func:`model_pass` of ``critic`` on ``x_all``.
    energy_values : ndarray (n+ + n-,), optional
        ``energy.energy(x_all)`` if the caller has it (the energy is unchanged by critic steps).
    want_theta, want_omega : bool
        Which gradients to form (the other is returned empty); without ``want_omega`` the
        critic is only evaluated (values only, no backward pass).
    want_diagnostics : bool
        False: ``diagnostics`` is an empty dict (saves the log-sum-exp of ``<e^{r-}>``).
    """
    if x_all.ndim != 2 or not 0 < n_pos < x_all.shape[0]:
        raise ValueError(f"febm_terms_checked needs x_all of shape (n+ + n-, d) with 0 < n_pos < n+ + n-, "
                         f"got shape {x_all.shape} and n_pos={n_pos}; use febm_gradient for unchecked input")
    lam = l2_weight
    n_all = x_all.shape[0]
    n_neg = n_all - n_pos
    hp = critic_pass if critic_pass is not None else model_pass(critic, x_all, backward=want_omega)
    e_all = energy_values if energy_values is not None else _energy_of_checked(energy, x_all)
    h_all = hp.values
    r_all = h_all + e_all
    r_pos, r_neg = r_all[:n_pos], r_all[n_pos:]
    gd, gm, gdp, gmp = _g_maps(div, r_pos, r_neg)
    _check_finite("g_data(r+)", gd)
    _check_finite("g_model(r-)", gm)
    _check_finite("g_data'(r+)", gdp)
    _check_finite("g_model'(r-)", gmp)
    loss = _batch_mean(gd) - _batch_mean(gm)
    # D10 weights: g_data'(r+)/n+ on positives, -g_model'(r-)/n- on negatives
    w_omega = np.concatenate([gdp / n_pos, -gmp / n_neg])
    reg_e = reg_h = 0.0
    grad_theta = grad_omega = np.empty(0)
    if want_theta:
        # D13: the same pathwise weights plus the covariance (score) term on the negatives
        w_theta = w_omega.copy()
        w_theta[n_pos:] += _covariance_weights(gm, covariance)
        if lam > 0.0:
            e_pos, e_neg = e_all[:n_pos], e_all[n_pos:]
            reg_e = float(np.mean(e_pos ** 2) + np.mean(e_neg ** 2))
            w_theta = w_theta + 2.0 * lam * np.concatenate([e_pos / n_pos, e_neg / n_neg])
        grad_theta = np.asarray(_weighted_grad_of_checked(energy, x_all, w_theta), dtype=np.float64)
    if want_omega:
        if lam > 0.0:
            h_pos, h_neg = h_all[:n_pos], h_all[n_pos:]
            reg_h = float(np.mean(h_pos ** 2) + np.mean(h_neg ** 2))
            w_omega = w_omega - 2.0 * lam * np.concatenate([h_pos / n_pos, h_neg / n_neg])
        grad_omega = np.asarray(hp.weighted_grad_params(w_omega), dtype=np.float64)
    diagnostics = {}
    if want_diagnostics:
        diagnostics = {
            "mean_r_pos": _batch_mean(r_pos), "mean_r_neg": _batch_mean(r_neg),
            # <e^{r-}> (1 at the optimal critic, D12) from log-sum-exp: +inf if it overflows, never clamped
            "mean_exp_r_neg": float(np.exp(np.logaddexp.reduce(r_neg) - np.log(n_neg))),
            "l2_energy": reg_e, "l2_critic": reg_h,
        }
    return FEBMGradient(grad_theta, grad_omega, loss, diagnostics)


def febm_gradient(divergence, energy, critic, x_pos, x_neg, *, l2_weight: float = 0.0,
                  covariance: str = "batch", alpha=None, critic_pass=None) -> FEBMGradient:
    """The minibatch estimator D13 of ``(grad_theta L, grad_omega L)`` (+ D14 terms).

    Parameters
    ----------
    divergence : Divergence or str
        Catalogue divergence (pass ``alpha=`` for the alpha family by name).
    energy, critic : EnergyModel
        ``E_theta`` and ``H_omega`` (same input dimension).
    x_pos, x_neg : ndarray (n+, d), (n-, d)
        Positives from ``p`` and negatives from ``q_theta`` (treated as constants).
    l2_weight : float
        ``lam`` of D14 (0 disables the l2 terms).
    covariance : {"batch", "halves", "bessel"}
        Estimator of the covariance term (see :func:`covariance_weights`).
    critic_pass : ModelPass, optional
        A precomputed :func:`model_pass` of ``critic`` on ``concatenate([x_pos, x_neg])``
        (saves one forward pass when the caller already has it).

    Returns
    -------
    FEBMGradient

    Raises
    ------
    FloatingPointError
        If ``r`` makes a ``g`` term non-finite (the message names the quantity).
    """
    return _febm_terms(divergence, energy, critic, x_pos, x_neg, l2_weight=l2_weight, covariance=covariance,
                       alpha=alpha, critic_pass=critic_pass, want_theta=True, want_omega=True)


def febm_critic_gradient(divergence, energy, critic, x_pos, x_neg, *, l2_weight: float = 0.0,
                         alpha=None, critic_pass=None) -> FEBMGradient:
    """Only the critic half of D13: ``grad_omega`` of ``L - lam(<H+^2> + <H-^2>)``.

    Cheaper than :func:`febm_gradient` (no energy backward pass); ``grad_theta`` is empty.
    This is the entry point for training a critic alone at fixed ``theta``.
    """
    return _febm_terms(divergence, energy, critic, x_pos, x_neg, l2_weight=l2_weight, covariance="batch",
                       alpha=alpha, critic_pass=critic_pass, want_theta=False, want_omega=True)


def febm_energy_gradient(divergence, energy, critic, x_pos, x_neg, *, l2_weight: float = 0.0,
                         covariance: str = "batch", alpha=None, critic_pass=None) -> FEBMGradient:
    """Only the energy half of D13 (+ D14): ``grad_theta``; the critic is only evaluated
    (no critic backward pass), ``grad_omega`` is empty. Used by alternating updates."""
    return _febm_terms(divergence, energy, critic, x_pos, x_neg, l2_weight=l2_weight, covariance=covariance,
                       alpha=alpha, critic_pass=critic_pass, want_theta=True, want_omega=False)


def febm_objective_value(divergence, energy, critic, x_pos, x_neg, *, alpha=None) -> float:
    """``L_hat = <g_data(r+)> - <g_model(r-)>`` (D8) on a batch; a lower bound (D5) on
    ``D_f(P||Q_theta)`` in expectation for every critic.

    Raises
    ------
    FloatingPointError
        If ``g_data(r+)`` or ``g_model(r-)`` is not finite: the same check and message as
        :func:`febm_gradient` (never an ``inf - inf = nan`` value).
    """
    div = resolve_divergence(divergence, alpha=alpha)
    _check_models(energy, critic)
    x_pos, x_neg, _ = _stack_batches(x_pos, x_neg, energy.dim)
    r_pos = critic.energy(x_pos) + energy.energy(x_pos)
    r_neg = critic.energy(x_neg) + energy.energy(x_neg)
    with np.errstate(over="ignore", invalid="ignore"):
        gd, gm = div.g_data(r_pos), div.g_model(r_neg)
    _check_finite("g_data(r+)", gd)
    _check_finite("g_model(r-)", gm)
    value = float(np.mean(gd) - np.mean(gm))
    _check_finite("L_hat = <g_data(r+)> - <g_model(r-)>", value)
    return value


def contrastive_divergence_gradient(energy, x_pos, x_neg, *, l2_weight: float = 0.0) -> FEBMGradient:
    """Maximum-likelihood (contrastive-divergence) gradient ``<dE+> - <dE->`` (D1, D12).

    Optionally with the l2 term of D14 on the energy, ``lam(<E+^2> + <E-^2>)``.
    ``loss`` is ``<E+> - <E->``; ``grad_omega`` is empty (there is no critic).
    """
    lam = _check_lam(l2_weight)
    check_model(energy, "energy")
    x_pos, x_neg, x_all = _stack_batches(x_pos, x_neg, energy.dim)
    n_pos, n_neg = x_pos.shape[0], x_neg.shape[0]
    e_all = energy.energy(x_all)
    w = np.concatenate([np.full(n_pos, 1.0 / n_pos), np.full(n_neg, -1.0 / n_neg)])
    reg_e = 0.0
    if lam > 0.0:
        reg_e = float(np.mean(e_all[:n_pos] ** 2) + np.mean(e_all[n_pos:] ** 2))
        w = w + 2.0 * lam * np.concatenate([e_all[:n_pos] / n_pos, e_all[n_pos:] / n_neg])
    grad = energy.weighted_grad_params(x_all, w)
    loss = float(np.mean(e_all[:n_pos]) - np.mean(e_all[n_pos:]))
    return FEBMGradient(np.asarray(grad, dtype=np.float64), np.empty(0), loss, {"l2_energy": reg_e})
