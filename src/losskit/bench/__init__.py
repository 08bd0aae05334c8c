"""The benchmark harness: losskit against its reference implementations, in time and memory.

For each catalog entry with ``bench_inputs`` and each of its sizes it times forward+backward of
losskit's functional and of every ``spec.benchmark_references()`` entry under each condition
(torch thread counts, by default one thread and torch's default; optionally busy background
processes), in short interleaved blocks: median, min and max over at least three blocks. It
measures the peak memory of one forward+backward of each in a fresh subprocess (peak RSS above a
baseline taken after the inputs are built; on an accelerator, the allocator's peak above the
memory allocated then). Every figure comes with the reference's from the same run and condition,
and their ratio; ``write_plots`` draws the ratios against size.

>>> from losskit.bench import BenchSettings, run_benchmarks, select_specs
>>> report = run_benchmarks(select_specs(["mse"]), BenchSettings(sizes=(32,)))  # doctest: +SKIP

``losskit bench`` is the command line over this module; ``make bench`` regenerates
``benchmarks/RESULTS.md`` and the plots beside it.
"""

from losskit.bench.harness import (
    OURS,
    BenchSettings,
    CaseResult,
    Condition,
    ImplResult,
    Report,
    default_threads,
    input_bytes,
    machine_info,
    parse_bytes,
    parse_loads,
    parse_sizes,
    parse_threads,
    run_benchmarks,
    select_specs,
)
from losskit.bench.load import BackgroundLoad
from losskit.bench.plots import write_plots
from losskit.bench.report import (
    format_bytes,
    format_ratio,
    format_size,
    format_time,
    render_markdown,
    slower_than_reference,
)

__all__ = [
    "OURS",
    "BackgroundLoad",
    "BenchSettings",
    "CaseResult",
    "Condition",
    "ImplResult",
    "Report",
    "default_threads",
    "format_bytes",
    "format_ratio",
    "format_size",
    "format_time",
    "input_bytes",
    "machine_info",
    "parse_bytes",
    "parse_loads",
    "parse_sizes",
    "parse_threads",
    "render_markdown",
    "run_benchmarks",
    "select_specs",
    "slower_than_reference",
    "write_plots",
]
