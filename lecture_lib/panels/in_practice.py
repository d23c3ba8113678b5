r"""In practice: how sensitive is each optimizer to its learning rate? The two-layer net on the digits,
trained for every learning rate of a grid and several seeds, one vmapped and compiled call per optimizer
(``ll.training.sweep``); the panel then only selects and draws (moving a control computes nothing).

The slide's claims: Adam is a good default (a good result over a wide range of rates); SGD and SGD+momentum
can match or beat it but need their rate tuned.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import data as _data
from lecture_lib import models, plots, training
from lecture_lib import optimizers as O
from lecture_lib.panels.base import Panel, register

LRS = tuple(float(x) for x in np.logspace(-5, 1, 13))  # half-decade steps from 1e-5 to 10
SEEDS = (0, 1, 2)
EPOCHS = 10
BATCH_SIZE = 64
SIZES = (64, 50, 10)
FACTORIES = {"SGD": O.sgd, "momentum": O.momentum, "Adam": O.adam}  # momentum β = 0.9, Adam's defaults
METRICS = {"validation accuracy": "val_acc", "training accuracy": "train_acc"}


class Sweep(NamedTuple):
    """One optimizer over the grid: arrays of shape (len(lrs), len(seeds), epochs) (NumPy)."""

    lrs: np.ndarray
    val_acc: np.ndarray
    train_acc: np.ndarray
    cost: np.ndarray  # training cost after each epoch (nan/inf once diverged)
    diverged: np.ndarray  # (len(lrs), len(seeds)) the run met a non-finite loss


@functools.cache
def lr_sensitivity(
    lrs: tuple = LRS, seeds: tuple = SEEDS, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE
) -> dict[str, Sweep]:
    """``{optimizer: Sweep}`` for SGD, momentum and Adam on ``ll.data.digits(seed=0)``, cached per session."""
    data = _data.digits(seed=0)
    model = models.mlp(list(SIZES))
    out = {}
    for label, make in FACTORIES.items():
        hist = training.sweep(model, data, make, lrs, seeds, epochs=epochs, batch_size=batch_size)
        out[label] = Sweep(
            np.asarray(lrs, np.float64),
            np.asarray(hist.val_acc, np.float64),
            np.asarray(hist.train_acc, np.float64),
            np.asarray(hist.cost, np.float64),
            np.asarray(hist.diverged_at) >= 0,
        )
    return out


def usable(sweep: Sweep, threshold: float, epoch: int, metric: str = "val_acc") -> np.ndarray:
    """(len(lrs),) bool: the mean over seeds of ``metric`` after ``epoch`` (1-based) is ≥ ``threshold``."""
    return getattr(sweep, metric)[:, :, epoch - 1].mean(axis=1) >= threshold


def _decades(lrs, ok) -> str:
    if not ok.any():
        return "none"
    return f"{_fmt(lrs[ok].min())} … {_fmt(lrs[ok].max())}"


def _fmt(lr: float) -> str:
    return f"{lr:.0e}".replace("e-0", "e-").replace("e+0", "e")


@register("lr_sensitivity")
class LRSensitivity(Panel):
    """Accuracy against the learning rate (left); accuracy per epoch at each optimizer's best rate (right)."""

    kind = "training"  # retrains a model on every move

    def __init__(self, **sweep_kwargs):
        self.sweeps = lr_sensitivity(**sweep_kwargs)
        self.epochs = next(iter(self.sweeps.values())).val_acc.shape[-1]
        self.n_seeds = next(iter(self.sweeps.values())).val_acc.shape[1]
        super().__init__()

    def build(self):
        c = self.controls
        c["metric"] = widgets.Dropdown(
            options=list(METRICS), value="validation accuracy", description="metric"
        )
        c["epoch"] = widgets.IntSlider(value=self.epochs, min=1, max=self.epochs, description="after epoch")
        c["threshold"] = widgets.FloatSlider(
            value=0.9, min=0.5, max=0.97, step=0.01, description="good if ≥", readout_format=".2f"
        )
        for name, control in c.items():
            if name not in ("lr", "bias_correction"):
                control.style = {"description_width": "initial"}  # show the whole label
        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.56, 0.44],
            horizontal_spacing=0.1,
            subplot_titles=("after the chosen epoch, for every learning rate", "at each optimizer's best η"),
        )
        for label in FACTORIES:  # 6 traces each: band low, band high, mean; then the same on the right
            col = plots.color(label)
            for col_idx in (1, 2):
                for edge in plots.band_traces(col):
                    fig.add_trace(edge, row=1, col=col_idx)
                fig.add_trace(
                    go.Scatter(
                        mode="lines+markers",
                        line=dict(color=col, width=3),
                        marker=dict(size=11, color=col, line=dict(color=col, width=2)),
                        showlegend=col_idx == 1,
                    ),
                    row=1,
                    col=col_idx,
                )
        fig.add_trace(  # the threshold
            go.Scatter(mode="lines", line=dict(color="black", dash="dash", width=1.5), name="good if ≥"),
            row=1,
            col=1,
        )
        fig.update_layout(**plots.base_layout("Learning-rate sensitivity", height=600))
        fig.update_layout(
            legend_traceorder="normal", margin=dict(l=70, r=20, t=90, b=140), legend=dict(y=-0.18)
        )
        fig.update_annotations(font_size=15)
        fig.update_xaxes(
            title_text="learning rate η", type="log", dtick=1, exponentformat="power", row=1, col=1
        )
        fig.update_xaxes(title_text="epoch", range=[0.8, self.epochs + 0.2], dtick=1, row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=1)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox([widgets.HBox([c["metric"], c["epoch"], c["threshold"]]), self.figure])

    def best(self, label: str, epoch: int | None = None, metric: str = "val_acc") -> tuple[int, float]:
        """(index into the grid, mean value) of the best learning rate after ``epoch`` (1-based)."""
        epoch = self.epochs if epoch is None else epoch
        mean = getattr(self.sweeps[label], metric)[:, :, epoch - 1].mean(axis=1)
        i = int(np.nanargmax(mean))
        return i, float(mean[i])

    def update(self, changed: str | None = None):
        c = self.controls
        metric_name = c["metric"].value
        metric, e, thr = METRICS[metric_name], c["epoch"].value, c["threshold"].value
        epochs = np.arange(1, self.epochs + 1)
        with self.figure.batch_update():
            data = self.figure.data
            for j, (label, sweep) in enumerate(self.sweeps.items()):
                values = getattr(sweep, metric)  # (lrs, seeds, epochs)
                at_e = values[:, :, e - 1]
                ok = usable(sweep, thr, e, metric)
                i = 6 * j
                for k, y in enumerate((at_e.min(axis=1), at_e.max(axis=1), at_e.mean(axis=1))):
                    data[i + k].x, data[i + k].y = sweep.lrs, y
                data[i + 2].marker.color = [plots.color(label) if u else "white" for u in ok]
                b, best_value = self.best(label, e, metric)
                data[i + 2].name = (
                    f"{label}: good at {int(ok.sum())} of {len(ok)} rates ({_decades(sweep.lrs, ok)}); "
                    f"best η = {_fmt(sweep.lrs[b])}: {best_value:.3f}"
                )
                curve = values[b]  # (seeds, epochs)
                for k, y in enumerate((curve.min(axis=0), curve.max(axis=0), curve.mean(axis=0))):
                    data[i + 3 + k].x, data[i + 3 + k].y = epochs, y
            lows = [getattr(s, metric)[self.best(k, e, metric)[0]].min() for k, s in self.sweeps.items()]
            self.figure.layout.yaxis2.range = [min(lows) - 0.02, 1.005]
            lrs = next(iter(self.sweeps.values())).lrs
            data[-1].x, data[-1].y = [lrs.min() / 2, lrs.max() * 2], [thr, thr]
            data[-1].name = f"good if ≥ {thr:.2f}"
            self.figure.layout.yaxis.title.text = f"{metric_name} after epoch {e}"
            self.figure.layout.yaxis2.title.text = metric_name
            self.figure.layout.annotations[1].text = f"at each optimizer's best η (best after epoch {e})"
            self.figure.layout.title.text = (
                f"Learning-rate sensitivity on digits (MLP 64-50-10, batch {BATCH_SIZE}): mean and min–max "
                f"of {self.n_seeds} seeds"
            )
