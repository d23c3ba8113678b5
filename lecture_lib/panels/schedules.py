r"""Learning-rate decay and schedules (notebook 08).

* ``schedule_atlas``: every schedule of ``ll.schedules`` with its parameters as sliders (durations in epochs),
  per update or per epoch, with an optional linear warmup; the two-layer net on digits trained under the
  chosen schedule and under the constant rate for the same seeds (mean and min–max band), retrained live.
(``warmup_rescue`` and ``batch_scaling`` are in ``schedule_batch``.)

Every schedule enters training as its table of rates (``experiments_schedules.Tabulated``), so a slider
changes data and never compiles.
"""

from __future__ import annotations

import math
import warnings

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import experiments_schedules as ex
from lecture_lib import plots
from lecture_lib.panels.base import Panel, register

PLATEAU = "reduce on plateau"
ALL = (*ex.NAMES, PLATEAU)
CHOSEN, CONSTANT, GREY = "#D55E00", "#0072B2", "rgba(120,120,120,0.35)"
STYLE, WIDE = {"description_width": "170px"}, widgets.Layout(width="440px")

# (kind, min, max, step, label) per parameter; durations in epochs, floors and ends as fractions of eta_0
SPECS = {
    "step": {"step_size": ("int", 1, 5, 1, "s: epochs per step"), "gamma": ("float", 0.1, 0.9, 0.05, "γ")},
    "multistep": {
        "m1": ("int", 1, 8, 1, "first milestone m₁ (epoch)"),
        "gap": ("int", 1, 5, 1, "m₂ − m₁ (epochs)"),
        "gamma": ("float", 0.05, 0.9, 0.05, "γ"),
    },
    "exponential": {"gamma": ("float", 0.3, 0.95, 0.05, "γ per epoch")},
    "1/k": {"tau": ("log", 0.1, 10.0, 0.05, "τ (epochs)"), "power": ("float", 0.5, 2.0, 0.1, "power p")},
    "linear": {"T": ("int", 1, 10, 1, "T (epochs)"), "end": ("float", 0.0, 0.5, 0.05, "η_end / η₀")},
    "polynomial": {
        "power": ("log", 0.25, 4.0, 0.05, "power p"),
        "end": ("float", 0.0, 0.5, 0.05, "η_end / η₀"),
    },
    "cosine": {"T": ("int", 1, 10, 1, "T (epochs)"), "floor": ("float", 0.0, 0.5, 0.05, "η_min / η₀")},
    "SGDR": {
        "period": ("int", 1, 5, 1, "T₀ (epochs)"),
        "mult": ("int", 1, 3, 1, "T_mult"),
        "floor": ("float", 0.0, 0.5, 0.05, "η_min / η₀"),
    },
    "trapezoid (WSD)": {
        "warmup": ("int", 0, 4, 1, "warmup T_w (epochs)"),
        "cooldown": ("int", 0, 5, 1, "decay T_d (epochs)"),
    },
    "triangular": {
        "half_period": ("int", 1, 5, 1, "half period s (epochs)"),
        "floor": ("float", 0.0, 0.5, 0.05, "η_min / η₀"),
    },
    PLATEAU: {
        "factor": ("float", 0.1, 0.9, 0.05, "factor γ"),
        "patience": ("int", 0, 4, 1, "patience (epochs)"),
        "threshold": ("log", 1e-3, 0.3, 0.05, "threshold θ"),
    },
}
DEFAULTS = {**ex.DEFAULTS, PLATEAU: ex.PLATEAU}

FORMULAS = {  # the library's formula (t counts updates or epochs); the slides' special cases in words
    "constant": r"$\eta_t = \eta_0$",
    "step": r"$\eta_t = \eta_0\,\gamma^{\lfloor t/s \rfloor}$ (step-wise)",
    "multistep": r"$\eta_t = \eta_0\,\gamma^{|\{i:\ m_i \le t\}|}$ (the slide: ×0.1 after epochs 30, 60, 90)",
    "exponential": r"$\eta_t = \eta_0\,\gamma^{t}$",
    "1/k": r"$\eta_t = \eta_0 / (1 + t/\tau)^p$ (p = 1: the Robbins–Monro rate)",
    "inverse sqrt": r"$\eta_t = \eta_0 / \sqrt{\max(t, 1)}$ (the slide: $\alpha_t = \alpha_0/\sqrt{t}$)",
    "linear": r"$\eta_t = \eta_0 + (\eta_{end} - \eta_0)\min(t, T)/T$ (the slide, $\eta_{end} = 0$: "
    r"$\alpha_t = \alpha_0(1 - t/T)$)",
    "polynomial": r"$\eta_t = (\eta_0 - \eta_{end})(1 - t/T)^p + \eta_{end}$, T = the whole run",
    "cosine": r"$\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi \min(t, T)/T))$ "
    r"(the slide, $\eta_{min} = 0$: $\alpha_t = \tfrac12\alpha_0(1 + \cos(t\pi/T))$)",
    "SGDR": r"$\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi T_{cur}/T_i))$, "
    r"$T_i = T_0\,T_{mult}^{\,i}$, $T_{cur}$ = steps since the last restart (Loshchilov & Hutter 2017)",
    "trapezoid (WSD)": r"$\eta_t = \eta_0 \min(t/T_w,\ 1,\ (T - t)/T_d)$, T = the whole run: warmup, "
    r"stable, decay (trapezoid, credited to Xing et al. 2018 by the slides; warmup-stable-decay, "
    r"Hu et al. 2024)",
    "triangular": r"$\eta_t = \eta_{min} + (\eta_0 - \eta_{min})(1 - |t \bmod 2s - s|/s)$ (Smith 2017)",
    PLATEAU: r"after more than <i>patience</i> epochs whose validation loss $f$ is not below "
    r"$f_{best}(1 - \theta)$: $\eta \leftarrow \gamma\eta$ (driven by the validation loss, always per epoch)",
}


def _slider(kind, lo, hi, step, label, value):
    common = dict(description=label, style=STYLE, layout=WIDE)
    if kind == "int":
        return widgets.IntSlider(value=int(value), min=lo, max=hi, step=step, **common)
    if kind == "log":
        lg = math.log10
        return widgets.FloatLogSlider(
            value=value, base=10, min=lg(lo), max=lg(hi), step=step, readout_format=".3g", **common
        )
    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, readout_format=".2f", **common)


def _band(fig, color, row, col, name, width=3, dash=None):
    for edge in plots.band_traces(color):
        fig.add_trace(edge, row=row, col=col)
    fig.add_trace(
        go.Scatter(
            mode="lines+markers",
            line=dict(color=color, width=width, dash=dash),
            marker=dict(size=7),
            name=name,
        ),
        row=row,
        col=col,
    )


def _nanmean(values, axis=None):
    """Mean over the finite values (nan where there are none), without a warning."""
    v = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(v, axis=axis)


def _set_band(data, i, x, values):
    """Traces i, i+1, i+2 = min, max, mean over seeds (axis 0) of ``values`` (non-finite shown as gaps)."""
    v = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():  # an epoch where every seed diverged is a gap, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        for j, y in enumerate((np.nanmin(v, 0), np.nanmax(v, 0), np.nanmean(v, 0))):
            data[i + j].x, data[i + j].y = x, y


@register("schedule_atlas")
class ScheduleAtlas(Panel):
    """Left: η_t of the chosen schedule (colour) over all the others (grey). Middle and right: training cost,
    validation loss and accuracy per epoch under the chosen schedule and under the constant η₀."""

    kind = "training"  # retrains a model on every move

    def __init__(self, schedule: str = "cosine", lr: float = ex.LR):
        self._initial = (schedule, lr)
        self.trainer = ex.trainer()
        self._cache: dict = {}
        super().__init__()
        self.runs(PLATEAU)  # compiles the plateau-driven run now, not when it is first chosen

    def build(self):
        c = self.controls
        schedule, lr = self._initial
        c["schedule"] = widgets.Dropdown(
            options=list(ALL), value=schedule, description="schedule", style=STYLE
        )
        c["lr"] = _slider("log", 0.05, 3.0, 0.05, "initial rate η₀", lr)
        c["per_epoch"] = widgets.Checkbox(value=False, description="count epochs, not updates (t = epoch)")
        c["warmup"] = _slider("int", 0, 4, 1, "linear warmup (epochs)", 0)
        self.boxes = {}
        for name in ALL:
            sliders = []
            for param, spec in SPECS.get(name, {}).items():
                c[f"{name}: {param}"] = _slider(*spec, DEFAULTS[name][param])
                sliders.append(c[f"{name}: {param}"])
            self.boxes[name] = sliders
        self.params_box = widgets.VBox()
        self.formula = widgets.HTMLMath()
        self.summary = widgets.HTML()
        fig = make_subplots(
            rows=1,
            cols=3,
            horizontal_spacing=0.07,
            column_widths=[0.36, 0.34, 0.30],
            subplot_titles=("learning rate η_t", "loss per epoch", "validation accuracy"),
        )
        for name in ALL:  # 0..12 every schedule in grey
            fig.add_trace(
                go.Scatter(
                    mode="lines",
                    line=dict(color=GREY, width=1.5),
                    name=name,
                    showlegend=False,
                    hovertemplate=f"{name}: %{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=CHOSEN, width=4)), row=1, col=1)  # 13
        _band(fig, CONSTANT, 1, 2, "constant η₀: training cost")  # 14..16
        _band(fig, CHOSEN, 1, 2, "chosen: training cost")  # 17..19
        fig.add_trace(
            go.Scatter(
                mode="lines",
                line=dict(color=CONSTANT, dash="dot", width=2.5),
                name="constant: validation loss",
            ),
            row=1,
            col=2,
        )  # 20
        fig.add_trace(
            go.Scatter(
                mode="lines", line=dict(color=CHOSEN, dash="dot", width=2.5), name="chosen: validation loss"
            ),
            row=1,
            col=2,
        )  # 21
        _band(fig, CONSTANT, 1, 3, "constant: validation accuracy")  # 22..24
        _band(fig, CHOSEN, 1, 3, "chosen: validation accuracy")  # 25..27
        fig.update_layout(**plots.base_layout("Learning-rate schedules", height=600))
        fig.update_layout(margin=dict(l=70, r=20, t=90, b=150), legend=dict(y=-0.2))
        fig.update_annotations(font_size=15)
        for col in (1, 2, 3):
            fig.update_xaxes(title_text="epoch", row=1, col=col)
        fig.update_yaxes(title_text="η", rangemode="tozero", row=1, col=1)
        fig.update_yaxes(type="log", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        tr = self.trainer
        for name in ex.NAMES:  # compile every schedule with and without warmup now, not on the first move
            tr.table(ex.make_schedule(name, lr, m=tr.m, epochs=tr.epochs, warmup=1))
        shared = widgets.VBox([c["schedule"], c["lr"], c["warmup"], c["per_epoch"]])
        self.widget = widgets.VBox(
            [widgets.HBox([shared, self.params_box]), self.formula, self.summary, self.figure]
        )

    # -- the numbers --------------------------------------------------------------------------------------

    def params(self, name):
        return {p: self.controls[f"{name}: {p}"].value for p in SPECS.get(name, {})}

    def schedule(self, name):
        """The library schedule ``name`` at the current slider values."""
        c = self.controls
        tr = self.trainer
        return ex.make_schedule(
            name,
            c["lr"].value,
            self.params(name),
            m=tr.m,
            epochs=tr.epochs,
            per_epoch=c["per_epoch"].value,
            warmup=c["warmup"].value,
        )

    def runs(self, name) -> ex.Runs:
        """Training under ``name`` at the current settings (cached: a grey curve's slider trains nothing)."""
        c = self.controls
        if name == PLATEAU:
            key = (name, c["lr"].value, *self.params(name).values())
        else:
            key = (name, tuple(self.curve(name)))
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            if name == PLATEAU:
                self._cache[key] = self.trainer.run_plateau(c["lr"].value, **self.params(name))
            else:
                self._cache[key] = self.trainer.run(self.schedule(name), per_epoch=c["per_epoch"].value)
        return self._cache[key]

    def curve(self, name) -> np.ndarray:
        """η of every update (T,) as drawn; for reduce-on-plateau, seed 0's rate of each epoch, per update."""
        if name == PLATEAU:
            return np.repeat(self.runs(PLATEAU).lr[0], self.trainer.m)
        return self.trainer.table(self.schedule(name), per_epoch=self.controls["per_epoch"].value)

    def update(self, changed=None):
        c, tr = self.controls, self.trainer
        owner = changed.split(": ")[0] if changed and ": " in changed else None
        if owner is not None and owner != c["schedule"].value:
            c["schedule"].value = owner  # a schedule's slider shows that schedule (redraws through observe)
            return
        name = c["schedule"].value
        self.params_box.children = self.boxes[name]
        self.formula.value = f"<b>{name}</b>: {FORMULAS[name]}"
        x_upd = np.arange(tr.T) / tr.m
        epochs = np.arange(1, tr.epochs + 1)
        chosen, const = self.runs(name), self.runs("constant")
        data = self.figure.data
        with self.figure.batch_update():
            for i, other in enumerate(ALL):  # reduce-on-plateau has no curve until trained: shown when chosen
                y = self.curve(other) if other != PLATEAU or name == PLATEAU else None
                data[i].x, data[i].y = x_upd, y
            unit = "epoch" if c["per_epoch"].value and name != PLATEAU else "update"
            data[13].x, data[13].y = x_upd, self.curve(name)
            values = ", ".join(f"{p} = {v:.3g}" for p, v in self.params(name).items())
            data[13].name = f"{name} ({values + '; ' if values else ''}t counts {unit}s)"
            _set_band(data, 14, epochs, const.cost)
            _set_band(data, 17, epochs, chosen.cost)
            data[20].x, data[20].y = epochs, _nanmean(const.val_loss, 0)
            data[21].x, data[21].y = epochs, _nanmean(chosen.val_loss, 0)
            _set_band(data, 22, epochs, const.val_acc)
            _set_band(data, 25, epochs, chosen.val_acc)
            for i in (17, 18, 19, 21, 25, 26, 27):
                data[i].visible = name != "constant"
            self.figure.layout.title.text = (
                f"{name} vs constant η₀ = {c['lr'].value:.3g}: MLP 64-50-10 on digits, SGD, batch "
                f"{tr.batch_size}, λ = {tr.reg:g}, {len(tr.seeds)} seeds (mean and min–max)"
            )
        a, b = _nanmean(chosen.cost[:, -1]), _nanmean(const.cost[:, -1])
        wins = int(np.sum(chosen.cost[:, -1] < const.cost[:, -1]))
        self.summary.value = (
            f"<span style='font-size:16px'>final training cost: <b>{name}</b> {a:.4f}, constant {b:.4f} "
            f"(lower in {wins} of {len(tr.seeds)} seeds); final validation accuracy "
            f"{_nanmean(chosen.val_acc[:, -1]):.3f} vs {_nanmean(const.val_acc[:, -1]):.3f}</span>"
        )
