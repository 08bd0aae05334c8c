"""``losskit compare`` and the selection machinery behind it, driven through the CLI with tiny
settings (one or two epochs, two folds, small CSV files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import losskit
from losskit.cli import app
from losskit.cli.compare import candidate_tasks
from losskit.selection import (
    DataError,
    adapter_for,
    compatible_losses,
    demo,
    embedding_metrics,
    infer_task,
    load_csv,
    make_splits,
    parse_candidate,
    task_metrics,
)
from losskit.selection.candidates import build_loss, make_views, resolve_options
from losskit.selection.metrics import METRICS, curve_metric

runner = CliRunner()
TINY = ("--epochs", "2", "--folds", "2")


def run(*args: str):
    return runner.invoke(app, ["compare", *args])


def write_csv(path: Path, rows: int = 60, *, task: str = "regression", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    if task == "regression":
        y = [f"{v:.4f}" for v in x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=rows)]
    else:
        labels = np.array(["cat", "dog", "owl"])
        y = list(labels[np.argmax(x, axis=1)])
    lines = [
        "a,b,c,y",
        *(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t}" for r, t in zip(x, y, strict=True)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def metric_cells(output: str) -> list[str]:
    """The table rows without the time column (which differs between runs)."""
    rows = [line for line in output.splitlines() if "±" in line and line.split()[0].isdigit()]
    return [line.rsplit("±", 1)[0] + "±" for line in rows]


def test_csv_regression_ranks_candidates_and_writes_the_report(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    result = run(
        str(data), "--target", "y", "--losses", "mse,l1,huber:delta=0.5", *TINY, "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "task: regression (inferred" in result.output
    for label in ("mse", "l1", "huber:delta=0.5", "MAE", "RMSE", "median AE"):
        assert label in result.output
    assert "report:" in result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["data-curves.png", "data-metrics.png", "results.json", "results.md"]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    document = json.loads((out / "results.json").read_text())
    (experiment,) = document["experiments"]
    assert experiment["dataset"]["task"] == "regression"
    assert experiment["rank_by"] == "mae"
    ranking = experiment["ranking"]
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    maes = [r["mean"]["mae"] for r in ranking]
    assert maes == sorted(maes)
    assert len(ranking[0]["folds"]) == 2 and len(ranking[0]["folds"][0]["train_loss"]) == 2
    assert "| 1 |" in (out / "results.md").read_text()
    assert sorted(document["files"]) == files  # what a later --force may replace
    assert not list(tmp_path.glob(".losskit-*"))


def test_tables_are_deterministic_for_a_seed(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    args = (str(data), "--target", "y", "--losses", "mse,cauchy,adaptive_robust", *TINY)
    first, second = run(*args, "--seed", "3"), run(*args, "--seed", "3")
    assert first.exit_code == 0 and second.exit_code == 0
    assert metric_cells(first.output) == metric_cells(second.output)
    assert len(metric_cells(first.output)) == 3
    assert "adaptive_robust learned alpha" in first.output
    other = run(*args, "--seed", "4")
    assert metric_cells(other.output) != metric_cells(first.output)


def test_csv_classification_runs_every_compatible_loss(tmp_path):
    data = write_csv(tmp_path / "labels.csv", rows=90, task="classification")
    out = tmp_path / "report"
    result = run(
        str(data),
        "--target",
        "y",
        "--epochs",
        "1",
        "--holdout",
        "0.3",
        "--hidden",
        "8",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "task: classification" in result.output and "macro-F1" in result.output
    # every catalog loss that can train a classifier is a default candidate: class-index
    # losses on logits, binary ones one-vs-rest, nll and bce through their input transform
    ranking = json.loads((out / "results.json").read_text())["experiments"][0]["ranking"]
    losses = {r["loss"] for r in ranking}
    assert losses == set(compatible_losses("classification"))
    assert {"nll", "bce", "sigmoid_focal", "hinge", "focal", "cross_entropy"} <= losses
    assert "linear_cross_entropy" not in losses  # takes hidden states, not logits
    assert all(not r["diverged"] for r in ranking)


def test_demos_regression_and_classification_tiny():
    result = run(
        "--task",
        "classification",
        "--epochs",
        "1",
        "--folds",
        "2",
        "--losses",
        "cross_entropy,cross_entropy:weight=balanced,focal:alpha=class_balanced",
    )
    assert result.exit_code == 0, result.output
    assert "digits_imbalanced" in result.output
    assert len(metric_cells(result.output)) == 3


def test_embedding_demo_reports_retrieval_and_both_baselines(tmp_path):
    out = tmp_path / "emb"
    result = run(
        "--losses",
        "triplet:miner=batch_hard,cosine_embedding,triplet_margin:margin=0.2",
        "--epochs",
        "1",
        "--folds",
        "2",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "digits_shifted" in result.output  # the demo inferred from the losses
    assert "recall@1" in result.output and "MAP@R" in result.output
    assert "(input features, untrained)" in result.output
    assert "(untrained model)" in result.output
    experiment = json.loads((out / "results.json").read_text())["experiments"][0]
    assert 0.15 < experiment["baseline"]["mean"]["map_at_r"] < 0.3
    assert len(experiment["untrained_model"]["folds"]) == 2


def test_the_embedding_demo_shows_metric_learning_at_work(tmp_path):
    """What make run shows: on digits never seen in training, the trained embedding retrieves
    better (MAP@R, the ranking metric) than the pixels and than the model before training, in
    every fold (the README has the figures over seeds and every candidate)."""
    out = tmp_path / "emb"
    result = run(
        "--task", "embedding", "--quick", "--losses", "triplet:miner=batch_all", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    experiment = json.loads((out / "results.json").read_text())["experiments"][0]
    (trained,) = experiment["ranking"]
    pixels = experiment["baseline"]["folds"]
    untrained = experiment["untrained_model"]["folds"]
    assert len(trained["folds"]) == len(pixels) == len(untrained) == 3
    # seed 0 measured: trained 0.315, 0.243, 0.285; pixels 0.237, 0.182, 0.258; untrained
    # 0.217, 0.175, 0.230
    for fold, pixel, start in zip(trained["folds"], pixels, untrained, strict=True):
        assert fold["metrics"]["map_at_r"] > pixel["map_at_r"] + 0.02
        assert fold["metrics"]["map_at_r"] > start["map_at_r"] + 0.04


def test_segmentation_demo_runs_every_default_candidate_and_writes_its_report(tmp_path):
    out = tmp_path / "seg"
    result = run("--task", "segmentation", "--epochs", "1", "--holdout", "0.3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "shapes_segmentation" in result.output and "Dice" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "results.json",
        "results.md",
        "shapes_segmentation-curves.png",
        "shapes_segmentation-metrics.png",
    ]
    experiment = json.loads((out / "results.json").read_text())["experiments"][0]
    assert experiment["dataset"]["task"] == "segmentation" and experiment["rank_by"] == "dice"
    assert experiment["dataset"]["image_shape"] == [1, 32, 32]
    ranking = experiment["ranking"]
    labels = [r["label"] for r in ranking]
    assert sorted(labels) == sorted(
        parse_candidate(text).label for text in demo("shapes_segmentation").default_candidates
    )
    dice = [r["mean"]["dice"] for r in ranking]
    assert dice == sorted(dice, reverse=True)
    for r in ranking:
        assert len(r["folds"]) == 1 and not r["diverged"]
        for fold in r["folds"]:
            for key in ("dice", "iou"):
                assert 0.0 <= fold["metrics"][key] <= 1.0
            assert fold["metrics"]["iou"] <= fold["metrics"]["dice"] + 1e-12  # IoU <= Dice
            assert len(fold["held_out"]) == 1
    markdown = (out / "results.md").read_text()
    assert "## shapes_segmentation (segmentation)" in markdown and "| Dice ↑ |" in markdown


def test_segmentation_is_chosen_by_its_losses_and_class_weights_count_pixels():
    assert candidate_tasks("dice,lovasz_hinge") == "segmentation"
    assert candidate_tasks("cross_entropy,dice") == "segmentation"
    # losses that train both a classifier and a segmenter keep the classification demo
    assert candidate_tasks("cross_entropy,focal") == "classification"
    masks = np.array([[[0, 0], [0, 1]], [[0, 0], [0, 2]]])
    weights = resolve_options(parse_candidate("cross_entropy:weight=balanced"), masks, 3)
    assert torch.allclose(weights["weight"], torch.tensor([8 / 18, 8 / 3, 8 / 3]))


def test_contrastive_losses_train_in_the_embedding_demo(tmp_path):
    """Every contrastive entry is a default candidate of the embedding demo; the two-view ones
    (info_nce, clip, siglip) train on augmented views, the label ones (nt_xent, supcon) on the
    labels, and all of them leave numbers, not NaN."""
    contrastive = [
        s.name
        for s in losskit.catalog.specs("embedding")
        if s.functional.__module__.startswith("losskit.losses.contrastive")
        and adapter_for(s, "embedding") is not None
    ]
    assert {"info_nce", "nt_xent", "supcon", "clip", "siglip"} <= set(contrastive)
    assert set(contrastive) <= set(demo("digits_shifted").default_candidates)
    out = tmp_path / "contrastive"
    result = run("--quick", "--epochs", "1", "--losses", ",".join(contrastive), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "digits_shifted" in result.output  # the demo inferred from the losses
    experiment = json.loads((out / "results.json").read_text())["experiments"][0]
    untrained = experiment["untrained_model"]["folds"]
    assert {r["label"] for r in experiment["ranking"]} == set(contrastive)
    for r in experiment["ranking"]:
        assert len(r["folds"]) == 3 and not r["diverged"], r["label"]
        for fold, start in zip(r["folds"], untrained, strict=True):
            assert 0.0 <= fold["metrics"]["recall_at_1"] <= 1.0
            assert 0.0 <= fold["metrics"]["map_at_r"] <= 1.0
            assert all(np.isfinite(fold["train_loss"]))
            # training moved the embedding away from where every candidate starts
            assert fold["metrics"]["map_at_r"] != start["map_at_r"], r["label"]


def test_two_view_losses_see_two_augmented_views():
    for name in ("info_nce", "clip", "siglip"):
        assert adapter_for(losskit.catalog[name], "embedding") == "views"
    for name in ("nt_xent", "supcon"):
        assert adapter_for(losskit.catalog[name], "embedding") == "labels"
    x = torch.randn(5, 4)
    views = make_views(x, torch.Generator().manual_seed(0))
    assert views.shape == (10, 4)
    assert not torch.equal(views[:5], views[5:]) and not torch.equal(views[:5], x)
    assert torch.equal(views, make_views(x, torch.Generator().manual_seed(0)))
    assert 0 < (views == 0).float().mean() < 0.5  # some features dropped, most kept
    loss = build_loss(parse_candidate("info_nce:temperature=0.5"), "embedding", np.zeros(5), 0)
    embeddings = torch.nn.functional.normalize(torch.randn(10, 3), dim=1)
    torch.testing.assert_close(
        loss(embeddings, torch.zeros(5)),
        losskit.functional.info_nce_loss(embeddings[:5], embeddings[5:], temperature=0.5),
    )


def test_a_non_empty_output_directory_needs_force(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = (str(data), "--target", "y", "--losses", "mse", *TINY, "--out", str(out))
    refused = run(*args)
    assert refused.exit_code == 2
    assert "is not empty (1 entry: notes.txt)" in refused.output and "--force" in refused.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    assert run(*args, "--force").exit_code == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "results.json").exists()
    # a later report replaces the earlier one's files, even those it does not write itself
    (out / "data-curves.png").rename(out / "old-curves.png")
    document = json.loads((out / "results.json").read_text())
    document["files"].append("old-curves.png")
    (out / "results.json").write_text(json.dumps(document))
    assert run(*args, "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "data-curves.png",
        "data-metrics.png",
        "notes.txt",
        "results.json",
        "results.md",
    ]


@pytest.mark.parametrize("where", ["training", "writing"])
def test_ctrl_c_leaves_no_report(tmp_path, monkeypatch, where):
    import losskit.selection.report as report
    import losskit.selection.training as training

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "training":
        monkeypatch.setattr(training, "train_fold", interrupt)
    else:
        monkeypatch.setattr(report, "plot_metric_bars", interrupt)
    data = write_csv(tmp_path / "data.csv")
    out = tmp_path / "report"
    result = run(str(data), "--target", "y", "--losses", "mse", *TINY, "--out", str(out))
    assert result.exit_code == 130
    assert "interrupted" in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "binary": b"\x00\x01\x02PK\x03\x04" * 20,
        "ragged": b"a,b,y\n1,2,3\n4,5\n",
        "header_only": b"a,b,y\n",
        "text_feature": b"a,b,y\n1,paris,3\n4,5,6\n7,8,9\n",
        "missing_feature": b"a,b,y\n1,,3\n4,5,6\n7,8,9\n",
        "nan_target": b"a,b,y\n1,2,3\n4,5,nan\n7,8,9\n",
        "one_class": b"a,b,y\n1,2,x\n4,5,x\n7,8,x\n",
        "text_target": b"a,b,y\n1,2,3\n4,5,six\n7,8,9\n",
        "duplicate_header": b"a,b,a,y\n1,2,3,4\n5,6,7,8\n",
        "stray_text": b"a,y\n" + b"".join(b"%d,%d.5\n" % (i, i) for i in range(30)) + b"9,abc\n",
        "continuous": b"a,y\n" + b"".join(b"%d,%d.25\n" % (i, i) for i in range(30)),
        "singletons": b"a,y\n1,1\n2,1\n3,2\n4,3\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_bytes(content)
    return paths


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{missing}", "--target", "y"), "no such file"),
        (("{binary}", "--target", "y"), "binary data"),
        (("{ragged}", "--target", "y"), "line 3 has 2 fields"),
        (("{header_only}", "--target", "y"), "expected a header line and data lines"),
        (("{good}", "--target", "price"), "'price' is not a column"),
        (("{good}", "--target", "y", "--features", "a,z"), "'z' is not a column"),
        (("{text_feature}", "--target", "y"), "non-numeric value ('paris' on line 2)"),
        (("{missing_feature}", "--target", "y"), "missing or non-finite value on line 2"),
        (("{nan_target}", "--target", "y"), "missing or NaN on line 3"),
        (("{one_class}", "--target", "y"), "single class ('x')"),
        (("{text_target}", "--target", "y", "--task", "regression"), "regression expects numbers"),
        (("{good}",), "--target is missing"),
        (("{good}", "--target", "y", "--losses", "mse,hubber"), "no loss named 'hubber'"),
        (("{good}", "--target", "y", "--losses", "huber:gamma=2"), "'gamma' is unknown"),
        (("{good}", "--target", "y", "--losses", "huber:delta=-1"), "delta is -1"),
        (("{good}", "--target", "y", "--losses", "focal"), "cannot train a regression model"),
        (("{good}", "--target", "y", "--losses", "mse,mse"), "names mse twice"),
        (("{good}", "--target", "y", "--folds", "1"), "--folds is 1"),
        (("{good}", "--target", "y", "--holdout", "1.5"), "--holdout is 1.5"),
        (("{good}", "--target", "y", "--task", "ranking"), "--task is 'ranking'"),
        (("{good}", "--target", "y", "--rank-by", "auc"), "--rank-by is 'auc'"),
        (("{good}", "--target", "y", "--hidden", "8,x"), "--hidden is '8,x'"),
        (("{good}", "--target", "y", "--epochs", "0"), "--epochs is 0"),
        (("--target", "y"), "--target and --features describe a CSV"),
        (("--losses", "mse,focal"), "fit different demos"),
        (("--losses", "dice,triplet"), "fit different demos"),
        (("{good}", "--target", "y", "--task", "segmentation"), "trains on images and masks"),
        (("--task", "segmentation", "--losses", "multi_margin"), "cannot train a segmentation"),
        (("--task", "segmentation", "--losses", "dice+dice"), "adds a loss to itself"),
        (("--task", "embedding", "--losses", "info_nce+triplet"), "two-view loss adds only"),
        (("--losses", "ctc"), "ctc cannot train any"),
        (("{good}", "--target", "y", "--out", "{good}"), "is a file"),
        (("{good}", "--target", "y", "--out", "{good}/report"), "is a file, not a directory"),
        (("{good}", "--target", "y", "--out", "/dev/null/report"), "is a file, not a directory"),
        (("{good}", "--target", "y", "--out", "/proc/losskit-report"), "cannot write in /proc"),
        (("{good}", "--target", "y", "--out", "{nonempty}"), "is not empty"),
        (("{good}", "--target", "y", "--force"), "--force applies to --out"),
        (("{duplicate_header}", "--target", "y"), "names column 'a' twice (columns 1 and 3)"),
        (("{good}", "--target", "y", "--features", "a,b,a"), "--features names 'a' twice"),
        (("{good}", "--target", "y", "--losses", "huber,huber:delta=1"), "names huber twice"),
        (("{good}", "--target", "y", "--losses", "l1,mae"), "names l1 twice"),
        (("{good}", "--target", "y", "--holdout", "0.2", "--folds", "3"), "two ways to split"),
        (("{stray_text}", "--target", "y"), "holds 'abc' on line 32 among numbers"),
        (("{continuous}", "--target", "y", "--task", "embedding"), "expects class labels"),
        (("{singletons}", "--target", "y", "--task", "embedding"), "2 of 3 labels on a single"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    nonempty = tmp_path / "nonempty"
    nonempty.mkdir()
    (nonempty / "keep.txt").write_text("mine")
    paths = {
        **bad_files(tmp_path),
        "good": write_csv(tmp_path / "good.csv"),
        "missing": tmp_path / "nope.csv",
        "nonempty": nonempty,
    }
    out = tmp_path / "out"
    filled = [a.format(**paths) for a in args]
    if "--out" not in filled and "--force" not in filled:
        filled += ["--out", str(out)]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    split = () if "--holdout" in filled or "--folds" in filled else ("--folds", "2")
    result = run("--epochs", "2", *split, *filled)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no report, no staging dir


# ------------------------------------------------------------------------- the machinery


def test_infer_task():
    assert infer_task(["1", "2", "1", "0"]) == "classification"
    assert infer_task(["cat", "dog"]) == "classification"
    assert infer_task(["0.5", "1.25", "3"]) == "regression"


def test_demo_transforms_touch_training_rows_only():
    data = demo("diabetes_outliers")
    split = make_splits(data, folds=3)[0]
    rng = np.random.default_rng(0)
    _, y = data.training_transform(data.features[split.train], data.target[split.train], rng)
    moved = np.abs(y - data.target[split.train]) > 0
    assert moved.sum() == round(0.1 * len(split.train))
    assert (np.abs(y - data.target[split.train])[moved] >= 5 * data.target[split.train].std()).all()

    digits = demo("digits_imbalanced")
    split = make_splits(digits, folds=3)[0]
    _, y = digits.training_transform(digits.features[split.train], digits.target[split.train], rng)
    counts = np.bincount(y, minlength=10)
    assert (counts[5:] * 5 < counts[:5].min()).all()
    # held-out rows keep every class at its natural size
    assert np.bincount(digits.target[split.test]).min() > 50


def test_embedding_folds_hold_out_whole_classes():
    data = demo("digits_shifted")
    for split in make_splits(data, folds=3, seed=1):
        assert not set(data.target[split.train]) & set(data.target[split.test])
        assert len(set(data.target[split.test])) >= 3


def test_class_weight_options_come_from_the_training_counts():
    target = np.array([0] * 90 + [1] * 10)
    balanced = resolve_options(parse_candidate("cross_entropy:weight=balanced"), target, 2)
    assert torch.allclose(balanced["weight"], torch.tensor([100 / 180, 100 / 20]))
    cb = resolve_options(parse_candidate("focal:alpha=class_balanced:cb_beta=0.9"), target, 2)
    assert cb["alpha"][1] > cb["alpha"][0] and "cb_beta" not in cb
    with pytest.raises(DataError, match="per-class options"):
        parse_candidate("huber:delta=balanced")


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_curve_metrics_agree_with_scikit_learn(task):
    rng = np.random.default_rng(0)
    if task == "regression":
        target, prediction = rng.normal(size=50), rng.normal(size=50)
    else:
        target, prediction = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    reference = task_metrics(task, target, prediction)
    for m in METRICS[task]:
        assert curve_metric(task, m.key, target, prediction) == pytest.approx(reference[m.key])


def test_embedding_metrics():
    labels = np.repeat(np.arange(4), 5)
    separated = np.eye(4)[labels] + 0.01 * np.random.default_rng(0).normal(size=(20, 4))
    assert embedding_metrics(separated, labels) == {"recall_at_1": 1.0, "map_at_r": 1.0}
    # query 0's nearest other row is of another class; MAP@R counts the ranks of the others
    points = np.array([[0.0], [0.1], [0.25], [1.0], [1.1]])
    scores = embedding_metrics(points, np.array([0, 1, 0, 1, 1]))
    assert scores["recall_at_1"] == pytest.approx(2 / 5)
    # only the two rows at 1.0 and 1.1 find their class first; each then meets a 0 at rank 2
    assert scores["map_at_r"] == pytest.approx((0.5 + 0.5) / 5)


def test_load_csv_with_semicolons_and_chosen_features(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("a;b;noise;y\n1;2;9;0\n3;4;9;1\n5;6;9;0\n7;8;9;1\n")
    data = load_csv(path, target="y", features=["a", "b"])
    assert data.task == "classification" and data.features.shape == (4, 2)
    assert data.classes == ("0", "1")
