"""Catalog entry for the chunked linear cross-entropy (the LM-head loss)."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.linear_ce import functional as LF
from losskit.losses.linear_ce import modules as LN
from losskit.losses.linear_ce.options import (
    CHUNK_SIZE,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    SOFTCAP,
    Z_LOSS,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.linear_ce.cases"


SPECS = [
    LossSpec(
        name="linear_cross_entropy",
        aliases=("linear_ce", "fused_linear_cross_entropy", "chunked_cross_entropy"),
        functional=LF.linear_cross_entropy,
        module=LN.LinearCrossEntropyLoss,
        task="classification",
        summary="Cross-entropy of h @ W.T for large vocabularies, chunked: no N x V logits, "
        "z-loss, soft-cap.",
        formula=r"z_i = c\tanh(W h_i / c),\ \ell_i = -(1-\varepsilon)\log\operatorname{softmax}"
        r"(z_i)_{y_i} - \tfrac{\varepsilon}{V}\sum_j\log\operatorname{softmax}(z_i)_j"
        r" + \lambda\operatorname{lse}(z_i)^2",
        params=(IGNORE_INDEX, LABEL_SMOOTHING, Z_LOSS, SOFTCAP, CHUNK_SIZE),
        reference_name="F.cross_entropy(F.linear(h, W, b), y)",
        papers=(
            "Wijmans et al., Cut Your Losses in Large-Vocabulary Language Models, ICLR 2025",
            "Hsu et al., Liger Kernel: Efficient Triton Kernels for LLM Training, 2024",
            "Chowdhery et al., PaLM: Scaling Language Modeling with Pathways (z-loss), 2022",
            "Gemma Team, Gemma 2: Improving Open Language Models at a Practical Size "
            "(logit soft-capping), 2024",
        ),
        examples=(
            WorkedExample(
                "two classes, h=(1,), W=((2,), (0,)), true class 0: log(1 + e^-2)",
                (torch.tensor([[1.0]]), torch.tensor([[2.0], [0.0]]), torch.tensor([0])),
                {},
                0.127,
            ),
        ),
        inputs=("hidden", "lm_head.weight", "target"),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        compile="graph_break",
        compile_note="the chunked Function runs outside the graph (torch.compiler.disable): "
        "its chunk loop is Python and its float options change between calls",
        autocast="lower_precision_matmul",
        notes="The weight is an argument of each call (lm_head.weight). On CPU the rows of "
        "ignored targets are dropped before the products (one read of their count, free on "
        "the host); on accelerators they are masked instead, so a call never synchronises.",
        bench_sizes=(32, 256, 1024, 4096, 8192),
        cases=_CASES,
    ),
]
