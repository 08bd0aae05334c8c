"""Module forms of the embedding losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.embedding.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.embedding import functional as LF
from losskit.losses.embedding.options import MARGIN

__all__ = ["CosineEmbeddingLoss"]

CosineEmbeddingLoss = loss_module(
    "CosineEmbeddingLoss",
    LF.cosine_embedding_loss,
    (MARGIN,),
    summary="Cosine embedding loss",
)
CosineEmbeddingLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.CosineEmbeddingLoss(margin=0.2)
    >>> loss = criterion(torch.randn(4, 8), torch.randn(4, 8), torch.tensor([1, -1, 1, -1]))
    """
