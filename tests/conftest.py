"""Shared test helpers: strict JAX settings and a backend-compilation counter."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path

import jax
import pytest

# Strict JAX, as equinox does: silent rank promotion hides shape bugs.
jax.config.update("jax_numpy_rank_promotion", "raise")

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts XLA backend compilations while active (``jax.monitoring`` duration events)."""

    def __init__(self):
        self.count = 0

    def _listener(self, event, duration, **kwargs):
        if event == COMPILE_EVENT:
            self.count += 1

    @contextlib.contextmanager
    def __call__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        try:
            yield self
        finally:
            jax.monitoring.unregister_event_duration_listener(self._listener)


@pytest.fixture
def count_compiles():
    """``with count_compiles() as c: ...`` then ``assert c.count == 0``."""
    return CompileCounter()


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (not a package) as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
