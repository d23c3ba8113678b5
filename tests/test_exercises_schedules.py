"""Notebook 08's exercise checker: the reference passes, typical mistakes are named, a stub says so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lecture_lib import exercises
from lecture_lib import exercises_schedules as E


def reference(t, lr, warmup, total):  # written independently, one step at a time, as in a training loop
    out = []
    for k in np.asarray(t):
        if k < warmup:
            out.append(lr * k / warmup)
        elif k <= total:
            out.append(lr * 0.5 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup))))
        else:
            out.append(0.0)
    return np.array(out)


def no_shift(t, lr, warmup, total):
    t = np.asarray(t, float)
    return np.where(t < warmup, lr * t / warmup, lr * 0.5 * (1 + np.cos(np.pi * np.minimum(t / total, 1))))


def no_clip(t, lr, warmup, total):
    t = np.asarray(t, float)
    return np.where(
        t < warmup, lr * t / warmup, lr * 0.5 * (1 + np.cos(np.pi * (t - warmup) / (total - warmup)))
    )


def plus_one(t, lr, warmup, total):
    return np.where(
        np.asarray(t) < warmup, lr * (np.asarray(t) + 1) / warmup, reference(t, lr, warmup, total)
    )


def test_the_reference_passes_and_agrees_with_the_checker():
    assert "correct" in E.check_warmup_cosine(reference)
    t = np.arange(60)
    np.testing.assert_allclose(E._warmup_cosine(t, 0.3, 5, 50), reference(t, 0.3, 5, 50))


@pytest.mark.parametrize(
    "fn,match",
    [
        (no_shift, "count the cosine's progress from the end of the warmup"),
        (no_clip, "climbs back up"),
        (plus_one, "your warmup starts above 0"),
        (lambda t, lr, w, T: reference(t, lr, w, T) * 2, "wrong result for the inputs"),
    ],
)
def test_mistakes_are_named(fn, match):
    with pytest.raises(exercises.ExerciseError, match=match):
        E.check_warmup_cosine(fn)


def test_the_stub_says_not_written_yet():
    def stub(t, lr, warmup, total):
        raise NotImplementedError("your code here")

    with pytest.raises(exercises.ExerciseError, match="not written yet"):
        E.check_warmup_cosine(stub)
    with pytest.raises(TypeError, match="pass your function itself"):
        E.check_warmup_cosine(None)
