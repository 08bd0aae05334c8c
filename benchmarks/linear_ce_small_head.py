"""Linear cross-entropy at a tiny head: where losskit's time goes beyond the naive formula's.

At ``N=32, d=4, V=256`` a forward+backward takes about 50 us and losskit's common call runs the
same torch kernels as ``F.cross_entropy(h @ W.T, y)``. This script times, interleaved, the naive
formula, losskit, torch's kernels called through their bindings (``linear`` and
``cross_entropy_loss``, what the common call runs), and those kernels after one read of the
smallest class index (the read that tells no target is ``ignore_index``), so that the cost of
each piece is the difference of two lines. docs/benchmarks/index.md quotes its output::

    python benchmarks/linear_ce_small_head.py            # one thread

Forward + backward, CPU time of the thread at one thread (wall time otherwise), the median over
interleaved blocks of ``--calls`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import losskit.functional as LF


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=11)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(32, 4, generator=g).requires_grad_()
    w = (torch.randn(256, 4, generator=g) * 0.5).requires_grad_()
    y = torch.randint(256, (32,), generator=g)
    linear, cross_entropy = torch._C._nn.linear, torch._C._nn.cross_entropy_loss
    mean = 1  # torch's enum for reduction="mean"

    def kernels() -> None:
        cross_entropy(linear(h, w), y, None, mean, -100, 0.0).backward()

    def kernels_after_read() -> None:
        if int(y.min()) >= 0:
            cross_entropy(linear(h, w), y, None, mean, -100, 0.0).backward()

    calls: dict[str, Callable[[], None]] = {
        "naive F.cross_entropy(h @ W.T, y)": lambda: F.cross_entropy(h @ w.T, y).backward(),
        "losskit": lambda: LF.linear_cross_entropy(h, w, y).backward(),
        "torch's kernels": kernels,
        "torch's kernels + min read": kernels_after_read,
    }
    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def block(call: Callable[[], None]) -> float:
        start = clock()
        for _ in range(args.calls):
            call()
        return (clock() - start) / args.calls * 1e6

    for call in calls.values():
        block(call)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    for b in range(args.blocks):
        order = list(calls) if b % 2 == 0 else list(calls)[::-1]
        for name in order:
            times[name].append(block(calls[name]))
    naive = statistics.median(times["naive F.cross_entropy(h @ W.T, y)"])
    print(f"linear CE N=32 d=4 V=256, {args.threads} thread(s), forward+backward, us (ratio):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:36s} {median:7.1f}  {median / naive:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
