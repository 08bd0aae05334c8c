"""The classification losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import (
    BINARY,
    BINARY_PROBABILITIES,
    IGNORED,
    INDICES,
    PROBABILITIES,
    SCORES,
    Array,
    Case,
    Twin,
    class_cases,
    pointwise_cases,
)

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "cross_entropy": Twin("CrossEntropyLoss", class_cases()),
    # CrossEntropyLoss renormalises y_pred and nll_loss does not: on probabilities that sum to 1
    # the values agree, but the gradients differ by the normalisation's 1 / sum(p) in every
    # component, so only the values are compared
    "nll": Twin(
        "CrossEntropyLoss",
        (
            Case(
                "probabilities",
                "loss(y_pred.log(), y_true)",
                {"y_true": INDICES, "y_pred": PROBABILITIES},
                grad=False,
            ),
            Case(
                "ignore_class",
                "loss(y_pred.log(), y_true, ignore_index=-1)",
                {"y_true": IGNORED, "y_pred": PROBABILITIES},
                {"ignore_class": -1},
                grad=False,
            ),
            Case(
                "sum",
                "loss(y_pred.log(), y_true, reduction='sum')",
                {"y_true": INDICES, "y_pred": PROBABILITIES},
                {"reduction": "sum"},
                grad=False,
            ),
        ),
    ),
    "bce": Twin(
        "BCELoss",
        (
            *pointwise_cases(pred=BINARY_PROBABILITIES, target=BINARY, cases="reductions"),
            *pointwise_cases(
                pred=BINARY_PROBABILITIES,
                target=Array("unit", (4, 3)),
                prefix="soft_",
                cases="mean",
            ),
            # torch's kernel divides by max(p (1 - p), 1e-12) at p = 0 or 1; the clamped log has
            # gradient 0 there: compare the values only
            Case(
                "saturated",
                "loss(y_pred, y_true)",
                {"y_true": BINARY, "y_pred": Array("binary", (4, 3))},
                grad=False,
            ),
            # Keras's BinaryCrossentropy(label_smoothing=eps): y (1 - eps) + eps / 2
            Case(
                "label_smoothing",
                "loss(y_pred, y_true * (1 - 0.2) + 0.5 * 0.2, reduction='sum')",
                {"y_true": BINARY, "y_pred": BINARY_PROBABILITIES},
                {"label_smoothing": 0.2, "reduction": "sum"},
            ),
        ),
    ),
    "bce_with_logits": Twin(
        "BCELoss",
        (
            *pointwise_cases(config={"from_logits": True}, pred=SCORES, target=BINARY),
            *pointwise_cases(
                config={"from_logits": True},
                pred=SCORES,
                target=Array("unit", (4, 3)),
                prefix="soft_",
                cases="mean",
            ),
            *pointwise_cases(
                config={"from_logits": True},
                pred=Array("normal", (4, 3), 1e4),
                target=BINARY,
                prefix="large_",
                cases="mean",
            ),
            Case(
                "label_smoothing",
                "loss(y_pred, y_true * (1 - 0.1) + 0.5 * 0.1)",
                {"y_true": BINARY, "y_pred": SCORES},
                {"from_logits": True, "label_smoothing": 0.1},
            ),
        ),
    ),
}
