r"""SGD convergence: constant steps leave a noise ball, Robbins–Monro steps converge, non-convex seeds differ.

- Constant η on :math:`F(w) = \frac c2\lVert w\rVert^2` with gradient noise σ: the iterate "chases the latest
  sample" and E[F] levels off at :math:`\frac{d\eta\sigma^2}{2(2-\eta c)}` (∝ η for small η), under Bottou,
  Curtis & Nocedal's :math:`\eta LM/(2c\mu)` (Theorem 4.6).
- :math:`\eta_k = \eta_0/(1+k/\tau)^p`: p = 1 meets both Robbins–Monro conditions and E[F] ∝ 1/k; p ≤ ½
  breaks :math:`\sum\eta_k^2 < \infty` and E[F] ∝ η_k ∝ k^(−p); exponential decay breaks
  :math:`\sum\eta_k = \infty` and stalls at :math:`F(w_1)\prod(1-\eta_k c)^2`.
- On Himmelblau's function, noisy SGD with a decaying step ends at one of four minima, depending on the seed.

Every run is precomputed at build (a handful of schedules and seeds) or jitted with the step as traced data.
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

from lecture_lib import experiments_sgd as ex
from lecture_lib import optimizers as O
from lecture_lib import plots, schedules
from lecture_lib import surfaces as S
from lecture_lib.panels.base import Panel, log_slider, register
from lecture_lib.trajectories import run

# ---- 1. constant step: the noise ball ---------------------------------------------------------------------

ETA_RANGE = (0.01, 1.0)
PATH_STEPS = 400
SIGMA = 1.0
START = np.array([3.0, 3.0], np.float32)
PLATEAU_ETAS = (0.5 ** np.arange(7)).astype(np.float32)[::-1]  # 1/64 … 1, each twice the last (d = 10)
PLATEAU_STEPS, PLATEAU_FROM = 600, 300


@jax.jit
def noisy_paths(etas, key):
    """2-D SGD on ½‖w‖² with gradient noise σ = 1, one path per step size in ``etas`` (same noise)."""
    surface = S.quadratic(1.0, 0.0)

    def one(eta):
        return run(O.sgd(eta), surface, START, PATH_STEPS, noise=SIGMA, key=key).params

    return jax.vmap(one)(etas)


def ball_radius(eta, d=2, c=1.0, sigma=SIGMA):
    """√E‖w‖² at the plateau: E‖w‖² = dησ²/(c(2 − ηc))."""
    return math.sqrt(d * eta * sigma**2 / (c * (2 - eta * c)))


@functools.cache
def measured_plateaus(replicas: int = 100) -> np.ndarray:
    """Mean of E[F(w_k)] − F* over k ≥ 300 of 600 constant steps, d = 10, for each of ``PLATEAU_ETAS``."""
    go_ = jax.vmap(
        lambda a: ex.sgd_noisy_quadratic(a, PLATEAU_STEPS, key=jax.random.key(0), replicas=replicas)
    )
    F = np.asarray(go_(jnp.asarray(PLATEAU_ETAS)).F)
    return F[:, PLATEAU_FROM:].mean(axis=1)


@register("sgd_noise_ball")
class NoiseBall(Panel):
    """2-D paths for η and η/4 with their noise balls (left); plateau E[F] vs η (right)."""

    def build(self):
        style, wide = {"description_width": "150px"}, widgets.Layout(width="470px")
        c = self.controls
        c["eta"] = log_slider(0.2, *ETA_RANGE, "learning rate η", style=style, layout=wide)
        c["seed"] = widgets.IntSlider(
            value=0, min=0, max=20, description="noise seed", style=style, layout=wide
        )
        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.45, 0.55],
            horizontal_spacing=0.1,
            subplot_titles=("SGD on ½‖w‖², gradient noise σ = 1", "plateau of E[F(w)] − F* (d = 10)"),
        )
        colors = (plots.color("SGD"), plots.color("momentum"))
        # 0, 1: paths; 2, 3: balls; 4: minimum
        for col in colors:
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=col, width=1.5), opacity=0.8), 1, 1)
        for col in colors:
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=col, width=3, dash="dash")), 1, 1)
        fig.add_trace(
            go.Scatter(
                x=[0], y=[0], mode="markers", marker=dict(symbol="star", size=16, color="black"), name="w*"
            ),
            1,
            1,
        )
        # right: 5 exact line, 6 BCN bound, 7 Monte Carlo, 8 current η, 9 current η/4
        grid = np.geomspace(*ETA_RANGE, 100)
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=[ex.quadratic_plateau(a) for a in grid],
                mode="lines",
                line=dict(color="#444444", width=2.5),
                name="exact dησ²/(2(2 − ηc))",
            ),
            1,
            2,
        )
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=[ex.theorem_4_6_bound(a) for a in grid],
                mode="lines",
                line=dict(color="#D55E00", width=2.5, dash="dot"),
                name="Bottou–Curtis–Nocedal bound ηLM/(2cμ)",
            ),
            1,
            2,
        )
        fig.add_trace(
            go.Scatter(
                x=PLATEAU_ETAS,
                y=measured_plateaus(),
                mode="markers",
                marker=dict(size=10, color="#009E73", symbol="diamond"),
                name="measured: mean of 100 SGD runs",
            ),
            1,
            2,
        )
        for col in colors:
            fig.add_trace(
                go.Scatter(
                    mode="markers", marker=dict(size=15, color=col, symbol="circle"), showlegend=False
                ),
                1,
                2,
            )
        fig.update_layout(**plots.base_layout("A constant step leaves SGD in a noise ball ∝ η", height=620))
        fig.update_layout(legend=dict(y=-0.14))
        fig.update_xaxes(title_text="w₁", range=[-3.5, 3.5], row=1, col=1)
        fig.update_yaxes(title_text="w₂", range=[-3.5, 3.5], scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="learning rate η (log)", type="log", row=1, col=2)
        fig.update_yaxes(title_text="E[F(w)] − F* at the plateau (log)", type="log", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox([widgets.HBox([c["eta"], c["seed"]]), self.figure])

    def update(self, changed=None):
        eta, seed = float(self.controls["eta"].value), int(self.controls["seed"].value)
        etas = np.array([eta, eta / 4], np.float32)
        paths = np.asarray(noisy_paths(jnp.asarray(etas), jax.random.key(seed)))
        t = np.linspace(0, 2 * np.pi, 73)
        d = self.figure.data
        with self.figure.batch_update():
            for i, a in enumerate(etas):
                r = ball_radius(float(a))
                d[i].x, d[i].y = paths[i, :, 0], paths[i, :, 1]
                d[i].name = f"SGD path, η = {a:.3g} ({PATH_STEPS} steps)"
                d[2 + i].x, d[2 + i].y = r * np.cos(t), r * np.sin(t)
                d[2 + i].name = f"noise ball √E‖w‖² = {r:.2f}"
                d[8 + i].x, d[8 + i].y = [a], [ex.quadratic_plateau(float(a))]
                d[8 + i].name = f"η = {a:.3g}"


# ---- 2. Robbins–Monro: decaying steps ---------------------------------------------------------------------

RM_STEPS = 10_000
RM_REPLICAS = 100
ETA0, TAU = 0.5, 4.0  # η_k = η₀/(1 + k/τ)^p; p = 1 is β/(γ+k) with β = η₀τ = 2 > 1/c, γ = τ − 1 = 3
NU = 180.0  # Theorem 4.7: ν = max(β²LM/(2(βcμ − 1)), (γ + 1)F(w₁)) = max(20, 180)
POWERS = (0.25, 0.5, 0.75, 1.0)
EXP_LR, EXP_GAMMA = 0.1, 0.95  # Σ η = 2: even the noise-free run stops at F(w₁)·Π(1 − η_k)² > 0
F1 = 45.0  # F(w₁) = ½·10·3²
SCHEDULE_NAMES = {f"η₀/(1+k/τ)^p, p = {p:g}": p for p in POWERS} | {"exponential η₀·γ^k": "exp"}


def _logspaced(n, points=200):
    return np.unique(np.geomspace(1, n, points).astype(int)) - 1


@functools.cache
def robbins_monro_runs(steps: int = RM_STEPS, replicas: int = RM_REPLICAS) -> dict:
    """Noisy and noise-free SGD on the d = 10 quadratic for each schedule: name → NoisyQuadratic (numpy)."""
    # one schedule at a time: sgd_noisy_quadratic tabulates every schedule, so all five runs (and the
    # notebook's own 1/k run of the same shape) share one compiled noisy run and one noise-free run
    key = jax.random.key(1)
    out = {}
    for name, p in SCHEDULE_NAMES.items():
        sched = (
            schedules.exponential(EXP_LR, EXP_GAMMA) if p == "exp" else schedules.inverse_time(ETA0, p, TAU)
        )
        r = ex.sgd_noisy_quadratic(sched, steps, key=key, replicas=replicas)
        r0 = ex.sgd_noisy_quadratic(sched, steps, sigma=0.0)
        out[name] = (jax.tree.map(np.asarray, r), np.asarray(r0.F))
    return out


def slope(F, k_lo=100, k_hi=RM_STEPS, points=21) -> float:
    """Log-log slope of E[F(w_k)] for k in [k_lo, k_hi]; F[k − 1] holds F(w_k)."""
    k = np.unique(np.geomspace(k_lo, k_hi, points).astype(int))
    return float(ex.loglog_slope(k, np.asarray(F)[k - 1]))


def robbins_monro_verdict(r) -> tuple[bool, bool]:
    """(Σ η still growing, Σ η² still growing) over the last decade of k: relative growth > 5%."""
    n = r.sum_eta.size

    def grows(s):
        return (s[n - 1] - s[n // 10 - 1]) > 0.05 * s[n // 10 - 1]

    return bool(grows(r.sum_eta)), bool(grows(r.sum_eta2))


GREEN, RED = "#009E73", "#D55E00"


@register("robbins_monro")
class RobbinsMonro(Panel):
    """Partial sums Σ η and Σ η² (left), E[F(w_k)] − F* over 100 seeds and the noise-free run (right)."""

    def build(self):
        self.runs = robbins_monro_runs()
        c = self.controls
        c["schedule"] = widgets.SelectionSlider(  # p from 1/4 to 1, then exponential decay
            options=list(SCHEDULE_NAMES),
            value="η₀/(1+k/τ)^p, p = 1",
            description="step sizes η_k",
            style={"description_width": "120px"},
            layout=widgets.Layout(width="520px"),
        )
        self.verdict = widgets.HTML()
        fig = make_subplots(
            rows=1,
            cols=2,
            horizontal_spacing=0.11,
            subplot_titles=("Robbins–Monro partial sums", "E[F(w_k)] − F* (d = 10, σ = 1)"),
        )
        # 0 Σ η, 1 Σ η²
        for dash in ("solid", "dash"):
            fig.add_trace(go.Scatter(mode="lines", line=dict(width=3.5, dash=dash)), 1, 1)
        # 2 noisy mean, 3 noise-free, 4 1/k reference, 5 fitted-slope text
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=plots.color("SGD"), width=3)), 1, 2)
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color="#444444", width=2, dash="dot"), name="noise-free run"),
            1,
            2,
        )
        k = np.geomspace(1, RM_STEPS, 50)
        fig.add_trace(
            go.Scatter(
                x=k,
                y=NU / (TAU - 1 + k),
                mode="lines",
                line=dict(color="#999999", width=2),
                name="Theorem 4.7 bound ν/(γ+k) ∝ 1/k",
            ),
            1,
            2,
        )
        fig.update_layout(
            **plots.base_layout("SGD convergence: which step sizes reach the optimum?", height=600)
        )
        fig.update_layout(legend=dict(y=-0.16))
        fig.update_xaxes(title_text="step k (log)", type="log", row=1, col=1)
        fig.update_yaxes(title_text="partial sum (log)", type="log", row=1, col=1)
        fig.update_xaxes(title_text="step k (log)", type="log", row=1, col=2)
        fig.update_yaxes(title_text="E[F(w_k)] − F* (log)", type="log", range=[-4, 2], row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.widget = widgets.VBox([widgets.HBox([c["schedule"], self.verdict]), self.figure])

    def update(self, changed=None):
        name = self.controls["schedule"].value
        r, clean = self.runs[name]
        idx = _logspaced(RM_STEPS)
        k = idx + 1
        diverge1, diverge2 = robbins_monro_verdict(r)
        ok1, ok2 = diverge1, not diverge2
        s = slope(r.F)
        d = self.figure.data
        with self.figure.batch_update():
            d[0].x, d[0].y = k, r.sum_eta[idx]
            d[0].line.color = GREEN if ok1 else RED
            d[0].name = f"Σ η_j {'keeps growing: = ∞ ✓' if ok1 else 'levels off: < ∞ ✗'}"
            d[1].x, d[1].y = k, r.sum_eta2[idx]
            d[1].line.color = GREEN if ok2 else RED
            d[1].name = f"Σ η_j² {'levels off: < ∞ ✓' if ok2 else 'keeps growing: = ∞ ✗'}"
            d[2].x, d[2].y = k, np.maximum(r.F[idx], 1e-30)
            d[2].name = f"mean of {RM_REPLICAS} noisy runs: slope {s:.2f} for k ≥ 100"
            d[3].x, d[3].y = k, np.maximum(clean[idx], 1e-30)
            self.figure.layout.annotations[1].text = f"E[F(w_k)] − F*: {name}"
        mark = {True: "✓", False: "✗"}
        self.verdict.value = (
            f"&nbsp; Σ η = ∞ {mark[ok1]} &nbsp; Σ η² &lt; ∞ {mark[ok2]} &nbsp; log-log slope <b>{s:.2f}</b>"
        )


# ---- 3. non-convex: the seed picks the minimum -------------------------------------------------------------

NC_SEEDS, NC_STEPS, NC_NOISE = 64, 4000, 5.0
NC_START = np.array([-0.270845, -0.923039], np.float32)  # the local maximum: noise picks the way down


@functools.partial(jax.jit, static_argnames=("seeds", "steps"))
def _nonconvex(schedule, noise, *, seeds, steps):
    surface = S.SURFACES["himmelblau"]
    keys = jax.random.split(jax.random.key(0), seeds)

    def one(key):
        return run(O.sgd(1.0), surface, NC_START, steps, schedule=schedule, noise=noise, key=key).params

    params = jax.vmap(one)(keys)
    grads = jax.vmap(jax.grad(surface))(params[:, -1])
    return params, grads


def nonconvex_endpoints(lr=0.01, tau=20.0, noise=NC_NOISE, seeds=NC_SEEDS, steps=NC_STEPS):
    """Noisy SGD from the local maximum (−0.27, −0.92) of Himmelblau's function, η_k = lr/(1 + k/τ).

    One run per seed.

    Returns ``(paths (seeds, steps+1, 2), end gradients (seeds, 2), nearest minimum index (seeds,))``.
    """
    sched = schedules.inverse_time(lr, 1.0, tau)
    params, grads = _nonconvex(sched, jnp.float32(noise), seeds=seeds, steps=steps)
    params, grads = np.asarray(params), np.asarray(grads)
    minima = np.asarray(S.SURFACES["himmelblau"].minima)
    nearest = np.argmin(np.linalg.norm(params[:, -1, None, :] - minima[None], axis=-1), axis=1)
    return params, grads, nearest


MINIMA_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")


def nonconvex_figure(paths, nearest) -> go.FigureWidget:
    """Paths over Himmelblau's contours, coloured by the minimum each seed ends at.

    A ``FigureWidget``, like every figure of the notebooks: Voilà 0.5 draws a plain ``go.Figure`` with a
    renderer plugin that fails there (``setData is not a function``)."""
    surface = S.SURFACES["himmelblau"]
    minima = np.asarray(surface.minima)
    fig = go.Figure(plots.contour_trace(surface))
    for m in range(len(minima)):
        sel = np.flatnonzero(nearest == m)
        xs, ys = [], []
        for i in sel[:8]:
            xs += list(paths[i, ::10, 0]) + [None]
            ys += list(paths[i, ::10, 1]) + [None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line=dict(color=MINIMA_COLORS[m], width=1.5),
                name=f"minimum ({minima[m, 0]:.2f}, {minima[m, 1]:.2f}): {sel.size} of {len(nearest)} seeds",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=paths[:, -1, 0],
            y=paths[:, -1, 1],
            mode="markers",
            marker=dict(size=8, color="white", line=dict(width=1.5, color="black")),
            name="end points",
        )
    )
    fig.update_layout(
        **plots.base_layout("Non-convex: the seed decides which minimum SGD ends at", height=640)
    )
    fig.update_layout(width=760, legend=dict(y=-0.12))
    fig.update_xaxes(title_text="w₁", range=[-5, 5], constrain="domain")
    fig.update_yaxes(title_text="w₂", range=[-5, 5], scaleanchor="x")
    return go.FigureWidget(fig)
