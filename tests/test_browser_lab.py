"""A notebook in JupyterLab, in Debian's Chromium, offline: Run > Run All Cells, then the widgets show and a
slider redraws its figure.

JupyterLab runs isolated: 127.0.0.1, a free port, a token, a fresh root folder holding a copy of the notebook
(Lab saves what it runs; the repository's copy stays stripped) and fresh Jupyter config, data and runtime
folders. Non-local requests are aborted.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _browser import (
    ROOT,
    PageWatch,
    assert_figures_fill_their_width,
    browser,
    free_port,
    press_and_wait_for_redraw,
    server,
    wait_for,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeout

NOTEBOOK = ROOT / "notebooks" / "03_batch_vs_incremental.ipynb"
RUN_TIMEOUT = int(
    os.environ.get("LAB_RUN_TIMEOUT", "300")
)  # s for Run All Cells, with another worker busy beside it


@pytest.fixture(scope="module")
def lab():
    """JupyterLab on a free port with a token, in a temporary root; yields (base URL, token, notebook)."""
    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing"
    with tempfile.TemporaryDirectory(prefix="lab-test-") as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        root.mkdir()
        shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
        port, token = free_port(), secrets.token_hex(16)
        env = {
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp / "config" / "lab" / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "config" / "lab" / "workspaces"),
            "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
        }
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if os.getuid() == 0:
            cmd.append("--allow-root")  # containers and CI run as root
        base = f"http://127.0.0.1:{port}"
        with server(cmd, f"{base}/api", env=env, cwd=root):
            yield base, token, NOTEBOOK.name


DIALOGS: list[str] = []  # the modal dialogs Lab opened on its own (e.g. kernel choice on a fresh install)


def _dismiss_dialogs(page) -> None:
    """Accept any modal dialog Lab shows by itself (a fresh environment may ask which kernel to use); it would
    take every click. Its text is kept for the failure message."""
    for _ in range(5):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            return
        DIALOGS.append(dialog.first.inner_text()[:300])
        accept = dialog.first.locator("button.jp-mod-accept")
        if accept.count():
            accept.first.click()
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def _menu(page, menu: str, item: str):
    _dismiss_dialogs(page)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click(timeout=15_000)
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click(timeout=15_000)


PROMPTS_JS = (
    "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
)


def test_run_all_cells_then_a_slider_redraws(lab):
    base, token, name = lab
    with browser("abort") as context:
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{base}/lab/tree/{name}?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=120_000)
        wait_for(
            lambda: (
                page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").count()
                or page.locator("#jp-main-statusbar :text('Idle')").count()
            ),
            120,
            lambda: "the notebook's kernel never became idle",
        )
        start = time.monotonic()
        for attempt in range(4):  # a menu clicked while Lab still starts up can do nothing: try again
            try:
                _menu(page, "Run", "Run All Cells")
            except PlaywrightTimeout:  # a dialog or a busy page took the click: answer it, try again
                if attempt == 3:
                    raise
                _dismiss_dialogs(page)
                continue
            try:
                wait_for(
                    lambda: any(p != "[ ]:" for p in page.evaluate(PROMPTS_JS)), 30, lambda: "", poll=0.5
                )
                break
            except pytest.fail.Exception:
                page.keyboard.press("Escape")
        wait_for(
            lambda: all(re.fullmatch(r"\[\d+\]:", p) for p in page.evaluate(PROMPTS_JS)),
            RUN_TIMEOUT,
            lambda: f"Run All Cells did not finish: prompts {page.evaluate(PROMPTS_JS)}",
            poll=0.5,
        )
        ran = time.monotonic() - start
        tracebacks = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        errors = [t for t in tracebacks.all_inner_texts() if "Traceback" in t or "Error" in t]
        print("dialogs Lab opened by itself (accepted):", DIALOGS)
        assert not errors, f"{name}: cells raised in JupyterLab:\n" + "\n".join(errors)[:3000]

        plots = page.locator(".js-plotly-plot")
        wait_for(
            lambda: plots.count() and plots.filter(has=page.locator(".main-svg")).count() == plots.count(),
            90,
            lambda: (
                f"{name}: no plotly figure drawn ({plots.count()} containers); page errors {watch.errors}"
            ),
        )
        assert assert_figures_fill_their_width(page, name) > 0, f"{name}: no figure to measure"
        text = page.locator(".jp-Notebook").inner_text()
        assert "Error displaying widget" not in text, f"{name}: a widget failed to display in JupyterLab"

        outputs = page.locator(".jp-OutputArea-output").filter(has=page.locator(".js-plotly-plot"))
        panels = [o for o in outputs.all() if o.locator(".noUi-handle").count()]
        assert panels, f"{name}: no panel with a slider and a figure"
        for output in panels:
            output.scroll_into_view_if_needed()
            handle = output.locator(".noUi-handle").first
            now, top = handle.get_attribute("aria-valuenow"), handle.get_attribute("aria-valuemax")
            key = "ArrowLeft" if now and top and float(now) >= float(top) else "ArrowRight"
            press_and_wait_for_redraw(page, handle, key, output)
        time.sleep(0.5)
        assert not watch.errors, f"{name}: JavaScript errors in JupyterLab:\n" + "\n".join(watch.errors)
        assert not context.outside_requests, f"JupyterLab asked the internet for {context.outside_requests}"
        print(f"{name}: Run All Cells took {ran:.1f} s; {plots.count()} figures; {len(panels)} sliders moved")
