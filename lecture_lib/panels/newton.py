r"""Newton on a non-convex surface heads for the nearest stationary point: saddles and maxima included.

The Newton step jumps to the stationary point of the quadratic model. Where :math:`H` is indefinite that is
a saddle of the model, where :math:`H \prec 0` its maximum, and :math:`-H^{-1}g` need not point downhill:
:math:`g^\top H^{-1} g < 0` is possible. Damping (Levenberg) fixes it:

.. math:: w \leftarrow w - (H + \delta I)^{-1} \nabla E(w),

a descent direction whenever :math:`H + \delta I \succ 0`, i.e. :math:`\delta > -\lambda_{\min}(H)`; a large
:math:`\delta` turns the step into gradient descent with :math:`\eta = 1/\delta`. Both paths (undamped and
damped) come from one compiled ``run_many``; the surface, start and δ are traced.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import curvature, plots
from lecture_lib import surfaces as S
from lecture_lib.panels.base import Panel, register
from lecture_lib.second_order import newton
from lecture_lib.trajectories import run_many

STEPS = 60
# Stationary points that are not minima (the minima come with the surface).
SADDLES = {
    "saddle": [(0.0, 0.0)],
    "himmelblau": [
        (0.086677, 2.884254),
        (3.385154, 0.073852),
        (-3.073026, -0.081353),
        (-0.127961, -1.953715),
    ],
}
MAXIMA = {"saddle": [], "himmelblau": [(-0.270845, -0.923039)]}
START = {"saddle": (-1.2, 0.3), "himmelblau": (0.0, 0.0)}
DAMPING_MAX = {"saddle": 5.0, "himmelblau": 100.0}  # past −λ_min anywhere near the start
DAMPING = {"saddle": 1.0, "himmelblau": 50.0}  # the default: enough for a descent direction from the start
CHOICES = tuple(START)


@functools.partial(jax.jit, static_argnames=("steps",))
def paths(surface, w0, delta, *, steps=STEPS):
    """Newton with δ = 0 and with δ from ``w0``; λ_min(H) along the damped path; λ(H) and ‖g‖ at the ends."""
    plain, damped = run_many((newton(1.0, 0.0), newton(1.0, delta)), surface, w0, steps)
    lam_min = jax.vmap(lambda w: curvature.spectrum(surface, w)[0][0])(damped.params)
    ends = jnp.stack([curvature.spectrum(surface, t.params[-1])[0] for t in (plain, damped)])
    grads = jnp.stack([jnp.linalg.norm(curvature.gradient(surface, t.params[-1])) for t in (plain, damped)])
    return plain, damped, lam_min, ends, grads


def classify(lam, grad_norm, tol=1e-3) -> str:
    """What a point is, from its gradient norm and Hessian eigenvalues (ascending)."""
    if not np.isfinite(grad_norm) or grad_norm > tol:
        return "still moving"
    if lam[0] > 0:
        return "a minimum"
    if lam[-1] < 0:
        return "a MAXIMUM"
    return "a SADDLE point"


def _points(pts):
    a = np.asarray(pts, np.float64).reshape(-1, 2)
    return a[:, 0], a[:, 1]


@register("newton_nonconvex")
class NewtonNonconvex(Panel):
    """Undamped vs damped Newton over the contours (left) and the loss along both paths (right)."""

    static_control = "delta"  # static pages (make site): the damping, the lesson of the panel

    def build(self):
        style, wide = {"description_width": "140px"}, widgets.Layout(width="440px")
        c = self.controls
        c["surface"] = widgets.Dropdown(
            options=list(CHOICES), value="saddle", description="surface", style=style
        )
        c["w1"] = widgets.FloatSlider(description="start w₀[1]", style=style, layout=wide)
        c["w2"] = widgets.FloatSlider(description="start w₀[2]", style=style, layout=wide)
        c["delta"] = widgets.FloatSlider(
            description="damping δ", style=style, layout=wide, readout_format=".2f"
        )
        self.info = widgets.HTML()
        self._set_surface_defaults("saddle")

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            horizontal_spacing=0.1,
            subplot_titles=("Newton paths", "loss along the paths"),
        )
        black = plots.color("Newton")
        # left: 0 contours, 1 plain path, 2 damped path, 3 "not ≻ 0", 4 minima, 5 saddles, 6 maxima, 7 start
        fig.add_trace(go.Contour(), 1, 1)
        plain = dict(mode="lines+markers", line=dict(color="#7F7F7F", width=2.5, dash="dash"))
        fig.add_trace(go.Scatter(**plain, marker=dict(size=6)), 1, 1)
        fig.add_trace(
            go.Scatter(mode="lines+markers", line=dict(color=black, width=3), marker=dict(size=7)), 1, 1
        )
        bad = dict(symbol="circle-open", size=15, color="#D55E00", line=dict(width=2.5))
        fig.add_trace(go.Scatter(mode="markers", marker=bad, name="H + δI not ≻ 0: maybe not downhill"), 1, 1)
        fig.add_trace(go.Scatter(mode="markers"), 1, 1)
        crit = dict(mode="markers", marker=dict(size=15, line=dict(width=1.5, color="white")))
        saddles = go.Scatter(**crit, name="saddle points").update(marker=dict(symbol="x", color="#CC79A7"))
        fig.add_trace(saddles, 1, 1)
        maxima = go.Scatter(**crit, name="maximum").update(marker=dict(symbol="triangle-up", color="#D55E00"))
        fig.add_trace(maxima, 1, 1)
        start = dict(size=13, color="white", line=dict(width=2.5, color="black"))
        fig.add_trace(go.Scatter(mode="markers", marker=start, name="start w₀"), 1, 1)
        # right: 8 plain loss, 9 damped loss, 10 E at the minima
        fig.add_trace(go.Scatter(showlegend=False, marker=dict(size=6), **plain), 1, 2)
        line = dict(mode="lines+markers", line=dict(color=black, width=3), marker=dict(size=6))
        fig.add_trace(go.Scatter(showlegend=False, **line), 1, 2)
        floor = go.Scatter(
            mode="lines", line=dict(color="#B8860B", width=2, dash="dot"), name="E at the minima"
        )
        fig.add_trace(floor, 1, 2)
        title = "Newton on a non-convex surface: saddles, maxima and damping"
        fig.update_layout(**plots.base_layout(title, height=640))
        fig.update_layout(margin=dict(t=110), legend=dict(y=-0.13))
        fig.update_xaxes(title_text="w₁", constrain="domain", row=1, col=1)
        fig.update_yaxes(title_text="w₂", scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="iteration k", row=1, col=2)
        fig.update_yaxes(title_text="E(w_k)", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self._drawn_surface = None

        left = widgets.VBox([c["surface"], c["delta"], self.info])
        self.widget = widgets.VBox([widgets.HBox([left, widgets.VBox([c["w1"], c["w2"]])]), self.figure])

    def _set_surface_defaults(self, name):
        self._ranged_for = name
        (x0, x1), (y0, y1) = S.SURFACES[name].bounds
        px, py = START[name]
        c = self.controls
        for key, lo, hi, v in (
            ("w1", x0, x1, px),
            ("w2", y0, y1, py),
            ("delta", 0.0, DAMPING_MAX[name], DAMPING[name]),
        ):
            s = c[key]
            s.min, s.max = min(s.min, lo), max(s.max, hi)  # widen first: no bound clamps the value on the way
            s.value, s.min, s.max, s.step = v, lo, hi, (hi - lo) / 200

    def update(self, changed: str | None = None):
        c = self.controls
        name = c["surface"].value
        if c["surface"].value != self._ranged_for:  # also when set under hold()
            with self.hold():
                self._set_surface_defaults(name)
            return
        surface = S.SURFACES[name]
        w0 = np.asarray([c["w1"].value, c["w2"].value], np.float32)
        delta = float(c["delta"].value)
        plain, damped, lam_min, ends, grads = paths(surface, w0, np.float32(delta))
        lam_min, ends, grads = np.asarray(lam_min), np.asarray(ends), np.asarray(grads)
        self.outcomes = [classify(ends[i], grads[i]) for i in range(2)]
        data = self.figure.data
        k = np.arange(STEPS + 1)
        with self.figure.batch_update():
            if self._drawn_surface != name:
                self._draw_surface(surface)
            labels = ("Newton, δ = 0", f"damped Newton, δ = {delta:.3g}")
            for i, (traj, label) in enumerate(zip((plain, damped), labels)):
                p, end = np.asarray(traj.params), np.asarray(traj.params[-1])
                path = plots.visible_path(p, STEPS, int(traj.diverged_at))
                data[1 + i].x, data[1 + i].y = path[:, 0], path[:, 1]
                data[1 + i].name = f"{label} → {self.outcomes[i]} at ({end[0]:.3f}, {end[1]:.3f})"
                data[8 + i].x, data[8 + i].y = k, np.asarray(traj.losses)
            bad = lam_min + delta <= 0
            dp = np.asarray(damped.params)
            data[3].x, data[3].y = dp[bad, 0], dp[bad, 1]
            data[7].x, data[7].y = [w0[0]], [w0[1]]
            need = max(-float(lam_min[0]), 0.0)
            title = f"{name}: at w₀ λ_min(H) = {lam_min[0]:.3g}, so δ > {need:.3g} gives descent"
            self.figure.layout.annotations[0].text = title
        self.info.value = (
            f"at w₀: λ<sub>min</sub>(H) = {lam_min[0]:.3g}; descent needs δ &gt; <b>{need:.3g}</b>"
            f" (now δ = {delta:.3g}: {'descent' if delta > need else '<b>not guaranteed</b>'})"
        )

    def _draw_surface(self, surface):
        name = surface.name
        data = self.figure.data
        data[0].update(plots.contour_trace(surface).to_plotly_json(), overwrite=True)
        data[4].update(plots.minima_trace(surface).to_plotly_json(), overwrite=True)
        data[5].x, data[5].y = _points(SADDLES[name])
        data[6].x, data[6].y = _points(MAXIMA[name])
        data[6].showlegend = bool(MAXIMA[name])
        data[10].x, data[10].y = [0, STEPS], [surface.min_value] * 2
        (x0, x1), (y0, y1) = surface.bounds
        self.figure.layout.xaxis.range = [x0, x1]
        self.figure.layout.yaxis.range = [y0, y1]
        self._drawn_surface = name
