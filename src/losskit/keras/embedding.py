"""Embedding and ranking losses for Keras: cosine embedding, BPR and the triplet loss with online
mining. Their PyTorch forms take two or three tensors; in Keras everything the model predicts
is ``y_pred`` and ``y_true`` holds the labels:

* :class:`CosineEmbeddingLoss`: ``y_pred`` ``(N, 2, D)``, the two embeddings of each pair
  stacked on axis -2; ``y_true`` ``(N,)`` labels +1 (similar) / -1 (dissimilar);
* :class:`BPRLoss`: ``y_pred`` ``(N, 1 + K)``, the positive item's score then ``K`` negatives'
  scores; ``y_true`` is not used (pass zeros: Keras's ``fit`` wants a target);
* :class:`TripletLoss`: ``y_pred`` ``(N, D)`` embeddings, ``y_true`` ``(N,)`` integer class
  labels (TensorFlow Addons' ``TripletSemiHardLoss`` convention).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import check_number, fail, shape_str
from losskit.keras._base import (
    LosskitLoss,
    check_bool,
    check_choice,
    get_keras_mask,
    known_shape,
    safe_divide,
    shapes_agree,
)

__all__ = ["BPRLoss", "CosineEmbeddingLoss", "TripletLoss"]

#: torch's ``cosine_embedding_loss`` adds this to both squared norms
_COSINE_EPS = 1e-12
#: ``F.normalize``'s floor on the norm
_NORMALIZE_EPS = 1e-12


@keras.saving.register_keras_serializable(package="losskit")
class CosineEmbeddingLoss(LosskitLoss):
    r"""Cosine embedding loss per pair: :math:`1 - \cos(x_1, x_2)` for ``y_true = 1``,
    :math:`\max(0, \cos(x_1, x_2) - m)` otherwise, with torch's cosine
    :math:`x_1 \cdot x_2 / \sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}`.

    ``y_pred`` ``(N, 2, D)`` (``x1 = y_pred[:, 0]``, ``x2 = y_pred[:, 1]``), ``y_true``
    ``(N,)``: a positive label is +1, anything else -1. ``margin`` in [-1, 1].
    """

    _options = ("margin",)

    def __init__(self, margin: float = 0.0, **kwargs: Any) -> None:
        self.margin = check_number(
            "losskit.keras.CosineEmbeddingLoss", "margin", margin, ge=-1.0, le=1.0
        )
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        shape = known_shape(y_pred)
        if len(shape) < 2 or shape[-2] not in (2, None):
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(shape)}",
                "(N, 2, D): the two embeddings of each pair on axis -2",
            )
        if len(y_true.shape) == len(shape) - 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        if not shapes_agree(known_shape(y_true), shape[:-2]):
            fail(
                self.loss_name,
                "y_true",
                f"has shape {shape_str(known_shape(y_true))}",
                f"{shape_str(shape[:-2])}, one label per pair of y_pred {shape_str(shape)}",
            )
        x1, x2 = y_pred[..., 0, :], y_pred[..., 1, :]
        dot = ops.sum(x1 * x2, axis=-1)
        norms = (ops.sum(ops.square(x1), axis=-1) + _COSINE_EPS) * (
            ops.sum(ops.square(x2), axis=-1) + _COSINE_EPS
        )
        cos = dot / ops.sqrt(norms)
        return ops.where(y_true > 0, 1.0 - cos, ops.relu(cos - self.margin)), None


@keras.saving.register_keras_serializable(package="losskit")
class BPRLoss(LosskitLoss):
    r"""Bayesian Personalised Ranking, :math:`-\log\sigma(s^+ - s^-_k)` for each of the ``K``
    negatives of each positive, computed with ``softplus`` (finite for any score gap).

    ``y_pred`` ``(..., 1 + K)``: the positive's score, then the negatives'; the losses have shape
    ``(..., K)`` (torch's ``(N,)`` for ``K = 1`` is ``[..., 0]`` of these). ``y_true`` is ignored.
    A ``sample_weight`` of shape ``(N,)`` weights the ``K`` pairs of a positive alike.
    """

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        shape = known_shape(y_pred)
        if not shape or (shape[-1] is not None and shape[-1] < 2):
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(shape)}",
                "(..., 1 + K): a positive score then K >= 1 negative scores",
            )
        return ops.softplus(y_pred[..., 1:] - y_pred[..., :1]), None


TRIPLET_DISTANCES = ("euclidean", "squared_euclidean", "cosine")
TRIPLET_MINERS = ("batch_hard", "batch_all")
TRIPLET_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_positive")


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
        margin: float = 0.2,
        distance: str = "euclidean",
        miner: str = "batch_hard",
        soft_margin: bool = False,
        reduction: str = "sum_over_batch_size",
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.TripletLoss"
        self.margin = check_number(name, "margin", margin, ge=0.0)
        self.distance = check_choice(name, "distance", distance, TRIPLET_DISTANCES)
        self.miner = check_choice(name, "miner", miner, TRIPLET_MINERS)
        self.soft_margin = check_bool(name, "soft_margin", soft_margin)
        self.triplet_reduction = check_choice(name, "reduction", reduction, TRIPLET_REDUCTIONS)
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
