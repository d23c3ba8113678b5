"""Wall-clock measurements behind notebook 05's claims on mini-batch size (slides "Mini Batches",
"Batch size", "Choosing mini-batch size").

- :func:`time_per_sample`: a forward+backward pass costs far less per sample in a large batch (vectorization).
- :func:`epoch_time_digits`: for n < 2000, one full-batch epoch costs about as much as a mini-batch epoch.
- :func:`wallclock_curves` and :func:`cost_at`: within the same wall-clock budget a mini-batch run reaches a
  lower training cost than SGD (b = 1) and than full batch.

These are timings on this machine: best of repeated runs after a compiling one, compile excluded. Seeds are
ints; results are NumPy arrays.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, models, optimizers, sampling, training

VEC_MODEL = (64, 256, 256, 10)  # the MLP timed per sample
DIGITS_MODEL = (64, 50, 10)  # the digits net
# (batch size, learning rate, epochs): each stable for its b, each taking tens of milliseconds here
WALLCLOCK_RUNS = ((1, 0.01, 4), (32, 0.1, 20), (1437, 1.0, 100))


def _sizes(name, values) -> tuple[int, ...]:
    values = tuple(values) if np.ndim(values) else (values,)
    if not values:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {name}={values!r}")
    return tuple(_checks.positive_int(name, v, array=False) for v in values)


def _best_seconds(repeats: int, fn, *args) -> float:
    """The shortest of ``repeats`` wall times of ``fn(*args)``, each until its result is ready."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _uniform_layer(rng, fan_in, fan_out):
    """One layer of PyTorch's ``nn.Linear`` init, W and b uniform in ±1/sqrt(fan_in), float32, from NumPy."""
    bound = 1 / math.sqrt(fan_in)
    W = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
    return {"W": W, "b": rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)}


def _epoch_batches(rng, n, b):
    """One epoch's indices (m, b) and mask as ``sampling.batches`` lays them out (a random permutation, the
    last batch padded with index 0 and masked), from NumPy: only the time of the epoch is measured."""
    m = sampling.n_batches(n, b)
    idx = np.zeros(m * b, np.int32)
    idx[:n] = rng.permutation(n)
    return idx.reshape(m, b), (np.arange(m * b) < n).reshape(m, b)


def time_per_sample(batch_sizes=(1, 4, 16, 64, 256, 1024), sizes=VEC_MODEL, repeats=10, seed=0):
    """Best-of-``repeats`` wall seconds per sample of one jitted forward+backward pass (loss gradient) of an
    MLP with layer widths ``sizes``, for each batch size; compile excluded.

    Returns ``(batch_sizes, seconds)`` as arrays.
    """
    batch_sizes, sizes = _sizes("batch_sizes", batch_sizes), _sizes("sizes", sizes)
    repeats = _checks.positive_int("repeats", repeats, array=False)
    model = models.mlp(list(sizes))
    # Timing inputs from NumPy (PyTorch's init bounds, any numbers time the same): a jax.random draw would
    # compile a program per shape, seconds on a cold start, for values that do not matter here.
    rng = np.random.default_rng(int(_checks.nonnegative_int("seed", seed)))
    params = jax.device_put([_uniform_layer(rng, fi, fo) for fi, fo in zip(sizes[:-1], sizes[1:])])

    def loss(p, x, y):
        return jnp.mean(models.softmax_cross_entropy(model.apply(p, x), y))

    out = []
    for b in batch_sizes:
        grad = jax.jit(jax.grad(loss))
        x = jax.device_put(np.random.default_rng(b).standard_normal((b, sizes[0]), np.float32))
        y = jax.device_put(np.zeros((b,), np.int32))
        jax.block_until_ready(grad(params, x, y))  # compile
        out.append(_best_seconds(repeats, grad, params, x, y) / b)
    return np.asarray(batch_sizes), np.asarray(out)


def epoch_time_digits(batch_sizes=(1, 32, 1437), repeats=5, seed=0):
    """Best-of-``repeats`` wall seconds of one SGD epoch (m = ⌈n/b⌉ updates, scanned) of the
    ``DIGITS_MODEL`` net on digits, for each batch size; compile excluded.

    Returns ``(batch_sizes, seconds)`` as arrays.
    """
    batch_sizes = _sizes("batch_sizes", batch_sizes)
    repeats = _checks.positive_int("repeats", repeats, array=False)
    seed = int(_checks.nonnegative_int("seed", seed))
    ds = data.digits(seed)
    x, y = ds.x_train, ds.y_train
    n = x.shape[0]
    if max(batch_sizes) > n:
        raise ValueError(f"batch_sizes must be at most n={n}, got batch_sizes={batch_sizes!r}")
    model = models.mlp(list(DIGITS_MODEL))
    params = model.init(jax.random.key(seed))

    def loss(p, xb, yb, mk):
        return jnp.sum(mk * models.softmax_cross_entropy(model.apply(p, xb), yb)) / jnp.sum(mk)

    out = []
    for b in batch_sizes:

        @jax.jit
        def epoch(p, idx, mask):
            def step(p, batch):
                i, mk = batch
                g = jax.grad(loss)(p, x[i], y[i], mk)
                return jax.tree.map(lambda a, ga: a - 0.01 * ga, p, g), None

            return jax.lax.scan(step, p, (idx, mask))[0]

        idx, mask = jax.device_put(_epoch_batches(np.random.default_rng(seed), n, b))
        jax.block_until_ready(epoch(params, idx, mask))  # compile
        out.append(_best_seconds(repeats, epoch, params, idx, mask))
    return np.asarray(batch_sizes), np.asarray(out)


def wallclock_curves(runs=WALLCLOCK_RUNS, repeats=3, seed=0):
    """Train the ``DIGITS_MODEL`` net on digits with SGD for each (b, η, epochs); returns
    ``{b: (seconds, cost)}``: the training cost after each epoch against the wall-clock time at which that
    epoch ended (the best of ``repeats`` timed runs after a compiling one, spread evenly over the epochs)."""
    repeats = _checks.positive_int("repeats", repeats, array=False)
    seed = int(_checks.nonnegative_int("seed", seed))
    digits, model = data.digits(seed=0), models.mlp(list(DIGITS_MODEL))
    out = {}
    for b, lr, epochs in runs:

        def fit(b=b, lr=lr, epochs=epochs):
            return training.fit(
                model, digits, optimizers.sgd(lr), epochs=epochs, batch_size=b, key=jax.random.key(seed)
            ).cost.block_until_ready()

        cost = np.asarray(fit())
        out[b] = (_best_seconds(repeats, fit) * np.arange(1, epochs + 1) / epochs, cost)
    return out


def cost_at(curves, b, seconds) -> float:
    """Training cost of run ``b`` of :func:`wallclock_curves` at a wall-clock budget: its last epoch that
    ended within ``seconds`` (inf if none did)."""
    t, cost = curves[b]
    done = t <= seconds
    return float(cost[done][-1]) if done.any() else math.inf
