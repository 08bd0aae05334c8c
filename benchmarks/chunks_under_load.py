"""The chunked LM-head losses at several chunk sizes, with other processes busy on the cores.

``linear_cross_entropy`` and ``linear_distillation_loss`` (and CosFace and ArcFace, over the
first of them) run a handful of kernels per chunk of token rows, and on the CPU each is a
parallel region. While busy processes share the cores a region can wait a scheduler slice for
its second thread (about 8 ms, in episodes that last seconds), so the time under load grows
with the number of chunks, and the dense reference, with fewer regions in all, loses less.
This sweep chose ``PARALLEL_CHUNK_LOGITS`` (with more than one thread, an automatic chunk of
``linear_distillation_loss`` holds at least ``2**23`` logits;
``src/losskit/losses/distillation/functional.py`` quotes the figures)::

    python benchmarks/chunks_under_load.py                      # 2 threads, 2 busy processes
    python benchmarks/chunks_under_load.py --load 0             # the same, idle

Each size is the catalog's benchmark input (LM heads: ``N`` tokens, ``d = N / 8``, ``V = 8 N``);
forward+backward, wall time of single calls (or, with ``--block``, the mean over a block of
calls), every chunk size and the reference interleaved, ``--repeats`` rounds; the median, min
and max per line, and the median and largest ratio to the reference's timing of the same
round. The episodes come and go: run it a few times and compare the slow runs too. At the
catalog's smallest chunked size, where a call takes a millisecond or two, the blocks make the
rounds comparable (this chose ``PARALLEL_CHUNK_LOGITS_PER_THREAD`` of
``src/losskit/losses/linear_ce/functional.py``)::

    python benchmarks/chunks_under_load.py --losses linear_ce --sizes 256 \
        --rows 128,all --block 0.05 --repeats 21

CosFace's benchmark input is 4096 embeddings of 512 features against ``size`` classes; at a
classifier's 1024 classes this chose the angular-margin family's ``PARALLEL_CHUNK_LOGITS``::

    python benchmarks/chunks_under_load.py --losses cosface --sizes 1024 \
        --rows 256,512,2048,all --block 0.1 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

import losskit
from losskit.bench.calls import OURS, Call, bench_sample, implementations
from losskit.bench.load import BackgroundLoad


def _timed(call: Call, block: float) -> float:
    """Seconds per call: of one call, or the mean over calls filling ``block`` seconds."""
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= block:
            return elapsed / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="linear_ce,linear_distillation")
    parser.add_argument(
        "--sizes", default="1024,2048", help="catalog sizes (token counts; cosface: classes)"
    )
    parser.add_argument("--rows", default="128,512,all", help="rows per chunk ('all': one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--load", type=int, default=2, help="busy processes")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument(
        "--block",
        type=float,
        default=0.0,
        help="seconds of calls per timing (0: one call); for sizes of a few ms",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"{args.threads} thread(s), {args.load} busy process(es); forward+backward, ms")
    for name in args.losses.split(","):
        spec = losskit.catalog[name]
        impls = implementations(spec)
        for size in (int(s) for s in args.sizes.split(",")):
            calls: dict[str, Call] = {}
            sample = bench_sample(spec, OURS, size, torch.float32, cpu)
            tokens = sample.args[0].shape[0]  # the rows that the chunks split
            for rows in args.rows.split(","):
                chunk = tokens if rows == "all" else min(int(rows), tokens)
                chunked = replace(sample, kwargs={**sample.kwargs, "chunk_size": chunk})
                calls[f"{chunk} rows"] = Call(impls[OURS], chunked)
            reference = next(n for n in impls if n != OURS)
            ref_sample = bench_sample(spec, reference, size, torch.float32, cpu)
            calls["reference"] = Call(impls[reference], ref_sample)
            for call in calls.values():
                call()  # warm-up
            times: dict[str, list[float]] = {label: [] for label in calls}
            with BackgroundLoad(args.load):
                time.sleep(0.2)  # the busy processes get going
                for r in range(args.repeats):
                    for label in list(calls) if r % 2 == 0 else list(calls)[::-1]:
                        times[label].append(_timed(calls[label], args.block) * 1e3)
            print(f"{spec.name} {sample.desc} (reference: {reference})")
            for label, values in times.items():
                ratios = [t / ref for t, ref in zip(values, times["reference"], strict=True)]
                print(
                    f"  {label:10s} median {statistics.median(values):8.2f}"
                    f"  min {min(values):8.2f}  max {max(values):8.2f}"
                    f"  ratio median {statistics.median(ratios):5.2f}  max {max(ratios):5.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
