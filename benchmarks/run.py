"""Run every benchmark and write one Markdown report: ``make bench`` (``make bench QUICK=1``: under a minute).

The report (also printed) starts with the machine, versions and date, then a summary table: for each
workload, lecture_lib against its peers measured in the same run, the ratio, the first-call (compile) time,
the issue's target and whether it is met; then each benchmark's own tables. Full runs write
``benchmarks/RESULTS.md``, quick runs ``benchmarks/RESULTS-quick.md`` (``--output`` for elsewhere).

Workloads (each a script of this folder, runnable alone):

1. ``bench_trajectories``: 500-step 2-D trajectories, six optimizers × quadratic/Rosenbrock;
2. ``bench_many``: 1,024 noisy trajectories at once;
3. and 4. ``bench_training``: 10 epochs of 64-50-10 on digits, the floating-point floor; the variance
   experiment (10,000 draws × 11 batch sizes);
5. ``bench_curvature``: forming H and solving vs Hessian-vector products, n = 100 … 1,600;
6. ``bench_panels``: slider latency of every registered panel, compilations after the first draw;
7. ``bench_notebooks``: every notebook cold and warm, and the nbval suite.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

WORKLOADS = ("trajectories", "many", "training", "curvature", "panels", "notebooks")

# Arguments of each script: full run, quick run (sizes picked to keep the whole quick run under a minute).
ARGS = {
    "trajectories": (
        [],
        ["--quick", "--optimizers", "GD", "Adam", "--surfaces", "quadratic", "--loop-repeats", "2"],
    ),
    "many": ([], ["--quick", "--repeats", "2"]),
    "training": ([], ["--quick", "--optimizers", "sgd", "--draws", "2000"]),
    "curvature": ([], ["--sizes", "100", "400"]),
    "panels": ([], ["--quick"]),
    "notebooks": ([], ["--quick"]),
}


@dataclass
class Line:
    """One row of the summary table."""

    number: str
    workload: str
    ours: str
    first: str
    peer: str
    ratio: str
    target: str
    met: bool | None | str

    def cells(self) -> list[str]:
        met = self.met if isinstance(self.met, str) else common.met(self.met)
        return [self.number, self.workload, self.ours, self.first, self.peer, self.ratio, self.target, met]


def _span(values, fmt: Callable[[float], str]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} – {fmt(hi)}"


def _us(x: float) -> str:
    return common.fmt_time_ms(x / 1e3)


def _x(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}×"


def _all(values) -> bool | None:
    values = list(values)
    return None if not values or None in values else all(values)


# ---- one summary block per benchmark ----------------------------------------------------------------------


def summarize_trajectories(r) -> list[Line]:
    rows = r.rows
    opts, surfaces = len({x.optimizer for x in rows}), len({x.surface for x in rows})
    n = f"{len(rows)} workloads ({opts} optimizers × {surfaces} surfaces)"
    ours = _span([x.run_us for x in rows], _us)
    first = _span([x.first_call_ms for x in rows], common.fmt_time_ms)
    lines = []
    for impl, label in (
        ("optax", "optax, jitted step in a Python loop"),
        ("torch", "torch.optim, Python loop"),
    ):
        ups = [x.speedup(getattr(x, f"{impl}_us")) for x in rows]
        lines.append(
            Line(
                "1",
                f"500-step trajectory, {n}: ll.run vs {label}",
                ours,
                first,
                _span([getattr(x, f"{impl}_us") for x in rows], _us),
                f"{_x(min(ups), 0)} (worst) – {_x(max(ups), 0)}" if None not in ups else "n/a",
                "≥ 100×",
                None if None in ups else min(ups) >= 100,
            )
        )
    scan = [x.vs_scan for x in rows]
    lines.append(
        Line(
            "1",
            "… ll.run ÷ optax in jitted lax.scan (same compiled work: the same four arrays, lr as data)",
            ours,
            first,
            _span([x.scan_us for x in rows], _us),
            f"{_x(max(scan), 2)} (worst)" if None not in scan else "n/a",
            "≤ 1.5×",
            None if None in scan else max(scan) <= 1.5,
        )
    )
    for label, peers, ratios, digits in (  # shown for reference, no target
        ("… ll.run ÷ the lightest optax scan (path and losses only, lr compiled in)",
         [x.light_us for x in rows], [x.vs_light for x in rows], 2),
        ("… ll.run vs NumPy Python loop",
         [x.numpy_us for x in rows], [x.speedup(x.numpy_us) for x in rows], 0),
    ):  # fmt: skip
        spread = f"{_x(min(ratios), digits)} – {_x(max(ratios), digits)}" if None not in ratios else "n/a"
        lines.append(Line("1", label, ours, first, _span(peers, _us), spread, "— (reference)", "—"))
    return lines


def summarize_many(r) -> list[Line]:
    rows = r.rows
    lines = []
    for impl, label in (("torch", "batched PyTorch"), ("numpy", "vectorised NumPy")):
        ups = [x.speedup(impl) for x in rows]
        lines.append(
            Line(
                "2",
                f"1,024 noisy trajectories ({', '.join(x.workload for x in rows)}): ll.run under jit+vmap vs "
                f"{label}",
                _span([x.ll_ms for x in rows], common.fmt_time_ms),
                _span([x.first_ms for x in rows], common.fmt_time_ms),
                _span([getattr(x, f"{impl}_ms") for x in rows], common.fmt_time_ms),
                f"{_x(min(ups))} (worst)" if None not in ups else "n/a",
                "> 1× (ahead)",
                None if None in ups else min(ups) > 1,
            )
        )
    return lines


def summarize_training(r) -> list[Line]:
    rows, floor = r.fit_rows, r.floor
    accs = "; ".join(
        f"{x.optimizer}: val "
        + " / ".join(
            f"{x.finals[i].val_acc[-1]:.4f}" if i in x.finals else "n/a" for i in ("fit", "optax", "torch")
        )
        for x in rows
    )
    ours = _span([x.fit_ms for x in rows], common.fmt_time_ms)
    first = _span([x.fit_first_ms for x in rows], common.fmt_time_ms)
    names = ", ".join(x.optimizer for x in rows)
    lines = []
    for impl, label, target in (
        ("torch", "PyTorch loop", 10.0),
        ("optax", "optax jitted step, Python loop", 2.0),
    ):
        ups = [x.speedup(impl) for x in rows]
        lines.append(
            Line(
                "3",
                f"10 epochs 64-50-10 on digits, batch 64 ({names}): fit vs {label}",
                ours,
                first,
                _span([getattr(x, f"{impl}_ms") for x in rows], common.fmt_time_ms),
                f"{_x(min(ups))} (worst)" if None not in ups else "n/a",
                f"≥ {target:g}×",
                None if None in ups else min(ups) >= target,
            )
        )
    ratio = max(x.fit_ms for x in rows) / floor.floor_ms
    lines.append(
        Line(
            "3",
            f"… fit ÷ floating-point floor ({floor.flops / 1e6:,.0f} MFLOP at the measured matmul rate); "
            f"final "
            f"val acc fit / optax / torch: {accs}",
            ours,
            first,
            f"floor {common.fmt_time_ms(floor.floor_ms)}",
            _x(ratio),
            "≤ 5×",
            r.floor_met,
        )
    )
    ll_row = r.var_rows[0]
    for peer in r.var_rows[1:]:
        lines.append(
            Line(
                "4",
                f"variance experiment ({r.var_draws:,} draws × {r.var_sizes} batch sizes): "
                f"batch_error_variance vs {peer.implementation}",
                common.fmt_time_ms(ll_row.total_ms),
                common.fmt_time_ms(ll_row.first_ms),
                common.fmt_time_ms(peer.total_ms),
                _x(peer.total_ms / ll_row.total_ms, 2),
                "> 1× (ahead)",
                peer.total_ms > ll_row.total_ms,
            )
        )
    return lines


def summarize_curvature(r) -> list[Line]:
    n, sec = r.cost.n, r.cost.seconds
    slopes = "log-log slopes form {:.2f} (2), solve {:.2f} (3), HVP {:.2f} (1)".format(*r.slopes)
    lines = [
        Line(
            "5",
            f"Hessian of an n-weight tanh net, n = {n[0]} … {n[-1]}: form H (jax) vs "
            f"torch.autograd.functional.hessian; {slopes}",
            _span(sec[0] * 1e3, common.fmt_time_ms),
            "compiled once per n",
            _span([t * 1e3 for t in r.torch_form] if r.torch_form else [], common.fmt_time_ms),
            f"{_x(min(t / s for t, s in zip(r.torch_form, sec[0])))} – "
            f"{_x(max(t / s for t, s in zip(r.torch_form, sec[0])))}"
            if r.torch_form
            else "n/a",
            "— (reference)",
            "—",
        ),
        Line(
            "5",
            f"… Newton step (solve (H + I)x = g) vs one HVP, at n = {n[-1]}",
            f"HVP {common.fmt_time_ms(sec[2, -1] * 1e3)}",
            "",
            f"solve {common.fmt_time_ms(sec[1, -1] * 1e3)}, form {common.fmt_time_ms(sec[0, -1] * 1e3)}",
            f"{_x(sec[1, -1] / sec[2, -1], 0)} (solve ÷ HVP)",
            "— (the lesson: slopes 3 vs 1)",
            "—",
        ),
    ]
    return lines


def summarize_panels(r) -> list[Line]:
    lines = []
    for kind, target in (("surface", 30.0), ("training", 150.0)):
        rows = [x for x in r.rows if x.kind == kind]
        if not rows:
            continue
        worst = max(rows, key=lambda x: x.worst.median)
        lines.append(
            Line(
                "6",
                f"{len(rows)} {kind} panels ({', '.join(x.name for x in rows)}): slowest control's median "
                "latency in the kernel",
                f"{worst.worst.median:.1f} ms ({worst.name}.{worst.worst.name}); p95 "
                f"{max(x.p95 for x in rows):.1f} ms",
                _span([x.build_ms for x in rows], common.fmt_time_ms) + " (first draw)",
                "",
                "",
                f"≤ {target:g} ms",
                worst.worst.median <= target,
            )
        )
    compiles = sum(x.compiles for x in r.rows)
    lines.append(
        Line(
            "6",
            f"… compilations after the first draw, all {len(r.rows)} panels, "
            f"{sum(x.moves for x in r.rows):,} moves",
            str(compiles),
            "",
            "",
            "",
            "0",
            compiles == 0,
        )
    )
    return lines


def summarize_notebooks(r) -> list[Line]:
    slow = max(r.rows, key=lambda x: x.cold_s)
    lines = [
        Line(
            "7",
            f"{len(r.rows)} notebooks, fresh kernel: slowest cold (empty compilation cache)",
            f"{slow.cold_s:.1f} s ({slow.path.name}); warm {slow.warm_s:.1f} s",
            "",
            f"all cold {sum(x.cold_s for x in r.rows):.0f} s, warm {sum(x.warm_s for x in r.rows):.0f} s",
            "",
            "each ≤ 30 s",
            r.targets()["cold"],
        )
    ]
    if r.suite is not None:
        lines.append(
            Line(
                "7",
                f"… nbval suite (one pytest process, empty cache): {r.suite.summary}",
                f"{r.suite.seconds:.0f} s",
                "",
                "",
                "",
                "≤ 4 min",
                r.suite.met,
            )
        )
    else:
        lines.append(Line("7", "… nbval suite", "not run (quick)", "", "", "", "≤ 4 min", None))
    return lines


SUMMARIES = {
    "trajectories": summarize_trajectories,
    "many": summarize_many,
    "training": summarize_training,
    "curvature": summarize_curvature,
    "panels": summarize_panels,
    "notebooks": summarize_notebooks,
}


# ---- running ----------------------------------------------------------------------------------------------


def _module(workload: str):
    import importlib

    return importlib.import_module(f"bench_{workload}")


def run_one(workload: str, argv: list[str]):
    """Run one benchmark script's ``main`` (its printout captured) and return its result and seconds."""
    module = _module(workload)
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        result = module.run(argv) if workload == "curvature" else module.main(argv)
    return result, time.perf_counter() - t0


def _section(report: str) -> list[str]:
    """A script's report as a section: headings one level down, its machine/versions/date lines dropped."""
    skip = ("- machine:", "- versions:", "- date:")
    lines = []
    for line in report.strip().splitlines():
        if line.startswith(skip):
            continue
        lines.append("#" + line if line.startswith("#") else line)
    return lines


def build_report(results: dict, seconds: dict, quick: bool, load_before: str) -> str:
    summary = [line for w, r in results.items() for line in SUMMARIES[w](r)]
    table = [
        "| # | workload | lecture_lib (median) | first call | peer (median, same run) | ratio | target "
        "| met |",
        "|---|---|---|---|---|---|---|---|",
    ] + ["| " + " | ".join(c.replace("|", "/") for c in line.cells()) + " |" for line in summary]
    missed = [f"{line.number}. {line.workload}" for line in summary if line.met is False]
    lines = [
        f"# lecture_lib benchmarks ({'quick: make bench QUICK=1' if quick else 'full: make bench'})",
        "",
        *common.header_lines(load_before),
        f"- wall time of each benchmark: {', '.join(f'{w} {s:.0f} s' for w, s in seconds.items())}",
        "- medians over repeated runs after warm-up; first call = tracing + compilation + run, measured "
        "separately after `jax.clear_caches()`; every ratio compares numbers taken in this same run. A load "
        "average above the number of cores means other processes shared the CPUs: ratios stay comparable, "
        "absolute times do not.",
        "",
        "## Summary",
        "",
        *table,
        "",
        "Targets not met: " + ("; ".join(missed) if missed else "none") + ".",
    ]
    for w, r in results.items():
        report = r.report if w == "curvature" else r.table
        lines += ["", *_section(report)]
    return "\n".join(lines) + "\n"


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller sweeps: under a minute")
    p.add_argument("--only", nargs="+", choices=WORKLOADS, help="run only these benchmarks")
    p.add_argument("--output", type=Path, help="default benchmarks/RESULTS.md (--quick: RESULTS-quick.md)")
    p.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="WORKLOAD=ARGS",
        help="replace a benchmark's arguments, e.g. --args 'panels=--panels optimizer_race --moves 2'",
    )
    args = p.parse_args(argv)
    if args.output is None:
        args.output = common.HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    overrides = {}
    for item in args.args:
        name, _, rest = item.partition("=")
        if name not in WORKLOADS:
            p.error(f"--args must start with one of {WORKLOADS} and '=', got {item!r}")
        overrides[name] = rest.split()
    args.overrides = overrides
    return args


def main(argv=None) -> str:
    """Run the benchmarks, print the report, write it to ``--output`` and return it."""
    return run_all(argv)[2]


def run_all(argv=None) -> tuple[dict, dict, str]:
    """The benchmarks' results, their wall times (s) and the report."""
    args = _parse(argv)
    load_before = common.load()
    results, seconds = {}, {}
    workloads = args.only or WORKLOADS
    for i, w in enumerate(workloads, 1):
        argv_w = args.overrides.get(w, ARGS[w][1] if args.quick else ARGS[w][0])
        print(f"[{i}/{len(workloads)}] bench_{w} {' '.join(argv_w)}", file=sys.stderr, flush=True)
        results[w], seconds[w] = run_one(w, argv_w)
        print(f"      {seconds[w]:.1f} s", file=sys.stderr, flush=True)
    report = build_report(results, seconds, args.quick, load_before)
    print(report, end="")
    common.write(args.output, report)
    print(f"written to {args.output}", file=sys.stderr)
    return results, seconds, report


if __name__ == "__main__":
    main()
