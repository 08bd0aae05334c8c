"""Catalog entries for the sequence losses (CTC)."""

from __future__ import annotations

import math

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.sequence import functional as LF
from losskit.losses.sequence import modules as LN
from losskit.losses.sequence.options import BLANK, ZERO_INFINITY

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.sequence.cases"


SPECS = [
    LossSpec(
        name="ctc",
        aliases=("ctc_loss", "connectionist_temporal_classification"),
        inputs=("log_probs", "targets", "input_lengths", "target_lengths"),
        functional=LF.ctc_loss,
        module=LN.CTCLoss,
        input_space="log_probabilities",
        task="sequence",
        summary="CTC: -log of the total probability of every alignment of the target (torch's kernel).",
        formula=(
            r"\ell_n = -\log\sum_{\pi\in\mathcal{B}^{-1}(y_n)}\prod_{t=1}^{T_n}p_t(\pi_t\mid x_n)"
        ),
        params=(BLANK, ZERO_INFINITY),
        reference_name="torch.nn.functional.ctc_loss",
        papers=(
            "Graves et al., Connectionist Temporal Classification: Labelling Unsegmented "
            "Sequence Data with Recurrent Neural Networks, ICML 2006",
        ),
        examples=(
            WorkedExample(
                "uniform over {blank, a} for 2 steps, target 'a': 3 alignments of 1/4, -log(3/4)",
                (torch.full((2, 1, 2), 0.5).log(), torch.tensor([[1]]), [2], [1]),
                {},
                round(-math.log(0.75), 3),
            ),
        ),
        properties=frozenset({"nonnegative"}),
        notes=(
            "Errors instead of inf or garbage for blank labels, inputs too short for their "
            "targets and lengths out of range; exact gradient with respect to log_probs."
        ),
        double_backward="refused",
        compile="graph_break",
        compile_note="the lengths are read on the host to check their ranges",
        bench_sizes=(4, 32, 256),
        cases=_CASES,
    ),
]
