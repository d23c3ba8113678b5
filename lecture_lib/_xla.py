"""XLA:CPU settings that keep whole optimizer and training loops compiled as one native function.

XLA:CPU compiles a ``while`` loop (our ``lax.scan``) into a single native function only when one pass of its
body touches at most ``xla_cpu_small_while_loop_byte_threshold`` bytes (default 1024) and holds no library
call; otherwise it runs op by op, at 0.3-0.5 µs of dispatch per operation. Adam's step, with the divergence
hold of ``run``, is just above the default: ~900 ns a step instead of ~50 ns (``bench_trajectories.py``;
results are bit-identical). An epoch of ``fit`` on digits touches ~0.5 MB, of the warmup panel's three
seeds of a deeper net ~6 MB; 16 MiB admits them, and with ``xla_force_enable_experimental_llvm_ir_gemm``
their matrix products can be XLA's own tiled code rather than a library call. That option only acts where
a compilation also asks for single-threaded Eigen and no YNNPACK (``training._NATIVE_OPTIONS``). The larger
limit also lets other loops without library calls run natively (the vmapped trajectories, the variance
experiment): ``make bench`` measures them.

The CPU backend also gets two devices (``xla_force_host_platform_device_count=2``). One CPU device runs its
programs one after the other, each compiled loop on one core; one program partitioned over the two devices
runs its halves at once, on two cores. ``training.plan(..., groups=True)`` trains two groups of runs that way
(the warmup panel: the runs without and with warmup, compiled once for both devices). Everything else runs
on the first device, as before, and compiles once (``jax.devices()`` lists two).

The options are read once, when the CPU backend starts, so they are set here, before anything creates a
JAX array; if JAX computed something before ``lecture_lib`` was imported, they cannot apply and a
``RuntimeWarning`` says so. A user who sets ``xla_backend_extra_options`` or
``xla_force_host_platform_device_count`` in ``XLA_FLAGS`` keeps theirs. Other backends ignore them.
"""

from __future__ import annotations

import os
import warnings

OPTION = "xla_cpu_small_while_loop_byte_threshold=16777216,xla_force_enable_experimental_llvm_ir_gemm"
DEVICES = "--xla_force_host_platform_device_count=2"


def configure() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" not in flags:
        flags = f"{flags} --xla_backend_extra_options={OPTION}"
    if "xla_force_host_platform_device_count" not in flags:
        flags = f"{flags} {DEVICES}"
    os.environ["XLA_FLAGS"] = flags.strip()
    from jax._src import xla_bridge

    if getattr(xla_bridge, "_backends", None):  # a backend already started: too late for the options
        warnings.warn(
            "JAX started its backend before lecture_lib was imported, so lecture_lib's XLA options (loops "
            "compiled as one native function, two CPU devices) do not apply and its loops run several times "
            "slower: import lecture_lib before running any JAX code (in a notebook: restart the kernel)",
            RuntimeWarning,
            stacklevel=3,
        )
