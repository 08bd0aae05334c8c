"""Catalog entries for the embedding losses."""

from __future__ import annotations

import math

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.embedding import functional as LF
from losskit.losses.embedding import modules as LN
from losskit.losses.embedding.options import MARGIN

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.embedding.cases"


SPECS = [
    LossSpec(
        name="cosine_embedding",
        aliases=("cosine_embedding_loss", "cosine_similarity_loss"),
        inputs=("x1", "x2", "target"),
        functional=LF.cosine_embedding_loss,
        module=LN.CosineEmbeddingLoss,
        task="embedding",
        summary="Pull similar pairs to cosine 1; push dissimilar pairs below cosine margin.",
        formula=(
            r"\ell_i = \begin{cases}1-\cos(x_{1,i},x_{2,i}) & y_i=1\\"
            r"\max(0,\ \cos(x_{1,i},x_{2,i})-m) & y_i=-1\end{cases}"
        ),
        params=(MARGIN,),
        reference_name="torch.nn.functional.cosine_embedding_loss",
        examples=(
            WorkedExample(
                "a similar pair 45 degrees apart: 1 - cos 45 = 1 - 1/sqrt(2)",
                (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([1])),
                {},
                round(1 - 1 / math.sqrt(2), 3),
            ),
        ),
        properties=frozenset({"nonnegative"}),
        cases=_CASES,
    ),
]
