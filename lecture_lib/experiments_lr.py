r"""Learning-rate experiments behind the lecture's claims, each a pure function returning arrays.

- :func:`lr_sweep`: too low a rate leaves the cost at ln 10, too high gives nan/inf, a middle range learns.
- :func:`lr_range_test`, :func:`suggest_range`: Smith's (2017) test, one run with a growing rate.
- :func:`linear_scaling`, :func:`scaling_warmup`: Goyal et al. (2017), batch ×k with rate ×k.
- :func:`batch_increase`: Smith et al. (2018), grow the batch instead of decaying the rate.
- :func:`wilson`: Wilson et al. (2017), adaptive methods generalise worse than GD on a constructed problem.
- :func:`minibatch_lbfgs`: naive minibatch L-BFGS pairs often have :math:`s^\top y \le 0`, same-batch never.

The least-squares runs (a :class:`LeastSquares` problem of ``data.linear_regression``) use a small SGD loop
of their own, a ``lax.scan`` over ``sampling`` batches, because they continue from given weights and measure
the exact gap :math:`F(w)-F^\star = \tfrac12 (w-w^\star)^\top H (w-w^\star)`. Seeds are ints; results are
NumPy arrays. Expected numbers and tolerances: ``shared/research/papers.md`` §1, §2, §6, §7, §8.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, models, optimizers, sampling, schedules, training
from lecture_lib.trajectories import run_many

_HI = jax.lax.Precision.HIGHEST
REGIMES = ("too low", "in between", "learns", "diverges")
METHODS = ("GD", "AdaGrad", "RMSProp", "Adam")
VARIANTS = ("naive", "same_batch")


class LeastSquares(NamedTuple):
    """The arguments of ``data.linear_regression`` (eigenvalues of H log-spaced from 1 to ``condition``)."""

    n: int = 4096
    d: int = 20
    condition: float = 1.15  # 2/L = 1.74, the spectrum of papers.md's Gaussian prototype
    noise: float = 0.5


class Logistic(NamedTuple):
    """The arguments of ``data.logistic_regression`` and the ℓ2 weight λ of ½λ‖w‖²."""

    n: int = 4000
    d: int = 50
    condition: float = 100.0  # ill-conditioned features
    lam: float = 1e-3


RANGE_LSQ = LeastSquares(condition=4.0, noise=0.1)  # 2/L = 0.5, close to papers.md's 0.485
GOYAL_LSQ = LeastSquares()
SMITH_LSQ = LeastSquares(n=4000)
LBFGS_LOGISTIC = Logistic()


def _pint(name, value):
    return _checks.positive_int(name, value, array=False)


def _rates(name, values) -> np.ndarray:
    a = np.asarray(values, np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of positive finite rates, got {name}={values!r}"
        )
    return a


def _keys(seed, seeds):
    return jax.random.split(jax.random.key(int(_checks.nonnegative_int("seed", seed))), _pint("seeds", seeds))


def _stacked(factory, keys):
    # one compiled generator called per key: vmapping it would compile a batched copy (about 3 s) every call
    return jax.tree.map(lambda *a: jnp.stack(a), *(factory(k) for k in keys))


def _fold(keys, salt):
    return jax.vmap(jax.random.fold_in, (0, None))(keys, salt)


# ---- 1. the learning-rate sweep of the slides (two-layer net on digits) ------------------------------------


class LRSweep(NamedTuple):
    lrs: np.ndarray  # (k,)
    initial_loss: np.ndarray  # (k, seeds) first batch loss (ln 10 = 2.302585 with small weights)
    cost: np.ndarray  # (k, seeds, epochs) cost after each epoch (nan/inf once diverged)
    val_acc: np.ndarray  # (k, seeds) final validation accuracy
    diverged: np.ndarray  # (k, seeds) a non-finite batch loss was met
    regime: np.ndarray  # (k,) index into REGIMES
    usable: tuple  # (lowest, highest) rate at which every seed learns; nan if none


def lr_sweep(lrs=None, *, seeds=3, epochs=10, batch_size=64, init_scale=1e-4, seed=0) -> LRSweep:
    r"""SGD on the 64-50-10 net (digits, weights ``init_scale``·randn) over a log grid of rates, vmapped.

    Claim (slides, cs231n; papers.md §8): a too-low rate barely moves the cost from :math:`\ln 10` (≥ 0.99
    ln 10 for every seed: "too low"), a too-high one gives nan/inf ("diverges"), a middle range learns (cost
    ≤ ½ ln 10 for every seed); the regimes are ordered by rate. ``usable``: where every seed learns.
    """
    lrs = _rates("lrs", 10.0 ** np.arange(-6.0, 6.5, 0.5) if lrs is None else lrs)
    keys, d = _keys(seed, seeds), data.digits(seed=0)
    model = models.mlp([64, 50, 10], init_scale=init_scale)

    def one(eta, key):
        h = training.fit(model, d, optimizers.sgd(eta), epochs=epochs, batch_size=batch_size, key=key)
        return h.loss[0], h.cost, h.val_acc[-1], h.diverged_at >= 0

    sweep = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    loss0, cost, acc, div = (np.asarray(a) for a in sweep(jnp.asarray(lrs, jnp.float32), keys))
    final, ln10 = np.where(div, np.inf, cost[..., -1].astype(np.float64)), math.log(10)
    masks = [div.any(1), (final >= 0.99 * ln10).all(1), (final <= 0.5 * ln10).all(1)]
    regime = np.select(masks, [3, 0, 2], default=1)
    ok = lrs[regime == 2]
    usable = (float(ok.min()), float(ok.max())) if ok.size else (math.nan, math.nan)
    return LRSweep(lrs, loss0, cost, acc, div, regime, usable)


# ---- least-squares SGD: the loop behind the range test, linear scaling and batch increase ------------------


def _gap(d, w):
    e = w - d.w_opt
    return 0.5 * jnp.dot(e, jnp.matmul(d.H, e, precision=_HI), precision=_HI)


def _sgd(d, w0, eta, idx, mask):
    """SGD on ½·mean (xw − y)² over batches ``idx`` (T, m, b); gap and loss after each of the T blocks."""

    def step(w, inputs):
        i, keep, eta_t = inputs
        xb = d.x_train[i]
        r = jnp.where(keep, jnp.matmul(xb, w, precision=_HI) - d.y_train[i], 0.0)
        return w - eta_t * jnp.matmul(r, xb, precision=_HI) / jnp.sum(keep), None

    def block(w, inputs):
        w, _ = jax.lax.scan(step, w, inputs)
        return w, (_gap(d, w), d.loss(w))

    return jax.lax.scan(block, w0, (idx, mask, eta))


@functools.partial(jax.jit, static_argnames=("b", "epochs"))
def _sgd_epochs(d, w0, eta, key, *, b, epochs):
    idx, mask = sampling._batches(key, d.n, b, epochs, "reshuffle")
    w, (gap, _) = _sgd(d, w0, jnp.broadcast_to(eta, idx.shape[:2]), idx, mask)
    return w, gap


def _sgd_seeds(ds, w0, eta, keys, *, b, epochs):
    """Every seed's problem, weights and sample order at once; ``eta`` a Python float shared by all."""
    return jax.vmap(functools.partial(_sgd_epochs, b=b, epochs=epochs), (0, 0, None, 0))(ds, w0, eta, keys)


def _problems(problem, keys):
    n, d, condition, noise = problem
    return _stacked(lambda k: data.linear_regression(n, d, k, condition=condition, noise=noise), keys)


# ---- 2. Smith's learning-rate range test -------------------------------------------------------------------


class RangeTest(NamedTuple):
    lr: np.ndarray  # (steps,) rate of each update, growing geometrically
    loss: np.ndarray  # (seeds, steps) full training loss after each update
    lr_min_loss: float  # rate at the minimum of the seed-mean loss
    lr_blowup: float  # first rate after it where the mean loss exceeds 4x its minimum (nan if none)
    per_seed: np.ndarray  # (seeds, 2) the same two rates for each seed's curve
    two_over_L: float  # the full-batch stability limit 2/L


def suggest_range(lr, loss, factor=4.0):
    """``(lr at the loss minimum, first lr after it with loss > factor × minimum or non-finite)``."""
    lr, loss = np.asarray(lr, np.float64), np.asarray(loss, np.float64)
    if lr.ndim != 1 or lr.shape != loss.shape:
        raise ValueError(f"lr and loss must be 1-D of equal length, got shapes {lr.shape} and {loss.shape}")
    factor = float(_checks.real("factor", factor, lo=1.0, lo_open=True, rule="be finite and above 1"))
    loss = np.where(np.isfinite(loss), loss, np.inf)
    i = int(np.argmin(loss))
    after = (np.arange(lr.size) > i) & (loss > factor * loss[i])
    return float(lr[i]), float(lr[np.argmax(after)]) if after.any() else math.nan


@functools.partial(jax.jit, static_argnames=("b", "steps"))
def _range_run(d, sched, key, *, b, steps):
    idx, mask = sampling._batches(key, d.n, b, -(-steps * b // d.n), "reshuffle")
    idx, mask = (a.reshape(-1, 1, b)[:steps] for a in (idx, mask))  # one update per recorded block
    eta = sched(jnp.arange(steps))
    return eta, _sgd(d, jnp.zeros(d.x_train.shape[1]), eta[:, None], idx, mask)[1][1]


def lr_range_test(
    *, batch_size=32, lr_start=1e-4, lr_end=10.0, steps=400, seeds=5, seed=0, problem=RANGE_LSQ
) -> RangeTest:
    r"""Smith (2017): SGD from w = 0 with :math:`\eta_t = \eta_0\gamma^t` (``schedules.exponential``, γ > 1)
    from ``lr_start`` to ``lr_end`` in ``steps`` updates, on least squares with known L (2/L = 0.5 here).

    Claim (papers.md §7, B ≤ 256): the loss minimum lies at 0.1–1 × 2/L and the loss blows up (> 4× its
    minimum) at 0.8–2 × 2/L: the test finds the stability limit without knowing L.
    """
    lr_start = float(_checks.positive("lr_start", lr_start))
    lr_end = float(_checks.positive("lr_end", lr_end))
    if lr_end <= lr_start:
        raise ValueError(f"lr_end must exceed lr_start, got lr_start={lr_start!r}, lr_end={lr_end!r}")
    steps, b = _pint("steps", steps), _pint("batch_size", batch_size)
    if steps < 2 or b > problem.n:
        raise ValueError(f"need steps ≥ 2 and batch_size ≤ n={problem.n}, got steps={steps}, batch_size={b}")
    sched = schedules.exponential(lr_start, (lr_end / lr_start) ** (1 / (steps - 1)))
    keys = _keys(seed, seeds)
    ds = _problems(problem, keys)
    run = jax.vmap(functools.partial(_range_run, b=b, steps=steps), (0, None, 0))
    eta, loss = run(ds, sched, _fold(keys, 1))
    eta, loss = np.asarray(eta[0], np.float64), np.asarray(loss, np.float64)
    per_seed = np.array([suggest_range(eta, curve) for curve in loss])
    two_over_L = 2 / float(ds.eigenvalues[:, -1].max())
    return RangeTest(eta, loss, *suggest_range(eta, loss.mean(0)), per_seed, two_over_L)


# ---- 3. Goyal et al.: the linear scaling rule and gradual warmup -------------------------------------------


class LinearScaling(NamedTuple):
    k: np.ndarray  # (K,) batch and rate multipliers
    gap: np.ndarray  # (K, seeds, epochs) F(w) - F* after each epoch
    gap0: np.ndarray  # (seeds,) F(0) - F*
    diverged: np.ndarray  # (K, seeds) final gap non-finite or above gap0
    two_over_L: float


def linear_scaling(
    ks=(1, 4, 16, 64, 256, 512), *, lr=0.005, batch_size=8, epochs=10, seeds=3, seed=0, problem=GOYAL_LSQ
) -> LinearScaling:
    r"""Goyal et al. (2017): SGD with batch :math:`kB` and rate :math:`k\eta` for each k, same epochs, from 0.

    Claim (papers.md §2): for k ≤ 16 the gap after 5 and 10 epochs is within 20% of k = 1 (k steps of B at
    η ≈ one step of kB at kη); the rule degrades for larger k and diverges once kη > 2/L (k = 512 here).
    """
    ks = np.asarray(ks)
    if ks.ndim != 1 or ks.size == 0 or ks.dtype.kind not in "iu" or np.any(ks <= 0):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got ks={ks!r}")
    b, epochs = _pint("batch_size", batch_size), _pint("epochs", epochs)
    eta = float(_checks.positive("lr", lr))
    if ks.max() * b > problem.n:
        raise ValueError(f"max(ks) × batch_size must be at most n={problem.n}, got {ks.max()} × {b}")
    keys = _keys(seed, seeds)
    ds, w0 = _problems(problem, keys), jnp.zeros((len(keys), problem.d))
    runs = [_sgd_seeds(ds, w0, float(k * eta), _fold(keys, 1), b=int(k) * b, epochs=epochs)[1] for k in ks]
    gap, gap0 = np.asarray(runs, np.float64), np.asarray(jax.vmap(_gap)(ds, w0), np.float64)
    diverged = ~np.isfinite(gap[..., -1]) | (gap[..., -1] > gap0)
    return LinearScaling(ks, gap, gap0, diverged, 2 / float(ds.eigenvalues[:, -1].max()))


def scaling_warmup(lr, k, updates_per_epoch, warmup_epochs=5) -> schedules.Warmup:
    r"""Goyal et al.'s gradual warmup for the linear scaling rule: :math:`\eta` at update 0, rising by a
    constant amount each update to :math:`k\eta` after ``warmup_epochs`` epochs, then :math:`k\eta`."""
    eta, k = float(_checks.positive("lr", lr)), _pint("k", k)
    steps = _pint("updates_per_epoch", updates_per_epoch) * _pint("warmup_epochs", warmup_epochs)
    return schedules.warmup(schedules.constant(k * eta), steps, start=eta)


# ---- 4. Smith et al. (2018): increase the batch size instead of decaying the rate --------------------------


class BatchIncrease(NamedTuple):
    gap: np.ndarray  # (2, seeds, phases) gap at each phase end: [0] rate decay, [1] batch increase
    updates: np.ndarray  # (2,) total updates of each plan
    ratio: np.ndarray  # (phases,) mean gap of the batch plan / mean gap of the decay plan
    lrs: np.ndarray  # (2, phases) rate of each phase
    batch_sizes: np.ndarray  # (2, phases)


def batch_increase(
    *, lr=0.04, batch_size=16, factor=5, phases=3, epochs_per_phase=10, seeds=5, seed=0, problem=SMITH_LSQ
) -> BatchIncrease:
    r"""Smith, Kindermans, Ying & Le (2018) on least squares: (a) batch B, rate divided by ``factor`` at
    each phase; (b) rate fixed, batch multiplied by ``factor``. Each phase continues from the last weights.

    Claim (papers.md §7): both reach the same gap per epoch, ratio (b)/(a) in [0.8, 1.25] at each phase
    end, with (b) using at most half the updates (the noise scale ηN/B falls the same way in both).
    """
    eta, b = float(_checks.positive("lr", lr)), _pint("batch_size", batch_size)
    factor = _pint("factor", factor)
    phases, epochs = _pint("phases", phases), _pint("epochs_per_phase", epochs_per_phase)
    if b * factor ** (phases - 1) > problem.n:
        raise ValueError(f"the last batch size batch_size·factor^(phases-1) must be at most n={problem.n}")
    lrs = np.array([[eta / factor**p for p in range(phases)], [eta] * phases])
    bs = np.array([[b] * phases, [b * factor**p for p in range(phases)]])
    keys = _keys(seed, seeds)
    ds, gap = _problems(problem, keys), np.zeros((2, len(keys), phases))
    for plan in range(2):
        w = jnp.zeros((len(keys), problem.d))
        for p in range(phases):  # each phase is new shapes: a separate compiled loop, continuing from w
            eta_p, b_p = float(lrs[plan, p]), int(bs[plan, p])
            w, g = _sgd_seeds(ds, w, eta_p, _fold(keys, 1 + p), b=b_p, epochs=epochs)
            gap[plan, :, p] = np.asarray(g[:, -1], np.float64)
    updates = (epochs * -(-problem.n // bs)).sum(axis=1)
    return BatchIncrease(gap, updates, gap[1].mean(0) / gap[0].mean(0), lrs, bs)


# ---- 5. Wilson et al. (2017): adaptive methods generalise worse --------------------------------------------


class Wilson(NamedTuple):
    seed: int  # the seed used: the first from ``seed`` on with n+ > n-
    n_pos: int
    n_neg: int
    test_error: np.ndarray  # (4,) per METHODS
    neg_fraction: float  # fraction of negatives in the test set
    rel_dist_min_norm: np.ndarray  # (4,) ||w - w_mn|| / ||w_mn||
    cos_sign: np.ndarray  # (4,) cos(w, sign(X^T y))
    margin_error: float  # max |x·w_mn − closed form| over test points (float64)


def wilson(*, n=40, n_test=400, p=0.6, steps=3000, lrs=(None, 0.1, 1e-3, 1e-3), seed=0) -> Wilson:
    r"""Full-batch GD, AdaGrad, RMSProp and Adam from 0 on ½‖Xw − y‖² (:func:`data.wilson2017`), float32.

    Claim (papers.md §1): GD reaches the minimum-norm interpolant (test error 0); the adaptive methods reach
    w ∝ sign(Xᵀy) and call every test point positive, so their test error is the fraction of negatives.
    ``lrs`` per METHODS; GD's ``None`` is 1/λ_max(XXᵀ). Seeds with n₊ ≤ n₋ are skipped (the lemma needs
    n₊ > n₋).
    """
    n, n_test, steps = _pint("n", n), _pint("n_test", n_test), _pint("steps", steps)
    if len(lrs) != len(METHODS):
        raise ValueError(f"lrs must give one rate per method of {METHODS} (None for GD: 1/λ_max), got {lrs=}")
    seed = int(_checks.nonnegative_int("seed", seed))
    for s in range(seed, seed + 100):
        ds = data.wilson2017(n, p, jax.random.key(s), n_test=n_test)
        y = np.asarray(ds.y_train, np.float64)
        if (y > 0).sum() > (y < 0).sum():
            break
    else:
        raise ValueError(f"no seed in [{seed}, {seed + 100}) gives n+ > n-; raise p, got p={p!r}")
    x, xt, yt = (np.asarray(a, np.float64) for a in (ds.x_train, ds.x_val, ds.y_val))
    lrs = (1 / np.linalg.eigvalsh(x @ x.T)[-1] if lrs[0] is None else lrs[0], *lrs[1:])
    factories = (optimizers.sgd, optimizers.adagrad, optimizers.rmsprop, optimizers.adam)
    X, Y = ds.x_train, ds.y_train

    def f(w):
        return 0.5 * jnp.sum((jnp.matmul(X, w, precision=_HI) - Y) ** 2)

    trajs = run_many([make(eta) for make, eta in zip(factories, lrs)], f, jnp.zeros(x.shape[1]), steps)
    w = np.stack([np.asarray(t.params[-1], np.float64) for t in trajs])
    w_mn, sign = data.wilson2017_min_norm(x, y), np.sign(x.T @ y)
    n_pos, n_neg = int((y > 0).sum()), int((y < 0).sum())
    dual = data.wilson2017_dual(n_pos, n_neg)
    margin_error = np.abs(xt @ w_mn - np.where(yt > 0, dual["margin_pos"], dual["margin_neg"])).max()
    test_error = np.mean(np.sign(w @ xt.T) != yt, axis=1)
    rel = np.linalg.norm(w - w_mn, axis=1) / np.linalg.norm(w_mn)
    cos = w @ sign / (np.linalg.norm(w, axis=1) * np.linalg.norm(sign))
    return Wilson(s, n_pos, n_neg, test_error, float(np.mean(yt < 0)), rel, cos, float(margin_error))


# ---- 6. L-BFGS with minibatch gradients --------------------------------------------------------------------


class MinibatchLBFGS(NamedTuple):
    lrs: np.ndarray  # (k,)
    bad_share: np.ndarray  # (2, k, seeds) share of curvature pairs with s^T y <= 0, per VARIANTS
    gap: np.ndarray  # (2, k, seeds) final F(w) - F* (F* in float64; inf/nan if the run blew up)
    full_iters: (
        np.ndarray
    )  # (2, seeds) full batch, L-BFGS and GD: first iteration with gap <= tol, -1 if none


def _logistic(x, y, lam, keep=None):
    def F(w):
        z = jnp.matmul(x, w, precision=_HI)
        losses = jax.nn.softplus(z) - y * z
        mean = jnp.mean(losses) if keep is None else jnp.sum(jnp.where(keep, losses, 0.0)) / jnp.sum(keep)
        return mean + 0.5 * lam * jnp.sum(w * w)

    return F


def _logistic_optimum(x, y, lam) -> float:
    """F* by Newton's method in float64 NumPy (an independent reference)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(50):
        q = 0.5 * (1 + np.tanh(0.5 * (x @ w)))  # the sigmoid, without overflow
        g = x.T @ (q - y) / len(y) + lam * w
        if np.linalg.norm(g) < 1e-12:
            break
        w = w - np.linalg.solve((x.T * (q * (1 - q))) @ x / len(y) + lam * np.eye(w.size), g)
    z = x @ w
    return float(np.mean(np.logaddexp(0, z) - y * z) + 0.5 * lam * w @ w)


@functools.partial(jax.jit, static_argnames=("b", "epochs"))
def _lbfgs_minibatch(opt, lr, x, y, lam, key, *, b, epochs):
    idx, mask = (a.reshape(-1, b) for a in sampling._batches(key, x.shape[0], b, epochs, "reshuffle"))
    opt = opt.with_lr(lr)

    def step(carry, batch):
        w, state = carry
        J = _logistic(x[batch[0]], y[batch[0]], lam, batch[1])  # the batch objective, for same-batch pairs
        return opt.update(jax.grad(J)(w), state, w, objective=J), None

    w0 = jnp.zeros(x.shape[1])
    (w, state), _ = jax.lax.scan(step, (w0, opt.init(w0)), (idx, mask))
    return _logistic(x, y, lam)(w), state.n_bad_pairs / jnp.maximum(state.n_pairs, 1)


def minibatch_lbfgs(
    lrs=(0.01, 0.05, 0.2), *, batch_size=32, memory=10, epochs=5, seeds=3, full_steps=200, tol=1e-4, seed=0,
    problem=LBFGS_LOGISTIC,
) -> MinibatchLBFGS:  # fmt: skip
    r"""L-BFGS without line search (step ``lr``) on minibatches of ℓ2-regularised logistic regression.

    Claim (papers.md §6; cs231n: "getting L-BFGS to work on mini-batches is more tricky"): with curvature
    pairs from consecutive, *different* batches ("naive") many pairs have :math:`s^\top y \le 0` and the run
    is unstable (median final gap ≥ 5× the same-batch one, or non-finite); with :math:`y` on the *same*
    batch (oLBFGS) no pair has :math:`s^\top y \le 0` (each batch loss is convex). With the full batch,
    L-BFGS with line search reaches ``tol`` in far fewer iterations than gradient descent at rate 1/L.
    """
    lrs, b, epochs = _rates("lrs", lrs), _pint("batch_size", batch_size), _pint("epochs", epochs)
    n, d, condition, lam = problem
    if b > n:
        raise ValueError(f"batch_size must be at most n={n}, got batch_size={b}")
    tol, full_steps = float(_checks.positive("tol", tol)), _pint("full_steps", full_steps)
    lam = float(_checks.nonnegative("lam", lam))
    keys = _keys(seed, seeds)
    ds = _stacked(lambda k: data.logistic_regression(n, d, k, condition=condition), keys)
    x, y = ds.x_train, ds.y_train.astype(jnp.float32)
    f_star = np.array([_logistic_optimum(*a, lam) for a in zip(np.asarray(x), np.asarray(y))])
    run = jax.vmap(functools.partial(_lbfgs_minibatch, b=b, epochs=epochs), (None, None, 0, 0, None, 0))
    run = jax.vmap(run, (None, 0, None, None, None, None))  # over rates, then seeds
    share, gap = np.zeros((2, lrs.size, len(keys))), np.zeros((2, lrs.size, len(keys)))
    for v, curvature in enumerate(("consecutive", "same_batch")):
        opt = optimizers.lbfgs(1.0, memory, curvature=curvature, line_search=False)
        F, share[v] = run(opt, jnp.asarray(lrs, jnp.float32), x, y, lam, _fold(keys, 1))
        gap[v] = np.asarray(F, np.float64) - f_star

    def full_batch(x, y, L):
        opts = (optimizers.lbfgs(), optimizers.sgd(1 / (L + lam)))
        return run_many(opts, _logistic(x, y, lam), jnp.zeros(d), full_steps)

    trajs = jax.vmap(full_batch)(x, y, ds.eigenvalues[:, -1] / 4)  # L of the mean logistic loss, per seed
    reached = np.stack([np.asarray(t.losses, np.float64) - f_star[:, None] <= tol for t in trajs])
    return MinibatchLBFGS(lrs, share, gap, np.where(reached.any(-1), reached.argmax(-1), -1))
