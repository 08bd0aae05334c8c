"""Catalog entries for the class-imbalance losses: sigmoid and softmax focal loss, Poly-1
cross-entropy and the asymmetric loss.

The references are explicit formulas (torchvision cannot be a dependency): the ``*_formula``
functions of :mod:`losskit.losses.imbalance.cases` are the eager textbook computations, in the
input's dtype. The test matrix evaluates them in float64; the benchmarks run them as they are,
in float32, as the implementation a user would otherwise write (torchvision's
``sigmoid_focal_loss`` is this formula line for line).
"""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.imbalance import functional as LF
from losskit.losses.imbalance import modules as LN
from losskit.losses.imbalance.options import (
    CLASS_ALPHA,
    CLIP,
    EPSILON,
    GAMMA,
    GAMMA_NEG,
    GAMMA_POS,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    SIGMOID_ALPHA,
    WEIGHT,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.imbalance.cases"

_ELEMENT_SIZES = (1024, 65_536, 1_048_576, 4_194_304)
_BATCH_SIZES = (64, 256, 4096, 65_536)  # rows; 64 is (64, 10), see cases.SMALL_BENCH_CLASSES

_LOGIT_09 = 2.1972245773362196  # logit(0.9)
_LOG2 = 0.6931471805599453

SPECS = [
    LossSpec(
        name="sigmoid_focal",
        aliases=("sigmoid_focal_loss", "binary_focal", "binary_focal_loss"),
        functional=LF.sigmoid_focal_loss,
        module=LN.SigmoidFocalLoss,
        task="multilabel",
        summary="Focal loss on logits for binary and multi-label targets: down-weights easy examples.",
        formula=r"\ell_i = \alpha_t (1 - p_t)^\gamma\,\mathrm{BCE}(x_i, y_i),\ p_t = p y + (1-p)(1-y)",
        params=(SIGMOID_ALPHA, GAMMA, POS_WEIGHT),
        reference_name="torchvision.ops.sigmoid_focal_loss (its formula, in float64)",
        papers=("Lin et al., Focal Loss for Dense Object Detection, ICCV 2017",),
        examples=(
            WorkedExample(
                "p_t = 0.9: cross-entropy 0.1054 scaled by (1 - 0.9)^2 = 0.01",
                (torch.tensor([_LOGIT_09]), torch.tensor([1.0])),
                {"alpha": None},
                0.001054,
                decimals=6,
            ),
            WorkedExample(
                "the same with alpha = 0.25 for the positive class",
                (torch.tensor([_LOGIT_09]), torch.tensor([1.0])),
                {},
                0.000263,
                decimals=6,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        notes="alpha=None disables alpha (torchvision: alpha=-1). Soft targets follow the same "
        "formula. A custom autograd Function: saves only its inputs.",
        bench_sizes=_ELEMENT_SIZES,
        cases=_CASES,
    ),
    LossSpec(
        name="focal",
        aliases=("focal_loss", "softmax_focal", "softmax_focal_loss"),
        functional=LF.focal_loss,
        module=LN.FocalLoss,
        task="classification",
        summary="Softmax focal loss: cross-entropy down-weighted on well-classified examples.",
        formula=r"\ell_i = -\sum_c \alpha_c w_c q_{ic} (1 - p_{ic})^\gamma \log p_{ic}",
        params=(GAMMA, CLASS_ALPHA, WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
        reference_name="the softmax focal formula (dense, float64)",
        papers=("Lin et al., Focal Loss for Dense Object Detection, ICCV 2017",),
        examples=(
            WorkedExample(
                "p_t = 0.5 (logits log 2, 0, 0): cross-entropy log 2 times (1 - 0.5)^2",
                (torch.tensor([[_LOG2, 0.0, 0.0]]), torch.tensor([0])),
                {},
                0.173,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="gamma=0 with alpha=None is cross_entropy exactly. weight divides the mean as in "
        "cross_entropy; alpha does not. A custom autograd Function.",
        bench_sizes=_BATCH_SIZES,
        cases=_CASES,
    ),
    LossSpec(
        name="poly1_cross_entropy",
        aliases=("poly1", "poly1_ce", "polyloss"),
        functional=LF.poly1_cross_entropy,
        module=LN.Poly1CrossEntropyLoss,
        task="classification",
        summary="Cross-entropy plus epsilon (1 - p_t): the first term of the PolyLoss expansion.",
        formula=r"\ell_i = \sum_c w_c q_{ic} [-\log p_{ic} + \epsilon (1 - p_{ic})]",
        params=(EPSILON, WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
        reference_name="torch cross_entropy + epsilon (1 - p_t) (float64)",
        papers=(
            "Leng et al., PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions, ICLR 2022",
        ),
        examples=(
            WorkedExample(
                "p_t = 0.5, epsilon = 1: log 2 + 0.5",
                (torch.tensor([[_LOG2, 0.0, 0.0]]), torch.tensor([0])),
                {},
                1.193,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="epsilon=0 is cross_entropy exactly.",
        bench_sizes=_BATCH_SIZES,
        cases=_CASES,
    ),
    LossSpec(
        name="asymmetric",
        aliases=("asymmetric_loss", "asl"),
        functional=LF.asymmetric_loss,
        module=LN.AsymmetricLoss,
        task="multilabel",
        summary="Multi-label loss that focuses positives and negatives differently and discards easy negatives.",
        formula=r"\ell = -y (1-p)^{\gamma_+} \log p - (1-y)\, p_m^{\gamma_-} \log(1 - p_m),\ p_m = \max(p - m, 0)",
        params=(GAMMA_NEG, GAMMA_POS, CLIP),
        reference_name="the asymmetric loss formula (log-sigmoid logs, float64)",
        papers=("Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV 2021",),
        examples=(
            WorkedExample(
                "a positive at p = 0.8 and a negative at p = 0.3 (shifted to 0.25), summed",
                (torch.logit(torch.tensor([0.8, 0.3])), torch.tensor([1.0, 0.0])),
                {"reduction": "sum"},
                0.0458,
                decimals=4,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        notes="The authors' code sums (reduction='sum' here), clamps probabilities at 1e-8 "
        "before the log and by default detaches the focusing weights; losskit works in "
        "log-space and differentiates them.",
        bench_sizes=_ELEMENT_SIZES,
        cases=_CASES,
    ),
]
