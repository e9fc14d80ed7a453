"""The models: :mod:`~febm_ref.models.mlp` (the MLP energy, defined in NumPy),
:mod:`~febm_ref.models.energies` (energy models: Gaussians, the MLP), :mod:`~febm_ref.models.critics`
and :mod:`~febm_ref.models.sum_model` (critics and their sums).

(No imports here: :mod:`febm_ref._numba.kernels` imports :mod:`febm_ref.models.mlp`, and
:mod:`~febm_ref.models.energies` imports the kernels.)
"""
