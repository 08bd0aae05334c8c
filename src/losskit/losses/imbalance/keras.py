"""The class-imbalance losses for Keras: the softmax and sigmoid focal losses, with the options
of :mod:`losskit.losses.imbalance.options` (the same defaults and bounds as the PyTorch
losses). Conventions as :mod:`losskit.losses.classification.keras`, whose target handling the
softmax focal loss shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from numbers import Real
from typing import Any

import keras
from keras import ops

from losskit._errors import fail
from losskit._keras import LosskitLoss, align_ranks, check_bool, log_one_minus, log_probability
from losskit.losses.classification.keras import ScoresLoss, log_probabilities
from losskit.losses.imbalance.options import CLASS_ALPHA, GAMMA, LABEL_SMOOTHING, SIGMOID_ALPHA

__all__ = ["FocalLoss", "SigmoidFocalLoss"]


def _focal_factor(one_minus_p: Any, gamma: float) -> Any:
    """``(1 - p)**gamma``, with a zero gradient (not ``inf``) where ``1 - p`` is 0."""
    if gamma == 0.0:
        return ops.ones_like(one_minus_p)
    positive = one_minus_p > 0
    base = ops.where(positive, one_minus_p, ops.ones_like(one_minus_p))
    return ops.where(positive, ops.power(base, gamma), ops.zeros_like(one_minus_p))


@keras.saving.register_keras_serializable(package="losskit")
class FocalLoss(ScoresLoss):
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
        gamma: float = GAMMA.default,
        alpha: float | Sequence[float] | None = CLASS_ALPHA.default,
        from_logits: bool = False,
        label_smoothing: float = LABEL_SMOOTHING.default,
        ignore_class: int | None = None,
        axis: int = -1,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.FocalLoss"
        self.gamma = GAMMA.check(name, gamma)
        if alpha is None or (isinstance(alpha, Real) and not isinstance(alpha, bool)):
            self.alpha = None if alpha is None else CLASS_ALPHA.check(name, alpha)
        elif isinstance(alpha, Sequence) and not isinstance(alpha, str):
            # the declared bounds hold for each value; the message names its index
            self.alpha = tuple(
                replace(CLASS_ALPHA, name=f"alpha[{i}]").check(name, a) for i, a in enumerate(alpha)
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
        log_p = log_probabilities(y_pred, self.from_logits)
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
        alpha: float | None = SIGMOID_ALPHA.default,
        gamma: float = GAMMA.default,
        from_logits: bool = False,
        label_smoothing: float = LABEL_SMOOTHING.default,
        **kwargs: Any,
    ) -> None:
        name = "losskit.keras.SigmoidFocalLoss"
        self.alpha = None if alpha is None else SIGMOID_ALPHA.check(name, alpha)
        self.gamma = GAMMA.check(name, gamma)
        self.from_logits = check_bool(name, "from_logits", from_logits)
        # Keras-only, but cross-entropy's option: eps spread uniformly over the two classes
        self.label_smoothing = LABEL_SMOOTHING.check(name, label_smoothing)
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
