"""Sigmoid focal at a large size with several threads: the chunks against one pass.

With more than one thread ``sigmoid_focal_loss`` walks an input above one CPU chunk in two
chunks (``PARALLEL_CHUNKS`` in ``src/losskit/losses/imbalance/autograd.py``), computing the
gradient in the same walk (18 kernels a chunk), which keeps its peak memory near a quarter of
the torchvision formula's; an input of at most one chunk takes a straight path instead, a
single pass of 18 kernels that keeps four input-sized terms for its backward. Each kernel over
32768 elements is an OpenMP region, and while busy processes share the cores a region can wait
a scheduler slice for its second thread (docs/benchmarks, "Under load"). This script measures
the trade at one size: the formula, the walk in the shipped count of chunks (``--chunks``:
other counts too), and the straight path forced at that size, for their time (forward+backward,
wall clock, interleaved, the median over paired blocks of the ratio to the formula,
``--repeats`` times, idle and under each ``--loads``), their parallel kernels
(``parallel_kernels.py``'s count) and their peak memory (``losskit bench``'s measure, in a
fresh process)::

    python benchmarks/sigmoid_focal_paths.py                       # 4M elements, 2 threads
    python benchmarks/sigmoid_focal_paths.py --chunks 1,2,3,4 --repeats 8
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

import losskit
import losskit.losses.imbalance.autograd as focal_autograd
from losskit.bench.calls import OURS, Call, bench_sample, implementations
from losskit.bench.harness import _paired_ratios
from losskit.bench.load import BackgroundLoad
from losskit.bench.memory import _child_env, _peak_of_one_run
from losskit.bench.report import SLOWER_P, sign_test_p
from losskit.bench.timing import LOADED_MIN_BLOCKS, MIN_BLOCKS, time_calls

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parallel_kernels import always_parallel, parallel_kernels

LOSS = "sigmoid_focal"
FORMULA, ONE_PASS = "torchvision formula", "one pass"


def chunks_name(count: int) -> str:
    shipped = " (as shipped)" if count == focal_autograd.PARALLEL_CHUNKS else ""
    return f"{count} chunk{'s' if count > 1 else ''}{shipped}"


@contextlib.contextmanager
def patched(name: str, value: object) -> Iterator[None]:
    shipped = getattr(focal_autograd, name)
    setattr(focal_autograd, name, value)
    try:
        yield
    finally:
        setattr(focal_autograd, name, shipped)


class PatchedCall(Call):
    """One forward+backward with one of the module's names replaced while it runs (the
    backward reads it too): ``PARALLEL_CHUNKS`` for another count of chunks; ``_one_chunk``
    answering yes at every size for the straight path (its test for a per-label
    ``pos_weight`` aside: the benchmark's inputs have none)."""

    def __init__(self, fn: Callable[..., object], sample: Any, name: str, value: object) -> None:
        super().__init__(fn, sample)
        self.patch = (name, value)

    def __call__(self) -> None:
        with patched(*self.patch):
            super().__call__()


def make_calls(size: int, chunk_counts: list[int]) -> dict[str, Call]:
    spec = losskit.catalog[LOSS]
    impls = implementations(spec)
    cpu = torch.device("cpu")

    def sample(impl: str) -> Any:
        return bench_sample(spec, impl, size, torch.float32, cpu)

    calls = {FORMULA: Call(impls[FORMULA], sample(FORMULA))}
    for count in chunk_counts:
        calls[chunks_name(count)] = PatchedCall(impls[OURS], sample(OURS), "PARALLEL_CHUNKS", count)
    calls[ONE_PASS] = PatchedCall(
        impls[OURS], sample(OURS), "_one_chunk", lambda input, pos_weight: True
    )
    return calls


def peak_memory(size: int, threads: int, chunk_counts: list[int]) -> None:
    """In a fresh process: print each implementation's peak RSS of one forward+backward (MiB),
    each after its own warm-up run (glibc hands large freed blocks straight back to the kernel
    there, ``losskit bench``'s setting, so one measurement does not hide the next)."""
    torch.set_num_threads(threads)
    peaks = {}
    for name, call in make_calls(size, chunk_counts).items():
        call()
        call.clear()
        gc.collect()
        peak, *_ = _peak_of_one_run(call, torch.device("cpu"), lambda: None, time.process_time)
        peaks[name] = peak / 2**20
    print(json.dumps(peaks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4 << 20, help="elements")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loads", default="0,2", help="busy processes, each measured")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per implementation")
    parser.add_argument(
        "--chunks",
        default=str(focal_autograd.PARALLEL_CHUNKS),
        help="counts of chunks for the walk, each measured (default: the shipped one)",
    )
    parser.add_argument("--peak-memory", action="store_true", help=argparse.SUPPRESS)  # child
    args = parser.parse_args(argv)
    chunk_counts = [int(n) for n in args.chunks.split(",")]
    if args.peak_memory:
        peak_memory(args.size, args.threads, chunk_counts)
        return 0

    torch.set_num_threads(args.threads)
    calls = make_calls(args.size, chunk_counts)
    print(f"{LOSS} at {args.size:,} elements, {args.threads} thread(s), forward+backward")
    always = always_parallel() if args.threads > 1 else frozenset()
    options = ["--size", str(args.size), "--threads", str(args.threads), "--chunks", args.chunks]
    child = subprocess.run(
        [sys.executable, __file__, *options, "--peak-memory"],
        capture_output=True,
        text=True,
        env=_child_env(args.threads),
        check=True,
    )
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{'':22s} {'parallel kernels':>16s} {'peak memory':>14s}")
    for name, call in calls.items():
        mem = f"{memory[name]:6.1f} MiB {memory[name] / memory[FORMULA]:.2f}"
        print(f"{name:22s} {parallel_kernels(call, always):16d} {mem:>14s}")
    print(
        f"time / the formula's: median over paired blocks, range over {args.repeats} repeats "
        "(median); repeats that a sign test calls slower"
    )
    for load in (int(n) for n in args.loads.split(",")):
        blocks = LOADED_MIN_BLOCKS if load else MIN_BLOCKS
        ratios: dict[str, list[float]] = {name: [] for name in calls if name != FORMULA}
        slower = dict.fromkeys(ratios, 0)
        with BackgroundLoad(load) if load else contextlib.nullcontext():
            for _ in range(args.repeats):
                timed = time_calls(calls, args.budget, args.threads, "wall", min_blocks=blocks)
                theirs = timed.blocks[FORMULA][timed.seeded.get(FORMULA, 0) :]
                for name in ratios:
                    paired = _paired_ratios(timed.blocks[name][timed.seeded.get(name, 0) :], theirs)
                    assert paired is not None
                    ratios[name].append(paired.median)
                    slower[name] += sign_test_p(paired.slower, paired.pairs) < SLOWER_P
        for name, values in ratios.items():
            span = f"{min(values):.2f}-{max(values):.2f} ({statistics.median(values):.2f})"
            print(f"  {load} busy  {name:22s} {span:20s} slower {slower[name]}/{args.repeats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
