"""Timing forward+backward: interleaved blocks under one thread count and clock."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch

from losskit.bench.calls import Call, describe_error

#: one timed block runs the loss this long (a whole number of runs, at least one)
BLOCK_TIME = 0.02
#: every figure is the median of at least this many blocks, ``--quick`` included, so that the
#: report can give min, median and max
MIN_BLOCKS = 3
#: under a background load, at least this many: the busy processes' time slices spread one
#: implementation's blocks over several times their quiet time, and with 8 or 9 pairs (a slow
#: implementation's first block, its sizing run, is not paired) a sign test can tell a slower
#: loss from that noise with one pair against it (7 of 8: p = 0.035). With 3, `cross_entropy`
#: at 1M, torch's kernel on both sides, once read 1.83 and slower in every pair;
#: ``benchmarks/ratio_estimators.py`` measures how often chance does that
LOADED_MIN_BLOCKS = 9


#: the region probe's tensor: one in-place multiply of this many float32 is one OpenMP parallel
#: region with more than one thread, about 0.05 ms of work on two free cores
PROBE_ELEMENTS = 1 << 20
#: a probed region slower than this marks an episode: the cores are shared and each parallel
#: region waits a scheduler slice for its other threads (about 8 ms on the 2-core machine of the
#: benchmarks, with two busy processes)
EPISODE_S = 1e-3


def region_time(threads: int, runs: int = 9) -> float | None:
    """Seconds per parallel region on the CPU at ``threads`` threads: the median over ``runs``
    timed in-place multiplies of :data:`PROBE_ELEMENTS` floats. ``None`` at one thread, which
    opens no region. While other processes keep the cores busy the figure jumps from a tenth
    of a millisecond to several, for seconds at a time; every kernel over torch's grain size
    (and every ``exp``, ``log`` or softmax, at any size) then pays it."""
    if threads < 2:
        return None
    x = torch.ones(PROBE_ELEMENTS)
    times = []
    with torch_threads(threads):
        x.mul_(1.0)  # the threads start
        for _ in range(runs):
            start = time.perf_counter()
            x.mul_(1.0)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def clock_function(clock: str) -> Callable[[], float]:
    """``"cpu"``: this thread's CPU time; ``"wall"``: torch.utils.benchmark's clock (elapsed
    time, the accelerator synchronised before each reading, so queued kernels count)."""
    if clock == "cpu":
        return time.thread_time
    from torch.utils.benchmark.utils.timer import timer

    return timer


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _block(call: Call, number: int, clock: Callable[[], float]) -> float:
    """Seconds per run of a block of ``number`` runs. On an accelerator the clock synchronises
    at both ends only, so the runs inside queue back to back, as in training. The garbage
    collector waits until the block ends (as in ``timeit``): a collection that one
    implementation's garbage triggers would otherwise land in whichever block runs next."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(number):
            call()
        return (clock() - start) / number
    finally:
        if enabled:
            gc.enable()


def _calibrate(call: Call, clock: Callable[[], float], per_run: float) -> int:
    """Runs per block so that one block takes about ``BLOCK_TIME`` (at least one run)."""
    number = max(1, int(BLOCK_TIME / per_run)) if per_run > 0 else 1
    while number < 1 << 20:
        elapsed = _block(call, number, clock) * number
        if elapsed >= BLOCK_TIME / 2:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, int(BLOCK_TIME / elapsed) + 1))
    return number


@dataclass
class _Timed:
    blocks: dict[str, list[float]]
    runs: dict[str, int]
    errors: dict[str, str]
    #: blocks timed before the interleaved rounds (a slow implementation's sizing run): left
    #: out when blocks are paired, so that pair k is round k of each
    seeded: dict[str, int] = field(default_factory=dict)


def time_calls(
    calls: Mapping[str, Call],
    budget: float,
    threads: int,
    clock: str = "wall",
    min_blocks: int = MIN_BLOCKS,
) -> _Timed:
    """Tightly interleaved blocks (A B, B A, A B, ...), so that changes in the machine's load
    fall on every implementation alike; about ``budget`` seconds per implementation, never
    fewer than ``min_blocks`` blocks. Returns each implementation's per-run time of each block.

    Each implementation first runs once for nothing (lazy initialisation and the start of the
    thread pool, which a new thread count restarts, are not the loss's cost), then once to see
    how long a run takes. A block of a fast implementation is as many runs as fill about
    ``BLOCK_TIME``; a slower one is one run, and that second run is its first block, so a slow
    case costs ``min_blocks + 1`` runs, not dozens."""
    clock_fn = clock_function(clock)
    out = _Timed({}, {}, {})
    numbers: dict[str, int] = {}
    first: dict[str, float] = {}
    with torch_threads(threads):
        for name, call in calls.items():
            try:
                _block(call, 1, clock_fn)
                per_run = _block(call, 1, clock_fn)
                if per_run >= BLOCK_TIME:
                    # a slow one: that run was a whole block already, and it counts as one
                    numbers[name], first[name] = 1, per_run
                else:
                    numbers[name] = _calibrate(call, clock_fn, per_run)
            except Exception as exc:
                out.errors[name] = describe_error(exc)
            finally:
                call.clear()
        names = list(numbers)
        out.blocks = {name: [first[name]] if name in first else [] for name in names}
        out.runs = {name: len(out.blocks[name]) for name in names}
        out.seeded = dict(out.runs)
        most = max(min_blocks, round(budget / BLOCK_TIME))
        deadline = time.perf_counter() + budget * max(1, len(names)) * 1.5
        for b in range(most):
            late = time.perf_counter() > deadline
            due = [
                n
                for n in (names if b % 2 == 0 else names[::-1])
                if n not in out.errors and not (late and len(out.blocks[n]) >= min_blocks)
            ]
            if not due:
                break
            for name in due:
                try:
                    out.blocks[name].append(_block(calls[name], numbers[name], clock_fn))
                    out.runs[name] += numbers[name]
                except Exception as exc:  # e.g. out of memory on a later run
                    out.errors[name] = describe_error(exc)
        for call in calls.values():
            call.clear()
    return out
