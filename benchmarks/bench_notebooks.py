"""Execution time of every notebook: cold (fresh kernel, empty JAX compilation cache) and warm (the persistent
cache filled by the cold run), with nbclient, and the whole suite under nbval as ``make test`` runs it.

- cold: a new kernel and a new, empty ``JAX_COMPILATION_CACHE_DIR`` for the notebook (with
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0`` and ``..._MIN_ENTRY_SIZE_BYTES=-1``, as in the Makefile):
  what a student's first run costs;
- warm: a new kernel again, the cache that the cold run filled: every later run;
- nbval: ``pytest --nbval-lax --nbval-current-env`` over all the notebooks, in a subprocess with a fresh,
  empty cache (a fresh clone in CI).

Times are wall clock from starting the kernel to its shutdown. Targets (issue 8): each notebook ≤ 30 s cold,
the nbval suite ≤ 4 minutes. Run ``python benchmarks/bench_notebooks.py`` (``--quick`` for
``00_start_here`` without nbval, ``--notebooks PATH ...`` for others, ``--markdown PATH`` to save the table).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # loaded by path (tests, run.py)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NOTEBOOKS = common.REPO / "notebooks"
QUICK_NOTEBOOKS = ("00_start_here.ipynb",)
COLD_TARGET_S = 30.0
SUITE_TARGET_S = 240.0
TIMEOUT_S = 600


@dataclass
class NotebookRow:
    path: Path
    cold_s: float
    warm_s: float
    error: str | None = None  # the first failure, if any

    @property
    def met(self) -> bool:
        return self.error is None and self.cold_s <= COLD_TARGET_S


@dataclass
class Suite:
    seconds: float
    returncode: int
    summary: str  # pytest's last line

    @property
    def met(self) -> bool:
        return self.returncode == 0 and self.seconds <= SUITE_TARGET_S


@dataclass
class Result:
    rows: list[NotebookRow]
    suite: Suite | None
    table: str

    def targets(self) -> dict[str, bool | None]:
        return {
            "cold": all(r.met for r in self.rows),
            "suite": None if self.suite is None else self.suite.met,
        }


def cache_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("XLA_FLAGS", None)  # the kernel's lecture_lib sets its own, as in a student's kernel
    return env


def execute(path: Path, cache_dir: Path, timeout: int = TIMEOUT_S) -> tuple[float, str | None]:
    """Seconds to run ``path`` top to bottom in a fresh kernel with this compilation cache, and the error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    t0 = time.perf_counter()
    error = None
    try:
        client.execute(env=cache_env(cache_dir))
    except Exception as e:  # a failing cell: reported, the timing still counts
        text = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if line.strip()]
        error = f"{type(e).__name__}: {text[-1].strip() if text else ''}"
    return time.perf_counter() - t0, error


def measure_notebook(path: Path, timeout: int = TIMEOUT_S) -> NotebookRow:
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as d:
        cold, err_cold = execute(path, Path(d), timeout)
        warm, err_warm = execute(path, Path(d), timeout)
    return NotebookRow(path, cold, warm, err_cold or err_warm)


def nbval_suite(paths: list[Path], timeout: int = TIMEOUT_S) -> Suite:
    """The notebooks under nbval in one pytest process, as ``make test`` runs them, fresh empty cache."""
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as d:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax"]
        cmd += ["--nbval-current-env", *map(str, paths)]
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=common.REPO, env=cache_env(Path(d)), capture_output=True, text=True, timeout=timeout * 4
        )
        seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return Suite(seconds, proc.returncode, lines[-1] if lines else proc.stderr.strip()[-200:])


def _table(rows: list[NotebookRow], suite: Suite | None) -> list[str]:
    lines = [
        "| notebook | cold s (empty cache) | warm s (cache filled) | cold ÷ warm | target cold ≤ 30 s | met "
        "| error |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        cells = [
            r.path.name,
            f"{r.cold_s:.1f}",
            f"{r.warm_s:.1f}",
            f"{r.cold_s / r.warm_s:.1f}×",
            f"≤ {COLD_TARGET_S:g} s",
            common.met(r.met),
            r.error or "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    total_cold, total_warm = sum(r.cold_s for r in rows), sum(r.warm_s for r in rows)
    lines.append(f"| total | {total_cold:.1f} | {total_warm:.1f} | {total_cold / total_warm:.1f}× | | | |")
    lines.append("")
    if suite is None:
        lines.append("nbval suite: not run (--no-nbval)")
    else:
        lines.append(
            f"nbval suite (`pytest --nbval-lax --nbval-current-env` over these {len(rows)} notebooks, one "
            f"process, empty cache): {suite.seconds:.1f} s, target ≤ {SUITE_TARGET_S / 60:g} min: "
            f"{common.met(suite.met)}; pytest: {suite.summary}"
        )
    lines += [
        "",
        "Each time runs from starting a fresh kernel (nbclient) to its shutdown: it includes `import jax`, "
        "lecture_lib, plotly's widget import and every compile the notebook needs (cold) or loads from the "
        "persistent cache (warm).",
    ]
    return lines


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="00_start_here only, no nbval")
    p.add_argument("--notebooks", nargs="+", type=Path, metavar="PATH", help="default: notebooks/*.ipynb")
    p.add_argument("--no-nbval", action="store_true", help="skip the nbval suite")
    p.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds a cell may take (default 600)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report to this Markdown file")
    args = p.parse_args(argv)
    if args.notebooks is None:
        names = QUICK_NOTEBOOKS if args.quick else sorted(q.name for q in NOTEBOOKS.glob("*.ipynb"))
        args.notebooks = [NOTEBOOKS / n for n in names]
    missing = [str(q) for q in args.notebooks if not q.is_file()]
    if missing or not args.notebooks:
        p.error(f"no such notebooks: {missing}")
    if args.timeout < 1:
        p.error(f"--timeout must be a positive integer, got {args.timeout}")
    args.nbval = not (args.no_nbval or args.quick)
    return args


def main(argv=None) -> Result:
    args = _parse(argv)
    load_before = common.load()
    rows = [measure_notebook(q, args.timeout) for q in args.notebooks]
    suite = nbval_suite(args.notebooks, args.timeout) if args.nbval else None
    lines = [
        f"# Notebook execution time: {len(rows)} notebooks, cold and warm JAX compilation cache",
        "",
        *common.header_lines(load_before),
        "",
        *_table(rows, suite),
    ]
    report = "\n".join(lines) + "\n"
    print(report, end="")
    common.write(args.markdown, report)
    return Result(rows, suite, report)


if __name__ == "__main__":
    result = main()
    sys.exit(0 if all(r.error is None for r in result.rows) else 1)
