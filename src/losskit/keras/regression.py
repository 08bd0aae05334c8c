"""Pointwise regression losses for Keras: MSE, L1, Huber, Smooth L1, log-cosh, quantile and
Barron's general robust loss.

Each returns the loss of every element (PyTorch's ``reduction="none"`` shape), not Keras's mean
over the last axis: the default ``"sum_over_batch_size"`` gives the same number either way, and
``"sum"`` and ``None`` then give PyTorch's numbers too.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from losskit._errors import check_number
from losskit.keras._base import LosskitLoss, align_ranks

__all__ = [
    "GeneralRobustLoss",
    "HuberLoss",
    "L1Loss",
    "LogCoshLoss",
    "MSELoss",
    "QuantileLoss",
    "SmoothL1Loss",
]

_LOG2 = math.log(2.0)


class _PointwiseLoss(LosskitLoss):
    def _losses(self, y_true: Any, y_pred: Any) -> tuple[Any, None]:
        y_true, y_pred = align_ranks(self.loss_name, y_true, y_pred)
        return self._elementwise(y_true, y_pred), None

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="losskit")
class MSELoss(_PointwiseLoss):
    r"""Mean squared error, :math:`(\hat y - y)^2` per element.

    PyTorch: ``losskit.MSELoss()(y_pred, y_true)``. Keras: ``MSELoss()(y_true, y_pred)``.
    """

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        return ops.square(y_pred - y_true)


@keras.saving.register_keras_serializable(package="losskit")
class L1Loss(_PointwiseLoss):
    r"""Mean absolute error, :math:`|\hat y - y|` per element."""

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        return ops.abs(y_pred - y_true)


@keras.saving.register_keras_serializable(package="losskit")
class HuberLoss(_PointwiseLoss):
    r"""Huber loss: :math:`\tfrac12 d^2` for :math:`|d| \le \delta`, else
    :math:`\delta(|d| - \tfrac12\delta)`; ``delta > 0`` (``keras.losses.Huber``'s numbers)."""

    _options = ("delta",)

    def __init__(self, delta: float = 1.0, **kwargs: Any) -> None:
        self.delta = check_number("losskit.keras.HuberLoss", "delta", delta, gt=0.0)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        d = self.delta
        return ops.where(a <= d, 0.5 * ops.square(a), d * (a - 0.5 * d))


@keras.saving.register_keras_serializable(package="losskit")
class SmoothL1Loss(_PointwiseLoss):
    r"""Smooth L1 (Fast R-CNN): :math:`0.5 d^2/\beta` for :math:`|d| < \beta`, else
    :math:`|d| - 0.5\beta`; ``beta >= 0`` (0 is L1)."""

    _options = ("beta",)

    def __init__(self, beta: float = 1.0, **kwargs: Any) -> None:
        self.beta = check_number("losskit.keras.SmoothL1Loss", "beta", beta, ge=0.0)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        b = self.beta
        if b == 0.0:
            return a
        return ops.where(a < b, 0.5 * ops.square(a) / b, a - 0.5 * b)


@keras.saving.register_keras_serializable(package="losskit")
class LogCoshLoss(_PointwiseLoss):
    r""":math:`\log\cosh(\hat y - y)`, as :math:`|d| + \operatorname{softplus}(-2|d|) - \log 2`
    (finite for any residual)."""

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        a = ops.abs(y_pred - y_true)
        return a + ops.softplus(-2.0 * a) - _LOG2


@keras.saving.register_keras_serializable(package="losskit")
class QuantileLoss(_PointwiseLoss):
    r"""Pinball loss of the ``q``-th quantile, :math:`\max(q (y - \hat y), (q - 1)(y - \hat y))`,
    ``0 < q < 1``: under-prediction costs ``q`` per unit, over-prediction ``1 - q``."""

    _options = ("q",)

    def __init__(self, q: float = 0.5, **kwargs: Any) -> None:
        self.q = check_number("losskit.keras.QuantileLoss", "q", q, gt=0.0, lt=1.0)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        d = y_true - y_pred
        return ops.maximum(self.q * d, (self.q - 1.0) * d)


@keras.saving.register_keras_serializable(package="losskit")
class GeneralRobustLoss(_PointwiseLoss):
    r"""Barron's general robust loss of :math:`d = \hat y - y` (CVPR 2019, eq. 1):

    .. math:: \rho(d, \alpha, c) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(d/c)^2}
              {|\alpha-2|} + 1\right)^{\alpha/2} - 1\right)

    ``alpha`` any real number (``-inf`` is Welsch, ``-2`` Geman-McClure, ``0`` Cauchy, ``1``
    Charbonnier, ``2`` half the squared error), ``scale > 0``; both are fixed numbers here (the
    PyTorch loss also learns them). Evaluated like the PyTorch loss: closed forms for the named
    members, ``log1p``/``expm1`` otherwise, and ``(d/c)^2`` capped so huge residuals give a
    finite, saturated loss.
    """

    _options = ("alpha", "scale")

    def __init__(self, alpha: float = 1.0, scale: float = 1.0, **kwargs: Any) -> None:
        name = "losskit.keras.GeneralRobustLoss"
        self.alpha = check_number(name, "alpha", alpha, lt=math.inf, allow_inf=True)
        self.scale = check_number(name, "scale", scale, gt=0.0)
        super().__init__(**kwargs)

    def _elementwise(self, y_true: Any, y_pred: Any) -> Any:
        finfo = np.finfo(keras.backend.standardize_dtype(y_pred.dtype))
        rc = (y_pred - y_true) / self.scale
        z = ops.minimum(ops.square(rc), 2.0**-10 * float(finfo.max))
        a = self.alpha
        if a == 2.0:
            return 0.5 * z
        if a == 0.0:
            return ops.log1p(0.5 * z)
        if a == 1.0:  # sqrt(z + 1) - 1 without cancellation
            return z / (ops.sqrt(z + 1.0) + 1.0)
        if a == -2.0:
            return 2.0 * z / (z + 4.0)
        if a == -math.inf:
            return -ops.expm1(-0.5 * z)
        eps = float(finfo.eps)
        a = max(a, -1.0 / eps**2)
        b = max(abs(a - 2.0), eps)
        u = z / b
        if b < 4.0:  # (1 + u)^(alpha/2) stays finite
            u = ops.minimum(u, 0.25 * float(finfo.max))
        log_ratio = ops.log1p(u)
        if a >= 1.0:
            # (z w + b (w - 1)) / alpha, w = (1 + u)^((alpha-2)/2): no cancellation near alpha 2
            log_w = (0.5 * (a - 2.0)) * log_ratio
            return (z * ops.exp(log_w) + b * ops.expm1(log_w)) / a
        if abs(a) < float(finfo.tiny):
            return (0.5 * b) * log_ratio
        return (b / a) * ops.expm1((0.5 * a) * log_ratio)
