"""losskit: the loss functions of deep learning, checked, stable and fast.

>>> import torch, losskit
>>> import losskit.functional as LF
>>> LF.huber_loss(torch.tensor([0.2, 0.3, -0.5, 0.1, 1.5]), torch.zeros(5), delta=1.0)
tensor(0.2390)
>>> losskit.catalog["huber"].summary
'Quadratic for small residuals, linear beyond delta: MSE's efficiency, MAE's robustness.'
"""

from losskit import functional, multitask
from losskit._catalog import (
    Catalog,
    ErrorInput,
    HyperParam,
    LossSpec,
    SampleInput,
    WorkedExample,
)
from losskit._checks import LossInputError, checks, get_checks, set_checks
from losskit._registry import get_catalog
from losskit.custom import CombinedLoss, LossParts, elementwise_loss
from losskit.losses.imbalance.weights import class_balanced_weights
from losskit.losses.triplet.schedules import CosineMargin, LinearMargin
from losskit.nn import (
    AdaptiveRobustLoss,
    AsymmetricLoss,
    BCELoss,
    BCEWithLogitsLoss,
    BPRLoss,
    CauchyLoss,
    CharbonnierLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    CTCLoss,
    FocalLoss,
    GemanMcClureLoss,
    GeneralRobustLoss,
    GeneralRobustNLLLoss,
    HingeLoss,
    HuberLoss,
    KLDivLoss,
    KLDivWithLogitsLoss,
    L1Loss,
    LinearCrossEntropyLoss,
    LogCoshLoss,
    LossModule,
    MarginRankingLoss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    Poly1CrossEntropyLoss,
    QuantileLoss,
    SigmoidFocalLoss,
    SmoothL1Loss,
    TripletLoss,
    TripletMarginLoss,
    WelschLoss,
)

__version__ = "0.1.0"

#: every loss, by name or alias: ``losskit.catalog["huber"].formula``
catalog: Catalog = get_catalog()

__all__ = [
    "AdaptiveRobustLoss",
    "AsymmetricLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BPRLoss",
    "CTCLoss",
    "Catalog",
    "CauchyLoss",
    "CharbonnierLoss",
    "CombinedLoss",
    "CosineEmbeddingLoss",
    "CosineMargin",
    "CrossEntropyLoss",
    "ErrorInput",
    "FocalLoss",
    "GemanMcClureLoss",
    "GeneralRobustLoss",
    "GeneralRobustNLLLoss",
    "HingeLoss",
    "HuberLoss",
    "HyperParam",
    "KLDivLoss",
    "KLDivWithLogitsLoss",
    "L1Loss",
    "LinearCrossEntropyLoss",
    "LinearMargin",
    "LogCoshLoss",
    "LossInputError",
    "LossModule",
    "LossParts",
    "LossSpec",
    "MSELoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "Poly1CrossEntropyLoss",
    "QuantileLoss",
    "SampleInput",
    "SigmoidFocalLoss",
    "SmoothL1Loss",
    "TripletLoss",
    "TripletMarginLoss",
    "WelschLoss",
    "WorkedExample",
    "catalog",
    "checks",
    "class_balanced_weights",
    "elementwise_loss",
    "functional",
    "get_catalog",
    "get_checks",
    "multitask",
    "set_checks",
]
