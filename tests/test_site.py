"""Static pages: ``Panel.static_figure`` replays a panel with plotly's own slider, and ``lecture_lib.site``
builds offline pages whose figures render and whose sliders move in a real browser with the network cut."""

from __future__ import annotations

import ast
import base64
import inspect
import json
import re
import sys

import ipywidgets as widgets
import nbformat
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from _browser import ROOT, browser, free_port, server

from lecture_lib import site
from lecture_lib.panels import PANELS, Panel

# ---- Panel.static_figure -------------------------------------------------------------------------------


def live(panel) -> list[dict]:
    return [f.to_dict() for f in (panel.figure if isinstance(panel.figure, list) else [panel.figure])]


def snapshot(panel) -> str:
    return "".join(pio.to_json(f) for f in live(panel))


def decoded(obj):
    """Plotly's typed-array specs (``{"dtype": "f8", "bdata": ...}``, as a FigureWidget holds its arrays)
    as numpy arrays, in nested dicts and lists too."""
    if isinstance(obj, dict) and "bdata" in obj and "dtype" in obj:
        array = np.frombuffer(base64.b64decode(obj["bdata"]), np.dtype(obj["dtype"]))
        shape = obj.get("shape")
        return array.reshape([int(n) for n in str(shape).split(",")]) if shape else array
    if isinstance(obj, dict):
        return {k: decoded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [decoded(v) for v in obj]
    return obj


def assert_same(frame, drawn, where=""):
    """``frame`` (a static figure's trace or layout part) shows what ``drawn`` (the live figure) shows: equal
    up to float32 rounding; a None in the frame stands for a property the live figure leaves unset."""
    if isinstance(frame, np.ndarray) and frame.dtype.kind not in "fiub":
        frame = frame.tolist()
    if frame is None:
        assert drawn is None, where
    elif isinstance(frame, dict):
        assert isinstance(drawn, dict), where
        for k, v in frame.items():
            assert_same(v, drawn.get(k), f"{where}.{k}")
    elif isinstance(frame, (np.ndarray, list, tuple)) and np.asarray(frame).dtype.kind in "fiub":
        np.testing.assert_allclose(
            np.asarray(frame, np.float64), np.asarray(drawn, np.float64), rtol=1e-6, err_msg=where
        )
    elif isinstance(frame, (list, tuple)):
        assert len(frame) == len(drawn), where
        for i, (a, b) in enumerate(zip(frame, drawn, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert frame == drawn, where


def check_frames(panel, name, static):
    """Every frame of ``static`` equals the live panel drawn at that step's value, traces and layout."""
    control = panel.controls[name]
    steps = static.layout.sliders[0].steps
    assert len(steps) == len(static.frames) >= 2
    base = decoded(static.to_dict())
    for step, frame in zip(steps, static.frames, strict=True):
        value = ast.literal_eval(step.value)
        if isinstance(control, (widgets.Dropdown, widgets.SelectionSlider)):
            control.index = value
        else:
            control.value = value
        (drawn,) = decoded(live(panel))
        frame = decoded(frame.to_plotly_json())
        shown = {i: t for i, t in zip(frame["traces"], frame["data"], strict=True)}
        for i, trace in enumerate(drawn["data"]):
            assert_same(shown.get(i, base["data"][i]), trace, f"{step.label}: trace {i}")
        for key, value in frame.get("layout", {}).items():
            assert_same(value, drawn["layout"].get(key), f"{step.label}: layout.{key}")


@pytest.fixture(scope="module")
def memory():
    return PANELS["batch_memory"]()  # a drop-down first, then a FloatLogSlider: the slider is stepped


def test_static_figure_steps_a_log_slider_and_restores_the_panel(memory):
    before = snapshot(memory)
    values = {k: c.value for k, c in memory.controls.items()}
    assert memory.primary_control() == "budget"
    static = memory.static_figure(n=7)
    assert isinstance(static, go.Figure) and not isinstance(static, go.FigureWidget)
    assert snapshot(memory) == before, "the panel was not restored"
    assert {k: c.value for k, c in memory.controls.items()} == values
    slider = static.layout.sliders[0]
    budgets = [ast.literal_eval(s.value) for s in slider.steps]
    assert len(static.frames) == len(budgets) == 8  # 7 log-spaced values and the current 8 GB
    assert budgets == sorted(budgets) and slider.steps[slider.active].label == "8"  # readout format .3g
    assert budgets[slider.active] == pytest.approx(8.0)
    others = np.log10([b for b in budgets if b != pytest.approx(8.0)])
    np.testing.assert_allclose(np.diff(others), np.diff(others)[0], atol=1e-9)  # evenly log-spaced
    assert others[0] == pytest.approx(-2) and others[-1] == pytest.approx(2.5)
    check_frames(memory, "budget", static)


def test_static_figure_steps_a_selection_slider_and_a_named_drop_down():
    panel = PANELS["robbins_monro"]()
    static = panel.static_figure()
    options = panel.controls["schedule"].options
    assert [s.label for s in static.layout.sliders[0].steps] == list(options)
    assert static.layout.sliders[0].active == options.index(panel.controls["schedule"].value)
    check_frames(panel, "schedule", static)

    memory = PANELS["batch_memory"]()
    static = memory.static_figure("model")
    assert len(static.frames) == len(memory.controls["model"].options)
    check_frames(memory, "model", static)
    with pytest.raises(ValueError, match="control must be one of"):
        memory.static_figure("no such control")


def test_frames_carry_only_what_changes():
    panel = PANELS["conditioning"]()  # κ changes the contours and the title, not the colour of the axes
    static = panel.static_figure(n=4)
    frame = static.frames[0]
    assert 0 < len(frame.traces) < len(static.data)
    assert "template" not in frame.layout.to_plotly_json()
    check_frames(panel, "kappa", static)


class TwoFigures(Panel):
    """A panel whose ``figure`` is a list; the drop-down's update also moves the slider."""

    def build(self):
        self.controls["k"] = widgets.IntSlider(value=2, min=1, max=5, description="frequency k")
        self.controls["shape"] = widgets.Dropdown(options=["sin", "cos"], value="sin", description="shape")
        self.info = widgets.HTML()
        self.figure = [go.FigureWidget(go.Figure(go.Scatter(), layout=dict(title=t))) for t in ("f", "f²")]
        self.widget = widgets.VBox([self.controls["k"], self.controls["shape"], self.info, *self.figure])

    def update(self, changed=None):
        if changed == "shape":
            with self.hold():
                self.controls["k"].value = 1
            return
        x = np.linspace(0, 1, 50)
        y = getattr(np, self.controls["shape"].value)(2 * np.pi * self.controls["k"].value * x)
        self.figure[0].data[0].update(x=x, y=y)
        self.figure[1].data[0].update(x=x, y=y**2)
        self.info.value = f"<b>k = {self.controls['k'].value}</b>"


def test_a_panel_with_several_figures_gives_one_stepped_figure_each():
    panel = TwoFigures()
    panel.controls["k"].value = 3
    static = panel.static_figure()
    assert isinstance(static, list) and len(static) == 2
    assert [len(f.frames) for f in static] == [5, 5]
    assert [f.layout.sliders[0].active for f in static] == [2, 2]
    for i, value in enumerate(range(1, 6)):
        np.testing.assert_allclose(
            decoded(static[1].frames[i].data[0].y),
            np.sin(2 * np.pi * value * np.linspace(0, 1, 50)) ** 2,
            atol=1e-6,
        )
    page = panel.static_html()
    assert page.count("Plotly.newPlot") == 2 and "plotly_sliderchange" in page
    assert "<b>k = 3</b>" in page and "shape = sin" in page  # the read-out, the control that stays
    # the read-out drawn before any script runs is the panel's current one (k = 3), not the first frame's
    assert re.search(r'class="lecture-static-readout"><b>k = 3</b></div>', page)
    # stepping the drop-down resets k; both come back
    panel.static_figure("shape")
    assert panel.controls["k"].value == 3 and panel.controls["shape"].value == "sin"
    np.testing.assert_allclose(panel.figure[0].data[0].y, np.sin(6 * np.pi * np.linspace(0, 1, 50)))


def test_a_heavy_figure_drops_values_until_light_and_always_ends():
    # 4 values with the current one second: keep[::2] + current + last was all four, and the loop never ended
    # (noise_fan after its controls were swept to their extremes)
    panel = TwoFigures()
    panel.static_bytes = 1  # never light enough: drop down to the ends and the current value
    panel.controls["k"].value = 2
    static = panel.static_figure(n=3)  # steps 1, 3, 5 and the current 2
    assert [len(f.frames) for f in static] == [3, 3]
    assert [s.label for s in static[0].layout.sliders[0].steps] == ["1", "2", "5"]
    assert static[0].layout.sliders[0].active == 1
    for n in (5, 8, 13):  # from any count: the ends and the current value stay
        panel.controls["k"].value = 4
        steps = panel.static_figure(n=n)[0].layout.sliders[0].steps
        assert [s.label for s in steps] == ["1", "4", "5"]


def test_tex_to_mathml_converts_formulas_but_not_code_or_prices():
    md = "cost $\\ln 10 \\approx 2.302$, `code $x$`, $$\\frac{a}{b}$$, costs $5 and $10, $\\badmacro{$"
    out = site.tex_to_mathml(md)
    assert out.count("<math") == 2 and 'display="block"' in out and "<mfrac>" in out
    assert "`code $x$`" in out and "costs $5 and $10" in out
    assert "\\ln" not in out and "2.302" in out


def test_remote_loads_finds_what_a_page_would_fetch_not_its_links():
    page = """<html><head><script src="https://cdn.example/require.js"></script>
    <link rel="stylesheet" href="//fonts.example/a.css"><style>@import url("https://x.example/b.css");</style>
    <script type="module">const m = await import("https://cdn.example/mermaid.mjs");</script>
    <script src="plotly.min.js"></script></head>
    <body><a href="https://arxiv.org/abs/1705.08292">Wilson et al.</a>
    <img src="data:image/png;base64,AA"></body>
    </html>"""
    assert site.remote_loads(page) == [
        "https://cdn.example/require.js",
        "//fonts.example/a.css",
        "https://x.example/b.css",
        "https://cdn.example/mermaid.mjs",
    ]


# ---- a built page in a browser, offline -------------------------------------------------------------------

GENERATED = [
    nbformat.v4.new_markdown_cell(
        "# A generated page\n\nThe loss $E(w) = \\frac{1}{2} w^2$ is drawn as MathML; `$x$` in code is not."
    ),
    nbformat.v4.new_code_cell(
        "import ipywidgets as widgets\nimport numpy as np\nimport plotly.graph_objects as go\n"
        f"from lecture_lib.panels import Panel\n\n{inspect.getsource(TwoFigures)}\n\nTwoFigures()"
    ),
    nbformat.v4.new_code_cell('go.Figure(go.Bar(x=[1, 2, 3], y=[3, 1, 2]), layout=dict(title="plain"))'),
    nbformat.v4.new_code_cell("go.FigureWidget(go.Scatter(y=[1, 3, 2]))"),
    nbformat.v4.new_code_cell("widgets.IntSlider()"),
]

SLIDER_STATE = """gd => JSON.stringify({
  active: gd.layout.sliders[0].active,
  current: (gd.querySelector('.slider-container text') || {}).textContent,
  data: gd._fullData.map(t => [t.name, Array.from(t.y || [])]),
  svg: gd.querySelector('.cartesianlayer').innerHTML
})"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src, out = tmp_path_factory.mktemp("notebooks"), tmp_path_factory.mktemp("site")
    nb = nbformat.v4.new_notebook(cells=GENERATED)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "generated.ipynb")
    site.build(ROOT / "notebooks", out, only=["00_start_here"])
    site.build(src, out)
    return out


def click_slider_start(page, gd):
    rail = gd.locator(".slider-rail-rect").first
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    page.mouse.click(box["x"] + 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(500)


def test_built_pages_render_offline_and_their_sliders_move(built):
    assert {p.name for p in built.iterdir()} >= {
        "00_start_here.html",
        "generated.html",
        "index.html",
        "plotly.min.js",
    }
    for name in ("00_start_here.html", "generated.html", "index.html"):
        text = (built / name).read_text()
        assert site.remote_loads(text) == [], name
        assert text.count('src="plotly.min.js"') == (name != "index.html"), "plotly.js once per page"
    assert "generated.html" in (built / "index.html").read_text()

    port = free_port()
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(built)]
    with server(cmd, f"http://127.0.0.1:{port}/index.html") as url, browser("abort") as context:
        base = url.removesuffix("index.html")
        for name, count in (("00_start_here.html", 1), ("generated.html", 4)):
            page = context.new_page()
            errors = []
            page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.goto(base + name, wait_until="load")
            plots = page.locator(".js-plotly-plot")
            page.wait_for_function(
                f"document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {count}"
            )
            assert plots.count() == count, name
            for i in range(count):
                assert plots.nth(i).locator("svg.main-svg").count() >= 1, f"{name}: figure {i} did not render"
            assert "Loading widget" not in page.inner_text("body")

            gd = page.locator(".lecture-static-panel .js-plotly-plot").first
            before = json.loads(gd.evaluate(SLIDER_STATE))
            assert before["active"] > 0
            click_slider_start(page, gd)
            after = json.loads(gd.evaluate(SLIDER_STATE))
            assert after["active"] == 0 and after["svg"] != before["svg"], (
                f"{name}: the slider did not redraw"
            )
            if name == "generated.html":
                text = page.inner_text("body")
                # no MathJax offline: the formula is MathML the browser lays out itself (a fraction, with
                # height), and the TeX source is gone; code keeps its dollars
                assert "\\frac" not in text and "$x$" in text
                box = page.locator("math mfrac").first.bounding_box()
                assert box is not None and box["height"] > 15
                assert "run the notebook to use it" in text  # the bare ipywidget
                assert "k = 1" in page.inner_text(".lecture-static-readout")  # the read-out followed
                other = page.locator(".lecture-static-panel .js-plotly-plot").nth(1)
                linked = json.loads(other.evaluate(SLIDER_STATE))
                assert linked["active"] == 0, "the second figure of the panel did not follow the slider"
                np.testing.assert_allclose(
                    linked["data"][0][1], np.sin(2 * np.pi * np.linspace(0, 1, 50)) ** 2, atol=1e-6
                )
            assert errors == [], f"{name}: console errors {errors}"
            page.close()
        assert context.outside_requests == []
