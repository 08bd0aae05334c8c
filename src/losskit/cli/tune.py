"""``losskit tune NAME [DATA.csv] --param margin=0.05:2.0 --trials N``: an Optuna study over a
loss's hyper-parameters, scored by cross-validated held-out metrics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from losskit.cli._common import (
    check_output_dir,
    console,
    die,
    err_console,
    find_spec,
    require,
    user_errors,
)
from losskit.cli.compare import parse_hidden

if TYPE_CHECKING:
    from losskit.selection.tuning import StudyResult


def tune(
    name: Annotated[str, typer.Argument(help="loss name or alias, e.g. triplet")],
    data: Annotated[
        Path | None,
        typer.Argument(help="CSV file with a header line; without it, the task's bundled demo"),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=LOW:HIGH or NAME=LOW:HIGH:log (a range), NAME=A,B,C (a choice) or "
            "NAME=VALUE (fixed); repeatable (default: the catalog's tuning ranges)",
        ),
    ] = None,
    trials: Annotated[int, typer.Option(help="trials to run now (added to a resumed study)")] = 20,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL, e.g. sqlite:///studies.db or postgresql://host/db; the "
            "same URL and study resume it (default: sqlite:///losskit-tune.db)"
        ),
    ] = None,
    study: Annotated[str | None, typer.Option(help="study name (default: LOSS-DATASET)")] = None,
    worker: Annotated[
        int,
        typer.Option(
            help="this worker's number, 0-999, when several machines or processes share one "
            "study: give each its own, so their samplers propose different trials"
        ),
    ] = 0,
    task: Annotated[
        str | None,
        typer.Option(
            help="regression, classification, embedding or segmentation (default: the first "
            "that the loss can train)"
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the target column of the CSV")] = None,
    features: Annotated[
        str | None,
        typer.Option(help="feature columns, comma-separated (default: all but the target)"),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="training epochs (default: per task)")] = None,
    folds: Annotated[
        int | None, typer.Option(help="cross-validation folds (default: per task)")
    ] = None,
    holdout: Annotated[
        float | None, typer.Option(help="one held-out split of this fraction instead of folds")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of splits, weights, batches and sampler")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="batch size (default: per task)")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (default: 0.003)")] = None,
    hidden: Annotated[
        str | None, typer.Option(help="hidden layer widths (default: per task)")
    ] = None,
    rank_by: Annotated[
        str | None,
        typer.Option(help="metric to optimise (default: mae, macro_f1 or map_at_r, by task)"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", "-q", help="fewer folds and epochs")] = False,
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
    """Tune a loss's hyper-parameters with Optuna on your data (or the bundled demo)."""
    require("losskit tune", "optuna", "sklearn", *(["matplotlib"] if out is not None else []))
    if out is not None:
        out = check_output_dir(out, force=force)
    elif force:
        die("--force applies to --out DIR; give one (or leave --force out)")
    if folds is not None and holdout is not None:
        die("--folds and --holdout are two ways to split; give one of them")
    from losskit.selection import (
        SELECTION_TASKS,
        adapter_for,
        default_settings,
        demo_for_task,
        load_csv,
        metric,
        primary_metric,
    )
    from losskit.selection.report import write_study
    from losskit.selection.tuning import (
        DEFAULT_STORAGE,
        run_study,
        search_space,
        storage_label,
        study_for,
    )

    spec = find_spec(name)
    with user_errors():
        if data is None:
            if target is not None or features is not None:
                die("--target and --features describe a CSV file; give one (or leave them out)")
            chosen = task or next(
                (t for t in SELECTION_TASKS if adapter_for(spec, t) is not None), None
            )
            if chosen is None:
                die(f"{spec.name} ({spec.task}) cannot train any of the demos' models")
            dataset = demo_for_task(chosen)
        else:
            if target is None:
                die(f"--target is missing; expected the name of {data}'s target column")
            dataset = load_csv(
                data,
                target=target,
                task=task,  # type: ignore[arg-type]
                features=[f.strip() for f in features.split(",")] if features else None,
            )
        if adapter_for(spec, dataset.task) is None:
            die(f"{spec.name} ({spec.task}) cannot train a {dataset.task} model")
        space = search_space(spec, param or [])
        if isinstance(trials, bool) or trials < 1:
            die(f"--trials is {trials}; expected an integer >= 1")
        settings = default_settings(
            dataset.task,
            quick=quick,
            epochs=epochs,
            folds=folds,
            holdout=holdout,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            hidden=parse_hidden(hidden),
        )
        objective = metric(dataset.task, rank_by) if rank_by else primary_metric(dataset.task)
        url = storage or DEFAULT_STORAGE
        opened = study_for(
            spec, dataset, settings, objective, space, storage=url, study_name=study, worker=worker
        )
    console.print(
        f"tuning [bold]{spec.name}[/] on {dataset.name} ({dataset.task}): "
        + "; ".join(p.describe() for p in space),
        highlight=False,
    )
    console.print(
        f"objective: {objective.label} ({objective.direction}), "
        f"{settings.folds if settings.holdout is None else 1} fold(s) x {settings.epochs} epochs "
        f"per trial; study {opened.study_name!r} in {storage_label(url)}"
        + (f", worker {worker}" if worker else "")
        + (f", resuming after {len(opened.trials)} trials" if opened.trials else ""),
        style="dim",
        highlight=False,
    )
    per_trial = (1 if settings.holdout is not None else settings.folds) * settings.epochs
    best: list[float] = []
    try:
        with Progress(
            TextColumn("[bold]tune[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err_console,
            transient=True,
        ) as bar:
            job = bar.add_task("starting", total=trials * per_trial)

            def progress(units: int, what: str) -> None:
                bar.update(job, advance=units)

            def on_trial(number: int, value: float | None) -> None:
                if value is not None:
                    better = max if objective.higher_is_better else min
                    best[:] = [better([*best, value])]
                shown = f"{best[0]:.4f}" if best else "–"
                bar.update(job, description=f"trial {number}: best {objective.label} {shown}")

            def on_wait(count: int) -> None:
                bar.update(
                    job,
                    description=f"waiting for {count} trial{'s' * (count != 1)} of other workers",
                )

            with user_errors():
                result = run_study(
                    spec,
                    dataset,
                    space,
                    settings,
                    objective,
                    trials=trials,
                    study=opened,
                    storage=url,
                    worker=worker,
                    progress=progress,
                    on_trial=on_trial,
                    on_wait=on_wait,
                )
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: finished trials are kept in {storage_label(url)}; run the same "
            "command to resume. "
            "No report written"
        )
        raise typer.Exit(130) from None
    print_study(result)
    if out is not None:
        try:
            with user_errors():
                files = write_study(out, result, force=force)
        except KeyboardInterrupt:
            err_console.print("interrupted: no report written")
            raise typer.Exit(130) from None
        console.print(f"report: {out}/ ({', '.join(files)})", highlight=False)


def print_study(result: StudyResult) -> None:
    metric = result.metric
    sources = [
        f"{n} from {what}"
        for n, what in (
            (result.earlier, "earlier runs"),
            (result.other_workers, "other workers"),
        )
        if n
    ]
    console.print(
        f"study [bold]{result.study_name}[/]: {len(result.trials) - result.running_elsewhere} "
        "trials" + (f" ({', '.join(sources)})" if sources else ""),
        highlight=False,
    )
    if result.running_elsewhere:
        console.print(
            f"{result.running_elsewhere} more still running on other workers: the best below "
            "may improve when they finish",
            style="dim",
            highlight=False,
        )
    if result.same_worker:
        err_console.print(
            f"warning: another process also ran as --worker {result.worker} meanwhile, with the "
            "same sampler seed; give each worker its own --worker",
            highlight=False,
        )
    if result.best is None:
        die("no trial finished: every trial failed or diverged (try a smaller --lr or range)")
    names = [p.name for p in result.space if p.kind != "fixed"]
    table = Table(box=box.SIMPLE_HEAD, title="best trials", title_justify="left")
    table.add_column("trial", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column(f"{metric.label} {'↑' if metric.higher_is_better else '↓'}", justify="right")
    done = [t for t in result.trials if t["value"] is not None]
    # ties in the order `best` breaks them: the earliest trial first
    done.sort(key=lambda t: (-t["value"] if metric.higher_is_better else t["value"], t["number"]))
    for i, t in enumerate(done[:5]):
        cells = [_cell(t["params"].get(n)) for n in names]
        table.add_row(
            str(t["number"]),
            *cells,
            f"{t['value']:.4f} ± {t.get('std', 0.0):.4f}",
            style="bold green" if i == 0 else None,
        )
    console.print(table)
    best = result.best
    options = ":".join(f"{k}={_cell(v)}" for k, v in best["params"].items())
    fixed = ":".join(f"{p.name}={p.value}" for p in result.space if p.kind == "fixed")
    label = ":".join(x for x in (result.loss, fixed, options) if x)
    console.print(f"best: {label}  ({metric.label} {best['value']:.4f})", highlight=False)
    if result.distances:
        pos, neg = result.distances["positive"], result.distances["negative"]
        console.print(
            f"held-out distances at the best parameters: same class median {_median(pos)}, "
            f"different class median {_median(neg)}",
            style="dim",
            highlight=False,
        )


def _median(values: np.ndarray) -> str:
    return f"{float(np.median(values)):.3f}" if len(values) else "–"


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
