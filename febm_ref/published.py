"""The published 1-D code's stabilisations as explicit, named data (docs/theory.md section 6.x,
"The published code's clipped objective").

The published 1-D script (ermongroup/f-EBM, ``1d-example/gaussian_febm.py``) differs from
febm-ref's default path in three ways, each of which is a named object here and nothing
else in the library changes (the default maps of :mod:`febm_ref.divergences` and the
estimator of :mod:`febm_ref.objective` are untouched):

1. **Clipped g maps** (:data:`PUBLISHED_CLIPS`). torch ``clamp(max=b)`` is applied to the
   argument of an exponential in three places::

       KL       g_model(s) = exp(clamp(s, max=3))                  (bound on s: 3)
       Pearson  g_data(s)  = 2 exp(clamp(s, max=6)) - 2            (bound on s: 6)
       Pearson  g_model(s) = exp(clamp(2 s, max=6)) - 1            (bound on s: 3)

   every other divergence (reverse KL, Jensen-Shannon, squared Hellinger, Neyman, the
   whole alpha family including alpha = 2) is unclipped. With ``b`` the bound on ``s`` the
   clipped map is ``g~(s) = g(min(s, b))`` and, with torch's clamp semantics, its
   derivative is ``g~'(s) = g'(s) 1{s <= b}``: the gradient passes at ``s = b`` and is
   exactly 0 beyond. We apply the clamp to *our* maps (D7), which are the published ones
   (KL ``g_model = e^s``, Pearson ``2(e^s - 1)`` and ``e^{2s} - 1``); where the published
   unclipped maps differ from ours by an additive constant (reverse KL: ``-e^{-s}`` and
   ``s - 1`` in both) no gradient depends on it.
2. **The critic initialisation** (:func:`torch_default_init`): PyTorch's default
   ``nn.Linear`` law, weights and biases i.i.d. ``U(-1/sqrt(fan_in), +1/sqrt(fan_in))``
   (``kaiming_uniform_(a = sqrt 5)`` gives the bound ``sqrt(6 / ((1 + 5) fan_in))``).
3. **The update order** (:func:`published_step`): on one batch, one SGD step of the critic
   on ``L_hat`` (D8, ascended), then one SGD step of the energy on D13 with the critic
   *already updated* (the energy values are unchanged by the critic step).

Differences we keep on purpose (recorded in :func:`published_block`): float64 instead of
float32; stable ``log1p``/``expm1`` forms where the script writes ``log(1 + exp(x))``
(which overflows to ``inf`` in float32 for ``x > 88``); the data batch drawn i.i.d. from
``0.33 N(-1, 0.25^2) + 0.67 N(2, 2)``, whereas the script draws exactly
``int(1000 * (1 - 0.67)) = 329`` points from the first component and ``671`` from the
second (``1 - 0.67`` is ``0.32999999999999996`` in binary floating point).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from febm_ref._validation import check_generator, check_real_scalar
from febm_ref.divergences import Divergence, resolve_divergence

__all__ = [
    "PUBLISHED_CLIPS",
    "PUBLISHED_INIT",
    "PUBLISHED_SOURCE",
    "PUBLISHED_UPDATE_ORDER",
    "Clip",
    "PublishedMaps",
    "PublishedState",
    "published_block",
    "published_maps",
    "published_step",
    "torch_default_init",
]

PUBLISHED_SOURCE = "github.com/ermongroup/f-EBM, 1d-example/gaussian_febm.py (commit 19e4740)"
"""Where the published stabilisations were read."""


class Clip(NamedTuple):
    """One torch ``clamp(max=bound)`` inside a published g map.

    Attributes
    ----------
    map : {"g_data", "g_model"}
        The D7 map that is clipped.
    argument : str
        The expression the script clamps (``"s"`` or ``"2 s"``).
    bound : float
        The clamp's ``max`` on that expression.
    bound_s : float
        The same bound expressed on ``s`` (``bound / 2`` for ``"2 s"``).
    published : str
        The published expression, verbatim.
    """

    map: str
    argument: str
    bound: float
    bound_s: float
    published: str


PUBLISHED_CLIPS = {
    "kl": (Clip("g_model", "s", 3.0, 3.0, "torch.exp(x.clamp(max=3.))"),),
    "pearson_chi2": (Clip("g_data", "s", 6.0, 6.0, "2. * torch.exp(x.clamp(max=6.)) - 2"),
                     Clip("g_model", "2 s", 6.0, 3.0, "torch.exp((2. * x).clamp(max=6.)) - 1")),
}
"""Divergence name -> the clamps of the published script; a name not listed is unclipped."""

PUBLISHED_INIT = ("critic 1-64-64-1 tanh, PyTorch default nn.Linear init: every weight and bias "
                  "i.i.d. U(-1/sqrt(fan_in), +1/sqrt(fan_in)); energy (mu, sigma) = (0, 1), sigma "
                  "parametrised directly")
PUBLISHED_UPDATE_ORDER = ("per iteration, one batch (1000 data + 1000 exact model samples): SGD step of the "
                          "critic ascending L_hat (D8); then, on the same batch with the updated critic, SGD "
                          "step of the energy on D13; constant lr 1e-3 on both; the last iterate is reported")


def _clip_table(div: Divergence) -> tuple[Clip, ...]:
    return PUBLISHED_CLIPS.get(div.name, ())


class PublishedMaps:
    """The D7 maps of a divergence with the published clamps applied.

    For a map ``g`` clipped at ``b`` (on ``s``): ``g~(s) = g(min(s, b))`` and
    ``g~'(s) = g'(min(s, b)) 1{s <= b}`` (torch's clamp: the gradient passes at ``s = b``,
    is exactly 0 beyond). Unclipped maps are the divergence's own (same numbers).
    ``nan`` propagates (``min(nan, b)`` is ``nan``).

    Parameters
    ----------
    divergence : Divergence or str
    clips : tuple of Clip, optional
        Default: :data:`PUBLISHED_CLIPS` of the divergence; ``()`` turns clipping off.
    """

    def __init__(self, divergence, clips=None, *, alpha=None):
        self.divergence = resolve_divergence(divergence, alpha=alpha)
        self.clips = _clip_table(self.divergence) if clips is None else tuple(clips)
        self.bounds = {"g_data": math.inf, "g_model": math.inf}
        for clip in self.clips:
            if not isinstance(clip, Clip) or clip.map not in self.bounds:
                raise ValueError(f"clips must be Clip tuples on 'g_data' or 'g_model', got {clip!r}")
            self.bounds[clip.map] = check_real_scalar(clip.bound_s, "clip.bound_s")

    def _eval(self, which: str, s, prime: bool):
        d = self.divergence
        fn = {("g_data", False): d.g_data, ("g_model", False): d.g_model,
              ("g_data", True): d.g_data_prime, ("g_model", True): d.g_model_prime}[(which, prime)]
        b = self.bounds[which]
        s = np.asarray(s, dtype=np.float64)
        if math.isinf(b):
            return fn(s)
        value = fn(np.minimum(s, b))
        if prime:  # torch clamp backward: mask (s <= b); nan stays nan
            value = np.where(s > b, 0.0, value)
        return value

    def g_data(self, s):
        """``g_data(min(s, b_data))``."""
        return self._eval("g_data", s, False)

    def g_model(self, s):
        """``g_model(min(s, b_model))``."""
        return self._eval("g_model", s, False)

    def g_data_prime(self, s):
        """``g_data'(s) 1{s <= b_data}``."""
        return self._eval("g_data", s, True)

    def g_model_prime(self, s):
        """``g_model'(s) 1{s <= b_model}``."""
        return self._eval("g_model", s, True)

    def table(self) -> list:
        """JSON-ready list of the clamps (empty: unclipped)."""
        return [c._asdict() for c in self.clips]


def published_maps(divergence, *, alpha=None, clipping: bool = True) -> PublishedMaps:
    """:class:`PublishedMaps` of a divergence (``clipping=False``: the unclipped maps)."""
    return PublishedMaps(divergence, None if clipping else (), alpha=alpha)


def torch_default_init(rng, dim: int = 1, hidden=(64, 64), activation: str = "tanh"):
    """An :class:`~febm_ref.models.energies.MLPEnergy` drawn from PyTorch's default ``nn.Linear`` law.

    Every weight and bias of the layer with ``fan_in`` inputs is i.i.d.
    ``U(-1/sqrt(fan_in), +1/sqrt(fan_in))`` (mean 0, variance ``1/(3 fan_in)``), drawn with
    ``rng.uniform`` in the layout of ``MLPEnergy`` (per layer ``W`` then ``b``).
    """
    from febm_ref.models.energies import MLPEnergy

    rng = check_generator(rng)
    template = MLPEnergy.random_init(np.random.default_rng(0), dim, hidden, activation)
    sizes = [int(v) for v in template.sizes]
    blocks = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(n_in)
        blocks.append(rng.uniform(-bound, bound, n_in * n_out))
        blocks.append(rng.uniform(-bound, bound, n_out))
    return template.with_params(np.concatenate(blocks))


class PublishedState(NamedTuple):
    """State of the published algorithm (plain SGD keeps no optimiser state but the count).

    Attributes
    ----------
    theta : ndarray (P,)
        Energy parameters (``(mu, sigma)`` in 1-D).
    omega : ndarray (Q,)
        Critic parameters.
    iteration : int
        Number of completed steps.
    """

    theta: np.ndarray
    omega: np.ndarray
    iteration: int


def _finite(name: str, values) -> None:
    if not np.all(np.isfinite(values)):
        raise FloatingPointError(f"{name} is not finite")


def _maps(maps: PublishedMaps, r_pos, r_neg, want_value: bool):
    with np.errstate(over="ignore", invalid="ignore"):
        out = {"gdp": maps.g_data_prime(r_pos), "gmp": maps.g_model_prime(r_neg)}
        if want_value:
            out["gd"], out["gm"] = maps.g_data(r_pos), maps.g_model(r_neg)
    for key, name in (("gdp", "g_data'(r+)"), ("gmp", "g_model'(r-)"), ("gd", "g_data(r+)"),
                      ("gm", "g_model(r-)")):
        if key in out:
            _finite(name, out[key])
    return out


def published_step(state: PublishedState, x_pos, x_neg, maps: PublishedMaps, energy, critic,
                   lr_energy: float = 1e-3, lr_critic: float = 1e-3):
    """One iteration of the published algorithm, as a pure function.

    With ``r = H_omega + E_theta`` (D6), ``<.>`` batch means, ``dH = grad_omega H``,
    ``dE = grad_theta E`` and the (clipped) maps ``g~`` of ``maps``:

    critic (SGD ascent on D8, D10)::

        omega' = omega + lr_c [ <g~_data'(r+) dH+> - <g~_model'(r-) dH-> ]

    energy, with ``r'`` recomputed from ``omega'`` on the same batch (D13, batch covariance)::

        theta' = theta - lr_e [ <g~_data'(r'+) dE+> - <g~_model'(r'-) dE->
                                + <g~_model(r'-) dE-> - <g~_model(r'-)> <dE-> ]

    which is the gradient of the published surrogate
    ``<g~_data(r+)> + <E- g~_model(r-).detach()> - <E-> <g~_model(r-)>.detach() - <g~_model(r-)>``.

    Parameters
    ----------
    state : PublishedState
    x_pos, x_neg : ndarray (n+, d), (n-, d)
        Data and model samples (finite; constants).
    maps : PublishedMaps
    energy, critic : EnergyModel
        Templates: only their structure is used (parameters come from ``state``).
    lr_energy, lr_critic : float

    Returns
    -------
    (PublishedState, dict)
        The new state (new arrays; the input is not modified) and diagnostics: ``loss``
        (``L_hat`` before the critic step), ``mean_exp_r_neg``, ``clip_fraction_pos`` /
        ``clip_fraction_neg`` (share of ``r'+`` beyond the g_data bound, of ``r'-`` beyond
        the g_model bound).

    Raises
    ------
    FloatingPointError
        A g map, a gradient or a parameter is not finite (the message names it).
    ValueError
        The energy rejects the new parameters (e.g. ``sigma <= 0``).
    """
    from febm_ref.objective import _stack_batches, model_pass

    x_pos, _, x_all = _stack_batches(x_pos, x_neg, energy.dim)
    n_pos = x_pos.shape[0]
    n_neg = x_all.shape[0] - n_pos
    e_model = energy.with_params(state.theta)
    e_all = e_model.energy(x_all)
    hp = model_pass(critic.with_params(state.omega), x_all)
    r = hp.values + e_all
    g = _maps(maps, r[:n_pos], r[n_pos:], True)
    loss = float(np.mean(g["gd"]) - np.mean(g["gm"]))
    grad_omega = hp.weighted_grad_params(np.concatenate([g["gdp"] / n_pos, -g["gmp"] / n_neg]))
    _finite("grad_omega", grad_omega)
    omega = state.omega + lr_critic * grad_omega
    _finite("critic parameters omega", omega)
    r2 = model_pass(critic.with_params(omega), x_all, backward=False).values + e_all
    g2 = _maps(maps, r2[:n_pos], r2[n_pos:], True)
    gm = g2["gm"]
    w = np.concatenate([g2["gdp"] / n_pos, (-g2["gmp"] + gm - np.mean(gm)) / n_neg])
    grad_theta = np.asarray(e_model.weighted_grad_params(x_all, w), dtype=np.float64)
    _finite("grad_theta", grad_theta)
    theta = state.theta - lr_energy * grad_theta
    _finite("energy parameters theta", theta)
    info = {"loss": loss, "mean_exp_r_neg": float(np.exp(np.logaddexp.reduce(r2[n_pos:]) - math.log(n_neg))),
            "clip_fraction_pos": float(np.mean(r2[:n_pos] > maps.bounds["g_data"])),
            "clip_fraction_neg": float(np.mean(r2[n_pos:] > maps.bounds["g_model"])),
            "grad_theta": grad_theta}
    return PublishedState(theta, omega, state.iteration + 1), info


def published_block(divergence, *, alpha=None) -> dict:
    """The JSON record of the published mode for one divergence (clip table, init, order)."""
    maps = published_maps(divergence, alpha=alpha)
    return {"source": PUBLISHED_SOURCE, "clipping": maps.table() or "none (this divergence is unclipped)",
            "clamp_gradient": "torch clamp: gradient passes for s <= bound, exactly 0 beyond",
            "init": PUBLISHED_INIT, "update_order": PUBLISHED_UPDATE_ORDER,
            "kept_differences": ["float64 (the script runs float32)",
                                 "stable log1p/expm1/softplus forms (the script's log(1 + exp(x)) overflows "
                                 "in float32 for x > 88)",
                                 "data batch i.i.d. from 0.33 N(-1, 0.25^2) + 0.67 N(2, 2) (the script draws "
                                 "exactly 329 + 671 per batch)"]}
