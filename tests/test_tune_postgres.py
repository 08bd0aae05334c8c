"""``losskit tune --storage postgresql://...`` against a real PostgreSQL server that this module
starts itself (``initdb`` + ``pg_ctl`` in a temporary directory, a free localhost port), as
several machines would share one study: concurrent workers, resuming, unreachable servers, wrong
passwords. The server is stopped and its directory removed at the end, whatever happens.

PostgreSQL's server binaries must be installed (``.ci/run`` makes sure of it): without them these
tests fail rather than skip, since the promise they check would otherwise go untested."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from losskit.cli import app
from losskit.selection import tuning

PASSWORD = "s3cret-pw"
TINY = ("--epochs", "1", "--folds", "2")
runner = CliRunner()


def pg_binary(name: str) -> str:
    """Debian keeps the server binaries off PATH (in /usr/lib/postgresql/N/bin)."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed; .ci/run installs it "
            "(apt-get install postgresql)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    directory: Path

    def url(
        self, database: str = "postgres", password: str = PASSWORD, port: int | None = None
    ) -> str:
        return f"postgresql://losskit:{password}@127.0.0.1:{port or self.port}/{database}"

    def new_database(self, name: str) -> str:
        """An empty database, as a first worker on a new server finds it: the URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    # initdb refuses to run as root: as root, the server runs as an unprivileged system user
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        name = next(n for n in ("postgres", "nobody") if _user_exists(n))
        owner = pwd.getpwnam(name)
        as_user = ["runuser", "-u", name, "--"]
    directory = Path(tempfile.mkdtemp(prefix="losskit-pg-"))
    data = directory / "data"
    started = False
    try:
        pwfile = directory / "password"
        pwfile.write_text(PASSWORD + "\n")
        if owner is not None:
            for path in (directory, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [
                *as_user,
                initdb,
                "-D",
                str(data),
                "-U",
                "losskit",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",  # so that a wrong password is refused
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for _ in range(3):  # another process may take the free port before the server does
            port = free_port()
            options = (
                f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            run = subprocess.run(
                [
                    *as_user,
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(directory / "log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                ],
                capture_output=True,
                timeout=90,
            )
            started = run.returncode == 0
            if started:
                break
        if not started:
            log = (directory / "log").read_text(errors="replace")[-2000:]
            pytest.fail(f"PostgreSQL did not start:\n{log}", pytrace=False)
        yield Server(port, directory)
    finally:
        if started or (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
            _kill_leftover(data / "postmaster.pid")
        shutil.rmtree(directory, ignore_errors=True)
        assert not directory.exists()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _kill_leftover(pidfile: Path) -> None:
    """The server this fixture started, should ``pg_ctl stop`` have failed to stop it."""
    if pidfile.exists():
        pid = int(pidfile.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):  # it stopped after all
            os.kill(pid, signal.SIGKILL)


def write_csv(path: Path, rows: int = 48) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 2))
    y = x @ np.array([2.0, -1.0]) + 0.1 * rng.normal(size=rows)
    path.write_text(
        "u,v,y\n" + "".join(f"{a:.4f},{b:.4f},{t:.4f}\n" for (a, b), t in zip(x, y, strict=True))
    )
    return path


def tune_args(data: Path, url: str, study: str, trials: int, *extra: str) -> list[str]:
    return [
        "tune",
        "huber",
        str(data),
        "--target",
        "y",
        *TINY,
        "--trials",
        str(trials),
        "--storage",
        url,
        "--study",
        study,
        *extra,
    ]


BEST = re.compile(r"best: huber:delta=(\S+)\s+\(MAE ([0-9.]+)\)")
COUNTS = re.compile(r"study \S+: (\d+) trials")


def test_two_workers_at_once_share_one_study_and_resume(postgres, tmp_path):
    data = write_csv(tmp_path / "data.csv")
    url = postgres.new_database("shared")  # both workers find no Optuna tables yet
    # wide enough that rich keeps each report line on one line
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    workers = {
        w: subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from losskit.cli import main; main()",
                *tune_args(
                    data, url, "shared", 4, "--worker", str(w), "--out", str(tmp_path / f"w{w}")
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for w in (1, 2)
    }
    outputs = {}
    try:
        for w, process in workers.items():
            outputs[w], _ = process.communicate(timeout=240)
    finally:
        for process in workers.values():  # a hung worker must not outlive the test
            if process.poll() is None:
                process.kill()
                process.wait()
    for w, process in workers.items():
        assert process.returncode == 0, outputs[w]
        assert PASSWORD not in outputs[w] and "losskit:***@" in outputs[w]

    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials()
    # nothing lost, nothing run twice: 4 + 4 trials numbered 0..7, each finished once
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.user_attrs["worker"] for t in trials) == [1] * 4 + [2] * 4
    # distinct sampler seeds: the two workers did not propose the same values
    assert len({t.params["delta"] for t in trials}) == 8
    by_number = {t.number: t for t in trials}

    saw_everything = 0
    for w, output in outputs.items():
        report = json.loads((tmp_path / f"w{w}" / "results.json").read_text())
        seen = [t for t in report["trials"] if t["state"] == "complete"]
        # the report is the whole study as the worker last read it, values as stored
        for t in seen:
            assert t["value"] == pytest.approx(by_number[t["number"]].value, rel=1e-12)
        best = min(seen, key=lambda t: (t["value"], t["number"]))
        assert report["best"]["number"] == best["number"]
        delta, value = BEST.search(output).groups()
        assert float(value) == pytest.approx(report["best"]["value"], abs=5e-5)
        assert float(delta) == pytest.approx(report["best"]["params"]["delta"], rel=1e-3)
        others = sum(t["worker"] != w for t in seen)
        assert report["other_workers_trials"] == others
        assert int(COUNTS.search(output).group(1)) == len(seen)
        if others:
            assert f"({others} from other workers)" in output
        if len(seen) == 8:
            # the worker that reported last read every trial: its best is the study's best
            saw_everything += 1
            assert report["best"]["number"] == study.best_trial.number
            assert report["best"]["value"] == pytest.approx(study.best_value, rel=1e-12)
    assert saw_everything >= 1

    # a resumed worker continues the numbering and counts who ran what
    resumed = runner.invoke(app, tune_args(data, url, "shared", 2, "--worker", "1"))
    assert resumed.exit_code == 0, resumed.output
    assert "10 trials (4 from earlier runs, 4 from other workers)" in resumed.output
    numbers = [t.number for t in study.get_trials() if t.user_attrs["worker"] == 1]
    assert sorted(numbers)[-2:] == [8, 9]


def test_a_finished_worker_waits_for_other_workers_running_trials(postgres, tmp_path, monkeypatch):
    data = write_csv(tmp_path / "data.csv")
    url = postgres.new_database("waiting")
    first = runner.invoke(app, tune_args(data, url, "waiting", 1, "--worker", "2"))
    assert first.exit_code == 0, first.output
    study = optuna.load_study(study_name="waiting", storage=url)
    distribution = optuna.distributions.FloatDistribution(0.01, 10.0, log=True)
    # another worker's trial in flight, which ends while this worker waits, with the best value
    flying = study.ask({"delta": distribution})
    flying.set_user_attr("worker", 7)
    # and one whose worker was killed: RUNNING for ever, waited for only WAIT_FOR_OTHERS
    abandoned = study.ask({"delta": distribution})
    abandoned.set_user_attr("worker", 8)
    monkeypatch.setattr(tuning, "WAIT_FOR_OTHERS", 3.0)
    finisher = threading.Timer(1.0, lambda: study.tell(flying, 0.0))
    finisher.start()
    try:
        started = time.perf_counter()
        result = runner.invoke(app, tune_args(data, url, "waiting", 1, "--worker", "2"))
        elapsed = time.perf_counter() - started
    finally:
        finisher.join()
    assert result.exit_code == 0, result.output
    assert 2.5 < elapsed < 15, elapsed  # WAIT_FOR_OTHERS for the abandoned trial
    assert "study waiting: 3 trials (1 from earlier runs, 1 from other workers)" in result.output
    assert "1 more still running on other workers" in result.output
    assert "MAE 0.0000" in result.output
    assert BEST.search(result.output).group(1) == f"{flying.params['delta']:.4g}"


@pytest.mark.parametrize("failure", ["wrong password", "nothing listens", "silent server"])
def test_unreachable_server_or_wrong_password_exits_2_fast(postgres, tmp_path, failure):
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    with socket.socket() as silent:
        if failure == "wrong password":
            url, expected = postgres.url(password="wrong"), "password authentication failed"
        elif failure == "nothing listens":
            url, expected = postgres.url(port=free_port()), "Connection refused"
        else:  # accepts TCP connections and never answers: only the connect timeout ends it
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = postgres.url(port=silent.getsockname()[1])
            expected = "timeout"
        started = time.perf_counter()
        result = runner.invoke(app, tune_args(data, url, f"fail-{failure}", 1, "--out", str(out)))
        elapsed = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    assert elapsed < tuning.CONNECT_TIMEOUT + 5, elapsed
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: cannot open --storage postgresql://losskit:***@")
    assert expected in lines[0].lower() if expected == "timeout" else expected in lines[0]
    assert "wrong" not in result.output and PASSWORD not in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # no partial report


def test_missing_driver_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what a plain install without it sees
    result = runner.invoke(
        app,
        tune_args(
            write_csv(tmp_path / "data.csv"),
            "postgresql://me:pw@127.0.0.1:1/db",
            "nodriver",
            1,
        ),
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        "error: cannot open --storage postgresql://me:***@127.0.0.1:1/db: the PostgreSQL "
        "driver (psycopg) is not installed; pip install 'losskit[postgres]'"
    )


def test_workers_opening_a_new_database_together_all_get_the_study(postgres):
    """Optuna creates its tables on first use; workers started together race to do it, and
    the losers used to fail with PostgreSQL's duplicate key in pg_type."""
    from losskit.selection import primary_metric

    url = postgres.new_database("race")
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def open_as(worker: int) -> None:
        barrier.wait()
        try:
            study = tuning.open_study(
                url, "race", primary_metric("regression"), {"a": 1}, 0, worker
            )
            outcomes.append(study.study_name)
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=open_as, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == ["race"] * 4
    assert len(optuna.get_all_study_summaries(url)) == 1
