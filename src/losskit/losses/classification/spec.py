"""Catalog entries for cross-entropy, NLL and binary cross-entropy."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.classification import functional as LF
from losskit.losses.classification import modules as LN
from losskit.losses.classification.options import (
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    WEIGHT,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.classification.cases"

_BCE_P = (0.8, 0.3, 0.1, 0.6)
_BCE_Y = (1.0, 0.0, 0.0, 1.0)


SPECS = [
    LossSpec(
        name="cross_entropy",
        aliases=("ce", "cross_entropy_loss", "categorical_crossentropy", "softmax_cross_entropy"),
        functional=LF.cross_entropy,
        module=LN.CrossEntropyLoss,
        task="classification",
        summary="Softmax cross-entropy on logits; class indices or probabilities, smoothing, ignore_index.",
        formula=r"\ell_i = -\sum_c w_c\,q_{ic}\log\operatorname{softmax}(x_i)_c,\ q_i=(1-\varepsilon)y_i+\varepsilon/C",
        params=(WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
        reference_name="torch.nn.functional.cross_entropy",
        papers=("Szegedy et al., Rethinking the Inception Architecture (label smoothing), 2016",),
        examples=(
            WorkedExample(
                "logits (2.0, 1.0, 0.1), true class 0: softmax 0.659",
                (torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0])),
                {},
                0.417,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
    LossSpec(
        name="nll",
        aliases=("nll_loss", "negative_log_likelihood"),
        functional=LF.nll_loss,
        module=LN.NLLLoss,
        input_space="log_probabilities",
        task="classification",
        summary="Negative log-likelihood of class indices given log-probabilities.",
        formula=r"\ell_i = -w_{y_i}\,x_{i,y_i}",
        params=(WEIGHT, IGNORE_INDEX),
        reference_name="torch.nn.functional.nll_loss",
        examples=(
            WorkedExample(
                "log-probabilities of (0.7, 0.2, 0.1), true class 0",
                (torch.tensor([[0.7, 0.2, 0.1]]).log(), torch.tensor([0])),
                {},
                0.357,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
    LossSpec(
        name="bce",
        aliases=("binary_cross_entropy", "binary_crossentropy"),
        functional=LF.binary_cross_entropy,
        module=LN.BCELoss,
        input_space="probabilities",
        task="multilabel",
        summary="Binary cross-entropy on probabilities; finite at exactly 0 and 1.",
        formula=r"\ell_i = -[y_i\log p_i + (1-y_i)\log(1-p_i)]",
        reference_name="torch.nn.functional.binary_cross_entropy",
        examples=(
            WorkedExample(
                "p=(0.8, 0.3, 0.1, 0.6) for y=(1, 0, 0, 1)",
                (torch.tensor(_BCE_P), torch.tensor(_BCE_Y)),
                {},
                0.299,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
    LossSpec(
        name="bce_with_logits",
        aliases=("binary_cross_entropy_with_logits", "sigmoid_cross_entropy"),
        functional=LF.binary_cross_entropy_with_logits,
        module=LN.BCEWithLogitsLoss,
        task="multilabel",
        summary="Binary cross-entropy on logits in log-space; pos_weight for imbalance.",
        formula=r"\ell_i = -[p\,y_i\log\sigma(x_i) + (1-y_i)\log(1-\sigma(x_i))]",
        params=(POS_WEIGHT,),
        reference_name="torch.nn.functional.binary_cross_entropy_with_logits",
        examples=(
            WorkedExample(
                "logits of p=(0.8, 0.3, 0.1, 0.6) for y=(1, 0, 0, 1)",
                (torch.logit(torch.tensor(_BCE_P)), torch.tensor(_BCE_Y)),
                {},
                0.299,
            ),
        ),
        target_kind="binary",
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
]
