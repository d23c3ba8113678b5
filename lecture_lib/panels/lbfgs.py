r"""L-BFGS in full batch vs on minibatches (recap slide "L-BFGS"): the panel of notebook 01.

Full batch (left: L-BFGS with line search beside gradient descent at η = 1/L), minibatch L-BFGS with naive
and same-batch curvature pairs (middle) and the share of pairs with :math:`s^\top y \le 0` (right). The
problem, the L-BFGS with a traced history size and the runs live in ``lecture_lib.experiments_lbfgs``; this
module draws them, and re-exports their names under its old ones.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import plots
from lecture_lib.experiments_lbfgs import (  # noqa: F401  (re-exported: the old names of this module)
    BATCH,
    CONDITION,
    EPOCHS,
    GD_STEPS,
    LAM,
    LBFGS_STEPS,
    M_MAX,
    D,
    N,
    Problem,
    Runs,
    State,
    init,
    iterations_to,
    loss_fn,
    optimum,
    problem,
    runs,
    update,
)
from lecture_lib.panels.base import Panel, register

FLOOR = 1e-8  # float32 F against a float64 F*: gaps below this are rounding
VARIANTS = ("full batch", "naive minibatch", "same-batch minibatch")


def _gap(g):
    """Gaps for a log axis: rounding-level ones at the floor, non-finite ones (a blown-up run) as gaps."""
    g = np.asarray(g, np.float64)
    return np.where(np.isfinite(g), np.maximum(g, FLOOR), np.nan)


GREY, DARK = plots.color("L-BFGS"), "#333333"


@register("lbfgs_minibatch")
class LBFGSMinibatch(Panel):
    """Full batch (left), minibatch (middle), share of curvature pairs with sᵀy ≤ 0 (right)."""

    def build(self):
        style, wide = {"description_width": "190px"}, widgets.Layout(width="470px")
        c = self.controls
        c["memory"] = widgets.IntSlider(
            value=10, min=1, max=M_MAX, description="history size m (pairs)", style=style, layout=wide
        )
        c["eta"] = widgets.FloatLogSlider(
            value=0.05,
            base=10,
            min=-3,
            max=0,
            step=0.05,
            description="minibatch step η",
            readout_format=".3g",
            style=style,
            layout=wide,
        )
        c["seed"] = widgets.IntSlider(
            value=0, min=0, max=9, description="minibatch order seed", style=style, layout=wide
        )
        fig = make_subplots(
            rows=1,
            cols=3,
            column_widths=[0.37, 0.37, 0.26],
            horizontal_spacing=0.08,
            subplot_titles=("full batch", f"minibatches of {BATCH}: fixed step η", "pairs with sᵀy ≤ 0"),
        )
        line = dict(mode="lines", line=dict(width=3))
        fig.add_trace(go.Scatter(**line).update(line_color=GREY), 1, 1)  # 0 full-batch L-BFGS
        fig.add_trace(go.Scatter(**line).update(line_color=plots.color("SGD")), 1, 1)  # 1 GD
        fig.add_trace(go.Scatter(**line).update(line=dict(color=GREY, dash="dot")), 1, 2)  # 2 naive
        fig.add_trace(go.Scatter(**line).update(line=dict(color=DARK, dash="dash")), 1, 2)  # 3 same batch
        bars = go.Bar(
            x=["full batch", "naive", "same batch"], marker_color=[GREY, GREY, DARK], showlegend=False
        )
        fig.add_trace(bars.update(textposition="outside", textfont_size=15, cliponaxis=False), 1, 3)  # 4
        title = f"L-BFGS on logistic regression (n={N}, d={D}, λ={LAM:g}): full batch vs minibatches"
        fig.update_layout(**plots.base_layout(title, height=600))
        fig.update_layout(legend=dict(y=-0.15))
        fig.update_xaxes(title_text="iteration k", row=1, col=1)
        fig.update_xaxes(title_text="epoch (passes over the data)", row=1, col=2)
        for col in (1, 2):
            fig.update_yaxes(type="log", exponentformat="power", range=[-8.5, 1.5], row=1, col=col)
        fig.update_yaxes(title_text="F(w) − F*", row=1, col=1)
        fig.update_yaxes(title_text="share of pairs (%)", range=[0, 100], row=1, col=3)
        self.figure = go.FigureWidget(fig)
        self.L = float(problem(0)[0].L)
        self.widget = widgets.VBox([widgets.HBox([c["memory"], c["eta"]]), c["seed"], self.figure])

    def update(self, changed: str | None = None):
        c = self.controls
        m, eta, seed = int(c["memory"].value), float(c["eta"].value), int(c["seed"].value)
        r = runs(m, eta, seed)
        self.result = r
        n_updates = r.naive.size - 1
        epochs = np.arange(n_updates + 1) * (EPOCHS / n_updates)
        hit = iterations_to(r.full_lbfgs, 1e-4)
        data = self.figure.data
        with self.figure.batch_update():
            data[0].x, data[0].y = np.arange(r.full_lbfgs.size), _gap(r.full_lbfgs)
            reached = f"F − F* ≤ 10⁻⁴ at k = {hit}" if hit >= 0 else f"F − F* > 10⁻⁴ at k = {LBFGS_STEPS}"
            data[0].name = f"L-BFGS, full batch (m={m}, line search): {reached}"
            data[1].x, data[1].y = np.arange(r.full_gd.size), _gap(r.full_gd)
            gd_end = f"F − F* = {r.full_gd[-1]:.1e} at k = {GD_STEPS}"
            data[1].name = f"GD, full batch (η = 1/L = {1 / self.L:.3g}): {gd_end}"
            for i, (gap, label) in enumerate(((r.naive, "naive"), (r.same_batch, "same-batch"))):
                final = gap[-1]
                end = f"{final:.1e}" if np.isfinite(final) else "blew up"
                data[2 + i].x, data[2 + i].y = epochs, _gap(gap)
                data[2 + i].name = f"{label} minibatch L-BFGS (m={m}, η={eta:.3g}): final F − F* {end}"
            share = 100 * r.bad_share
            data[4].y, data[4].text = share, [f"{v:.0f}%" for v in share]
