"""benchmarks/gpu_check.py: its CPU smoke test (what CI runs), and how it judges and reports
results it cannot produce here (no GPU in CI)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_smoke_run(tmp_path):
    """``--device cpu --quick``: a few matrix tests with their samples built through the
    plugin, the four benchmarks at a tiny size, every catalog entry called once; one table."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,  # about 20 s on an idle 2-core machine; generous for a loaded one
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("losskit GPU check on cpu")
    for check in ("matrix", "bench", "sync"):
        assert f"\n{check} " in proc.stdout, check
    result = json.loads(out.read_text())
    matrix = result["matrix"]
    assert matrix["status"] == "passed" and matrix["tests"] > 0 and matrix["failures"] == 0
    assert matrix["samples_on_device"] > 0  # the plugin built the samples
    measured = {c["loss"] for c in result["bench"]["results"]}
    skipped = {s["loss"] for s in result["bench"]["skipped"]}
    assert measured | skipped == {"focal", "sigmoid_focal", "triplet", "linear_cross_entropy"}
    assert all(c["ours"]["time_s"] for c in result["bench"]["results"])
    assert {r["status"] for r in result["syncs"]} == {"n/a"}
    assert result["ok"] and result["within_budget"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a device that is missing")
def test_without_cuda_it_says_how_to_run_the_smoke_test():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-matrix", "--no-bench"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "no CUDA device here" in proc.stderr and "--device cpu --quick" in proc.stderr


def test_verdict_and_summary_of_a_device_run():
    """A CUDA run's result, made up: a host sync or a failed test makes it not OK, and both
    appear in the table."""
    gpu_check = _module()
    result = {
        "device": "cuda",
        "device_name": "made up",
        "quick": False,
        "seconds": 1.0,
        "matrix": {
            "status": "failed",
            "tests": 3,
            "failures": 1,
            "skipped": 0,
            "seconds": 1.0,
            "samples_on_device": 9,
            "failed_tests": ["test_matches_reference[f32-focal]"],
        },
        "syncs": [
            {"loss": "mse", "status": "no sync", "detail": ""},
            {"loss": "linear_cross_entropy", "status": "sync", "detail": "RuntimeError: ..."},
        ],
    }
    assert not gpu_check.verdict(result)
    text = gpu_check.render_summary(result)
    assert "test_matches_reference[f32-focal]" in text and "FAILED" in text
    assert "linear_cross_entropy" in text and "1 of 2 catalog entries" in text
    result["matrix"] = {"status": "passed", "failed_tests": []}
    assert not gpu_check.verdict(result)  # the sync still counts
    result["syncs"] = result["syncs"][:1]
    assert gpu_check.verdict(result)
