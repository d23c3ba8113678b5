"""Helpers shared by the benchmark scripts: the machine and versions header, timing, formatting.

The scripts import it as ``common`` with their own folder on ``sys.path`` (``python benchmarks/x.py`` puts it
there; ``benchmark_path()`` does it for a script loaded from elsewhere, e.g. by the tests).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{os.cpu_count()} logical CPUs ({usable} usable by this process)"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def versions() -> str:
    names = ("jax", "jaxlib", "optax", "torch", "numpy")
    return ", ".join([f"python {platform.python_version()}"] + [f"{n} {version(n)}" for n in names])


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


@contextlib.contextmanager
def torch_threads(n: int):
    """PyTorch on ``n`` intra-op threads for the block (nothing without torch), the previous count after."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def header_lines(load_before: str | None = None) -> list[str]:
    """Machine (CPU model, cores, OS, load), versions and date: the top of every report."""
    import jax  # imported here: the notebook benchmark's parent process needs no JAX

    loads = (
        f"load average {load_before} at the start, {load()} now" if load_before else f"load average {load()}"
    )
    return [
        f"- machine: {cpu_model()}, {cores()}, {platform.platform()}, JAX backend {jax.default_backend()}, "
        f"{loads}",
        f"- versions: {versions()}",
        f"- date: {now()}",
    ]


def times_ms(thunk: Callable, repeats: int, collect: bool = True) -> list[float]:
    """Wall times of ``repeats`` calls of ``thunk()`` in milliseconds, garbage collection paused (and run
    before, unless ``collect=False``: with a large heap, e.g. many plotly figures, a full collection takes
    seconds)."""
    out = []
    if collect:
        gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            thunk()
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        if was_enabled:
            gc.enable()
    return out


def median(values) -> float:
    return statistics.median(values)


def p95(values) -> float:
    """The 95th percentile, linear interpolation between order statistics (the maximum for few values)."""
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    x = 0.95 * (len(v) - 1)
    lo = int(x)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (x - lo)


def first_ms(thunk: Callable):
    """``thunk()``'s result and its wall time in milliseconds."""
    t0 = time.perf_counter()
    out = thunk()
    return out, (time.perf_counter() - t0) * 1e3


def fmt(x: float | None, digits: int = 0, suffix: str = "") -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{suffix}"


def fmt_time_ms(ms: float | None) -> str:
    """A duration with a unit that keeps 2–3 significant digits: µs, ms or s."""
    if ms is None:
        return "n/a"
    if ms < 1:
        return f"{ms * 1e3:.3g} µs"
    if ms < 1000:
        return f"{ms:.3g} ms"
    return f"{ms / 1e3:.3g} s"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def write(path: str | os.PathLike | None, report: str) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(report, encoding="utf-8")


def benchmark_path() -> None:
    """Put this folder on ``sys.path`` (for ``import common`` from a script loaded by path)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
