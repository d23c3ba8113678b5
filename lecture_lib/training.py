r"""Minibatch training: one compiled loop over the epochs and the updates of each, then one batched evaluation
of every epoch's weights. A single run called directly compiles its loop into one native function (see "the
native loop" below): 10 epochs of the 64-50-10 net on digits take 6-10 ms on a 2-core AMD EPYC.

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


@functools.partial(jax.jit, static_argnums=(1, 2))
def _keys_and_bits(key, n, count):
    k_init, k_order = split_key(key)
    return k_init, sampling._round_bits(k_order, n, count)


def _start(model, key, n, b, epochs, order):
    """``(params, idx, mask)`` of ``fit(..., key=key)``: two calls, the order's (which also splits the key)
    and ``model.init``'s, one jitted call per (sizes, kind) with the scale as data: models that differ only in
    init_scale share it, and so does an eager ``model.init(split_key(key)[0])`` in a notebook. For a concrete
    key the shuffles' random bits are drawn on the device and sorted on the host (``_permutations_np``, the
    same permutations in half the time)."""
    index_bits, _ = sampling._shuffle_rounds(n)
    if order in ("reshuffle", "fixed") and index_bits <= 24 and not _traced(key):
        count = epochs if order == "reshuffle" else 1
        k_init, u = _keys_and_bits(key, n, count)
        perms = sampling._permutations_np(u, n)
        return (model.init(k_init), *sampling._batches_np(perms, n, b, epochs))
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


# ---- the native loop ---------------------------------------------------------------------------------------
#
# XLA:CPU runs a compiled program as a sequence of "thunks" (one per fused kernel or library call), at roughly
# 0.3-0.5 µs of dispatch each; a training step of the 64-50-10 net is about 45 of them, more than its five
# small matrix products cost. Its small-while-loop pass instead compiles a whole loop into one native function
# when the loop holds no library call (``_xla.py`` raises the pass's size limit), which needs the products as
# XLA's own tiled LLVM IR GEMM: single-threaded Eigen and no YNNPACK fusions (``_NATIVE_OPTIONS``, per
# compilation). That code generator is fast for row-major products, reductions over a leading axis and
# elementwise work, and slow (4 µs per 3,200 elements) for a long reduction to a scalar or along the last
# axis: so the step below keeps activations feature-major, (fan_out, batch), sums over a leading axis, and
# forms bias gradients and the squared norm as matrix-vector products.

_NATIVE_OPTIONS = {"xla_cpu_multi_thread_eigen": False, "xla_cpu_experimental_ynn_fusion_type": ""}

#: activation'(z) from z and a = act(z), as JAX differentiates the activations
_DERIVATIVES = {
    "relu": lambda z, a: (z > 0).astype(z.dtype),
    "tanh": lambda z, a: 1 - a * a,
    "sigmoid": lambda z, a: a * (1 - a),
}


def _ones(n):  # a column of ones that XLA may not fold into a reduction
    return jax.lax.optimization_barrier(jnp.ones((n, 1), jnp.float32))


def _sum_squares(W):
    """``sum(W * W)`` of a matrix as a column sum and a matrix-vector product (see above)."""
    return (jnp.sum(W * W, axis=0, keepdims=True) @ _ones(W.shape[1]))[0, 0]


def _per_sample_t(loss_name, out_t, y):
    """Per-sample loss of feature-major outputs ``out_t`` (..., k, b) and its derivative in ``out_t``: the
    values of ``models.LOSSES[loss_name](out_t.T, y)``, reducing over the class axis, not the last."""
    k, b = out_t.shape[-2:]
    if loss_name == "cross_entropy":
        s = out_t - jnp.max(out_t, axis=-2, keepdims=True)
        e = jnp.exp(s)
        se = jnp.sum(e, axis=-2, keepdims=True)
        onehot = jnp.broadcast_to(jnp.arange(k)[:, None] == y[None, :], out_t.shape)
        per = jnp.log(se[..., 0, :]) - jnp.sum(jnp.where(onehot, s, 0.0), axis=-2)
        return per, e / se - onehot
    r = out_t - jnp.broadcast_to(jnp.reshape(y, (b, k)).T, out_t.shape)  # y: (b,) or (b, k)
    return 0.5 * jnp.sum(r * r, axis=-2), r


def _native_value_and_grad(model, loss_name, params, xb, yb, mask_b, reg):
    """The batch objective J of :func:`_update` and its gradient, by hand: forward and backward of the MLP
    with feature-major activations, the first product on the gathered rows ``xb`` (b, d_in)."""
    act, d_act = models.ACTIVATIONS[model.activation], _DERIVATIVES[model.activation]
    bar = jax.lax.optimization_barrier
    L, b = len(params), xb.shape[0]
    zs, hs = [], []  # pre-activations and activations, (fan_out, b)
    for l, layer in enumerate(params):
        if l == 0:  # the gathered rows as they are (transposing them first measured no faster)
            z = bar(xb @ layer["W"]).T + layer["b"][:, None]
        else:
            z = bar(layer["W"].T) @ hs[-1] + layer["b"][:, None]
        zs.append(z)
        if l < L - 1:
            hs.append(act(z))
    per, d_out = _per_sample_t(loss_name, zs[-1], yb)
    count = jnp.sum(mask_b.astype(jnp.float32))
    l2 = 0.5 * sum(_sum_squares(layer["W"]) for layer in params)
    loss = jnp.sum(jnp.where(mask_b, per, 0.0)) / count + reg * l2
    dz = d_out * jnp.where(mask_b, 1.0 / count, 0.0)[None, :]
    grads = [None] * L
    for l in reversed(range(L)):
        a_prev = xb if l == 0 else bar(hs[l - 1]).T  # (b, fan_in)
        dW_t = bar(dz) @ a_prev  # (fan_out, fan_in)
        db = (dz @ _ones(b))[:, 0]
        if l > 0:
            dz = (params[l]["W"] @ dz) * d_act(zs[l - 1], hs[l - 1])
        grads[l] = {"W": bar(dW_t).T + reg * params[l]["W"], "b": db}
    return loss, grads


def _update(model, x, y, opt, schedule, reg, per_epoch, m, loss_name, native=False):
    """The update of one batch: a ``scan`` step over ``(j, idx_b, mask_b)``, shared by the loops."""
    per_sample = models.LOSSES[loss_name]
    plateau = isinstance(schedule, schedules.ReduceOnPlateau)

    def update(carry, inputs):
        params, state, diverged_at, eta_epoch = carry
        j, idx_b, mask_b = inputs
        xb, yb = x[idx_b], y[idx_b]

        def J(p, apply=model.apply):  # batch objective J^{t}: mean over the real samples, plus lambda R(W)
            losses = jnp.where(mask_b, per_sample(apply(p, xb), yb), 0.0)
            return jnp.sum(losses) / jnp.sum(mask_b) + reg * models.l2(p)

        if native:  # first-order optimizers only: they never call the objective
            loss, g = _native_value_and_grad(model, loss_name, params, xb, yb, mask_b, reg)
        else:
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

    return update


def _metrics(model, loss_name, params_b, x, y):
    """``(loss, accuracy)`` on a whole split of the weights of every epoch, ``params_b`` with a leading epoch
    axis E: feature-major, one product for all epochs' first layers with the bias and activation fused into
    it. The loss has no regulariser; the accuracy is nan for regression."""
    act = models.ACTIVATIONS[model.activation]
    h = x.T  # (d_in, n)
    for l, layer in enumerate(params_b):
        W_t = jax.lax.optimization_barrier(jnp.swapaxes(layer["W"], 1, 2))  # (E, fan_out, fan_in)
        E, o, i = W_t.shape
        if l == 0:
            h = (W_t.reshape(E * o, i) @ h + layer["b"].reshape(-1)[:, None]).reshape(E, o, -1)
        else:
            h = W_t @ h + layer["b"][:, :, None]
        h = act(h) if l < len(params_b) - 1 else h
    loss = jnp.mean(_per_sample_t(loss_name, h, y)[0], axis=-1)
    if loss_name != "cross_entropy":
        return loss, jnp.full(loss.shape, jnp.nan, jnp.float32)
    return loss, jnp.mean(jnp.argmax(h, axis=-2) == y[None, :], axis=-1)


def _cost(loss, reg, params_b, over):
    """Training loss + lambda R(W) per epoch; nan once the run is over (diverged), as the slides' logs."""
    cost = loss + reg * jax.vmap(models.l2)(params_b)
    return jnp.where(over & jnp.isfinite(cost), jnp.nan, cost)


@functools.partial(jax.jit, static_argnames=("model", "loss_name", "return_state"))
def _fit_plateau(
    model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, return_state
):  # fmt: skip
    """Reduce-on-plateau: a scan over epochs, each epoch's validation loss drives the next epoch's rate."""
    m = idx.shape[1]
    update = _update(model, x, y, opt, schedule, reg, per_epoch, m, loss_name)

    def evaluate(params, over):  # cost, train accuracy, validation accuracy and loss after an epoch
        one = jax.tree.map(lambda p: p[None], params)  # this epoch's weights, as an epoch axis of 1
        train_loss, train_acc = _metrics(model, loss_name, one, x, y)
        val_loss, val_acc = _metrics(model, loss_name, one, xv, yv)
        return _cost(train_loss, reg, one, over)[0], train_acc[0], val_acc[0], val_loss[0]

    def epoch(carry, inputs):
        params, state, diverged_at, plateau_state = carry
        e, idx_e, mask_e = inputs
        j = e * m + jnp.arange(m, dtype=jnp.int32)
        (params, state, diverged_at, _), (losses, etas) = jax.lax.scan(
            update, (params, state, diverged_at, plateau_state.lr), (j, idx_e, mask_e)
        )
        scores = evaluate(params, diverged_at >= 0)
        _, plateau_state = schedule.update(plateau_state, scores[3])  # driven by the validation loss
        return (params, state, diverged_at, plateau_state), (losses, etas[-1], scores)

    es = jnp.arange(idx.shape[0], dtype=jnp.int32)
    carry0 = (params, opt.init(params), jnp.int32(-1), schedule.init())
    (params, state, diverged_at, _), rec = jax.lax.scan(epoch, carry0, (es, idx, mask))
    losses, lrs, (cost, train_acc, val_acc, val_loss) = rec
    state = state if return_state else None
    return History(losses.reshape(-1), cost, train_acc, val_acc, val_loss, lrs, diverged_at, params, state)


def _train_impl(
    model, params, idx, mask, x, y, opt, schedule, reg, per_epoch, *, loss_name, return_state, native,
    runs=False,
):  # fmt: skip
    """The updates of every epoch in a while loop that stops once the run has diverged: the later epochs would
    only repeat the frozen weights. Returns the weights after each epoch for :func:`_evaluate`, which fills in
    the records of the skipped epochs.

    With ``runs``, ``params``, ``idx`` and ``mask`` carry a leading axis of runs that share ``opt`` and
    ``schedule`` (seeds): one loop steps them all (the step vmapped inside it) until every run has diverged.
    Unlike ``vmap`` of the single run, the epoch counter stays shared, so the records are written in place
    (a batched index would make them scatters, which XLA:CPU cannot compile into a native loop)."""
    E, m = idx.shape[-3:-1]
    update = _update(model, x, y, opt, schedule, reg, per_epoch, m, loss_name, native)
    if runs:
        update = jax.vmap(
            update, in_axes=((0, 0, 0, None), (None, 0, 0)), out_axes=((0, 0, 0, None), (0, None))
        )
        state0, lead = jax.vmap(opt.init)(params), (idx.shape[0],)
        epoch_of = lambda a, e: jnp.swapaxes(a[:, e], 0, 1)  # (m, runs, b): the scan runs over updates
        put = lambda b, v, e: b.at[:, e].set(v)
    else:
        state0, lead = opt.init(params), ()
        epoch_of = lambda a, e: a[e]
        put = lambda b, v, e: b.at[e].set(v)

    def body(carry):
        e, params, state, diverged_at, losses_b, etas_b, params_b, over_b = carry
        j = e * m + jnp.arange(m, dtype=jnp.int32)
        (params, state, diverged_at, _), (losses, etas) = jax.lax.scan(
            update, (params, state, diverged_at, opt.lr), (j, epoch_of(idx, e), epoch_of(mask, e))
        )
        params_b = jax.tree.map(lambda b, p: put(b, p, e), params_b, params)
        losses = jnp.swapaxes(losses, 0, 1) if runs else losses
        return (e + 1, params, state, diverged_at, put(losses_b, losses, e), etas_b.at[e].set(etas[-1]),
                params_b, put(over_b, diverged_at >= 0, e))  # fmt: skip

    carry0 = (
        jnp.int32(0), params, state0, jnp.full(lead, -1, jnp.int32),
        jnp.full((*lead, E, m), jnp.nan, jnp.float32),
        jnp.zeros(E, jnp.float32),
        jax.tree.map(lambda p: jnp.zeros((*lead, E, *p.shape[len(lead):]), p.dtype), params),
        jnp.ones((*lead, E), bool),
    )  # fmt: skip
    ran, params, state, diverged_at, losses, etas_b, params_b, over = jax.lax.while_loop(
        lambda c: (c[0] < E) & jnp.any(c[3] < 0), body, carry0
    )
    return ran, params, (state if return_state else None), diverged_at, losses, etas_b, params_b, over


_STATIC = ("model", "loss_name", "return_state")
_train = jax.jit(functools.partial(_train_impl, native=False), static_argnames=_STATIC)
_train_native = jax.jit(
    functools.partial(_train_impl, native=True), static_argnames=_STATIC, compiler_options=_NATIVE_OPTIONS
)
_train_runs = jax.jit(functools.partial(_train_impl, native=False, runs=True), static_argnames=_STATIC)
_train_native_runs = jax.jit(
    functools.partial(_train_impl, native=True, runs=True), static_argnames=_STATIC,
    compiler_options=_NATIVE_OPTIONS,
)  # fmt: skip


@functools.partial(jax.jit, static_argnames=("model", "loss_name", "m", "skip"))
def _evaluate(model, trained, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, m, skip=False):
    """The History from :func:`_train`'s result: the metrics of every epoch's weights at once, feature-major
    (one product per layer for all epochs), and the records of epochs skipped after divergence filled in
    exactly as running them would (the final, frozen weights; nan losses; the schedule's rate).

    With ``skip`` (static; where ``ran`` is one number, not batched) a run stopped early by divergence is
    evaluated at the epochs it ran only, one epoch at a time (the warmup panel's run without warmup: 1 of 10
    epochs, ~30 ms less); a run of every epoch still takes the single pass."""
    ran, params, state, diverged_at, losses, etas_b, params_b, over = trained
    E = etas_b.shape[0]
    es = jnp.arange(E, dtype=jnp.int32)
    done = es < ran  # the epochs the loop ran; after them the weights are the final ones, frozen
    # the rate of each epoch's last update, as the update computes it (skipped epochs included)
    j_last = es * m + m - 1
    eta_last = opt.lr if schedule is None else schedule(jnp.where(per_epoch, j_last // m, j_last))
    lrs = jnp.where(done, etas_b, jnp.broadcast_to(eta_last, (E,)).astype(jnp.float32))
    # the weights of the epochs not run are zeros: their metrics are those of the frozen weights, which the
    # last epoch run ended with (the loop ran at least one); filled in after, so the products read params_b
    # as it is (a select on it first keeps XLA from fusing the bias and activation into the product)
    fill = lambda a: jnp.where(done, a, a[ran - 1])

    def every_epoch(params_b):
        return (*_metrics(model, loss_name, params_b, x, y), *_metrics(model, loss_name, params_b, xv, yv))

    def epochs_run(params_b):
        def one(e, out):
            epoch = jax.tree.map(lambda p: jax.lax.dynamic_slice_in_dim(p, e, 1), params_b)
            return tuple(
                jax.lax.dynamic_update_slice_in_dim(a, v, e, 0) for a, v in zip(out, every_epoch(epoch))
            )

        return jax.lax.fori_loop(0, ran, one, tuple(jnp.zeros(E, jnp.float32) for _ in range(4)))

    metrics = jax.lax.cond(ran == E, every_epoch, epochs_run, params_b) if skip else every_epoch(params_b)
    train_loss, train_acc, val_loss, val_acc = map(fill, metrics)
    cost = _cost(train_loss, reg, params_b, over)
    return History(losses.reshape(-1), cost, train_acc, val_acc, val_loss, lrs, diverged_at, params, state)


_NATIVE = {"available": True}  # False once this XLA refused _NATIVE_OPTIONS: then the default compilation


def _native_or_default(native_fn, default_fn, *args, **kw):
    """``native_fn(*args, **kw)``, or ``default_fn``'s where this XLA does not know ``_NATIVE_OPTIONS`` (they
    are debug options of XLA:CPU that a later jaxlib may rename): slower, the same numbers."""
    if _NATIVE["available"]:
        try:
            return native_fn(*args, **kw)
        except jax.errors.JaxRuntimeError as error:
            if not any(name in str(error) for name in _NATIVE_OPTIONS):
                raise
            _NATIVE["available"] = False
    return default_fn(*args, **kw)


#: Above this many multiply-adds per update (batch x sum of fan_in * fan_out, times the runs stepped together)
#: the default compilation's multi-threaded products beat the native loop's single-threaded ones: 64-50-10 on
#: the full digits batch (5.3e6) is 1.5x faster native, 64-256-256-10 at batch 512 (4.3e7) 1.2x slower.
_NATIVE_MAX_WORK = 2**24


def _native_suits(model, idx, runs=1) -> bool:
    work = runs * idx.shape[-1] * sum(a * b for a, b in zip(model.sizes[:-1], model.sizes[1:]))
    return work <= _NATIVE_MAX_WORK


def _traced(tree) -> bool:
    return any(_checks.is_traced(leaf) for leaf in jax.tree.leaves(tree))


def _fit(model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, return_state):
    kw = {"loss_name": loss_name, "return_state": return_state}
    if isinstance(schedule, schedules.ReduceOnPlateau):
        return _fit_plateau(model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, **kw)
    # One run called directly: the native loop. Under vmap or jit (many runs at once, e.g. sweep), for wide
    # layers or large batches (_NATIVE_MAX_WORK) and for optimizers that evaluate the objective, the default
    # compilation: its multi-threaded products pay there.
    args = (model, params, idx, mask, x, y, opt, schedule, reg, per_epoch)
    traced = _traced(args[1:])  # under vmap, ran may be batched: then every epoch is evaluated at once
    native = not opt.needs_objective and _native_suits(model, idx) and not traced
    trained = _native_or_default(_train_native, _train, *args, **kw) if native else _train(*args, **kw)
    return _evaluate(model, trained, x, y, xv, yv, opt, schedule, reg, per_epoch, loss_name=loss_name,
                     m=idx.shape[-2], skip=not traced)  # fmt: skip


@functools.partial(jax.jit, static_argnames=("model", "loss_name", "return_state"))
def _fit_vmapped(model, params, idx, mask, *shared, loss_name, return_state):
    """``vmap`` of :func:`_fit` over stacked ``params, idx, mask``, under one ``jit``."""
    run = lambda p, i, k: _fit(model, p, i, k, *shared, loss_name=loss_name, return_state=return_state)
    return jax.vmap(run)(params, idx, mask)


def _one_native_loop(model, idx, runs, opt, schedule, inputs) -> bool:
    """Whether ``runs`` runs sharing ``opt`` and ``schedule`` step in one native loop: not reduce-on-plateau
    (its rate answers each epoch's evaluation), first-order, small updates, called directly (not traced)."""
    return not (
        isinstance(schedule, schedules.ReduceOnPlateau) or opt.needs_objective
        or not _native_suits(model, idx, runs) or _traced(inputs)
    )  # fmt: skip


def _fit_runs(
    model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, return_state
):
    """The History of several runs at once, ``params``, ``idx``, ``mask`` stacked along a leading axis (seeds)
    and sharing ``opt``, ``schedule`` and ``reg``: one native loop for all (see :func:`_train_impl`), else
    (reduce-on-plateau, second-order optimizers, inside a transformation) ``vmap`` of :func:`_fit`."""
    kw = {"loss_name": loss_name, "return_state": return_state}
    shared = (x, y, xv, yv, opt, schedule, reg, per_epoch)
    if not _one_native_loop(model, idx, idx.shape[0], opt, schedule, (params, idx, mask, *shared)):
        return _fit_vmapped(model, params, idx, mask, *shared, **kw)
    args = (model, params, idx, mask, x, y, opt, schedule, reg, per_epoch)
    trained = _native_or_default(_train_native_runs, _train_runs, *args, **kw)
    return _evaluate_runs(model, trained, *shared, loss_name=loss_name, m=idx.shape[-2])


# ---- groups of runs side by side, one per CPU device -------------------------------------------------------
#
# One CPU device runs its programs one after the other (PJRT orders every execution after the last), and a
# native training loop is single-threaded: two trainings, each compute-bound on one core, took the sum of
# their times. One program partitioned over two devices (``shard_map``) runs its halves at once, one core
# each, and compiles once for both. ``_xla`` gives the CPU backend two devices.

_GROUP_AXIS = "group"


@functools.cache
def _group_mesh(k: int):
    """A 1-D mesh of ``k`` >= 2 devices of the default backend where that is the CPU and has them, else None
    (a GPU runs one program at a time anyway, and its native loop is XLA:CPU's)."""
    if k < 2 or jax.default_backend() != "cpu" or jax.device_count() < k:
        return None
    return jax.sharding.Mesh(np.array(jax.devices()[:k]), (_GROUP_AXIS,))


@functools.cache
def _group_program(model, loss_name, mesh):
    """The jitted, partitioned program of :func:`_fit_groups`: on each device its group's native loop, then
    its evaluation one run at a time (``lax.map``; vmapped over the runs, each device's activations of every
    epoch and run, ~11 MB a layer, left the caches, and the two devices' evaluations took as long as one after
    the other)."""

    def group(params, idx, mask, schedule, x, y, xv, yv, opt, reg, per_epoch):
        mine = lambda tree: jax.tree.map(lambda a: a[0], tree)  # this device's group: a leading axis of 1
        params, idx, mask, schedule = mine((params, idx, mask, schedule))
        trained = _train_impl(model, params, idx, mask, x, y, opt, schedule, reg, per_epoch,
                              loss_name=loss_name, return_state=False, native=True, runs=True)  # fmt: skip
        ran, final, _, diverged_at, losses, etas_b, params_b, over = trained
        evaluate = functools.partial(_evaluate, model, loss_name=loss_name, m=idx.shape[-2], skip=True)

        def one(run):
            final, diverged_at, losses, params_b, over = run
            t = (ran, final, None, diverged_at, losses, etas_b, params_b, over)
            return evaluate(t, x, y, xv, yv, opt, schedule, reg, per_epoch)

        h = jax.lax.map(one, (final, diverged_at, losses, params_b, over))
        return jax.tree.map(lambda a: a[None], h)

    g, shared = jax.sharding.PartitionSpec(_GROUP_AXIS), jax.sharding.PartitionSpec()
    program = jax.shard_map(
        group, mesh=mesh, in_specs=(g, g, g, g, *[shared] * 7), out_specs=g, check_vma=False
    )
    return jax.jit(program, compiler_options=_NATIVE_OPTIONS)


def _fit_groups(
    model, params, idx, mask, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, return_state
):
    """The History of ``k`` groups of runs: ``params``, ``idx``, ``mask`` with leading axes (k, runs), the
    schedule's leaves a leading axis k (each group its own schedule, shared by its runs). On ``k`` CPU devices
    at once where :func:`_group_mesh` gives them and the native loop applies; else each group's
    :func:`_fit_runs` in turn, stacked. The same numbers either way (the evaluation's sums may round
    differently: ~1e-6)."""
    k = int(idx.shape[0])
    kw = {"loss_name": loss_name, "return_state": return_state}
    shared = (x, y, xv, yv, opt, reg, per_epoch)
    mesh = _group_mesh(k)
    inputs = (params, idx, mask, schedule, *shared)
    if (
        mesh is not None and _NATIVE["available"] and not return_state
        and _one_native_loop(model, idx, idx.shape[1], opt, schedule, inputs)
    ):  # fmt: skip
        g = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(_GROUP_AXIS))
        everywhere = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        split, shared = jax.device_put((params, idx, mask, schedule), g), jax.device_put(shared, everywhere)
        try:
            return _group_program(model, loss_name, mesh)(*split, *shared)
        except jax.errors.JaxRuntimeError as error:
            if not any(name in str(error) for name in _NATIVE_OPTIONS):
                raise
            _NATIVE["available"] = False
    pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    hs = [
        _fit_runs(
            model, *pick((params, idx, mask), i), x, y, xv, yv, opt, pick(schedule, i), reg, per_epoch, **kw
        )
        for i in range(k)
    ]
    return jax.tree.map(lambda *a: np.stack([np.asarray(v) for v in a]), *hs)


@functools.partial(jax.jit, static_argnames=("model", "loss_name", "m"))
def _evaluate_runs(model, trained, x, y, xv, yv, opt, schedule, reg, per_epoch, *, loss_name, m):
    """:func:`_evaluate` of every run of ``_train_runs`` (``ran`` and the rates shared) in one jitted call,
    where an eager ``vmap`` of ``_evaluate`` was traced again on every call."""
    axes = (None, 0, None if trained[2] is None else 0, 0, 0, None, 0, 0)
    evaluate = functools.partial(_evaluate, model, loss_name=loss_name, m=m, skip=True)
    return jax.vmap(lambda t: evaluate(t, x, y, xv, yv, opt, schedule, reg, per_epoch), in_axes=(axes,))(
        trained
    )


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
    loss=None, params0=None, return_state=False, runs=False, groups=False,
):  # fmt: skip
    """``fit`` in two halves, for experiments that vmap over seeds or optimizers themselves (like ``sweep``).

    Checks ``fit``'s keyword arguments once and returns ``(start, run)``: ``start(key)`` gives the initial
    weights and the sample order ``(params, idx, mask)`` that ``fit(..., key=key)`` would draw, and
    ``run(opt, params, idx, mask)`` the :class:`History` of training from them. So
    ``run(opt, *start(key))`` equals ``fit(model, data, opt, key=key, ...)``; ``run`` works under
    ``jax.vmap`` over ``opt``'s hyperparameters and over stacked ``params, idx, mask``. With ``runs=True``,
    ``run`` takes ``params, idx, mask`` stacked along a leading axis (several seeds) that share ``opt``: what
    ``vmap`` of the plain ``run`` over them gives, in one native loop for all (``ScheduleTrainer``'s seeds).
    With ``groups=True`` as well, ``params, idx, mask`` have two leading axes (groups, runs) and every leaf of
    ``schedule`` a leading axis of groups: each group trains under its own schedule, what ``runs=True`` gives
    group by group, and the groups train at once, one per CPU device (``_xla``: two), where there are as many
    (else in turn). The History's arrays have the leading axes (groups, runs).
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
    if not isinstance(runs, bool):
        raise TypeError(f"runs must be True or False, got runs={runs!r}")
    if not isinstance(groups, bool):
        raise TypeError(f"groups must be True or False, got groups={groups!r}")
    if groups and not runs:
        raise ValueError("groups=True trains groups of runs: it needs runs=True, got runs=False")
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
        fit_ = _fit_groups if groups else _fit_runs if runs else _fit
        return fit_(apply_model, *args, per_epoch, loss_name=loss, return_state=return_state)

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
