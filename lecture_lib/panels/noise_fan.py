r"""Noisy gradients: a fan of 256 runs per optimizer instead of one lucky path.

Each optimizer of the race runs from the same start with Gaussian noise of standard deviation σ added to
every gradient, once per key: ``jax.vmap`` over 256 keys of ``run_many`` (all six optimizers in one compiled
call, every one seeing the same noise draws). The panel draws a sample of the paths, the cloud of all 256
iterates at iteration k, the mean path, and the noise-free path; beside them the median gap to the minimum
with a 10–90 % band.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lecture_lib import plots
from lecture_lib.panels.base import Panel, register
from lecture_lib.panels.race import DEFAULT_LRS, FACTORIES
from lecture_lib.surfaces import NAMES, SURFACES
from lecture_lib.trajectories import run_many

RUNS = 256  # noisy runs per optimizer
DRAWN = 40  # of which this many are drawn as lines (all of them appear in the cloud and the statistics)
STEPS = 200
SEED = 0
# A noise level per surface comparable to the gradients along the way, so the fans are wide but readable.
DEFAULT_NOISE = dict(quadratic=3.0, rosenbrock=2.0, beale=1.0, himmelblau=10.0, saddle=0.3, rastrigin=10.0)
SHOW = ("SGD vs Adam", "all six", *FACTORIES)


@functools.partial(jax.jit, static_argnames="steps")
def fan(opts, surface, x0, noise, keys, *, steps: int):
    """``(params, losses)`` per optimizer, shapes (runs, steps+1, 2) and (runs, steps+1): one run per key."""

    def one(key):
        return [(t.params, t.losses) for t in run_many(opts, surface, x0, steps, noise=noise, key=key)]

    return jax.vmap(one)(keys)


class Fan:
    """One optimizer's fan as NumPy arrays, with its statistics over the runs."""

    def __init__(self, params, losses, clean_params, clean_losses, min_value):
        self.params = np.asarray(params)  # (runs, steps+1, 2); after a divergence the last finite point
        self.losses = np.asarray(losses)  # (runs, steps+1); nan after a divergence
        self.clean = np.asarray(clean_params)  # (steps+1, 2) the noise-free run
        self.clean_losses = np.asarray(clean_losses)
        self.min_value = min_value
        self.diverged = ~np.isfinite(self.losses[:, -1])
        self._stats = None

    @property
    def mean(self) -> np.ndarray:
        """(steps+1, 2) mean iterate over the runs that did not diverge (empty if all did)."""
        return self.stats[0]

    @property
    def gap_quantiles(self) -> np.ndarray:
        """(3, steps+1) the 10th, 50th and 90th percentiles of E(w_k) − E* over all runs (diverged: inf)."""
        return self.stats[1]

    @property
    def stats(self):
        if self._stats is None:  # on first use: the panel needs them only for the optimizers shown
            ok = ~self.diverged
            mean = self.params[ok].mean(axis=0) if ok.any() else np.zeros((0, 2), self.params.dtype)
            gap = np.maximum(self.losses - self.min_value, 1e-12)
            gap = np.sort(np.where(np.isfinite(gap), gap, np.inf), axis=0)  # a diverged run is far away
            ranks = np.round(np.array([0.1, 0.5, 0.9]) * (len(gap) - 1)).astype(int)  # nearest rank
            self._stats = mean, gap[ranks]
        return self._stats


@register("noise_fan")
class NoiseFan(Panel):
    """Fans over the contours (left), median gap with a 10–90 % band (right)."""

    def __init__(self, surface: str = "saddle", steps: int = STEPS, runs: int = RUNS):
        if surface not in SURFACES:
            raise ValueError(f"surface must be one of {list(SURFACES)}, got surface={surface!r}")
        self._initial_surface = surface
        self.steps, self.runs = steps, runs
        self.keys = jax.random.split(jax.random.key(SEED), runs)
        self.fans: dict[str, Fan] | None = None
        self._drawn_surface = None
        super().__init__()

    # -- construction --------------------------------------------------------------------------------
    def build(self):
        c = self.controls
        c["surface"] = widgets.Dropdown(
            options=list(NAMES), value=self._initial_surface, description="surface"
        )
        c["noise"] = widgets.FloatLogSlider(
            value=DEFAULT_NOISE[self._initial_surface],
            base=10,
            min=-2,
            max=2,
            step=0.05,
            description="noise σ",
            readout_format=".3g",
        )
        c["show"] = widgets.Dropdown(options=list(SHOW), value=SHOW[0], description="show")
        c["step"] = widgets.IntSlider(
            value=self.steps,
            min=0,
            max=self.steps,
            description="iteration k",
            layout=widgets.Layout(width="480px"),
        )
        for name, control in c.items():
            if name not in ("lr", "bias_correction"):
                control.style = {"description_width": "initial"}  # show the whole label
        self.play = widgets.Play(
            value=self.steps, min=0, max=self.steps, step=2, interval=60, description="play"
        )
        widgets.link((self.play, "value"), (c["step"], "value"))

        fig = make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.52, 0.48],
            horizontal_spacing=0.12,
            subplot_titles=(
                f"{min(DRAWN, self.runs)} of {self.runs} noisy paths per optimizer, the cloud at iteration k",
                f"gap to the minimum: median and 10–90 % of {self.runs} runs",
            ),
        )
        fig.add_trace(go.Contour(), row=1, col=1)  # 0
        fig.add_trace(go.Scatter(mode="markers", name="minimum"), row=1, col=1)  # 1
        for label in FACTORIES:  # 7 traces per optimizer, from 2 + 7i
            col = plots.color(label)
            fig.add_trace(  # the drawn sample of paths, NaN-separated in one trace
                go.Scatter(
                    mode="lines",
                    line=dict(color=col, width=1),
                    opacity=0.35,
                    showlegend=False,
                    hoverinfo="skip",
                    connectgaps=False,
                ),
                row=1,
                col=1,
            )
            fig.add_trace(  # the cloud of all runs at iteration k
                go.Scatter(
                    mode="markers",
                    marker=dict(color=col, size=6, opacity=0.8, line=dict(color="white", width=0.8)),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=col, width=4), name=label), row=1, col=1)
            fig.add_trace(
                go.Scatter(mode="lines", line=dict(color=col, width=2, dash="dot"), showlegend=False),
                row=1,
                col=1,
            )
            for edge in plots.band_traces(col):  # the 10–90 % band
                fig.add_trace(edge, row=1, col=2)
            fig.add_trace(
                go.Scatter(mode="lines", line=dict(color=col, width=2.5), showlegend=False), row=1, col=2
            )
        # legend keys for the line styles (drawn in grey: the colour names the optimizer)
        fig.add_trace(
            go.Scatter(
                mode="lines", line=dict(color="#555555", width=4), name="mean of the runs", x=[None], y=[None]
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                mode="lines",
                line=dict(color="#555555", width=2, dash="dot"),
                name="noise-free run",
                x=[None],
                y=[None],
            ),
            row=1,
            col=1,
        )
        fig.update_layout(**plots.base_layout("Noisy gradients", height=580))
        fig.update_layout(legend_traceorder="normal")  # fills would reverse it
        fig.update_xaxes(title_text="w₁", row=1, col=1)
        fig.update_yaxes(title_text="w₂", row=1, col=1)
        fig.update_xaxes(title_text="iteration k", range=[0, self.steps], row=1, col=2)
        fig.update_yaxes(title_text="E(wₖ) − E*", type="log", dtick=1, exponentformat="power", row=1, col=2)
        self.figure = go.FigureWidget(fig)

        top = widgets.HBox([c["surface"], c["show"], c["noise"]])
        self.widget = widgets.VBox([top, widgets.HBox([self.play, c["step"]]), self.figure])

    def _trace(self, label: str) -> int:
        return 2 + 7 * list(FACTORIES).index(label)

    def _gap_range(self, surface, shown):
        return _gap_range_of([self.fans[label] for label in shown], surface.min_value)

    def _shown(self) -> tuple[str, ...]:
        show = self.controls["show"].value
        if show == "all six":
            return tuple(FACTORIES)
        if show == "SGD vs Adam":
            return ("SGD", "Adam")
        return (show,)

    # -- drawing -------------------------------------------------------------------------------------
    def update(self, changed: str | None = None):
        c = self.controls
        surface = SURFACES[c["surface"].value]
        if changed == "surface":
            with self.hold():
                c["noise"].value = DEFAULT_NOISE[surface.name]
            return
        if changed in (None, "noise") or self.fans is None or self._drawn_surface != surface.name:
            opts = [make(DEFAULT_LRS[surface.name][label]) for label, make in FACTORIES.items()]
            if self._drawn_surface != surface.name:  # the noise-free runs do not depend on σ
                self._clean = [
                    (t.params, t.losses) for t in run_many(opts, surface, surface.start, self.steps)
                ]
            sigma = jnp.float32(c["noise"].value)
            noisy = fan(opts, surface, surface.start, sigma, self.keys, steps=self.steps)
            self.fans = {
                label: Fan(*n, *cl, surface.min_value)
                for label, n, cl in zip(FACTORIES, noisy, self._clean, strict=True)
            }
        k = c["step"].value
        shown = self._shown()
        ks = np.arange(self.steps + 1)
        with self.figure.batch_update():
            data = self.figure.data
            if self._drawn_surface != surface.name:
                contour, stars = _surface_traces(surface.name)
                data[0].update(contour, overwrite=True)
                data[1].update(stars, overwrite=True)
                (x0, x1), (y0, y1) = surface.bounds
                self.figure.layout.xaxis.range = [x0, x1]
                self.figure.layout.yaxis.range = [y0, y1]
                self._drawn_surface = surface.name
            for label, f in self.fans.items():
                i = self._trace(label)
                visible = label in shown
                for j in range(7):
                    data[i + j].visible = visible
                if not visible:
                    continue
                lr = DEFAULT_LRS[surface.name][label]
                paths = f.params[:DRAWN, : k + 1]
                gaps = np.full((len(paths), 1, 2), np.nan, paths.dtype)
                lines = np.concatenate([paths, gaps], axis=1).reshape(-1, 2)
                data[i].x, data[i].y = lines[:, 0], lines[:, 1]
                data[i + 1].x, data[i + 1].y = f.params[:, k, 0], f.params[:, k, 1]
                mean = f.mean[: k + 1]
                data[i + 2].x, data[i + 2].y = mean[:, 0], mean[:, 1]
                n_div = int(f.diverged.sum())
                name = f"{label} (η={lr:.3g})"
                data[i + 2].name = name + (f" — {n_div} of {self.runs} runs diverged" if n_div else "")
                data[i + 3].x, data[i + 3].y = f.clean[: k + 1, 0], f.clean[: k + 1, 1]
                for j, q in enumerate(f.gap_quantiles[[0, 2, 1]]):  # lower edge, upper edge, median
                    data[i + 4 + j].x, data[i + 4 + j].y = (
                        ks[: k + 1],
                        np.where(np.isfinite(q), q, np.nan)[: k + 1],
                    )
            self.figure.layout.yaxis2.range = self._gap_range(surface, shown)
            self.figure.layout.title.text = (
                f"Noisy gradients on {surface.name}: g + σξ, σ = {c['noise'].value:.3g}, "
                f"{self.runs} runs per optimizer — iteration k = {k}"
            )


@functools.cache
def _surface_traces(name: str):
    """The contour and minima traces of a default surface, computed once per session."""
    surface = SURFACES[name]
    return plots.contour_trace(surface).to_plotly_json(), plots.minima_trace(surface).to_plotly_json()


def _gap_range_of(fans, min_value):
    """Log-axis range of the gap plot: from the lowest 10th percentile to 30x the starting gap."""
    lows = np.concatenate([f.gap_quantiles[0] for f in fans])
    lows = lows[np.isfinite(lows)]
    start = max(max(float(f.losses[0, 0]) - min_value for f in fans), 1e-12)
    lo = max(float(lows.min()) if lows.size else 1e-12, 1e-12)
    return [np.log10(lo) - 0.3, np.log10(start) + 1.5]
