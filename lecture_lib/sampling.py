r"""Minibatch orders: which samples each update sees.

``idx, mask = batches(key, n, batch_size, epochs, order)`` returns int32 indices of shape
``(epochs, m, b)`` with :math:`m = \lceil n/b \rceil` updates per epoch, and a boolean mask of the same
shape that is False on the padding of a partial last batch (so the last batch averages only its real
samples, and an epoch is exactly ``n`` samples). Orders:

- ``"reshuffle"``: a new random permutation every epoch (sampling without replacement): the slides'
  "randomly permute data" at the top of every epoch;
- ``"fixed"``: one random permutation, reused for every epoch;
- ``"sorted"``: the samples in their stored order, every epoch (no randomness: the order a careless loop
  over a sorted file would give);
- ``"replacement"``: every slot drawn independently and uniformly from all ``n`` samples.

Shapes are static, so everything is jit- and vmap-able (over keys).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks

ORDERS = ("reshuffle", "fixed", "sorted", "replacement")


def n_batches(n: int, batch_size: int) -> int:
    """Updates per epoch, :math:`m = \\lceil n / b \\rceil`."""
    return -(-n // batch_size)


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got order={order!r}")
    return order


def _shuffle_rounds(n: int) -> tuple[int, int]:
    """``(index_bits, rounds)`` of the packed-key shuffle of ``n`` items (see :func:`_permutations`)."""
    index_bits = max(1, (n - 1).bit_length())
    random_bits = 32 - index_bits
    # JAX's rule for its own sort-based shuffle (random.permutation), with random_bits instead of 32: a pair
    # ties in every round with probability 2**-(random_bits * rounds) <= n**-3
    return index_bits, max(1, math.ceil(3 * math.log2(max(n, 2)) / random_bits))


def _permutations(key, n: int, count: int):
    """``count`` independent uniformly random permutations of ``range(n)``, shape ``(count, n)`` int32.

    Each round sorts one uint32 per item whose high bits are random and whose low ``index_bits`` hold the
    item's current position, then applies that order: a single-operand sort, 4x faster on XLA:CPU than the
    key-value sort of ``argsort`` (which compares through a comparator call per pair). Equal random bits
    keep the current order, which the next round's fresh bits shuffle again; ``_shuffle_rounds`` takes
    enough rounds that a pair tied in all of them has probability at most n**-3 (2 rounds for n <= 2,048).
    """
    index_bits, rounds = _shuffle_rounds(n)
    if index_bits > 24:  # too few random bits left in 32: argsort of uniform floats
        u = jax.random.uniform(key, (count * n,)).reshape(count, n)  # flat draws compile faster on XLA:CPU
        return jnp.argsort(u, axis=1).astype(jnp.int32)
    low = jnp.uint32((1 << index_bits) - 1)
    position = jnp.arange(n, dtype=jnp.uint32)[None, :]
    perm = None
    for k in jax.random.split(key, rounds):
        u = jax.random.bits(k, (count * n,), jnp.uint32).reshape(count, n)
        order = (jnp.sort((u & ~low) | position, axis=1) & low).astype(jnp.int32)
        perm = order if perm is None else jnp.take_along_axis(perm, order, axis=1)
    return perm


def _round_bits(key, n: int, count: int):
    """The uint32 draws of every round of :func:`_permutations`, ``(rounds, count * n)``."""
    _, rounds = _shuffle_rounds(n)
    return jnp.stack([jax.random.bits(k, (count * n,), jnp.uint32) for k in jax.random.split(key, rounds)])


def _permutations_np(u, n: int) -> np.ndarray:
    """:func:`_permutations` from its drawn bits ``u`` (``_round_bits``), on the host: the same sort of the
    same distinct keys, so the same permutations; NumPy sorts these rows 2x faster than XLA:CPU."""
    index_bits, _ = _shuffle_rounds(n)
    low = np.uint32((1 << index_bits) - 1)
    position = np.arange(n, dtype=np.uint32)[None, :]
    perm = None
    for ur in np.asarray(u).reshape(np.shape(u)[0], -1, n):
        order = (np.sort((ur & ~low) | position, axis=1) & low).astype(np.int32)
        perm = order if perm is None else np.take_along_axis(perm, order, axis=1)
    return perm


def _batches_np(perms, n: int, b: int, epochs: int):
    """``_batches``' padding and reshaping of ``(epochs or 1, n)`` permutations, in NumPy."""
    m = n_batches(n, b)
    idx = np.zeros((epochs, m * b), np.int32)
    idx[:, :n] = perms
    mask = np.broadcast_to(np.arange(m * b) < n, (epochs, m * b))
    return idx.reshape(epochs, m, b), mask.reshape(epochs, m, b)


def batches(key, n: int, batch_size: int, epochs: int, order: str = "reshuffle"):
    """Indices ``(epochs, m, b)`` and mask for ``epochs`` passes over ``n`` samples in batches of ``b``."""
    n = _checks.positive_int("n", n, array=False)
    b = _checks.positive_int("batch_size", batch_size, array=False)
    epochs = _checks.positive_int("epochs", epochs, array=False)
    check_order(order)
    if b > n:
        raise ValueError(f"batch_size must be at most n={n}, got batch_size={b}")
    if key is None and order not in ("sorted",):
        raise ValueError(f"order={order!r} is random and needs a key: pass key=jax.random.key(seed)")
    return _batches(key, n, b, epochs, order)


def _batches(key, n: int, b: int, epochs: int, order: str):
    """Unchecked core, for use inside jitted code (``n``, ``b``, ``epochs``, ``order`` static)."""
    m = n_batches(n, b)
    pad = m * b - n
    if order == "replacement":
        idx = jax.random.randint(key, (epochs, m * b), 0, n, dtype=jnp.int32)
    else:
        if order == "reshuffle":
            perms = _permutations(key, n, epochs)
        elif order == "fixed":
            perms = jnp.broadcast_to(_permutations(key, n, 1), (epochs, n))
        else:  # sorted
            perms = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (epochs, n))
        idx = jnp.concatenate([perms, jnp.zeros((epochs, pad), jnp.int32)], axis=1)
    mask = jnp.broadcast_to(jnp.arange(m * b) < n, (epochs, m * b))
    return idx.reshape(epochs, m, b), mask.reshape(epochs, m, b)
