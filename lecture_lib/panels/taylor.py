r"""First-order vs second-order models: drag the expansion point, see the tangent and the Taylor parabola, the
gradient step that the linear model needs a step size for, and the Newton step to the quadratic model's
stationary point (recap slides "First-order optimization" and "Second-order optimization").

.. math::
    E_1(w) = E(w_0) + g^\top (w - w_0), \qquad
    E_2(w) = E_1(w) + \tfrac12 (w - w_0)^\top H (w - w_0), \qquad
    w_{GD} = w_0 - \eta g, \qquad w_{N} = w_0 - H^{-1} g

Left a 1-D function (a parabola, log cosh, a double well), right a 2-D surface with the contours of
:math:`E` and the contour lines of :math:`E_2`. Everything a slider move needs is one jitted call whose
inputs (the function's index, the point, η) are traced.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import curvature, plots
from lecture_lib import surfaces as S
from lecture_lib._pytree import pytree_dataclass
from lecture_lib.panels.base import Panel, register

# ---- 1-D functions: one pytree, the choice is data (lax.switch), as for the 2-D surfaces -------------------

CURVES = {
    # name: (E(w), plain-text formula, y range shown)
    "quadratic": (lambda w: (w - 1.0) ** 2 + 0.5, "(w − 1)² + ½", (-0.5, 6.0)),
    "log cosh": (lambda w: jnp.log(jnp.cosh(w)), "log cosh w", (-0.5, 3.0)),
    "double well": (lambda w: 0.25 * w**4 - w**2 + 0.3 * w + 1.5, "¼w⁴ − w² + 0.3w + 1.5", (-0.5, 4.0)),
}
CURVE_NAMES = tuple(CURVES)
_BRANCHES = tuple(fn for fn, _, _ in CURVES.values())
W_RANGE = (-3.0, 3.0)  # the 1-D plot's w axis


@pytree_dataclass
class Curve:
    """A 1-D loss ``E(w)`` of a scalar ``w``; ``kind`` (int32) indexes :data:`CURVES`."""

    kind: jax.Array

    def __call__(self, w):
        return jax.lax.switch(self.kind, _BRANCHES, w)


def curve(name: str) -> Curve:
    if name not in CURVES:
        raise ValueError(f"name must be one of {list(CURVES)}, got name={name!r}")
    return Curve(jnp.asarray(CURVE_NAMES.index(name), jnp.int32))


# 2-D surfaces offered, with the quadratic tilted so that its eigenvectors are not the axes.
SURFACE_CHOICES = {
    "quadratic": S.quadratic(condition=10.0, angle=math.pi / 6),
    "rosenbrock": S.SURFACES["rosenbrock"],
    "himmelblau": S.SURFACES["himmelblau"],
    "saddle": S.SURFACES["saddle"],
}
DEFAULT_POINT = {
    "quadratic": (-4.0, 3.0),
    "rosenbrock": (-1.0, 0.0),
    "himmelblau": (1.0, -1.0),
    "saddle": (-1.2, 0.3),
}
# gradient step sizes that show a sensible first step from the default point (about 1/λ_max there)
DEFAULT_ETA = {"quadratic": 0.1, "rosenbrock": 0.002, "himmelblau": 0.02, "saddle": 0.5}
GRID = 61  # model contours: 61 x 61 points


@jax.jit
def expand_1d(E: Curve, w0, eta, ws):
    """E on ``ws``; E, E′, E″ at ``w0``; the gradient point, the Newton point and E at both."""
    f0, g = jax.value_and_grad(E)(w0)
    h = jax.grad(jax.grad(E))(w0)
    w_gd, w_n = w0 - eta * g, w0 - g / h
    return jax.vmap(E)(ws), f0, g, h, w_gd, w_n, E(w_gd), E(w_n)


@jax.jit
def expand_2d(E: S.Surface, w0, eta, xs, ys):
    """E, g, H at ``w0``, the quadratic model on the grid, the gradient point and the Newton point."""
    model = curvature.taylor2(E, w0)
    f0, g = jax.value_and_grad(E)(w0)
    H = curvature.hessian(E, w0)
    X, Y = jnp.meshgrid(xs, ys)
    grid = jax.vmap(model)(jnp.stack([X.ravel(), Y.ravel()], axis=1)).reshape(X.shape)
    w_newton = w0 + curvature.newton_step(E, w0)
    lam = jnp.linalg.eigvalsh(0.5 * (H + H.T))
    return grid, f0, g, lam, w0 - eta * g, w_newton, E(w0 - eta * g), E(w_newton)


def _kind(lam) -> str:
    if lam[0] > 0:
        return "H ≻ 0: Newton goes to the model's minimum"
    if lam[-1] < 0:
        return "H ≺ 0: Newton goes to the model's maximum!"
    return "H indefinite: Newton goes to the model's saddle!"


def _step_trace(color, name, showlegend=True):
    return go.Scatter(
        mode="lines+markers",
        line=dict(color=color, width=3),
        marker=dict(symbol=["circle", "arrow"], size=[1, 17], angleref="previous", color=color),
        name=name,
        showlegend=showlegend,
    )


def _landing_trace(showlegend=True):
    """Dotted drops from each model's prediction to the true E at the step's end (1-D only)."""
    return go.Scatter(
        mode="lines+markers",
        line=dict(color="#D55E00", width=2, dash="dot"),
        marker=dict(color="#D55E00", size=[0, 11, 0, 0, 11], symbol="diamond"),
        name="true E after the step",
        showlegend=showlegend,
    )


def _point_trace(showlegend=True):
    return go.Scatter(
        mode="markers",
        marker=dict(size=13, color="white", line=dict(width=2.5, color="black")),
        name="expansion point w₀",
        showlegend=showlegend,
    )


def _finite(x, bound=1e3):
    """Display coordinates: a singular H puts the Newton point at infinity; draw it far away instead."""
    return np.clip(np.nan_to_num(np.asarray(x, np.float64), nan=bound), -bound, bound)


@register("taylor_models")
class TaylorModels(Panel):
    """1-D (left) and 2-D (right): the linear and quadratic models at a draggable point, and their steps."""

    def build(self):
        wide = widgets.Layout(width="430px")
        style = {"description_width": "160px"}
        c = self.controls
        c["curve"] = widgets.Dropdown(
            options=list(CURVES), value="log cosh", description="1-D function", style=style
        )
        c["w"] = widgets.FloatSlider(
            value=0.8, min=-2.5, max=2.5, step=0.05, description="1-D point w₀", style=style, layout=wide
        )
        c["eta"] = widgets.FloatLogSlider(
            value=0.5,
            base=10,
            min=-2,
            max=0.7,
            step=0.05,
            description="1-D gradient step η",
            readout_format=".3g",
            style=style,
            layout=wide,
        )
        c["surface"] = widgets.Dropdown(
            options=list(SURFACE_CHOICES), value="rosenbrock", description="2-D surface", style=style
        )
        c["w1"] = widgets.FloatSlider(description="2-D point w₀[1]", style=style, layout=wide)
        c["w2"] = widgets.FloatSlider(description="2-D point w₀[2]", style=style, layout=wide)
        c["eta2"] = widgets.FloatLogSlider(
            base=10,
            min=-4,
            max=0,
            step=0.05,
            description="2-D gradient step η",
            readout_format=".3g",
            style=style,
            layout=wide,
        )
        self._set_surface_defaults("rosenbrock")

        fig = make_subplots(
            rows=1, cols=2, horizontal_spacing=0.09, subplot_titles=("1-D", "2-D"), column_widths=[0.45, 0.55]
        )
        gd, newton = plots.color("SGD"), plots.color("Newton")
        # 1-D: 0 E, 1 linear model, 2 quadratic model, 3 w0, 4 gradient step, 5 Newton step, 6 landings
        fig.add_trace(go.Scatter(mode="lines", line=dict(color="#444444", width=3), name="E(w)"), 1, 1)
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=gd, width=2), name="linear model E₁"), 1, 1)
        quad = go.Scatter(
            mode="lines", line=dict(color=newton, width=2, dash="dash"), name="quadratic model E₂"
        )
        fig.add_trace(quad, 1, 1)
        fig.add_trace(_point_trace(), 1, 1)
        fig.add_trace(_step_trace(gd, "gradient step −ηg (on E₁)"), 1, 1)
        fig.add_trace(_step_trace(newton, "Newton step −H⁻¹g (on E₂)"), 1, 1)
        fig.add_trace(_landing_trace(), 1, 1)
        # 2-D: 7 contours of E, 8 contour lines of E₂, 9 minima, 10 w0, 11 gradient step, 12 Newton step
        fig.add_trace(go.Contour(), 1, 2)
        model_lines = go.Contour(
            autocontour=False,
            contours=dict(coloring="lines", showlabels=False),
            line=dict(width=1.5, dash="dot"),
            colorscale=[[0, newton], [1, newton]],
            showscale=False,
            hoverinfo="skip",
            name="contour lines of E₂ (dotted)",
            showlegend=True,
        )
        fig.add_trace(model_lines, 1, 2)
        fig.add_trace(go.Scatter(mode="markers"), 1, 2)
        fig.add_trace(_point_trace(False), 1, 2)
        fig.add_trace(_step_trace(gd, "", showlegend=False), 1, 2)
        fig.add_trace(_step_trace(newton, "", showlegend=False), 1, 2)
        fig.update_layout(**plots.base_layout("Linear vs quadratic model at w₀", height=640))
        fig.update_layout(margin=dict(t=120), legend=dict(y=-0.13))
        fig.update_annotations(font_size=15)
        fig.update_xaxes(title_text="w (parameter)", range=list(W_RANGE), row=1, col=1)
        fig.update_yaxes(title_text="E(w) (loss)", row=1, col=1)
        fig.update_xaxes(title_text="w₁ (parameter)", row=1, col=2)
        fig.update_yaxes(title_text="w₂ (parameter)", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self._ws = np.linspace(*W_RANGE, 241, dtype=np.float32)
        self._drawn_surface = None

        left = widgets.VBox([c["curve"], c["w"], c["eta"]])
        right = widgets.VBox([c["surface"], c["w1"], c["w2"], c["eta2"]])
        self.widget = widgets.VBox([widgets.HBox([left, right]), self.figure])

    def _set_surface_defaults(self, name):
        """Point sliders over the surface's bounds, at its default point; a step size that suits it."""
        self._ranged_for = name
        (x0, x1), (y0, y1) = SURFACE_CHOICES[name].bounds
        px, py = DEFAULT_POINT[name]
        for key, lo, hi, v in (("w1", x0, x1, px), ("w2", y0, y1, py)):
            s = self.controls[key]
            s.min, s.max = min(s.min, lo), max(s.max, hi)  # widen first: no bound clamps the value on the way
            s.value, s.min, s.max, s.step = v, lo, hi, (hi - lo) / 100
        self.controls["eta2"].value = DEFAULT_ETA[name]

    # -- drawing -------------------------------------------------------------------------------------------
    def update(self, changed: str | None = None):
        c = self.controls
        if c["surface"].value != self._ranged_for:  # also when set under hold()
            with self.hold():
                self._set_surface_defaults(c["surface"].value)
            return
        with self.figure.batch_update():
            self._draw_1d(np.float32(c["eta"].value))
            self._draw_2d(np.float32(c["eta2"].value))

    def _draw_1d(self, eta):
        name = self.controls["curve"].value
        w0 = np.float32(self.controls["w"].value)
        E = curve(name)
        out = (np.asarray(a, np.float64) for a in expand_1d(E, w0, eta, self._ws))
        Ew, f0, g, h, w_gd, w_n, true_gd, true_n = out
        w_n, true_gd, true_n = (float(_finite(v, b)) for v, b in ((w_n, 1e3), (true_gd, 1e6), (true_n, 1e6)))
        ws, d = self._ws, self._ws - w0
        pred_gd, pred_n = f0 + g * (w_gd - w0), f0 + 0.5 * g * (w_n - w0)  # E₁ and E₂ at the step's end
        data = self.figure.data
        data[0].x, data[0].y, data[0].name = ws, Ew, f"E(w) = {CURVES[name][1]}"
        data[1].x, data[1].y = ws, f0 + g * d
        data[2].x, data[2].y = ws, f0 + g * d + 0.5 * h * d * d
        data[3].x, data[3].y = [w0], [f0]
        data[4].x, data[4].y = [w0, w_gd], [f0, pred_gd]
        data[5].x, data[5].y = [w0, w_n], [f0, pred_n]
        data[6].x = [w_gd, w_gd, None, w_n, w_n]
        data[6].y = [pred_gd, true_gd, None, pred_n, true_n]
        lo, hi = CURVES[name][2]
        self.figure.layout.yaxis.range = [lo, hi]
        kind = "minimum" if h > 0 else "maximum!"
        self.figure.layout.annotations[0].text = (
            f"1-D {name}: E′(w₀) = {g:.2f}, E″(w₀) = {h:.2f}: Newton goes to E₂'s {kind}"
            f"<br>E(w₀) = {f0:.3g} → gradient step (η={float(eta):.3g}) {true_gd:.3g}, Newton {true_n:.3g}"
        )

    def _draw_2d(self, eta):
        name = self.controls["surface"].value
        E = SURFACE_CHOICES[name]
        data = self.figure.data
        if self._drawn_surface != name:
            data[7].update(plots.contour_trace(E).to_plotly_json(), overwrite=True)
            data[9].update(plots.minima_trace(E).to_plotly_json(), overwrite=True)
            (x0, x1), (y0, y1) = E.bounds
            self._xs = np.linspace(x0, x1, GRID, dtype=np.float32)
            self._ys = np.linspace(y0, y1, GRID, dtype=np.float32)
            self.figure.layout.xaxis2.range = [x0, x1]
            self.figure.layout.yaxis2.range = [y0, y1]
            self._drawn_surface = name
        w0 = np.asarray([self.controls["w1"].value, self.controls["w2"].value], np.float32)
        out = expand_2d(E, w0, eta, self._xs, self._ys)
        grid, f0, g, lam, w_gd, w_n, E_gd, E_n = (np.asarray(a, np.float64) for a in out)
        w_n, E_gd, E_n = _finite(w_n), _finite(E_gd, 1e30), _finite(E_n, 1e30)
        # contour lines of the model at quantiles of its values in view: dense where the model is low
        levels = np.quantile(grid, np.linspace(0.0, 0.6, 12) ** 2)
        data[8].x, data[8].y, data[8].z = self._xs, self._ys, grid
        size = max((levels[-1] - levels[1]) / 10, 1e-9)
        data[8].contours.update(start=float(levels[1]), end=float(levels[-1]), size=float(size))
        data[10].x, data[10].y = [w0[0]], [w0[1]]
        data[11].x, data[11].y = [w0[0], w_gd[0]], [w0[1], w_gd[1]]
        data[12].x, data[12].y = [w0[0], w_n[0]], [w0[1], w_n[1]]
        self.figure.layout.annotations[1].text = (
            f"2-D {name}: λ(H) = {lam[0]:.3g}, {lam[1]:.3g}: {_kind(lam)}"
            f"<br>E(w₀) = {f0:.3g} → gradient step (η={float(eta):.3g}) {E_gd:.3g}, Newton {E_n:.3g}"
        )
