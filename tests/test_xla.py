"""The process-wide XLA settings ``lecture_lib`` makes at import (``lecture_lib/_xla.py``), each in a fresh
interpreter: they only act if they come before JAX starts its backend."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _python(script: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | env
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )


def test_importing_the_library_sets_the_native_loop_options():
    out = _python(
        "import os, jax, lecture_lib\n"
        "from lecture_lib import _xla\n"
        "assert _xla.OPTION in os.environ['XLA_FLAGS'], os.environ['XLA_FLAGS']\n"
        "import jax.numpy as jnp\n"
        "assert float(jnp.ones(3).sum()) == 3.0\n"
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_users_own_backend_options_are_kept():
    mine = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=4096"
    out = _python(
        "import os, lecture_lib\nfrom lecture_lib import _xla\nflags = os.environ['XLA_FLAGS']\n"
        f"assert flags == {mine!r} + ' ' + _xla.DEVICES and _xla.OPTION not in flags, flags\n",
        XLA_FLAGS=mine,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_importing_the_library_after_jax_has_computed_warns_that_its_settings_cannot_apply():
    out = _python("import jax.numpy as jnp\njnp.zeros(1).block_until_ready()\nimport lecture_lib\n")
    assert out.returncode != 0
    assert "RuntimeWarning" in out.stderr
    assert "import lecture_lib before running any JAX code" in out.stderr


@pytest.mark.parametrize(
    "first",
    ["import jax", "import jax, optax, numpy", "import jax; jax.config.update('jax_enable_x64', False)"],
)
def test_importing_jax_or_configuring_it_first_does_not_warn(first):
    # importing (and configuring) JAX starts no backend: only a computation does
    out = _python(f"{first}\nimport lecture_lib\n")
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_cpu_backend_has_two_devices_and_a_users_own_count_is_kept():
    out = _python("import jax, lecture_lib\nassert len(jax.devices('cpu')) == 2, jax.devices()\n")
    assert out.returncode == 0, out.stderr[-2000:]
    # one device (the user's own setting): side_by_side runs its thunks one after the other, in this thread
    out = _python(
        "import threading, jax, lecture_lib\nfrom lecture_lib import _xla\n"
        "assert len(jax.devices('cpu')) == 1, jax.devices()\n"
        "me, ident = threading.get_ident(), threading.get_ident\n"
        "assert _xla.side_by_side(ident, ident) == [me, me]\n",
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_side_by_side_runs_its_thunks_at_the_same_time_each_on_its_own_device():
    import threading

    import jax
    import jax.numpy as jnp
    import numpy as np

    from lecture_lib import _xla

    both = threading.Barrier(
        2, timeout=60
    )  # each thunk waits for the other: run in turn, they would not meet

    def work(x):
        both.wait()
        y = jax.jit(lambda v: jnp.cumsum(v * v))(jnp.asarray(x))
        return threading.get_ident(), next(iter(y.devices())), np.asarray(y)

    x = np.linspace(0, 1, 50, dtype=np.float32)
    (t0, d0, y0), (t1, d1, y1) = _xla.side_by_side(lambda: work(x), lambda: work(x))
    assert t0 == threading.get_ident() != t1
    assert (d0, d1) == tuple(jax.devices("cpu")[:2])
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(y0, np.asarray(jnp.cumsum(jnp.asarray(x) ** 2)))
    with _xla.device(1):  # the device side_by_side gives its second thunk
        assert next(iter(jnp.ones(2).devices())) == d1


def test_side_by_side_raises_a_thunks_error_in_the_caller():
    from lecture_lib import _xla

    def boom():
        raise ValueError("lr must be positive, got lr=-1")

    with pytest.raises(ValueError, match="lr must be positive"):
        _xla.side_by_side(lambda: 1, boom)
