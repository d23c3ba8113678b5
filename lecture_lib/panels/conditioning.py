r"""Poor conditioning: gradient descent zig-zags across a long narrow valley; momentum helps.

On :math:`E(w) = \tfrac12 w^\top H w` with eigenvalues :math:`\lambda_{\min} = 1` and
:math:`\lambda_{\max} = \kappa`, gradient descent scales the error along eigenvector :math:`q_i` by
:math:`1 - \eta\lambda_i` per step: it converges iff :math:`\eta < 2/\lambda_{\max}`, and the best fixed
:math:`\eta = 2/(\lambda_{\min} + \lambda_{\max})` still contracts only by
:math:`(\kappa - 1)/(\kappa + 1)` per step, so the steps to a tolerance grow :math:`\propto \kappa`.
Heavy-ball momentum with :math:`\eta = 4/(\sqrt{\lambda_{\max}} + \sqrt{\lambda_{\min}})^2` and
:math:`\beta = ((\sqrt\kappa - 1)/(\sqrt\kappa + 1))^2` contracts by
:math:`(\sqrt\kappa - 1)/(\sqrt\kappa + 1)`: steps :math:`\propto \sqrt\kappa` (Polyak 1964; Goh, "Why
momentum really works", Distill 2017).

Gradient descent is run as ``momentum(lr, beta=0)`` (the same update, ``b = g``), so switching momentum on
and off changes data, not the optimizer's type: one compiled run serves every control. The runs, the best
parameters and the steps-vs-κ sweep live in ``lecture_lib.experiments_recap``; this module draws them.
"""

from __future__ import annotations

import functools
import math

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import curvature, plots
from lecture_lib import experiments_recap as R
from lecture_lib import surfaces as S
from lecture_lib.experiments_recap import best_parameters, quadratic_run, stability_limit, steps_to_tolerance
from lecture_lib.experiments_sgd import loglog_slope
from lecture_lib.panels.base import Panel, log_slider, register

# the library's names, also under this module's old names
TOL, MAX_STEPS, START = R.CONDITIONING_TOL, R.CONDITIONING_STEPS, R.QUADRATIC_START
SHOWN = 400  # iterates drawn over the contours
KAPPAS = np.geomspace(1.0, 1000.0, 28)  # the steps-vs-κ sweep
ETA_RANGE = (1e-4, 3.0)  # the η slider and the η axis


@functools.cache
def _cached_sweep():
    counts = {m: steps_to_tolerance(KAPPAS, momentum=m) for m in (False, True)}
    fit = KAPPAS >= 10  # the asymptotic regime
    slopes = {m: float(loglog_slope(KAPPAS[fit], counts[m][fit])) for m in counts}
    return counts, slopes


SWEEP_NAMES = {False: "GD, best fixed η", True: "heavy ball, optimal η, β"}


def _label(momentum: bool) -> str:
    return "momentum" if momentum else "SGD"


def _eta_label(eta: float) -> str:
    return f"{eta:.2g}"


@register("conditioning")
class Conditioning(Panel):
    """Path over the contours with the eigen-axes (left), steps to tolerance vs κ (top right), the η axis
    with the stable range (bottom right)."""

    def build(self):
        style, wide = {"description_width": "170px"}, widgets.Layout(width="470px")
        c = self.controls
        c["kappa"] = log_slider(20.0, 1.0, 1e3, "condition number κ", style=style, layout=wide)
        c["angle"] = widgets.FloatSlider(
            value=30.0,
            min=0.0,
            max=180.0,
            step=5.0,
            description="eigenvector angle α (°)",
            style=style,
            layout=wide,
        )
        c["eta"] = log_slider(0.09, *ETA_RANGE, "learning rate η", step=0.02, style=style, layout=wide)
        c["momentum"] = widgets.Checkbox(value=False, description="momentum (heavy ball, optimal β)")
        self.limit_text = widgets.HTML()

        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"rowspan": 2}, {}], [None, {}]],
            column_widths=[0.5, 0.5],
            row_heights=[0.74, 0.26],
            horizontal_spacing=0.11,
            vertical_spacing=0.2,
            subplot_titles=("path", "steps until ‖w − w*‖ ≤ 10⁻⁴‖w₀ − w*‖", "learning rate η"),
        )
        grey = "#444444"
        # left: 0 contours, 1 eigen-axes, 2 minimum, 3 path, 4 head
        fig.add_trace(go.Contour(), 1, 1)
        fig.add_trace(
            go.Scatter(
                mode="lines+text",
                line=dict(color="#009E73", width=3),
                textfont=dict(size=15, color="#00704F"),
                name="eigenvectors of H (half-axes ∝ 1/√λ)",
            ),
            1,
            1,
        )
        fig.add_trace(plots.minima_trace(S.quadratic()), 1, 1)
        fig.add_trace(go.Scatter(mode="lines+markers", marker=dict(size=5), line=dict(width=2)), 1, 1)
        head = go.Scatter(mode="markers", marker=dict(size=12, line=dict(width=1.5, color="white")))
        fig.add_trace(head.update(showlegend=False), 1, 1)
        # top right: 5 GD sweep, 6 momentum sweep, 7 current run
        counts, slopes = _cached_sweep()
        for m in (False, True):
            fig.add_trace(
                go.Scatter(
                    x=KAPPAS,
                    y=np.where(counts[m] > 0, counts[m], np.nan),
                    mode="lines+markers",
                    line=dict(color=plots.color(_label(m)), width=2.5),
                    marker=dict(size=6),
                    name=f"{SWEEP_NAMES[m]}: steps ∝ κ^{slopes[m]:.2f}",
                ),
                1,
                2,
            )
        star = dict(size=17, symbol="star-diamond", line=dict(width=1.5))
        fig.add_trace(go.Scatter(mode="markers", marker=star, showlegend=False), 1, 2)
        # bottom right: 8 stable band, 9 unstable band, 10 best η, 11 current η
        for color, name in (("rgba(0,158,115,0.25)", "stable"), ("rgba(213,94,0,0.25)", "diverges")):
            fig.add_trace(
                go.Scatter(mode="lines", fill="toself", fillcolor=color, line=dict(width=0), name=name), 2, 2
            )
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color=grey, width=2, dash="dash"), name="best η"), 2, 2
        )
        now = go.Scatter(
            mode="markers+text", marker=dict(size=15, symbol="triangle-up"), textfont=dict(size=15)
        )
        fig.add_trace(now.update(textposition="top center", showlegend=False), 2, 2)
        fig.update_layout(**plots.base_layout("Poor conditioning: gradient descent vs momentum", height=700))
        fig.update_layout(margin=dict(t=90, b=150), legend=dict(y=-0.12))
        fig.update_xaxes(title_text="w₁", range=[-5, 5], constrain="domain", row=1, col=1)
        fig.update_yaxes(title_text="w₂", range=[-5, 5], scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="condition number κ = λ_max/λ_min", type="log", row=1, col=2)
        fig.update_yaxes(title_text="steps k", type="log", row=1, col=2)
        lo, hi = (math.log10(v) for v in ETA_RANGE)
        ticks = [1e-4, 1e-3, 1e-2, 0.1, 1.0]
        fig.update_xaxes(
            title_text="η (log scale)",
            type="log",
            range=[lo, hi],
            tickvals=ticks,
            ticktext=["10⁻⁴", "0.001", "0.01", "0.1", "1"],
            row=2,
            col=2,
        )
        fig.update_yaxes(range=[0, 1.6], showticklabels=False, showgrid=False, row=2, col=2)
        self.figure = go.FigureWidget(fig)

        left = widgets.VBox([c["kappa"], c["angle"]])
        right = widgets.VBox([c["eta"], c["momentum"], self.limit_text])
        self.widget = widgets.VBox([widgets.HBox([left, right]), self.figure])

    # -- drawing -------------------------------------------------------------------------------------------
    def update(self, changed: str | None = None):
        c = self.controls
        kappa, angle_deg, eta = c["kappa"].value, c["angle"].value, c["eta"].value
        momentum = bool(c["momentum"].value)
        angle = math.radians(angle_deg)
        beta = float(best_parameters(kappa, True)[1]) if momentum else 0.0
        eta_best = float(best_parameters(kappa, momentum)[0])
        limit = stability_limit(kappa, beta)
        f32 = np.float32
        params, steps, diverged_at = quadratic_run(f32(kappa), f32(angle), f32(eta), f32(beta), shown=SHOWN)
        params, steps, diverged_at = np.asarray(params), int(steps), int(diverged_at)
        color = plots.color(_label(momentum))
        name = plots.run_label("momentum" if momentum else "GD", eta, diverged_at)
        if momentum:
            name = name.replace(")", f", β={beta:.3g})", 1)
        if diverged_at < 0:
            name += f": {steps} steps to tolerance" if steps >= 0 else f": not within {MAX_STEPS:,} steps"
        self.run_name = name
        data = self.figure.data
        with self.figure.batch_update():
            if changed in (None, "kappa", "angle"):
                surface = S.quadratic(kappa, angle)
                data[0].update(plots.contour_trace(surface).to_plotly_json(), overwrite=True)
                lam, Q = curvature.spectrum(surface, np.zeros(2, np.float32))
                self._draw_axes(np.asarray(lam, np.float64), np.asarray(Q, np.float64))
            path = plots.visible_path(params, SHOWN, diverged_at)
            data[3].x, data[3].y, data[3].name = path[:, 0], path[:, 1], name
            data[3].line.color = data[3].marker.color = color
            data[4].x, data[4].y = path[-1:, 0], path[-1:, 1]
            data[4].marker.color = color
            data[4].marker.symbol = "x" if diverged_at >= 0 else "circle"
            ok = steps > 0 and diverged_at < 0
            data[7].x, data[7].y = ([kappa], [steps]) if ok else ([], [])
            data[7].marker.color = color
            data[7].name = f"this run: {steps} steps" if ok else "this run: does not converge"
            lo, top = ETA_RANGE
            edge = min(limit, top)
            data[8].x, data[8].y = [lo, edge, edge, lo, lo], [0, 0, 1, 1, 0]
            data[8].name = f"stable: η < {'2(1+β)' if momentum else '2'}/λ_max = {_eta_label(limit)}"
            data[9].x, data[9].y = [edge, top, top, edge, edge], [0, 0, 1, 1, 0]
            data[9].name = "diverges"
            data[10].x, data[10].y = [eta_best, eta_best], [0, 1]
            data[10].name = f"best η = {_eta_label(eta_best)}"
            data[11].x, data[11].y = [eta], [1.0]
            data[11].text = [f"η = {_eta_label(eta)}"]
            data[11].marker.color = color
            self.figure.layout.annotations[0].text = (
                f"κ = {kappa:.3g}, α = {angle_deg:.0f}°: {'heavy ball' if momentum else 'gradient descent'}, "
                f"first {SHOWN} steps"
            )
        rule = "2(1+β)" if momentum else "2"
        self.limit_text.value = (
            f"stable for η &lt; {rule}/λ<sub>max</sub> = <b>{_eta_label(limit)}</b>; "
            f"best η = <b>{_eta_label(eta_best)}</b>" + (f", β = {beta:.3f}" if momentum else "")
        )

    def _draw_axes(self, lam, Q):
        """Half-axes of the level set E = 8 (½λr² = 8, r = 4/√λ) along the eigenvectors, labelled with λ."""
        xs, ys, text = [], [], []
        for i in range(2):
            r = 4.0 / math.sqrt(lam[i])
            q = Q[:, i]
            xs += [-r * q[0], r * q[0], None]
            ys += [-r * q[1], r * q[1], None]
            text += ["", f"λ={lam[i]:.4g}", ""]
        t = np.linspace(0, 2 * np.pi, 121)  # the ellipse itself, after a None: a separate line
        ring = sum(
            (4.0 / math.sqrt(lam[i])) * np.outer(Q[:, i], f(t)) for i, f in enumerate((np.cos, np.sin))
        )
        d = self.figure.data[1]
        d.x, d.y, d.text = xs + list(ring[0]), ys + list(ring[1]), text + [""] * t.size
        d.textposition = "top right"
