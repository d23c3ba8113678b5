"""Exercise checkers recognise the reference, name typical mistakes, and the student copy strips answers."""

from __future__ import annotations

import numpy as np
import pytest

from lecture_lib import exercises as E
from lecture_lib import student


def adam_reference(w, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), m, v


def adam_no_correction(w, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - lr * m / (np.sqrt(v) + eps), m, v


def adam_eps_inside(w, g, m, v, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - lr * (m / (1 - b1**t)) / np.sqrt(v / (1 - b2**t) + eps), m, v


def test_correct_answers_pass():
    assert "correct" in E.check_newton_step(lambda g, H: -np.linalg.solve(H, g))
    assert "correct" in E.check_adam_update(adam_reference)


@pytest.mark.parametrize(
    "fn,match",
    [
        (lambda g, H: np.linalg.solve(H, g), "the sign is wrong"),
        (lambda g, H: -H @ g, "you multiplied by H"),
        (lambda g, H: -g, "gradient step with η = 1"),
        (lambda g, H: np.zeros_like(g), "wrong result for the inputs"),
    ],
)
def test_newton_mistakes_are_named(fn, match):
    with pytest.raises(E.ExerciseError, match=match):
        E.check_newton_step(fn)


@pytest.mark.parametrize(
    "fn,match",
    [
        (adam_no_correction, "bias correction is missing"),
        (adam_eps_inside, "ε belongs outside the square root"),
    ],
)
def test_adam_mistakes_are_named(fn, match):
    with pytest.raises(E.ExerciseError, match=match):
        E.check_adam_update(fn)


def test_the_stub_says_not_written_yet():
    def stub(g, H):
        raise NotImplementedError("your code here")

    with pytest.raises(E.ExerciseError, match="not written yet"):
        E.check_newton_step(stub)
    with pytest.raises(TypeError, match="pass your function itself"):
        E.check_newton_step(3)


def test_student_copy_replaces_solution_blocks_at_their_indentation():
    source = "def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\nprint(f)\n"
    assert student.strip_solutions(source) == (
        'def f(x):\n    raise NotImplementedError("your code here")\n\nprint(f)\n'
    )
    with pytest.raises(ValueError, match="no matching"):
        student.strip_solutions("# BEGIN SOLUTION\nx = 1\n")


def test_student_notebooks_are_written(tmp_path):
    import json

    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["def g():\n", "    # BEGIN SOLUTION\n", "    return 1\n", "    # END SOLUTION\n"],
                "outputs": [],
                "execution_count": None,
                "metadata": {},
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.ipynb").write_text(json.dumps(nb))
    assert student.main([str(tmp_path / "src"), str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "x.ipynb").read_text())
    assert "".join(out["cells"][0]["source"]) == 'def g():\n    raise NotImplementedError("your code here")\n'


def sgd_epoch_reference(w, X, y, eta, order):
    w = np.array(w, float)
    for i in order:
        w = w - eta * (X[i] @ w - y[i]) * X[i]
    return w


def sgd_epoch_batch(w, X, y, eta, order):
    return w - eta * X.T @ (X @ w - y) / len(y)


def decaying_reference(grad, w0, eta0, tau, steps):
    w = np.array(w0, float)
    for k in range(steps):
        w = w - eta0 / (1 + k / tau) * grad(w)
    return w


def decaying_constant(grad, w0, eta0, tau, steps):
    w = np.array(w0, float)
    for _ in range(steps):
        w = w - eta0 * grad(w)
    return w


@pytest.mark.parametrize(
    "check,good,bad,match",
    [
        (E.check_sgd_epoch, sgd_epoch_reference, sgd_epoch_batch, "that is one batch update"),
        (E.check_decaying_sgd, decaying_reference, decaying_constant, "does not shrink"),
        (
            E.check_minibatches,
            lambda perm, b: [perm[i : i + b] for i in range(0, len(perm), b)],
            lambda perm, b: [perm[i * b : (i + 1) * b] for i in range(len(perm) // b)],
            "dropped the last, partial batch",
        ),
        (
            E.check_batch_variance,
            lambda v, b, n, replace: v / b if replace else v / b * (n - b) / (n - 1),
            lambda v, b, n, replace: v / b,
            "finite-population factor",
        ),
    ],
)
def test_notebook_03_to_06_checkers(check, good, bad, match):
    assert "correct" in check(good)
    with pytest.raises(E.ExerciseError, match=match):
        check(bad)
