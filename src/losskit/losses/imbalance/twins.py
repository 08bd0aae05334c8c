"""The imbalance losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import (
    BINARY,
    BINARY_PROBABILITIES,
    SCORES,
    Array,
    Case,
    Twin,
    class_cases,
    pointwise_cases,
)

__all__ = ["TWINS"]

_FOCAL_OPTION_CASES = ("indices_probabilities", "soft_targets", "ignore_class")

TWINS: dict[str, Twin] = {
    "sigmoid_focal": Twin(
        "SigmoidFocalLoss",
        (
            Case(
                "probabilities_as_logits",
                "loss(torch.logit(y_pred), y_true)",
                {"y_true": BINARY, "y_pred": BINARY_PROBABILITIES},
            ),
            *pointwise_cases(
                config={"from_logits": True}, pred=SCORES, target=BINARY, cases="reductions"
            ),
            *pointwise_cases(
                "alpha=None, gamma=0.5",
                {"alpha": None, "gamma": 0.5, "from_logits": True},
                pred=SCORES,
                target=BINARY,
                prefix="fractional_gamma_",
                cases="mean",
            ),
            *pointwise_cases(
                "alpha=0.75, gamma=0.0",
                {"alpha": 0.75, "gamma": 0.0, "from_logits": True},
                pred=SCORES,
                target=Array("unit", (4, 3)),
                prefix="soft_targets_gamma0_",
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
    "focal": Twin(
        "FocalLoss",
        (
            # the machinery shared with CrossEntropyLoss (masks, weights, sequences) is covered
            # there; these are the paths of the focal computation itself
            *class_cases(
                only=(
                    "indices_probabilities",
                    "indices_logits",
                    "soft_targets",
                    "soft_targets_probabilities",
                    "label_smoothing",
                    "ignore_class",
                    "all_ignored",
                    "sum",
                    "none",
                    "sequence_axis_1",
                )
            ),
            *class_cases(
                "alpha=[0.25, 0.5, 0.75, 1.0]",
                {"alpha": [0.25, 0.5, 0.75, 1.0]},
                prefix="class_alpha_",
                only=_FOCAL_OPTION_CASES,
            ),
            *class_cases(
                "alpha=0.25, gamma=0.5",
                {"alpha": 0.25, "gamma": 0.5},
                prefix="alpha_gamma_",
                only=_FOCAL_OPTION_CASES,
            ),
        ),
    ),
}
