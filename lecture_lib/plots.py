"""Plotly figure builders: they return figures and never show them.

One palette for every notebook (Okabe-Ito, readable by colour-blind viewers and on projectors), large fonts,
and the helpers that turn library results (surfaces, trajectories) into traces.
"""

from __future__ import annotations

import base64
import importlib.util
import sys
import types


def _defer_rfc3987_syntax() -> None:
    """Put off building ``rfc3987_syntax``'s Lark grammar (1.5-1.8 s) until an IRI is actually checked.

    ``plotly.basewidget`` imports nbformat, nbformat imports jsonschema, and jsonschema's format module does
    ``from rfc3987_syntax import is_valid_syntax`` (installed as its ``format-nongpl`` extra, for Jupyter's
    server), whose import compiles the grammar: a cost in every kernel, for the "iri" / "iri-reference"
    formats that nothing in a kernel checks. Until then a stand-in module serves: its ``is_valid_syntax`` (or
    any other attribute) imports the real package and delegates, so every check works as before, only the
    first one pays. Blocking the import (``sys.modules["rfc3987_syntax"] = None``) would instead drop those
    two formats from jsonschema's checkers, silently. A no-op when already imported or not installed.
    """
    name = "rfc3987_syntax"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)  # finds the package without running it
    if spec is None:
        return
    stub = types.ModuleType(name)
    stub.__path__ = list(spec.submodule_search_locations or [])  # ``import rfc3987_syntax.utils`` still works

    def real():
        if sys.modules.get(name) is stub:
            del sys.modules[name]
        return importlib.import_module(name)

    stub.is_valid_syntax = lambda *args, **kwargs: real().is_valid_syntax(*args, **kwargs)
    stub.__getattr__ = lambda attr: getattr(real(), attr)
    sys.modules[name] = stub


_defer_rfc3987_syntax()

import numpy as np  # noqa: E402  (after the stand-in: plotly's imports reach jsonschema)
import plotly.graph_objects as go  # noqa: E402

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


# ---- static pages: a figure stepped through a control's values, with plotly's own slider ------------------

SLIDER_SPACE = 120  # px added below a stepped figure for its slider


def _float32(obj):
    """float64 arrays as float32 (half the bytes in a page), in nested dicts and lists too; the rest as is.

    A ``FigureWidget`` holds its arrays base64-encoded (plotly's typed-array spec ``{"dtype", "bdata"}``);
    those that are float64 come back as float32 numpy arrays."""
    if isinstance(obj, dict):
        if obj.get("dtype") == "f8" and isinstance(obj.get("bdata"), str):
            array = np.frombuffer(base64.b64decode(obj["bdata"]), np.float64)
            shape = obj.get("shape")
            if shape:
                array = array.reshape([int(n) for n in str(shape).replace(" ", "").split(",") if n])
            return _float32(array)
        return {k: _float32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_float32(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype == np.float64:
        finite = np.abs(obj[np.isfinite(obj)])
        if finite.size == 0 or finite.max() < 1e38:
            return obj.astype(np.float32)
    return obj


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _keys_union(dicts: list[dict]) -> dict:
    """The nested keys present in any of ``dicts`` (a dict of dicts, leaves None)."""
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, dict):
                out[k] = _keys_union([out[k], v] if isinstance(out.get(k), dict) else [v])
            else:
                out.setdefault(k, None)
    return out


def _fill(d: dict, keys: dict) -> dict:
    """``d`` with every key of ``keys`` that it lacks set to None: plotly then resets it to its default, so a
    frame fully determines what it shows whatever frame came before."""
    out = dict(d)
    for k, sub in keys.items():
        if k not in out:
            out[k] = None
        elif isinstance(sub, dict) and isinstance(out[k], dict):
            out[k] = _fill(out[k], sub)
    return out


def stepped_figure(
    snapshots: list[dict],
    labels: list[str],
    *,
    active: int = 0,
    prefix: str = "",
    values: list[str] | None = None,
) -> go.Figure:
    """One figure that replays ``snapshots`` (``fig.to_dict()`` of one figure at several values of a control)
    with plotly's own slider: a static page shows it without a kernel.

    ``snapshots[active]`` is the figure drawn first. Every snapshot becomes a frame that carries only the
    traces and top-level layout keys that differ between snapshots (a contour that never changes is stored
    once). The slider's steps are labelled ``labels`` (``prefix`` before the current one) and carry ``values``
    (plotly's ``step.value``, for scripts; the labels without it); a play button steps through them in order.
    """
    if len(snapshots) != len(labels) or not snapshots:
        raise ValueError(f"need one label per snapshot, got {len(snapshots)} snapshots, {len(labels)} labels")
    snaps = [
        _float32({"data": list(s.get("data", [])), "layout": dict(s.get("layout", {}))}) for s in snapshots
    ]
    n_traces = max(len(s["data"]) for s in snaps)
    for s in snaps:  # a trace that exists in only some snapshots is hidden in the others
        for i in range(len(s["data"]), n_traces):
            kind = next(t["data"][i].get("type", "scatter") for t in snaps if len(t["data"]) > i)
            s["data"].append({"type": kind, "visible": False})
    base = snaps[active]
    changed = [i for i in range(n_traces) if any(not _same(s["data"][i], base["data"][i]) for s in snaps)]
    layout_keys = sorted(
        {k for s in snaps for k in s["layout"] if not _same(s["layout"].get(k), base["layout"].get(k))}
    )
    trace_keys = {i: _keys_union([s["data"][i] for s in snaps]) for i in changed}
    frames = [
        dict(
            name=str(j),
            traces=changed,
            data=[_fill(s["data"][i], trace_keys[i]) for i in changed],
            layout={k: s["layout"].get(k) for k in layout_keys},
        )
        for j, s in enumerate(snaps)
    ]
    layout = dict(base["layout"])
    margin = dict(layout.get("margin") or {})
    bottom = margin.get("b", 80)
    margin["b"] = bottom + SLIDER_SPACE
    layout["margin"] = margin
    layout["height"] = (layout.get("height") or 450) + SLIDER_SPACE
    go_to = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    # tick labels that would overlap (about 7 px a character, a 900 px rail) are hidden; the current one shows
    wide = 7 * max(map(len, labels)) * len(labels) > 900
    layout["sliders"] = [
        dict(
            active=active,
            x=0.1,
            len=0.9,
            y=0,
            yanchor="top",
            pad=dict(t=bottom + 20, b=0),
            currentvalue=dict(prefix=prefix, font=dict(size=16, color="#222")),
            font=dict(size=12, color="rgba(0,0,0,0)" if wide else "#444"),
            steps=[
                dict(method="animate", label=label, value=value, args=[[str(j)], go_to])
                for j, (label, value) in enumerate(zip(labels, values or labels, strict=True))
            ],
        )
    ]
    if len(snaps) > 2:
        play = dict(
            label="▶",
            method="animate",
            args=[None, dict(go_to, frame=dict(duration=500, redraw=True), fromcurrent=True)],
        )
        layout["updatemenus"] = [
            dict(
                type="buttons",
                showactive=False,
                x=0,
                xanchor="left",
                y=0,
                yanchor="top",
                pad=dict(t=bottom + 50, r=10),
                buttons=[play],
            )
        ]
    return go.Figure(dict(data=base["data"], layout=layout, frames=frames))


# -- one plotly.js per page for every FigureWidget -----------------------------------------------------------
# plotly 7's FigureWidget is an anywidget whose front-end code (``_esm``, a 5 MB bundle) travels with every
# figure. anywidget 0.11 imports it once per figure, from a fresh blob URL, and gives each figure 2 s to be
# ready; a late figure logs "[anywidget] Failed to initialize model." and then drops every update from Python
# (or its panel is missing: "widget model not found"). One import takes 1-2.5 s on a 2-core machine, and Voilà
# creates all models of a page at once: six figures meant six parallel imports; pages failed 4 times in 10.
# Here every FigureWidget gets a 2 kB loader instead, ready at once: plotly's model starts when the bundle is
# there, replaying the Python -> JavaScript messages that came meanwhile (unless a full ``_widget_data``
# superseded them), and views wait for it. The bundle is imported once per page: the copy that the presenter
# template (share/jupyter/voila/templates/lecture) starts importing while the notebook runs, else the source
# that one hidden widget per kernel (``_PlotlyBundle``, created with the first figure) brings to the page.
_SLOT_JS = """\
const key = Symbol.for("lecture_lib.plotly_widget.%(digest)s");

function slot() {
  if (!globalThis[key]) {
    let resolve, reject;
    const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
    promise.catch(() => {});
    globalThis[key] = { promise, resolve, reject, started: false, source: null };
  }
  return globalThis[key];
}

function load(source) {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  return import(/* webpackIgnore: true */ url).finally(() => URL.revokeObjectURL(url));
}

// plotly's widget module, once per page; ``source``: its code, if this widget brings it.
function bundle(source) {
  const s = slot();
  if (source) s.source = source;
  if (s.started) return s.promise;
  const early = globalThis[Symbol.for("lecture_lib.plotly_widget")];
  if (!early && !s.source) return s.promise;  // the widget that brings the source starts it
  s.started = true;
  (early || Promise.reject(new Error("no early copy"))).then(s.resolve, () => {
    if (s.source) load(s.source).then(s.resolve, s.reject);
    else s.started = false;
  });
  return s.promise;
}
"""

_CARRIER_JS = (
    _SLOT_JS
    + """
export default () => ({
  initialize({ model }) {
    bundle(model.get("source"));
  },
});
"""
)

_WIDGET_LOADER = (
    _SLOT_JS
    + """
const MESSAGES = ["addTraces", "deleteTraces", "moveTraces", "restyle", "relayout", "update", "animate",
  "removeLayoutProps", "removeTraceProps"].map((name) => `_py2js_${name}`);

export default () => {
  let plotly;
  return {
    initialize({ model, experimental }) {
      const missed = [];
      const listeners = MESSAGES.map((name) => [`change:${name}`, () => {
        const value = model.get(name);
        if (value !== null && value !== undefined) missed.push([name, value]);
      }]);
      listeners.push(["change:_widget_data", () => { missed.length = 0; }]);
      for (const [event, listener] of listeners) model.on(event, listener);
      plotly = bundle(null).then((module) => {
        for (const [event, listener] of listeners) model.off(event, listener);
        const widget = module.default();
        widget.initialize({ model, experimental });
        for (const [name, value] of missed) {
          model.set(name, value);
          model.set(name, null);
        }
        return widget;
      });
      plotly.catch((error) => console.error("[lecture_lib] plotly's widget code failed to load", error));
    },
    async render({ model, el, experimental }) {
      const cleanup = await (await plotly).render({ model, el, experimental });
      // plotly 7's view sizes a figure once, when it draws it, and never again (its resize handling
      // waits for JupyterLab's layout messages, which anywidget does not pass on): a figure drawn before
      // the page laid it out kept plotly's default 700 px width in a 1,400 px page. Follow the element's
      // width instead (the figure's config has responsive: true); a figure given a width keeps it.
      const fit = () => {
        const layout = el._fullLayout;
        const fixed = layout && (layout.autosize === false || (el.layout && el.layout.width));
        if (el._responsiveChartHandler && layout && !fixed && el.clientWidth > 0
            && Math.abs(layout.width - el.clientWidth) > 1) el._responsiveChartHandler();
      };
      let frame = 0;
      const later = () => { cancelAnimationFrame(frame); frame = requestAnimationFrame(fit); };
      const observer = new ResizeObserver(later);
      observer.observe(el);
      if (typeof el.on === "function") el.on("plotly_afterplot", later);
      return () => {
        observer.disconnect();
        cancelAnimationFrame(frame);
        if (typeof cleanup === "function") cleanup();
      };
    },
  };
};
"""
)

_CARRIER = None  # the kernel's _PlotlyBundle widget


def share_widget_bundle() -> None:
    """Make every ``go.FigureWidget`` created from now on use the loader above (idempotent)."""
    import hashlib

    import anywidget
    import traitlets
    from plotly.basewidget import BaseFigureWidget

    global _CARRIER
    if _CARRIER is not None:
        return
    source = str(BaseFigureWidget._esm)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]

    class _PlotlyBundle(anywidget.AnyWidget):
        """Hidden: brings plotly's widget code to the page once per kernel."""

        _esm = _CARRIER_JS % {"digest": digest}
        source = traitlets.Unicode().tag(sync=True)

    original_init = BaseFigureWidget.__init__

    def __init__(self, *args, **kwargs):
        global _CARRIER
        if not _CARRIER:
            _CARRIER = _PlotlyBundle(source=source)
        original_init(self, *args, **kwargs)
        # plotly.js then keeps a resize handler on the figure's element, which the loader calls when the
        # element's width changes (see render above)
        self._config = {"responsive": True, **self._config}

    # After a redraw, plotly.js sends the traces' computed defaults back (``_js2py_traceDeltas``); a float32
    # array it re-typed comes back as an object {"0": y0, "1": y1, ...}. plotly's Python side then takes the
    # numpy array it holds for a nested property and tests its truth: ValueError, on the second move of a
    # slider of many panels, and the kernel spent ~2 s formatting the traceback while the next move waited
    # (seen in the browser, Voila and Lab). A numpy array is the panel's own data: keep it, drop the echo.
    original_remove = BaseFigureWidget._remove_overlapping_props

    def _remove_overlapping_props(input_data, delta_data, prop_path=()):
        if isinstance(input_data, dict) and isinstance(delta_data, dict):
            delta_data = {
                p: v for p, v in delta_data.items()
                if not (isinstance(input_data.get(p), np.ndarray) and isinstance(v, (dict, list)))
            }  # fmt: skip
        return original_remove(input_data, delta_data, prop_path)

    BaseFigureWidget._esm = _WIDGET_LOADER % {"digest": digest}
    BaseFigureWidget.__init__ = __init__
    BaseFigureWidget._remove_overlapping_props = staticmethod(_remove_overlapping_props)
    _CARRIER = False  # patched; the carrier itself comes with the first figure


share_widget_bundle()
