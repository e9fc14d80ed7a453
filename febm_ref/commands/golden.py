"""``febm-ref golden``: write the golden reference set of the conformance kit."""

from __future__ import annotations

import sys
import time


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "golden",
        help="write golden reference files for checking other f-EBM implementations",
        description=("Write the versioned, self-describing golden set of the conformance kit "
                     "(docs/conformance.md): JSON for metadata, cases and scalars, NPZ for arrays, "
                     "every file carrying the febm-ref version, the schema version, the seed and "
                     "the tolerance of each quantity. The output is byte-for-byte reproducible "
                     "for a given version, seed and platform. Check an implementation against it "
                     "with 'febm-ref check --adapter MODULE --golden DIR'."),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random inputs (default 0)")
    parser.add_argument("--sections", nargs="+", metavar="NAME",
                        help="only these sections (default: all available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from febm_ref.conformance.golden import write_golden

    started = time.perf_counter()
    manifest = write_golden(args.out, args.seed, sections=args.sections, builders=section_builders(),
                            progress=lambda name, seconds: print(f"  {name:<12} {seconds:6.2f} s",
                                                                 file=sys.stderr))
    total = sum(entry["bytes"] for entry in manifest["files"])
    print(f"wrote {len(manifest['files']) + 1} files ({total / 1024:.0f} KiB) to {args.out} "
          f"in {time.perf_counter() - started:.1f} s; sections: {', '.join(manifest['sections'])}")
    for name, reason in manifest["omitted"].items():
        print(f"  omitted section {name}: {reason}")
    return 0


# ----------------------------------------------------------------------------- convergence
# The library (febm_ref/) must not import verification/; the CLI is the composition root, so
# the section built from verification.convergence is assembled here.

CONVERGENCE_TOYS = ((0.3, 1.2), (-1.0, 0.5))
"""(mu, sigma) of the 1-D Gaussian toys: p = N(mu, sigma^2) (docs/theory.md section 5)."""


def build_convergence(rng):
    """D17 Jacobians, eigenvalues and step-size bounds of the 1-D Gaussian toy (no randomness)."""
    import numpy as np

    from febm_ref.conformance.golden import Section, _divergences, divergence_key
    from febm_ref.verification.convergence import (
        fd_jacobian,
        field,
        gaussian_1d_problem,
        gaussian_closed_form_jacobian,
        relative_error,
        step_size_bound,
    )

    section = Section("convergence",
                      "Local convergence (docs/theory.md section 5, D17) of the 1-D Gaussian toy: p = "
                      "N(mu, sigma^2), energy E = 0.5((x - m)/s)^2 with theta = (m, s), critic "
                      "H = w0 + b x + c x^2 with omega = (w0, b, c), at the equilibrium q = p, "
                      "H = -E. Output 0: the Jacobian J (5x5) of v = (-grad_theta L, "
                      "+grad_omega L); output 1: its eigenvalues (rows Re, Im; any order); "
                      "output 2: eta* = min 2|Re lambda|/|lambda|^2.")
    certificates = {}
    for mu, sigma in CONVERGENCE_TOYS:
        problem = gaussian_1d_problem(mu, sigma)
        toy = {"family": "gaussian_1d", "mu": mu, "sigma": sigma}
        toy_id = f"mu={mu:g},sigma={sigma:g}"
        for index, div in enumerate(_divergences()):
            key = divergence_key(div)
            J = gaussian_closed_form_jacobian(problem, div.f_double_prime_at_one)
            eig = np.linalg.eigvals(J)
            eig_rows = np.stack([eig.real, eig.imag], axis=1)
            order = np.lexsort((eig_rows[:, 1], eig_rows[:, 0]))
            eig_rows = eig_rows[order]
            if index == 0:  # certificate: finite differences of the exact (quadrature) field
                J_fd = fd_jacobian(lambda z: field(problem, div, z), problem.z_star)
                certificates[toy_id] = {"equilibrium": problem.z_star.tolist(),
                                        "divergence": key,
                                        "fd_of_exact_field_vs_d17": relative_error(J_fd, J)}
            args = {"name": div.name, "params": div.params, "toy": toy}
            scales = convergence_scales(J, eig, order)
            section.add_case(f"{toy_id}/{key}/jacobian", "jacobian", "convergence_jacobian", args,
                             J, output=0, scale=scales[0])
            section.add_case(f"{toy_id}/{key}/eigenvalues", "eigenvalues", "convergence_jacobian",
                             args, eig_rows, output=1, match="unordered_rows", scale=scales[1])
            section.add_case(f"{toy_id}/{key}/eta_star", "step_size_bound", "convergence_jacobian",
                             args, step_size_bound(eig), output=2, scale=scales[2])
    section.metadata["certificates"] = certificates
    return section


def convergence_scales(J, eig, order):
    """Rounding-error scales (:mod:`febm_ref.conformance.tolerance`) of the D17 outputs.

    Jacobian entries are expectations computed by the implementation's own quadrature (or
    closed form) of O(1) terms: ``QUADRATURE_DEPTH K_FN (|J_ij| + max |J|)`` (the max for the
    structurally zero entries, which are sums that cancel). Eigenvalue ``k`` (first-order
    perturbation, Wilkinson): ``|d lambda_k| <= |y_k| S_J |x_k|`` with right eigenvector
    ``x_k`` and left eigenvector ``y_k`` normalised to ``y_k x_k = 1``; rows ordered as the
    golden eigenvalue rows (``order``). ``eta* = 2|a|/(a^2 + b^2)`` at the minimising
    eigenvalue ``a + ib``: ``(|d eta/da| + |d eta/db|) S_lambda``."""
    import numpy as np

    from febm_ref.conformance.golden import QUADRATURE_DEPTH
    from febm_ref.conformance.tolerance import K_FN

    S_J = QUADRATURE_DEPTH * K_FN * (np.abs(J) + np.max(np.abs(J)))
    values, V = np.linalg.eig(J)
    W = np.linalg.inv(V)
    S_lam = np.array([float(np.abs(W[k]) @ S_J @ np.abs(V[:, k])) for k in range(V.shape[1])])
    # match np.linalg.eig's order to the eigvals order used for the golden rows
    match = [int(np.argmin(np.abs(values - lam))) for lam in eig]
    S_lam = S_lam[match]
    S_eig = np.repeat(S_lam[order][:, None], 2, axis=1)
    a, b = np.abs(eig.real), eig.imag
    m2 = a * a + b * b
    k = int(np.argmin(2 * a / m2))
    d_a = abs(2 / m2[k] - 4 * a[k] ** 2 / m2[k] ** 2)
    d_b = abs(4 * a[k] * b[k] / m2[k] ** 2)
    return S_J, S_eig, (d_a + d_b) * S_lam[k]


def section_builders() -> dict:
    """All golden sections this installation can build: the library's plus ``convergence``
    (which needs ``verification/``; left out if that package is not importable)."""
    from febm_ref.conformance.golden import SECTION_BUILDERS

    builders = dict(SECTION_BUILDERS)
    try:
        import febm_ref.verification.convergence  # noqa: F401
    except ImportError:
        return builders
    builders["convergence"] = build_convergence
    return builders
