"""losskit's functional API: pure functions, PyTorch argument order
``loss(input, target, *, options..., reduction="mean")``."""

from .classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from .regression import (
    huber_loss,
    l1_loss,
    log_cosh_loss,
    mae_loss,
    mse_loss,
    quantile_loss,
    smooth_l1_loss,
)

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "l1_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "nll_loss",
    "quantile_loss",
    "smooth_l1_loss",
]
