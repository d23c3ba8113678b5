"""The benchmark scripts and ``benchmarks/run.py`` on tiny sizes, so that they never rot."""

from __future__ import annotations

import sys

import nbformat
import pytest
from conftest import load_benchmark

from lecture_lib.panels import PANELS

TINY_TRAJECTORIES = ["--quick", "--steps", "20", "--repeats", "2", "--surfaces", "quadratic"]


@pytest.fixture(scope="module")
def bench():
    yield load_benchmark("bench_trajectories")
    sys.modules.pop("bench_trajectories", None)


@pytest.fixture(scope="module")
def runner():
    yield load_benchmark("run")
    for name in ("run", "bench_trajectories", "bench_many", "bench_panels", "bench_notebooks"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def tiny_notebook(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "tiny.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1 + 1"), nbformat.v4.new_code_cell("assert x == 2")]
    nbformat.write(nb, path)
    return path


def test_trajectory_benchmark_runs_and_every_implementation_agrees(bench, tmp_path, capsys):
    markdown = tmp_path / "bench.md"
    # the two whose optax and torch settings differ from the libraries' defaults (GD runs in the run.py test;
    # make bench checks all six on both surfaces)
    optimizers = ["AdaGrad", "RMSProp"]
    result = bench.main([*TINY_TRAJECTORIES, "--optimizers", *optimizers, "--markdown", str(markdown)])

    assert result.ok, result.table
    assert result.max_deviation <= bench.TOL
    workloads = [f"{o} / quadratic" for o in optimizers]
    assert [r.workload for r in result.rows] == workloads
    for row in result.rows:
        assert set(row.deviations) == {"scan", "light", "optax", "torch", "numpy"}
        times = (
            row.run_us,
            row.first_call_ms,
            row.scan_us,
            row.light_us,
            row.optax_us,
            row.torch_us,
            row.numpy_us,
        )
        assert all(t is not None and t > 0 for t in times), row
        assert row.loops_met in (True, False) and row.scan_met in (True, False)
    assert set(result.targets()) == {"loops", "scan"}  # speed is reported, not asserted

    printed = capsys.readouterr().out
    assert printed == result.table == markdown.read_text(encoding="utf-8")
    lines = printed.splitlines()
    assert lines[0].startswith("# ll.run against optax and Python-loop optimizers: 20-step")
    assert any(line.startswith("- versions: python ") and "jax " in line for line in lines)
    assert any(line.startswith("- machine: ") and "CPUs" in line for line in lines)
    header = next(line for line in lines if line.startswith("| workload |"))
    for column in (
        "ll.run µs",
        "first call ms",
        "optax in scan µs",
        "light scan µs",
        "ll ÷ light scan",
        "optax loop µs",
        "torch loop µs",
        "numpy µs",
        "vs torch",
        "target ≥100× loops",
        "target ≤1.5× scan",
    ):
        assert column in header
    rows = [line for line in lines if line.startswith("| ") and " / " in line.split("|")[1]]
    assert [line.split("|")[1].strip() for line in rows] == workloads
    assert "correctness: " in printed and ": yes, max deviation" in printed


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--optimizers", "lbfgs"]])
def test_arguments_are_checked(bench, argv):
    with pytest.raises(SystemExit):
        bench.main(argv)


def test_run_py_writes_the_summary_with_targets_for_every_benchmark_it_ran(runner, tiny_notebook, tmp_path):
    out = tmp_path / "RESULTS.md"
    argv = [
        "--only", "trajectories", "many", "panels", "notebooks",
        "--args", "trajectories=" + " ".join([*TINY_TRAJECTORIES, "--optimizers", "GD"]),
        "--args", "many=--quick --steps 20 --trajectories 16 --repeats 1",
        "--args", "panels=--panels batch_memory --moves 2",
        "--args", f"notebooks=--notebooks {tiny_notebook} --no-nbval",
        "--output", str(out),
    ]  # fmt: skip
    results, seconds, report = runner.run_all(argv)

    assert out.read_text(encoding="utf-8") == report
    assert set(results) == set(seconds) == {"trajectories", "many", "panels", "notebooks"}
    lines = report.splitlines()
    assert lines[0].startswith("# lecture_lib benchmarks (full")
    for prefix in ("- machine: ", "- versions: python ", "- date: "):
        assert sum(line.startswith(prefix) for line in lines) == 1, prefix  # sections drop theirs
    summary = [line for line in lines if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    numbers = [line.split("|")[1].strip() for line in summary]
    assert numbers == ["1"] * 5 + ["2"] * 2 + ["6"] * 2 + ["7"] * 2
    for line in summary:
        assert line.rstrip(" |").rsplit("|", 1)[1].strip() in {"met", "NOT met", "n/a", "—"}, line
    assert "≥ 100×" in report and "≤ 1.5×" in report and "≤ 30 s" in report and "Targets not met: " in report
    for title in ("## ll.run against", "## 16 noisy 20-step", "## Panel latency", "## Notebook execution"):
        assert any(line.startswith(title) for line in lines), title

    many = results["many"]
    assert many.ok and many.rows[0].ll_ms > 0 and set(many.rows[0].mean_loss) == {"ll", "torch", "numpy"}
    [panel] = results["panels"].rows
    assert panel.name == "batch_memory" and panel.kind == "training" and panel.compiles == 0
    assert all(len(c.times_ms) == 2 for c in panel.controls)
    [nb] = results["notebooks"].rows
    assert nb.error is None and nb.cold_s > 0 and nb.warm_s > 0 and results["notebooks"].suite is None


def test_notebook_benchmark_reports_a_failing_notebook_and_the_nbval_line(runner, tmp_path):
    bench = load_benchmark("bench_notebooks")
    path = tmp_path / "fails.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("assert 1 == 2, 'claim check'")]
    nbformat.write(nb, path)
    row = bench.measure_notebook(path)
    assert row.error and "claim check" in row.error and not row.met
    lines = bench._table([row], bench.Suite(12.0, 0, "1 passed in 10s"))
    assert any("nbval suite" in line and "12.0 s" in line and ": met;" in line for line in lines)


def test_panel_kinds_and_targets(runner):
    bench = load_benchmark("bench_panels")

    class Custom:
        kind = "training"

    class Typo:
        kind = "trainig"

    # the panel class says what its redraw does; the registered panels say it too
    assert bench.panel_kind("running_loss", PANELS["running_loss"]) == "training"
    assert bench.panel_kind("optimizer_race", PANELS["optimizer_race"]) == "surface"
    assert bench.panel_kind("anything_new", Custom) == "training"
    assert bench.panel_kind("plain", object) == "surface"
    with pytest.raises(ValueError, match="kind must be one of"):
        bench.panel_kind("typo", Typo)
    assert bench.TARGET_MS == {"surface": 30.0, "training": 150.0}
    assert bench.common.p95([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(4.8)
