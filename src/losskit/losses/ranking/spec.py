"""Catalog entries for the ranking losses: margin ranking (torch's) and BPR."""

from __future__ import annotations

import math

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.ranking import functional as LF
from losskit.losses.ranking import modules as LN
from losskit.losses.ranking.options import MARGIN

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.ranking.cases"


SPECS = [
    LossSpec(
        name="margin_ranking",
        aliases=("margin_ranking_loss", "pairwise_hinge", "ranking_hinge"),
        inputs=("x1", "x2", "target"),
        functional=LF.margin_ranking_loss,
        module=LN.MarginRankingLoss,
        task="ranking",
        summary="Pairwise hinge: x1 should outrank x2 (target +1) or the reverse (-1) by a margin.",
        formula=r"\ell_i = \max\big(0,\ -y_i(x_{1,i} - x_{2,i}) + m\big)",
        params=(MARGIN,),
        reference_name="torch.nn.functional.margin_ranking_loss",
        papers=(
            "Herbrich, Graepel & Obermayer, Large Margin Rank Boundaries for Ordinal Regression, 2000",
        ),
        examples=(
            WorkedExample(
                "x1 = (0.8, 0.2) should outrank x2 = (0.3, 0.6) by 0.1: losses 0 and 0.5",
                (torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.6]), torch.tensor([1, 1])),
                {"margin": 0.1},
                0.25,
            ),
        ),
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
    LossSpec(
        name="bpr",
        aliases=("bpr_loss", "bayesian_personalized_ranking", "bayesian_personalised_ranking"),
        inputs=("positive_scores", "negative_scores"),
        functional=LF.bpr_loss,
        module=LN.BPRLoss,
        task="ranking",
        summary="Bayesian Personalised Ranking: -log sigmoid(s+ - s-) per (positive, negative) pair.",
        formula=r"\ell_i = -\log\sigma(s^+_i - s^-_i) = \log(1 + e^{-(s^+_i - s^-_i)})",
        reference_name="log(1 + exp(s- - s+)) (logaddexp) in float64",
        papers=(
            "Rendle et al., BPR: Bayesian Personalized Ranking from Implicit Feedback, UAI 2009",
        ),
        examples=(
            WorkedExample(
                "tied scores: -log sigmoid(0) = log 2",
                (torch.tensor([1.5, -0.3]), torch.tensor([1.5, -0.3])),
                {},
                round(math.log(2.0), 3),
            ),
        ),
        properties=frozenset({"nonnegative"}),
        notes="negative_scores (N, K): K negatives per positive, each pair one term.",
        cases=_CASES,
    ),
]
