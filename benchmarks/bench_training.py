"""Speed of ``ll.training.fit`` and ``ll.experiments.batch_error_variance`` against hand-written loops.

1. **fit vs loops.** ``epochs`` epochs of the 64-50-10 MLP on ``ll.data.digits(seed=0)``, batch 64, plain SGD
   (lr 0.1) and SGD with momentum 0.9. Every implementation starts from the same weights and sees the same
   batches: ``k_init, k_order = ll.training.split_key(key)``, ``model.init(k_init)`` and
   ``ll.sampling.batches(k_order, n, 64, epochs)`` (the partial last batch averages only its real samples),
   and after every epoch computes what ``fit`` records: the full training cost, training and validation
   accuracy. Implementations:

   - ``ll.training.fit``: the whole call (weights, order, one jitted ``lax.scan`` over epochs and updates);
   - optax: ``optax.sgd`` with a jitted step and a jitted per-epoch evaluation, called from a Python loop;
   - PyTorch: ``torch.nn.Linear`` layers holding the same weights, ``F.cross_entropy``, ``torch.optim.SGD``,
     ``backward()`` in a Python loop.

   The loops get the order precomputed (``fit``'s time includes drawing it). Their final accuracies and
   cost must match ``fit``'s (``ACC_TOL``, ``COST_TOL``). The floating-point floor divides the run's matmul
   FLOPs by this machine's jitted float32 matmul rate.

2. **variance experiment.** ``draws`` batch means of a fixed per-sample loss vector (n = 2048, squared
   errors of the line 0.5x on sin(πx) + noise) for b = 1, 2, 4, …, 1024, with and without
   replacement: ``ll.experiments.batch_error_variance`` against NumPy and PyTorch. Each implementation's
   variances must lie within ``Z_TOL`` standard errors of var/b (with) and var/b·(n−b)/(n−1) (without).

Run ``python benchmarks/bench_training.py`` (``--quick`` for a smoke run, ``--markdown PATH`` to save the
report). optax and torch are optional: a missing one gives ``n/a``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import math
import os
import platform
import statistics
import sys
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
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - torch is in the [test] extra
    torch = F = None

SIZES = (64, 50, 10)
LR, BETA = 0.1, 0.9
OPTIMIZERS = {"sgd": ("SGD", 0.0), "momentum": (f"momentum {BETA:g}", BETA)}  # option: (name, momentum)
ACC_TOL, COST_TOL = 1e-3, 1e-4  # final accuracies and cost of the loops agree with fit's within these
Z_TOL = 4.0  # |variance / prediction − 1| within this many standard errors
TARGETS = {"torch": 10.0, "optax": 2.0}  # issue target: fit at least this many times faster than the loop
FLOOR_TARGET = 5.0  # issue target: fit within this many times the floating-point floor
N_LOSSES = 2048

DEFAULTS = {
    "epochs": 10,
    "batch_size": 64,
    "fit_repeats": 50,
    "loop_repeats": 10,
    "draws": 10_000,
    "max_batch": 1024,
    "var_repeats": 3,
}
QUICK = {"fit_repeats": 5, "loop_repeats": 1, "var_repeats": 1}


# ---- measuring --------------------------------------------------------------------------------------------


def _median_ms(thunk: Callable, repeats: int) -> float:
    return statistics.median(common.times_ms(thunk, repeats))


def _interleaved_medians(thunks: dict[str, Callable], repeats: dict[str, int]) -> dict[str, float]:
    """Median ms of each thunk, measured in rounds that visit every thunk, so that all see the same load.

    There are ``min(repeats)`` rounds; a thunk with more repeats runs several times in each round."""
    rounds = min(repeats.values())
    times = {k: [] for k in thunks}
    for r in range(rounds):
        for k, thunk in thunks.items():
            per_round = repeats[k] // rounds + (r < repeats[k] % rounds)
            times[k] += common.times_ms(thunk, per_round)
    return {k: statistics.median(v) for k, v in times.items()}


# ---- 1. fit vs loops --------------------------------------------------------------------------------------


@dataclass
class Final:
    """What a run ends with: per-epoch metrics (NumPy) and the final weights as ``[(W, b), ...]``."""

    cost: np.ndarray
    train_acc: np.ndarray
    val_acc: np.ndarray
    weights: list

    @classmethod
    def of(cls, cost, train_acc, val_acc, weights):
        f = lambda a: np.asarray(a, np.float64)
        return cls(f(cost), f(train_acc), f(val_acc), [(f(W), f(b)) for W, b in weights])


@dataclass
class FitRow:
    optimizer: str
    fit_ms: float
    fit_first_ms: float
    finals: dict[str, Final]  # implementation -> what its run ended with ("fit" first)
    optax_ms: float | None = None
    optax_first_ms: float | None = None
    torch_ms: float | None = None
    torch_first_ms: float | None = None

    def speedup(self, impl: str) -> float | None:
        t = getattr(self, f"{impl}_ms")
        return None if t is None else t / self.fit_ms

    def deviations(self, impl: str) -> dict[str, float]:
        a, r = self.finals[impl], self.finals["fit"]
        return {
            "acc": max(abs(a.train_acc[-1] - r.train_acc[-1]), abs(a.val_acc[-1] - r.val_acc[-1])),
            "cost": abs(a.cost[-1] - r.cost[-1]),
            "weights": max(
                float(np.max(np.abs(x - y))) for pa, pr in zip(a.weights, r.weights) for x, y in zip(pa, pr)
            ),
        }

    @property
    def ok(self) -> bool:
        for impl in self.finals:
            if impl == "fit":
                continue
            d = self.deviations(impl)
            if not (d["acc"] <= ACC_TOL + 1e-9 and d["cost"] <= COST_TOL):  # nan fails too
                return False
        return all(np.all(np.isfinite(f.cost)) for f in self.finals.values())


@dataclass
class Setup:
    """The shared problem; its start (initial weights, batch order) is computed on first use."""

    data: object
    model: ll.models.Model
    key: jax.Array
    epochs: int
    batch_size: int

    @functools.cached_property
    def start(self) -> tuple[list, np.ndarray, np.ndarray]:
        """``model.init(k_init)`` and ``ll.sampling.batches(k_order, n, b, epochs)`` with ``k_init, k_order =
        ll.training.split_key(key)``, through the two jitted calls that ``fit`` itself makes (training.py):
        after fit's first call they compile nothing (random-number code compiles slowly on XLA:CPU)."""
        params = ll.training._init(self.model, self.key)
        idx, mask = ll.training._order(self.key, self.data.n, self.batch_size, self.epochs, "reshuffle")
        return params, np.asarray(idx), np.asarray(mask)

    params = property(lambda self: self.start[0])
    idx = property(lambda self: self.start[1])  # (epochs, m, b)
    mask = property(lambda self: self.start[2])  # False on the padding of the partial last batch

    @property
    def counts(self) -> list[int]:  # real samples in each batch of an epoch
        n, b = self.data.n, self.batch_size
        return [min(b, n - j) for j in range(0, n, b)]


def _setup(epochs: int, batch_size: int) -> Setup:
    return Setup(ll.data.digits(seed=0), ll.models.mlp(list(SIZES)), jax.random.key(0), epochs, batch_size)


def _fit_thunk(s: Setup, beta: float):
    opt = ll.optimizers.sgd(LR) if beta == 0 else ll.optimizers.momentum(LR, beta)

    def thunk():
        return jax.block_until_ready(
            ll.training.fit(s.model, s.data, opt, epochs=s.epochs, batch_size=s.batch_size, key=s.key)
        )

    return thunk


def _forward(params, x):  # x (batch, d_in); biases as (1, fan_out) rows: no implicit rank promotion
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["W"] + layer["b"][None, :])
    return x @ params[-1]["W"] + params[-1]["b"][None, :]


def _optax_thunk(s: Setup, beta: float):
    tx = optax.sgd(LR, momentum=beta or None)
    ce = ll.models.softmax_cross_entropy
    x, y, xv, yv = s.data.x_train, s.data.y_train, s.data.x_val, s.data.y_val

    @jax.jit
    def step(params, state, x, y, i, m):
        def J(p):  # mean over the real samples of the batch
            return jnp.sum(jnp.where(m, ce(_forward(p, x[i]), y[i]), 0.0)) / jnp.sum(m)

        loss, g = jax.value_and_grad(J)(params)
        updates, state = tx.update(g, state, params)
        return optax.apply_updates(params, updates), state, loss

    @jax.jit
    def evaluate(params, x, y, xv, yv):
        out = _forward(params, x)
        return jnp.mean(ce(out, y)), ll.models.accuracy(out, y), ll.models.accuracy(_forward(params, xv), yv)

    # device arrays made once, as a data loader would hand them over
    batches = [[(jnp.asarray(i), jnp.asarray(m)) for i, m in zip(ie, me)] for ie, me in zip(s.idx, s.mask)]

    def thunk():
        params = s.params
        state = tx.init(params)
        losses, metrics = [], []
        for epoch in batches:
            for i, m in epoch:
                params, state, loss = step(params, state, x, y, i, m)
                losses.append(loss)
            metrics.append(evaluate(params, x, y, xv, yv))
        cost, tr, va = (jnp.stack(a) for a in zip(*metrics))
        jax.block_until_ready((params, losses, cost))
        return Final.of(cost, tr, va, [(p["W"], p["b"]) for p in params])

    return thunk


def _torch_thunk(s: Setup, beta: float):
    X, XV = (torch.from_numpy(np.array(a)) for a in (s.data.x_train, s.data.x_val))
    Y, YV = (torch.from_numpy(np.asarray(a).astype(np.int64)) for a in (s.data.y_train, s.data.y_val))
    idx = torch.from_numpy(s.idx.astype(np.int64))
    counts = s.counts
    weights = [(np.asarray(p["W"]).T.copy(), np.asarray(p["b"]).copy()) for p in s.params]

    def thunk():
        layers = []
        for W, b in weights:
            lin = torch.nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W))
                lin.bias.copy_(torch.from_numpy(b))
            layers += [lin, torch.nn.ReLU()]
        net = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=beta)
        losses, cost, tr, va = [], [], [], []
        for e in range(s.epochs):
            for j, c in enumerate(counts):
                i = idx[e, j, :c]
                loss = F.cross_entropy(net(X[i]), Y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.detach())
            with torch.no_grad():
                out = net(X)
                cost.append(F.cross_entropy(out, Y))
                tr.append((out.argmax(1) == Y).float().mean())
                va.append((net(XV).argmax(1) == YV).float().mean())
        lins = [m for m in net if isinstance(m, torch.nn.Linear)]
        weights_out = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in lins]
        return Final.of(torch.stack(cost), torch.stack(tr), torch.stack(va), weights_out)

    return thunk


def _measure_fit(s: Setup, name: str, beta: float, fit_repeats: int, loop_repeats: int) -> FitRow:
    fit = _fit_thunk(s, beta)
    jax.clear_caches()  # so that the first call traces and compiles
    hist, first = common.first_ms(fit)
    final = Final.of(hist.cost, hist.train_acc, hist.val_acc, [(p["W"], p["b"]) for p in hist.params])
    row = FitRow(name, math.nan, first, {"fit": final})
    thunks, repeats = {"fit": fit}, {"fit": fit_repeats}
    if optax is not None:
        thunks["optax"] = _optax_thunk(s, beta)
    if torch is not None:
        thunks["torch"] = _torch_thunk(s, beta)
    for impl, thunk in thunks.items():
        if impl != "fit":
            row.finals[impl], t = common.first_ms(thunk)  # compiles optax's step and evaluation
            setattr(row, f"{impl}_first_ms", t)
            repeats[impl] = loop_repeats
        for _ in range(2):  # warm-up
            thunk()
    for impl, ms in _interleaved_medians(thunks, repeats).items():
        setattr(row, f"{impl}_ms", ms)
    return row


@dataclass
class Floor:
    flops: float  # matmul FLOPs of one run (updates + per-epoch evaluations)
    peak_flops_per_s: float  # jitted 1024² @ 1024² float32 matmul
    batched_flops_per_s: float  # jitted (m, b, 64) @ (64, 50): the training step's shape, many at once
    repeats: int  # best of this many calls: the floor is what the machine can do

    @property
    def peak_floor_ms(self) -> float:
        return self.flops / self.peak_flops_per_s * 1e3

    @property
    def batched_floor_ms(self) -> float:
        return self.flops / self.batched_flops_per_s * 1e3

    @property
    def floor_ms(self) -> float:  # at the faster of the two measured rates
        return min(self.peak_floor_ms, self.batched_floor_ms)


def _floor(s: Setup, repeats: int) -> Floor:
    n, n_val = s.data.n, s.data.x_val.shape[0]
    per_sample = 2 * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))  # forward matmul FLOPs
    flops = s.epochs * (3 * per_sample * n + per_sample * (n + n_val))  # forward+backward ≈ 3× forward
    matmul = jax.jit(lambda a, b: a @ b)
    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(rng.standard_normal(shape, np.float32))
    a, w = normal(1024, 1024), normal(*SIZES[:2])
    xb = normal(len(s.counts) * s.epochs, s.batch_size, SIZES[0])
    rates = []
    for (u, v), f in (((a, a), 2 * 1024**3), ((xb, w), 2 * xb.size * SIZES[1])):
        jax.block_until_ready(matmul(u, v))
        # the best of the repeats: a capability, not a typical time
        best = min(common.times_ms(lambda u=u, v=v: jax.block_until_ready(matmul(u, v)), repeats))
        rates.append(f / (best / 1e3))
    return Floor(flops, *rates, repeats)


# ---- 2. variance of the batch mean -------------------------------------------------------------------------


@dataclass
class VarRow:
    implementation: str
    total_ms: float
    first_ms: float | None = None  # ll: compile + run
    with_ms: float | None = None  # the two halves where they are separate calls
    without_ms: float | None = None
    z: dict[str, float] = field(default_factory=dict)  # "with"/"without" -> max |z| over batch sizes

    @property
    def max_z(self) -> float:
        return max(self.z.values(), default=0.0)


def _losses() -> np.ndarray:
    """Squared errors of the line 0.5 x (a poor fixed model) on y = sin(πx) + 0.1 ε, x uniform in [−1, 1]."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, N_LOSSES)
    y = np.sin(np.pi * x) + 0.1 * rng.standard_normal(N_LOSSES)
    return ((0.5 * x - y) ** 2).astype(np.float32)


def _z_scores(var, losses, sizes, draws, without: bool) -> float:
    """Max |var / prediction − 1| in standard errors of a sample variance of ``draws`` batch means."""
    l = np.asarray(losses, np.float64)
    l = l - l.mean()
    n, b = len(l), np.asarray(sizes, np.float64)
    s2 = np.mean(l**2)
    pred = s2 / b * ((n - b) / (n - 1) if without else 1.0)
    kurt = 3 + (np.mean(l**4) / s2**2 - 3) / b  # kurtosis of a mean of b i.i.d. losses (upper bound without)
    rel_se = np.sqrt(kurt / draws - (draws - 3) / (draws * (draws - 1)))  # sd of s² / σ²
    return float(np.max(np.abs(np.asarray(var, np.float64) / pred - 1) / rel_se))


def _prefix_var(values, sizes) -> np.ndarray:
    """Sample variance over draws (rows) of the means of each row's first b values, for every b in sizes."""
    if torch is not None and isinstance(values, torch.Tensor):
        c = values.cumsum(dim=1, dtype=torch.float64)[:, [b - 1 for b in sizes]].numpy()
    else:
        c = np.cumsum(values, axis=1, dtype=np.float64)[:, np.asarray(sizes) - 1]
    return np.var(c / np.asarray(sizes), axis=0, ddof=1)


def _measure_variance(sizes, draws, repeats) -> list[VarRow]:
    losses = _losses()
    n, bmax = len(losses), max(sizes)
    lc = losses - losses.mean()  # centred, as ll does: float32 sums keep their digits
    rows = []

    key = jax.random.key(1)
    go = lambda: jax.block_until_ready(
        ll.experiments.batch_error_variance(losses, sizes, key=key, draws=draws)
    )
    jax.clear_caches()
    r, first = common.first_ms(go)
    row = VarRow("ll.experiments.batch_error_variance", _median_ms(go, repeats), first_ms=first)
    row.z = {
        "with": _z_scores(r.var_replacement, losses, sizes, draws, False),
        "without": _z_scores(r.var_without, losses, sizes, draws, True),
    }
    rows.append(row)

    rng = np.random.default_rng(1)
    halves = {
        "NumPy: rng.integers / rng.permuted": (
            lambda: _prefix_var(lc[rng.integers(0, n, (draws, bmax))], sizes),
            lambda: _prefix_var(rng.permuted(np.broadcast_to(lc, (draws, n)), axis=1)[:, :bmax], sizes),
        ),
    }
    if torch is not None:
        g = torch.Generator().manual_seed(1)
        lt = torch.from_numpy(lc)
        with_t = lambda: _prefix_var(lt[torch.randint(0, n, (draws, bmax), generator=g)], sizes)
        halves["PyTorch: randint / randperm per draw"] = (
            with_t,
            lambda: _prefix_var(
                lt[torch.stack([torch.randperm(n, generator=g)[:bmax] for _ in range(draws)])], sizes
            ),
        )
        halves["PyTorch: randint / rand().argsort"] = (
            with_t,
            lambda: _prefix_var(lt[torch.rand(draws, n, generator=g).argsort(dim=1)[:, :bmax]], sizes),
        )
    for name, (with_, without) in halves.items():
        v_with, v_without = with_(), without()  # warm-up and the correctness check
        t_with, t_without = _median_ms(with_, repeats), _median_ms(without, repeats)
        row = VarRow(name, t_with + t_without, with_ms=t_with, without_ms=t_without)
        row.z = {
            "with": _z_scores(v_with, losses, sizes, draws, False),
            "without": _z_scores(v_without, losses, sizes, draws, True),
        }
        rows.append(row)
    return rows


# ---- report -----------------------------------------------------------------------------------------------


@dataclass
class Result:
    fit_rows: list[FitRow]
    var_rows: list[VarRow]
    floor: Floor
    table: str  # the whole Markdown report
    ok: bool  # every loop matches fit and every variance matches its prediction
    targets_met: dict[str, bool]  # "torch"/"optax" -> every optimizer row meets the speed-up
    var_draws: int = 0  # the variance experiment's draws and number of batch sizes
    var_sizes: int = 0

    @property
    def floor_met(self) -> bool:
        return all(r.fit_ms <= FLOOR_TARGET * self.floor.floor_ms for r in self.fit_rows)

    def variance_speedups(self) -> dict[str, float]:
        """Peer implementation -> its time ÷ ll's (> 1: ll is ahead)."""
        ll_ms = self.var_rows[0].total_ms
        return {r.implementation: r.total_ms / ll_ms for r in self.var_rows[1:]}

    def targets(self) -> dict[str, bool]:
        ahead = self.variance_speedups()
        return {
            **self.targets_met,
            "floor": self.floor_met,
            "variance": bool(ahead) and min(ahead.values()) > 1.0,
        }


def _fmt(x: float | None, digits: int = 0, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{suffix}"


def _header(args, torch_threads, load_before) -> list[str]:
    versions = [f"python {platform.python_version()}", f"jax {jax.__version__}"]
    versions.append(f"optax {optax.__version__}" if optax is not None else "optax missing")
    versions.append(f"torch {torch.__version__}" if torch is not None else "torch missing")
    versions.append(f"numpy {np.__version__}")
    cache = jax.config.jax_compilation_cache_dir
    return [
        f"# ll.training.fit and batch_error_variance against Python loops: {args.epochs} epochs of "
        f"{'-'.join(map(str, SIZES))} on digits, {args.draws:,} draws",
        "",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"JAX backend {jax.default_backend()}, load average {load_before} at the start, "
        f"{common.load()} at the end",
        f"- versions: {', '.join(versions)}",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- medians of {args.fit_repeats} fit calls and {args.loop_repeats} loop runs (interleaved in "
        f"{min(args.fit_repeats, args.loop_repeats)} rounds, so that all see the same load) and "
        f"{args.var_repeats} variance runs, after warm-up; time.perf_counter, GC paused while timing; "
        f"torch threads: {torch_threads} (--torch-threads); "
        f"JAX persistent compilation cache: {cache or 'off'}; "
        f"XLA_FLAGS: {os.environ.get('XLA_FLAGS') or 'unset'}",
    ]


def _fit_table(rows: list[FitRow], floor: Floor, s: Setup) -> list[str]:
    lines = [
        f"## fit vs Python loops (batch {s.batch_size}, lr {LR:g}, {len(s.counts)} updates an epoch)",
        "",
        "| optimizer | fit ms | fit first call ms | optax loop ms | optax first run ms | torch loop ms "
        "| speed-up vs optax (target ≥2×) | vs torch (target ≥10×) | fit ÷ floor "
        "| train acc fit / optax / torch | val acc fit / optax / torch | final cost fit / optax / torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        trio = lambda attr, d, r=r: " / ".join(
            f"{getattr(r.finals[i], attr)[-1]:.{d}f}" if i in r.finals else "n/a"
            for i in ("fit", "optax", "torch")
        )
        cells = [
            r.optimizer,
            _fmt(r.fit_ms, 2),
            _fmt(r.fit_first_ms, 0),
            _fmt(r.optax_ms, 2),
            _fmt(r.optax_first_ms, 0),
            _fmt(r.torch_ms, 1),
            _fmt(r.speedup("optax"), 1, "×"),
            _fmt(r.speedup("torch"), 1, "×"),
            f"{r.fit_ms / floor.floor_ms:.1f}×",
            trio("train_acc", 4),
            trio("val_acc", 4),
            trio("cost", 6),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    devs = [(r.optimizer, i, r.deviations(i)) for r in rows for i in r.finals if i != "fit"]
    worst = {k: max((d[k] for *_, d in devs), default=0.0) for k in ("acc", "cost", "weights")}
    ok = all(r.ok for r in rows)
    lines += [
        "",
        "fit ms: one `ll.training.fit` call + `block_until_ready` (weights, order and the jitted run); first "
        "call: the first after `jax.clear_caches()` (tracing + compilation + run). Loops: a whole run from "
        "the shared weights with the order precomputed, including the per-epoch full-train cost and "
        "accuracies; optax's first run compiles its step and evaluation. Speed-ups: loop time / fit time, "
        "this run.",
        "",
        f"floor: {floor.flops / 1e6:,.0f} MFLOP a run (forward + backward ≈ 3 × 2·Σ fan_in·fan_out per "
        f"sample and update, plus one forward pass over train and validation each epoch) ÷ "
        f"{floor.peak_flops_per_s / 1e9:,.1f} GFLOP/s (jitted float32 1024² matmul, best of "
        f"{floor.repeats}) = {floor.peak_floor_ms:.2f} ms; "
        f"at the training shape ({len(s.counts) * s.epochs}×({s.batch_size}, {SIZES[0]}) @ "
        f"({SIZES[0]}, {SIZES[1]}) in one call) {floor.batched_flops_per_s / 1e9:,.1f} GFLOP/s = "
        f"{floor.batched_floor_ms:.2f} ms. The floor is the smaller: {floor.floor_ms:.2f} ms.",
        "",
        f"correctness: final train/val accuracy within {ACC_TOL:g} and final cost within {COST_TOL:g} of "
        f"fit's, for optax and torch: {'yes' if ok else 'NO'}; max deviations: accuracy {worst['acc']:.1e}, "
        f"cost {worst['cost']:.1e}, weights {worst['weights']:.1e}",
        "",
        "issue targets (fit after compilation, every optimizer): "
        + "; ".join(_target_line(rows, impl, t) for impl, t in TARGETS.items())
        + f"; within {FLOOR_TARGET:g}× the floor: "
        + ("met" if all(r.fit_ms <= FLOOR_TARGET * floor.floor_ms for r in rows) else "NOT met")
        + f" ({', '.join(f'{r.fit_ms / floor.floor_ms:.1f}×' for r in rows)})",
    ]
    return lines


def _target_met(rows: list[FitRow], impl: str, target: float) -> bool:
    return all(r.speedup(impl) is not None and r.speedup(impl) >= target for r in rows)


def _target_line(rows: list[FitRow], impl: str, target: float) -> str:
    ups = [r.speedup(impl) for r in rows]
    if any(u is None for u in ups):
        return f"≥{target:g}× the {impl} loop: n/a"
    met = "met" if _target_met(rows, impl, target) else "NOT met"
    return f"≥{target:g}× the {impl} loop: {met} ({', '.join(f'{u:.1f}×' for u in ups)})"


def _var_table(rows: list[VarRow], sizes, draws) -> list[str]:
    ll_ms = rows[0].total_ms
    lines = [
        f"## variance of the batch mean: {draws:,} draws × {len(sizes)} batch sizes "
        f"({sizes[0]}…{sizes[-1]}), n = {N_LOSSES}",
        "",
        "| implementation | with replacement ms | without ms | total ms | first call ms | time ÷ ll's "
        "| max abs(z) with | max abs(z) without |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            r.implementation,
            _fmt(r.with_ms, 0),
            _fmt(r.without_ms, 0),
            _fmt(r.total_ms, 0),
            _fmt(r.first_ms, 0),
            f"{r.total_ms / ll_ms:.2f}",
            f"{r.z['with']:.1f}",
            f"{r.z['without']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    ok = all(r.max_z <= Z_TOL for r in rows)
    lines += [
        "",
        "ll does both halves in one jitted call and loop (with: nested prefixes of i.i.d. indices; without: "
        "a partial Fisher–Yates shuffle of max(b) steps per draw, in place; xoshiro128** bits per draw, "
        "seeded from the key). NumPy and PyTorch: nested prefixes of i.i.d. indices (with) "
        "and of a random permutation per draw (without); cumulative sums give every b at once. z: "
        "(variance / prediction − 1) / its standard error, sqrt(κ_b/draws − (draws−3)/(draws(draws−1))) with "
        "κ_b = 3 + (κ − 3)/b from the losses' kurtosis κ.",
        "",
        f"correctness: every variance within {Z_TOL:g} standard errors of var/b (with) and var/b·(n−b)/(n−1) "
        f"(without): {'yes' if ok else 'NO'}, max abs(z) {max(r.max_z for r in rows):.1f}",
        "",
        "issue target: ll ahead of NumPy and PyTorch: "
        + ("met" if all(r.total_ms > ll_ms for r in rows[1:]) else "NOT met")
        + f" (their time ÷ ll's: {', '.join(f'{r.total_ms / ll_ms:.2f}' for r in rows[1:])})",
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny repeat counts (a smoke run)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="epochs of training (default 10)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="default 64")
    p.add_argument("--draws", type=int, default=DEFAULTS["draws"], help="batches per size (default 10,000)")
    p.add_argument("--max-batch", type=int, default=DEFAULTS["max_batch"], help="largest b, a power of 2")
    p.add_argument("--repeats", type=int, help="timed repeats for everything")
    p.add_argument("--fit-repeats", type=int, help="timed fit calls (default 50, --quick 5)")
    p.add_argument("--loop-repeats", type=int, help="timed Python-loop runs (default 10, --quick 1)")
    p.add_argument("--var-repeats", type=int, help="timed variance runs (default 3, --quick 1)")
    p.add_argument(
        "--optimizers", nargs="+", choices=tuple(OPTIMIZERS), default=list(OPTIMIZERS), help="default: all"
    )
    p.add_argument("--torch-threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    base = {**DEFAULTS, **(QUICK if args.quick else {})}
    for name in ("fit_repeats", "loop_repeats", "var_repeats"):
        setattr(args, name, getattr(args, name) or args.repeats or base[name])
    for name in ("epochs", "batch_size", "draws", "max_batch", "fit_repeats", "loop_repeats", "var_repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.torch_threads < 1:
        p.error(f"--torch-threads must be a positive integer, got {args.torch_threads}")
    if args.draws < 2:
        p.error(f"--draws must be at least 2 to estimate a variance, got {args.draws}")
    if args.max_batch > N_LOSSES or args.max_batch & (args.max_batch - 1):
        p.error(f"--max-batch must be a power of 2 up to {N_LOSSES}, got {args.max_batch}")
    return args


def main(argv=None) -> Result:
    """Run both benchmarks, print the Markdown report and return it with the measurements."""
    args = _parse(argv)
    load_before = common.load()
    gc.collect()
    gc.freeze()  # the modules' objects move out of the collector's sight: each timing's gc.collect() is quick
    try:
        with common.torch_threads(args.torch_threads):
            s = _setup(args.epochs, args.batch_size)
            fit_rows = [
                _measure_fit(s, *OPTIMIZERS[o], args.fit_repeats, args.loop_repeats) for o in args.optimizers
            ]
            floor = _floor(s, 20 if not args.quick else 3)
            sizes = tuple(2**i for i in range(int(math.log2(args.max_batch)) + 1))
            var_rows = _measure_variance(sizes, args.draws, args.var_repeats)
    finally:
        gc.unfreeze()
    ok = all(r.ok for r in fit_rows) and all(r.max_z <= Z_TOL for r in var_rows)
    targets = {impl: _target_met(fit_rows, impl, t) for impl, t in TARGETS.items()}
    threads = args.torch_threads if torch is not None else "n/a"
    lines = _header(args, threads, load_before) + [""] + _fit_table(fit_rows, floor, s)
    lines += [""] + _var_table(var_rows, sizes, args.draws)
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report)
    return Result(fit_rows, var_rows, floor, report, ok, targets, args.draws, len(sizes))


if __name__ == "__main__":
    sys.exit(0 if main().ok else 1)
