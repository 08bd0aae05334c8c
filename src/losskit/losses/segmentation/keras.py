"""The overlap losses for Keras: Dice, Jaccard and Tversky, with the options of
:mod:`losskit.losses.segmentation.options` (the same defaults and bounds as the PyTorch losses).

Keras conventions: ``(y_true, y_pred)``; classes on the last axis, ``y_pred``
``(N, *spatial, C)``; ``y_true`` class indices ``(N, *spatial)`` (or ``(N, *spatial, 1)``) or
one-hot / probabilities ``(N, *spatial, C)`` in ``mode="multiclass"``, 0/1 labels of
``y_pred``'s shape in ``"multilabel"`` and ``"binary"`` (one channel; ``(N, *spatial)``
labels too). ``from_logits=True`` by default, as the PyTorch losses and their declaration
(Keras's own ``Dice`` has no such option); ``ignore_class`` is PyTorch's ``ignore_index``.

The losses are the PyTorch ``reduction="none"`` entries, per class over the batch ``(C',)`` or
per image and class ``(N, C')`` (``per_image``), so ``"sum_over_batch_size"`` is the PyTorch
``"mean"``, ``"sum"`` its ``"sum"``, and a per-image ``sample_weight`` ``(N,)`` weighs the
images (``"mean_with_sample_weight"``). PyTorch's ``class_weight`` has no twin here. Class
indices are one-hot encoded (the PyTorch losses' chunked sums are torch-only).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import check_number, fail, shape_str
from losskit._keras import LosskitLoss, check_bool, known_shape, safe_divide, shapes_agree
from losskit.losses.segmentation.options import (
    ABSENT,
    FROM_LOGITS,
    INCLUDE_BACKGROUND,
    LOG_LOSS,
    MODE,
    MODES,
    PER_IMAGE,
    SMOOTH,
    SQUARED,
    TVERSKY_ALPHA,
    TVERSKY_BETA,
)

__all__ = ["DiceLoss", "JaccardLoss", "TverskyLoss"]

#: smp's clamp of the score before the log (as the PyTorch losses)
_LOG_EPS = 1e-7


def _check_choice(loss: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        fail(loss, name, f"is {value!r}", "one of " + ", ".join(map(repr, choices)))
    return value


class _OverlapLoss(LosskitLoss):
    """Shared by the overlap losses: targets, the per-class sums and the entries; subclasses
    give ``_score(intersection, volume, counts)``."""

    _integer_target = True
    _options = (
        "mode",
        "from_logits",
        "smooth",
        "smooth_denominator",
        "per_image",
        "include_background",
        "ignore_class",
        "absent",
        "log_loss",
    )
    _squared = False

    def __init__(
        self,
        *,
        mode: str,
        from_logits: bool,
        smooth: float,
        smooth_denominator: float | None,
        per_image: bool,
        include_background: bool,
        ignore_class: int | None,
        absent: str,
        log_loss: bool,
        **kwargs: Any,
    ) -> None:
        name = f"losskit.keras.{type(self).__name__}"
        self.mode = _check_choice(name, "mode", mode, MODES)
        self.from_logits = check_bool(name, "from_logits", from_logits)
        self.smooth = SMOOTH.check(name, smooth)
        self.smooth_denominator = (
            None
            if smooth_denominator is None
            else check_number(name, "smooth_denominator", smooth_denominator, ge=0.0)
        )
        self.per_image = check_bool(name, "per_image", per_image)
        self.include_background = check_bool(name, "include_background", include_background)
        if ignore_class is not None and (
            isinstance(ignore_class, bool) or not isinstance(ignore_class, int)
        ):
            fail(name, "ignore_class", f"is {ignore_class!r}", "an int or None")
        self.ignore_class = ignore_class
        self.absent = _check_choice(name, "absent", absent, ("smooth", "zero"))
        self.log_loss = check_bool(name, "log_loss", log_loss)
        super().__init__(**kwargs)

    @property
    def _denominator_smoothing(self) -> float:
        return self.smooth if self.smooth_denominator is None else self.smooth_denominator

    def _bad_target(self, y_true: Any, y_pred: Any) -> None:
        shape = known_shape(y_pred)
        expected = (
            f"{shape_str(shape[:-1])} class indices or {shape_str(shape)} probabilities"
            if self.mode == "multiclass"
            else f"{shape_str(shape)} labels"
        )
        fail(
            self.loss_name,
            "y_true",
            f"has shape {shape_str(known_shape(y_true))}",
            f"{expected} for y_pred {shape_str(shape)} (classes last) in mode={self.mode!r}",
        )

    def _pixels(self, y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
        """``(p, y, valid)``: probabilities and targets ``(N, pixels, C)``, and which entries
        count (``None``: all), broadcastable to them."""
        classes = y_pred.shape[-1]
        if len(y_pred.shape) < 2 or classes is None or classes == 0:
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(known_shape(y_pred))}",
                "(N, *spatial, C) scores, classes last",
            )
        if self.mode == "binary" and classes != 1:
            fail(
                self.loss_name,
                "y_pred",
                f"has shape {shape_str(known_shape(y_pred))}",
                "one channel, (N, *spatial, 1), in mode='binary'",
            )
        t, r = len(y_true.shape), len(y_pred.shape)
        sparse = self.mode == "multiclass" and (
            t == r - 1 or (t == r and y_true.shape[-1] == 1 and classes != 1)
        )
        if self.mode == "binary" and t == r - 1:
            y_true = ops.expand_dims(y_true, -1)
        elif sparse and t == r:
            y_true = ops.squeeze(y_true, axis=-1)
        expected = known_shape(y_pred)[:-1] if sparse else known_shape(y_pred)
        if not shapes_agree(known_shape(y_true), expected):
            self._bad_target(y_true, y_pred)
        if self.from_logits:
            multiclass = self.mode == "multiclass"
            p = ops.softmax(y_pred, axis=-1) if multiclass else ops.sigmoid(y_pred)
        else:
            p = y_pred
        n = ops.shape(y_pred)[0]
        p = ops.reshape(p, (n, -1, classes))
        valid = None
        if sparse:
            index = ops.reshape(ops.cast(y_true, "int32"), (n, -1))
            if self.ignore_class is not None:
                valid = ops.expand_dims(index != self.ignore_class, -1)
                index = ops.where(index == self.ignore_class, ops.zeros_like(index), index)
            y = ops.one_hot(index, classes, dtype=p.dtype)
        else:
            y = ops.reshape(y_true, (n, -1, classes))
            if self.ignore_class is not None and self.mode != "multiclass":
                valid = y != ops.cast(self.ignore_class, y.dtype)
            y = ops.cast(y, p.dtype)
        if valid is not None:
            p = ops.where(valid, p, ops.zeros_like(p))
            y = ops.where(valid, y, ops.zeros_like(y))
        return p, y, valid

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        p, y, valid = self._pixels(y_true, y_pred)
        inter = ops.sum(p * y, axis=1)
        volume = ops.sum(p * p if self._squared else p, axis=1)
        counts = ops.sum(y * y if self._squared else y, axis=1)
        if valid is None:
            counted = ops.ones_like(inter, dtype="bool")
        else:
            counted = ops.any(ops.broadcast_to(valid, ops.shape(p)), axis=1)
        if not self.include_background and p.shape[-1] > 1:
            inter, volume, counts, counted = (t[:, 1:] for t in (inter, volume, counts, counted))
        if not self.per_image:
            inter, volume, counts = (ops.sum(t, axis=0) for t in (inter, volume, counts))
            counted = ops.any(counted, axis=0)
        score = self._score(inter, volume, counts)
        losses = -ops.log(ops.maximum(score, _LOG_EPS)) if self.log_loss else 1.0 - score
        if self.absent == "zero":
            losses = ops.where(counts > 0, losses, ops.zeros_like(losses))
        return losses, counted

    def _score(self, inter: Any, volume: Any, counts: Any) -> Any:
        raise NotImplementedError


def _ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, and 1 where the denominator is 0 (as the PyTorch losses)."""
    return ops.where(
        denominator == 0, ops.ones_like(numerator), safe_divide(numerator, denominator)
    )


@keras.saving.register_keras_serializable(package="losskit")
class DiceLoss(_OverlapLoss):
    r"""Soft Dice loss, one minus :math:`(2 I + s) / (P + G + s')` per class (or per image and
    class), as losskit's PyTorch ``dice_loss``; ``squared`` sums :math:`p^2` and :math:`y^2`
    in the denominator."""

    _options = (*_OverlapLoss._options, "squared")

    def __init__(
        self,
        mode: str = MODE.default,
        from_logits: bool = FROM_LOGITS.default,
        smooth: float = SMOOTH.default,
        smooth_denominator: float | None = None,
        squared: bool = SQUARED.default,
        per_image: bool = PER_IMAGE.default,
        include_background: bool = INCLUDE_BACKGROUND.default,
        ignore_class: int | None = None,
        absent: str = ABSENT.default,
        log_loss: bool = LOG_LOSS.default,
        **kwargs: Any,
    ) -> None:
        self.squared = check_bool(f"losskit.keras.{type(self).__name__}", "squared", squared)
        self._squared = self.squared
        super().__init__(
            mode=mode,
            from_logits=from_logits,
            smooth=smooth,
            smooth_denominator=smooth_denominator,
            per_image=per_image,
            include_background=include_background,
            ignore_class=ignore_class,
            absent=absent,
            log_loss=log_loss,
            **kwargs,
        )

    def _score(self, inter: Any, volume: Any, counts: Any) -> Any:
        return _ratio(2.0 * inter + self.smooth, volume + counts + self._denominator_smoothing)


@keras.saving.register_keras_serializable(package="losskit")
class JaccardLoss(DiceLoss):
    r"""Soft Jaccard (IoU) loss, one minus :math:`(I + s) / (P + G - I + s')`, as losskit's
    PyTorch ``jaccard_loss``; options as :class:`DiceLoss`."""

    def _score(self, inter: Any, volume: Any, counts: Any) -> Any:
        denominator = volume + counts - inter + self._denominator_smoothing
        return _ratio(inter + self.smooth, denominator)


@keras.saving.register_keras_serializable(package="losskit")
class TverskyLoss(_OverlapLoss):
    r"""Tversky loss, one minus :math:`(TP + s) / (TP + \alpha FP + \beta FN + s')`, as
    losskit's PyTorch ``tversky_loss``: ``alpha`` weighs the false positives, ``beta`` the false
    negatives; other options as :class:`DiceLoss` (without ``squared``)."""

    _options = (*_OverlapLoss._options, "alpha", "beta")

    def __init__(
        self,
        mode: str = MODE.default,
        from_logits: bool = FROM_LOGITS.default,
        alpha: float = TVERSKY_ALPHA.default,
        beta: float = TVERSKY_BETA.default,
        smooth: float = SMOOTH.default,
        smooth_denominator: float | None = None,
        per_image: bool = PER_IMAGE.default,
        include_background: bool = INCLUDE_BACKGROUND.default,
        ignore_class: int | None = None,
        absent: str = ABSENT.default,
        log_loss: bool = LOG_LOSS.default,
        **kwargs: Any,
    ) -> None:
        name = f"losskit.keras.{type(self).__name__}"
        self.alpha = TVERSKY_ALPHA.check(name, alpha)
        self.beta = TVERSKY_BETA.check(name, beta)
        super().__init__(
            mode=mode,
            from_logits=from_logits,
            smooth=smooth,
            smooth_denominator=smooth_denominator,
            per_image=per_image,
            include_background=include_background,
            ignore_class=ignore_class,
            absent=absent,
            log_loss=log_loss,
            **kwargs,
        )

    def _score(self, inter: Any, volume: Any, counts: Any) -> Any:
        false_positives = volume - inter
        false_negatives = counts - inter
        denominator = (
            inter
            + self.alpha * false_positives
            + self.beta * false_negatives
            + self._denominator_smoothing
        )
        return _ratio(inter + self.smooth, denominator)
