"""The robust losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import Array, Case, Twin, pointwise_cases

__all__ = ["TWINS"]


def _robust(alpha: float) -> Twin:
    """A named member of the general robust family: ``GeneralRobustLoss`` at its ``alpha``."""
    return Twin(
        "GeneralRobustLoss",
        (
            *pointwise_cases(config={"alpha": alpha}, cases="mean"),
            Case(
                "scale",
                "loss(y_pred, y_true, scale=0.5)",
                {"y_true": Array("normal", (4, 3)), "y_pred": Array("normal", (4, 3), 2.0)},
                {"alpha": alpha, "scale": 0.5},
            ),
        ),
    )


TWINS: dict[str, Twin] = {
    "general_robust": Twin(
        "GeneralRobustLoss",
        (
            *pointwise_cases(),
            *(
                c
                for alpha in (0.5, 1.5, 3.0, -5.0, 2.0 - 1e-3)
                for c in pointwise_cases(
                    f"alpha={alpha!r}, scale=0.7",
                    {"alpha": alpha, "scale": 0.7},
                    prefix=f"alpha_{alpha:g}_",
                    cases="mean",
                )
            ),
            *pointwise_cases(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "cauchy": _robust(0.0),
    "geman_mcclure": _robust(-2.0),
    "welsch": _robust(float("-inf")),
    "charbonnier": _robust(1.0),
}
