"""losskit: the loss functions of deep learning, checked, stable and fast.

>>> import torch, losskit
>>> import losskit.functional as LF
>>> LF.huber_loss(torch.tensor([0.2, 0.3, -0.5, 0.1, 1.5]), torch.zeros(5), delta=1.0)
tensor(0.2390)
>>> losskit.catalog["huber"].summary
'Quadratic for small residuals, linear beyond delta: MSE's efficiency, MAE's robustness.'
"""

from . import functional
from ._catalog import (
    Catalog,
    ErrorInput,
    HyperParam,
    LossSpec,
    SampleInput,
    WorkedExample,
    get_catalog,
)
from ._checks import LossInputError, checks, get_checks, set_checks
from .custom import CombinedLoss, LossParts, elementwise_loss
from .nn import (
    BCELoss,
    BCEWithLogitsLoss,
    BPRLoss,
    CosineEmbeddingLoss,
    CrossEntropyLoss,
    CTCLoss,
    HingeLoss,
    HuberLoss,
    KLDivLoss,
    KLDivWithLogitsLoss,
    L1Loss,
    LogCoshLoss,
    LossModule,
    MarginRankingLoss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    QuantileLoss,
    SmoothL1Loss,
)

__version__ = "0.1.0"

#: every loss, by name or alias: ``losskit.catalog["huber"].formula``
catalog: Catalog = get_catalog()

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "BPRLoss",
    "CTCLoss",
    "Catalog",
    "CombinedLoss",
    "CosineEmbeddingLoss",
    "CrossEntropyLoss",
    "ErrorInput",
    "HingeLoss",
    "HuberLoss",
    "HyperParam",
    "KLDivLoss",
    "KLDivWithLogitsLoss",
    "L1Loss",
    "LogCoshLoss",
    "LossInputError",
    "LossModule",
    "LossParts",
    "LossSpec",
    "MSELoss",
    "MarginRankingLoss",
    "MultiMarginLoss",
    "NLLLoss",
    "QuantileLoss",
    "SampleInput",
    "SmoothL1Loss",
    "WorkedExample",
    "catalog",
    "checks",
    "elementwise_loss",
    "functional",
    "get_catalog",
    "get_checks",
    "set_checks",
]
