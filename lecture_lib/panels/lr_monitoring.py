r"""Monitoring the loss and finding the learning rate in one run.

* ``loss_gallery``: six loss curves from real training runs (``experiments_monitoring.gallery``), shuffled
  and labelled A–F: "what is wrong with this run?" A dropdown per run takes your diagnosis, a checkbox reveals
  the answers, and a smoothing slider (debiased EMA, as TensorBoard's) separates trend from noise.
* ``lr_range_test``: Smith's (2017) range test on the two-layer net: one run whose rate grows geometrically,
  loss against rate; where it starts to fall, where it is lowest and where it blows up. Every move retrains.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import experiments_monitoring as M
from lecture_lib import plots
from lecture_lib.panels.base import Panel, register
from lecture_lib.panels.learning_rate import DIVERGED, STYLE, WIDE, diverged_text, fmt_lr

LETTERS = "ABCDEF"
ORDER = (2, 4, 0, 5, 1, 3)  # GALLERY's diagnoses in a fixed shuffled order: run A is GALLERY's third, ...
UNANSWERED = "?"


@register("loss_gallery")
class LossGallery(Panel):
    """A 2×3 grid of batch-loss curves (raw, grey; smoothed, blue); titles show your answers and the truth."""

    def __init__(self, seed: int = 0, runs: dict | None = None):
        self.runs = M.gallery(seed) if runs is None else runs
        names = list(self.runs)
        if len(names) != len(LETTERS):
            raise ValueError(f"runs must hold {len(LETTERS)} runs, got {len(names)}")
        self.truth = {LETTERS[i]: names[j] for i, j in enumerate(ORDER)}
        super().__init__()

    def build(self):
        c = self.controls
        c["smoothing"] = widgets.FloatSlider(
            value=0.9, min=0.0, max=0.99, step=0.01, description="smoothing β (EMA)", style=STYLE, layout=WIDE
        )
        c["reveal"] = widgets.Checkbox(value=False, description="show the answers")
        options = [UNANSWERED, *sorted(self.runs)]
        for letter in LETTERS:
            c[letter] = widgets.Dropdown(
                options=options, value=UNANSWERED, description=f"run {letter}:",
                layout=widgets.Layout(width="330px"), style={"description_width": "60px"},
            )  # fmt: skip
        fig = make_subplots(
            rows=2, cols=3, horizontal_spacing=0.07, vertical_spacing=0.17,
            subplot_titles=[f"run {x}" for x in LETTERS],
        )  # fmt: skip
        for i, letter in enumerate(LETTERS):
            r, col = divmod(i, 3)
            run = self.runs[self.truth[letter]]
            t = np.arange(1, run.loss.size + 1)
            first = i == 0
            fig.add_trace(
                go.Scatter(x=t, y=np.where(np.isfinite(run.loss), run.loss, np.nan), mode="lines",
                           line=dict(color="rgba(110,110,110,0.45)", width=1), name="batch loss (raw)",
                           showlegend=first, legendgroup="raw"),
                r + 1, col + 1,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(x=t, mode="lines", line=dict(color=plots.color("SGD"), width=3),
                           name="smoothed (EMA)", showlegend=first, legendgroup="smooth"),
                r + 1, col + 1,
            )  # fmt: skip
            k = run.diverged_at
            if k >= 0:
                y = run.loss[:k][np.isfinite(run.loss[:k])][-1]
                marker = dict(x=[k + 1], y=[y], text=[diverged_text(k, run.updates_per_epoch)])
            else:
                marker = dict(x=[], y=[], text=[])
            fig.add_trace(
                go.Scatter(**marker, mode="markers+text", marker=dict(symbol="x", size=16, color=DIVERGED),
                           textposition="bottom left", textfont=dict(color=DIVERGED, size=14),
                           showlegend=False),
                r + 1, col + 1,
            )  # fmt: skip
            fig.update_xaxes(title_text="update", row=r + 1, col=col + 1)
            fig.update_yaxes(type="log", row=r + 1, col=col + 1)
        fig.update_layout(**plots.base_layout("", height=720))
        fig.update_layout(margin=dict(t=110, b=110), legend=dict(y=-0.1))
        fig.update_yaxes(title_text="loss (log)", col=1)
        fig.update_annotations(font_size=15)
        self.figure = go.FigureWidget(fig)
        quiz = widgets.GridBox(
            [c[x] for x in LETTERS], layout=widgets.Layout(grid_template_columns="repeat(3, 340px)")
        )
        self.widget = widgets.VBox([widgets.HBox([c["smoothing"], c["reveal"]]), quiz, self.figure])

    def score(self) -> tuple[int, int]:
        """(right, answered) over the six dropdowns."""
        answers = {x: self.controls[x].value for x in LETTERS}
        answered = [x for x, a in answers.items() if a != UNANSWERED]
        return sum(answers[x] == self.truth[x] for x in answered), len(answered)

    def update(self, changed=None):
        c = self.controls
        beta, reveal = float(c["smoothing"].value), bool(c["reveal"].value)
        right, answered = self.score()
        with self.figure.batch_update():
            if changed in (None, "smoothing"):
                for i, letter in enumerate(LETTERS):
                    self.figure.data[3 * i + 1].y = M.ema(self.runs[self.truth[letter]].loss, beta)
            for i, letter in enumerate(LETTERS):
                text = f"run {letter}"
                answer = c[letter].value
                if answer != UNANSWERED:
                    ok = answer == self.truth[letter]
                    mark, col = ("✓", "#009E73") if ok else ("✗", DIVERGED)
                    text += f": <span style='color:{col}'>{mark} {answer}</span>"
                if reveal:
                    text += f"<br><b>{self.truth[letter]}</b>"
                self.figure.layout.annotations[i].text = text
            self.figure.layout.title.text = (
                "What is wrong with this run? Batch losses of six SGD runs on digits (20 % noisy labels)"
                f"<br>your diagnoses: {right} of {answered} right"
                + (" — answers shown" if reveal else "; tick 'show the answers' to check")
                + f", smoothing β = {beta:.2f}"
            )


@register("lr_range_test")
class RangeTest(Panel):
    """Loss after each update against that update's rate (log x): raw and smoothed, the suggested range."""

    kind = "training"  # retrains a model on every move

    def build(self):
        c = self.controls
        c["lr_start"] = widgets.FloatLogSlider(
            value=1e-4, base=10, min=-6, max=-2, step=0.25, description="start rate", readout_format=".0e",
            style=STYLE, layout=WIDE,
        )  # fmt: skip
        c["lr_end"] = widgets.FloatLogSlider(
            value=100.0, base=10, min=0, max=3, step=0.25, description="end rate", readout_format=".0e",
            style=STYLE, layout=WIDE,
        )  # fmt: skip
        c["smoothing"] = widgets.FloatSlider(
            value=0.9, min=0.0, max=0.99, step=0.01, description="smoothing β (EMA)", style=STYLE, layout=WIDE
        )
        c["factor"] = widgets.FloatSlider(
            value=4.0, min=1.5, max=10.0, step=0.5, description="blow-up: loss > × minimum", style=STYLE,
            layout=WIDE,
        )  # fmt: skip
        c["seed"] = widgets.IntSlider(value=0, min=0, max=9, description="seed", style=STYLE)
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(mode="lines", fill="toself", fillcolor=plots.rgba("#009E73", 0.18), line=dict(width=0),
                       name="suggested range", hoverinfo="skip")
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color="rgba(110,110,110,0.5)", width=1.2), name="batch loss")
        )
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color=plots.color("SGD"), width=3.5), name="smoothed (EMA)")
        )
        for name, col, dash in (
            ("loss starts to fall", "#009E73", "dash"),
            ("lowest loss", "#000000", "dash"),
            ("blows up", DIVERGED, "dot"),
        ):
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=col, width=2.5, dash=dash), name=name))
        fig.update_layout(**plots.base_layout("", height=560))
        fig.update_layout(margin=dict(t=110, b=130))
        fig.update_xaxes(title_text="learning rate η of the update (log scale)", type="log", dtick=1,
                         exponentformat="power")  # fmt: skip
        fig.update_yaxes(title_text="loss after the update")
        self.figure = go.FigureWidget(fig)
        self.result = None
        self.widget = widgets.VBox(
            [widgets.HBox([c["lr_start"], c["lr_end"]]), widgets.HBox([c["smoothing"], c["factor"]]),
             c["seed"], self.figure]
        )  # fmt: skip

    def update(self, changed=None):
        c = self.controls
        r = self.result = M.range_test(
            lr_start=float(c["lr_start"].value), lr_end=float(c["lr_end"].value), seed=int(c["seed"].value),
            beta=float(c["smoothing"].value), factor=float(c["factor"].value),
        )  # fmt: skip
        top = 1.6 * float(r.smooth[0])
        data = self.figure.data
        with self.figure.batch_update():
            lo, hi = r.lr_falls, r.lr_min_loss
            if np.isfinite(lo) and lo < hi:
                data[0].x, data[0].y = [lo, hi, hi, lo, lo], [0, 0, top, top, 0]
                data[0].name = f"suggested range: {fmt_lr(lo)} … {fmt_lr(hi)}"
            else:
                data[0].x, data[0].y, data[0].name = [], [], "suggested range: none"
            data[1].x, data[1].y = r.lr, np.minimum(r.loss, 10 * top)
            data[2].x, data[2].y = r.lr, r.smooth
            labels = (
                "loss starts to fall (−10 %)",
                "lowest loss",
                f"blows up (> {c['factor'].value:g}× min)",
            )
            for i, (lr, label) in enumerate(zip((r.lr_falls, r.lr_min_loss, r.lr_blowup), labels)):
                tr = data[3 + i]
                if np.isfinite(lr):
                    tr.x, tr.y, tr.name = [lr, lr], [0, top], f"{label}: η = {lr:.2g}"
                else:
                    tr.x, tr.y, tr.name = [], [], f"{label}: not within the test"
            self.figure.layout.yaxis.range = [0, top]
            self.figure.layout.xaxis.range = [math.log10(r.lr[0]), math.log10(r.lr[-1])]
            div = f"; nan/inf from η = {r.diverged_lr:.2g} on" if np.isfinite(r.diverged_lr) else ""
            self.figure.layout.title.text = (
                f"Learning-rate range test: one run of {r.lr.size + 1} updates, η from "
                f"{fmt_lr(c['lr_start'].value)} to {fmt_lr(c['lr_end'].value)} "
                f"(×{r.lr[1] / r.lr[0]:.3f} per update)"
                f"<br>lowest smoothed loss at η = {r.lr_min_loss:.2g}{div}"
            )
