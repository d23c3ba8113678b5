"""Notebook 08's panels beyond the generic panel test: the drawn curves are the closed forms and torch's
ReduceLROnPlateau, and the numbers shown are those of the experiments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_experiments_schedules import closed_form

from lecture_lib import experiments_schedules as ex
from lecture_lib.panels import PANELS
from lecture_lib.panels.schedules import ALL, PLATEAU


@pytest.fixture(scope="module")
def atlas():
    return PANELS["schedule_atlas"]()


@pytest.mark.parametrize("per_epoch", [False, True])
def test_atlas_draws_every_schedule_as_its_closed_form(atlas, per_epoch):
    atlas.controls["per_epoch"].value = per_epoch
    atlas.controls["lr"].value = 0.8
    m, T = atlas.trainer.m, atlas.trainer.T
    t = np.arange(T) // m if per_epoch else np.arange(T)
    for name in ex.NAMES:
        atlas.controls["schedule"].value = name
        want = closed_form(name, 0.8, atlas.params(name), t, 1 if per_epoch else m)
        np.testing.assert_allclose(atlas.figure.data[13].y, want, rtol=2e-5, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(atlas.figure.data[ALL.index(name)].y, want, rtol=2e-5, atol=1e-7)
        assert name in atlas.formula.value and "$" in atlas.formula.value
    atlas.controls["per_epoch"].value = False


def test_atlas_sliders_are_in_epochs_and_moving_one_shows_its_schedule(atlas):
    atlas.controls["schedule"].value = "cosine"
    atlas.controls["step: step_size"].value = 2
    assert atlas.controls["schedule"].value == "step"
    y, m = np.asarray(atlas.figure.data[13].y), atlas.trainer.m
    assert y[2 * m - 1] == y[0] and y[2 * m] < y[0]  # the first cut after 2 epochs = 2m updates
    assert list(atlas.params_box.children) == atlas.boxes["step"]


def test_atlas_plateau_curve_is_torch_reduce_lr_on_plateau_on_the_validation_loss(atlas):
    atlas.controls["lr"].value = 1.5
    atlas.controls["schedule"].value = PLATEAU
    runs = atlas.runs(PLATEAU)
    p = atlas.params(PLATEAU)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.5)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=p["factor"], patience=p["patience"], threshold=p["threshold"]
    )
    want = []
    for e in range(atlas.trainer.epochs):
        want.append(opt.param_groups[0]["lr"])
        sched.step(float(np.float32(runs.val_loss[0, e])))
    np.testing.assert_allclose(atlas.figure.data[13].y, np.repeat(want, atlas.trainer.m), rtol=1e-6)


def test_atlas_trains_the_chosen_schedule_and_the_constant_rate_for_every_seed(atlas):
    atlas.controls["lr"].value = ex.LR
    atlas.controls["schedule"].value = "cosine"
    runs, const = atlas.runs("cosine"), atlas.runs("constant")
    data = atlas.figure.data
    np.testing.assert_allclose(data[19].y, runs.cost.mean(0), rtol=1e-6)  # mean of the chosen
    np.testing.assert_allclose(data[16].y, const.cost.mean(0), rtol=1e-6)
    np.testing.assert_allclose(data[17].y, runs.cost.min(0), rtol=1e-6)
    assert f"lower in {len(atlas.trainer.seeds)} of {len(atlas.trainer.seeds)} seeds" in atlas.summary.value


def test_warmup_panel_shows_divergence_without_and_training_with_warmup():
    panel = PANELS["warmup_rescue"]()
    without, with_ = panel.result()
    n = len(panel.trainer.seeds)
    assert f"no warmup: diverged in <b>{n} of {n}</b>" in panel.summary.value
    assert f"warmup: diverged in <b>0 of {n}</b>" in panel.summary.value
    # every seed diverged without warmup: no accuracy to average (not "nan"); with warmup, the mean of all
    assert "no warmup: diverged in" in panel.summary.value and "seeds, first at update" in panel.summary.value
    assert "no seed trained" in panel.summary.value and "nan" not in panel.summary.value
    assert f"final validation accuracy {with_.val_acc[:, -1].mean():.3f}" in panel.summary.value
    m, w = panel.trainer.m, ex.WARMUP_EPOCHS
    ramp = np.asarray(panel.figure.data[1].y)[: m * w : m]  # the rate at the start of each warmup epoch
    np.testing.assert_allclose(ramp, ex.WARMUP_LR * np.arange(w) / w, rtol=1e-5)
    np.testing.assert_allclose(panel.figure.data[13].y, with_.val_acc.mean(0), rtol=1e-6)


def test_batch_scaling_panel_draws_the_experiments():
    panel = PANELS["batch_scaling"]()
    panel.controls["k"].value = 1
    data = panel.figure.data
    np.testing.assert_allclose(data[2].y, data[5].y)  # k = 1 is the baseline itself
    panel.controls["k"].value = 512  # kη = 2.56 > 2/L = 1.74: diverges (a gap in the plot)
    assert "2/L = 1.74" in panel.summary.value
    panel.controls["x_axis"].value = "updates"
    inc = ex.batch_increase(factor=panel.controls["factor"].value)
    np.testing.assert_array_equal(data[8].x, inc.updates[0])
    assert data[11].x[-1] < 0.5 * data[8].x[-1]  # batch growth: fewer than half the updates


def test_warmup_panel_runs_are_warmup_rescue():
    panel = PANELS["warmup_rescue"]()
    panel.controls["warmup"].value = 2
    for got, want in zip(panel.result(), ex.warmup_rescue(ex.WARMUP_LR, 2)):
        np.testing.assert_allclose(got.cost, want.cost, rtol=1e-6)
