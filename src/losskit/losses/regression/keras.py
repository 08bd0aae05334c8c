"""The regression losses for Keras: MSE, L1, Huber, Smooth L1, log-cosh and quantile.

Each returns the loss of every element (PyTorch's ``reduction="none"`` shape), not Keras's mean
over the last axis: the default ``"sum_over_batch_size"`` gives the same number either way, and
``"sum"`` and ``None`` then give PyTorch's numbers too. Options are those of
:mod:`losskit.losses.regression.options`: the same defaults and bounds as the PyTorch losses.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from losskit._keras import PointwiseLoss
from losskit.losses.regression.options import BETA, DELTA, Q

__all__ = [
    "HuberLoss",
    "L1Loss",
    "LogCoshLoss",
    "MSELoss",
    "QuantileLoss",
    "SmoothL1Loss",
]

_LOG2 = math.log(2.0)


@keras.saving.register_keras_serializable(package="losskit")
class MSELoss(PointwiseLoss):
    r"""Mean squared error, :math:`(\hat y - y)^2` per element.

    PyTorch: ``losskit.MSELoss()(y_pred, y_true)``. Keras: ``MSELoss()(y_true, y_pred)``.
    """

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        return ops.square(y_pred - y_true)


@keras.saving.register_keras_serializable(package="losskit")
class L1Loss(PointwiseLoss):
    r"""Mean absolute error, :math:`|\hat y - y|` per element."""

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        return ops.abs(y_pred - y_true)


@keras.saving.register_keras_serializable(package="losskit")
class HuberLoss(PointwiseLoss):
    r"""Huber loss: :math:`\tfrac12 d^2` for :math:`|d| \le \delta`, else
    :math:`\delta(|d| - \tfrac12\delta)`; ``delta > 0`` (``keras.losses.Huber``'s numbers)."""

    _options = ("delta",)

    def __init__(self, delta: float = DELTA.default, **kwargs: Any) -> None:
        self.delta = DELTA.check("losskit.keras.HuberLoss", delta)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        d = self.delta
        return ops.where(a <= d, 0.5 * ops.square(a), d * (a - 0.5 * d))


@keras.saving.register_keras_serializable(package="losskit")
class SmoothL1Loss(PointwiseLoss):
    r"""Smooth L1 (Fast R-CNN): :math:`0.5 d^2/\beta` for :math:`|d| < \beta`, else
    :math:`|d| - 0.5\beta`; ``beta >= 0`` (0 is L1)."""

    _options = ("beta",)

    def __init__(self, beta: float = BETA.default, **kwargs: Any) -> None:
        self.beta = BETA.check("losskit.keras.SmoothL1Loss", beta)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        b = self.beta
        if b == 0.0:
            return a
        return ops.where(a < b, 0.5 * ops.square(a) / b, a - 0.5 * b)


@keras.saving.register_keras_serializable(package="losskit")
class LogCoshLoss(PointwiseLoss):
    r""":math:`\log\cosh(\hat y - y)`, as :math:`|d| + \operatorname{softplus}(-2|d|) - \log 2`
    (finite for any residual)."""

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        return a + ops.softplus(-2.0 * a) - _LOG2


@keras.saving.register_keras_serializable(package="losskit")
class QuantileLoss(PointwiseLoss):
    r"""Pinball loss of the ``q``-th quantile, :math:`\max(q (y - \hat y), (q - 1)(y - \hat y))`,
    ``0 < q < 1``: under-prediction costs ``q`` per unit, over-prediction ``1 - q``."""

    _options = ("q",)

    def __init__(self, q: float = Q.default, **kwargs: Any) -> None:
        self.q = Q.check("losskit.keras.QuantileLoss", q)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        d = y_true - y_pred
        return ops.maximum(self.q * d, (self.q - 1.0) * d)
