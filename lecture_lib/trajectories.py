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

Gradient noise (``noise=sigma, key=key``) is ``sigma * gaussian_noise(key, steps, size)[t]`` at step ``t``:
a counter-based hash of the key, the step and the coordinate through Box–Muller, not ``jax.random.normal``
(4x cheaper, and drawn inside the loop; see :func:`gaussian_noise`).
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


# ---- gradient noise --------------------------------------------------------------------------------------
#
# A counter-based hash of (step, coordinate) keyed by two words folded from ``key``'s data, turned into
# normals by Box–Muller inside the loop. It replaced ``jax.random.normal(key, (steps * size,))`` drawn up
# front: on 1,024 vmapped 500-step runs the threefry bits and the erf_inv transform were ~40% of the call
# (hash + Box–Muller draw the same 1M normals ~4x faster; "rbg" keys under vmap were ~2x slower still); an
# up-front draw also needs a (steps, size) buffer (a transpose of it under vmap), and on a single run it ran
# beside the loop, which XLA:CPU hands to its thread pool (slow when the other core is busy).

_GOLDEN = np.uint32(0x9E3779B9)


def _mix32(x):
    """``lowbias32`` (C. Wellons' hash-prospector): a bijection of uint32 with full avalanche."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _sincos(a):
    """sin and cos of ``a`` in [0, pi/4): Taylor polynomials, error < 1e-7 (float32 rounding)."""
    a2 = a * a
    s = a * (1 + a2 * (-1 / 6 + a2 * (1 / 120 + a2 * (-1 / 5040 + a2 * (1 / 362880)))))
    c = 1 + a2 * (-1 / 2 + a2 * (1 / 24 + a2 * (-1 / 720 + a2 * (1 / 40320 + a2 * (-1 / 3628800)))))
    return s, c


def _noise_seed(key):
    """The two uint32 words that key the hash, folded from the words of ``jax.random.key_data(key)`` (any key
    implementation, or a legacy uint32 key) with ``mix``: scalar work (``jax.random.bits`` here is a small
    threefry loop beside the run, which XLA:CPU then hands to its thread pool: ~100 us a call more)."""
    s0, s1 = jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3)  # digits of pi
    for word in jax.random.key_data(key).reshape(-1):
        s0 = _mix32(s0 ^ word)
        s1 = _mix32((s1 ^ s0) + _GOLDEN)
    return s0, s1


def _noise_at(seed, t, size: int):
    """The standard normal noise of step ``t`` (an int32 scalar, or any int32 array for several steps):
    shape ``t.shape + (size,)``."""
    half = -(-size // 2)  # Box–Muller pairs a step
    q = jnp.arange(half, dtype=jnp.uint32).reshape((1,) * t.ndim + (half,))
    p = t.astype(jnp.uint32)[..., None] * np.uint32(half) + q
    w = _mix32(_mix32((jnp.stack([2 * p, 2 * p + 1]) * _GOLDEN) + seed[0]) ^ seed[1])
    u = ((w[0] >> np.uint32(8)).astype(jnp.float32) + 1.0) * np.float32(2.0**-24)  # (0, 1]
    r = jnp.sqrt(-2.0 * jnp.log(u))
    s, c = _sincos((w[1] >> np.uint32(8)).astype(jnp.float32) * np.float32(np.pi / 4 * 2.0**-24))
    swap, flip_x, flip_y = ((w[1] & np.uint32(b)) != 0 for b in (1, 2, 4))
    x = r * jnp.where(swap, s, c)
    y = r * jnp.where(swap, c, s)
    xy = jnp.stack([jnp.where(flip_x, -x, x), jnp.where(flip_y, -y, y)], axis=-1)  # (..., half, 2)
    return xy.reshape(*t.shape, 2 * half)[..., :size]


@functools.partial(jax.jit, static_argnames=("steps", "size"))
def gaussian_noise(key, steps: int, size: int):
    r"""The standard normal draws ``xi`` (shape ``(steps, size)``) behind ``run(..., noise=sigma, key=key)``:
    step ``t`` adds ``sigma * xi[t]`` to the gradient (``size`` is the number of coordinates of ``x0``).

    How they are drawn: two uint32 words ``k0, k1`` folded from ``jax.random.key_data(key)`` key the hash
    :math:`h(i) = \mathrm{mix}(\mathrm{mix}(i \varphi + k_0) \oplus k_1)` of a word index ``i`` (``mix`` is
    the lowbias32 bijection of uint32, :math:`\varphi` = 0x9E3779B9, arithmetic mod :math:`2^{32}`). Step
    ``t`` uses the pairs ``p = t * ceil(size / 2) + q``, ``q < ceil(size / 2)``; Box–Muller turns the words
    :math:`(h(2p), h(2p+1))` into coordinates ``2q`` and ``2q + 1``: radius :math:`\sqrt{-2 \ln u}` with
    :math:`u = (\lfloor h(2p) / 2^8 \rfloor + 1)\,2^{-24} \in (0, 1]`, an angle uniform on the circle from
    :math:`h(2p+1)` (its three low bits pick the octant, its top 24 the angle within it). Every coordinate is
    N(0, 1) (to float32 rounding; |xi| <= 5.8, the 24-bit radius), independent across coordinates, steps and
    keys as far as the hash goes; the draws of step ``t`` do not depend on ``steps``.
    """
    return _noise_at(_noise_seed(key), jnp.arange(steps, dtype=jnp.int32), size)


# ---- the run ----------------------------------------------------------------------------------------------


def _scan(opt, loss_fn, w0, steps, schedule, noise, key, value_and_grad=None, return_state=False):
    """The whole run; ``w0`` is a flat float32 vector.

    Iteration t evaluates w_t, records its loss and the point row t of the path shows, then steps; the
    update of iteration ``steps`` is dropped. The path row is ``keep``, the last point whose loss was
    finite (w_t itself until the run diverges), so the divergence hold is one select of n numbers a step
    and nothing runs over the path after the loop.

    The layout serves XLA:CPU's two thread hand-offs, each ~10-30 µs on a 2-core machine against a
    ~35 µs slider call (counted as context switches in tests/test_trajectories.py):

    - a program whose cost analysis counts under 1,000 flops runs inline on the calling thread, others on
      a worker thread the caller waits for. The analysis counts a loop body once, so the program is cheap
      as long as no pass over the whole (steps + 1, n) path follows the loop (one did: ~2,000 flops at 500
      steps);
    - the operations before the loop (each a separate kernel: the initial carry, and whatever XLA hoists
      out of the loop) run in turn on the calling thread only while at most ~9 are ready at once; beyond
      that XLA hands half of them to its thread pool. Adam's 1 - b1, 1 - b2 and 1 - lr * weight_decay
      took it to 13, so the optimizer goes through an ``optimization_barrier`` with the step counter: its
      arithmetic stays in the loop (3 flops a step).

    w is carried on its own and only written to the path: read back from it, under ``vmap`` XLA copied the
    whole (runs, steps + 1, n) path every step (1,024 noisy runs: 135 ms instead of 9). The rates are
    computed before the loop, all at once (schedules are vectorised over t): the loop reads its rate and the
    record needs no slice. The optimizer is not held after a non-finite loss (holding its state cost ~60% of
    a vmapped run). With ``return_state`` the state that goes with the held point is kept in the loop
    (static: no cost otherwise).
    """
    value_and_grad = value_and_grad or jax.value_and_grad(loss_fn)
    seed = None if key is None else _noise_seed(key)
    last = steps - 1

    def step(carry, _):
        t, w, keep, path, losses, state, state_last, diverged_at = carry
        # hyperparameter arithmetic (Adam's 1 - b1, 1 - b2, 1 - lr * weight_decay) stays in the loop: XLA
        # would hoist each into its own operation before it (see above)
        t, o = jax.lax.optimization_barrier((t, opt))
        loss, g = value_and_grad(w)
        fine = diverged_at < 0
        diverged_at = jnp.where(fine & ~jnp.isfinite(loss), t, diverged_at)
        finite = diverged_at < 0
        keep = jnp.where(finite, w, keep)  # from diverged_at on: w_{diverged_at - 1} (w_0 if it is w_0)
        if return_state:  # the optimizer state the last finite point was reached with
            state_last = jax.tree.map(lambda a, b: jnp.where(finite, a, b), state, state_last)
        path = jax.lax.dynamic_update_index_in_dim(path, keep, t, 0)
        # the first non-finite loss is kept, later ones are nan
        losses = jax.lax.dynamic_update_index_in_dim(losses, jnp.where(fine, loss, jnp.nan), t, 0)
        # the last iteration's update is dropped (it steps with the last rate)
        eta = o.lr if schedule is None else jax.lax.dynamic_index_in_dim(lrs, jnp.minimum(t, last), 0, False)
        if seed is not None:
            g = g + noise * _noise_at(seed, t, w0.size)
        w, state = o.with_lr(eta).update(g, state, w, objective=loss_fn)
        return (t + 1, w, keep, path, losses, state, state_last, diverged_at), None

    ts = jnp.arange(steps, dtype=jnp.int32)
    lrs = jnp.asarray(jnp.broadcast_to(opt.lr, (steps,)) if schedule is None else schedule(ts), jnp.float32)
    state0 = opt.init(w0)
    path0 = jnp.zeros((steps + 1, w0.size), jnp.float32)
    losses0 = jnp.zeros(steps + 1, jnp.float32)
    carry0 = (jnp.int32(0), w0, w0, path0, losses0, state0, state0 if return_state else None, jnp.int32(-1))
    carry, _ = jax.lax.scan(step, carry0, None, length=steps + 1)
    _, _, _, path, losses, _, state_last, diverged_at = carry
    return path, losses, lrs, diverged_at, state_last


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
            opt, loss_fn, w0, steps, schedule, noise, key, value_and_grad, return_state
        )
        out.append(Trajectory(jax.vmap(unravel)(params), losses, lrs, diverged_at, state))
    return out


@functools.partial(jax.jit, static_argnums=3)
def _run_surface(opt, surface, x0, steps):
    """``run``'s slider case (one optimizer on a surface, no schedule, noise or state): ``_run`` without its
    tuple, ``None`` arguments and static keywords, which cost ~2 µs of a ~30 µs call in jax's dispatch."""
    out = _scan(opt, surface, x0, steps, None, None, None, surface.value_and_grad)
    return Trajectory(*out[:4])


_ARRAY = type(jnp.zeros(()))  # the concrete jax.Array class: isinstance(x, jax.Array) costs ~0.7 us
_F32 = np.dtype(np.float32)
_start_cache: list = [None, None]  # [(shape, bytes) of the last NumPy start, its device copy or None]


def _device_start(x0: np.ndarray):
    """A device copy of a small float32 NumPy start seen twice in a row (e.g. ``surface.start`` on every
    slider move), compared by value: a jitted call with a NumPy argument costs ~4 us more than with a device
    array. A start seen once is passed as it is (making the copy costs ~20 us)."""
    if x0.size > 64:
        return x0
    key = (x0.shape, x0.tobytes())
    if key != _start_cache[0]:
        _start_cache[0], _start_cache[1] = key, None
        return x0
    copy = _start_cache[1]
    if copy is None:
        copy = jnp.asarray(x0)
        if type(copy) is not _ARRAY:  # inside a jit or vmap trace: a tracer, not to be kept
            return x0
        _start_cache[1] = copy
    return copy


def _validate(opts, surface_or_fn, x0, steps, schedule, noise, key):
    for opt in opts:
        if not isinstance(opt, Optimizer):
            raise TypeError(f"opt must be an optimizer from ll.optimizers, got opt={opt!r}")
    if not callable(surface_or_fn):
        raise TypeError(f"surface_or_fn must be a Surface or a function of w, got {surface_or_fn!r}")
    if type(steps) is not int or steps <= 0:  # the common case first: run() is called on every slider move
        steps = _checks.positive_int("steps", steps, array=False)
    if schedule is not None:
        if isinstance(schedule, ReduceOnPlateau):
            raise TypeError(
                "reduce_on_plateau is driven by a metric once per epoch: use it with ll.training.fit, not run"
            )
        if not isinstance(schedule, Schedule):
            raise TypeError(
                "schedule must be a step schedule from ll.schedules (called as schedule(t)), "
                f"got {schedule!r}"
            )
    if key is None:
        if _checks.is_traced(noise) or noise != 0:
            raise ValueError(f"noise={noise!r} needs a random key: pass key=jax.random.key(seed)")
        noise = None  # the noise-free version ignores it
    elif not _checks.is_traced(noise):
        noise = _checks.nonnegative("noise", noise)
    if type(x0) is _ARRAY and x0.dtype is _F32:
        pass  # the common case, kept cheap
    elif isinstance(x0, (list, tuple, int, float, np.ndarray, np.number)):
        x0 = _device_start(np.asarray(x0, np.float32))  # numbers or nested lists of numbers
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
      noise: standard deviation of Gaussian noise added to every gradient coordinate (needs ``key``): step
        ``t`` adds ``noise * gaussian_noise(key, steps, x0_size)[t]`` to the gradient.
      key: a ``jax.random.key`` (any implementation, or a legacy uint32 key). The noise is a deterministic
        function of ``key``, the step and the coordinate, drawn inside the loop: two words folded from
        ``jax.random.key_data(key)`` key a counter-based hash (lowbias32), Box–Muller turns its words into
        N(0, 1) draws, independent across coordinates, steps and keys (see :func:`gaussian_noise`). It does
        not use ``jax.random.normal``, and the noise of step ``t`` does not depend on ``steps``.
      return_state: also return the optimizer's final state as ``traj.state`` (else ``None``).

    Works under ``jax.vmap`` over learning rates, seeds, starting points and surface parameters.
    """
    if (  # the slider case, checked in ~0.3 µs instead of _validate's ~1.5: a surface, a plain run
        type(surface_or_fn) is Surface and schedule is None and key is None and return_state is False
        and type(noise) in (float, int) and noise == 0 and type(steps) is int and steps > 0
        and isinstance(opt, Optimizer)
    ):  # fmt: skip
        if type(x0) is np.ndarray:
            x0 = _device_start(x0 if x0.dtype is _F32 else x0.astype(np.float32))
        if type(x0) is _ARRAY:
            aval = x0.aval  # a slot, where x0.shape and x0.dtype are properties (~0.1 µs each)
            if aval.shape == (2,) and aval.dtype == _F32:
                return _run_surface(opt, surface_or_fn, x0, steps)
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
