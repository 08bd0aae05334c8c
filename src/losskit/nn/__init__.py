"""``torch.nn.Module`` forms of every loss: thin wrappers over :mod:`losskit.functional`."""

from losskit._module import LossModule
from losskit.losses.classification.modules import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    NLLLoss,
)
from losskit.losses.divergence.modules import KLDivLoss, KLDivWithLogitsLoss
from losskit.losses.embedding.modules import CosineEmbeddingLoss
from losskit.losses.imbalance.modules import (
    AsymmetricLoss,
    FocalLoss,
    Poly1CrossEntropyLoss,
    SigmoidFocalLoss,
)
from losskit.losses.linear_ce.modules import LinearCrossEntropyLoss
from losskit.losses.margin.modules import HingeLoss, MultiMarginLoss
from losskit.losses.ranking.modules import BPRLoss, MarginRankingLoss
from losskit.losses.regression.modules import (
    HuberLoss,
    L1Loss,
    LogCoshLoss,
    MSELoss,
    QuantileLoss,
    SmoothL1Loss,
)
from losskit.losses.robust.modules import (
    AdaptiveRobustLoss,
    CauchyLoss,
    CharbonnierLoss,
    GemanMcClureLoss,
    GeneralRobustLoss,
    GeneralRobustNLLLoss,
    WelschLoss,
)
from losskit.losses.sequence.modules import CTCLoss
from losskit.losses.triplet.modules import TripletLoss, TripletMarginLoss

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
