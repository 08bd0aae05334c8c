"""The background load of ``losskit bench --background-load N``: busy processes that start, run
and stop whatever ends the measurement, even a harness killed without cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from losskit.bench import BackgroundLoad


def _gone(pid: int) -> bool:
    """Exited: no process, or a zombie waiting for a parent that is not ours to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_gone(pids: list[int], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_processes_run_and_stop():
    with BackgroundLoad(2) as load:
        assert load.alive() == 2
        procs = list(load._procs)
        time.sleep(0.3)
    assert all(p.poll() is not None for p in procs)
    assert load.summary["processes"] == 2 and load.summary["wall_s"] >= 0.3
    if sys.platform.startswith("linux"):  # /proc: the spinners really used the CPU
        assert load.summary["cpu_s"] > 0


def test_stopped_when_the_block_raises():
    with pytest.raises(KeyError), BackgroundLoad(1) as load:
        (proc,) = load._procs
        raise KeyError("the measurement failed")
    assert proc.poll() is not None


def test_no_load_starts_nothing():
    with BackgroundLoad(0) as load:
        assert load.alive() == 0
    assert load.summary == {"processes": 0}
    with pytest.raises(ValueError, match="background load is -1"):
        BackgroundLoad(-1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_spinners_stop_when_the_harness_is_killed():
    """SIGKILL runs no ``finally``: the spinners notice they lost their parent and exit."""
    code = (
        "import os, signal, sys\n"
        "from losskit.bench import BackgroundLoad\n"
        "load = BackgroundLoad(2).start()\n"
        "print(' '.join(str(p.pid) for p in load._procs), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2, proc.stderr
    assert _wait_gone(pids), f"spinners {pids} still running after their parent was killed"


def test_a_spinner_whose_parent_died_before_it_started_exits():
    """The parent's pid is the spinner's argument: one re-parented before its first line ran
    (its harness killed at once) sees another parent and exits, instead of spinning on."""
    from losskit.bench.load import SPIN

    not_its_parent = os.getpid() + 1_000_000  # no process has this pid
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SPIN, str(not_its_parent)], timeout=30, check=False
    )
    assert proc.returncode == 0
