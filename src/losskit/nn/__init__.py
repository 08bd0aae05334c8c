"""``torch.nn.Module`` forms of every loss: thin wrappers over :mod:`losskit.functional`."""

from ._base import LossModule
from .classification import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from .regression import HuberLoss, L1Loss, LogCoshLoss, MSELoss, QuantileLoss, SmoothL1Loss

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "L1Loss",
    "LogCoshLoss",
    "LossModule",
    "MSELoss",
    "NLLLoss",
    "QuantileLoss",
    "SmoothL1Loss",
]
