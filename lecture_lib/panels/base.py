"""The panel pattern: controls + one FigureWidget + an ``update`` that redraws synchronously.

A panel owns ``controls`` (name -> ipywidgets value widget), ``figure`` (a plotly ``FigureWidget``, or a
list of them) and ``widget`` (what a notebook displays). Setting ``controls[k].value`` calls ``update``
at once, in the kernel, so pytest can move every slider without a browser. Heavy numerical work happens in
jitted library functions whose hyperparameters are traced: after the first draw, moving a control never
compiles.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable

import ipywidgets as widgets

PANELS: dict[str, Callable[[], Panel]] = {}


def register(name: str):
    """Class decorator: ``PANELS[name]()`` builds the panel with its defaults."""

    def deco(cls):
        PANELS[name] = cls
        cls.name = name
        return cls

    return deco


def log_slider(value, lo, hi, description, *, step=0.05, readout_format=".3g", **kwargs):
    """A base-10 ``FloatLogSlider`` from ``lo`` to ``hi`` (in the quantity's own units, not exponents)."""
    return widgets.FloatLogSlider(
        value=value,
        base=10,
        min=math.log10(lo),
        max=math.log10(hi),
        step=step,
        description=description,
        readout_format=readout_format,
        **kwargs,
    )


class Panel:
    name: str = "panel"
    # what a redraw does, for the latency targets (benchmarks/bench_panels.py): "surface" redraws from 2-D
    # runs (≤ 30 ms in the kernel), "training" retrains a model (≤ 150 ms)
    kind: str = "surface"

    def __init__(self):
        self._holding = False
        self.controls: dict[str, widgets.ValueWidget] = {}
        self.figure = None
        self.widget: widgets.Widget | None = None
        self.build()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    def build(self) -> None:
        """Create ``controls``, ``figure`` and ``widget``."""
        raise NotImplementedError

    def update(self, changed: str | None = None) -> None:
        """Redraw ``figure`` from the current control values; ``changed`` names the control that moved."""
        raise NotImplementedError

    @contextlib.contextmanager
    def hold(self):
        """Set several controls at once with one redraw at the end."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        self.update()

    def _on_change(self, change):
        if self._holding:
            return
        name = next((k for k, c in self.controls.items() if c is change["owner"]), None)
        self.update(name)

    def _ipython_display_(self):
        from IPython.display import display

        # A FigureWidget syncs only the figure it was created with; later edits travel as messages, which a
        # front end that connects afterwards (Voilà: the page fetches the widgets once the notebook has run)
        # never sees. plotly re-syncs the whole figure when the FigureWidget itself is displayed, not when a
        # box holding it is: do it here, or Voilà shows every panel as it was before its first update.
        for figure in self.figure if isinstance(self.figure, list) else [self.figure]:
            if hasattr(figure, "_widget_data"):
                figure._widget_layout = copy.deepcopy(figure._layout_obj._props)
                figure._widget_data = copy.deepcopy(figure._data)
        display(self.widget)

    # -- static pages (``make site``): the panel without a kernel -------------------------------------------
    static_control: str | None = None  # the control a static page steps through; None: the first slider
    static_frames: int = 13  # values of it that a static page precomputes (plus the current one)
    static_bytes: int = 1_500_000  # fewer values where the stepped figure's JSON would be larger

    def primary_control(self) -> str | None:
        """The control a static page steps through: ``static_control``, else the first slider, else the first
        drop-down (or other choice), else the first checkbox; None if the panel has none of these."""
        if self.static_control is not None:
            return self.static_control
        for kinds in (_SLIDERS, _CHOICES, _TOGGLES):
            for name, control in self.controls.items():
                if isinstance(control, kinds):
                    return name
        return None

    def static_figure(self, control: str | None = None, n: int | None = None):
        """A plain ``go.Figure`` that replays this panel at ``n`` values of one control with plotly's slider.

        ``control`` defaults to :meth:`primary_control`. Drop-downs and selection sliders step through their
        options, numeric sliders through ``n`` evenly spaced values (log-spaced for a ``FloatLogSlider``),
        always including the current value, which the figure shows first; every other value is dropped while
        the figure's JSON exceeds ``static_bytes``. The panel is redrawn at each value
        and restored afterwards. Returns one figure, or a list of them if ``figure`` is a list; without any
        control to step, a snapshot of the figure as it is.
        """
        return self._static(control, n)[0]

    def static_html(self, control: str | None = None, n: int | None = None) -> str:
        """The HTML a static page shows for this panel: the stepped figure(s) (plotly.js is not included, the
        page loads it once), the panel's HTML read-outs following the slider, and a line that says which
        control the slider moves and where the others stay."""
        figures, name, readouts = self._static(control, n)
        return _static_panel_html(self, figures, name, readouts)

    def _static(self, control, n):
        import plotly.graph_objects as go

        from lecture_lib import plots

        many = isinstance(self.figure, list)
        figures = self.figure if many else [self.figure]
        name = control if control is not None else self.primary_control()
        readouts = _readouts(self.widget)
        if name is None:
            static = [go.Figure(f.to_dict()) for f in figures]
            return (static if many else static[0]), None, [[r.value for r in readouts]]
        if name not in self.controls:
            raise ValueError(f"control must be one of {list(self.controls)}, got control={name!r}")
        widget = self.controls[name]
        saved = {k: _get(c) for k, c in self.controls.items()}
        steps = _steps(widget, n or self.static_frames)
        snapshots, labels, infos = [], [], []
        try:
            for value in steps:
                _set(widget, value)
                snapshots.append([f.to_dict() for f in figures])
                labels.append(_label(widget))
                infos.append([r.value for r in readouts])
        finally:
            _set(widget, saved[name])
            if any(_get(c) != saved[k] for k, c in self.controls.items()):
                with self.hold():
                    for k, c in self.controls.items():
                        _set(c, saved[k])
        prefix = f"{widget.description or name} = "
        keep = list(range(len(steps)))
        while True:  # every other value dropped (the current one and the ends stay) until the page is light
            active = keep.index(steps.index(saved[name]))
            static = [
                plots.stepped_figure(
                    [snapshots[j][i] for j in keep],
                    [labels[j] for j in keep],
                    active=active,
                    prefix=prefix,
                    values=[repr(steps[j]) for j in keep],
                )
                for i in range(len(figures))
            ]
            if len(keep) <= 3 or sum(len(f.to_json()) for f in static) <= self.static_bytes:
                break
            # drop every other value between the kept ends and the current one: at least one goes each round
            # (keep[::2] plus the current one and the last could be all of them: that never ended)
            ends = {keep[0], keep[-1], keep[active]}
            others = [j for j in keep if j not in ends]
            keep = sorted(ends | set(others[1::2]))
        return (static if many else static[0]), name, [infos[j] for j in keep]


_SLIDERS = (widgets.IntSlider, widgets.FloatSlider, widgets.FloatLogSlider, widgets.SelectionSlider)
_CHOICES = (widgets.Dropdown, widgets.ToggleButtons, widgets.RadioButtons, widgets.Select)
_TOGGLES = (widgets.Checkbox, widgets.ToggleButton)
_SELECTIONS = (widgets.SelectionSlider, *_CHOICES)
_static_ids = iter(range(1, 1 << 62))  # div ids of static figures: unique in a page, the same run after run


def _get(control):
    """A control's state as :func:`_set` takes it: the index for a selection (its options may be pairs)."""
    return control.index if isinstance(control, _SELECTIONS) else control.value


def _set(control, value) -> None:
    if isinstance(control, _SELECTIONS):
        control.index = value
    else:
        control.value = value


def _label(control) -> str:
    if isinstance(control, _SELECTIONS):
        return str(control.label)
    value = control.value
    if isinstance(value, bool) or isinstance(control, widgets.IntSlider):
        return str(value)
    fmt = getattr(control, "readout_format", "") or ".3g"
    try:
        return format(value, fmt)
    except ValueError:
        return f"{value:.3g}"


def _steps(control, n: int) -> list:
    """The states (:func:`_get`) a static figure steps through: at most ``n`` plus the current one, sorted."""
    import numpy as np

    current = _get(control)
    if isinstance(control, _SELECTIONS):
        count = len(control.options)
        values = range(count) if count <= n else np.linspace(0, count - 1, n).round().astype(int).tolist()
    elif isinstance(control, _TOGGLES):
        values = [False, True]
    elif isinstance(control, (widgets.IntSlider, widgets.FloatSlider, widgets.FloatLogSlider)):
        lo, hi, step = control.min, control.max, control.step or (control.max - control.min) / 100
        grid = lo + np.round((np.linspace(lo, hi, n) - lo) / step) * step  # on the slider's own steps
        grid = np.clip(grid, lo, hi)
        if isinstance(control, widgets.FloatLogSlider):
            values = [float(control.base**e) for e in grid]
        elif isinstance(control, widgets.IntSlider):
            values = [int(v) for v in grid]
        else:
            values = [float(v) for v in grid]
    else:
        raise TypeError(f"a static page cannot step a {type(control).__name__}: name another control")
    values = sorted({*values, current})
    # a grid value that rounds to the current one would be a second frame showing the same thing
    return [v for v in values if v == current or not np.isclose(v, current, rtol=1e-9, atol=0)]


def _readouts(widget) -> list:
    """The HTML widgets inside ``widget`` (a panel's read-outs), depth first."""
    if isinstance(widget, (widgets.HTML, widgets.HTMLMath)):
        return [widget]
    return [r for child in getattr(widget, "children", ()) for r in _readouts(child)]


def _static_panel_html(panel, figures, name, infos) -> str:
    import html
    import json

    import plotly.io as pio

    figures = figures if isinstance(figures, list) else [figures]
    ids = [f"lecture-static-{next(_static_ids)}" for _ in figures]
    config = {"responsive": True, "displaylogo": False}
    parts = [
        pio.to_html(f, include_plotlyjs=False, full_html=False, auto_play=False, div_id=i, config=config)
        for f, i in zip(figures, ids, strict=True)
    ]
    sliders = figures[0].layout.sliders
    active = (sliders[0].active or 0) if sliders else 0  # the frame shown first: the panel's current value
    info_ids = [f"{ids[0]}-info-{k}" for k in range(len(infos[active]))]
    shown = infos[active]
    parts += [f'<div id="{i}" class="lecture-static-readout">{v}</div>' for i, v in zip(info_ids, shown)]
    if name is None:
        note = "Static page: this panel as it first draws; run the notebook to move its controls."
    else:
        others = [
            f"{html.escape(c.description or k)} = {html.escape(_label(c))}"
            for k, c in panel.controls.items()
            if k != name
        ]
        fixed = f"; the other controls stay at {', '.join(others)}" if others else ""
        moved = html.escape(panel.controls[name].description or name)
        note = f"Static page: the slider under the figure steps through {moved}{fixed}."
        note += " Run the notebook to move them."
    parts.append(f'<p class="lecture-static-note"><em>{note}</em></p>')
    if name is not None and (len(ids) > 1 or info_ids):
        # the read-outs follow the slider (and the play button); several figures move together
        step = json.dumps(infos)
        parts.append(
            "<script>window.addEventListener('load', function () {"
            f"var ids = {json.dumps(ids)}, infoIds = {json.dumps(info_ids)}, infos = {step};"
            "var opts = {mode: 'immediate', frame: {duration: 0, redraw: true}, transition: {duration: 0}};"
            "function show(k) { infoIds.forEach(function (id, j) {"
            " document.getElementById(id).innerHTML = infos[k][j]; }); }"
            "ids.forEach(function (id) { var gd = document.getElementById(id); if (!gd || !gd.on) return;"
            " gd.on('plotly_animatingframe', function (e) { show(Number(e.name)); });"
            " gd.on('plotly_sliderchange', function (e) { var k = e.slider.active; show(k);"
            "  if (!e.interaction) return;"
            "  ids.forEach(function (other) { if (other === id) return;"
            "   Plotly.animate(other, [String(k)], opts);"
            "   Plotly.relayout(other, {'sliders[0].active': k}); });"
            " }); }); });</script>"
        )
    return f'<div class="lecture-static-panel">{"".join(parts)}</div>'
