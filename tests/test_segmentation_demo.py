"""The bundled segmentation demo (losskit.selection.segmentation): synthetic images with a small
foreground, the overlap metrics, which losses can train a segmenter, and the comparison the demo
exists for: the overlap losses beat plain cross-entropy on held-out Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import losskit
import losskit.functional as LF
from losskit.selection import (
    DataError,
    adapter_for,
    build_loss,
    compatible_losses,
    demo,
    parse_candidate,
    parse_candidates,
)
from losskit.selection.metrics import curve_metric, segmentation_metrics
from losskit.selection.segmentation import (
    DEMO_LOSSES,
    compare_segmentation,
    shapes_dataset,
    synthetic_shapes,
)


def test_synthetic_shapes_are_deterministic_with_a_small_foreground():
    images, masks = synthetic_shapes(8, 32, seed=3)
    again, same = synthetic_shapes(8, 32, seed=3)
    assert images.shape == (8, 1, 32, 32) and masks.shape == (8, 32, 32)
    assert torch.equal(images, again) and torch.equal(masks, same)
    foreground = (masks > 0).float().mean().item()
    assert 0.01 < foreground < 0.1
    assert set(masks.unique().tolist()) == {0, 1, 2}
    assert not torch.equal(synthetic_shapes(8, 32, seed=4)[1], masks)


def test_the_demo_dataset_holds_images_and_masks():
    data = demo("shapes_segmentation")
    assert data.task == "segmentation" and data.classes == ("background", "disc", "square")
    assert data.features.shape == (len(data), 1, 32, 32) and data.target.shape == (
        len(data),
        32,
        32,
    )
    assert data.default_candidates == DEMO_LOSSES
    # every default candidate parses for the task (sums of two included)
    assert [c.label for c in parse_candidates(",".join(DEMO_LOSSES), "segmentation")] == [
        parse_candidate(text).label for text in DEMO_LOSSES
    ]
    small = shapes_dataset(12, 16)
    assert small.features.shape == (12, 1, 16, 16) and "12 synthetic 16x16" in small.description


def test_segmentation_metrics():
    target = np.array([[0, 1, 1, 2, 2, 0]])
    assert segmentation_metrics(target, target) == {"dice": 1.0, "iou": 1.0}
    # background everywhere scores 0, however small the foreground (pixel accuracy: 4/6)
    assert segmentation_metrics(target, np.zeros_like(target)) == {"dice": 0.0, "iou": 0.0}
    # class 1: 2*1/(1+2), IoU 1/2; class 2: 2*2/(3+2), IoU 2/3
    prediction = np.array([[0, 1, 2, 2, 2, 0]])
    scores = segmentation_metrics(target, prediction)
    assert scores["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores["iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    for key in ("dice", "iou"):
        assert curve_metric("segmentation", key, target, prediction) == scores[key]
    # a class in neither the target nor the prediction has nothing to score
    assert segmentation_metrics(np.array([0, 1]), np.array([0, 1])) == {"dice": 1.0, "iou": 1.0}


def test_which_losses_train_a_segmenter():
    """Read from the catalog: every segmentation entry, and the per-pixel classification
    losses that accept images; never the other way round."""
    fits = set(compatible_losses("segmentation"))
    for spec in losskit.catalog.specs("segmentation"):
        assert spec.name in fits
        assert adapter_for(spec, "classification") is None
    assert {"cross_entropy", "focal", "nll", "bce_with_logits"} <= fits
    assert "multi_margin" not in fits  # one row of class scores: it refuses images
    assert adapter_for(losskit.catalog["lovasz_hinge"], "segmentation") == "one_vs_rest"
    with pytest.raises(DataError, match="cannot train a segmentation model"):
        parse_candidate("mse", "segmentation")


def test_sums_of_candidates():
    candidate = parse_candidate("dice:smooth=0.5+cross_entropy", "segmentation")
    assert candidate.label == "dice:smooth=0.5+cross_entropy"
    assert candidate.loss == "dice+cross_entropy"
    assert candidate.json_options() == {"dice.smooth": 0.5}
    loss = build_loss(candidate, "segmentation", np.zeros((2, 4, 4), dtype=np.int64), 3)
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    torch.testing.assert_close(loss(x, y), LF.dice_loss(x, y, smooth=0.5) + LF.cross_entropy(x, y))
    # a + in a number is not a sum
    assert parse_candidate("huber:delta=1e+1").options == {"delta": 10.0}
    with pytest.raises(DataError, match="adds a loss to itself"):
        parse_candidate("dice+dice_loss")
    with pytest.raises(DataError, match="names dice\\+cross_entropy twice"):
        parse_candidates("dice+cross_entropy,dice+cross_entropy", "segmentation")


def test_overlap_losses_beat_cross_entropy_on_held_out_dice():
    """The demo's claim at its quick budget (15 epochs), on one held-out third of the images;
    docs/selection.md has the figures over folds and seeds, and how they move with more
    epochs."""
    losses = ["cross_entropy", "dice:include_background=False", "lovasz_softmax"]
    result = compare_segmentation(losses, holdout=1 / 3, curves=False)
    scores = {r.label: r.mean("dice") for r in result.results}
    assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in scores.values()), scores
    assert result.ranked()[-1].label == "cross_entropy", scores
    for name in losses[1:]:
        assert scores[name] > scores["cross_entropy"] + 0.2, scores
