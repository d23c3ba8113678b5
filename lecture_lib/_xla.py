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

Computations run on the calling thread (``jax_cpu_enable_async_dispatch`` off). By default the CPU client
runs a computation inline only when XLA's cost model puts it under 1,000 flops, and hands anything larger to
a worker thread while Python waits for the result; every call of this library waits for its result at
once, so the hand-off buys nothing and costs ~10-15 µs on this 2-core machine: a 500-step Adam trajectory
took 71 µs instead of 57, and a trajectory whose program crossed the line by an elementwise pass over its
path 72 µs instead of 38 (``bench_trajectories.py``). Computations are as fast or faster inline at every
size we measured (``make bench``).

The options are read once, when the CPU backend starts, so they are set here, before anything creates a
JAX array; if JAX computed something before ``lecture_lib`` was imported, they cannot apply and a
``RuntimeWarning`` says so. A user who sets ``xla_backend_extra_options`` in ``XLA_FLAGS`` keeps theirs; one
who wants JAX's asynchronous dispatch back calls ``jax.config.update("jax_cpu_enable_async_dispatch", True)``
after importing ``lecture_lib`` and before the first computation. Other backends ignore both.
"""

from __future__ import annotations

import os
import warnings

OPTION = "xla_cpu_small_while_loop_byte_threshold=16777216,xla_force_enable_experimental_llvm_ir_gemm"


def configure() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={OPTION}".strip()
    import jax
    from jax._src import xla_bridge

    if getattr(xla_bridge, "_backends", None):  # a backend already started: too late for both settings
        warnings.warn(
            "JAX started its backend before lecture_lib was imported, so lecture_lib's XLA settings (native "
            "loops, computations on the calling thread) do not apply and its loops run several times slower: "
            "import lecture_lib before running any JAX code (in a notebook: restart the kernel)",
            RuntimeWarning,
            stacklevel=3,
        )
    jax.config.update("jax_cpu_enable_async_dispatch", False)
