"""Speed of a 500-step 2-D trajectory: ``ll.run`` against the loops a user would write instead.

Workloads are the six first-order optimizers (GD, momentum, Nesterov, AdaGrad, RMSProp, Adam) x (quadratic,
Rosenbrock), each from the surface's ``start``. Every implementation does the same updates (PyTorch's
formulas, float32) and its final point is checked against ``ll.run``'s, so the table compares the same work:

- ``ll.run``: one jitted ``lax.scan`` returning the record of the contract: the path, the losses, the rate
  of every step and the step of divergence (four arrays); the learning rate and the surface are data, so no
  slider move compiles;
- optax in ``lax.scan``: the same optax transformation stepped by one jitted ``lax.scan`` that returns the
  same four arrays, with the learning rate as data (the surface is compiled in): the same compiled work, the
  reference of the ≤ 1.5x target;
- optax in ``lax.scan``, path and losses only: the lightest scan a user might write (two arrays, the learning
  rate compiled in), shown for reference: each array a jitted call returns costs JAX ~2 µs to create and
  ~1-2 µs to wait for (``jax.block_until_ready``) on this machine;
- optax, Python loop: ``optax.sgd`` / ``sgd(momentum=0.9)`` / ``sgd(momentum=0.9, nesterov=True)`` /
  ``adagrad`` / ``rmsprop`` / ``adam`` with a jitted step (``jax.grad`` of the same surface inside it) called
  from a Python loop;
- ``torch.optim``: SGD (plain, momentum, Nesterov) / Adagrad / RMSprop / Adam with ``backward()`` in a Python
  loop;
- NumPy: hand-written gradients and update rules in a Python loop.

Targets (issue 8): ``ll.run`` at least 100x faster than the optax and torch Python loops, and within 1.5x of
optax in ``lax.scan``. Run ``python benchmarks/bench_trajectories.py`` (``--quick`` for a smoke run,
``--optimizers``/``--surfaces`` for a subset, ``--markdown PATH`` to save the table). optax and torch are
optional: a missing one gives ``n/a`` in its columns.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import lecture_lib as ll

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (tests, run.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

try:
    import optax
except ImportError:  # pragma: no cover - optax is in the [test] extra
    optax = None
try:
    import torch
except ImportError:  # pragma: no cover - torch is in the [test] extra
    torch = None

SURFACE_NAMES = ("quadratic", "rosenbrock")
OPTIMIZER_NAMES = ("GD", "momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam")
QUICK_OPTIMIZERS = ("GD", "Adam")  # --quick: the cheapest and the most expensive step
# Stable learning rates from each surface's start. On Rosenbrock, GD at 0.002 is still crawling along the
# valley after 500 steps (loss ~0.37: the lesson of the slide); Nesterov at 0.002 sits at the edge of
# stability (0.003 diverges) and its path becomes sensitive to rounding, so it runs at 0.001 (loss ~0.003).
LRS = {
    "quadratic": {
        "GD": 0.03,
        "momentum": 0.01,
        "Nesterov": 0.01,
        "AdaGrad": 0.5,
        "RMSProp": 0.01,
        "Adam": 0.3,
    },
    "rosenbrock": {
        "GD": 0.002,
        "momentum": 0.0005,
        "Nesterov": 0.001,
        "AdaGrad": 0.3,
        "RMSProp": 0.001,
        "Adam": 0.3,
    },
}
BETA = 0.9  # momentum and Nesterov
ADAGRAD_EPS = 1e-10  # torch's default
DECAY, RMS_EPS = 0.99, 1e-8  # RMSProp: torch's defaults
B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam
TOL = 1e-3  # final points agree to this, relative to max(1, |ll.run's final point|)
TARGETS = {"loops": 100.0, "scan": 1.5}  # ≥ 100x the optax/torch Python loops; ≤ 1.5x optax in lax.scan

DEFAULTS = {"steps": 500, "run_repeats": 200, "loop_repeats": 20}
QUICK = {"run_repeats": 20, "loop_repeats": 3}


@dataclass
class Row:
    """One workload's measurements: times in microseconds (None where the library is missing)."""

    optimizer: str
    surface: str
    lr: float
    run_us: float
    first_call_ms: float
    final_loss: float
    scan_us: float | None = None  # optax in lax.scan, the same record (path, losses, rates, divergence)
    light_us: float | None = None  # optax in lax.scan, path and losses only, constants compiled in
    optax_us: float | None = None
    torch_us: float | None = None
    numpy_us: float | None = None
    deviations: dict[str, float] = field(default_factory=dict)  # implementation -> relative deviation

    @property
    def workload(self) -> str:
        return f"{self.optimizer} / {self.surface}"

    @property
    def max_deviation(self) -> float:
        return max(self.deviations.values(), default=0.0)

    def speedup(self, other_us: float | None) -> float | None:
        return None if other_us is None else other_us / self.run_us

    @property
    def vs_scan(self) -> float | None:  # ll.run time ÷ optax-in-scan time: ≤ 1.5 is the target
        return None if self.scan_us is None else self.run_us / self.scan_us

    @property
    def vs_light(self) -> float | None:  # ll.run time ÷ the lightest scan's (shown, no target)
        return None if self.light_us is None else self.run_us / self.light_us

    @property
    def loops_met(self) -> bool | None:
        ups = [self.speedup(self.optax_us), self.speedup(self.torch_us)]
        return None if None in ups else min(ups) >= TARGETS["loops"]

    @property
    def scan_met(self) -> bool | None:
        return None if self.vs_scan is None else self.vs_scan <= TARGETS["scan"]


@dataclass
class Result:
    rows: list[Row]
    table: str  # the whole Markdown report: header lines and the table
    ok: bool  # every final point agrees with ll.run's within TOL
    max_deviation: float

    def targets(self) -> dict[str, bool | None]:
        """ "loops" (≥100x the optax and torch loops) and "scan" (≤1.5x optax in scan), over every row."""
        out = {}
        for name in ("loops", "scan"):
            values = [getattr(r, f"{name}_met") for r in self.rows]
            out[name] = None if None in values else all(values)
        return out


# ---- the surfaces outside JAX --------------------------------------------------------------------------


def _theta(surface) -> tuple[float, float]:
    return tuple(float(t) for t in np.asarray(surface.theta))


def _torch_loss(name: str, theta):
    p, q = theta
    if name == "quadratic":  # kappa, angle
        c, s = math.cos(q), math.sin(q)

        def loss(w):
            u = c * w[0] + s * w[1]
            v = -s * w[0] + c * w[1]
            return 0.5 * (u * u + p * v * v)

    else:  # rosenbrock: a, b

        def loss(w):
            return (p - w[0]) ** 2 + q * (w[1] - w[0] ** 2) ** 2

    return loss


def _numpy_grad(name: str, theta):
    p, q = theta
    if name == "quadratic":  # gradient H w of 1/2 w^T H w, H = R^T diag(1, kappa) R
        c, s = math.cos(q), math.sin(q)
        R = np.array([[c, s], [-s, c]])
        H = (R.T @ np.diag([1.0, p]) @ R).astype(np.float32)
        return lambda w: H @ w
    a, b = np.float32(p), np.float32(q)

    def grad(w):
        x, y = w[0], w[1]
        r = y - x * x
        return np.array([-2 * (a - x) - 4 * b * x * r, 2 * b * r], np.float32)

    return grad


# ---- one trajectory per implementation: each returns a thunk doing the whole run ------------------------


def ll_optimizer(opt_name, lr):
    O = ll.optimizers
    return {
        "GD": lambda: O.sgd(lr),
        "momentum": lambda: O.momentum(lr, BETA),
        "Nesterov": lambda: O.nesterov(lr, BETA),
        "AdaGrad": lambda: O.adagrad(lr, ADAGRAD_EPS),
        "RMSProp": lambda: O.rmsprop(lr, DECAY, RMS_EPS),
        "Adam": lambda: O.adam(lr, B1, B2, EPS),
    }[opt_name]()


def optax_transform(opt_name, lr):
    """The optax transformation with torch's numbers (AdaGrad: no initial accumulator; RMSProp: ε outside
    the square root)."""
    return {
        "GD": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=BETA),
        "Nesterov": lambda: optax.sgd(lr, momentum=BETA, nesterov=True),
        "AdaGrad": lambda: optax.adagrad(lr, initial_accumulator_value=0.0, eps=ADAGRAD_EPS),
        "RMSProp": lambda: optax.rmsprop(lr, decay=DECAY, eps=RMS_EPS, eps_in_sqrt=False),
        "Adam": lambda: optax.adam(lr, b1=B1, b2=B2, eps=EPS),
    }[opt_name]()


def torch_optimizer(opt_name, params, lr):
    o = torch.optim
    return {
        "GD": lambda: o.SGD(params, lr=lr),
        "momentum": lambda: o.SGD(params, lr=lr, momentum=BETA),
        "Nesterov": lambda: o.SGD(params, lr=lr, momentum=BETA, nesterov=True),
        "AdaGrad": lambda: o.Adagrad(params, lr=lr, eps=ADAGRAD_EPS),
        "RMSProp": lambda: o.RMSprop(params, lr=lr, alpha=DECAY, eps=RMS_EPS),
        "Adam": lambda: o.Adam(params, lr=lr, betas=(B1, B2), eps=EPS),
    }[opt_name]()


def _ll_thunk(opt_name, surface, x0, lr, steps):
    opt = ll_optimizer(opt_name, lr)
    return lambda: jax.block_until_ready(ll.run(opt, surface, x0, steps))


def _optax_scan_thunk(opt_name, surface, x0, lr, steps):
    """optax stepped by one jitted lax.scan returning ll.run's record: the path, the losses, the rates and
    the first step with a non-finite loss (-1 if none); the learning rate is an argument (data)."""
    value_and_grad = jax.value_and_grad(lambda w: surface(w))

    @jax.jit
    def scan_run(w0, lr):
        tx = optax_transform(opt_name, lr)

        def step(carry, t):
            w, state, diverged_at = carry
            loss, g = value_and_grad(w)
            diverged_at = jnp.where((diverged_at < 0) & ~jnp.isfinite(loss), t, diverged_at)
            updates, state = tx.update(g, state, w)
            return (optax.apply_updates(w, updates), state, diverged_at), (w, loss)

        carry0 = (w0, tx.init(w0), jnp.int32(-1))
        (_, _, diverged_at), (path, losses) = jax.lax.scan(step, carry0, jnp.arange(steps + 1))
        return path, losses, jnp.full(steps, lr, jnp.float32), diverged_at

    w0, lr = jnp.asarray(x0, jnp.float32), jnp.float32(lr)
    return lambda: jax.block_until_ready(scan_run(w0, lr))  # the final point is read outside the timed call


def _optax_scan_light_thunk(opt_name, surface, x0, lr, steps):
    """optax stepped by one jitted lax.scan recording only the path and the losses, the learning rate
    compiled in: the lightest scan."""
    tx = optax_transform(opt_name, lr)
    value_and_grad = jax.value_and_grad(lambda w: surface(w))

    @jax.jit
    def scan_run(w0):
        loss0, g0 = value_and_grad(w0)

        def step(carry, _):
            w, state, g = carry
            updates, state = tx.update(g, state, w)
            w = optax.apply_updates(w, updates)
            loss, g = value_and_grad(w)
            return (w, state, g), (w, loss)

        _, (ws, losses) = jax.lax.scan(step, (w0, tx.init(w0), g0), None, length=steps)
        return jnp.concatenate([w0[None], ws]), jnp.concatenate([loss0[None], losses])

    w0 = jnp.asarray(x0, jnp.float32)
    return lambda: jax.block_until_ready(scan_run(w0))


def _optax_thunk(opt_name, surface, x0, lr, steps):
    tx = optax_transform(opt_name, lr)
    grad = jax.grad(lambda w: surface(w))

    @jax.jit
    def step(w, state):
        updates, state = tx.update(grad(w), state, w)
        return optax.apply_updates(w, updates), state

    def thunk():
        w = jnp.asarray(x0)
        state = tx.init(w)
        for _ in range(steps):
            w, state = step(w, state)
        return jax.block_until_ready(w)

    return thunk


def _torch_thunk(opt_name, name, theta, x0, lr, steps):
    loss_fn = _torch_loss(name, theta)

    def thunk():
        w = torch.tensor(np.asarray(x0), dtype=torch.float32, requires_grad=True)
        opt = torch_optimizer(opt_name, [w], lr)
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(w).backward()
            opt.step()
        return w.detach()

    return thunk


def _numpy_thunk(opt_name, name, theta, x0, lr, steps):
    grad = _numpy_grad(name, theta)
    lr = np.float32(lr)
    beta, b1, b2, eps = np.float32(BETA), np.float32(B1), np.float32(B2), np.float32(EPS)
    decay = np.float32(DECAY)

    def gd():
        w = np.array(x0, np.float32)
        for _ in range(steps):
            w = w - lr * grad(w)
        return w

    def momentum():
        w = np.array(x0, np.float32)
        b = np.zeros_like(w)
        for _ in range(steps):
            b = beta * b + grad(w)
            w = w - lr * b
        return w

    def adagrad():
        w = np.array(x0, np.float32)
        s = np.zeros_like(w)
        for _ in range(steps):
            g = grad(w)
            s = s + g * g
            w = w - lr * g / (np.sqrt(s) + np.float32(ADAGRAD_EPS))
        return w

    def rmsprop():
        w = np.array(x0, np.float32)
        v = np.zeros_like(w)
        for _ in range(steps):
            g = grad(w)
            v = decay * v + (1 - decay) * g * g
            w = w - lr * g / (np.sqrt(v) + np.float32(RMS_EPS))
        return w

    def nesterov():
        w = np.array(x0, np.float32)
        b = np.zeros_like(w)
        for _ in range(steps):
            g = grad(w)
            b = beta * b + g
            w = w - lr * (g + beta * b)
        return w

    def adam():
        w = np.array(x0, np.float32)
        m, v = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, steps + 1):
            g = grad(w)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = lr / (1 - b1**t)
            w = w - step * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
        return w

    return {
        "GD": gd,
        "momentum": momentum,
        "Nesterov": nesterov,
        "AdaGrad": adagrad,
        "RMSProp": rmsprop,
        "Adam": adam,
    }[opt_name]


# ---- measuring --------------------------------------------------------------------------------------------


def _median_us(thunk: Callable, repeats: int) -> float:
    """Median wall time of ``thunk()`` in microseconds, garbage collection paused while timing."""
    return common.median(common.times_ms(thunk, repeats)) * 1e3


def _deviation(final, reference) -> float:
    final, reference = np.asarray(final, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(final - reference)) / max(1.0, float(np.max(np.abs(reference)))))


def _measure(opt_name, surface_name, steps, run_repeats, loop_repeats) -> Row:
    surface = ll.surfaces.SURFACES[surface_name]
    x0, theta, lr = surface.start, _theta(surface), LRS[surface_name][opt_name]

    run = _ll_thunk(opt_name, surface, x0, lr, steps)
    jax.clear_caches()  # so that the first call traces and compiles (both surfaces share one compiled run)
    t0 = time.perf_counter()
    traj = run()
    first_call_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(3):
        run()
    reference = np.asarray(traj.params[-1])
    row = Row(
        opt_name,
        surface_name,
        lr,
        run_us=_median_us(run, run_repeats),
        first_call_ms=first_call_ms,
        final_loss=float(traj.losses[-1]),
    )

    loops = {"numpy": _numpy_thunk(opt_name, surface_name, theta, x0, lr, steps)}
    if optax is not None:
        loops["scan"] = _optax_scan_thunk(opt_name, surface, x0, lr, steps)
        loops["light"] = _optax_scan_light_thunk(opt_name, surface, x0, lr, steps)
        loops["optax"] = _optax_thunk(opt_name, surface, x0, lr, steps)
    if torch is not None:
        loops["torch"] = _torch_thunk(opt_name, surface_name, theta, x0, lr, steps)
    for impl, thunk in loops.items():
        final = thunk()  # warm-up (compiles optax's step) and the correctness check
        if impl in ("scan", "light"):
            final = final[0][-1]  # (path, losses, ...): its last point
        row.deviations[impl] = _deviation(final, reference)
        if impl in ("scan", "light"):
            for _ in range(3):
                thunk()
        else:
            setattr(row, f"{impl}_us", _median_us(thunk, loop_repeats))
    if optax is not None:  # the jitted scans: as many repeats as ll.run, interleaved with its calls
        row.run_us, row.scan_us, row.light_us = _interleaved_us(
            (run, loops["scan"], loops["light"]), run_repeats
        )
    return row


def _interleaved_us(thunks, repeats: int) -> tuple[float, ...]:
    """Medians (µs) of thunks timed in turn, in rounds of 10 calls each: all see the same load.

    One garbage collection before all the rounds, none between them: a full collection evicts the caches,
    and the first ~5 calls after it ran 1.5-9x slower (ll.run: ~300, 54, 43, 39 µs, then 35), so a
    collection before every round of 10 lifted the median by ~2-4 µs, measuring the collection's aftermath
    rather than the call. The first call of a round follows another program's calls and is slower (~1.5x
    for ll.run): each round's median counts it like the other nine."""
    times = [[] for _ in thunks]
    gc.collect()
    for _ in range(max(1, -(-repeats // 10))):
        for thunk, out in zip(thunks, times, strict=True):
            out.append(common.median(common.times_ms(thunk, min(10, repeats), collect=False)) * 1e3)
    return tuple(statistics.median(t) for t in times)


# ---- report -----------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 0, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{suffix}"


def _header(args, torch_threads, load_before) -> list[str]:
    cache = jax.config.jax_compilation_cache_dir
    xla_flags = os.environ.get("XLA_FLAGS") or "unset"
    return [
        f"# ll.run against optax and Python-loop optimizers: {args.steps}-step 2-D trajectories",
        "",
        *common.header_lines(load_before),
        f"- medians of {args.run_repeats} calls (ll.run and the two optax scans, interleaved in rounds of "
        "10, one garbage collection before all rounds) and "
        f"{args.loop_repeats} runs (loops) after warm-up, time.perf_counter, GC paused while timing; "
        f"torch threads: {torch_threads}; JAX persistent compilation cache: {cache or 'off'}; "
        f"XLA_FLAGS: {xla_flags}",
    ]


def _table(rows: list[Row], ok: bool, max_dev: float, tol: float) -> list[str]:
    lines = [
        "| workload | lr | ll.run µs | first call ms | optax in scan µs | light scan µs | optax loop µs "
        "| torch loop µs | numpy µs | vs optax loop | vs torch | vs numpy | ll ÷ optax scan "
        "| ll ÷ light scan | target ≥100× loops | target ≤1.5× scan | final loss | max rel. dev. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in rows:
        cells = [
            r.workload,
            f"{r.lr:g}",
            _fmt(r.run_us, 1),
            _fmt(r.first_call_ms, 0),
            _fmt(r.scan_us, 1),
            _fmt(r.light_us, 1),
            _fmt(r.optax_us),
            _fmt(r.torch_us),
            _fmt(r.numpy_us),
            _fmt(r.speedup(r.optax_us), 0, "×"),
            _fmt(r.speedup(r.torch_us), 0, "×"),
            _fmt(r.speedup(r.numpy_us), 0, "×"),
            _fmt(r.vs_scan, 2, "×"),
            _fmt(r.vs_light, 2, "×"),
            common.met(r.loops_met),
            common.met(r.scan_met),
            f"{r.final_loss:.2e}",
            f"{r.max_deviation:.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "ll.run µs: one call including `jax.block_until_ready` of its four arrays (path, losses, rates, "
        "step of divergence), from the surface's NumPy start, as a slider does. First call: the very first "
        "call after `jax.clear_caches()`, i.e. tracing + XLA compilation + run (in a session, a second "
        "surface with the same optimizer reuses the compiled run). optax in scan: the same optax update "
        "stepped by one jitted `lax.scan` returning the same four arrays, the learning rate as an argument "
        "(the ≤1.5× target); light scan: path and losses only, the learning rate compiled in (no target: "
        "each further array costs ~3-4 µs of JAX's dispatch and blocking here). The three are timed in "
        "turn, in rounds of 10 calls. Loops include creating the optimizer state. Speed-ups are loop time / "
        "ll.run time from this run; the ≥100× target is against the optax and torch Python loops (NumPy is "
        "shown for reference).",
        "",
        f"correctness: final points of optax (scan and loop), torch and numpy agree with ll.run's within "
        f"{tol:g} (relative to max(1, |w|)): {'yes' if ok else 'NO'}, max deviation {max_dev:.1e}",
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"tiny repeat counts, optimizers {QUICK_OPTIMIZERS}")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="trajectory length (default 500)")
    p.add_argument("--repeats", type=int, help="timed repeats for ll.run and the loops alike")
    p.add_argument("--run-repeats", type=int, help="timed ll.run calls (default 200, --quick 20)")
    p.add_argument("--loop-repeats", type=int, help="timed Python-loop runs (default 20, --quick 3)")
    p.add_argument(
        "--optimizers", nargs="+", choices=OPTIMIZER_NAMES, help="default: all (--quick: GD, Adam)"
    )
    p.add_argument("--surfaces", nargs="+", choices=SURFACE_NAMES, default=list(SURFACE_NAMES))
    p.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    for name in ("run_repeats", "loop_repeats"):
        value = getattr(args, name) or args.repeats or base[name]
        setattr(args, name, value)
    for name in ("steps", "run_repeats", "loop_repeats", "torch_threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.optimizers is None:
        args.optimizers = list(QUICK_OPTIMIZERS if args.quick else OPTIMIZER_NAMES)
    return args


def main(argv=None) -> Result:
    """Run the benchmark, print the Markdown report and return it with the measurements."""
    args = _parse(argv)
    load_before = common.load()
    with common.torch_threads(args.torch_threads):
        rows = [
            _measure(o, s, args.steps, args.run_repeats, args.loop_repeats)
            for s in args.surfaces
            for o in args.optimizers
        ]
    max_dev = max(r.max_deviation for r in rows)
    ok = all(math.isfinite(r.max_deviation) and r.max_deviation <= TOL for r in rows)
    threads = args.torch_threads if torch is not None else "n/a"
    report = "\n".join(_header(args, threads, load_before) + [""] + _table(rows, ok, max_dev, TOL)) + "\n"
    print(report, end="")
    common.write(args.markdown, report)
    return Result(rows, report, ok, max_dev)


if __name__ == "__main__":
    sys.exit(0 if main().ok else 1)
