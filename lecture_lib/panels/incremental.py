r"""Batch gradient descent vs incremental updates (SGD) on a 1-D function fit.

The model is linear in fixed Gaussian bumps, :math:`f(x; W) = \sum_j W_j\,\phi_j(x)`, so the training error
:math:`L(W) = \frac1{2n}\sum_i (f(x_i; W) - y_i)^2` is the least-squares finite sum of
``experiments_sgd.batch_vs_sgd``. Full-batch gradient descent makes one update per pass over the data,
:math:`W \leftarrow W - \eta\,\frac1n\sum_i \nabla \text{loss}_i`, and moves the curve at all points at once;
SGD makes n updates per pass, :math:`W \leftarrow W - \eta\,\nabla\text{loss}_i` for one sample i at a time
in a fresh random order each epoch, each pulling the curve towards one point. Both use the same η.

The learning rate and the seed are traced: one compiled run serves every slider position.
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
from lecture_lib.panels.base import Panel, log_slider, register

N_TRAIN = 20  # training pairs
EPOCHS = 8  # passes over the data shown by the animation
CENTERS = np.linspace(-1.0, 1.0, 9)  # Gaussian bumps φ_j(x) = exp(−(x − c_j)²/(2s²))
WIDTH = 0.3
ETA_RANGE = (0.01, 1.5)  # equal η for both methods; SGD is stable up to about 2/max‖φ(x_i)‖²
GRID = np.linspace(-1.0, 1.0, 201)
GD_COLOR, SGD_COLOR = "#D55E00", plots.color("SGD")


def features(x):
    """φ(x): (m,) or (m, 1) inputs -> (m, len(CENTERS)) Gaussian bumps."""
    x = jnp.reshape(jnp.asarray(x, jnp.float32), (-1, 1))
    return jnp.exp(-((x - jnp.asarray(CENTERS, jnp.float32)[None, :]) ** 2) / (2 * WIDTH**2))


def fit_problem(seed: int = 0, n: int = N_TRAIN, target: str = "sin", noise: float = 0.1):
    """``(problem, x, y, Phi)``: n noisy samples of g sorted by x, and their features (n, p)."""
    problem = data.function_fit_problem(target, noise=noise)
    x, y = problem.sample(jax.random.key(seed), n)
    order = jnp.argsort(x[:, 0])
    x, y = x[order, 0], y[order]
    return problem, x, y, features(x)


@functools.partial(jax.jit, static_argnames=("epochs",))
def gd_and_sgd(phi, y, eta, key, *, epochs=EPOCHS):
    """Weights of full-batch GD after every epoch (epochs+1, p) and of SGD after every update (epochs·n+1, p),
    with the training error ½ mean (φw − y)² of each after every epoch (epochs+1,), and SGD's sample order.

    Both start from W = 0; SGD reshuffles every epoch (``sampling._batches``, as in training).
    """
    n, p = phi.shape
    hi = jax.lax.Precision.HIGHEST
    idx = sampling._batches(key, n, 1, epochs, "reshuffle")[0].reshape(-1)

    def loss(w):
        r = jnp.matmul(phi, w, precision=hi) - y
        return 0.5 * jnp.mean(r * r)

    def gd(w, _):
        r = jnp.matmul(phi, w, precision=hi) - y
        w = w - eta * jnp.matmul(r, phi, precision=hi) / n
        return w, w

    def sgd(w, i):
        w = w - eta * (jnp.dot(phi[i], w, precision=hi) - y[i]) * phi[i]
        return w, w

    w0 = jnp.zeros(p)
    _, w_gd = jax.lax.scan(gd, w0, None, length=epochs)
    _, w_sgd = jax.lax.scan(sgd, w0, idx)
    w_gd = jnp.concatenate([w0[None], w_gd])
    w_sgd = jnp.concatenate([w0[None], w_sgd])
    return w_gd, w_sgd, jax.vmap(loss)(w_gd), jax.vmap(loss)(w_sgd[::n]), idx


@register("batch_vs_sgd_fit")
class BatchVsSGDFit(Panel):
    """Left: g(x), the training pairs and both fitted curves at the animation's step (SGD's current sample
    highlighted). Right: the training error after each epoch for both, with the current epoch marked."""

    def build(self):
        self.problem, x, y, self.phi = fit_problem()
        self.x, self.y, self.phi_np = np.asarray(x), np.asarray(y), np.asarray(self.phi)
        self.phi_grid = np.asarray(features(GRID), np.float64)
        style, wide = {"description_width": "190px"}, widgets.Layout(width="520px")
        total = EPOCHS * N_TRAIN
        c = self.controls
        c["step"] = widgets.IntSlider(
            value=0, min=0, max=total, description="sample gradients t", style=style, layout=wide
        )
        c["eta"] = log_slider(0.5, *ETA_RANGE, "learning rate η (both)", style=style, layout=wide)
        c["seed"] = widgets.IntSlider(value=0, min=0, max=20, description="SGD order seed", style=style)
        self.play = widgets.Play(value=0, min=0, max=total, step=1, interval=250, description="play")
        widgets.jslink((self.play, "value"), (c["step"], "value"))
        self.counter = widgets.HTML()

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.6, 0.4],
            horizontal_spacing=0.1,
            subplot_titles=("the fitted function", "training error after each epoch"),
        )
        g = np.asarray(self.problem.g(jnp.asarray(GRID, jnp.float32)))
        fig.add_trace(  # 0 target
            go.Scatter(
                x=GRID,
                y=g,
                mode="lines",
                line=dict(color="#444444", dash="dash", width=2),
                name="target g(x)",
            ),
            1,
            1,
        )
        fig.add_trace(  # 1 training pairs
            go.Scatter(
                x=self.x,
                y=self.y,
                mode="markers",
                marker=dict(size=9, color="#444444"),
                name=f"{N_TRAIN} training pairs",
            ),
            1,
            1,
        )
        line = dict(width=3)
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=GD_COLOR, **line)), 1, 1)  # 2 GD curve
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=SGD_COLOR, **line)), 1, 1)  # 3 SGD curve
        fig.add_trace(  # 4 SGD's current sample
            go.Scatter(
                mode="markers",
                marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(width=3, color=SGD_COLOR)),
                name="sample SGD just used",
            ),
            1,
            1,
        )
        fig.add_trace(  # 5 pull of that sample: from the curve to the point
            go.Scatter(mode="lines", line=dict(color=SGD_COLOR, width=2, dash="dot"), showlegend=False),
            1,
            1,
        )
        epochs = np.arange(EPOCHS + 1)
        marker = dict(size=8)
        for color, name in ((GD_COLOR, "batch GD"), (SGD_COLOR, "SGD")):  # 6, 7 error curves
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    mode="lines+markers",
                    line=dict(color=color, width=2.5),
                    marker=marker,
                    name=f"{name}: error per epoch",
                ),
                1,
                2,
            )
        fig.add_trace(  # 8 the current epoch
            go.Scatter(mode="lines", line=dict(color="#444444", width=1.5, dash="dot"), showlegend=False),
            1,
            2,
        )
        fig.update_layout(
            **plots.base_layout("Batch gradient descent vs incremental updates (SGD)", height=600)
        )
        fig.update_layout(legend=dict(y=-0.14))
        fig.update_xaxes(title_text="x", range=[-1.05, 1.05], row=1, col=1)
        fig.update_yaxes(title_text="y", range=[-1.6, 1.6], row=1, col=1)
        fig.update_xaxes(title_text="epoch (passes over the data)", dtick=1, row=1, col=2)
        fig.update_yaxes(title_text="½·mean (f(xᵢ) − yᵢ)²", type="log", range=[-3, 0], dtick=1, row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.play, c["step"]]),
                widgets.HBox([c["eta"], c["seed"]]),
                self.counter,
                self.figure,
            ]
        )

    def run(self):
        """Recompute both runs for the current η and seed (cached until they change)."""
        c = self.controls
        out = gd_and_sgd(
            self.phi, jnp.asarray(self.y), jnp.float32(c["eta"].value), jax.random.key(int(c["seed"].value))
        )
        self.w_gd, self.w_sgd, self.err_gd, self.err_sgd, self.order = (np.asarray(a) for a in out)

    def update(self, changed: str | None = None):
        if changed != "step":
            self.run()
        t = int(self.controls["step"].value)
        n = N_TRAIN
        k_gd, epoch = t // n, t / n
        f_gd = self.phi_grid @ self.w_gd[k_gd]
        f_sgd = self.phi_grid @ self.w_sgd[t]
        eta = self.controls["eta"].value
        errs = np.concatenate([self.err_gd, self.err_sgd])
        stable = bool(np.all(np.isfinite(errs)) and errs.max() <= 10 * self.err_gd[0])
        data = self.figure.data
        with self.figure.batch_update():
            data[2].x, data[2].y = GRID, np.clip(f_gd, -50, 50)
            data[2].name = f"batch GD after {k_gd} update{'s' * (k_gd != 1)} (η={eta:.3g})"
            data[3].x, data[3].y = GRID, np.clip(f_sgd, -50, 50)
            data[3].name = f"SGD after {t} update{'s' * (t != 1)} (η={eta:.3g})"
            if t > 0:
                i = int(self.order[t - 1])
                xi, yi = self.x[i], self.y[i]
                before = float(self.phi_np[i] @ self.w_sgd[t - 1])
                data[4].x, data[4].y = [xi], [yi]
                data[5].x, data[5].y = [xi, xi], [float(np.clip(before, -50, 50)), yi]
            else:
                data[4].x = data[4].y = data[5].x = data[5].y = []
            data[6].y = np.where(np.isfinite(self.err_gd), self.err_gd, np.nan)
            data[7].y = np.where(np.isfinite(self.err_sgd), self.err_sgd, np.nan)
            data[8].x, data[8].y = [epoch, epoch], [1e-3, 1.0]
        e = k_gd
        self.counter.value = (
            f"<span style='font-size:16px'>sample gradients <b>{t}</b> = epoch <b>{epoch:.2f}</b>"
            f" &nbsp;|&nbsp; updates: batch GD <b>{k_gd}</b>, SGD <b>{t}</b>"
            f" &nbsp;|&nbsp; training error after epoch {e}: GD <b>{self.err_gd[e]:.3g}</b>,"
            f" SGD <b>{self.err_sgd[e]:.3g}</b>"
            + ("" if stable else " &nbsp;<b style='color:#D55E00'>diverged: η too large</b>")
            + "</span>"
        )
