r"""Expected vs empirical risk, the variance of the batch error, and why that variance moves the learned W.

Slides "modelling a function", "the empirical risk", "SGD", "explaining the variance", "mini batches".
The problem is ``function_fit_problem("sin", noise=0.3)``: :math:`g(x) = \sin(\pi x)`, x uniform on [−1, 1],
:math:`y = g(x) + 0.3\varepsilon`, squared-error loss. Everything that needs a new shape (a sample size, a
batch size) is computed once at panel build; moving a control only indexes precomputed arrays.

- :class:`EmpiricalRiskPanel` (``empirical_risk``): the expected loss is the density-weighted area between g
  and the model f; one sample's empirical risk averages the squared lengths of its vertical lines; the
  histogram of 10,000 such estimates builds up draw by draw and centres on the expected loss.
- :class:`BatchVariancePanel` (``batch_error_variance``): the batch error of b losses drawn from a fixed
  population of n = 1,024, with and without replacement; its variance is var(loss)/b, times (n−b)/(n−1)
  without replacement.
- :class:`ArgminSpreadPanel` (``argmin_spread``): the least-squares fit to a sample of n points, over 200
  resamples: the fitted curves swing wildly for small n; the spread of the fitted slope falls as 1/√n.
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

from lecture_lib import experiments_sgd, plots
from lecture_lib.function_fit import function_fit_problem
from lecture_lib.panels.base import Panel, register

PROBLEM = function_fit_problem("sin", noise=0.3)
BLUE, RED, GREY = "#0072B2", "#D55E00", "#444444"
GRID = np.linspace(-1.0, 1.0, 201)


def model(x):
    """The fixed model f(x; W) of the first two panels: the line 0.8·x, a visibly imperfect fit of sin(πx)."""
    return 0.8 * x[..., 0]


# ---- 1. expected vs empirical risk ------------------------------------------------------------------------

RISK_SIZES = (1, 4, 16, 64)
DRAWS = 10_000


@functools.partial(jax.jit, static_argnames=("draws", "n_max"))
def _risk_draws(key, *, draws, n_max):
    x, y = PROBLEM.sample(key, draws * n_max)  # one flat i.i.d. sample, cut into the draws
    x, y = x.reshape(draws, n_max, 1), y.reshape(draws, n_max)
    sq = (model(x) - y) ** 2
    return x[..., 0], y, jnp.cumsum(sq, axis=1)


@functools.cache
def risk_data(seed: int = 0, draws: int = DRAWS):
    """Samples, estimates and the exact expected loss, computed once.

    Draw k (1-based) is the sample ``x[k − 1, :n]``: the sample of size n is the first n points of one
    sample of 256, so the histograms for every n come from one compiled sampler. ``risks[n]`` holds the
    ``draws`` empirical risks (1/n)Σ(f(xᵢ) − yᵢ)² for that n (each n exact; different n are nested).
    """
    x, y, csum = (
        np.asarray(a) for a in _risk_draws(jax.random.key(seed), draws=draws, n_max=max(RISK_SIZES))
    )
    risks = {n: csum[:, n - 1] / n for n in RISK_SIZES}
    expected = float(PROBLEM.expected_loss(model))
    return x, y, risks, expected


def _bins(values, count=60):
    lo, hi = np.quantile(values, [0.0, 0.995])
    return np.linspace(0.0 if lo < 0.25 * hi else lo, hi, count + 1)


def _wide(description):
    return dict(
        style={"description_width": "150px"}, layout=widgets.Layout(width="460px"), description=description
    )


@register("empirical_risk")
class EmpiricalRiskPanel(Panel):
    """Left: g (blue), f (red), the shaded point-wise error and one sample's vertical lines. Right: the
    histogram of the first k estimates, the expected loss and the running mean."""

    static_control = "n"  # static pages (make site): the sample size, the lesson of the panel

    def build(self):
        self.x, self.y, self.risks, self.expected = risk_data()
        self.bins = {n: _bins(self.risks[n]) for n in RISK_SIZES}
        c = self.controls
        c["n"] = widgets.Dropdown(options=list(RISK_SIZES), value=4, **_wide("sample size N"))
        c["draw"] = widgets.IntSlider(value=1, min=1, max=DRAWS, **_wide("draw # (seed)"))
        self.play = widgets.Play(value=1, min=1, max=DRAWS, step=1, interval=150, description="play")
        widgets.link((self.play, "value"), (c["draw"], "value"))

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.55, 0.45],
            horizontal_spacing=0.1,
            subplot_titles=("one sample", "estimates so far"),
        )
        g, f = np.asarray(PROBLEM.g(GRID)), 0.8 * GRID
        # 0 f (fill reference), 1 g filled to f, 2 f on top, 3 vertical lines, 4 samples
        fig.add_trace(go.Scatter(x=GRID, y=f, mode="lines", line=dict(width=0), showlegend=False), 1, 1)
        fig.add_trace(
            go.Scatter(
                x=GRID,
                y=g,
                mode="lines",
                fill="tonexty",
                fillcolor=plots.rgba(RED, 0.18),
                line=dict(color=BLUE, width=3),
                name="target g(x) = sin(πx); shaded: error f − g",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(x=GRID, y=f, mode="lines", line=dict(color=RED, width=3), name="model f(x; W) = 0.8x"),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color=GREY, width=2), name="sample errors f(xᵢ) − yᵢ"), 1, 1
        )
        fig.add_trace(
            go.Scatter(mode="markers", marker=dict(color="black", size=8), name="samples (xᵢ, yᵢ)"), 1, 1
        )
        # 5 histogram, 6 expected loss, 7 running mean, 8 this draw
        fig.add_trace(go.Bar(marker=dict(color=plots.rgba(GREY, 0.6)), name="histogram of Err"), 1, 2)
        for color, dash, name in ((BLUE, "solid", "expected loss"), (RED, "dash", "mean of the estimates")):
            fig.add_trace(
                go.Scatter(mode="lines", line=dict(color=color, width=3, dash=dash), name=name), 1, 2
            )
        fig.add_trace(
            go.Scatter(
                mode="markers", marker=dict(color="black", size=14, symbol="triangle-up"), name="this draw"
            ),
            1,
            2,
        )
        fig.update_layout(**plots.base_layout("Expected loss vs empirical risk", height=560))
        fig.update_layout(bargap=0.02, legend=dict(y=-0.18))
        fig.update_xaxes(title_text="x", range=[-1.05, 1.05], row=1, col=1)
        fig.update_yaxes(title_text="y", range=[-2.0, 2.0], row=1, col=1)
        fig.update_xaxes(title_text="empirical risk Err = (1/N)Σ(f(xᵢ) − yᵢ)²", row=1, col=2)
        fig.update_yaxes(title_text="count", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.text = widgets.HTML()
        self.widget = widgets.VBox(
            [widgets.HBox([c["n"], widgets.HBox([c["draw"], self.play])]), self.text, self.figure]
        )

    def update(self, changed: str | None = None):
        n, k = int(self.controls["n"].value), int(self.controls["draw"].value)
        x, y = self.x[k - 1, :n], self.y[k - 1, :n]
        fx = 0.8 * x
        risks = self.risks[n][:k]
        est, mean = float(risks[-1]), float(np.mean(risks))
        counts, edges = np.histogram(risks, bins=self.bins[n])
        centres, width = 0.5 * (edges[1:] + edges[:-1]), edges[1] - edges[0]
        top = max(1.0, float(counts.max()))
        lines_x = np.column_stack([x, x, np.full(n, np.nan)]).ravel()
        lines_y = np.column_stack([fx, y, np.full(n, np.nan)]).ravel()
        d = self.figure.data
        with self.figure.batch_update():
            d[3].x, d[3].y = lines_x, lines_y
            d[4].x, d[4].y = x, y
            d[5].x, d[5].y, d[5].width = centres, counts, width
            d[6].x, d[6].y = [self.expected] * 2, [0, 1.08 * top]
            d[6].name = f"expected loss E[loss] = {self.expected:.4f}"
            d[7].x, d[7].y = [mean] * 2, [0, 1.08 * top]
            d[7].name = f"mean of {k:,} estimates = {mean:.4f}"
            d[8].x, d[8].y = [est], [0]
            d[8].name = f"this draw: Err = {est:.4f}"
            self.figure.layout.xaxis2.range = [edges[0], edges[-1]]
            self.figure.layout.annotations[0].text = f"draw #{k}: N = {n} samples, Err = {est:.4f}"
            self.figure.layout.annotations[1].text = f"{k:,} estimates with N = {n}"
        self.text.value = (
            f"expected loss ∫(f − g)²P(x)dx + σ² = <b>{self.expected:.4f}</b>; "
            f"mean of the first {k:,} estimates = <b>{mean:.4f}</b>"
        )


# ---- 2. the variance of the batch error -------------------------------------------------------------------

POPULATION = 1024
B_MAX = 512
VAR_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)
BATCH_DRAWS = 5_000  # for the histograms and curves; the claims use batch_error_variance's 10,000


@functools.partial(jax.jit, static_argnames=("draws", "b_max"))
def _batch_means(losses, key, *, draws, b_max):
    """Batch errors for every b = 1 … b_max: prefix means of i.i.d. indices (with replacement) and of the
    first b_max of a random permutation (without); shape (draws, b_max) each."""
    n = losses.shape[0]
    k_with, k_without = jax.random.split(key)
    idx = jax.random.randint(k_with, (draws, b_max), 0, n)
    perm = jax.lax.top_k(jax.random.uniform(k_without, (draws, n)), b_max)[
        1
    ]  # a random b_max-subset, in order
    b = jnp.arange(1, b_max + 1, dtype=jnp.float32)[None, :]
    return jnp.cumsum(losses[idx], axis=1) / b, jnp.cumsum(losses[perm], axis=1) / b


@functools.cache
def batch_data(seed: int = 0):
    """The population of n losses, the batch errors for every b, and ``batch_error_variance`` at VAR_SIZES."""
    x, y = PROBLEM.sample(jax.random.key(seed), POPULATION)
    losses = (model(x) - y) ** 2
    with_r, without = (
        np.asarray(a) for a in _batch_means(losses, jax.random.key(seed + 1), draws=BATCH_DRAWS, b_max=B_MAX)
    )
    lib = jax.tree.map(
        np.asarray, experiments_sgd.batch_error_variance(losses, VAR_SIZES, key=jax.random.key(seed + 2))
    )
    return np.asarray(losses), with_r, without, lib


@register("batch_error_variance")
class BatchVariancePanel(Panel):
    """Left: the histogram of the batch error for the chosen b (on the b = 1 axis). Right: var against b,
    measured and predicted, with and without replacement."""

    def build(self):
        self.losses, self.with_r, self.without, self.lib = batch_data()
        n = POPULATION
        self.var_loss = float(np.var(self.losses))
        self.bins = np.linspace(0.0, float(np.quantile(self.with_r[:, 0], 0.99)), 81)
        bs = np.arange(1, B_MAX + 1)
        var_w, var_wo = self.with_r.var(axis=0, ddof=1), self.without.var(axis=0, ddof=1)
        c = self.controls
        c["b"] = widgets.FloatLogSlider(
            value=10.0,
            base=10,
            min=0,
            max=math.log10(B_MAX),
            step=0.1,
            readout_format=".0f",
            **_wide("batch size b"),
        )
        c["without"] = widgets.Checkbox(value=False, description="draw the batch without replacement")

        fig = make_subplots(
            rows=1,
            cols=2,
            horizontal_spacing=0.11,
            subplot_titles=("distribution of the batch error", "variance of the batch error"),
        )
        # 0 b = 1 histogram (reference), 1 chosen-b histogram, 2 expected loss
        fig.add_trace(
            go.Bar(marker=dict(color=plots.rgba(GREY, 0.35)), name="b = 1 (SGD): a single loss"), 1, 1
        )
        fig.add_trace(go.Bar(marker=dict(color=plots.rgba(BLUE, 0.75))), 1, 1)
        fig.add_trace(
            go.Scatter(mode="lines", line=dict(color="black", width=2, dash="dot"), name="mean loss"), 1, 1
        )
        # 3 measured with, 4 measured without, 5 pred with, 6 pred without, 7 chosen b
        for y, color, name in ((var_w, BLUE, "with replacement"), (var_wo, RED, "without replacement")):
            fig.add_trace(
                go.Scatter(
                    x=bs, y=y, mode="lines", line=dict(color=color, width=3), name=f"measured, {name}"
                ),
                1,
                2,
            )
        pred_w = self.var_loss / bs
        pred_wo = pred_w * (n - bs) / (n - 1)
        for y, color, name in ((pred_w, BLUE, "var(loss)/b"), (pred_wo, RED, "var(loss)/b·(n−b)/(n−1)")):
            fig.add_trace(
                go.Scatter(
                    x=bs,
                    y=y,
                    mode="lines",
                    line=dict(color=color, width=2, dash="dash"),
                    name=f"predicted {name}",
                ),
                1,
                2,
            )
        fig.add_trace(
            go.Scatter(
                mode="markers", marker=dict(size=15, color="black", symbol="diamond"), showlegend=False
            ),
            1,
            2,
        )
        fig.update_layout(
            **plots.base_layout(f"Variance of the batch error (population of n = {n} losses)", height=580)
        )
        fig.update_layout(barmode="overlay", bargap=0.0, legend=dict(y=-0.18))
        fig.update_xaxes(title_text="batch error (1/b)Σ loss", row=1, col=1)
        fig.update_yaxes(title_text="density", row=1, col=1)
        fig.update_xaxes(title_text="batch size b", type="log", row=1, col=2)
        fig.update_yaxes(title_text="var(batch error)", type="log", exponentformat="power", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        centres = 0.5 * (self.bins[1:] + self.bins[:-1])
        width = self.bins[1] - self.bins[0]
        dens = np.histogram(self.with_r[:, 0], bins=self.bins, density=True)[0]
        self.figure.data[0].update(x=centres, y=dens, width=width)
        self.figure.data[1].update(x=centres, width=width)
        self.widget = widgets.VBox([widgets.HBox([c["b"], c["without"]]), self.figure])

    def update(self, changed: str | None = None):
        b = int(round(self.controls["b"].value))
        without = bool(self.controls["without"].value)
        errs = (self.without if without else self.with_r)[:, b - 1]
        dens = np.histogram(errs, bins=self.bins, density=True)[0]
        var = float(np.var(errs, ddof=1))
        pred = self.var_loss / b * ((POPULATION - b) / (POPULATION - 1) if without else 1.0)
        mean = float(np.mean(self.losses))
        d = self.figure.data
        with self.figure.batch_update():
            d[1].y = dens
            d[1].marker.color = plots.rgba(RED if without else BLUE, 0.75)
            d[1].name = f"b = {b}, {'without' if without else 'with'} replacement"
            d[2].x, d[2].y = [mean, mean], [0, 1.05 * float(max(dens.max(), d[0].y[0]))]
            d[7].x, d[7].y = [b], [var]
            d[7].marker.color = RED if without else BLUE
            self.figure.layout.annotations[1].text = f"b = {b}: var = {var:.3g}, predicted {pred:.3g}"


# ---- 3. the argmin of the empirical risk swings with the sample -------------------------------------------

FIT_SIZES = (8, 16, 32, 64, 128, 256, 512)
DEGREES = (1, 3, 5)
RESAMPLES = 200
SHOWN_FITS = 50


def _features(x, degree):
    """Legendre polynomials P₀ … P_degree (P₁ = x): well conditioned on [−1, 1]."""
    p = [jnp.ones_like(x), x]
    for k in range(1, degree):
        p.append(((2 * k + 1) * x * p[k] - k * p[k - 1]) / (k + 1))
    return jnp.stack(p[: degree + 1], axis=-1)


@functools.partial(jax.jit, static_argnames=("resamples", "n_max"))
def _fits(key, *, resamples, n_max):
    """Least-squares coefficients for every size and resample and degree, and the fitted curves on GRID.

    One sample of n_max per resample; the fit of size n weights its first n rows 1 and the rest 0, so one
    compiled function serves every n. Closed form: the normal equations (AᵀMA + 10⁻⁶I) w = AᵀMy."""
    x, y = PROBLEM.sample(key, resamples * n_max)
    x, y = x.reshape(resamples, n_max), y.reshape(resamples, n_max)
    sizes = jnp.asarray(FIT_SIZES)
    mask = (jnp.arange(n_max)[None, :] < sizes[:, None]).astype(jnp.float32)  # (sizes, n_max)
    grid = jnp.asarray(GRID, jnp.float32)
    out = {}
    for degree in DEGREES:
        A = _features(x, degree)  # (R, n_max, d+1)
        AtA = jnp.einsum("rnj,sn,rnk->srjk", A, mask, A, precision="highest")
        Aty = jnp.einsum("rnj,sn,rn->srj", A, mask, y, precision="highest")
        coef = jnp.linalg.solve(AtA + 1e-6 * jnp.eye(degree + 1)[None, None], Aty[..., None])[
            ..., 0
        ]  # (sizes, R, d+1)
        out[degree] = (coef, coef @ _features(grid, degree).T)
    return x, y, out


@functools.cache
def fit_data(seed: int = 0):
    x, y, out = _fits(jax.random.key(seed), resamples=RESAMPLES, n_max=max(FIT_SIZES))
    out = {d: (np.asarray(c), np.asarray(v)) for d, (c, v) in out.items()}
    slope_sd = {d: out[d][0][:, :, 1].std(axis=1) for d in DEGREES}  # sd of the x-coefficient, per n
    return np.asarray(x), np.asarray(y), out, slope_sd


@register("argmin_spread")
class ArgminSpreadPanel(Panel):
    """Left: 50 fitted curves (faint) of the chosen degree at the chosen n, g and one sample. Right: the
    spread of the fitted slope coefficient against n, with a 1/√n reference."""

    def build(self):
        self.x, self.y, self.fits, self.slope_sd = fit_data()
        c = self.controls
        c["n"] = widgets.FloatLogSlider(
            value=8.0, base=2, min=3, max=9, step=1, readout_format=".0f", **_wide("sample size N")
        )
        c["degree"] = widgets.Dropdown(options=list(DEGREES), value=1, **_wide("polynomial degree"))
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.11, subplot_titles=(" ", " ")
        )
        # 0 fits, 1 g, 2 sample, 3 mean fit
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=plots.rgba(RED, 0.25), width=1.5)), 1, 1)
        fig.add_trace(
            go.Scatter(
                x=GRID,
                y=np.asarray(PROBLEM.g(GRID)),
                mode="lines",
                line=dict(color=BLUE, width=4),
                name="target g(x) = sin(πx)",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(mode="markers", marker=dict(color="black", size=7), name="resample #1"), 1, 1
        )
        # 3.. sd curves per degree, then 3+len: reference, then chosen point
        ns = np.asarray(FIT_SIZES)
        dash = {1: "solid", 3: "dash", 5: "dot"}
        for d in DEGREES:
            slope = float(experiments_sgd.loglog_slope(ns, self.slope_sd[d]))
            fig.add_trace(
                go.Scatter(
                    x=ns,
                    y=self.slope_sd[d],
                    mode="lines+markers",
                    line=dict(color=GREY, width=2.5, dash=dash[d]),
                    name=f"degree {d}: sd ∝ N^{slope:.2f}",
                ),
                1,
                2,
            )
        ref = self.slope_sd[1][0] * np.sqrt(ns[0] / ns)
        fig.add_trace(
            go.Scatter(
                x=ns, y=ref, mode="lines", line=dict(color=BLUE, width=2, dash="dashdot"), name="∝ 1/√N"
            ),
            1,
            2,
        )
        fig.add_trace(
            go.Scatter(mode="markers", marker=dict(size=15, color=RED, symbol="diamond"), showlegend=False),
            1,
            2,
        )
        fig.update_layout(
            **plots.base_layout(
                "The learned W swings with the sample: argmin of the empirical risk", height=580
            )
        )
        fig.update_layout(legend=dict(y=-0.18))
        fig.update_xaxes(title_text="x", range=[-1.05, 1.05], row=1, col=1)
        fig.update_yaxes(title_text="y", range=[-2.5, 2.5], row=1, col=1)
        fig.update_xaxes(title_text="sample size N", type="log", row=1, col=2)
        fig.update_yaxes(title_text="sd of the fitted x-coefficient w₁", type="log", row=1, col=2)
        self.figure = go.FigureWidget(fig)
        self.figure.layout.annotations[1].text = f"spread over {RESAMPLES} resamples"
        self.widget = widgets.VBox([widgets.HBox([c["n"], c["degree"]]), self.figure])

    def update(self, changed: str | None = None):
        n = int(round(self.controls["n"].value))
        degree = int(self.controls["degree"].value)
        i = FIT_SIZES.index(n)
        curves = self.fits[degree][1][i, :SHOWN_FITS]
        xs = np.tile(np.append(GRID, np.nan), SHOWN_FITS)
        ys = np.column_stack([curves, np.full(SHOWN_FITS, np.nan)]).ravel()
        sd = float(self.slope_sd[degree][i])
        d = self.figure.data
        with self.figure.batch_update():
            d[0].x, d[0].y = xs, ys
            d[0].name = f"least-squares fits of degree {degree} to {SHOWN_FITS} resamples"
            d[2].x, d[2].y = self.x[0, :n], self.y[0, :n]
            d[-1].x, d[-1].y = [n], [sd]
            self.figure.layout.annotations[
                0
            ].text = f"N = {n}, degree {degree}: sd of the x-coefficient {sd:.3g}"
