"""Behaviour of notebook 07's panels (learning rate, monitoring the loss) beyond the generic panel test."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from lecture_lib import experiments_monitoring as M
from lecture_lib.panels import PANELS, learning_rate, lr_monitoring

LN10 = math.log(10)
LINE = re.compile(
    r"^Finished epoch (\d+) / 10: cost (\S+), train: \d\.\d{6}, val \d\.\d{6}, lr \d\.\d{6}e[+-]\d\d$"
)


@pytest.fixture(scope="module")
def lr_panel():
    return PANELS["lr_experiment"]()


@pytest.fixture(scope="module")
def heatmap():
    return PANELS["lr_sweep_heatmap"]()


@pytest.fixture(scope="module")
def gallery():
    return PANELS["loss_gallery"]()


@pytest.fixture(scope="module")
def range_panel():
    return PANELS["lr_range_test"]()


def set_(panel, **values):
    with panel.hold():
        for k, v in values.items():
            panel.controls[k].value = v
    return panel.hist if hasattr(panel, "hist") else None


def test_initial_cost_is_ln10_for_small_weights(lr_panel):
    for init, tol in (("1e-4·randn (tiny)", 1e-5), ("0.01·randn (small)", 2e-3)):
        h = set_(lr_panel, init=init, lr=1e-3, seed=0)
        assert abs(float(h.loss[0]) - LN10) < tol  # −ln(1/10): a uniform softmax over 10 classes
    set_(lr_panel, init="0.01·randn (small)")


def test_tiny_rate_barely_moves_the_cost_but_accuracy_creeps_up(lr_panel):
    gains, changes = [], []
    for seed in (0, 1, 2):
        h = set_(lr_panel, lr=1e-3, reg=1e-6, seed=seed, init="0.01·randn (small)")
        cost, val = np.asarray(h.cost, np.float64), np.asarray(h.val_acc, np.float64)
        changes.append(abs(cost[-1] - float(h.loss[0])) / LN10)
        gains.append(val[-1] - val[0])
    assert max(changes) < 1e-3  # the cost moves in the 4th significant digit, as on the slide
    assert np.mean(gains) > 0.03 and min(gains) >= 0  # yet the accuracy rises


def test_huge_rate_shows_diverged_at_update_k_and_never_a_blank_plot(lr_panel):
    h = set_(lr_panel, lr=1e6, seed=0)
    k = int(h.diverged_at)
    assert k >= 0
    fig = lr_panel.figure
    assert f"diverged at update {k + 1}" in fig.layout.title.text
    marker = fig.data[6]
    assert list(marker.x) == [k + 1] and np.isfinite(marker.y[0]) and "diverged at update" in marker.text[0]
    y = np.asarray(fig.data[0].y, np.float64)
    assert np.isfinite(y).sum() >= 1 and not np.isinf(y).any()  # nan gaps, never inf
    lines = h.log().splitlines()
    assert all(LINE.match(x) for x in lines[:-1]) and lines[-1].startswith("finished optimization.")
    assert {LINE.match(x).group(2) for x in lines[k // lr_panel.m + 1 : -1]} <= {"nan", "inf"}
    assert "cost nan" in lr_panel.log.value or "cost inf" in lr_panel.log.value


def test_good_rate_learns_and_regularisation_raises_the_cost(lr_panel):
    h = set_(lr_panel, lr=0.3, reg=1e-6, seed=0)
    assert int(h.diverged_at) == -1 and float(h.cost[-1]) < 0.1 and float(h.val_acc[-1]) > 0.9
    assert "diverged" not in lr_panel.figure.layout.title.text and len(lr_panel.figure.data[6].x) == 0
    low = float(h.cost[-1])
    h = set_(lr_panel, reg=1e-1)
    assert float(h.cost[-1]) > low  # cs231n: raising the regularisation raises the loss
    set_(lr_panel, reg=1e-6, lr=1e-3)


def test_log_has_the_slides_format(lr_panel):
    set_(lr_panel, lr=1e-3, seed=0)
    lines = lr_panel.hist.log().splitlines()
    assert len(lines) == 11 and all(LINE.match(x) for x in lines[:10])
    assert lines[0] in lr_panel.log.value


def test_moving_the_training_controls_compiles_nothing(lr_panel, range_panel, count_compiles):
    with count_compiles() as c:
        for lr in (1e-5, 0.1, 3.0, 1e5):
            lr_panel.controls["lr"].value = lr
        lr_panel.controls["reg"].value = 1e-2
        lr_panel.controls["seed"].value = 7
        for init in learning_rate.INITS:
            lr_panel.controls["init"].value = init
        range_panel.controls["lr_start"].value = 1e-5
        range_panel.controls["lr_end"].value = 10.0
        range_panel.controls["seed"].value = 3
    assert c.count == 0


def test_cifar_shaped_data_trains_the_slides_3072_50_10_net(tmp_path):
    import pickle

    import lecture_lib as ll

    rng = np.random.default_rng(0)
    for name in ll.data.CIFAR10_FILES:  # a stand-in folder of the CIFAR-10 python batches, 20 images each
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, 20))}, fh)  # fmt: skip
    cifar = ll.data.cifar10(tmp_path, n_train=100, n_val=20)
    panel = learning_rate.LRExperiment(data=cifar, batch_size=10)
    assert panel.sizes == (3072, 50, 10) and "3072-50-10 on cifar10" in panel.figure.layout.title.text
    panel.controls["init"].value = "1e-4·randn (tiny)"
    assert abs(float(panel.hist.loss[0]) - LN10) < 1e-3


def test_heatmap_marks_diverged_cells_and_reads_the_usable_range(heatmap):
    g = heatmap.grid
    heatmap.controls["view"].value = "worst seed"
    heatmap.controls["epoch"].value = 10
    heatmap.controls["fraction"].value = 0.5
    bad = ~np.isfinite(g.cost).all(axis=1)  # (L, epochs): some seed is nan there
    z = np.asarray(heatmap.figure.data[1].z, np.float64)
    np.testing.assert_array_equal(~np.isnan(z), bad.T)
    # the range recomputed by hand: every seed's cost finite and <= ln10 / 2 after epoch 10
    ok = np.isfinite(g.cost[:, :, -1]).all(1) & (np.nan_to_num(g.cost[:, :, -1], nan=9) <= 0.5 * LN10).all(1)
    lo, hi = g.lrs[ok].min(), g.lrs[ok].max()
    assert heatmap.usable() == (lo, hi)
    assert learning_rate.fmt_lr(lo) in heatmap.figure.layout.title.text
    heatmap.controls["fraction"].value = 0.05
    lo2, hi2 = heatmap.usable()
    assert lo2 >= lo and hi2 <= hi  # a stricter rule can only shrink the range
    heatmap.controls["fraction"].value = 0.5


def test_gallery_quiz_scores_answers_and_reveals_the_truth(gallery):
    truth = gallery.truth
    assert sorted(truth.values()) == sorted(M.GALLERY)
    gallery.controls["A"].value = truth["A"]
    wrong = next(x for x in M.GALLERY if x != truth["B"])
    gallery.controls["B"].value = wrong
    assert gallery.score() == (1, 2)
    assert (
        "✓" in gallery.figure.layout.annotations[0].text and "✗" in gallery.figure.layout.annotations[1].text
    )
    assert "1 of 2 right" in gallery.figure.layout.title.text
    gallery.controls["reveal"].value = True
    assert all(truth[x] in gallery.figure.layout.annotations[i].text for i, x in enumerate("ABCDEF"))
    gallery.controls["reveal"].value = False
    for x in "AB":
        gallery.controls[x].value = lr_monitoring.UNANSWERED


def test_gallery_smoothing_draws_the_ema_and_marks_the_diverged_run(gallery):
    gallery.controls["smoothing"].value = 0.5
    for i, x in enumerate("ABCDEF"):
        run = gallery.runs[gallery.truth[x]]
        np.testing.assert_allclose(gallery.figure.data[3 * i + 1].y, M.ema(run.loss, 0.5))
        marker = gallery.figure.data[3 * i + 2]
        assert (len(marker.x) == 1) == (run.diverged_at >= 0)
    gallery.controls["smoothing"].value = 0.9


def test_range_panel_draws_the_suggestion_of_range_test(range_panel):
    set_(range_panel, lr_start=1e-4, lr_end=100.0, seed=1, smoothing=0.9, factor=4.0)
    r = M.range_test(seed=1)
    np.testing.assert_allclose(range_panel.figure.data[2].y, r.smooth)
    assert list(range_panel.figure.data[4].x) == [r.lr_min_loss] * 2
    assert list(range_panel.figure.data[5].x) == [r.lr_blowup] * 2
    assert f"{r.lr_min_loss:.2g}" in range_panel.figure.layout.title.text
