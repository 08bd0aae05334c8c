"""Module forms of the ranking losses."""

from __future__ import annotations

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.ranking import functional as LF

__all__ = ["BPRLoss", "MarginRankingLoss"]


class MarginRankingLoss(LossModule):
    """Pairwise hinge on score differences; see
    :func:`losskit.functional.margin_ranking_loss`.

    >>> import torch, losskit
    >>> criterion = losskit.MarginRankingLoss(margin=0.1)
    >>> x1, x2 = torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.6])
    >>> round(criterion(x1, x2, torch.tensor([1, 1])).item(), 4)
    0.25
    """

    functional = staticmethod(LF.margin_ranking_loss)

    def __init__(self, margin: float = 0.0, *, reduction: Reduction = "mean") -> None:
        super().__init__(
            margin=check_number("margin_ranking_loss", "margin", margin, ge=0.0),
            reduction=reduction,
        )


class BPRLoss(LossModule):
    """Bayesian Personalised Ranking; see :func:`losskit.functional.bpr_loss`.

    The optional ``weight`` is a per-call argument: ``criterion(pos, neg, weight=w)``.

    >>> import torch, losskit
    >>> criterion = losskit.BPRLoss()
    >>> pos, neg = torch.randn(16, requires_grad=True), torch.randn(16, 4)   # 4 negatives each
    >>> criterion(pos, neg).backward()
    """

    functional = staticmethod(LF.bpr_loss)

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction=reduction)
