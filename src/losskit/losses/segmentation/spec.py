"""Catalog entries for the segmentation losses.

The references are explicit float64 formulas over a dense one-hot target (the overlap losses)
and the per-class sorting loop of Berman et al. (the Lovász losses), in
:mod:`losskit.losses.segmentation.cases`, with the published formulas of MONAI and
segmentation_models_pytorch written out beside them for the parity tests.
"""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.segmentation import functional as LF
from losskit.losses.segmentation import modules as LN
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

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.segmentation.cases"

_COUNTING = (PER_IMAGE, INCLUDE_BACKGROUND, CLASS_WEIGHT, IGNORE_INDEX, ABSENT)
_PAPERS = {
    "vnet": "Milletari et al., V-Net: Fully Convolutional Neural Networks for Volumetric Medical "
    "Image Segmentation, 3DV 2016",
    "gdl": "Sudre et al., Generalised Dice overlap as a deep learning loss function for highly "
    "unbalanced segmentations, DLMIA 2017",
    "tversky": "Salehi et al., Tversky loss function for image segmentation using 3D fully "
    "convolutional deep networks, MLMI 2017",
    "focal_tversky": "Abraham & Khan, A Novel Focal Tversky loss function with improved "
    "Attention U-Net for lesion segmentation, ISBI 2019",
    "lovasz": "Berman et al., The Lovász-Softmax loss: A tractable surrogate for the "
    "optimization of the intersection-over-union measure in neural networks, CVPR 2018",
}

# one binary image of four pixels: probabilities (0.9, 0.1, 0.8, 0.2) against (1, 0, 1, 0), so
# I = 1.7, P = 2.0, G = 2, false positives = false negatives = 0.3
_PROBS = torch.tensor([[[0.9, 0.1, 0.8, 0.2]]])
_MASK = torch.tensor([[1, 0, 1, 0]])
_BINARY = {"mode": "binary", "from_logits": False, "smooth": 0.0}


def _binary_example(title: str, expected: float, decimals: int = 4, **kwargs) -> WorkedExample:
    return WorkedExample(title, (_PROBS, _MASK), {**_BINARY, **kwargs}, expected, decimals)


_NOTES = (
    "Index targets are never one-hot encoded: per-class sums of the softmax, chunk by chunk, "
    "forward and backward (a custom autograd Function). The table mapping every option to "
    "MONAI's and smp's arguments is in losskit.losses.segmentation.functional."
)

SPECS = [
    LossSpec(
        name="dice",
        aliases=("dice_loss", "soft_dice"),
        functional=LF.dice_loss,
        module=LN.DiceLoss,
        task="segmentation",
        summary="Soft Dice loss for 2-D and 3-D segmentation; no one-hot target for class indices.",
        formula=r"\ell_c = 1 - \frac{2\sum_i p_{ic} y_{ic} + s}{\sum_i p_{ic} + \sum_i y_{ic} + s'}",
        params=(MODE, FROM_LOGITS, SMOOTH, SMOOTH_DENOMINATOR, SQUARED, *_COUNTING, LOG_LOSS),
        reference_name="one-hot Dice formula (float64)",
        papers=(_PAPERS["vnet"],),
        examples=(
            _binary_example("I = 1.7, P + G = 4: Dice 3.4 / 4 = 0.85", 0.15),
            _binary_example(
                "squared: P = 0.9^2 + 0.1^2 + 0.8^2 + 0.2^2 = 1.5", 0.0286, squared=True
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes=_NOTES,
        bench_sizes=(32, 64, 96),
        cases=_CASES,
    ),
    LossSpec(
        name="generalized_dice",
        aliases=("generalized_dice_loss", "generalised_dice", "gdl"),
        functional=LF.generalized_dice_loss,
        module=LN.GeneralizedDiceLoss,
        task="segmentation",
        summary="Dice over all classes weighted by 1/volume^2: small structures count as much as large.",
        formula=(
            r"\ell = 1 - \frac{2\sum_c w_c \sum_i p_{ic} y_{ic} + s}"
            r"{\sum_c w_c \sum_i (p_{ic} + y_{ic}) + s'},\ w_c = 1/(\sum_i y_{ic})^2"
        ),
        params=(
            MODE,
            FROM_LOGITS,
            WEIGHT_TYPE,
            GDL_SMOOTH,
            SMOOTH_DENOMINATOR,
            PER_IMAGE,
            INCLUDE_BACKGROUND,
            IGNORE_INDEX,
        ),
        reference_name="MONAI's GeneralizedDiceLoss formula (one-hot, float64)",
        papers=(_PAPERS["gdl"],),
        examples=(_binary_example("one class: the Dice loss, 1 - 0.85", 0.15),),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="A class absent from the target takes the largest weight of the present ones "
        "(MONAI's rule). " + _NOTES,
        cases=_CASES,
    ),
    LossSpec(
        name="jaccard",
        aliases=("jaccard_loss", "soft_jaccard", "iou_loss", "soft_iou"),
        functional=LF.jaccard_loss,
        module=LN.JaccardLoss,
        task="segmentation",
        summary="Soft Jaccard (IoU) loss for segmentation; no one-hot target for class indices.",
        formula=(
            r"\ell_c = 1 - \frac{\sum_i p_{ic} y_{ic} + s}"
            r"{\sum_i p_{ic} + \sum_i y_{ic} - \sum_i p_{ic} y_{ic} + s'}"
        ),
        params=(MODE, FROM_LOGITS, SMOOTH, SMOOTH_DENOMINATOR, SQUARED, *_COUNTING, LOG_LOSS),
        reference_name="one-hot Jaccard formula (float64)",
        examples=(_binary_example("I = 1.7, union 4 - 1.7 = 2.3", 0.2609),),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes=_NOTES,
        cases=_CASES,
    ),
    LossSpec(
        name="tversky",
        aliases=("tversky_loss",),
        functional=LF.tversky_loss,
        module=LN.TverskyLoss,
        task="segmentation",
        summary="Tversky loss: Dice with separate weights for false positives and false negatives.",
        formula=r"\ell_c = 1 - \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s'}",
        params=(
            MODE,
            FROM_LOGITS,
            TVERSKY_ALPHA,
            TVERSKY_BETA,
            SMOOTH,
            SMOOTH_DENOMINATOR,
            *_COUNTING,
            LOG_LOSS,
        ),
        reference_name="one-hot Tversky formula (float64)",
        papers=(_PAPERS["tversky"],),
        examples=(
            _binary_example(
                "TP = 1.7, FP = FN = 0.3, alpha=0.3, beta=0.7: 1 - 1.7/2", 0.15, alpha=0.3, beta=0.7
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes=_NOTES,
        cases=_CASES,
    ),
    LossSpec(
        name="focal_tversky",
        aliases=("focal_tversky_loss",),
        functional=LF.focal_tversky_loss,
        module=LN.FocalTverskyLoss,
        task="segmentation",
        summary="(1 - Tversky index)^gamma per class: more weight on the classes segmented worst.",
        formula=r"\ell_c = \left(1 - \frac{TP_c + s}{TP_c + \alpha FP_c + \beta FN_c + s'}\right)^\gamma",
        params=(
            MODE,
            FROM_LOGITS,
            FT_ALPHA,
            FT_BETA,
            FT_GAMMA,
            SMOOTH,
            SMOOTH_DENOMINATOR,
            *_COUNTING,
        ),
        reference_name="one-hot focal Tversky formula (float64)",
        papers=(_PAPERS["focal_tversky"], _PAPERS["tversky"]),
        examples=(_binary_example("Tversky index 0.85, gamma 0.75: 0.15^0.75", 0.241),),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="gamma=1 is tversky. " + _NOTES,
        cases=_CASES,
    ),
    LossSpec(
        name="lovasz_softmax",
        aliases=("lovasz_softmax_loss", "lovasz"),
        functional=LF.lovasz_softmax_loss,
        module=LN.LovaszSoftmaxLoss,
        task="segmentation",
        summary="Lovász-softmax: a convex surrogate of the mean IoU, optimised directly.",
        formula=(
            r"\ell_c = \sum_k e_{(k)} \big(J_c(k) - J_c(k-1)\big),\ "
            r"e_i = |y_{ic} - p_{ic}|\ \text{sorted decreasing}"
        ),
        params=(FROM_LOGITS, CLASSES, PER_IMAGE, IGNORE_INDEX),
        reference_name="Berman et al.'s per-class sort (float64)",
        papers=(_PAPERS["lovasz"],),
        examples=(
            WorkedExample(
                "class 0 at p = 0.9 and 0.6, class 1 absent: errors 0.4, 0.1 weigh 1/2 each",
                (torch.tensor([[[0.9, 0.6], [0.1, 0.4]]]), torch.tensor([[0, 0]])),
                {"from_logits": False},
                0.25,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="All classes are sorted in one batched sort; the gradient flows through the "
        "errors (the order is piecewise constant), so double backward is exact.",
        bench_sizes=(32, 64, 128),
        cases=_CASES,
    ),
    LossSpec(
        name="lovasz_hinge",
        aliases=("lovasz_hinge_loss",),
        functional=LF.lovasz_hinge_loss,
        module=LN.LovaszHingeLoss,
        task="segmentation",
        summary="Lovász hinge: the IoU surrogate for binary and multi-label masks, on logits.",
        formula=(
            r"\ell_c = \sum_k \max(e_{(k)}, 0) \big(J_c(k) - J_c(k-1)\big),\ "
            r"e_i = 1 - x_i (2 y_i - 1)"
        ),
        params=(PER_IMAGE, IGNORE_INDEX),
        reference_name="Berman et al.'s lovasz_hinge (float64)",
        papers=(_PAPERS["lovasz"],),
        examples=(
            WorkedExample(
                "logits (2, -1, 0.5, -0.5), mask (1, 0, 0, 0): hinge errors 1.5 and 0.5 weigh "
                "1/2 and 1/6",
                (torch.tensor([[[[2.0, -1.0], [0.5, -0.5]]]]), torch.tensor([[[1, 0], [0, 0]]])),
                {},
                0.833,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
]
