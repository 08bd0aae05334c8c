"""Background load: busy processes that share the cores with the measurement.

Real training shares the CPU with data-loader workers, so a loss whose speed holds only on an idle
machine is fragile. ``BackgroundLoad(n)`` starts ``n`` pure-Python spin loops (no numpy, no torch:
each holds one core at 100% without threads of its own), pinned to nothing, and stops them when the
``with`` block ends, whatever ends it. A spinner also stops by itself when its parent goes away
(``os.getppid()`` changes when the parent dies and it is re-parented), so a harness killed by a
signal, which runs no ``finally``, leaves no busy process behind for more than a few milliseconds.

While a load runs, only elapsed (wall) time shows its effect: the CPU time of the measuring thread
does not grow when that thread waits for a core (see ``BenchSettings.clock``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

#: the spinner: checks its parent every ~100k iterations (a few milliseconds of work). The
#: parent's pid comes as an argument, not from its own ``os.getppid()`` at start: a parent killed
#: before the spinner's first line ran would have re-parented it already, and it would spin on
SPIN = (
    "import os, sys\n"
    "parent = int(sys.argv[1])\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, from /proc (Linux); ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    # after the command name: state is field 3, utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / ticks


class BackgroundLoad:
    """``processes`` busy processes for the duration of a ``with`` block (0: none)."""

    def __init__(self, processes: int) -> None:
        if processes < 0:
            raise ValueError(f"bench: background load is {processes}; expected 0 or more")
        self.processes = processes
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started = 0.0
        #: filled in by ``stop()``: what the load did, for the report
        self.summary: dict[str, float | int | None] = {"processes": processes}

    def start(self) -> BackgroundLoad:
        self._started = time.perf_counter()
        try:
            for _ in range(self.processes):
                # -I -S: no site, no environment: starts in milliseconds and imports nothing
                self._procs.append(
                    subprocess.Popen(
                        [sys.executable, "-I", "-S", "-c", SPIN, str(os.getpid())],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        except BaseException:
            self.stop()
            raise
        dead = [p.pid for p in self._procs if p.poll() is not None]
        if dead:
            self.stop()
            raise RuntimeError(f"bench: background load processes {dead} exited at once")
        return self

    def alive(self) -> int:
        return sum(p.poll() is None for p in self._procs)

    def stop(self) -> None:
        """Stop every spinner (terminate, then kill one that lingers) and record the CPU time
        they used: ``cpu_s / (wall_s * processes)`` near 1 means each held a core throughout."""
        cpu = [_cpu_seconds(p.pid) for p in self._procs if p.poll() is None]
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._procs:
            wall = time.perf_counter() - self._started
            known = [c for c in cpu if c is not None]
            self.summary.update(
                wall_s=round(wall, 3),
                cpu_s=round(sum(known), 3) if len(known) == len(self._procs) else None,
            )
        self._procs = []

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
