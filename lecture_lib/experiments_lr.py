r"""Learning-rate experiments behind the lecture's claims, each a pure function returning arrays.

- :func:`lr_sweep`: too low a rate leaves the cost at ln 10, too high gives nan/inf, a middle range learns.
- :func:`lr_range_test`, :func:`suggest_range`: Smith's (2017) test, one run with a growing rate.
- :func:`linear_scaling`, :func:`scaling_warmup`: Goyal et al. (2017), batch ×k with rate ×k.
- :func:`batch_increase`: Smith et al. (2018), grow the batch instead of decaying the rate.

The recap's claims (Wilson et al.; L-BFGS with minibatches) are in ``experiments_recap``.

The least-squares runs (a :class:`LeastSquares` problem of ``data.linear_regression``) use a small SGD loop
of their own, a ``lax.scan`` over ``sampling`` batches, because they continue from given weights and measure
the exact gap :math:`F(w)-F^\star = \tfrac12 (w-w^\star)^\top H (w-w^\star)`. Seeds are ints; results are
NumPy arrays. Expected numbers and tolerances: ``shared/research/papers.md`` §2, §7, §8.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, models, optimizers, sampling, schedules, training

_HI = jax.lax.Precision.HIGHEST
REGIMES = ("too low", "in between", "learns", "diverges")


class LeastSquares(NamedTuple):
    """The arguments of ``data.linear_regression`` (eigenvalues of H log-spaced from 1 to ``condition``)."""

    n: int = 4096
    d: int = 20
    condition: float = 1.15  # 2/L = 1.74, the spectrum of papers.md's Gaussian prototype
    noise: float = 0.5


RANGE_LSQ = LeastSquares(condition=4.0, noise=0.1)  # 2/L = 0.5, close to papers.md's 0.485
GOYAL_LSQ = LeastSquares()
SMITH_LSQ = LeastSquares(n=4000)


def _pint(name, value):
    return _checks.positive_int(name, value, array=False)


def _rates(name, values) -> np.ndarray:
    a = np.asarray(values, np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of positive finite rates, got {name}={values!r}"
        )
    return a


def _keys(seed, seeds):
    return jax.random.split(jax.random.key(int(_checks.nonnegative_int("seed", seed))), _pint("seeds", seeds))


def _stacked(factory, keys):
    # one compiled generator called per key: vmapping it would compile a batched copy (about 3 s) every call;
    # stacked in NumPy (eager jnp.stack and jnp.asarray compile a program per leaf shape)
    return jax.tree.map(lambda *a: jax.device_put(np.stack(a)), *(factory(k) for k in keys))


def _fold(keys, salt):
    return jax.vmap(jax.random.fold_in, (0, None))(keys, salt)


# ---- 1. the learning-rate sweep of the slides (two-layer net on digits) ------------------------------------


class LRSweep(NamedTuple):
    lrs: np.ndarray  # (k,)
    initial_loss: np.ndarray  # (k, seeds) first batch loss (ln 10 = 2.302585 with small weights)
    cost: np.ndarray  # (k, seeds, epochs) cost after each epoch (nan/inf once diverged)
    val_acc: np.ndarray  # (k, seeds) final validation accuracy
    diverged: np.ndarray  # (k, seeds) a non-finite batch loss was met
    regime: np.ndarray  # (k,) index into REGIMES
    usable: tuple  # (lowest, highest) rate at which every seed learns; nan if none


@functools.lru_cache(maxsize=8)
def _lr_sweep_fn(model, epochs, batch_size):
    # one jitted function per shape: a new closure on every call would compile again (about 3 s) each time
    d = data.digits(seed=0)

    def one(eta, key):
        h = training.fit(model, d, optimizers.sgd(eta), epochs=epochs, batch_size=batch_size, key=key)
        return h.loss[0], h.cost, h.val_acc[-1], h.diverged_at >= 0

    return jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))


def lr_sweep(lrs=None, *, seeds=3, epochs=10, batch_size=64, init_scale=1e-4, seed=0) -> LRSweep:
    r"""SGD on the 64-50-10 net (digits, weights ``init_scale``·randn) over a log grid of rates, vmapped.

    Claim (slides, cs231n; papers.md §8): a too-low rate barely moves the cost from :math:`\ln 10` (≥ 0.99
    ln 10 for every seed: "too low"), a too-high one gives nan/inf ("diverges"), a middle range learns (cost
    ≤ ½ ln 10 for every seed); the regimes are ordered by rate. ``usable``: where every seed learns.
    """
    lrs = _rates("lrs", 10.0 ** np.arange(-6.0, 6.5, 0.5) if lrs is None else lrs)
    model = models.mlp([64, 50, 10], init_scale=init_scale)  # checks init_scale
    sweep = _lr_sweep_fn(model, _pint("epochs", epochs), _pint("batch_size", batch_size))
    loss0, cost, acc, div = (np.asarray(a) for a in sweep(jnp.asarray(lrs, jnp.float32), _keys(seed, seeds)))
    final, ln10 = np.where(div, np.inf, cost[..., -1].astype(np.float64)), math.log(10)
    masks = [div.any(1), (final >= 0.99 * ln10).all(1), (final <= 0.5 * ln10).all(1)]
    regime = np.select(masks, [3, 0, 2], default=1)
    ok = lrs[regime == 2]
    usable = (float(ok.min()), float(ok.max())) if ok.size else (math.nan, math.nan)
    return LRSweep(lrs, loss0, cost, acc, div, regime, usable)


# ---- least-squares SGD: the loop behind the range test, linear scaling and batch increase ------------------


def _gap(d, w):
    e = w - d.w_opt
    return 0.5 * jnp.dot(e, jnp.matmul(d.H, e, precision=_HI), precision=_HI)


def _sgd(d, w0, eta, idx, mask):
    """SGD on ½·mean (xw − y)² over batches ``idx`` (T, m, b); gap and loss after each of the T blocks."""

    def step(w, inputs):
        i, keep, eta_t = inputs
        xb = d.x_train[i]
        r = jnp.where(keep, jnp.matmul(xb, w, precision=_HI) - d.y_train[i], 0.0)
        return w - eta_t * jnp.matmul(r, xb, precision=_HI) / jnp.sum(keep), None

    def block(w, inputs):
        w, _ = jax.lax.scan(step, w, inputs)
        return w, (_gap(d, w), d.loss(w))

    return jax.lax.scan(block, w0, (idx, mask, eta))


@functools.partial(jax.jit, static_argnames=("b", "epochs"))
def _sgd_epochs(d, w0, eta, key, *, b, epochs):
    idx, mask = sampling._batches(key, d.n, b, epochs, "reshuffle")
    w, (gap, _) = _sgd(d, w0, jnp.broadcast_to(eta, idx.shape[:2]), idx, mask)
    return w, gap


def _sgd_seeds(ds, w0, eta, keys, *, b, epochs):
    """Every seed's problem, weights and sample order at once; ``eta`` a Python float shared by all."""
    return jax.vmap(functools.partial(_sgd_epochs, b=b, epochs=epochs), (0, 0, None, 0))(ds, w0, eta, keys)


def _problems(problem, keys):
    n, d, condition, noise = problem
    return _stacked(lambda k: data.linear_regression(n, d, k, condition=condition, noise=noise), keys)


# ---- 2. Smith's learning-rate range test -------------------------------------------------------------------


class RangeTest(NamedTuple):
    lr: np.ndarray  # (steps,) rate of each update, growing geometrically
    loss: np.ndarray  # (seeds, steps) full training loss after each update
    lr_min_loss: float  # rate at the minimum of the seed-mean loss
    lr_blowup: float  # first rate after it where the mean loss exceeds 4x its minimum (nan if none)
    per_seed: np.ndarray  # (seeds, 2) the same two rates for each seed's curve
    two_over_L: float  # the full-batch stability limit 2/L


def suggest_range(lr, loss, factor=4.0):
    """``(lr at the loss minimum, first lr after it with loss > factor × minimum or non-finite)``."""
    lr, loss = np.asarray(lr, np.float64), np.asarray(loss, np.float64)
    if lr.ndim != 1 or lr.shape != loss.shape:
        raise ValueError(f"lr and loss must be 1-D of equal length, got shapes {lr.shape} and {loss.shape}")
    factor = float(_checks.real("factor", factor, lo=1.0, lo_open=True, rule="be finite and above 1"))
    loss = np.where(np.isfinite(loss), loss, np.inf)
    i = int(np.argmin(loss))
    after = (np.arange(lr.size) > i) & (loss > factor * loss[i])
    return float(lr[i]), float(lr[np.argmax(after)]) if after.any() else math.nan


@functools.partial(jax.jit, static_argnames=("b", "steps"))
def _range_run(d, sched, key, *, b, steps):
    idx, mask = sampling._batches(key, d.n, b, -(-steps * b // d.n), "reshuffle")
    idx, mask = (a.reshape(-1, 1, b)[:steps] for a in (idx, mask))  # one update per recorded block
    eta = sched(jnp.arange(steps))
    return eta, _sgd(d, jnp.zeros(d.x_train.shape[1]), eta[:, None], idx, mask)[1][1]


def lr_range_test(
    *, batch_size=32, lr_start=1e-4, lr_end=10.0, steps=400, seeds=5, seed=0, problem=RANGE_LSQ
) -> RangeTest:
    r"""Smith (2017): SGD from w = 0 with :math:`\eta_t = \eta_0\gamma^t` (``schedules.exponential``, γ > 1)
    from ``lr_start`` to ``lr_end`` in ``steps`` updates, on least squares with known L (2/L = 0.5 here).

    Claim (papers.md §7, B ≤ 256): the loss minimum lies at 0.1–1 × 2/L and the loss blows up (> 4× its
    minimum) at 0.8–2 × 2/L: the test finds the stability limit without knowing L.
    """
    lr_start = float(_checks.positive("lr_start", lr_start))
    lr_end = float(_checks.positive("lr_end", lr_end))
    if lr_end <= lr_start:
        raise ValueError(f"lr_end must exceed lr_start, got lr_start={lr_start!r}, lr_end={lr_end!r}")
    steps, b = _pint("steps", steps), _pint("batch_size", batch_size)
    if steps < 2 or b > problem.n:
        raise ValueError(f"need steps ≥ 2 and batch_size ≤ n={problem.n}, got steps={steps}, batch_size={b}")
    sched = schedules.exponential(lr_start, (lr_end / lr_start) ** (1 / (steps - 1)))
    keys = _keys(seed, seeds)
    ds = _problems(problem, keys)
    run = jax.vmap(functools.partial(_range_run, b=b, steps=steps), (0, None, 0))
    eta, loss = run(ds, sched, _fold(keys, 1))
    eta, loss = np.asarray(eta[0], np.float64), np.asarray(loss, np.float64)
    per_seed = np.array([suggest_range(eta, curve) for curve in loss])
    two_over_L = 2 / float(ds.eigenvalues[:, -1].max())
    return RangeTest(eta, loss, *suggest_range(eta, loss.mean(0)), per_seed, two_over_L)


# ---- 3. Goyal et al.: the linear scaling rule and gradual warmup -------------------------------------------


class LinearScaling(NamedTuple):
    k: np.ndarray  # (K,) batch and rate multipliers
    gap: np.ndarray  # (K, seeds, epochs) F(w) - F* after each epoch
    gap0: np.ndarray  # (seeds,) F(0) - F*
    diverged: np.ndarray  # (K, seeds) final gap non-finite or above gap0
    two_over_L: float


def linear_scaling(
    ks=(1, 4, 16, 64, 256, 512), *, lr=0.005, batch_size=8, epochs=10, seeds=3, seed=0, problem=GOYAL_LSQ
) -> LinearScaling:
    r"""Goyal et al. (2017): SGD with batch :math:`kB` and rate :math:`k\eta` for each k, same epochs, from 0.

    Claim (papers.md §2): for k ≤ 16 the gap after 5 and 10 epochs is within 20% of k = 1 (k steps of B at
    η ≈ one step of kB at kη); the rule degrades for larger k and diverges once kη > 2/L (k = 512 here).
    """
    ks = np.asarray(ks)
    if ks.ndim != 1 or ks.size == 0 or ks.dtype.kind not in "iu" or np.any(ks <= 0):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got ks={ks!r}")
    b, epochs = _pint("batch_size", batch_size), _pint("epochs", epochs)
    eta = float(_checks.positive("lr", lr))
    if ks.max() * b > problem.n:
        raise ValueError(f"max(ks) × batch_size must be at most n={problem.n}, got {ks.max()} × {b}")
    keys = _keys(seed, seeds)
    ds, w0 = _problems(problem, keys), jnp.zeros((len(keys), problem.d))
    runs = [_sgd_seeds(ds, w0, float(k * eta), _fold(keys, 1), b=int(k) * b, epochs=epochs)[1] for k in ks]
    gap, gap0 = np.asarray(runs, np.float64), np.asarray(jax.vmap(_gap)(ds, w0), np.float64)
    diverged = ~np.isfinite(gap[..., -1]) | (gap[..., -1] > gap0)
    return LinearScaling(ks, gap, gap0, diverged, 2 / float(ds.eigenvalues[:, -1].max()))


def scaling_warmup(lr, k, updates_per_epoch, warmup_epochs=5) -> schedules.Warmup:
    r"""Goyal et al.'s gradual warmup for the linear scaling rule: :math:`\eta` at update 0, rising by a
    constant amount each update to :math:`k\eta` after ``warmup_epochs`` epochs, then :math:`k\eta`."""
    eta, k = float(_checks.positive("lr", lr)), _pint("k", k)
    steps = _pint("updates_per_epoch", updates_per_epoch) * _pint("warmup_epochs", warmup_epochs)
    return schedules.warmup(schedules.constant(k * eta), steps, start=eta)


# ---- 4. Smith et al. (2018): increase the batch size instead of decaying the rate --------------------------


class BatchIncrease(NamedTuple):
    gap: np.ndarray  # (2, seeds, phases) gap at each phase end: [0] rate decay, [1] batch increase
    updates: np.ndarray  # (2,) total updates of each plan
    ratio: np.ndarray  # (phases,) mean gap of the batch plan / mean gap of the decay plan
    lrs: np.ndarray  # (2, phases) rate of each phase
    batch_sizes: np.ndarray  # (2, phases)


def batch_increase(
    *, lr=0.04, batch_size=16, factor=5, phases=3, epochs_per_phase=10, seeds=5, seed=0, problem=SMITH_LSQ
) -> BatchIncrease:
    r"""Smith, Kindermans, Ying & Le (2018) on least squares: (a) batch B, rate divided by ``factor`` at
    each phase; (b) rate fixed, batch multiplied by ``factor``. Each phase continues from the last weights.

    Claim (papers.md §7): both reach the same gap per epoch, ratio (b)/(a) in [0.8, 1.25] at each phase
    end, with (b) using at most half the updates (the noise scale ηN/B falls the same way in both).
    """
    eta, b = float(_checks.positive("lr", lr)), _pint("batch_size", batch_size)
    factor = _pint("factor", factor)
    phases, epochs = _pint("phases", phases), _pint("epochs_per_phase", epochs_per_phase)
    if b * factor ** (phases - 1) > problem.n:
        raise ValueError(f"the last batch size batch_size·factor^(phases-1) must be at most n={problem.n}")
    lrs = np.array([[eta / factor**p for p in range(phases)], [eta] * phases])
    bs = np.array([[b] * phases, [b * factor**p for p in range(phases)]])
    keys = _keys(seed, seeds)
    ds, gap = _problems(problem, keys), np.zeros((2, len(keys), phases))
    for plan in range(2):
        w = jnp.zeros((len(keys), problem.d))
        for p in range(phases):  # each phase is new shapes: a separate compiled loop, continuing from w
            eta_p, b_p = float(lrs[plan, p]), int(bs[plan, p])
            w, g = _sgd_seeds(ds, w, eta_p, _fold(keys, 1 + p), b=b_p, epochs=epochs)
            gap[plan, :, p] = np.asarray(g[:, -1], np.float64)
    updates = (epochs * -(-problem.n // bs)).sum(axis=1)
    return BatchIncrease(gap, updates, gap[1].mean(0) / gap[0].mean(0), lrs, bs)
