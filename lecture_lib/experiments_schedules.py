r"""Learning-rate schedules in training: the experiments of notebook 08, vmapped over seeds.

- :class:`ScheduleTrainer`: the two-layer net on digits trained under any schedule for several seeds in one
  compiled call. A schedule enters as its table of rates, one per update (:class:`Tabulated`), so every
  schedule, and every value of its parameters, shares one compiled run: a slider moves data, not code.
- :func:`make_schedule`: a library schedule from slider values whose durations are in *epochs*, counted per
  update (durations × m) or per epoch.
- :func:`compare`: the slide's claim, decaying schedules end lower than the constant rate at the same budget.
- :func:`warmup_rescue`: a rate that explodes without warmup trains with a linear warmup (Goyal et al. 2017).
- :func:`linear_scaling`, :func:`batch_increase`: Goyal et al.'s rule and Smith et al. (2018) on the
  least-squares problems of ``experiments_lr``, with the batch size *traced*: batch kB is k micro-batches of B
  whose gradients are averaged before one update (gradient accumulation), so k is a slider, not a shape.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, models, optimizers, sampling, schedules, training
from lecture_lib import data as _data
from lecture_lib import experiments_lr as _lr
from lecture_lib._pytree import pytree_dataclass

SIZES = (64, 50, 10)
EPOCHS, BATCH_SIZE, SEEDS = 10, 64, (0, 1, 2, 3)
REG = (
    1e-2  # weight decay: without it this net interpolates digits and a constant rate never stalls (notebook)
)
LR = 1.5  # high enough that a constant rate stalls on its noise floor within 10 epochs
NAMES = (
    "constant", "step", "multistep", "exponential", "1/k", "inverse sqrt", "linear", "polynomial", "cosine",
    "SGDR", "trapezoid (WSD)", "triangular",
)  # fmt: skip
DEFAULTS = {  # slider values: durations in epochs, floors and ends as fractions of eta_0
    "constant": {},
    "step": {"step_size": 3, "gamma": 0.3},
    "multistep": {"m1": 5, "gap": 3, "gamma": 0.1},
    "exponential": {"gamma": 0.7},
    "1/k": {"tau": 1.0, "power": 1.0},
    "inverse sqrt": {},
    "linear": {"T": EPOCHS, "end": 0.0},
    "polynomial": {"power": 2.0, "end": 0.0},
    "cosine": {"T": EPOCHS, "floor": 0.0},
    "SGDR": {"period": 2, "mult": 2, "floor": 0.0},
    "trapezoid (WSD)": {"warmup": 1, "cooldown": 2},
    "triangular": {"half_period": 2, "floor": 0.1},
}
PLATEAU = {"factor": 0.3, "patience": 1, "threshold": 0.02}


@pytree_dataclass
class Tabulated(schedules.Schedule):
    r"""A schedule given by its table of rates, :math:`\eta_t` = ``values[t]`` (the last one after the table):
    any schedule of one run length, in one compiled training run."""

    values: jax.Array

    def eta(self, t):
        return self.values[jnp.clip(t, 0, self.values.shape[0] - 1)]


def make_schedule(name, lr, params=None, *, m, epochs=EPOCHS, per_epoch=False, warmup=0):
    """The library schedule ``name`` (one of ``NAMES``) from slider values (``DEFAULTS[name]`` by default).

    Durations are in epochs; with ``per_epoch=False`` the schedule counts updates (duration × ``m`` updates
    per epoch, and the exponential's per-epoch γ becomes :math:`\\gamma^{1/m}` per update), else epochs.
    ``warmup`` > 0 epochs wraps the schedule in ``schedules.warmup`` (not the trapezoid, which has its own).
    """
    S = schedules
    if name not in DEFAULTS:
        raise ValueError(f"name must be one of {NAMES}, got name={name!r}")
    p = {**DEFAULTS[name], **(params or {})}
    u = 1 if per_epoch else _checks.positive_int("m", m, array=False)
    T = epochs * u

    def d(x):  # a duration in epochs, as a step count of the chosen unit
        return int(round(x * u))

    lr = float(_checks.positive("lr", lr))
    sched = {
        "constant": lambda: S.constant(lr),
        "step": lambda: S.step_decay(lr, d(p["step_size"]), p["gamma"]),
        "multistep": lambda: S.multistep(lr, [d(p["m1"]), d(p["m1"] + p["gap"])], p["gamma"]),
        "exponential": lambda: S.exponential(lr, p["gamma"] ** (1 / u)),
        "1/k": lambda: S.inverse_time(lr, p["power"], p["tau"] * u),
        "inverse sqrt": lambda: S.inverse_sqrt(lr),
        "linear": lambda: S.linear(lr, d(p["T"]), p["end"] * lr),
        "polynomial": lambda: S.polynomial(lr, T, p["power"], p["end"] * lr),
        "cosine": lambda: S.cosine(lr, d(p["T"]), p["floor"] * lr),
        "SGDR": lambda: S.sgdr(lr, d(p["period"]), p["mult"], p["floor"] * lr),
        "trapezoid (WSD)": lambda: S.trapezoid(lr, T, d(p["warmup"]), d(p["cooldown"])),
        "triangular": lambda: S.triangular(p["floor"] * lr, lr, d(p["half_period"])),
    }[name]()
    w = _checks.nonnegative_int("warmup", warmup)
    if int(w) > 0 and name != "trapezoid (WSD)":
        sched = S.warmup(sched, d(int(w)))
    return sched


class Runs(NamedTuple):
    """One schedule, every seed (NumPy, leading axis = seeds)."""

    lr: np.ndarray  # (T,) or (seeds, epochs) for reduce-on-plateau: the rate of each update / epoch
    cost: np.ndarray  # (seeds, epochs) training loss + reg R(W) after each epoch (nan once diverged)
    val_loss: np.ndarray  # (seeds, epochs)
    val_acc: np.ndarray  # (seeds, epochs)
    diverged_at: np.ndarray  # (seeds,) index of the first non-finite batch loss, -1 if none
    max_loss: np.ndarray  # (seeds,) largest finite batch loss


class ScheduleTrainer:
    """SGD on an MLP on digits for ``seeds``: weights and sample orders drawn once, then one jitted, vmapped
    run per call (:meth:`run` a step schedule as its table, :meth:`run_plateau` reduce-on-plateau)."""

    def __init__(self, *, sizes=SIZES, epochs=EPOCHS, batch_size=BATCH_SIZE, reg=REG, seeds=SEEDS,
                 init_scale=None, data_seed=0):  # fmt: skip
        self.model = models.mlp(list(sizes), init_scale=init_scale)
        self.data = _data.digits(seed=data_seed)
        self.epochs = _checks.positive_int("epochs", epochs, array=False)
        self.batch_size = _checks.positive_int("batch_size", batch_size, array=False)
        self.m = sampling.n_batches(int(self.data.x_train.shape[0]), self.batch_size)
        self.T = self.epochs * self.m
        self.reg = float(_checks.nonnegative("reg", reg))
        seeds = list(seeds)
        if not seeds or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in seeds):
            raise ValueError(
                f"seeds must be a non-empty sequence of non-negative integers, got seeds={seeds!r}"
            )
        start, _ = training.plan(self.model, self.data, epochs=self.epochs, batch_size=self.batch_size)
        starts = [jax.tree.map(np.asarray, start(jax.random.key(int(s)))) for s in seeds]
        # NumPy: no eager compiles (jnp.stack, jnp.asarray compile per shape)
        self._host_starts = jax.tree.map(lambda *a: np.stack(a), *starts)
        self._starts = jax.device_put(self._host_starts)
        self.seeds = tuple(int(s) for s in seeds)

    def table(self, sched, *, per_epoch=False) -> np.ndarray:
        """The rate of every update (T,): ``sched(t)``, with t the update or its epoch ``t // m``."""
        t = np.arange(self.T, dtype=np.int32)
        return np.asarray(sched(jnp.asarray(t // self.m if per_epoch else t)), np.float64)

    def _go(self, schedule, opt):
        # the seeds share the schedule and optimizer: one training loop steps them all
        _, run_runs = training.plan(
            self.model, self.data, epochs=self.epochs, batch_size=self.batch_size, schedule=schedule,
            reg=self.reg, runs=True,
        )  # fmt: skip
        return run_runs(opt, *self._starts)._replace(params=None, state=None)

    def run(self, sched, *, per_epoch=False, opt=None) -> Runs:
        """Train every seed under the step schedule ``sched`` (through its table: no compile per schedule)."""
        values = self.table(sched, per_epoch=per_epoch)
        opt = optimizers.sgd(1.0) if opt is None else opt  # the schedule replaces the rate
        h = self._go(Tabulated(jnp.asarray(values, jnp.float32)), opt)
        return _runs(values, h)

    def run_groups(self, scheds, *, per_epoch=False, opt=None) -> list[Runs]:
        """``[self.run(s) for s in scheds]``, the schedules trained at the same time: one per CPU device where
        there are as many (``training.plan(..., groups=True)``; lecture_lib gives the CPU two), else in turn.
        Two schedules whose runs each keep one core busy take the time of the longer, not the sum."""
        tables = [self.table(s, per_epoch=per_epoch) for s in scheds]
        if not tables:
            raise ValueError(f"scheds must name at least one schedule, got scheds={scheds!r}")
        opt = optimizers.sgd(1.0) if opt is None else opt  # the schedules replace the rate
        _, run_groups = training.plan(
            self.model, self.data, epochs=self.epochs, batch_size=self.batch_size,
            schedule=Tabulated(np.stack(tables).astype(np.float32)), reg=self.reg, runs=True, groups=True,
        )  # fmt: skip
        stacked = jax.tree.map(lambda a: np.broadcast_to(a, (len(tables), *a.shape)), self._host_starts)
        h = jax.device_get(run_groups(opt, *stacked)._replace(params=None, state=None))
        return [_runs(values, jax.tree.map(lambda a, i=i: a[i], h)) for i, values in enumerate(tables)]

    def run_plateau(self, lr, factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0) -> Runs:
        """Train every seed under ``reduce_on_plateau`` driven by each seed's own validation loss."""
        sched = schedules.reduce_on_plateau(lr, factor, patience, threshold, cooldown, min_lr)
        h = self._go(sched, optimizers.sgd(lr))
        return _runs(np.asarray(h.lr, np.float64), h)


def _runs(lr, h) -> Runs:
    f = functools.partial(np.asarray, dtype=np.float64)
    loss = f(h.loss)
    max_loss = np.max(np.where(np.isfinite(loss), loss, -np.inf), axis=-1)
    return Runs(lr, f(h.cost), f(h.val_loss), f(h.val_acc), np.asarray(h.diverged_at), max_loss)


@functools.cache
def trainer(**kwargs) -> ScheduleTrainer:
    """One :class:`ScheduleTrainer` per setting, shared by the panels and the notebook of a session."""
    return ScheduleTrainer(**kwargs)


def compare(names=NAMES, lr=LR, *, plateau=PLATEAU, per_epoch=False, **trainer_kwargs) -> dict[str, Runs]:
    """``{name: Runs}``: the net trained under each schedule at its default settings (and reduce-on-plateau
    driven by the validation loss), all from the same initial rate ``lr``, seeds, weights and orders.

    Claim (slides): with a high initial rate, every decaying schedule ends with a lower training cost than
    the constant rate at the same budget, for every seed (``notebooks/08_schedules.ipynb``).
    """
    tr = trainer(**trainer_kwargs)
    out = {n: tr.run(make_schedule(n, lr, m=tr.m, epochs=tr.epochs, per_epoch=per_epoch), per_epoch=per_epoch)
           for n in names}  # fmt: skip
    if plateau is not None:
        out["reduce on plateau"] = tr.run_plateau(lr, **plateau)
    return out


# ---- linear warmup (Goyal et al. 2017): a deeper net whose first updates explode at a high rate ----------

WARMUP_NET = {"sizes": (64, 64, 64, 64, 64, 10), "init_scale": 0.35, "reg": 0.0, "seeds": (0, 1, 2)}
WARMUP_LR, WARMUP_EPOCHS = 0.2, 4  # all seeds explode within the first epoch without warmup


def warmup_rescue(lr, warmup_epochs, **net) -> tuple[Runs, Runs]:
    """``(without, with)``: the deeper net of ``WARMUP_NET`` trained at the constant rate ``lr``, and with a
    linear warmup from 0 to ``lr`` over ``warmup_epochs`` epochs (counted per update) before it; the two
    trained at once (:meth:`ScheduleTrainer.run_groups`)."""
    tr = trainer(**{**WARMUP_NET, **net})
    w = _checks.positive_int("warmup_epochs", warmup_epochs, array=False)
    flat = schedules.constant(lr)
    without, warmed = tr.run_groups([flat, schedules.warmup(flat, w * tr.m)])  # side by side: two cores
    return without, warmed


# ---- Goyal et al. and Smith et al. on least squares, the batch size traced -------------------------------


@functools.partial(jax.jit, static_argnames=("b", "epochs"))
def _accumulated(d, w0, eta, k, key, *, b, epochs):
    """SGD on ½·mean (xw − y)² with batch k·b: each epoch's permutation cut into micro-batches of b, and the
    mean gradient of k consecutive ones (the epoch's last update takes what remains) applied with rate η.
    Returns w and the gap F(w) − F* after each epoch."""
    idx, mask = sampling._batches(key, d.n, b, epochs, "reshuffle")
    M, hi = idx.shape[1], jax.lax.Precision.HIGHEST

    def micro(carry, inputs):
        w, g_sum, count = carry
        j, i, keep = inputs
        xb = d.x_train[i]
        r = jnp.where(keep, jnp.matmul(xb, w, precision=hi) - d.y_train[i], 0.0)
        g_sum, count = g_sum + jnp.matmul(r, xb, precision=hi), count + jnp.sum(keep)
        apply = ((j + 1) % k == 0) | (j == M - 1)  # one update per k micro-batches
        w = jnp.where(apply, w - eta * g_sum / jnp.maximum(count, 1), w)
        return (w, jnp.where(apply, 0.0, g_sum), jnp.where(apply, 0, count)), None

    def epoch(w, inputs):
        zero = (jnp.zeros_like(w), jnp.zeros((), jnp.int32))
        (w, _, _), _ = jax.lax.scan(micro, (w, *zero), (jnp.arange(M), *inputs))
        return w, _lr._gap(d, w)

    return jax.lax.scan(epoch, w0, (idx, mask))


def _seeds_run(ds, w0, eta, k, keys, *, b, epochs):
    run = functools.partial(_accumulated, b=b, epochs=epochs)
    return jax.vmap(run, (0, 0, None, None, 0))(ds, w0, jnp.float32(eta), jnp.int32(k), keys)


@functools.cache
def _problems(problem, seed, seeds):
    keys = _lr._keys(seed, seeds)
    return _lr._problems(problem, keys), keys


class Scaling(NamedTuple):
    k: int
    gap: np.ndarray  # (seeds, epochs) F(w) − F* after each epoch with batch kB and rate kη
    gap_base: np.ndarray  # (seeds, epochs) the same for k = 1
    gap0: np.ndarray  # (seeds,) F(0) − F*
    two_over_L: float


def linear_scaling(
    k, *, lr=0.005, batch_size=8, epochs=10, seeds=3, seed=0, problem=_lr.GOYAL_LSQ
) -> Scaling:
    r"""Goyal et al.'s rule on ``experiments_lr``'s least squares: batch :math:`kB`, rate :math:`k\eta`, the
    same epochs and sample order as k = 1 (the same numbers as ``experiments_lr.linear_scaling``, but k is
    traced: one compile for every k). Claim: the curves match against epochs for small k, and the rule
    breaks for large k (worse, then divergent once :math:`k\eta > 2/L`)."""
    k = _checks.positive_int("k", k, array=False)
    b = _checks.positive_int("batch_size", batch_size, array=False)
    epochs = _checks.positive_int("epochs", epochs, array=False)
    eta = float(_checks.positive("lr", lr))
    if k * b > problem.n:
        raise ValueError(f"k × batch_size must be at most n={problem.n}, got k={k}, batch_size={b}")
    ds, keys = _problems(problem, int(seed), int(seeds))
    w0, order = jnp.zeros((len(keys), problem.d)), _lr._fold(keys, 1)
    gaps = [np.asarray(_seeds_run(ds, w0, kk * eta, kk, order, b=b, epochs=epochs)[1], np.float64)
            for kk in (k, 1)]  # fmt: skip
    gap0 = np.asarray(jax.vmap(_lr._gap)(ds, w0), np.float64)
    return Scaling(k, gaps[0], gaps[1], gap0, 2 / float(ds.eigenvalues[:, -1].max()))


class Increase(NamedTuple):
    gap: np.ndarray  # (2, seeds, phases·epochs) gap after each epoch: [0] rate decay, [1] batch increase
    updates: np.ndarray  # (2, phases·epochs) updates done by the end of each epoch
    lrs: np.ndarray  # (2, phases)
    batch_sizes: np.ndarray  # (2, phases)


def batch_increase(*, lr=0.04, batch_size=16, factor=5, phases=3, epochs_per_phase=10, seeds=5, seed=0,
                   problem=_lr.SMITH_LSQ) -> Increase:  # fmt: skip
    r"""Smith, Kindermans, Ying & Le (2018): (a) batch B, rate divided by ``factor`` each phase; (b) rate
    fixed, batch multiplied by ``factor``; per-epoch curves (``experiments_lr.batch_increase`` gives the
    phase ends, the same numbers). Claim: the same curve against epochs, with fewer updates for (b)."""
    eta, b = float(_checks.positive("lr", lr)), _checks.positive_int("batch_size", batch_size, array=False)
    f = _checks.positive_int("factor", factor, array=False)
    P = _checks.positive_int("phases", phases, array=False)
    E = _checks.positive_int("epochs_per_phase", epochs_per_phase, array=False)
    if b * f ** (P - 1) > problem.n:
        raise ValueError(f"batch_size·factor^(phases-1) must be at most n={problem.n}, got {b}·{f}^{P - 1}")
    ds, keys = _problems(problem, int(seed), int(seeds))
    lrs = np.array([[eta / f**p for p in range(P)], [eta] * P])
    ks = np.array([[1] * P, [f**p for p in range(P)]])
    gap = np.zeros((2, len(keys), P * E))
    for plan in range(2):
        w = jnp.zeros((len(keys), problem.d))
        for p in range(P):
            w, g = _seeds_run(
                ds, w, float(lrs[plan, p]), int(ks[plan, p]), _lr._fold(keys, 1 + p), b=b, epochs=E
            )
            gap[plan, :, p * E : (p + 1) * E] = np.asarray(g, np.float64)
    per_epoch = -(-problem.n // (b * ks))  # (2, P) updates per epoch: ⌈n / (k b)⌉
    updates = np.cumsum(np.repeat(per_epoch, E, axis=1), axis=1)
    return Increase(gap, updates, lrs, b * ks)
