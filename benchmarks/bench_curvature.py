"""Why Newton is hard for deep learning, measured: forming the Hessian, solving with it and a
Hessian-vector product (HVP) for n = 100 ... 1,600 weights, with fitted log-log slopes, against
``torch.autograd.functional.hessian`` on the same network.

The network and the timing are those of notebook 01 (``lecture_lib.hessian_cost``): a one-hidden-layer
tanh net on a fixed batch, so one loss evaluation costs O(n). Run ``python benchmarks/bench_curvature.py``
(``--quick`` for three small sizes, ``--markdown PATH`` to save the table).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import dataclass

import jax
import numpy as np

from lecture_lib import hessian_cost as hc

try:
    import torch
except ImportError:  # pragma: no cover - torch is in the [test] extra
    torch = None


def _torch_form_seconds(n_target: int, seed: int = 0) -> float:
    """Best time of ``torch.autograd.functional.hessian`` on the same tanh net (float32, one thread)."""
    hidden = max(1, round((n_target - 1) / (hc.D_IN + 2)))
    loss, w = hc.tanh_net(hidden, jax.random.key(seed))
    x = jax.random.normal(jax.random.split(jax.random.key(seed), 3)[0], (hc.BATCH, hc.D_IN))
    y = jax.random.normal(jax.random.split(jax.random.key(seed), 3)[1], (hc.BATCH,))
    X, Y, W = (torch.tensor(np.asarray(a)) for a in (x, y, w))

    def tloss(w):
        W1 = w[: hidden * hc.D_IN].reshape(hidden, hc.D_IN)
        b1 = w[hidden * hc.D_IN : hidden * (hc.D_IN + 1)]
        w2, b2 = w[hidden * (hc.D_IN + 1) : -1], w[-1]
        r = torch.tanh(X @ W1.T + b1) @ w2 + b2 - Y
        return 0.5 * torch.mean(r * r)

    H = torch.autograd.functional.hessian(tloss, W)
    np.testing.assert_allclose(H.numpy(), np.asarray(hc.curvature.hessian(loss, w)), rtol=1e-3, atol=1e-4)
    times, start = [], time.perf_counter()
    while len(times) < 2 or time.perf_counter() - start < hc.TARGET_S:
        t = time.perf_counter()
        torch.autograd.functional.hessian(tloss, W)
        times.append(time.perf_counter() - t)
    return min(times)


@dataclass
class Result:
    report: str
    cost: hc.HessianCost  # n, seconds (3, k): form H, solve, one HVP
    slopes: np.ndarray  # fitted log-log slopes: form, solve, HVP
    torch_form: list[float] | None  # seconds of torch.autograd.functional.hessian per size


def main(argv=None) -> str:
    """Run the benchmark, print the Markdown report and return it."""
    return run(argv).report


def run(argv=None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small sizes")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of weights to measure")
    parser.add_argument("--markdown", help="also write the report to this file")
    args = parser.parse_args(argv)
    sizes = args.sizes or ((100, 200, 400) if args.quick else hc.SIZES)
    cost = hc.measure(sizes)
    slopes = hc.slopes(cost)
    torch_form = None
    if torch is not None:
        torch.set_num_threads(1)
        torch_form = [_torch_form_seconds(int(n)) for n in sizes]
    lines = [
        "# Forming and solving with the Hessian vs a Hessian-vector product",
        "",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, load average "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"- versions: jax {jax.__version__}" + (f", torch {torch.__version__}" if torch else ""),
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        "- best of repeated calls after compiling; HVPs timed 1,024 at a time and reported per product",
        "",
        "| n | form H (jax) | form H (torch.autograd.functional.hessian) | torch ÷ jax | solve (H + I)x = g "
        "| one HVP | form H ÷ HVP | H bytes (float32) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for j, n in enumerate(cost.n):
        tf = "n/a" if torch_form is None else f"{torch_form[j] * 1e3:.2f} ms"
        ratio = "n/a" if torch_form is None else f"{torch_form[j] / cost.seconds[0, j]:.1f}×"
        lines.append(
            f"| {n} | {cost.seconds[0, j] * 1e3:.2f} ms | {tf} | {ratio} | {cost.seconds[1, j] * 1e3:.2f} ms "
            f"| {cost.seconds[2, j] * 1e6:.2f} µs | {cost.seconds[0, j] / cost.seconds[2, j]:,.0f}× "
            f"| {hc.human_bytes(hc.dense_hessian_bytes(n))} |"
        )
    lines += [
        "",
        "fitted log-log slopes (time ∝ n^slope): form {:.2f} (textbook 2), solve {:.2f} (3), "
        "HVP {:.2f} (1)".format(*slopes),
        "dense float32 Hessian at 10⁶ weights: {}, at 10⁸: {}".format(
            *(hc.human_bytes(hc.dense_hessian_bytes(n)) for n in hc.EXTRAPOLATE_TO)
        ),
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    return Result(report, cost, slopes, torch_form)


if __name__ == "__main__":
    main()
