"""The golden-case table's vocabulary: which catalog entries have a Keras twin, and the calls on
both sides that must give the same number.

Each family with a Keras twin lists its entries in ``losskit/losses/<family>/twins.py`` as
``TWINS``, a map from a catalog name (``losskit.catalog``) to a :class:`Twin`: the name of the
class in :mod:`losskit.keras` and its golden cases; :func:`gather` merges them and
``losskit.keras.twins.TWINS`` is the merged table. Each :class:`Case` is one pair of calls:

* the Keras call: ``KerasClass(**config)(y_true, y_pred, sample_weight)``, with ``y_pred``
  carrying ``mask`` as its Keras mask when the case has one;
* the PyTorch call: ``torch``, a Python expression in which ``loss`` is the catalog entry's
  functional (``losskit.catalog[name].functional``) and ``y_true``, ``y_pred``,
  ``sample_weight`` and ``mask`` are the same arrays as torch tensors (``torch`` and ``F``,
  ``torch.nn.functional``, are in scope too).

``scripts/make_golden.py`` draws the inputs, evaluates the PyTorch call (and its gradient in
``y_pred``) and writes ``tests/golden/<name>.json``; the Keras tests load those files and must
reproduce both on every backend. The expressions are also the migration guide: each is the
PyTorch spelling of its Keras call.

Plain data, like the families' ``twins`` modules: neither Keras nor torch is imported, so the
golden script and the main (torch-only) tests read the table without Keras.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Array", "Case", "Twin", "class_cases", "gather", "pointwise_cases"]

ArrayKind = Literal[
    "normal",
    "unit",
    "probabilities",
    "binary",
    "signs",
    "classes",
    "labels",
    "mask",
    "one_hot",
    "zeros",
]


@dataclass(frozen=True)
class Array:
    """How an input is drawn. ``normal``: N(0, scale^2); ``unit``: uniform in (0.02, 0.98);
    ``probabilities``: a softmax over the last axis; ``binary``: 0/1 floats; ``signs``: -1/+1
    floats; ``classes``: int class indices below ``classes``, a fraction ``ignored`` of them
    (at least one if any) set to ``ignore``; ``one_hot``: one-hot float rows; ``labels``: int labels of ``classes`` groups of at least two; ``mask``:
    booleans, mostly True; ``zeros``: float zeros."""

    kind: ArrayKind
    shape: tuple[int, ...]
    scale: float = 1.0
    classes: int = 0
    ignore: int = -1
    ignored: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    torch: str
    inputs: Mapping[str, Array]
    config: Mapping[str, Any] = field(default_factory=dict)
    #: whether the gradient in ``y_pred`` is compared (``False`` where torch's kernel and the
    #: autodiff of the Keras formula legitimately differ, e.g. at probabilities of exactly 0)
    grad: bool = True


@dataclass(frozen=True)
class Twin:
    keras: str
    cases: tuple[Case, ...]


# ------------------------------------------------------------------------- case builders


def pointwise_cases(
    options: str = "",
    config: Mapping[str, Any] | None = None,
    *,
    pred: Array = Array("normal", (4, 3), scale=2.0),
    target: Array = Array("normal", (4, 3)),
    prefix: str = "",
    cases: Literal["mean", "reductions", "full"] = "full",
    weight: bool = True,
) -> tuple[Case, ...]:
    """The cases of an elementwise loss: the default mean; with ``cases="reductions"`` also
    ``"sum"`` and ``None``; with ``"full"`` also sample weights per sample and per element, a
    mask, and ``(N,)`` targets for an ``(N, 1)`` output (the reduction machinery is shared, so
    a few losses exercise all of it). ``weight``: whether the PyTorch loss takes an elementwise
    ``weight`` (if not, the weighted cases are written with ``reduction='none'``)."""
    opts = f", {options}" if options else ""
    cfg = dict(config or {})
    xy = {"y_true": target, "y_pred": pred}
    rows = pred.shape[:1]
    out = [Case(f"{prefix}mean", f"loss(y_pred, y_true{opts})", xy, cfg)]
    if cases == "mean":
        return tuple(out)
    none = f"loss(y_pred, y_true{opts}, reduction='none')"
    out += [
        Case(
            f"{prefix}sum",
            f"loss(y_pred, y_true{opts}, reduction='sum')",
            xy,
            {**cfg, "reduction": "sum"},
        ),
        Case(f"{prefix}none", none, xy, {**cfg, "reduction": None}),
    ]
    if cases == "reductions":
        return tuple(out)
    weight_rows = {**xy, "sample_weight": Array("unit", rows, scale=2.0)}
    if weight:
        per_sample = f"loss(y_pred, y_true{opts}, weight=sample_weight[:, None].expand_as(y_pred))"
        per_element = f"loss(y_pred, y_true{opts}, weight=sample_weight)"
    else:
        expanded = "sample_weight[:, None].expand_as(y_pred)"
        per_sample = f"({none} * {expanded}).sum() / {expanded}.sum()"
        per_element = f"({none} * sample_weight).sum() / sample_weight.sum()"
    out += [
        Case(
            f"{prefix}weighted_mean",
            per_sample,
            weight_rows,
            {**cfg, "reduction": "mean_with_sample_weight"},
        ),
        Case(
            f"{prefix}weighted_sum_over_batch_size",
            f"({none} * sample_weight[:, None]).mean()",
            weight_rows,
            cfg,
        ),
        Case(
            f"{prefix}elementwise_weight",
            per_element,
            {**xy, "sample_weight": Array("unit", pred.shape)},
            {**cfg, "reduction": "mean_with_sample_weight"},
        ),
        Case(
            f"{prefix}mask",
            f"loss(y_pred[mask], y_true[mask]{opts})",
            {**xy, "mask": Array("mask", rows)},
            cfg,
        ),
        Case(
            f"{prefix}column_output",
            f"loss(y_pred[:, 0], y_true{opts})",
            {
                "y_true": Array(target.kind, rows),
                "y_pred": Array(pred.kind, (*rows, 1), pred.scale),
            },
            cfg,
        ),
    ]
    return tuple(out)


# ------------------------------------------------ inputs shared by several families' cases

CLASSES = 4  #: classes in the classification cases
LOGITS = Array("normal", (5, CLASSES), scale=2.0)
PROBABILITIES = Array("probabilities", (5, CLASSES), scale=2.0)
INDICES = Array("classes", (5,), classes=CLASSES)
IGNORED = Array("classes", (5,), classes=CLASSES, ignored=0.4)
SOFT = Array("probabilities", (5, CLASSES))


def class_cases(
    extra: str = "",
    config: Mapping[str, Any] | None = None,
    prefix: str = "",
    only: tuple[str, ...] = (),
) -> tuple[Case, ...]:
    """Cross-entropy-like cases (class indices or probabilities, logits or probabilities,
    smoothing, ignore_class, reductions, sequences, axis); ``only`` keeps those names."""
    o = f", {extra}" if extra else ""
    c = dict(config or {})
    logits = {**c, "from_logits": True}
    cases = (
        Case(
            "indices_probabilities",
            f"loss(y_pred.log(), y_true{o})",
            {"y_true": INDICES, "y_pred": PROBABILITIES},
            c,
        ),
        Case(
            "indices_logits",
            f"loss(y_pred, y_true{o})",
            {"y_true": INDICES, "y_pred": LOGITS},
            logits,
        ),
        Case(
            "indices_column",
            f"loss(y_pred, y_true[:, 0]{o})",
            {"y_true": Array("classes", (5, 1), classes=CLASSES), "y_pred": LOGITS},
            logits,
        ),
        Case(
            "soft_targets", f"loss(y_pred, y_true{o})", {"y_true": SOFT, "y_pred": LOGITS}, logits
        ),
        Case(
            "soft_targets_probabilities",
            f"loss(y_pred.log(), y_true{o})",
            {"y_true": SOFT, "y_pred": PROBABILITIES},
            c,
        ),
        Case(
            "label_smoothing",
            f"loss(y_pred, y_true{o}, label_smoothing=0.1)",
            {"y_true": INDICES, "y_pred": LOGITS},
            {**logits, "label_smoothing": 0.1},
        ),
        Case(
            "soft_targets_label_smoothing",
            f"loss(y_pred, y_true{o}, label_smoothing=0.2)",
            {"y_true": SOFT, "y_pred": LOGITS},
            {**logits, "label_smoothing": 0.2},
        ),
        Case(
            "ignore_class",
            f"loss(y_pred, y_true{o}, ignore_index=-1)",
            {"y_true": IGNORED, "y_pred": LOGITS},
            {**logits, "ignore_class": -1},
        ),
        Case(
            "ignore_class_label_smoothing",
            f"loss(y_pred, y_true{o}, ignore_index=-1, label_smoothing=0.1)",
            {"y_true": IGNORED, "y_pred": LOGITS},
            {**logits, "ignore_class": -1, "label_smoothing": 0.1},
        ),
        Case(
            "all_ignored",
            f"loss(y_pred, y_true{o}, ignore_index=-1)",
            {"y_true": Array("classes", (5,), classes=CLASSES, ignored=1.0), "y_pred": LOGITS},
            {**logits, "ignore_class": -1},
        ),
        Case(
            "sum",
            f"loss(y_pred, y_true{o}, reduction='sum')",
            {"y_true": INDICES, "y_pred": LOGITS},
            {**logits, "reduction": "sum"},
        ),
        Case(
            "none",
            f"loss(y_pred, y_true{o}, reduction='none')",
            {"y_true": INDICES, "y_pred": LOGITS},
            {**logits, "reduction": None},
        ),
        Case(
            "weighted_mean",
            f"(loss(y_pred, y_true{o}, reduction='none') * sample_weight).sum() / sample_weight.sum()",
            {"y_true": INDICES, "y_pred": LOGITS, "sample_weight": Array("unit", (5,), 2.0)},
            {**logits, "reduction": "mean_with_sample_weight"},
        ),
        Case(
            "mask",
            f"loss(y_pred[mask], y_true[mask]{o})",
            {"y_true": INDICES, "y_pred": LOGITS, "mask": Array("mask", (5,))},
            logits,
        ),
        Case(
            "sequence_classes_last",
            f"loss(y_pred.movedim(-1, 1), y_true{o})",
            {
                "y_true": Array("classes", (2, 3), classes=CLASSES),
                "y_pred": Array("normal", (2, 3, CLASSES), 2.0),
            },
            logits,
        ),
        Case(
            "sequence_axis_1",
            f"loss(y_pred, y_true{o})",
            {
                "y_true": Array("classes", (2, 3), classes=CLASSES),
                "y_pred": Array("normal", (2, CLASSES, 3), 2.0),
            },
            {**logits, "axis": 1},
        ),
    )
    return tuple(
        Case(prefix + case.name, case.torch, case.inputs, case.config, case.grad)
        for case in cases
        if not only or case.name in only
    )


#: binary and multi-label cases (BCE, hinge, sigmoid focal)
BINARY_PROBABILITIES = Array("unit", (4, 3))
BINARY = Array("binary", (4, 3))
SCORES = Array("normal", (4, 3), scale=3.0)


def gather(families: Iterable[str]) -> dict[str, Twin]:
    """The ``TWINS`` of each family's ``twins`` module (``losskit.losses.<family>.twins``), merged
    in the order of ``families``; families without one are skipped. A catalog entry twinned by two
    families is an error."""
    table: dict[str, Twin] = {}
    for family in families:
        module = f"losskit.losses.{family}.twins"
        if importlib.util.find_spec(module) is None:
            continue
        twins: Mapping[str, Twin] = importlib.import_module(module).TWINS
        again = sorted(table.keys() & twins.keys())
        if again:
            raise ValueError(f"{module}: {', '.join(again)} already have a Keras twin")
        table.update(twins)
    return table
