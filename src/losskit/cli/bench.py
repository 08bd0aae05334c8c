"""``losskit bench [NAME ...]``: speed and memory against the reference implementations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losskit.bench import (
    OURS,
    BenchSettings,
    CaseResult,
    ImplResult,
    Report,
    format_bytes,
    format_ratio,
    format_size,
    format_time,
    parse_sizes,
    render_markdown,
    run_benchmarks,
    select_specs,
)
from losskit.cli._common import console, err_console, user_errors


def _ratio_cell(ratio: float | None, slow: float) -> str:
    text = format_ratio(ratio)
    if ratio is None:
        return text
    colour = "green" if ratio <= 1.05 else "yellow" if ratio <= slow else "red"
    return f"[{colour}]{text}[/]"


def print_report(report: Report) -> None:
    """One small table per loss and reference (it fits an 80-column terminal)."""
    machine, settings = report.machine, report.settings
    console.print(
        f"[bold]losskit / reference[/] on {settings['device']}, {settings['dtype']}, "
        f"{settings['threads']} torch thread(s), {settings['clock']} clock; "
        f"{machine['cpu_model']}, "
        f"{machine['logical_cores']} cores, torch {machine['torch']}",
        highlight=False,
    )
    floor = report.memory_floor
    groups: dict[tuple[str, str], list[tuple[CaseResult, ImplResult | None]]] = {}
    for case in report.cases:
        for ref in case.references or [None]:
            groups.setdefault((case.loss, ref.name if ref else "no reference"), []).append(
                (case, ref)
            )
    for (loss, ref_name), rows in groups.items():
        table = Table(
            box=box.SIMPLE_HEAD, title=f"[bold]{loss}[/] vs {ref_name}", title_justify="left"
        )
        for name in ("size", "time losskit", "time ref.", "ratio"):
            table.add_column(name, justify="right")
        for name in ("peak losskit", "peak ref.", "ratio"):
            table.add_column(name, justify="right")
        for case, ref in rows:
            # small sizes are dominated by Python overhead: hold them to 1.3, large ones to 1.05
            slow = 1.3 if case.size < 10_000 else 1.05
            table.add_row(
                format_size(case.size),
                format_time(case.ours.time_s),
                format_time(ref.time_s) if ref else "–",
                _ratio_cell(case.time_ratio(ref), slow) if ref else "–",
                format_bytes(case.ours.peak_bytes),
                format_bytes(ref.peak_bytes) if ref else "–",
                _ratio_cell(case.memory_ratio(ref, floor), 1.05) if ref else "–",
            )
        console.print(table)
    console.print("ratio: losskit / reference, from the same run (below 1 is faster or leaner)")


def bench(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="losses to run (names or aliases); default: every benchmarked loss"),
    ] = None,
    sizes: Annotated[
        list[str] | None,
        typer.Option(
            "--sizes", "-s", help="sizes instead of each loss's own, e.g. 32,1k,1M (k=1024)"
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            "-q",
            help="smallest and largest size, short timings, memory at the largest only",
        ),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the results (with machine info) here")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", "--md", help="write the Markdown table here")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch threads while measuring")] = 1,
    device: Annotated[
        str, typer.Option(help="auto (the accelerator if any, else cpu), cpu, cuda, ...")
    ] = "auto",
    dtype: Annotated[str, typer.Option(help="float32, float64, float16 or bfloat16")] = "float32",
    min_time: Annotated[
        float | None,
        typer.Option(help="seconds of timing per implementation [1.0; quick 0.25]"),
    ] = None,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="measure peak memory in subprocesses")
    ] = True,
    clock: Annotated[
        str,
        typer.Option(help="cpu (thread CPU time: immune to other load), wall, or auto [auto]"),
    ] = "auto",
    jobs: Annotated[
        int | None, typer.Option(help="memory subprocesses at once [cores / threads, max 4]")
    ] = None,
) -> None:
    """Time forward+backward and measure peak memory against the reference implementations."""
    with user_errors():
        specs = select_specs(names)
        settings = BenchSettings(
            sizes=parse_sizes(sizes) if sizes else None,
            quick=quick,
            threads=threads,
            device=device,
            dtype=dtype,
            min_run_time=min_time,
            memory=memory,
            jobs=jobs,
            clock=clock,
        ).resolved()
    if not specs:
        err_console.print("nothing to benchmark: no catalog entry has benchmark inputs")
        return
    with Progress(
        TextColumn("[bold]bench[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        report = run_benchmarks(specs, settings, progress)
    print_report(report)
    if json_path is not None:
        report.save_json(json_path)
        console.print(f"results: {json_path}")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(render_markdown(report))
        console.print(f"table: {markdown_path}")
    errors = report.errors()
    for loss, size, impl, error in errors:
        err_console.print(f"[yellow]not measured:[/] {loss} {size:,} {impl}: {error}")
    if any(impl == OURS for _, _, impl, _ in errors):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
