"""Module forms of the ranking losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.ranking.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.ranking import functional as LF
from losskit.losses.ranking.options import MARGIN

__all__ = ["BPRLoss", "MarginRankingLoss"]

MarginRankingLoss = loss_module(
    "MarginRankingLoss",
    LF.margin_ranking_loss,
    (MARGIN,),
    summary="Pairwise hinge on score differences",
)
MarginRankingLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.MarginRankingLoss(margin=0.1)
    >>> x1, x2 = torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.6])
    >>> round(criterion(x1, x2, torch.tensor([1, 1])).item(), 4)
    0.25
    """

BPRLoss = loss_module("BPRLoss", LF.bpr_loss, summary="Bayesian Personalised Ranking")
BPRLoss.__doc__ += """

    The optional ``weight`` is a per-call argument: ``criterion(pos, neg, weight=w)``.

    >>> import torch, losskit
    >>> criterion = losskit.BPRLoss()
    >>> pos, neg = torch.randn(16, requires_grad=True), torch.randn(16, 4)   # 4 negatives each
    >>> criterion(pos, neg).backward()
    """
