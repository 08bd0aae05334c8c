"""Catalog entries of the distillation family: the fused linear loss (two LM heads, no logits)
and the same divergences on ready logits."""

from __future__ import annotations

import math

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.distillation import functional as LF
from losskit.losses.distillation import modules as LN
from losskit.losses.distillation.options import (
    BETA,
    CHUNK_SIZE,
    DIVERGENCE,
    HARD_WEIGHT,
    IGNORE_INDEX,
    SOFTCAP,
    TEMPERATURE,
    Z_LOSS,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.distillation.cases"

_PARAMS = (DIVERGENCE, BETA, TEMPERATURE, HARD_WEIGHT, IGNORE_INDEX, Z_LOSS, SOFTCAP, CHUNK_SIZE)
_PAPERS = (
    "Hinton, Vinyals & Dean, Distilling the Knowledge in a Neural Network, 2015",
    "Agarwal et al., On-Policy Distillation of Language Models: Learning from Self-Generated "
    "Mistakes (GKD, generalised JSD), ICLR 2024",
    "Gu et al., MiniLLM: Knowledge Distillation of Large Language Models (reverse KL), ICLR 2024",
    "Hsu et al., Liger Kernel: Efficient Triton Kernels for LLM Training (fused linear JSD), 2024",
)
_FORMULA = (
    r"\ell_i = T^2 D\big(\operatorname{softmax}(t_i/T), \operatorname{softmax}(s_i/T)\big)"
    r" + w_h \operatorname{CE}(s_i, y_i) + \lambda\operatorname{lse}(s_i)^2,\ "
    r"D \in \{\mathrm{KL}(p\|q), \mathrm{KL}(q\|p), "
    r"\beta\mathrm{KL}(p\|m) + (1-\beta)\mathrm{KL}(q\|m)\},\ m = \beta p + (1-\beta) q"
)
#: teacher P = (0.36, 0.48, 0.16) (binomial(2, 0.4)), student uniform: KL(P || U) = 0.0853
#: (Wikipedia's example) and KL(U || P) = 0.0975
_P = torch.tensor([[0.36, 0.48, 0.16]])
_UNIFORM = torch.zeros(1, 3)


def _jsd(p: tuple[float, ...], q: tuple[float, ...]) -> float:
    """The Jensen-Shannon divergence (beta = 0.5) of two distributions, as its definition reads."""
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl_p = sum(a * math.log(a / c) for a, c in zip(p, m, strict=True))
    kl_q = sum(b * math.log(b / c) for b, c in zip(q, m, strict=True))
    return 0.5 * kl_p + 0.5 * kl_q


_JSD = _jsd((0.36, 0.48, 0.16), (1 / 3, 1 / 3, 1 / 3))

SPECS = [
    LossSpec(
        name="linear_distillation",
        aliases=(
            "linear_distillation_loss",
            "fused_linear_distillation",
            "fused_linear_jsd",
            "linear_jsd",
            "linear_kd",
        ),
        functional=LF.linear_distillation_loss,
        module=LN.LinearDistillationLoss,
        task="distribution",
        summary="Knowledge distillation between two LM heads (forward/reverse KL, generalised "
        "JSD, T^2), chunked: no N x V logits.",
        formula=_FORMULA + r",\ s_i = W_s h^s_i,\ t_i = W_t h^t_i",
        params=_PARAMS,
        reference_name="dense: log_softmax(h_s @ W_s.T / T), log_softmax(h_t @ W_t.T / T), "
        "divergence in float64",
        papers=_PAPERS,
        examples=(
            WorkedExample(
                "teacher head gives log P = binomial(2, 0.4), student uniform: KL(P || U) "
                "(Wikipedia: 0.0852996 nats)",
                (torch.ones(1, 1), torch.zeros(3, 1), torch.ones(1, 1), _P.log().T),
                {},
                0.0853,
                4,
            ),
        ),
        inputs=("student_hidden", "student_weight", "teacher_hidden", "teacher_weight", "target"),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        compile="graph_break",
        compile_note="the chunked Function runs outside the graph (torch.compiler.disable): "
        "counting the targets that are not ignore_index (one host read on CPU) sizes its "
        "chunk loop",
        autocast="lower_precision_matmul",
        double_backward="refused",
        notes="The weights are arguments of each call (the two lm_head weights); the teacher "
        "gets no gradient. jsd with beta=0 is KL(teacher || student), beta=1 KL(student || "
        "teacher), as in Liger-Kernel and TRL.",
        bench_sizes=(1024, 4096),
        cases=_CASES,
    ),
    LossSpec(
        name="logit_distillation",
        aliases=("distillation_loss", "generalized_jsd", "generalised_jsd", "gkd", "jsd"),
        functional=LF.distillation_loss,
        module=LN.DistillationLoss,
        task="distribution",
        summary="Knowledge distillation on logits (classes last): forward/reverse KL or "
        "generalised JSD at a temperature, plus hard-label CE.",
        formula=_FORMULA,
        params=_PARAMS,
        reference_name="dense: log_softmax(s / T), log_softmax(t / T), divergence in float64",
        papers=_PAPERS,
        examples=(
            WorkedExample(
                "teacher log P = binomial(2, 0.4), student uniform: reverse KL(U || P) "
                "(Wikipedia: 0.097455 nats)",
                (_UNIFORM, _P.log()),
                {"divergence": "reverse_kl"},
                0.0975,
                4,
            ),
            WorkedExample(
                "the same pair, Jensen-Shannon divergence (beta = 0.5)",
                (_UNIFORM, _P.log()),
                {"divergence": "jsd"},
                round(_JSD, 4),
                4,
            ),
        ),
        inputs=("student_logits", "teacher_logits", "target"),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        compile="graph_break",
        compile_note="the chunked Function runs outside the graph (torch.compiler.disable): "
        "counting the targets that are not ignore_index (one host read on CPU) sizes its "
        "chunk loop",
        double_backward="refused",
        notes="Classes on the last dimension (LM logits (batch, seq, V)), unlike "
        "kl_div_with_logits (dimension 1). A teacher logit of -inf is a probability of 0.",
        cases=_CASES,
    ),
]
