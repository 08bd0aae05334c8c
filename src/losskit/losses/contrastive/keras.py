"""The contrastive losses for Keras: InfoNCE (in-batch negatives), NT-Xent, SupCon, CLIP and
SigLIP, with the options of :mod:`losskit.losses.contrastive.options` (the same defaults and
bounds as the PyTorch losses) and their numbers.

Everything the model predicts is ``y_pred``:

* the label losses (``NTXentLoss``, ``SupConLoss``): ``y_pred`` ``(N, D)`` embeddings and
  ``y_true`` ``(N,)`` (or ``(N, 1)``) integer labels, as for ``TripletLoss``;
* the pair losses (``InfoNCELoss``, ``ClipLoss``, ``SigLipLoss``): ``y_pred`` ``(N, 2, D)``, the
  two embeddings of each pair stacked on axis -2 (query and positive key, image and text), and
  ``y_true`` unused (Keras wants one: pass zeros).

These are the dense formulas (one ``N x N`` matrix, fine for the batches Keras models train
with); the PyTorch losses tile it. ``logit_scale`` and ``logit_bias`` are fixed numbers here. Each
loss is one number per batch (or, with ``reduction=None``, one per row: the PyTorch ``"none"``),
reduced as the PyTorch loss reduces it, so ``sample_weight`` and Keras masks are refused.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import fail, shape_str
from losskit._keras import (
    LosskitLoss,
    get_keras_mask,
    known_shape,
    safe_divide,
    shapes_agree,
)
from losskit.losses.contrastive.options import (
    CLIP_LOGIT_SCALE,
    LOGIT_BIAS,
    SIGLIP_LOGIT_SCALE,
    TEMPERATURE,
)

__all__ = ["ClipLoss", "InfoNCELoss", "NTXentLoss", "SigLipLoss", "SupConLoss"]

#: ``F.normalize``'s floor on the norm
_NORMALIZE_EPS = 1e-12
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "none", None)


def _normalize(x: Any) -> Any:
    norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
    return x / ops.maximum(norm, _NORMALIZE_EPS)


def _masked_logsumexp(z: Any, keep: Any) -> Any:
    """Log-sum-exp of each row over ``keep``; ``-inf`` for a row with none, with a finite
    gradient (a row of ``-inf`` gives NaN in logsumexp's gradient)."""
    some = ops.any(keep, axis=1, keepdims=True)
    kept = ops.where(ops.logical_and(keep, some), z, ops.where(some, -float("inf"), 0.0))
    return ops.where(ops.squeeze(some, 1), ops.logsumexp(kept, axis=1), -float("inf"))


class _ContrastiveLoss(LosskitLoss):
    """One number per batch, reduced as the PyTorch loss reduces it: ``_rows`` returns the
    per-row losses and the count the mean divides by."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", **kwargs: Any) -> None:
        if reduction not in _REDUCTIONS:
            fail(
                self.loss_name,
                "reduction",
                f"is {reduction!r}",
                f"one of {', '.join(map(repr, _REDUCTIONS))}",
            )
        self.contrastive_reduction = reduction
        # reduced in __call__; Keras sees the result as it is
        super().__init__(reduction=None, **kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["reduction"] = self.contrastive_reduction
        return config

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        if sample_weight is not None:
            fail(
                self.loss_name,
                "sample_weight",
                "was given",
                "None: the loss is one number per batch of pairs",
            )
        if get_keras_mask(y_pred) is not None:
            fail(
                self.loss_name,
                "y_pred",
                "has a Keras mask",
                "no mask: every row of the batch takes part in every other row's loss",
            )
        with keras.name_scope(self.name):
            y_true, y_pred = self._convert(y_true, y_pred)
            return self._reduce(*self._rows(y_true, y_pred))

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        return self._reduce(*self._rows(y_true, y_pred)), None

    def _reduce(self, losses: Any, count: Any) -> Any:
        if self.contrastive_reduction in (None, "none"):
            return losses
        total = ops.sum(losses)
        if self.contrastive_reduction == "sum":
            return total
        return safe_divide(total, ops.cast(count, total.dtype))

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        raise NotImplementedError


# ------------------------------------------------------------------------ the pair losses


class _PairLoss(_ContrastiveLoss):
    def _pairs(self, y_pred: Any) -> tuple[Any, Any]:
        shape = known_shape(y_pred)
        if len(shape) != 3 or shape[1] not in (2, None):
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(shape)}",
                "(N, 2, D): the two embeddings of each pair on axis -2",
            )
        return y_pred[:, 0, :], y_pred[:, 1, :]

    def _diagonal(self, z: Any) -> Any:
        return ops.diagonal(z)


@keras.saving.register_keras_serializable(package="losskit")
class InfoNCELoss(_PairLoss):
    r"""InfoNCE with in-batch negatives: query ``i`` must pick key ``i`` among the batch's
    keys, :math:`\ell_i = \operatorname{lse}_j(c_{ij}/\tau) - c_{ii}/\tau`, ``c`` the cosine
    similarities. ``y_pred`` ``(N, 2, D)``: queries ``y_pred[:, 0]``, keys ``y_pred[:, 1]``."""

    _options = ("temperature",)

    def __init__(self, temperature: float = TEMPERATURE.default, **kwargs: Any) -> None:
        self.temperature = TEMPERATURE.check("losskit.keras.InfoNCELoss", temperature)
        super().__init__(**kwargs)

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        q, k = self._pairs(y_pred)
        z = ops.matmul(_normalize(q), ops.transpose(_normalize(k))) / self.temperature
        losses = ops.logsumexp(z, axis=1) - self._diagonal(z)
        return losses, ops.shape(z)[0]


@keras.saving.register_keras_serializable(package="losskit")
class ClipLoss(_PairLoss):
    r"""CLIP's symmetric InfoNCE: :math:`z = s\,XY^\top`, :math:`\ell_i =
    \tfrac12(\operatorname{lse}_j z_{ij} - z_{ii}) + \tfrac12(\operatorname{lse}_j z_{ji} -
    z_{ii})`. ``y_pred`` ``(N, 2, D)``: images ``y_pred[:, 0]``, texts ``y_pred[:, 1]``, used as
    given; ``logit_scale > 0`` a number."""

    _options = ("logit_scale",)

    def __init__(self, logit_scale: float = CLIP_LOGIT_SCALE.default, **kwargs: Any) -> None:
        self.logit_scale = CLIP_LOGIT_SCALE.check("losskit.keras.ClipLoss", logit_scale)
        super().__init__(**kwargs)

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        image, text = self._pairs(y_pred)
        z = self.logit_scale * ops.matmul(image, ops.transpose(text))
        diagonal = self._diagonal(z)
        rows = ops.logsumexp(z, axis=1) - diagonal
        cols = ops.logsumexp(z, axis=0) - diagonal
        return 0.5 * rows + 0.5 * cols, ops.shape(z)[0]


@keras.saving.register_keras_serializable(package="losskit")
class SigLipLoss(_PairLoss):
    r"""SigLIP's pairwise sigmoid loss: :math:`z = s\,XY^\top + b`, :math:`\ell_i = \sum_j
    \log(1 + e^{-y_{ij} z_{ij}})` with :math:`y_{ij} = 1` for ``i = j``, else -1; the mean is
    over the images (open_clip's ``SigLipLoss``). ``y_pred`` ``(N, 2, D)``: images and texts;
    ``logit_scale > 0`` and ``logit_bias`` numbers."""

    _options = ("logit_scale", "logit_bias")

    def __init__(
        self,
        logit_scale: float = SIGLIP_LOGIT_SCALE.default,
        logit_bias: float = LOGIT_BIAS.default,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.SigLipLoss"
        self.logit_scale = SIGLIP_LOGIT_SCALE.check(name, logit_scale)
        self.logit_bias = LOGIT_BIAS.check(name, logit_bias)
        super().__init__(**kwargs)

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        image, text = self._pairs(y_pred)
        z = self.logit_scale * ops.matmul(image, ops.transpose(text)) + self.logit_bias
        n = ops.shape(z)[0]
        signs = 2.0 * ops.eye(n, dtype=z.dtype) - 1.0
        return ops.sum(ops.softplus(-signs * z), axis=1), n


# ----------------------------------------------------------------------- the label losses


class _LabelLoss(_ContrastiveLoss):
    _integer_target = True
    _options = ("temperature",)

    def __init__(self, temperature: float = TEMPERATURE.default, **kwargs: Any) -> None:
        self.temperature = TEMPERATURE.check(f"losskit.keras.{type(self).__name__}", temperature)
        super().__init__(**kwargs)

    def _similarities(self, y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
        """``(z, same, positive)``: cosine similarities / temperature, same-label pairs, and
        same-label pairs of two different rows."""
        shape = known_shape(y_pred)
        if len(shape) != 2:
            fail(self.loss_name, "y_pred", f"has shape {shape_str(shape)}", "(N, D) embeddings")
        labels = y_true
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
        x = _normalize(y_pred)
        z = ops.matmul(x, ops.transpose(x)) / self.temperature
        same = labels[:, None] == labels[None, :]
        other = ops.logical_not(ops.cast(ops.eye(ops.shape(z)[0]), "bool"))
        return z, same, ops.logical_and(same, other)


@keras.saving.register_keras_serializable(package="losskit")
class NTXentLoss(_LabelLoss):
    r"""NT-Xent (SimCLR) with labels: for every pair ``(a, p)`` of different rows with one
    label, :math:`-\log \frac{e^{z_{ap}}}{e^{z_{ap}} + \sum_{n: y_n \ne y_a} e^{z_{an}}}`,
    ``z`` the cosine similarities / ``temperature``. The mean is over those pairs; ``None``
    gives each row's sum over its pairs."""

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        z, same, positive = self._similarities(y_true, y_pred)
        negative_lse = _masked_logsumexp(z, ops.logical_not(same))
        terms = ops.where(positive, ops.softplus(negative_lse[:, None] - z), 0.0)
        return ops.sum(terms, axis=1), ops.sum(ops.cast(positive, "int32"))


@keras.saving.register_keras_serializable(package="losskit")
class SupConLoss(_LabelLoss):
    r"""Supervised contrastive loss (Khosla et al., :math:`\mathcal{L}_{out}`): per anchor,
    minus the mean over its positives of the log-softmax over every other row of ``z``, the
    cosine similarities / ``temperature``. An anchor without a positive has loss 0; the mean is
    over the anchors with one."""

    def _rows(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        z, _, positive = self._similarities(y_true, y_pred)
        n = ops.shape(z)[0]
        others = ops.logical_not(ops.cast(ops.eye(n), "bool"))
        lse = _masked_logsumexp(z, others)
        count = ops.sum(ops.cast(positive, z.dtype), axis=1)
        mean = ops.sum(ops.where(positive, z, 0.0), axis=1) / ops.maximum(count, 1.0)
        losses = ops.where(count > 0, lse - mean, 0.0)
        return losses, ops.sum(ops.cast(count > 0, "int32"))
