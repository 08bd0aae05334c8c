"""The benchmark harness on tiny cases: the shape of what it produces, never the speed."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import losskit
import losskit.functional as LF
from losskit import LossCases, LossInputError, LossSpec, SampleInput
from losskit.bench import (
    OURS,
    BenchSettings,
    format_bytes,
    format_time,
    parse_sizes,
    render_markdown,
    run_benchmarks,
    select_specs,
)
from losskit.cli import app

TINY = {"min_run_time": 0.02, "device": "cpu", "jobs": 1}


@pytest.fixture(scope="module")
def report():
    """mse at 64 and 1M elements, time and memory (one memory server for all four figures)."""
    calls = []
    result = run_benchmarks(
        select_specs(["mse_loss"]),
        BenchSettings(sizes=(64, 1 << 20), **TINY),
        progress=lambda done, total, what: calls.append((done, total)),
    )
    result.progress_calls = calls
    return result


def test_report_is_well_formed_json_with_ratios(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert data["schema"] == 1
    for key in ("cpu_model", "logical_cores", "torch", "threads", "device", "python", "os"):
        assert key in data["machine"], key
    assert data["machine"]["torch"] == torch.__version__
    assert data["settings"]["threads"] == 1 and data["settings"]["device"] == "cpu"
    assert data["settings"]["clock"] == "cpu"
    case, large = data["results"]
    assert (case["loss"], case["size"], large["size"]) == ("mse", 64, 1 << 20)
    ours = case["ours"]
    assert ours["name"] == OURS and ours["error"] is None
    assert ours["time_s"] > 0 and ours["blocks"] >= 3
    assert isinstance(ours["peak_bytes"], int) and ours["peak_bytes"] >= 0
    (ref,) = case["references"]
    assert ref["name"] == "torch.nn.functional.mse_loss" and ref["error"] is None
    assert math.isclose(ref["time_ratio"], ours["time_s"] / ref["time_s"])
    assert isinstance(ref["peak_bytes"], int) and ref["peak_bytes"] >= 0
    # 64 floats are far below the RSS noise floor: no memory ratio is claimed
    assert ref["memory_ratio"] is None
    assert report.errors() == []


def test_progress_reaches_the_total(report):
    done, total = report.progress_calls[-1]
    assert total == 6 and done == total  # four memory measurements and two timings


def test_markdown_renders_from_the_report_and_from_its_json(report):
    text = render_markdown(report)
    assert text.startswith("# losskit benchmarks")
    assert "| loss | size | inputs | reference | time losskit | time ref. | time ratio" in text
    case = report.cases[0]
    ref = case.references[0]
    row = next(line for line in text.splitlines() if line.startswith("| mse | 64 |"))
    assert ref.name in row and f"**{case.time_ratio(ref):.2f}**" in row
    assert format_time(case.ours.time_s) in row
    assert render_markdown(json.loads(json.dumps(report.to_dict()))) == text


def test_memory_ratio_above_the_noise_floor(report):
    """1M floats: both implementations hold a 4 MiB gradient, and the ratio is given."""
    (ref,) = report.to_dict()["results"][1]["references"]
    assert ref["peak_bytes"] >= 4 << 20
    assert ref["memory_ratio"] == pytest.approx(1.0, abs=0.1)


def _adapted_spec(reference):
    """A spec outside the catalog whose reference wants its target in another form."""

    def inputs(size, dtype, device):
        return SampleInput((torch.randn(size, dtype=dtype), torch.randn(size, dtype=dtype)))

    return LossSpec(
        name="adapted",
        functional=LF.mse_loss,
        module=losskit.MSELoss,
        task="regression",
        summary="test",
        formula="",
        bench_sizes=(8, 16, 32),
        cases=LossCases(
            bench_inputs=inputs,
            bench_references={"halved": reference},
            bench_reference_inputs={
                "halved": lambda s: SampleInput((s.args[0], s.args[1] * 2), s.kwargs, s.desc)
            },
        ),
    )


def test_references_may_take_adapted_inputs_and_may_be_missing():
    seen = []

    def halved(input, target):
        seen.append(target.clone())
        return F.mse_loss(input, target / 2)

    settings = BenchSettings(quick=True, memory=False, **TINY)
    (small, large) = run_benchmarks([_adapted_spec(halved)], settings).cases
    assert (small.size, large.size) == (8, 32)  # quick: the smallest and largest size
    assert small.references[0].time_s and small.time_ratio(small.references[0]) > 0
    assert seen  # the adapter ran before the reference was timed

    def missing(input, target):
        raise ModuleNotFoundError("no", name="pytorch_metric_learning")

    (case, _) = run_benchmarks([_adapted_spec(missing)], settings).cases
    assert case.ours.time_s and case.references[0].time_s is None
    assert "not installed: pytorch_metric_learning" in case.references[0].error


def test_selection():
    names = [s.name for s in select_specs()]
    assert {"mse", "cross_entropy", "bce_with_logits"} <= set(names)
    assert all(losskit.catalog[n].bench_inputs is not None for n in names)
    assert [s.name for s in select_specs(["l2", "mse", "nll"])] == ["mse", "nll"]
    with pytest.raises(KeyError, match="no loss named"):
        select_specs(["not_a_loss"])
    unbenched = [s.name for s in losskit.catalog.specs() if s.bench_inputs is None]
    if unbenched:
        with pytest.raises(LossInputError, match="has no benchmark inputs"):
            select_specs([unbenched[0]])


def test_sizes_and_formats():
    assert parse_sizes("32,1k,1M") == (32, 1024, 1 << 20)
    assert parse_sizes(["32", "64,32"]) == (32, 64)
    for bad in ("0", "ten", ","):
        with pytest.raises(LossInputError, match="bench: "):
            parse_sizes(bad)
    assert format_bytes(4 << 20) == "4 MiB" and format_bytes(0) == "0 B"
    assert format_time(2.5e-5) == "25 µs" and format_time(None) == "–"
    with pytest.raises(LossInputError, match="bench: device is 'tpu9'"):
        BenchSettings(device="tpu9").resolved()
    assert BenchSettings(device="cpu").resolved().clock == "cpu"  # one CPU thread: CPU time
    assert BenchSettings(device="cpu", threads=2).resolved().clock == "wall"
    with pytest.raises(LossInputError, match="bench: clock is 'cpu'"):
        BenchSettings(device="cpu", threads=2, clock="cpu").resolved()


runner = CliRunner()


def test_cli_bench_writes_json_and_markdown(tmp_path):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = ["bench", "huber", "--sizes", "32", "--min-time", "0.02", "--no-memory"]
    result = runner.invoke(app, [*args, "--json", str(out), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    assert "huber" in result.output and "ratio" in result.output
    data = json.loads(out.read_text())
    assert [(c["loss"], c["size"]) for c in data["results"]] == [("huber", 32)]
    assert data["results"][0]["references"][0]["time_ratio"] > 0
    assert "| huber | 32 |" in md.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "not_a_loss"], "no loss named 'not_a_loss'"),
        (["bench", "mse", "--sizes", "1x"], "bench: a size is '1x'"),
        (["bench", "mse", "--dtype", "int8"], "bench: dtype is 'int8'"),
    ],
)
def test_cli_bench_user_errors_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
