"""XLA:CPU setting that keeps whole optimizer loops compiled as one native function.

XLA:CPU compiles a ``while`` loop (our ``lax.scan``) into a single native function only when its body
touches at most ``xla_cpu_small_while_loop_byte_threshold`` bytes (default 1024). Adam's step, with the
divergence hold of ``run``, is just above that and otherwise runs op by op: ~900 ns a step instead of ~50 ns
(measured with ``benchmarks/bench_trajectories.py``; results are bit-identical). The threshold is read once,
when the CPU backend starts, so it is set here, before anything creates a JAX array. A user who sets
``xla_backend_extra_options`` in ``XLA_FLAGS`` keeps theirs. Other backends ignore the option.
"""

from __future__ import annotations

import os

OPTION = "xla_cpu_small_while_loop_byte_threshold=16384"


def configure() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_extra_options={OPTION}".strip()
