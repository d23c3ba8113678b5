r"""Mini-batch gradient descent: batch size, vectorization, measuring error, choosing b.

* ``minibatch_paths``: least squares in two parameters, :math:`L(w) = \frac{1}{2n}\|Xw - y\|^2`; every
  epoch is :math:`m = \lceil n/b \rceil` updates :math:`w \leftarrow w - \eta \frac{1}{|B|}\sum_{i \in B}
  x_i(x_i^\top w - y_i)` over a fresh permutation. The batch size is a shape, so the runs for every
  b = 1, 2, 4, …, n are computed together at build (one compile); the slider only picks one.
* ``time_figure``: wall time of one forward+backward pass of an MLP per sample, for b = 1 … 1024, and of
  one epoch on digits, measured on this machine by ``lecture_lib.experiments_minibatch`` (whose timing
  helpers this module re-exports under their old names); ``wallclock_figure``: training cost against
  wall-clock time.
* ``running_loss``: the running mean of the last N batch losses against the true training cost per epoch.
* ``batch_memory``: bytes for one batch's forward and backward pass of an MLP, against a memory budget.
"""

from __future__ import annotations

import functools
import math

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import data, models, plots, sampling, training
from lecture_lib import optimizers as O
from lecture_lib.experiments_minibatch import (  # noqa: F401  (re-exported: the old names of this module)
    DIGITS_MODEL,
    VEC_MODEL,
    WALLCLOCK_RUNS,
    cost_at,
    epoch_time_digits,
    time_per_sample,
    wallclock_curves,
)
from lecture_lib.panels.base import Panel, register

N_SAMPLES = 64  # regression samples: batch sizes 1, 2, 4, ..., 64
EPOCHS = 8
SIZES = tuple(2**k for k in range(int(math.log2(N_SAMPLES)) + 1))
BATCH_COLORS = {"b = 1": "#D55E00", "chosen": "#0072B2", "b = n": "#009E73"}
GREY = "#444444"


# ---- 1. paths for every batch size ----------------------------------------------------------------------


def regression_problem(seed=0, n=N_SAMPLES, condition=10.0):
    """``data.linear_regression(n, 2, ...)`` as numpy: x, y, H, w_opt and the minimum loss L*."""
    d = data.linear_regression(n, 2, jax.random.key(seed), condition=condition, noise=0.5)
    x, y = np.asarray(d.x_train, np.float64), np.asarray(d.y_train, np.float64)
    w_opt = np.asarray(d.w_opt, np.float64)
    L_star = 0.5 * np.mean((x @ w_opt - y) ** 2)
    return x, y, np.asarray(d.H, np.float64), w_opt, L_star


@jax.jit  # one compiled call, not an eager compile per operation on a cold start (same numbers)
def full_loss(w, x, y):
    """L(w) = 1/(2n) ‖Xw − y‖² for w of shape (..., 2)."""
    r = jnp.einsum("nd,...d->...n", x, w)
    r = r - jnp.reshape(y, (1,) * (r.ndim - 1) + y.shape)
    return 0.5 * jnp.mean(r * r, axis=-1)


def batch_plan(n=N_SAMPLES, sizes=SIZES, epochs=EPOCHS, seed=0):
    """Indices (sizes, epochs·n, n) and masks for every batch size padded to one shape, so that one vmapped
    scan (one compile) runs them all: for b, update t < epochs·⌈n/b⌉ uses the b slots of row t that its
    mask marks, later rows are idle (no sample). Each epoch is a fresh permutation (``reshuffle``)."""
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(epochs)])
    T = epochs * n
    idx = np.zeros((len(sizes), T, n), np.int32)
    mask = np.zeros((len(sizes), T, n), bool)
    for s, b in enumerate(sizes):
        m = sampling.n_batches(n, b)
        for e in range(epochs):
            for j in range(m):
                rows = perms[e, j * b : (j + 1) * b]
                idx[s, e * m + j, : rows.size] = rows
                mask[s, e * m + j, : rows.size] = True
    return idx, mask


@jax.jit
def padded_runs(x, y, w0, eta, idx, mask):
    """Mini-batch GD for each padded plan row of ``batch_plan`` (vmapped): iterates (sizes, T + 1, 2)."""

    def one(idx, mask):
        def step(w, batch):
            i, mk = batch
            xb, yb = x[i], y[i]
            count = jnp.sum(mk)
            g = jnp.sum(mk[:, None] * xb * (xb @ w - yb)[:, None], axis=0) / jnp.maximum(count, 1)
            w = jnp.where(count > 0, w - eta * g, w)
            return w, w

        ws = jax.lax.scan(step, w0, (idx, mask))[1]
        return jnp.concatenate([w0[None], ws])

    return jax.vmap(one)(idx, mask)


_PLAN = None


def run_all(eta, problem=None):
    """{b: (iterates (epochs·m + 1, 2), full loss at each)} for every b in SIZES, as numpy; one call."""
    global _PLAN
    if _PLAN is None:
        _PLAN = tuple(map(jnp.asarray, batch_plan()))
    x, y, _, w_opt, _ = problem if problem is not None else regression_problem()
    w0 = (w_opt + np.array([-3.0, 2.5])).astype(np.float32)
    xs, ys = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    paths = padded_runs(xs, ys, jnp.asarray(w0), jnp.float32(eta), *_PLAN)
    losses = np.asarray(full_loss(paths, xs, ys), np.float64)
    paths = np.asarray(paths)
    out = {}
    for s, b in enumerate(SIZES):
        stop = EPOCHS * sampling.n_batches(N_SAMPLES, b) + 1
        out[b] = (paths[s, :stop], losses[s, :stop])
    return out


@register("minibatch_paths")
class MinibatchPaths(Panel):
    """Paths over the contours of the full loss for b = 1, the chosen b and b = n; excess loss per epoch
    and per update."""

    def build(self):
        style, wide = {"description_width": "150px"}, widgets.Layout(width="440px")
        c = self.controls
        c["log2_b"] = widgets.IntSlider(
            value=3, min=0, max=len(SIZES) - 1, description="log₂ batch size", style=style, layout=wide
        )
        c["eta"] = widgets.FloatLogSlider(
            value=0.05,
            base=10,
            min=-2.5,
            max=math.log10(0.15),
            step=0.05,
            description="learning rate η",
            readout_format=".3g",
            style=style,
            layout=wide,
        )
        self.info = widgets.HTML()
        self.problem = regression_problem()
        x, y, H, w_opt, L_star = self.problem
        self.L_star = L_star
        g = np.linspace(-4.5, 4.5, 91)
        W1, W2 = np.meshgrid(w_opt[0] + g, w_opt[1] + g)
        D = np.stack([W1 - w_opt[0], W2 - w_opt[1]], -1)
        Z = 0.5 * np.einsum("...i,ij,...j->...", D, H, D)  # L − L*
        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"rowspan": 2}, {}], [None, {}]],
            column_widths=[0.45, 0.55],
            horizontal_spacing=0.1,
            vertical_spacing=0.2,
            subplot_titles=("paths over contours of L(w)", "excess loss vs epochs", "excess loss vs updates"),
        )
        fig.add_trace(
            go.Contour(
                x=w_opt[0] + g,
                y=w_opt[1] + g,
                z=np.log10(Z + 1e-3),
                ncontours=25,
                colorscale="Greys",
                reversescale=True,
                opacity=0.7,
                showscale=False,
                hoverinfo="skip",
                showlegend=False,
                contours=dict(coloring="heatmap"),
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=[w_opt[0]],
                y=[w_opt[1]],
                mode="markers",
                marker=dict(symbol="star", size=16, color="gold", line=dict(width=1, color="black")),
                name="minimum w*",
            ),
            1,
            1,
        )
        # 2..4 paths, 5..7 per epoch, 8..10 per update (order: b=1, chosen, b=n)
        for row, col, mode in ((1, 1, "lines+markers"), (1, 2, "lines+markers"), (2, 2, "lines")):
            for key, color in BATCH_COLORS.items():
                fig.add_trace(
                    go.Scatter(
                        mode=mode,
                        line=dict(color=color, width=2.5 if key == "chosen" else 1.8),
                        marker=dict(size=4 if col == 1 else 7),
                        showlegend=col == 1,
                        legendgroup=key,
                    ),
                    row,
                    col,
                )
        fig.update_layout(**plots.base_layout("Mini-batch gradient descent: batch size b", height=680))
        fig.update_layout(margin=dict(t=90, b=120), legend=dict(y=-0.1))
        lo, hi = w_opt - 4.5, w_opt + 4.5
        fig.update_xaxes(title_text="w₁", range=[lo[0], hi[0]], constrain="domain", row=1, col=1)
        fig.update_yaxes(title_text="w₂", range=[lo[1], hi[1]], scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="epoch", row=1, col=2)
        fig.update_yaxes(title_text="L(w) − L*", type="log", dtick=1, row=1, col=2)
        fig.update_xaxes(title_text="updates (log scale)", type="log", dtick=1, row=2, col=2)
        fig.update_yaxes(title_text="L(w) − L*", type="log", dtick=1, row=2, col=2)
        self.figure = go.FigureWidget(fig)
        self._runs_eta = None
        self.widget = widgets.VBox([widgets.HBox([c["log2_b"], c["eta"]]), self.info, self.figure])

    def runs(self, eta):
        if self._runs_eta != eta:
            self._runs, self._runs_eta = run_all(eta, problem=self.problem), eta
        return self._runs

    def update(self, changed=None):
        c = self.controls
        eta, b = float(c["eta"].value), SIZES[int(c["log2_b"].value)]
        runs = self.runs(eta)
        n = N_SAMPLES
        shown = {"b = 1": 1, "chosen": b, "b = n": n}
        data = self.figure.data
        with self.figure.batch_update():
            for j, (key, bb) in enumerate(shown.items()):
                path, loss = runs[bb]
                m = sampling.n_batches(n, bb)
                excess = np.maximum(loss - self.L_star, 1e-8)
                name = {"b = 1": "b = 1 (SGD)", "chosen": f"chosen b = {b}", "b = n": f"b = n = {n} (batch)"}
                label = f"{name[key]}: m = {m} updates/epoch"
                data[2 + j].update(x=path[:, 0], y=path[:, 1], name=label)
                data[5 + j].update(x=np.arange(EPOCHS + 1), y=excess[::m], name=label)
                data[8 + j].update(x=np.arange(1, len(loss) + 1), y=excess, name=label)
        m = sampling.n_batches(n, b)
        self.info.value = (
            f"b = <b>{b}</b> of n = {n}: m = ⌈n/b⌉ = <b>{m}</b> updates per epoch, "
            f"{EPOCHS * m} updates in {EPOCHS} epochs; final excess loss "
            f"{max(runs[b][1][-1] - self.L_star, 0):.2e}"
        )


# ---- 2. vectorization: time per sample ------------------------------------------------------------------


def time_figure(batch_sizes, per_sample, epoch_sizes=None, epoch_times=None) -> go.FigureWidget:
    """Time per sample against b (left); if given, seconds per training epoch on digits against b (right)."""
    two = epoch_sizes is not None
    fig = make_subplots(
        rows=1,
        cols=2 if two else 1,
        horizontal_spacing=0.14,
        subplot_titles=("forward+backward: µs per sample", "one epoch on digits (n = 1,437)")
        if two
        else ("forward+backward: µs per sample",),
    )
    fig.add_trace(
        go.Scatter(
            x=batch_sizes,
            y=1e6 * per_sample,
            mode="lines+markers",
            marker=dict(size=9),
            line=dict(color=plots.color("SGD"), width=3),
            name=f"MLP {'-'.join(map(str, VEC_MODEL))}: µs per sample",
        ),
        1,
        1,
    )
    fig.update_xaxes(title_text="batch size b (log scale)", type="log", dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="µs per sample (log scale)", type="log", dtick=1, row=1, col=1)
    if two:
        fig.add_trace(
            go.Bar(
                x=[str(b) for b in epoch_sizes],
                y=1e3 * np.asarray(epoch_times),
                marker_color=plots.color("momentum"),
                name="ms per epoch (digits MLP 64-50-10)",
                text=[f"{1e3 * t:.1f}" for t in epoch_times],
                textposition="outside",
            ),
            1,
            2,
        )
        fig.update_xaxes(title_text="batch size b", type="category", row=1, col=2)
        fig.update_yaxes(title_text="ms per epoch", row=1, col=2)
    fig.update_layout(**plots.base_layout("Vectorization: larger batches use the hardware", height=480))
    return go.FigureWidget(fig)


# ---- 3. measuring error: running loss vs true training cost -----------------------------------------------

RUN_EPOCHS, RUN_BATCH, RUN_LR = 12, 32, 0.05


@functools.cache
def digits_history(epochs=RUN_EPOCHS, batch_size=RUN_BATCH, lr=RUN_LR, seed=0):
    """``training.fit`` of MLP 64-50-10 on digits with plain SGD; cached."""
    return training.fit(
        models.mlp(list(DIGITS_MODEL)),
        data.digits(seed=0),
        O.sgd(lr),
        epochs=epochs,
        batch_size=batch_size,
        key=jax.random.key(seed),
    )


def smooth(values, width=45):
    """A centred moving average (edges: shorter windows), the "smooth curve" to measure noise against."""
    v = np.asarray(values, np.float64)
    k = np.ones(width)
    num = np.convolve(v, k, mode="same")
    den = np.convolve(np.ones_like(v), k, mode="same")
    return num / den


def running_loss_noise(hist, window, skip=None):
    """Std of the running loss minus its own centred moving average (its wiggle), after the first epoch."""
    m = np.size(hist.loss) // np.size(hist.cost)
    skip = m if skip is None else skip
    run = hist.running_loss(window)
    return float(np.std((run - smooth(run))[skip:]))


@register("running_loss")
class RunningLoss(Panel):
    """Batch losses, their running mean over the last N updates, and the true training cost per epoch."""

    kind = "training"  # retrains a model on every move

    def build(self):
        c = self.controls
        c["window"] = widgets.IntSlider(
            value=20,
            min=1,
            max=200,
            description="window N (batches)",
            style={"description_width": "150px"},
            layout=widgets.Layout(width="480px"),
        )
        c["log_y"] = widgets.Checkbox(value=False, description="log-scale loss axis")
        self.hist = digits_history()
        loss = np.asarray(self.hist.loss, np.float64)
        self.m = loss.size // RUN_EPOCHS
        t = np.arange(1, loss.size + 1)
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=t,
                y=loss,
                mode="lines",
                line=dict(color="rgba(120,120,120,0.45)", width=1),
                name="batch loss J (each update)",
            )
        )
        fig.add_trace(go.Scatter(x=t, mode="lines", line=dict(color=plots.color("SGD"), width=3)))
        fig.add_trace(
            go.Scatter(
                x=self.m * np.arange(1, RUN_EPOCHS + 1),
                y=np.asarray(self.hist.cost),
                mode="lines+markers",
                marker=dict(size=11, symbol="diamond"),
                line=dict(color=plots.color("Adam"), width=2.5, dash="dash"),
                name="true training error (hist.cost, end of each epoch)",
            )
        )
        fig.update_layout(
            **plots.base_layout(
                f"Measuring error: running mean of batch losses vs the training error "
                f"(digits, b = {RUN_BATCH}, η = {RUN_LR})",
                height=520,
            )
        )
        fig.update_xaxes(title_text=f"update t ({self.m} per epoch)")
        fig.update_yaxes(title_text="cross-entropy loss")
        self.figure = go.FigureWidget(fig)
        self.info = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([c["window"], c["log_y"]]), self.info, self.figure])

    def update(self, changed=None):
        N = int(self.controls["window"].value)
        run = self.hist.running_loss(N)
        per_epoch = run[self.m - 1 :: self.m]
        gap = per_epoch - np.asarray(self.hist.cost, np.float64)
        with self.figure.batch_update():
            self.figure.data[1].y = run
            self.figure.data[1].name = f"running mean of the last N = {N} batch losses"
            self.figure.layout.yaxis.type = "log" if self.controls["log_y"].value else "linear"
        self.info.value = (
            f"N = {N}: noise (std around a smooth curve) <b>{running_loss_noise(self.hist, N):.4f}</b>; "
            f"running mean − true error at the end of epoch 1: <b>{gap[0]:+.3f}</b>, epoch 2: {gap[1]:+.3f}"
        )


# ---- 4. memory of one batch ------------------------------------------------------------------------------


def batch_memory_bytes(sizes, b, bytes_per_float=4, optimizer_slots=0):
    """Bytes for one forward+backward pass of an MLP with layer widths ``sizes`` on a batch of ``b``.

    weights P and their gradients P (+ ``optimizer_slots``·P for optimizer state, e.g. 2 for Adam), and
    activations: every layer's output (pre- and post-activation for hidden layers) and the input, stored
    for the backward pass, plus the gradients with respect to them (same count).
    """
    sizes = list(sizes)
    P = sum(a * c + c for a, c in zip(sizes[:-1], sizes[1:]))
    per_sample = sizes[0] + 2 * sum(sizes[1:-1]) + sizes[-1]
    b = np.asarray(b, np.float64)
    return {
        "weights": bytes_per_float * P * (1 + optimizer_slots) + 0 * b,
        "weight gradients": bytes_per_float * P + 0 * b,
        "activations": bytes_per_float * per_sample * b,
        "activation gradients": bytes_per_float * per_sample * b,
    }


MEMORY_MODELS = {
    "digits MLP 64-50-10": (64, 50, 10),
    "MLP 3072-1024-1024-10 (CIFAR-10)": (3072, 1024, 1024, 10),
    "MLP 150528-4096-4096-1000 (ImageNet pixels)": (150528, 4096, 4096, 1000),
}
MEMORY_B = 2 ** np.arange(0, 21)
MEMORY_COLORS = ("#0072B2", "#56B4E9", "#E69F00", "#CC79A7")


@register("batch_memory")
class BatchMemory(Panel):
    """Stacked memory of one batch against b, a budget line, and the largest b that fits."""

    kind = "training"  # retrains a model on every move

    def build(self):
        style = {"description_width": "170px"}
        c = self.controls
        c["model"] = widgets.Dropdown(
            options=list(MEMORY_MODELS), value="MLP 3072-1024-1024-10 (CIFAR-10)", description="model"
        )
        c["budget"] = widgets.FloatLogSlider(
            value=8.0,
            base=10,
            min=-2,
            max=2.5,
            step=0.05,
            description="memory budget (GB)",
            readout_format=".3g",
            style=style,
            layout=widgets.Layout(width="470px"),
        )
        c["adam"] = widgets.Checkbox(value=False, description="Adam state (2 extra copies of the weights)")
        fig = go.Figure()
        for name, col in zip(batch_memory_bytes((2, 2), 1), MEMORY_COLORS):
            fig.add_trace(
                go.Scatter(x=MEMORY_B, mode="lines", stackgroup="one", line=dict(color=col), name=name)
            )
        fig.add_trace(
            go.Scatter(x=MEMORY_B[[0, -1]], mode="lines", line=dict(color="black", width=3, dash="dash"))
        )
        fig.add_trace(
            go.Scatter(mode="markers+text", marker=dict(size=16, color="#D55E00"), textposition="top left")
        )
        fig.update_layout(**plots.base_layout("Memory of one batch's forward and backward pass", height=520))
        fig.update_xaxes(title_text="batch size b (log scale)", type="log", dtick=1)
        fig.update_yaxes(title_text="GB (float32, log scale)", type="log", dtick=1)
        self.figure = go.FigureWidget(fig)
        self.info = widgets.HTML()
        self.widget = widgets.VBox(
            [widgets.HBox([c["model"], c["budget"]]), c["adam"], self.info, self.figure]
        )

    def largest_batch(self):
        sizes = MEMORY_MODELS[self.controls["model"].value]
        mem = batch_memory_bytes(sizes, MEMORY_B, optimizer_slots=2 if self.controls["adam"].value else 0)
        total = sum(mem.values()) / 1e9
        fits = total <= self.controls["budget"].value
        return (int(MEMORY_B[fits][-1]) if fits.any() else 0), mem, total

    def update(self, changed=None):
        c = self.controls
        budget = c["budget"].value
        b_max, mem, total = self.largest_batch()
        with self.figure.batch_update():
            for i, v in enumerate(mem.values()):
                self.figure.data[i].y = v / 1e9
            self.figure.data[4].y = [budget, budget]
            self.figure.data[4].name = f"budget {budget:.3g} GB"
            d = self.figure.data[5]
            if b_max:
                d.x, d.y, d.text = [b_max], [total[MEMORY_B == b_max][0]], [f"largest b = {b_max:,}"]
            else:
                d.x, d.y, d.text = [], [], []
            d.name = f"largest power-of-2 batch that fits: {b_max:,}" if b_max else "not even b = 1 fits"
        self.info.value = (
            f"{c['model'].value}: weights alone {mem['weights'][0] / 1e9:.3g} GB; "
            f"largest power-of-2 batch within {budget:.3g} GB: <b>{b_max:,}</b>"
        )


# ---- loss against wall-clock time ------------------------------------------------------------------------


def wallclock_figure(curves) -> go.FigureWidget:
    fig = go.Figure()
    colors = (BATCH_COLORS["b = 1"], BATCH_COLORS["chosen"], BATCH_COLORS["b = n"])
    for (b, (t, cost)), color in zip(curves.items(), colors, strict=False):
        fig.add_trace(
            go.Scatter(x=1e3 * t, y=cost, mode="lines+markers", line=dict(color=color), name=f"b = {b}")
        )
    fig.update_layout(**plots.base_layout("Training cost against wall-clock time (digits, 64-50-10, SGD)"))
    fig.update_xaxes(title_text="wall-clock time (ms, this machine)")
    fig.update_yaxes(title_text="training cost after the epoch", type="log")
    return go.FigureWidget(fig)
