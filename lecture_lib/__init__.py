"""lecture_lib: the JAX library behind the "Training Neural Networks: Optimization II" companion."""

from lecture_lib import optimizers, plots, surfaces
from lecture_lib._cache import enable_compilation_cache
from lecture_lib.trajectories import Trajectory, run, run_many

__all__ = ["enable_compilation_cache", "optimizers", "plots", "surfaces", "run", "run_many", "Trajectory"]
__version__ = "0.1.0"
