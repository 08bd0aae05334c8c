"""``losskit show NAME``: formula, options, references, PyTorch and Keras snippets, worked
examples, and with ``--plot`` the loss and its gradient.

Everything the user typed is checked before the first line is printed. Text from the catalog
(summaries, LaTeX formulas with ``[...]``, option descriptions) is printed as text, never as rich
markup, and the snippets are printed whole and unadorned, wrapped as Python (one argument per
line) where a call would not fit the terminal, so they can be copied as they are.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.padding import Padding
from rich.text import Text

from losskit._catalog import LossSpec
from losskit.cli._common import (
    check_output_file,
    console,
    die,
    find_spec,
    refuse_duplicates,
    require,
    user_errors,
)


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
    """Explain one loss: what it computes, its options, and how to call it (PyTorch and, where
    it has a twin, Keras)."""
    spec = find_spec(name)
    numbers = parse_values(values) if values is not None else None
    if plot is not None:
        require("losskit show --plot", "matplotlib")
        from losskit.cli._curves import check_plot_request

        if values is not None and vary is None:
            die("--values needs --vary NAME: the hyper-parameter they belong to")
        with user_errors():
            check_plot_request(spec, plot, vary, numbers)
        check_output_file(plot, "--plot")
    elif vary is not None or values is not None:
        die("--vary and --values choose what --plot draws; give --plot FILE too")
    explain(spec)
    if plot is not None:
        draw(spec, plot, vary, numbers)


def explain(spec: LossSpec) -> None:
    width = console.width
    aliases = f"  (aliases: {', '.join(spec.aliases)})" if spec.aliases else ""
    console.print(
        Text.assemble((spec.name, "bold cyan"), "  ", (spec.task, "dim"), aliases),
        highlight=False,
    )
    console.print(Text(spec.summary), highlight=False)
    console.print()
    console.print("formula (LaTeX):", style="bold", highlight=False)
    # one line, never wrapped by rich: copied from the terminal, it is the formula as written
    console.print(Text(spec.formula), soft_wrap=True, highlight=False)
    if spec.params:
        console.print()
        print_options(spec)
    console.print()
    console.print(Text(f"reference: {spec.reference_name or 'none'}"), highlight=False)
    console.print(Text(f"torch.compile: {spec.compile_summary()}"), highlight=False)
    console.print(Text(f"torch.autocast: {spec.autocast_summary()}"), highlight=False)
    for paper in spec.papers:
        console.print(Text(f"paper: {paper}"), highlight=False)
    if spec.notes:
        console.print(Text(spec.notes), highlight=False)
    console.print()
    console.print("PyTorch:", style="bold", highlight=False)
    print_code(fit_code(spec.torch_snippet(), width))
    keras = keras_snippet(spec)
    if keras is not None:
        console.print()
        console.print(
            Text("Keras 3 (pip install 'losskit[keras]'):", style="bold"), highlight=False
        )
        print_code(fit_code(keras, width))
    if spec.examples:
        console.print()
    for ex in spec.examples:
        value = spec.functional(*ex.args, **ex.kwargs).item()
        console.print(Text(f"example: {ex.title} -> {value:.{ex.decimals}f}"), highlight=False)


def print_options(spec: LossSpec) -> None:
    """One block per option: ``name = default``, then, indented, its meaning, its valid
    values and its tuning range. A list rather than a table: at 80 columns a five-column table cuts
    descriptions short or breaks them a word per line; this never cuts anything."""
    console.print("options:", style="bold", highlight=False)
    for p in spec.params:
        # an option whose description already lists its values does not repeat them
        valid = p.describe()
        facts = [f"valid: {valid}"] if valid and valid != p.doc else []
        if p.low is not None:
            facts.append(f"tuning range [{p.low:g}, {p.high:g}]{' (log)' if p.log else ''}")
        # Text, not markup: "[0.01, 10]" and "'a' or [x, y]" are printed as written
        console.print(Text.assemble("  ", (p.name, "bold"), f" = {p.default!r}"), highlight=False)
        for line in (p.doc, "; ".join(facts)):
            if line:
                console.print(Padding(Text(line), (0, 0, 0, 6), expand=False), highlight=False)


def print_code(code: str) -> None:
    """Code as plain text: no panel, no highlighting, no cropping, so a copy pastes as is."""
    for line in code.splitlines():
        console.print(Text(line), soft_wrap=True, highlight=False)


# ------------------------------------------------------------------------------ snippets


def _split_arguments(text: str) -> list[str]:
    """``text`` (the inside of a call's parentheses) split at its top-level commas."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def fit_code(code: str, width: int) -> str:
    """Each line that is a call wider than ``width`` rewritten with one argument per line
    (still valid Python: what a formatter would print)."""
    lines = []
    for line in code.splitlines():
        match = re.fullmatch(r"(\s*)(.*?\()(.*)\)(\s*(#.*)?)", line)
        if len(line) <= width or match is None:
            lines.append(line)
            continue
        indent, head, inner, tail = match.group(1), match.group(2), match.group(3), match.group(4)
        arguments = _split_arguments(inner)
        if not arguments:
            lines.append(line)
            continue
        lines.append(f"{indent}{head}")
        lines += [f"{indent}    {a}," for a in arguments]
        lines.append(f"{indent}){tail.rstrip()}")
    return "\n".join(lines)


def _python(value: Any) -> str:
    """``value`` as Python source (``float("-inf")``, not ``-inf``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


def keras_snippet(spec: LossSpec) -> str | None:
    """The Keras twin's call, from its golden cases (so the snippet is a tested pair): the
    plainest case, with ``from_logits=True`` when the PyTorch loss takes logits; ``None``
    when the loss has no twin."""
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    twin = gather(FAMILIES).get(spec.name)
    if twin is None:
        return None
    base = set(twin.cases[0].config) - {"from_logits"}
    plain = [
        c
        for c in twin.cases
        if set(c.config) - {"from_logits"} <= base
        and not ({"mask", "sample_weight"} & set(c.inputs))
    ] or [twin.cases[0]]
    case = plain[0]
    if spec.input_space == "raw":
        case = next((c for c in plain if c.config.get("from_logits")), case)
    config = ", ".join(f"{k}={_python(v)}" for k, v in case.config.items())
    torch_call = re.sub(r"\bloss\(", f"LF.{spec.functional.__name__}(", case.torch)
    return (
        "import losskit.keras as LK\n\n"
        f"loss_fn = LK.{twin.keras}({config})\n"
        'model.compile(optimizer="adam", loss=loss_fn)\n'
        "loss = loss_fn(y_true, y_pred)\n"
        f"# the same number as PyTorch's {torch_call}"
    )


# ---------------------------------------------------------------------------------- plots


def parse_values(values: str) -> list[float]:
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        die(f"--values is {values!r}; expected comma-separated numbers")
    if not numbers:
        die("--values is empty; expected comma-separated numbers")
    bad = next((v for v in numbers if not math.isfinite(v)), None)
    if bad is not None:
        die(f"--values holds {bad}; expected finite numbers")
    refuse_duplicates("--values", [f"{v:g}" for v in numbers])
    return numbers


def draw(spec: LossSpec, plot: Path, vary: str | None, numbers: list[float] | None) -> None:
    from losskit.cli._curves import plot_loss

    with user_errors():
        param, drawn = plot_loss(spec, plot, param_name=vary, values=numbers)
    shown = f" for {param} = {', '.join(f'{v:g}' for v in drawn)}" if drawn else ""
    console.print(f"plot: {plot} (loss and gradient{shown})", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("show")(show)
