"""experiments_lr.py and experiments_recap.py: the claims with papers.md's check specs (§1, §2, §6, §7, §8).

Each test runs one experiment at the spec's size (seconds on a 2-core CPU, mostly compilation) and asserts the
claim with the spec's tolerance; where a number of papers.md's prototype does not reproduce, the comment says
what was measured instead.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

import lecture_lib.experiments_lr as E
import lecture_lib.experiments_recap as R


def test_lr_sweep_orders_too_low_learns_diverges():
    r = E.lr_sweep()  # 25 rates 1e-6 ... 1e6 x 3 seeds, 10 epochs of 64-50-10 on digits
    np.testing.assert_allclose(r.initial_loss, math.log(10), atol=1e-3)  # cs231n: 1e-4 randn starts at ln 10
    low, learns, high = (r.lrs[r.regime == REGIME] for REGIME in (0, 2, 3))
    assert low.size and learns.size and high.size
    assert low.max() < learns.min() <= learns.max() < high.min()  # ordered; no hard-coded bracket
    assert not np.isfinite(r.cost[r.diverged][:, -1]).any()  # "cost: NaN almost always means high lr"
    assert np.all(np.abs(r.cost[r.regime == 0][..., -1] - math.log(10)) < 0.01 * math.log(10))
    assert r.usable == (learns.min(), learns.max())
    assert r.val_acc[r.regime == 2].max() > 0.9 and r.val_acc[r.regime == 0].max() < 0.2  # vs chance 0.1


def test_suggest_range_on_a_known_curve():
    lr = np.geomspace(1e-3, 10, 101)
    loss = 1 + (np.log10(lr) + 1) ** 2  # minimum 1 at lr = 0.1, exceeds 4 where |log10 lr + 1| > sqrt(3)
    loss[-5:] = np.nan
    lo, hi = E.suggest_range(lr, loss)
    assert lo == pytest.approx(0.1) and hi == lr[np.argmax(np.log10(lr) + 1 > math.sqrt(3))]
    assert math.isnan(E.suggest_range(lr[:50], loss[:50])[1])  # never blows up within the sweep


@pytest.mark.parametrize("b", [32, 256])
def test_lr_range_test_brackets_two_over_L(b):
    r = E.lr_range_test(batch_size=b)  # 5 seeds, 1e-4 -> 10 in 400 updates, 2/L = 0.5
    np.testing.assert_allclose(r.lr[[0, -1]], [1e-4, 10.0], rtol=1e-4)  # float32 lr0·γ^t
    np.testing.assert_allclose(r.lr[1:] / r.lr[:-1], (1e5) ** (1 / 399), rtol=1e-4)
    # papers.md §7 (mean over 5 seeds): B=32 0.34x / 1.03x, B=256 0.54x / 1.26x; measured 0.28/0.97, 0.30/1.18
    assert 0.1 <= r.lr_min_loss / r.two_over_L <= 1
    assert 0.8 <= r.lr_blowup / r.two_over_L <= 2
    # Each seed's minimum is in range too; single-seed blow-ups at B=32 scatter lower (0.66-1.02x)
    assert np.all((r.per_seed[:, 0] / r.two_over_L >= 0.1) & (r.per_seed[:, 0] / r.two_over_L <= 1))


def test_linear_scaling_rule_holds_for_small_k_and_diverges_past_two_over_L():
    r = E.linear_scaling()  # n=4096, d=20, B=8, eta=0.005, k = 1..512, 10 epochs, 3 seeds
    assert r.two_over_L == pytest.approx(2 / 1.15, rel=1e-5)
    assert 256 * 0.005 < r.two_over_L < 512 * 0.005
    gap = r.gap[:, :, [4, 9]].mean(axis=1)  # mean over seeds after epochs 5 and 10
    ratio = gap / gap[0]
    small = r.k <= 16
    assert np.all(np.abs(ratio[small] - 1) <= 0.2), ratio  # papers.md: 1.016 (k=4), 1.11 (k=16) at epoch 10
    assert np.all(ratio[~small & (r.k < 512)] > 1)  # the rule degrades for large k (k=64: ~1.5, k=256: ~7)
    assert not r.diverged[r.k < 512].any() and r.diverged[r.k == 512].all()


def test_scaling_warmup_is_linear_from_eta_to_k_eta_in_five_epochs():
    eta, k, m = 0.005, 64, 8
    sched = E.scaling_warmup(eta, k, updates_per_epoch=m)
    t = jnp.arange(5 * m + 20)
    lr = np.asarray(sched(t), np.float64)
    assert lr[0] == pytest.approx(eta, rel=1e-6) and lr[5 * m] == pytest.approx(k * eta, rel=1e-6)
    np.testing.assert_allclose(np.diff(lr[: 5 * m + 1]), (k - 1) * eta / (5 * m), rtol=1e-4)  # constant step
    np.testing.assert_allclose(lr[5 * m :], k * eta, rtol=1e-6)  # then the scaled rate, no jump


def test_batch_increase_matches_rate_decay_with_fewer_updates():
    r = E.batch_increase()  # n=4000, 5 seeds: (a) B=16, lr .04/.008/.0016; (b) lr .04, B 16/80/400
    np.testing.assert_array_equal(r.updates, [7500, 3100])  # papers.md §7
    assert r.updates[1] <= 0.5 * r.updates[0]
    assert np.all((r.ratio >= 0.8) & (r.ratio <= 1.25)), r.ratio  # papers.md: 1.00 / 1.045 / 1.095
    assert np.all(np.diff(r.gap.mean(axis=1), axis=1) < 0)  # both plans keep improving phase by phase


def test_wilson_adaptive_methods_generalise_worse():
    r = R.wilson(seed=9)  # n=40, 400 test, p=0.6, 3000 full-batch steps, float32
    assert (r.seed, r.n_pos, r.n_neg) == (
        10,
        23,
        17,
    )  # seed 9 has 20 / 20: reseeded (the lemma needs n+ > n-)
    gd, adaptive = 0, slice(1, None)
    assert r.test_error[gd] == 0 and r.rel_dist_min_norm[gd] < 1e-3
    np.testing.assert_array_equal(r.test_error[adaptive], r.neg_fraction)  # every test point called positive
    assert np.all(r.cos_sign[adaptive] > 0.999)
    assert r.margin_error < 1e-6  # x·w_mn equals the closed form (float64)


def test_minibatch_lbfgs_naive_pairs_are_noisy_same_batch_pairs_never():
    r = R.minibatch_lbfgs()  # n=4000, d=50, lambda=1e-3, B=32, memory 10, 5 epochs, 3 seeds
    naive, same = r.bad_share
    np.testing.assert_array_equal(same, 0.0)  # exactly: every batch loss is convex
    # papers.md §6 expects >= 0.25 at every rate (0.95 / 0.86 / 0.29). Measured here 0.32-0.45 at .01/.05 but
    # 0.18-0.28 at .2 (an independent float64 NumPy loop gives 0.20-0.27): E[s^T y] > 0 for naive pairs, so
    # the share stays below 1/2 and falls as the curvature term grows with the step.
    assert np.all(naive[r.lrs < 0.1] >= 0.25), naive
    assert np.all(naive >= 0.15), naive
    gap_naive, gap_same = np.median(r.gap, axis=-1)
    unstable = (gap_naive >= 5 * gap_same) | ~np.isfinite(r.gap[0]).all(axis=-1)
    assert unstable.all(), r.gap
    lbfgs_iters, gd_iters = r.full_iters
    assert np.all((lbfgs_iters >= 0) & (lbfgs_iters <= 40)) and np.all(gd_iters == -1)  # GD: not in 200


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: E.lr_sweep(lrs=[0.1, -1.0]), "lrs must be a non-empty 1-D sequence of positive finite"),
        (lambda: E.lr_sweep(lrs=[0.1], seeds=0), "seeds must be a positive integer"),
        (lambda: E.lr_range_test(lr_start=1.0, lr_end=0.1), "lr_end must exceed lr_start"),
        (lambda: E.lr_range_test(steps=1), "need steps ≥ 2"),
        (lambda: E.suggest_range([1.0, 2.0], [1.0]), "lr and loss must be 1-D of equal length"),
        (lambda: E.suggest_range([1.0, 2.0], [1.0, 2.0], factor=1.0), "factor must be finite and above 1"),
        (lambda: E.linear_scaling(ks=[0, 1]), "ks must be a non-empty sequence of positive integers"),
        (lambda: E.linear_scaling(ks=[1024]), r"max\(ks\) × batch_size must be at most n=4096"),
        (lambda: E.linear_scaling(lr=-1.0), "lr must be positive and finite"),
        (lambda: E.scaling_warmup(0.1, 0, 10), "k must be a positive integer"),
        (lambda: E.batch_increase(factor=100), "the last batch size"),
        (lambda: R.wilson(p=0.4), r"p must be in \(0.5, 1\)"),
        (lambda: R.wilson(lrs=(None, 0.1)), "lrs must give one rate per method"),
        (lambda: R.minibatch_lbfgs(batch_size=5000), "batch_size must be at most n=4000"),
        (lambda: R.minibatch_lbfgs(lrs=[]), "lrs must be a non-empty"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_argument_types():
    with pytest.raises(TypeError, match="steps must be a positive integer"):
        E.lr_range_test(steps=2.5)
    with pytest.raises(TypeError, match="seed must be a non-negative integer"):
        E.batch_increase(seed="0")


# ---- experiments_monitoring: the notebook 07 experiments on the two-layer net ----------------------------

import lecture_lib.experiments_monitoring as M  # noqa: E402


def test_ema_is_the_debiased_recursion_and_stops_at_the_first_nonfinite_value():
    rng = np.random.default_rng(0)
    x = rng.random(50)
    for beta in (0.0, 0.5, 0.9, 0.99):
        s, ref = 0.0, []
        for t, v in enumerate(x, start=1):
            s = beta * s + (1 - beta) * v
            ref.append(s / (1 - beta**t))
        np.testing.assert_allclose(M.ema(x, beta), ref, rtol=1e-12)
    np.testing.assert_allclose(M.ema(np.full(7, 2.5), 0.9), 2.5, rtol=1e-12)  # a constant stays put
    y = x.copy()
    y[20] = np.inf
    out = M.ema(y, 0.9)
    np.testing.assert_allclose(out[:20], M.ema(x[:20], 0.9)) and np.testing.assert_array_equal(
        out[20:], np.nan
    )
    assert M.first_nonfinite(y) == 20 and M.first_nonfinite(x) == -1


def test_usable_range_needs_every_seed_to_learn():
    lrs = np.array([1e-3, 1e-2, 1e-1, 1.0, 10.0])
    cost = np.array([[2.3, 2.3], [1.5, 0.9], [0.3, 0.4], [0.1, np.nan], [np.nan, np.nan]])
    assert M.usable_range(lrs, cost) == (1e-1, 1e-1)  # 1e-2: one seed above ln10/2; 1.0: one seed diverged
    assert M.usable_range(lrs, cost[:, 1], fraction=0.5) == (1e-2, 1e-1)
    assert all(np.isnan(M.usable_range(lrs, cost, fraction=0.01)))


def test_noisy_labels_flip_the_fraction_asked_and_keep_validation_clean():
    import lecture_lib as ll

    d = ll.data.digits(seed=0)
    noisy = M.noisy_labels(d, 0.2, seed=0)
    flipped = np.asarray(noisy.y_train) != np.asarray(d.y_train)
    assert abs(flipped.mean() - 0.2) < 0.03  # binomial: 0.2 ± 3 standard deviations (0.0105)
    np.testing.assert_array_equal(noisy.y_val, d.y_val)
    assert set(np.unique(noisy.y_train)) == set(range(10))


@pytest.fixture(scope="module")
def grid():
    return M.grid_sweep()  # 19 rates 1e-6 ... 1e3 x 3 seeds, 10 epochs, 0.01 randn weights


def test_grid_sweep_starts_at_ln10_and_reads_a_usable_range(grid):
    final = grid.cost[:, :, -1]
    lo, hi = M.usable_range(grid.lrs, final)
    ok = (grid.lrs >= lo) & (grid.lrs <= hi)
    assert ok.sum() >= 2 and np.all(grid.diverged_at[ok] == -1)
    assert np.all(final[grid.lrs < lo / 10] > 0.99 * math.log(10))  # too low: the cost barely moves
    assert np.all(grid.diverged_at[grid.lrs > 10 * hi] >= 0)  # too high: nan/inf
    assert np.all(np.isnan(final[grid.diverged_at >= 0]))


def test_range_test_brackets_the_sweep_in_one_run(grid):
    lo, hi = M.usable_range(grid.lrs, grid.cost[:, :, -1])
    first_diverging = grid.lrs[(grid.diverged_at >= 0).any(axis=1)].min()
    for seed in (0, 1, 2):
        r = M.range_test(seed=seed)  # 230 updates from 1e-4 to 1e2
        np.testing.assert_allclose(r.lr[[0, 1]], [1e-4, 1e-4 * (1e6) ** (1 / 229)], rtol=1e-4)
        assert r.lr_falls <= lo and hi <= r.lr_min_loss < r.lr_blowup  # the sweep's range lies inside
        assert 0.5 <= r.lr_blowup / first_diverging <= 2  # blow-up where the sweep starts to diverge
        assert r.lr_blowup <= r.diverged_lr


def test_gallery_runs_show_their_diagnoses():
    runs = M.gallery(seed=0)
    epoch_mean = {k: np.nanmean(r.loss.reshape(-1, r.updates_per_epoch), axis=1) for k, r in runs.items()
                  if r.loss.size % r.updates_per_epoch == 0 and r.diverged_at < 0}  # fmt: skip
    ln10 = math.log(10)
    low = epoch_mean["learning rate too low"]
    assert np.all(np.diff(low) < 0) and low[-1] > 0.7 * ln10  # falls steadily, but little
    assert runs["learning rate too high"].diverged_at >= 0
    assert all(r.diverged_at == -1 for k, r in runs.items() if k != "learning rate too high")
    good = epoch_mean["good learning rate"]
    assert good[-1] < 0.5 * good[0] and good[-1] < low[-1]
    small, ref = runs["batch too small"], runs["good learning rate"]
    assert M.roughness(small.loss, skip=small.updates_per_epoch) > 3 * M.roughness(ref.loss, skip=32)
    step = epoch_mean["plateau, then a step decay"]
    e = M.GALLERY["plateau, then a step decay"].decay_epoch
    assert np.all(np.abs(np.diff(step[e - 4 : e])) < 0.08 * step[e - 1])  # a plateau before the decay ...
    assert step[e] < 0.85 * step[e - 1]  # ... then a drop of more than 15 % in the epoch after it
    np.testing.assert_allclose(runs["plateau, then a step decay"].lr[e * 45], 0.1, rtol=1e-5)
    bad = runs["bad initialization"].loss
    assert np.all(np.abs(bad[:45] - ln10) < 0.02 * ln10) and epoch_mean["bad initialization"][-1] < 0.5 * ln10


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: M.ema([1.0, 2.0], 1.0), r"beta must be in \[0, 1\), got beta=1.0"),
        (lambda: M.usable_range([1.0, 2.0], [0.1, 0.2], fraction=0.0), "fraction must be in"),
        (lambda: M.usable_range([1.0, 2.0], [0.1]), "cost must have one row per rate"),
        (lambda: M.range_test(lr_start=1.0, lr_end=0.5), "lr_end must exceed lr_start"),
        (lambda: M.range_test(lr_start=-1.0), "lr_start must be positive and finite, got lr_start=-1.0"),
        (lambda: M.noisy_labels(M._digits(), 1.5), r"fraction must be in \[0, 1\], got fraction=1.5"),
        (lambda: M.gallery(seed=-1), "seed must be a non-negative integer, got seed=-1"),
    ],
)
def test_monitoring_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_lr_sweep_compiles_once_per_shape(count_compiles):
    E.lr_sweep(lrs=[0.01, 0.1], seeds=1, epochs=1)
    with count_compiles() as c:
        r = E.lr_sweep(lrs=[0.03, 0.3], seeds=1, epochs=1, seed=4)
    assert c.count == 0
    assert r.cost.shape == (2, 1, 1)
