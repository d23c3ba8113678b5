"""Speed of a 500-step 2-D trajectory: ``ll.run`` against the loops a user would write instead.

Workloads are (GD, Nesterov, Adam) x (quadratic, Rosenbrock), each from the surface's ``start``. Every
implementation does the same updates (PyTorch's formulas, float32) and its final point is checked against
``ll.run``'s, so the table compares the same work:

- ``ll.run``: one jitted ``lax.scan`` (it also records the whole path, the losses and divergence);
- optax: ``optax.sgd`` / ``optax.sgd(momentum=0.9, nesterov=True)`` / ``optax.adam`` with a jitted step
  (``jax.grad`` of the same surface inside it) called from a Python loop;
- ``torch.optim``: SGD / SGD(momentum=0.9, nesterov=True) / Adam with ``backward()`` in a Python loop;
- NumPy: hand-written gradients and update rules in a Python loop.

Run ``python benchmarks/bench_trajectories.py`` (``--quick`` for a smoke run, ``--markdown PATH`` to save the
table). optax and torch are optional: a missing one gives ``n/a`` in its columns.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import lecture_lib as ll

try:
    import optax
except ImportError:  # pragma: no cover - optax is in the [test] extra
    optax = None
try:
    import torch
except ImportError:  # pragma: no cover - torch is in the [test] extra
    torch = None

SURFACE_NAMES = ("quadratic", "rosenbrock")
OPTIMIZER_NAMES = ("GD", "Nesterov", "Adam")
# Stable learning rates from each surface's start. On Rosenbrock, GD at 0.002 is still crawling along the
# valley after 500 steps (loss ~0.37: the lesson of the slide); Nesterov at 0.002 sits at the edge of
# stability (0.003 diverges) and its path becomes sensitive to rounding, so it runs at 0.001 (loss ~0.003).
LRS = {
    "quadratic": {"GD": 0.03, "Nesterov": 0.01, "Adam": 0.3},
    "rosenbrock": {"GD": 0.002, "Nesterov": 0.001, "Adam": 0.3},
}
BETA = 0.9  # Nesterov momentum
B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam
TOL = 1e-3  # final points agree to this, relative to max(1, |ll.run's final point|)

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


@dataclass
class Result:
    rows: list[Row]
    table: str  # the whole Markdown report: header lines and the table
    ok: bool  # every final point agrees with ll.run's within TOL
    max_deviation: float


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


def _ll_thunk(opt_name, surface, x0, lr, steps):
    opt = {"GD": ll.optimizers.sgd(lr), "Nesterov": ll.optimizers.nesterov(lr, BETA)}.get(opt_name)
    if opt is None:
        opt = ll.optimizers.adam(lr, B1, B2, EPS)
    return lambda: jax.block_until_ready(ll.run(opt, surface, x0, steps))


def _optax_thunk(opt_name, surface, x0, lr, steps):
    if opt_name == "GD":
        tx = optax.sgd(lr)
    elif opt_name == "Nesterov":
        tx = optax.sgd(lr, momentum=BETA, nesterov=True)
    else:
        tx = optax.adam(lr, b1=B1, b2=B2, eps=EPS)
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
        w = torch.tensor(x0, dtype=torch.float32, requires_grad=True)
        if opt_name == "GD":
            opt = torch.optim.SGD([w], lr=lr)
        elif opt_name == "Nesterov":
            opt = torch.optim.SGD([w], lr=lr, momentum=BETA, nesterov=True)
        else:
            opt = torch.optim.Adam([w], lr=lr, betas=(B1, B2), eps=EPS)
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

    def gd():
        w = np.array(x0, np.float32)
        for _ in range(steps):
            w = w - lr * grad(w)
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

    return {"GD": gd, "Nesterov": nesterov, "Adam": adam}[opt_name]


# ---- measuring --------------------------------------------------------------------------------------------


def _median_us(thunk: Callable, repeats: int) -> float:
    """Median wall time of ``thunk()`` in microseconds, garbage collection paused while timing."""
    times = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            thunk()
            times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times) * 1e6


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
        loops["optax"] = _optax_thunk(opt_name, surface, x0, lr, steps)
    if torch is not None:
        loops["torch"] = _torch_thunk(opt_name, surface_name, theta, x0, lr, steps)
    for impl, thunk in loops.items():
        final = thunk()  # warm-up (compiles optax's step) and the correctness check
        row.deviations[impl] = _deviation(final, reference)
        setattr(row, f"{impl}_us", _median_us(thunk, loop_repeats))
    return row


# ---- report -----------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 0, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{suffix}"


def _header(args, torch_threads) -> list[str]:
    versions = [f"python {platform.python_version()}", f"jax {jax.__version__}"]
    versions.append(f"optax {optax.__version__}" if optax is not None else "optax missing")
    versions.append(f"torch {torch.__version__}" if torch is not None else "torch missing")
    versions.append(f"numpy {np.__version__}")
    cache = jax.config.jax_compilation_cache_dir
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    xla_flags = os.environ.get("XLA_FLAGS") or "unset"
    return [
        f"# ll.run against Python-loop optimizers: {args.steps}-step 2-D trajectories",
        "",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"JAX backend {jax.default_backend()}, load average {load}",
        f"- versions: {', '.join(versions)}",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- medians of {args.run_repeats} calls (ll.run) and {args.loop_repeats} runs (loops) after warm-up, "
        f"time.perf_counter, GC paused while timing; torch threads: {torch_threads}; "
        f"JAX persistent compilation cache: {cache or 'off'}; XLA_FLAGS: {xla_flags}",
    ]


def _table(rows: list[Row], ok: bool, max_dev: float, tol: float) -> list[str]:
    lines = [
        "| workload | lr | ll.run µs | first call ms | optax loop µs | torch loop µs | numpy µs "
        "| speed-up vs optax | vs torch | final loss | max rel. dev. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            r.workload,
            f"{r.lr:g}",
            _fmt(r.run_us, 1),
            _fmt(r.first_call_ms, 0),
            _fmt(r.optax_us),
            _fmt(r.torch_us),
            _fmt(r.numpy_us),
            _fmt(r.speedup(r.optax_us), 0, "×"),
            _fmt(r.speedup(r.torch_us), 0, "×"),
            f"{r.final_loss:.2e}",
            f"{r.max_deviation:.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "ll.run µs: one call including `block_until_ready` (it also returns the whole path and the losses). "
        "First call: the very first call after `jax.clear_caches()`, i.e. tracing + XLA compilation + run "
        "(in a session, a second surface with the same optimizer reuses the compiled run). Loops include "
        "creating the optimizer state. Speed-ups are loop time / ll.run time from this run.",
        "",
        f"correctness: final points of optax, torch and numpy agree with ll.run's within {tol:g} "
        f"(relative to max(1, |w|)): {'yes' if ok else 'NO'}, max deviation {max_dev:.1e}",
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny repeat counts (a smoke run)")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="trajectory length (default 500)")
    p.add_argument("--repeats", type=int, help="timed repeats for ll.run and the loops alike")
    p.add_argument("--run-repeats", type=int, help="timed ll.run calls (default 200, --quick 20)")
    p.add_argument("--loop-repeats", type=int, help="timed Python-loop runs (default 20, --quick 3)")
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
    return args


def main(argv=None) -> Result:
    """Run the benchmark, print the Markdown report and return it with the measurements."""
    args = _parse(argv)
    threads_before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(args.torch_threads)
    try:
        rows = [
            _measure(o, s, args.steps, args.run_repeats, args.loop_repeats)
            for s in SURFACE_NAMES
            for o in OPTIMIZER_NAMES
        ]
    finally:
        if torch is not None:
            torch.set_num_threads(threads_before)
    max_dev = max(r.max_deviation for r in rows)
    ok = all(math.isfinite(r.max_deviation) and r.max_deviation <= TOL for r in rows)
    threads = args.torch_threads if torch is not None else "n/a"
    report = "\n".join(_header(args, threads) + [""] + _table(rows, ok, max_dev, TOL)) + "\n"
    print(report, end="")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report)
    return Result(rows, report, ok, max_dev)


if __name__ == "__main__":
    sys.exit(0 if main().ok else 1)
