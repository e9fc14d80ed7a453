"""Samplers for ``q_theta = exp(-E_theta)/Z`` (docs/theory.md section 4), one algorithm per module.

Every sampler is a pure function ``step(rng_or_noise, state, energy, ...) -> (state, info)``
(``info`` a NamedTuple of diagnostics) plus a ``run(...)`` helper looping ``K`` steps:

* :mod:`.exact`               i.i.d. draws for Gaussian / quadratic energies;
* :mod:`.ula`                 unadjusted Langevin (D15) and its exact stationary law on quadratics;
* :mod:`.decoupled_langevin`  the image-experiment variant (D16);
* :mod:`.mala`                Metropolis-adjusted Langevin (acceptance reported);
* :mod:`.hmc`                 Hamiltonian Monte Carlo with ``L`` leapfrog steps;
* :mod:`.mlp_langevin`        ULA / D16 for MLP energies, ``K`` steps of ``N`` chains in one Numba call;
* :mod:`.persistent`, :mod:`.replay_buffer`  chain initialisation pieces;
* :mod:`.diagnostics`         ESS, split R-hat, acceptance, standard errors, thinned KS test.
"""

from febm_ref.samplers import (
    decoupled_langevin,
    diagnostics,
    exact,
    hmc,
    mala,
    mlp_langevin,
    persistent,
    replay_buffer,
    ula,
)
from febm_ref.samplers._base import CallableEnergy, ChainState, NonFiniteChainError, RunResult, init_state
from febm_ref.samplers.diagnostics import effective_sample_size, integrated_autocorrelation_time, split_rhat
from febm_ref.samplers.persistent import PersistentChains
from febm_ref.samplers.replay_buffer import ReplayBuffer

__all__ = [
    "CallableEnergy", "ChainState", "NonFiniteChainError", "PersistentChains", "ReplayBuffer",
    "RunResult", "decoupled_langevin", "diagnostics", "effective_sample_size", "exact", "hmc",
    "init_state", "integrated_autocorrelation_time", "mala", "mlp_langevin", "persistent",
    "replay_buffer", "split_rhat", "ula",
]
