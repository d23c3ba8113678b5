r"""Adaptive methods can generalise worse: Wilson, Roelofs, Stern, Srebro & Recht (NeurIPS 2017), §3.3.

The constructed least-squares problem of ``data.wilson2017``: row i is :math:`[y_i, 1, 1]` followed by a
block of 5 features unique to example i (1 set for a positive, 5 for a negative), loss
:math:`\tfrac12\lVert Xw - y\rVert^2`. Full-batch GD from 0 reaches the minimum-norm interpolant and
classifies every test point correctly; AdaGrad, RMSProp and Adam from 0 reach :math:`w \propto
\operatorname{sign}(X^\top y)` and call every test point positive.

So that the n slider never recompiles, the problem is solved at a fixed maximum size ``N_MAX`` with the rows
beyond n masked out of the loss (their features then get no gradient and stay 0 for every method), and the
weights are stored as they act: ``head`` (3,) for the shared features and ``blocks`` (N_MAX, 5) for the unique
ones, so one step costs O(n), not O(n·d). A test point's unique features are fresh columns whose weight
stays 0 for every method started at 0, so its score is :math:`y w_1 + w_2 + w_3`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import optimizers as O
from lecture_lib import plots
from lecture_lib.panels.base import Panel, register

N_MAX = 100  # the paper's n
N_TEST = 1000
STEPS = 3000
METHODS = ("GD", "AdaGrad", "RMSProp", "Adam")
LRS = dict(AdaGrad=0.1, RMSProp=1e-3, Adam=1e-3)  # papers.md §1; GD's is 1/λ_max(XXᵀ)
COLORS = dict(GD=plots.color("SGD"), AdaGrad=plots.color("AdaGrad"), RMSProp=plots.color("RMSProp"),
              Adam=plots.color("Adam"))  # fmt: skip


def labels(seed: int, p: float, n: int = N_MAX, n_test: int = N_TEST):
    """``(y, y_test)`` in ±1: y = +1 where a fixed uniform draw is below p (moving p flips few labels)."""
    rng = np.random.default_rng(seed)
    u, u_test = rng.uniform(size=n), rng.uniform(size=n_test)
    return np.where(u < p, 1.0, -1.0).astype(np.float32), np.where(u_test < p, 1.0, -1.0).astype(np.float32)


def unique_block(y):
    """(n, 5) the unique features of each row: the first set for everyone, all five for a negative."""
    neg = (y < 0).astype(y.dtype)
    return jnp.concatenate(
        [jnp.ones_like(y)[:, None], jnp.broadcast_to(neg[:, None], (y.shape[0], 4))], axis=1
    )


def loss(w, y, active):
    """½ Σ over the active rows of (x_i·w − y_i)², with x_i = [y_i, 1, 1, unique block of i]."""
    h = w["head"]
    pred = y * h[0] + h[1] + h[2] + jnp.sum(unique_block(y) * w["blocks"], axis=1)
    r = jnp.where(active, pred - y, 0.0)
    return 0.5 * jnp.sum(r * r)


def dense_x(y):
    """The explicit design matrix (n, 3 + 5n) of ``data.wilson2017`` for labels y (checks, min-norm)."""
    y = np.asarray(y, np.float64)
    n = len(y)
    x = np.zeros((n, 3 + 5 * n))
    x[:, 0], x[:, 1], x[:, 2] = y, 1.0, 1.0
    for i in range(n):
        x[i, 3 + 5 * i] = 1.0
        if y[i] < 0:
            x[i, 4 + 5 * i : 8 + 5 * i] = 1.0
    return x


def flat(head, blocks, n):
    """The weight vector in ``dense_x``'s column order, for the first n examples."""
    return np.concatenate([np.asarray(head), np.asarray(blocks)[:n].ravel()])


def gd_rate(y, n) -> float:
    """1/λ_max(XXᵀ) over the first n rows: XXᵀ = yyᵀ + 2·11ᵀ + diag(‖unique block‖²)."""
    y = np.asarray(y[:n], np.float64)
    gram = np.outer(y, y) + 2.0 + np.diag(np.where(y < 0, 5.0, 1.0))
    return float(1.0 / np.linalg.eigvalsh(gram)[-1])


@functools.partial(jax.jit, static_argnames="steps")
def train(opts, y, active, *, steps: int):
    """Full batch from w = 0 per optimizer: final weights, and the shared-feature weights at each step."""
    w0 = {"head": jnp.zeros(3), "blocks": jnp.zeros((y.shape[0], 5))}
    grad = jax.grad(loss)
    out = []
    for opt in opts:

        def step(carry, _, opt=opt):
            w, state = carry
            w, state = opt.update(grad(w, y, active), state, w)
            return (w, state), w["head"]

        (w, _), heads = jax.lax.scan(step, (w0, opt.init(w0)), None, length=steps)
        out.append((w["head"], w["blocks"], jnp.concatenate([w0["head"][None], heads])))
    return out


class Result(NamedTuple):
    """One method's outcome (NumPy)."""

    head: np.ndarray  # (3,) final weights of the shared features
    blocks: np.ndarray  # (N_MAX, 5) final weights of the unique features (rows beyond n are 0)
    heads: np.ndarray  # (steps+1, 3) shared-feature weights along the way
    test_error: np.ndarray  # (steps+1,) test error along the way
    train_error: float  # final training error (sign of x·w against y)
    lr: float


def test_error(heads, y_test):
    """Error of sign(y·w₁ + w₂ + w₃) on the test labels (a score of 0 counts as an error)."""
    s_pos = heads[..., 0] + heads[..., 1] + heads[..., 2]
    s_neg = -heads[..., 0] + heads[..., 1] + heads[..., 2]
    n_pos, n_neg = int(np.sum(y_test > 0)), int(np.sum(y_test < 0))
    return (n_pos * (s_pos <= 0) + n_neg * (s_neg >= 0)) / len(y_test)  # counts first: exact fractions


def solve(n: int, p: float, seed: int, steps: int = STEPS) -> dict:
    """Every method of ``METHODS`` on the first n examples; returns ``{method: Result}`` plus the data."""
    y_all, y_test = labels(seed, p)
    active = np.arange(N_MAX) < n
    lrs = dict(GD=gd_rate(y_all, n), **LRS)
    opts = [O.sgd(lrs["GD"]), O.adagrad(lrs["AdaGrad"]), O.rmsprop(lrs["RMSProp"]), O.adam(lrs["Adam"])]
    runs = train(opts, y_all, active, steps=steps)
    y = y_all[:n].astype(np.float64)
    out = {}
    for method, (head, blocks, heads) in zip(METHODS, runs, strict=True):
        head, blocks, heads = (np.asarray(a, np.float64) for a in (head, blocks, heads))
        w = flat(head, blocks, n)
        train_error = float(np.mean(np.sign(dense_x(y) @ w) != y))
        out[method] = Result(head, blocks, heads, test_error(heads, y_test), train_error, lrs[method])
    return dict(results=out, y=y, y_test=y_test, n=n, p=p, seed=seed)


# Bars: the three shared features, then the unique features of the first positive and first negative example.
def _bar_features(y):
    i_pos = int(np.argmax(y > 0)) if (y > 0).any() else None
    i_neg = int(np.argmax(y < 0)) if (y < 0).any() else None
    cols, names = [0, 1, 2], ["x₁ = y", "x₂ = 1", "x₃ = 1"]
    if i_pos is not None:
        cols.append(3 + 5 * i_pos)
        names.append(f"+ #{i_pos + 1}")
    if i_neg is not None:
        cols += [3 + 5 * i_neg + j for j in range(5)]
        names += [f"− #{i_neg + 1}.{j + 1}" for j in range(5)]
    return cols, names


@register("wilson_generalization")
class WilsonGeneralization(Panel):
    """Test error along training (left); the learned weights of GD and one adaptive method (right)."""

    kind = "training"  # retrains a model on every move

    def __init__(self, n: int = 40, p: float = 0.6, seed: int = 1, steps: int = STEPS):
        self._n, self._p, self._seed, self.steps = n, p, seed, steps
        self.outcome = None
        super().__init__()

    def build(self):
        c = self.controls
        c["n"] = widgets.IntSlider(value=self._n, min=2, max=N_MAX, description="n (train)")
        c["p"] = widgets.FloatSlider(
            value=self._p, min=0.55, max=0.9, step=0.05, description="p = P(y=+1)", readout_format=".2f"
        )
        c["seed"] = widgets.IntSlider(value=self._seed, min=0, max=9, description="seed")
        c["method"] = widgets.Dropdown(options=list(METHODS[1:]), value="Adam", description="weights of")
        style = {"description_width": "110px"}
        for w in c.values():
            w.style = style

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.48, 0.52],
            horizontal_spacing=0.1,
            subplot_titles=("test error during full-batch training", "learned weights (first features)"),
        )
        # the three adaptive curves often coincide: wide solid, dashed and dotted lines keep each visible
        styles = dict(
            GD=(3, "solid", 3), AdaGrad=(2.5, "dot", 2), RMSProp=(3.5, "dash", 1), Adam=(6, "solid", 0)
        )
        for m in METHODS:  # 0-3
            width, dash, z = styles[m]
            fig.add_trace(
                go.Scatter(
                    mode="lines", line=dict(color=COLORS[m], width=width, dash=dash), name=m, zorder=z
                ),
                row=1,
                col=1,
            )
        fig.add_trace(  # 4
            go.Scatter(
                mode="lines", line=dict(color="black", dash="dash", width=2), name="fraction of negatives"
            ),
            row=1,
            col=1,
        )
        fig.add_trace(go.Bar(marker_color=COLORS["GD"]), row=1, col=2)  # 5: GD
        fig.add_trace(go.Bar(), row=1, col=2)  # 6: the adaptive method
        fig.add_trace(  # 7
            go.Scatter(
                mode="markers",
                marker=dict(symbol="line-ew", size=26, line=dict(width=3, color="black")),
                name="¼·sign(Xᵀy)",
            ),
            row=1,
            col=2,
        )
        fig.update_layout(**plots.base_layout("Adaptive methods can generalise worse", height=600))
        fig.update_layout(barmode="group", margin=dict(l=70, r=20, t=90, b=150), legend=dict(y=-0.2))
        fig.update_annotations(font_size=15)
        fig.update_xaxes(title_text="iteration k + 1 (full-batch steps)", type="log", dtick=1, row=1, col=1)
        fig.update_yaxes(title_text="test error", range=[-0.03, 1.03], row=1, col=1)
        fig.update_xaxes(
            title_text="feature (+ #i / − #i: unique to training example i)", tickangle=-45, row=1, col=2
        )
        fig.update_yaxes(title_text="weight wⱼ", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox(
            [
                widgets.HBox([widgets.VBox([c["n"], c["p"]]), widgets.VBox([c["seed"], c["method"]])]),
                self.figure,
            ]
        )

    def update(self, changed: str | None = None):
        c = self.controls
        n, p, seed = c["n"].value, c["p"].value, c["seed"].value
        if changed != "method" or self.outcome is None:
            self.outcome = solve(n, p, seed, self.steps)
        res, y, y_test = self.outcome["results"], self.outcome["y"], self.outcome["y_test"]
        neg_test = float(np.mean(y_test < 0))
        n_pos, n_neg = int((y > 0).sum()), int((y < 0).sum())
        method = c["method"].value
        ks = np.arange(1, self.steps + 2)  # iteration k+1 on a log axis: the start is at 1
        cols, names = _bar_features(y)
        sign = np.sign(dense_x(y).T @ y)
        with self.figure.batch_update():
            data = self.figure.data
            for i, m in enumerate(METHODS):
                r = res[m]
                data[i].x, data[i].y = ks, r.test_error
                data[
                    i
                ].name = (
                    f"{m} (η={r.lr:.2g}): train error {r.train_error:.2f}, test error {r.test_error[-1]:.3f}"
                )
            data[4].x, data[4].y = [1, self.steps + 1], [neg_test, neg_test]
            data[4].name = f"fraction of negatives in the test set: {neg_test:.3f}"
            for i, m in ((5, "GD"), (6, method)):
                w = flat(res[m].head, res[m].blocks, n)
                data[i].x, data[i].y = names, w[cols]
                data[i].name = f"weights of {m}"
                data[i].marker.color = COLORS[m]
            data[7].x, data[7].y = names, 0.25 * sign[cols]
            lemma = (
                "n₊ > n₋ as the lemma assumes" if n_pos > n_neg else "n₊ ≤ n₋: outside the lemma's assumption"
            )
            self.figure.layout.title.text = (
                f"Wilson et al. (2017): n = {n} ({n_pos} +, {n_neg} −), p = {p:.2f}, seed {seed} — {lemma}"
            )
