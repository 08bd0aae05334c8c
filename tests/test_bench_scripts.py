"""The measurement scripts in benchmarks/ that the docs quote run as written."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> list[str]:
    """The script's output lines, once it exited 0."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_ctc_after_exp_prints_both_ratios():
    lines = _run("ctc_after_exp.py", "--blocks", "1", "--calls", "3")
    assert lines[0].startswith("CTC T=50 N=4 C=20 S=10, 1 thread(s)")
    for name in ("torch", "losskit", "torch after exp", "losskit after exp"):
        assert any(line.split()[:-1] == name.split() for line in lines[1:5]), name
    ratios = [float(line.split()[-1]) for line in lines if line.strip().startswith("ratio")]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)


def test_ratio_estimators_prints_both_estimators():
    lines = _run(
        "ratio_estimators.py",
        *("--load", "0", "--repeats", "2", "--budget", "0.01", "--cases", "mse,cross_entropy:64"),
    )
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [["mse", "32"], ["cross_entropy", "64"]]
    for row in rows:  # "lo-hi (median m)" twice, then "k/2 / k/2": slower in how many repeats
        assert row[3] == "(median" and row[6] == "(median", row
        assert all(float(x) > 0 for x in row[2].split("-") + row[5].split("-"))
        every, slower = (int(row[i].split("/")[0]) for i in (8, 10))
        assert row[8].endswith("/2") and row[10].endswith("/2") and row[9] == "/", row
        assert 0 <= every <= 2 and 0 <= slower <= 2


def test_linear_ce_small_head_prints_every_piece():
    lines = _run("linear_ce_small_head.py", "--blocks", "1", "--calls", "3")
    assert lines[0].startswith("linear CE N=32 d=4 V=256, 1 thread(s)")
    names = ["naive", "losskit", "torch's kernels", "torch's kernels + min read"]
    assert [line.split()[0] for line in lines[1:]] == [n.split()[0] for n in names]
    assert float(lines[1].split()[-1]) == 1.0
    assert all(float(line.split()[-1]) > 0 for line in lines[1:])


def test_chunks_under_load_prints_every_chunk_size_and_the_reference():
    lines = _run(
        "chunks_under_load.py",
        *("--load", "0", "--sizes", "64", "--rows", "16,all", "--repeats", "1", "--block", "0.01"),
    )
    assert lines[0] == "2 thread(s), 0 busy process(es); forward+backward, ms"
    for loss in ("linear_cross_entropy", "linear_distillation"):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{loss} N=64,"))
        rows = [line.split() for line in lines[at + 1 : at + 4]]
        assert [" ".join(row[:-11]) for row in rows] == ["16 rows", "64 rows", "reference"], lines
        assert all(float(row[-10]) > 0 for row in rows)  # the median time
        assert rows[-1][-4:] == ["median", "1.00", "max", "1.00"], lines  # reference / itself


def test_parallel_kernels_counts_each_loss_and_its_reference():
    lines = _run("parallel_kernels.py", "mse", "linear_distillation", "--threads", "1")
    assert lines[:2] == [
        "parallel kernels per forward+backward, 1 thread(s)",
        "parallel at 1000 elements: none",
    ]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[4:]]
    assert [row[0] for row in rows] == ["mse", "linear_distillation"]
    for _, size, ours, _, theirs, ratio in rows:
        assert int(size.replace(",", "")) > 0 and int(ours) > 0 and int(theirs) > 0
        assert float(ratio) == pytest.approx(int(ours) / int(theirs), abs=0.005)


def test_sigmoid_focal_paths_counts_times_and_weighs_both_paths():
    # 200,000 elements at one thread (no search for kernels parallel at any size): chunks of
    # 65,536, three of them over torch's grain size
    lines = _run(
        "sigmoid_focal_paths.py",
        *("--size", "200000", "--threads", "1", "--loads", "0", "--repeats", "1"),
        *("--budget", "0.01"),
    )
    assert lines[0] == "sigmoid_focal at 200,000 elements, 1 thread(s), forward+backward"
    kernels, memory = {}, {}
    for line in lines[2:5]:
        name, numbers = line[:22].strip(), line[22:].split()
        kernels[name], memory[name] = int(numbers[0]), float(numbers[3])
    assert list(kernels) == ["torchvision formula", "2 chunks (as shipped)", "one pass"]
    assert memory["torchvision formula"] == 1.0
    assert kernels["2 chunks (as shipped)"] > 2 * kernels["one pass"] > 0  # 3 chunks over it
    assert memory["2 chunks (as shipped)"] < memory["one pass"] < 1.0
    timed = [line.split() for line in lines[6:]]
    assert [row[:2] for row in timed] == [["0", "busy"]] * 2
    for row in timed:
        low, high = (float(x) for x in row[-4].split("-"))
        assert 0 < low <= high and row[-2] == "slower" and row[-1] in ("0/1", "1/1"), row


def test_parallel_kernels_sizes_index_kernels_by_their_index():
    """A gather or scatter of a few indices from a large tensor is serial work: not counted;
    an elementwise kernel over the same tensor is."""
    spec = importlib.util.spec_from_file_location(
        "parallel_kernels", BENCHMARKS / "parallel_kernels.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    x, index = torch.randn(128, 8192), torch.zeros(128, 1, dtype=torch.long)
    assert module.parallel_kernels(lambda: x.gather(1, index)) == 0
    # the clone's copy counts, the scatter of 128 indices into the copy does not
    assert module.parallel_kernels(lambda: x.clone().scatter_add_(1, index, x[:, :1])) == 1
    assert module.parallel_kernels(lambda: x.exp()) == 1
    wide = torch.zeros(128, 512, dtype=torch.long)
    assert module.parallel_kernels(lambda: x.gather(1, wide)) == 1  # 65,536 index elements
