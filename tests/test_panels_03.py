"""Behaviour of the notebook-03 panels: batch GD vs SGD on a function fit, and SGD's sample orders."""

from __future__ import annotations

import numpy as np
import pytest

from lecture_lib.panels import PANELS, incremental, orders


@pytest.fixture(scope="module")
def fit():
    return PANELS["batch_vs_sgd_fit"]()


@pytest.fixture(scope="module")
def orders_panel():
    return PANELS["sampling_orders"]()


def test_one_sgd_epoch_beats_one_batch_update_at_equal_eta(fit):
    fit.controls["eta"].value = 0.5
    assert fit.err_sgd[1] < 0.5 * fit.err_gd[1] < fit.err_gd[0]
    assert fit.w_gd.shape == (incremental.EPOCHS + 1, len(incremental.CENTERS))
    assert fit.w_sgd.shape == (incremental.EPOCHS * incremental.N_TRAIN + 1, len(incremental.CENTERS))


def test_animation_moves_gd_once_per_epoch_and_sgd_every_sample(fit):
    n = incremental.N_TRAIN
    fit.controls["step"].value = n - 1
    gd_before, sgd_before = np.asarray(fit.figure.data[2].y), np.asarray(fit.figure.data[3].y)
    fit.controls["step"].value = n - 2
    assert np.array_equal(np.asarray(fit.figure.data[2].y), gd_before)  # still 0 batch updates
    assert not np.array_equal(np.asarray(fit.figure.data[3].y), sgd_before)
    fit.controls["step"].value = n
    assert "after 1 update" in fit.figure.data[2].name
    assert fit.figure.data[4].x[0] in fit.x  # the highlighted sample is a training point
    assert "updates: batch GD <b>1</b>, SGD <b>20</b>" in fit.counter.value


def test_sgd_order_is_a_permutation_every_epoch(fit):
    n = incremental.N_TRAIN
    per_epoch = fit.order.reshape(incremental.EPOCHS, n)
    assert all(sorted(row) == list(range(n)) for row in per_epoch)
    assert len({tuple(r) for r in per_epoch}) > 1  # reshuffled


def test_too_large_eta_is_reported_not_raised(fit):
    fit.controls["eta"].value = incremental.ETA_RANGE[1]
    assert "diverged" in fit.counter.value
    fit.controls["eta"].value = 0.5


def test_raster_shows_each_order(orders_panel):
    c = orders_panel.controls
    c["order"].value = "sorted"
    z = np.asarray(orders_panel.figure.data[0].z)
    assert z.shape == (orders.SHOWN_EPOCHS, orders.N_SAMPLES)
    assert (z == np.arange(orders.N_SAMPLES)[None, :]).all()
    c["order"].value = "fixed"
    z = np.asarray(orders_panel.figure.data[0].z)
    assert (z == z[0]).all() and not (z[0] == np.arange(orders.N_SAMPLES)).all()
    c["order"].value = "reshuffle"
    z = np.asarray(orders_panel.figure.data[0].z)
    assert all(sorted(r) == list(range(orders.N_SAMPLES)) for r in z) and not (z == z[0]).all()
    c["order"].value = "replacement"
    z = np.asarray(orders_panel.figure.data[0].z)
    assert any(len(set(r)) < orders.N_SAMPLES for r in z)  # repeats and misses


def test_sorted_drifts_and_reshuffling_beats_replacement(orders_panel):
    orders_panel.controls["eta"].value = 0.05
    names = list(orders.ORDER_NAMES)
    tail = orders_panel.excess[:, -orders.TAIL :].mean(axis=1)
    spread = orders_panel.spread
    assert spread[names.index("sorted")] > 3 * spread[names.index("reshuffle")]
    assert tail[names.index("reshuffle")] < 0.5 * tail[names.index("replacement")]
    assert "spread sorted / reshuffle" in orders_panel.summary.value
