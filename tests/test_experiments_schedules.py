"""experiments_schedules against references: closed forms, torch.optim.lr_scheduler, training.fit itself,
and experiments_lr's own (per-batch-size compiled) runs."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import torch

from lecture_lib import data as _data
from lecture_lib import experiments_lr, models, optimizers, schedules, training
from lecture_lib import experiments_schedules as ex

M, E = 23, 10  # updates per epoch on digits with batch 64; epochs


def closed_form(name, lr, p, t, u):
    """The rate at steps t (int array), durations given in epochs and u steps per epoch, in NumPy."""
    t = np.asarray(t, np.float64)
    T = E * u
    if name == "constant":
        return np.full_like(t, lr)
    if name == "step":
        return lr * p["gamma"] ** np.floor(t / (p["step_size"] * u))
    if name == "multistep":
        m1, m2 = p["m1"] * u, (p["m1"] + p["gap"]) * u
        return lr * p["gamma"] ** ((t >= m1).astype(float) + (t >= m2))
    if name == "exponential":
        return lr * p["gamma"] ** (t / u)
    if name == "1/k":
        return lr / (1 + t / (p["tau"] * u)) ** p["power"]
    if name == "inverse sqrt":
        return lr / np.sqrt(np.maximum(t, 1))
    if name == "linear":
        Tl, end = p["T"] * u, p["end"] * lr
        return lr + (end - lr) * np.minimum(t, Tl) / Tl
    if name == "polynomial":
        end = p["end"] * lr
        return (lr - end) * (1 - np.minimum(t, T) / T) ** p["power"] + end
    if name == "cosine":
        Tc, lo = p["T"] * u, p["floor"] * lr
        return lo + 0.5 * (lr - lo) * (1 + np.cos(np.pi * np.minimum(t, Tc) / Tc))
    if name == "SGDR":
        lo, Ti, start, out = p["floor"] * lr, p["period"] * u, 0, np.empty_like(t)
        while start <= t.max():
            inside = (t >= start) & (t < start + Ti)
            out[inside] = lo + 0.5 * (lr - lo) * (1 + np.cos(np.pi * (t[inside] - start) / Ti))
            start, Ti = start + Ti, Ti * p["mult"]
        return out
    if name == "trapezoid (WSD)":
        Tw, Td = p["warmup"] * u, p["cooldown"] * u
        up = np.where(t < Tw, t / max(Tw, 1), 1.0)
        down = np.where(t <= T - Td, 1.0, (T - t) / max(Td, 1))
        return np.where(t < T, lr * np.minimum(up, down), 0.0)
    if name == "triangular":
        s, lo = p["half_period"] * u, p["floor"] * lr
        return lo + (lr - lo) * (1 - np.abs(t % (2 * s) - s) / s)
    raise AssertionError(name)


@pytest.mark.parametrize("per_epoch", [False, True])
@pytest.mark.parametrize("name", ex.NAMES)
def test_make_schedule_is_the_closed_form_in_either_unit(name, per_epoch):
    u = 1 if per_epoch else M
    t = np.arange(E * M) // M if per_epoch else np.arange(E * M)
    sched = ex.make_schedule(name, 0.7, m=M, per_epoch=per_epoch)
    got = np.asarray(sched(t), np.float64)
    np.testing.assert_allclose(got, closed_form(name, 0.7, ex.DEFAULTS[name], t, u), rtol=2e-5, atol=1e-7)


def test_warmup_wraps_every_schedule_but_the_trapezoid():
    t = np.arange(E * M)
    s = ex.make_schedule("cosine", 1.0, m=M, warmup=2)
    cos = closed_form("cosine", 1.0, ex.DEFAULTS["cosine"], t, M)
    want = np.where(t < 2 * M, cos[2 * M] * t / (2 * M), cos)
    np.testing.assert_allclose(np.asarray(s(t)), want, rtol=2e-5, atol=1e-7)
    assert isinstance(ex.make_schedule("trapezoid (WSD)", 1.0, m=M, warmup=2), schedules.Trapezoid)


TORCH = {  # name -> torch scheduler stepped once per epoch, with the per-epoch defaults
    "step": lambda o, p: torch.optim.lr_scheduler.StepLR(o, p["step_size"], p["gamma"]),
    "multistep": lambda o, p: torch.optim.lr_scheduler.MultiStepLR(
        o, [p["m1"], p["m1"] + p["gap"]], p["gamma"]
    ),
    "exponential": lambda o, p: torch.optim.lr_scheduler.ExponentialLR(o, p["gamma"]),
    "cosine": lambda o, p: torch.optim.lr_scheduler.CosineAnnealingLR(o, p["T"], p["floor"] * 0.7),
    "SGDR": lambda o, p: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, p["period"], p["mult"]),
    "polynomial": lambda o, p: torch.optim.lr_scheduler.PolynomialLR(o, E, p["power"]),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_per_epoch_schedules_match_torch_stepped_once_per_epoch(name):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.7)
    sched = TORCH[name](opt, ex.DEFAULTS[name])
    want = []
    for _ in range(E):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    got = np.asarray(ex.make_schedule(name, 0.7, m=M, per_epoch=True)(np.arange(E)), np.float64)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)


@pytest.fixture(scope="module")
def tr():
    return ex.trainer()


def test_tabulated_training_is_training_fit_with_the_schedule(tr):
    sched = ex.make_schedule("cosine", 1.5, m=tr.m)
    runs = tr.run(sched)
    data, model = _data.digits(seed=0), models.mlp(list(ex.SIZES))
    for i, seed in enumerate(tr.seeds[:2]):
        h = training.fit(model, data, optimizers.sgd(1.5), epochs=E, batch_size=64, key=jax.random.key(seed),
                         schedule=sched, reg=ex.REG)  # fmt: skip
        np.testing.assert_allclose(runs.cost[i], np.asarray(h.cost), rtol=1e-4)
        np.testing.assert_allclose(runs.val_acc[i], np.asarray(h.val_acc), atol=1e-6)


def test_plateau_rates_are_torch_reduce_lr_on_plateau_fed_the_same_validation_losses(tr):
    p = ex.PLATEAU
    runs = tr.run_plateau(1.5, **p)
    for s in range(len(tr.seeds)):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.5)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=p["factor"], patience=p["patience"], threshold=p["threshold"]
        )
        want = []
        for e in range(E):
            want.append(opt.param_groups[0]["lr"])
            sched.step(float(np.float32(runs.val_loss[s, e])))
        np.testing.assert_allclose(runs.lr[s], want, rtol=1e-6)
    assert np.any(runs.lr[:, -1] < 1.5), "the default settings cut the rate at least once"


def test_decaying_schedules_end_below_the_constant_rate_for_every_seed():
    out = ex.compare(names=("constant", "multistep", "cosine", "linear", "trapezoid (WSD)", "exponential"))
    const = out.pop("constant").cost[:, -1]
    for name, r in out.items():
        assert np.all(r.cost[:, -1] < const), name


def test_warmup_rescues_a_rate_that_explodes_without_it():
    without, with_ = ex.warmup_rescue(ex.WARMUP_LR, ex.WARMUP_EPOCHS)
    m = ex.trainer(**ex.WARMUP_NET).m
    assert np.all((without.diverged_at >= 0) & (without.diverged_at < m))  # within the first epoch
    # learns: each seed's best of the last three epochs (at the edge of stability one epoch can dip)
    assert np.all(with_.diverged_at == -1) and np.all(with_.val_acc[:, -3:].max(axis=1) >= 0.85)


def test_warmup_rescue_trains_both_runs_at_once_with_the_numbers_of_each_run_alone():
    # run_groups: the two schedules side by side, one per CPU device; the numbers of run(), one by one
    without, with_ = ex.warmup_rescue(0.05, 2)  # neither diverges: both train all 10 epochs
    tr, S = ex.trainer(**ex.WARMUP_NET), schedules
    flat = S.constant(0.05)
    for got, want in zip((without, with_), (tr.run(flat), tr.run(S.warmup(flat, 2 * tr.m))), strict=True):
        np.testing.assert_array_equal(got.lr, want.lr)
        np.testing.assert_array_equal(got.diverged_at, want.diverged_at)
        assert (got.diverged_at == -1).all()
        for name in ("cost", "val_loss", "val_acc", "max_loss"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-5, atol=1e-6)
    assert not np.allclose(without.cost, with_.cost)  # two different schedules, not one twice
    with pytest.raises(ValueError, match=r"scheds must name at least one schedule, got scheds=\[\]"):
        tr.run_groups([])


def test_linear_scaling_with_accumulated_batches_is_experiments_lr_linear_scaling():
    ref = experiments_lr.linear_scaling(ks=(1, 4), epochs=2, seeds=2)
    got = ex.linear_scaling(4, epochs=2, seeds=2)
    np.testing.assert_allclose(got.gap_base, ref.gap[0], rtol=1e-3)
    np.testing.assert_allclose(got.gap, ref.gap[1], rtol=1e-3)
    np.testing.assert_allclose(got.gap0, ref.gap0, rtol=1e-6)


def test_batch_increase_curves_end_each_phase_at_experiments_lr_batch_increase():
    kw = dict(factor=3, phases=2, epochs_per_phase=2, seeds=2)
    ref, got = experiments_lr.batch_increase(**kw), ex.batch_increase(**kw)
    np.testing.assert_allclose(got.gap[:, :, 1::2], ref.gap, rtol=1e-3)
    np.testing.assert_array_equal(got.updates[:, -1], ref.updates)
    assert list(got.batch_sizes[1]) == [16, 48] and got.updates[1, 1] == math.ceil(4000 / 16) * 2


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: ex.make_schedule("cosin", 1.0, m=M), "name must be one of .* got name='cosin'"),
        (lambda: ex.make_schedule("cosine", -1.0, m=M), "lr must be positive and finite, got lr=-1.0"),
        (lambda: ex.make_schedule("cosine", 1.0, m=0), "m must be a positive integer, got m=0"),
        (lambda: ex.warmup_rescue(0.2, 0), "warmup_epochs must be a positive integer, got warmup_epochs=0"),
        (lambda: ex.linear_scaling(1024), "k × batch_size must be at most n=4096, got k=1024"),
        (lambda: ex.batch_increase(factor=20), r"batch_size·factor\^\(phases-1\) must be at most n=4000"),
        (lambda: ex.ScheduleTrainer(seeds=[]), r"seeds must be a non-empty sequence .* got seeds=\[\]"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
