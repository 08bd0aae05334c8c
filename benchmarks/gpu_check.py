"""GPU readiness in one command: ``python benchmarks/gpu_check.py`` (``make gpu-check``).

On a CUDA machine, in under ten minutes, it

1. runs the catalog matrix (``tests/test_catalog_matrix.py``) with every sample built on the
   device,
2. benchmarks focal, sigmoid focal, triplet and linear cross-entropy there against their
   references, with the CUDA allocator's peak (``torch.cuda.max_memory_allocated``) for memory,
3. checks that no catalog entry synchronises the host with the device in its forward+backward
   (``torch.cuda.set_sync_debug_mode("error")`` around each of its float32 samples),

and prints one summary table (``--json`` saves it). The exit status is 1 if a test failed, a
loss could not run on the device or synchronised, 0 otherwise.

In CI it runs as a smoke test of itself: ``--device cpu --quick`` (a few matrix tests, tiny
benchmark sizes, no sync check on a CPU) in well under a minute.

How the matrix reaches the device without touching the tests: this file is also a pytest plugin
(``-p gpu_check``). After collection it replaces ``samples`` (the helper in
``tests/catalog_helpers.py`` that builds every sample, on the CPU) in each collected module with
one that builds them on ``LOSSKIT_TEST_DEVICE``, and counts the samples it built there; the count
is in the summary, so a matrix that silently stayed on the CPU shows. Tests that build no
samples through it (error inputs, worked examples) still run on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEVICE_ENV = "LOSSKIT_TEST_DEVICE"
STATS_ENV = "LOSSKIT_GPU_CHECK_STATS"

#: the losses whose speed and memory the check measures on the device
BENCH_LOSSES = ("focal", "sigmoid_focal", "triplet", "linear_cross_entropy")
#: ``--quick``: the matrix tests it runs (a ``-k`` expression) and the benchmark sizes
QUICK_MATRIX = "mse"
QUICK_SIZES = (64,)
#: seconds kept back for the benchmarks and the sync check when the matrix runs
BENCH_RESERVE_S = {"quick": 45.0, "full": 240.0}


# ---------------------------------------------------------------- the pytest plugin


_built_on_device = 0


def pytest_collection_finish(session: Any) -> None:
    """Build every catalog sample on ``LOSSKIT_TEST_DEVICE`` (see the module docstring)."""
    name = os.environ.get(DEVICE_ENV)
    if not name:
        return
    import torch

    import catalog_helpers

    device = torch.device(name)
    original = catalog_helpers.samples

    def samples(spec: Any, dtype: torch.dtype = torch.float64) -> list[Any]:
        global _built_on_device
        built = list(spec.sample_inputs(dtype, device))
        _built_on_device += sum(
            any(isinstance(a, torch.Tensor) and a.device.type == device.type for a in s.args)
            for s in built
        )
        return built

    catalog_helpers.samples = samples
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "samples", None) is original:
            module.samples = samples


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get(STATS_ENV)
    if path:
        Path(path).write_text(json.dumps({"samples_on_device": _built_on_device}))


# ---------------------------------------------------------------- 1. the matrix


def run_matrix(device: str, k: str | None, timeout: float) -> dict[str, Any]:
    """pytest over the catalog matrix in a subprocess, samples on ``device``."""
    with tempfile.TemporaryDirectory() as tmp:
        junit, stats = Path(tmp) / "junit.xml", Path(tmp) / "stats.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests" / "test_catalog_matrix.py"),
            "-q",
            "-p",
            "gpu_check",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
        ]
        if k:
            command += ["-k", k]
        env = dict(os.environ)
        env[DEVICE_ENV] = device
        env[STATS_ENV] = str(stats)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "seconds": round(time.perf_counter() - started, 1)}
        result: dict[str, Any] = {
            "status": "passed" if proc.returncode == 0 else "failed",
            "returncode": proc.returncode,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if junit.exists():
            result.update(_junit(junit))
        if stats.exists():
            result.update(json.loads(stats.read_text()))
        if proc.returncode not in (0, 1):  # 1: tests failed; other: could not run at all
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            result["output"] = "\n".join(tail)
    return result


def _junit(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    failed = []
    for case in suite.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return {
        "tests": int(suite.get("tests", 0)),
        "failures": int(suite.get("failures", 0)) + int(suite.get("errors", 0)),
        "skipped": int(suite.get("skipped", 0)),
        "failed_tests": failed,
    }


# ---------------------------------------------------------------- 2. the benchmarks


def run_bench(device: str, quick: bool, sizes: Sequence[int] | None) -> dict[str, Any]:
    """focal / sigmoid focal / triplet / linear CE against their references on ``device``,
    with the allocator's peak (memory measured in fresh subprocesses)."""
    from losskit.bench import BenchSettings, run_benchmarks, select_specs

    settings = BenchSettings(
        sizes=tuple(sizes) if sizes else None,
        quick=quick,
        # on an accelerator the host's thread count only changes the launch overhead
        threads=("default",) if device != "cpu" else (1,),
        device=device,
        min_run_time=0.05 if quick else 0.5,
        memory=True,
    )
    return run_benchmarks(select_specs(BENCH_LOSSES), settings).to_dict()


# ---------------------------------------------------------------- 3. host-device syncs


def _calls(spec: Any, device: Any) -> list[tuple[str, Callable[[], None]]]:
    """(description, forward+backward) for each float32 sample of ``spec`` on ``device``
    (extremes and empty inputs aside), built outside the checked region."""
    import torch

    out = []
    for sample in spec.sample_inputs(torch.float32, device):
        if "extreme" in sample.tags or not sample.args or sample.args[0].numel() == 0:
            continue
        args = list(sample.args)
        leaves = []
        for i in sample.grad_args:
            args[i] = args[i].detach().requires_grad_(True)
            leaves.append(args[i])

        def call(args: list[Any] = args, leaves: list[Any] = leaves, sample: Any = sample) -> None:
            for leaf in leaves:
                leaf.grad = None
            out = spec.functional(*args, **dict(sample.kwargs))
            if leaves:
                (out if out.dim() == 0 else out.sum()).backward()

        out.append((sample.desc or "sample", call))
    return out


def check_syncs(device: str) -> list[dict[str, Any]]:
    """Every float32 sample of every catalog entry, forward+backward, under
    ``set_sync_debug_mode("error")`` (after a warm-up call outside it): a synchronising op
    raises there. CUDA only; elsewhere (the smoke test) each entry's first sample runs once
    and its status is "n/a"."""
    import torch

    import losskit

    dev = torch.device(device)
    rows = []
    for spec in losskit.catalog.specs():
        row: dict[str, Any] = {"loss": spec.name}
        try:
            calls = _calls(spec, dev)
            if dev.type != "cuda":
                calls = calls[:1]
            for _, call in calls:
                call()  # lazy initialisation (kernels, handles) may synchronise
        except Exception as exc:
            rows.append(row | {"status": "error", "detail": _first_line(exc)})
            continue
        if dev.type != "cuda":
            rows.append(row | {"status": "n/a", "detail": f"no sync check on {dev.type}"})
            continue
        found = None
        torch.cuda.synchronize(dev)
        torch.cuda.set_sync_debug_mode("error")
        try:
            for desc, call in calls:
                try:
                    call()
                except Exception as exc:
                    # the debug mode raises "called a synchronizing CUDA operation"
                    status = "sync" if "synchroniz" in str(exc).lower() else "error"
                    found = {"status": status, "detail": f"{desc}: {_first_line(exc)}"}
                    break
        finally:
            torch.cuda.set_sync_debug_mode(0)
            torch.cuda.synchronize(dev)
        detail = f"{len(calls)} samples"
        rows.append(row | (found or {"status": "no sync", "detail": detail}))
    return rows


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:160]


# ---------------------------------------------------------------- the summary


def _fmt_time(seconds: float | None) -> str:
    from losskit.bench import format_time

    return format_time(seconds)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(check, case, result, detail) rows of the one summary table."""
    from losskit.bench import format_bytes, format_ratio, format_size

    rows: list[tuple[str, str, str, str]] = []
    matrix = result.get("matrix")
    if matrix is not None:
        if matrix.get("status") == "skipped":
            rows.append(("matrix", "tests/test_catalog_matrix.py", "skipped", ""))
        else:
            counts = (
                f"{matrix.get('tests', '?')} tests, {matrix.get('failures', '?')} failed, "
                f"{matrix.get('skipped', '?')} skipped"
            )
            detail = (
                f"{matrix.get('seconds')} s; {matrix.get('samples_on_device', 0)} samples built "
                f"on {result['device']}"
            )
            rows.append(("matrix", "tests/test_catalog_matrix.py", matrix["status"], counts))
            rows.append(("", "", "", detail))
            for name in matrix.get("failed_tests", [])[:10]:
                rows.append(("", name, "FAILED", ""))
            if matrix.get("output"):
                rows.append(("", "pytest", "could not run", matrix["output"].splitlines()[-1]))
    bench = result.get("bench")
    if bench is not None:
        for case in bench["results"]:
            ours = case["ours"]
            for ref in case["references"]:
                ratio = ref.get("time_ratio")
                mem = ref.get("memory_ratio")
                text = f"time {format_ratio(ratio)}x, memory " + (
                    f"{format_ratio(mem)}x" if mem is not None else "– (noise)"
                )
                detail = (
                    f"{_fmt_time(ours.get('time_s'))} vs {_fmt_time(ref.get('time_s'))}; "
                    f"peak {format_bytes(ours.get('peak_bytes'))} vs "
                    f"{format_bytes(ref.get('peak_bytes'))}"
                )
                if ours.get("error") or ref.get("error"):
                    detail = ours.get("error") or ref.get("error") or ""
                rows.append(
                    (
                        "bench",
                        f"{case['loss']} {format_size(case['size'])} vs {ref['name']}",
                        text,
                        detail,
                    )
                )
        for skipped in bench.get("skipped", []):
            rows.append(
                (
                    "bench",
                    f"{skipped['loss']} {format_size(skipped['size'])}",
                    "left out",
                    skipped["reason"][:120],
                )
            )
    syncs = result.get("syncs") or []
    clean = [r["loss"] for r in syncs if r["status"] in ("no sync", "n/a")]
    if clean:
        status = "no sync" if result["device"].startswith("cuda") else "ran (n/a)"
        note = "" if result["device"].startswith("cuda") else "; no sync check off CUDA"
        rows.append(("sync", f"{len(clean)} of {len(syncs)} catalog entries", status, note))
    for row in syncs:
        if row["loss"] not in clean:
            rows.append(("sync", row["loss"], row["status"], row["detail"]))
    return rows


def render_summary(result: dict[str, Any]) -> str:
    rows = [("check", "case", "result", "detail"), *summary_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"losskit GPU check on {result['device']} ({result.get('device_name', '')}), "
        f"{'quick' if result.get('quick') else 'full'}, {result.get('seconds', 0):g} s: "
        f"{'OK' if result.get('ok') else 'PROBLEMS'}"
    ]
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(lines)


def verdict(result: dict[str, Any]) -> bool:
    matrix = result.get("matrix") or {}
    if matrix.get("status") not in (None, "passed", "skipped"):
        return False
    bench = result.get("bench")
    if bench is not None and any(c["ours"].get("error") for c in bench["results"]):
        return False
    return not any(r["status"] in ("sync", "error") for r in result.get("syncs") or [])


# ---------------------------------------------------------------- main


def _device(name: str | None) -> str:
    import torch

    if name is None:
        if not torch.cuda.is_available():
            raise SystemExit(
                "gpu_check: no CUDA device here; on a CPU run the smoke test: "
                "python benchmarks/gpu_check.py --device cpu --quick"
            )
        return "cuda"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"gpu_check: --device {name}, but CUDA is not available here")
    return name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", help="cuda (the default when available), cuda:1, cpu, ...")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke test: matrix tests matching {QUICK_MATRIX!r}, benchmark sizes "
        f"{QUICK_SIZES} on a CPU (the quick benchmark sizes on a device)",
    )
    parser.add_argument("--budget", type=float, default=600.0, help="seconds in all [600]")
    parser.add_argument("--matrix-k", help="a pytest -k expression for the matrix tests")
    parser.add_argument("--no-matrix", action="store_true", help="skip the catalog matrix")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmarks")
    parser.add_argument("--sizes", help="benchmark sizes, e.g. 64,1k (k=1024)")
    parser.add_argument("--json", type=Path, help="save the whole result here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    device = _device(args.device)
    import torch

    from losskit.bench import parse_sizes

    result: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "",
        "quick": args.quick,
        "torch": torch.__version__,
    }
    deadline = started + args.budget
    if args.no_matrix:
        result["matrix"] = {"status": "skipped"}
    else:
        k = args.matrix_k or (QUICK_MATRIX if args.quick else None)
        reserve = BENCH_RESERVE_S["quick" if args.quick else "full"]
        timeout = max(10.0, deadline - time.perf_counter() - reserve)
        result["matrix"] = run_matrix(device, k, timeout)
    if not args.no_bench:
        sizes = parse_sizes(args.sizes) if args.sizes else None
        if sizes is None and args.quick and device == "cpu":
            sizes = QUICK_SIZES
        result["bench"] = run_bench(device, args.quick, sizes)
    mark = time.perf_counter()
    result["syncs"] = check_syncs(device)
    result["syncs_seconds"] = round(time.perf_counter() - mark, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["within_budget"] = time.perf_counter() <= deadline
    result["ok"] = verdict(result)
    print(render_summary(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
