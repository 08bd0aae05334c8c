"""The benchmark harness on tiny cases: the shape of what it produces, never the speed."""

from __future__ import annotations

import copy
import json
import re
import time

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
    Condition,
    default_threads,
    format_bytes,
    format_time,
    input_bytes,
    parse_bytes,
    parse_loads,
    parse_sizes,
    parse_threads,
    render_markdown,
    run_benchmarks,
    select_specs,
    slower_than_reference,
    write_plots,
)
from losskit.bench.harness import LOADED_MIN_BLOCKS, MIN_BLOCKS
from losskit.cli import app

TINY = {"min_run_time": 0.02, "device": "cpu", "jobs": 1, "threads": 1}


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
    assert data["schema"] == 3
    for key in ("cpu_model", "logical_cores", "torch", "threads", "device", "python", "os"):
        assert key in data["machine"], key
    assert data["machine"]["torch"] == torch.__version__
    assert data["settings"]["threads"] == [1] and data["settings"]["device"] == "cpu"
    assert data["settings"]["background_load"] == [0]
    (condition,) = data["settings"]["conditions"]
    assert (condition["threads"], condition["load"], condition["clock"]) == (1, 0, "cpu")
    case, large = data["results"]
    assert (case["loss"], case["size"], large["size"]) == ("mse", 64, 1 << 20)
    assert (case["threads"], case["load"], case["clock"], case["family"]) == (
        1,
        0,
        "cpu",
        "regression",
    )
    ours = case["ours"]
    assert ours["name"] == OURS and ours["error"] is None
    assert ours["blocks"] >= MIN_BLOCKS and ours["runs"] >= ours["blocks"]
    assert 0 < ours["time_min_s"] <= ours["time_s"] <= ours["time_max_s"]
    assert isinstance(ours["peak_bytes"], int) and ours["peak_bytes"] >= 0
    (ref,) = case["references"]
    assert ref["name"] == "torch.nn.functional.mse_loss" and ref["error"] is None
    # the ratio is the median over paired blocks, inside their range
    assert 0 < ref["time_ratio_min"] <= ref["time_ratio"] <= ref["time_ratio_max"]
    assert isinstance(ref["peak_bytes"], int) and ref["peak_bytes"] >= 0
    # 64 floats are far below the RSS noise floor: no memory ratio is claimed
    assert ref["memory_ratio"] is None
    assert report.errors() == []
    assert data["run"]["wall_s"] > 0 and data["run"]["peak_rss_bytes"] > 0
    assert data["skipped"] == [] and data["background_load"] == []


def test_time_ratio_is_the_median_of_paired_blocks():
    """Blocks i of both ran back to back: the ratio is taken pair by pair, so a burst of load
    that slows one round slows both sides of its pair; the medians' ratio is the fallback."""
    from losskit.bench.harness import CaseResult, ImplResult, _paired_ratios

    ours, ref = [1.0, 2.0, 1.1, 5.0, 1.2], [1.0, 1.0, 1.0, 5.0, 1.0]  # rounds 2 and 4 loaded
    # min, median, max; 5 pairs, losskit slower in 3 (a tie is not slower)
    assert _paired_ratios(ours, ref) == (1.0, 1.1, 2.0, 5, 3)
    assert _paired_ratios(ours, []) is None
    case = CaseResult("mse", 8, "", ImplResult("losskit", time_s=1.2))
    reference = ImplResult("ref", time_s=1.0)
    assert case.time_ratio(reference) == 1.2  # no pairs: the medians' ratio
    case.block_ratios["ref"] = _paired_ratios(ours, ref)
    assert case.time_ratio(reference) == 1.1


def test_progress_reaches_the_total(report):
    done, total = report.progress_calls[-1]
    assert total == 3 and done == total  # the memory of one loss and two timings


def test_markdown_renders_from_the_report_and_from_its_json(report):
    text = render_markdown(report, plots=["regression.png"])
    assert text.startswith("# losskit benchmarks")
    assert "## Where losskit is slower than the reference" in text
    assert "## 1 thread (cpu clock)" in text
    assert "| loss | size | inputs | reference | time losskit | time ref. | time ratio" in text
    case = report.cases[0]
    ref = case.references[0]
    row = next(line for line in text.splitlines() if line.startswith("| mse | 64 |"))
    assert ref.name in row and f"**{case.time_ratio(ref):.2f}**" in row
    # the median with min and max, and the ratio with its range over paired blocks
    ours = case.ours
    assert f"{format_time(ours.time_s)} ({format_time(ours.time_min_s)}–" in row
    paired = case.block_ratios[ref.name]
    low, high = paired.low, paired.high
    assert case.time_ratio(ref) == paired.median
    assert f"({low:.2f}–{high:.2f})" in row
    assert "![regression.png](regression.png)" in text
    again = render_markdown(json.loads(json.dumps(report.to_dict())), plots=["regression.png"])
    assert again == text


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

    settings = BenchSettings(quick=True, memory=False, max_run_time=0, max_memory=0, **TINY)
    (small, large) = run_benchmarks([_adapted_spec(halved)], settings).cases
    assert (small.size, large.size) == (8, 32)  # quick: the smallest and largest size
    assert small.references[0].time_s and small.time_ratio(small.references[0]) > 0
    assert seen  # the adapter ran before the reference was timed

    def missing(input, target):
        raise ModuleNotFoundError("no", name="pytorch_metric_learning")

    (case, _) = run_benchmarks([_adapted_spec(missing)], settings).cases
    assert case.ours.time_s and case.references[0].time_s is None
    assert "not installed: pytorch_metric_learning" in case.references[0].error


def test_quick_times_every_implementation_in_three_blocks_or_more():
    """--quick used to time a run over 1 s once; now every figure has MIN_BLOCKS blocks, so
    min, median and max exist, and a run longer than a block is one run per block."""

    def slow(input, target):
        end = time.thread_time() + 0.03  # CPU time: the one-thread clock counts it
        while time.thread_time() < end:
            pass
        return F.mse_loss(input, target / 2)

    settings = BenchSettings(quick=True, memory=False, max_run_time=0, max_memory=0, **TINY)
    for case in run_benchmarks([_adapted_spec(slow)], settings).cases:
        (ref,) = case.references
        for impl in (case.ours, ref):
            assert impl.blocks >= MIN_BLOCKS, impl
            assert impl.time_min_s <= impl.time_s <= impl.time_max_s
        assert ref.runs == ref.blocks  # slow: one run per block
        assert ref.time_s >= 0.03


def test_sizes_left_out_by_the_limits_and_the_reasons():
    """Quick's limits, made tiny: 1M floats of mse need 4 MiB, over a 1 MiB memory limit, so
    that size is left out (and said why); the inputs' limit is checked without building them."""
    settings = BenchSettings(sizes=(64, 1 << 20), max_memory=1 << 20, **TINY)
    report = run_benchmarks(select_specs(["mse"]), settings)
    assert [c.size for c in report.cases] == [64]
    (skipped,) = report.skipped
    assert skipped["size"] == 1 << 20 and "MiB" in skipped["reason"]
    assert "## Left out by the limits" in render_markdown(report)

    settings = BenchSettings(sizes=(64, 1 << 20), max_input_bytes=1 << 20, memory=False, **TINY)
    report = run_benchmarks(select_specs(["mse"]), settings)
    assert [c.size for c in report.cases] == [64]
    assert "inputs of 8.0 MiB over the limit of 1 MiB" in report.skipped[0]["reason"]


class FakeMeter:
    """Canned answers by size, as the memory meter gives them; records what was asked."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def measure(self, loss, impl, size, threads=1, limited=True):
        self.asked.append((size, threads, limited))
        return dict(self.answers[size])


def _over(run_s):
    return {"peak_bytes": 1, "run_s": run_s, "limit": "time", "error": f"one run takes {run_s}"}


@pytest.mark.parametrize(
    ("quick", "answers", "sizes", "left_out", "probes"),
    [
        # quick: the largest first; it fits, so every size does, and one probe was enough
        (
            True,
            {8: {"peak_bytes": 1}, 16: {"peak_bytes": 1}, 32: {"peak_bytes": 2}},
            [8, 32],
            [],
            [32],
        ),
        # quick: the largest is over, then up from the smallest to the first miss
        (True, {8: {"peak_bytes": 1}, 16: _over(0.2), 32: _over(5.0)}, [8], [32, 16], [32, 8, 16]),
        # the smallest size stays when it is at most twice over the time limit...
        (False, {8: _over(0.15), 16: _over(0.2), 32: _over(5.0)}, [8], [16, 32], [8, 16]),
        # ... not when it is further over, or stopped
        (False, {8: _over(0.3), 16: _over(0.2), 32: _over(5.0)}, [], [8, 16, 32], [8]),
        (False, {8: {"error": "stopped", "limit": "time"}, 16: {}, 32: {}}, [], [8, 16, 32], [8]),
    ],
)
def test_sizes_chosen_under_the_limits(quick, answers, sizes, left_out, probes):
    """How the sizes are chosen from the limited measurements (0.1 s per run here)."""
    from losskit.bench.harness import _plan_spec

    spec = _adapted_spec(F.mse_loss)
    settings = BenchSettings(quick=quick, max_run_time=0.1, **TINY).resolved()
    meter = FakeMeter(answers)
    plan = _plan_spec(spec, settings, meter)
    assert plan.sizes == sizes
    assert [s["size"] for s in plan.skipped] == left_out
    assert list(dict.fromkeys(size for size, _, limited in meter.asked if limited)) == probes
    for size in sizes:  # a kept size carries its memory figure, never a limit's error
        if (size, 1, OURS) in plan.memory:
            assert "error" not in plan.memory[size, 1, OURS]


def test_input_bytes_are_estimated_without_allocating():
    linear_ce = losskit.catalog["linear_cross_entropy"]
    # (N, d, V) = (8192, 1024, 65536): h and W in float32 and the int64 targets
    expected = (8192 * 1024 + 65536 * 1024) * 4 + 8192 * 8
    assert input_bytes(linear_ce, 8192, torch.float32) == expected
    assert input_bytes(losskit.catalog["mse"], 1024, torch.float64) == 2 * 1024 * 8


def test_conditions_threads_and_load():
    """Every case under each condition (threads x background load), each with its clock: CPU
    time only at one thread on the idle machine, wall time otherwise."""
    settings = BenchSettings(
        sizes=(64,),
        threads=(1, 2),
        background_load=(0, 1),
        memory=False,
        **{k: v for k, v in TINY.items() if k != "threads"},
    )
    report = run_benchmarks(select_specs(["huber"]), settings)
    got = [(c.threads, c.load, c.clock) for c in report.cases]
    assert got == [(1, 0, "cpu"), (2, 0, "wall"), (1, 1, "wall"), (2, 1, "wall")]
    assert all(c.ours.time_s and c.references[0].time_s for c in report.cases)
    # under load the blocks spread: more pairs, so that a sign test can see through them
    for case in report.cases:
        least = LOADED_MIN_BLOCKS if case.load else MIN_BLOCKS
        assert min(case.ours.blocks, case.references[0].blocks) >= least, case
        # a slow implementation's first block (its sizing run) is not paired
        assert case.block_ratios[case.references[0].name].pairs >= least - 1
    (load,) = report.loads
    assert load["processes"] == 1 and load["wall_s"] > 0
    if load.get("cpu_s") is not None:  # Linux: the spinner really ran
        assert load["cpu_s"] > 0
    # the parallel-region probe runs around each case with more than one thread
    assert [c.region_s is None for c in report.cases] == [True, False, True, False]
    for case in report.cases[1::2]:
        assert len(case.region_s) == 2 and all(0 < t < 10 for t in case.region_s)
        assert case.in_episode == (max(case.region_s) > 1e-3)
    data = report.to_dict()
    assert [c["label"] for c in data["settings"]["conditions"]][2] == "1 thread, 1 busy process"
    text = render_markdown(data)
    # "2 threads (default), ..." where torch's default is 2
    assert re.search(r"## 2 threads( \(default\))?, 1 busy process \(wall clock\)", text)
    assert "- **Background load**: 1 pure-Python busy processes" in text


def test_slower_than_reference_lists_ratios_above_one(report):
    data = report.to_dict()
    small, large = (case["references"][0] for case in data["results"])
    small.update(time_ratio=1.5, time_ratio_min=1.2, time_ratio_max=1.8)
    small.update(time_ratio_pairs=5, time_ratio_slower_pairs=5)
    large.update(time_ratio=0.5)
    (entry,) = slower_than_reference(data)
    assert (entry["loss"], entry["size"], entry["threads"], entry["load"]) == ("mse", 64, 1, 0)
    # bold: slower in enough pairs of blocks that chance would rarely do it (a sign test)
    row = "| mse | torch.nn.functional.mse_loss | 1 thread | 64: **1.50** (1.20–1.80) |"
    assert row in render_markdown(data)
    # slower in every pair, but 3 of 3 happens once in 8 by chance; 8 of 9 once in 51
    for pairs, slower, bold in ((3, 3, False), (9, 8, True), (9, 7, False), (5, 4, False)):
        small.update(time_ratio_pairs=pairs, time_ratio_slower_pairs=slower)
        row = "| 64: **1.50** (1.20–1.80) |" if bold else "| 64: 1.50 (1.20–1.80) |"
        assert row in render_markdown(data), (pairs, slower)
    # a report saved before the pairs were counted: bold when slower in every pair
    del small["time_ratio_pairs"], small["time_ratio_slower_pairs"]
    assert "| 64: **1.50** (1.20–1.80) |" in render_markdown(data)
    small.update(time_ratio_min=0.9)
    assert "| 64: 1.50 (0.90–1.80) |" in render_markdown(data)


def test_the_header_gives_the_command_that_repeats_the_run(report):
    """Every option that changed what was measured is in the command, not only the conditions."""
    from losskit.bench.settings import command_line

    # the fixture's run: two sizes, 0.02 s of timing per implementation, no limits
    command = "losskit bench --sizes 64,1048576 --threads 1 --min-time 0.02"
    assert command_line(report.settings) == command
    assert f"`{command}`" in render_markdown(report)
    full = {"quick": False, "threads": [1, 2], "default_threads": 2, "background_load": [0, 2]}
    limited = full | {
        "min_run_time_s": 0.1,
        "max_input_bytes": 32 << 20,
        "max_run_time_s": 0.3,
        "max_memory_bytes": 512 << 20,
        "memory": None,
    }
    assert command_line(limited) == (
        "losskit bench --threads 1,default --background-load 0,2 --min-time 0.1 "
        "--max-inputs 32M --max-run-time 0.3 --max-memory 512M --no-memory"
    )
    # --quick's own choices go without saying; a limit lifted from it does not
    quick = limited | {"quick": True, "memory": "rss", "dtype": "float64"}
    assert command_line(quick) == (
        "losskit bench --quick --threads 1,default --background-load 0,2 --dtype float64"
    )
    assert command_line(quick | {"max_run_time_s": None}).endswith("--max-run-time 0")
    assert "--max-memory 3000k" in command_line({"quick": True, "max_memory_bytes": 3000 << 10})
    assert parse_bytes("3000k") == 3000 << 10


def test_sign_test_counts_the_tail():
    from losskit.bench.report import sign_test_p

    assert sign_test_p(0, 4) == 1.0
    assert sign_test_p(4, 4) == 1 / 16
    assert sign_test_p(7, 8) == 9 / 256  # 7 of 8 or 8 of 8
    assert sign_test_p(3, 6) == 42 / 64


def test_plots_one_png_per_family(report, tmp_path):
    (path,) = write_plots(report, tmp_path)
    assert path == tmp_path / "regression.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_threads_loads_bytes_and_clocks():
    assert parse_threads("1,default") == (1, "default")
    assert parse_threads(2) == (2,) and parse_threads(["1", "2,1"]) == (1, 2)
    assert parse_loads("0,2") == (0, 2) and parse_loads(3) == (3,)
    assert parse_bytes("640M") == 640 << 20 and parse_bytes("2GiB") == 2 << 30
    assert parse_bytes("0") == 0 and parse_bytes(512) == 512
    for bad in ("0", "x", "-1", ""):
        with pytest.raises(LossInputError, match="bench: threads is"):
            parse_threads(bad)
    for bad in ("-1", "two", ""):
        with pytest.raises(LossInputError, match="bench: background load is"):
            parse_loads(bad)
    with pytest.raises(LossInputError, match="bench: a byte count is '2x'"):
        parse_bytes("2x")

    # the default: one thread and torch's own count, asked of a fresh interpreter
    assert default_threads() >= 1
    resolved = BenchSettings(device="cpu").resolved()
    assert resolved.thread_counts == tuple(dict.fromkeys((1, default_threads())))
    assert resolved.conditions()[0] == Condition(1, 0, "cpu")  # one CPU thread: CPU time
    cpu = {"device": "cpu", "jobs": 1}
    assert BenchSettings(threads=2, **cpu).resolved().conditions() == [Condition(2, 0, "wall")]
    loaded = BenchSettings(threads=1, background_load=2, **cpu).resolved()
    assert loaded.conditions() == [Condition(1, 2, "wall")]  # the CPU time hides contention
    for bad in ({"threads": 2}, {"threads": 1, "background_load": 1}):
        with pytest.raises(LossInputError, match="bench: clock is 'cpu'"):
            BenchSettings(clock="cpu", **bad, **cpu).resolved()
    # --quick sets the limits; 0 turns one off
    quick = BenchSettings(quick=True, max_run_time=0, **cpu).resolved()
    assert quick.max_run_time is None and quick.max_memory and quick.max_input_bytes
    assert BenchSettings(**cpu).resolved().max_memory is None


runner = CliRunner()


def test_cli_bench_writes_json_markdown_and_plots(tmp_path):
    out, md, plots = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "plots"
    args = ["bench", "huber", "--sizes", "32", "--min-time", "0.02", "--no-memory"]
    args += ["--threads", "1", "--background-load", "0,1"]
    result = runner.invoke(
        app, [*args, "--json", str(out), "--markdown", str(md), "--plots", str(plots)]
    )
    assert result.exit_code == 0, result.output
    assert "huber" in result.output and "ratio" in result.output
    data = json.loads(out.read_text())
    got = [(c["loss"], c["size"], c["load"]) for c in data["results"]]
    assert got == [("huber", 32, 0), ("huber", 32, 1)]
    assert data["results"][0]["references"][0]["time_ratio"] > 0
    text = md.read_text()
    assert "| huber | 32 |" in text and "## 1 thread, 1 busy process" in text
    assert (plots / "regression.png").exists()
    assert "![plots/regression.png](plots/regression.png)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "not_a_loss"], "no loss named 'not_a_loss'"),
        (["bench", "mse", "--sizes", "1x"], "bench: a size is '1x'"),
        (["bench", "mse", "--dtype", "int8"], "bench: dtype is 'int8'"),
        (["bench", "mse", "--threads", "0"], "bench: threads is '0'"),
        (["bench", "mse", "--background-load", "-1"], "bench: background load is '-1'"),
        (["bench", "mse", "--max-memory", "lots"], "bench: a byte count is 'lots'"),
        (["bench", "mse", "--threads", "2", "--clock", "cpu"], "bench: clock is 'cpu'"),
    ],
)
def test_cli_bench_user_errors_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_region_time_is_per_region_and_none_at_one_thread():
    from losskit.bench.timing import region_time

    assert region_time(1) is None
    seconds = region_time(2, runs=3)
    assert seconds is not None and 0 < seconds < 1.0


def test_cases_timed_in_an_episode_are_marked(report):
    data = report.to_dict()
    small = data["results"][0]
    large = copy.deepcopy(small) | {"size": 1 << 20}
    data["results"] = [small, large]
    small["references"][0].update(time_ratio=2.5, time_ratio_min=2.4, time_ratio_max=2.6)
    small["references"][0].update(time_ratio_pairs=9, time_ratio_slower_pairs=9)
    small.update(threads=2, region_s=[0.0081, 0.0079], in_episode=True)
    large.update(threads=2, region_s=[5e-5, 6e-5], in_episode=False)
    large["references"][0].update(time_ratio=0.5)
    (entry,) = slower_than_reference(data)
    assert entry["in_episode"] is True
    text = render_markdown(data)
    assert "| 64: **2.50** (2.40–2.60) ‡ |" in text  # the list of slower cases
    assert "| **2.50** (2.40–2.60) ‡ |" in text  # the table's ratio cell
    line = next(x for x in text.splitlines() if x.startswith("- **Parallel regions**"))
    assert "median 3.98 ms, up to 8.1 ms; 1 of 2 cases marked" in line  # of the four probes
    assert "over 1 ms" in line
