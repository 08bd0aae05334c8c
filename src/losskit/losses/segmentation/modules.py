"""Module forms of the segmentation losses, generated from the functionals and their options
(each option declared once, in :mod:`losskit.losses.segmentation.options`)."""

from __future__ import annotations

from losskit._module import loss_module
from losskit.losses.segmentation import functional as LF
from losskit.losses.segmentation.options import (
    ABSENT,
    CLASS_WEIGHT,
    CLASSES,
    FROM_LOGITS,
    FT_ALPHA,
    FT_BETA,
    FT_GAMMA,
    GDL_SMOOTH,
    IGNORE_INDEX,
    INCLUDE_BACKGROUND,
    LOG_LOSS,
    MODE,
    PER_IMAGE,
    SMOOTH,
    SMOOTH_DENOMINATOR,
    SQUARED,
    TVERSKY_ALPHA,
    TVERSKY_BETA,
    WEIGHT_TYPE,
)

__all__ = [
    "DiceLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "TverskyLoss",
]

_COUNTING = (PER_IMAGE, INCLUDE_BACKGROUND, CLASS_WEIGHT, IGNORE_INDEX, ABSENT)

DiceLoss = loss_module(
    "DiceLoss",
    LF.dice_loss,
    (MODE, FROM_LOGITS, SMOOTH, SMOOTH_DENOMINATOR, SQUARED, *_COUNTING, LOG_LOSS),
    summary="Soft Dice loss",
)
JaccardLoss = loss_module(
    "JaccardLoss",
    LF.jaccard_loss,
    (MODE, FROM_LOGITS, SMOOTH, SMOOTH_DENOMINATOR, SQUARED, *_COUNTING, LOG_LOSS),
    summary="Soft Jaccard (IoU) loss",
)
TverskyLoss = loss_module(
    "TverskyLoss",
    LF.tversky_loss,
    (
        MODE,
        FROM_LOGITS,
        TVERSKY_ALPHA,
        TVERSKY_BETA,
        SMOOTH,
        SMOOTH_DENOMINATOR,
        *_COUNTING,
        LOG_LOSS,
    ),
    summary="Tversky loss",
)
FocalTverskyLoss = loss_module(
    "FocalTverskyLoss",
    LF.focal_tversky_loss,
    (MODE, FROM_LOGITS, FT_ALPHA, FT_BETA, FT_GAMMA, SMOOTH, SMOOTH_DENOMINATOR, *_COUNTING),
    summary="Focal Tversky loss",
)
GeneralizedDiceLoss = loss_module(
    "GeneralizedDiceLoss",
    LF.generalized_dice_loss,
    (
        MODE,
        FROM_LOGITS,
        WEIGHT_TYPE,
        GDL_SMOOTH,
        SMOOTH_DENOMINATOR,
        PER_IMAGE,
        INCLUDE_BACKGROUND,
        IGNORE_INDEX,
    ),
    summary="Generalized Dice loss",
)
LovaszSoftmaxLoss = loss_module(
    "LovaszSoftmaxLoss",
    LF.lovasz_softmax_loss,
    (FROM_LOGITS, CLASSES, PER_IMAGE, IGNORE_INDEX),
    summary="Lovász-softmax loss",
)
LovaszHingeLoss = loss_module(
    "LovaszHingeLoss",
    LF.lovasz_hinge_loss,
    (PER_IMAGE, IGNORE_INDEX),
    summary="Lovász hinge loss",
)
