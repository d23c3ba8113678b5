"""The figure of notebook 01's "why Newton is hard for deep learning": measured time and memory of forming
and solving with the Hessian against a Hessian-vector product, the textbook laws extrapolated to 10⁶ and 10⁸
weights. A measurement, not a panel (no controls); the measuring lives in ``lecture_lib.hessian_cost``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import plots
from lecture_lib.hessian_cost import (  # noqa: F401  (re-exported: the notebook reads them from here)
    BATCH,
    D_IN,
    EXPONENTS,
    EXTRAPOLATE_TO,
    HVP_BATCH,
    OPERATIONS,
    SIZES,
    TARGET_S,
    HessianCost,
    dense_hessian_bytes,
    extrapolate,
    human_bytes,
    human_time,
    measure,
    slopes,
    tanh_net,
)

TIME_TICKS = (1e-6, 1e-3, 1.0, 3600.0, 86400.0 * 365.25, 86400.0 * 365.25 * 1e3)
TIME_TEXT = ("1 µs", "1 ms", "1 s", "1 h", "1 year", "1000 years")
BYTE_TICKS = (1e3, 1e6, 1e9, 1e12, 1e15, 1e18)
BYTE_TEXT = ("1 kB", "1 MB", "1 GB", "1 TB", "1 PB", "1 EB")
SUPERSCRIPT = {6: "⁶", 8: "⁸"}
COLORS = ("#000000", "#D55E00", "#0072B2")  # form (Newton black), solve, HVP


def figure(cost: HessianCost) -> go.FigureWidget:
    """Time (left) and memory (right) against n on log-log axes: measured points, power laws to 10⁸."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.13,
        subplot_titles=("time of one operation", "memory: XLA buffers of one operation"),
    )
    fitted = slopes(cost)
    n_line = np.geomspace(cost.n[-1], max(EXTRAPOLATE_TO), 40)
    t_line = extrapolate(cost, n_line)
    at = np.asarray(EXTRAPOLATE_TO)
    t_at = extrapolate(cost, at)
    for i, op in enumerate(OPERATIONS):
        c, group = COLORS[i], dict(legendgroup=op)
        name = f"{op}: measured slope {fitted[i]:.2f}; dashed ∝ {('n', 'n²', 'n³')[int(EXPONENTS[i]) - 1]}"
        points = go.Scatter(x=cost.n, y=cost.seconds[i], mode="markers", marker=dict(color=c, size=10))
        fig.add_trace(points.update(name=name, **group), 1, 1)
        line = go.Scatter(x=n_line, y=t_line[i], mode="lines", line=dict(color=c, dash="dash", width=2))
        fig.add_trace(line.update(showlegend=False, hoverinfo="skip", **group), 1, 1)
        memory = go.Scatter(x=cost.n, y=cost.bytes[i], mode="markers", marker=dict(color=c, size=10))
        fig.add_trace(memory.update(marker_symbol="square", showlegend=False, **group), 1, 2)
        for j, n in enumerate(at):
            label = dict(text=human_time(t_at[i, j]), showarrow=False, xanchor="right", yanchor="bottom")
            fig.add_annotation(
                x=np.log10(n), y=np.log10(t_at[i, j]), font=dict(color=c, size=14), row=1, col=1, **label
            )
    n_all = np.geomspace(cost.n[0], max(EXTRAPOLATE_TO), 40)
    dense = go.Scatter(
        x=n_all, y=dense_hessian_bytes(n_all), mode="lines", line=dict(color="#000000", width=2)
    )
    fig.add_trace(dense.update(name="dense Hessian in float32: 4n² bytes"), 1, 2)
    vector = go.Scatter(x=n_all, y=4.0 * n_all, mode="lines", line=dict(color=COLORS[2], width=2))
    fig.add_trace(vector.update(name="one vector: 4n bytes"), 1, 2)
    for n in at:
        b = dense_hessian_bytes(n)
        text = f"{human_bytes(b)} at n = 10{SUPERSCRIPT[round(np.log10(n))]}"
        fig.add_annotation(
            x=np.log10(n), y=np.log10(b), text=text, ax=-30, ay=-35, font=dict(size=14), row=1, col=2
        )
    fig.add_hline(y=80e9, line=dict(color="#7F7F7F", dash="dot"), row=1, col=2)
    gpu = dict(text="80 GB: one large GPU", showarrow=False, yanchor="bottom", xanchor="left")
    fig.add_annotation(x=2.0, y=np.log10(80e9), font=dict(size=14, color="#555555"), row=1, col=2, **gpu)
    title = "Newton's price: forming and solving with H vs a Hessian-vector product"
    fig.update_layout(**plots.base_layout(title, height=620))
    fig.update_xaxes(type="log", title_text="number of weights n", exponentformat="power")
    fig.update_yaxes(type="log", tickvals=TIME_TICKS, ticktext=TIME_TEXT, title_text="seconds", row=1, col=1)
    fig.update_yaxes(type="log", tickvals=BYTE_TICKS, ticktext=BYTE_TEXT, title_text="bytes", row=1, col=2)
    return go.FigureWidget(fig)
