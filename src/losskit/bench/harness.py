"""Selecting the cases, timing them, and collecting everything into one :class:`Report`.

Nothing here names a loss: the cases come from the catalog's ``bench_inputs``, ``bench_sizes``,
``bench_references`` and ``bench_reference_inputs`` fields, so a new entry is benchmarked as
soon as it sets them.

A run measures every case under each *condition*: a torch thread count (``1`` and torch's
default, unless told otherwise) and a background load (``0`` busy processes, or more). Ratios are
only ever taken between implementations measured under the same condition, interleaved.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from losskit._catalog import LossSpec, SampleInput
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
from losskit.bench.settings import (
    CLOCK_TEXT,
    QUICK_MAX_INPUT_BYTES,
    QUICK_MAX_MEMORY,
    QUICK_MAX_RUN_TIME,
    QUICK_MIN_RUN_TIME,
    BenchSettings,
    Condition,
    default_threads,
    parse_bytes,
    parse_loads,
    parse_sizes,
    parse_threads,
)
from losskit.bench.timing import (
    BLOCK_TIME,
    EPISODE_S,
    LOADED_MIN_BLOCKS,
    MIN_BLOCKS,
    region_time,
    time_calls,
)

__all__ = [
    "BLOCK_TIME",
    "LOADED_MIN_BLOCKS",
    "MIN_BLOCKS",
    "OURS",
    "QUICK_MAX_INPUT_BYTES",
    "QUICK_MAX_MEMORY",
    "QUICK_MAX_RUN_TIME",
    "QUICK_MIN_RUN_TIME",
    "BenchSettings",
    "CaseResult",
    "Condition",
    "ImplResult",
    "Report",
    "default_threads",
    "machine_info",
    "parse_bytes",
    "parse_loads",
    "parse_sizes",
    "parse_threads",
    "run_benchmarks",
    "select_specs",
]

#: RSS moves in pages and picks up allocator noise: below this both figures are "about zero"
#: and no memory ratio is given. The accelerator allocator counts bytes exactly.
RSS_NOISE_FLOOR = 256 * 1024

#: progress callback: (steps done, steps in all, what runs now)
ProgressFn = Callable[[int, int, str], None]


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


def family_of(spec: LossSpec) -> str:
    """The family directory a loss lives in (``losskit.losses.<family>``), else its task: the
    plots draw one figure per family."""
    parts = getattr(spec.functional, "__module__", "").split(".")
    if len(parts) >= 3 and parts[:2] == ["losskit", "losses"]:
        return parts[2]
    return spec.task


def _tensor_bytes(obj: object) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(o) for o in obj)
    if isinstance(obj, Mapping):
        return sum(_tensor_bytes(o) for o in obj.values())
    return 0


def input_bytes(spec: LossSpec, size: int, dtype: torch.dtype) -> int | None:
    """The bytes of the benchmark inputs at ``size``, without allocating them: the inputs are
    built under a fake-tensor mode (shapes and dtypes only). ``None`` if that fails."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    assert spec.bench_inputs is not None
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            sample = spec.bench_inputs(size, dtype, torch.device("cpu"))
            return _tensor_bytes(sample.args) + _tensor_bytes(dict(sample.kwargs))
    except Exception:
        return None


def candidate_sizes(
    spec: LossSpec, settings: BenchSettings
) -> tuple[list[int], list[dict[str, Any]]]:
    """The sizes to consider (ascending) and those left out by ``max_input_bytes``."""
    sizes = sorted(set(settings.sizes if settings.sizes is not None else spec.bench_sizes))
    skipped: list[dict[str, Any]] = []
    cap = settings.max_input_bytes
    if cap is None:
        return sizes, skipped
    kept = []
    for size in sizes:
        n = input_bytes(spec, size, DTYPES[settings.dtype])
        if n is not None and n > cap:
            reason = f"inputs of {n / 2**20:.1f} MiB over the limit of {cap / 2**20:.0f} MiB"
            skipped.append({"loss": spec.name, "size": size, "reason": reason})
        else:
            kept.append(size)
    return kept, skipped


# ---------------------------------------------------------------- results


@dataclass
class ImplResult:
    """One implementation at one size under one condition. Times are seconds per
    forward+backward: the median, min and max over the blocks (each block's figure is its time
    divided by its runs)."""

    name: str
    time_s: float | None = None
    time_min_s: float | None = None
    time_max_s: float | None = None
    #: interquartile range of the block times
    time_iqr_s: float | None = None
    #: timed blocks behind the figures (at least ``MIN_BLOCKS``; ``LOADED_MIN_BLOCKS`` under
    #: a background load)
    blocks: int = 0
    #: forward+backward runs in those blocks
    runs: int = 0
    #: peak memory of one forward+backward above the baseline, in bytes (measured once per
    #: thread count, on the otherwise idle machine)
    peak_bytes: int | None = None
    error: str | None = None


class PairedRatios(NamedTuple):
    """``ours[i] / ref[i]`` over the pairs of blocks ``i`` (run back to back)."""

    low: float
    median: float
    high: float
    #: how many pairs, and in how many of them losskit was slower (a sign test's counts)
    pairs: int
    slower: int


@dataclass
class CaseResult:
    """One loss at one size under one condition: losskit and each reference, and their ratios."""

    loss: str
    size: int
    inputs: str
    ours: ImplResult
    references: list[ImplResult] = field(default_factory=list)
    threads: int = 1
    load: int = 0
    clock: str = "cpu"
    family: str = ""
    #: reference name -> losskit's time / the reference's over paired blocks (block i of each
    #: was run back to back): the ratio, its spread, and how many pairs were slower
    block_ratios: dict[str, PairedRatios] = field(default_factory=dict)
    #: references that compute less than the loss (``LossCases.bench_baselines``): for scale
    baselines: tuple[str, ...] = ()
    #: seconds per parallel region just before and just after the timings (CPU, more than
    #: one thread: :func:`~losskit.bench.timing.region_time`), else None
    region_s: tuple[float, float] | None = None

    @property
    def in_episode(self) -> bool:
        """Whether a parallel region took over ``EPISODE_S`` around this case's timings."""
        return self.region_s is not None and max(self.region_s) > EPISODE_S

    @property
    def condition(self) -> Condition:
        return Condition(self.threads, self.load, self.clock)

    def time_ratio(self, ref: ImplResult) -> float | None:
        """The median of the paired blocks' ratios; the ratio of the medians where there are
        no pairs. Each pair ran back to back, under the same load: on a busy machine the
        pairs' median moved a tenth as much between repeated runs as the medians' ratio did
        (a parity case, mse vs F.mse_loss at 32, 1 thread and 2 busy processes, 6 repeats of
        0.1 s: 0.91-0.98 against 0.60-0.98), and on a quiet one they agree (0.94 both)."""
        paired = self.block_ratios.get(ref.name)
        if paired is not None:
            return paired.median
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
        refs = []
        for ref in self.references:
            paired = self.block_ratios.get(ref.name)
            refs.append(
                {
                    **asdict(ref),
                    "time_ratio": self.time_ratio(ref),
                    "time_ratio_min": None if paired is None else paired.low,
                    "time_ratio_max": None if paired is None else paired.high,
                    "time_ratio_pairs": None if paired is None else paired.pairs,
                    "time_ratio_slower_pairs": None if paired is None else paired.slower,
                    "memory_ratio": self.memory_ratio(ref, floor),
                    "baseline": ref.name in self.baselines,
                }
            )
        return {
            "loss": self.loss,
            "family": self.family,
            "size": self.size,
            "inputs": self.inputs,
            "threads": self.threads,
            "load": self.load,
            "clock": self.clock,
            "ours": asdict(self.ours),
            "references": refs,
            "region_s": None if self.region_s is None else list(self.region_s),
            "in_episode": self.in_episode,
        }


@dataclass
class Report:
    """Everything one run produced; ``to_dict()`` is the JSON that is saved."""

    created: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    cases: list[CaseResult]
    #: sizes left out by the limits (``--quick``, ``--max-*``), with the reason
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: what each background load did (processes, wall_s, cpu_s)
    loads: list[dict[str, Any]] = field(default_factory=list)
    #: the run itself: wall time and the largest resident set of this process and its children
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def memory_floor(self) -> int:
        return int(self.settings.get("memory_noise_floor_bytes", 0))

    def errors(self) -> list[tuple[str, int, str, str]]:
        """(loss, size, implementation, error) for every figure that could not be taken (once
        per loss, size and implementation, whatever the conditions)."""
        seen: dict[tuple[str, int, str], str] = {}
        for c in self.cases:
            for impl in (c.ours, *c.references):
                if impl.error:
                    seen.setdefault((c.loss, c.size, impl.name), impl.error)
        return [(loss, size, name, error) for (loss, size, name), error in seen.items()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": 3,  # 3: each reference counts its pairs of blocks and the slower ones
            "created": self.created,
            "machine": self.machine,
            "settings": self.settings,
            "run": self.run,
            "background_load": self.loads,
            "skipped": self.skipped,
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


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(
    device: str | torch.device = "cpu",
    threads: int | Sequence[int] = 1,
    default: int | None = None,
) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, torch, threads and device, for the report.
    ``default``: torch's default thread count where it is known (see :func:`default_threads`)."""
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
        "threads": [threads] if isinstance(threads, int) else list(threads),
        "default_threads": default,
        "interop_threads": torch.get_num_interop_threads(),
        "device": str(device),
        "device_name": device_name,
        "load_average": load_average(),
    }


# ---------------------------------------------------------------- timing summaries


def _summarise(result: ImplResult, times: list[float], runs: int) -> None:
    if not times:
        return
    result.time_s = statistics.median(times)
    result.time_min_s, result.time_max_s = min(times), max(times)
    result.blocks, result.runs = len(times), runs
    if len(times) >= 2:
        q1, _, q3 = statistics.quantiles(times, n=4)
        result.time_iqr_s = q3 - q1


def _paired_ratios(ours: list[float], ref: list[float]) -> PairedRatios | None:
    pairs = [a / b for a, b in zip(ours, ref, strict=False) if b > 0]
    if not pairs:
        return None
    slower = sum(r > 1.0 for r in pairs)
    return PairedRatios(min(pairs), statistics.median(pairs), max(pairs), len(pairs), slower)


# ---------------------------------------------------------------- memory and limits


@dataclass
class _Plan:
    """One loss: the sizes to time, memory answers by (size, threads, implementation)."""

    spec: LossSpec
    sizes: list[int]
    memory: dict[tuple[int, int, str], dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _plan_spec(spec: LossSpec, settings: BenchSettings, meter: Any) -> _Plan:
    """Choose the sizes of ``spec`` and measure their memory.

    With limits (``max_run_time``/``max_memory``, which ``--quick`` sets), the memory
    measurement at each size, at the fewest threads (the slowest), also checks them, going up
    from the smallest size: the measuring process cannot allocate much more than ``max_memory``
    and is stopped when a run goes far over ``max_run_time``, so an over-sized case costs a
    failed allocation or a second, never the machine. The first size where any implementation
    is over a limit is left out, and every larger one with it. ``--quick`` checks the largest
    size first (when it fits, every smaller one does), then times the smallest and the largest
    size that fits, and measures memory at that one, at one thread only."""
    candidates, skipped = candidate_sizes(spec, settings)
    plan = _Plan(spec, [], skipped=skipped)
    impls = list(implementations(spec))
    threads = settings.thread_counts
    probe = min(threads)
    measure = settings.memory or settings.guarded

    def at(size: int, n: int, limited: bool) -> dict[str, dict[str, Any]]:
        return {impl: meter.measure(spec.name, impl, size, n, limited) for impl in impls}

    def fits(size: int) -> bool:
        """Measure at ``size`` with the limits; record the memory, or why it is left out (at
        the first implementation over a limit: the size is out, the others need no check)."""
        got = {}
        for impl in impls:
            got[impl] = answer = meter.measure(spec.name, impl, size, probe, True)
            # the time limit caps how far up the sizes go: the smallest size stays if it is
            # at most twice over (an entry gets a row whenever it reasonably can)
            limit = settings.max_run_time or 0.0
            if (
                size == candidates[0]
                and answer.get("limit") == "time"
                and answer.get("run_s", float("inf")) <= 2 * limit
            ):
                got[impl] = {k: v for k, v in answer.items() if k not in ("error", "limit")}
            elif answer.get("limit"):
                reason = f"{impl}: {answer['error']}"
                plan.skipped.append({"loss": spec.name, "size": size, "reason": reason})
                return False
        if settings.memory:
            plan.memory.update({(size, probe, impl): a for impl, a in got.items()})
        return True

    def up_to_first_miss(sizes: list[int]) -> list[int]:
        kept = []
        for i, size in enumerate(sizes):
            if not fits(size):
                plan.skipped += [
                    {"loss": spec.name, "size": s, "reason": f"larger than {size:,}, over a limit"}
                    for s in sizes[i + 1 :]
                ]
                break
            kept.append(size)
        return kept

    if not candidates or not measure:
        kept = list(candidates)
    elif settings.quick and not settings.guarded:
        kept = list(candidates)
        fits(candidates[-1])  # no limits: this only measures the memory
    elif settings.quick:
        # the largest first: when it fits, so does every smaller size, and one check is enough
        kept = list(candidates) if fits(candidates[-1]) else up_to_first_miss(candidates[:-1])
    else:
        kept = up_to_first_miss(candidates)
    if settings.quick and len(kept) > 2:
        kept = [kept[0], kept[-1]]
    if settings.memory and not settings.quick:
        # another thread count may be slower (contention): no limits, the size fits
        for size in kept:
            for n in threads:
                if n != probe:
                    got = at(size, n, limited=False)
                    plan.memory.update({(size, n, impl): a for impl, a in got.items()})
    plan.sizes = kept
    return plan


def _memory_phase(
    specs: Sequence[LossSpec], settings: BenchSettings, tick: Callable[[str], None]
) -> list[_Plan]:
    from losskit.bench.memory import MemoryMeter

    if not (settings.memory or settings.guarded):
        return [_plan_spec(spec, settings, None) for spec in specs]
    jobs = settings.jobs or 1
    with (
        MemoryMeter(
            jobs,
            settings.dtype,
            settings.device,
            max_memory=settings.max_memory,
            max_run_time=settings.max_run_time,
        ) as meter,
        ThreadPoolExecutor(jobs) as pool,
    ):
        plans = []
        for plan in pool.map(lambda spec: _plan_spec(spec, settings, meter), specs):
            plans.append(plan)
            tick(f"memory  {plan.spec.name}")
    return plans


def _usage() -> dict[str, Any]:
    """The run's cost: CPU seconds of this process and its (reaped) descendants, which the
    machine's other load does not inflate, and the largest resident set of this process and
    of any descendant, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
    return {
        "cpu_s": round(cpu, 1),
        "peak_rss_bytes": me.ru_maxrss * scale,
        "children_peak_rss_bytes": children.ru_maxrss * scale,
    }


# ---------------------------------------------------------------- running


def _calls_for(spec: LossSpec, base: SampleInput, errors: dict[str, str]) -> dict[str, Call]:
    calls = {}
    for name, fn in implementations(spec).items():
        try:
            calls[name] = Call(fn, adapt_sample(spec, name, base))
        except Exception as exc:
            errors[name] = describe_error(exc)
    return calls


def run_benchmarks(
    specs: Sequence[LossSpec],
    settings: BenchSettings | None = None,
    progress: ProgressFn | None = None,
) -> Report:
    """Benchmark ``specs`` (see :func:`select_specs`): the sizes and their memory first
    (subprocesses, several at once), then the timings one after another in this process, once
    per condition (each background load started for its timings and stopped after them)."""
    from losskit.bench.load import BackgroundLoad
    from losskit.bench.memory import MEMORY_METHOD_ACCELERATOR, MEMORY_METHOD_RSS

    started = time.perf_counter()
    settings = (settings or BenchSettings()).resolved()
    device, dtype = torch.device(settings.device), DTYPES[settings.dtype]
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    machine = machine_info(device, settings.thread_counts, settings.default_thread_count)
    conditions = settings.conditions()

    total_sizes = sum(len(candidate_sizes(s, settings)[0]) for s in specs)
    total = len(specs) + total_sizes * len(conditions)
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total, what)

    if progress is not None:
        progress(0, total, "starting")
    phases: dict[str, float] = {"setup_s": round(time.perf_counter() - started, 1)}
    mark = time.perf_counter()
    plans = _memory_phase(specs, settings, tick)
    phases["sizes_and_memory_s"] = round(time.perf_counter() - mark, 1)
    # the sizes left out are known now: the bar's total shrinks to what will run
    total = len(specs) + sum(len(p.sizes) for p in plans) * len(conditions)

    cases: list[CaseResult] = []
    loads = []
    for load in settings.loads:
        mark = time.perf_counter()
        with BackgroundLoad(load) as background:
            for plan in plans:
                spec = plan.spec
                assert spec.bench_inputs is not None
                for size in plan.sizes:
                    build_errors: dict[str, str] = {}
                    try:
                        base = spec.bench_inputs(size, dtype, device)
                        calls = _calls_for(spec, base, build_errors)
                        inputs = base.desc or f"{size}"
                    except Exception as exc:
                        calls, inputs = {}, f"{size}"
                        build_errors = {n: describe_error(exc) for n in implementations(spec)}
                    for threads in settings.thread_counts:
                        clock = settings.clock_for(threads, load)
                        tick(
                            f"timing  {spec.name} {size:,} ({Condition(threads, load, clock).label()})"
                        )
                        cases.append(
                            _time_case(
                                plan,
                                size,
                                inputs,
                                calls,
                                build_errors,
                                threads,
                                load,
                                clock,
                                settings,
                            )
                        )
                    del calls
        if load:
            loads.append(dict(background.summary))
        phases[f"timing_load_{load}_s"] = round(time.perf_counter() - mark, 1)

    on_cpu = device.type == "cpu"
    default = machine["default_threads"]
    recorded = {
        "quick": settings.quick,
        "sizes": list(settings.sizes) if settings.sizes else None,
        "threads": list(settings.thread_counts),
        "default_threads": default,
        "background_load": list(settings.loads),
        "conditions": [
            {
                "threads": c.threads,
                "load": c.load,
                "clock": c.clock,
                "label": c.label(default),
                "clock_meaning": CLOCK_TEXT[c.clock],
            }
            for c in conditions
        ],
        "device": settings.device,
        "dtype": settings.dtype,
        "clock": settings.clock,
        "min_run_time_s": settings.min_run_time,
        "block_time_s": BLOCK_TIME,
        "min_blocks": MIN_BLOCKS,
        "min_blocks_under_load": LOADED_MIN_BLOCKS,
        "max_input_bytes": settings.max_input_bytes,
        "max_run_time_s": settings.max_run_time,
        "max_memory_bytes": settings.max_memory,
        "jobs": settings.jobs,
        "timing": (
            "forward+backward, gradients set to None before each run; one untimed run first "
            "(lazy initialisation, thread start-up), one to size the blocks (a run longer than "
            "a block is a block of one run, and that one counts); blocks of about "
            "block_time_s, losskit's and the references' interleaved (A B, B A, ...), at least "
            f"{MIN_BLOCKS} each ({LOADED_MIN_BLOCKS} under a background load), the garbage "
            "collector paused within a block; median, min and max of the per-run time over the "
            "blocks, timed with torch.utils.benchmark's clock (wall) or the measuring thread's "
            "CPU time (cpu)"
        ),
        "background_load_meaning": (
            "N pure-Python busy processes (one core each, pinned to nothing) running while the "
            "cases of that condition are timed; memory is measured without them"
        ),
        "memory": (MEMORY_METHOD_RSS if on_cpu else MEMORY_METHOD_ACCELERATOR)
        if settings.memory
        else None,
        "memory_noise_floor_bytes": RSS_NOISE_FLOOR if on_cpu else 0,
        "episode_region_s": EPISODE_S,
        "ratio": "losskit / reference: below 1 is faster or leaner",
    }
    skipped = [s for p in plans for s in p.skipped]
    run = {"wall_s": round(time.perf_counter() - started, 1), **phases, **_usage()}
    # the busy processes are children too: their CPU time is the load's, not the run's
    run["cpu_s"] = round(run["cpu_s"] - sum(entry.get("cpu_s") or 0 for entry in loads), 1)
    machine["load_average_end"] = load_average()
    if progress is not None:
        progress(total, total, "done")
    return Report(created, machine, recorded, cases, skipped, loads, run)


def _time_case(
    plan: _Plan,
    size: int,
    inputs: str,
    calls: Mapping[str, Call],
    build_errors: Mapping[str, str],
    threads: int,
    load: int,
    clock: str,
    settings: BenchSettings,
) -> CaseResult:
    spec = plan.spec
    results = {name: ImplResult(name) for name in implementations(spec)}
    for name, result in results.items():
        answer = plan.memory.get((size, threads, name))
        if answer is not None:
            result.peak_bytes = answer.get("peak_bytes")
            if answer.get("error"):
                result.error = f"memory: {answer['error']}"
        if name in build_errors:
            result.error = build_errors[name]
    assert settings.min_run_time is not None
    probe = settings.device == "cpu" and threads > 1
    before = region_time(threads) if probe else None
    timed = time_calls(
        {n: c for n, c in calls.items() if n not in build_errors},
        settings.min_run_time,
        threads,
        clock,
        min_blocks=LOADED_MIN_BLOCKS if load else MIN_BLOCKS,
    )
    after = region_time(threads) if probe else None
    for name, error in timed.errors.items():
        results[name].error = error
    for name, blocks in timed.blocks.items():
        if name not in timed.errors:
            _summarise(results[name], blocks, timed.runs[name])
    ours = results.pop(OURS)
    ratios = {}
    for name in results:
        if OURS in timed.blocks and name in timed.blocks:
            spread = _paired_ratios(
                timed.blocks[OURS][timed.seeded.get(OURS, 0) :],
                timed.blocks[name][timed.seeded.get(name, 0) :],
            )
            if spread is not None:
                ratios[name] = spread
    return CaseResult(
        spec.name,
        size,
        inputs,
        ours,
        list(results.values()),
        threads=threads,
        load=load,
        clock=clock,
        family=family_of(spec),
        block_ratios=ratios,
        baselines=tuple(n for n in spec.bench_baselines if n in results),
        region_s=None if before is None or after is None else (before, after),
    )
