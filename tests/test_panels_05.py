"""Behaviour of notebook 05's panels (mini-batch gradient descent) beyond the generic panel test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lecture_lib import sampling
from lecture_lib.panels import PANELS, minibatch


@pytest.fixture(scope="module")
def paths_panel():
    return PANELS["minibatch_paths"]()


@pytest.fixture(scope="module")
def running_panel():
    return PANELS["running_loss"]()


def test_batch_plan_visits_every_sample_once_per_epoch_in_ceil_n_over_b_batches():
    idx, mask = minibatch.batch_plan(n=10, sizes=(1, 3, 10), epochs=2)
    for s, b in enumerate((1, 3, 10)):
        m = math.ceil(10 / b)
        used = mask[s].sum(axis=1)
        assert np.all(used[: 2 * m] > 0) and np.all(used[2 * m :] == 0)
        for e in range(2):
            rows = idx[s, e * m : (e + 1) * m][mask[s, e * m : (e + 1) * m]]
            assert sorted(rows) == list(range(10))


def test_padded_runs_match_a_plain_minibatch_loop(paths_panel):
    x, y, _, w_opt, _ = paths_panel.problem
    eta, b = 0.05, 8
    idx, mask = minibatch.batch_plan()
    s = minibatch.SIZES.index(b)
    w = (w_opt + np.array([-3.0, 2.5])).astype(np.float32).astype(np.float64)
    m = sampling.n_batches(minibatch.N_SAMPLES, b)
    for t in range(minibatch.EPOCHS * m):
        B = idx[s, t][mask[s, t]]
        w = w - eta * x[B].T @ (x[B] @ w - y[B]) / len(B)
    path = minibatch.run_all(eta, problem=paths_panel.problem)[b][0]
    assert path.shape == (minibatch.EPOCHS * m + 1, 2)
    np.testing.assert_allclose(path[-1], w, rtol=1e-3, atol=1e-3)


def test_paths_panel_draws_b_1_the_chosen_b_and_b_n(paths_panel):
    paths_panel.controls["log2_b"].value = 2  # b = 4
    data = paths_panel.figure.data
    assert "b = 4" in data[3].name and len(data[3].x) == minibatch.EPOCHS * 16 + 1
    assert len(data[2].x) == minibatch.EPOCHS * 64 + 1 and len(data[4].x) == minibatch.EPOCHS + 1
    assert len(data[6].y) == minibatch.EPOCHS + 1  # per epoch: one point per epoch boundary
    assert "m = ⌈n/b⌉ = <b>16</b>" in paths_panel.info.value


def test_full_batch_descends_monotonically_and_sgd_does_not(paths_panel):
    runs = minibatch.run_all(0.05, problem=paths_panel.problem)
    assert np.all(np.diff(runs[minibatch.N_SAMPLES][1]) < 0)
    assert np.any(np.diff(runs[1][1]) > 0)


def test_running_loss_panel_draws_history_running_loss(running_panel):
    running_panel.controls["window"].value = 37
    np.testing.assert_allclose(running_panel.figure.data[1].y, running_panel.hist.running_loss(37))
    assert "N = 37" in running_panel.figure.data[1].name


def test_running_loss_is_noisier_for_small_windows_and_lags_for_large(running_panel):
    hist = running_panel.hist
    noise = [minibatch.running_loss_noise(hist, n) for n in (1, 10, 50)]
    assert noise[0] > noise[1] > noise[2]
    cost = np.asarray(hist.cost)
    assert np.all(hist.running_loss(45, per_epoch=True)[:3] > cost[:3])


def test_batch_memory_counts_weights_activations_and_gradients():
    mem = minibatch.batch_memory_bytes((4, 3, 2), 5)
    P = 4 * 3 + 3 + 3 * 2 + 2
    assert mem["weights"] == 4 * P and mem["weight gradients"] == 4 * P
    assert mem["activations"] == mem["activation gradients"] == 4 * 5 * (4 + 2 * 3 + 2)
    assert minibatch.batch_memory_bytes((4, 3, 2), 5, optimizer_slots=2)["weights"] == 12 * P


def test_largest_batch_grows_with_the_budget_and_shrinks_with_adam():
    panel = PANELS["batch_memory"]()
    c = panel.controls
    c["model"].value = "MLP 3072-1024-1024-10 (CIFAR-10)"
    c["budget"].value = 1.0
    small = panel.largest_batch()[0]
    c["budget"].value = 10.0
    large = panel.largest_batch()[0]
    assert large >= 8 * small > 0
    c["model"].value = "MLP 150528-4096-4096-1000 (ImageNet pixels)"
    c["budget"].value = 12.0
    plain = panel.largest_batch()[0]
    c["adam"].value = True
    assert 0 < panel.largest_batch()[0] < plain
    c["budget"].value = 0.01
    assert panel.largest_batch()[0] == 0 and "not even b = 1" in panel.figure.data[5].name


def test_time_figure_draws_time_per_sample_and_epoch_times():
    # the timings themselves are tested in test_experiments_minibatch.py
    sizes, t = np.array([1, 128]), np.array([2e-5, 1e-6])
    fig = minibatch.time_figure(sizes, t, np.array([1, 2]), np.array([1e-3, 2e-3]))
    assert len(fig.data) == 2 and fig.layout.font.size >= 14
    np.testing.assert_allclose(fig.data[0].y, 1e6 * t)
    assert len(minibatch.time_figure(sizes, t).data) == 1


def test_wallclock_figure_draws_one_curve_per_batch_size():
    curves = {1: (np.array([0.1, 0.2]), np.array([2.0, 1.0])), 32: (np.array([0.05]), np.array([1.5]))}
    fig = minibatch.wallclock_figure(curves)
    assert [d.name for d in fig.data] == ["b = 1", "b = 32"]
    np.testing.assert_allclose(fig.data[0].x, [100.0, 200.0])  # milliseconds
