"""The experiments: drivers that build targets, models, samplers and training runs and return
their results (the CLI in :mod:`febm_ref.commands` only parses arguments and prints).

* :mod:`febm_ref.experiments.fit1d` -- the paper's 1-D experiment against exact optima;
* :mod:`febm_ref.experiments.fit2d` -- the 2-D toys with Langevin negatives and exact grid
  divergences (until 0.2.0 ``febm_ref.experiments.fit2d``);
* :mod:`febm_ref.experiments.fit2d_table` -- the 2-D results table over targets, methods, seeds.
"""
