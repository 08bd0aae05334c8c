"""Module forms of the embedding losses."""

from __future__ import annotations

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.embedding import functional as LF

__all__ = ["CosineEmbeddingLoss"]


class CosineEmbeddingLoss(LossModule):
    """Cosine embedding loss; see :func:`losskit.functional.cosine_embedding_loss`.

    >>> import torch, losskit
    >>> criterion = losskit.CosineEmbeddingLoss(margin=0.2)
    >>> loss = criterion(torch.randn(4, 8), torch.randn(4, 8), torch.tensor([1, -1, 1, -1]))
    """

    functional = staticmethod(LF.cosine_embedding_loss)

    def __init__(self, margin: float = 0.0, *, reduction: Reduction = "mean") -> None:
        super().__init__(
            margin=check_number("cosine_embedding_loss", "margin", margin, ge=-1.0, le=1.0),
            reduction=reduction,
        )
