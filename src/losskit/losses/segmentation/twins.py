"""The segmentation losses' Keras twins and their golden cases (see :mod:`losskit._twins`).

Keras puts the classes last: every PyTorch call moves them to dimension 1 first
(``y_pred.movedim(-1, 1)``), which is also how a channels-last model's outputs are passed to
the PyTorch losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losskit._twins import Array, Case, Twin

__all__ = ["TWINS"]

_SHAPE = (2, 4, 5)  # (N, H, W)
_CLASSES = 3
LOGITS = Array("normal", (*_SHAPE, _CLASSES), scale=2.0)
PROBABILITIES = Array("probabilities", (*_SHAPE, _CLASSES), scale=2.0)
INDICES = Array("classes", _SHAPE, classes=_CLASSES)
IGNORED = Array("classes", _SHAPE, classes=_CLASSES, ignored=0.3)
LABELS = Array("binary", (*_SHAPE, _CLASSES))
X = "y_pred.movedim(-1, 1)"


def _cases(extra: str = "", config: Mapping[str, Any] | None = None, prefix: str = "") -> tuple:
    """The paths of an overlap loss: index, column, one-hot and soft targets, logits and
    probabilities, ``ignore_class``, per image, the reductions, image weights, multi-label and
    binary masks."""
    o = f", {extra}" if extra else ""
    c = dict(config or {})
    xy = {"y_true": INDICES, "y_pred": LOGITS}
    cases = (
        Case("indices_logits", f"loss({X}, y_true{o})", xy, c),
        Case(
            "indices_probabilities",
            f"loss({X}, y_true{o}, from_logits=False)",
            {"y_true": INDICES, "y_pred": PROBABILITIES},
            {**c, "from_logits": False},
        ),
        Case(
            "indices_column",
            f"loss({X}, y_true[..., 0]{o})",
            {"y_true": Array("classes", (*_SHAPE, 1), classes=_CLASSES), "y_pred": LOGITS},
            c,
        ),
        Case(
            "one_hot",
            f"loss({X}, y_true.movedim(-1, 1){o})",
            {"y_true": Array("one_hot", (*_SHAPE, _CLASSES)), "y_pred": LOGITS},
            c,
        ),
        Case(
            "soft_targets",
            f"loss({X}, y_true.movedim(-1, 1){o})",
            {"y_true": Array("probabilities", (*_SHAPE, _CLASSES)), "y_pred": LOGITS},
            c,
        ),
        Case(
            "ignore_class",
            f"loss({X}, y_true{o}, ignore_index=-1)",
            {"y_true": IGNORED, "y_pred": LOGITS},
            {**c, "ignore_class": -1},
        ),
        Case(
            "per_image_none",
            f"loss({X}, y_true{o}, per_image=True, reduction='none')",
            xy,
            {**c, "per_image": True, "reduction": None},
        ),
        Case("sum", f"loss({X}, y_true{o}, reduction='sum')", xy, {**c, "reduction": "sum"}),
        Case("none", f"loss({X}, y_true{o}, reduction='none')", xy, {**c, "reduction": None}),
        Case(
            "image_weights",
            f"(loss({X}, y_true{o}, per_image=True, reduction='none') * sample_weight[:, None])"
            f".sum() / ({_CLASSES} * sample_weight.sum())",
            {**xy, "sample_weight": Array("unit", _SHAPE[:1], 2.0)},
            {**c, "per_image": True, "reduction": "mean_with_sample_weight"},
        ),
        Case(
            "options",
            f"loss({X}, y_true{o}, smooth=0.5, smooth_denominator=2.0, include_background=False,"
            " absent='zero', log_loss=True)",
            xy,
            {
                **c,
                "smooth": 0.5,
                "smooth_denominator": 2.0,
                "include_background": False,
                "absent": "zero",
                "log_loss": True,
            },
        ),
        Case(
            "multilabel",
            f"loss({X}, y_true.movedim(-1, 1){o}, mode='multilabel', per_image=True)",
            {"y_true": LABELS, "y_pred": LOGITS},
            {**c, "mode": "multilabel", "per_image": True},
        ),
        Case(
            "binary",
            f"loss({X}, y_true{o}, mode='binary')",
            {"y_true": Array("binary", _SHAPE), "y_pred": Array("normal", (*_SHAPE, 1), 2.0)},
            {**c, "mode": "binary"},
        ),
    )
    return tuple(
        Case(prefix + case.name, case.torch, case.inputs, case.config, case.grad) for case in cases
    )


TWINS: dict[str, Twin] = {
    "dice": Twin(
        "DiceLoss",
        (
            *_cases(),
            Case(
                "squared",
                f"loss({X}, y_true, squared=True)",
                {"y_true": INDICES, "y_pred": LOGITS},
                {"squared": True},
            ),
        ),
    ),
    "jaccard": Twin("JaccardLoss", _cases()),
    "tversky": Twin(
        "TverskyLoss",
        (
            *_cases(),
            *_cases("alpha=0.3, beta=0.7", {"alpha": 0.3, "beta": 0.7}, prefix="recall_")[:3],
        ),
    ),
}
