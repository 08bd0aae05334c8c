"""``torch.nn.Module`` forms of every loss: thin wrappers over :mod:`losskit.functional`."""

from ._base import LossModule
from .classification import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .divergence import KLDivLoss, KLDivWithLogitsLoss
from .embedding import CosineEmbeddingLoss
from .imbalance import AsymmetricLoss, FocalLoss, Poly1CrossEntropyLoss, SigmoidFocalLoss
from .linear_ce import LinearCrossEntropyLoss
from .margin import HingeLoss, MultiMarginLoss
from .ranking import BPRLoss, MarginRankingLoss
from .regression import HuberLoss, L1Loss, LogCoshLoss, MSELoss, QuantileLoss, SmoothL1Loss
from .robust import (
    AdaptiveRobustLoss,
    CauchyLoss,
    CharbonnierLoss,
    GemanMcClureLoss,
    GeneralRobustLoss,
    GeneralRobustNLLLoss,
    WelschLoss,
)
from .sequence import CTCLoss
from .triplet import TripletLoss, TripletMarginLoss

__all__ = [
    "AdaptiveRobustLoss",
    "AsymmetricLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BPRLoss",
    "CTCLoss",
    "CauchyLoss",
    "CharbonnierLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "GemanMcClureLoss",
    "GeneralRobustLoss",
    "GeneralRobustNLLLoss",
    "HingeLoss",
    "HuberLoss",
    "KLDivLoss",
    "KLDivWithLogitsLoss",
    "L1Loss",
    "LinearCrossEntropyLoss",
    "LogCoshLoss",
    "LossModule",
    "MSELoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "Poly1CrossEntropyLoss",
    "QuantileLoss",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "TripletLoss",
    "TripletMarginLoss",
    "WelschLoss",
]
