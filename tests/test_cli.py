"""The first CLI commands, driven through typer's CliRunner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from losskit.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_list_shows_every_loss_and_filters_by_task():
    import losskit

    result = run("list")
    assert result.exit_code == 0
    for name in losskit.catalog:
        assert name in result.output
    result = run("list", "--task", "classification")
    assert "cross_entropy" in result.output and "huber" not in result.output
    assert run("list", "--task", "vision").exit_code == 2


def test_show_prints_formula_options_snippet_and_example():
    result = run("show", "huber")
    assert result.exit_code == 0
    for text in (
        "delta",
        "losskit.HuberLoss(delta=1.0)",
        "0.239",
        "torch.nn.functional.huber_loss",
    ):
        assert text in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("huber", "-i", "0.2,0.3,-0.5,0.1,1.5", "-t", "0,0,0,0,0", "--opt", "delta=1"), "0.239"),
        (("bce", "-i", "0.8,0.3,0.1,0.6", "-t", "1,0,0,1"), "0.2990"),
        (("ce", "-i", "2,1,0.1", "-t", "0"), "0.417"),
        (("ce", "-i", "2,1,0.1;0,0,5", "-t", "0,2", "--reduction", "none"), "per element"),
        (("mse", "-i", "310000,190000", "-t", "300000,200000"), "1e+08"),
        (("kl_div", "-i", "-1.0986123,-1.0986123,-1.0986123", "-t", "0.36,0.48,0.16"), "0.08529"),
    ],
)
def test_eval_computes(args, expected):
    result = run("eval", *args)
    assert result.exit_code == 0, result.output
    assert expected in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mse", "-i", "1,x", "-t", "1,2"), "expected comma-separated numbers"),
        (("mse", "-i", "1,2", "-t", "1"), "mse_loss: target has shape (1,)"),
        (("mse", "-i", "1,2;3", "-t", "1,2"), "rows of equal length"),
        (("huber", "-i", "1", "-t", "1", "--opt", "delta=-2"), "delta is -2.0"),
        (("huber", "-i", "1", "-t", "1", "--opt", "gamma=2"), "hyper-parameter 'gamma' is unknown"),
        (("huber", "-i", "1", "-t", "1", "--opt", "delta"), "expected NAME=VALUE"),
        (("mse", "-i", "1", "-t", "1", "--reduction", "avg"), "reduction is 'avg'"),
        (("ce", "-i", "1,2", "-t", "0.5"), "expected whole numbers"),
        (("nope", "-i", "1", "-t", "1"), "no loss named 'nope'"),
        (("ctc", "-i", "1", "-t", "1"), "ctc takes 4: log_probs, targets, input_lengths"),
    ],
)
def test_eval_bad_input_exits_2_with_one_line(args, message):
    result = run("eval", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_tour_computes_every_example():
    result = run("tour")
    assert result.exit_code == 0
    assert "MISMATCH" not in result.output and "0.528" in result.output
