"""ll.training.fit: update by update against PyTorch and hand-written loops; the cs231n sanity checks; the
slide's log; schedules against torch.optim.lr_scheduler; sampling orders; vmap sweeps; compile counts;
L-BFGS on data; every argument error.

Compiling a fit costs about a second on a 2-core CPU, so the tests share a few configurations: the 64-50-10
MLP on digits for 2 epochs of batch 64, the cs231n model (``init_scale=1e-4``) for 10 epochs, and a
20-sample subset trained with batch 1 and full batch.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import lecture_lib as ll
from lecture_lib.training import History, fit, split_key, sweep

O, S = ll.optimizers, ll.schedules
DATA = ll.data.digits(seed=0)
N = 1437  # = 22 * 64 + 29
MLP = ll.models.mlp([64, 50, 10])
TINY = ll.models.mlp([64, 50, 10], init_scale=1e-4)  # cs231n's 1e-4 * randn weights, zero biases
KEY = jax.random.key(0)
SUB20 = ll.data.Dataset(DATA.x_train[:20], DATA.y_train[:20], DATA.x_val, DATA.y_val, "digits20", 10)
LOGISTIC = ll.data.logistic_regression(512, 20, jax.random.key(1), condition=100.0)
LINEAR = ll.models.linear(20, 2)
FULL_BATCH = {"epochs": 30, "batch_size": 512}
FIELDS = ("loss", "cost", "train_acc", "val_acc", "val_loss", "lr", "diverged_at")


def digits_run(opt, **kw):
    """The shared configuration: 64-50-10 on digits, 2 epochs of batch 64 (23 updates an epoch)."""
    return fit(MLP, DATA, opt, **{"epochs": 2, "batch_size": 64, "key": KEY, **kw})


def cs231n_run(lr, *, epochs=10, reg=0.0):
    return fit(TINY, DATA, O.sgd(lr), epochs=epochs, batch_size=64, key=KEY, reg=reg)


def assert_same_history(a, b, **tol):
    for name in FIELDS:
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), **tol)
    for pa, pb in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), **tol)


def ce(params, x, y):
    return jnp.mean(ll.models.softmax_cross_entropy(MLP.apply(params, x), y))


# ---- against PyTorch, update by update ---------------------------------------------------------------


def torch_reference(opt_name, lr, reg, epochs, batch_size):
    """The slide's loop in PyTorch, from fit's initial weights and in fit's batch order."""
    k_init, k_order = split_key(KEY)
    params = MLP.init(k_init)
    idx, mask = (np.asarray(a) for a in ll.sampling.batches(k_order, N, batch_size, epochs))
    assert idx.shape == (epochs, 23, 64) and int(mask[0, -1].sum()) == 29  # the partial last batch
    net = torch.nn.Sequential(torch.nn.Linear(64, 50), torch.nn.ReLU(), torch.nn.Linear(50, 10))
    with torch.no_grad():
        for layer, p in zip((net[0], net[2]), params):
            layer.weight.copy_(torch.from_numpy(np.asarray(p["W"]).T.copy()))  # ours is (fan_in, fan_out)
            layer.bias.copy_(torch.from_numpy(np.array(p["b"])))
    beta = {"sgd": 0.0, "momentum": 0.9}[opt_name]
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=beta)
    x, y = torch.from_numpy(np.array(DATA.x_train)), torch.from_numpy(np.array(DATA.y_train)).long()
    xv, yv = torch.from_numpy(np.array(DATA.x_val)), torch.from_numpy(np.array(DATA.y_val)).long()

    def objective(xb, yb):
        R = 0.5 * (net[0].weight.pow(2).sum() + net[2].weight.pow(2).sum())
        return torch.nn.functional.cross_entropy(net(xb), yb) + reg * R

    out = {k: [] for k in ("loss", "cost", "train_acc", "val_acc", "val_loss")}
    for e in range(epochs):
        for i in range(idx.shape[1]):
            b = torch.from_numpy(idx[e, i][mask[e, i]].astype(np.int64))  # real samples only
            opt.zero_grad()
            J = objective(x[b], y[b])
            J.backward()
            opt.step()
            out["loss"].append(J.item())
        with torch.no_grad():
            out["cost"].append(objective(x, y).item())
            out["train_acc"].append((net(x).argmax(1) == y).float().mean().item())
            out["val_acc"].append((net(xv).argmax(1) == yv).float().mean().item())
            out["val_loss"].append(torch.nn.functional.cross_entropy(net(xv), yv).item())
    weights = [(net[i].weight.detach().numpy().T, net[i].bias.detach().numpy()) for i in (0, 2)]
    return {k: np.array(v) for k, v in out.items()}, weights


@pytest.mark.parametrize("opt_name", ["sgd", "momentum"])
def test_fit_equals_pytorch_update_by_update(opt_name):
    lr, reg = 0.05, 1e-3
    opt = O.sgd(lr) if opt_name == "sgd" else O.momentum(lr, beta=0.9)
    hist = digits_run(opt, reg=reg)
    ref, weights = torch_reference(opt_name, lr, reg, epochs=2, batch_size=64)
    assert hist.loss.shape == (46,) and int(hist.diverged_at) == -1
    np.testing.assert_allclose(np.asarray(hist.loss), ref["loss"], rtol=2e-5)
    for name in ("cost", "val_loss"):
        np.testing.assert_allclose(np.asarray(getattr(hist, name)), ref[name], rtol=2e-5)
    for name in ("train_acc", "val_acc"):  # a prediction flipped by rounding would move these by 1/n
        np.testing.assert_allclose(np.asarray(getattr(hist, name)), ref[name], atol=1e-6)
    for layer, (W, b) in zip(hist.params, weights, strict=True):
        np.testing.assert_allclose(np.asarray(layer["W"]), W, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(layer["b"]), b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hist.lr), lr)
    assert hist.state is None


# ---- batch size 1 and n --------------------------------------------------------------------------------


@jax.jit
def _sgd_step(params, x, y, lr, reg):
    J = lambda p: ce(p, x, y) + reg * ll.models.l2(p)
    loss, g = jax.value_and_grad(J)(params)
    return loss, jax.tree.map(lambda w, g: w - lr * g, params, g)


def test_batch_size_one_is_sgd_sample_by_sample():
    lr, reg = 0.05, 1e-3
    hist = fit(MLP, SUB20, O.sgd(lr), epochs=3, batch_size=1, key=KEY, reg=reg)
    k_init, k_order = split_key(KEY)
    params = MLP.init(k_init)
    idx, mask = ll.sampling.batches(k_order, 20, 1, 3)
    assert bool(mask.all())
    losses = []
    for i in np.asarray(idx).reshape(-1):
        loss, params = _sgd_step(params, SUB20.x_train[i : i + 1], SUB20.y_train[i : i + 1], lr, reg)
        losses.append(loss)
    assert hist.loss.shape == (60,)  # n updates an epoch
    np.testing.assert_allclose(np.asarray(hist.loss), np.array(losses), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(hist.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_full_batch_is_gradient_descent_and_overfits_20_examples():
    # cs231n: "overfit ~20 examples to zero cost with reg = 0"; batch_size = n: one update an epoch
    lr, epochs = 0.3, 200
    hist = fit(MLP, SUB20, O.sgd(lr), epochs=epochs, batch_size=20, key=KEY)
    params = MLP.init(split_key(KEY)[0])
    losses = []
    for _ in range(epochs):
        loss, params = _sgd_step(params, SUB20.x_train, SUB20.y_train, lr, 0.0)
        losses.append(loss)
    assert hist.loss.shape == (epochs,)
    np.testing.assert_allclose(np.asarray(hist.loss), np.array(losses), rtol=1e-4, atol=1e-7)
    for a, b in zip(jax.tree.leaves(hist.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    # full batch: the batch loss before update t+1 is the cost after epoch t (the estimate is exact)
    np.testing.assert_allclose(np.asarray(hist.loss[1:]), np.asarray(hist.cost[:-1]), rtol=1e-5, atol=1e-7)
    assert float(hist.cost[-1]) < 0.01 and float(hist.train_acc[-1]) == 1.0


def test_float_targets_train_by_squared_error_to_the_least_squares_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=64)).astype(np.float32)
    hist = fit(
        ll.models.linear(3, 1), ll.data.Dataset(x, y, x, y), O.sgd(0.3), epochs=100, batch_size=64, key=KEY
    )
    A = np.hstack([x, np.ones((64, 1))]).astype(np.float64)  # with the bias
    r = A @ np.linalg.lstsq(A, y.astype(np.float64), rcond=None)[0] - y
    np.testing.assert_allclose(float(hist.cost[-1]), 0.5 * np.mean(r**2), rtol=1e-4)  # (1/n) sum 1/2 r^2
    assert np.isnan(np.asarray(hist.train_acc)).all() and np.isnan(np.asarray(hist.val_acc)).all()


# ---- the cs231n sanity checks (papers.md §8) -------------------------------------------------------------


def test_small_weights_start_at_ln10_and_a_tiny_rate_barely_moves_the_cost():
    hist = cs231n_run(1e-6)
    assert abs(float(hist.loss[0]) - math.log(10)) < 1e-3
    assert abs(float(hist.cost[0]) - math.log(10)) < 1e-3
    assert abs(float(hist.cost[-1]) - float(hist.cost[0])) < 1e-3
    assert int(hist.diverged_at) == -1


def test_the_cost_increases_with_regularisation():
    costs = [float(cs231n_run(1e-6, reg=reg).cost[0]) for reg in (0.0, 1.0, 1e3)]
    assert costs[0] < costs[1] < costs[2]


LOG_LINE = re.compile(
    r"Finished epoch (\d+) / 10: cost (nan|inf), train: \d\.\d{6}, val \d\.\d{6}, lr 1\.000000e\+06"
)


def test_a_huge_rate_diverges_in_the_first_epoch_and_the_log_shows_it():
    hist = cs231n_run(1e6)
    d = int(hist.diverged_at)
    assert 0 <= d < 23  # the first epoch
    loss = np.asarray(hist.loss)
    assert np.isfinite(loss[:d]).all() and not np.isfinite(loss[d]) and np.isnan(loss[d + 1 :]).all()
    assert not np.isfinite(np.asarray(hist.cost)).any()
    lines = hist.log().splitlines()
    assert [LOG_LINE.fullmatch(line).group(1) for line in lines[:-1]] == [str(e) for e in range(1, 11)]
    assert re.fullmatch(r"finished optimization\. best validation accuracy: \d\.\d{6}", lines[-1])


def test_after_divergence_the_weights_stop_changing():
    two, ten = cs231n_run(1e6, epochs=2), cs231n_run(1e6)  # the same key: the same first two epochs
    assert 0 <= int(two.diverged_at) == int(ten.diverged_at) < 23
    for a, b in zip(jax.tree.leaves(two.params), jax.tree.leaves(ten.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(two.loss), np.asarray(ten.loss[:46]))


def test_the_epochs_after_divergence_are_recorded_as_if_they_had_run():
    # fit's epoch loop stops once the run has diverged; the records of the skipped epochs must be what running
    # them would give: nan batch losses and cost, the frozen weights' accuracies and validation loss, the
    # schedule's rate at each epoch's last update
    sched = ll.schedules.exponential(1e6, 0.5)
    hist = fit(TINY, DATA, O.sgd(1.0), epochs=5, batch_size=64, key=KEY, schedule=sched)
    m, d = 23, int(hist.diverged_at)
    e = d // m  # the epoch it diverged in
    assert 0 <= e < 4
    assert np.isnan(np.asarray(hist.loss)[(e + 1) * m :]).all() and np.isnan(np.asarray(hist.cost)).all()
    for name in ("train_acc", "val_acc", "val_loss"):  # the frozen weights' (val_loss may be nan: huge W)
        a = np.asarray(getattr(hist, name))
        np.testing.assert_array_equal(a[e:], np.full(len(a) - e, a[e]), err_msg=name)
    # (the frozen weights are ~1e22: nearly all their logits overflow to inf or nan, whose argmax depends on
    # the order of summation, so their accuracy is not compared with another evaluation; finite runs are,
    # with PyTorch's, in test_fit_equals_pytorch_update_by_update)
    np.testing.assert_allclose(hist.lr, sched(np.arange(1, 6) * m - 1), rtol=1e-6)
    # under vmap the loop runs until every run has diverged: a diverging and a learning rate side by side; the
    # learning one is the run alone, the diverged one keeps its records as above
    both = sweep(TINY, DATA, ll.optimizers.sgd, [1e6, 0.1], [0], epochs=5, batch_size=64)
    alone = fit(TINY, DATA, O.sgd(0.1), epochs=5, batch_size=64, key=jax.random.key(0))
    assert_same_history(jax.tree.map(lambda a: a[1, 0], both), alone, rtol=1e-4, atol=1e-6)
    gone = jax.tree.map(lambda a: np.asarray(a[0, 0]), both)
    e = int(gone.diverged_at) // m
    assert 0 <= e < 4 and np.isnan(gone.loss[(e + 1) * m :]).all() and np.isnan(gone.cost).all()
    np.testing.assert_array_equal(gone.val_acc[e:], np.full(5 - e, gone.val_acc[e]))


def test_a_run_stopped_by_divergence_is_evaluated_at_the_epochs_it_ran_as_a_full_run_is():
    # fit evaluates a run that stopped early one epoch at a time, only the epochs it ran (a lax.cond on
    # ran == epochs); its first epochs must equal those of the same run cut before the divergence, which
    # takes the single pass over every epoch
    m = 23
    sched = ll.schedules.multistep(0.05, [2 * m], gamma=1e7)  # 0.05 for two epochs, then 5e5
    cut = fit(TINY, DATA, O.sgd(1.0), epochs=2, batch_size=64, key=KEY, schedule=sched)
    stopped = fit(TINY, DATA, O.sgd(1.0), epochs=6, batch_size=64, key=KEY, schedule=sched)
    assert int(cut.diverged_at) == -1 and 2 * m <= int(stopped.diverged_at) < 3 * m
    for name in ("cost", "train_acc", "val_acc", "val_loss", "lr"):
        a, b = np.asarray(getattr(stopped, name))[:2], np.asarray(getattr(cut, name))
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=name)
    np.testing.assert_array_equal(np.asarray(stopped.loss)[: 2 * m], np.asarray(cut.loss))


# ---- the log and the running estimate -------------------------------------------------------------------

SLIDE = """\
Finished epoch 1 / 10: cost 2.302576, train: 0.080000, val 0.103000, lr 1.000000e-06
Finished epoch 2 / 10: cost 2.302582, train: 0.121000, val 0.124000, lr 1.000000e-06
Finished epoch 3 / 10: cost 2.302558, train: 0.119000, val 0.138000, lr 1.000000e-06
Finished epoch 4 / 10: cost 2.302519, train: 0.127000, val 0.151000, lr 1.000000e-06
Finished epoch 5 / 10: cost 2.302517, train: 0.158000, val 0.171000, lr 1.000000e-06
Finished epoch 6 / 10: cost 2.302518, train: 0.179000, val 0.172000, lr 1.000000e-06
Finished epoch 7 / 10: cost 2.302466, train: 0.180000, val 0.176000, lr 1.000000e-06
Finished epoch 8 / 10: cost 2.302452, train: 0.175000, val 0.185000, lr 1.000000e-06
Finished epoch 9 / 10: cost 2.302459, train: 0.206000, val 0.192000, lr 1.000000e-06
Finished epoch 10 / 10: cost 2.302420, train: 0.190000, val 0.192000, lr 1.000000e-06
finished optimization. best validation accuracy: 0.192000"""


def history(cost, train, val, lr, loss=None):
    f = lambda a: np.asarray(a, np.float32)  # what fit returns
    loss = f(cost) if loss is None else f(loss)
    return History(loss, f(cost), f(train), f(val), f(cost), f(lr), np.int32(-1), None)


def test_log_reproduces_the_slide_exactly():
    rows = [line.split() for line in SLIDE.splitlines()[:-1]]
    cost, train, val = ([float(r[i].rstrip(",")) for r in rows] for i in (6, 8, 10))
    assert history(cost, train, val, [1e-6] * 10).log() == SLIDE


def test_log_of_a_diverged_run_and_of_a_vmapped_history():
    hist = history(
        [2.186654, np.inf, np.nan], [0.308, 0.128, 0.091], [0.306, 0.128, 0.087], [3e-3, 3e-3, 1e6]
    )
    assert hist.log() == (
        "Finished epoch 1 / 3: cost 2.186654, train: 0.308000, val 0.306000, lr 3.000000e-03\n"
        "Finished epoch 2 / 3: cost inf, train: 0.128000, val 0.128000, lr 3.000000e-03\n"
        "Finished epoch 3 / 3: cost nan, train: 0.091000, val 0.087000, lr 1.000000e+06\n"
        "finished optimization. best validation accuracy: 0.306000"
    )
    stacked = jax.tree.map(lambda a: np.stack([a, a]), hist)
    with pytest.raises(ValueError, match=r"log\(\) needs the history of one run, got cost of shape \(2, 3\)"):
        stacked.log()


def test_running_loss_is_the_mean_of_the_last_window_batch_losses():
    loss = np.array([4.0, 2.0, 6.0, 1.0, 3.0, 5.0])
    hist = history([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], loss=loss)  # 2 epochs of 3 updates
    expected = [np.mean(loss[max(0, t - 2) : t + 1]) for t in range(6)]  # window 3
    np.testing.assert_allclose(hist.running_loss(3), expected)
    np.testing.assert_allclose(hist.running_loss(3, per_epoch=True), [expected[2], expected[5]])
    np.testing.assert_allclose(hist.running_loss(1), loss)
    stacked = jax.tree.map(lambda a: np.stack([a, 2 * a]), hist)
    np.testing.assert_allclose(stacked.running_loss(3), [expected, 2 * np.array(expected)])
    with pytest.raises(ValueError, match="window must be a positive integer, got window=0"):
        hist.running_loss(0)


# ---- schedules --------------------------------------------------------------------------------------------


def test_a_step_schedule_replaces_the_rate_per_update_or_per_epoch():
    m = 23
    flat = digits_run(O.momentum(0.5, beta=0.9), schedule=S.exponential(0.05, 1.0))
    plain = digits_run(O.momentum(0.05, beta=0.9))
    assert_same_history(flat, plain, rtol=1e-6, atol=1e-7)  # the schedule's rate, not the optimizer's
    sched = S.exponential(0.05, 0.9)
    per_update = digits_run(O.momentum(0.05, beta=0.9), schedule=sched)
    np.testing.assert_allclose(np.asarray(per_update.lr), [sched(m - 1), sched(2 * m - 1)], rtol=1e-6)
    per_epoch = digits_run(O.momentum(0.05, beta=0.9), schedule=sched, schedule_unit="epoch")
    np.testing.assert_allclose(np.asarray(per_epoch.lr), [sched(0), sched(1)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(per_epoch.loss[:m]), np.asarray(plain.loss[:m]), rtol=1e-5)
    assert float(per_update.cost[-1]) > float(per_epoch.cost[-1])  # rates near 0 after a few updates


def test_reduce_on_plateau_follows_the_validation_loss_as_pytorch_does():
    kw = {"factor": 0.5, "patience": 1, "threshold": 0.05}
    hist = fit(
        MLP, DATA, O.sgd(1.0), epochs=10, batch_size=64, key=KEY, schedule=S.reduce_on_plateau(1.0, **kw)
    )
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", threshold_mode="rel", **kw)
    lrs = []
    for val_loss in np.asarray(hist.val_loss, np.float64):
        lrs.append(opt.param_groups[0]["lr"])  # the rate epoch e trained with
        ref.step(val_loss)
    np.testing.assert_allclose(np.asarray(hist.lr), lrs, rtol=1e-6)
    assert lrs[-1] < lrs[0]


# ---- sampling orders, keys, vmap ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ll.sampling.ORDERS)
def test_every_sampling_order_trains_and_the_same_key_gives_the_same_history(order):
    opt = O.sgd(0.1)
    a, b = digits_run(opt, sampling=order), digits_run(opt, sampling=order)
    assert_same_history(a, b, rtol=0, atol=0)
    other = digits_run(opt, sampling=order, key=jax.random.key(1))
    assert not np.allclose(np.asarray(a.loss), np.asarray(other.loss))
    assert float(a.cost[-1]) < float(a.loss[0]) and int(a.diverged_at) == -1
    if order == "sorted":  # no randomness in the order: the same weights give the same run, whatever the key
        same_start = digits_run(opt, sampling=order, key=jax.random.key(1), params0=a.params)
        again = digits_run(opt, sampling=order, key=jax.random.key(2), params0=a.params)
        assert_same_history(same_start, again, rtol=0, atol=0)


def test_sweep_equals_separate_fits():
    lrs, seeds = [0.03, 0.1, 0.3], [0, 1]
    hist = sweep(MLP, DATA, O.sgd, lrs, seeds, epochs=2, batch_size=64, reg=1e-3)
    assert hist.cost.shape == (3, 2, 2) and hist.loss.shape == (3, 2, 46)
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(seeds):
            one = digits_run(O.sgd(lr), key=jax.random.key(seed), reg=1e-3)
            assert_same_history(jax.tree.map(lambda a, i=i, j=j: a[i, j], hist), one, rtol=1e-5, atol=1e-6)


def test_fit_works_under_vmap_over_rate_regularisation_and_key():
    # the full-batch logistic-regression configuration of the L-BFGS test below (a small compile)
    lrs, regs = jnp.array([0.03, 0.1]), jnp.array([1e-3, 0.0])
    keys = jax.random.split(jax.random.key(3), 2)
    run = lambda lr, reg, key: fit(LINEAR, LOGISTIC, O.sgd(lr), reg=reg, key=key, **FULL_BATCH)
    hist = jax.vmap(run)(lrs, regs, keys)
    assert hist.cost.shape == (2, 30)
    for i in range(2):
        one = fit(LINEAR, LOGISTIC, O.sgd(float(lrs[i])), reg=float(regs[i]), key=keys[i], **FULL_BATCH)
        assert_same_history(jax.tree.map(lambda a, i=i: a[i], hist), one, rtol=1e-5, atol=1e-6)


def test_changing_hyperparameters_seed_or_schedule_parameters_or_unit_never_recompiles(count_compiles):
    digits_run(O.momentum(0.1, beta=0.9), reg=1e-3)
    digits_run(O.momentum(0.1, beta=0.9), schedule=S.exponential(0.1, 0.9))
    opt, key, sched = O.momentum(0.02, beta=0.5), jax.random.key(7), S.exponential(0.3, 0.5)  # prepared first
    with count_compiles() as c:
        digits_run(opt, reg=0.1, key=key)
        digits_run(opt, reg=0.0)
        hist = digits_run(opt, schedule=sched, key=key)
        per_epoch = digits_run(opt, schedule=sched, schedule_unit="epoch")
    assert c.count == 0
    np.testing.assert_allclose(np.asarray(hist.lr), [sched(22), sched(45)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(per_epoch.lr), [sched(0), sched(1)], rtol=1e-6)


# ---- second order on data -------------------------------------------------------------------------------


def test_full_batch_lbfgs_beats_the_best_gradient_descent_in_30_iterations():
    kw = {**FULL_BATCH, "key": KEY, "reg": 1e-3}
    hist = fit(LINEAR, LOGISTIC, O.lbfgs(), return_state=True, **kw)
    gd = [float(fit(LINEAR, LOGISTIC, O.sgd(lr), **kw).cost[-1]) for lr in (0.01, 0.03, 0.1, 0.3, 1.0)]
    assert int(np.nanargmin(gd)) not in (0, 4)  # the best rate is inside the grid
    assert float(hist.cost[-1]) < 0.75 * np.nanmin(gd)
    assert int(hist.state.n_pairs) > 0 and int(hist.diverged_at) == -1


def test_minibatch_lbfgs_curvature_pairs_naive_versus_same_batch():
    # papers.md §6: y from different batches often has s^T y <= 0; on the same (convex) batch loss never
    kw = {"epochs": 5, "batch_size": 32, "key": KEY, "reg": 1e-3, "return_state": True}
    naive = fit(LINEAR, LOGISTIC, O.lbfgs(0.05, curvature="consecutive", line_search=False), **kw).state
    same = fit(LINEAR, LOGISTIC, O.lbfgs(0.05, curvature="same_batch", line_search=False), **kw).state
    assert int(naive.n_pairs) > 50 and int(naive.n_bad_pairs) / int(naive.n_pairs) > 0.1
    assert int(same.n_pairs) == 80 and int(same.n_bad_pairs) == 0


# ---- argument errors ------------------------------------------------------------------------------------

BAD = [
    ({"epochs": 0}, ValueError, "epochs must be a positive integer, got epochs=0"),
    ({"epochs": 2.5}, TypeError, "epochs must be a positive integer, got epochs=2.5"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got batch_size=0"),
    (
        {"batch_size": 1438},
        ValueError,
        "batch_size must be at most the number of training samples n=1437, got",
    ),
    (
        {"sampling": "random"},
        ValueError,
        r"sampling must be one of \('reshuffle', .*\), got sampling='random'",
    ),
    ({"key": None}, ValueError, r"key is required: pass key=jax.random.key\(seed\)"),
    ({"key": 0}, TypeError, r"key must be a JAX PRNG key such as jax.random.key\(0\), got key=0"),
    ({"reg": -1.0}, ValueError, "reg must be non-negative and finite, got reg=-1.0"),
    ({"reg": float("nan")}, ValueError, "reg must be non-negative and finite, got reg=nan"),
    ({"opt": 0.1}, TypeError, "opt must be an optimizer from ll.optimizers, got opt=0.1"),
    (
        {"schedule": lambda t: 0.1},
        TypeError,
        "schedule must be a schedule from ll.schedules, got schedule=<func",
    ),
    (
        {"schedule_unit": "step"},
        ValueError,
        "schedule_unit must be 'update' or 'epoch', got schedule_unit='step'",
    ),
    (
        {"loss": "hinge"},
        ValueError,
        r"loss must be one of \('cross_entropy', 'squared_error'\), got loss='hinge'",
    ),
    ({"return_state": 1}, TypeError, "return_state must be True or False, got return_state=1"),
    (
        {"params0": [{"W": np.zeros((64, 50))}]},
        ValueError,
        "params0 must have the structure and shapes of model",
    ),
    (
        {"model": lambda x: x},
        TypeError,
        r"model must be a model from ll.models \(mlp, linear\), got model=<f",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD, ids=[next(iter(k)) for k, _, _ in BAD])
def test_bad_arguments_of_fit(kwargs, error, match):
    args = {"model": MLP, "opt": O.sgd(0.1), "epochs": 2, "batch_size": 64, "key": KEY, **kwargs}
    model, opt = args.pop("model"), args.pop("opt")
    with pytest.raises(error, match=match):
        fit(model, DATA, opt, **args)


BAD_SWEEP = [
    (
        {"make_opt": 0.1},
        TypeError,
        "make_opt must be a function lr -> optimizer, e.g. ll.optimizers.sgd, got",
    ),
    (
        {"lrs": []},
        ValueError,
        r"lrs must be a non-empty 1-D sequence of positive finite numbers, got lrs=\[\]",
    ),
    ({"lrs": [0.1, -1.0]}, ValueError, "lrs must be a non-empty 1-D sequence of positive finite numbers"),
    (
        {"seeds": [0.5]},
        ValueError,
        r"seeds must be a non-empty 1-D sequence of non-negative integers, got seeds",
    ),
    ({"key": KEY}, TypeError, "sweep builds key itself from lrs and seeds; do not pass key="),
    ({"epochs": None}, TypeError, "epochs must be a positive integer, got epochs=None"),
    ({"momentum": 0.9}, TypeError, "got an unexpected keyword argument 'momentum'"),
    ({"make_opt": lambda lr: lr}, TypeError, "opt must be an optimizer from ll.optimizers, got opt="),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"), BAD_SWEEP, ids=[next(iter(k)) for k, _, _ in BAD_SWEEP]
)
def test_bad_arguments_of_sweep(kwargs, error, match):
    args = {"make_opt": O.sgd, "lrs": [0.1], "seeds": [0], "epochs": 2, "batch_size": 64, **kwargs}
    with pytest.raises(error, match=match):
        sweep(MLP, DATA, args.pop("make_opt"), args.pop("lrs"), args.pop("seeds"), **args)


def test_plan_splits_fit_into_start_and_run_with_the_same_numbers():
    d = ll.data.digits(seed=0)
    model = ll.models.mlp([64, 16, 10])
    kwargs = dict(epochs=2, batch_size=128, reg=1e-3)
    start, run = ll.training.plan(model, d, **kwargs)
    key = jax.random.key(5)
    opt = ll.optimizers.momentum(0.05, beta=0.9)
    ref = ll.training.fit(model, d, opt, key=key, **kwargs)
    got = run(opt, *start(key))
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got), strict=True):
        np.testing.assert_array_equal(a, b)
    # vmapped over two seeds' starts: each row equals its own fit
    starts = [start(jax.random.key(s)) for s in (1, 2)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *starts)
    both = jax.vmap(lambda p, i, m: run(opt, p, i, m))(*stacked)
    for row, s in enumerate((1, 2)):
        one = ll.training.fit(model, d, opt, key=jax.random.key(s), **kwargs)
        np.testing.assert_allclose(both.cost[row], one.cost, rtol=1e-5)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        ll.training.plan(model, d, epochs=1, batch_size=10**6)


def test_models_differing_only_in_init_scale_share_the_compiled_start_and_run(count_compiles):
    kwargs = dict(epochs=1, batch_size=256)
    cs231n = ll.models.mlp([64, 12, 10], init_scale=0.01)
    first = fit(cs231n, DATA, O.sgd(0.1), key=KEY, **kwargs)
    k_init = split_key(KEY)[0]
    with count_compiles() as c:
        tiny = fit(ll.models.mlp([64, 12, 10], init_scale=1e-4), DATA, O.sgd(0.1), key=KEY, **kwargs)
        p0 = cs231n.init(k_init)  # the weights fit drew, eagerly: the same compiled init
    assert c.count == 0
    start, _ = ll.training.plan(cs231n, DATA, **kwargs)
    for a, b in zip(jax.tree.leaves(start(KEY)[0]), jax.tree.leaves(p0), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(first.loss[0]) != float(tiny.loss[0])  # the scale is used: 1e-4 starts nearer ln 10
    assert abs(float(tiny.loss[0]) - np.log(10)) < abs(float(first.loss[0]) - np.log(10))


# ---- the native loop ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes, activation, loss",
    [((64, 50, 10), "relu", "cross_entropy"), ((5, 7, 6, 3), "tanh", "cross_entropy"),
     ((5, 4, 2), "sigmoid", "squared_error"), ((5, 1), "relu", "squared_error")],
)  # fmt: skip
def test_the_native_step_gradient_equals_autodiff_of_the_batch_objective(sizes, activation, loss):
    # fit's single-run loop differentiates the MLP by hand (feature-major, for XLA:CPU's loop code generator);
    # the objective and its gradient must be those of J, the masked batch mean plus reg * R(W), by jax.grad
    model = ll.models.mlp(list(sizes), activation=activation)
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    params = model.init(k1)
    b = 16
    xb = jax.random.normal(k2, (b, sizes[0]))
    if loss == "cross_entropy":
        yb = jax.random.randint(k3, (b,), 0, sizes[-1])
    else:
        yb = jax.random.normal(k3, (b, sizes[-1]) if sizes[-1] > 1 else (b,))
    mask = jnp.arange(b) < 11  # a partial last batch: 5 padding rows
    reg = jnp.float32(0.03)

    def J(p):
        per = ll.models.LOSSES[loss](model.apply(p, xb), yb)
        return jnp.sum(jnp.where(mask, per, 0.0)) / jnp.sum(mask) + reg * ll.models.l2(p)

    value, grad = jax.jit(lambda p: ll.training._native_value_and_grad(model, loss, p, xb, yb, mask, reg))(
        params
    )
    ref_value, ref_grad = jax.value_and_grad(J)(params)
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-6)
    for a, r in zip(jax.tree.leaves(grad), jax.tree.leaves(ref_grad), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("opt", [O.momentum(0.1, beta=0.9), O.adam(0.003)], ids=["momentum", "adam"])
def test_a_single_run_equals_the_same_run_under_vmap(opt):
    # one run called directly trains in the native loop; under vmap (sweep, panels) the default compilation
    # runs: the two must agree, also with a regulariser, a schedule and divergence bookkeeping
    kw = {"reg": 1e-3, "schedule": S.exponential(0.1, 0.7), "epochs": 2, "batch_size": 64}
    alone = fit(MLP, DATA, opt, key=KEY, **kw)
    batched = jax.vmap(lambda k: fit(MLP, DATA, opt, key=k, **kw))(jnp.stack([KEY]))
    assert_same_history(alone, jax.tree.map(lambda a: a[0], batched), rtol=1e-5, atol=1e-6)


def test_the_native_training_loop_compiles_into_one_native_function():
    # the whole single-run loop must be one kernel (XLA:CPU's small-while-loop pass, xla_cpu_small_call): a
    # library product or scatter in the step would send it back to op-by-op dispatch, 2x slower
    start, _ = ll.training.plan(MLP, DATA, epochs=2, batch_size=64)
    params, idx, mask = start(KEY)
    hlo = ll.training._train_native.lower(
        MLP, params, idx, mask, DATA.x_train, DATA.y_train, O.momentum(0.1, beta=0.9), None, np.float32(0),
        np.bool_(False), loss_name="cross_entropy", return_state=False,
    ).compile().as_text()  # fmt: skip
    assert 'xla_cpu_small_call="true"' in hlo
    entry = hlo[hlo.index("\nENTRY") :]
    assert "while(" not in entry.split("\n}")[0]  # the epoch loop itself sits inside the call
    assert "__ynn_fusion" not in hlo and "custom-call" not in hlo and "scatter(" not in hlo


def test_runs_of_several_seeds_in_one_loop_equal_vmap_of_the_single_run():
    # plan(runs=True) steps seeds that share the optimizer in one native loop (ScheduleTrainer's seeds); it
    # must give what vmap of the plain run over the stacked starts gives, divergence bookkeeping included
    starts = None
    for opt, sched in ((O.momentum(0.1, beta=0.9), S.exponential(0.1, 0.7)), (O.sgd(30.0), None)):
        kw = {"epochs": 2, "batch_size": 64, "schedule": sched, "reg": 1e-3}
        start, run = ll.training.plan(MLP, DATA, **kw)
        _, run_runs = ll.training.plan(MLP, DATA, runs=True, **kw)
        starts = jax.tree.map(lambda *a: jnp.stack(a), *(start(jax.random.key(s)) for s in (0, 1, 2)))
        together = run_runs(opt, *starts)
        alone = jax.vmap(lambda p, i, m, run=run, opt=opt: run(opt, p, i, m))(*starts)
        if sched is not None:
            assert_same_history(together, alone, rtol=1e-5, atol=1e-6)
    # the second: every seed diverges (the exploding updates amplify rounding, so compare the bookkeeping)
    assert (np.asarray(together.diverged_at) >= 0).all()
    np.testing.assert_array_equal(np.asarray(together.diverged_at), np.asarray(alone.diverged_at))
    for name in ("loss", "cost", "val_acc", "lr"):
        a, b = np.asarray(getattr(together, name)), np.asarray(getattr(alone, name))
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
    hlo = ll.training._train_native_runs.lower(
        MLP, *starts, DATA.x_train, DATA.y_train, O.sgd(0.1), None, np.float32(0), np.bool_(False),
        loss_name="cross_entropy", return_state=False,
    ).compile().as_text()  # fmt: skip
    assert 'xla_cpu_small_call="true"' in hlo
    with pytest.raises(TypeError, match="runs must be True or False, got runs=1"):
        ll.training.plan(MLP, DATA, epochs=1, batch_size=64, runs=1)


def _group_case():
    """Three seeds, two groups: SGD whose exponential schedule starts at 3,000 (diverges in its first updates)
    and at 0.1 (trains); both schedules one pytree with a leading axis of groups."""
    kw = {"epochs": 2, "batch_size": 64, "reg": 1e-3}
    start, _ = ll.training.plan(MLP, DATA, **kw)
    seeds = [jax.tree.map(np.asarray, start(jax.random.key(s))) for s in (0, 1, 2)]
    starts = jax.tree.map(lambda *a: np.stack(a), *seeds)
    scheds = [S.exponential(3000.0, 0.9), S.exponential(0.1, 0.7)]
    return kw, starts, scheds


def _stacked(trees):
    return jax.tree.map(lambda *a: np.stack([np.asarray(v, np.float32) for v in a]), *trees)


def test_groups_train_side_by_side_on_two_devices_in_one_program_and_equal_each_group_alone(count_compiles):
    # plan(groups=True): each group of seeds its own schedule (the warmup panel: without and with warmup),
    # the groups at once on the two CPU devices lecture_lib sets up, as one program compiled once
    kw, starts, scheds = _group_case()
    assert len(jax.devices("cpu")) == 2
    _, run_groups = ll.training.plan(MLP, DATA, schedule=_stacked(scheds), runs=True, groups=True, **kw)
    pair = jax.tree.map(lambda a: np.broadcast_to(a, (2, *a.shape)), starts)
    with count_compiles() as c:
        together = run_groups(O.sgd(1.0), *pair)
    assert c.count == 1  # one program for both devices, not one per device
    assert together.cost.sharding.device_set == set(jax.devices("cpu")[:2])  # each group on its own device
    assert together.cost.shape == (2, 3, 2) and together.loss.shape == (2, 3, 2 * 23)
    for i, sched in enumerate(scheds):
        _, run_runs = ll.training.plan(MLP, DATA, schedule=sched, runs=True, **kw)
        alone = run_runs(O.sgd(1.0), *starts)
        group = jax.tree.map(lambda a, i=i: np.asarray(a)[i], together)
        np.testing.assert_array_equal(group.diverged_at, np.asarray(alone.diverged_at))
        if i == 0:  # every seed diverges: compare the bookkeeping (exploding updates amplify rounding)
            assert (group.diverged_at >= 0).all() and (group.diverged_at < 10).all()
            for name in ("loss", "cost", "val_acc", "lr"):
                a, b = getattr(group, name), np.asarray(getattr(alone, name))
                np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        else:
            assert (group.diverged_at < 0).all()
            assert_same_history(group, alone, rtol=1e-5, atol=1e-6)
    with count_compiles() as c:  # rates and schedule parameters are data
        again = run_groups(O.sgd(1.0), *pair)
        other = ll.training.plan(MLP, DATA, schedule=_stacked(scheds[::-1]), runs=True, groups=True, **kw)
        swapped = other[1](O.sgd(1.0), *pair)
    assert c.count == 0
    np.testing.assert_array_equal(np.asarray(again.loss), np.asarray(together.loss))
    np.testing.assert_array_equal(np.asarray(swapped.diverged_at)[::-1], np.asarray(together.diverged_at))


def test_groups_beyond_the_devices_train_in_turn_with_the_same_numbers():
    # three groups, two devices: each group's runs=True in turn (also what a GPU or one CPU device gets)
    kw, starts, scheds = _group_case()
    scheds = [*scheds, S.exponential(0.05, 0.9)]
    _, run_groups = ll.training.plan(MLP, DATA, schedule=_stacked(scheds), runs=True, groups=True, **kw)
    together = run_groups(O.sgd(1.0), *jax.tree.map(lambda a: np.broadcast_to(a, (3, *a.shape)), starts))
    assert isinstance(together.cost, np.ndarray) and together.cost.shape == (3, 3, 2)
    for i, sched in enumerate(scheds[1:], 1):
        alone = ll.training.plan(MLP, DATA, schedule=sched, runs=True, **kw)[1](O.sgd(1.0), *starts)
        assert_same_history(jax.tree.map(lambda a, i=i: a[i], together), alone, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="groups=True trains groups of runs: it needs runs=True"):
        ll.training.plan(MLP, DATA, epochs=1, batch_size=64, groups=True)
    with pytest.raises(TypeError, match="groups must be True or False, got groups='yes'"):
        ll.training.plan(MLP, DATA, epochs=1, batch_size=64, runs=True, groups="yes")


def test_an_xla_without_the_native_options_falls_back_to_the_default_compilation(monkeypatch):
    # the native loop's compile options are XLA:CPU debug options a later jaxlib may rename: fit must then
    # train through the default compilation (same numbers), not fail
    def refuse(*args, **kwargs):
        raise jax.errors.JaxRuntimeError(
            "INVALID_ARGUMENT: No such option: xla_cpu_experimental_ynn_fusion_type"
        )

    expected = digits_run(O.momentum(0.1, beta=0.9))
    monkeypatch.setattr(ll.training, "_train_native", refuse)
    monkeypatch.setattr(ll.training, "_NATIVE", {"available": True})
    assert_same_history(digits_run(O.momentum(0.1, beta=0.9)), expected, rtol=1e-5, atol=1e-6)
    assert ll.training._NATIVE["available"] is False
    monkeypatch.setattr(ll.training, "_NATIVE", {"available": True})

    def fail(*args, **kwargs):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    monkeypatch.setattr(ll.training, "_train_native", fail)
    with pytest.raises(jax.errors.JaxRuntimeError, match="RESOURCE_EXHAUSTED"):  # other errors propagate
        digits_run(O.momentum(0.1, beta=0.9))
    assert ll.training._NATIVE["available"] is True


def test_the_native_loop_is_chosen_for_small_updates_only():
    # per update: batch x sum of fan_in * fan_out (x runs); above 2**24 the multi-threaded default is faster
    start, _ = ll.training.plan(MLP, DATA, epochs=1, batch_size=N)
    idx = start(KEY)[1]
    assert ll.training._native_suits(MLP, idx)  # the full digits batch: 1,437 x 3,700
    wide = ll.models.mlp([64, 256, 256, 10])
    idx512 = ll.training.plan(wide, DATA, epochs=1, batch_size=512)[0](KEY)[1]
    assert not ll.training._native_suits(wide, idx512)  # 512 x 84,480
    assert ll.training._native_suits(wide, idx512[..., :64]) and not ll.training._native_suits(MLP, idx, 4)
