"""Notebook 07's exercise checker: the reference passes, each named mistake is caught with its message."""

from __future__ import annotations

import numpy as np
import pytest

from lecture_lib import exercises_lr as X
from lecture_lib import experiments_monitoring as M


def reference(loss, beta):
    s, out = 0.0, []
    for t, x in enumerate(loss, start=1):
        s = beta * s + (1 - beta) * x
        out.append(s / (1 - beta**t))
    return np.array(out)


def no_debias(loss, beta):
    s, out = 0.0, []
    for x in loss:
        s = beta * s + (1 - beta) * x
        out.append(s)
    return np.array(out)


def swapped(loss, beta):
    s, out = 0.0, []
    for t, x in enumerate(loss, start=1):
        s = (1 - beta) * s + beta * x
        out.append(s / (1 - beta**t))
    return np.array(out)


def shifted(loss, beta):
    s, out = 0.0, []
    for t, x in enumerate(loss, start=1):
        s = beta * s + (1 - beta) * x
        out.append(s / (1 - beta ** (t + 1)))
    return np.array(out)


def seeded(loss, beta):
    s, out = loss[0], [loss[0]]
    for x in loss[1:]:
        s = beta * s + (1 - beta) * x
        out.append(s)
    return np.array(out)


def test_reference_and_library_ema_pass():
    assert "correct" in X.check_smooth(reference)
    assert "correct" in X.check_smooth(lambda loss, beta: M.ema(loss, beta))  # the panels' smoothing


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (no_debias, "biased toward 0"),
        (swapped, "β and 1 − β are swapped"),
        (shifted, "the correction uses t \\+ 1"),
        (seeded, "starting s at the first loss"),
        (lambda loss, beta: np.asarray(loss), "wrong result for the inputs"),
    ],
)
def test_mistakes_are_named(fn, match):
    with pytest.raises(X.ExerciseError, match=match):
        X.check_smooth(fn)


def test_stub_and_non_function():
    def stub(loss, beta):
        raise NotImplementedError("your code here")

    with pytest.raises(X.ExerciseError, match="not written yet"):
        X.check_smooth(stub)
    with pytest.raises(TypeError, match="pass your function itself"):
        X.check_smooth(0.9)
