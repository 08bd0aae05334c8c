"""What the commands share: the console, and turning user errors into exit code 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from losskit._catalog import LossSpec
from losskit._registry import get_catalog

console = Console()
err_console = Console(stderr=True)


def die(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    # messages quote user input and commands such as pip install 'losskit[postgres]': text,
    # not rich markup, which would swallow the brackets
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Report ``ValueError``/``KeyError`` (``LossInputError`` included) as one line, exit 2."""
    try:
        yield
    except KeyError as exc:
        die(str(exc.args[0]) if exc.args else str(exc))
    except ValueError as exc:
        die(str(exc))


def find_spec(name: str) -> LossSpec:
    with user_errors():
        return get_catalog()[name]
