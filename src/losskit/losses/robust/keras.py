"""Barron's general robust loss for Keras, with the options of
:mod:`losskit.losses.robust.options` (the same defaults and bounds as the PyTorch loss).

It returns the loss of every element (PyTorch's ``reduction="none"`` shape), like the
regression losses; its named members (Cauchy, Geman-McClure, Welsch, Charbonnier) are this
loss at their ``alpha``.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from losskit._keras import PointwiseLoss
from losskit.losses.robust.options import ALPHA, SCALE

__all__ = ["GeneralRobustLoss"]


@keras.saving.register_keras_serializable(package="losskit")
class GeneralRobustLoss(PointwiseLoss):
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

    def __init__(
        self, alpha: float = ALPHA.default, scale: float = SCALE.default, **kwargs: Any
    ) -> None:
        name = "losskit.keras.GeneralRobustLoss"
        self.alpha = ALPHA.check(name, alpha)
        self.scale = SCALE.check(name, scale)
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
