"""Registered checks of the local convergence theorem (docs/theory.md section 5, D17).

Numbers come from :mod:`febm_ref.verification.convergence`; tolerances:
* Jacobians: D17 (quadrature moments) vs central finite differences of the exact field, vs
  the hand-derived closed form (Gaussian families): relative max-entry error <= 1e-6.
* observed linear rate vs predicted spectral radius: relative error of ``log rho`` <= 5e-3,
  trajectory vs linear prediction <= 1e-2 of the largest distance (perturbation 1e-6,
  runs stop at 1e-3, so nonlinear terms are <= ~1e-3 relative).
* stochastic D13 dynamics: every coordinate of the run-averaged iterate within 4 standard
  errors of ``z*``.
"""

from __future__ import annotations

import numpy as np

from febm_ref.divergences import get_divergence
from febm_ref.verification import convergence as C
from febm_ref.verification.registry import Measurement, register

JAC_TOL = 1e-6
QUICK_SUBSET = ("kl", "jensen_shannon", "pearson_chi2")


def _divs(quick: bool, name: str):
    if quick and name in ("gaussian_2d", "mlp_2d"):
        keep = QUICK_SUBSET[:1] if name == "mlp_2d" else QUICK_SUBSET
        return tuple(d for d in C.CATALOGUE if d.label in keep)
    return C.CATALOGUE


def _jacobian_check(name: str, quick: bool) -> Measurement:
    rep = C.jacobian_report(name, _divs(quick, name))
    per = rep["per_divergence"]
    errors = {}
    for label, e in per.items():
        errors[label] = max(e["fd_vs_d17"], e["sym_part_error"],
                            e.get("closed_vs_fd", 0.0), e.get("closed_vs_d17", 0.0))
    error = max(max(errors.values()), rep["scaling_error"])
    max_re = max(e["max_real_eig"] for e in per.values())
    details = {"relative_errors": errors, "scaling_error": rep["scaling_error"],
               "max_real_eig": {k: e["max_real_eig"] for k, e in per.items()},
               "eta_star": {k: e["eta_star"] for k, e in per.items()},
               "A_min_eig": rep["A_min_eig"], "G_min_eig": rep["G_min_eig"], "fisher_min_eig": rep["fisher_min_eig"],
               "field_at_equilibrium": rep["field_at_equilibrium"]}
    passed = error <= JAC_TOL and max_re < 0 and rep["field_at_equilibrium"] < 1e-12
    return Measurement(error, JAC_TOL, details, passed=passed)


for _name in C.REALISABLE:
    register(f"convergence.jacobian_d17.{_name}", group="convergence",
             description=f"D17 = FD Jacobian of the exact field (= closed form for Gaussians), "
                         f"J+J^T = -2f''(1)diag(A,G), spectrum/f''(1) identical across divergences, "
                         f"Re(eig) < 0: {_name}")(lambda quick, _n=_name: _jacobian_check(_n, quick))


def _rates(quick: bool):
    names = ("gaussian_1d", "mlp_1d") if quick else ("gaussian_1d", "mlp_1d", "gaussian_2d")
    divs = ("kl", "pearson_chi2") if quick else ("kl", "jensen_shannon", "pearson_chi2", "squared_hellinger")
    out = []
    for name in names:
        for dn in divs:
            for scheme in ("simultaneous", "alternating"):
                for frac in ((0.5, 0.95) if not quick or name != "mlp_1d" else (0.95,)):
                    out.append(C.rate_experiment(name, get_divergence(dn), scheme=scheme, eta_fraction=frac,
                                                 n_steps=150 if quick else 300))
    return out


@register("convergence.linear_rate", group="convergence",
          description="observed rate of the exact-field dynamics (simultaneous and alternating) "
                      "= spectral radius of the linearisation")
def check_linear_rate(quick: bool) -> Measurement:
    runs = _rates(quick)
    err = max(r["rate_relative_error"] for r in runs)
    dev = max(r["linear_deviation"] for r in runs)
    details = {f"{r['problem']}/{r['divergence']}/{r['scheme']}/{r['eta_fraction']}":
               {"predicted": r["predicted_rate"], "observed": r["observed_rate"],
                "rel_err_log_rate": r["rate_relative_error"],
                "linear_deviation": r["linear_deviation"], "steps": r["n_steps"]} for r in runs}
    return Measurement(err, 5e-3, details, passed=err <= 5e-3 and dev <= 1e-2)


@register("convergence.step_size_boundary", group="convergence",
          description="eta = 0.95 x bound converges, 1.05 x bound diverges "
                      "(simultaneous eta* = min 2|Re l|/|l|^2; alternating by bisection)")
def check_boundary(quick: bool) -> Measurement:
    names = ("gaussian_1d", "mlp_1d") if quick else ("gaussian_1d", "mlp_1d", "gaussian_2d")
    details, ok, worst = {}, True, 0.0
    for name in names:
        for scheme in ("simultaneous", "alternating"):
            for frac in (0.95, 1.05):
                r = C.rate_experiment(name, get_divergence("kl"), scheme=scheme, eta_fraction=frac, n_steps=150)
                key = f"{name}/{scheme}/{frac}"
                details[key] = {"eta": r["eta"], "bound": r["eta_bound"], "predicted": r["predicted_rate"],
                                "observed": r["observed_rate"], "steps": r["n_steps"]}
                side_ok = (r["observed_rate"] < 1.0) if frac < 1 else (r["observed_rate"] > 1.0)
                ok &= side_ok and (r["predicted_rate"] < 1.0) == (frac < 1)
                worst = max(worst, r["rate_relative_error"])
    return Measurement(worst, 5e-3, details, passed=ok and worst <= 5e-3)


@register("convergence.stochastic_d13", group="convergence",
          description="minibatch D13 dynamics with exact samples converge in mean to z* (Gaussian 1-D, KL)")
def check_stochastic(quick: bool) -> Measurement:
    r = C.stochastic_experiment(get_divergence("kl"), eta=0.05, n_steps=300 if quick else 1000,
                                n_runs=10 if quick else 30, batch=500, rng=np.random.default_rng(20260))
    details = {k: r[k] for k in ("eta", "n_steps", "n_runs", "batch", "initial_distance", "mean_distance",
                                 "final_distance_rms", "z_scores", "standard_error")}
    return Measurement(r["max_abs_z"], 4.0, details,
                       passed=r["max_abs_z"] <= 4.0 and r["mean_distance"] < r["initial_distance"])


@register("convergence.gauge_control", group="convergence",
          description="negative control: a free output bias gives a zero eigenvalue pair (Jordan), "
                      "b+b' conserved, the gauge drifts as linearised")
def check_gauge(quick: bool) -> Measurement:
    details, ok, worst = {}, True, 0.0
    for name, steps in (("gaussian_1d_offset", 300), ("mlp_1d_output_bias", 300 if quick else 2000)):
        g = C.gauge_experiment(get_divergence("kl"), n_steps=steps, name=name)
        drift_err = float(np.max(np.abs(g["gauge_drift"] - g["linear_gauge_drift"]))
                          / np.max(np.abs(g["linear_gauge_drift"])))
        details[name] = {k: g[k] for k in ("fd_vs_d17", "two_smallest_abs_eig", "third_smallest_abs_eig", "A_bb",
                                           "A_min_eig", "J_u", "l_J", "conservation_error", "final_gauge_drift",
                                           "final_distance")}
        details[name]["drift_vs_linear"] = drift_err
        ok &= (g["conservation_error"] <= 1e-12 and g["J_u"] <= 1e-8 and g["l_J"] <= 1e-8 and drift_err <= 1e-2
               and g["final_gauge_drift"] > 10 * g["delta"] and g["fd_vs_d17"] <= JAC_TOL)
        worst = max(worst, drift_err)
    return Measurement(worst, 1e-2, details, passed=ok)


@register("convergence.l2_repair", group="convergence",
          description="D14 l2 terms repair the gauge: isolated fixed point, J = J0 + K (derived), Re(eig) < 0, "
                      "rate as predicted; the fixed point is biased off q = p")
def check_l2(quick: bool) -> Measurement:
    details, ok, worst = {}, True, 0.0
    for dn in (("kl",) if quick else ("kl", "jensen_shannon", "pearson_chi2")):
        r = C.l2_repair_experiment(get_divergence(dn))
        details[dn] = {k: r[k] for k in ("weight", "newton_residual", "fixed_point_shift", "divergence_at_fixed_point",
                                         "K_error", "max_real_eig")}
        details[dn]["rate"] = {k: r["rate"][k] for k in ("predicted_rate", "observed_rate", "rate_relative_error")}
        ok &= r["newton_residual"] < 1e-12 and r["max_real_eig"] < 0 and r["rate"]["rate_relative_error"] <= 5e-3
        worst = max(worst, r["K_error"])
    return Measurement(worst, JAC_TOL, details, passed=ok and worst <= JAC_TOL)


@register("convergence.nonrealisable", group="convergence",
          description="non-realisable target (paper mixture, Gaussian energy, quadratic critic): "
                      "KL fixed point = moment matching; others reported")
def check_nonrealisable(quick: bool) -> Measurement:
    details = {}
    divs = ("kl", "jensen_shannon", "pearson_chi2") if quick else tuple(d.label for d in C.CATALOGUE)
    for d in C.CATALOGUE:
        if d.label in divs:
            r = C.nonrealisable_experiment(d, n_steps=200)
            details[d.label] = {k: r.get(k) for k in ("status", "argmin_theta", "fixed_point_theta", "theta_gap",
                                                      "max_real_eig", "min_divergence", "divergence_at_fixed_point",
                                                      "final_distance_to_fixed_point")}
    kl_gap = details["kl"]["theta_gap"]
    return Measurement(kl_gap if kl_gap is not None else float("nan"), 1e-6, details)
