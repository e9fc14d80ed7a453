"""The Numba layer, by concern: :mod:`~febm_ref._numba.jit` (the jit policy: every jitted
function is compiled through its ``njit``), :mod:`~febm_ref._numba.kernels` (fused per-point and
batch MLP kernels), :mod:`~febm_ref._numba.batched_mlp` (the batch-major BLAS core and the
activations) and :mod:`~febm_ref._numba.langevin` (the fused Langevin loops). The definition the
kernels implement is :mod:`febm_ref.models.mlp`.
"""
