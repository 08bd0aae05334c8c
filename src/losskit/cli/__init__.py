"""The ``losskit`` command line: one file per command, registered on one typer app.

Errors a user can cause (a bad number, an unknown loss, a shape that does not fit) end with
exit code 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import typer

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

for command in (list_cmd, show_cmd, eval_cmd, tour_cmd, bench_cmd):
    command.register(app)
for command in (compare_cmd, tune_cmd):
    command.register(app)


def main() -> None:
    app()
