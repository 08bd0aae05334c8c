"""The embedding losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from losskit._twins import Array, Case, Twin

__all__ = ["TWINS"]

TWINS: dict[str, Twin] = {
    "cosine_embedding": Twin(
        "CosineEmbeddingLoss",
        tuple(
            Case(
                name,
                f"loss(y_pred[:, 0], y_pred[:, 1], y_true{options})",
                {"y_true": Array("signs", (6,)), "y_pred": Array("normal", (6, 2, 3))},
                config,
            )
            for name, options, config in (
                ("mean", "", {}),
                ("margin", ", margin=0.2", {"margin": 0.2}),
                ("sum", ", reduction='sum'", {"reduction": "sum"}),
                ("none", ", reduction='none'", {"reduction": None}),
            )
        ),
    ),
}
