"""Peak memory of one forward+backward, each measured in a fresh process.

The child builds the inputs, runs the implementation once (so lazily initialised code and
caches are not counted), drops the gradients, and takes a baseline; then it runs one
forward+backward and reports the peak above that baseline:

* CPU: the peak resident set size. On Linux the kernel's high-water mark (``VmHWM``) is reset
  to the current RSS through ``/proc/self/clear_refs`` right after the baseline, so the figure
  is exact to the page. glibc's ``malloc`` is told to hand every block over 64 KiB straight back
  to the kernel when it is freed (``MALLOC_MMAP_THRESHOLD_``), so memory freed by the warm-up
  run cannot hide the measured run's peak. Elsewhere ``ru_maxrss`` gives a lower bound.
* Accelerators: ``torch.accelerator.max_memory_allocated`` above ``memory_allocated`` after
  ``reset_peak_memory_stats`` (on CUDA, ``torch.cuda.max_memory_allocated``).

Run as ``python -m losskit.bench.memory '{"loss": "mse", "impl": "losskit", "size": 1024,
"dtype": "float32", "device": "cpu", "threads": 1}'``; it prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MEMORY_METHOD_RSS = (
    "peak RSS of one forward+backward above a baseline taken after the inputs are built and "
    "one warm-up run, in a fresh subprocess (Linux VmHWM reset via /proc/self/clear_refs)"
)
MEMORY_METHOD_ACCELERATOR = (
    "torch.accelerator.max_memory_allocated of one forward+backward above memory_allocated "
    "after the inputs are built and one warm-up run, in a fresh subprocess"
)

_MMAP_THRESHOLD = "65536"


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


def _request(loss: str, impl: str, size: int, dtype: str, device: str, threads: int) -> str:
    return json.dumps(
        {
            "loss": loss,
            "impl": impl,
            "size": size,
            "dtype": dtype,
            "device": device,
            "threads": threads,
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
) -> dict[str, Any]:
    """One measurement in a freshly started interpreter; returns ``{"peak_bytes",
    "baseline_bytes", "method"}``, or ``{"error": ...}`` if the child failed."""
    command = [
        sys.executable,
        "-m",
        "losskit.bench.memory",
        _request(loss, impl, size, dtype, device, threads),
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=_child_env(threads), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
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

    def measure(self, loss: str, impl: str, size: int, dtype: str, device: str) -> dict[str, Any]:
        import select

        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        if proc.poll() is not None:
            return self._failure("the memory server has exited")
        try:
            proc.stdin.write(_request(loss, impl, size, dtype, device, self.threads) + "\n")
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
    """Measures memory with ``jobs`` measurements at once: fork servers on Linux, otherwise a
    fresh interpreter per measurement. Use as a context manager; ``measure`` is thread-safe."""

    def __init__(self, jobs: int, threads: int, dtype: str, device: str) -> None:
        import queue

        self.threads, self.dtype, self.device = threads, dtype, device
        self._servers: queue.Queue[MemoryServer] = queue.Queue()
        self._all: list[MemoryServer] = []
        if fork_server_available():
            for _ in range(jobs):
                server = MemoryServer(threads)
                self._all.append(server)
                self._servers.put(server)

    def measure(self, loss: str, impl: str, size: int) -> dict[str, Any]:
        if not self._all:
            return measure_memory(loss, impl, size, self.dtype, self.device, self.threads)
        server = self._servers.get()
        try:
            return server.measure(loss, impl, size, self.dtype, self.device)
        finally:
            self._servers.put(server)

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


def _measure(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    from losskit._registry import get_catalog
    from losskit.bench.calls import DTYPES, Call, bench_sample, describe_error, implementations

    torch.set_num_threads(int(request["threads"]))
    device, dtype = torch.device(request["device"]), DTYPES[request["dtype"]]
    spec = get_catalog()[request["loss"]]
    impl = request["impl"]
    try:
        fn = implementations(spec)[impl]
        call = Call(fn, bench_sample(spec, impl, int(request["size"]), dtype, device))
        call()  # warm-up: lazy initialisation is not the loss's memory
    except Exception as exc:
        return {"error": describe_error(exc)}
    call.clear()
    gc.collect()

    if device.type != "cpu":
        acc = torch.accelerator
        acc.synchronize(device)
        acc.reset_peak_memory_stats(device)
        baseline = acc.memory_allocated(device)
        call()
        acc.synchronize(device)
        peak = acc.max_memory_allocated(device)
        return {
            "peak_bytes": max(0, peak - baseline),
            "baseline_bytes": baseline,
            "method": "accelerator",
        }

    _trim_heap()
    if sys.platform.startswith("linux") and _reset_peak_rss():
        baseline = _status_bytes("VmRSS")
        call()
        peak = _status_bytes("VmHWM")
        method = "rss"
    else:
        baseline = _max_rss_bytes()
        call()
        peak = _max_rss_bytes()
        method = "ru_maxrss (lower bound)"
    return {"peak_bytes": max(0, peak - baseline), "baseline_bytes": baseline, "method": method}


def _serve() -> int:
    """Read one JSON request per line; answer each from a forked child, one JSON line."""
    import torch  # noqa: F401  (imported here, once, for every child)

    from losskit._registry import get_catalog
    from losskit.bench.calls import describe_error

    get_catalog()
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
