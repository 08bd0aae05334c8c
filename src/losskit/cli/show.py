"""``losskit show NAME``: formula, options, references, a PyTorch snippet, worked examples."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from ._common import console, find_spec


def show(name: Annotated[str, typer.Argument(help="loss name or alias, e.g. huber")]) -> None:
    """Explain one loss: what it computes, its options, and how to call it."""
    spec = find_spec(name)
    aliases = f"  (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
    console.print(f"[bold cyan]{spec.name}[/]  [dim]{spec.task}[/]{aliases}")
    console.print(spec.summary)
    console.print(Panel(spec.formula, title="formula (LaTeX)", expand=False))
    if spec.params:
        table = Table("option", "default", "valid", "tuning range", "meaning")
        for p in spec.params:
            rng = "" if p.low is None else f"[{p.low:g}, {p.high:g}]{' log' if p.log else ''}"
            table.add_row(p.name, repr(p.default), p.valid, rng, p.doc)
        console.print(table)
    console.print(f"reference: {spec.reference_name or 'none'}")
    console.print(f"torch.compile: {spec.compile}")
    for paper in spec.papers:
        console.print(f"paper: {paper}")
    if spec.notes:
        console.print(spec.notes)
    console.print(Syntax(spec.torch_snippet(), "python", theme="ansi_dark"))
    for ex in spec.examples:
        value = spec.functional(*ex.args, **ex.kwargs).item()
        console.print(f"example: {ex.title} -> {value:.{ex.decimals}f}")


def register(app: typer.Typer) -> None:
    app.command("show")(show)
