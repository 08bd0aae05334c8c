"""How a benchmark runs: the settings, their parsing and checks, and the conditions (torch
thread counts x background loads, each with its clock) every case is measured under."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NoReturn

import torch

from losskit._checks import LossInputError
from losskit.bench.calls import DTYPES

#: seconds of timing per implementation and condition without ``--quick``
MIN_RUN_TIME = 1.0
#: ``--quick``: seconds of timing per implementation and condition
QUICK_MIN_RUN_TIME = 0.1
#: ``--quick``: sizes whose inputs (estimated without allocating them) take more are left out
QUICK_MAX_INPUT_BYTES = 32 << 20
#: ``--quick``: a size where one forward+backward of any implementation takes longer (CPU time
#: at one thread on a CPU, so the choice does not depend on the machine's other load) is left out
QUICK_MAX_RUN_TIME = 0.3
#: ``--quick``: a size where one forward+backward of any implementation needs more memory is left
#: out; with at most ``QUICK_JOBS`` measurements at once the run stays under 2 GiB in all
QUICK_MAX_MEMORY = 512 << 20
QUICK_JOBS = 2

CLOCKS = ("auto", "cpu", "wall")
CLOCK_TEXT = {
    "cpu": "CPU time of the measuring thread (time.thread_time): the load of other processes "
    "does not count",
    "wall": "elapsed time (accelerators synchronised): contention for the cores counts",
}
DEFAULT = "default"


def _bad(name: str, got: str, expected: str) -> NoReturn:
    raise LossInputError(f"bench: {name} is {got}; expected {expected}")


@functools.cache
def default_threads() -> int:
    """torch's own intra-op thread count, as a fresh interpreter gets it (it honours
    ``OMP_NUM_THREADS``): this process's may already have been changed, e.g. by a test suite
    that sets one thread, so it is asked in a child (about a second, once per process)."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return max(1, int(out.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return torch.get_num_threads()


def _items(value: object) -> list[str]:
    if isinstance(value, str):
        return [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, int):
        return [str(value)]
    return [item for v in value for item in _items(v)]  # type: ignore[attr-defined]


def parse_threads(value: int | str | Iterable[int | str]) -> tuple[int | str, ...]:
    """``"1,default"`` -> ``(1, "default")``: positive integers and ``default`` (torch's own
    thread count, resolved when the settings are)."""
    out: list[int | str] = []
    for item in _items(value):
        if item.lower() == DEFAULT:
            out.append(DEFAULT)
            continue
        try:
            n = int(item)
        except ValueError:
            _bad("threads", repr(item), "positive integers or 'default', e.g. 1,default")
        if n < 1:
            _bad("threads", repr(item), "positive integers or 'default', e.g. 1,default")
        out.append(n)
    if not out:
        _bad("threads", repr(value), "positive integers or 'default', e.g. 1,default")
    return tuple(dict.fromkeys(out))


def parse_loads(value: int | str | Iterable[int | str]) -> tuple[int, ...]:
    """``"0,2"`` -> ``(0, 2)``: numbers of busy background processes, each one condition."""
    out = []
    for item in _items(value):
        try:
            n = int(item)
        except ValueError:
            _bad("background load", repr(item), "numbers of busy processes >= 0, e.g. 2 or 0,2")
        if n < 0:
            _bad("background load", repr(item), "numbers of busy processes >= 0, e.g. 2 or 0,2")
        out.append(n)
    if not out:
        _bad("background load", repr(value), "numbers of busy processes >= 0, e.g. 2 or 0,2")
    return tuple(dict.fromkeys(out))


def parse_bytes(text: str | int) -> int:
    """``"640M"`` -> 671088640; k, M and G are powers of 1024 (``MiB``, ``GB`` alike); 0 is 0."""
    if isinstance(text, int):
        return text
    item = text.strip().lower().removesuffix("ib").removesuffix("b")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(item[-1:], 1)
    digits = item[:-1] if scale != 1 else item
    try:
        value = int(float(digits) * scale)
    except ValueError:
        _bad("a byte count", repr(text), "a number such as 640M or 2G")
    if value < 0:
        _bad("a byte count", repr(text), "a number such as 640M or 2G")
    return value


def condition_label(threads: int, load: int, default: int | None = None) -> str:
    text = f"{threads} thread" + ("s" if threads != 1 else "")
    if default is not None and threads == default:
        text += " (default)"
    if load:
        text += f", {load} busy process" + ("es" if load != 1 else "")
    return text


@dataclass(frozen=True)
class Condition:
    """What a case was measured under: torch threads, busy background processes, the clock."""

    threads: int
    load: int
    clock: str

    def label(self, default: int | None = None) -> str:
        return condition_label(self.threads, self.load, default)


@dataclass(frozen=True)
class BenchSettings:
    """How to run. ``None`` fields take their default (which ``quick`` makes shorter)."""

    #: sizes for every loss instead of each spec's ``bench_sizes``
    sizes: tuple[int, ...] | None = None
    #: the smallest and the largest size that fits the limits below, short timings, memory at
    #: that size and the fewest threads only: a short check of every loss
    quick: bool = False
    #: torch thread counts, each a condition: integers and ``"default"`` (torch's own count);
    #: ``"1,default"`` and ``2`` are accepted too
    threads: tuple[int | str, ...] | int | str = (1, DEFAULT)
    #: busy background processes while timing, each a condition (``0``: an idle machine)
    background_load: tuple[int, ...] | int | str = (0,)
    #: ``"auto"`` is the current accelerator if there is one, else the CPU
    device: str = "auto"
    dtype: str = "float32"
    #: seconds of timing per implementation and condition, in interleaved blocks (1.0; quick
    #: ``QUICK_MIN_RUN_TIME``); never fewer than ``MIN_BLOCKS`` blocks
    min_run_time: float | None = None
    #: filled in by ``resolved()`` when ``threads`` asks for ``"default"``: torch's own count
    default_thread_count: int | None = None
    #: measure peak memory (a fresh process per loss, size, thread count and implementation)
    memory: bool = True
    #: memory measurements run at once (processes do not disturb each other's figures)
    jobs: int | None = None
    #: ``"cpu"``: the measuring thread's CPU time, which other processes' load does not
    #: inflate (one CPU thread and no background load, where all the work is on that thread);
    #: ``"wall"``: elapsed time, accelerators synchronised; ``"auto"``: cpu where it is exact,
    #: wall under every other condition
    clock: str = "auto"
    #: leave out sizes whose inputs take more bytes (estimated without allocating them)
    #: [quick: ``QUICK_MAX_INPUT_BYTES``; 0: no limit]
    max_input_bytes: int | None = None
    #: leave out sizes where one run of an implementation takes longer, in seconds
    #: [quick: ``QUICK_MAX_RUN_TIME``; 0: no limit]
    max_run_time: float | None = None
    #: leave out sizes where one run of an implementation needs more memory, in bytes; the
    #: measuring process cannot allocate much more [quick: ``QUICK_MAX_MEMORY``; 0: no limit]
    max_memory: int | None = None

    def resolved(self) -> BenchSettings:
        """Defaults filled in, the device and ``default`` threads resolved, every field
        checked. ``threads`` and ``background_load`` become tuples of ints."""
        if self.dtype not in DTYPES:
            _bad("dtype", repr(self.dtype), f"one of {', '.join(DTYPES)}")
        threads = parse_threads(self.threads)
        default = default_threads() if DEFAULT in threads else self.default_thread_count
        resolved_threads = tuple(
            dict.fromkeys(int(default if t == DEFAULT else t) for t in threads)  # type: ignore[arg-type]
        )
        loads = parse_loads(self.background_load)
        device = resolve_device(self.device)
        min_run_time = self.min_run_time or (QUICK_MIN_RUN_TIME if self.quick else MIN_RUN_TIME)
        if min_run_time <= 0:
            _bad("min_run_time", repr(min_run_time), "a positive number of seconds")
        if self.sizes is not None and (not self.sizes or min(self.sizes) < 1):
            _bad("sizes", repr(self.sizes), "positive integers")
        if self.clock not in CLOCKS:
            _bad("clock", repr(self.clock), f"one of {', '.join(CLOCKS)}")
        if self.clock == "cpu" and (
            device.type != "cpu" or max(resolved_threads) > 1 or max(loads) > 0
        ):
            _bad(
                "clock",
                "'cpu'",
                "wall with an accelerator, several threads or a background load (the CPU time "
                "of one thread hides both the other threads' work and the contention)",
            )
        limits = {}
        for name, quick_default in (
            ("max_input_bytes", QUICK_MAX_INPUT_BYTES),
            ("max_run_time", QUICK_MAX_RUN_TIME),
            ("max_memory", QUICK_MAX_MEMORY),
        ):
            value = getattr(self, name)
            if value is None:
                value = quick_default if self.quick else None
            elif value < 0:
                _bad(name, repr(value), "0 (no limit) or more")
            limits[name] = value or None  # 0: no limit
        jobs = self.jobs
        if jobs is None:
            jobs = max(1, min(4, (os.cpu_count() or 1) // max(resolved_threads)))
            jobs = jobs if device.type == "cpu" else 1
            if self.quick:
                jobs = min(jobs, QUICK_JOBS)
        return replace(
            self,
            threads=resolved_threads,
            default_thread_count=default,
            background_load=loads,
            device=str(device),
            min_run_time=min_run_time,
            jobs=max(1, jobs),
            **limits,
        )

    @property
    def thread_counts(self) -> tuple[int, ...]:
        """The resolved thread counts (call on ``resolved()`` settings)."""
        assert isinstance(self.threads, tuple), "call resolved() first"
        return tuple(int(t) for t in self.threads)

    @property
    def loads(self) -> tuple[int, ...]:
        assert isinstance(self.background_load, tuple), "call resolved() first"
        return tuple(int(n) for n in self.background_load)

    def clock_for(self, threads: int, load: int) -> str:
        if self.clock != "auto":
            return self.clock
        exact = torch.device(self.device).type == "cpu" and threads == 1 and load == 0
        return "cpu" if exact else "wall"

    def conditions(self) -> list[Condition]:
        """Every (threads, load) pair, the idle machine first."""
        return [
            Condition(t, n, self.clock_for(t, n)) for n in self.loads for t in self.thread_counts
        ]

    @property
    def guarded(self) -> bool:
        return self.max_run_time is not None or self.max_memory is not None


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


def _byte_count(n: int) -> str:
    """A byte count as ``parse_bytes`` reads it: ``32M`` for 33554432."""
    for unit, shift in (("G", 30), ("M", 20), ("k", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def command_line(settings: dict[str, Any]) -> str:
    """The ``losskit bench`` options that reproduce a run, from its JSON settings: the
    conditions, and every timing option or limit that differs from what ``--quick`` (or a run
    without it) would choose."""
    parts = ["losskit bench"]
    quick = bool(settings.get("quick"))
    if quick:
        parts.append("--quick")
    if settings.get("sizes"):
        parts.append("--sizes " + ",".join(str(n) for n in settings["sizes"]))
    threads = settings.get("threads")
    if isinstance(threads, list):
        default = settings.get("default_threads")
        text = ",".join(DEFAULT if t == default else str(t) for t in threads)
        parts.append(f"--threads {text}")
    loads = settings.get("background_load") or [0]
    if loads != [0]:
        parts.append("--background-load " + ",".join(str(n) for n in loads))
    if settings.get("device", "cpu") != "cpu":
        parts.append(f"--device {settings['device']}")
    if settings.get("dtype", "float32") != "float32":
        parts.append(f"--dtype {settings['dtype']}")
    if settings.get("clock", "auto") != "auto":
        parts.append(f"--clock {settings['clock']}")
    min_time = settings.get("min_run_time_s")
    if min_time is not None and min_time != (QUICK_MIN_RUN_TIME if quick else MIN_RUN_TIME):
        parts.append(f"--min-time {min_time:g}")
    limits = (
        ("--max-inputs", "max_input_bytes", QUICK_MAX_INPUT_BYTES, _byte_count),
        ("--max-run-time", "max_run_time_s", QUICK_MAX_RUN_TIME, lambda v: f"{v:g}"),
        ("--max-memory", "max_memory_bytes", QUICK_MAX_MEMORY, _byte_count),
    )
    for flag, key, quick_value, text_of in limits:
        value = settings.get(key)
        if value != (quick_value if quick else None):
            parts.append(f"{flag} {text_of(value) if value else 0}")  # 0: no limit
    if "memory" in settings and settings["memory"] is None:
        parts.append("--no-memory")
    return " ".join(parts)
