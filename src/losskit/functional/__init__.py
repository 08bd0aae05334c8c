"""losskit's functional API: pure functions, PyTorch argument order
``loss(input, target, *, options..., reduction="mean")``."""

from losskit.losses.classification.functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    nll_loss,
)
from losskit.losses.divergence.functional import kl_div, kl_div_with_logits
from losskit.losses.embedding.functional import cosine_embedding_loss
from losskit.losses.imbalance.functional import (
    asymmetric_loss,
    focal_loss,
    poly1_cross_entropy,
    sigmoid_focal_loss,
)
from losskit.losses.linear_ce.functional import linear_cross_entropy
from losskit.losses.margin.functional import hinge_loss, multi_margin_loss
from losskit.losses.ranking.functional import bpr_loss, margin_ranking_loss
from losskit.losses.regression.functional import (
    huber_loss,
    l1_loss,
    log_cosh_loss,
    mae_loss,
    mse_loss,
    quantile_loss,
    smooth_l1_loss,
)
from losskit.losses.robust.functional import (
    cauchy_loss,
    charbonnier_loss,
    geman_mcclure_loss,
    general_robust_loss,
    general_robust_nll_loss,
    robust_log_partition,
    welsch_loss,
)
from losskit.losses.sequence.functional import ctc_loss
from losskit.losses.triplet.distances import paired_distances, pairwise_distances
from losskit.losses.triplet.functional import triplet_loss, triplet_margin_loss

__all__ = [
    "asymmetric_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bpr_loss",
    "cauchy_loss",
    "charbonnier_loss",
    "cosine_embedding_loss",
    "cross_entropy",
    "ctc_loss",
    "focal_loss",
    "geman_mcclure_loss",
    "general_robust_loss",
    "general_robust_nll_loss",
    "hinge_loss",
    "huber_loss",
    "kl_div",
    "kl_div_with_logits",
    "l1_loss",
    "linear_cross_entropy",
    "log_cosh_loss",
    "mae_loss",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "nll_loss",
    "paired_distances",
    "pairwise_distances",
    "poly1_cross_entropy",
    "quantile_loss",
    "robust_log_partition",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "triplet_loss",
    "triplet_margin_loss",
    "welsch_loss",
]
