"""Every registered panel: build it, move every control (extremes included), the figure changes, and
nothing compiles after the first draw."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from lecture_lib import plots
from lecture_lib.panels import PANELS


def snapshot(panel) -> str:
    figures = panel.figure if isinstance(panel.figure, list) else [panel.figure]
    return "".join(pio.to_json({"data": f.data, "layout": f.layout}) for f in figures)


def candidate_values(control):
    """Values to move a control to: its extremes and a middle value, different from the current one."""
    if isinstance(control, (widgets.Dropdown, widgets.SelectionSlider)):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
    elif isinstance(control, widgets.FloatLogSlider):
        values = [
            control.base**control.min,
            control.base**control.max,
            control.base ** ((control.min + control.max) / 2),
        ]
    elif isinstance(control, (widgets.IntSlider, widgets.FloatSlider)):
        values = [control.min, control.max, type(control.value)((control.min + control.max) / 2)]
    elif isinstance(control, (widgets.Checkbox, widgets.ToggleButton)):
        values = [not control.value, control.value]
    else:
        raise AssertionError(f"the panel test does not know how to move a {type(control).__name__}")
    return [v for v in values if v != control.value] + [control.value]


@pytest.fixture(scope="module", params=sorted(PANELS))
def panel(request):
    return PANELS[request.param]()


def test_panel_has_the_contract_attributes(panel):
    assert panel.controls and all(isinstance(c, widgets.ValueWidget) for c in panel.controls.values())
    figures = panel.figure if isinstance(panel.figure, list) else [panel.figure]
    assert figures and all(type(f).__name__ == "FigureWidget" for f in figures)
    assert isinstance(panel.widget, widgets.Widget)
    assert panel.kind in ("surface", "training"), "the latency target class (benchmarks/bench_panels.py)"
    for f in figures:
        assert f.layout.font.size >= 14, "projector-readable fonts"
        assert f.layout.title.text, "every figure has a title"
        # the page's loader (lecture_lib/plots.py) keeps the figure as wide as its element through plotly.js's
        # responsive handler; a fixed width would not follow a projector's window
        assert f._config.get("responsive") is True and f.layout.width is None


def test_every_control_changes_the_figure_and_nothing_recompiles(panel, count_compiles):
    with count_compiles() as c:
        for name, control in panel.controls.items():
            for value in candidate_values(control):
                before = snapshot(panel)
                control.value = value
                after = snapshot(panel)
                assert after != before, f"moving {name} to {value!r} did not change the figure"
    assert c.count == 0, f"{c.count} compilations after the first draw"


def test_panel_has_a_static_figure_for_the_site(panel):
    """``make site`` replays each panel at precomputed values of one control (lecture_lib/site.py)."""
    # a fresh panel, as make site builds it (after the test above, some panels sit at their extremes with far
    # heavier figures; tests/test_site.py checks that a heavy stepped figure still ends)
    panel = PANELS[panel.name]()
    static = panel.static_figure(n=3)
    figures = static if isinstance(static, list) else [static]
    for fig in figures:
        assert isinstance(fig, go.Figure)
        assert len(fig.frames) == len(fig.layout.sliders[0].steps) >= 2
        assert len(fig.to_json()) < 3e6


def test_race_marks_divergence_in_the_legend_instead_of_breaking():
    race = PANELS["optimizer_race"](surface="quadratic")
    race.controls["lr_SGD"].value = 10.0  # far beyond 2/lambda_max = 0.04
    sgd_path = next(d for d in race.figure.data if d.name and d.name.startswith("SGD"))
    assert "diverged at step" in sgd_path.name
    assert np.all(np.isfinite(np.asarray(sgd_path.x))) and len(sgd_path.x) >= 1


def test_race_paths_end_near_the_minimum_with_the_default_rates():
    race = PANELS["optimizer_race"](surface="quadratic")
    heads = [
        d for d in race.figure.data if d.type == "scatter" and d.mode == "markers" and d.showlegend is False
    ]
    assert len(heads) == 6
    for h in heads:
        assert abs(h.x[0]) < 0.05 and abs(h.y[0]) < 0.05
    assert plots.color("Adam") != plots.color("SGD")


def test_a_figure_keeps_its_numpy_data_when_plotly_js_echoes_it_back():
    # after a redraw plotly.js sends the traces' computed properties back; a float32 array it re-typed comes
    # back as {"0": y0, ...}. plotly's own handler then raised ValueError (truth of an array) in the kernel,
    # and formatting that traceback held the next slider move for ~2 s (tests/test_browser_voila.py now
    # fails on any kernel error). The panel's arrays must survive the echo, and real defaults still apply.
    fig = go.FigureWidget(go.Scatter(x=np.arange(3), y=np.array([1, 2, 3], np.float32), line={"width": 3}))
    trace = fig.data[0]
    echo = {
        "uid": trace.uid,
        "y": {"0": 1.0, "1": 2.0, "2": 3.0},  # the re-typed array
        "x": [0, 1, 2],
        "line": {"width": 3, "color": "#636efa"},  # a default plotly.js computed, beside one we set
        "type": "scatter",
    }
    fig._js2py_traceDeltas = {"trace_deltas": [echo], "trace_edit_id": fig._last_trace_edit_id}
    assert isinstance(trace.y, np.ndarray) and trace.y.dtype == np.float32
    np.testing.assert_array_equal(trace.y, [1, 2, 3])
    np.testing.assert_array_equal(trace.x, [0, 1, 2])
    assert trace.line.width == 3 and trace.line.color == "#636efa"
