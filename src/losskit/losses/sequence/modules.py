"""Module forms of the sequence losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.sequence.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.sequence import functional as LF
from losskit.losses.sequence.options import BLANK, ZERO_INFINITY

__all__ = ["CTCLoss"]

CTCLoss = loss_module(
    "CTCLoss",
    LF.ctc_loss,
    (BLANK, ZERO_INFINITY),
    summary="Connectionist Temporal Classification",
)
CTCLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.CTCLoss(blank=0)
    >>> log_probs = torch.randn(12, 2, 5).log_softmax(2)            # (T, N, C)
    >>> targets = torch.tensor([[1, 2, 2], [3, 4, 0]])               # padded (N, S)
    >>> loss = criterion(log_probs, targets, [12, 10], [3, 2])
    """
