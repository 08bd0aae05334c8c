"""CTC at a small batch: losskit against ``F.ctc_loss``, each alone and each after a small ``exp``.

losskit's CTC gradient is exact with respect to ``log_probs``; the correction is one
``exp``-multiply-add over ``(T, N, C)`` in backward. At 4 sequences that pass takes about a
microsecond and a half, yet the loss costs some 15 us more than that: on this machine a
vectorised ``exp`` (as much as a ``sigmoid`` or ``tanh``, whatever ``ATEN_CPU_CAPABILITY`` says)
slows the scalar code that runs after it (torch's CTC kernels).
A model's ``log_softmax`` runs an ``exp`` right before the loss, so the ratio "after an exp" is
the one training sees. docs/benchmarks/index.md quotes this script's output::

    python benchmarks/ctc_after_exp.py            # T=50, N=4, C=20, S=10, one thread

Forward + backward, CPU time of the thread (``time.thread_time``), the median over interleaved
blocks of ``--calls`` calls.
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
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    t_max, n, c, s = 50, args.batch, 20, 10
    g = torch.Generator().manual_seed(0)
    x = torch.randn(t_max, n, c, generator=g).log_softmax(2).requires_grad_()
    targets = torch.randint(1, c, (n, s), generator=g)
    il, tl = torch.full((n,), t_max), torch.full((n,), s)
    small = torch.randn(16)  # an exp over 16 numbers: no work to speak of

    def ctc(fn: Callable[..., torch.Tensor], exp_first: bool) -> Callable[[], None]:
        def call() -> None:
            if exp_first:
                small.exp()
            x.grad = None
            fn(x, targets, il, tl).backward()

        return call

    calls = {
        "torch": ctc(F.ctc_loss, False),
        "losskit": ctc(LF.ctc_loss, False),
        "torch after exp": ctc(F.ctc_loss, True),
        "losskit after exp": ctc(LF.ctc_loss, True),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(max(1, args.calls // 10)):
            call()
    for _ in range(args.blocks):
        for name, call in calls.items():
            start = time.thread_time()
            for _ in range(args.calls):
                call()
            times[name].append((time.thread_time() - start) / args.calls * 1e6)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"CTC T={t_max} N={n} C={c} S={s}, {args.threads} thread(s), forward+backward, us:")
    for name, us in median.items():
        print(f"  {name:18s} {us:8.1f}")
    print(f"  ratio alone      {median['losskit'] / median['torch']:.2f}")
    print(f"  ratio after exp  {median['losskit after exp'] / median['torch after exp']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
