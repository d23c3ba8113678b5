r"""Presentation order of the samples in SGD: reshuffle, fixed, sorted by x, or with replacement.

One finite sum for every order: the line fit :math:`f(x; w) = w_0 + w_1 x` to n noisy samples of sin(πx),
stored sorted by x, :math:`L(w) = \frac1{2n}\sum_i (f(x_i; w) - y_i)^2`, SGD with one sample per update at a
constant η from w = 0 (``experiments_sgd.sampling_orders``). A sorted order drags the line towards the left
samples, then the right ones, every epoch: it drifts within the epoch and ends each one biased (a cycle).
Reshuffling every epoch settles closer to :math:`w^\star` than drawing with replacement at the same η.

η and the seed are traced: one compiled run per order serves every slider position.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import data, plots, sampling
from lecture_lib import experiments_sgd as ex
from lecture_lib.panels.base import Panel, log_slider, register

N_SAMPLES = 50
EPOCHS = 80
SEEDS = 8
SHOWN_EPOCHS = 16  # rows of the raster
TAIL = 40  # the last epochs: "where each order settles"
ETA_RANGE = (0.005, 0.3)
ORDER_NAMES = {
    "reshuffle": "reshuffle every epoch",
    "fixed": "one fixed random order",
    "sorted": "sorted by x",
    "replacement": "with replacement",
}
ORDER_COLORS = {"reshuffle": "#0072B2", "fixed": "#009E73", "sorted": "#D55E00", "replacement": "#CC79A7"}


def line_problem(seed: int = 0, n: int = N_SAMPLES, target: str = "sin", noise: float = 0.1):
    """``(x, y, X)``: n noisy samples of g sorted by x and the line's features X = [1, x] (n, 2)."""
    problem = data.function_fit_problem(target, noise=noise)
    x, y = problem.sample(jax.random.key(seed), n)
    order = jnp.argsort(x[:, 0])
    x, y = x[order, 0], y[order]
    return x, y, jnp.stack([jnp.ones_like(x), x], axis=1)


@functools.partial(jax.jit, static_argnames=("n", "epochs", "order"))
def sample_order(key, *, n, epochs, order):
    """Sample used at each update (epochs, n) by run 0 of ``sampling_orders`` (the same key split)."""
    k0 = jax.random.split(key, SEEDS)[0]
    return sampling._batches(k0, n, 1, epochs, order)[0][:, :, 0]


@register("sampling_orders")
class SamplingOrders(Panel):
    """Left: raster of the sample index used at each update (rows: epochs) for the chosen order. Right: the
    excess error L(w) − L(w*) after each epoch for all four orders (mean over seeds), and each order's
    within-epoch spread of the iterates."""

    static_control = "order"  # static pages (make site): the three orders side by side

    def build(self):
        x, self.y, self.X = line_problem()
        for o in ORDER_NAMES:  # compile every order's raster now, not on the first menu change
            sample_order(jax.random.key(0), n=N_SAMPLES, epochs=SHOWN_EPOCHS, order=o)
        self.x = np.asarray(x)
        style, wide = {"description_width": "150px"}, widgets.Layout(width="470px")
        c = self.controls
        c["order"] = widgets.Dropdown(
            options=[(v, k) for k, v in ORDER_NAMES.items()],
            value="sorted",
            description="raster of order",
            style=style,
        )
        c["eta"] = log_slider(0.05, *ETA_RANGE, "learning rate η", style=style, layout=wide)
        c["seed"] = widgets.IntSlider(value=1, min=0, max=20, description="seed", style=style)

        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"rowspan": 2}, {}], [None, {}]],
            column_widths=[0.42, 0.58],
            row_heights=[0.6, 0.4],
            horizontal_spacing=0.2,
            vertical_spacing=0.2,
            subplot_titles=(
                "which sample, when",
                "excess error L(w) − L(w*) after each epoch",
                f"spread of the iterates within an epoch (last {TAIL} epochs)",
            ),
        )
        fig.add_trace(  # 0 raster
            go.Heatmap(
                colorscale="Viridis",
                zmin=0,
                zmax=N_SAMPLES - 1,
                colorbar=dict(
                    title=dict(text="sample i<br>(sorted by x)", side="right"), x=0.35, len=0.9, thickness=15
                ),
                hovertemplate="epoch %{y}, update %{x}: sample %{z}<extra></extra>",
                name="sample used",
            ),
            1,
            1,
        )
        epochs = np.arange(EPOCHS + 1)
        for o, name in ORDER_NAMES.items():  # 1..4 error curves
            fig.add_trace(
                go.Scatter(x=epochs, mode="lines", line=dict(color=ORDER_COLORS[o], width=2.5), name=name),
                1,
                2,
            )
        fig.add_trace(  # 5 spread bars
            go.Bar(
                x=[ORDER_NAMES[o].replace("one fixed random order", "fixed order") for o in ORDER_NAMES],
                marker_color=[ORDER_COLORS[o] for o in ORDER_NAMES],
                showlegend=False,
                texttemplate="%{y:.2g}",
                textposition="outside",
                textfont=dict(size=14),
            ),
            2,
            2,
        )
        fig.update_layout(**plots.base_layout("SGD: the order in which samples are presented", height=680))
        fig.update_layout(legend=dict(y=-0.12))
        fig.update_xaxes(title_text="update within the epoch", row=1, col=1)
        fig.update_yaxes(title_text="epoch", autorange="reversed", dtick=2, row=1, col=1)
        fig.update_xaxes(title_text="epoch", row=1, col=2)
        fig.update_yaxes(title_text="L(w) − L(w*)", type="log", dtick=1, row=1, col=2)
        fig.update_yaxes(title_text="mean ‖w − w̄‖²", rangemode="tozero", row=2, col=2)
        self.figure = go.FigureWidget(fig)
        self.summary = widgets.HTML()
        self.widget = widgets.VBox(
            [widgets.HBox([c["order"], c["seed"]]), c["eta"], self.summary, self.figure]
        )

    def update(self, changed: str | None = None):
        c = self.controls
        order, eta, seed = c["order"].value, float(c["eta"].value), int(c["seed"].value)
        key = jax.random.key(seed)
        data = self.figure.data
        with self.figure.batch_update():
            if changed in (None, "order", "seed"):
                idx = np.asarray(sample_order(key, n=N_SAMPLES, epochs=SHOWN_EPOCHS, order=order))
                data[0].z = idx
                data[0].x = np.arange(1, N_SAMPLES + 1)
                data[0].y = np.arange(1, SHOWN_EPOCHS + 1)
                self.figure.layout.annotations[
                    0
                ].text = f"which sample, when: {ORDER_NAMES[order]} (seed {seed})"
                for i, o in enumerate(ORDER_NAMES):
                    data[1 + i].line.width = 5 if o == order else 2.5
            if changed in (None, "eta", "seed"):
                r = ex.sampling_orders(self.X, self.y, jnp.float32(eta), epochs=EPOCHS, key=key, seeds=SEEDS)
                excess, spread = np.asarray(r.excess).mean(axis=1), np.asarray(r.spread)
                spread = spread[:, :, -TAIL:].mean(axis=(1, 2))
                self.excess, self.spread = excess, spread
                for i in range(len(ORDER_NAMES)):
                    data[1 + i].y = np.where(np.isfinite(excess[i]), excess[i], np.nan)
                data[5].y = np.where(np.isfinite(spread), spread, np.nan)
                self.figure.layout.annotations[
                    1
                ].text = f"excess error L(w) − L(w*) after each epoch, η = {eta:.3g}, mean of {SEEDS} runs"
        tail = self.excess[:, -TAIL:].mean(axis=1)
        names = list(ORDER_NAMES)
        rr, repl, srt = (names.index(k) for k in ("reshuffle", "replacement", "sorted"))
        ratio = self.spread[srt] / self.spread[rr]
        self.summary.value = (
            f"<span style='font-size:16px'>mean excess error over the last {TAIL} epochs: reshuffle "
            f"<b>{tail[rr]:.2e}</b>, with replacement <b>{tail[repl]:.2e}</b>, sorted <b>{tail[srt]:.2e}</b>"
            f" &nbsp;|&nbsp; spread sorted / reshuffle = <b>{ratio:.1f}×</b></span>"
        )
