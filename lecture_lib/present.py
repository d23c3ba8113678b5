"""Presenter mode: the notebooks as Voilà apps on 127.0.0.1, code hidden, projector fonts, nothing online.

``make present`` runs ``python -m lecture_lib.present notebooks``. Voilà renders each notebook with the
project's template ``lecture`` (``share/jupyter/voila/templates/lecture``: Voilà's ``lab`` template without
its CDN links, plus large type), found through ``JUPYTER_PATH``, which this module sets when it is missing.

    python -m lecture_lib.present notebooks            # the list of notebooks, on a free port
    python -m lecture_lib.present notebooks/01_first_and_second_order.ipynb --port 8866 --theme dark
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARE = ROOT / "share" / "jupyter"
TEMPLATE = "lecture"
DEFAULT_PORT = 8866  # Voilà's own default: an easy address to type in a lecture hall

# JAX's persistent compilation cache (as in the Makefile): a notebook's second opening skips most compiles.
JAX_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
}


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` if nothing listens there, else a port the system picks."""
    if _port_is_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lecture_lib.present",
        description="Serve the notebooks as Voilà apps on 127.0.0.1 (code hidden, projector fonts, offline).",
    )
    parser.add_argument(
        "path",
        nargs="?",
        default="notebooks",
        help="a folder of notebooks or one notebook (default: notebooks)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (default: {DEFAULT_PORT}, or a free one)"
    )
    parser.add_argument("--theme", choices=("light", "dark"), default="light", help="JupyterLab theme")
    parser.add_argument("--no-browser", action="store_true", help="only print the address; open no browser")
    parser.add_argument(
        "--show-tracebacks", action="store_true", help="show Python tracebacks in the page (for debugging)"
    )
    args = parser.parse_args(argv)
    if not Path(args.path).exists():
        parser.error(f"path must be a notebook or a folder of notebooks, got {args.path!r} (not found)")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    return args


def environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) with the project's Jupyter data folder first and JAX's cache set."""
    env = dict(os.environ if env is None else env)
    paths = [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(SHARE) not in paths:
        paths.insert(0, str(SHARE))
    env["JUPYTER_PATH"] = os.pathsep.join(paths)
    for key, value in JAX_CACHE.items():
        env.setdefault(key, value)
    return env


def plotly_package_data() -> str:
    """plotly's ``package_data``: its ``widgetbundle.js`` is FigureWidget's front-end code (see plots.py)."""
    import plotly

    return str(Path(plotly.__file__).parent / "package_data")


def voila_argv(path: str, port: int, *, theme: str = "light", open_browser: bool = True, tracebacks=False):
    """The Voilà command line of the presenter view (without the program name)."""
    argv = [
        str(path),
        f"--template={TEMPLATE}",
        f"--theme={theme}",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",  # the printed address must be the one served
        # plotly's widget code at voila/labextensions/widgetbundle.js, for the template to import early
        f"--VoilaConfiguration.extra_labextensions_path={plotly_package_data()}",
        f"--show_tracebacks={tracebacks}",
        # a failed claim check (an assert cell, e.g. a timing claim on a busy laptop) must not hide the rest
        "--VoilaExecutor.allow_errors=True",
    ]
    if not open_browser:
        argv.append("--no-browser")
    return argv


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = args.port if args.port is not None else free_port()
    os.environ.update(environment())
    if not (SHARE / "voila" / "templates" / TEMPLATE / "conf.json").exists():
        sys.exit(f"the presenter template is missing: {SHARE / 'voila' / 'templates' / TEMPLATE}")
    print(f"Presenter view: http://127.0.0.1:{port}/  (Ctrl+C stops it)", flush=True)
    print(
        "Each notebook runs in its own kernel when its page opens; the first opening takes 10-40 s.",
        flush=True,
    )

    from voila.app import main as voila_main

    options = dict(theme=args.theme, open_browser=not args.no_browser, tracebacks=args.show_tracebacks)
    sys.argv = ["voila", *voila_argv(args.path, port, **options)]
    return voila_main()


if __name__ == "__main__":
    sys.exit(main())
