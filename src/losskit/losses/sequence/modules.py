"""Module forms of the sequence losses."""

from __future__ import annotations

from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.sequence import functional as LF

__all__ = ["CTCLoss"]


class CTCLoss(LossModule):
    """Connectionist Temporal Classification; see :func:`losskit.functional.ctc_loss`.

    >>> import torch, losskit
    >>> criterion = losskit.CTCLoss(blank=0)
    >>> log_probs = torch.randn(12, 2, 5).log_softmax(2)            # (T, N, C)
    >>> targets = torch.tensor([[1, 2, 2], [3, 4, 0]])               # padded (N, S)
    >>> loss = criterion(log_probs, targets, [12, 10], [3, 2])
    """

    functional = staticmethod(LF.ctc_loss)

    def __init__(
        self, blank: int = 0, *, zero_infinity: bool = False, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(blank=blank, zero_infinity=zero_infinity, reduction=reduction)
