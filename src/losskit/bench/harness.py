"""Selecting the cases, timing them, and collecting everything into one :class:`Report`.

Nothing here names a loss: the cases come from the catalog's ``bench_inputs``, ``bench_sizes``,
``bench_references`` and ``bench_reference_inputs`` fields, so a new entry is benchmarked as
soon as it sets them.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import torch

from losskit._catalog import LossSpec
from losskit._checks import LossInputError
from losskit._registry import get_catalog
from losskit.bench.calls import (
    DTYPES,
    OURS,
    Call,
    adapt_sample,
    describe_error,
    implementations,
)

#: RSS moves in pages and picks up allocator noise: below this both figures are "about zero"
#: and no memory ratio is given. The accelerator allocator counts bytes exactly.
RSS_NOISE_FLOOR = 256 * 1024

#: one timed block runs the loss this long (a whole number of runs, at least one)
BLOCK_TIME = 0.02
MIN_BLOCKS = 3
#: ``--quick``: an implementation whose one run takes longer is timed once
QUICK_ONCE_OVER = 1.0

CLOCKS = ("auto", "cpu", "wall")
CLOCK_TEXT = {
    "cpu": "CPU time of the measuring thread (time.thread_time): the load of other processes "
    "does not count",
    "wall": "elapsed time (accelerators synchronised)",
}

#: progress callback: (steps done, steps in all, what runs now)
ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BenchSettings:
    """How to run. ``None`` fields take their default (which ``quick`` makes shorter)."""

    #: sizes for every loss instead of each spec's ``bench_sizes``
    sizes: tuple[int, ...] | None = None
    #: the smallest and largest size only, shorter timings, memory at the largest size only,
    #: and a run over ``QUICK_ONCE_OVER`` seconds timed once: a quick check
    quick: bool = False
    #: torch threads for the timing and the memory subprocesses
    threads: int = 1
    #: ``"auto"`` is the current accelerator if there is one, else the CPU
    device: str = "auto"
    dtype: str = "float32"
    #: seconds of timing per implementation, in interleaved blocks (1.0; quick 0.25)
    min_run_time: float | None = None
    #: measure peak memory (a fresh process per loss, size and implementation)
    memory: bool = True
    #: memory measurements run at once (processes do not disturb each other's figures)
    jobs: int | None = None
    #: ``"cpu"``: the measuring thread's CPU time, which other processes' load does not
    #: inflate (single-threaded CPU runs, where all the work is on that thread); ``"wall"``:
    #: elapsed time, accelerators synchronised; ``"auto"``: cpu when it is exact, else wall
    clock: str = "auto"

    def resolved(self) -> BenchSettings:
        """Defaults filled in, the device resolved and every field checked."""
        if self.dtype not in DTYPES:
            _bad("dtype", repr(self.dtype), f"one of {', '.join(DTYPES)}")
        if self.threads < 1:
            _bad("threads", repr(self.threads), "at least 1")
        device = resolve_device(self.device)
        min_run_time = self.min_run_time or (0.25 if self.quick else 1.0)
        if min_run_time <= 0:
            _bad("min_run_time", repr(min_run_time), "a positive number of seconds")
        if self.sizes is not None and (not self.sizes or min(self.sizes) < 1):
            _bad("sizes", repr(self.sizes), "positive integers")
        if self.clock not in CLOCKS:
            _bad("clock", repr(self.clock), f"one of {', '.join(CLOCKS)}")
        clock = self.clock
        if clock == "auto":
            clock = "cpu" if device.type == "cpu" and self.threads == 1 else "wall"
        if clock == "cpu" and (device.type != "cpu" or self.threads != 1):
            _bad("clock", "'cpu'", "wall with an accelerator or several threads")
        jobs = self.jobs
        if jobs is None:
            jobs = max(1, min(4, (os.cpu_count() or 1) // self.threads))
            jobs = jobs if device.type == "cpu" else 1
        return replace(
            self,
            device=str(device),
            min_run_time=min_run_time,
            jobs=max(1, jobs),
            clock=clock,
        )


def _bad(name: str, got: str, expected: str) -> NoReturn:
    raise LossInputError(f"bench: {name} is {got}; expected {expected}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        accelerator = torch.accelerator.current_accelerator(check_available=True)
        return accelerator if accelerator is not None else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        _bad("device", repr(name), "auto, cpu or an accelerator such as cuda")
    if device.type != "cpu":
        accelerator = torch.accelerator.current_accelerator(check_available=True)
        if accelerator is None or accelerator.type != device.type:
            have = "cpu" if accelerator is None else f"cpu or {accelerator.type}"
            _bad("device", repr(name), f"an available device ({have} here)")
    return device


def parse_sizes(text: str | Iterable[str]) -> tuple[int, ...]:
    """``"32,1k,1M"`` -> ``(32, 1024, 1048576)``: k is 1024 and M is 1024**2, as in the
    catalog's default sizes. Several strings (a repeated option) are joined."""
    parts = [text] if isinstance(text, str) else list(text)
    sizes = []
    for item in ",".join(parts).replace(" ", "").split(","):
        if not item:
            continue
        scale = {"k": 1024, "m": 1024**2}.get(item[-1].lower(), 1)
        digits = item[:-1] if scale != 1 else item
        try:
            value = int(float(digits) * scale)
        except ValueError:
            _bad("a size", repr(item), "a positive integer such as 32, 1k or 1M")
        if value < 1:
            _bad("a size", repr(item), "a positive integer such as 32, 1k or 1M")
        sizes.append(value)
    if not sizes:
        _bad("sizes", repr(text), "a comma-separated list such as 32,1k,1M")
    return tuple(dict.fromkeys(sizes))


# ---------------------------------------------------------------- the cases


def benchmarked(spec: LossSpec) -> bool:
    """Benchmarked by default: has benchmark inputs and something to compare against."""
    return spec.bench_inputs is not None and bool(spec.benchmark_references())


def select_specs(names: Sequence[str] | None = None) -> list[LossSpec]:
    """The catalog entries to run: the named ones (an unknown name raises ``KeyError``, one
    without benchmark inputs ``LossInputError``), or every benchmarked entry."""
    catalog = get_catalog()
    if not names:
        return [s for s in catalog.specs() if benchmarked(s)]
    specs: dict[str, LossSpec] = {}
    for name in names:
        spec = catalog[name]
        if spec.bench_inputs is None:
            have = ", ".join(s.name for s in catalog.specs() if s.bench_inputs is not None)
            raise LossInputError(
                f"bench: {spec.name} has no benchmark inputs; expected one of: {have}"
            )
        specs.setdefault(spec.name, spec)
    return list(specs.values())


def sizes_for(spec: LossSpec, settings: BenchSettings) -> tuple[int, ...]:
    if settings.sizes is not None:
        return tuple(settings.sizes)
    sizes = tuple(sorted(set(spec.bench_sizes)))
    return (sizes[0], sizes[-1]) if settings.quick and len(sizes) > 2 else sizes


# ---------------------------------------------------------------- results


@dataclass
class ImplResult:
    """One implementation at one size. Times are seconds per forward+backward."""

    name: str
    time_s: float | None = None
    #: interquartile range of the per-run times
    time_iqr_s: float | None = None
    #: timed blocks behind the median (each a whole number of runs)
    blocks: int = 0
    #: peak memory of one forward+backward above the baseline, in bytes
    peak_bytes: int | None = None
    error: str | None = None


@dataclass
class CaseResult:
    """One loss at one size: losskit and each reference, and their ratios."""

    loss: str
    size: int
    inputs: str
    ours: ImplResult
    references: list[ImplResult] = field(default_factory=list)

    def time_ratio(self, ref: ImplResult) -> float | None:
        if self.ours.time_s is None or not ref.time_s:
            return None
        return self.ours.time_s / ref.time_s

    def memory_ratio(self, ref: ImplResult, floor: int = 0) -> float | None:
        """``None`` when a figure is missing, the reference's is 0, or both are below
        ``floor`` (noise)."""
        ours, theirs = self.ours.peak_bytes, ref.peak_bytes
        if ours is None or theirs is None or theirs <= 0 or max(ours, theirs) < floor:
            return None
        return ours / theirs

    def to_dict(self, floor: int = 0) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "size": self.size,
            "inputs": self.inputs,
            "ours": asdict(self.ours),
            "references": [
                {
                    **asdict(ref),
                    "time_ratio": self.time_ratio(ref),
                    "memory_ratio": self.memory_ratio(ref, floor),
                }
                for ref in self.references
            ],
        }


@dataclass
class Report:
    """Everything one run produced; ``to_dict()`` is the JSON that is saved."""

    created: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    cases: list[CaseResult]

    @property
    def memory_floor(self) -> int:
        return int(self.settings.get("memory_noise_floor_bytes", 0))

    def errors(self) -> list[tuple[str, int, str, str]]:
        """(loss, size, implementation, error) for every figure that could not be taken."""
        return [
            (c.loss, c.size, impl.name, impl.error)
            for c in self.cases
            for impl in (c.ours, *c.references)
            if impl.error
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "created": self.created,
            "machine": self.machine,
            "settings": self.settings,
            "results": [c.to_dict(self.memory_floor) for c in self.cases],
        }

    def save_json(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


# ---------------------------------------------------------------- machine


def _cpuinfo() -> list[dict[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    blocks = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        blocks.append(entry)
    return blocks


def _memory_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info(device: str | torch.device = "cpu", threads: int = 1) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, torch, threads and device, for the report."""
    from losskit import __version__

    cpus = _cpuinfo()
    model = next((c["model name"] for c in cpus if c.get("model name")), None)
    physical = {(c.get("physical id"), c.get("core id")) for c in cpus if "core id" in c}
    device = torch.device(device)
    device_name = model or platform.processor() or platform.machine()
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": model or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": len(physical) or None,
        "available_cores": available,
        "memory_bytes": _memory_total(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "losskit": __version__,
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "device": str(device),
        "device_name": device_name,
        "load_average": load,
    }


# ---------------------------------------------------------------- running


def _calibrate(timer: Any, block_time: float) -> int:
    """Runs per block so that one block takes about ``block_time`` (at least one run)."""
    number = 1
    while True:
        elapsed = timer.timeit(number).median * number
        if elapsed >= block_time or number >= 1 << 20:
            return number
        number *= 2 if elapsed <= 0 else max(2, min(10, int(block_time / elapsed) + 1))


def clock_function(clock: str) -> Callable[[], float]:
    """``"cpu"``: this thread's CPU time; ``"wall"``: torch.utils.benchmark's default clock
    (elapsed time, accelerators synchronised)."""
    if clock == "cpu":
        return time.thread_time
    from torch.utils.benchmark.utils.timer import timer

    return timer


def _one_run(call: Call, clock: Callable[[], float]) -> float:
    """Seconds of one run."""
    start = clock()
    call()
    return clock() - start


def _time_calls(
    calls: Mapping[str, Call],
    first_runs: Mapping[str, float],
    budget: float,
    threads: int,
    once_over: float | None = None,
    clock: str = "wall",
) -> dict[str, list[float]]:
    """Tightly interleaved blocks (A B, B A, A B, ...), so that changes in the machine's load
    fall on every implementation alike; about ``budget`` seconds per implementation, and at
    least ``MIN_BLOCKS`` blocks. Returns name -> the per-run time of each block.

    A block of a fast implementation is ``Timer.timeit`` over as many runs as fill about
    ``BLOCK_TIME``; one whose single run takes longer is ``Timer.blocked_autorange`` of one
    run (plus the one it uses to size the block), so a slow case costs a few runs, not dozens.
    ``first_runs`` holds the time of each implementation's first run; one over ``once_over``
    seconds is not run again, that time is its figure (``--quick``)."""
    from torch.utils.benchmark import Timer

    clock_fn = clock_function(clock)
    times: dict[str, list[float]] = {name: [] for name in calls}
    timers, numbers = {}, {}
    for name, call in calls.items():
        if once_over is not None and first_runs[name] >= once_over:
            times[name].append(first_runs[name])
            continue
        timers[name] = Timer(
            stmt="step()", globals={"step": call}, num_threads=threads, timer=clock_fn
        )
        # the first run may have paid for lazy initialisation: a slow one is timed again
        fast = first_runs[name] < BLOCK_TIME or _one_run(call, clock_fn) < BLOCK_TIME
        numbers[name] = _calibrate(timers[name], BLOCK_TIME) if fast else 0
    blocks = max(MIN_BLOCKS, round(budget / BLOCK_TIME))
    deadline = time.perf_counter() + budget * len(timers) * 2  # slow cases: fewer blocks
    names = list(timers)
    for b in range(blocks):
        for name in names if b % 2 == 0 else names[::-1]:
            timer, number = timers[name], numbers[name]
            m = timer.timeit(number) if number else timer.blocked_autorange(min_run_time=0)
            times[name].append(m.median)
        if b + 1 >= MIN_BLOCKS and time.perf_counter() > deadline:
            break
    return times


def _summarise(result: ImplResult, times: list[float]) -> None:
    result.time_s = statistics.median(times)
    result.blocks = len(times)
    if len(times) >= 2:
        q1, _, q3 = statistics.quantiles(times, n=4)
        result.time_iqr_s = q3 - q1


def _time_case(
    spec: LossSpec, size: int, settings: BenchSettings, results: dict[str, ImplResult]
) -> str:
    """Time every implementation of ``spec`` at ``size`` into ``results``; return the inputs'
    description."""
    device, dtype = torch.device(settings.device), DTYPES[settings.dtype]
    assert spec.bench_inputs is not None
    base = spec.bench_inputs(size, dtype, device)
    calls: dict[str, Call] = {}
    first_runs: dict[str, float] = {}
    for name, fn in implementations(spec).items():
        try:
            call = Call(fn, adapt_sample(spec, name, base))
            # lazy initialisation, a first check that it runs at all, and a first time
            first_runs[name] = _one_run(call, clock_function(settings.clock))
            call.clear()
        except Exception as exc:
            results[name].error = describe_error(exc)
            continue
        calls[name] = call
    if calls:
        assert settings.min_run_time is not None
        once_over = QUICK_ONCE_OVER if settings.quick else None
        try:
            times = _time_calls(
                calls,
                first_runs,
                settings.min_run_time,
                settings.threads,
                once_over,
                settings.clock,
            )
        except Exception as exc:  # e.g. out of memory on a later run: the case has no times
            for name in calls:
                results[name].error = describe_error(exc)
            return base.desc or f"{size}"
        for name, t in times.items():
            _summarise(results[name], t)
    return base.desc or f"{size}"


def run_benchmarks(
    specs: Sequence[LossSpec],
    settings: BenchSettings | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Benchmark ``specs`` (see :func:`select_specs`): memory first (subprocesses, several at
    once), then the timings one after another in this process."""
    from losskit.bench.memory import MEMORY_METHOD_ACCELERATOR, MEMORY_METHOD_RSS, MemoryMeter

    settings = (settings or BenchSettings()).resolved()
    device = torch.device(settings.device)
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    machine = machine_info(device, settings.threads)

    plan = [(spec, size) for spec in specs for size in sizes_for(spec, settings)]
    results = {
        (spec.name, size): {name: ImplResult(name) for name in implementations(spec)}
        for spec, size in plan
    }
    memory_tasks = [
        (spec.name, size, name)
        for spec, size in plan
        # quick: memory at the largest size only (the small ones are below RSS noise anyway)
        if not settings.quick or size == max(sizes_for(spec, settings))
        for name in results[spec.name, size]
    ]
    if not settings.memory:
        memory_tasks = []
    total, done = len(memory_tasks) + len(plan), 0

    def tick(what: str) -> None:
        if progress is not None:
            progress(done, total, what)

    tick("starting")
    if memory_tasks:
        with (
            MemoryMeter(
                settings.jobs or 1, settings.threads, settings.dtype, settings.device
            ) as meter,
            ThreadPoolExecutor(settings.jobs) as pool,
        ):
            answers = pool.map(lambda t: (t, meter.measure(t[0], t[2], t[1])), memory_tasks)
            for (loss, size, name), measured in answers:
                result = results[loss, size][name]
                result.peak_bytes = measured.get("peak_bytes")
                if measured.get("error"):
                    result.error = f"memory: {measured['error']}"
                done += 1
                tick(f"memory  {loss} {size:,} {name}")

    cases = []
    for spec, size in plan:
        tick(f"timing  {spec.name} {size:,}")
        impls = results[spec.name, size]
        inputs = _time_case(spec, size, settings, impls)
        ours = impls.pop(OURS)
        cases.append(CaseResult(spec.name, size, inputs, ours, list(impls.values())))
        done += 1
        tick(f"timing  {spec.name} {size:,}")

    on_cpu = device.type == "cpu"
    recorded = {
        "quick": settings.quick,
        "sizes": list(settings.sizes) if settings.sizes else None,
        "threads": settings.threads,
        "device": settings.device,
        "dtype": settings.dtype,
        "clock": settings.clock,
        "clock_meaning": CLOCK_TEXT[settings.clock],
        "min_run_time_s": settings.min_run_time,
        "block_time_s": BLOCK_TIME,
        "timed_once_over_s": QUICK_ONCE_OVER if settings.quick else None,
        "timing": (
            "torch.utils.benchmark.Timer.timeit on forward+backward, gradients set to None "
            "before each run; blocks of about block_time_s, losskit's and the references' "
            "interleaved (A B, B A, ...); the median per-run time over the blocks"
        ),
        "memory": (MEMORY_METHOD_RSS if on_cpu else MEMORY_METHOD_ACCELERATOR)
        if settings.memory
        else None,
        "memory_noise_floor_bytes": RSS_NOISE_FLOOR if on_cpu else 0,
        "ratio": "losskit / reference: below 1 is faster or leaner",
    }
    return Report(created, machine, recorded, cases)
