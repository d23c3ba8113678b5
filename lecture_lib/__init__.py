"""lecture_lib: the JAX library behind the "Training Neural Networks: Optimization II" companion."""

from lecture_lib import _xla

_xla.configure()  # before any JAX array exists: see _xla.py

# ruff: noqa: E402

from lecture_lib import (
    curvature,
    data,
    experiments,
    models,
    optimizers,
    plots,
    sampling,
    schedules,
    second_order,
    surfaces,
    training,
)
from lecture_lib._cache import enable_compilation_cache
from lecture_lib.trajectories import Trajectory, run, run_many

__all__ = [
    "Trajectory",
    "curvature",
    "data",
    "experiments",
    "models",
    "sampling",
    "training",
    "enable_compilation_cache",
    "optimizers",
    "plots",
    "run",
    "run_many",
    "schedules",
    "second_order",
    "surfaces",
]
__version__ = "0.1.0"
