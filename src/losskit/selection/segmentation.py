"""The segmentation demo of ``losskit compare``: synthetic images whose foreground is a few
percent of the pixels, made by the code (no download), a small fully convolutional network
trained with each candidate loss on the same folds, from the same initial weights, on the same
batches (the machinery of :mod:`losskit.selection.training`), and the Dice score of its
held-out predictions.

The images hold small discs (class 1) and squares (class 2) on a noisy, uneven background, about
5% of the pixels in all. With so little foreground, plain cross-entropy spends its first epochs
predicting background everywhere, while the overlap losses (Dice and Tversky over the
foreground classes, Lovász-softmax) pull on the foreground from the first step. What was
measured (docs/selection.md has the tables): at the demo's budget the overlap losses' held-out
Dice is far higher; Dice *with* the background class (its default, MONAI's) collapses to
"background everywhere" in some folds; and with several times more epochs cross-entropy
catches up.

>>> from losskit.selection.segmentation import compare_segmentation
>>> result = compare_segmentation(["cross_entropy", "dice"], epochs=1, folds=2, images=16)
>>> sorted(r.label for r in result.results)
['cross_entropy', 'dice']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from losskit.selection.candidates import parse_candidates
from losskit.selection.data import shapes_dataset
from losskit.selection.shapes import CLASSES, DEMO_LOSSES, segmentation_network, synthetic_shapes
from losskit.selection.training import Comparison, Progress, compare_losses, default_settings

__all__ = [
    "CLASSES",
    "DEMO_LOSSES",
    "compare_segmentation",
    "segmentation_network",
    "shapes_dataset",
    "synthetic_shapes",
]


def compare_segmentation(
    losses: Sequence[str] = DEMO_LOSSES,
    *,
    quick: bool = True,
    images: int = 144,
    size: int = 32,
    curves: bool = True,
    progress: Progress | None = None,
    **settings: Any,
) -> Comparison:
    """Train the demo's network with each of ``losses`` (``--losses`` syntax: ``name``,
    ``name:option=value``, ``a+b``) on :func:`shapes_dataset` and score held-out images by
    Dice and IoU: what ``losskit compare --task segmentation`` runs. ``settings`` override
    :func:`~losskit.selection.training.default_settings` (``epochs``, ``folds``, ``holdout``,
    ``seed``, ``lr``, ``batch_size``, ``hidden``: the convolutions' widths); ``curves=False``
    skips the per-epoch held-out scores."""
    dataset = shapes_dataset(images, size)
    candidates = parse_candidates(",".join(losses), dataset.task)
    return compare_losses(
        dataset,
        candidates,
        default_settings(dataset.task, quick=quick, **settings),
        curves=curves,
        progress=progress,
    )
