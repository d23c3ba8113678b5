"""Minibatch orders: shapes, masks, every-sample-once epochs, independence of replacement draws."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from lecture_lib import models, sampling, training


@pytest.mark.parametrize("n,b", [(10, 1), (10, 3), (10, 10), (1437, 64)])
@pytest.mark.parametrize("order", ["reshuffle", "fixed", "sorted"])
def test_an_epoch_without_replacement_touches_every_sample_exactly_once(n, b, order):
    idx, mask = sampling.batches(jax.random.key(1), n, b, 3, order)
    m = -(-n // b)
    assert idx.shape == mask.shape == (3, m, b) and idx.dtype == np.int32
    idx, mask = np.asarray(idx), np.asarray(mask)
    assert mask.sum(axis=(1, 2)).tolist() == [n] * 3
    assert mask[:, :-1].all(), "only the last batch of an epoch may be partial"
    for e in range(3):
        assert sorted(idx[e][mask[e]].tolist()) == list(range(n))


def test_orders_differ_as_documented():
    idx, _ = sampling.batches(jax.random.key(0), 50, 5, 3, "reshuffle")
    flat = np.asarray(idx).reshape(3, -1)
    assert not np.array_equal(flat[0], flat[1]) and not np.array_equal(flat[1], flat[2])
    idx, _ = sampling.batches(jax.random.key(0), 50, 5, 3, "fixed")
    flat = np.asarray(idx).reshape(3, -1)
    assert np.array_equal(flat[0], flat[1]) and not np.array_equal(flat[0], np.arange(50))
    idx, _ = sampling.batches(None, 50, 5, 2, "sorted")
    assert np.array_equal(np.asarray(idx).reshape(2, -1)[1], np.arange(50))


def test_reshuffle_permutations_are_uniform_over_all_orders():
    # n = 5: all 120 orders equally likely (chi-square over 12,000 epochs, one fixed key)
    from scipy import stats

    n, epochs = 5, 12_000
    idx, _ = sampling.batches(jax.random.key(5), n, n, epochs, "reshuffle")
    perms = np.asarray(idx).reshape(epochs, n)
    code = perms @ (n ** np.arange(n))  # one integer per order
    counts = np.unique(code, return_counts=True)[1]
    assert len(counts) == 120
    assert stats.chisquare(counts).pvalue > 1e-4


def test_reshuffle_of_the_digits_size_puts_every_sample_everywhere_evenly():
    n, epochs = 1437, 4000
    idx, mask = sampling.batches(jax.random.key(7), n, 64, epochs, "reshuffle")
    perms = np.asarray(idx)[np.asarray(mask)].reshape(epochs, n)
    pos = np.argsort(perms, axis=1)  # pos[e, i]: where sample i sits in epoch e
    z = (pos.mean(axis=0) - (n - 1) / 2) / np.sqrt((n * n - 1) / 12 / epochs)
    assert np.abs(z).max() < 5.0
    before = (pos[:, :-1] < pos[:, 1:]).mean()  # sample i before sample i + 1: a fair coin
    assert abs(before - 0.5) < 5 * 0.5 / np.sqrt(epochs * (n - 1))


@pytest.mark.parametrize("n,rounds", [(2, 1), (1437, 2), (2048, 2), (50_000, 3), (2**20, 5)])
def test_shuffle_takes_enough_rounds_that_a_pair_ties_in_all_with_probability_at_most_n_cubed(n, rounds):
    index_bits, got = sampling._shuffle_rounds(n)
    assert got == rounds and 2**index_bits >= n
    assert 2.0 ** (-(32 - index_bits) * got) <= float(n) ** -3


def test_replacement_draws_each_slot_independently_and_uniformly():
    n, b, epochs = 20, 4, 2000
    idx, mask = sampling.batches(jax.random.key(3), n, b, epochs, "replacement")
    draws = np.asarray(idx)[np.asarray(mask)]
    counts = np.bincount(draws, minlength=n)
    expected = len(draws) / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 45.3  # 99.9% quantile of chi-square with 19 degrees of freedom
    # repeats inside an epoch happen, as with-replacement sampling must allow
    distinct = [len(set(np.asarray(idx)[e].reshape(-1)[:n].tolist())) for e in range(epochs)]
    # expected number of distinct samples among n draws: n(1 - (1 - 1/n)^n) = 12.83 for n = 20
    assert np.mean(distinct) == pytest.approx(n * (1 - (1 - 1 / n) ** n), rel=0.02)


def test_same_key_same_order_and_vmap_over_keys():
    a, _ = sampling.batches(jax.random.key(7), 30, 4, 2)
    b, _ = sampling.batches(jax.random.key(7), 30, 4, 2)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    keys = jax.random.split(jax.random.key(0), 5)
    many, _ = jax.vmap(lambda k: sampling._batches(k, 30, 4, 2, "reshuffle"))(keys)
    assert many.shape == (5, 2, 8, 4)


@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((jax.random.key(0), 0, 1, 1), ValueError, r"n must be a positive integer, got n=0"),
        (
            (jax.random.key(0), 10, 0, 1),
            ValueError,
            r"batch_size must be a positive integer, got batch_size=0",
        ),
        ((jax.random.key(0), 10, 11, 1), ValueError, r"batch_size must be at most n=10, got batch_size=11"),
        ((jax.random.key(0), 10, 2, 1.5), TypeError, r"epochs must be a positive integer, got epochs=1\.5"),
        (
            (jax.random.key(0), 10, 2, 1, "shuffled"),
            ValueError,
            r"order must be one of .*got order='shuffled'",
        ),
        ((None, 10, 2, 1, "reshuffle"), ValueError, r"order='reshuffle' is random and needs a key"),
    ],
)
def test_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        sampling.batches(*args)


@pytest.mark.parametrize("n, count", [(1, 1), (2, 3), (5, 2), (64, 4), (1437, 10), (2049, 2)])
def test_the_host_sort_of_the_drawn_bits_gives_the_same_permutations(n, count):
    # fit draws a concrete key's shuffle bits on the device and sorts them in NumPy: the same permutations
    key = jax.random.key(n * 7 + count)
    host = sampling._permutations_np(sampling._round_bits(key, n, count), n)
    np.testing.assert_array_equal(host, np.asarray(sampling._permutations(key, n, count)))
    start = training._start(models.mlp([2, 1]), key, n, 1, count, "reshuffle")
    order = training._keys_and_order(key, n, 1, count, "reshuffle")
    for a, b in zip(start[1:], order[1:], strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
