"""lecture_lib: the JAX library behind the "Training Neural Networks: Optimization II" companion."""

from lecture_lib import optimizers, surfaces
from lecture_lib.trajectories import Trajectory, run, run_many

__all__ = ["optimizers", "surfaces", "run", "run_many", "Trajectory"]
__version__ = "0.1.0"
