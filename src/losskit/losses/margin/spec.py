"""Catalog entries for the hinge losses: binary (SVM) hinge and torch's multi-class margin."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.margin import functional as LF
from losskit.losses.margin import modules as LN
from losskit.losses.margin.options import MARGIN, SQUARED, WEIGHT, P

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.margin.cases"

#: CS231n's multiclass SVM example: class scores of three images (cat, car, frog), true classes
#: 0, 1, 2; hinge losses 2.9, 0 and 12.9 (torch divides each by C = 3)
_CS231N_SCORES = ((3.2, 5.1, -1.7), (1.3, 4.9, 2.0), (2.2, 2.5, -3.1))


SPECS = [
    LossSpec(
        name="hinge",
        aliases=("hinge_loss", "svm_loss", "binary_hinge"),
        functional=LF.hinge_loss,
        module=LN.HingeLoss,
        task="classification",
        summary="SVM hinge on scores for +-1 or 0/1 labels; squared=True gives the L2-SVM loss.",
        formula=r"\ell_i = \max(0,\ m - y_i x_i)^{k},\ y_i\in\{-1,+1\},\ k\in\{1,2\}",
        params=(MARGIN, SQUARED),
        reference_name="max(0, margin - y x)^(1 or 2) in float64",
        papers=(
            "Cortes & Vapnik, Support-Vector Networks, 1995",
            "Rosasco et al., Are Loss Functions All the Same?, Neural Computation 2004",
        ),
        examples=(
            WorkedExample(
                "scores (0.3, 0.5, 2.0, -1.5) for labels (+1, -1, +1, -1): 0.7, 1.5, 0, 0",
                (torch.tensor([0.3, 0.5, 2.0, -1.5]), torch.tensor([1, -1, 1, -1])),
                {},
                0.55,
            ),
            WorkedExample(
                "the same, squared: (0.49 + 2.25) / 4",
                (torch.tensor([0.3, 0.5, 2.0, -1.5]), torch.tensor([1, 0, 1, 0])),
                {"squared": True},
                0.685,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        notes="Labels +-1 or 0/1 (or bool); a mix of -1 and 0 is an error under checks='full'.",
        cases=_CASES,
    ),
    LossSpec(
        name="multi_margin",
        aliases=("multi_margin_loss", "multiclass_hinge", "multi_class_hinge", "weston_watkins"),
        functional=LF.multi_margin_loss,
        module=LN.MultiMarginLoss,
        # torch's kernel has no second derivative and says so ("derivative for
        # aten::multi_margin_loss_backward is not implemented")
        double_backward="refused",
        task="classification",
        summary="Multi-class hinge (Weston-Watkins): every wrong class within margin of the true one.",
        formula=r"\ell_n = \frac{w_{y_n}}{C}\sum_{c\ne y_n}\max(0,\ m - x_{n,y_n} + x_{n,c})^p",
        params=(P, MARGIN, WEIGHT),
        reference_name="torch.nn.functional.multi_margin_loss",
        papers=(
            "Weston & Watkins, Support Vector Machines for Multi-Class Pattern Recognition, 1999",
        ),
        examples=(
            WorkedExample(
                "CS231n cat/car/frog scores: hinge 2.9, 0, 12.9, each divided by C = 3",
                (torch.tensor(_CS231N_SCORES), torch.tensor([0, 1, 2])),
                {},
                1.756,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes="With a class weight, 'mean' is the weighted mean (torch divides by N).",
        cases=_CASES,
    ),
]
