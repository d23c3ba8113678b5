"""benchmarks/bench_trajectories.py: a tiny run, so that the script never rots."""

from __future__ import annotations

import sys

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield load_benchmark("bench_trajectories")
    sys.modules.pop("bench_trajectories", None)


def test_trajectory_benchmark_runs_and_every_implementation_agrees(bench, tmp_path, capsys):
    markdown = tmp_path / "bench.md"
    result = bench.main(["--quick", "--steps", "20", "--repeats", "2", "--markdown", str(markdown)])

    assert result.ok, result.table
    assert result.max_deviation <= bench.TOL
    workloads = [f"{o} / {s}" for s in bench.SURFACE_NAMES for o in bench.OPTIMIZER_NAMES]
    assert [r.workload for r in result.rows] == workloads
    for row in result.rows:
        assert set(row.deviations) == {"optax", "torch", "numpy"}
        times = (row.run_us, row.first_call_ms, row.optax_us, row.torch_us, row.numpy_us)
        assert all(t is not None and t > 0 for t in times), row

    printed = capsys.readouterr().out
    assert printed == result.table == markdown.read_text(encoding="utf-8")
    lines = printed.splitlines()
    assert lines[0].startswith("# ll.run against Python-loop optimizers: 20-step")
    assert any(line.startswith("- versions: python ") and "jax " in line for line in lines)
    header = next(line for line in lines if line.startswith("| workload |"))
    for column in ("ll.run µs", "first call ms", "optax loop µs", "torch loop µs", "numpy µs", "vs torch"):
        assert column in header
    rows = [line for line in lines if line.startswith("| ") and " / " in line.split("|")[1]]
    assert [line.split("|")[1].strip() for line in rows] == workloads
    assert "correctness: " in printed and ": yes, max deviation" in printed


def test_arguments_are_checked(bench):
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])
