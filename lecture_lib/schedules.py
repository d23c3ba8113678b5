r"""Learning-rate schedules as small immutable pytrees: pure functions of the step ``t``.

A schedule's fields are its hyperparameters as float32 (rates) and int32 (step counts) arrays: pytree leaves,
so a schedule passed into a jitted function is data and a slider move compiles nothing (only the *number* of
``multistep`` milestones is a shape). ``sched(t)`` is the rate, elementwise over an int or int array::

    sched = ll.schedules.cosine(lr=0.1, total=100)
    sched(0), sched(jnp.arange(200))          # t counts from 0

Cycle indices and floors use integer arithmetic, so milestones and restarts land on the exact step. A schedule
with a PyTorch counterpart gives its numbers (tested step by step). ``reduce_on_plateau`` follows a metric:
``s = sched.init()``, then ``lr, s = sched.update(s, metric)`` once per epoch.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass


def _f(x):
    return jnp.asarray(x).astype(jnp.float32)


class Schedule:
    """Common interface: ``sched(t)`` is the learning rate at step ``t``; subclasses define ``eta``."""

    def __call__(self, t) -> jax.Array:
        dtype = jnp.result_type(t)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(f"t must be an integer step count or an array of them, got dtype {dtype}")
        return _evaluate(self, jnp.asarray(t, jnp.int32))

    def eta(self, t: jax.Array) -> jax.Array:
        """The rate at int32 steps ``t`` (any shape), elementwise."""
        raise NotImplementedError


# Jitted so that a call outside jit (a plot, a Python loop) is one dispatch, not one per operation; inside
# jit it is inlined. The schedule is an argument, so new hyperparameter values reuse the compiled version.
@jax.jit
def _evaluate(sched: Schedule, t: jax.Array) -> jax.Array:
    return _f(sched.eta(t))


@pytree_dataclass
class Constant(Schedule):
    r"""A fixed rate, :math:`\eta_t = \eta` (PyTorch: no scheduler)."""

    lr: jax.Array

    def eta(self, t):
        return jnp.broadcast_to(_f(self.lr), t.shape)


@pytree_dataclass
class StepDecay(Schedule):
    r"""Multiply by ``gamma`` every ``step_size`` = :math:`s` steps: :math:`\eta_t = \eta\,\gamma^{\lfloor t/s
    \rfloor}`. PyTorch: ``StepLR(step_size, gamma)``."""

    lr: jax.Array
    step_size: jax.Array
    gamma: jax.Array

    def eta(self, t):
        return self.lr * jnp.power(self.gamma, _f(t // self.step_size))


@pytree_dataclass
class MultiStep(Schedule):
    r"""Multiply by ``gamma`` at each milestone :math:`m_i`:
    :math:`\eta_t = \eta\,\gamma^{|\{i:\ m_i \le t\}|}`. PyTorch: ``MultiStepLR(milestones, gamma)``."""

    lr: jax.Array
    milestones: jax.Array  # int32, shape (number of milestones,)
    gamma: jax.Array

    def eta(self, t):
        m = jnp.reshape(self.milestones, (1,) * t.ndim + (-1,))  # explicit broadcast against t[..., None]
        return self.lr * jnp.power(self.gamma, _f(jnp.sum(t[..., None] >= m, axis=-1)))


@pytree_dataclass
class Exponential(Schedule):
    r"""Geometric decay, or growth for an LR range test: :math:`\eta_t = \eta\,\gamma^t`. PyTorch:
    ``ExponentialLR(gamma)``."""

    lr: jax.Array
    gamma: jax.Array

    def eta(self, t):
        return self.lr * jnp.power(self.gamma, _f(t))


@pytree_dataclass
class InverseTime(Schedule):
    r"""The 1/k family of the SGD-convergence slide: :math:`\eta_t = \eta / (1 + t/\tau)^p` (``power`` = p);
    p = 1 meets Robbins–Monro, :math:`\sum_t \eta_t = \infty` and :math:`\sum_t \eta_t^2 < \infty`."""

    lr: jax.Array
    power: jax.Array
    tau: jax.Array

    def eta(self, t):
        return self.lr * jnp.power(1.0 + _f(t) / self.tau, -self.power)


@pytree_dataclass
class InverseSqrt(Schedule):
    r"""Inverse square-root decay: :math:`\eta_t = \eta / \sqrt{\max(t, 1)}`."""

    lr: jax.Array

    def eta(self, t):
        return self.lr / jnp.sqrt(_f(jnp.maximum(t, 1)))


@pytree_dataclass
class Linear(Schedule):
    r"""From ``lr`` to ``end`` in ``total`` = :math:`T` steps, then ``end``:
    :math:`\eta_t = \eta + (\eta_{end} - \eta)\min(t, T)/T`. PyTorch: ``LinearLR(1, end / lr, total)``."""

    lr: jax.Array
    total: jax.Array
    end: jax.Array

    def eta(self, t):
        u = _f(t) / _f(self.total)  # used for t < T only: XLA's division may miss 1 by an ulp at t = T
        return jnp.where(t < self.total, self.lr + (self.end - self.lr) * u, self.end)


@pytree_dataclass
class Polynomial(Schedule):
    r"""Polynomial decay to ``end`` in ``total`` = :math:`T` steps, then ``end``:
    :math:`\eta_t = (\eta - \eta_{end})(1 - \min(t, T)/T)^p + \eta_{end}`.
    PyTorch, for ``end = 0``: ``PolynomialLR(total_iters=total, power=p)``."""

    lr: jax.Array
    total: jax.Array
    power: jax.Array
    end: jax.Array

    def eta(self, t):
        u = _f(t) / _f(self.total)  # used for t < T only: 1 - u could round below 0 at t = T
        return jnp.where(
            t < self.total, (self.lr - self.end) * jnp.power(1.0 - u, self.power) + self.end, self.end
        )


@pytree_dataclass
class Cosine(Schedule):
    r"""Cosine annealing in ``total`` = :math:`T` steps, then ``lr_min``:
    :math:`\eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})(1 + \cos(\pi\min(t, T)/T))`.
    PyTorch: ``CosineAnnealingLR(T_max=total, eta_min=lr_min)`` for :math:`t \le T` (it climbs back after)."""

    lr: jax.Array
    total: jax.Array
    lr_min: jax.Array

    def eta(self, t):
        u = _f(t) / _f(self.total)  # used for t < T only, so that t >= T gives lr_min exactly
        cos = self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + jnp.cos(jnp.pi * u))
        return jnp.where(t < self.total, cos, self.lr_min)


@pytree_dataclass
class SGDR(Schedule):
    r"""Cosine annealing with warm restarts (Loshchilov & Hutter 2017); cycle i lasts :math:`T_i = T_0 m^i`
    steps (``period`` = :math:`T_0`, ``mult`` = m), :math:`T_{cur}` counts the steps since the last restart:
    :math:`\eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})(1 + \cos(\pi T_{cur}/T_i))`.
    PyTorch: ``CosineAnnealingWarmRestarts(T_0=period, T_mult=mult, eta_min=lr_min)``."""

    lr: jax.Array
    period: jax.Array
    mult: jax.Array
    lr_min: jax.Array

    def eta(self, t):
        T0, m = self.period, self.mult
        mg = jnp.maximum(m, 2)  # a safe base for the geometric branch, which m = 1 does not use

        def start(p):  # first step of the cycle of length T0 p, p = m^i: T0 (1 + m + ... + m^(i-1))
            return T0 * ((p - 1) // (mg - 1))

        # Cycle i from a float log, which can be one off next to a restart; exact integer tests correct it.
        # (Exact while T0 m^(i+1) fits in int32.)
        i = jnp.floor(jnp.log1p(_f(t) * _f(mg - 1) / _f(T0)) / jnp.log(_f(mg))).astype(jnp.int32)
        p = jnp.power(mg, jnp.maximum(i, 0))
        p = jnp.where(t < start(p), p // mg, jnp.where(t >= start(p * mg), p * mg, p))
        T_cur = jnp.where(m > 1, t - start(p), t % T0)
        T_i = jnp.where(m > 1, T0 * p, T0)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + jnp.cos(jnp.pi * _f(T_cur) / _f(T_i)))


@pytree_dataclass
class Trapezoid(Schedule):
    r"""Warmup-stable-decay (Hu et al. 2024; Hägele et al. 2024): up in ``warmup`` = :math:`T_w` steps, flat,
    down in the last ``cooldown`` = :math:`T_d` of ``total`` = :math:`T` steps, 0 from :math:`T` on:
    :math:`\eta_t = \eta\min(t/T_w,\ 1,\ (T - t)/T_d)` for :math:`t < T`; :math:`T_w` or :math:`T_d` = 0
    drops that ramp. No PyTorch scheduler."""

    lr: jax.Array
    total: jax.Array
    warmup: jax.Array
    cooldown: jax.Array

    def eta(self, t):
        # the comparisons, not the divisions, decide the plateau: a division may miss 1 by an ulp
        up = jnp.where(t < self.warmup, _f(t) / _f(jnp.maximum(self.warmup, 1)), 1.0)
        down = jnp.where(
            t <= self.total - self.cooldown, 1.0, _f(self.total - t) / _f(jnp.maximum(self.cooldown, 1))
        )
        return jnp.where(t < self.total, self.lr * jnp.minimum(up, down), 0.0)


@pytree_dataclass
class Triangular(Schedule):
    r"""Smith's (2017) cyclical triangle, ``half_period`` = s steps up, s down:
    :math:`\eta_t = \eta_{min} + (\eta_{max} - \eta_{min})(1 - |t \bmod 2s - s|/s)`. PyTorch:
    ``CyclicLR(base_lr=lr_min, max_lr=lr_max, step_size_up=s, mode="triangular", cycle_momentum=False)``."""

    lr_min: jax.Array
    lr_max: jax.Array
    half_period: jax.Array

    def eta(self, t):
        s = self.half_period
        x = jnp.abs(t % (2 * s) - s)  # steps away from the peak
        return self.lr_min + (self.lr_max - self.lr_min) * _f(s - x) / _f(s)  # exactly lr_min at x = s


@pytree_dataclass
class Warmup(Schedule):
    r"""Linear warmup (Goyal et al. 2017) from ``start`` into a schedule :math:`\eta(\cdot)` in ``steps`` =
    :math:`T_w`: :math:`\eta_{start} + (\eta(T_w) - \eta_{start})\,t/T_w` for :math:`t < T_w`, then
    :math:`\eta(t)`; continuous at :math:`T_w`."""

    schedule: Schedule
    steps: jax.Array
    start: jax.Array

    def eta(self, t):
        ramp = self.start + (self.schedule(self.steps) - self.start) * _f(t) / _f(self.steps)
        return jnp.where(t < self.steps, ramp, self.schedule(t))


class PlateauState(NamedTuple):
    lr: jax.Array  # the current rate (float32)
    best: jax.Array  # best metric so far (float32, +inf at first)
    num_bad_epochs: jax.Array  # epochs since the last significant improvement (int32)
    cooldown_counter: jax.Array  # epochs left in which bad epochs are not counted (int32)


@pytree_dataclass
class ReduceOnPlateau:
    r"""Cut the rate when a metric :math:`f` stops improving; driven by the metric, not the step.

    An epoch improves when :math:`f < f_{best}(1 - \theta)` (``threshold`` = :math:`\theta`). After more than
    ``patience`` epochs without one, :math:`\eta \leftarrow \max(\gamma\eta, \eta_{min})` (``factor`` =
    :math:`\gamma`, ``min_lr`` = :math:`\eta_{min}`) if that lowers :math:`\eta` by more than :math:`10^{-8}`;
    the next ``cooldown`` epochs are then not counted.
    PyTorch: ``ReduceLROnPlateau(mode="min", threshold_mode="rel", ...)``.
    """

    eps: ClassVar[float] = 1e-8  # PyTorch's smallest change of the rate
    lr: jax.Array
    factor: jax.Array
    patience: jax.Array
    threshold: jax.Array
    cooldown: jax.Array
    min_lr: jax.Array

    def __call__(self, t):
        raise TypeError(
            "reduce_on_plateau is driven by a metric, not by the step: use s = sched.init(), then "
            "lr, s = sched.update(s, metric) once per epoch"
        )

    def init(self) -> PlateauState:
        zero = jnp.zeros((), jnp.int32)
        return PlateauState(_f(self.lr), _f(jnp.inf), zero, zero)

    def update(self, state: PlateauState, metric) -> tuple[jax.Array, PlateauState]:
        """One epoch's metric in; the rate for the next epoch and the new state out (jit-able)."""
        return _plateau_update(self, state, metric)

    def _update(self, state, metric):
        f = _f(metric)
        improved = f < state.best * (1.0 - self.threshold)
        best = jnp.where(improved, f, state.best)
        bad = jnp.where(improved, 0, state.num_bad_epochs + 1)
        in_cooldown = state.cooldown_counter > 0
        counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(in_cooldown, 0, bad)  # bad epochs in the cooldown are ignored
        reduce = bad > self.patience
        new_lr = jnp.maximum(state.lr * self.factor, self.min_lr)
        lr = _f(jnp.where(reduce & (state.lr - new_lr > self.eps), new_lr, state.lr))
        counter = jnp.where(reduce, self.cooldown, counter).astype(jnp.int32)
        bad = jnp.where(reduce, 0, bad).astype(jnp.int32)
        return lr, PlateauState(lr, best, bad, counter)


_plateau_update = jax.jit(ReduceOnPlateau._update)  # one dispatch per epoch in a Python loop


# ---- factories: validate eagerly, store float32 / int32 ---------------------------------------------


def _below(name, value, bound_name, bound):
    """A floor rate: in [0, bound), or only non-negative when the bound is traced."""
    if _checks.is_traced(bound):
        return _checks.nonnegative(name, value)
    rule = f"be non-negative and less than {bound_name}={bound!r}"
    return _checks.real(name, value, lo=0.0, hi=float(bound), hi_open=True, rule=rule)


def _milestones(milestones):
    if _checks.is_traced(milestones):
        return jnp.asarray(milestones, jnp.int32)
    m = np.asarray(milestones)
    if m.ndim != 1 or (m.size and m.dtype.kind not in "iu"):
        raise TypeError(f"milestones must be a sequence of integers, got milestones={milestones!r}")
    if np.any(m <= 0) or np.any(np.diff(m) <= 0):
        raise ValueError(f"milestones must be strictly increasing positive integers, got {milestones=}")
    return m.astype(np.int32)


def constant(lr) -> Constant:
    """A fixed learning rate."""
    return Constant(_checks.positive("lr", lr))


def step_decay(lr, step_size, gamma=0.1) -> StepDecay:
    """``lr * gamma ** (t // step_size)``; ``torch.optim.lr_scheduler.StepLR``."""
    pos = _checks.positive
    return StepDecay(pos("lr", lr), _checks.positive_int("step_size", step_size), pos("gamma", gamma))


def multistep(lr, milestones, gamma=0.1) -> MultiStep:
    """``lr * gamma ** (number of milestones <= t)``; ``torch.optim.lr_scheduler.MultiStepLR``."""
    return MultiStep(_checks.positive("lr", lr), _milestones(milestones), _checks.positive("gamma", gamma))


def exponential(lr, gamma) -> Exponential:
    """``lr * gamma ** t``; ``torch.optim.lr_scheduler.ExponentialLR``."""
    return Exponential(_checks.positive("lr", lr), _checks.positive("gamma", gamma))


def inverse_time(lr, power=1.0, tau=1.0) -> InverseTime:
    """``lr / (1 + t / tau) ** power``, the 1/k family."""
    pos = _checks.positive
    return InverseTime(pos("lr", lr), pos("power", power), pos("tau", tau))


def inverse_sqrt(lr) -> InverseSqrt:
    """``lr / sqrt(max(t, 1))``."""
    return InverseSqrt(_checks.positive("lr", lr))


def linear(lr, total, end=0.0) -> Linear:
    """``lr`` to ``end`` linearly in ``total`` steps, then ``end``; ``LinearLR(1, end / lr, total)``."""
    lr_, total_ = _checks.positive("lr", lr), _checks.positive_int("total", total)
    return Linear(lr_, total_, _checks.nonnegative("end", end))


def polynomial(lr, total, power=1.0, end=0.0) -> Polynomial:
    """``(lr - end) * (1 - min(t, total) / total) ** power + end``; ``PolynomialLR`` when ``end = 0``."""
    lr_, total_ = _checks.positive("lr", lr), _checks.positive_int("total", total)
    return Polynomial(lr_, total_, _checks.positive("power", power), _checks.nonnegative("end", end))


def cosine(lr, total, lr_min=0.0) -> Cosine:
    """Cosine annealing to ``lr_min`` in ``total`` steps; ``CosineAnnealingLR``."""
    lr_, total_ = _checks.positive("lr", lr), _checks.positive_int("total", total)
    return Cosine(lr_, total_, _below("lr_min", lr_min, "lr", lr))


def sgdr(lr, period, mult=1, lr_min=0.0) -> SGDR:
    """Cosine annealing with warm restarts; ``CosineAnnealingWarmRestarts``."""
    lr_, period_ = _checks.positive("lr", lr), _checks.positive_int("period", period)
    return SGDR(lr_, period_, _checks.positive_int("mult", mult), _below("lr_min", lr_min, "lr", lr))


def trapezoid(lr, total, warmup, cooldown) -> Trapezoid:
    """Warmup-stable-decay: up in ``warmup`` steps, down in the last ``cooldown`` of ``total``."""
    lr_, total_ = _checks.positive("lr", lr), _checks.positive_int("total", total)
    T_w, T_d = _checks.nonnegative_int("warmup", warmup), _checks.nonnegative_int("cooldown", cooldown)
    if not any(_checks.is_traced(x) for x in (total, warmup, cooldown)) and warmup + cooldown > total:
        raise ValueError(f"warmup + cooldown must be at most {total=}, got {warmup=}, {cooldown=}")
    return Trapezoid(lr_, total_, T_w, T_d)


def triangular(lr_min, lr_max, half_period) -> Triangular:
    """Smith's triangular cycle; ``CyclicLR(base_lr=lr_min, max_lr=lr_max, step_size_up=half_period)``."""
    lr_max_ = _checks.positive("lr_max", lr_max)
    lr_min_ = _below("lr_min", lr_min, "lr_max", lr_max)
    return Triangular(lr_min_, lr_max_, _checks.positive_int("half_period", half_period))


def warmup(schedule, steps, start=0.0) -> Warmup:
    """Linear warmup from ``start`` to ``schedule(steps)`` in ``steps`` steps, then ``schedule(t)``."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule (a function of the step), got {schedule=}")
    return Warmup(schedule, _checks.positive_int("steps", steps), _checks.nonnegative("start", start))


def reduce_on_plateau(lr, factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0) -> ReduceOnPlateau:
    """Cut the rate when a metric plateaus; ``ReduceLROnPlateau(mode="min", threshold_mode="rel")``."""
    return ReduceOnPlateau(
        _checks.positive("lr", lr),
        _checks.real("factor", factor, lo=0.0, hi=1.0, lo_open=True, hi_open=True, rule="be in (0, 1)"),
        _checks.nonnegative_int("patience", patience),
        _checks.nonnegative("threshold", threshold),
        _checks.nonnegative_int("cooldown", cooldown),
        _checks.nonnegative("min_lr", min_lr),
    )
