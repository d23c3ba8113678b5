"""Checkers for the exercises of notebook 07 (learning rate, monitoring the loss); the pattern of
``exercises.py``: compare with the reference on random inputs and name the typical mistake it matches."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lecture_lib.exercises import ExerciseError, _check

__all__ = ["ExerciseError", "check_smooth"]


# -- Exercise (notebook 07): the smoothing slider, a debiased exponential moving average --------------------


def _smooth(loss, beta, *, debias=True, swapped=False, t_shift=0, seed_first=False):
    loss = np.asarray(loss, np.float64)
    s, out = 0.0, []
    for t, x in enumerate(loss, start=1):
        if seed_first and t == 1:
            s = x
        elif swapped:
            s = (1 - beta) * s + beta * x
        else:
            s = beta * s + (1 - beta) * x
        out.append(s / (1 - beta ** (t + t_shift)) if debias and not seed_first else s)
    return np.asarray(out)


SMOOTH_MISTAKES = [
    (
        lambda *a: _smooth(*a, debias=False),
        "your curve starts far below the loss: s starts at 0, so the first values are biased toward 0 "
        "(s₁ = (1 − β)·loss₁). Divide by (1 − βᵗ), t = 1, 2, …, as Adam does with its moments",
    ),
    (
        lambda *a: _smooth(*a, swapped=True),
        "β and 1 − β are swapped: β weighs the past, s ← β·s + (1 − β)·loss, so a larger β smooths more",
    ),
    (
        lambda *a: _smooth(*a, t_shift=1),
        "the correction uses t + 1: t counts the values seen including this one (1 − β¹ for the first)",
    ),
    (
        lambda *a: _smooth(*a, seed_first=True),
        "starting s at the first loss instead of 0 and not dividing by (1 − βᵗ) gives a different average: "
        "start at s = 0 and correct with 1 − βᵗ",
    ),
]


def check_smooth(smooth: Callable, *, seed: int = 0) -> str:
    """``smooth(loss, beta)``: the debiased EMA, ``s_t = β s_{t−1} + (1 − β) loss_t`` over ``1 − βᵗ``."""
    if not callable(smooth):
        raise TypeError(f"pass your function itself, e.g. check_smooth(smooth); got {smooth!r}")
    rng = np.random.default_rng(seed)
    cases = []
    for n, beta in ((5, 0.5), (30, 0.9), (12, 0.99)):
        cases.append((2.3 * np.exp(-0.05 * np.arange(n)) + 0.3 * rng.random(n), beta))

    def student(loss, beta):
        return np.asarray(smooth(np.array(loss), beta), np.float64)

    return _check("smooth", student, _smooth, SMOOTH_MISTAKES, cases)
