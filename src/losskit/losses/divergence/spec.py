"""Catalog entries for the KL divergence, on log-probabilities and on logits (distillation)."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.divergence import functional as LF
from losskit.losses.divergence import modules as LN
from losskit.losses.divergence.options import LOG_TARGET, TEMPERATURE

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.divergence.cases"

#: Wikipedia's example: P = binomial(2, 0.4), Q uniform on {0, 1, 2}; D_KL(P || Q) = 0.0852996
_P = (0.36, 0.48, 0.16)


_P_TENSOR = torch.tensor([_P])
_UNIFORM = torch.full((1, 3), 1.0 / 3.0)

SPECS = [
    LossSpec(
        name="kl_div",
        aliases=("kl", "kl_divergence", "kldiv", "kl_div_loss", "kullback_leibler"),
        functional=LF.kl_div,
        module=LN.KLDivLoss,
        input_space="log_probabilities",
        task="distribution",
        summary="KL divergence D(P||Q) from log-probabilities of Q; batchmean (per sample) by default.",
        formula=r"D_{KL}(P\|Q) = \sum_c p_c(\log p_c - \log q_c),\ \text{input} = \log q",
        params=(LOG_TARGET,),
        reference_name="torch.nn.functional.kl_div",
        papers=("Kullback & Leibler, On Information and Sufficiency, 1951",),
        examples=(
            WorkedExample(
                "P = binomial(2, 0.4) against uniform Q (Wikipedia: 0.0852996 nats)",
                (_UNIFORM.log(), _P_TENSOR),
                {},
                0.0853,
                4,
            ),
            WorkedExample(
                "the reverse, D(Q||P) (Wikipedia: 0.097455 nats)",
                (_P_TENSOR.log(), _UNIFORM),
                {},
                0.0975,
                4,
            ),
        ),
        notes=(
            "Default reduction is batchmean, the KL per sample (torch: mean over every element, "
            "which is not a KL divergence). A 1-D input is one distribution. A custom "
            "autograd Function: saves only its inputs."
        ),
        cases=_CASES,
    ),
    LossSpec(
        name="kl_div_with_logits",
        aliases=("distillation", "knowledge_distillation", "kd", "kl_div_logits"),
        functional=LF.kl_div_with_logits,
        module=LN.KLDivWithLogitsLoss,
        task="distribution",
        summary="Knowledge distillation: T^2 * KL(softmax(teacher/T) || softmax(student/T)) on logits.",
        formula=(
            r"\ell = T^2 \sum_c p_c(\log p_c - \log q_c),\ "
            r"p = \operatorname{softmax}(t/T),\ q = \operatorname{softmax}(s/T)"
        ),
        params=(TEMPERATURE,),
        reference_name="T**2 * F.kl_div(F.log_softmax(s / T), F.softmax(t / T))",
        papers=("Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015",),
        examples=(
            WorkedExample(
                "teacher logits log P = binomial(2, 0.4), student uniform, T=1",
                (torch.zeros(1, 3), _P_TENSOR.log()),
                {},
                0.0853,
                4,
            ),
        ),
        notes=(
            "Classes on dimension 1; flatten (B, T, V) to (B*T, V) for a per-token batchmean. "
            "A custom autograd Function up to T = 16: saves the inputs, log q and p."
        ),
        cases=_CASES,
    ),
]
