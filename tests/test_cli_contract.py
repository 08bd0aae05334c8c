"""The bad-input contract of every command, checked on the real script in a subprocess (what
a shell sees, not what typer's test runner reports): exit code 2, one line on stderr that
starts with ``error:``, nothing on stdout, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: the console script beside this interpreter (an editable install has it), else the module
SCRIPT = Path(sys.executable).with_name("losskit")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "losskit.cli"]


def losskit(*args: str, cwd: Path, python: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("LOSSKIT_CHECKS", None)  # the contract holds at the default check level
    command = [*COMMAND, *args] if python is None else [sys.executable, "-c", python, *args]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def assert_refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A working directory with one CSV file in it: whatever else appears was written."""
    rows = "".join(f"{i % 7},{(i * 3) % 5},{i * 0.5}\n" for i in range(40))
    (tmp_path / "data.csv").write_text("a,b,y\n" + rows)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--task", "vision"), "--task is 'vision'"),
        (("show", "huber", "--plot", "h.png", "--vary", "delta", "--values", "-1,2"), "delta"),
        (("eval", "ce", "--input", "2,1,0.1;0,0,5", "--target", "0,7"), "class indices"),
        (("tour", "--bogus"), "No such option: --bogus"),
        (("compare", "data.csv", "--target", "y", "--out", "/proc/losskit-x"), "/proc"),
        (("tune", "huber", "data.csv", "--target", "y", "--out", "data.csv/x"), "is a file"),
        (("bench", "no_such_loss"), "no loss named 'no_such_loss'"),
        # the output places are checked before any timing, not after it
        (("bench", "mse", "--quick", "--json", "/proc/losskit-x/r.json"), "--json"),
        (("bench", "mse", "--quick", "--md", "data.csv/r.md"), "is a file"),
        (("bench", "mse", "--quick", "--plots", "/proc/losskit-y"), "--plots"),
    ],
    ids=["list", "show", "eval", "tour", "compare", "tune", "bench", "json", "md", "plots"],
)
def test_every_command_refuses_bad_input_with_one_line_and_exit_2(place, args, message):
    before = sorted(p.name for p in place.iterdir())
    assert_refused(losskit(*args, cwd=place), message)
    assert sorted(p.name for p in place.iterdir()) == before  # no plot, report or study .db


def test_version_and_a_plain_command_succeed(place):
    version = losskit("--version", cwd=place)
    assert version.returncode == 0 and version.stdout.startswith("losskit ")
    result = losskit("eval", "huber", "-i", "0.2,0.3,-0.5,0.1,1.5", "-t", "0,0,0,0,0", cwd=place)
    assert result.returncode == 0 and result.stdout.strip() == "huber = 0.239"


def test_a_missing_extra_is_one_line_naming_the_install(place):
    """Without scikit-learn (an install without the ``cli`` extra), compare says what to
    install instead of failing on an import."""
    blocked = (
        "import sys; sys.modules['sklearn'] = None; sys.argv[0] = 'losskit'; "
        "from losskit.cli import main; main()"
    )
    result = losskit("compare", cwd=place, python=blocked)
    assert_refused(result, "pip install 'losskit[cli]'")
