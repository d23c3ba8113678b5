r"""Inside the adaptive step: for one optimizer on a badly scaled quadratic, the path with the gradient, the
first moment :math:`\hat m` and the step drawn as arrows at iterate :math:`w_k`, and, per coordinate, the
effective learning rate :math:`\eta/(\sqrt{\hat v_i}+\epsilon)` and the size of the step.

:func:`inside` records the optimizer's state at every update (``ll.run`` returns only the final one): one
jitted ``lax.scan`` per optimizer, all variants in one compiled call, so switching the optimizer or the bias
correction only selects another, already computed, result.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import _checks, plots
from lecture_lib import optimizers as O
from lecture_lib.panels.base import Panel, register
from lecture_lib.panels.race import lr_slider
from lecture_lib.surfaces import quadratic

LABELS = ("SGD", "momentum", "AdaGrad", "RMSProp", "Adam")
FACTORIES = {"SGD": O.sgd, "momentum": O.momentum, "AdaGrad": O.adagrad, "RMSProp": O.rmsprop, "Adam": O.adam}
# Rates that make a readable picture on ½(w₁² + 100·w₂²) from (−4, 3): SGD and momentum just inside their
# stability limits (2/λ_max = 0.02 and 2(1+β)/λ_max = 0.038), the adaptive ones at steps of about 0.1-1.
DEFAULT_LRS = dict(SGD=0.018, momentum=0.01, AdaGrad=1.0, RMSProp=0.1, Adam=0.2)
STEPS = 120
ARROW = 0.13  # arrow length as a fraction of the plot's width


class Inside(NamedTuple):
    """What one optimizer did at every update k = 0 … steps−1 (NumPy arrays)."""

    w: np.ndarray  # (steps+1, 2) iterates w_0 … w_steps
    loss: np.ndarray  # (steps+1,)
    g: np.ndarray  # (steps, 2) gradient at w_k
    m_hat: np.ndarray  # (steps, 2) first moment after update k+1 (the gradient itself without momentum)
    v_hat: np.ndarray  # (steps, 2) second moment after update k+1 (nan where the method has none)
    eff_lr: np.ndarray  # (steps, 2) per-coordinate learning rate: eta/(sqrt(v_hat)+eps), eta without v
    step: np.ndarray  # (steps, 2) w_{k+1} - w_k


def _moments(opt, state, g):
    """(m̂, v̂, effective lr) of ``opt`` after an update, from its state, in the slide's symbols."""
    eta = opt.lr
    if isinstance(opt, O.Adam):
        t = state.t.astype(jnp.float32)
        if opt.bias_correction:
            m_hat, v_hat = state.m / (1 - opt.b1**t), state.v / (1 - opt.b2**t)
        else:
            m_hat, v_hat = state.m, state.v
        return m_hat, v_hat, eta / (jnp.sqrt(v_hat) + opt.eps)
    if isinstance(opt, (O.Adagrad, O.RMSProp)):
        v = state.G if isinstance(opt, O.Adagrad) else state.v
        return g, v, eta / (jnp.sqrt(v) + opt.eps)
    nan = jnp.full_like(g, jnp.nan)
    if isinstance(opt, O.Momentum):
        return state.b, nan, jnp.full_like(g, eta)  # PyTorch's buffer b = Σ βʲ g: the momentum direction
    return g, nan, jnp.full_like(g, eta)


@functools.partial(jax.jit, static_argnames="steps")
def inside(opts, surface, w0, *, steps: int):
    """For each optimizer of ``opts``: iterates, losses, and per update g, m̂, v̂, effective lr and step."""
    value_and_grad = jax.value_and_grad(surface)
    out = []
    for opt in opts:

        def update(carry, _, opt=opt):
            w, state = carry
            loss, g = value_and_grad(w)
            w_new, state = opt.update(g, state, w)
            m_hat, v_hat, eff = _moments(opt, state, g)
            return (w_new, state), (w, loss, g, m_hat, v_hat, eff)

        (w_last, _), (w, loss, g, m_hat, v_hat, eff) = jax.lax.scan(
            update, (w0, opt.init(w0)), None, length=steps
        )
        w = jnp.concatenate([w, w_last[None]])
        loss = jnp.concatenate([loss, surface(w_last)[None]])
        out.append((w, loss, g, m_hat, v_hat, eff, w[1:] - w[:-1]))
    return out


def _arrow(x0, y0, dx, dy, length):
    """End point of an arrow from (x0, y0) along (dx, dy), drawn at ``length`` (direction only)."""
    norm = math.hypot(dx, dy)
    if not (math.isfinite(norm) and norm > 0):
        return [x0, x0], [y0, y0]
    return [x0, x0 + length * dx / norm], [y0, y0 + length * dy / norm]


@register("adaptive_step")
class AdaptiveStep(Panel):
    """Path and arrows on the contours (left); per-coordinate effective learning rate and step (right)."""

    static_control = "step"  # static pages (make site): step through Adam's iterations

    def __init__(self, optimizer: str = "Adam", condition: float = 100.0, steps: int = STEPS):
        if optimizer not in LABELS:
            raise ValueError(f"optimizer must be one of {LABELS}, got optimizer={optimizer!r}")
        self._initial = optimizer
        self._condition = float(_checks.real("condition", condition, lo=1.0, rule="be at least 1"))
        self.steps = steps
        self._results = None
        self._drawn_surface = None
        super().__init__()

    # -- construction --------------------------------------------------------------------------------
    def build(self):
        c = self.controls
        c["optimizer"] = widgets.Dropdown(options=list(LABELS), value=self._initial, description="optimizer")
        c["lr"] = lr_slider(self._initial, DEFAULT_LRS[self._initial])
        c["bias_correction"] = widgets.Checkbox(value=True, description="Adam's bias correction (m̂, v̂)")
        c["condition"] = widgets.FloatLogSlider(
            value=self._condition, base=10, min=0, max=3, step=0.05, description="κ", readout_format=".3g"
        )
        c["angle"] = widgets.FloatSlider(
            value=0.0, min=0.0, max=90.0, step=5.0, description="valley angle°", readout_format=".0f"
        )
        c["step"] = widgets.IntSlider(
            value=3,
            min=0,
            max=self.steps - 1,
            description="iteration k",
            layout=widgets.Layout(width="480px"),
        )
        for name, control in c.items():
            if name not in ("lr", "bias_correction"):
                control.style = {"description_width": "initial"}  # show the whole label
        self.play = widgets.Play(value=3, min=0, max=self.steps - 1, step=1, interval=120, description="play")
        widgets.link((self.play, "value"), (c["step"], "value"))

        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"rowspan": 2}, {}], [None, {}]],
            column_widths=[0.5, 0.5],
            horizontal_spacing=0.11,
            vertical_spacing=0.16,
            subplot_titles=(
                "path; at wₖ the directions of −g, −m̂ and the step (equal lengths)",
                "per-coordinate learning rate η/(√v̂ᵢ + ε)",
                "per-coordinate step |Δwᵢ| from wₖ to wₖ₊₁",
            ),
        )
        fig.add_trace(go.Contour(), row=1, col=1)  # 0: contours
        fig.add_trace(go.Scatter(mode="markers", name="minimum"), row=1, col=1)  # 1
        fig.add_trace(go.Scatter(mode="lines+markers", name="path w₀ … w_k"), row=1, col=1)  # 2
        # the gradient wide and pale underneath: early on m̂ points almost the same way
        arrows = (
            ("−g (gradient)", "rgba(60,60,60,0.45)", 9, 22),
            ("−m̂ (first moment)", "#7B3294", 3, 15),
            ("step Δw (to wₖ₊₁)", "#000000", 3, 15),
        )
        for name, col, width, size in arrows:  # 3, 4, 5
            fig.add_trace(
                go.Scatter(
                    mode="lines+markers",
                    name=name,
                    line=dict(color=col, width=width),
                    marker=dict(symbol=["circle", "arrow"], size=[0, size], angleref="previous", color=col),
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
        for coord, dash in (("w₁", "solid"), ("w₂", "dash")):  # 6, 7: effective lr; 8, 9: |Δw|
            fig.add_trace(
                go.Scatter(mode="lines", name=f"coordinate {coord}", line=dict(dash=dash, width=2.5)),
                row=1,
                col=2,
            )
        for coord, dash in (("w₁", "solid"), ("w₂", "dash")):
            fig.add_trace(
                go.Scatter(mode="lines", name=coord, line=dict(dash=dash, width=2.5), showlegend=False),
                row=2,
                col=2,
            )
        eta_line = dict(mode="lines", line=dict(color="black", width=1.5, dash="dot"))
        fig.add_trace(go.Scatter(name="η (the slider)", **eta_line), row=1, col=2)  # 10
        fig.add_trace(go.Scatter(showlegend=False, **eta_line), row=2, col=2)  # 11
        cursor = dict(mode="lines", line=dict(color="#888888", width=1), showlegend=False, hoverinfo="skip")
        fig.add_trace(go.Scatter(**cursor), row=1, col=2)  # 12
        fig.add_trace(go.Scatter(**cursor), row=2, col=2)  # 13
        fig.update_layout(**plots.base_layout("Inside the adaptive step", height=640))
        fig.update_layout(margin=dict(l=70, r=20, t=90, b=120), legend=dict(y=-0.12))
        fig.update_annotations(font_size=15)
        fig.update_xaxes(title_text="w₁", constrain="domain", row=1, col=1)
        fig.update_yaxes(title_text="w₂", scaleanchor="x", scaleratio=1, row=1, col=1)
        fig.update_yaxes(
            title_text="learning rate", type="log", dtick=1, exponentformat="power", row=1, col=2
        )
        fig.update_yaxes(title_text="|Δwᵢ|", type="log", dtick=1, exponentformat="power", row=2, col=2)
        fig.update_xaxes(title_text="iteration k", row=2, col=2)
        fig.update_xaxes(range=[0, self.steps], row=1, col=2)
        fig.update_xaxes(range=[0, self.steps], matches="x2", row=2, col=2)
        self.figure = go.FigureWidget(fig)

        left = widgets.VBox([c["optimizer"], c["lr"], c["bias_correction"]])
        right = widgets.VBox([widgets.HBox([self.play, c["step"]]), c["condition"], c["angle"]])
        self.widget = widgets.VBox([widgets.HBox([left, right]), self.figure])

    # -- numbers -------------------------------------------------------------------------------------
    @property
    def surface(self):
        return quadratic(self.controls["condition"].value, math.radians(self.controls["angle"].value))

    def _optimizers(self):
        """Every variant, the selected one at the slider's rate: one compiled call covers them all."""
        label, eta = self.controls["optimizer"].value, self.controls["lr"].value
        opts = [FACTORIES[k](eta if k == label else DEFAULT_LRS[k]) for k in LABELS]
        opts.append(O.adam(eta if label == "Adam" else DEFAULT_LRS["Adam"], bias_correction=False))
        return opts

    def result(self) -> Inside:
        """The selected optimizer's record (with or without Adam's bias correction)."""
        label = self.controls["optimizer"].value
        i = (
            len(LABELS)
            if label == "Adam" and not self.controls["bias_correction"].value
            else LABELS.index(label)
        )
        return self._results[i]

    # -- drawing -------------------------------------------------------------------------------------
    def update(self, changed: str | None = None):
        c = self.controls
        label = c["optimizer"].value
        if changed == "optimizer":
            with self.hold():  # each optimizer comes with a rate that suits it
                c["lr"].value = DEFAULT_LRS[label]
                c["lr"].description = f"η {label}"
            return
        c["bias_correction"].disabled = label != "Adam"
        surface = self.surface
        if changed != "step" or self._results is None:
            w0 = jnp.asarray(surface.start)
            records = inside(self._optimizers(), surface, w0, steps=self.steps)
            self._results = [Inside(*map(np.asarray, r)) for r in records]
        r = self.result()
        k = c["step"].value
        eta = c["lr"].value
        finite = np.isfinite(r.w).all(axis=1) & np.isfinite(r.loss)
        last = int(np.argmin(finite)) - 1 if not finite.all() else self.steps  # last finite iterate
        kk = min(k, max(last, 0))
        color = plots.color(label)
        (x0, x1), (y0, y1) = surface.bounds
        length = ARROW * (x1 - x0)
        with self.figure.batch_update():
            data = self.figure.data
            if changed in (None, "condition", "angle") or self._drawn_surface is None:
                data[0].update(plots.contour_trace(surface).to_plotly_json(), overwrite=True)
                data[1].update(plots.minima_trace(surface).to_plotly_json(), overwrite=True)
                self.figure.layout.xaxis.range = [x0, x1]
                self.figure.layout.yaxis.range = [y0, y1]
                self._drawn_surface = (c["condition"].value, c["angle"].value)
            data[2].x, data[2].y = r.w[: kk + 1, 0], r.w[: kk + 1, 1]
            data[2].line, data[2].marker = dict(color=color, width=2.5), dict(color=color, size=6)
            data[2].name = plots.run_label(label, eta, -1 if last == self.steps else last + 1)
            wx, wy = r.w[kk]
            for i, d in zip((3, 4, 5), (-r.g[kk], -r.m_hat[kk], r.step[kk])):
                data[i].x, data[i].y = _arrow(wx, wy, d[0], d[1], length) if kk < self.steps else ([], [])
            ks = np.arange(self.steps)
            for j in range(2):
                data[6 + j].x, data[6 + j].y = ks, _positive(r.eff_lr[:, j])
                data[8 + j].x, data[8 + j].y = ks, _positive(np.abs(r.step[:, j]))
                for i in (6 + j, 8 + j):
                    data[i].line.color = color
            data[10].x, data[10].y = [0, self.steps], [eta, eta]
            data[11].x, data[11].y = [0, self.steps], [eta, eta]
            lo_hi = _log_range(r.eff_lr, eta)
            self.figure.layout.yaxis2.range = lo_hi
            data[12].x, data[12].y = [kk, kk], [10 ** lo_hi[0], 10 ** lo_hi[1]]
            lo_hi = _log_range(np.abs(r.step), eta)
            self.figure.layout.yaxis3.range = lo_hi
            data[13].x, data[13].y = [kk, kk], [10 ** lo_hi[0], 10 ** lo_hi[1]]
            corr = ""
            if label == "Adam":
                corr = ", bias correction " + ("on" if c["bias_correction"].value else "OFF")
            self.figure.layout.title.text = (
                f"Inside {label} (η = {eta:.3g}{corr}) on ½(u² + κv²), κ = {c['condition'].value:.3g}, "
                f"valley at {c['angle'].value:.0f}° — iteration k = {k}"
            )


def _positive(a):
    """Values for a log axis: non-positive and non-finite entries become gaps."""
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def _log_range(a, eta):
    """A log-axis range (in decades) covering the finite positive values of ``a`` and ``eta``, at least two
    decades wide and at most five (a step of 1e-30 would squash everything else)."""
    a = _positive(a)
    vals = np.concatenate([a[np.isfinite(a)].ravel(), [eta]])
    lo, hi = np.log10(vals.min()), np.log10(vals.max())
    lo = max(lo, hi - 5)
    pad = max(0.3, (2 - (hi - lo)) / 2)
    return [lo - pad, hi + pad]
