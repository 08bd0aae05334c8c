"""``losskit eval NAME --input ... --target ...``: a loss on numbers typed by hand."""

from __future__ import annotations

from typing import Annotated

import torch
import typer

from losskit._catalog import LossSpec
from losskit.cli._common import console, die, find_spec, user_errors


def parse_tensor(text: str, what: str) -> torch.Tensor:
    """``"0.8,0.3"`` is a vector, ``"2,1,0.1;0.5,2,0"`` a matrix (rows split by ';')."""
    rows = [r for r in text.replace(" ", "").split(";")]
    try:
        values = [[float(v) for v in row.split(",")] for row in rows]
    except ValueError:
        die(f"{what} is {text!r}; expected comma-separated numbers, rows separated by ';'")
    if len({len(r) for r in values}) != 1:
        die(f"{what} is {text!r}; expected rows of equal length")
    tensor = torch.tensor(values if len(values) > 1 else values[0], dtype=torch.float32)
    return tensor


def parse_option(text: str, spec: LossSpec) -> tuple[str, object]:
    if "=" not in text:
        die(f"--opt is {text!r}; expected NAME=VALUE, e.g. delta=1.0")
    key, value = text.split("=", 1)
    with user_errors():
        spec.param(key)
    try:
        number = float(value)
    except ValueError:
        die(f"--opt {key} is {value!r}; expected a number")
    return key, int(number) if number.is_integer() and key.endswith("index") else number


def as_target(target: torch.Tensor, input: torch.Tensor, spec: LossSpec) -> torch.Tensor:
    """Class-index losses take integer targets unless the target has the input's shape."""
    if spec.target_kind == "class_index" and target.shape != input.shape:
        if not torch.equal(target, target.round()):
            die(f"--target of {spec.name} holds class indices; expected whole numbers")
        return target.long()
    return target


def evaluate(
    name: Annotated[str, typer.Argument(help="loss name or alias")],
    input: Annotated[str, typer.Option("--input", "-i", help="e.g. 0.8,0.3 or 2,1;0,3")],
    target: Annotated[str, typer.Option("--target", "-t", help="e.g. 1,0")],
    opt: Annotated[
        list[str] | None, typer.Option("--opt", "-o", help="hyper-parameter NAME=VALUE")
    ] = None,
    reduction: Annotated[
        str | None, typer.Option(help="mean, sum, none (default: the loss's own default)")
    ] = None,
) -> None:
    """Compute a loss on numbers typed by hand."""
    spec = find_spec(name)
    if len(spec.inputs) != 2:
        die(
            f"losskit eval takes losses of two inputs (--input, --target); {spec.name} takes "
            f"{len(spec.inputs)}: {', '.join(spec.inputs)}. Call losskit.functional from Python"
        )
    x = parse_tensor(input, "--input")
    if spec.target_kind == "class_index" and x.dim() == 1:
        x = x.unsqueeze(0)  # one row of class scores
    y = as_target(parse_tensor(target, "--target"), x, spec)
    options = dict(parse_option(o, spec) for o in opt or [])
    if reduction is not None:
        options["reduction"] = reduction
    with user_errors():
        value = spec.functional(x, y, **options)
    if value.dim() == 0:
        console.print(f"{spec.name} = {value.item():.6g}")
    else:
        console.print(f"{spec.name} (per element) = {value.tolist()}")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
