"""The explaining commands (list, show, eval, tour, --version), driven through typer's CliRunner
at 80 columns: what a newcomer's terminal, or any pipe, gives them."""

from __future__ import annotations

import re
import sys

import pytest
from typer.testing import CliRunner

import losskit
from losskit.cli import app
from losskit.cli.show import fit_code, keras_snippet

runner = CliRunner()
WIDTH = 80


def run(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": str(WIDTH)})


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip().startswith(f"losskit {losskit.__version__} (torch ")


def test_list_prints_one_line_per_loss_within_80_columns():
    result = run("list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    names = [
        line.split()[0] for line in lines if line.split() and line.split()[0] in losskit.catalog
    ]
    assert names == list(losskit.catalog)  # every loss once, on its own line, in catalog order
    mse = next(line for line in lines if line.startswith("mse "))
    assert "regression" in mse and "Mean squared error" in mse
    result = run("list", "--task", "classification")
    assert "cross_entropy" in result.output and "huber" not in result.output
    assert "dice" not in result.output.split()  # a segmentation loss
    result = run("list", "--task", "segmentation")
    listed = {line.split()[0] for line in result.output.splitlines() if line.split()}
    assert {s.name for s in losskit.catalog.specs("segmentation")} <= listed
    assert "dice" in listed and "cross_entropy" not in listed
    assert run("list", "--task", "vision").exit_code == 2


def test_show_prints_formula_options_snippets_and_example():
    result = run("show", "huber")
    assert result.exit_code == 0
    for text in (
        "delta = 1.0",
        "tuning range [0.01, 10] (log)",
        "losskit.HuberLoss(delta=1.0)",
        "LK.HuberLoss()",
        "0.239",
        "torch.nn.functional.huber_loss",
    ):
        assert text in result.output


def test_show_prints_latex_as_written():
    """rich markup would take ``[y_i ... ]`` for a style tag and print ``\\ell_i = -``."""
    result = run("show", "bce")
    assert result.exit_code == 0
    assert losskit.catalog["bce"].formula in result.output


def code_blocks(output: str) -> dict[str, str]:
    """The PyTorch and Keras snippets of ``show``'s output: the lines after each heading up to
    the next blank line that is followed by text that is not code."""
    blocks, current, lines = {}, None, []
    for line in output.splitlines():
        if line in ("PyTorch:", "Keras 3 (pip install 'losskit[keras]'):"):
            if current:
                blocks[current] = "\n".join(lines).strip()
            current, lines = line.split()[0].rstrip(":"), []
        elif current and (line.startswith("example:") or line.startswith("plot:")):
            blocks[current] = "\n".join(lines).strip()
            current = None
        elif current:
            lines.append(line)
    if current:
        blocks[current] = "\n".join(lines).strip()
    return blocks


@pytest.mark.parametrize("name", ["focal", "triplet", "dice", "cross_entropy", "welsch"])
def test_snippets_are_whole_valid_python_within_80_columns(name):
    result = run("show", name)
    assert result.exit_code == 0, result.output
    blocks = code_blocks(result.output)
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    expected = {"PyTorch", "Keras"} if name in gather(FAMILIES) else {"PyTorch"}
    assert set(blocks) == expected
    for code in blocks.values():
        assert code.count("\n") >= 4
        compile(code, "<snippet>", "exec")  # whole: nothing cropped mid-call
        assert all(len(line) <= WIDTH for line in code.splitlines())
    spec = losskit.catalog[name]
    for p in spec.params:
        if p.default is not None:
            assert f"{p.name}={p.default!r}" in blocks["PyTorch"]


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "bce_with_logits", "welsch", "triplet"])
def test_keras_snippet_calls_the_twin(name):
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    twin = gather(FAMILIES)[name]
    snippet = keras_snippet(losskit.catalog[name])
    compile(snippet, "<keras>", "exec")
    assert f"LK.{twin.keras}(" in snippet
    assert f"LF.{losskit.catalog[name].functional.__name__}(" in snippet
    if name in ("cross_entropy", "bce_with_logits"):  # logits in PyTorch: logits in Keras
        assert "from_logits=True" in snippet
    if name == "welsch":
        assert 'alpha=float("-inf")' in snippet


def test_every_twin_gets_a_keras_snippet_and_others_none():
    from losskit._twins import gather
    from losskit.losses import FAMILIES

    twins = gather(FAMILIES)
    for spec in losskit.catalog.specs():
        snippet = keras_snippet(spec)
        assert (snippet is not None) == (spec.name in twins), spec.name
    result = run("show", "ctc")
    assert result.exit_code == 0 and "Keras" not in result.output


def test_fit_code_breaks_only_long_calls():
    short = "loss = LF.mse_loss(input, target)"
    assert fit_code(short, 80) == short
    long = "criterion = losskit.X(a='x, y', b=[1, 2], c=f(3, 4))  # why"
    assert fit_code(long, 30).splitlines() == [
        "criterion = losskit.X(",
        "    a='x, y',",
        "    b=[1, 2],",
        "    c=f(3, 4),",
        ")  # why",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("huber", "-i", "0.2,0.3,-0.5,0.1,1.5", "-t", "0,0,0,0,0", "--opt", "delta=1"), "0.239"),
        (("bce", "-i", "0.8,0.3,0.1,0.6", "-t", "1,0,0,1"), "0.2990"),
        (("ce", "-i", "2,1,0.1", "-t", "0"), "0.417"),
        (("ce", "-i", "2,1,0.1;0,0,5", "-t", "0,2", "--reduction", "none"), "per element"),
        (("mse", "-i", "310000,190000", "-t", "300000,200000"), "1e+08"),
        (("kl_div", "-i", "-1.0986123,-1.0986123,-1.0986123", "-t", "0.36,0.48,0.16"), "0.08529"),
        (("hinge", "-i", "0.3,0.5", "-t", "1,-1", "--opt", "squared=true"), "1.3"),
        (("welsch", "-i", "2", "-t", "0"), "0.864665"),
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
        (("huber", "-i", "1", "-t", "1", "--opt", "delta=1", "--opt", "delta=2"), "delta twice"),
        (("huber", "-i", "1", "-t", "1", "--opt", "delta=nan"), "not NaN"),
        (("hinge", "-i", "1", "-t", "1", "--opt", "squared=maybe"), "expected true or false"),
        (("mse", "-i", "1", "-t", "1", "--reduction", "avg"), "reduction is 'avg'"),
        (("ce", "-i", "1,2", "-t", "0.5"), "expected whole numbers"),
        (("nope", "-i", "1", "-t", "1"), "no loss named 'nope'"),
        (("ctc", "-i", "1", "-t", "1"), "ctc takes 4: log_probs, targets, input_lengths"),
        # the numbers are values the CLI checks (full checks), not only shapes
        (("ce", "-i", "2,1,0.1;0,0,5", "-t", "0,7"), "class indices in [0, 7]"),
        (("bce", "-i", "1.2,0.3", "-t", "1,0"), "expected values in [0, 1]"),
        (("mse", "-i", "1,nan,3", "-t", "1,2,3"), "--input holds nan"),
        (("mse", "-i", "1,2", "-t", "inf,2"), "--target holds inf"),
        (("mse", "-i", "1e39", "-t", "1"), "within float32's range"),
        (("mse", "-i", "1e30", "-t", "-1e30"), "is not finite"),
    ],
)
def test_eval_bad_input_exits_2_with_one_line(args, message):
    result = run("eval", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_tour_computes_every_example_one_line_each():
    result = run("tour")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert all(len(line) <= WIDTH for line in lines), max(lines, key=len)
    examples = [line for line in lines if re.search(r"\s(ok|MISMATCH)\s", line)]
    assert len(examples) == sum(len(s.examples) for s in losskit.catalog.specs())
    assert "MISMATCH" not in result.output and "0.528" in result.output


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("sklearn", ("compare",), "scikit-learn"),
        ("optuna", ("tune", "huber"), "optuna"),
        ("matplotlib", ("show", "huber", "--plot", "{tmp}/h.png"), "matplotlib"),
    ],
)
def test_a_missing_extra_names_the_install_command(tmp_path, monkeypatch, module, args, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an install without the extra has
    result = run(*(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 2, result.output
    assert extra in result.output and "pip install 'losskit[cli]'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_explaining_commands_need_no_extra(monkeypatch):
    """A plain ``pip install losskit`` (torch, numpy, typer, rich): list, show, eval and tour
    work without matplotlib, scikit-learn and optuna."""
    for module in ("matplotlib", "sklearn", "optuna"):
        monkeypatch.setitem(sys.modules, module, None)
    for args in (
        ("list",),
        ("show", "triplet"),
        ("eval", "huber", "-i", "0.2,0.3,-0.5,0.1,1.5", "-t", "0,0,0,0,0"),
        ("tour",),
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
