"""The ranking losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import Array, Case, Twin

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "bpr": Twin(
        "BPRLoss",
        (
            Case(
                "one_negative",
                "loss(y_pred[:, 0], y_pred[:, 1])",
                {"y_true": Array("zeros", (6, 1)), "y_pred": Array("normal", (6, 2), 2.0)},
            ),
            Case(
                "k_negatives",
                "loss(y_pred[:, 0], y_pred[:, 1:])",
                {"y_true": Array("zeros", (4, 1)), "y_pred": Array("normal", (4, 4), 2.0)},
            ),
            Case(
                "weight_per_positive",
                "loss(y_pred[:, 0], y_pred[:, 1:], weight=sample_weight)",
                {
                    "y_true": Array("zeros", (4, 1)),
                    "y_pred": Array("normal", (4, 4), 2.0),
                    "sample_weight": Array("unit", (4,)),
                },
                {"reduction": "mean_with_sample_weight"},
            ),
            Case(
                "sum",
                "loss(y_pred[:, 0], y_pred[:, 1:], reduction='sum')",
                {"y_true": Array("zeros", (4, 1)), "y_pred": Array("normal", (4, 4), 2.0)},
                {"reduction": "sum"},
            ),
            Case(
                "none",
                "loss(y_pred[:, 0], y_pred[:, 1], reduction='none')[:, None]",
                {"y_true": Array("zeros", (6, 1)), "y_pred": Array("normal", (6, 2), 2.0)},
                {"reduction": None},
            ),
        ),
    ),
}
