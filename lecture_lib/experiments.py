"""The experiments behind the lecture's claims, one place to find them.

Each is a pure function returning arrays, with the claim it measures in its docstring, and each claim is
checked by a test. They live in modules of one theme each:

- ``experiments_sgd``: the variance of the batch error against b, the empirical risk as an unbiased estimate,
  SGD on a noisy quadratic (noise ball, Robbins–Monro rates), batch vs SGD vs minibatch at equal gradient
  evaluations, sampling orders;
- ``experiments_lr``: the learning-rate sweep on the two-layer net, Smith's range test, the linear scaling
  rule, increasing the batch instead of decaying the rate;
- ``experiments_monitoring``: the learning-rate × epochs grid and its usable range, Smith's range test on the
  two-layer net, the loss-curve gallery ("what is wrong with this run?"), EMA smoothing;
- ``experiments_schedules``: every schedule in training (tabulated, vmapped over seeds), decay vs constant,
  the linear-warmup rescue of a deeper net, linear scaling and batch increase with per-epoch curves;
- ``experiments_recap``: Wilson et al.'s construction (adaptive methods generalise worse), minibatch L-BFGS,
  steps to a tolerance against the condition number κ (∝ κ, ∝ √κ with momentum);
- ``experiments_lbfgs``: notebook 01's L-BFGS runs, full batch vs naive and same-batch minibatch pairs, with a
  traced history size (``experiments_lbfgs.runs``; not re-exported here, its names are too generic);
- ``experiments_minibatch``: wall-clock timings of notebook 05: time per sample against b, one epoch on digits
  against b, training cost against wall-clock time.
"""

from lecture_lib.experiments_lr import (
    batch_increase,
    linear_scaling,
    lr_range_test,
    lr_sweep,
    scaling_warmup,
    suggest_range,
)
from lecture_lib.experiments_minibatch import cost_at, epoch_time_digits, time_per_sample, wallclock_curves
from lecture_lib.experiments_monitoring import ema, gallery, grid_sweep, usable_range
from lecture_lib.experiments_recap import minibatch_lbfgs, steps_to_tolerance, wilson
from lecture_lib.experiments_schedules import compare, warmup_rescue
from lecture_lib.experiments_sgd import (
    batch_error_variance,
    batch_vs_sgd,
    empirical_risks,
    loglog_slope,
    quadratic_plateau,
    sampling_orders,
    sgd_noisy_quadratic,
    theorem_4_6_bound,
    theorem_4_7_nu,
    time_per_epoch,
)

__all__ = [
    "batch_error_variance",
    "batch_increase",
    "batch_vs_sgd",
    "compare",
    "cost_at",
    "ema",
    "empirical_risks",
    "epoch_time_digits",
    "gallery",
    "grid_sweep",
    "linear_scaling",
    "loglog_slope",
    "lr_range_test",
    "lr_sweep",
    "minibatch_lbfgs",
    "quadratic_plateau",
    "sampling_orders",
    "scaling_warmup",
    "sgd_noisy_quadratic",
    "steps_to_tolerance",
    "suggest_range",
    "theorem_4_6_bound",
    "theorem_4_7_nu",
    "time_per_epoch",
    "time_per_sample",
    "usable_range",
    "wallclock_curves",
    "warmup_rescue",
    "wilson",
]
