"""The triplet loss with online mining for Keras, with the options of the label form in
:mod:`losskit.losses.triplet.options` (the same defaults and bounds as the PyTorch
``triplet_loss``; the Keras loss offers a subset of its distances and miners). ``y_pred``
``(N, D)`` embeddings, ``y_true`` ``(N,)`` integer class labels (TensorFlow Addons'
``TripletSemiHardLoss`` convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from losskit._errors import fail, shape_str
from losskit._keras import (
    LosskitLoss,
    check_bool,
    get_keras_mask,
    known_shape,
    safe_divide,
    shapes_agree,
)
from losskit.losses.triplet.options import DISTANCE, MARGIN, MINER, SOFT_MARGIN

__all__ = ["TripletLoss"]

#: ``F.normalize``'s floor on the norm
_NORMALIZE_EPS = 1e-12

# a subset of the PyTorch loss's distances and miners (no callables, no semi_hard); reductions
# by Keras's names, plus pytorch-metric-learning's mean_positive
_DISTANCES = ("euclidean", "squared_euclidean", "cosine")
_MINERS = ("batch_hard", "batch_all")
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_positive")


def _check_choice(loss: str, name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        fail(loss, name, f"is {value!r}", f"one of {', '.join(map(repr, choices))}")
    return value  # type: ignore[return-value]


def _safe_sqrt(x: Any) -> Any:
    """``sqrt`` with gradient 0 (not ``inf``) at 0: duplicate embeddings stay finite."""
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, ops.ones_like(x))), 0.0)


def _normalize(x: Any) -> Any:
    norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
    return x / ops.maximum(norm, _NORMALIZE_EPS)


@keras.saving.register_keras_serializable(package="losskit")
class TripletLoss(LosskitLoss):
    r"""Triplet loss with online mining from a batch of embeddings and their labels:
    :math:`h(d(x_a, x_p) - d(x_a, x_n) + m)`, :math:`h = \max(0, \cdot)` or ``softplus``
    with ``soft_margin=True``.

    ``y_pred`` ``(N, D)`` embeddings, ``y_true`` ``(N,)`` (or ``(N, 1)``) integer labels.
    ``miner``: ``"batch_hard"`` (per anchor the farthest positive and the closest negative) or
    ``"batch_all"`` (every valid triplet; builds an ``N x N x N`` tensor, fine for the batch
    sizes of metric learning). ``distance``: ``"euclidean"``, ``"squared_euclidean"`` or
    ``"cosine"`` (``1 - cos``). ``margin >= 0``.

    ``reduction``: ``"sum_over_batch_size"`` (or ``"mean"``, the default) averages over the
    mined triplets, ``"sum"`` sums them, ``"mean_positive"`` averages over the triplets with a
    positive loss (pytorch-metric-learning's default). No triplet gives 0.0. The loss is one
    number per batch, so ``sample_weight`` is refused; a Keras mask on ``y_pred`` removes the
    masked rows from the batch.
    """

    _options = ("margin", "distance", "miner", "soft_margin")
    _integer_target = True

    def __init__(
        self,
        margin: float = MARGIN.default,
        distance: str = DISTANCE.default,
        miner: str = MINER.default,
        soft_margin: bool = SOFT_MARGIN.default,
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.TripletLoss"
        self.margin = MARGIN.check(name, margin)
        self.distance = _check_choice(name, "distance", distance, _DISTANCES)
        self.miner = _check_choice(name, "miner", miner, _MINERS)
        self.soft_margin = check_bool(name, "soft_margin", soft_margin)
        self.triplet_reduction = _check_choice(name, "reduction", reduction, _REDUCTIONS)
        # the loss is reduced in _losses; Keras sees one number
        super().__init__(reduction="sum", **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["reduction"] = self.triplet_reduction
        return config

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None:
            fail(
                self.loss_name,
                "sample_weight",
                "was given",
                "None: the triplet loss is one number per batch (mask rows instead)",
            )
        mask = get_keras_mask(y_pred)
        with keras.name_scope(self.name):
            y_true, y_pred = self._convert(y_true, y_pred)
            rows = None if mask is None else ops.cast(mask, "bool")
            return self._triplet(y_true, y_pred, rows)

    def _check(self, labels: Any, x: Any) -> Any:
        shape = known_shape(x)
        if len(shape) != 2:
            fail(self.loss_name, "y_pred", f"has shape {shape_str(shape)}", "(N, D) embeddings")
        if len(labels.shape) == 2 and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        got = known_shape(labels)
        if len(got) != 1 or not shapes_agree(got, shape[:1]):
            fail(
                self.loss_name,
                "y_true",
                f"has shape {shape_str(got)}",
                f"({shape[0]},), one label per row of y_pred",
            )
        return labels

    def _matrix(self, x: Any) -> Any:
        """The ``(N, N)`` distance matrix from one Gram product, exactly 0 on the diagonal."""
        n = ops.shape(x)[0]
        diagonal = ops.cast(ops.eye(n), "bool")
        gram = ops.matmul(x, ops.transpose(x))
        if self.distance == "cosine":
            return ops.where(diagonal, 0.0, 1.0 - gram)
        sq = ops.sum(ops.square(x), axis=1)
        d2 = ops.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
        d2 = ops.where(diagonal, 0.0, d2)
        return _safe_sqrt(d2) if self.distance == "euclidean" else d2

    def _paired(self, x1: Any, x2: Any) -> Any:
        if self.distance == "cosine":
            return 1.0 - ops.sum(x1 * x2, axis=-1)
        d2 = ops.sum(ops.square(x1 - x2), axis=-1)
        return _safe_sqrt(d2) if self.distance == "euclidean" else d2

    def _hinge(self, z: Any) -> Any:
        return ops.softplus(z) if self.soft_margin else ops.relu(z)

    def _reduce(self, total: Any, count: Any, active: Any) -> Any:
        if self.triplet_reduction == "sum":
            return total
        denominator = active if self.triplet_reduction == "mean_positive" else count
        return safe_divide(total, ops.cast(denominator, total.dtype))

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        return self._triplet(y_true, y_pred, None), None

    def _triplet(self, y_true: Any, y_pred: Any, rows: Any) -> Any:
        labels = self._check(y_true, y_pred)
        x = _normalize(y_pred) if self.distance == "cosine" else y_pred
        n = ops.shape(x)[0]
        same = labels[:, None] == labels[None, :]
        if rows is not None:
            both = ops.logical_and(rows[:, None], rows[None, :])
            same = ops.logical_and(same, both)
        not_self = ops.logical_not(ops.cast(ops.eye(n), "bool"))
        positive = ops.logical_and(same, not_self)
        negative = ops.logical_not(labels[:, None] == labels[None, :])
        if rows is not None:
            negative = ops.logical_and(negative, both)
        d = self._matrix(x)
        if self.miner == "batch_hard":
            far = ops.argmax(ops.where(positive, d, -float("inf")), axis=1)
            near = ops.argmin(ops.where(negative, d, float("inf")), axis=1)
            valid = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
            d_pos = self._paired(x, ops.take(x, far, axis=0))
            d_neg = self._paired(x, ops.take(x, near, axis=0))
            losses = ops.where(valid, self._hinge(d_pos - d_neg + self.margin), 0.0)
            count = ops.sum(ops.cast(valid, "int32"))
        else:
            keep = ops.logical_and(positive[:, :, None], negative[:, None, :])
            z = d[:, :, None] - d[:, None, :] + self.margin
            losses = ops.where(keep, self._hinge(z), 0.0)
            count = ops.sum(ops.cast(keep, "int32"))
        active = ops.sum(ops.cast(losses > 0, "int32"))
        return self._reduce(ops.sum(losses), count, active)
