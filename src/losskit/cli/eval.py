"""``losskit eval NAME --input ... --target ...``: a loss on numbers typed by hand.

The numbers are the user's, so they are checked as values, not only as shapes: NaN and
infinity are refused when parsed, and the loss runs under ``losskit.checks("full")`` (class
indices in range, probabilities in [0, 1]), which turns what would be a kernel's assertion
or a silent NaN into the loss's own one-line message.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
import typer

from losskit._catalog import LossSpec
from losskit.cli._common import (
    console,
    die,
    find_spec,
    first_line,
    refuse_duplicates,
    user_errors,
)

_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def parse_tensor(text: str, what: str) -> torch.Tensor:
    """``"0.8,0.3"`` is a vector, ``"2,1,0.1;0.5,2,0"`` a matrix (rows split by ';'); every
    number finite and within float32's range."""
    rows = text.replace(" ", "").split(";")
    try:
        values = [[float(v) for v in row.split(",")] for row in rows]
    except ValueError:
        die(f"{what} is {text!r}; expected comma-separated numbers, rows separated by ';'")
    if len({len(r) for r in values}) != 1:
        die(f"{what} is {text!r}; expected rows of equal length")
    for row in values:
        for v in row:
            if not math.isfinite(v):
                die(f"{what} holds {v}; expected finite numbers")
            if abs(v) > _FLOAT32_MAX:
                die(f"{what} holds {v:g}; expected numbers within float32's range (±3.4e38)")
    return torch.tensor(values if len(values) > 1 else values[0], dtype=torch.float32)


def parse_option(text: str, spec: LossSpec) -> tuple[str, Any]:
    """``NAME=VALUE``: a number, or for a boolean option true/false, or for a named option
    (``miner=semi_hard``) the name; the loss validates the value itself."""
    if "=" not in text:
        die(f"--opt is {text!r}; expected NAME=VALUE, e.g. delta=1.0")
    key, value = (part.strip() for part in text.split("=", 1))
    with user_errors():
        param = spec.param(key)
    default = param.default
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            die(f"--opt {key} is {value!r}; expected true or false")
        return key, value.lower() == "true"
    if isinstance(default, str):
        return key, value
    try:
        number = float(value)
    except ValueError:
        die(f"--opt {key} is {value!r}; expected a number")
    if math.isnan(number):
        die(f"--opt {key} is {value!r}; expected a number, not NaN")
    integer = isinstance(default, int) or key.endswith("index")
    return key, int(number) if integer and number.is_integer() else number


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
    """Compute a loss on numbers typed by hand (values checked: NaN, infinity, class
    indices out of range and probabilities outside [0, 1] are refused)."""
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
    parsed = [parse_option(o, spec) for o in opt or []]
    refuse_duplicates("--opt", [key for key, _ in parsed])
    options = dict(parsed)
    if reduction is not None:
        options["reduction"] = reduction
    import losskit

    with user_errors(), losskit.checks("full"):
        try:
            value = spec.functional(x, y, **options)
        except (RuntimeError, IndexError) as exc:
            # what the loss's own checks did not catch, torch's kernels did: still the
            # user's numbers, still one line
            die(f"{spec.name}: {first_line(exc)}")
    if not bool(torch.isfinite(value).all()):
        die(
            f"{spec.name} of these numbers is not finite ({value.tolist()}): they overflow "
            "float32; use smaller numbers"
        )
    if value.dim() == 0:
        console.print(f"{spec.name} = {value.item():.6g}", highlight=False)
    else:
        console.print(f"{spec.name} (per element) = {value.tolist()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
