"""``torch.nn.Module`` forms of every loss: thin wrappers over :mod:`losskit.functional`."""

from ._base import LossModule
from .classification import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .divergence import KLDivLoss, KLDivWithLogitsLoss
from .embedding import CosineEmbeddingLoss
from .margin import HingeLoss, MultiMarginLoss
from .ranking import BPRLoss, MarginRankingLoss
from .regression import HuberLoss, L1Loss, LogCoshLoss, MSELoss, QuantileLoss, SmoothL1Loss
from .sequence import CTCLoss

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "BPRLoss",
    "CTCLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "HingeLoss",
    "HuberLoss",
    "KLDivLoss",
    "KLDivWithLogitsLoss",
    "L1Loss",
    "LogCoshLoss",
    "LossModule",
    "MSELoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "QuantileLoss",
    "SmoothL1Loss",
]
