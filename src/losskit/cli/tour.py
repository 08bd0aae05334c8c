"""``losskit tour``: the catalog, then every worked example computed live."""

from __future__ import annotations

import typer
from rich.table import Table

from losskit._registry import get_catalog
from losskit.cli._common import console
from losskit.cli.list import list_losses


def tour() -> None:
    """A two-minute walk: the catalog and the textbook examples, computed now."""
    list_losses(task=None)
    table = Table(title="worked examples, computed live")
    table.add_column("loss", style="bold cyan")
    table.add_column("example")
    table.add_column("losskit", justify="right")
    table.add_column("textbook", justify="right")
    table.add_column("", justify="center")
    for spec in get_catalog().specs():
        for ex in spec.examples:
            value = spec.functional(*ex.args, **ex.kwargs).item()
            ok = round(value, ex.decimals) == round(ex.expected, ex.decimals)
            table.add_row(
                spec.name,
                ex.title,
                f"{value:,.{ex.decimals}f}",
                f"{ex.expected:,.{ex.decimals}f}",
                "[green]ok[/]" if ok else "[red]MISMATCH[/]",
            )
    console.print(table)
    console.print(
        "Next: [bold]losskit show huber[/], [bold]losskit eval bce --input 0.8,0.3 --target 1,0[/]"
    )


def register(app: typer.Typer) -> None:
    app.command("tour")(tour)
