"""The triplet losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losskit._twins import Array, Case, Twin

__all__ = ["TWINS"]

_EMBEDDINGS = Array("normal", (8, 3))
_GROUPS = Array("labels", (8,), classes=3)


def _triplet(name: str, options: str, config: Mapping[str, Any], **inputs: Array) -> Case:
    o = f", {options}" if options else ""
    arrays = {"y_true": _GROUPS, "y_pred": _EMBEDDINGS, **inputs}
    return Case(name, f"loss(y_pred, y_true{o})", arrays, dict(config))


TWINS: dict[str, Twin] = {
    "triplet": Twin(
        "TripletLoss",
        (
            _triplet("batch_hard", "", {}),
            _triplet("batch_all", "miner='batch_all'", {"miner": "batch_all"}),
            _triplet(
                "batch_hard_squared",
                "distance='squared_euclidean', margin=1.0",
                {"distance": "squared_euclidean", "margin": 1.0},
            ),
            _triplet(
                "batch_all_squared",
                "distance='squared_euclidean', miner='batch_all', margin=1.0",
                {"distance": "squared_euclidean", "miner": "batch_all", "margin": 1.0},
            ),
            _triplet("batch_hard_cosine", "distance='cosine'", {"distance": "cosine"}),
            _triplet(
                "batch_all_cosine",
                "distance='cosine', miner='batch_all'",
                {"distance": "cosine", "miner": "batch_all"},
            ),
            _triplet(
                "soft_margin", "soft_margin=True, margin=0.0", {"soft_margin": True, "margin": 0.0}
            ),
            _triplet(
                "sum",
                "miner='batch_all', reduction='sum'",
                {"miner": "batch_all", "reduction": "sum"},
            ),
            _triplet(
                "mean_positive",
                "miner='batch_all', reduction='mean_positive'",
                {"miner": "batch_all", "reduction": "mean_positive"},
            ),
            _triplet(
                "batch_hard_sum", "reduction='sum', margin=1.0", {"reduction": "sum", "margin": 1.0}
            ),
            Case(
                "mask",
                "loss(y_pred[mask], y_true[mask], miner='batch_all')",
                {"y_true": _GROUPS, "y_pred": _EMBEDDINGS, "mask": Array("mask", (8,))},
                {"miner": "batch_all"},
            ),
            Case(
                "no_triplets",
                "loss(y_pred, y_true)",
                {"y_true": Array("labels", (4,), classes=1), "y_pred": Array("normal", (4, 3))},
            ),
        ),
    ),
}
