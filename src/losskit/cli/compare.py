"""``losskit compare [DATA.csv]``: train the same small model with each candidate loss and rank
the losses by held-out metrics; without a CSV, the bundled demos (outliers, imbalance, metric
learning, segmentation)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from losskit.cli._common import (
    check_output_dir,
    console,
    die,
    err_console,
    require,
    user_errors,
)

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
    """The demo task that every loss of ``--losses`` can train (used without a CSV). Where
    several can (``cross_entropy`` and ``focal`` train classifiers and segmenters), the first
    of ``SELECTION_TASKS``: classification; a segmentation loss in the list makes it
    segmentation."""
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
    common = [t for t in SELECTION_TASKS if all(t in tasks for tasks in fits.values())]
    if not common:
        shown = ", ".join(f"{name}: {'/'.join(tasks)}" for name, tasks in fits.items())
        die(f"--losses fit different demos ({shown}); choose one with --task")
    return common[0]


def print_comparison(comparison: Comparison) -> None:
    """The ranked table. A loss's label is what ``--losses`` takes back, so it is never
    broken or cut; when the rows do not fit the terminal, the time column (also in
    results.md) goes first, then the metric cells wrap between the mean and the spread."""
    from losskit.selection.report import describe_settings, learned_notes, table_header, table_rows

    data = comparison.dataset
    header, rows = table_header(comparison), table_rows(comparison)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def fits(n: int) -> bool:  # n columns, two spaces between neighbours, none at the edges
        return sum(widths[:n]) + 2 * (n - 1) <= console.width

    if not fits(len(header)):
        header, rows = header[:-1], [row[:-1] for row in rows]
    table = Table(
        title=f"[bold]{escape(data.name)}[/] ({data.task})",
        caption=describe_settings(comparison),
        title_justify="left",
        caption_justify="left",
        box=None,  # no borders: they cost columns, and are noise in a pipe
        header_style="bold",
        padding=(0, 1),
        pad_edge=False,
    )
    for i, column in enumerate(header):
        if i == 1:
            table.add_column(column, no_wrap=True, min_width=widths[1])
        elif fits(len(header)):
            # the cells fit: a header wraps ("balanced / acc. ↑") rather than a cell
            table.add_column(column, justify="right", no_wrap=i == 0, min_width=widths[i])
        else:
            table.add_column(column, justify="right", no_wrap=i == 0)
    for i, row in enumerate(rows):
        table.add_row(
            *(Text(cell) for cell in row),
            style="bold green" if i == 0 else "dim" if row[0] == "–" else None,
        )
    console.print()
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
            help="regression, classification, embedding or segmentation (default for a CSV: "
            "inferred from the target; without: all demos; segmentation: the bundled demo only)"
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
        typer.Option(
            help="write results.json, results.md and plots into this directory (new or empty)"
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="write into a non-empty --out: files of the same name are replaced, and "
            "those of an earlier losskit report that this one does not write are removed",
        ),
    ] = False,
) -> None:
    """Which loss suits this data? Train the same model with each candidate and rank them."""
    require("losskit compare", "sklearn", *(["matplotlib"] if out is not None else []))
    if out is not None:
        out = check_output_dir(out, force=force)
    elif force:
        die("--force applies to --out DIR; give one (or leave --force out)")
    if folds is not None and holdout is not None:
        die("--folds and --holdout are two ways to split; give one of them")
    from losskit.selection import (
        compatible_losses,
        default_settings,
        demo,
        demo_for_task,
        load_csv,
        parse_candidates,
    )
    from losskit.selection.report import write_comparisons
    from losskit.selection.training import validate

    with user_errors():
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
                files = write_comparisons(out, comparisons, force=force)
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
