"""What the commands share: the consoles, and the bad-input contract.

Every user error (a bad number, an unknown loss, a shape that does not fit, a path that cannot
be written, a missing optional dependency) ends the same way: one line on stderr, exit code 2,
no traceback, and nothing written. Checks run before any output and any work.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from losskit._catalog import LossSpec
from losskit._registry import get_catalog

console = Console()
err_console = Console(stderr=True)

#: the optional dependencies of the commands that train or plot, by import name: what the
#: ``cli`` extra installs
EXTRAS: dict[str, str] = {
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
    "optuna": "optuna",
}


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
        die(first_line(exc))


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (torch's messages can span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require(command: str, *modules: str) -> None:
    """Exit 2 with the install command if an optional dependency of ``command`` is missing.

    Checked by looking the modules up, not importing them: the check costs nothing, and
    the heavy imports happen where they are used."""
    missing = [EXTRAS.get(m, m) for m in modules if not _importable(m)]
    if missing:
        die(
            f"{command} needs {' and '.join(missing)}, not installed here; "
            "pip install 'losskit[cli]'"
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken entry
        return False


def find_spec(name: str) -> LossSpec:
    with user_errors():
        return get_catalog()[name]


def check_output_file(path: Path, option: str) -> Path:
    """Exit 2 unless a file can be written at ``path`` (before any work: see
    :mod:`losskit.selection.paths`); the path made absolute."""
    from losskit.selection.paths import check_output_file as check

    with user_errors():
        return check(path, option)


def check_output_dir(out: Path, *, force: bool = False) -> Path:
    """Exit 2 unless ``out`` can become a report directory (new, empty, or any with
    ``force``)."""
    from losskit.selection.paths import check_output_dir as check

    with user_errors():
        return check(out, force=force)


def refuse_duplicates(option: str, names: list[str]) -> None:
    """Exit 2 if ``option`` names something twice."""
    duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if duplicate is not None:
        die(f"{option} names {duplicate} twice; expected each once")
