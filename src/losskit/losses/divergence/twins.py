"""The divergence losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import CLASSES, LOGITS, PROBABILITIES, SOFT, Array, Case, Twin

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "kl_div": Twin(
        "KLDivLoss",
        (
            Case(
                "probabilities",
                "loss(y_pred.log(), y_true)",
                {"y_true": SOFT, "y_pred": PROBABILITIES},
            ),
            Case(
                "logits",
                "loss(y_pred.log_softmax(-1), y_true)",
                {"y_true": SOFT, "y_pred": LOGITS},
                {"from_logits": True},
            ),
            Case(
                "one_hot_target",
                "loss(y_pred.log(), y_true)",
                {"y_true": Array("one_hot", (5, CLASSES)), "y_pred": PROBABILITIES},
            ),
            Case(
                "sum",
                "loss(y_pred.log(), y_true, reduction='sum')",
                {"y_true": SOFT, "y_pred": PROBABILITIES},
                {"reduction": "sum"},
            ),
            Case(
                "none",
                "loss(y_pred.log(), y_true, reduction='none').sum(-1)",
                {"y_true": SOFT, "y_pred": PROBABILITIES},
                {"reduction": None},
            ),
        ),
    ),
}
