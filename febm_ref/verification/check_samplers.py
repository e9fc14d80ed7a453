"""Sampler checks against exact stationary laws (docs/theory.md section 4, D15, D16).

One statistical harness serves every sampler: run ``N`` independent chains, discard a burn-in,
keep every ``thin``-th state, estimate moments about the *known* mean and attach ESS-based
standard errors (:mod:`febm_ref.samplers.diagnostics`); the error of a check is the largest
``|z| = |estimate - exact| / SE`` and the tolerance a z-bound. Negative controls run the same
harness against a wrong law and must fail it. For the non-Gaussian 1-D mixture target the
harness thins the chains by twice their integrated autocorrelation time and applies a
Kolmogorov-Smirnov test at significance 1e-3 (error = KS statistic, tolerance = its critical
value).

Runs are cached per mode, so a claim and its negative control share the same chains.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from febm_ref.models.energies import QuadraticEnergy
from febm_ref.samplers import CallableEnergy, decoupled_langevin, hmc, mala, mlp_langevin, ula
from febm_ref.samplers import diagnostics as D
from febm_ref.targets import GaussianMixture1D, paper_mixture_1d
from febm_ref.verification.registry import Measurement, register

Z_TOL = 4.0
"""|z| bound of a single moment claim (two-sided p ~ 6e-5)."""
Z_TOL_MULTI = 4.5
"""|z| bound for the maximum over the ~9 moments of the 3-D check (Bonferroni p < 1e-4)."""
KS_ALPHA = 1e-3

S_1D = 1.5
"""Standard deviation ``s`` of the 1-D Gaussian target ``E = x^2 / (2 s^2)``."""


# --------------------------------------------------------------------------- targets

def gaussian_energy_1d(s: float) -> CallableEnergy:
    """``E(x) = x^2 / (2 s^2)`` (vectorised over rows of (n, 1) arrays)."""
    return CallableEnergy(lambda x: 0.5 * x[:, 0] ** 2 / s ** 2, lambda x: x / s ** 2)


# The paper's 1-D data density (docs/theory.md section 6): febm_ref.targets.paper_mixture_1d(). The
# negative control samples the same mixture with its wide component misread (sd 2, variance 4).
PAPER_MIXTURE = paper_mixture_1d()
MIXTURE_VARIANCES = PAPER_MIXTURE.variances


def _mixture(variances) -> GaussianMixture1D:
    return GaussianMixture1D(PAPER_MIXTURE.weights, PAPER_MIXTURE.means, variances)


def mixture_logpdf(x, variances=MIXTURE_VARIANCES):
    """``log p(x)`` at an array of scalars ``x``."""
    x = np.asarray(x, dtype=np.float64)
    return _mixture(variances).log_density(x.reshape(-1, 1)).reshape(x.shape)


class MixtureEnergy:
    """``E = -log p`` and ``dE/dx = -d log p/dx`` of a 1-D mixture target, fused into one
    log-sum-exp per evaluation (``energy_and_grad_x``, which the samplers use when present)."""

    def __init__(self, target):
        self.target = target

    def energy(self, x):
        return -self.target.log_density(x)

    def grad_x(self, x):
        return -self.target.grad_log_density(x)

    def energy_and_grad_x(self, x):
        log_p, grad = self.target.log_density_and_grad(x)
        return -log_p, -grad


def mixture_energy(variances=MIXTURE_VARIANCES) -> MixtureEnergy:
    """``E = -log p`` and ``dE/dx = -d log p/dx`` of the mixture."""
    return MixtureEnergy(_mixture(variances))


def mixture_cdf(x, variances=MIXTURE_VARIANCES):
    """``P(X <= x)`` of the mixture."""
    return _mixture(variances).cdf(x)


# --------------------------------------------------------------------------- harness

def moment_measurement(samples, mean, exact_cov, z_tol: float, *, label: str) -> Measurement:
    """The Gaussian-moment harness: first and second moments of ``samples`` (n_kept, N, d) about
    the exact ``mean`` against ``exact_cov``; error = max |z| over the mean and covariance
    entries (ESS-based standard errors)."""
    samples = np.asarray(samples, dtype=np.float64)
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    exact_cov = np.atleast_2d(np.asarray(exact_cov, dtype=np.float64))
    d = samples.shape[2]
    z_mean = []
    for i in range(d):
        est = D.mean_estimate(samples[:, :, i])
        z_mean.append(est.z_score(mean[i]))
    cov, se = D.covariance_estimates(samples, mean)
    iu = np.triu_indices(d)
    z_cov = (cov - exact_cov)[iu] / se[iu]
    z_all = np.concatenate([np.asarray(z_mean), z_cov])
    rel = (cov - exact_cov)[iu] / np.abs(exact_cov[iu]).clip(min=1e-300)
    details = {"label": label, "n_chains": int(samples.shape[1]), "n_kept": int(samples.shape[0]),
               "estimate_cov": cov.tolist(), "exact_cov": exact_cov.tolist(),
               "standard_error_cov": se.tolist(), "z_mean": [float(z) for z in z_mean],
               "z_cov": [float(z) for z in z_cov], "relative_error_cov": [float(r) for r in rel]}
    return Measurement(float(np.max(np.abs(z_all))), z_tol, details)


def negative_control(measurement: Measurement, why: str) -> Measurement:
    """The same numbers, but the check passes only if the inner claim FAILS."""
    details = dict(measurement.details, negative_control=why)
    return Measurement(measurement.error, measurement.tolerance, details, negative_control=True)


def ks_measurement(draws, cdf, *, label: str) -> Measurement:
    """The mixture harness: thin by 2 tau, KS test at ``KS_ALPHA`` (error = statistic)."""
    res = D.ks_test_thinned(draws, cdf, alpha=KS_ALPHA)
    details = {"label": label, "ks_statistic": res.statistic, "p_value": res.p_value,
               "critical_value": res.critical_value, "n_thinned": res.n, "thin": res.thin,
               "split_rhat": D.split_rhat(draws)}
    return Measurement(res.statistic, res.critical_value, details)


def _steps(quick: bool, quick_value: int, full_value: int) -> int:
    return quick_value if quick else full_value


# --------------------------------------------------------------------------- cached runs

@lru_cache(maxsize=4)
def ula_1d_run(quick: bool, step_factor: float = 0.05):
    """ULA (D15) on ``x^2/(2 s^2)`` at ``eps = step_factor s^2``: (samples, eps)."""
    s = S_1D
    eps = step_factor * s * s
    rng = np.random.default_rng(20240401 + int(1000 * step_factor))
    n_chains = _steps(quick, 4000, 8000)
    burn = 300
    n_steps = _steps(quick, 10_000, 20_000)
    x0 = s * rng.standard_normal((n_chains, 1))
    res = ula.run(rng, x0, gaussian_energy_1d(s), eps, burn + n_steps, keep_samples=True, thin=10)
    return res.samples[burn // 10:], eps


@lru_cache(maxsize=2)
def ula_3d_run(quick: bool):
    """ULA on a 3-D quadratic energy (eigenvalues 1, 4, 10 of the precision, rotated)."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    precision = q @ np.diag([1.0, 4.0, 10.0]) @ q.T
    precision = 0.5 * (precision + precision.T)
    mean = np.array([0.5, -1.0, 2.0])
    energy = QuadraticEnergy(mean, np.linalg.cholesky(precision))
    eps = 0.05
    n_chains = _steps(quick, 2000, 4000)
    burn = 300
    n_steps = _steps(quick, 5000, 10_000)
    x0 = mean + rng.standard_normal((n_chains, 3)) @ np.linalg.cholesky(np.linalg.inv(precision)).T
    res = ula.run(rng, x0, energy, eps, burn + n_steps, keep_samples=True, thin=10)
    return res.samples[burn // 10:], mean, precision, eps


@lru_cache(maxsize=2)
def mala_hmc_1d_runs(quick: bool):
    """MALA and HMC (L = 3) at ``eps = 0.5 s^2`` (where ULA's variance is 14% too large)."""
    s = S_1D
    eps = 0.5 * s * s
    rng = np.random.default_rng(11)
    n_chains = _steps(quick, 2000, 4000)
    n_steps = _steps(quick, 2000, 5000)
    burn = 100
    energy = gaussian_energy_1d(s)
    x0 = 3 * s * rng.standard_normal((n_chains, 1))
    m = mala.run(rng, x0, energy, eps, burn + n_steps, keep_samples=True)
    # HMC step: eps_leapfrog = sqrt(eps) makes its one-leapfrog proposal MALA's
    h = hmc.run(rng, x0, energy, math.sqrt(eps), 3, burn + n_steps, keep_samples=True)
    u = ula.run(rng, x0, energy, eps, burn + n_steps, keep_samples=True)
    return {"mala": (m.samples[burn:], float(m.info["acceptance_rate"].mean())),
            "hmc": (h.samples[burn:], float(h.info["acceptance_rate"].mean())),
            "ula": (u.samples[burn:], 1.0), "eps": eps}


def mixture_chains(sampler: str, n_chains: int, n_steps: int, variances: tuple = tuple(MIXTURE_VARIANCES)):
    """``n_chains`` MALA (step 0.12, every 2nd draw kept) or HMC (step 0.15, 8 leapfrog steps)
    chains of ``n_steps`` on the paper's 1-D mixture (or a wrong one), started from N(0, 3^2);
    returns the draws after the first quarter ``(draws, chains)`` and the acceptance rate."""
    rng = np.random.default_rng(5 if sampler == "hmc" else 6)
    energy = mixture_energy(np.asarray(variances))
    x0 = 3.0 * rng.standard_normal((n_chains, 1))
    if sampler == "hmc":
        res = hmc.run(rng, x0, energy, 0.15, 8, n_steps, keep_samples=True)
    else:
        res = mala.run(rng, x0, energy, 0.12, n_steps, keep_samples=True, thin=2)
    samples = res.samples[res.samples.shape[0] // 4:, :, 0]
    return samples, float(res.info["acceptance_rate"].mean())


@lru_cache(maxsize=4)
def mixture_run(quick: bool, sampler: str, variances: tuple = tuple(MIXTURE_VARIANCES)):
    """:func:`mixture_chains` at the check's size (cached: several checks share the chains)."""
    n_chains = _steps(quick, 400, 1000)
    n_steps = _steps(quick, 1000, 2500) if sampler == "hmc" else _steps(quick, 4000, 10_000)
    return mixture_chains(sampler, n_chains, n_steps, variances)


# --------------------------------------------------------------------------- checks

@register("samplers.ula_variance_1d", group="samplers",
          description="ULA (D15) on x^2/(2s^2) at eps=0.05 s^2: variance = s^2/(1-eps/(4s^2)) within 4 SE")
def check_ula_variance_1d(quick: bool) -> Measurement:
    samples, eps = ula_1d_run(quick)
    exact = ula.stationary_variance_1d(S_1D, eps)
    m = moment_measurement(samples, [0.0], [[exact]], Z_TOL, label="ULA 1-D vs exact D15 law")
    return Measurement(m.error, m.tolerance, dict(m.details, eps=eps, s=S_1D, unbiased_variance=S_1D ** 2,
                                                  relative_ula_bias=exact / S_1D ** 2 - 1.0))


@register("samplers.ula_variance_1d_negative_control", group="samplers",
          description="negative control: the same ULA chains against the unbiased s^2 must fail (bias ~1.3%)")
def check_ula_variance_1d_negative(quick: bool) -> Measurement:
    samples, eps = ula_1d_run(quick)
    m = moment_measurement(samples, [0.0], [[S_1D ** 2]], Z_TOL, label="ULA 1-D vs unbiased s^2")
    return negative_control(m, "ULA is biased: removing the eps/(4 s^2) term must be detected")


@register("samplers.ula_covariance_lyapunov", group="samplers",
          description="ULA on a 3-D quadratic: mean and covariance = discrete Lyapunov solution within 4.5 SE")
def check_ula_covariance_3d(quick: bool) -> Measurement:
    samples, mean, precision, eps = ula_3d_run(quick)
    exact = ula.stationary_covariance(precision, eps)
    return moment_measurement(samples, mean, exact, Z_TOL_MULTI, label="ULA 3-D vs Lyapunov covariance")


@register("samplers.ula_covariance_negative_control", group="samplers",
          description="negative control: the same 3-D ULA chains against P^-1 (unbiased) must fail")
def check_ula_covariance_3d_negative(quick: bool) -> Measurement:
    samples, mean, precision, eps = ula_3d_run(quick)
    m = moment_measurement(samples, mean, np.linalg.inv(precision), Z_TOL_MULTI,
                           label="ULA 3-D vs P^-1")
    return negative_control(m, "ULA's covariance is not P^-1 at eps = 0.05")


@register("samplers.mala_unbiased_gaussian", group="samplers",
          description="MALA at eps=0.5 s^2 (ULA 14% biased there): variance = s^2 within 4 SE")
def check_mala_gaussian(quick: bool) -> Measurement:
    runs = mala_hmc_1d_runs(quick)
    samples, acc = runs["mala"]
    m = moment_measurement(samples, [0.0], [[S_1D ** 2]], Z_TOL, label="MALA 1-D vs s^2")
    return Measurement(m.error, m.tolerance, dict(m.details, acceptance_rate=acc, eps=runs["eps"]))


@register("samplers.hmc_unbiased_gaussian", group="samplers",
          description="HMC (L=3, leapfrog sqrt(0.5) s): variance = s^2 within 4 SE")
def check_hmc_gaussian(quick: bool) -> Measurement:
    runs = mala_hmc_1d_runs(quick)
    samples, acc = runs["hmc"]
    m = moment_measurement(samples, [0.0], [[S_1D ** 2]], Z_TOL, label="HMC 1-D vs s^2")
    return Measurement(m.error, m.tolerance, dict(m.details, acceptance_rate=acc))


@register("samplers.ula_large_step_negative_control", group="samplers",
          description="negative control: ULA at the MALA step size against s^2 must fail (and match D15)")
def check_ula_large_step_negative(quick: bool) -> Measurement:
    runs = mala_hmc_1d_runs(quick)
    samples, _ = runs["ula"]
    m = moment_measurement(samples, [0.0], [[S_1D ** 2]], Z_TOL, label="ULA eps=0.5 s^2 vs s^2")
    exact = ula.stationary_variance_1d(S_1D, runs["eps"])
    m_exact = moment_measurement(samples, [0.0], [[exact]], Z_TOL, label="ULA eps=0.5 s^2 vs D15")
    out = negative_control(m, "the Metropolis correction is what removes the bias")
    return Measurement(out.error, out.tolerance, dict(out.details, z_vs_exact_d15=m_exact.error),
                       passed=bool(out.ok() and m_exact.ok()), negative_control=True)


@register("samplers.mala_mixture_ks", group="samplers",
          description="MALA on the paper's 1-D mixture: KS test of thinned chains at alpha=1e-3")
def check_mala_mixture(quick: bool) -> Measurement:
    draws, acc = mixture_run(quick, "mala")
    m = ks_measurement(draws, mixture_cdf, label="MALA vs mixture cdf")
    return Measurement(m.error, m.tolerance, dict(m.details, acceptance_rate=acc))


@register("samplers.hmc_mixture_ks", group="samplers",
          description="HMC on the paper's 1-D mixture: KS test of thinned chains at alpha=1e-3")
def check_hmc_mixture(quick: bool) -> Measurement:
    draws, acc = mixture_run(quick, "hmc")
    m = ks_measurement(draws, mixture_cdf, label="HMC vs mixture cdf")
    return Measurement(m.error, m.tolerance, dict(m.details, acceptance_rate=acc))


@register("samplers.mixture_ks_negative_control", group="samplers",
          description="negative control: HMC on a misread target (wide sd 2, not variance 2) must fail the KS test")
def check_mixture_negative(quick: bool) -> Measurement:
    draws, _ = mixture_run(quick, "hmc", (0.0625, 4.0))
    m = ks_measurement(draws, mixture_cdf, label="HMC on a wrong target vs the true cdf")
    return negative_control(m, "sampling a wrong target must be detected by the KS harness")


@register("samplers.decoupled_variance_1d", group="samplers",
          description="D16 on x^2/(2s^2): variance = a^2 sigma_n^2/(1-a^2), a = 1-lambda/s^2, within 4 SE")
def check_decoupled_variance(quick: bool) -> Measurement:
    s, lam, sigma = S_1D, 0.05, 0.2
    rng = np.random.default_rng(3)
    n_chains = _steps(quick, 2000, 4000)
    n_steps = _steps(quick, 3000, 6000)
    burn = 500
    x0 = rng.standard_normal((n_chains, 1))
    res = decoupled_langevin.run(rng, x0, gaussian_energy_1d(s), lam, sigma, burn + n_steps,
                                 keep_samples=True, thin=5)
    exact = decoupled_langevin.stationary_variance_1d(s, lam, sigma)
    m = moment_measurement(res.samples[burn // 5:], [0.0], [[exact]], Z_TOL, label="D16 1-D")
    return Measurement(m.error, m.tolerance, dict(m.details, step_size=lam, noise_scale=sigma,
                                                  tempered_first_order=sigma ** 2 * s ** 2 / (2 * lam)))


def fused_run(kind: str, model, x0, noise, backend: str, use_blas: bool = True, *, step: float,
              noise_scale: float, grad_clip: float, box: tuple):
    """One run of the fused MLP Langevin loop: ULA (``kind="ula"``, step ``step``) or D16
    (``"d16"``: step ``step``, noise scale ``noise_scale``, ``grad_clip``, ``box``) on the given noise."""
    if kind == "ula":
        return mlp_langevin.ula(model, x0, step, noise=noise, backend=backend, use_blas=use_blas)
    return mlp_langevin.decoupled(model, x0, step, noise_scale, noise=noise, backend=backend,
                                  use_blas=use_blas, grad_clip=grad_clip, box=box)


def twin_deviation(kind: str, model, x0, noise, **settings):
    """``(NumPy twin's run, largest |Numba - NumPy|)`` over the end points, the mean energies and
    the mean gradient norms, for every Numba backend (serial, parallel) and both paths (BLAS,
    per-point); ``settings`` as :func:`fused_run`. nan propagates."""
    ref = fused_run(kind, model, x0, noise, "numpy", True, **settings)
    deviations = []
    for backend in ("numba", "numba-parallel"):
        for use_blas in (True, False):
            r = fused_run(kind, model, x0, noise, backend, use_blas, **settings)
            deviations += [float(np.max(np.abs(r.x - ref.x))),
                           float(np.max(np.abs(r.mean_energy - ref.mean_energy))),
                           float(np.max(np.abs(r.mean_grad_norm - ref.mean_grad_norm)))]
    return ref, float(np.max(deviations))


@register("samplers.mlp_langevin_twins", group="samplers",
          description="Numba ULA/D16 loops on a 2-64-64-1 tanh MLP (serial, parallel, BLAS, per-point) "
                      "= NumPy twin to 1e-10")
def check_mlp_twins(quick: bool) -> Measurement:
    from febm_ref.models.energies import MLPEnergy

    rng = np.random.default_rng(0)
    model = MLPEnergy.random_init(rng, 2, (64, 64), "tanh", bias_scale=0.1)
    n, k = (64, 100) if quick else (256, 500)
    x0 = rng.standard_normal((n, 2))
    noise = rng.standard_normal((k, n, 2))
    settings = {"step": 0.01, "noise_scale": 0.05, "grad_clip": 0.5, "box": (-3.0, 3.0)}
    worst = float(np.max([twin_deviation(kind, model, x0, noise, **settings)[1] for kind in ("ula", "d16")]))
    return Measurement(worst, 1e-10, {"n_chains": n, "n_steps": k})


@register("samplers.ess_ar1", group="samplers",
          description="ESS of AR(1) chains = n (1-phi)/(1+phi) (Geyer estimator), phi in {0.9, -0.5}")
def check_ess_ar1(quick: bool) -> Measurement:
    from scipy.signal import lfilter

    rng = np.random.default_rng(1)
    reps = 10 if quick else 40
    n, m = 20_000, 4
    worst = 0.0
    details = {}
    for phi in (0.9, -0.5):
        ratios = []
        for _ in range(reps):
            e = rng.standard_normal((n + 1000, m)) * math.sqrt(1 - phi ** 2)
            x = lfilter([1.0], [1.0, -phi], e, axis=0)[1000:]
            ratios.append(D.effective_sample_size(x) / (n * m * (1 - phi) / (1 + phi)))
        ratios = np.asarray(ratios)
        se = ratios.std(ddof=1) / math.sqrt(reps)
        z = abs(ratios.mean() - 1.0) / se
        # the Geyer estimator has an O(tau/n) truncation bias; allow 1% on top of 4 SE
        err = max(0.0, abs(ratios.mean() - 1.0) - 0.01) / se
        worst = max(worst, err)
        details[f"phi={phi}"] = {"mean_ratio": float(ratios.mean()), "se": float(se), "z": float(z)}
    return Measurement(worst, Z_TOL, details)
