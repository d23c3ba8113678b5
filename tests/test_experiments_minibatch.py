"""experiments_minibatch.py: the wall-clock timings behind notebook 05's claims. Timings on a shared CI
machine are noisy, so the tests check shapes, signs and the large effects only (vectorization: far cheaper
per sample in a large batch)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import lecture_lib.experiments_minibatch as M
from lecture_lib import sampling


def test_time_per_sample_falls_with_the_batch_size():
    sizes, t = M.time_per_sample((1, 128), repeats=5)
    assert list(sizes) == [1, 128] and np.all(t > 0) and t[1] < t[0]


def test_epoch_time_digits_times_one_epoch_per_batch_size():
    sizes, t = M.epoch_time_digits((32, 1437), repeats=2)
    assert list(sizes) == [32, 1437] and t.shape == (2,) and np.all(t > 0)


def test_wallclock_curves_give_the_cost_after_each_epoch_at_increasing_times():
    curves = M.wallclock_curves(((32, 0.1, 3), (1437, 1.0, 2)), repeats=1)
    assert list(curves) == [32, 1437]
    for b, (t, cost) in curves.items():
        epochs = 3 if b == 32 else 2
        assert t.shape == cost.shape == (epochs,)
        assert np.all(np.diff(t) > 0) and np.all(t > 0) and np.all(np.isfinite(cost))
    assert curves[32][1][-1] < curves[32][1][0]  # SGD on minibatches lowers the cost


def test_cost_at_reads_the_last_epoch_within_the_budget():
    curves = {32: (np.array([0.1, 0.2, 0.3]), np.array([3.0, 2.0, 1.0]))}
    assert M.cost_at(curves, 32, 0.25) == 2.0
    assert M.cost_at(curves, 32, 0.3) == 1.0
    assert M.cost_at(curves, 32, 0.05) == math.inf


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: M.time_per_sample((0, 4)), ValueError, "batch_sizes must be a positive integer"),
        (lambda: M.time_per_sample(()), ValueError, "batch_sizes must be a non-empty sequence"),
        (lambda: M.time_per_sample((4,), repeats=0), ValueError, "repeats must be a positive integer"),
        (lambda: M.time_per_sample((4,), sizes=(64, 2.5)), TypeError, "sizes must be a positive integer"),
        (lambda: M.epoch_time_digits((32, 5000)), ValueError, "batch_sizes must be at most n=1437"),
        (lambda: M.epoch_time_digits((32,), seed=-1), ValueError, "seed must be a non-negative integer"),
        (lambda: M.wallclock_curves(repeats=0), ValueError, "repeats must be a positive integer"),
    ],
)
def test_timing_helpers_reject_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_timing_inputs_come_from_numpy_in_the_layout_of_sampling_batches():
    for n, b in ((10, 3), (1437, 32), (1437, 1437), (7, 1)):
        idx, mask = M._epoch_batches(np.random.default_rng(0), n, b)
        ref_idx, ref_mask = sampling.batches(jax.random.key(0), n, b, 1)
        assert idx.shape == ref_idx.shape[1:] and idx.dtype == np.int32
        np.testing.assert_array_equal(mask, np.asarray(ref_mask[0]))
        assert sorted(idx[mask]) == list(range(n)) and not idx[~mask].any()  # a permutation, padded with 0
    layer = M._uniform_layer(np.random.default_rng(0), 64, 10)
    assert layer["W"].shape == (64, 10) and layer["W"].dtype == np.float32 and layer["b"].shape == (10,)
    assert np.abs(layer["W"]).max() <= 1 / 8 and np.abs(layer["b"]).max() <= 1 / 8
