r"""Second-order optimizers: (damped) Newton and L-BFGS, in the interface of ``ll.optimizers``.

Both need the objective itself (``needs_objective = True``): Newton differentiates it twice, L-BFGS runs a
line search on it. ``ll.run`` and ``ll.training.fit`` pass it; by hand::

    opt = lbfgs()
    state = opt.init(w)
    w, state = opt.update(jax.grad(f)(w), state, w, objective=f)

The gradient ``g`` passed to ``update`` is the one the step uses (so the noise ``ll.run`` adds to gradients
reaches the step); the objective supplies curvature and line-search values. Weights may be any pytree:
both methods work on the flat vector (``ravel_pytree``) and return the original structure.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lecture_lib import _checks
from lecture_lib._pytree import pytree_dataclass, static_field
from lecture_lib.curvature import hessian
from lecture_lib.optimizers import EmptyState, Optimizer

C1 = 1e-4  # Armijo's sufficient-decrease constant (Nocedal & Wright, Sec. 3.1)
SHRINK = 0.5  # backtracking factor
MAX_TRIALS = 30  # line-search trials per step: the last one tries lr * 0.5**29, about 2e-9 lr
MIN_CURVATURE = 1e-10  # a pair is stored only if s^T y exceeds this (torch.optim.LBFGS's threshold)
CURVATURES = ("consecutive", "same_batch")


def _needs(name: str, objective):
    if objective is None:
        raise TypeError(f"{name} needs the objective; use ll.run or ll.training.fit, or pass objective=...")


def _dot(a, b):
    # elementwise product and sum: exact float32 on every backend (no TF32 matmul on GPUs)
    return jnp.sum(a * b)


@pytree_dataclass
class Newton(Optimizer):
    r"""Newton's method with optional damping (Levenberg), the recap slide's second-order step.

    .. math:: w \leftarrow w - \eta\, (H + \lambda I)^{-1} g, \qquad H = \nabla^2 E(w)

    with :math:`\eta` = ``lr`` and :math:`\lambda` = ``damping``. The linear system is solved, never inverted.
    With :math:`\eta = 1, \lambda = 0` a quadratic is minimised in one step, whatever its condition number.
    Newton goes to the nearest *stationary* point of the quadratic model: at a saddle, where :math:`H` is
    indefinite, it is attracted to the saddle. Costs :math:`O(n^2)` memory and :math:`O(n^3)` time a step.
    """

    needs_objective: ClassVar[bool] = True
    label: ClassVar[str] = "Newton"
    lr: jax.Array
    damping: jax.Array

    def init(self, params):
        return EmptyState()

    def update(self, grads, state, params, *, objective=None):
        _needs("newton", objective)
        w, unravel = ravel_pytree(params)
        g = ravel_pytree(grads)[0]
        eta, lam = self.lr, self.damping
        H = hessian(objective, params)
        dw = jnp.linalg.solve(H + lam * jnp.eye(w.size, dtype=H.dtype), g)
        return unravel(w - eta * dw), state


class LBFGSState(NamedTuple):
    S: jax.Array  # (memory, n) ring buffer of steps s_i = w_{i+1} - w_i
    Y: jax.Array  # (memory, n) ring buffer of gradient differences y_i
    count: jax.Array  # int32 pairs stored since the last reset; the newest is at (count - 1) % memory
    w_prev: jax.Array  # (n,) w at the previous call
    g_prev: jax.Array  # (n,) g at the previous call
    t: jax.Array  # int32 number of updates done
    n_pairs: jax.Array  # int32 curvature pairs formed (from non-zero steps)
    n_bad_pairs: jax.Array  # int32 of those, pairs with s^T y <= 0 (rejected)


def two_loop(S, Y, count, q):
    r"""The L-BFGS product :math:`H_k q` with the implicit inverse-Hessian approximation (N&W Alg. 7.4).

    .. math::
        \text{newest to oldest: } \alpha_i = \rho_i s_i^\top q,\ q \leftarrow q - \alpha_i y_i; \quad
        r = \gamma q,\ \gamma = \frac{s^\top y}{y^\top y}\ \text{(newest pair)}; \quad
        \text{oldest to newest: } \beta = \rho_i y_i^\top r,\ r \leftarrow r + (\alpha_i - \beta) s_i

    with :math:`\rho_i = 1/(s_i^\top y_i)`, over the ``min(count, memory)`` newest pairs of the ring buffers
    ``S`` and ``Y``. With no pair stored it returns ``q`` (:math:`H_0 = I`).
    """
    m = S.shape[0]
    k = jnp.minimum(count, m)
    order = (count - 1 - jnp.arange(m)) % m  # slots, newest first
    used = jnp.arange(m) < k
    sy = jnp.sum(S * Y, axis=1)
    rho = 1.0 / jnp.where(used, sy[order], 1.0)

    def newest_to_oldest(q, inputs):
        j, ok, rho_j = inputs
        a = jnp.where(ok, rho_j * _dot(S[j], q), 0.0)
        return q - a * Y[j], a

    q, alpha = jax.lax.scan(newest_to_oldest, q, (order, used, rho))
    newest = order[0]
    yy = _dot(Y[newest], Y[newest])
    gamma = jnp.where(k > 0, sy[newest] / jnp.where(k > 0, yy, 1.0), 1.0)  # H_0 = gamma I (N&W eq. 7.20)

    def oldest_to_newest(r, inputs):
        j, ok, rho_j, a = inputs
        b = rho_j * _dot(Y[j], r)
        return r + jnp.where(ok, a - b, 0.0) * S[j], None

    r, _ = jax.lax.scan(oldest_to_newest, gamma * q, (order, used, rho, alpha), reverse=True)
    return r


def _store(state_parts, s, y, formed):
    """Count the pair (s, y) if ``formed`` and s != 0; store it if s^T y > MIN_CURVATURE."""
    S, Y, count, n_pairs, n_bad = state_parts
    sy = _dot(s, y)
    formed = formed & jnp.any(s != 0)
    keep = formed & (sy > MIN_CURVATURE)
    slot = count % S.shape[0]
    S = jnp.where(keep, S.at[slot].set(s), S)
    Y = jnp.where(keep, Y.at[slot].set(y), Y)
    n_bad = n_bad + (formed & (sy <= 0)).astype(jnp.int32)
    return S, Y, count + keep.astype(jnp.int32), n_pairs + formed.astype(jnp.int32), n_bad


@pytree_dataclass
class LBFGS(Optimizer):
    r"""Limited-memory BFGS: two-loop recursion (N&W Alg. 7.4/7.5) and a backtracking Armijo line search.

    .. math::
        d = -H_k g, \qquad w \leftarrow w + \alpha d, \qquad
        \alpha = \eta\, 2^{-i}\ \text{for the first } i \ge 0 \text{ with }
        E(w + \alpha d) \le E(w) + c_1 \alpha\, g^\top d

    :math:`H_k` is built from the last ``memory`` pairs :math:`s = w_{new} - w`, :math:`y = g_{new} - g`
    (see :func:`two_loop`); :math:`c_1 = 10^{-4}` and at most ``MAX_TRIALS`` trials. If none passes, the
    step is skipped and the memory cleared (the next step is a gradient step). While no pair is stored
    (the first step), the first trial is :math:`\eta \min(1, 1/\|g\|_1)`, as in ``torch.optim.LBFGS``.
    ``line_search=False`` takes :math:`\alpha = \eta` (as stochastic L-BFGS variants do); with consecutive
    pairs it then uses only ``g``, and ``objective`` may be omitted.

    Curvature pairs (``curvature``):

    - ``"consecutive"``: :math:`y` is the difference of the gradients passed on consecutive calls. With
      minibatch gradients those come from *different* batches, so :math:`y` measures batch noise as much as
      curvature and :math:`s^\top y` is often :math:`\le 0` (the naive stochastic variant).
    - ``"same_batch"`` (oLBFGS, Schraudolph, Yu & Günter 2007): :math:`y = \nabla E(w_{new}) - \nabla E(w)`
      on the objective of this call (the minibatch loss): one extra gradient. On a convex objective
      :math:`s^\top y > 0` always. Noise that ``ll.run`` adds to ``g`` does not enter this :math:`y`: both
      gradients come from the objective.

    A pair is stored only if :math:`s^\top y > 10^{-10}` (so :math:`H_k` stays positive definite);
    ``n_pairs`` counts pairs formed from non-zero steps and ``n_bad_pairs`` those with :math:`s^\top y \le 0`
    (their share is the experiment's measure of noise in the curvature pairs). In float32 a step at the
    rounding level of ``w`` (a line search near the minimum) gives a gradient difference that is rounding
    noise, so even same-batch pairs can then, rarely, have :math:`s^\top y \le 0`.
    """

    needs_objective: ClassVar[bool] = True
    label: ClassVar[str] = "L-BFGS"
    lr: jax.Array
    memory: int = static_field(default=10)
    curvature: str = static_field(default="consecutive")
    line_search: bool = static_field(default=True)

    def init(self, params):
        w = ravel_pytree(params)[0]
        zeros = jnp.zeros((self.memory, w.size), w.dtype)
        i0 = jnp.zeros((), jnp.int32)
        return LBFGSState(zeros, zeros, i0, w, jnp.zeros_like(w), i0, i0, i0)

    def update(self, grads, state, params, *, objective=None):
        same_batch = self.curvature == "same_batch"
        if self.line_search or same_batch:
            _needs("lbfgs", objective)
        w, unravel = ravel_pytree(params)
        g = ravel_pytree(grads)[0]
        E = None if objective is None else (lambda x: objective(unravel(x)))
        eta = self.lr
        parts = (state.S, state.Y, state.count, state.n_pairs, state.n_bad_pairs)
        if not same_batch:  # the pair from the previous step, seen only now through this call's g
            parts = _store(parts, w - state.w_prev, g - state.g_prev, state.t > 0)
        S, Y, count = parts[:3]

        d = -two_loop(S, Y, count, g)
        alpha = jnp.where(count == 0, jnp.minimum(1.0, 1.0 / jnp.sum(jnp.abs(g))), 1.0) * eta
        ok = jnp.asarray(True)
        if same_batch:
            E0, gE = jax.value_and_grad(E)(w)
        elif self.line_search:
            E0 = E(w)
        if self.line_search:
            slope = _dot(g, d)

            def armijo(alpha):
                return E(w + alpha * d) <= E0 + C1 * alpha * slope  # False for a non-finite loss

            def cond(carry):
                i, _, ok = carry
                return ~ok & (i < MAX_TRIALS)

            def body(carry):
                i, alpha, _ = carry
                alpha = SHRINK * alpha
                return i + 1, alpha, armijo(alpha)

            _, alpha, ok = jax.lax.while_loop(cond, body, (jnp.asarray(1, jnp.int32), alpha, armijo(alpha)))
            alpha = jnp.where(ok, alpha, 0.0)
        w_new = w + alpha * d

        if same_batch:
            parts = _store(parts, w_new - w, jax.grad(E)(w_new) - gE, jnp.asarray(True))
        S, Y, count, n_pairs, n_bad = parts
        count = jnp.where(ok, count, 0)  # a failed line search clears the memory
        new_state = LBFGSState(S, Y, count, w, g, state.t + 1, n_pairs, n_bad)
        return unravel(w_new), new_state


# ---- factories: validate eagerly, store float32 ------------------------------------------------------


def newton(lr=1.0, damping=0.0) -> Newton:
    r"""Damped Newton, :math:`w \leftarrow w - \eta (H + \lambda I)^{-1} g` (``lr`` = η, ``damping`` = λ)."""
    return Newton(lr=_checks.positive("lr", lr), damping=_checks.nonnegative("damping", damping))


def lbfgs(lr=1.0, memory=10, *, curvature="consecutive", line_search=True) -> LBFGS:
    """L-BFGS with ``memory`` curvature pairs and a backtracking Armijo line search starting at ``lr``.

    >>> import lecture_lib as ll
    >>> traj = ll.run(lbfgs(), ll.surfaces.SURFACES["rosenbrock"], [-1.2, 1.0], 60)
    """
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be 'consecutive' or 'same_batch', got curvature={curvature!r}")
    if not isinstance(line_search, bool):
        raise TypeError(f"line_search must be True or False, got line_search={line_search!r}")
    return LBFGS(
        lr=_checks.positive("lr", lr),
        memory=_checks.positive_int("memory", memory, array=False),
        curvature=curvature,
        line_search=line_search,
    )
