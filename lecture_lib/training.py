r"""Minibatch training, the whole run under one ``jit``: ``lax.scan`` over epochs around ``lax.scan`` over the
updates of an epoch.

>>> import jax, lecture_lib as ll
>>> data = ll.data.digits(seed=0)
>>> hist = ll.training.fit(ll.models.mlp([64, 50, 10]), data, ll.optimizers.sgd(0.1),
...                        epochs=10, batch_size=64, key=jax.random.key(0))
>>> print(hist.log())  # doctest: +SKIP
Finished epoch 1 / 10: cost 1.452557, train: 0.752958, val 0.752778, lr 1.000000e-01
...
finished optimization. best validation accuracy: 0.938889

The slides' minibatch gradient descent: by default every epoch permutes the data; each of its
:math:`m = \lceil n/b \rceil` updates minimises the batch objective

.. math:: J^{\{t\}} = \frac{1}{|B_t|} \sum_{n \in B_t} L(\hat y_n, y_n) + \lambda R(W), \qquad
   R(W) = \tfrac12 \sum_l \lVert W^{[l]} \rVert^2, \qquad W \leftarrow W - \eta_t\, \nabla_W J^{\{t\}}

(weight matrices only; a partial last batch averages only its real samples). ``batch_size=1`` is SGD,
``batch_size=n`` full-batch gradient descent. Learning rate, ``reg``, seed, schedule parameters and unit and
optimizer hyperparameters are data: changing them compiles nothing; the model's sizes, ``epochs``,
``batch_size`` and the optimizer and schedule *types* do. The weights ``model.init(k_init)`` and the order
``ll.sampling.batches(k_order, ...)``, with ``k_init, k_order = split_key(key)``, come from two small jitted
calls before the run: random-number code compiles slowly, and so compiles once per model and order shape.

Divergence: ``diverged_at`` is the index into ``loss`` of the first non-finite batch objective (−1 if none).
From that update on the weights stop changing; later batch losses are ``nan`` (a gap in a plot) and the cost
of every later epoch is non-finite, as in the slide's ``cost nan`` / ``cost inf`` logs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, models, sampling, schedules
from lecture_lib import data as _data
from lecture_lib.optimizers import Optimizer

_ORDERS = sampling.ORDERS  # fit's argument ``sampling`` shadows the module in fit and plan
LINE = "Finished epoch {} / {}: cost {:f}, train: {:f}, val {:f}, lr {:e}"
LAST = "finished optimization. best validation accuracy: {:f}"


class History(NamedTuple):
    """What ``fit`` returns: the batch objective of every update, the metrics of every epoch, the weights."""

    loss: jax.Array  # (epochs * m,) batch objective J at each update, before the update; nan after divergence
    cost: jax.Array  # (epochs,) full training loss + lambda R(W) after each epoch
    train_acc: jax.Array  # (epochs,) accuracy on the training set after each epoch (nan for regression)
    val_acc: jax.Array  # (epochs,)
    val_loss: jax.Array  # (epochs,) validation loss (no regulariser) after each epoch
    lr: jax.Array  # (epochs,) learning rate of the epoch's last update
    diverged_at: jax.Array  # int32 index into `loss`, -1 if none
    params: Any  # final weights
    state: Any = None  # with return_state=True: the final optimizer state (e.g. L-BFGS's n_bad_pairs)

    def log(self) -> str:
        """The cs231n trainer's lines, exactly as on the slides."""
        cost, tr, va, lr = (
            np.asarray(a, np.float64) for a in (self.cost, self.train_acc, self.val_acc, self.lr)
        )
        if cost.ndim != 1:
            raise ValueError(
                f"log() needs the history of one run, got cost of shape {cost.shape}; "
                "index a vmapped history first, e.g. jax.tree.map(lambda a: a[i], hist)"
            )
        epochs = len(cost)
        lines = [LINE.format(e + 1, epochs, cost[e], tr[e], va[e], lr[e]) for e in range(epochs)]
        seen = va[~np.isnan(va)]
        lines.append(LAST.format(seen.max() if seen.size else np.nan))
        return "\n".join(lines)

    def running_loss(self, window: int, *, per_epoch: bool = False) -> np.ndarray:
        r"""The slides' "measuring error" estimate: the mean of the last ``window`` batch losses,

        .. math:: \widehat{Err}_t = \frac{1}{N} \sum_{s=t-N+1}^{t} J^{\{s\}}, \ N = \min(\text{window}, t+1)

        at every update (along the last axis, so vmapped histories work too). ``per_epoch=True`` keeps the
        value at each epoch's last update, to set beside ``cost``, the true training error after the epoch.
        """
        window = _checks.positive_int("window", window, array=False)
        loss = np.asarray(self.loss, np.float64)
        zero = np.zeros((*loss.shape[:-1], 1))
        c = np.concatenate([zero, np.cumsum(loss, axis=-1)], axis=-1)
        k = np.arange(1, loss.shape[-1] + 1)
        lo = np.maximum(k - window, 0)
        mean = (c[..., k] - c[..., lo]) / (k - lo)
        if per_epoch:
            m = loss.shape[-1] // np.shape(self.cost)[-1]
            return mean[..., m - 1 :: m]
        return mean


def split_key(key):
    """``(k_init, k_order)``: the keys ``fit`` draws the initial weights and the sample order from."""
    k_init, k_order = jax.random.split(key)
    return k_init, k_order


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _keys_and_order(key, n, b, epochs, order):
    k_init, k_order = split_key(key)
    return k_init, *sampling._batches(k_order, n, b, epochs, order)


def _start(model, key, n, b, epochs, order):
    """``(params, idx, mask)`` of ``fit(..., key=key)``: two calls, the order's (which also splits the key)
    and ``model.init``'s, one jitted call per (sizes, kind) with the scale as data: models that differ only in
    init_scale share it, and so does an eager ``model.init(split_key(key)[0])`` in a notebook."""
    k_init, idx, mask = _keys_and_order(key, n, b, epochs, order)
    return model.init(k_init), idx, mask


def _init(model, key):
    return model.init(split_key(key)[0])


def _order(key, n, b, epochs, order):
    return _keys_and_order(key, n, b, epochs, order)[1:]


@jax.custom_vjp
def _dense(h, W):
    r"""``h @ W`` whose backward pass multiplies by explicitly transposed copies (same numbers).

    Autodiff's weight gradient :math:`h^\top \delta` contracts both operands over their first axis, a
    form XLA:CPU hands to Eigen; with the transposes materialised (``optimization_barrier`` keeps XLA from
    folding them back into the dot) every product of a training step is a plain row-major one, which
    XLA:CPU's faster library (YNNPACK) takes.
    """
    return h @ W


def _dense_fwd(h, W):
    return h @ W, (h, W)


def _dense_bwd(res, g):
    h, W = res
    return g @ jax.lax.optimization_barrier(W.T), jax.lax.optimization_barrier(h.T) @ g


_dense.defvjp(_dense_fwd, _dense_bwd)


def _apply_batch(model, params, x):
    """``model.apply`` on a batch (b, d_in) through :func:`_dense`: for gradients in the training loop only
    (a ``custom_vjp`` has no forward-mode derivative; Newton and L-BFGS get the plain objective)."""
    act = models.ACTIVATIONS[model.activation]
    for layer in params[:-1]:
        x = act(_dense(x, layer["W"]) + layer["b"][None, :])
    return _dense(x, params[-1]["W"]) + params[-1]["b"][None, :]


@functools.partial(jax.jit, static_argnames=("model", "loss_name", "return_state"))
def _fit(model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, return_state):
    m = idx.shape[1]
    per_sample = models.LOSSES[loss_name]
    plateau = isinstance(schedule, schedules.ReduceOnPlateau)

    def metrics(params, x, y):  # loss (no regulariser) and accuracy on a whole split
        out = model.apply(params, x)
        acc = models.accuracy(out, y) if loss_name == "cross_entropy" else jnp.float32(jnp.nan)
        return jnp.mean(per_sample(out, y)), acc

    def update(carry, inputs):
        params, state, diverged_at, eta_epoch = carry
        j, idx_b, mask_b = inputs
        xb, yb = x[idx_b], y[idx_b]

        def J(p, apply=model.apply):  # batch objective J^{t}: mean over the real samples, plus lambda R(W)
            losses = jnp.where(mask_b, per_sample(apply(p, xb), yb), 0.0)
            return jnp.sum(losses) / jnp.sum(mask_b) + reg * models.l2(p)

        loss, g = jax.value_and_grad(lambda p: J(p, functools.partial(_apply_batch, model)))(params)
        if schedule is None or plateau:
            eta = eta_epoch
        else:
            eta = schedule(jnp.where(per_epoch, j // m, j))
        new = opt.with_lr(eta).update(g, state, params, objective=J)
        done = diverged_at >= 0
        diverged_at = jnp.where(~jnp.isfinite(loss) & ~done, j, diverged_at)
        stop = diverged_at >= 0  # from the first non-finite J on, the weights stop changing
        params, state = jax.tree.map(lambda old, new: jnp.where(stop, old, new), (params, state), new)
        return (params, state, diverged_at, eta_epoch), (jnp.where(done, jnp.nan, loss), eta)

    def epoch(carry, inputs):  # reduce-on-plateau: a scan over epochs, the metrics drive the next rate
        params, state, diverged_at, plateau_state = carry
        e, idx_e, mask_e = inputs
        j = e * m + jnp.arange(m, dtype=jnp.int32)
        (params, state, diverged_at, _), (losses, etas) = jax.lax.scan(
            update, (params, state, diverged_at, plateau_state.lr), (j, idx_e, mask_e)
        )
        scores = evaluate(params, diverged_at >= 0)
        _, plateau_state = schedule.update(plateau_state, scores[3])  # driven by the validation loss
        return (params, state, diverged_at, plateau_state), (losses, etas[-1], scores)

    def evaluate(params, over):  # cost, train accuracy, validation accuracy and loss after an epoch
        train_loss, train_acc = metrics(params, x, y)
        val_loss, val_acc = metrics(params, xv, yv)
        cost = train_loss + reg * models.l2(params)
        cost = jnp.where(over & jnp.isfinite(cost), jnp.nan, cost)  # the run is over
        return cost, train_acc, val_acc, val_loss

    E = idx.shape[0]
    es = jnp.arange(E, dtype=jnp.int32)
    if plateau:
        carry0 = (params, opt.init(params), jnp.int32(-1), schedule.init())
        (params, state, diverged_at, _), rec = jax.lax.scan(epoch, carry0, (es, idx, mask))
        losses, lrs, (cost, train_acc, val_acc, val_loss) = rec
    else:
        # Nothing in the loop needs an epoch's metrics: the weights after each epoch are kept and evaluated
        # together after the loop, one batched product per layer (on XLA:CPU 15 % faster than ten). The loop
        # over epochs stops once the run has diverged (under vmap, once every run has): later epochs would
        # only repeat the frozen weights, and their records are filled in below exactly as they would be.
        def body(carry):
            e, params, state, diverged_at, losses_b, etas_b, params_b, over_b = carry
            j = e * m + jnp.arange(m, dtype=jnp.int32)
            (params, state, diverged_at, _), (losses, etas) = jax.lax.scan(
                update, (params, state, diverged_at, opt.lr), (j, idx[e], mask[e])
            )
            params_b = jax.tree.map(lambda b, p: b.at[e].set(p), params_b, params)
            return (e + 1, params, state, diverged_at, losses_b.at[e].set(losses), etas_b.at[e].set(etas[-1]),
                    params_b, over_b.at[e].set(diverged_at >= 0))  # fmt: skip

        carry0 = (
            jnp.int32(0), params, opt.init(params), jnp.int32(-1), jnp.full((E, m), jnp.nan, jnp.float32),
            jnp.zeros(E, jnp.float32), jax.tree.map(lambda p: jnp.zeros((E, *p.shape), p.dtype), params),
            jnp.ones(E, bool),
        )  # fmt: skip
        ran, params, state, diverged_at, losses, etas_b, params_b, over = jax.lax.while_loop(
            lambda c: (c[0] < E) & (c[3] < 0), body, carry0
        )
        done = es < ran  # the epochs the loop ran; after them the weights are the final ones, frozen
        params_b = jax.tree.map(
            lambda b, p: jnp.where(done.reshape(-1, *([1] * p.ndim)), b, p[None]), params_b, params
        )
        # the rate of each epoch's last update, as the update computes it (skipped epochs included)
        j_last = es * m + m - 1
        eta_last = opt.lr if schedule is None else schedule(jnp.where(per_epoch, j_last // m, j_last))
        lrs = jnp.where(done, etas_b, jnp.broadcast_to(eta_last, (E,)).astype(jnp.float32))
        cost, train_acc, val_acc, val_loss = jax.vmap(evaluate)(params_b, over)
    state = state if return_state else None
    return History(losses.reshape(-1), cost, train_acc, val_acc, val_loss, lrs, diverged_at, params, state)


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
    params0=None,
    return_state: bool = False,
) -> History:
    r"""Train ``model`` on ``data`` with minibatches; see the module docstring.

    Args:
      model: e.g. ``ll.models.mlp([64, 50, 10])``.
      data: a dataset with ``x_train, y_train, x_val, y_val`` (``ll.data.digits(seed=0)``).
      opt: an optimizer from ``ll.optimizers`` (first or second order; L-BFGS gets the batch objective).
      epochs, batch_size: passes over the data and samples per update (``m = ceil(n/b)`` updates an epoch).
      key: ``jax.random.key``; :func:`split_key` gives the keys of the initial weights and the sample order.
      schedule: a step schedule (``schedule(t)`` replaces the learning rate; ``t`` counts updates, or epochs
        with ``schedule_unit="epoch"``), or ``ll.schedules.reduce_on_plateau(...)``, driven by the validation
        loss once per epoch (the rate of epoch ``e + 1`` is its answer to epoch ``e``'s ``val_loss``).
      reg: the regularisation strength :math:`\lambda` of :math:`\lambda R(W)`.
      sampling: ``"reshuffle"`` (default), ``"fixed"``, ``"sorted"`` or ``"replacement"`` (``ll.sampling``).
      loss: ``"cross_entropy"`` or ``"squared_error"``; by default cross-entropy for integer labels.
      params0: start from these weights instead of ``model.init(k_init)`` (same structure and shapes).
      return_state: also return the final optimizer state as ``hist.state`` (static; else ``None``).

    Works under ``jax.vmap`` over learning rates, ``reg``, keys and schedule parameters; :func:`sweep` runs a
    grid of learning rates and seeds.
    """
    _check_opt(opt)
    if key is None:
        raise ValueError("key is required: pass key=jax.random.key(seed)")
    start, run = plan(
        model, data, epochs=epochs, batch_size=batch_size, schedule=schedule, reg=reg, sampling=sampling,
        schedule_unit=schedule_unit, loss=loss, params0=params0, return_state=return_state,
    )  # fmt: skip
    return run(opt, *start(_data._key(key)))


def _check_opt(opt):
    if not isinstance(opt, Optimizer):
        raise TypeError(f"opt must be an optimizer from ll.optimizers, got opt={opt!r}")


def plan(
    model, data, *, epochs, batch_size, schedule=None, reg=0.0, sampling="reshuffle", schedule_unit="update",
    loss=None, params0=None, return_state=False,
):  # fmt: skip
    """``fit`` in two halves, for experiments that vmap over seeds or optimizers themselves (like ``sweep``).

    Checks ``fit``'s keyword arguments once and returns ``(start, run)``: ``start(key)`` gives the initial
    weights and the sample order ``(params, idx, mask)`` that ``fit(..., key=key)`` would draw, and
    ``run(opt, params, idx, mask)`` the :class:`History` of training from them. So
    ``run(opt, *start(key))`` equals ``fit(model, data, opt, key=key, ...)``; ``run`` works under ``jax.vmap``
    over ``opt``'s hyperparameters and over stacked ``params, idx, mask``.
    """
    if not isinstance(model, models.Model):
        raise TypeError(f"model must be a model from ll.models (mlp, linear), got model={model!r}")
    epochs = _checks.positive_int("epochs", epochs, array=False)
    b = _checks.positive_int("batch_size", batch_size, array=False)
    n = int(np.shape(data.x_train)[0])
    if b > n:
        raise ValueError(
            f"batch_size must be at most the number of training samples n={n}, got batch_size={b}"
        )
    if sampling not in _ORDERS:
        raise ValueError(f"sampling must be one of {_ORDERS}, got sampling={sampling!r}")
    if schedule_unit not in ("update", "epoch"):
        raise ValueError(f"schedule_unit must be 'update' or 'epoch', got schedule_unit={schedule_unit!r}")
    if schedule is not None and not isinstance(schedule, (schedules.Schedule, schedules.ReduceOnPlateau)):
        raise TypeError(f"schedule must be a schedule from ll.schedules, got schedule={schedule!r}")
    loss = loss or ("cross_entropy" if jnp.issubdtype(data.y_train.dtype, jnp.integer) else "squared_error")
    if loss not in models.LOSSES:
        raise ValueError(f"loss must be one of {tuple(models.LOSSES)}, got loss={loss!r}")
    if not isinstance(return_state, bool):
        raise TypeError(f"return_state must be True or False, got return_state={return_state!r}")
    if params0 is not None:
        shapes = jax.tree.map(lambda a: a.shape, jax.eval_shape(model.init, jax.random.key(0)))
        got = jax.tree.map(np.shape, params0)
        if jax.tree.structure(got) != jax.tree.structure(shapes) or got != shapes:
            raise ValueError(f"params0 must have the structure and shapes of model.init: {shapes}, got {got}")
        params0 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params0)
    # both traced in the run; NumPy scalars, not device arrays: no eager device put on every fit call
    reg, per_epoch = _checks.nonnegative("reg", reg, device=False), np.bool_(schedule_unit == "epoch")

    def start(key):  # the initial weights and the order
        if params0 is None:
            return _start(model, key, n, b, epochs, sampling)
        return (params0, *_order(key, n, b, epochs, sampling))

    def run(opt, params, idx, mask):
        # init_scale matters only to init, done before: models that differ only in it share one compiled run
        apply_model = dataclasses.replace(model, init_scale=None)
        args = (params, idx, mask, data.x_train, data.y_train, data.x_val, data.y_val, opt, schedule, reg)
        return _fit(apply_model, *args, per_epoch, loss_name=loss, return_state=return_state)

    return start, run


def sweep(model, data, make_opt: Callable[[Any], Optimizer], lrs, seeds, **fit_kwargs) -> History:
    """``fit`` for every learning rate in ``lrs`` and every seed in ``seeds``: one vmapped, compiled call.

    ``make_opt(lr)`` builds the optimizer from a traced learning rate (``ll.optimizers.sgd``, or
    ``lambda lr: ll.optimizers.momentum(lr, beta=0.9)``); seed ``s`` uses ``key=jax.random.key(s)``. Entry
    ``[i, j]`` of every array of the returned History (leading axes ``(len(lrs), len(seeds))``) is that of
    ``fit(model, data, make_opt(lrs[i]), key=jax.random.key(seeds[j]), **fit_kwargs)``.

    >>> hist = sweep(model, data, ll.optimizers.sgd, [0.01, 0.1, 1.0], [0, 1], epochs=5, batch_size=64)
    ... # doctest: +SKIP
    >>> hist.val_acc[:, :, -1].mean(axis=1)  # final validation accuracy per learning rate  # doctest: +SKIP
    """
    if not callable(make_opt):
        raise TypeError(
            f"make_opt must be a function lr -> optimizer, e.g. ll.optimizers.sgd, got {make_opt!r}"
        )
    for name in ("opt", "key"):
        if name in fit_kwargs:
            raise TypeError(f"sweep builds {name} itself from lrs and seeds; do not pass {name}=")
    lrs_ = np.asarray(lrs, np.float64)
    if lrs_.ndim != 1 or lrs_.size == 0 or not np.all(np.isfinite(lrs_) & (lrs_ > 0)):
        raise ValueError(f"lrs must be a non-empty 1-D sequence of positive finite numbers, got lrs={lrs!r}")
    seeds_ = np.asarray(seeds)
    if seeds_.ndim != 1 or seeds_.size == 0 or seeds_.dtype.kind not in "iu" or np.any(seeds_ < 0):
        raise ValueError(
            f"seeds must be a non-empty 1-D sequence of non-negative integers, got seeds={seeds!r}"
        )
    start, run = plan(model, data, **fit_kwargs)
    # Weights and orders per seed, unbatched (random-number code under vmap compiles slowly); then one flat
    # vmap over the grid (a nested vmap compiles several times slower).
    starts = [jax.tree.map(np.asarray, start(jax.random.key(int(s)))) for s in seeds_]
    L, S = len(lrs_), len(seeds_)
    j = np.tile(np.arange(S), L)
    grid = jax.tree.map(lambda *a: np.stack(a)[j], *starts)

    def one(lr, params, idx, mask):
        opt = make_opt(lr)
        _check_opt(opt)
        return run(opt, params, idx, mask)

    hist = jax.vmap(one)(np.repeat(lrs_, S).astype(np.float32), *grid)
    return jax.tree.map(lambda a: a.reshape(L, S, *a.shape[1:]), hist)
