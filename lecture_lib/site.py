"""Static, offline HTML pages of the notebooks: ``python -m lecture_lib.site notebooks site [--only NAME]``.

Each notebook is executed (nbclient) with one extra first cell, :func:`static_mode`, that makes the kernel
display every panel as its stepped figure (:meth:`lecture_lib.panels.Panel.static_html`: precomputed frames
and plotly's own slider) and every plotly figure as plain HTML, instead of widgets that need a kernel. The
cell is removed again and nbconvert's ``lab`` template turns the notebook into ``<name>.html``, with the links
it would make to a CDN (require.js, MathJax, Mermaid, the widget manager) left out; the formulas of the
Markdown cells become MathML (``latex2mathml``), which the browser draws without any script.
Every page loads ``plotly.min.js`` once, from beside it (written from the installed plotly package), and
``index.html`` links them all. Nothing is fetched from the network: a page opens offline, from disk too.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

PLOTLY_JS = "plotly.min.js"
FIGURE_CONFIG = {"responsive": True, "displaylogo": False}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
DROP_MIMES = (WIDGET_MIME, "application/vnd.plotly.v1+json")

# nbconvert's lab template without its CDN links (require.js, widget manager, MathJax, Mermaid); plotly.js
# from beside the page; a link back to the index.
TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<script src="PLOTLY_JS"></script>
<style type="text/css">
.lecture-nav { max-width: 1200px; margin: 0.6em auto; font-family: var(--jp-ui-font-family); }
.lecture-static-note { color: #555; font-size: 0.9em; margin: 0.3em 0 1em 0; }
.lecture-static-readout { margin: 0.3em 0; }
</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="lecture-nav"><a href="index.html">&larr; all notebooks</a></nav>
{%- endblock body_header -%}
""".replace("PLOTLY_JS", PLOTLY_JS)


# ---- in the kernel ---------------------------------------------------------------------------------------


def static_mode(frames: int | None = None) -> None:
    """Make this IPython kernel show panels and plotly figures as static HTML (no widgets, no plotly.js).

    A panel shows :meth:`~lecture_lib.panels.Panel.static_html` (``frames`` values of its primary control;
    None: the panel's ``static_frames``); a ``go.Figure`` or ``FigureWidget`` shows its HTML, displayed or
    ``.show()``-n. The page that holds the output loads plotly.js once.
    """
    import ipywidgets as widgets
    import plotly.io as pio
    from IPython import get_ipython
    from IPython.display import HTML, display
    from plotly.basedatatypes import BaseFigure
    from plotly.io.base_renderers import MimetypeRenderer

    from lecture_lib.panels.base import Panel

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("static_mode() works inside an IPython kernel")

    class StaticRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"text/html": figure_html(fig_dict)}

    pio.renderers["lecture_static"] = StaticRenderer()
    pio.renderers.default = "lecture_static"
    printers = shell.display_formatter.ipython_display_formatter
    printers.for_type(Panel, lambda panel: display(HTML(panel.static_html(n=frames))))
    printers.for_type(BaseFigure, lambda fig: display(HTML(figure_html(fig))))
    note = '<p class="lecture-static-note"><em>(an interactive widget: run the notebook to use it)</em></p>'
    printers.for_type(widgets.DOMWidget, lambda w: display(HTML(note)))


def figure_html(fig) -> str:
    """A plotly figure (or its dict) as an HTML fragment that needs plotly.js loaded by the page."""
    import plotly.io as pio

    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        auto_play=False,
        config=FIGURE_CONFIG,
        default_height=525,
        validate=False,
    )


# ---- the builder -----------------------------------------------------------------------------------------


@dataclass
class Page:
    notebook: Path
    path: Path
    title: str
    seconds: float


def title_of(nb) -> str:
    """The notebook's first Markdown heading, without the '#'s."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def execute(path: Path, *, frames: int | None = None, timeout: int = 600):
    """The notebook at ``path`` executed in static mode (in its own folder), the setup cell removed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    setup = nbformat.v4.new_code_cell(
        f"import lecture_lib.site\nlecture_lib.site.static_mode(frames={frames!r})"
    )
    nb.cells.insert(0, setup)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
        store_widget_state=False,
    )
    client.execute()
    nb.cells.pop(0)
    for cell in nb.cells:  # number the cells as if the setup cell had never run
        if cell.cell_type == "code" and cell.execution_count:
            cell.execution_count -= 1
            for out in cell.outputs:
                if out.get("execution_count"):
                    out["execution_count"] -= 1
    return nb


_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)  # fenced blocks and code spans: no math inside
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\s)([^$\n]+?)(?<![\s\\])\$(?!\d)", re.S)


def tex_to_mathml(markdown: str) -> str:
    """``$…$`` and ``$$…$$`` in Markdown replaced by MathML (code spans and blocks untouched).

    A formula latex2mathml cannot convert stays TeX source; without latex2mathml installed, all do."""
    try:
        from latex2mathml.converter import convert
    except ImportError:  # pragma: no cover - in the [test] extra, which make site installs
        return markdown

    def one(match):
        display, tex = (True, match.group(1)) if match.group(1) is not None else (False, match.group(2))
        try:
            mathml = convert(tex.strip(), display="block" if display else "inline")
        except Exception:  # an unsupported macro: the reader still gets the TeX
            return match.group(0)
        return mathml.replace("\n", "")

    parts = _CODE.split(markdown)
    return "".join(part if i % 2 else _MATH.sub(one, part) for i, part in enumerate(parts))


def strip_widgets(nb) -> None:
    """Drop the widget and plotly outputs a page cannot show without a kernel (static_mode leaves none in
    practice), and the saved widget state, whose presence makes the template load a widget manager."""
    nb.metadata.pop("widgets", None)
    note = "<p><em>(an interactive widget: run the notebook to use it)</em></p>"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data or not any(m in data for m in DROP_MIMES):
                continue
            was_widget = WIDGET_MIME in data
            for mime in DROP_MIMES:
                data.pop(mime, None)
            if was_widget and "text/html" not in data:
                data["text/html"] = note
                data.pop("text/plain", None)


def to_html(nb, name: str) -> str:
    """The executed notebook as one HTML page (nbconvert's lab template, CDN links removed)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    strip_widgets(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = tex_to_mathml(cell.source)
    nb.metadata["title"] = title_of(nb) or name
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"lecture_site.html.j2": TEMPLATE})],
        template_file="lecture_site.html.j2",
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return body


class _Loads(HTMLParser):
    """Collects the URLs a page would load (scripts, styles, images, frames, CSS imports), not its links."""

    ATTRS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "embed": "src", "link": "href"}
    CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+)["']?((?:https?:)?//[^"')\s]+)""")
    JS_IMPORT = re.compile(r"""import\(\s*["']((?:https?:)?//[^"']+)""")

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._tag = None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        attrs = dict(attrs)
        url = attrs.get(self.ATTRS.get(tag, ""))
        if url:
            self.urls.append(url)
        self.urls += self.CSS_URL.findall(attrs.get("style") or "")

    def handle_data(self, data):
        if self._tag == "style":
            self.urls += self.CSS_URL.findall(data)
        elif self._tag == "script":
            self.urls += self.JS_IMPORT.findall(data)


def remote_loads(page: str) -> list[str]:
    """The URLs on other hosts that ``page`` would load (an offline page has none)."""
    parser = _Loads()
    parser.feed(page)
    return [u for u in parser.urls if re.match(r"(?:https?:)?//", u)]


def write_index(out: Path, pages: list[Page]) -> Path:
    items = "\n".join(
        f'<li><a href="{html.escape(p.path.name)}">{html.escape(p.title or p.notebook.stem)}</a>'
        f' <span class="meta">{html.escape(p.notebook.name)}, {p.path.stat().st_size / 1e6:.1f} MB</span>'
        "</li>"
        for p in pages
    )
    index = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Training Neural Networks: Optimization II</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 2em auto; padding: 0 1em; }}
p {{ line-height: 1.5; }}
li {{ margin: 0.5em 0; font-size: 1.15em; }}
.meta {{ color: #777; font-size: 0.8em; }}
</style>
</head>
<body>
<h1>Training Neural Networks: Optimization II</h1>
<p>The lecture's notebooks, executed, as static pages: every figure is interactive (zoom, hover, and a slider
with precomputed values where the notebook has a live control). Nothing here loads from the network. To move
every control, edit the code and check the claims, run the notebooks themselves (<code>make lab</code>).</p>
<ol>
{items}
</ol>
</body>
</html>
"""
    path = out / "index.html"
    path.write_text(index, encoding="utf-8")
    return path


def select(notebooks: list[Path], only: list[str] | None) -> list[Path]:
    """The notebooks named by ``only`` (file name, stem or a prefix of it, e.g. ``00``); all without it."""
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.name == o or nb.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(nb.name == o or nb.stem.startswith(o) for nb in notebooks)]
    if missing:
        raise SystemExit(f"no notebook matches {missing}; there are {[nb.name for nb in notebooks]}")
    return chosen


def build(
    src: Path, out: Path, *, only: list[str] | None = None, frames: int | None = None, timeout: int = 600
) -> list[Page]:
    """Execute and convert the notebooks of ``src`` into ``out``; write plotly.js and the index.

    Returns the pages built now. Raises RuntimeError, after trying every notebook, if one failed to run or
    its page would load something from the network."""
    import plotly.offline

    notebooks = select(sorted(Path(src).glob("*.ipynb")), only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / PLOTLY_JS
    js.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    print(f"wrote {js} ({js.stat().st_size / 1e6:.1f} MB, loaded once by every page)", flush=True)
    pages, failures = [], []
    for path in notebooks:
        t0 = time.perf_counter()
        try:
            nb = execute(path, frames=frames, timeout=timeout)
            page = to_html(nb, path.stem)
        except Exception as err:  # one broken notebook should not hide the state of the others
            failures.append(f"{path.name}: {type(err).__name__}: {str(err)[-2000:]}")
            print(f"FAILED {path.name}: {type(err).__name__}", flush=True)
            continue
        remote = remote_loads(page)
        if remote:
            failures.append(f"{path.name} would load from the network: {sorted(set(remote))[:5]}")
        target = out / f"{path.stem}.html"
        target.write_text(page, encoding="utf-8")
        pages.append(Page(path, target, title_of(nb), time.perf_counter() - t0))
        size = target.stat().st_size / 1e6
        print(f"wrote {target} ({size:.1f} MB) in {pages[-1].seconds:.0f} s", flush=True)
    listed = []  # the index lists every notebook whose page exists, built now or before
    for path in sorted(Path(src).glob("*.ipynb")):
        built = next((p for p in pages if p.notebook == path), None)
        target = out / f"{path.stem}.html"
        if built is None and target.exists():
            import nbformat

            built = Page(path, target, title_of(nbformat.read(path, as_version=4)), 0.0)
        if built is not None:
            listed.append(built)
    index = write_index(out, listed)
    print(f"wrote {index} ({len(listed)} pages)", flush=True)
    if failures:
        raise RuntimeError("static site incomplete:\n" + "\n".join(failures))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lecture_lib.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", type=Path, help="folder of the notebooks")
    parser.add_argument("out", type=Path, help="folder for the pages (created)")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="notebooks to build: file name, stem or prefix"
    )
    parser.add_argument("--frames", type=int, default=None, help="values per stepped panel (default 13)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        pages = build(args.notebooks, args.out, only=args.only, frames=args.frames, timeout=args.timeout)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1
    total = sum(p.path.stat().st_size for p in pages) / 1e6
    print(
        f"{len(pages)} pages, {total:.1f} MB, in {time.perf_counter() - t0:.0f} s:",
        f"open {args.out / 'index.html'}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
