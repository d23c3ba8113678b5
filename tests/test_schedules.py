"""Schedules against PyTorch schedulers step by step, closed forms, jit/vmap behaviour, error messages."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import lax

from lecture_lib import schedules as sch

L = torch.optim.lr_scheduler


def torch_lrs(make, lr, n):
    """PyTorch's rate at t = 0 (before any step) and after each of n - 1 ``scheduler.step()`` calls."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=lr)
    scheduler = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(n - 1):
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return np.asarray(lrs, np.float64)


# ---- against PyTorch ------------------------------------------------------------------------------------

N = 64  # steps in most tables: one array shape, so one compiled version per schedule type
TORCH_CASES = [
    # (ours, lr, torch scheduler factory, number of steps, compare t < upto); all run well past the end
    pytest.param(
        sch.step_decay(0.1, 7, gamma=0.5), 0.1, lambda o: L.StepLR(o, 7, gamma=0.5), N, None, id="StepLR"
    ),
    pytest.param(sch.step_decay(0.3, 4), 0.3, lambda o: L.StepLR(o, 4), N, None, id="StepLR-default-gamma"),
    pytest.param(
        sch.multistep(0.1, [5, 12, 13], gamma=0.3),
        0.1,
        lambda o: L.MultiStepLR(o, [5, 12, 13], gamma=0.3),
        N,
        None,
        id="MultiStepLR",
    ),
    pytest.param(
        sch.exponential(0.1, 0.95), 0.1, lambda o: L.ExponentialLR(o, 0.95), N, None, id="ExponentialLR"
    ),
    pytest.param(
        sch.exponential(1e-4, 1.2),
        1e-4,
        lambda o: L.ExponentialLR(o, 1.2),
        N,
        None,
        id="ExponentialLR-range-test",
    ),
    pytest.param(
        sch.linear(0.1, 20, end=0.02),
        0.1,
        lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=20),
        N,
        None,
        id="LinearLR",
    ),
    pytest.param(
        sch.linear(0.5, 10),
        0.5,
        lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=10),
        N,
        None,
        id="LinearLR-to-zero",
    ),
    pytest.param(
        sch.polynomial(0.1, 20),
        0.1,
        lambda o: L.PolynomialLR(o, total_iters=20, power=1.0),
        N,
        None,
        id="PolynomialLR",
    ),
    pytest.param(
        sch.polynomial(0.2, 15, power=2.5),
        0.2,
        lambda o: L.PolynomialLR(o, total_iters=15, power=2.5),
        N,
        None,
        id="PolynomialLR-power",
    ),
    pytest.param(
        sch.cosine(0.1, 25, lr_min=0.01),
        0.1,
        lambda o: L.CosineAnnealingLR(o, T_max=25, eta_min=0.01),
        N,
        26,
        id="CosineAnnealingLR",
    ),
    pytest.param(
        sch.cosine(1.0, 7),
        1.0,
        lambda o: L.CosineAnnealingLR(o, T_max=7),
        N,
        8,
        id="CosineAnnealingLR-zero-min",
    ),
    pytest.param(
        sch.sgdr(0.1, 5, lr_min=0.001),
        0.1,
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=0.001),
        200,
        None,
        id="WarmRestarts-mult1",
    ),
    pytest.param(
        sch.sgdr(0.1, 3, mult=2),
        0.1,
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2),
        200,
        None,
        id="WarmRestarts-mult2",
    ),
    pytest.param(
        sch.sgdr(0.05, 10, mult=2, lr_min=0.005),
        0.05,
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.005),
        200,
        None,
        id="WarmRestarts-paper",
    ),
    pytest.param(
        sch.sgdr(0.1, 2, mult=3),
        0.1,
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3),
        200,
        None,
        id="WarmRestarts-mult3",
    ),
    pytest.param(
        sch.triangular(0.01, 0.1, 6),
        0.05,
        lambda o: L.CyclicLR(
            o, base_lr=0.01, max_lr=0.1, step_size_up=6, mode="triangular", cycle_momentum=False
        ),
        N,
        None,
        id="CyclicLR",
    ),
]


@pytest.mark.parametrize("sched, lr, make, n, upto", TORCH_CASES)
def test_matches_torch_scheduler(sched, lr, make, n, upto):
    ref = torch_lrs(make, lr, n)
    ours = np.asarray(sched(jnp.arange(n)))
    assert ours.dtype == np.float32 and ours.shape == (n,)
    upto = n if upto is None else upto
    np.testing.assert_allclose(ours[:upto], ref[:upto], rtol=1e-5, atol=1e-6 * lr)


def test_cosine_holds_lr_min_after_total():
    ours = np.asarray(sch.cosine(0.1, 25, lr_min=0.01)(jnp.arange(N)))
    np.testing.assert_array_equal(ours[25:], np.float32(0.01))


# ---- ReduceLROnPlateau ----------------------------------------------------------------------------------

EPOCHS = 40
_rng = np.random.default_rng(0)
METRICS = {
    "constant": np.ones(EPOCHS),
    "decrease-then-flat": np.concatenate([np.linspace(2.0, 1.0, 10), np.ones(EPOCHS - 10)]),
    "noisy": 1.0 / (1.0 + 0.1 * np.arange(EPOCHS)) + 0.05 * _rng.standard_normal(EPOCHS),
    # 0.5 % better each epoch: an improvement for threshold 0 or 1e-4, not epoch by epoch for 1e-2
    "inside-threshold": 0.995 ** np.arange(EPOCHS),
}
PLATEAU_SETTINGS = {
    "patience0": dict(lr=0.1, factor=0.1, patience=0, threshold=0.0, cooldown=0, min_lr=0.0),
    "patience2-cooldown2": dict(lr=0.1, factor=0.5, patience=2, threshold=1e-2, cooldown=2, min_lr=0.0),
    "patience5": dict(lr=0.1, factor=0.5, patience=5, threshold=1e-4, cooldown=0, min_lr=0.0),
    "min_lr-reached": dict(lr=0.1, factor=0.5, patience=0, threshold=1e-2, cooldown=0, min_lr=0.02),
    # 5e-8 -> 2.5e-8 -> 1.25e-8, then the cut would be below PyTorch's eps = 1e-8 and is skipped
    "eps-rule": dict(lr=5e-8, factor=0.5, patience=0, threshold=0.0, cooldown=1, min_lr=0.0),
}


def torch_plateau(settings, metrics):
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=settings["lr"])
    kw = {k: v for k, v in settings.items() if k != "lr"}
    scheduler = L.ReduceLROnPlateau(opt, mode="min", threshold_mode="rel", **kw)
    lrs = []
    for f in metrics:
        opt.step()
        scheduler.step(float(f))
        lrs.append(opt.param_groups[0]["lr"])
    return np.asarray(lrs)


@jax.jit
def plateau_scan(sched, metrics):
    def epoch(s, f):
        lr, s = sched.update(s, f)
        return s, lr

    return lax.scan(epoch, sched.init(), metrics)[1]


@pytest.mark.parametrize("settings", PLATEAU_SETTINGS.values(), ids=PLATEAU_SETTINGS.keys())
@pytest.mark.parametrize("metrics", METRICS.values(), ids=METRICS.keys())
def test_reduce_on_plateau_matches_torch(settings, metrics):
    metrics = metrics.astype(np.float32)  # both sides see the same numbers
    ref = torch_plateau(settings, metrics)
    sched = sch.reduce_on_plateau(**settings)
    s = sched.init()
    ours = []
    for f in metrics:
        lr, s = sched.update(s, f)
        ours.append(float(lr))
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(plateau_scan(sched, jnp.asarray(metrics))), ref, rtol=1e-6)


def test_reduce_on_plateau_reaches_floors():
    # the two settings above really exercise min_lr and the eps rule
    ref = torch_plateau(PLATEAU_SETTINGS["min_lr-reached"], METRICS["constant"])
    assert ref[-1] == 0.02 and ref[1] == 0.05
    ref = torch_plateau(PLATEAU_SETTINGS["eps-rule"], METRICS["constant"])
    assert ref[-1] == pytest.approx(1.25e-8)


def test_reduce_on_plateau_state():
    sched = sch.reduce_on_plateau(0.1, patience=3)
    s = sched.init()
    assert isinstance(s, sch.PlateauState)
    assert s.lr.dtype == jnp.float32 and float(s.lr) == pytest.approx(0.1)
    assert np.isinf(s.best) and int(s.num_bad_epochs) == 0 and int(s.cooldown_counter) == 0
    lr, s = sched.update(s, 2.0)
    assert float(s.best) == 2.0 and float(lr) == pytest.approx(0.1)
    lr, s = sched.update(s, 3.0)
    assert int(s.num_bad_epochs) == 1 and s.num_bad_epochs.dtype == jnp.int32


# ---- closed forms ---------------------------------------------------------------------------------------

T = np.arange(N)


def test_constant():
    s = sch.constant(3)
    assert s(5).shape == () and s(5).dtype == jnp.float32 and float(s(5)) == 3.0
    np.testing.assert_array_equal(s(jnp.arange(7)), np.full(7, 3.0, np.float32))


def test_inverse_time():
    ours = sch.inverse_time(0.5, power=0.5, tau=10.0)(T)
    np.testing.assert_allclose(ours, 0.5 / (1 + T / 10.0) ** 0.5, rtol=1e-6)
    np.testing.assert_allclose(sch.inverse_time(0.2)(T), 0.2 / (1 + T), rtol=1e-6)  # the 1/k family


def test_inverse_sqrt():
    ours = sch.inverse_sqrt(0.3)(T)
    np.testing.assert_allclose(ours, 0.3 / np.sqrt(np.maximum(T, 1)), rtol=1e-6)
    assert float(ours[0]) == float(ours[1]) == pytest.approx(0.3)


def test_polynomial_with_end():
    lr, total, p, end = 0.1, 20, 2.0, 0.01
    ref = (lr - end) * (1 - np.minimum(T, total) / total) ** p + end
    np.testing.assert_allclose(sch.polynomial(lr, total, power=p, end=end)(T), ref, rtol=1e-5)


def test_linear_up_and_hold():
    ours = sch.linear(0.1, 10, end=0.3)(T)  # end above lr ramps up
    np.testing.assert_allclose(ours, 0.1 + 0.2 * np.minimum(T, 10) / 10, rtol=1e-6)


def trapezoid_ref(lr, total, warmup, cooldown, t):
    """papers.md §4, piece by piece."""
    if t >= total:
        return 0.0
    if t < warmup:
        return lr * t / warmup
    if t >= total - cooldown:
        return lr * (total - t) / cooldown
    return lr


@pytest.mark.parametrize(
    "lr, total, warmup, cooldown",
    [(1.0, 50, 10, 20), (0.5, 40, 0, 10), (0.5, 40, 10, 0), (2.0, 30, 15, 15), (1, 9, 0, 0)],
)
def test_trapezoid(lr, total, warmup, cooldown):
    ref = [trapezoid_ref(lr, total, warmup, cooldown, t) for t in T]
    np.testing.assert_allclose(sch.trapezoid(lr, total, warmup, cooldown)(T), ref, rtol=1e-6, atol=1e-7)


def test_warmup_into_constant_goyal():
    # papers.md §2: eta at iteration 0, k * eta at the end of warmup, linear in between
    ours = np.asarray(sch.warmup(sch.constant(0.8), 5, start=0.1)(T))
    assert ours[0] == pytest.approx(0.1) and ours[5] == pytest.approx(0.8)
    np.testing.assert_allclose(np.diff(ours[:6]), 0.14, rtol=1e-5)
    np.testing.assert_allclose(ours[5:], 0.8)


def test_warmup_into_cosine():
    inner = sch.cosine(0.1, 50, lr_min=0.001)
    steps = 10
    ours = np.asarray(sch.warmup(inner, steps)(T))
    ref_inner = np.asarray(inner(T))
    assert ours[0] == 0.0
    np.testing.assert_allclose(ours[:steps], ref_inner[steps] * np.arange(steps) / steps, rtol=1e-6)
    np.testing.assert_array_equal(ours[steps:], ref_inner[steps:])
    # continuous: the ramp's next step lands on the inner schedule
    assert ours[steps - 1] + (ours[steps - 1] - ours[steps - 2]) == pytest.approx(ours[steps], rel=1e-5)
    # the inner schedule is a pytree child
    assert len(jax.tree.leaves(sch.warmup(inner, steps))) == len(jax.tree.leaves(inner)) + 2


# ---- SGDR, papers.md §3 ---------------------------------------------------------------------------------


def test_sgdr_paper_restarts():
    lr, lr_min = 0.05, 0.001
    eta = np.asarray(sch.sgdr(lr, 10, mult=2, lr_min=lr_min)(jnp.arange(160)))
    restarts, lengths = [0, 10, 30, 70, 150], [10, 20, 40, 80]
    for a in restarts:
        assert eta[a] == pytest.approx(lr, rel=1e-6)
    for a, T_i in zip(restarts[:-1], lengths, strict=True):
        assert eta[a + T_i // 2] == pytest.approx((lr + lr_min) / 2, rel=1e-5)
        cycle = eta[a : a + T_i]
        assert np.all(np.diff(cycle) <= 1e-8)  # monotone within a cycle
        assert cycle[-1] == pytest.approx(
            lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * (T_i - 1) / T_i))
        )
    assert np.all(eta[restarts[1:]] > eta[np.array(restarts[1:]) - 1] + 0.9 * (lr - lr_min))  # a jump
    not_restart = np.setdiff1d(np.arange(1, 160), restarts)
    assert np.all(eta[not_restart] <= eta[not_restart - 1] + 1e-8)


def sgdr_ref(t, period, mult):
    """PyTorch's stepping rule, T_cur and T_i, in Python integers."""
    if mult == 1:
        return t % period, period
    T_i = period
    while t >= T_i:
        t -= T_i
        T_i *= mult
    return t, T_i


@pytest.mark.parametrize("period, mult", [(1, 2), (3, 3), (7, 2), (1, 10), (5, 1)])
def test_sgdr_far_out(period, mult):
    # restarts stay on the exact step far from 0, where a float log alone can be one cycle off
    starts, a, T_i = [], 0, period
    while a < 2**26 and len(starts) < 100:
        starts.append(a)
        a, T_i = a + T_i, T_i * mult
    if mult == 1:
        starts.append(2**26 // period * period)
    b = np.asarray(starts)
    near = np.concatenate([b - 2, b - 1, b + 1])
    near = np.unique(near[near >= 0])
    rand = np.random.default_rng(1).integers(0, 2**26, 512 - len(b) - len(near))
    # one call of one shape for every case: one compiled version
    eta = np.asarray(sch.sgdr(1.0, period, mult=mult)(np.concatenate([b, near, rand])))
    np.testing.assert_array_equal(eta[: len(b)], 1.0)
    ref = [
        0.5 * (1 + math.cos(math.pi * T_cur / T_i))
        for T_cur, T_i in (sgdr_ref(int(t), period, mult) for t in near)
    ]
    np.testing.assert_allclose(eta[len(b) : len(b) + len(near)], ref, atol=2e-6)
    ref = [
        0.5 * (1 + math.cos(math.pi * T_cur / T_i))
        for T_cur, T_i in (sgdr_ref(int(t), period, mult) for t in rand)
    ]
    np.testing.assert_allclose(eta[len(b) + len(near) :], ref, atol=2e-6)


# ---- calling conventions, vmap, jit -------------------------------------------------------------------

ALL = {
    "constant": sch.constant(0.1),
    "step_decay": sch.step_decay(0.1, 4, 0.5),
    "multistep": sch.multistep(0.1, [3, 9]),
    "exponential": sch.exponential(0.1, 0.9),
    "inverse_time": sch.inverse_time(0.1, 0.7, 3.0),
    "inverse_sqrt": sch.inverse_sqrt(0.1),
    "linear": sch.linear(0.1, 10, 0.01),
    "polynomial": sch.polynomial(0.1, 10, 2.0, 0.01),
    "cosine": sch.cosine(0.1, 10, 0.01),
    "sgdr": sch.sgdr(0.1, 3, 2, 0.01),
    "trapezoid": sch.trapezoid(0.1, 20, 4, 6),
    "triangular": sch.triangular(0.01, 0.1, 4),
    "warmup": sch.warmup(sch.cosine(0.1, 20), 5),
}


@pytest.mark.parametrize("sched", ALL.values(), ids=ALL.keys())
def test_vectorised_equals_scalar(sched):
    t = np.arange(N)
    vec = np.asarray(sched(t))  # numpy int64 array in
    assert vec.shape == (N,) and vec.dtype == np.float32
    for ti in [0, 1, 2, 3, 4, 5, 9, 10, 11, 20, 24, 63]:
        assert float(sched(ti)) == pytest.approx(float(vec[ti]), rel=1e-6, abs=1e-9)
        assert float(sched(np.int64(ti))) == pytest.approx(float(vec[ti]), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("name", ["multistep", "sgdr", "warmup"])
def test_any_shape_of_steps(name):
    t = np.arange(N)
    np.testing.assert_array_equal(ALL[name](t.reshape(8, 8)), np.asarray(ALL[name](t)).reshape(8, 8))


BUILDERS = {
    "constant": lambda lr: sch.constant(lr),
    "step_decay": lambda lr: sch.step_decay(lr, 4),
    "multistep": lambda lr: sch.multistep(lr, [3, 9]),
    "exponential": lambda lr: sch.exponential(lr, 0.9),
    "inverse_time": lambda lr: sch.inverse_time(lr),
    "inverse_sqrt": lambda lr: sch.inverse_sqrt(lr),
    "linear": lambda lr: sch.linear(lr, 10),
    "polynomial": lambda lr: sch.polynomial(lr, 10, 2.0),
    "cosine": lambda lr: sch.cosine(lr, 10),
    "sgdr": lambda lr: sch.sgdr(lr, 3, 2),
    "trapezoid": lambda lr: sch.trapezoid(lr, 20, 4, 6),
    "triangular": lambda lr: sch.triangular(0.0, lr, 4),
    "warmup": lambda lr: sch.warmup(sch.cosine(lr, 20), 5),
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_factory_under_vmap(build):
    lrs = jnp.array([0.1, 0.3, 1.0])
    t = jnp.arange(N)
    ours = jax.jit(jax.vmap(lambda lr: build(lr)(t)))(lrs)
    ref = np.stack([np.asarray(build(float(lr))(t)) for lr in lrs])
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_integer_parameters_under_vmap():
    t = jnp.arange(N)
    periods, mults = jnp.array([2, 3, 5]), jnp.array([1, 2, 3])
    ours = jax.jit(jax.vmap(lambda p, m: sch.sgdr(0.1, p, m)(t)))(periods, mults)
    ref = np.stack(
        [np.asarray(sch.sgdr(0.1, int(p), int(m))(t)) for p, m in zip(periods, mults, strict=True)]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    ours = jax.jit(jax.vmap(lambda m: sch.multistep(0.1, m)(t)))(jnp.array([[3, 9], [5, 40]]))
    np.testing.assert_allclose(ours[1], sch.multistep(0.1, [5, 40])(t))


def test_reduce_on_plateau_under_vmap():
    metrics = jnp.asarray(METRICS["noisy"], jnp.float32)
    lrs = jnp.array([0.1, 0.5])
    ours = jax.jit(jax.vmap(lambda lr: plateau_scan(sch.reduce_on_plateau(lr, patience=2), metrics)))(lrs)
    for row, lr in zip(ours, lrs, strict=True):
        np.testing.assert_allclose(row, plateau_scan(sch.reduce_on_plateau(float(lr), patience=2), metrics))


VARIANTS = {
    "constant": [sch.constant(1), sch.constant(0.5), sch.constant(3)],
    "step_decay": [sch.step_decay(1, 5), sch.step_decay(0.1, 7, gamma=0.5)],
    "multistep": [sch.multistep(1, [3, 9]), sch.multistep(0.2, [5, 40], gamma=0.5)],
    "exponential": [sch.exponential(1, 0.9), sch.exponential(1e-4, 1.1)],
    "inverse_time": [sch.inverse_time(1), sch.inverse_time(0.3, power=0.5, tau=7)],
    "inverse_sqrt": [sch.inverse_sqrt(1), sch.inverse_sqrt(0.25)],
    "linear": [sch.linear(1, 10), sch.linear(0.3, 40, end=0.1)],
    "polynomial": [sch.polynomial(1, 10), sch.polynomial(0.3, 40, power=2, end=0.01)],
    "cosine": [sch.cosine(1, 10), sch.cosine(0.3, 40, lr_min=0.01)],
    "sgdr": [sch.sgdr(1, 10), sch.sgdr(0.3, 3, mult=2, lr_min=0.01), sch.sgdr(0.1, 4, mult=3)],
    "trapezoid": [sch.trapezoid(1, 20, 4, 6), sch.trapezoid(0.3, 40, 0, 10)],
    "triangular": [sch.triangular(0, 1, 4), sch.triangular(0.01, 0.3, 9)],
    "warmup": [sch.warmup(sch.cosine(1, 20), 5), sch.warmup(sch.cosine(0.2, 50, 0.01), 12, start=0.01)],
}


def test_no_recompilation_when_values_change(count_compiles):
    f = jax.jit(lambda s, t: s(t))
    t, t_new = jnp.arange(N), jnp.arange(3)
    metrics = jnp.asarray(METRICS["noisy"], jnp.float32)
    plateaus = [sch.reduce_on_plateau(**kw) for kw in PLATEAU_SETTINGS.values()]
    for first, *_ in VARIANTS.values():  # one compiled version per schedule type
        f(first, t).block_until_ready()
    plateau_scan(plateaus[0], metrics).block_until_ready()

    with count_compiles() as c:  # every other schedule was built above, before counting
        for name, (_, *others) in VARIANTS.items():
            for s in others:
                f(s, t).block_until_ready()
            assert c.count == 0, f"{name}: changing a hyperparameter value recompiled"
        for s in plateaus[1:]:
            plateau_scan(s, metrics).block_until_ready()
        assert c.count == 0, "reduce_on_plateau: changing a hyperparameter value recompiled"
        f(VARIANTS["constant"][0], t_new).block_until_ready()  # a new shape does compile: the counter works
        assert c.count == 1


# ---- errors -------------------------------------------------------------------------------------------

ERRORS = [
    (lambda: sch.constant(-0.1), ValueError, "lr must be positive and finite, got lr=-0.1"),
    (lambda: sch.constant(float("nan")), ValueError, "lr must be positive and finite, got lr=nan"),
    (lambda: sch.constant("0.1"), TypeError, "lr must be a real number, got lr='0.1'"),
    (lambda: sch.inverse_sqrt(0), ValueError, "lr must be positive and finite, got lr=0"),
    (lambda: sch.step_decay(0.1, 0), ValueError, "step_size must be a positive integer, got step_size=0"),
    (lambda: sch.step_decay(0.1, 2.5), TypeError, "step_size must be a positive integer, got step_size=2.5"),
    (lambda: sch.step_decay(0.1, 5, gamma=0), ValueError, "gamma must be positive and finite, got gamma=0"),
    (lambda: sch.exponential(0.1, -0.9), ValueError, "gamma must be positive and finite, got gamma=-0.9"),
    (lambda: sch.exponential(0.1, math.inf), ValueError, "gamma must be positive and finite, got gamma=inf"),
    (
        lambda: sch.multistep(0.1, [3, 2]),
        ValueError,
        "milestones must be strictly increasing positive integers, got milestones=[3, 2]",
    ),
    (
        lambda: sch.multistep(0.1, [2, 2]),
        ValueError,
        "milestones must be strictly increasing positive integers",
    ),
    (
        lambda: sch.multistep(0.1, [0, 2]),
        ValueError,
        "milestones must be strictly increasing positive integers",
    ),
    (
        lambda: sch.multistep(0.1, [1.5, 3]),
        TypeError,
        "milestones must be a sequence of integers, got milestones=[1.5, 3]",
    ),
    (lambda: sch.multistep(0.1, 5), TypeError, "milestones must be a sequence of integers, got milestones=5"),
    (lambda: sch.inverse_time(0.1, power=0), ValueError, "power must be positive and finite, got power=0"),
    (lambda: sch.inverse_time(0.1, tau=-1.0), ValueError, "tau must be positive and finite, got tau=-1.0"),
    (lambda: sch.linear(0.1, 0), ValueError, "total must be a positive integer, got total=0"),
    (lambda: sch.linear(0.1, 10, end=-0.1), ValueError, "end must be non-negative and finite, got end=-0.1"),
    (
        lambda: sch.polynomial(0.1, 10, power=-1),
        ValueError,
        "power must be positive and finite, got power=-1",
    ),
    (lambda: sch.polynomial(0.1, 10, end=-1), ValueError, "end must be non-negative and finite, got end=-1"),
    (
        lambda: sch.cosine(0.1, 10, lr_min=0.1),
        ValueError,
        "lr_min must be non-negative and less than lr=0.1, got lr_min=0.1",
    ),
    (
        lambda: sch.cosine(0.1, 10, lr_min=-0.01),
        ValueError,
        "lr_min must be non-negative and less than lr=0.1",
    ),
    (lambda: sch.cosine(0.1, 10.0), TypeError, "total must be a positive integer, got total=10.0"),
    (lambda: sch.sgdr(0.1, 0), ValueError, "period must be a positive integer, got period=0"),
    (lambda: sch.sgdr(0.1, 5, mult=0), ValueError, "mult must be a positive integer, got mult=0"),
    (lambda: sch.sgdr(0.1, 5, mult=1.5), TypeError, "mult must be a positive integer, got mult=1.5"),
    (lambda: sch.sgdr(0.1, 5, lr_min=0.2), ValueError, "lr_min must be non-negative and less than lr=0.1"),
    (
        lambda: sch.trapezoid(1.0, 10, 6, 5),
        ValueError,
        "warmup + cooldown must be at most total=10, got warmup=6, cooldown=5",
    ),
    (
        lambda: sch.trapezoid(1.0, 10, -1, 5),
        ValueError,
        "warmup must be a non-negative integer, got warmup=-1",
    ),
    (
        lambda: sch.trapezoid(1.0, 10, 1, -2),
        ValueError,
        "cooldown must be a non-negative integer, got cooldown=-2",
    ),
    (lambda: sch.trapezoid(1.0, 0, 0, 0), ValueError, "total must be a positive integer, got total=0"),
    (
        lambda: sch.triangular(0.1, 0.1, 5),
        ValueError,
        "lr_min must be non-negative and less than lr_max=0.1, got lr_min=0.1",
    ),
    (
        lambda: sch.triangular(-0.1, 0.2, 5),
        ValueError,
        "lr_min must be non-negative and less than lr_max=0.2",
    ),
    (lambda: sch.triangular(0.0, -1.0, 5), ValueError, "lr_max must be positive and finite, got lr_max=-1.0"),
    (
        lambda: sch.triangular(0.0, 1.0, 0),
        ValueError,
        "half_period must be a positive integer, got half_period=0",
    ),
    (lambda: sch.warmup(lambda t: 0.1, 5), TypeError, "schedule must be a Schedule (a function of the step)"),
    (lambda: sch.warmup(sch.reduce_on_plateau(0.1), 5), TypeError, "schedule must be a Schedule"),
    (lambda: sch.warmup(sch.constant(0.1), 0), ValueError, "steps must be a positive integer, got steps=0"),
    (
        lambda: sch.warmup(sch.constant(0.1), 5, start=-0.1),
        ValueError,
        "start must be non-negative and finite, got start=-0.1",
    ),
    (lambda: sch.reduce_on_plateau(0.0), ValueError, "lr must be positive and finite, got lr=0.0"),
    (lambda: sch.reduce_on_plateau(0.1, factor=1.0), ValueError, "factor must be in (0, 1), got factor=1.0"),
    (lambda: sch.reduce_on_plateau(0.1, factor=0), ValueError, "factor must be in (0, 1), got factor=0"),
    (
        lambda: sch.reduce_on_plateau(0.1, patience=-1),
        ValueError,
        "patience must be a non-negative integer, got patience=-1",
    ),
    (
        lambda: sch.reduce_on_plateau(0.1, patience=2.5),
        TypeError,
        "patience must be a non-negative integer, got patience=2.5",
    ),
    (
        lambda: sch.reduce_on_plateau(0.1, threshold=-1e-4),
        ValueError,
        "threshold must be non-negative and finite, got threshold=-0.0001",
    ),
    (
        lambda: sch.reduce_on_plateau(0.1, cooldown=-1),
        ValueError,
        "cooldown must be a non-negative integer, got cooldown=-1",
    ),
    (
        lambda: sch.reduce_on_plateau(0.1, min_lr=-1.0),
        ValueError,
        "min_lr must be non-negative and finite, got min_lr=-1.0",
    ),
    (
        lambda: sch.reduce_on_plateau(0.1)(5),
        TypeError,
        "reduce_on_plateau is driven by a metric, not by the step",
    ),
    (
        lambda: sch.constant(0.1)(0.5),
        TypeError,
        "t must be an integer step count or an array of them, got dtype float32",
    ),
    (lambda: sch.cosine(0.1, 10)(jnp.array([True])), TypeError, "t must be an integer step count"),
]


@pytest.mark.parametrize("call, error, message", ERRORS, ids=[e[2][:50] for e in ERRORS])
def test_error_messages(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()
