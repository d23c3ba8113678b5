"""The curvature benchmark stays runnable; its torch reference Hessian equals ours (checked inside)."""

from __future__ import annotations

from conftest import load_benchmark


def test_bench_curvature_quick_runs_and_reports_every_size(tmp_path):
    bench = load_benchmark("bench_curvature")
    out = tmp_path / "report.md"
    report = bench.main(["--sizes", "30", "60", "--markdown", str(out)])
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == [31, 61]
    assert "fitted log-log slopes" in report and "4 TB" in report
    assert out.read_text().strip() == report.strip()
    assert "| torch ÷ jax |" in report and "| form H ÷ HVP |" in report


def test_run_py_summarizes_the_curvature_benchmark():
    bench = load_benchmark("bench_curvature")
    result = bench.run(["--sizes", "30", "60"])
    assert list(result.cost.n) == [31, 61] and result.slopes.shape == (3,) and len(result.torch_form) == 2
    summary = load_benchmark("run").summarize_curvature(result)
    assert [line.number for line in summary] == ["5", "5"]
    assert "slopes form" in summary[0].workload and "×" in summary[0].ratio
