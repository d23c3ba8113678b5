r"""Choosing the learning rate and monitoring the loss on the slides' two-layer net, each a pure function.

- :func:`ema`: the debiased exponential moving average behind every "smoothing" slider (TensorBoard's).
- :func:`grid_sweep`, :func:`usable_range`: final cost over learning rates × epochs; where every seed learns.
- :func:`range_test`: Smith's (2017) test on the net: one run whose rate grows geometrically each update.
- :func:`gallery`: the loss curves of the slide "Monitoring loss function during iterations" (rate too low,
  too high, good, batch too small, plateau then a step decay, bad initialization), each a real training run.

All train ``models.mlp([64, 50, 10])`` on ``data.digits(seed=0)`` with SGD through ``training.fit``; the
learning rate, seed and schedule parameters are data, so calling again with new values compiles nothing.
Results are NumPy arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, models, optimizers, schedules, training
from lecture_lib.experiments_lr import suggest_range

LN10 = math.log(10)  # cross-entropy of a uniform 10-class softmax: the cost of small weights
SIZES = (64, 50, 10)


@functools.cache
def _digits():  # built once: a panel retrains on every slider move
    return data.digits(seed=0)


def ema(values, beta):
    r"""Debiased exponential moving average along the last axis (TensorBoard's smoothing):

    .. math:: s_t = \beta s_{t-1} + (1-\beta) x_t,\ s_0 = 0, \qquad \hat s_t = s_t / (1 - \beta^{t}),
       \ t = 1, 2, \dots

    Without the division the curve would start near 0 (as Adam's moments would). A non-finite value ends the
    curve: it and everything after it are nan. ``beta = 0`` returns the values themselves.
    """
    # imported here, not at the top: scipy.signal costs ~1 s of every kernel's start
    from scipy import signal

    _checks.unit_interval("beta", beta)
    beta = float(beta)  # in float64: the check returns float32
    x = np.asarray(values, np.float64)
    finite = np.cumprod(np.isfinite(x), axis=-1).astype(bool)
    s = signal.lfilter([1 - beta], [1, -beta], np.where(finite, x, 0.0), axis=-1)  # the recursion, s_0 = 0
    t = np.arange(1, x.shape[-1] + 1)
    return np.where(finite, s / (1 - beta**t), np.nan)


def first_nonfinite(loss) -> int:
    """Index of the first non-finite value of a 1-D loss curve, −1 if none (``hist.diverged_at``)."""
    bad = ~np.isfinite(np.asarray(loss, np.float64))
    return int(np.argmax(bad)) if bad.any() else -1


# ---- the learning-rate sweep as a grid: rates × epochs -----------------------------------------------------

LRS = tuple(float(x) for x in 10.0 ** np.arange(-6.0, 3.25, 0.5))  # 1e-6 ... 1e3, half decades


class Grid(NamedTuple):
    lrs: np.ndarray  # (L,)
    cost: np.ndarray  # (L, seeds, epochs) cost after each epoch; nan once diverged
    val_acc: np.ndarray  # (L, seeds, epochs)
    diverged_at: np.ndarray  # (L, seeds) update of the first non-finite batch loss, −1 if none
    updates_per_epoch: int


def grid_sweep(lrs=LRS, seeds=(0, 1, 2), *, epochs=10, batch_size=64, init_scale=1e-2, reg=0.0) -> Grid:
    r"""SGD on the 64-50-10 net for every rate and seed: ``training.sweep``, one vmapped, compiled call.

    ``init_scale``·randn weights (0.01 on the standardised digits gives hidden units of the size the slide's
    1e-4·randn gives on CIFAR's pixel-scale inputs), so the cost starts at :math:`\ln 10`.
    """
    model = models.mlp(list(SIZES), init_scale=init_scale)
    hist = training.sweep(
        model, _digits(), optimizers.sgd, lrs, seeds, epochs=epochs, batch_size=batch_size, reg=reg
    )
    cost = np.asarray(hist.cost, np.float64)
    cost = np.where(np.isfinite(cost), cost, np.nan)
    m = np.shape(hist.loss)[-1] // epochs
    return Grid(
        np.asarray(lrs, np.float64),
        cost,
        np.asarray(hist.val_acc, np.float64),
        np.asarray(hist.diverged_at),
        m,
    )


def usable_range(lrs, cost, fraction=0.5):
    r"""``(lowest, highest)`` rate at which *every* run learns: finite cost ≤ ``fraction``·ln 10.

    ``cost`` is (L,) or (L, seeds): the cost at the epoch you read the grid at. nan if no rate learns. The
    slide reads the same off its logs: below the range the cost stays at ln 10, above it turns nan/inf.
    """
    fraction = float(_checks.real("fraction", fraction, lo=0.0, hi=1.0, lo_open=True, rule="be in (0, 1]"))
    lrs, cost = np.asarray(lrs, np.float64), np.asarray(cost, np.float64)
    if lrs.ndim != 1 or cost.shape[:1] != lrs.shape:
        raise ValueError(f"cost must have one row per rate: lrs {lrs.shape}, cost {cost.shape}")
    cost = cost.reshape(len(lrs), -1)
    ok = (np.isfinite(cost) & (cost <= fraction * LN10)).all(axis=1)
    return (float(lrs[ok].min()), float(lrs[ok].max())) if ok.any() else (math.nan, math.nan)


# ---- Smith's range test on the net -------------------------------------------------------------------------


class RangeTestMLP(NamedTuple):
    lr: np.ndarray  # (T - 1,) rate of update t
    loss: np.ndarray  # (T - 1,) batch loss right after update t (nan once diverged)
    smooth: np.ndarray  # (T - 1,) its debiased EMA
    lr_falls: float  # first rate where the smoothed loss is 10 % below its start (nan if never)
    lr_min_loss: float  # rate at the minimum of the smoothed loss
    lr_blowup: float  # first rate after it with smoothed loss > factor × minimum, or non-finite (nan if none)
    diverged_lr: float  # rate of the update whose loss was first non-finite (nan if none)


def range_test(
    *, lr_start=1e-4, lr_end=100.0, epochs=10, batch_size=64, seed=0, beta=0.9, factor=4.0, init_scale=None
) -> RangeTestMLP:
    r"""Smith (2017) on the 64-50-10 net: one SGD run with :math:`\eta_t = \eta_0\gamma^t` from
    ``lr_start`` to ``lr_end`` over ``epochs`` epochs (``schedules.exponential``, γ > 1), the loss after each
    update against its rate. Where the smoothed loss starts to fall, where it is lowest and where it blows up
    (``experiments_lr.suggest_range``) bracket the usable rates: one short run instead of a sweep.
    """

    lr_start = float(_checks.positive("lr_start", lr_start))
    lr_end = float(_checks.positive("lr_end", lr_end))
    if lr_end <= lr_start:
        raise ValueError(f"lr_end must exceed lr_start, got lr_start={lr_start!r}, lr_end={lr_end!r}")
    beta = float(_checks.unit_interval("beta", beta))
    d = _digits()
    T = _checks.positive_int("epochs", epochs, array=False) * -(-d.n // batch_size)
    sched = schedules.exponential(lr_start, (lr_end / lr_start) ** (1 / (T - 1)))
    model = models.mlp(list(SIZES), init_scale=init_scale)
    hist = training.fit(
        model, d, optimizers.sgd(lr_start), epochs=epochs, batch_size=batch_size, key=jax.random.key(seed),
        schedule=sched,
    )  # fmt: skip
    lr = np.asarray(
        sched(np.arange(T - 1, dtype=np.int32)), np.float64
    )  # NumPy steps: no eager arange compile
    loss = np.asarray(hist.loss, np.float64)[1:]  # J before update t + 1 = after the step with eta_t
    smooth = ema(loss, beta)
    lo, hi = suggest_range(lr, smooth, factor)
    falls = np.isfinite(smooth) & (smooth < 0.9 * smooth[0])
    k = first_nonfinite(loss)
    return RangeTestMLP(
        lr, loss, smooth, float(lr[np.argmax(falls)]) if falls.any() else math.nan, lo, hi,
        float(lr[k]) if k >= 0 else math.nan,
    )  # fmt: skip


# ---- the monitoring gallery --------------------------------------------------------------------------------


class Run(NamedTuple):
    lr: float
    batch_size: int = 32
    epochs: int = 20
    decay_epoch: int = 0  # multiply the rate by 0.1 after this many epochs (0: never)
    init_scale: float | None = None  # None: PyTorch's default; a number: cs231n's scale·randn


# Measured on digits with 20 % noisy labels (seeds 0 and 1): each picture appears for either seed.
GALLERY = {
    "learning rate too low": Run(3e-3),  # falls almost linearly, 2.3 -> 1.8 in 20 epochs
    "learning rate too high": Run(3.0),  # explodes: inf after ~150 updates
    "good learning rate": Run(0.1),  # fast drop, then a steady decline
    "batch too small": Run(0.02, batch_size=2, epochs=2),  # two samples a batch: the raw curve is noise
    "plateau, then a step decay": Run(1.0, decay_epoch=10),  # stalls near 1.0, drops ~30 % at the decay
    "bad initialization": Run(0.3, init_scale=1e-4),  # flat at ln 10 for ~2 epochs, then learns
}


class GalleryRun(NamedTuple):
    loss: np.ndarray  # (updates,) batch loss before each update; nan after divergence
    updates_per_epoch: int
    diverged_at: int
    lr: np.ndarray  # (updates,) rate of each update
    val_acc: np.ndarray  # (epochs,)


def noisy_labels(ds, fraction=0.2, seed=0):
    """``ds`` with ``fraction`` of its *training* labels replaced by another class, drawn uniformly; the
    validation labels stay clean. A task whose loss cannot reach 0, as with real, imperfect labels."""
    fraction = float(_checks.real("fraction", fraction, lo=0.0, hi=1.0, rule="be in [0, 1]"))
    rng = np.random.default_rng(int(_checks.nonnegative_int("seed", seed)))
    y = np.asarray(ds.y_train).copy()
    flip = rng.random(y.size) < fraction
    y[flip] = (y[flip] + rng.integers(1, ds.n_classes, flip.sum())) % ds.n_classes
    return dataclasses.replace(ds, y_train=jnp.asarray(y, jnp.int32))


def gallery(seed=0, runs=None, *, label_noise=0.2) -> dict[str, GalleryRun]:
    """Train every run of ``runs`` (default :data:`GALLERY`) on digits with ``label_noise`` of the training
    labels wrong; ``{diagnosis: GalleryRun}``. Every run has a step-decay schedule (γ = 1 when it does not
    decay), so the runs with equal batch size and epochs share one compiled program."""
    seed = int(_checks.nonnegative_int("seed", seed))
    runs = GALLERY if runs is None else runs
    d = noisy_labels(_digits(), label_noise, seed=0)
    out = {}
    for name, r in runs.items():
        m = -(-d.n // r.batch_size)
        step = r.decay_epoch * m if r.decay_epoch else r.epochs * m
        sched = schedules.step_decay(r.lr, step, 0.1 if r.decay_epoch else 1.0)
        h = training.fit(
            models.mlp(list(SIZES), init_scale=r.init_scale), d, optimizers.sgd(r.lr), epochs=r.epochs,
            batch_size=r.batch_size, key=jax.random.key(seed), schedule=sched,
        )  # fmt: skip
        loss = np.asarray(h.loss, np.float64)
        out[name] = GalleryRun(
            loss, m, int(h.diverged_at), np.asarray(sched(np.arange(loss.size, dtype=np.int32)), np.float64),
            np.asarray(h.val_acc, np.float64),
        )  # fmt: skip
    return out


def roughness(loss, beta=0.95, skip=0) -> float:
    """How noisy a curve is: median |loss − its EMA| / median EMA, after the first ``skip`` updates."""
    loss = np.asarray(loss, np.float64)[skip:]
    s = ema(loss, beta)
    ok = np.isfinite(s)
    return float(np.median(np.abs(loss[ok] - s[ok])) / np.median(s[ok]))
