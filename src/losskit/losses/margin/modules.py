"""Module forms of the margin (hinge) losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.margin.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.margin import functional as LF
from losskit.losses.margin.options import MARGIN, SQUARED, WEIGHT, P

__all__ = ["HingeLoss", "MultiMarginLoss"]

HingeLoss = loss_module(
    "HingeLoss",
    LF.hinge_loss,
    (MARGIN, SQUARED),
    summary="Binary hinge loss for +-1 or 0/1 labels",
)
HingeLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.HingeLoss(squared=True)
    >>> criterion(torch.tensor([0.5, -2.0]), torch.tensor([1, 0])).item()
    0.125
    """

MultiMarginLoss = loss_module(
    "MultiMarginLoss",
    LF.multi_margin_loss,
    (P, MARGIN, WEIGHT),
    summary="Multi-class hinge loss, torch's arguments",
)
MultiMarginLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.MultiMarginLoss(p=2, margin=0.5)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, 1, 1]))
    """
