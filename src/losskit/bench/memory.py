"""Peak memory of one forward+backward, each measured in a fresh process.

The child builds the inputs, runs the implementation once (so lazily initialised code and
caches are not counted), drops the gradients, and takes a baseline; then it runs one
forward+backward and reports the peak above that baseline:

* CPU: the peak resident set size. On Linux the kernel's high-water mark (``VmHWM``) is reset
  to the current RSS through ``/proc/self/clear_refs`` right after the baseline, so the figure
  is exact to the page. glibc's ``malloc`` is told to hand every block over 64 KiB straight back
  to the kernel when it is freed (``MALLOC_MMAP_THRESHOLD_``), so memory freed by the warm-up
  run cannot hide the measured run's peak. Elsewhere ``ru_maxrss`` gives a lower bound.
* Accelerators: the allocator's peak, ``torch.cuda.max_memory_allocated`` (other accelerators:
  ``torch.accelerator.max_memory_allocated``) above ``memory_allocated`` after
  ``reset_peak_memory_stats``, the device synchronised before each reading.

A measurement may carry limits (``--quick`` always does): ``max_memory`` bytes above the baseline
and ``max_run_time`` seconds per run. On a Linux CPU the child caps its address space
(``RLIMIT_AS``) before the warm-up run, so an over-sized case fails to allocate instead of taking
the machine's memory; an alarm ends a run that goes far over the time limit. Either way the answer
says ``"limit": "memory"`` or ``"time"``, and the harness leaves that size out.

Run as ``python -m losskit.bench.memory '{"loss": "mse", "impl": "losskit", "size": 1024,
"dtype": "float32", "device": "cpu", "threads": 1}'``; it prints one JSON line.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MEMORY_METHOD_RSS = (
    "peak RSS of one forward+backward above a baseline taken after the inputs are built and "
    "one warm-up run, in a fresh subprocess (Linux VmHWM reset via /proc/self/clear_refs)"
)
MEMORY_METHOD_ACCELERATOR = (
    "the allocator's peak (torch.cuda.max_memory_allocated; torch.accelerator on other "
    "accelerators) of one forward+backward above memory_allocated after the inputs are built "
    "and one warm-up run, in a fresh subprocess"
)

_MMAP_THRESHOLD = "65536"

#: address space allowed above the cap: ``RLIMIT_AS`` counts reservations, not use (the intra-op
#: threads are started before the cap is set, so their stacks and malloc arenas are already in)
_ADDRESS_SLACK = 128 << 20
#: a run that goes on this many times the time limit is ended by an alarm (it is over anyway;
#: the margin is for the first run's lazy initialisation)
_ALARM_FACTOR = 3.0
_ALARM_MIN_S = 1.0
#: the first call may import and compile: it gets this long
_FIRST_CALL_ALARM_S = 20.0


def _child_env(threads: int) -> dict[str, str]:
    import losskit

    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        MALLOC_MMAP_THRESHOLD_=_MMAP_THRESHOLD,
    )
    # the child imports the same losskit as this process, however this one found it
    root = str(Path(losskit.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _request(
    loss: str,
    impl: str,
    size: int,
    dtype: str,
    device: str,
    threads: int,
    max_memory: int | None = None,
    max_run_time: float | None = None,
) -> str:
    return json.dumps(
        {
            "loss": loss,
            "impl": impl,
            "size": size,
            "dtype": dtype,
            "device": device,
            "threads": threads,
            "max_memory": max_memory,
            "max_run_time": max_run_time,
        }
    )


def fork_server_available() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def measure_memory(
    loss: str,
    impl: str,
    size: int,
    dtype: str,
    device: str,
    threads: int = 1,
    timeout: float = 600.0,
    max_memory: int | None = None,
    max_run_time: float | None = None,
) -> dict[str, Any]:
    """One measurement in a freshly started interpreter; returns ``{"peak_bytes",
    "baseline_bytes", "method", "run_s"}``, or ``{"error": ...}`` (with ``"limit"`` when a
    limit was hit) if the child failed."""
    command = [
        sys.executable,
        "-m",
        "losskit.bench.memory",
        _request(loss, impl, size, dtype, device, threads, max_memory, max_run_time),
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=_child_env(threads), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode in (-signal.SIGALRM, -signal.SIGPROF):
        return _over_time(max_run_time)
    if proc.returncode != 0 or not lines:
        err = proc.stderr.strip().splitlines()
        return {"error": err[-1] if err else f"the subprocess exited with {proc.returncode}"}
    return json.loads(lines[-1])


class MemoryServer:
    """A clean interpreter that has imported torch and losskit and computed nothing; every
    measurement runs in a process forked from it, so each starts from the same fresh state
    without paying for the imports again (seconds per measurement on a small machine)."""

    def __init__(self, threads: int, timeout: float = 600.0) -> None:
        import tempfile

        self.threads, self.timeout = threads, timeout
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "losskit.bench.memory", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=_child_env(threads),
        )

    def _failure(self, what: str) -> dict[str, Any]:
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        return {"error": f"{what}: {lines[-1]}" if lines else what}

    def measure(
        self,
        loss: str,
        impl: str,
        size: int,
        dtype: str,
        device: str,
        max_memory: int | None = None,
        max_run_time: float | None = None,
    ) -> dict[str, Any]:
        import select

        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        if proc.poll() is not None:
            return self._failure("the memory server has exited")
        request = _request(loss, impl, size, dtype, device, self.threads, max_memory, max_run_time)
        try:
            proc.stdin.write(request + "\n")
            proc.stdin.flush()
        except OSError:
            return self._failure("the memory server has exited")
        ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
        if not ready:
            self.close()
            return {"error": f"timed out after {self.timeout:g} s"}
        line = proc.stdout.readline()
        if not line:
            return self._failure("the memory server has exited")
        return json.loads(line)

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()


class MemoryMeter:
    """Measures memory with up to ``jobs`` measurements at once: fork servers on Linux (started
    on first use, ``jobs`` per thread count, since a server's thread count is fixed when it
    starts), otherwise a fresh interpreter per measurement. Every measurement carries the
    meter's limits. Use as a context manager; ``measure`` is thread-safe."""

    def __init__(
        self,
        jobs: int,
        dtype: str,
        device: str,
        max_memory: int | None = None,
        max_run_time: float | None = None,
    ) -> None:
        self.jobs, self.dtype, self.device = max(1, jobs), dtype, device
        self.max_memory, self.max_run_time = max_memory, max_run_time
        self._fork = fork_server_available()
        self._lock = threading.Lock()
        self._pools: dict[int, queue.Queue[MemoryServer]] = {}
        self._all: list[MemoryServer] = []

    def _pool(self, threads: int) -> queue.Queue[MemoryServer]:
        with self._lock:
            if threads not in self._pools:
                pool: queue.Queue[MemoryServer] = queue.Queue()
                for _ in range(self.jobs):
                    server = MemoryServer(threads)
                    self._all.append(server)
                    pool.put(server)
                self._pools[threads] = pool
            return self._pools[threads]

    def measure(
        self, loss: str, impl: str, size: int, threads: int = 1, limited: bool = True
    ) -> dict[str, Any]:
        """One measurement; ``limited``: with the meter's limits (a probe of whether the size
        fits), else without (the size is known to fit; another thread count may be slower)."""
        limits = {
            "max_memory": self.max_memory if limited else None,
            "max_run_time": self.max_run_time if limited else None,
        }
        if not self._fork:
            return measure_memory(loss, impl, size, self.dtype, self.device, threads, **limits)
        pool = self._pool(threads)
        server = pool.get()
        try:
            return server.measure(loss, impl, size, self.dtype, self.device, **limits)
        finally:
            pool.put(server)

    def __enter__(self) -> MemoryMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._all:
            server.close()


# ---------------------------------------------------------------- in the child


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _trim_heap() -> None:
    """Give freed heap memory back to the kernel (glibc), so the baseline is the live data."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _max_rss_bytes() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _over_time(limit: float | None) -> dict[str, Any]:
    return {
        "error": f"stopped: a run went on far past the limit of {limit or 0:g} s",
        "limit": "time",
    }


def _alarm_after(limit: float) -> float:
    return max(_ALARM_MIN_S, _ALARM_FACTOR * limit)


def _cap_address_space(max_memory: int) -> bool:
    """Make allocations beyond ``max_memory`` (plus slack for reservations) fail in this
    process: a clean error instead of the machine's memory. Linux CPU runs only."""
    import resource

    import torch

    # start the intra-op threads now (a parallel kernel): their stacks and arenas are reserved
    # before the cap, not counted against it
    torch.ones(1 << 20).add_(1)
    try:
        current = _status_bytes("VmSize")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + max_memory + _ADDRESS_SLACK
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):
        return False
    return True


def _allocation_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("allocate" in text or "out of memory" in text or "not enough memory" in text)
    )


def _timed(call: Any, sync: Any, clock: Any) -> float:
    sync()
    start = clock()
    call()
    sync()
    return clock() - start


def _failed(exc: BaseException, max_memory: int | None) -> dict[str, Any]:
    from losskit.bench.calls import describe_error

    if max_memory is not None and _allocation_failure(exc):
        return {
            "error": f"{describe_error(exc)} (over the limit of {max_memory / 2**20:.0f} MiB)",
            "limit": "memory",
        }
    return {"error": describe_error(exc)}


def _peak_of_one_run(call: Any, device: Any, sync: Any, clock: Any) -> tuple[int, int, str, float]:
    """(peak above the baseline, baseline, method, seconds) of one run of ``call``."""
    import torch

    if device.type != "cpu":
        mem: Any = torch.cuda if device.type == "cuda" else torch.accelerator
        sync()
        mem.reset_peak_memory_stats(device)
        baseline = mem.memory_allocated(device)
        run_s = _timed(call, sync, clock)
        return mem.max_memory_allocated(device) - baseline, baseline, "accelerator", run_s
    _trim_heap()
    if sys.platform.startswith("linux") and _reset_peak_rss():
        baseline = _status_bytes("VmRSS")
        run_s = _timed(call, sync, clock)
        return _status_bytes("VmHWM") - baseline, baseline, "rss", run_s
    baseline = _max_rss_bytes()
    run_s = _timed(call, sync, clock)
    return _max_rss_bytes() - baseline, baseline, "ru_maxrss (lower bound)", run_s


def _first_call(spec: Any, impl: str, fn: Any, size: int, dtype: Any, device: Any) -> None:
    """Pay first-call costs (a lazy import, a kernel compiled on first use: over a second for
    some references) before the timed runs: at a sixteenth of the smallest size, or at the
    smallest size where a size that small is not valid."""
    from losskit.bench.calls import Call, bench_sample

    smallest = min(size, *spec.bench_sizes)
    try:
        Call(fn, bench_sample(spec, impl, max(1, smallest // 16), dtype, device))()
    except Exception:
        Call(fn, bench_sample(spec, impl, smallest, dtype, device))()
    gc.collect()


def _measure(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from losskit._registry import get_catalog
    from losskit.bench.calls import DTYPES, Call, bench_sample, implementations

    torch.set_num_threads(int(request["threads"]))
    device, dtype = torch.device(request["device"]), DTYPES[request["dtype"]]
    spec = get_catalog()[request["loss"]]
    impl = request["impl"]
    max_memory: int | None = request.get("max_memory")
    max_run_time: float | None = request.get("max_run_time")

    def sync() -> None:
        # elapsed time of a run on an accelerator includes its queued kernels
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type != "cpu":
            torch.accelerator.synchronize(device)

    size = int(request["size"])
    on_cpu = device.type == "cpu"
    if max_memory is not None and on_cpu and sys.platform.startswith("linux"):
        # before anything is built: the inputs and the first call below count too
        _cap_address_space(max_memory)
    # the time limit is on this process's CPU time on a CPU (other processes' load does not
    # count, so the sizes chosen do not depend on what else the machine runs), elapsed time on
    # an accelerator; the alarm counts the same way (SIGPROF, SIGALRM), and its default action
    # ends the process: even a long C++ kernel cannot hold it off
    clock: Any = time.process_time if on_cpu else time.perf_counter
    alarm = max_run_time is not None and hasattr(signal, "setitimer")
    which, sig = (
        (signal.ITIMER_PROF, signal.SIGPROF) if on_cpu else (signal.ITIMER_REAL, signal.SIGALRM)
    )

    def arm(seconds: float) -> None:
        if alarm:
            signal.signal(sig, signal.SIG_DFL)
            signal.setitimer(which, seconds)

    try:
        fn = implementations(spec)[impl]
        if max_run_time is not None:
            arm(_FIRST_CALL_ALARM_S)  # bounds a first call that is itself far too slow
            _first_call(spec, impl, fn, size, dtype, device)
        call = Call(fn, bench_sample(spec, impl, size, dtype, device))
        arm(_alarm_after(max_run_time or 0))
        warm_s = _timed(call, sync, clock)  # lazy initialisation is not the loss's memory
        call.clear()
        gc.collect()
        arm(_alarm_after(max_run_time or 0))
        peak, baseline, method, run_s = _peak_of_one_run(call, device, sync, clock)
    except Exception as exc:
        return _failed(exc, max_memory)
    arm(0)
    answer: dict[str, Any] = {
        "peak_bytes": max(0, peak),
        "baseline_bytes": baseline,
        "method": method,
        "run_s": run_s,
        "run_clock": "process CPU time" if on_cpu else "elapsed",
    }
    if max_memory is not None and peak > max_memory:
        return answer | {
            "error": f"one run needs {peak / 2**20:.0f} MiB (limit {max_memory / 2**20:.0f} MiB)",
            "limit": "memory",
        }
    # the faster of the two runs: the warm-up one may have paid for lazy initialisation
    if max_run_time is not None and min(run_s, warm_s) > max_run_time:
        return answer | {
            "error": f"one run takes {min(run_s, warm_s):.2f} s (limit {max_run_time:g} s)",
            "limit": "time",
        }
    return answer


def _serve() -> int:
    """Read one JSON request per line; answer each from a forked child, one JSON line."""
    import torch  # noqa: F401  (imported here, once, for every child)

    from losskit._registry import get_catalog
    from losskit.bench.calls import describe_error

    # every family's fixtures too (cases.py, imported lazily): once here, not in every child
    for spec in get_catalog().specs():
        # a broken entry fails its own measurements, not the server
        with contextlib.suppress(Exception):
            spec.fixtures()
    # what is alive now stays: the children's gc.collect() then scans only their own objects
    # (a tenth of a second less per measurement) and leaves the shared pages unwritten
    gc.collect()
    gc.freeze()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, hand the answer over, leave without cleanup
            os.close(read_fd)
            try:
                result = _measure(request)
            except BaseException as exc:
                result = {"error": describe_error(exc)}
            data = json.dumps(result).encode()
            while data:
                data = data[os.write(write_fd, data) :]
            os._exit(0)
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if chunks:
            answer = b"".join(chunks).decode()
        elif os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGALRM, signal.SIGPROF):
            answer = json.dumps(_over_time(request.get("max_run_time")))
        else:
            answer = json.dumps({"error": f"the measuring process died (wait status {status})"})
        sys.stdout.write(answer + "\n")
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--serve"]:
        return _serve()
    if len(args) != 1:
        print("usage: python -m losskit.bench.memory JSON | --serve", file=sys.stderr)
        return 2
    print(json.dumps(_measure(json.loads(args[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
