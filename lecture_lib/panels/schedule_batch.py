r"""Batch size and learning rate (notebook 08): linear warmup, the linear scaling rule, batch increase.

* ``warmup_rescue``: a deeper net at a rate that explodes without warmup, and with a linear warmup
  (Goyal et al. 2017), retrained live for several seeds.
* ``batch_scaling``: Goyal et al.'s linear scaling rule (batch ×k, rate ×k) and Smith et al.'s (2018)
  "increase the batch size instead of decaying the rate", on least squares, with k traced.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import experiments_schedules as ex
from lecture_lib import plots
from lecture_lib import schedules as ll_schedules
from lecture_lib.panels.base import Panel, register
from lecture_lib.panels.schedules import CHOSEN, CONSTANT, STYLE, WIDE, _band, _nanmean, _set_band, _slider

# ---- linear warmup -----------------------------------------------------------------------------------------

NO_WARMUP, WARMUP = "#444444", "#009E73"


@register("warmup_rescue")
class WarmupRescue(Panel):
    """A deeper net (``experiments_schedules.WARMUP_NET``) at a constant rate η and with a linear warmup
    from 0 to η: η_t (left), training cost (middle), validation accuracy (right); mean and min–max."""

    kind = "training"  # retrains a model on every move

    def build(self):
        c = self.controls
        c["lr"] = _slider("log", 0.02, 1.0, 0.05, "learning rate η", ex.WARMUP_LR)
        c["warmup"] = _slider("int", 1, 6, 1, "warmup (epochs)", ex.WARMUP_EPOCHS)
        self.trainer = ex.trainer(**ex.WARMUP_NET)
        self._cache: dict = {}
        self.summary = widgets.HTML()
        fig = make_subplots(
            rows=1, cols=3, horizontal_spacing=0.07,
            subplot_titles=("learning rate η_t", "training cost (log)", "validation accuracy"),
        )  # fmt: skip
        for color, label in ((NO_WARMUP, "no warmup"), (WARMUP, "linear warmup")):
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=color, width=3), name=label), row=1, col=1)
        for col in (2, 3):
            for color, label in ((NO_WARMUP, "no warmup"), (WARMUP, "linear warmup")):
                _band(fig, color, 1, col, label)
                fig.data[-1].showlegend = False
        fig.update_layout(**plots.base_layout("Linear warmup", height=560))
        fig.update_annotations(font_size=15)
        for col in (1, 2, 3):
            fig.update_xaxes(title_text="epoch", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=3)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox([widgets.HBox([c["lr"], c["warmup"]]), self.summary, self.figure])

    def result(self) -> tuple[ex.Runs, ex.Runs]:
        """``ex.warmup_rescue(lr, warmup)``: both runs trained at once, on two CPU devices (each keeps one
        core busy: one after the other took the sum, ~200 ms where neither diverges). Kept while η stays."""
        lr, w = self.controls["lr"].value, self.controls["warmup"].value
        if self._cache.get("lr") != lr:
            self._cache = {"lr": lr}
        if w not in self._cache:
            flat = ll_schedules.constant(lr)
            self._cache[w] = tuple(
                self.trainer.run_groups([flat, ll_schedules.warmup(flat, w * self.trainer.m)])
            )
        return self._cache[w]

    def update(self, changed=None):
        c, tr = self.controls, self.trainer
        runs = self.result()
        x, epochs = np.arange(tr.T) / tr.m, np.arange(1, tr.epochs + 1)
        data = self.figure.data
        with self.figure.batch_update():
            for i, r in enumerate(runs):
                data[i].x, data[i].y = x, r.lr
                _set_band(data, 2 + 3 * i, epochs, r.cost)
                _set_band(data, 8 + 3 * i, epochs, r.val_acc)
            self.figure.layout.title.text = (
                f"Linear warmup: MLP {'-'.join(map(str, ex.WARMUP_NET['sizes']))} (weights "
                f"{ex.WARMUP_NET['init_scale']}·randn), SGD η = {c['lr'].value:.3g}, "
                f"{c['warmup'].value} warmup epochs, {len(tr.seeds)} seeds"
            )
        parts = []
        for label, r in zip(("no warmup", "warmup"), runs):
            div = r.diverged_at >= 0
            first = f", first at update {int(r.diverged_at[div].min())}" if div.any() else ""
            acc = _nanmean(np.where(div, np.nan, r.val_acc[:, -1]))  # of the seeds that trained
            trained = "no seed trained" if div.all() else f"final validation accuracy {acc:.3f}"
            count = f"<b>{int(div.sum())} of {len(div)}</b>"
            parts.append(f"{label}: diverged in {count} seeds{first}, {trained}")
        self.summary.value = "<span style='font-size:16px'>" + " &nbsp;|&nbsp; ".join(parts) + "</span>"


# ---- batch size and learning rate: Goyal et al. (2017), Smith et al. (2018) --------------------------------

KS = tuple(2**i for i in range(10))  # 1 ... 512; 512 · 8 = n
FACTORS = (2, 3, 5)


@functools.cache
def _increase(factor):
    return ex.batch_increase(factor=factor)


@register("batch_scaling")
class BatchScaling(Panel):
    """Left: the gap F(w) − F* per epoch with batch kB and rate kη against k = 1. Right: rate decay against
    batch increase by the same factor, per epoch or per update."""

    kind = "training"  # retrains a model on every move

    def build(self):
        c = self.controls
        sel = functools.partial(widgets.SelectionSlider, style=STYLE, layout=WIDE)
        c["k"] = sel(options=KS, value=8, description="k (batch ×k, rate ×k)")
        c["factor"] = sel(options=FACTORS, value=5, description="decay / growth factor")
        c["x_axis"] = widgets.Dropdown(
            options=["epochs", "updates"], value="epochs", description="right: against", style=STYLE
        )
        self._scaling: dict = {}
        self.summary = widgets.HTML()
        fig = make_subplots(
            rows=1, cols=2, horizontal_spacing=0.1,
            subplot_titles=("linear scaling rule (Goyal et al. 2017)", "decay η or grow B (Smith et al.)"),
        )  # fmt: skip
        _band(fig, CONSTANT, 1, 1, "k = 1: batch B = 8, η = 0.005")
        _band(fig, CHOSEN, 1, 1, "batch kB, rate kη")
        _band(fig, CONSTANT, 1, 2, "rate ÷ factor each phase, batch fixed")
        _band(fig, "#009E73", 1, 2, "rate fixed, batch × factor each phase", dash="dash")
        fig.update_layout(**plots.base_layout("Batch size and learning rate", height=560))
        fig.update_annotations(font_size=15)
        fig.update_xaxes(title_text="epoch", row=1, col=1)
        for col in (1, 2):
            fig.update_yaxes(
                title_text="F(w) − F*", type="log", dtick=1, exponentformat="power", row=1, col=col
            )
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox(
            [widgets.HBox([c["k"], c["factor"]]), c["x_axis"], self.summary, self.figure]
        )

    def scaling(self, k) -> ex.Scaling:
        if k not in self._scaling:
            self._scaling[k] = ex.linear_scaling(k)
        return self._scaling[k]

    def update(self, changed=None):
        c = self.controls
        k, inc, by_updates = c["k"].value, _increase(c["factor"].value), c["x_axis"].value == "updates"
        s = self.scaling(k)
        epochs = np.arange(1, s.gap.shape[1] + 1)
        data = self.figure.data
        with self.figure.batch_update():
            _set_band(data, 0, epochs, s.gap_base)
            _set_band(data, 3, epochs, s.gap)
            data[5].name = f"batch {8 * k}, rate {0.005 * k:.3g} (k = {k})"
            for plan in range(2):
                x = inc.updates[plan] if by_updates else np.arange(1, inc.gap.shape[2] + 1)
                _set_band(data, 6 + 3 * plan, x, inc.gap[plan])
            self.figure.layout.xaxis2.title.text = "updates" if by_updates else "epoch"
            self.figure.layout.xaxis2.type = "log" if by_updates else "linear"
            self.figure.layout.title.text = (
                f"Batch size and learning rate on least squares (k = {k}, factor {c['factor'].value})"
            )
        with np.errstate(all="ignore"):
            ratio = s.gap.mean(0)[-1] / s.gap_base.mean(0)[-1]
        self.summary.value = (
            f"<span style='font-size:16px'>k = {k}: kη = {0.005 * k:.3g} (2/L = {s.two_over_L:.3g}); "
            f"final gap {ratio:.3g}× that of k = 1 &nbsp;|&nbsp; batch growth: "
            f"{int(inc.updates[1, -1]):,} updates instead of {int(inc.updates[0, -1]):,}, final gap ratio "
            f"{inc.gap[1, :, -1].mean() / inc.gap[0, :, -1].mean():.3f}</span>"
        )
