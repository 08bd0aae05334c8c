"""``losskit compare [DATA.csv]``: train the same small model with each candidate loss and rank
the losses by held-out metrics; without a CSV, the bundled demos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losskit.cli._common import console, die, err_console, user_errors

if TYPE_CHECKING:
    from losskit.selection import Candidate, Comparison, Dataset, TrainSettings


def parse_hidden(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        die(f"--hidden is {text!r}; expected layer widths, e.g. 128,64")
    if not widths or min(widths) < 1:
        die(f"--hidden is {text!r}; expected layer widths >= 1, e.g. 128,64")
    return widths


def candidate_tasks(losses: str) -> str:
    """The one demo task that every loss of ``--losses`` can train (used without a CSV)."""
    from losskit.selection import SELECTION_TASKS, DataError, parse_candidate

    fits: dict[str, list[str]] = {}
    for text in (t for t in losses.split(",") if t.strip()):
        tasks = []
        for task in SELECTION_TASKS:
            try:
                parse_candidate(text, task)
            except DataError:
                continue
            tasks.append(task)
        if not tasks:
            parse_candidate(text)  # an unknown name or option: its own message
            die(
                f"{text.strip()} cannot train any of the demos' tasks ({', '.join(SELECTION_TASKS)})"
            )
        fits[text.strip()] = tasks
    common = set(SELECTION_TASKS).intersection(*fits.values())
    if len(common) != 1:
        shown = ", ".join(f"{name}: {'/'.join(tasks)}" for name, tasks in fits.items())
        die(f"--losses fit different demos ({shown}); choose one with --task")
    return common.pop()


def print_comparison(comparison: Comparison) -> None:
    from losskit.selection.report import describe_settings, learned_notes, table_header, table_rows

    data = comparison.dataset
    table = Table(
        title=f"[bold]{data.name}[/] ({data.task})",
        caption=describe_settings(comparison),
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    for i, column in enumerate(table_header(comparison)):
        if i == 1:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for i, row in enumerate(table_rows(comparison)):
        table.add_row(*row, style="bold green" if i == 0 else "dim" if row[0] == "–" else None)
    console.print(data.description, style="dim", highlight=False)
    console.print(table)
    for note in learned_notes(comparison):
        console.print(f"  {note}", style="dim", highlight=False)


def run_comparisons(
    jobs: list[tuple[Dataset, list[Candidate], TrainSettings]], rank_by: str | None
) -> list[Comparison]:
    from losskit.selection import compare_losses

    total = sum(
        len(candidates) * (1 if s.holdout is not None else s.folds) * s.epochs
        for _, candidates, s in jobs
    )
    comparisons = []
    with Progress(
        TextColumn("[bold]compare[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=total)

        def progress(units: int, what: str) -> None:
            bar.update(task, advance=units, description=what)

        for dataset, candidates, settings in jobs:
            bar.update(task, description=f"{dataset.name}: preparing")
            with user_errors():
                comparisons.append(
                    compare_losses(
                        dataset, candidates, settings, rank_by=rank_by, progress=progress
                    )
                )
    return comparisons


def compare(
    data: Annotated[
        Path | None,
        typer.Argument(help="CSV file with a header line; without it, the bundled demos"),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="regression, classification or embedding (default for a CSV: inferred from the target; without: all demos)"
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the target column of the CSV")] = None,
    features: Annotated[
        str | None,
        typer.Option(help="feature columns, comma-separated (default: all but the target)"),
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option(
            "--losses",
            "-l",
            help="candidates, comma-separated: name[:option=value...], e.g. "
            "mse,huber:delta=0.5,adaptive_robust; weight=balanced and alpha=class_balanced "
            "use the training fold's class counts (default: the demo's set; for a CSV every "
            "loss of the task)",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="training epochs (default: per task)")] = None,
    folds: Annotated[
        int | None, typer.Option(help="cross-validation folds (default: 5, embedding 3; quick 3)")
    ] = None,
    holdout: Annotated[
        float | None, typer.Option(help="one held-out split of this fraction instead of folds")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of splits, weights and batches")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="batch size (default: per task)")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (default: 0.003)")] = None,
    hidden: Annotated[
        str | None, typer.Option(help="hidden layer widths, e.g. 128,64 (default: per task)")
    ] = None,
    rank_by: Annotated[
        str | None,
        typer.Option(help="metric that ranks (default: mae, macro_f1 or map_at_r, by task)"),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", "-q", help="fewer folds and epochs (what make run uses)")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="write results.json, results.md and plots into this directory"),
    ] = None,
) -> None:
    """Which loss suits this data? Train the same MLP with each candidate and rank them."""
    from losskit.selection import (
        compatible_losses,
        default_settings,
        demo,
        demo_for_task,
        load_csv,
        parse_candidates,
    )
    from losskit.selection.report import check_output_dir, write_comparisons
    from losskit.selection.training import validate

    with user_errors():
        if out is not None:
            check_output_dir(out)
        if data is None:
            if target is not None or features is not None:
                die("--target and --features describe a CSV file; give one (or leave them out)")
            if task is None and losses is not None:
                task = candidate_tasks(losses)
            datasets = [demo_for_task(task)] if task else [demo(n) for n in _demo_names()]
        else:
            if target is None:
                die(f"--target is missing; expected the name of {data}'s target column")
            datasets = [
                load_csv(
                    data,
                    target=target,
                    task=task,  # type: ignore[arg-type]
                    features=[f.strip() for f in features.split(",")] if features else None,
                )
            ]
        widths = parse_hidden(hidden)
        jobs = []
        for dataset in datasets:
            names = losses or ",".join(
                dataset.default_candidates or compatible_losses(dataset.task)
            )
            candidates = parse_candidates(names, dataset.task)
            settings = default_settings(
                dataset.task,
                quick=quick,
                epochs=epochs,
                folds=folds,
                holdout=holdout,
                seed=seed,
                batch_size=batch_size,
                lr=lr,
                hidden=widths,
            )
            validate(dataset, candidates, settings)
            jobs.append((dataset, candidates, settings))
        if rank_by is not None:
            from losskit.selection import metric

            for dataset in datasets:
                metric(dataset.task, rank_by)
    if data is not None and task is None:
        console.print(
            f"task: {datasets[0].task} (inferred from {target!r}; choose with --task)",
            style="dim",
            highlight=False,
        )
    try:
        comparisons = run_comparisons(jobs, rank_by)
        for comparison in comparisons:
            print_comparison(comparison)
        if out is not None:
            with user_errors():
                files = write_comparisons(out, comparisons)
            plots = sum(f.endswith(".png") for f in files)
            console.print(
                f"report: {out}/ (results.md, results.json, {plots} plots)", highlight=False
            )
    except KeyboardInterrupt:
        err_console.print("interrupted: no report written")
        raise typer.Exit(130) from None


def _demo_names() -> list[str]:
    from losskit.selection import DEMOS

    return list(DEMOS)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
