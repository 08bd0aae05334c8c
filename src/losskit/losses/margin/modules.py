"""Module forms of the margin (hinge) losses."""

from __future__ import annotations

from torch import Tensor

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.margin import functional as LF

__all__ = ["HingeLoss", "MultiMarginLoss"]


class HingeLoss(LossModule):
    """Binary hinge loss for +-1 or 0/1 labels; see :func:`losskit.functional.hinge_loss`.

    >>> import torch, losskit
    >>> criterion = losskit.HingeLoss(squared=True)
    >>> criterion(torch.tensor([0.5, -2.0]), torch.tensor([1, 0])).item()
    0.125
    """

    functional = staticmethod(LF.hinge_loss)

    def __init__(
        self, margin: float = 1.0, *, squared: bool = False, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(
            margin=check_number("hinge_loss", "margin", margin, ge=0.0),
            squared=squared,
            reduction=reduction,
        )


class MultiMarginLoss(LossModule):
    """Multi-class hinge loss, torch's arguments; see
    :func:`losskit.functional.multi_margin_loss`.

    >>> import torch, losskit
    >>> criterion = losskit.MultiMarginLoss(p=2, margin=0.5)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, 1, 1]))
    """

    functional = staticmethod(LF.multi_margin_loss)

    def __init__(
        self,
        p: int = 1,
        margin: float = 1.0,
        weight: Tensor | None = None,
        *,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(
            p=p,
            margin=check_number("multi_margin_loss", "margin", margin, ge=0.0),
            weight=weight,
            reduction=reduction,
        )
