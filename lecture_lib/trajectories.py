r"""Optimizer trajectories: ``run`` steps an optimizer on a function inside one jitted ``lax.scan``.

>>> import lecture_lib as ll
>>> traj = ll.run(ll.optimizers.sgd(0.01), ll.surfaces.SURFACES["quadratic"], [-4.0, 3.0], 100)
>>> traj.params.shape, traj.losses.shape, traj.lrs.shape
((101, 2), (101,), (100,))

Divergence is a result, not an error: ``diverged_at`` is the first step whose loss is not finite (−1 if
none). From that step on the run stops moving: ``params[k]`` for ``k >= diverged_at`` repeat the last finite
point (so a drawn path ends where the run left the finite world), ``losses[diverged_at]`` is the non-finite
value met (``inf`` or ``nan``, as in the slide's ``cost inf`` / ``cost nan``) and later losses are ``nan``
(a gap in a plot).

Hyperparameters (learning rate, momentum, schedule parameters, surface parameters, noise, key, start) are
traced: ``run`` compiles once per optimizer type, schedule type, ``steps`` and shape of ``x0``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from lecture_lib import _checks
from lecture_lib.optimizers import Optimizer
from lecture_lib.schedules import ReduceOnPlateau, Schedule
from lecture_lib.surfaces import Surface


class Trajectory(NamedTuple):
    params: Any  # (steps+1, ...) iterates w_0 ... w_steps (a pytree if x0 is one)
    losses: jax.Array  # (steps+1,) loss at each iterate
    lrs: jax.Array  # (steps,) learning rate used by each step
    diverged_at: jax.Array  # int32: first step with a non-finite loss, -1 if none
    state: Any = None  # with return_state=True: the final optimizer state (e.g. L-BFGS's bad-pair count)


def _as_float32(x):
    if isinstance(x, jax.Array):  # includes tracers: no host round trip
        return x if x.dtype == jnp.float32 else x.astype(jnp.float32)
    return np.asarray(x, np.float32)


def _scan(opt, loss_fn, w0, steps, schedule, noise, key, value_and_grad=None):
    """The whole run; ``w0`` is a flat float32 vector."""
    value_and_grad = value_and_grad or jax.value_and_grad(loss_fn)
    if key is None:
        xi = jnp.zeros((steps, 0), w0.dtype)  # noise-free run: nothing drawn, nothing added
    else:
        # drawn up front (7x faster than in the scan), flat then reshaped (multi-dimensional draws compile
        # several times slower on XLA:CPU; the numbers are the same)
        xi = jax.random.normal(key, (steps * w0.size,), w0.dtype).reshape(steps, w0.size)

    def step(carry, inputs):
        w, state, loss, g, diverged_at = carry
        t, xi_t = inputs
        eta = opt.lr if schedule is None else schedule(t)
        g_noisy = g if key is None else g + noise * xi_t
        w_new, state_new = opt.with_lr(eta).update(g_noisy, state, w, objective=loss_fn)
        loss_new, g_new = value_and_grad(w_new)
        done = diverged_at >= 0
        bad = ~jnp.isfinite(loss_new) & ~done
        diverged_at = jnp.where(bad, t + 1, diverged_at)
        hold = done | bad
        carry = jax.tree.map(
            lambda old, new: jnp.where(hold, old, new),
            (w, state, loss, g),
            (w_new, state_new, loss_new, g_new),
        )
        loss_out = jnp.where(done, jnp.nan, loss_new)
        return (*carry, diverged_at), (carry[0], loss_out, eta)

    loss0, g0 = value_and_grad(w0)
    diverged0 = jnp.where(jnp.isfinite(loss0), -1, 0).astype(jnp.int32)
    carry0 = (w0, opt.init(w0), loss0, g0, diverged0)
    ts = jnp.arange(steps, dtype=jnp.int32)
    carry, (ws, losses, lrs) = jax.lax.scan(step, carry0, (ts, xi))
    params = jnp.concatenate([w0[None], ws])
    losses = jnp.concatenate([loss0[None], losses])
    return params, losses, jnp.broadcast_to(lrs, (steps,)).astype(jnp.float32), carry[-1], carry[1]


@functools.partial(jax.jit, static_argnames=("fn", "steps", "return_state"))
def _run(opts, surface, x0, schedule, noise, key, *, fn, steps, return_state):
    w0, unravel = ravel_pytree(x0)  # optimizers see one flat vector; results get the pytree back

    def loss_fn(w):
        return (surface if fn is None else fn)(unravel(w))

    # on a surface (w0 is its own flat vector), value and gradient come from one switch per step
    value_and_grad = surface.value_and_grad if fn is None else None
    out = []
    for opt in opts:
        params, losses, lrs, diverged_at, state = _scan(
            opt, loss_fn, w0, steps, schedule, noise, key, value_and_grad
        )
        state = state if return_state else None  # every output array costs ~1 us a call
        out.append(Trajectory(jax.vmap(unravel)(params), losses, lrs, diverged_at, state))
    return out


def _validate(opts, surface_or_fn, x0, steps, schedule, noise, key):
    for opt in opts:
        if not isinstance(opt, Optimizer):
            raise TypeError(f"opt must be an optimizer from ll.optimizers, got opt={opt!r}")
    if not callable(surface_or_fn):
        raise TypeError(f"surface_or_fn must be a Surface or a function of w, got {surface_or_fn!r}")
    steps = _checks.positive_int("steps", steps, array=False)
    if isinstance(schedule, ReduceOnPlateau):
        raise TypeError(
            "reduce_on_plateau is driven by a metric once per epoch: use it with ll.training.fit, not run"
        )
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(
            f"schedule must be a step schedule from ll.schedules (called as schedule(t)), got {schedule!r}"
        )
    if key is None:
        if _checks.is_traced(noise) or noise != 0:
            raise ValueError(f"noise={noise!r} needs a random key: pass key=jax.random.key(seed)")
        noise = None  # the noise-free version ignores it
    elif not _checks.is_traced(noise):
        noise = _checks.nonnegative("noise", noise)
    if isinstance(x0, jax.Array) and x0.dtype == jnp.float32:
        pass  # the common case, kept cheap: run() is called on every slider move
    elif isinstance(x0, (list, tuple, int, float, np.ndarray, np.number)):
        x0 = np.asarray(x0, np.float32)  # numbers or nested lists of numbers
    else:
        x0 = jax.tree.map(_as_float32, x0)
    if isinstance(surface_or_fn, Surface) and getattr(x0, "shape", None) != (2,):
        raise ValueError(f"x0 must have shape (2,) on a 2-D surface, got shape {np.shape(x0)}")
    return x0, steps, noise


def run(
    opt: Optimizer,
    surface_or_fn: Surface | Callable,
    x0,
    steps: int,
    *,
    schedule=None,
    noise=0.0,
    key=None,
    return_state: bool = False,
) -> Trajectory:
    """Run ``opt`` for ``steps`` steps on a surface (or any scalar function of ``x0``'s pytree).

    Args:
      opt: an optimizer from ``ll.optimizers`` (first or second order).
      surface_or_fn: a ``Surface`` (traced: no recompile when it changes) or a function ``w -> loss``
        (static: pass the same function object to reuse the compiled version).
      x0: starting point; shape (2,) on a surface, any pytree of arrays for a function.
      steps: number of updates (a static shape).
      schedule: optional ``ll.schedules`` schedule; its ``schedule(t)`` replaces the optimizer's lr at step t.
      noise: standard deviation of Gaussian noise added to every gradient coordinate (needs ``key``).
      key: a ``jax.random.key``; the noise for all steps is drawn from it up front.
      return_state: also return the optimizer's final state as ``traj.state`` (else ``None``).

    Works under ``jax.vmap`` over learning rates, seeds, starting points and surface parameters.
    """
    return run_many(
        (opt,), surface_or_fn, x0, steps, schedule=schedule, noise=noise, key=key, return_state=return_state
    )[0]


def run_many(
    opts: Sequence[Optimizer],
    surface_or_fn,
    x0,
    steps: int,
    *,
    schedule=None,
    noise=0.0,
    key=None,
    return_state: bool = False,
) -> list[Trajectory]:
    """Several optimizers (of any types) from the same start in one compiled call, as a race panel needs."""
    opts = tuple(opts)
    x0, steps, noise = _validate(opts, surface_or_fn, x0, steps, schedule, noise, key)
    if isinstance(surface_or_fn, Surface):
        surface, fn = surface_or_fn, None
    else:
        surface, fn = None, surface_or_fn
    return _run(opts, surface, x0, schedule, noise, key, fn=fn, steps=steps, return_state=bool(return_state))
