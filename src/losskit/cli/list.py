"""``losskit list``: the catalog, one line per loss."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from losskit._catalog import TASKS
from losskit._registry import get_catalog
from losskit.cli._common import console, die


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def catalog_lines(task: str | None, width: int) -> list[Text]:
    """Name, task and summary, one line per loss at any width: the name and the task are
    never cut, the summary is shortened to fit (``losskit show`` has the rest).

    Plain aligned columns rather than a table: a table squeezes every column, names
    included, when the summaries do not fit, and borders are noise in a pipe."""
    specs = get_catalog().specs(task)
    name_width = max((len(s.name) for s in specs), default=4)
    task_width = max((len(s.task) for s in specs), default=4)
    room = max(10, width - name_width - task_width - 4)
    lines = [Text(f"{'name':<{name_width}}  {'task':<{task_width}}  summary", style="bold")]
    for spec in specs:
        lines.append(
            Text.assemble(
                (f"{spec.name:<{name_width}}", "bold cyan"),
                f"  {spec.task:<{task_width}}  ",
                fit(spec.summary, room),
            )
        )
    return lines


def list_losses(
    task: Annotated[
        str | None, typer.Option("--task", "-t", help=f"only this task: {', '.join(TASKS)}")
    ] = None,
) -> None:
    """Every loss in the catalog, one line each: name, task, summary (details: losskit show
    NAME)."""
    if task is not None and task not in TASKS:
        die(f"--task is {task!r}; expected one of {', '.join(TASKS)}")
    lines = catalog_lines(task, console.width)
    console.print(f"losskit catalog ({len(lines) - 1} losses)", style="bold", highlight=False)
    for line in lines:
        console.print(line, no_wrap=True, overflow="ellipsis", highlight=False)
    console.print("details, options and snippets: losskit show NAME", style="dim", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_losses)
