"""Slider latency of every panel in ``lecture_lib.panels.PANELS``, in the kernel, and compilations after the
first draw.

For each registered panel (the registry is iterated: new panels are measured without an edit here): build it
with its defaults (the first draw: compiles), then move every control through the values of
``tests/test_panels.py``'s ``candidate_values`` (its extremes, a middle value, back to the start), cycling
until ``moves`` moves, and time each ``control.value = v`` (the panel redraws synchronously, as in a
notebook; in a browser the widget messages and plotly.js add their part). The control goes back to its default
before the next one moves. Compilations are counted with ``jax.monitoring`` (XLA backend compiles) over all
moves: they must be 0.

Targets (issue 8): median ≤ 30 ms a move for every control of a surface panel, ≤ 150 ms for a training panel
(one whose redraws train a network: the panel class says ``kind = "training"``).
Run ``python benchmarks/bench_panels.py`` (``--quick`` for three panels, ``--panels NAME ...`` for a subset,
``--markdown PATH`` to save the table).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jax

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (tests, run.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TESTS = common.REPO / "tests"

TARGET_MS = {"surface": 30.0, "training": 150.0}
QUICK_PANELS = ("optimizer_race", "batch_memory")
DEFAULTS = {"moves": 20}
QUICK = {"moves": 4}
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def candidate_values(control):
    """``tests/test_panels.py``'s value picking (imported: the benchmark moves what the test moves)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from test_panels import candidate_values as pick

    return pick(control)


@contextlib.contextmanager
def count_compiles():
    """``with count_compiles() as c: ...``; ``c[0]`` is the number of XLA backend compilations."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == COMPILE_EVENT:
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@dataclass
class ControlTimes:
    name: str
    kind: str  # widget class
    times_ms: list[float]

    @property
    def median(self) -> float:
        return common.median(self.times_ms)

    @property
    def p95(self) -> float:
        return common.p95(self.times_ms)


@dataclass
class PanelRow:
    name: str
    kind: str  # "surface" or "training"
    build_ms: float  # constructing the panel: the first draw, compilations included
    build_compiles: int
    compiles: int  # after the first draw, over every move
    controls: list[ControlTimes] = field(default_factory=list)

    @property
    def target_ms(self) -> float:
        return TARGET_MS[self.kind]

    @property
    def worst(self) -> ControlTimes:
        return max(self.controls, key=lambda c: c.median)

    @property
    def p95(self) -> float:
        return common.p95([t for c in self.controls for t in c.times_ms])

    @property
    def moves(self) -> int:
        return sum(len(c.times_ms) for c in self.controls)

    @property
    def met(self) -> bool:
        return self.compiles == 0 and self.worst.median <= self.target_ms


@dataclass
class Result:
    rows: list[PanelRow]
    table: str

    def targets(self) -> dict[str, bool | None]:
        out = {}
        for kind in TARGET_MS:
            rows = [r for r in self.rows if r.kind == kind]
            out[kind] = all(r.worst.median <= r.target_ms for r in rows) if rows else None
        out["compiles"] = all(r.compiles == 0 for r in self.rows)
        return out


def panel_kind(name: str, cls) -> str:
    kind = getattr(cls, "kind", "surface")
    if kind not in TARGET_MS:
        raise ValueError(f"panel {name}: kind must be one of {sorted(TARGET_MS)}, got kind={kind!r}")
    return kind


def measure_panel(name: str, moves: int) -> PanelRow:
    from lecture_lib.panels import PANELS

    cls = PANELS[name]
    with count_compiles() as built:
        panel, build_ms = common.first_ms(cls)
    row = PanelRow(name, panel_kind(name, cls), build_ms, built[0], 0)
    gc.collect()  # once a panel: a full collection per move would cost seconds with many figures alive
    with count_compiles() as c:
        for cname, control in panel.controls.items():
            start = control.value
            values = candidate_values(control)
            times = []
            for v in itertools.islice(itertools.cycle(values), 2 * moves):
                if len(times) == moves:
                    break
                if v == control.value:  # would not redraw
                    continue
                times += common.times_ms(lambda v=v, c=control: setattr(c, "value", v), 1, collect=False)
            if control.value != start:
                control.value = start
            row.controls.append(ControlTimes(cname, type(control).__name__, times))
    row.compiles = c[0]
    return row


def _table(rows: list[PanelRow], moves: int) -> list[str]:
    lines = [
        "| panel | kind | controls | moves | first draw ms | median ms (slowest control) "
        "| p95 ms (all moves) | compiles after first draw | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        w = r.worst
        cells = [
            r.name,
            r.kind,
            str(len(r.controls)),
            str(r.moves),
            common.fmt(r.build_ms, 0),
            f"{w.median:.1f} ({w.name})",
            f"{r.p95:.1f}",
            str(r.compiles),
            f"≤ {r.target_ms:g} ms, 0 compiles",
            common.met(r.met),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "<details><summary>every control: median / p95 ms</summary>",
        "",
        "| panel | control | widget | moves | median ms | p95 ms |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        for c in r.controls:
            lines.append(
                f"| {r.name} | {c.name} | {c.kind} | {len(c.times_ms)} | {c.median:.1f} | {c.p95:.1f} |"
            )
    lines += [
        "",
        "</details>",
        "",
        f"Each control moved {moves} times through tests/test_panels.py's candidate values (extremes, a "
        "middle value, back), each move timed from `control.value = v` to the end of the synchronous redraw "
        "in this process (no browser). first draw: building the panel with its defaults (compiles included). "
        f"Training panels (target {TARGET_MS['training']:g} ms): the panel classes with "
        '`kind = "training"` (their redraws retrain a model).',
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help=f"panels {', '.join(QUICK_PANELS)}, 4 moves a control"
    )
    p.add_argument("--panels", nargs="+", metavar="NAME", help="a subset of PANELS (default: all)")
    p.add_argument("--moves", type=int, help="moves a control (default 20, --quick 4)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    args.moves = args.moves or (QUICK if args.quick else DEFAULTS)["moves"]
    if args.moves < 1:
        p.error(f"--moves must be a positive integer, got {args.moves}")
    from lecture_lib.panels import PANELS

    names = args.panels or (list(QUICK_PANELS) if args.quick else sorted(PANELS))
    unknown = [n for n in names if n not in PANELS]
    if unknown:
        p.error(f"unknown panels {unknown}; registered: {', '.join(sorted(PANELS))}")
    args.names = names
    return args


def main(argv=None) -> Result:
    args = _parse(argv)
    load_before = common.load()
    rows = []
    for name in args.names:
        rows.append(measure_panel(name, args.moves))
        gc.collect()  # the panel's figures go before the next one is built
    lines = [
        f"# Panel latency in the kernel: {len(rows)} panels, up to {args.moves} moves a control",
        "",
        *common.header_lines(load_before),
        "",
        *_table(rows, args.moves),
    ]
    report = "\n".join(lines) + "\n"
    print(report, end="")
    common.write(args.markdown, report)
    return Result(rows, report)


if __name__ == "__main__":
    result = main()
    sys.exit(0 if all(r.compiles == 0 for r in result.rows) else 1)
