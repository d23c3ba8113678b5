"""The optimizer race: every first-order optimizer from the same start on one surface, each with its own
learning rate, animated over iterations, with the loss curves beside the paths."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import optimizers as O
from lecture_lib import plots
from lecture_lib.panels.base import Panel, register
from lecture_lib.surfaces import NAMES, SURFACES
from lecture_lib.trajectories import run_many

FACTORIES = {
    "SGD": O.sgd,
    "momentum": O.momentum,
    "Nesterov": O.nesterov,
    "AdaGrad": O.adagrad,
    "RMSProp": O.rmsprop,
    "Adam": O.adam,
}
# Learning rates that make a good race on each surface (picked from a 300-step grid search, then eased off
# the edge of stability so the paths stay readable).
DEFAULT_LRS = {
    "quadratic": dict(SGD=0.03, momentum=0.01, Nesterov=0.01, AdaGrad=1.0, RMSProp=0.1, Adam=0.3),
    "rosenbrock": dict(SGD=0.002, momentum=0.002, Nesterov=0.002, AdaGrad=1.0, RMSProp=0.1, Adam=0.3),
    "beale": dict(SGD=0.03, momentum=0.003, Nesterov=0.003, AdaGrad=1.0, RMSProp=0.1, Adam=0.3),
    "himmelblau": dict(SGD=0.01, momentum=0.002, Nesterov=0.002, AdaGrad=1.0, RMSProp=0.05, Adam=0.1),
    "saddle": dict(SGD=0.03, momentum=0.003, Nesterov=0.003, AdaGrad=0.1, RMSProp=0.01, Adam=0.03),
    "rastrigin": dict(SGD=0.1, momentum=0.003, Nesterov=0.03, AdaGrad=3.0, RMSProp=0.3, Adam=1.0),
}
STEPS = 300


def lr_slider(label: str, value: float) -> widgets.FloatLogSlider:
    return widgets.FloatLogSlider(
        value=value,
        base=10,
        min=-5,
        max=1,
        step=0.05,
        description=f"η {label}",
        readout_format=".1e",
        continuous_update=True,
        style={"description_width": "110px"},
        layout=widgets.Layout(width="380px"),
    )


@register("optimizer_race")
class OptimizerRace(Panel):
    """Paths over the contours (left) and the gap to the minimum against iterations (right)."""

    static_control = "step"  # static pages (make site): the race unfolds step by step

    def __init__(self, surface: str = "rosenbrock", steps: int = STEPS):
        if surface not in SURFACES:
            raise ValueError(f"surface must be one of {list(SURFACES)}, got surface={surface!r}")
        self._initial_surface = surface
        self.steps = steps
        super().__init__()

    # -- construction --------------------------------------------------------------------------------
    def build(self):
        lrs = DEFAULT_LRS[self._initial_surface]
        self.controls["surface"] = widgets.Dropdown(
            options=list(NAMES), value=self._initial_surface, description="surface"
        )
        for label in FACTORIES:
            self.controls[f"lr_{label}"] = lr_slider(label, lrs[label])
        self.controls["step"] = widgets.IntSlider(
            value=self.steps,
            min=0,
            max=self.steps,
            description="iteration",
            layout=widgets.Layout(width="520px"),
        )
        self.play = widgets.Play(
            value=self.steps, min=0, max=self.steps, step=2, interval=40, description="play"
        )
        widgets.link((self.play, "value"), (self.controls["step"], "value"))

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.52, 0.48],
            horizontal_spacing=0.12,
            subplot_titles=("paths over the loss contours", "gap to the minimum"),
        )
        fig.add_trace(go.Contour(), row=1, col=1)  # the surface, filled in by update
        fig.add_trace(go.Scatter(mode="markers", name="minimum"), row=1, col=1)
        for label in FACTORIES:
            c = plots.color(label)
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=c, width=2.5), name=label), row=1, col=1)
            fig.add_trace(
                go.Scatter(
                    mode="markers",
                    marker=dict(color=c, size=12, line=dict(width=1.5, color="white")),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(mode="lines", line=dict(color=c, width=2), name=label, showlegend=False),
                row=1,
                col=2,
            )
        fig.update_layout(**plots.base_layout("Optimizer race", height=560))
        fig.update_xaxes(title_text="w₁", row=1, col=1)
        fig.update_yaxes(title_text="w₂", row=1, col=1)
        fig.update_xaxes(title_text="iteration k", row=1, col=2)
        fig.update_yaxes(title_text="E(w_k) − E*", type="log", exponentformat="power", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self._trajs = None

        sliders = [self.controls[f"lr_{label}"] for label in FACTORIES]
        left = widgets.VBox([self.controls["surface"], *sliders[:3]])
        right = widgets.VBox([widgets.HBox([self.play, self.controls["step"]]), *sliders[3:]])
        self.widget = widgets.VBox([widgets.HBox([left, right]), self.figure])

    # -- drawing -------------------------------------------------------------------------------------
    def _trace_index(self, label: str) -> int:
        return 2 + 3 * list(FACTORIES).index(label)

    def update(self, changed: str | None = None):
        surface = SURFACES[self.controls["surface"].value]
        if changed == "surface":
            with self.hold():  # each surface comes with learning rates that suit it
                for label, lr in DEFAULT_LRS[surface.name].items():
                    self.controls[f"lr_{label}"].value = lr
            return
        if changed != "step" or self._trajs is None:
            opts = [make(self.controls[f"lr_{label}"].value) for label, make in FACTORIES.items()]
            self._trajs = [
                (np.asarray(t.params), np.asarray(t.losses), int(t.diverged_at))
                for t in run_many(opts, surface, surface.start, self.steps)
            ]
        step = self.controls["step"].value
        k = np.arange(self.steps + 1)
        with self.figure.batch_update():
            data = self.figure.data
            if changed in (None, "surface") or data[0].z is None or self._drawn_surface != surface.name:
                self._draw_surface(surface)
            for label, (params, losses, diverged_at) in zip(FACTORIES, self._trajs, strict=True):
                i = self._trace_index(label)
                path = plots.visible_path(params, step, diverged_at)
                data[i].x, data[i].y = path[:, 0], path[:, 1]
                data[i].name = plots.run_label(label, self.controls[f"lr_{label}"].value, diverged_at)
                data[i + 1].x, data[i + 1].y = path[-1:, 0], path[-1:, 1]
                data[i + 1].marker.symbol = "x" if 0 <= diverged_at <= step else "circle"
                gap = np.where(k <= step, losses - surface.min_value, np.nan)
                data[i + 2].x, data[i + 2].y = k, np.maximum(gap, 1e-12)

    def _draw_surface(self, surface):
        contour = plots.contour_trace(surface)
        stars = plots.minima_trace(surface)
        self.figure.data[0].update(contour.to_plotly_json(), overwrite=True)
        self.figure.data[1].update(stars.to_plotly_json(), overwrite=True)
        (x0, x1), (y0, y1) = surface.bounds
        self.figure.layout.xaxis.range = [x0, x1]
        self.figure.layout.yaxis.range = [y0, y1]
        self.figure.layout.title.text = f"Optimizer race on {surface.name}: E(w) = {surface.formula_text}"
        self.figure.layout.annotations[
            0
        ].text = f"paths over the contours of {contour.name.removeprefix('contours of ')}"
        self._drawn_surface = surface.name
