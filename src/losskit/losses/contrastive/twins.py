"""The contrastive losses' Keras twins and their golden cases (see :mod:`losskit._twins`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losskit._twins import Array, Case, Twin

__all__ = ["TWINS"]

#: six pairs of three features, stacked on axis -2 (Keras's y_pred); y_true unused
_PAIRS = {"y_true": Array("zeros", (6,)), "y_pred": Array("normal", (6, 2, 3))}
_EMBEDDINGS = {"y_true": Array("labels", (8,), classes=3), "y_pred": Array("normal", (8, 3))}
_REDUCTIONS = (("sum", "sum"), ("none", None))


def _pair_cases(options: str, config: Mapping[str, Any]) -> tuple[Case, ...]:
    call = "loss(y_pred[:, 0], y_pred[:, 1]{})"
    o = f", {options}" if options else ""
    cases = [Case("mean", call.format(o), _PAIRS, dict(config))]
    cases += [
        Case(name, call.format(f"{o}, reduction='{name}'"), _PAIRS, {**config, "reduction": r})
        for name, r in _REDUCTIONS
    ]
    cases.append(Case("defaults", call.format(""), _PAIRS))
    return tuple(cases)


def _label_cases() -> tuple[Case, ...]:
    cases = [
        Case("mean", "loss(y_pred, y_true, temperature=0.5)", _EMBEDDINGS, {"temperature": 0.5})
    ]
    cases += [
        Case(
            name,
            f"loss(y_pred, y_true, temperature=0.5, reduction='{name}')",
            _EMBEDDINGS,
            {"temperature": 0.5, "reduction": r},
        )
        for name, r in _REDUCTIONS
    ]
    cases += [
        Case("defaults", "loss(y_pred, y_true)", _EMBEDDINGS),
        Case(
            "single_members",
            "loss(y_pred, y_true, temperature=0.5)",
            {"y_true": Array("labels", (5,), classes=4), "y_pred": Array("normal", (5, 3))},
            {"temperature": 0.5},
        ),
        Case(
            "one_label",
            "loss(y_pred, y_true)",
            {"y_true": Array("labels", (4,), classes=1), "y_pred": Array("normal", (4, 3))},
        ),
    ]
    return tuple(cases)


TWINS: dict[str, Twin] = {
    "info_nce": Twin("InfoNCELoss", _pair_cases("temperature=0.5", {"temperature": 0.5})),
    "nt_xent": Twin("NTXentLoss", _label_cases()),
    "supcon": Twin("SupConLoss", _label_cases()),
    "clip": Twin("ClipLoss", _pair_cases("logit_scale=5.0", {"logit_scale": 5.0})),
    "siglip": Twin(
        "SigLipLoss",
        _pair_cases("logit_scale=5.0, logit_bias=-2.0", {"logit_scale": 5.0, "logit_bias": -2.0}),
    ),
}
