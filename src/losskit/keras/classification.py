"""Classification losses for Keras: cross-entropy (class indices or probabilities), binary
cross-entropy, KL divergence, hinge, and the sigmoid and softmax focal losses.

Keras conventions: ``(y_true, y_pred)``; ``from_logits=False`` (``y_pred`` holds probabilities)
by default wherever Keras has the option, where the PyTorch losses take logits; classes on the
last axis (``axis=-1``), where PyTorch puts them on dimension 1. Logs of probabilities are
clamped at -100, as torch's ``binary_cross_entropy`` does, so probabilities of exactly 0 and 1
give finite losses and gradients; logits are handled in log-space (finite for logits of 1e4).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

import keras
from keras import ops

from losskit._errors import check_number, fail, shape_str
from losskit.keras._base import (
    LosskitLoss,
    align_ranks,
    check_axis,
    check_bool,
    check_optional_int,
    class_axis_last,
    known_shape,
    log_one_minus,
    log_probability,
    shapes_agree,
)

__all__ = [
    "BCELoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "HingeLoss",
    "KLDivLoss",
    "SigmoidFocalLoss",
]


def _log_probabilities(y_pred: Any, from_logits: bool) -> Any:
    """Log-probabilities over the last axis: ``log_softmax`` of logits, or of the clamped logs
    of probabilities (which renormalises them, as torch's ``cross_entropy(p.log(), y)`` does)."""
    return ops.log_softmax(y_pred if from_logits else log_probability(y_pred), axis=-1)


def _focal_factor(one_minus_p: Any, gamma: float) -> Any:
    """``(1 - p)**gamma``, with a zero gradient (not ``inf``) where ``1 - p`` is 0."""
    if gamma == 0.0:
        return ops.ones_like(one_minus_p)
    positive = one_minus_p > 0
    base = ops.where(positive, one_minus_p, ops.ones_like(one_minus_p))
    return ops.where(positive, ops.power(base, gamma), ops.zeros_like(one_minus_p))


class _ScoresLoss(LosskitLoss):
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
        self.label_smoothing = check_number(
            name, "label_smoothing", label_smoothing, ge=0.0, le=1.0
        )
        self.ignore_class = check_optional_int(name, "ignore_class", ignore_class)
        self.axis = check_axis(name, axis)
        super().__init__(**kwargs)

    def _targets(self, y_true: Any, y_pred: Any) -> tuple[bool, Any, Any, Any]:
        """``(sparse, y_true, y_pred, counted)`` with classes last; ``y_true`` int32 class
        indices of the shape of ``y_pred`` less its class axis when ``sparse``, else
        probabilities of ``y_pred``'s shape."""
        y_pred = class_axis_last(y_pred, self.axis)
        t, p = len(y_true.shape), len(y_pred.shape)
        sparse = t == p - 1 or (t == p and y_true.shape[self.axis] == 1 and y_pred.shape[-1] != 1)
        if not sparse:
            y_true = class_axis_last(ops.cast(y_true, y_pred.dtype), self.axis)
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
class CrossEntropyLoss(_ScoresLoss):
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
        label_smoothing: float = 0.0,
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
        log_p = _log_probabilities(y_pred, self.from_logits)
        if sparse and not self.label_smoothing:
            picked = ops.take_along_axis(log_p, ops.expand_dims(y_true, -1), axis=-1)
            return -ops.squeeze(picked, axis=-1), counted
        q = self._target_distribution(sparse, y_true, log_p)
        return -ops.sum(q * log_p, axis=-1), counted


@keras.saving.register_keras_serializable(package="losskit")
class FocalLoss(_ScoresLoss):
    r"""Softmax focal loss (Lin et al., 2017) of class indices or probabilities:

    .. math:: \ell = -\sum_c \alpha_c\, q_c\, (1 - p_c)^\gamma \log p_c,\qquad
              q = (1 - \varepsilon) y + \varepsilon / C

    ``gamma >= 0``; ``alpha`` None, a number (scales every class) or one number per class (a
    list). With ``gamma=0`` and no ``alpha`` it is :class:`CrossEntropyLoss`. Targets, shapes,
    ``from_logits`` (``False`` by default), ``label_smoothing``, ``ignore_class`` and ``axis`` as
    :class:`CrossEntropyLoss`. Note Keras's ``CategoricalFocalCrossentropy`` defaults to
    ``alpha=0.25``; this loss, like losskit's PyTorch ``FocalLoss``, to no alpha.
    """

    _options = ("gamma", "alpha", "from_logits", "label_smoothing", "ignore_class", "axis")

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        ignore_class: int | None = None,
        axis: int = -1,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.FocalLoss"
        self.gamma = check_number(name, "gamma", gamma, ge=0.0)
        if alpha is None or (isinstance(alpha, Real) and not isinstance(alpha, bool)):
            self.alpha = None if alpha is None else check_number(name, "alpha", alpha, ge=0.0)
        elif isinstance(alpha, Sequence) and not isinstance(alpha, str):
            self.alpha = tuple(
                check_number(name, f"alpha[{i}]", a, ge=0.0) for i, a in enumerate(alpha)
            )
        else:
            fail(name, "alpha", f"is {alpha!r}", "None, a number or a list of per-class numbers")
        super().__init__(
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            ignore_class=ignore_class,
            axis=axis,
            **kwargs,
        )

    def _class_alpha(self, classes: int | None, dtype: str) -> Any:
        if classes is not None and len(self.alpha) != classes:
            fail(
                self.loss_name,
                "alpha",
                f"has {len(self.alpha)} values",
                f"{classes}, one per class of y_pred",
            )
        return ops.convert_to_tensor(self.alpha, dtype=dtype)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        sparse, y_true, y_pred, counted = self._targets(y_true, y_pred)
        log_p = _log_probabilities(y_pred, self.from_logits)
        per_class = isinstance(self.alpha, tuple)
        alpha = self._class_alpha(log_p.shape[-1], log_p.dtype) if per_class else None
        if sparse and not self.label_smoothing:
            index = ops.expand_dims(y_true, -1)
            log_pt = ops.squeeze(ops.take_along_axis(log_p, index, axis=-1), axis=-1)
            losses = -_focal_factor(-ops.expm1(log_pt), self.gamma) * log_pt
            if per_class:
                losses = losses * ops.take(alpha, y_true)
        else:
            q = self._target_distribution(sparse, y_true, log_p)
            if per_class:
                q = q * alpha
            terms = q * _focal_factor(-ops.expm1(log_p), self.gamma) * log_p
            losses = -ops.sum(terms, axis=-1)
        if isinstance(self.alpha, float):
            losses = losses * self.alpha
        return losses, counted


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
        self, from_logits: bool = False, label_smoothing: float = 0.0, **kwargs: Any
    ) -> None:
        name = "losskit.keras.BCELoss"
        self.from_logits = check_bool(name, "from_logits", from_logits)
        self.label_smoothing = check_number(
            name, "label_smoothing", label_smoothing, ge=0.0, le=1.0
        )
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y, x = align_ranks(self.loss_name, y_true, y_pred)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            return y * ops.softplus(-x) + (1.0 - y) * ops.softplus(x), None
        return -(y * log_probability(x) + (1.0 - y) * log_one_minus(x)), None


@keras.saving.register_keras_serializable(package="losskit")
class SigmoidFocalLoss(LosskitLoss):
    r"""Sigmoid focal loss for binary and multi-label targets (Lin et al., 2017), per element:

    .. math:: \ell = \alpha_t (1 - p_t)^\gamma\, \mathrm{bce}(p, y),\quad
              p_t = p y + (1 - p)(1 - y),\quad \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    torchvision's and losskit's ``sigmoid_focal_loss``: ``alpha=0.25`` by default, ``None``
    disables it (Keras's ``BinaryFocalCrossentropy`` applies alpha only with
    ``apply_class_balancing=True``). ``from_logits=False`` (Keras's default): ``y_pred`` holds
    probabilities; ``True``: logits, in log-space. Soft targets in [0, 1] are allowed;
    ``label_smoothing`` turns targets into ``y (1 - eps) + eps / 2`` first, as Keras's
    ``BinaryFocalCrossentropy`` does (PyTorch: pass the smoothed targets).
    """

    _options = ("alpha", "gamma", "from_logits", "label_smoothing")

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.SigmoidFocalLoss"
        self.alpha = None if alpha is None else check_number(name, "alpha", alpha, ge=0.0, le=1.0)
        self.gamma = check_number(name, "gamma", gamma, ge=0.0)
        self.from_logits = check_bool(name, "from_logits", from_logits)
        self.label_smoothing = check_number(
            name, "label_smoothing", label_smoothing, ge=0.0, le=1.0
        )
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y, x = align_ranks(self.loss_name, y_true, y_pred)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if self.from_logits:
            log_p, log_q = ops.log_sigmoid(x), ops.log_sigmoid(-x)
            p, q = ops.sigmoid(x), ops.sigmoid(-x)
        else:
            log_p, log_q = log_probability(x), log_one_minus(x)
            p, q = x, 1.0 - x
        bce = -(y * log_p + (1.0 - y) * log_q)
        # 1 - p_t as a sum of two products: no cancellation when p_t is near 1
        losses = bce * _focal_factor(y * q + (1.0 - y) * p, self.gamma)
        if self.alpha is not None:
            losses = losses * (self.alpha * y + (1.0 - self.alpha) * (1.0 - y))
        return losses, None


@keras.saving.register_keras_serializable(package="losskit")
class KLDivLoss(LosskitLoss):
    r"""Kullback-Leibler divergence :math:`D_{KL}(P \| Q) = \sum_c p_c (\log p_c - \log q_c)`
    per sample, ``y_true`` :math:`P` and ``y_pred`` :math:`Q` (classes on the last axis).

    Keras's argument order and inputs: both are probabilities (torch's ``kl_div`` takes
    ``log Q`` first). ``from_logits=True``: ``y_pred`` holds logits (``log_softmax`` applied).
    Terms with :math:`p = 0` are 0; :math:`\log q` is clamped at -100. The default
    ``"sum_over_batch_size"`` of these per-sample values is torch's ``"batchmean"``.
    """

    _options = ("from_logits",)

    def __init__(self, from_logits: bool = False, **kwargs: Any) -> None:
        self.from_logits = check_bool("losskit.keras.KLDivLoss", "from_logits", from_logits)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        p, q = align_ranks(self.loss_name, y_true, y_pred)
        log_q = ops.log_softmax(q, axis=-1) if self.from_logits else log_probability(q)
        positive = p > 0
        log_p = ops.log(ops.where(positive, p, ops.ones_like(p)))
        terms = ops.where(positive, p * (log_p - log_q), ops.zeros_like(p))
        return ops.sum(terms, axis=-1), None


@keras.saving.register_keras_serializable(package="losskit")
class HingeLoss(LosskitLoss):
    r"""Binary hinge loss, :math:`\max(0, m - y \hat y)^k` per element (``k = 2`` if
    ``squared``), with labels ``y`` as +1/-1, 1/0 or bool (a positive label is +1, anything else
    -1, as in the PyTorch loss and ``keras.losses.Hinge``). ``margin >= 0``."""

    _options = ("margin", "squared")

    def __init__(self, margin: float = 1.0, squared: bool = False, **kwargs: Any) -> None:
        name = "losskit.keras.HingeLoss"
        self.margin = check_number(name, "margin", margin, ge=0.0)
        self.squared = check_bool(name, "squared", squared)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y, x = align_ranks(self.loss_name, y_true, y_pred)
        signs = ops.where(y > 0, ops.ones_like(x), -ops.ones_like(x))
        losses = ops.relu(self.margin - signs * x)
        return (ops.square(losses) if self.squared else losses), None
