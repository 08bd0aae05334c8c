"""The binary hinge loss for Keras, with the options of :mod:`losskit.losses.margin.options`
(the same defaults and bounds as the PyTorch loss)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losskit._keras import LosskitLoss, align_ranks, check_bool
from losskit.losses.margin.options import MARGIN, SQUARED

__all__ = ["HingeLoss"]


@keras.saving.register_keras_serializable(package="losskit")
class HingeLoss(LosskitLoss):
    r"""Binary hinge loss, :math:`\max(0, m - y \hat y)^k` per element (``k = 2`` if
    ``squared``), with labels ``y`` as +1/-1, 1/0 or bool (a positive label is +1, anything else
    -1, as in the PyTorch loss and ``keras.losses.Hinge``). ``margin >= 0``."""

    _options = ("margin", "squared")

    def __init__(
        self, margin: float = MARGIN.default, squared: bool = SQUARED.default, **kwargs: Any
    ) -> None:
        name = "losskit.keras.HingeLoss"
        self.margin = MARGIN.check(name, margin)
        self.squared = check_bool(name, "squared", squared)
        super().__init__(**kwargs)

    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y, x = align_ranks(self.loss_name, y_true, y_pred)
        signs = ops.where(y > 0, ops.ones_like(x), -ops.ones_like(x))
        losses = ops.relu(self.margin - signs * x)
        return (ops.square(losses) if self.squared else losses), None
