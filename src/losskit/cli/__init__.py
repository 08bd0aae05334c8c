"""The ``losskit`` command line: one file per command, registered on one typer app.

Errors a user can cause (a bad number, an unknown loss, a shape that does not fit, a path that
cannot be written, a missing optional dependency) end with exit code 2 and one line on stderr,
never a traceback, and before anything is written (see :mod:`losskit.cli._common`).

typer and rich are dependencies of losskit itself, so ``list``, ``show``, ``eval`` and ``tour``
work after a plain ``pip install losskit``; ``compare``, ``tune`` and ``show --plot`` need the
``cli`` extra and say so.
"""

from __future__ import annotations

import sys
from typing import Annotated

try:
    import typer
except ImportError:  # pragma: no cover - typer is a dependency; a broken install lacks it
    sys.stderr.write(
        "error: the losskit command needs typer and rich, which are not installed; "
        "pip install 'losskit[cli]'\n"
    )
    raise SystemExit(2) from None

from rich.markup import escape

from losskit.cli import bench as bench_cmd
from losskit.cli import compare as compare_cmd
from losskit.cli import eval as eval_cmd
from losskit.cli import list as list_cmd
from losskit.cli import show as show_cmd
from losskit.cli import tour as tour_cmd
from losskit.cli import tune as tune_cmd

app = typer.Typer(
    name="losskit",
    help="Explain, evaluate, compare, tune and benchmark deep-learning losses.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        import torch

        from losskit import __version__

        typer.echo(f"losskit {__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            help="print losskit's version and exit",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Explain, evaluate, compare, tune and benchmark deep-learning losses."""


for command in (list_cmd, show_cmd, eval_cmd, tour_cmd, bench_cmd):
    command.register(app)
for command in (compare_cmd, tune_cmd):
    command.register(app)


#: click's usage error (an unknown option, a missing or malformed value), found through
#: typer's public ``BadParameter``: typer vendors its own click, whose module is private
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


def main() -> None:
    """The ``losskit`` script: usage errors (an unknown option, a missing value) keep the
    contract too, one line and exit 2, instead of click's boxed usage message."""
    from losskit.cli._common import err_console

    if len(sys.argv) <= 1:
        app()  # no arguments: the help, as click prints it
        return
    try:
        code = app(standalone_mode=False)
    except _UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "losskit"
        message = exc.format_message()  # type: ignore[attr-defined]
        err_console.print(
            f"[bold red]error:[/] {escape(message)} (see {escape(where)} --help)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except typer.Abort:  # Ctrl-C outside the commands' own handling
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
