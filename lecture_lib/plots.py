"""Plotly figure builders: they return figures and never show them.

One palette for every notebook (Okabe-Ito, readable by colour-blind viewers and on projectors), large fonts,
and the helpers that turn library results (surfaces, trajectories) into traces.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# One colour per optimizer, the same in every notebook.
COLORS = {
    "SGD": "#0072B2",
    "momentum": "#E69F00",
    "Nesterov": "#009E73",
    "AdaGrad": "#CC79A7",
    "RMSProp": "#56B4E9",
    "Adam": "#D55E00",
    "AdamW": "#A33B00",
    "Newton": "#000000",
    "L-BFGS": "#7F7F7F",
}
FONT_SIZE = 16  # projector-readable: nothing below 14 px


def color(label: str) -> str:
    return COLORS.get(label, "#444444")


def rgba(hex_color: str, alpha: float) -> str:
    """``'#RRGGBB'`` with an opacity, for band fills."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def band_traces(hex_color: str, alpha: float = 0.2) -> tuple[go.Scatter, go.Scatter]:
    """An empty band: its lower edge, then its upper edge filled down to it (set both traces' x and y)."""
    edge = dict(mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip")
    return go.Scatter(**edge), go.Scatter(**edge, fill="tonexty", fillcolor=rgba(hex_color, alpha))


def base_layout(title: str, **kwargs) -> dict:
    """Layout shared by every figure: title, large fonts, white background, legend on top."""
    layout = dict(
        title=dict(text=title, x=0.01, xanchor="left"),
        font=dict(size=FONT_SIZE),
        template="plotly_white",
        margin=dict(l=70, r=20, t=80, b=130),
        legend=dict(orientation="h", yanchor="top", y=-0.16, x=0, font=dict(size=14)),
        height=520,
    )
    layout.update(kwargs)
    return layout


def contour_levels(surface, Z):
    """Values to contour: log10 of the gap to the minimum for steep valleys, the loss itself otherwise."""
    if surface.log_contours:
        return np.log10(np.maximum(Z - surface.min_value, 0.0) + 1e-2), "log₁₀(E − E*)"
    return Z, "E(w)"


def contour_trace(surface, n: int = 121) -> go.Contour:
    """Filled grey contours (dark = low), no colour bar: the coloured paths carry the information."""
    xs, ys, Z = surface.grid(n)
    z, label = contour_levels(surface, Z)
    return go.Contour(
        x=xs,
        y=ys,
        z=z,
        ncontours=30,
        colorscale="Greys",
        reversescale=True,
        opacity=0.8,
        contours=dict(coloring="heatmap", showlines=True),
        line=dict(width=0.5, color="rgba(0,0,0,0.35)"),
        showscale=False,
        hoverinfo="skip",
        name=f"contours of {label}",
        showlegend=False,
    )


def minima_trace(surface) -> go.Scatter:
    m = surface.minima
    return go.Scatter(
        x=m[:, 0],
        y=m[:, 1],
        mode="markers",
        marker=dict(symbol="star", size=16, color="gold", line=dict(width=1, color="black")),
        name="minimum",
        hovertemplate="minimum (%{x:.3f}, %{y:.3f})<extra></extra>",
    )


def run_label(label: str, lr: float, diverged_at: int) -> str:
    text = f"{label} (η={lr:.3g})"
    return f"{text} — diverged at step {diverged_at}" if diverged_at >= 0 else text


def visible_path(params, step: int, diverged_at: int):
    """The iterates drawn when the animation is at ``step``: up to the last finite point."""
    stop = step + 1 if diverged_at < 0 else min(step + 1, diverged_at)
    return np.asarray(params[:stop])
