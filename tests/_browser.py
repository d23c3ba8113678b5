"""Debian's Chromium driven by Playwright, offline: the launcher and the local servers the browser tests share.

Never ``playwright install`` (it downloads a browser; these machines reach no such server): the tests launch the
system ``chromium`` (``apt-get install -y chromium``) through ``executable_path``. A missing browser is a
failure whose message says how to install it, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
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
    if network not in ("abort", "hang"):
        raise ValueError(f"network must be 'abort' or 'hang', got {network!r}")
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        context.outside_requests = []  # every non-local URL the page asked for

        def route(r):
            context.outside_requests.append(r.request.url)
            if network == "abort":
                r.abort()
            # "hang": neither continue nor abort: the request stays pending, like a black-holed network

        context.route(lambda url: not is_local(url), route)
        try:
            yield context
        finally:
            context.close()


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
