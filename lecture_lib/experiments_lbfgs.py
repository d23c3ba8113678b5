r"""L-BFGS in full batch vs on minibatches, with a traced history size (recap slide "L-BFGS": "usually works
very well in full batch ... but does not transfer very well to mini-batch setting").

ℓ2-regularised logistic regression (``data.logistic_regression``). :func:`runs` makes three L-BFGS runs:

- full batch, with a backtracking Armijo line search (beside gradient descent at η = 1/L);
- naive minibatch: :math:`y = g_{k+1} - g_k` with the two gradients from *different* batches, fixed step η;
- same-batch minibatch (oLBFGS, Schraudolph et al. 2007): :math:`y = \nabla J_B(w_{k+1}) - \nabla J_B(w_k)`
  on the same batch :math:`B`, one extra gradient a step; :math:`s^\top y > 0` on a convex loss.

The history size ``m`` is a traced number here (``lecture_lib.second_order.lbfgs`` makes it a static
shape): the pairs live in a stack of ``M_MAX`` rows, the newest at row ``k - 1``, and the library's
``two_loop`` reads the ``k <= m`` newest. Moving notebook 01's history slider therefore never compiles.
The claim over seeds and rates, with ``second_order.lbfgs``, is ``experiments_recap.minibatch_lbfgs``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import _checks, data, sampling
from lecture_lib.experiments_recap import _logistic, logistic_optimum
from lecture_lib.second_order import C1, MAX_TRIALS, MIN_CURVATURE, SHRINK, two_loop

M_MAX = 20  # largest history size offered
N, D, CONDITION, LAM = 2000, 20, 100.0, 1e-3  # the problem: samples, features, cond(XᵀX/n), ℓ2 weight
BATCH, EPOCHS = 32, 5
LBFGS_STEPS, GD_STEPS = 40, 200  # full batch: L-BFGS is done long before 40 iterations


class Problem(NamedTuple):
    x: jax.Array  # (n, d)
    y: jax.Array  # (n,) float 0/1
    lam: jax.Array  # ℓ2 weight
    L: jax.Array  # smoothness of the mean loss: λ_max(XᵀX/n)/4 + lam


def loss_fn(x, y, lam, keep=None):
    """Mean logistic loss over the rows of ``x`` (those with ``keep``) plus ½·lam·‖w‖², as a function of w."""
    return _logistic(x, y, lam, keep)


def optimum(p: Problem) -> float:
    """F* by Newton's method in float64 NumPy (a reference independent of the code under test)."""
    return logistic_optimum(p.x, p.y, float(p.lam))


@functools.cache
def problem(seed: int = 0) -> tuple[Problem, float]:
    """The problem (n = N samples, d = D features) for ``seed`` and its F*; cached."""
    d = data.logistic_regression(N, D, jax.random.key(seed), condition=CONDITION)
    p = Problem(d.x_train, d.y_train.astype(jnp.float32), jnp.float32(LAM), d.eigenvalues[-1] / 4 + LAM)
    return p, optimum(p)


# ---- L-BFGS with a traced history size -----------------------------------------------------------------


class State(NamedTuple):
    S: jax.Array  # (M_MAX, n) steps s, newest at row k - 1
    Y: jax.Array  # (M_MAX, n) gradient differences y
    k: jax.Array  # int32 pairs stored (≤ m)
    w_prev: jax.Array
    g_prev: jax.Array
    t: jax.Array  # int32 updates done
    n_pairs: jax.Array  # int32 pairs formed
    n_bad: jax.Array  # int32 pairs with sᵀy ≤ 0


def init(w) -> State:
    zeros, i0 = jnp.zeros((M_MAX, w.size), w.dtype), jnp.zeros((), jnp.int32)
    return State(zeros, zeros, i0, w, jnp.zeros_like(w), i0, i0, i0)


def _push(stack, k, m, v):
    """Append ``v`` after the ``k`` stored rows; when ``m`` are stored drop the oldest (row 0) first."""
    rows = jnp.arange(M_MAX)
    shifted = jnp.where((rows < m - 1)[:, None], stack[jnp.minimum(rows + 1, M_MAX - 1)], stack)
    return jnp.where(k >= m, shifted.at[m - 1].set(v), stack.at[jnp.minimum(k, M_MAX - 1)].set(v))


def _store(state: State, m, s, y, formed):
    sy = jnp.sum(s * y)
    formed = formed & jnp.any(s != 0)
    keep = formed & (sy > MIN_CURVATURE)
    S = jnp.where(keep, _push(state.S, state.k, m, s), state.S)
    Y = jnp.where(keep, _push(state.Y, state.k, m, y), state.Y)
    k = jnp.where(keep, jnp.minimum(state.k + 1, m), state.k)
    n_bad = state.n_bad + (formed & (sy <= 0)).astype(jnp.int32)
    return state._replace(S=S, Y=Y, k=k, n_pairs=state.n_pairs + formed.astype(jnp.int32), n_bad=n_bad)


def update(state: State, w, g, J, m, eta, *, same_batch: bool, line_search: bool):
    """One L-BFGS step on objective ``J`` (gradient ``g`` at ``w``) by the rules of ``second_order.LBFGS``."""
    if not same_batch:  # the pair from the previous step, seen only now through this call's g
        state = _store(state, m, w - state.w_prev, g - state.g_prev, state.t > 0)
    d = -two_loop(state.S, state.Y, state.k, g)
    alpha = jnp.where(state.k == 0, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))), 1.0) * eta
    ok = jnp.asarray(True)
    if line_search:
        E0, slope = J(w), jnp.sum(g * d)

        def cond(carry):
            i, _, ok = carry
            return ~ok & (i < MAX_TRIALS)

        def body(carry):
            i, alpha, _ = carry
            alpha = SHRINK * alpha
            return i + 1, alpha, J(w + alpha * d) <= E0 + C1 * alpha * slope

        first = J(w + alpha * d) <= E0 + C1 * alpha * slope
        _, alpha, ok = jax.lax.while_loop(cond, body, (jnp.asarray(1, jnp.int32), alpha, first))
        alpha = jnp.where(ok, alpha, 0.0)
    w_new = w + alpha * d
    if same_batch:
        state = _store(state, m, w_new - w, jax.grad(J)(w_new) - g, jnp.asarray(True))
    state = state._replace(k=jnp.where(ok, state.k, 0), w_prev=w, g_prev=g, t=state.t + 1)
    return w_new, state


# ---- the experiment --------------------------------------------------------------------------------------


class Runs(NamedTuple):
    full_lbfgs: np.ndarray  # (LBFGS_STEPS + 1,) F(w_k) − F*
    full_gd: np.ndarray  # (GD_STEPS + 1,)
    naive: np.ndarray  # (updates + 1,) F(w_k) − F* after each minibatch update
    same_batch: np.ndarray
    bad_share: np.ndarray  # (3,) share of pairs with sᵀy ≤ 0: full batch, naive, same batch


@functools.partial(jax.jit, static_argnames=("b", "epochs", "lbfgs_steps", "gd_steps"))
def _runs(p: Problem, m, eta, key, *, b, epochs, lbfgs_steps, gd_steps):
    F = loss_fn(p.x, p.y, p.lam)
    grad_F = jax.grad(F)
    w0 = jnp.zeros(p.x.shape[1])

    def full_lbfgs(carry, _):
        w, s = carry
        w, s = update(s, w, grad_F(w), F, m, 1.0, same_batch=False, line_search=True)
        return (w, s), F(w)

    (_, s_full), f_lbfgs = jax.lax.scan(full_lbfgs, (w0, init(w0)), None, length=lbfgs_steps)
    eta_gd = 1.0 / p.L
    _, f_gd = jax.lax.scan(lambda w, _: (w - eta_gd * grad_F(w),) * 2, w0, None, length=gd_steps)
    f_gd = jax.vmap(F)(f_gd)

    idx, mask = (a.reshape(-1, b) for a in sampling._batches(key, p.x.shape[0], b, epochs, "reshuffle"))

    def minibatch(same_batch):
        def step(carry, batch):
            w, s = carry
            J = loss_fn(p.x[batch[0]], p.y[batch[0]], p.lam, batch[1])
            w, s = update(s, w, jax.grad(J)(w), J, m, eta, same_batch=same_batch, line_search=False)
            return (w, s), F(w)

        (_, s), f = jax.lax.scan(step, (w0, init(w0)), (idx, mask))
        return f, s

    f_naive, s_naive = minibatch(False)
    f_same, s_same = minibatch(True)
    F0 = F(w0)[None]
    shares = jnp.stack([s.n_bad / jnp.maximum(s.n_pairs, 1) for s in (s_full, s_naive, s_same)])
    curves = [jnp.concatenate([F0, f]) for f in (f_lbfgs, f_gd, f_naive, f_same)]
    return curves, shares


def runs(memory=10, eta=0.05, seed=0, *, batch=BATCH, epochs=EPOCHS) -> Runs:
    r"""The four runs on ``problem(0)`` for history size ``memory`` (1 … M_MAX) and minibatch step ``eta``.

    ``seed`` picks the minibatch order. Gaps F − F* are float64 NumPy (nan where a run blew up). Claims:
    full-batch L-BFGS reaches F − F* ≤ 10⁻⁴ in under 30 iterations, GD at η = 1/L not in 200; naive minibatch
    pairs often have :math:`s^\top y \le 0`, same-batch pairs and full-batch pairs never.
    """
    memory = _checks.positive_int("memory", memory, array=False)
    if memory > M_MAX:
        raise ValueError(f"memory must be at most M_MAX={M_MAX}, got memory={memory}")
    eta = _checks.positive("eta", eta)
    seed = int(_checks.nonnegative_int("seed", seed))
    batch = _checks.positive_int("batch", batch, array=False)
    epochs = _checks.positive_int("epochs", epochs, array=False)
    if batch > N:
        raise ValueError(f"batch must be at most N={N}, got batch={batch}")
    p, f_star = problem(0)
    shapes = dict(b=batch, epochs=epochs, lbfgs_steps=LBFGS_STEPS, gd_steps=GD_STEPS)
    curves, shares = _runs(p, jnp.asarray(memory, jnp.int32), eta, jax.random.key(seed), **shapes)
    gaps = [np.asarray(c, np.float64) - f_star for c in curves]
    return Runs(*gaps, np.asarray(shares, np.float64))


def iterations_to(gap, tol) -> int:
    """First iteration with F − F* ≤ tol, −1 if none."""
    hit = np.asarray(gap) <= tol
    return int(np.argmax(hit)) if hit.any() else -1
