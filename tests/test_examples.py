"""Smoke tests of the scripts in examples/: each runs (with fewer epochs) and prints its result."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("linear_regression_mse.py", ["--epochs", "3"], "largest difference from least squares"),
        ("cnn_classification_ce.py", ["--epochs", "1"], "held-out accuracy"),
        ("triplet_digits.py", ["--epochs", "1"], "held-out digits 7-9, trained model"),
        ("focal_imbalanced.py", ["--epochs", "1"], "class-balanced alpha"),
    ],
)
def test_example_runs(script, args, expected, monkeypatch, capsys):
    path = EXAMPLES / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    runpy.run_path(str(path), run_name="__main__")
    assert expected in capsys.readouterr().out


def test_linear_regression_reaches_least_squares(monkeypatch, capsys):
    path = EXAMPLES / "linear_regression_mse.py"
    monkeypatch.setattr(sys, "argv", [str(path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "largest difference from least squares 0.00" in out


def test_triplet_example_beats_the_pixels_and_the_untrained_model(monkeypatch, capsys):
    """The example's point, as the docs report it: on digits 7-9, never seen in training,
    the trained embedding's MAP@R is above both baselines."""
    path = EXAMPLES / "triplet_digits.py"
    monkeypatch.setattr(sys, "argv", [str(path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out

    def map_at_r(label: str) -> float:
        line = next(line for line in out.splitlines() if line.startswith(label))
        return float(re.search(r"MAP@R ([0-9.]+)", line).group(1))

    trained = map_at_r("held-out digits 7-9, trained model")
    assert trained > map_at_r("held-out digits 7-9, standardised pixels") + 0.05
    assert trained > map_at_r("held-out digits 7-9, untrained model") + 0.05
