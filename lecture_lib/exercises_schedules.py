"""Checker for notebook 08's exercise: linear warmup into cosine decay, the schedule of most recent models.

``warmup_cosine(t, lr, warmup, total)`` rises linearly from 0 at t = 0 to ``lr`` at t = ``warmup``, then
follows a half cosine from ``lr`` down to 0 at t = ``total`` (and stays 0 after), with t an integer array:

    eta_t = lr * t / warmup                                   for t < warmup
    eta_t = lr * ½ (1 + cos(π (t − warmup) / (total − warmup)))  for warmup ≤ t ≤ total, 0 after
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lecture_lib.exercises import _check


def _warmup_cosine(t, lr, warmup, total, *, shift=True, clip=True, ramp_plus_one=False, full_cos=False):
    t = np.asarray(t, np.float64)
    ramp = lr * (t + 1 if ramp_plus_one else t) / warmup
    u = (t - warmup) / (total - warmup) if shift else t / total
    if clip:
        u = np.minimum(u, 1.0)
    decay = lr * (np.cos(np.pi * u) if full_cos else 0.5 * (1 + np.cos(np.pi * u)))
    return np.where(t < warmup, ramp, decay)


MISTAKES = [
    (
        lambda *a: _warmup_cosine(*a, shift=False),
        "your cosine starts at t = 0, so after the warmup the rate jumps down to the cosine's value at "
        "t = warmup: count the cosine's progress from the end of the warmup, (t − warmup)/(total − warmup)",
    ),
    (
        lambda *a: _warmup_cosine(*a, clip=False),
        "after t = total your rate climbs back up (the cosine is periodic): hold the progress at 1, so the "
        "rate stays 0 from t = total on",
    ),
    (
        lambda *a: _warmup_cosine(*a, ramp_plus_one=True),
        "your warmup starts above 0: at t = 0 the rate is lr·0/warmup = 0 (t counts from 0)",
    ),
    (
        lambda *a: _warmup_cosine(*a, full_cos=True),
        "lr·cos(π u) goes negative: the slide's cosine is ½·lr·(1 + cos(π u)), from lr down to 0",
    ),
]


def check_warmup_cosine(warmup_cosine: Callable, *, seed: int = 0) -> str:
    """``warmup_cosine(t, lr, warmup, total)`` for an int array ``t``; see the module docstring."""
    if not callable(warmup_cosine):
        raise TypeError(
            f"pass your function itself, e.g. check_warmup_cosine(warmup_cosine); got {warmup_cosine!r}"
        )
    rng = np.random.default_rng(seed)
    cases = []
    for warmup, total in ((5, 50), (1, 10), (20, 100)):
        cases.append((np.arange(total + 10), float(rng.uniform(0.01, 1.0)), warmup, total))

    def student(t, lr, warmup, total):
        return np.asarray(warmup_cosine(t, lr, warmup, total), np.float64)

    return _check("warmup_cosine", student, _warmup_cosine, MISTAKES, cases)
