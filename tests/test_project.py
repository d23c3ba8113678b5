"""Promises about the project itself: one dependency list, clean notebooks, nothing from a CDN, ruff-clean."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUFF_PATHS = ["lecture_lib", "tests", "benchmarks", "notebooks"]

# Anything that would make a page or a figure fetch code from the internet: fails offline, in a lecture hall.
# Lower case (files are lower-cased before the search): plotly's renderers and options that load plotly.js or
# require.js from a CDN, and the CDNs that pages, templates (share/) and widgets reach for.
CDN_MARKERS = [
    b"notebook_connected",  # plotly renderers: plotly.js from cdn.plot.ly
    b"iframe_connected",
    b"connected=true",  # plotly.offline.init_notebook_mode(connected=True)
    b'include_plotlyjs="cdn"',
    b"include_plotlyjs='cdn'",
    b'include_plotlyjs="require"',  # require.js from a CDN
    b"include_plotlyjs='require'",
    b"cdn.plot.ly",
    b"cdn.jsdelivr",
    b"unpkg.com",
    b"cdnjs",
    b"cdn.mathjax",
    b"fonts.googleapis",
    b"ajax.googleapis",
    b"code.jquery.com",
    b"bootstrapcdn",
    b"esm.sh/",
    b"cdn.skypack",
    b"jspm.io",
]
# Generated, vendored or ignored folders, and the tests, which must name the markers to look for them.
SCAN_SKIP_DIRS = {
    ".git",
    ".venv",
    ".jax_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    ".whl",
    ".gl",
    "__pycache__",
    "build",
    "site",
    "node_modules",
}


def _normalized(requirement: str) -> str:
    r = Requirement(requirement)
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    marker = f"; {r.marker}" if r.marker else ""
    return f"{canonicalize_name(r.name)}{extras}{r.specifier}{marker}"


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _conda_pip_entries() -> list[str]:
    sections = [d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, f"environment.yml must have exactly one pip: section, found {len(sections)}"
    return sections[0]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = {_normalized(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}

    entries = _conda_pip_entries()
    assert "-e ." in entries, "environment.yml's pip: section must install the repository itself with '-e .'"
    # Lines starting with '-' are pip options (-e ., --extra-index-url ...), not packages.
    listed = {_normalized(e) for e in entries if not e.startswith("-")}

    only_pyproject, only_environment = sorted(expected - listed), sorted(listed - expected)
    assert not (only_pyproject or only_environment), (
        "environment.yml (pip:) and pyproject.toml (dependencies + [test]) disagree:\n"
        f"  only in pyproject.toml:  {only_pyproject}\n"
        f"  only in environment.yml: {only_environment}"
    )


def test_environment_yml_python_satisfies_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert len(pins) == 1, f"environment.yml must pin python exactly once (python=3.X), found {pins}"
    version = Version(pins[0].removeprefix("python="))
    assert version in SpecifierSet(project["requires-python"]), (
        f"environment.yml pins {pins[0]}, outside pyproject's requires-python {project['requires-python']!r}"
    )


def test_start_here_notebook_exists():
    # Guards the test below against passing vacuously on an empty notebooks/ folder.
    assert ROOT / "notebooks" / "00_start_here.ipynb" in NOTEBOOKS, (
        f"notebooks/00_start_here.ipynb is missing; notebooks found: {[p.name for p in NOTEBOOKS]}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_valid_v4_and_stripped(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    assert nb.nbformat == 4, f"{path.name}: nbformat {nb.nbformat}, expected 4"
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or execution counts; run `make format`"
    # Saved widget state is output too, and can hold whole figures.
    assert "widgets" not in nb.metadata, (
        f"{path.name}: notebook metadata holds widget state; run `make format`"
    )


def _scanned_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath)
        dirnames[:] = [
            d
            for d in dirnames
            if d not in SCAN_SKIP_DIRS
            and not d.endswith(".egg-info")
            and not (here == ROOT and d == "tests")
            and not (here / d / "pyvenv.cfg").exists()  # any other virtual environment
        ]
        for name in filenames:
            yield here / name


def test_nothing_loads_from_a_cdn():
    scanned = {p.relative_to(ROOT).as_posix() for p in _scanned_files()}
    template = "share/jupyter/voila/templates/lecture/index.html.j2"  # the presenter page: scanned too
    assert template in scanned, f"{template} is missing or no longer scanned"
    hits = []
    for path in _scanned_files():
        text = path.read_bytes().lower()
        hits += [f"{path.relative_to(ROOT)}: {m.decode()}" for m in CDN_MARKERS if m in text]
    assert not hits, (
        "these files load from the internet (plotly and widgets ship their JavaScript):\n" + "\n".join(hits)
    )


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    paths = [p for p in RUFF_PATHS if (ROOT / p).exists()]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *paths], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(
            f"`ruff {' '.join(command)}` failed (`make format` fixes most):\n{result.stdout}{result.stderr}"
        )
