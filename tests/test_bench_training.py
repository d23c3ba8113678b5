"""benchmarks/bench_training.py: a tiny run, so that the script never rots."""

from __future__ import annotations

import sys

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield load_benchmark("bench_training")
    sys.modules.pop("bench_training", None)


def test_training_benchmark_runs_and_every_implementation_agrees(bench, tmp_path, capsys):
    markdown = tmp_path / "bench.md"
    argv = ["--quick", "--epochs", "1", "--draws", "200", "--repeats", "1", "--optimizers", "sgd"]
    result = bench.main([*argv, "--markdown", str(markdown)])

    assert result.ok, result.table
    [row] = result.fit_rows
    assert row.optimizer == "SGD" and row.ok
    assert set(row.finals) == {"fit", "optax", "torch"}
    for impl in ("optax", "torch"):
        dev = row.deviations(impl)
        assert dev["acc"] <= bench.ACC_TOL and dev["cost"] <= bench.COST_TOL, (impl, dev)
    times = (row.fit_ms, row.fit_first_ms, row.optax_ms, row.optax_first_ms, row.torch_ms, row.torch_first_ms)
    assert all(t is not None and t > 0 for t in times), row
    assert result.floor.flops > 0 and 0 < result.floor.floor_ms <= result.floor.peak_floor_ms
    assert set(result.targets_met) == {"torch", "optax"}  # speed is reported, not asserted

    names = [r.implementation for r in result.var_rows]
    assert names[0] == "ll.experiments.batch_error_variance" and len(names) == 4
    for r in result.var_rows:
        assert set(r.z) == {"with", "without"} and r.max_z <= bench.Z_TOL, r
        assert r.total_ms > 0

    printed = capsys.readouterr().out
    assert printed == result.table == markdown.read_text(encoding="utf-8")
    lines = printed.splitlines()
    assert lines[0].startswith("# ll.training.fit and batch_error_variance against Python loops: 1 epochs")
    assert any(line.startswith("- machine: ") and "load average" in line for line in lines)
    assert any(line.startswith("- versions: python ") and "jax " in line for line in lines)
    header = next(line for line in lines if line.startswith("| optimizer |"))
    for column in (
        "fit ms",
        "fit first call ms",
        "optax loop ms",
        "torch loop ms",
        "vs torch",
        "fit ÷ floor",
    ):
        assert column in header
    assert any(line.startswith("| SGD | ") for line in lines)
    assert sum(line.startswith(("| ll.", "| NumPy", "| PyTorch")) for line in lines) == 4
    assert printed.count(": yes, max") == 1 and "floor: " in printed
    assert not any(line.startswith("correctness:") and ": NO" in line for line in lines)
    assert "within 5× the floor: " in printed and "issue target: ll ahead of NumPy and PyTorch: " in printed
    assert set(result.targets()) == {"torch", "optax", "floor", "variance"}
    assert result.var_draws == 200 and result.var_sizes == 11

    summary = load_benchmark("run").summarize_training(result)  # benchmarks/run.py's rows for it
    assert [line.number for line in summary] == ["3"] * 3 + ["4"] * 3
    assert [line.target for line in summary[:3]] == ["≥ 10×", "≥ 2×", "≤ 5×"]
    assert all(line.met in (True, False) for line in summary)
    sys.modules.pop("run", None)


@pytest.mark.parametrize(
    "argv", [["--epochs", "0"], ["--draws", "1"], ["--max-batch", "1000"], ["--optimizers", "adam"]]
)
def test_arguments_are_checked(bench, argv):
    with pytest.raises(SystemExit):
        bench.main(argv)
