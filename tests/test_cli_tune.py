"""``losskit tune``: Optuna studies over a loss's hyper-parameters, with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import losskit
from losskit.cli import app
from losskit.selection import DataError
from losskit.selection.tuning import (
    default_search_space,
    parse_param,
    sampler_seed,
    search_space,
    storage_label,
)

runner = CliRunner()
TINY = ("--epochs", "1", "--folds", "2")


def run(*args: str):
    return runner.invoke(app, ["tune", *args])


def write_csv(path: Path, rows: int = 48) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, 2))
    y = x @ np.array([2.0, -1.0]) + 0.1 * rng.normal(size=rows)
    path.write_text(
        "u,v,y\n" + "".join(f"{a:.4f},{b:.4f},{t:.4f}\n" for (a, b), t in zip(x, y, strict=True))
    )
    return path


def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def test_tune_huber_on_a_csv_writes_a_resumable_study(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    args = (
        "huber",
        str(data),
        "--target",
        "y",
        "--trials",
        "2",
        *TINY,
        "--storage",
        storage(tmp_path),
    )
    result = run(*args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "delta in [0.01, 10] (log)" in result.output  # the catalog's tuning range
    assert "study huber-data: 2 trials" in result.output and "best: huber:delta=" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "history.png",
        "params.png",
        "results.json",
        "results.md",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5_000
    document = json.loads((out / "results.json").read_text())
    assert document["metric"] == "mae" and document["direction"] == "minimize"
    assert 0.01 <= document["best"]["params"]["delta"] <= 10
    assert len(document["best"]["fold_values"]) == 2

    resumed = run(*args)
    assert resumed.exit_code == 0, resumed.output
    assert "4 trials (2 from earlier runs)" in resumed.output

    changed = run(*args[:-2], "--epochs", "2", "--storage", storage(tmp_path))
    assert changed.exit_code == 2
    assert "was run with other settings" in changed.output

    # another search space is another study: its trials would not be comparable
    narrowed = run(*args[:-2], "--param", "delta=0.5:2", "--storage", storage(tmp_path))
    assert narrowed.exit_code == 2
    assert "was run with other space" in narrowed.output


def test_tune_triplet_saves_distance_histograms(tmp_path):
    out = tmp_path / "triplet"
    result = run(
        "triplet",
        "--param",
        "margin=0.1:0.5",
        "--param",
        "miner=batch_hard,semi_hard",
        "--trials",
        "2",
        *TINY,
        "--storage",
        storage(tmp_path),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "digits_shifted" in result.output and "MAP@R" in result.output
    assert "held-out distances at the best parameters" in result.output
    distances = out / "distances.png"
    assert distances.read_bytes()[:4] == b"\x89PNG" and distances.stat().st_size > 5_000
    document = json.loads((out / "results.json").read_text())
    assert document["distances"]["positive"]["pairs"] > 1000
    assert document["best"]["params"]["miner"] in ("batch_hard", "semi_hard")


def test_tune_info_nce_searches_its_temperature_on_a_log_scale_within_the_catalog_bounds(tmp_path):
    out = tmp_path / "info_nce"
    result = run(
        "info_nce", "--trials", "2", *TINY, "--storage", storage(tmp_path), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    temperature = losskit.catalog["info_nce"].param("temperature")
    low, high = temperature.low, temperature.high
    assert f"temperature in [{low:g}, {high:g}] (log)" in result.output
    assert "digits_shifted" in result.output and "best: info_nce:temperature=" in result.output
    document = json.loads((out / "results.json").read_text())
    assert document["space"] == [
        {"name": "temperature", "kind": "float", "low": low, "high": high, "log": True}
    ]
    tried = [t["params"]["temperature"] for t in document["trials"]]
    assert len(tried) == 2 and len(set(tried)) == 2
    assert all(low <= t <= high for t in tried)
    assert all(0.0 <= t["value"] <= 1.0 for t in document["trials"])  # MAP@R of each trial


def test_every_temperature_and_logit_scale_is_searched_on_a_log_scale():
    """Read from the catalog: the contrastive losses' temperature and CLIP's / SigLIP's
    logit_scale are tuned over their declared bounds, log-spaced."""
    searched = 0
    for spec in losskit.catalog.specs():
        for param in default_search_space(spec):
            if param.name in ("temperature", "logit_scale"):
                declared = spec.param(param.name)
                assert (param.low, param.high, param.log) == (declared.low, declared.high, True)
                searched += 1
    assert searched >= 5  # info_nce, nt_xent, supcon, clip, siglip


def test_tune_a_segmentation_loss_on_the_segmentation_demo(tmp_path):
    result = run(
        "dice", "--trials", "1", "--epochs", "1", "--holdout", "0.3", "--storage", storage(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert "shapes_segmentation (segmentation)" in result.output
    assert "smooth in [0.001, 10] (log)" in result.output and "Dice" in result.output


def test_search_spaces():
    spec = losskit.catalog["focal"]
    assert [p.name for p in default_search_space(spec)] == ["gamma", "label_smoothing"]
    gamma = parse_param("gamma=0:5", spec)
    assert (gamma.kind, gamma.low, gamma.high, gamma.log) == ("float", 0.0, 5.0, False)
    assert parse_param("label_smoothing=0.01:0.2:log", spec).log
    # a fixed value keeps the catalog's other ranges; a range replaces them
    space = search_space(spec, ["alpha=class_balanced"])
    assert [(p.name, p.kind) for p in space] == [
        ("alpha", "fixed"),
        ("gamma", "float"),
        ("label_smoothing", "float"),
    ]
    assert [p.name for p in search_space(spec, ["gamma=1:3"])] == ["gamma"]
    miner = parse_param("miner=batch_all,semi_hard", losskit.catalog["triplet"])
    assert miner.kind == "choice" and miner.choices == ("batch_all", "semi_hard")
    assert parse_param("p=1:2", losskit.catalog["multi_margin"]).kind == "int"
    with pytest.raises(DataError, match="twice"):
        search_space(spec, ["gamma=1:2", "gamma=2:3"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hubber",), "no loss named 'hubber'"),
        (("huber", "--param", "gamma=0:1"), "'gamma' is unknown"),
        (("huber", "--param", "delta=2:0.5"), "empty range"),
        (("huber", "--param", "delta=1:1"), "empty range"),
        (("huber", "--param", "delta=-1:2"), "outside huber's delta"),
        (("quantile", "--param", "q=0.1:1.5"), "outside quantile's q"),
        (("triplet", "--param", "margin=-0.5:1"), "outside triplet's margin"),
        (("triplet", "--param", "miner=batch_hard,best"), "outside triplet's miner"),
        (("huber", "--param", "delta=0:2:log"), "log range needs LOW > 0"),
        (("huber", "--param", "delta=a:b"), "must be numbers"),
        (("huber", "--param", "delta"), "expected NAME=LOW:HIGH"),
        (("multi_margin", "--param", "p=1:2.5"), "whole LOW and HIGH"),
        (("mse",), "mse has no hyper-parameter with a tuning range"),
        (("ctc",), "cannot train any of the demos' models"),
        (("focal", "--task", "regression"), "cannot train a regression model"),
        (("huber", "--trials", "0"), "--trials is 0"),
        (("huber", "--storage", "nosuchdb://x/y"), "cannot open --storage nosuchdb://x/y"),
        (("huber", "--storage", "sqlite:////no/such/dir/s.db"), "does not exist"),
        (("huber", "{missing}", "--target", "y"), "no such file"),
        (("huber", "{data}", "--target", "price"), "'price' is not a column"),
        (("huber", "--rank-by", "auc"), "--rank-by is 'auc'"),
        (("huber", "--worker", "1000"), "--worker is 1000; expected an integer from 0 to 999"),
        (("huber", "--worker", "-1"), "--worker is -1"),
        # output places are checked before the study is opened: no .db is left behind
        (("huber", "--out", "/proc/losskit-study"), "cannot write in /proc"),
        (("huber", "--out", "{data}/study"), "is a file, not a directory"),
        (("huber", "--out", "/dev/null/study"), "/dev/null is a file, not a directory"),
        (("huber", "--out", "{nonempty}"), "is not empty"),
        (("huber", "--force"), "--force applies to --out"),
        (("huber", "--holdout", "0.2"), "two ways to split"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    nonempty = tmp_path / "nonempty"
    nonempty.mkdir()
    (nonempty / "keep.txt").write_text("mine")
    paths = {
        "data": write_csv(tmp_path / "data.csv"),
        "missing": tmp_path / "nope.csv",
        "nonempty": nonempty,
    }
    filled = [a.format(**paths) for a in args]
    if "--storage" not in filled:
        filled += ["--storage", storage(tmp_path)]
    result = run(*filled, *TINY, "--trials", "1") if "--trials" not in filled else run(*filled)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "studies.db").exists()  # nothing ran, no study was made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "nonempty"]
    assert [p.name for p in nonempty.iterdir()] == ["keep.txt"]


def test_ctrl_c_keeps_finished_trials_and_writes_no_report(tmp_path, monkeypatch):
    import losskit.selection.tuning as tuning

    calls = []
    real = tuning.train_fold

    def interrupt_second_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # two folds of the first trial finish
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "train_fold", interrupt_second_trial)
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    result = run(
        "huber",
        str(data),
        "--target",
        "y",
        "--trials",
        "3",
        *TINY,
        "--storage",
        storage(tmp_path),
        "--out",
        str(out),
    )
    assert result.exit_code == 130
    assert "interrupted: finished trials are kept" in result.output
    assert not out.exists()
    import optuna

    study = optuna.load_study(study_name="huber-data", storage=storage(tmp_path))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]


def test_sampler_seeds_of_workers_and_resumed_runs_differ():
    # worker 0 keeps the single-machine sequence: seed + trials already in the study
    assert sampler_seed(5, 0, 0) == 5 and sampler_seed(5, 0, 3) == 8
    seeds = {sampler_seed(0, w, done) for w in range(50) for done in range(200)}
    assert len(seeds) == 50 * 200
    assert all(0 <= s < 2**32 for s in seeds)
    assert sampler_seed(2**32 - 1, 999, 10**5) < 2**32


def test_storage_label_hides_only_the_password():
    assert storage_label("postgresql://me:pw@db.lan:5432/studies") == (
        "postgresql://me:***@db.lan:5432/studies"
    )
    assert storage_label("postgresql://db.lan/studies") == "postgresql://db.lan/studies"
    assert storage_label("sqlite:///studies.db") == "sqlite:///studies.db"


def test_a_second_process_on_the_same_worker_number_is_warned_about(tmp_path, monkeypatch):
    """Two processes left at --worker 0 draw from the same sampler seed: the report says so."""
    import threading

    import optuna

    import losskit.selection.tuning as tuning

    data = write_csv(tmp_path / "data.csv")
    args = ("huber", str(data), "--target", "y", *TINY, "--storage", storage(tmp_path))
    assert run(*args, "--trials", "1").exit_code == 0
    study = optuna.load_study(study_name="huber-data", storage=storage(tmp_path))
    twin = study.ask({"delta": optuna.distributions.FloatDistribution(0.01, 10.0, log=True)})
    twin.set_user_attr("worker", 0)
    monkeypatch.setattr(tuning, "WAIT_FOR_OTHERS", 10.0)
    # it ends while this run waits for it, so it is in the report
    finisher = threading.Timer(0.5, lambda: study.tell(twin, 5.0))
    finisher.start()
    try:
        result = run(*args, "--trials", "1")
    finally:
        finisher.join()
    assert result.exit_code == 0, result.output
    assert "study huber-data: 3 trials (2 from earlier runs)" in result.output
    assert "another process also ran as --worker 0" in result.output


def test_a_storage_lost_mid_study_exits_2_with_one_line(tmp_path, monkeypatch):
    import optuna
    import sqlalchemy.exc

    def server_gone(self, *args, **kwargs):
        raise sqlalchemy.exc.OperationalError(
            "UPDATE trials", {}, Exception("server closed the connection unexpectedly")
        )

    monkeypatch.setattr(optuna.study.Study, "optimize", server_gone)
    out = tmp_path / "report"
    result = run("huber", *TINY, "--trials", "1", "--storage", storage(tmp_path), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: lost --storage {storage(tmp_path)}: server closed the connection unexpectedly; "
        "its finished trials are kept there"
    )
    assert "Traceback" not in result.output and not out.exists()


def test_a_non_empty_output_directory_needs_force(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ("huber", str(data), "--target", "y", "--trials", "1", *TINY, "--out", str(out))
    refused = run(*args, "--storage", storage(tmp_path))
    assert refused.exit_code == 2 and "--force" in refused.output
    assert not (tmp_path / "studies.db").exists()
    result = run(*args, "--storage", storage(tmp_path), "--force")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "history.png",
        "notes.txt",
        "params.png",
        "results.json",
        "results.md",
    ]
