"""experiments_recap.py, the poor-conditioning claim: steps to a tolerance grow ∝ κ for gradient descent at
its best fixed step and ∝ √κ for heavy ball at Polyak's optimal parameters, against closed forms. (Wilson
et al. and minibatch L-BFGS are checked in ``test_experiments_lr.py``.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

import lecture_lib.experiments_recap as R
from lecture_lib import experiments

KAPPAS = np.geomspace(10.0, 1000.0, 9)


@pytest.fixture(scope="module")
def counts():
    return {m: R.steps_to_tolerance(KAPPAS, momentum=m) for m in (False, True)}


def test_steps_grow_like_kappa_and_like_its_root_with_momentum(counts):
    assert np.all(counts[False] > 0) and np.all(counts[True] > 0)
    assert float(experiments.loglog_slope(KAPPAS, counts[False])) == pytest.approx(1.0, abs=0.1)
    assert float(experiments.loglog_slope(KAPPAS, counts[True])) == pytest.approx(0.5, abs=0.1)
    assert np.all(counts[True] < counts[False])


@pytest.mark.parametrize("i", [0, -1])
def test_gradient_descent_steps_match_the_closed_form(counts, i):
    # at the best η the error shrinks by (κ−1)/(κ+1) a step, in every direction
    k = KAPPAS[i]
    expected = math.log(R.CONDITIONING_TOL) / math.log((k - 1) / (k + 1))
    assert counts[False][i] == pytest.approx(expected, rel=0.01, abs=1)


def test_best_parameters_and_stability_limit_closed_forms():
    assert R.best_parameters(100.0, False) == pytest.approx((2 / 101, 0.0))
    eta, beta = R.best_parameters(100.0, True)
    assert eta == pytest.approx(4 / 121) and beta == pytest.approx((9 / 11) ** 2)
    assert R.stability_limit(100.0) == pytest.approx(0.02)
    assert R.stability_limit(100.0, beta) == pytest.approx(2 * (1 + beta) / 100)
    assert R.best_parameters(1.0, False)[0] == pytest.approx(1.0)  # κ = 1: one step to the minimum


def test_quadratic_run_counts_steps_and_marks_divergence():
    f32 = np.float32
    params, steps, diverged_at = R.quadratic_run(f32(1.0), f32(0.3), f32(1.0), f32(0.0), shown=3)
    assert params.shape == (4, 2) and int(steps) == 1 and int(diverged_at) == -1
    np.testing.assert_allclose(params[1], 0.0, atol=1e-6)
    _, steps, diverged_at = R.quadratic_run(f32(100.0), f32(0.3), f32(1.05 * 2 / 100), f32(0.0), steps=2000)
    assert int(steps) == -1 and int(diverged_at) > 0  # past the stability limit 2/λ_max


def test_steps_to_tolerance_reports_minus_one_when_not_reached():
    assert R.steps_to_tolerance([1000.0], momentum=False, steps=100).tolist() == [-1]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: R.steps_to_tolerance([0.5, 10.0], momentum=False), "kappas must be a non-empty 1-D"),
        (lambda: R.steps_to_tolerance([], momentum=False), "kappas must be a non-empty 1-D"),
        (lambda: R.steps_to_tolerance([10.0], momentum=False, tol=1.5), r"tol must be in \(0, 1\)"),
        (lambda: R.steps_to_tolerance([10.0], momentum=False, steps=0), "steps must be a positive integer"),
    ],
)
def test_steps_to_tolerance_rejects_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_sweeps_of_different_lengths_share_one_compile():
    R.steps_to_tolerance(np.geomspace(10, 1000, 9), momentum=False)
    before = R._sweep._cache_size()
    long = R.steps_to_tolerance(np.geomspace(1, 1000, 28), momentum=True)
    short = R.steps_to_tolerance(np.geomspace(1, 1000, 28)[:5], momentum=True)
    assert R._sweep._cache_size() == before and long.shape == (28,)
    np.testing.assert_array_equal(short, long[:5])  # padding changes nothing
