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


def test_the_cpu_backend_has_two_devices_for_groups_side_by_side_and_a_users_own_count_is_kept():
    out = _python(
        "import jax, lecture_lib as ll\nassert len(jax.devices('cpu')) == 2, jax.devices()\n"
        "assert ll.training._group_mesh(2).devices.tolist() == jax.devices()[:2]\n"
        "assert jax.numpy.ones(2).devices() == {jax.devices()[0]}  # everything else: the first device\n"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # the user's own count (one device): groups train in turn, with the same numbers
    out = _python(
        "import jax, numpy as np, lecture_lib as ll\nfrom lecture_lib import experiments_schedules as ex\n"
        "assert len(jax.devices('cpu')) == 1 and ll.training._group_mesh(2) is None, jax.devices()\n"
        "net = {'sizes': (64, 16, 10), 'seeds': (0, 1)}\n"
        "without, warm = ex.warmup_rescue(0.2, 1, **net)\n"
        "tr, S = ex.trainer(**{**ex.WARMUP_NET, **net}), ll.schedules\n"
        "alone = tr.run(S.warmup(S.constant(0.2), tr.m))\n"
        "np.testing.assert_allclose(warm.cost, alone.cost, rtol=1e-6)\n"
        "np.testing.assert_array_equal(without.diverged_at, tr.run(S.constant(0.2)).diverged_at)\n",
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
    )
    assert out.returncode == 0, out.stderr[-2000:]
