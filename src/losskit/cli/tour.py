"""``losskit tour``: the catalog, then every worked example computed live."""

from __future__ import annotations

import typer
from rich.text import Text

from losskit._registry import get_catalog
from losskit.cli._common import console
from losskit.cli.list import fit, list_losses


def example_lines(width: int) -> list[Text]:
    """One line per worked example: the loss, losskit's value, whether it equals the
    textbook's (both when it does not), and the example, shortened to fit the line."""
    rows = []
    for spec in get_catalog().specs():
        for ex in spec.examples:
            value = spec.functional(*ex.args, **ex.kwargs).item()
            ok = round(value, ex.decimals) == round(ex.expected, ex.decimals)
            shown = f"{value:,.{ex.decimals}f}"
            if not ok:
                shown += f" (textbook {ex.expected:,.{ex.decimals}f})"
            rows.append((spec.name, shown, ok, ex.title))
    name_width = max((len(r[0]) for r in rows), default=4)
    value_width = max((len(r[1]) for r in rows), default=5)
    status_width = 2 if all(r[2] for r in rows) else 8
    room = max(10, width - name_width - value_width - status_width - 6)
    lines = [
        Text(
            f"{'loss':<{name_width}}  {'losskit':>{value_width}}  {'':{status_width}}  example",
            style="bold",
        )
    ]
    for name, shown, ok, title in rows:
        lines.append(
            Text.assemble(
                (f"{name:<{name_width}}", "bold cyan"),
                f"  {shown:>{value_width}}  ",
                (f"{'ok' if ok else 'MISMATCH':<{status_width}}", "green" if ok else "bold red"),
                "  ",
                fit(title, room),  # a Text, not markup: "[0, 1]" is printed as written
            )
        )
    return lines


def tour() -> None:
    """A two-minute walk: the catalog and the textbook examples, computed now."""
    list_losses(task=None)
    console.print()
    console.print(
        "worked examples, computed live (ok: the textbook's value)",
        style="bold",
        highlight=False,
    )
    for line in example_lines(console.width):
        console.print(line, no_wrap=True, overflow="ellipsis", highlight=False)
    console.print(
        "Next: losskit show huber, losskit eval bce --input 0.8,0.3 --target 1,0", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("tour")(tour)
