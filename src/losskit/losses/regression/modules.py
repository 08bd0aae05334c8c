"""Module forms of the regression losses."""

from __future__ import annotations

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.regression import functional as LF

__all__ = ["HuberLoss", "L1Loss", "LogCoshLoss", "MSELoss", "QuantileLoss", "SmoothL1Loss"]


class MSELoss(LossModule):
    """Mean squared error; see :func:`losskit.functional.mse_loss`.

    >>> import torch, losskit
    >>> losskit.MSELoss()(torch.tensor([10_000.0]), torch.tensor([0.0])).item()
    100000000.0
    """

    functional = staticmethod(LF.mse_loss)

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction=reduction)


class L1Loss(LossModule):
    """Mean absolute error; see :func:`losskit.functional.l1_loss`."""

    functional = staticmethod(LF.l1_loss)

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction=reduction)


class HuberLoss(LossModule):
    """Huber loss with threshold ``delta``; see :func:`losskit.functional.huber_loss`."""

    functional = staticmethod(LF.huber_loss)

    def __init__(self, delta: float = 1.0, *, reduction: Reduction = "mean") -> None:
        super().__init__(
            delta=check_number("huber_loss", "delta", delta, gt=0.0), reduction=reduction
        )


class SmoothL1Loss(LossModule):
    """Smooth L1 with threshold ``beta``; see :func:`losskit.functional.smooth_l1_loss`."""

    functional = staticmethod(LF.smooth_l1_loss)

    def __init__(self, beta: float = 1.0, *, reduction: Reduction = "mean") -> None:
        super().__init__(
            beta=check_number("smooth_l1_loss", "beta", beta, ge=0.0), reduction=reduction
        )


class LogCoshLoss(LossModule):
    """Log-cosh loss; see :func:`losskit.functional.log_cosh_loss`."""

    functional = staticmethod(LF.log_cosh_loss)

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction=reduction)


class QuantileLoss(LossModule):
    """Pinball loss for quantile ``q``; see :func:`losskit.functional.quantile_loss`."""

    functional = staticmethod(LF.quantile_loss)

    def __init__(self, q: float = 0.5, *, reduction: Reduction = "mean") -> None:
        super().__init__(
            q=check_number("quantile_loss", "q", q, gt=0.0, lt=1.0), reduction=reduction
        )
