"""Catalog entries for the contrastive losses: checked against explicit float64 formulas of
their papers here, and against pytorch-metric-learning and the formulas of open_clip and
info-nce-pytorch in the tests and the benchmarks."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.contrastive import functional as LF
from losskit.losses.contrastive import modules as LN
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

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.contrastive.cases"

#: two pairs of orthogonal unit vectors: each row's own pair at similarity 1, the other at 0
_TWO_PAIRS = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]),) * 2
#: two classes of two identical unit vectors, the classes orthogonal
_TWO_CLASSES = (
    torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]),
    torch.tensor([0, 0, 1, 1]),
)

_TILED = (
    "Tiled above 2048 x 2048 similarities (or with block_size): blocks of rows of the "
    "similarity matrix are streamed in forward and recomputed in backward, in float32, so the "
    "extra memory is O(N x block), not O(N^2); below that size the matrix is computed once "
    "and kept for the backward (16 MiB at most). Double "
    "backward goes through the dense formula (exact, O(N^2) memory)."
)
_GATHER = (
    " gather=True: the loss of the global batch under torch.distributed (embeddings gathered "
    "with gradients; every rank computes it and gets the gradient of its own rows)."
)
_EMPTY = " An empty batch gives 0.0 with a graph."

SPECS = [
    LossSpec(
        name="info_nce",
        aliases=("info_nce_loss", "infonce"),
        functional=LF.info_nce_loss,
        module=LN.InfoNCELoss,
        task="embedding",
        summary="InfoNCE: each query picks its positive key among in-batch or explicit "
        "negatives, by a softmax over cosine similarities / temperature.",
        formula=r"\ell_i = -\log\frac{e^{\cos(q_i,k^+_i)/\tau}}{e^{\cos(q_i,k^+_i)/\tau}"
        r" + \sum_{k^-} e^{\cos(q_i,k^-)/\tau}}",
        params=(TEMPERATURE, NEGATIVE_MODE, BLOCK_SIZE),
        reference_name="explicit log-softmax over normalised similarities in float64 "
        "(info-nce-pytorch's InfoNCE)",
        papers=(
            "van den Oord, Li & Vinyals, Representation Learning with Contrastive Predictive "
            "Coding, 2018",
        ),
        examples=(
            WorkedExample(
                "two orthogonal pairs, temperature 1: log(1 + e^-1)",
                _TWO_PAIRS,
                {"temperature": 1.0},
                0.313,
            ),
        ),
        inputs=("query", "positive_key"),
        properties=frozenset({"nonnegative"}),
        notes=_TILED + " Paired negatives (N, M, D) are one N x M product." + _EMPTY,
        bench_sizes=(256, 1024, 4096),
        cases=_CASES,
    ),
    LossSpec(
        name="nt_xent",
        aliases=("nt_xent_loss", "ntxent", "simclr"),
        functional=LF.nt_xent_loss,
        module=LN.NTXentLoss,
        task="embedding",
        summary="NT-Xent (SimCLR) with labels: every same-label pair is a positive, every other "
        "label a negative; cosine similarity / temperature.",
        formula=r"\ell_{ap} = -\log\frac{e^{s_{ap}/\tau}}{e^{s_{ap}/\tau}"
        r" + \sum_{n:\,y_n\ne y_a} e^{s_{an}/\tau}}",
        params=(TEMPERATURE, GATHER, BLOCK_SIZE),
        reference_name="explicit loops over positive pairs in float64 "
        "(pytorch-metric-learning's NTXentLoss)",
        papers=(
            "Chen, Kornblith, Norouzi & Hinton, A Simple Framework for Contrastive Learning of "
            "Visual Representations (SimCLR), ICML 2020",
            "Sohn, Improved Deep Metric Learning with Multi-class N-pair Loss Objective, "
            "NeurIPS 2016",
        ),
        examples=(
            WorkedExample(
                "two classes of identical unit vectors, temperature 1: log(1 + 2/e)",
                _TWO_CLASSES,
                {"temperature": 1.0},
                0.551,
            ),
        ),
        inputs=("embeddings", "labels"),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes=_TILED
        + _GATHER
        + " mean: over the positive pairs (both orders); none: per row, the sum of its pairs. "
        "No positive pair gives 0.0 with a graph.",
        bench_sizes=(256, 1024, 4096),
        cases=_CASES,
    ),
    LossSpec(
        name="supcon",
        aliases=("supcon_loss", "supervised_contrastive"),
        functional=LF.supcon_loss,
        module=LN.SupConLoss,
        task="embedding",
        summary="Supervised contrastive (Khosla et al., L_out): per anchor, the mean "
        "log-softmax of its positives over every other sample.",
        formula=r"\ell_i = -\frac{1}{|P(i)|}\sum_{p\in P(i)}\log\frac{e^{s_{ip}/\tau}}"
        r"{\sum_{a\ne i} e^{s_{ia}/\tau}}",
        params=(TEMPERATURE, GATHER, BLOCK_SIZE),
        reference_name="explicit loops over anchors and positives in float64 "
        "(pytorch-metric-learning's SupConLoss)",
        papers=("Khosla et al., Supervised Contrastive Learning, NeurIPS 2020",),
        examples=(
            WorkedExample(
                "two classes of identical unit vectors, temperature 1: log(1 + 2/e)",
                _TWO_CLASSES,
                {"temperature": 1.0},
                0.551,
            ),
        ),
        inputs=("embeddings", "labels"),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        notes=_TILED
        + _GATHER
        + " mean: over the anchors with a positive (pytorch-metric-learning's "
        "AvgNonZeroReducer); an anchor whose label has a single member has loss 0. A batch with "
        "one label keeps the paper's loss (pytorch-metric-learning: 0).",
        bench_sizes=(256, 1024, 4096),
        cases=_CASES,
    ),
    LossSpec(
        name="clip",
        aliases=("clip_loss", "clip_contrastive"),
        functional=LF.clip_loss,
        module=LN.ClipLoss,
        task="embedding",
        summary="CLIP's symmetric InfoNCE over logit_scale * image @ text.T, matching pairs on "
        "the diagonal; tiled, no B x B matrix.",
        formula=r"z = s\,XY^\top,\ \ell_i = \tfrac12(\operatorname{lse}_j z_{ij} - z_{ii})"
        r" + \tfrac12(\operatorname{lse}_j z_{ji} - z_{ii})",
        params=(CLIP_LOGIT_SCALE, GATHER, BLOCK_SIZE),
        reference_name="(CE(z, arange) + CE(z.T, arange)) / 2 in float64 (open_clip's ClipLoss)",
        papers=(
            "Radford et al., Learning Transferable Visual Models From Natural Language "
            "Supervision (CLIP), ICML 2021",
            "Cheng et al., Breaking the Memory Barrier: Near Infinite Batch Size Scaling for "
            "Contrastive Loss (Inf-CL), arXiv 2410.17243, 2024",
        ),
        examples=(
            WorkedExample(
                "two orthogonal pairs, logit_scale 1: log(1 + e^-1)",
                _TWO_PAIRS,
                {"logit_scale": 1.0},
                0.313,
            ),
        ),
        inputs=("image_embeds", "text_embeds"),
        properties=frozenset({"nonnegative"}),
        notes=_TILED
        + _GATHER
        + " logit_scale: a number or a one-element tensor with a gradient."
        + _EMPTY,
        bench_sizes=(1024, 4096, 16384),
        cases=_CASES,
    ),
    LossSpec(
        name="siglip",
        aliases=("siglip_loss", "sigmoid_contrastive"),
        functional=LF.siglip_loss,
        module=LN.SigLipLoss,
        task="embedding",
        summary="SigLIP's pairwise sigmoid loss: every image-text pair a binary decision, "
        "positives on the diagonal; tiled, ring exchange across ranks.",
        formula=r"z = s\,XY^\top + b,\ \ell_i = \sum_j \log\big(1 + e^{-y_{ij} z_{ij}}\big),"
        r"\ y_{ij} = 2[i=j] - 1",
        params=(SIGLIP_LOGIT_SCALE, LOGIT_BIAS, SIGLIP_GATHER, BLOCK_SIZE),
        reference_name="-logsigmoid(labels * z).sum() / N in float64 (open_clip's SigLipLoss)",
        papers=(
            "Zhai, Mustafa, Kolesnikov & Beyer, Sigmoid Loss for Language Image Pre-Training "
            "(SigLIP), ICCV 2023",
        ),
        examples=(
            WorkedExample(
                "two orthogonal pairs, logit_scale 1, bias 0: softplus(-1) + log 2",
                _TWO_PAIRS,
                {"logit_scale": 1.0, "logit_bias": 0.0},
                1.006,
            ),
        ),
        inputs=("image_embeds", "text_embeds"),
        properties=frozenset({"nonnegative"}),
        notes=_TILED
        + _GATHER
        + " gather='ring': the SigLIP paper's chunked exchange, text blocks passed from rank to "
        "rank, no rank holding the global batch (each returns its share; double backward "
        "refused). logit_scale, logit_bias: numbers or one-element tensors with gradients."
        + _EMPTY,
        bench_sizes=(1024, 4096, 16384),
        cases=_CASES,
    ),
]
