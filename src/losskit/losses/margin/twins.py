"""The margin losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import BINARY, SCORES, Array, Twin, pointwise_cases

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "hinge": Twin(
        "HingeLoss",
        (
            *pointwise_cases(pred=SCORES, target=Array("signs", (4, 3)), weight=False),
            *pointwise_cases(pred=SCORES, target=BINARY, prefix="zero_one_", cases="mean"),
            *pointwise_cases(
                "squared=True, margin=0.5",
                {"squared": True, "margin": 0.5},
                pred=SCORES,
                target=Array("signs", (4, 3)),
                prefix="squared_",
                cases="mean",
            ),
        ),
    ),
}
