"""losskit's functional API: pure functions, PyTorch argument order
``loss(input, target, *, options..., reduction="mean")``."""

from .classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from .divergence import kl_div, kl_div_with_logits
from .embedding import cosine_embedding_loss
from .margin import hinge_loss, multi_margin_loss
from .ranking import bpr_loss, margin_ranking_loss
from .regression import (
    huber_loss,
    l1_loss,
    log_cosh_loss,
    mae_loss,
    mse_loss,
    quantile_loss,
    smooth_l1_loss,
)
from .sequence import ctc_loss

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bpr_loss",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div",
    "kl_div_with_logits",
    "l1_loss",
    "log_cosh_loss",
    "mae_loss",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "nll_loss",
    "quantile_loss",
    "smooth_l1_loss",
]
