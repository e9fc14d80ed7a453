"""The sampler verification checks (febm_ref/verification/check_samplers.py, quick mode) as tests:
exact stationary laws (D15 1-D and Lyapunov, D16), MALA/HMC unbiasedness, the mixture KS test,
and their negative controls, which must fail their inner claim."""

from __future__ import annotations

import pytest

from febm_ref.verification import check_samplers as C

CHECKS = [
    C.check_ula_variance_1d, C.check_ula_variance_1d_negative, C.check_ula_covariance_3d,
    C.check_ula_covariance_3d_negative, C.check_mala_gaussian, C.check_hmc_gaussian,
    C.check_ula_large_step_negative, C.check_mala_mixture, C.check_hmc_mixture,
    C.check_mixture_negative, C.check_decoupled_variance, C.check_mlp_twins, C.check_ess_ar1,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_sampler_check_quick(check):
    """Every sampler check of ``febm-ref verify`` passes in quick mode. Slow by design (up to
    ~10 s for the ULA/MALA rows on one idle core): the claims are Monte Carlo tests whose
    chains must be long enough to resolve the 1.3% ULA bias (``test_ula_bias_is_resolved``);
    a claim and its negative control share their chains (``lru_cache`` in the check module)."""
    m = check(True)
    assert m.ok(), f"error {m.error} vs tolerance {m.tolerance}; details {m.details}"


def test_ula_bias_is_resolved():
    """The 1-D ULA check sees the ~1.3% bias: its standard error is below a quarter of it."""
    samples, eps = C.ula_1d_run(True)
    m = C.check_ula_variance_1d(True)
    se = m.details["standard_error_cov"][0][0]
    bias = C.ula.stationary_variance_1d(C.S_1D, eps) - C.S_1D ** 2
    assert se < bias / 4, (se, bias)
