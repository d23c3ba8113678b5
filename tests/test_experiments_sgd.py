"""The SGD experiments reproduce the lecture's claims (papers.md §5) with the tolerances it states."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import lecture_lib as ll
from lecture_lib import experiments_sgd as ex

SIZES = tuple(2**i for i in range(11))  # b = 1, 2, 4, …, 1024
ALPHAS = (0.2, 0.1, 0.05, 0.025)
PROBLEM = ll.data.function_fit_problem("sin", noise=0.1)


def f_line(x):  # a fixed model: the line 0.5 x, a poor fit of sin(πx)
    return 0.5 * x[:, 0]


def slope_between(F, k_lo=100, k_hi=10_000, points=21):
    """Log-log slope of E[F(w_k)] over k in [k_lo, k_hi]; F[k - 1] holds F(w_k)."""
    k = np.unique(np.round(np.logspace(np.log10(k_lo), np.log10(k_hi), points)).astype(int))
    return float(ex.loglog_slope(k, np.asarray(F)[k - 1]))


# ---- 1. variance of the batch error and of the empirical risk -------------------------------------------


@pytest.fixture(scope="module")
def losses():
    x, y = PROBLEM.sample(jax.random.key(0), 2048)
    return (f_line(x) - y) ** 2


@pytest.fixture(scope="module")
def batch_variance(losses):
    return jax.tree.map(np.asarray, ex.batch_error_variance(losses, SIZES, key=jax.random.key(1)))


def test_batch_error_variance_falls_as_one_over_b_with_replacement(batch_variance):
    r = batch_variance
    assert abs(float(ex.loglog_slope(r.b, r.var_replacement)) + 1) <= 0.1
    np.testing.assert_allclose(r.var_replacement / r.pred_replacement, 1.0, atol=0.1)


def test_batch_error_variance_without_replacement_has_the_finite_population_factor(batch_variance, losses):
    r = batch_variance
    np.testing.assert_allclose(r.var_without / r.pred_without, 1.0, atol=0.1)
    assert r.pred_without[-1] / r.pred_replacement[-1] == pytest.approx((2048 - 1024) / 2047)
    assert r.var_without[-1] < 0.6 * r.var_replacement[-1]  # b = n/2: the factor halves the variance
    np.testing.assert_allclose(r.pred_replacement * r.b, np.var(np.asarray(losses)), rtol=1e-4)


def test_empirical_risk_is_unbiased_and_its_variance_is_var_loss_over_n():
    ns = np.array([1, 4, 16, 64, 256])
    r = jax.tree.map(np.asarray, ex.empirical_risks(PROBLEM, f_line, tuple(ns), key=jax.random.key(2)))
    assert r.risks.shape == (5, 10_000)
    mean, var = r.risks.mean(axis=1), r.risks.var(axis=1, ddof=1)
    se = np.sqrt(r.var_loss / ns / 10_000)
    assert np.all(np.abs(mean - r.expected) <= 4 * se)  # unbiased at every n
    assert np.all(np.abs(mean[2:] / r.expected - 1) <= 0.01)  # within 1% where se < 0.4%
    np.testing.assert_allclose(var * ns / r.var_loss, 1.0, atol=0.1)
    assert abs(float(ex.loglog_slope(ns, var)) + 1) <= 0.1


# ---- 2. SGD on the noisy quadratic of papers.md §5 --------------------------------------------------------


@pytest.fixture(scope="module")
def constant_runs():
    run = jax.vmap(lambda a: ex.sgd_noisy_quadratic(a, 1000, key=jax.random.key(0), replicas=200))
    return jax.tree.map(np.asarray, run(jnp.asarray(ALPHAS)))


def test_constant_step_plateau_matches_the_exact_value_and_theorem_4_6(constant_runs):
    plateau = constant_runs.F[:, 500:].mean(axis=1)
    exact = np.array([ex.quadratic_plateau(a) for a in ALPHAS])
    bound = np.array([ex.theorem_4_6_bound(a, M=10.0) for a in ALPHAS])
    np.testing.assert_allclose(exact, [0.556, 0.263, 0.128, 0.063], atol=1e-3)  # papers.md §5
    np.testing.assert_allclose(bound, [1.0, 0.5, 0.25, 0.125], rtol=1e-6)
    np.testing.assert_allclose(plateau / exact, 1.0, atol=0.05)
    assert np.all(plateau < bound)
    np.testing.assert_allclose(plateau[1:] / plateau[:-1], 0.5, atol=0.05)  # halving α halves the plateau
    np.testing.assert_allclose(constant_runs.F_exact[:, -1], exact, rtol=1e-4)


@pytest.fixture(scope="module")
def diminishing_runs():
    s = ll.schedules
    scheds = [  # β/(γ+k) = (β/(γ+1)) / (1 + t/(γ+1)) with t = k − 1, γ = 1
        s.inverse_time(2.0 / 2, 1.0, 2.0),  # β = 2 (> 1/c); also η₀/(1+k/τ)^p with p = 1
        s.inverse_time(0.25 / 2, 1.0, 2.0),  # β = 0.25 (< 1/(2c))
        s.inverse_time(0.5, 0.5, 1.0),  # p = 1/2
        s.inverse_time(0.5, 0.25, 1.0),  # p = 1/4
    ]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *scheds)
    run = jax.vmap(lambda sched: ex.sgd_noisy_quadratic(sched, 10_000, key=jax.random.key(1), replicas=200))
    return jax.tree.map(np.asarray, run(stacked))


def test_diminishing_step_beta_above_one_over_c_gives_one_over_k_under_theorem_4_7(diminishing_runs):
    F = diminishing_runs.F[0]
    assert abs(slope_between(F) + 1) <= 0.1
    nu = ex.theorem_4_7_nu(2.0, 1.0, F1=45.0)
    assert nu == 90.0
    k = np.arange(1, F.size + 1)
    assert np.all(F <= nu / (1.0 + k) * (1 + 1e-6))


def test_diminishing_step_beta_below_half_over_c_gives_rate_k_to_minus_2_beta_c(diminishing_runs):
    assert abs(slope_between(diminishing_runs.F[1]) + 2 * 0.25) <= 0.1


def test_power_schedules_follow_the_step_and_robbins_monro_sums(diminishing_runs):
    r = diminishing_runs
    assert abs(slope_between(r.F[2]) + 0.5) <= 0.1  # p = 1/2: error ∝ η_k ∝ k^(-1/2)
    assert abs(slope_between(r.F[3]) + 0.25) <= 0.1  # p = 1/4
    np.testing.assert_allclose(r.F[:, 1:], r.F_exact[:, 1:], rtol=0.3)  # Monte Carlo vs exact recursion
    grow = r.sum_eta[:, 9999] - r.sum_eta[:, 999]  # one decade of k
    grow2 = r.sum_eta2[:, 9999] - r.sum_eta2[:, 999]
    assert grow[0] == pytest.approx(2 * np.log(10), rel=0.01)  # Σ η = ∞ (logarithmically) for p = 1
    assert grow2[0] < 0.01 * r.sum_eta2[0, 999]  # Σ η² < ∞ for p = 1: the tail 4/k adds 0.14%
    assert grow2[2] == pytest.approx(0.25 * np.log(10), rel=0.01)  # p = 1/2: Σ η² = ∞ (logarithmically)
    assert np.all(grow[2:] > 60)  # p ≤ 1/2: Σ η grows like k^(1-p)


def test_exponential_decay_breaks_sum_eta_infinite_and_stalls_short_of_the_optimum():
    sched = ll.schedules.exponential(0.1, 0.9)  # Σ η = 0.1/(1 − 0.9) = 1
    det = jax.tree.map(np.asarray, ex.sgd_noisy_quadratic(sched, 300, sigma=0.0))
    assert det.sum_eta[-1] == pytest.approx(1.0, rel=1e-4)
    stall = 45.0 * det.contraction[-1] ** 2  # F(w_1) Π(1 − η_k c)²
    assert det.contraction[-1] > 0.3 and det.F[-1] == pytest.approx(stall, rel=1e-4)
    assert det.F[150] == pytest.approx(det.F[-1], rel=1e-5)  # stalled, not converging slowly
    noisy = jax.tree.map(np.asarray, ex.sgd_noisy_quadratic(sched, 300, key=jax.random.key(3), replicas=200))
    assert noisy.F[-1] > 0.9 * stall


def test_noisy_quadratic_changes_no_code_when_the_step_changes(constant_runs, count_compiles):
    one = ex.sgd_noisy_quadratic(0.1, 50, key=jax.random.key(0), replicas=10)
    with count_compiles() as c:
        two = ex.sgd_noisy_quadratic(0.05, 50, key=jax.random.key(4), replicas=10)
    assert c.count == 0 and two.F.shape == one.F.shape == (51,) and one.F.dtype == jnp.float32


# ---- 3. batch vs SGD at equal gradient evaluations; 4. sample orders --------------------------------------


@pytest.fixture(scope="module")
def regression():
    return ll.data.linear_regression(1000, 10, jax.random.key(0), condition=10.0, noise=0.5)


def test_one_epoch_of_sgd_reduces_the_error_more_than_one_batch_update(regression):
    d = regression
    r = ex.batch_vs_sgd(
        d.x_train, d.y_train, 0.01, batch_sizes=(1, 10, 1000), epochs=3, key=jax.random.key(1)
    )
    r = jax.tree.map(np.asarray, r)
    assert r.updates.tolist() == [1000, 100, 1] and r.excess.shape == r.loss.shape == (3, 4)
    np.testing.assert_allclose(r.excess[:, 0], r.excess[0, 0])
    sgd, mini, batch = r.excess[:, 1]
    assert sgd < 0.01 * batch and mini < 0.1 * batch
    # excess = L(w) − L(w*) agrees with the data's own minimiser w_opt (an independent reference)
    np.testing.assert_allclose(r.loss[2] - d.loss(d.w_opt), r.excess[2], rtol=1e-3)
    lrs = [0.01, 0.01, 1 / float(d.L)]
    tuned = ex.batch_vs_sgd(
        d.x_train, d.y_train, lrs, batch_sizes=(1, 10, 1000), epochs=3, key=jax.random.key(1)
    )
    assert tuned.excess[0, 1] < 0.01 * tuned.excess[2, 1]  # even with GD at its best rate 1/L


def test_time_per_epoch_gives_seconds_per_batch_size(regression):
    d = regression
    t = ex.time_per_epoch(d.x_train, d.y_train, 0.01, batch_sizes=(1, 1000), epochs=3, key=jax.random.key(0))
    assert t.shape == (2,) and np.all((t > 0) & (t < 1))


@pytest.fixture(scope="module")
def orders():
    n = 100
    x, y = PROBLEM.sample(jax.random.key(0), n)
    order = jnp.argsort(x[:, 0])  # stored sorted by x, so "sorted" sweeps left to right
    X = jnp.concatenate([jnp.ones((n, 1)), x[order]], axis=1)  # fit the line w₀ + w₁x
    runs = {
        lr: ex.sampling_orders(X, y[order], lr, epochs=200, key=jax.random.key(1), seeds=16)
        for lr in (0.05, 0.025)
    }
    return {lr: jax.tree.map(np.asarray, r) for lr, r in runs.items()}


def _tail(a):  # per order, mean over the seeds and the last 100 epochs
    return a[:, :, -100:].mean(axis=(1, 2))


def test_reshuffling_settles_closer_than_replacement_as_eta_squared_vs_eta(orders):
    i_rr, i_repl = ll.sampling.ORDERS.index("reshuffle"), ll.sampling.ORDERS.index("replacement")
    big, small = _tail(orders[0.05].excess), _tail(orders[0.025].excess)
    assert small[i_rr] < 0.5 * small[i_repl] and big[i_rr] < big[i_repl]
    assert small[i_repl] / big[i_repl] == pytest.approx(0.5, abs=0.1)  # with replacement: ∝ η
    assert small[i_rr] / big[i_rr] <= 0.3  # reshuffling: ∝ η² (or faster)


def test_sorted_order_drifts_within_every_epoch_and_cycles(orders):
    i_rr, i_sorted = ll.sampling.ORDERS.index("reshuffle"), ll.sampling.ORDERS.index("sorted")
    r = orders[0.05]
    assert _tail(r.spread)[i_sorted] > 5 * _tail(r.spread)[i_rr]  # the iterate wanders within the epoch
    assert _tail(r.excess)[i_sorted] > 2 * _tail(r.excess)[i_rr]  # and ends each epoch further away
    cycle = r.excess[i_sorted, :, -50:]  # a limit cycle: the same end-of-epoch error, epoch after epoch
    np.testing.assert_allclose(cycle, cycle[0, 0], rtol=1e-4)
    assert r.excess.shape == (4, 16, 201) and r.spread.shape == (4, 16, 200) and r.excess.dtype == np.float32


# ---- shapes, vmap, errors --------------------------------------------------------------------------------


def test_results_have_documented_shapes_and_dtypes_and_vmap_over_keys(losses, regression):
    keys = jax.random.split(jax.random.key(5), 3)
    v = jax.vmap(lambda k: ex.batch_error_variance(losses, (1, 8), key=k, draws=100))(keys)
    assert v.var_without.shape == (3, 2) and v.var_without.dtype == jnp.float32 and v.b.dtype == jnp.int32
    d = regression
    r = jax.vmap(lambda k: ex.batch_vs_sgd(d.x_train, d.y_train, 0.01, batch_sizes=(100,), epochs=2, key=k))(
        keys
    )
    assert r.excess.shape == (3, 1, 3) and r.excess.dtype == jnp.float32


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda l: ex.batch_error_variance(l, (1, 4096), key=jax.random.key(0)), "batch_sizes must"),
        (lambda l: ex.batch_error_variance(l, (0,), key=jax.random.key(0)), "batch_sizes must"),
        (lambda l: ex.batch_error_variance(l, (1,), key=jax.random.key(0), draws=1), "draws must"),
        (lambda l: ex.batch_error_variance(l[:, None], (1,), key=jax.random.key(0)), "losses must"),
        (lambda l: ex.empirical_risks(PROBLEM, f_line, (0,), key=jax.random.key(0)), "sizes must"),
        (lambda l: ex.sgd_noisy_quadratic(0.1, 10), "sigma=1.0 needs a random key"),
        (lambda l: ex.sgd_noisy_quadratic(-0.1, 10, key=jax.random.key(0)), "schedule must be positive"),
        (lambda l: ex.sgd_noisy_quadratic(0.1, 0, key=jax.random.key(0)), "steps must"),
        (lambda l: ex.sgd_noisy_quadratic(0.1, 10, sigma=-1.0), "sigma must"),
        (lambda l: ex.quadratic_plateau(2.5), "alpha must"),
        (lambda l: ex.theorem_4_7_nu(0.5, 1.0, F1=45.0), "beta must exceed"),
        (lambda l: ex.batch_vs_sgd(l[:, None], l, -0.1, batch_sizes=(1,), epochs=1, key=None), "lr must"),
        (lambda l: ex.batch_vs_sgd(l, l, 0.1, batch_sizes=(1,), epochs=1, key=None), "x must have shape"),
        (
            lambda l: ex.sampling_orders(l[:, None], l, 0.1, epochs=1, key=None, orders=("random",)),
            "order must",
        ),
        (lambda l: ex.sampling_orders(l[:, None], l, 0.1, epochs=1, key=None, seeds=0), "seeds must"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(losses, call, match):
    with pytest.raises(ValueError, match=match):
        call(losses)


def test_batch_error_variance_is_exact_when_steps_and_draws_do_not_fill_the_blocks(monkeypatch):
    # the random bits come in blocks of _BLOCK steps (100 steps pad the last block, past n = 100) and the
    # draws in chunks of _STATE // n (4 chunks of 751 here, the last padded): the padding must not count
    monkeypatch.setattr(ex, "_STATE", 100 * 1000)
    l = jnp.asarray(np.random.default_rng(0).standard_normal(100).astype(np.float32))
    r = jax.tree.map(
        np.asarray, ex.batch_error_variance(l, (1, 10, 50, 100), key=jax.random.key(3), draws=3001)
    )
    assert 100 % ex._BLOCK != 0
    assert r.var_without[-1] < 1e-10  # b = n: every draw is the whole population
    np.testing.assert_allclose(r.var_without[:3] / r.pred_without[:3], 1.0, atol=0.1)
    np.testing.assert_allclose(r.var_replacement / r.pred_replacement, 1.0, atol=0.1)


def test_batch_error_variance_samples_every_item_and_pair_with_the_right_frequency():
    # Losses 1 on a set of m items and 0 elsewhere make the batch mean C/b, C the set's items in the batch:
    # hypergeometric without replacement (every b-subset equally likely: each item in with probability b/n,
    # no duplicates) and binomial(b, m/n) with. Its variance must match the closed forms within 5 standard
    # errors of a sample variance, from C's exact kurtosis; single items and pairs, early and late slots.
    n, draws, sizes = 16, 20_000, (1, 2, 3, 8, 15, 16)
    sets = [(0,), (7,), (15,), (0, 15), (3, 4)]
    losses = np.zeros((len(sets), n), np.float32)
    for row, items in zip(losses, sets):
        row[list(items)] = 1.0
    key = jax.random.key(11)
    r = jax.tree.map(
        np.asarray,
        jax.vmap(lambda l: ex.batch_error_variance(l, sizes, key=key, draws=draws))(jnp.asarray(losses)),
    )
    for s, items in enumerate(sets):
        m = len(items)
        assert r.var_without[s, -1] < 1e-10 and abs(r.pred_without[s, -1]) < 1e-7  # b = n: everything
        for i, b in enumerate(sizes[:-1]):
            for var, pred, dist in (
                (r.var_without[s, i], r.pred_without[s, i], scipy.stats.hypergeom(n, m, b)),
                (r.var_replacement[s, i], r.pred_replacement[s, i], scipy.stats.binom(b, m / n)),
            ):
                assert float(dist.var()) / b**2 == pytest.approx(pred, rel=1e-5)  # the closed forms
                kurt = float(dist.stats(moments="k")) + 3
                se = np.sqrt(kurt / draws - (draws - 3) / (draws * (draws - 1)))  # sd of s² / σ²
                assert abs(var / pred - 1) <= 5 * se + 1e-5, (items, b, var / pred, se)  # + float32


def test_noisy_quadratic_schedules_share_one_compile_as_tables(count_compiles):
    """Every schedule runs through its table of rates: one compiled run per shape, whatever the family."""
    key = jax.random.key(3)
    scheds = (
        ll.schedules.inverse_time(0.5, 1.0, 4.0),
        ll.schedules.exponential(0.1, 0.95),
        ll.schedules.constant(0.2),
    )
    ex.sgd_noisy_quadratic(ll.schedules.inverse_time(0.3, 0.5, 2.0), 250, key=key, replicas=8)
    for s in scheds:
        s(jnp.arange(300, dtype=jnp.int32))  # the table's own evaluation compiles once per family
    with count_compiles() as c:
        runs = [ex.sgd_noisy_quadratic(s, 250, key=key, replicas=8) for s in scheds]
    assert c.count == 0
    for s, r in zip(scheds, runs):
        np.testing.assert_allclose(np.asarray(r.eta), np.asarray(s(jnp.arange(250))), rtol=1e-6)
        assert r.F.shape == (251,) and r.F_exact.shape == (251,)


def test_loglog_slope_in_numpy_and_under_jit_agree(count_compiles):
    x = np.geomspace(1, 1000, 9)
    y = 3.0 / x**0.5 * (1 + 0.01 * np.sin(x))
    with count_compiles() as c:
        eager = ex.loglog_slope(x, y)
    assert c.count == 0 and isinstance(eager, jax.Array)
    traced = jax.jit(ex.loglog_slope)(x, y)
    assert float(eager) == pytest.approx(float(traced), abs=1e-5)
