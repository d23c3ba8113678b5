"""Debian's Chromium driven by Playwright, offline: the launcher and local servers the browser tests share.

Never ``playwright install`` (it downloads a browser; these machines reach no such server): the tests launch
the system ``chromium`` (``apt-get install -y chromium``) through ``executable_path``. A missing browser is a
failure whose message says how to install it, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

INSTALL_HINT = (
    "the browser tests need Debian's Chromium: run `sudo apt-get install -y chromium` "
    "(.ci/run does this in CI); `playwright install` is not used and would fail offline"
)


def chromium_path() -> str:
    """The system Chromium, or a test failure that says how to install it."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(INSTALL_HINT, pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_local(url: str) -> bool:
    """Requests the page may make: to the test's own server, or data/blob URLs."""
    return url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:"))


@contextlib.contextmanager
def browser(network: str = "abort") -> Iterator:
    """A fresh Chromium profile (``launch_persistent_context``); non-local requests aborted or left hanging.

    ``network="abort"`` fails every request that leaves 127.0.0.1 at once; ``"hang"`` never answers them (a
    black-holed network: the case where a page waiting for a CDN never renders). Yields the browser context.
    """
    with browsers(network) as (context,):
        yield context


@contextlib.contextmanager
def browsers(*networks: str) -> Iterator[tuple]:
    """Several browsers at once, one per entry of ``networks`` (see :func:`browser`), from one Playwright
    (its sync API cannot be nested). Yields a tuple of browser contexts."""
    for network in networks:
        if network not in ("abort", "hang"):
            raise ValueError(f"network must be 'abort' or 'hang', got {network!r}")
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with contextlib.ExitStack() as stack:
        p = stack.enter_context(sync_playwright())
        contexts = []
        for network in networks:
            profile = stack.enter_context(tempfile.TemporaryDirectory(prefix="chromium-profile-"))
            context = p.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS
            )
            stack.callback(context.close)
            context.outside_requests = []  # every non-local URL the page asked for
            context.route(lambda url: not is_local(url), _router(context, network))
            contexts.append(context)
        yield tuple(contexts)


def _router(context, network: str):
    def route(r):
        context.outside_requests.append(r.request.url)
        if network == "abort":
            r.abort()
        # "hang": neither continue nor abort: the request stays pending, like a black-holed network

    return route


@contextlib.contextmanager
def server(cmd: list[str], url: str, *, env: dict | None = None, cwd: Path = ROOT) -> Iterator[str]:
    """Run a local server (bound to 127.0.0.1 by ``cmd``) until it answers ``url``; stop it afterwards."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"{cmd[0]} exited with {proc.returncode}:\n{log.read()[-4000:]}")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"no answer from {url} within 120 s:\n{log.read()[-4000:]}")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- what a page shows: console errors, widget models, plotly figures, slider redraws ------------------------

# plotly's FigureWidget is an anywidget; its models name the Python class they mirror.
FIGURE_WIDGET_ID = "plotly.graph_objs._figurewidget.FigureWidget"


class PageWatch:
    """The console errors and uncaught exceptions of a page, as they happen; with ``kernel``, also every error
    the kernel reports over the page's websocket (an exception in a widget callback: the page shows nothing,
    yet the kernel spent the time formatting a traceback while the next slider move waited)."""

    def __init__(self, page, kernel: bool = False):
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console.error: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        if kernel:  # the page's websockets, from before the page opens them
            page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload):
        # never raise here: an exception in a listener stalls Playwright's event dispatch (Lab's other
        # websockets carry JSON without a kernel message's header)
        try:
            message = jupyter_message(payload)
            error = message["header"]["msg_type"] == "error"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error):
            return  # not a Jupyter message
        if error:
            content = message.get("content") or {}
            where = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(content.get("traceback", [])[-3:]))[-1500:]
            self.errors.append(f"kernel error: {content.get('ename')}: {content.get('evalue')}\n{where}")


def jupyter_message(payload: str | bytes) -> dict:
    """A kernel message from a websocket frame: JSON text, or Jupyter's binary v1 protocol (a count n, n byte
    offsets, then the channel, header, parent header, metadata, content and buffers)."""
    if isinstance(payload, str):
        return json.loads(payload)
    (n,) = struct.unpack_from("<Q", payload, 0)
    offsets = [*struct.unpack_from(f"<{n}Q", payload, 8), len(payload)]
    parts = [payload[offsets[i] : offsets[i + 1]] for i in range(n)]
    return {"channel": parts[0].decode(), "header": json.loads(parts[1]), "content": json.loads(parts[4])}


# The FigureWidgets inside some top-level widget models (a figure, or a box of boxes holding figures), asked
# of the page's widget manager (Voilà's ``window.jupyterapp.widgetManager``). A model the manager cannot
# produce ("widget model not found") is listed as missing.
FIGURES_EXPECTED_JS = """async ([ids, figureId]) => {
  const manager = window.jupyterapp && window.jupyterapp.widgetManager;
  if (!manager) return { figures: -1, missing: ["no widget manager on the page"] };
  const missing = [];
  let figures = 0;
  const count = (model) => {
    if (model.get("_anywidget_id") === figureId) figures += 1;
    for (const child of model.get("children") || []) count(child);
  };
  // a model that never arrives must fail with a message, not leave a promise pending: Chromium collects a
  // pending, unreferenced promise and Playwright then reports "Resulting promise was garbage collected"
  const inTime = (promise, ms) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`no model after ${ms / 1000} s`)), ms))]);
  for (const id of ids) {
    try {
      count(await inTime(manager.get_model(id), 30000));
    } catch (error) {
      missing.push(`${id}: ${error}`);
    }
  }
  return { figures, missing };
}"""


def figures_expected(page, top: list[str]) -> int:
    """How many FigureWidgets the widgets ``top`` (model ids) display; fails if a model cannot be created."""
    try:
        result = page.evaluate(FIGURES_EXPECTED_JS, [top, FIGURE_WIDGET_ID])
    except Exception as error:  # playwright's Error; a collected promise is the driver's, not the page's
        if "garbage collected" not in str(error):
            raise
        result = page.evaluate(FIGURES_EXPECTED_JS, [top, FIGURE_WIDGET_ID])
    if result["missing"]:
        pytest.fail("widget models missing:\n" + "\n".join(result["missing"]), pytrace=False)
    return result["figures"]


def wait_for(predicate, timeout: float, what: str, poll: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; fail with ``what()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s: {what()}", pytrace=False)
        time.sleep(poll)


# Each drawn plotly figure without a fixed layout width: [its drawn width, its element's width]. plotly 7's
# anywidget view draws a figure once at the element's width of that moment; a figure drawn before the page
# laid it out stayed at plotly's default 700 px in a 1,334 px column (lecture_lib.plots' loader fixes it).
FIGURE_WIDTHS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')]
  .filter(p => p._fullLayout && !(p.layout && p.layout.width) && p.clientWidth > 0)
  .map(p => [Math.round(p._fullLayout.width), p.clientWidth])"""


def assert_figures_fill_their_width(page, what: str, timeout: float = 15.0) -> int:
    """Every drawn figure without a fixed width is as wide as its element (within 2 px), also after the
    window narrows and widens again (a laptop's window, then the projector). Returns the figures checked."""

    def mismatched():
        return [w for w in page.evaluate(FIGURE_WIDTHS_JS) if abs(w[0] - w[1]) > 2]

    size = page.viewport_size or {"width": 1400, "height": 900}
    checked = len(page.evaluate(FIGURE_WIDTHS_JS))
    for width in (size["width"], int(size["width"] * 0.7), size["width"]):
        page.set_viewport_size({"width": width, "height": size["height"]})
        wait_for(
            lambda: not mismatched(),
            timeout,
            lambda width=width: (
                f"{what}: figures drawn at another width than their element's at a {width} px window "
                f"([drawn, element] px): {mismatched()}"
            ),
        )
    return checked


# Installed in a page: the time of the last keydown and of every change inside a plotly figure's SVG.
REDRAW_PROBE = """() => {
  if (window.__redraw) return;
  const probe = window.__redraw = { key: 0, changes: [] };
  document.addEventListener("keydown", () => { probe.key = performance.now(); }, true);
  new MutationObserver((records) => {
    const now = performance.now();
    for (const r of records) {
      const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (node && node.closest(".js-plotly-plot")) { probe.changes.push(now); break; }
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
}"""


def plot_signature(locator) -> str:
    """The SVG markup of every figure in ``locator`` (a figure's content, to compare before and after)."""
    svgs = locator.locator(".js-plotly-plot .main-svg")
    return "".join(svgs.evaluate_all("els => els.map(e => e.outerHTML)"))


def press_and_wait_for_redraw(page, handle, key: str, figures, timeout: float = 20.0) -> float:
    """Press ``key`` on a slider handle once the page is quiet; milliseconds from the key to the first change
    of a figure's SVG in ``figures`` (a locator). Fails if nothing changes within ``timeout`` seconds."""
    page.evaluate(REDRAW_PROBE)
    # quiet: no figure changed for 300 ms
    wait_for(
        lambda: page.evaluate("() => performance.now() - (window.__redraw.changes.at(-1) ?? 0) > 300"),
        timeout,
        lambda: "the figures never stopped changing",
        poll=0.05,
    )
    before = plot_signature(figures)
    start = page.evaluate("() => (window.__redraw.changes = [], performance.now())")
    handle.press(key)
    wait_for(
        lambda: page.evaluate("() => window.__redraw.changes.length") and plot_signature(figures) != before,
        timeout,
        lambda: f"pressing {key} on a slider did not change its figure",
        poll=0.02,
    )
    key_time, first = page.evaluate("() => [window.__redraw.key, window.__redraw.changes[0]]")
    return first - max(key_time, start)
