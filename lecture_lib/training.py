r"""Minibatch training, the whole run under one ``jit``: a ``lax.scan`` over epochs around a ``lax.scan``
over the updates of an epoch.

>>> import jax, lecture_lib as ll
>>> data = ll.data.digits(seed=0)
>>> hist = ll.training.fit(ll.models.mlp([64, 50, 10]), data, ll.optimizers.sgd(0.1),
...                        epochs=10, batch_size=64, key=jax.random.key(0))
>>> print(hist.log())  # doctest: +SKIP
Finished epoch 1 / 10: cost 0.672713, train: 0.853166, val 0.844444, lr 1.000000e-01
...

Each update minimises the slide's batch objective

.. math:: J^{\{t\}} = \frac{1}{|B_t|} \sum_{n \in B_t} L(\hat y_n, y_n) + \lambda R(W),
   \qquad R(W) = \tfrac12 \sum_l \lVert W^{[l]} \rVert^2

(weight matrices only, not biases). ``batch_size=1`` is SGD, ``batch_size=n`` full-batch gradient descent.
Learning rate, regularisation, seed, schedule parameters and optimizer hyperparameters are traced: changing
them never recompiles; the model's sizes, ``epochs``, ``batch_size`` and ``sampling`` are shapes and do.

Divergence: ``diverged_at`` is the index into ``loss`` of the first non-finite batch objective (−1 if none).
From that update on the weights stop changing; the history then shows ``nan``/``inf`` as the slide's logs do.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, models, sampling, schedules
from lecture_lib.optimizers import Optimizer


class History(NamedTuple):
    loss: jax.Array  # (epochs * m,) batch objective J at each update, before the update
    cost: jax.Array  # (epochs,) full training loss + lambda R(W) after each epoch
    train_acc: jax.Array  # (epochs,)
    val_acc: jax.Array  # (epochs,)
    val_loss: jax.Array  # (epochs,) validation loss (no regulariser) after each epoch
    lr: jax.Array  # (epochs,) learning rate of the epoch's last update
    diverged_at: jax.Array  # int32 index into `loss`, -1 if none
    params: Any  # final weights

    def log(self) -> str:
        """The cs231n trainer's lines, exactly as on the slides."""
        cost, tr, va, lr = (np.asarray(a) for a in (self.cost, self.train_acc, self.val_acc, self.lr))
        if cost.ndim != 1:
            raise ValueError("log() needs the history of one run; index a vmapped history first")
        epochs = len(cost)
        line = "Finished epoch {} / {}: cost {:f}, train: {:f}, val {:f}, lr {:e}"
        lines = [line.format(e + 1, epochs, cost[e], tr[e], va[e], lr[e]) for e in range(epochs)]
        lines.append(f"finished optimization. best validation accuracy: {np.nanmax(va):f}")
        return "\n".join(lines)

    def running_loss(self, window: int) -> np.ndarray:
        """The slides' "measuring error" estimate: the mean of the last ``window`` batch losses."""
        window = _checks.positive_int("window", window, array=False)
        loss = np.asarray(self.loss, np.float64)
        c = np.concatenate([[0.0], np.cumsum(loss)])
        k = np.arange(1, len(loss) + 1)
        lo = np.maximum(k - window, 0)
        return (c[k] - c[lo]) / (k - lo)


def _objectives(model, loss_name):
    per_sample = models.LOSSES[loss_name]

    def data_loss(params, x, y, mask=None):
        losses = per_sample(model.apply(params, x), y)
        if mask is None:
            return jnp.mean(losses)
        return jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

    return data_loss


def _loss_for(data) -> str:
    return "cross_entropy" if jnp.issubdtype(data.y_train.dtype, jnp.integer) else "squared_error"


@functools.partial(
    jax.jit, static_argnames=("model", "epochs", "batch_size", "sampling_order", "loss_name", "per_epoch")
)
def _fit(
    model, x, y, xv, yv, opt, schedule, reg, key, *, epochs, batch_size, sampling_order, loss_name, per_epoch
):
    n = x.shape[0]
    m = sampling.n_batches(n, batch_size)
    data_loss = _objectives(model, loss_name)
    k_init, k_order = jax.random.split(key)
    params = model.init(k_init)
    idx, mask = sampling._batches(k_order, n, batch_size, epochs, sampling_order)
    plateau = isinstance(schedule, schedules.ReduceOnPlateau)

    def objective_on(xb, yb, mb):
        return lambda p: data_loss(p, xb, yb, mb) + reg * models.l2(p)

    def update(carry, inputs):
        params, state, diverged_at, eta_epoch = carry
        j, idx_b, mask_b = inputs
        xb, yb = x[idx_b], y[idx_b]
        J = objective_on(xb, yb, mask_b)
        loss, g = jax.value_and_grad(J)(params)
        if schedule is None or plateau:
            eta = eta_epoch
        else:
            eta = schedule(j // m if per_epoch else j)
        new_params, new_state = opt.with_lr(eta).update(g, state, params, objective=J)
        bad = ~jnp.isfinite(loss) & (diverged_at < 0)
        diverged_at = jnp.where(bad, j, diverged_at)
        stop = diverged_at >= 0  # after divergence the weights stop changing
        params, state = jax.tree.map(
            lambda old, new: jnp.where(stop, old, new), (params, state), (new_params, new_state)
        )
        return (params, state, diverged_at, eta_epoch), (loss, eta)

    def epoch(carry, inputs):
        params, state, diverged_at, plateau_state = carry
        e, idx_e, mask_e = inputs
        eta_epoch = plateau_state.lr if plateau else opt.lr
        j = e * m + jnp.arange(m)
        (params, state, diverged_at, _), (losses, etas) = jax.lax.scan(
            update, (params, state, diverged_at, eta_epoch), (j, idx_e, mask_e)
        )
        cost = data_loss(params, x, y) + reg * models.l2(params)
        val_loss = data_loss(params, xv, yv)
        train_acc = models.accuracy(model.apply(params, x), y)
        val_acc = models.accuracy(model.apply(params, xv), yv)
        if plateau:
            _, plateau_state = schedule.update(plateau_state, val_loss)
        record = (losses, cost, train_acc, val_acc, val_loss, etas[-1])
        return (params, state, diverged_at, plateau_state), record

    plateau_state = schedule.init() if plateau else jnp.zeros(())
    carry0 = (params, opt.init(params), jnp.int32(-1), plateau_state)
    es = jnp.arange(epochs, dtype=jnp.int32)
    (params, _, diverged_at, _), rec = jax.lax.scan(epoch, carry0, (es, idx, mask))
    losses, cost, train_acc, val_acc, val_loss, lrs = rec
    return History(losses.reshape(-1), cost, train_acc, val_acc, val_loss, lrs, diverged_at, params)


def fit(
    model,
    data,
    opt: Optimizer,
    *,
    epochs: int,
    batch_size: int,
    key,
    schedule=None,
    reg=0.0,
    sampling: str = "reshuffle",
    schedule_unit: str = "update",
    loss: str | None = None,
) -> History:
    """Train ``model`` on ``data`` with minibatches; see the module docstring.

    Args:
      model: e.g. ``ll.models.mlp([64, 50, 10])``.
      data: a dataset with ``x_train, y_train, x_val, y_val`` (``ll.data.digits(seed=0)``).
      opt: an optimizer from ``ll.optimizers`` (first or second order).
      epochs, batch_size: passes over the data and samples per update (``m = ceil(n/b)`` updates an epoch).
      key: ``jax.random.key``; it draws the initial weights and the sample order.
      schedule: a step schedule (``schedule(t)`` replaces the learning rate; ``t`` counts updates, or epochs
        with ``schedule_unit="epoch"``), or ``ll.schedules.reduce_on_plateau(...)``, driven by the validation
        loss once per epoch.
      reg: the regularisation strength :math:`\\lambda` of :math:`\\lambda R(W)`.
      sampling: ``"reshuffle"`` (default), ``"fixed"``, ``"sorted"`` or ``"replacement"``
        (``ll.sampling``).
      loss: ``"cross_entropy"`` or ``"squared_error"``; by default cross-entropy for integer labels.
    """
    if not isinstance(opt, Optimizer):
        raise TypeError(f"opt must be an optimizer from ll.optimizers, got opt={opt!r}")
    epochs = _checks.positive_int("epochs", epochs, array=False)
    b = _checks.positive_int("batch_size", batch_size, array=False)
    n = int(np.shape(data.x_train)[0])
    if b > n:
        raise ValueError(
            f"batch_size must be at most the number of training samples n={n}, got batch_size={b}"
        )
    sampling_order = _checks_order(sampling)
    if key is None:
        raise ValueError("key is required: pass key=jax.random.key(seed)")
    if schedule_unit not in ("update", "epoch"):
        raise ValueError(f"schedule_unit must be 'update' or 'epoch', got schedule_unit={schedule_unit!r}")
    if schedule is not None and not isinstance(schedule, (schedules.Schedule, schedules.ReduceOnPlateau)):
        raise TypeError(f"schedule must be a schedule from ll.schedules, got schedule={schedule!r}")
    loss = loss or _loss_for(data)
    if loss not in models.LOSSES:
        raise ValueError(f"loss must be one of {tuple(models.LOSSES)}, got loss={loss!r}")
    reg = reg if _checks.is_traced(reg) else _checks.nonnegative("reg", reg)
    return _fit(
        model,
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        opt,
        schedule,
        reg,
        key,
        epochs=epochs,
        batch_size=b,
        sampling_order=sampling_order,
        loss_name=loss,
        per_epoch=schedule_unit == "epoch",
    )


def _checks_order(order):
    if order not in sampling.ORDERS:
        raise ValueError(f"sampling must be one of {sampling.ORDERS}, got sampling={order!r}")
    return order
