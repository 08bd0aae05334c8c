"""``losskit show NAME --plot out.png``: the loss and its gradient along the variable that fits
the loss, for the default and a few hyper-parameter values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import losskit
from losskit.cli import app
from losskit.cli._curves import NoView, hyper_values, view_for

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return runner.invoke(app, ["show", *args])


@pytest.mark.parametrize(
    "name", ["huber", "focal", "sigmoid_focal", "triplet", "cosine_embedding", "dice"]
)
def test_plot_is_written_and_terminal_output_kept(tmp_path, name):
    path = tmp_path / f"{name}.png"
    result = run(name, "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert "formula (LaTeX)" in result.output  # the usual explanation still comes first
    assert f"plot: {path}" in result.output
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging file left


def test_plot_chosen_values(tmp_path):
    path = tmp_path / "h.png"
    result = run("huber", "--plot", str(path), "--vary", "delta", "--values", "0.5,1,2")
    assert result.exit_code == 0, result.output
    assert "delta = 0.5, 1, 2" in result.output


#: losses whose value is not one number per point along one variable: a sequence (CTC),
#: whole batches of pairs (InfoNCE, NT-Xent, SupCon, CLIP, SigLIP), batches against class
#: centres (CosFace, ArcFace), two models' hidden states and output layers (linear
#: distillation). The segmentation losses (one value per image) are drawn on one image whose
#: foreground probability varies.
NO_VIEW = {
    "ctc",
    "info_nce",
    "nt_xent",
    "supcon",
    "clip",
    "siglip",
    "cosface",
    "arcface",
    "linear_distillation",
}


@pytest.mark.parametrize("name", [s.name for s in losskit.catalog.specs()])
def test_every_loss_has_a_finite_view_or_says_why_not(name):
    spec = losskit.catalog[name]
    try:
        view = view_for(spec)
    except NoView as exc:
        assert name in NO_VIEW, f"{name} has a picture that the view does not draw: {exc}"
        assert "has no one-dimensional picture" in str(exc)
        return
    assert name not in NO_VIEW
    curves = view.curves({})
    assert curves
    for _, loss, grad in curves:
        assert loss.shape == grad.shape == view.x.shape
        assert np.isfinite(loss).all() and np.isfinite(grad).all()


def test_views_compute_the_right_curves():
    huber = view_for(losskit.catalog["huber"])
    ((_, _, grad),) = huber.curves({"delta": 1.0})
    assert np.allclose(grad, np.clip(huber.x, -1.0, 1.0))
    ((_, ce, _),) = view_for(losskit.catalog["cross_entropy"]).curves({})
    focal = view_for(losskit.catalog["focal"])
    ((_, focal0, _),) = focal.curves({"gamma": 0.0})
    assert np.allclose(ce, -np.log(focal.x)) and np.allclose(focal0, ce)
    ((_, triplet, _),) = view_for(losskit.catalog["triplet"]).curves({"margin": 0.2})
    gap = view_for(losskit.catalog["triplet"]).x
    assert np.allclose(triplet, np.maximum(0.0, 0.2 - gap), atol=1e-6)


def test_segmentation_views_follow_the_overlap_formulas():
    """One image of 100 pixels: 10 foreground ones at foreground probability p, 90 background
    ones at 0.1. Dice (both classes, batch-level, smoothing s) by hand."""
    view = view_for(losskit.catalog["dice"])
    p = view.x
    for smooth in (0.0, 1.0):
        ((_, loss, grad),) = view.curves({"smooth": smooth})
        foreground = (20 * p + smooth) / (10 * p + 9 + 10 + smooth)
        background = (2 * 81 + smooth) / (81 + 10 * (1 - p) + 90 + smooth)
        assert np.allclose(loss, 1 - (foreground + background) / 2)
        assert (np.diff(loss) < 0).all() and (grad < 0).all()  # more foreground: lower loss
    # every segmentation entry has a finite picture whose loss falls as p rises
    for spec in losskit.catalog.specs("segmentation"):
        ((_, loss, grad),) = view_for(spec).curves({})
        assert np.isfinite(loss).all() and np.isfinite(grad).all()
        assert loss[0] > loss[-1] >= 0.0, spec.name
    # the Lovász hinge is 0 once the foreground logit reaches 1 (p = 0.73)
    hinge = view_for(losskit.catalog["lovasz_hinge"])
    ((_, loss, grad),) = hinge.curves({})
    edge = 1 / (1 + np.exp(-1.0))
    beyond, before = hinge.x > edge + 0.01, hinge.x < edge - 0.01
    assert (loss[beyond] == 0).all() and (grad[beyond] == 0).all()
    assert (loss[before] > 0).all() and (grad[before] < 0).all()


def test_hyper_values_span_the_tuning_range_and_keep_the_default():
    assert hyper_values(losskit.catalog["focal"].param("gamma")) == [0.0, 1.2, 2.0, 2.5, 5.0]
    assert hyper_values(losskit.catalog["huber"].param("delta")) == [0.01, 0.056, 0.32, 1.0, 10.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ctc", "--plot", "{dir}/c.png"), "ctc (sequence) has no one-dimensional picture"),
        (("huber", "--plot", "{dir}/no/such/h.png"), "does not exist"),
        (("huber", "--plot", "{dir}/h.png", "--vary", "gamma"), "'gamma' is unknown"),
        (("huber", "--plot", "{dir}/h.png", "--values", "1,2"), "--values needs --vary"),
        (
            ("huber", "--plot", "{dir}/h.png", "--vary", "delta", "--values", "1,x"),
            "comma-separated",
        ),
        (("triplet", "--plot", "{dir}/t.png", "--vary", "miner"), "varies numeric"),
        (("huber", "--plot", "{dir}/h.xyz"), "format 'xyz' is not supported"),
        (("huber", "--vary", "delta"), "give --plot FILE too"),
        # values the loss refuses, duplicates and non-finite ones: before a line is printed
        (("huber", "--plot", "{dir}/h.png", "--vary", "delta", "--values", "-1,2"), "delta is -1"),
        (("huber", "--plot", "{dir}/h.png", "--vary", "delta", "--values", "1,1"), "1 twice"),
        (("huber", "--plot", "{dir}/h.png", "--vary", "delta", "--values", "1,inf"), "finite"),
        (("multi_margin", "--plot", "{dir}/m.png", "--vary", "p", "--values", "1.5"), "integer"),
        (("huber", "--plot", "/proc/losskit-h.png"), "cannot write in /proc"),
        (("huber", "--plot", "/dev/null/h.png"), "/dev/null is a file, not a directory"),
        (("huber", "--plot", "{dir}/h.png", "--vary", "delta", "--values", ""), "is empty"),
    ],
)
def test_bad_plot_requests_exit_2(tmp_path, args, message):
    result = run(*(a.format(dir=tmp_path) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # nothing printed first
    assert not list(tmp_path.rglob("*"))


def test_plot_values_are_finite_in_float64_for_extreme_hyper_parameters():
    view = view_for(losskit.catalog["general_robust"])
    for alpha in (-10.0, 0.0, 2.0):
        ((_, loss, grad),) = view.curves({"alpha": alpha})
        assert torch.isfinite(torch.tensor(loss)).all() and np.isfinite(grad).all()
