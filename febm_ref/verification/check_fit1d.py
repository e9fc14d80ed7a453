"""Checks of the 1-D experiment (docs/theory.md section 6): the exact reference optima and the
trained fits against them."""

from __future__ import annotations

import math

from febm_ref.divergences import get_divergence
from febm_ref.reference_optima import PAPER_TABLE, reference_optimum
from febm_ref.targets import paper_mixture_1d
from febm_ref.verification.registry import Measurement, register


@register("fit1d.reference_kl_moment_matching", group="fit1d",
          description="exact KL optimum argmin KL(P||N(mu, sigma^2)) = moment matching (1.01, sqrt(3.350525))")
def check_kl(quick: bool) -> Measurement:
    opt = reference_optimum("kl", paper_mixture_1d())
    err = max(abs(opt.mu - 1.01), abs(opt.sigma - math.sqrt(3.350525)))
    return Measurement(err, 1e-7, {"mu": opt.mu, "sigma": opt.sigma})


@register("fit1d.reference_stationary", group="fit1d",
          description="every reference optimum is stationary: central-difference gradient of the exact D_f at "
                      "the returned (mu, sigma); and proportional divergences (Neyman = 2 alpha(-1), Hellinger = "
                      "alpha(1/2)/2, Pearson = 2 alpha(2)) share their optimum")
def check_stationary(quick: bool) -> Measurement:
    target = paper_mixture_1d()
    entries = PAPER_TABLE if not quick else (("neyman_chi2", None), ("alpha", -1.0), ("jensen_shannon", None))
    optima = {}
    worst_grad = 0.0
    for name, a in entries:
        div = get_divergence(name, **({} if a is None else {"alpha": a}))
        opt = reference_optimum(div, target)
        optima[div.label] = opt
        worst_grad = max(worst_grad, max(abs(g) for g in opt.gradient))
    pairs = [("neyman_chi2", "alpha(-1)"), ("squared_hellinger", "alpha(0.5)"), ("pearson_chi2", "alpha(2)")]
    worst_pair = 0.0
    for a, b in pairs:
        if a in optima and b in optima:
            worst_pair = max(worst_pair, abs(optima[a].mu - optima[b].mu), abs(optima[a].sigma - optima[b].sigma))
    details = {k: {"mu": v.mu, "sigma": v.sigma, "D_f": v.value, "gradient": v.gradient} for k, v in optima.items()}
    details["max_gradient"] = worst_grad
    details["max_pair_difference"] = worst_pair
    return Measurement(max(worst_grad, worst_pair), 1e-6, details)


@register("fit1d.training_reaches_optimum", group="fit1d",
          description="training reaches the exact optimum: quick = contrastive divergence (maximum likelihood) "
                      "to the KL optimum; full = f-EBM converged protocol for KL and Neyman; error = worst "
                      "|gap| in mu and sigma")
def check_training(quick: bool) -> Measurement:
    from febm_ref.experiments.fit1d import run_fit

    if quick:
        rows = [run_fit("kl", method="cd", protocol="converged", iterations=1500, show_progress=False)]
        tolerance = 0.03
    else:
        rows = [run_fit("kl", protocol="converged", show_progress=False),
                run_fit("neyman_chi2", protocol="converged", show_progress=False)]
        tolerance = 0.02
    worst = max(max(abs(r["gap_mu"]), abs(r["gap_sigma"])) for r in rows)
    return Measurement(worst, tolerance, {r["divergence"] + "/" + r["method"]: {
        "fit": (r["fit_mu"], r["fit_sigma"]), "exact": (r["exact_mu"], r["exact_sigma"])} for r in rows})
