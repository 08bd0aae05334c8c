"""The benchmark harness: losskit against its reference implementations, in time and memory.

For each catalog entry with ``bench_inputs`` and each of its sizes it times forward+backward of
losskit's functional and of every ``spec.benchmark_references()`` entry with
``torch.utils.benchmark`` (short blocks, interleaved, the median of all of them), and measures the peak
memory of one forward+backward of each in a fresh subprocess (peak RSS above a baseline taken
after the inputs are built; on an accelerator, the allocator's peak above the memory allocated
then). Every figure comes with the reference's from the same run and their ratio.

>>> from losskit.bench import BenchSettings, run_benchmarks, select_specs
>>> report = run_benchmarks(select_specs(["mse"]), BenchSettings(sizes=(32,)))  # doctest: +SKIP

``losskit bench`` is the command line over this module; ``make bench`` regenerates
``benchmarks/RESULTS.md``.
"""

from losskit.bench.harness import (
    OURS,
    BenchSettings,
    CaseResult,
    ImplResult,
    Report,
    machine_info,
    parse_sizes,
    run_benchmarks,
    select_specs,
)
from losskit.bench.report import (
    format_bytes,
    format_ratio,
    format_size,
    format_time,
    render_markdown,
)

__all__ = [
    "OURS",
    "BenchSettings",
    "CaseResult",
    "ImplResult",
    "Report",
    "format_bytes",
    "format_ratio",
    "format_size",
    "format_time",
    "machine_info",
    "parse_sizes",
    "render_markdown",
    "run_benchmarks",
    "select_specs",
]
