"""Catalog entries for the angular-margin losses (CosFace, ArcFace)."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.angular_margin import functional as LF
from losskit.losses.angular_margin import modules as LN
from losskit.losses.angular_margin.options import (
    ARC_MARGIN,
    CHUNK_SIZE,
    COS_MARGIN,
    EASY_MARGIN,
    IGNORE_INDEX,
    SCALE,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.angular_margin.cases"

#: one embedding 60 degrees from its class's centre (class 0) and 30 degrees from class 1
_SIXTY_DEGREES = (
    torch.tensor([[0.5, 0.75**0.5]]),
    torch.tensor([0]),
    torch.eye(2),
)
_TITLE = "true class 60 degrees away, the other 30, s=4: "

_SHARED = {
    "inputs": ("embeddings", "labels", "class_weight"),
    "target_kind": "class_index",
    "properties": frozenset({"nonnegative"}),
    "compile": "graph_break",
    "compile_note": "the chunked Function runs outside the graph (torch.compiler.disable), as "
    "linear cross-entropy's: its chunk loop is Python and its float options change between "
    "calls",
    "autocast": "lower_precision_matmul",
    # classes, with 4096 embeddings of d=512: the goal is 1,048,576 classes
    # (1024: a classifier's head, where the chunks' rows grow with the threads)
    "bench_sizes": (1024, 4096, 32_768, 131_072),
    "cases": _CASES,
}

SPECS = [
    LossSpec(
        name="cosface",
        aliases=("cosface_loss", "large_margin_cosine_loss", "lmcl", "am_softmax"),
        functional=LF.cosface_loss,
        module=LN.CosFaceLoss,
        task="embedding",
        summary="CosFace: softmax over s cos(theta) to normalised class centres, margin m off "
        "the true cosine; chunked: no N x C logits.",
        formula=r"\ell_i = -\log\frac{e^{s(\cos\theta_{iy_i}-m)}}{e^{s(\cos\theta_{iy_i}-m)}"
        r"+\sum_{j\ne y_i}e^{s\cos\theta_{ij}}},\ \cos\theta_{ij}="
        r"\frac{h_i\cdot W_j}{\|h_i\|\|W_j\|}",
        params=(SCALE, COS_MARGIN, IGNORE_INDEX, CHUNK_SIZE),
        reference_name="dense formula: F.cross_entropy(s * (normalize(h) @ normalize(W).T "
        "- m one_hot(y)), y)",
        papers=(
            "Wang et al., CosFace: Large Margin Cosine Loss for Deep Face Recognition, CVPR 2018",
            "Wang et al., Additive Margin Softmax for Face Verification, IEEE SPL 2018",
        ),
        examples=(
            WorkedExample(
                _TITLE + "log(1 + e^(4 cos 30 - 4 (cos 60 - 0.35)))",
                _SIXTY_DEGREES,
                {"scale": 4.0},
                2.920,
            ),
        ),
        notes="pytorch-metric-learning's CosFaceLoss at the same defaults (s=64, m=0.35) with "
        "W = class_weight.T. The module can own the class centres (num_classes, "
        "embedding_size).",
        **_SHARED,
    ),
    LossSpec(
        name="arcface",
        aliases=("arcface_loss", "additive_angular_margin_loss"),
        functional=LF.arcface_loss,
        module=LN.ArcFaceLoss,
        task="embedding",
        summary="ArcFace: softmax over s cos(theta) to normalised class centres, margin m added "
        "to the true angle; chunked: no N x C logits.",
        formula=r"\ell_i = -\log\frac{e^{s\psi(\theta_{iy_i})}}{e^{s\psi(\theta_{iy_i})}"
        r"+\sum_{j\ne y_i}e^{s\cos\theta_{ij}}},\ \psi(\theta)=\begin{cases}\cos(\theta+m)"
        r"&\theta\le\pi-m\\\cos\theta-m\sin m&\text{otherwise}\end{cases}",
        params=(SCALE, ARC_MARGIN, EASY_MARGIN, IGNORE_INDEX, CHUNK_SIZE),
        reference_name="dense formula: F.cross_entropy(s * logits with cos(acos(cos_y) + m) "
        "at the true class, y)",
        papers=(
            "Deng et al., ArcFace: Additive Angular Margin Loss for Deep Face Recognition, "
            "CVPR 2019",
        ),
        examples=(
            WorkedExample(
                _TITLE + "log(1 + e^(4 cos 30 - 4 cos(60 deg + 0.5)))",
                _SIXTY_DEGREES,
                {"scale": 4.0},
                3.404,
            ),
        ),
        notes="The margin is in radians (the paper's 0.5); pytorch-metric-learning's ArcFaceLoss "
        "takes degrees (default 28.6): margin=math.radians(28.6) gives its value, with "
        "W = class_weight.T. The module can own the class centres (num_classes, "
        "embedding_size).",
        # autograd's gradient through sqrt(1 - cos^2) is NaN on the loss's cone, where the
        # fused one is finite: no eager formula to differentiate twice
        double_backward="refused",
        **_SHARED,
    ),
]
