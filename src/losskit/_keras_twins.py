"""Which catalog entries have a Keras twin, and the calls on both sides that must give the same
number.

``TWINS`` maps a catalog name (``losskit.catalog``) to a :class:`Twin`: the name of the class in
:mod:`losskit.keras` and its golden cases. Each :class:`Case` is one pair of calls:

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

This module is plain data: it imports neither Keras nor torch, so the golden script and the
CLI can read it without Keras; ``losskit.keras.twins`` is its public name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TWINS", "Array", "Case", "Twin"]

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


def _pointwise(
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


def _robust(alpha: float) -> Twin:
    """A named member of the general robust family: ``GeneralRobustLoss`` at its ``alpha``."""
    return Twin(
        "GeneralRobustLoss",
        (
            *_pointwise(config={"alpha": alpha}, cases="mean"),
            Case(
                "scale",
                "loss(y_pred, y_true, scale=0.5)",
                {"y_true": Array("normal", (4, 3)), "y_pred": Array("normal", (4, 3), 2.0)},
                {"alpha": alpha, "scale": 0.5},
            ),
        ),
    )


_C = 4  # classes in the classification cases
_LOGITS = Array("normal", (5, _C), scale=2.0)
_PROBS = Array("probabilities", (5, _C), scale=2.0)
_INDICES = Array("classes", (5,), classes=_C)
_IGNORED = Array("classes", (5,), classes=_C, ignored=0.4)
_SOFT = Array("probabilities", (5, _C))


def _class_cases(
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
            {"y_true": _INDICES, "y_pred": _PROBS},
            c,
        ),
        Case(
            "indices_logits",
            f"loss(y_pred, y_true{o})",
            {"y_true": _INDICES, "y_pred": _LOGITS},
            logits,
        ),
        Case(
            "indices_column",
            f"loss(y_pred, y_true[:, 0]{o})",
            {"y_true": Array("classes", (5, 1), classes=_C), "y_pred": _LOGITS},
            logits,
        ),
        Case(
            "soft_targets", f"loss(y_pred, y_true{o})", {"y_true": _SOFT, "y_pred": _LOGITS}, logits
        ),
        Case(
            "soft_targets_probabilities",
            f"loss(y_pred.log(), y_true{o})",
            {"y_true": _SOFT, "y_pred": _PROBS},
            c,
        ),
        Case(
            "label_smoothing",
            f"loss(y_pred, y_true{o}, label_smoothing=0.1)",
            {"y_true": _INDICES, "y_pred": _LOGITS},
            {**logits, "label_smoothing": 0.1},
        ),
        Case(
            "soft_targets_label_smoothing",
            f"loss(y_pred, y_true{o}, label_smoothing=0.2)",
            {"y_true": _SOFT, "y_pred": _LOGITS},
            {**logits, "label_smoothing": 0.2},
        ),
        Case(
            "ignore_class",
            f"loss(y_pred, y_true{o}, ignore_index=-1)",
            {"y_true": _IGNORED, "y_pred": _LOGITS},
            {**logits, "ignore_class": -1},
        ),
        Case(
            "ignore_class_label_smoothing",
            f"loss(y_pred, y_true{o}, ignore_index=-1, label_smoothing=0.1)",
            {"y_true": _IGNORED, "y_pred": _LOGITS},
            {**logits, "ignore_class": -1, "label_smoothing": 0.1},
        ),
        Case(
            "all_ignored",
            f"loss(y_pred, y_true{o}, ignore_index=-1)",
            {"y_true": Array("classes", (5,), classes=_C, ignored=1.0), "y_pred": _LOGITS},
            {**logits, "ignore_class": -1},
        ),
        Case(
            "sum",
            f"loss(y_pred, y_true{o}, reduction='sum')",
            {"y_true": _INDICES, "y_pred": _LOGITS},
            {**logits, "reduction": "sum"},
        ),
        Case(
            "none",
            f"loss(y_pred, y_true{o}, reduction='none')",
            {"y_true": _INDICES, "y_pred": _LOGITS},
            {**logits, "reduction": None},
        ),
        Case(
            "weighted_mean",
            f"(loss(y_pred, y_true{o}, reduction='none') * sample_weight).sum() / sample_weight.sum()",
            {"y_true": _INDICES, "y_pred": _LOGITS, "sample_weight": Array("unit", (5,), 2.0)},
            {**logits, "reduction": "mean_with_sample_weight"},
        ),
        Case(
            "mask",
            f"loss(y_pred[mask], y_true[mask]{o})",
            {"y_true": _INDICES, "y_pred": _LOGITS, "mask": Array("mask", (5,))},
            logits,
        ),
        Case(
            "sequence_classes_last",
            f"loss(y_pred.movedim(-1, 1), y_true{o})",
            {
                "y_true": Array("classes", (2, 3), classes=_C),
                "y_pred": Array("normal", (2, 3, _C), 2.0),
            },
            logits,
        ),
        Case(
            "sequence_axis_1",
            f"loss(y_pred, y_true{o})",
            {
                "y_true": Array("classes", (2, 3), classes=_C),
                "y_pred": Array("normal", (2, _C, 3), 2.0),
            },
            {**logits, "axis": 1},
        ),
    )
    return tuple(
        Case(prefix + case.name, case.torch, case.inputs, case.config, case.grad)
        for case in cases
        if not only or case.name in only
    )


_FOCAL_OPTION_CASES = ("indices_probabilities", "soft_targets", "ignore_class")

_BINARY_PROBS = Array("unit", (4, 3))
_BINARY = Array("binary", (4, 3))
_SCORES = Array("normal", (4, 3), scale=3.0)

_EMBEDDINGS = Array("normal", (8, 3))
_GROUPS = Array("labels", (8,), classes=3)


def _triplet(name: str, options: str, config: Mapping[str, Any], **inputs: Array) -> Case:
    o = f", {options}" if options else ""
    arrays = {"y_true": _GROUPS, "y_pred": _EMBEDDINGS, **inputs}
    return Case(name, f"loss(y_pred, y_true{o})", arrays, dict(config))


TWINS: dict[str, Twin] = {
    "mse": Twin("MSELoss", _pointwise()),
    "l1": Twin("L1Loss", _pointwise()),
    "huber": Twin(
        "HuberLoss",
        (
            *_pointwise(cases="reductions"),
            *_pointwise("delta=0.5", {"delta": 0.5}, prefix="delta_", cases="mean"),
            *_pointwise(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "smooth_l1": Twin(
        "SmoothL1Loss",
        (
            *_pointwise(cases="reductions"),
            *_pointwise("beta=0.5", {"beta": 0.5}, prefix="beta_", cases="mean"),
            *_pointwise("beta=0.0", {"beta": 0.0}, prefix="beta0_", cases="mean"),
        ),
    ),
    "log_cosh": Twin(
        "LogCoshLoss",
        (
            *_pointwise(cases="reductions"),
            *_pointwise(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "quantile": Twin(
        "QuantileLoss",
        (
            *_pointwise(cases="reductions"),
            *_pointwise("q=0.9", {"q": 0.9}, prefix="q09_", cases="mean"),
        ),
    ),
    "general_robust": Twin(
        "GeneralRobustLoss",
        (
            *_pointwise(),
            *(
                c
                for alpha in (0.5, 1.5, 3.0, -5.0, 2.0 - 1e-3)
                for c in _pointwise(
                    f"alpha={alpha!r}, scale=0.7",
                    {"alpha": alpha, "scale": 0.7},
                    prefix=f"alpha_{alpha:g}_",
                    cases="mean",
                )
            ),
            *_pointwise(pred=Array("normal", (4, 3), 1e4), prefix="large_", cases="mean"),
        ),
    ),
    "cauchy": _robust(0.0),
    "geman_mcclure": _robust(-2.0),
    "welsch": _robust(float("-inf")),
    "charbonnier": _robust(1.0),
    "cross_entropy": Twin("CrossEntropyLoss", _class_cases()),
    # CrossEntropyLoss renormalises y_pred and nll_loss does not: on probabilities that sum to 1
    # the values agree, but the gradients differ by the normalisation's 1 / sum(p) in every
    # component, so only the values are compared
    "nll": Twin(
        "CrossEntropyLoss",
        (
            Case(
                "probabilities",
                "loss(y_pred.log(), y_true)",
                {"y_true": _INDICES, "y_pred": _PROBS},
                grad=False,
            ),
            Case(
                "ignore_class",
                "loss(y_pred.log(), y_true, ignore_index=-1)",
                {"y_true": _IGNORED, "y_pred": _PROBS},
                {"ignore_class": -1},
                grad=False,
            ),
            Case(
                "sum",
                "loss(y_pred.log(), y_true, reduction='sum')",
                {"y_true": _INDICES, "y_pred": _PROBS},
                {"reduction": "sum"},
                grad=False,
            ),
        ),
    ),
    "bce": Twin(
        "BCELoss",
        (
            *_pointwise(pred=_BINARY_PROBS, target=_BINARY, cases="reductions"),
            *_pointwise(
                pred=_BINARY_PROBS, target=Array("unit", (4, 3)), prefix="soft_", cases="mean"
            ),
            # torch's kernel divides by max(p (1 - p), 1e-12) at p = 0 or 1; the clamped log has
            # gradient 0 there: compare the values only
            Case(
                "saturated",
                "loss(y_pred, y_true)",
                {"y_true": _BINARY, "y_pred": Array("binary", (4, 3))},
                grad=False,
            ),
            # Keras's BinaryCrossentropy(label_smoothing=eps): y (1 - eps) + eps / 2
            Case(
                "label_smoothing",
                "loss(y_pred, y_true * (1 - 0.2) + 0.5 * 0.2, reduction='sum')",
                {"y_true": _BINARY, "y_pred": _BINARY_PROBS},
                {"label_smoothing": 0.2, "reduction": "sum"},
            ),
        ),
    ),
    "bce_with_logits": Twin(
        "BCELoss",
        (
            *_pointwise(config={"from_logits": True}, pred=_SCORES, target=_BINARY),
            *_pointwise(
                config={"from_logits": True},
                pred=_SCORES,
                target=Array("unit", (4, 3)),
                prefix="soft_",
                cases="mean",
            ),
            *_pointwise(
                config={"from_logits": True},
                pred=Array("normal", (4, 3), 1e4),
                target=_BINARY,
                prefix="large_",
                cases="mean",
            ),
            Case(
                "label_smoothing",
                "loss(y_pred, y_true * (1 - 0.1) + 0.5 * 0.1)",
                {"y_true": _BINARY, "y_pred": _SCORES},
                {"from_logits": True, "label_smoothing": 0.1},
            ),
        ),
    ),
    "kl_div": Twin(
        "KLDivLoss",
        (
            Case(
                "probabilities", "loss(y_pred.log(), y_true)", {"y_true": _SOFT, "y_pred": _PROBS}
            ),
            Case(
                "logits",
                "loss(y_pred.log_softmax(-1), y_true)",
                {"y_true": _SOFT, "y_pred": _LOGITS},
                {"from_logits": True},
            ),
            Case(
                "one_hot_target",
                "loss(y_pred.log(), y_true)",
                {"y_true": Array("one_hot", (5, _C)), "y_pred": _PROBS},
            ),
            Case(
                "sum",
                "loss(y_pred.log(), y_true, reduction='sum')",
                {"y_true": _SOFT, "y_pred": _PROBS},
                {"reduction": "sum"},
            ),
            Case(
                "none",
                "loss(y_pred.log(), y_true, reduction='none').sum(-1)",
                {"y_true": _SOFT, "y_pred": _PROBS},
                {"reduction": None},
            ),
        ),
    ),
    "hinge": Twin(
        "HingeLoss",
        (
            *_pointwise(pred=_SCORES, target=Array("signs", (4, 3)), weight=False),
            *_pointwise(pred=_SCORES, target=_BINARY, prefix="zero_one_", cases="mean"),
            *_pointwise(
                "squared=True, margin=0.5",
                {"squared": True, "margin": 0.5},
                pred=_SCORES,
                target=Array("signs", (4, 3)),
                prefix="squared_",
                cases="mean",
            ),
        ),
    ),
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
    "sigmoid_focal": Twin(
        "SigmoidFocalLoss",
        (
            Case(
                "probabilities_as_logits",
                "loss(torch.logit(y_pred), y_true)",
                {"y_true": _BINARY, "y_pred": _BINARY_PROBS},
            ),
            *_pointwise(
                config={"from_logits": True}, pred=_SCORES, target=_BINARY, cases="reductions"
            ),
            *_pointwise(
                "alpha=None, gamma=0.5",
                {"alpha": None, "gamma": 0.5, "from_logits": True},
                pred=_SCORES,
                target=_BINARY,
                prefix="fractional_gamma_",
                cases="mean",
            ),
            *_pointwise(
                "alpha=0.75, gamma=0.0",
                {"alpha": 0.75, "gamma": 0.0, "from_logits": True},
                pred=_SCORES,
                target=Array("unit", (4, 3)),
                prefix="soft_targets_gamma0_",
                cases="mean",
            ),
            *_pointwise(
                config={"from_logits": True},
                pred=Array("normal", (4, 3), 1e4),
                target=_BINARY,
                prefix="large_",
                cases="mean",
            ),
            Case(
                "label_smoothing",
                "loss(y_pred, y_true * (1 - 0.1) + 0.5 * 0.1)",
                {"y_true": _BINARY, "y_pred": _SCORES},
                {"from_logits": True, "label_smoothing": 0.1},
            ),
        ),
    ),
    "focal": Twin(
        "FocalLoss",
        (
            # the machinery shared with CrossEntropyLoss (masks, weights, sequences) is covered
            # there; these are the paths of the focal computation itself
            *_class_cases(
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
            *_class_cases(
                "alpha=[0.25, 0.5, 0.75, 1.0]",
                {"alpha": [0.25, 0.5, 0.75, 1.0]},
                prefix="class_alpha_",
                only=_FOCAL_OPTION_CASES,
            ),
            *_class_cases(
                "alpha=0.25, gamma=0.5",
                {"alpha": 0.25, "gamma": 0.5},
                prefix="alpha_gamma_",
                only=_FOCAL_OPTION_CASES,
            ),
        ),
    ),
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
