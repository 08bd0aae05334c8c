"""The classification losses for Keras: cross-entropy (class indices or probabilities) and
binary cross-entropy, with the options of :mod:`losskit.losses.classification.options`.

Keras conventions: ``(y_true, y_pred)``; ``from_logits=False`` (``y_pred`` holds probabilities)
by default wherever Keras has the option, where the PyTorch losses take logits; classes on the
last axis (``axis=-1``), where PyTorch puts them on dimension 1. Logs of probabilities are
clamped at -100, as torch's ``binary_cross_entropy`` does, so probabilities of exactly 0 and 1
give finite losses and gradients; logits are handled in log-space (finite for logits of 1e4).
:class:`ScoresLoss` and :func:`log_probabilities` are shared with the softmax focal loss
(:mod:`losskit.losses.imbalance.keras`).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._errors import fail, shape_str
from losskit._keras import (
    LosskitLoss,
    align_ranks,
    check_bool,
    known_shape,
    log_one_minus,
    log_probability,
    shapes_agree,
)
from losskit.losses.classification.options import LABEL_SMOOTHING

__all__ = ["BCELoss", "CrossEntropyLoss"]


def _class_axis_last(x: Any, axis: int) -> Any:
    """``x`` with its class axis moved to the end (Keras puts classes last by default; torch on
    dimension 1)."""
    rank = len(x.shape)
    if axis in (-1, rank - 1):
        return x
    return ops.moveaxis(x, axis, -1)


def _check_axis(loss: str, axis: object) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        fail(loss, "axis", f"is {axis!r}", "an int")
    return axis


def _check_optional_int(loss: str, name: str, value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        fail(loss, name, f"is {value!r}", "an int or None")
    return value


def log_probabilities(y_pred: Any, from_logits: bool) -> Any:
    """Log-probabilities over the last axis: ``log_softmax`` of logits, or of the clamped logs
    of probabilities (which renormalises them, as torch's ``cross_entropy(p.log(), y)`` does)."""
    return ops.log_softmax(y_pred if from_logits else log_probability(y_pred), axis=-1)


class ScoresLoss(LosskitLoss):
    """Shared by cross-entropy and the softmax focal loss: class indices or probabilities,
    label smoothing, ``ignore_class``, the class axis."""

    _integer_target = True

    def __init__(
        self,
        *,
        from_logits: bool,
        label_smoothing: float,
        ignore_class: int | None,
        axis: int,
        **kwargs: Any,
    ) -> None:
        name = f"losskit.keras.{type(self).__name__}"
        self.from_logits = check_bool(name, "from_logits", from_logits)
        self.label_smoothing = LABEL_SMOOTHING.check(name, label_smoothing)
        self.ignore_class = _check_optional_int(name, "ignore_class", ignore_class)
        self.axis = _check_axis(name, axis)
        super().__init__(**kwargs)

    def _targets(self, y_true: Any, y_pred: Any) -> tuple[bool, Any, Any, Any]:
        """``(sparse, y_true, y_pred, counted)`` with classes last; ``y_true`` int32 class
        indices of the shape of ``y_pred`` less its class axis when ``sparse``, else
        probabilities of ``y_pred``'s shape."""
        y_pred = _class_axis_last(y_pred, self.axis)
        t, p = len(y_true.shape), len(y_pred.shape)
        sparse = t == p - 1 or (t == p and y_true.shape[self.axis] == 1 and y_pred.shape[-1] != 1)
        if not sparse:
            y_true = _class_axis_last(ops.cast(y_true, y_pred.dtype), self.axis)
            if not shapes_agree(known_shape(y_true), known_shape(y_pred)):
                self._bad_target(y_true, y_pred)
            return False, y_true, y_pred, None
        if t == p:
            y_true = ops.squeeze(y_true, axis=self.axis)
        if not shapes_agree(known_shape(y_true), known_shape(y_pred)[:-1]):
            self._bad_target(y_true, y_pred)
        index = ops.cast(y_true, "int32")
        counted = None
        if self.ignore_class is not None:
            counted = index != self.ignore_class
            index = ops.where(counted, index, ops.zeros_like(index))
        return True, index, y_pred, counted

    def _bad_target(self, y_true: Any, y_pred: Any) -> None:
        shape = known_shape(y_pred)
        fail(
            self.loss_name,
            "y_true",
            f"has shape {shape_str(known_shape(y_true))}",
            f"{shape_str(shape[:-1])} class indices or {shape_str(shape)} probabilities for "
            f"y_pred {shape_str(shape)} (classes on axis {self.axis})",
        )

    def _target_distribution(self, sparse: bool, y_true: Any, log_p: Any) -> Any:
        """``(1 - eps) y + eps / C``, ``y`` one-hot for class indices."""
        classes = log_p.shape[-1]
        q = ops.one_hot(y_true, classes, dtype=log_p.dtype) if sparse else y_true
        if self.label_smoothing:
            q = q * (1.0 - self.label_smoothing) + self.label_smoothing / classes
        return q


@keras.saving.register_keras_serializable(package="losskit")
class CrossEntropyLoss(ScoresLoss):
    r"""Cross-entropy of class indices or class probabilities,
    :math:`-\sum_c q_c \log p_c` with :math:`q = (1 - \varepsilon) y + \varepsilon / C`.

    One class for Keras's ``SparseCategoricalCrossentropy`` and ``CategoricalCrossentropy``,
    told apart by shape as torch's ``cross_entropy`` tells them apart: ``y_true`` with the shape
    of ``y_pred`` less its class axis (or with a class axis of size 1) holds class indices,
    ``y_true`` of ``y_pred``'s shape holds probabilities (one-hot or soft).

    ``from_logits=False`` (Keras's default): ``y_pred`` holds probabilities, renormalised over
    the class axis; ``True``: logits. ``label_smoothing`` as torch and Keras (``eps / C`` to
    every class). ``ignore_class``: class indices with this value count neither in the loss nor
    in the ``"sum_over_batch_size"`` mean (torch's ``ignore_index``). Per-sample losses, shape
    of ``y_pred`` less its class axis.
    """

    _options = ("from_logits", "label_smoothing", "ignore_class", "axis")

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = LABEL_SMOOTHING.default,
        ignore_class: int | None = None,
        axis: int = -1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            ignore_class=ignore_class,
            axis=axis,
            **kwargs,
        )

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        sparse, y_true, y_pred, counted = self._targets(y_true, y_pred)
        log_p = log_probabilities(y_pred, self.from_logits)
        if sparse and not self.label_smoothing:
            picked = ops.take_along_axis(log_p, ops.expand_dims(y_true, -1), axis=-1)
            return -ops.squeeze(picked, axis=-1), counted
        q = self._target_distribution(sparse, y_true, log_p)
        return -ops.sum(q * log_p, axis=-1), counted


@keras.saving.register_keras_serializable(package="losskit")
class BCELoss(LosskitLoss):
    r"""Binary cross-entropy, :math:`-[y \log p + (1 - y)\log(1 - p)]` per element.

    ``from_logits=False`` (Keras's default): ``y_pred`` holds probabilities (torch's
    ``binary_cross_entropy``; logs clamped at -100 as there). ``True``: logits, in log-space
    (torch's ``binary_cross_entropy_with_logits``). Targets in [0, 1], the shape of ``y_pred``.
    ``label_smoothing`` in [0, 1] as Keras's ``BinaryCrossentropy``: targets become
    ``y (1 - eps) + eps / 2`` (PyTorch: pass the smoothed targets).
    Elementwise losses: ``"sum"`` and ``None`` give torch's numbers, and
    ``"sum_over_batch_size"`` both torch's and Keras's mean (Keras's ``BinaryCrossentropy``
    instead clips probabilities to ``[1e-7, 1 - 1e-7]``, which differs near 0 and 1).
    """

    _options = ("from_logits", "label_smoothing")

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = LABEL_SMOOTHING.default,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.BCELoss"
        self.from_logits = check_bool(name, "from_logits", from_logits)
        # Keras-only, but cross-entropy's option: eps spread uniformly over the two classes
        self.label_smoothing = LABEL_SMOOTHING.check(name, label_smoothing)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y, x = align_ranks(self.loss_name, y_true, y_pred)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            return y * ops.softplus(-x) + (1.0 - y) * ops.softplus(x), None
        return -(y * log_probability(x) + (1.0 - y) * log_one_minus(x)), None
