"""Catalog entries for the triplet losses: the explicit form (torch.nn parity) and the label
form with online mining (checked against explicit loops here, and against
pytorch-metric-learning in the tests and the benchmarks)."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.triplet import functional as LF
from losskit.losses.triplet import modules as LN
from losskit.losses.triplet.options import (
    DISTANCE,
    EPS,
    EXPLICIT_DISTANCE,
    EXPLICIT_MARGIN,
    MARGIN,
    MINER,
    SOFT_MARGIN,
    SWAP,
    P,
)

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.triplet.cases"


_PAPERS = (
    "Schroff, Kalenichenko & Philbin, FaceNet: A Unified Embedding for Face Recognition and "
    "Clustering, CVPR 2015",
    "Hermans, Beyer & Leibe, In Defense of the Triplet Loss for Person Re-Identification, 2017",
)


_FOUR_POINTS = (
    torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.5, 0.0], [3.0, 1.0]]),
    torch.tensor([0, 0, 1, 1]),
)

SPECS = [
    LossSpec(
        name="triplet_margin",
        aliases=("triplet_margin_loss",),
        functional=LF.triplet_margin_loss,
        module=LN.TripletMarginLoss,
        task="embedding",
        summary="Anchor closer to its positive than to its negative by a margin, on given triplets.",
        formula=r"\ell_i = \max\big(0,\ d(a_i, p_i) - d(a_i, n_i) + m\big)",
        params=(EXPLICIT_MARGIN, P, EPS, SWAP, EXPLICIT_DISTANCE),
        reference_name="torch.nn.functional.triplet_margin_loss / "
        "triplet_margin_with_distance_loss",
        papers=(
            _PAPERS[0],
            "Balntas, Riba, Ponsa & Mikolajczyk, Learning local feature descriptors with "
            "triplets and shallow convolutional neural networks, BMVC 2016",
        ),
        examples=(
            WorkedExample(
                "anchor (0, 0), positive (6, 8), negative (3, 4): 10 - 5 + margin 1",
                (torch.zeros(1, 2), torch.tensor([[6.0, 8.0]]), torch.tensor([[3.0, 4.0]])),
                {"margin": 1.0, "eps": 0.0},
                6.0,
            ),
        ),
        properties=frozenset({"nonnegative"}),
        compile="fullgraph",
        notes="The mean over an empty batch is 0.0 with a graph (torch gives NaN).",
        bench_sizes=(32, 1024, 65536),
        cases=_CASES,
    ),
    LossSpec(
        name="triplet",
        aliases=("triplet_loss",),
        functional=LF.triplet_loss,
        module=LN.TripletLoss,
        task="embedding",
        summary="Triplet loss with online mining (batch-hard, batch-all, semi-hard) from labels.",
        formula=(
            r"\ell = \operatorname{reduce}_{(a,p,n)\in\mathcal{M}}"
            r"\max\big(0,\ d(x_a, x_p) - d(x_a, x_n) + m\big)"
        ),
        params=(MARGIN, DISTANCE, MINER, SOFT_MARGIN),
        reference_name="explicit loops over anchors, positives and negatives in float64",
        papers=_PAPERS,
        examples=(
            WorkedExample(
                "points (0,0), (0,1) | (0.5,0), (3,1), batch-hard, margin 0.2",
                _FOUR_POINTS,
                {"margin": 0.2},
                0.794,
            ),
        ),
        target_kind="class_index",
        properties=frozenset({"nonnegative"}),
        compile="graph_break",
        compile_note="batch_all and semi_hard read the largest class size on the host; "
        "batch_hard with mean, sum or mean_positive is fullgraph",
        notes=(
            "torch.compile: batch_hard with mean/sum/mean_positive has static shapes and no host "
            "synchronisation; batch_all and semi_hard read the largest class size on the host, "
            "and reduction='none', semi_hard and callable miners produce data-dependent shapes, "
            "so the graph breaks there. Reductions: mean over mined triplets, sum, none, and "
            "mean_positive (pytorch-metric-learning's AvgNonZeroReducer). No valid triplet gives "
            "0.0 with a graph."
        ),
        bench_sizes=(32, 256, 1024, 2048, 4096, 8192),
        cases=_CASES,
    ),
]
