"""Module forms of the contrastive losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.contrastive.options`).

A learnable ``logit_scale`` or ``logit_bias`` stays with the model that owns it and is passed
per call, as open_clip does: ``criterion(image, text, logit_scale=model.logit_scale.exp())``;
the constructor's value is the fixed one used otherwise.
"""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.contrastive import functional as LF
from losskit.losses.contrastive.options import (
    BLOCK_SIZE,
    CLIP_LOGIT_SCALE,
    GATHER,
    LOGIT_BIAS,
    NEGATIVE_MODE,
    SIGLIP_GATHER,
    SIGLIP_LOGIT_SCALE,
    TEMPERATURE,
)

__all__ = ["ClipLoss", "InfoNCELoss", "NTXentLoss", "SigLipLoss", "SupConLoss"]

InfoNCELoss = loss_module(
    "InfoNCELoss",
    LF.info_nce_loss,
    (TEMPERATURE, NEGATIVE_MODE, BLOCK_SIZE),
    summary="InfoNCE with in-batch or explicit negatives",
)
NTXentLoss = loss_module(
    "NTXentLoss",
    LF.nt_xent_loss,
    (TEMPERATURE, GATHER, BLOCK_SIZE),
    summary="NT-Xent (SimCLR) with labels",
)
SupConLoss = loss_module(
    "SupConLoss",
    LF.supcon_loss,
    (TEMPERATURE, GATHER, BLOCK_SIZE),
    summary="Supervised contrastive loss",
)
ClipLoss = loss_module(
    "ClipLoss",
    LF.clip_loss,
    (CLIP_LOGIT_SCALE, GATHER, BLOCK_SIZE),
    summary="CLIP's symmetric InfoNCE",
)
SigLipLoss = loss_module(
    "SigLipLoss",
    LF.siglip_loss,
    (SIGLIP_LOGIT_SCALE, LOGIT_BIAS, SIGLIP_GATHER, BLOCK_SIZE),
    summary="SigLIP's pairwise sigmoid loss",
)
