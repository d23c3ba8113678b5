r"""The recap slides' claims, each a pure function returning arrays.

- :func:`wilson`: Wilson et al. (2017), adaptive methods generalise worse than GD on a constructed problem.
- :func:`minibatch_lbfgs`: naive minibatch L-BFGS pairs often have :math:`s^\top y \le 0`, same-batch never.
- :func:`steps_to_tolerance`: on a poorly conditioned quadratic gradient descent needs steps
  :math:`\propto \kappa`, heavy-ball momentum :math:`\propto \sqrt\kappa` (recap slide "Poor conditioning").

Seeds are ints; results are NumPy arrays. Expected numbers and tolerances: ``shared/research/papers.md`` §1,
§6. The L-BFGS runs behind notebook 01's panel, with a traced history size, are in ``experiments_lbfgs``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, optimizers, sampling, surfaces
from lecture_lib.experiments_lr import _HI, _fold, _keys, _pint, _rates, _stacked
from lecture_lib.trajectories import run, run_many

METHODS = ("GD", "AdaGrad", "RMSProp", "Adam")
VARIANTS = ("naive", "same_batch")


class Logistic(NamedTuple):
    """The arguments of ``data.logistic_regression`` and the ℓ2 weight λ of ½λ‖w‖²."""

    n: int = 4000
    d: int = 50
    condition: float = 100.0  # ill-conditioned features
    lam: float = 1e-3


LBFGS_LOGISTIC = Logistic()


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


def logistic_optimum(x, y, lam) -> float:
    """F* of the ℓ2-regularised logistic loss, by Newton's method in float64 NumPy (a reference independent
    of the code under test)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(50):
        q = 0.5 * (1 + np.tanh(0.5 * (x @ w)))  # the sigmoid, without overflow
        g = x.T @ (q - y) / len(y) + lam * w
        if np.linalg.norm(g) < 1e-13:
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
    f_star = np.array([logistic_optimum(*a, lam) for a in zip(np.asarray(x), np.asarray(y))])
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


# ---- Poor conditioning: steps to a tolerance against κ -----------------------------------------------------

CONDITIONING_TOL = 1e-4  # "converged": ‖w_k − w*‖ ≤ tol · ‖w_0 − w*‖
CONDITIONING_STEPS = 20_000  # enough for the best-η gradient descent at κ = 1000 (about 4,600 steps)
QUADRATIC_START = np.asarray(surfaces.SURFACES["quadratic"].start)  # (−4, 3)


def best_parameters(kappa, momentum: bool, lam_min=1.0):
    r"""``(η, β)``: the best fixed GD step, or the optimal heavy ball, for eigenvalues in [λ_min, κλ_min].

    Gradient descent: :math:`\eta = 2/(\lambda_{\min} + \lambda_{\max})`, contracting by
    :math:`(\kappa-1)/(\kappa+1)` a step. Heavy ball (Polyak 1964):
    :math:`\eta = 4/(\sqrt{\lambda_{\max}} + \sqrt{\lambda_{\min}})^2`,
    :math:`\beta = ((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^2`, contracting by
    :math:`(\sqrt\kappa-1)/(\sqrt\kappa+1)`.
    """
    lam_max = kappa * lam_min  # ** 0.5 below: works on floats, arrays and tracers alike
    if momentum:
        root = kappa**0.5
        return 4.0 / (lam_max**0.5 + lam_min**0.5) ** 2, ((root - 1.0) / (root + 1.0)) ** 2
    return 2.0 / (lam_min + lam_max), 0.0 * kappa


def stability_limit(kappa, beta=0.0, lam_min=1.0):
    """Largest stable η: 2(1+β)/λ_max (β = 0: gradient descent's 2/λ_max)."""
    return 2.0 * (1.0 + beta) / (kappa * lam_min)


def _steps_to_tol(params, tol):
    """First k with ‖w_k‖ ≤ tol‖w_0‖ (the minimum is the origin); −1 if never (or diverged)."""
    dist = jnp.sqrt(jnp.sum(params * params, axis=-1))
    hit = dist <= tol * dist[0]
    return jnp.where(jnp.any(hit), jnp.argmax(hit), -1)


@functools.partial(jax.jit, static_argnames=("steps", "shown"))
def quadratic_run(kappa, angle, eta, beta, tol=CONDITIONING_TOL, *, steps=CONDITIONING_STEPS, shown=0):
    """One run of heavy ball (β = 0: gradient descent) on ``quadratic(kappa, angle)`` from its start.

    Gradient descent is ``momentum(eta, beta=0)`` (the same update), so β is data, not code: one compiled run
    serves both. Returns the first ``shown + 1`` iterates, the steps to ``tol`` (−1 if never) and
    ``diverged_at``.
    """
    traj = run(optimizers.momentum(eta, beta), surfaces.quadratic(kappa, angle), QUADRATIC_START, steps)
    return traj.params[: shown + 1], _steps_to_tol(traj.params, tol), traj.diverged_at


_SWEEP_BUCKET = 32


@functools.partial(jax.jit, static_argnames=("steps",))
def _sweep(kappas, angle, tol, momentum, *, steps):
    def one(kappa):
        (eta_gd, _), (eta_hb, beta_hb) = best_parameters(kappa, False), best_parameters(kappa, True)
        eta, beta = jnp.where(momentum, eta_hb, eta_gd), jnp.where(momentum, beta_hb, 0.0)
        return quadratic_run(kappa, angle, eta, beta, tol, steps=steps)[1]

    return jax.vmap(one)(kappas)


def steps_to_tolerance(
    kappas, *, momentum: bool, angle=math.pi / 6, tol=CONDITIONING_TOL, steps=CONDITIONING_STEPS
) -> np.ndarray:
    r"""Steps until ‖w_k − w*‖ ≤ tol‖w_0 − w*‖ on ``quadratic(κ, angle)`` with the best fixed parameters.

    Gradient descent with η = 2/(1+κ), or (``momentum=True``) heavy ball with Polyak's optimal η and β
    (:func:`best_parameters`); one vmapped call over ``kappas``; −1 where the tolerance is not reached within
    ``steps``. Claim (recap slide "Poor conditioning"; Goh, "Why momentum really works", Distill 2017): the
    counts grow :math:`\propto \kappa`, and :math:`\propto \sqrt\kappa` with momentum.
    """
    k = np.asarray(kappas, np.float64)
    if k.ndim != 1 or k.size == 0 or not np.all(np.isfinite(k) & (k >= 1)):
        raise ValueError(f"kappas must be a non-empty 1-D sequence of condition numbers ≥ 1, got {kappas=}")
    tol = float(_checks.real("tol", tol, lo=0.0, hi=1.0, lo_open=True, hi_open=True, rule="be in (0, 1)"))
    steps = _pint("steps", steps)
    # padded with κ = 1 to a multiple of _SWEEP_BUCKET: sweeps of different lengths share one compile
    padded = np.ones(-(-k.size // _SWEEP_BUCKET) * _SWEEP_BUCKET, np.float32)
    padded[: k.size] = k
    result = _sweep(padded, np.float32(angle), np.float32(tol), np.asarray(bool(momentum)), steps=steps)
    return np.asarray(result)[: k.size]
