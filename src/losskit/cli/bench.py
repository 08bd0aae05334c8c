"""``losskit bench [NAME ...]``: speed and memory against the reference implementations."""

from __future__ import annotations

import os
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
    parse_bytes,
    parse_sizes,
    render_markdown,
    run_benchmarks,
    select_specs,
    write_plots,
)
from losskit.cli._common import check_output_file, console, err_console, user_errors


def _ratio_cell(ratio: float | None, slow: float) -> str:
    text = format_ratio(ratio)
    if ratio is None:
        return text
    colour = "green" if ratio <= 1.0 else "yellow" if ratio <= slow else "red"
    return f"[{colour}]{text}[/]"


def print_report(report: Report) -> None:
    """One small table per loss and reference, a row per size and condition (it fits an
    80-column terminal)."""
    machine, settings = report.machine, report.settings
    default = settings.get("default_threads")
    console.print(
        f"[bold]losskit / reference[/] on {settings['device']}, {settings['dtype']}; "
        f"{machine['cpu_model']}, {machine['logical_cores']} cores, torch {machine['torch']}; "
        f"run {report.run.get('wall_s', 0):g} s",
        highlight=False,
    )
    for c in settings.get("conditions", []):
        console.print(f"  {c['label']}: {c['clock']} clock", highlight=False)
    floor = report.memory_floor
    loaded = any(case.load for case in report.cases)
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
        table.add_column("size", justify="right")
        table.add_column("thr.", justify="right")
        if loaded:
            table.add_column("load", justify="right")
        for name in ("losskit", "ref.", "ratio", "peak losskit", "peak ref.", "ratio"):
            table.add_column(name, justify="right")
        for case, ref in sorted(rows, key=lambda r: (r[0].size, r[0].load, r[0].threads)):
            # small sizes are dominated by Python overhead: yellow up to 1.3, large ones to 1.05
            slow = 1.3 if case.size < 10_000 else 1.05
            threads = f"{case.threads}" + ("*" if case.threads == default else "")
            cells = [format_size(case.size), threads] + ([f"{case.load}"] if loaded else [])
            table.add_row(
                *cells,
                format_time(case.ours.time_s),
                format_time(ref.time_s) if ref else "–",
                _ratio_cell(case.time_ratio(ref), slow) if ref else "–",
                format_bytes(case.ours.peak_bytes),
                format_bytes(ref.peak_bytes) if ref else "–",
                _ratio_cell(case.memory_ratio(ref, floor), 1.05) if ref else "–",
            )
        console.print(table)
    for s in report.skipped:
        console.print(
            f"[dim]left out: {s['loss']} {s['size']:,}: {s['reason']}[/]", highlight=False
        )
    console.print(
        "ratio: losskit / reference, same run and condition (below 1 is faster or leaner); "
        "thr.: torch threads (* torch's default)"
        + ("; load: busy background processes" if loaded else "")
    )


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
            help="smallest and largest size within the limits below, short timings (3+ "
            "blocks), memory at the largest size and one thread only: a short check",
        ),
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write the results (with machine info) here")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", "--md", help="write the Markdown tables here")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="write the time and memory ratio against size here, one PNG per family"
        ),
    ] = None,
    threads: Annotated[
        str,
        typer.Option(
            help="torch thread counts, each measured: e.g. 1, 4 or 1,default (torch's own count)"
        ),
    ] = "1,default",
    background_load: Annotated[
        str,
        typer.Option(
            "--background-load",
            help="busy processes running while timing (wall clock), e.g. 2; 0,2 measures both",
        ),
    ] = "0",
    device: Annotated[
        str, typer.Option(help="auto (the accelerator if any, else cpu), cpu, cuda, ...")
    ] = "auto",
    dtype: Annotated[str, typer.Option(help="float32, float64, float16 or bfloat16")] = "float32",
    min_time: Annotated[
        float | None,
        typer.Option(help="seconds of timing per implementation and condition (1.0; quick 0.1)"),
    ] = None,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="measure peak memory in subprocesses")
    ] = True,
    clock: Annotated[
        str,
        typer.Option(
            help="auto (thread CPU time at 1 thread without load, else wall), cpu or wall"
        ),
    ] = "auto",
    max_run_time: Annotated[
        float | None,
        typer.Option(help="leave out sizes where a run takes longer (s) (quick 0.3; 0: none)"),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(help="leave out sizes where a run needs more, e.g. 2G (quick 512M; 0: none)"),
    ] = None,
    max_inputs: Annotated[
        str | None,
        typer.Option(help="leave out sizes whose inputs take more, e.g. 64M (quick 32M; 0: none)"),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(help="memory subprocesses at once (cores / threads, at most 4)")
    ] = None,
) -> None:
    """Time forward+backward and measure peak memory against the reference implementations."""
    # the places the results go are checked before any timing: a long run must not end in
    # "cannot write"
    if json_path is not None:
        json_path = check_output_file(json_path, "--json")
    if markdown_path is not None:
        markdown_path = check_output_file(markdown_path, "--markdown")
    with user_errors():
        if plots is not None:
            from losskit.selection.paths import check_output_dir

            plots = check_output_dir(plots, force=True, option="--plots")
        specs = select_specs(names)
        settings = BenchSettings(
            sizes=parse_sizes(sizes) if sizes else None,
            quick=quick,
            threads=threads,
            background_load=background_load,
            device=device,
            dtype=dtype,
            min_run_time=min_time,
            memory=memory,
            jobs=jobs,
            clock=clock,
            max_run_time=max_run_time,
            max_memory=parse_bytes(max_memory) if max_memory is not None else None,
            max_input_bytes=parse_bytes(max_inputs) if max_inputs is not None else None,
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
    written = []
    if plots is not None:
        written = write_plots(report, plots)
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        base = markdown_path.parent.resolve()
        links = [os.path.relpath(p.resolve(), base) for p in written]
        markdown_path.write_text(render_markdown(report, plots=links))
        console.print(f"tables: {markdown_path}")
    errors = report.errors()
    for loss, size, impl, error in errors:
        err_console.print(f"[yellow]not measured:[/] {loss} {size:,} {impl}: {error}")
    if any(impl == OURS for _, _, impl, _ in errors):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
