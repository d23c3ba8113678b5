r"""Choosing the learning rate: the slides' two-layer-net experiment, live, and the sweep behind it.

* ``lr_experiment``: train the two-layer net (``ll.data.digits`` by default, CIFAR-10's 3072-50-10 when given
  ``data=ll.data.cifar10(...)``) with SGD for 10 epochs at every move of the learning-rate or regularisation
  slider: the loss of every batch, the cost and the train/val accuracy after each epoch, and the epoch log in
  the slide's format. A run that meets nan/inf says "diverged at update k" in the title and on the curve.
* ``lr_sweep_heatmap``: the final cost after each epoch for a grid of learning rates (and seeds), computed
  once; the diverged region is marked and the usable range read off it.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
import jax
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import data as _data
from lecture_lib import experiments_monitoring as M
from lecture_lib import models, plots, training
from lecture_lib import optimizers as O
from lecture_lib.panels.base import Panel, register

EPOCHS, BATCH_SIZE, HIDDEN = 10, 64, 50
# 0.01·randn on standardised digits (‖x‖ ≈ 8) gives hidden units of the size 1e-4·randn gives on CIFAR-10's
# pixel-scale inputs (‖x‖ ≈ 3,000) on the slide: small scores, a cost of ln 10, and the slide's behaviour.
INITS = {"0.01·randn (small)": 1e-2, "1e-4·randn (tiny)": 1e-4, "PyTorch default ±1/√fan_in": None}
DIVERGED = "#D55E00"
LOG_LN10 = math.log10(math.log(10))
STYLE = {"description_width": "170px"}
WIDE = widgets.Layout(width="480px")


def fmt_lr(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-").replace("e+0", "e")


def diverged_text(diverged_at: int, m: int) -> str:
    """``"diverged at update k (epoch e)"`` for an index into ``hist.loss`` (k counts from 1, as plotted)."""
    return f"diverged at update {diverged_at + 1} (epoch {diverged_at // m + 1})"


@register("lr_experiment")
class LRExperiment(Panel):
    """Loss and cost (left), train/val accuracy (right), the slide's epoch log below."""

    kind = "training"  # retrains a model on every move

    def __init__(self, data=None, hidden: int = HIDDEN, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE):
        self.data = _data.digits(seed=0) if data is None else data
        self.sizes = (int(self.data.x_train.shape[1]), int(hidden), int(self.data.n_classes or 10))
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.m = -(-self.data.n // self.batch_size)
        self.hist = None
        super().__init__()

    def build(self):
        c = self.controls
        c["lr"] = widgets.FloatLogSlider(
            value=1e-3, base=10, min=-7, max=6, step=0.25, description="learning rate η",
            readout_format=".1e", style=STYLE, layout=WIDE,
        )  # fmt: skip
        c["reg"] = widgets.FloatLogSlider(
            value=1e-6, base=10, min=-7, max=0, step=0.5, description="regularisation λ",
            readout_format=".0e", style=STYLE, layout=WIDE,
        )  # fmt: skip
        c["init"] = widgets.Dropdown(options=list(INITS), value=next(iter(INITS)), description="initial W")
        c["seed"] = widgets.IntSlider(value=0, min=0, max=9, description="seed")
        self.log = widgets.HTML()
        T = self.epochs * self.m
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1,
            subplot_titles=("loss: every batch, and the cost after each epoch", "accuracy after each epoch"),
        )  # fmt: skip
        grey = dict(color="rgba(110,110,110,0.55)", width=1.2)
        fig.add_trace(go.Scatter(mode="lines", line=grey, name="batch loss J (each update)"), 1, 1)
        fig.add_trace(
            go.Scatter(mode="lines+markers", line=dict(color=plots.color("SGD"), width=3),
                       marker=dict(size=10), name="cost after each epoch"),
            1, 1,
        )  # fmt: skip
        for name, col, dash in (("train accuracy", "#009E73", "solid"), ("val accuracy", "#E69F00", "dash")):
            fig.add_trace(
                go.Scatter(mode="lines+markers", line=dict(color=col, width=3, dash=dash),
                           marker=dict(size=10), name=name),
                1, 2,
            )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=[0.5, self.epochs + 0.5], y=[0.1, 0.1], mode="lines", name="chance (10 classes)",
                       line=dict(color="black", dash="dot", width=1.5)),
            1, 2,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=[1, T], y=[math.log(10)] * 2, mode="lines", name="ln 10 = 2.303 (uniform softmax)",
                       line=dict(color="black", dash="dot", width=1.5)),
            1, 1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(mode="markers+text", marker=dict(symbol="x", size=18, color=DIVERGED),
                       textposition="top left", textfont=dict(color=DIVERGED, size=16), showlegend=False),
            1, 1,
        )  # fmt: skip
        fig.update_layout(**plots.base_layout("", height=560))
        fig.update_layout(margin=dict(t=110, b=120), legend=dict(y=-0.17))
        fig.update_annotations(font_size=15)
        fig.update_xaxes(title_text=f"update ({self.m} per epoch)", range=[0, T + 1], row=1, col=1)
        fig.update_yaxes(title_text="cross-entropy (log scale)", type="log", row=1, col=1)
        fig.update_xaxes(title_text="epoch", range=[0.5, self.epochs + 0.5], dtick=1, row=1, col=2)
        fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=2)
        self.figure = go.FigureWidget(fig)
        for scale in INITS.values():  # each initial scale's (small) init program, compiled now, not on a move
            training.fit(self.model(scale), self.data, O.sgd(1e-3), epochs=self.epochs,
                         batch_size=self.batch_size, key=jax.random.key(0))  # fmt: skip
        row1 = widgets.HBox([c["lr"], c["reg"]])
        row2 = widgets.HBox([c["init"], c["seed"]])
        self.widget = widgets.VBox([row1, row2, self.figure, self.log])

    def model(self, init_scale):
        return models.mlp(list(self.sizes), init_scale=init_scale)

    def run(self, lr, reg, init_scale, seed) -> training.History:
        """``training.fit`` with the panel's settings: SGD, ``epochs`` epochs of batches of ``batch_size``."""
        return training.fit(
            self.model(init_scale), self.data, O.sgd(lr), epochs=self.epochs, batch_size=self.batch_size,
            key=jax.random.key(seed), reg=reg,
        )  # fmt: skip

    def update(self, changed=None):
        c = self.controls
        lr, reg, seed = float(c["lr"].value), float(c["reg"].value), int(c["seed"].value)
        self.hist = h = self.run(lr, reg, INITS[c["init"].value], seed)
        loss = np.asarray(h.loss, np.float64)
        loss = np.where(np.isfinite(loss), loss, np.nan)
        cost = np.asarray(h.cost, np.float64)
        cost = np.where(np.isfinite(cost), cost, np.nan)
        k, epochs = int(h.diverged_at), np.arange(1, self.epochs + 1)
        t = np.arange(1, loss.size + 1)
        data = self.figure.data
        with self.figure.batch_update():
            data[0].x, data[0].y = t, loss
            data[1].x, data[1].y = self.m * epochs, cost
            data[2].x, data[2].y = epochs, np.asarray(h.train_acc)
            data[3].x, data[3].y = epochs, np.asarray(h.val_acc)
            if k >= 0:
                last = loss[:k][np.isfinite(loss[:k])]
                y = last[-1] if last.size else math.log(10)
                data[6].x, data[6].y, data[6].text = [k + 1], [y], [diverged_text(k, self.m)]
            else:
                data[6].x, data[6].y, data[6].text = [], [], []
            head = (
                f"Two-layer net {'-'.join(map(str, self.sizes))} on {self.data.name}, SGD η = {lr:.1e}, "
                f"λ = {reg:.0e}, batch {self.batch_size}"
            )
            if k >= 0:
                tail = f"<br><span style='color:{DIVERGED}'>{diverged_text(k, self.m)}: "
                tail += "cost nan/inf from then on</span>"
            else:
                tail = f"<br>cost {loss[0]:.6f} → {cost[-1]:.6f}, val accuracy {float(h.val_acc[-1]):.3f}"
            self.figure.layout.title.text = head + tail
        self.log.value = "<pre style='font-size:15px; line-height:1.3'>" + html.escape(h.log()) + "</pre>"


# ---- the sweep as a heat map -------------------------------------------------------------------------------

VIEWS = ("worst seed", "mean of the seeds")


def _ticks(lrs):
    exps = np.log10(lrs)
    whole = exps[np.isclose(exps, np.round(exps))]
    return list(whole), [fmt_lr(10.0**e) for e in whole]


@register("lr_sweep_heatmap")
class LRSweepHeatmap(Panel):
    """Cost after each epoch (colour, log scale) for every learning rate; nan/inf cells marked; the usable
    range (every seed's cost ≤ fraction · ln 10 at the chosen epoch) boxed."""

    def __init__(self, grid: M.Grid | None = None, **grid_kwargs):
        self.grid = M.grid_sweep(**grid_kwargs) if grid is None else grid
        super().__init__()

    def build(self):
        g = self.grid
        n_seeds, E = g.cost.shape[1], g.cost.shape[2]
        c = self.controls
        views = [VIEWS[0], f"{VIEWS[1]} ({n_seeds})"] + [f"seed {s}" for s in range(n_seeds)]
        c["view"] = widgets.Dropdown(options=views, value=views[0], description="show")
        c["epoch"] = widgets.IntSlider(value=E, min=1, max=E, description="read at epoch", style=STYLE)
        c["fraction"] = widgets.FloatSlider(
            value=0.5, min=0.05, max=1.0, step=0.05, description="learns if cost ≤ (× ln 10)",
            readout_format=".2f", style=STYLE, layout=WIDE,
        )  # fmt: skip
        x = np.log10(g.lrs)
        epochs = np.arange(1, E + 1)
        fig = go.Figure()
        fig.add_trace(
            go.Heatmap(
                x=x, y=epochs, colorscale="Viridis", zmin=-3, zmax=math.log10(3.0),
                colorbar=dict(title=dict(text="cost", side="right"), tickvals=[-3, -2, -1, 0, LOG_LN10],
                              ticktext=["0.001", "0.01", "0.1", "1", "ln 10"]),
                hovertemplate="η = 10^%{x:.1f}, epoch %{y}: cost %{customdata}<extra></extra>",
            )
        )  # fmt: skip
        fig.add_trace(
            go.Heatmap(
                x=x, y=epochs, colorscale=[[0, DIVERGED], [1, DIVERGED]], showscale=False, zmin=0, zmax=1,
                texttemplate="%{text}", textfont=dict(size=14, color="white"), hoverinfo="skip",
            )
        )  # fmt: skip
        fig.add_trace(go.Scatter(mode="lines", line=dict(color="white", width=4), name="usable range"))
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color="white", width=2, dash="dot"), name="epoch read")
        )
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name="diverged: cost nan/inf",
                       marker=dict(symbol="square", size=14, color=DIVERGED))
        )  # fmt: skip
        tickvals, ticktext = _ticks(g.lrs)
        fig.update_layout(**plots.base_layout("", height=560))
        fig.update_layout(margin=dict(t=110, b=130), plot_bgcolor="white")
        fig.update_xaxes(title_text="learning rate η (log scale)", tickvals=tickvals, ticktext=ticktext)
        fig.update_yaxes(title_text="epoch", dtick=1, range=[0.5, E + 0.5])
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox([widgets.HBox([c["view"], c["epoch"]]), c["fraction"], self.figure])

    def view(self):
        """(cost (L, epochs), diverged (L, epochs)) of the selected view; nan marks diverged cells."""
        g, v = self.grid, self.controls["view"].value
        bad = ~np.isfinite(g.cost)
        if v.startswith("seed"):
            s = int(v.split()[1])
            return g.cost[:, s], bad[:, s]
        if v == VIEWS[0]:
            return np.where(bad.any(1), np.nan, np.nanmax(np.where(bad, -np.inf, g.cost), axis=1)), bad.any(1)
        return np.where(bad.any(1), np.nan, g.cost.mean(axis=1)), bad.any(1)

    def usable(self):
        """(lowest, highest) usable rate at the chosen epoch, for the seeds the view shows."""
        g, c = self.grid, self.controls
        e = int(c["epoch"].value) - 1
        v = c["view"].value
        cost = g.cost[:, int(v.split()[1]), e] if v.startswith("seed") else g.cost[:, :, e]
        if v.startswith("mean"):
            cost = np.where(np.isfinite(cost).all(1), cost.mean(1), np.nan)
        return M.usable_range(g.lrs, cost, float(c["fraction"].value))

    def update(self, changed=None):
        g, c = self.grid, self.controls
        cost, bad = self.view()
        E, e, frac = g.cost.shape[2], int(c["epoch"].value), float(c["fraction"].value)
        lo, hi = self.usable()
        x = np.log10(g.lrs)
        half = 0.5 * float(np.min(np.diff(x))) if x.size > 1 else 0.5
        data = self.figure.data
        with self.figure.batch_update():
            z = np.log10(np.maximum(cost, 1e-6)).T
            data[0].z = z
            data[0].customdata = np.vectorize(lambda v: "nan/inf" if np.isnan(v) else f"{v:.4f}")(cost.T)
            data[1].z = np.where(bad.T, 1.0, np.nan)
            data[1].text = np.where(bad.T, "✕", "")
            if np.isfinite(lo):
                x0, x1 = math.log10(lo) - half, math.log10(hi) + half
                data[2].x = [x0, x1, x1, x0, x0]
                data[2].y = [e - 0.5, e - 0.5, e + 0.5, e + 0.5, e - 0.5]
                data[2].name = f"usable at epoch {e}: η = {fmt_lr(lo)} … {fmt_lr(hi)}"
            else:
                data[2].x, data[2].y, data[2].name = [], [], f"usable at epoch {e}: none"
            data[3].x, data[3].y = [x[0] - half, x[-1] + half], [e, e]
            data[3].name = f"learns: cost ≤ {frac:.2f}·ln 10 = {frac * math.log(10):.2f} at epoch {e}"
            rng = f"{fmt_lr(lo)} … {fmt_lr(hi)}" if np.isfinite(lo) else "none"
            self.figure.layout.title.text = (
                f"Cost after each epoch, SGD on the two-layer net ({c['view'].value}, batch {BATCH_SIZE})"
                f"<br>usable range at epoch {e}: <b>{rng}</b>; below it the cost stays near ln 10, "
                f"above it nan/inf (✕)"
            )
            self.figure.layout.yaxis.range = [0.5, E + 0.5]
