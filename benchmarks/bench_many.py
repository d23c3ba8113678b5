"""Speed of many noisy 2-D trajectories at once: ``ll.run`` under ``jax.vmap`` against batched PyTorch and
vectorised NumPy.

``trajectories`` runs of ``steps`` steps from the surface's ``start``, each with its own Gaussian gradient
noise (standard deviation ``NOISE`` on every coordinate, PyTorch's update formulas, float32):

- ``ll``: ``jax.jit(jax.vmap(lambda k: ll.run(opt, surface, x0, steps, noise=NOISE, key=k)))`` over one key a
  trajectory (the whole paths and losses come back, as a noise-fan plot needs them); its noise is
  ``ll.trajectories.gaussian_noise``: a counter-based hash of the key, step and coordinate through
  Box–Muller, drawn inside the loop (not ``jax.random.normal``, whose threefry bits and erf_inv were ~40% of
  the call);
- PyTorch: one ``(trajectories, 2)`` parameter tensor, ``torch.optim`` on it (every optimizer here is
  elementwise, so this is ``trajectories`` independent runs), the loss summed over trajectories, noise added
  to ``.grad`` before each ``step()``, a Python loop over the steps, the path recorded;
- NumPy: the same update vectorised over trajectories, hand-written gradients, a Python loop over the steps,
  ``rng.standard_normal`` noise each step.

Every implementation draws its own noise, so the check is statistical: the mean final loss over the
trajectories agrees with ``ll``'s within ``Z_TOL`` standard errors. Target (issue 8): ``ll`` ahead of both.
Run ``python benchmarks/bench_many.py`` (``--quick`` for a smoke run, ``--markdown PATH`` to save the table).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

import lecture_lib as ll

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (tests, run.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_trajectories as bt  # noqa: E402
import common  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the [test] extra
    torch = None

WORKLOADS = (("GD", "quadratic"), ("Adam", "quadratic"), ("GD", "rosenbrock"), ("Adam", "rosenbrock"))
QUICK_WORKLOADS = WORKLOADS[1:2]  # Adam on the quadratic
NOISE = 0.5  # gradient noise standard deviation
Z_TOL = 5.0
DEFAULTS = {"steps": 500, "trajectories": 1024, "repeats": 10}
QUICK = {"repeats": 3}


@dataclass
class Row:
    optimizer: str
    surface: str
    ll_ms: float
    first_ms: float
    torch_ms: float | None = None
    numpy_ms: float | None = None
    mean_loss: dict[str, tuple[float, float]] = field(default_factory=dict)  # impl -> (mean, std. error)

    @property
    def workload(self) -> str:
        return f"{self.optimizer} / {self.surface}"

    def speedup(self, impl: str) -> float | None:
        t = getattr(self, f"{impl}_ms")
        return None if t is None else t / self.ll_ms

    def z(self, impl: str) -> float:
        (m, s), (m0, s0) = self.mean_loss[impl], self.mean_loss["ll"]
        return abs(m - m0) / max(math.hypot(s, s0), 1e-30)

    @property
    def met(self) -> bool | None:
        ups = [self.speedup("torch"), self.speedup("numpy")]
        return None if None in ups else min(ups) > 1.0

    @property
    def ok(self) -> bool:
        return all(self.z(i) <= Z_TOL for i in self.mean_loss if i != "ll")


@dataclass
class Result:
    rows: list[Row]
    table: str
    ok: bool

    def targets(self) -> dict[str, bool | None]:
        values = [r.met for r in self.rows]
        return {"ahead": None if None in values else all(values)}


def _stats(final_losses) -> tuple[float, float]:
    f = np.asarray(final_losses, np.float64)
    return float(f.mean()), float(f.std(ddof=1) / math.sqrt(f.size))


def _ll_thunk(opt_name, surface, lr, steps, trajectories):
    opt = bt.ll_optimizer(opt_name, lr)
    x0 = surface.start
    run = jax.jit(jax.vmap(lambda k: ll.run(opt, surface, x0, steps, noise=NOISE, key=k)))
    seed = [0]

    def thunk():
        seed[0] += 1  # fresh noise every call, as a seed slider would give
        keys = jax.random.split(jax.random.key(seed[0]), trajectories)
        traj = jax.block_until_ready(run(keys))
        return traj.losses[:, -1]

    return thunk


def _torch_thunk(opt_name, surface_name, theta, x0, lr, steps, trajectories):
    loss_fn = bt._torch_loss(surface_name, theta)
    g = torch.Generator().manual_seed(0)
    start = torch.tensor(np.tile(np.asarray(x0, np.float32), (trajectories, 1)))

    def thunk():
        w = start.clone().requires_grad_(True)
        opt = bt.torch_optimizer(opt_name, [w], lr)
        path = torch.empty(steps + 1, trajectories, 2)
        path[0] = start
        for t in range(steps):
            opt.zero_grad()
            loss_fn(w.T).sum().backward()  # sum over trajectories: each gets its own gradient
            w.grad.add_(torch.randn(trajectories, 2, generator=g), alpha=NOISE)
            opt.step()
            path[t + 1] = w.detach()
        with torch.no_grad():
            return loss_fn(w.T).numpy()

    return thunk


def _numpy_thunk(opt_name, surface_name, theta, x0, lr, steps, trajectories):
    """GD and Adam vectorised over trajectories (the workloads here)."""
    p, q = theta
    lr, b1, b2, eps = np.float32(lr), np.float32(bt.B1), np.float32(bt.B2), np.float32(bt.EPS)
    rng = np.random.default_rng(0)
    if surface_name == "quadratic":
        c, s = math.cos(q), math.sin(q)
        R = np.array([[c, s], [-s, c]])
        H = (R.T @ np.diag([1.0, p]) @ R).astype(np.float32)
        grad = lambda w: w @ H  # H symmetric
        loss = lambda w: 0.5 * np.sum((w @ H) * w, axis=1)
    else:
        a, b = np.float32(p), np.float32(q)

        def grad(w):
            x, y = w[:, 0], w[:, 1]
            r = y - x * x
            return np.stack([-2 * (a - x) - 4 * b * x * r, 2 * b * r], axis=1)

        loss = lambda w: (a - w[:, 0]) ** 2 + b * (w[:, 1] - w[:, 0] ** 2) ** 2

    def thunk():
        w = np.tile(np.asarray(x0, np.float32), (trajectories, 1))
        path = np.empty((steps + 1, trajectories, 2), np.float32)
        path[0] = w
        m, v = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, steps + 1):
            g = grad(w) + np.float32(NOISE) * rng.standard_normal(w.shape, np.float32)
            if opt_name == "GD":
                w = w - lr * g
            else:
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                w = w - lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
            path[t] = w
        return loss(w)

    return thunk


def _measure(opt_name, surface_name, steps, trajectories, repeats) -> Row:
    surface = ll.surfaces.SURFACES[surface_name]
    lr = bt.LRS[surface_name][opt_name]
    theta, x0 = bt._theta(surface), np.asarray(surface.start)
    run = _ll_thunk(opt_name, surface, lr, steps, trajectories)
    jax.clear_caches()
    final, first = common.first_ms(run)
    row = Row(opt_name, surface_name, math.nan, first)
    row.mean_loss["ll"] = _stats(final)
    thunks = {"ll": run, "numpy": _numpy_thunk(opt_name, surface_name, theta, x0, lr, steps, trajectories)}
    if torch is not None:
        thunks["torch"] = _torch_thunk(opt_name, surface_name, theta, x0, lr, steps, trajectories)
    times = {k: [] for k in thunks}
    for impl, thunk in thunks.items():
        final = thunk()  # warm-up and the statistical check
        if impl != "ll":
            row.mean_loss[impl] = _stats(final)
    for _ in range(repeats):  # interleaved rounds: every implementation sees the same load
        for impl, thunk in thunks.items():
            times[impl] += common.times_ms(thunk, 1)
    for impl, t in times.items():
        setattr(row, f"{impl}_ms", common.median(t))
    return row


def _table(rows: list[Row], args) -> list[str]:
    lines = [
        "| workload | ll (jit + vmap) ms | first call ms | torch batched ms | numpy vectorised ms | vs torch "
        "| vs numpy | target: ahead of both | mean final loss ll / torch / numpy | max abs(z) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        losses = " / ".join(
            f"{r.mean_loss[i][0]:.3g}" if i in r.mean_loss else "n/a" for i in ("ll", "torch", "numpy")
        )
        zs = [r.z(i) for i in r.mean_loss if i != "ll"]
        cells = [
            r.workload,
            common.fmt(r.ll_ms, 2),
            common.fmt(r.first_ms, 0),
            common.fmt(r.torch_ms, 1),
            common.fmt(r.numpy_ms, 1),
            common.fmt(r.speedup("torch"), 1, "×"),
            common.fmt(r.speedup("numpy"), 1, "×"),
            common.met(r.met),
            losses,
            f"{max(zs, default=0.0):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ok = all(r.ok for r in rows)
    lines += [
        "",
        f"Each call: {args.trajectories:,} trajectories × {args.steps} steps, gradient noise σ = {NOISE:g}, "
        "the whole paths kept (fresh keys every ll call, included in its time). first call: the first after "
        "`jax.clear_caches()` (tracing + compilation + run).",
        "",
        f"correctness: mean final loss of torch and numpy within {Z_TOL:g} standard errors of ll's: "
        f"{'yes' if ok else 'NO'}",
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, Adam on the quadratic only")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    p.add_argument("--trajectories", type=int, default=DEFAULTS["trajectories"])
    p.add_argument("--repeats", type=int, help="timed rounds (default 10, --quick 3)")
    p.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (QUICK if args.quick else DEFAULTS)["repeats"]
    for name in ("steps", "repeats", "torch_threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.trajectories < 2:
        p.error(f"--trajectories must be at least 2, got {args.trajectories}")
    return args


def main(argv=None) -> Result:
    args = _parse(argv)
    load_before = common.load()
    with common.torch_threads(args.torch_threads):
        workloads = QUICK_WORKLOADS if args.quick else WORKLOADS
        rows = [_measure(o, s, args.steps, args.trajectories, args.repeats) for o, s in workloads]
    lines = [
        f"# {args.trajectories:,} noisy {args.steps}-step trajectories at once: ll.run under vmap vs "
        "batched PyTorch and vectorised NumPy",
        "",
        *common.header_lines(load_before),
        f"- medians of {args.repeats} interleaved rounds after warm-up; torch threads: {args.torch_threads}",
        "",
        *_table(rows, args),
    ]
    report = "\n".join(lines) + "\n"
    print(report, end="")
    common.write(args.markdown, report)
    return Result(rows, report, all(r.ok for r in rows))


if __name__ == "__main__":
    sys.exit(0 if main().ok else 1)
