r"""Why Newton is hard for deep learning, measured: forming the Hessian costs :math:`O(n^2)`, solving with it
:math:`O(n^3)`, a Hessian-vector product :math:`O(n)` (recap slide "Second-order optimization").

The function is a one-hidden-layer tanh network on a fixed batch, with about ``n`` weights, so one loss
evaluation costs :math:`O(n)`. For each size, each operation is compiled once and timed (best of repeated
calls). Memory is XLA's own account of the compiled computation's buffers (output plus temporaries). The
figure is ``lecture_lib.panels.hessian_cost.figure``; ``benchmarks/bench_curvature.py`` prints the table.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture_lib import curvature

SIZES = (100, 200, 400, 800, 1600)
D_IN = 8  # inputs of the network
BATCH = 16  # fixed batch: the loss costs O(BATCH · n)
HVP_BATCH = 1024  # Hessian-vector products per timed call (shares the fixed cost of a call)
TARGET_S = 0.02  # repeat each measurement for at least this long
OPERATIONS = ("form H", "solve (H + I)x = g", "Hessian-vector product")
EXTRAPOLATE_TO = (1e6, 1e8)


class HessianCost(NamedTuple):
    n: np.ndarray  # (k,) number of weights
    seconds: np.ndarray  # (3, k) per operation (OPERATIONS), one repetition
    bytes: np.ndarray  # (3, k) XLA buffer bytes (output + temporaries) of one repetition's computation
    # (3, k) floating-point operations of one repetition: XLA's count of the compiled program for forming H
    # and for one HVP; for the solve LAPACK's LU count, 2n³/3 + 2n² (XLA cannot see inside the library call)
    flops: np.ndarray | None = None


def tanh_net(hidden: int, key=None, *, seed: int = 0):
    """The loss of a D_IN-hidden-1 tanh net on a fixed batch, as a function of the flat weights, and w₀.

    The batch and w₀ are drawn from ``key`` (``jax.random``) or, without one, from NumPy's generator seeded
    with ``seed``: the same numbers at every size, and no random-number program to compile per size.
    """
    n = hidden * (D_IN + 2) + 1
    if key is not None:
        kx, ky, kw = jax.random.split(key, 3)
        x = jax.random.normal(kx, (BATCH, D_IN))
        y = jax.random.normal(ky, (BATCH,))
        w0 = jax.random.normal(kw, (n,)) / np.sqrt(D_IN)
    else:
        rng = np.random.default_rng(seed)
        x = jax.device_put(rng.standard_normal((BATCH, D_IN), np.float32))
        y = jax.device_put(rng.standard_normal(BATCH, np.float32))
        w0 = jax.device_put(rng.standard_normal(n, np.float32) / np.float32(np.sqrt(D_IN)))

    def loss(w):
        W1 = w[: hidden * D_IN].reshape(hidden, D_IN)
        b1 = w[hidden * D_IN : hidden * (D_IN + 1)]
        w2, b2 = w[hidden * (D_IN + 1) : -1], w[-1]
        h = jnp.tanh(x @ W1.T + b1[None, :])
        r = h @ w2 + b2 - y
        return 0.5 * jnp.mean(r * r)

    return loss, w0


def _programs(loss, w, V):
    """Forming H (and g), solving with H and HVP_BATCH products, each compiled once for this size."""
    vector, matrix = jax.ShapeDtypeStruct(w.shape, w.dtype), jax.ShapeDtypeStruct((w.size, w.size), w.dtype)
    form = jax.jit(lambda w: (curvature.hessian(loss, w), jax.grad(loss)(w))).lower(w)
    # damped, H + I: the Hessian of a small net on a small batch may be singular
    solve = jax.jit(lambda H, g: jnp.linalg.solve(H + jnp.eye(g.size, dtype=g.dtype), g)).lower(
        matrix, vector
    )
    hvp = jax.jit(jax.vmap(lambda v: curvature.hvp(loss, w, v))).lower(V)
    return form.compile(), solve.compile(), hvp.compile()


def _time(fn, args, per_call: int = 1) -> tuple[float, object]:
    """Best time of a call after a warm-up, repeated until TARGET_S has passed (at least twice)."""
    out = jax.block_until_ready(fn(*args))  # also loads LAPACK, which the limit below must see
    times, start = [], time.perf_counter()
    with _one_blas_thread():
        while len(times) < 2 or time.perf_counter() - start < TARGET_S:
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t)
    return min(times) / per_call, out


def _one_blas_thread():
    """LAPACK (behind ``jnp.linalg.solve`` on CPU) on one thread: on a busy machine its spinning threads
    make solve times jump 100-fold from call to call; one thread measures the O(n³) work itself."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _flops(compiled, per_call: int = 1) -> float:
    """XLA's operation count of the compiled computation (deterministic: no clock involved)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jaxlib: one dict per program
    return float(cost.get("flops", np.nan)) / per_call if cost else np.nan


def lu_solve_flops(n) -> np.ndarray:
    """Operations of solving an n×n system by LU (LAPACK getrf + getrs): 2n³/3 + 2n²."""
    n = np.asarray(n, float)
    return 2 * n**3 / 3 + 2 * n**2


def _bytes(compiled, per_call: int = 1) -> float:
    """XLA's own account of the compiled computation's buffers: output + temporaries."""
    m = compiled.memory_analysis()
    return float(m.output_size_in_bytes + m.temp_size_in_bytes) / per_call if m is not None else np.nan


def measure(sizes=SIZES, *, seed=0) -> HessianCost:
    """Time and memory of forming H, solving with it and one HVP, for nets with about ``sizes`` weights.

    Hessian-vector products are timed HVP_BATCH at a time (vmapped) and reported per product: one product
    at n = 100 is a few microseconds of arithmetic, less than the fixed cost of calling a compiled function.
    Always on the CPU, also where a GPU is the default: there time follows the operation count, while a
    GPU's fixed launch costs would flatten every slope at these small sizes.
    """
    ns, seconds, nbytes, flops = [], [], [], []
    with jax.default_device(jax.devices("cpu")[0]):
        for target in sizes:
            hidden = max(1, round((target - 1) / (D_IN + 2)))
            loss, w = tanh_net(hidden, seed=seed)
            V = jax.device_put(
                np.random.default_rng(seed + 1).standard_normal((HVP_BATCH, w.size), np.float32)
            )
            form, solve, hvp = _programs(loss, w, V)
            t_form, (H, g) = _time(form, (w,))
            t_solve, _ = _time(solve, (H, g))
            t_hvp, _ = _time(hvp, (V,), HVP_BATCH)
            ns.append(w.size)
            seconds.append((t_form, t_solve, t_hvp))
            nbytes.append((_bytes(form), _bytes(solve), _bytes(hvp, HVP_BATCH)))
            flops.append((_flops(form), float(lu_solve_flops(w.size)), _flops(hvp, HVP_BATCH)))
    return HessianCost(np.asarray(ns), np.asarray(seconds).T, np.asarray(nbytes).T, np.asarray(flops).T)


def slopes(cost: HessianCost, of: str = "seconds") -> np.ndarray:
    """Fitted log-log slopes against n, one per operation, of the measured ``"seconds"`` (≈ 2, 3, 1, flattened
    by fixed costs at small n and bent by caches at large n) or of the operation counts ``"flops"`` (2, 3, 1:
    no clock involved, the same on every machine)."""
    if of not in ("seconds", "flops"):
        raise ValueError(f"of must be 'seconds' or 'flops', got of={of!r}")
    values = getattr(cost, of)
    if values is None:
        raise ValueError("this HessianCost has no operation counts (flops=None); measure() records them")
    x = np.log(cost.n)
    return np.array([np.polyfit(x, np.log(t), 1)[0] for t in values])


EXPONENTS = np.array([2.0, 3.0, 1.0])  # textbook: forming O(n²), solving O(n³), one HVP O(n)


def extrapolate(cost: HessianCost, n) -> np.ndarray:
    """Seconds per operation at ``n`` weights, shape (3, len(n)): the textbook power law n^p (p = 2, 3, 1)
    through the largest measurement (fixed costs flatten the small sizes: fitted slopes understate p)."""
    n = np.atleast_1d(np.asarray(n, float))
    return cost.seconds[:, -1:] * (n[None, :] / cost.n[-1]) ** EXPONENTS[:, None]


def dense_hessian_bytes(n, itemsize: int = 4):
    """Bytes of a dense n × n Hessian: 4n² in float32 (4 TB at n = 10⁶, 40 PB at 10⁸)."""
    return itemsize * np.asarray(n, float) ** 2


def _three_digits(x: float) -> str:
    """3 significant digits, in full with thousands separators: 549,000 rather than 5.49e+05."""
    return f"{float(f'{x:.3g}'):,.0f}" if x >= 1000 else f"{x:.3g}"


def human_time(s: float) -> str:
    for unit, size in (("years", 3.156e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if s >= size:
            return f"{_three_digits(s / size)} {unit}"
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} µs"


def human_bytes(b: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"
