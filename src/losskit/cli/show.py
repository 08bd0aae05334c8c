"""``losskit show NAME``: formula, options, references, a PyTorch snippet, worked examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from losskit._catalog import LossSpec
from losskit.cli._common import console, die, find_spec, user_errors


def show(
    name: Annotated[str, typer.Argument(help="loss name or alias, e.g. huber")],
    plot: Annotated[
        Path | None,
        typer.Option(help="draw the loss and its gradient into this image file (e.g. out.png)"),
    ] = None,
    vary: Annotated[
        str | None,
        typer.Option(
            help="hyper-parameter the plot varies (default: the first with a tuning range)"
        ),
    ] = None,
    values: Annotated[
        str | None,
        typer.Option(
            help="its values, comma-separated (default: its default and points of its tuning range)"
        ),
    ] = None,
) -> None:
    """Explain one loss: what it computes, its options, and how to call it."""
    spec = find_spec(name)
    numbers = parse_values(values) if values is not None else None
    if plot is not None:
        from losskit.cli._curves import check_plot_request

        if values is not None and vary is None:
            die("--values needs --vary NAME: the hyper-parameter they belong to")
        with user_errors():
            check_plot_request(spec, plot, vary, numbers)
    elif vary is not None or values is not None:
        die("--vary and --values choose what --plot draws; give --plot FILE too")
    aliases = f"  (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
    console.print(f"[bold cyan]{spec.name}[/]  [dim]{spec.task}[/]{aliases}")
    console.print(spec.summary)
    console.print(Panel(spec.formula, title="formula (LaTeX)", expand=False))
    if spec.params:
        table = Table("option", "default", "valid", "tuning range", "meaning")
        for p in spec.params:
            rng = "" if p.low is None else f"[{p.low:g}, {p.high:g}]{' log' if p.log else ''}"
            table.add_row(p.name, repr(p.default), p.describe(), rng, p.doc)
        console.print(table)
    console.print(f"reference: {spec.reference_name or 'none'}")
    console.print(f"torch.compile: {spec.compile_summary()}")
    console.print(f"torch.autocast: {spec.autocast_summary()}")
    for paper in spec.papers:
        console.print(f"paper: {paper}")
    if spec.notes:
        console.print(spec.notes)
    console.print(Syntax(spec.torch_snippet(), "python", theme="ansi_dark"))
    for ex in spec.examples:
        value = spec.functional(*ex.args, **ex.kwargs).item()
        console.print(f"example: {ex.title} -> {value:.{ex.decimals}f}")
    if plot is not None:
        draw(spec, plot, vary, numbers)


def parse_values(values: str) -> list[float]:
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        die(f"--values is {values!r}; expected comma-separated numbers")
    if not numbers:
        die("--values is empty; expected comma-separated numbers")
    return numbers


def draw(spec: LossSpec, plot: Path, vary: str | None, numbers: list[float] | None) -> None:
    from losskit.cli._curves import plot_loss

    with user_errors():
        param, drawn = plot_loss(spec, plot, param_name=vary, values=numbers)
    shown = f" for {param} = {', '.join(f'{v:g}' for v in drawn)}" if drawn else ""
    console.print(f"plot: {plot} (loss and gradient{shown})", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("show")(show)
