"""``losskit list``: the catalog as a table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from losskit._catalog import TASKS
from losskit._registry import get_catalog
from losskit.cli._common import console, die


def list_losses(
    task: Annotated[
        str | None, typer.Option("--task", "-t", help=f"only this task: {', '.join(TASKS)}")
    ] = None,
) -> None:
    """Every loss in the catalog: name, task, hyper-parameters, one-line summary."""
    if task is not None and task not in TASKS:
        die(f"--task is {task!r}; expected one of {', '.join(TASKS)}")
    specs = get_catalog().specs(task)
    table = Table(title=f"losskit catalog ({len(specs)} losses)", show_lines=False)
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("task")
    table.add_column("hyper-parameters")
    table.add_column("reference")
    table.add_column("summary")
    for spec in specs:
        params = ", ".join(f"{p.name}={p.default}" for p in spec.params)
        table.add_row(spec.name, spec.task, params, spec.reference_name, spec.summary)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("list")(list_losses)
