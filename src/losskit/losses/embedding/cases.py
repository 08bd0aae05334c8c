"""Fixtures of the embedding entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker
from losskit.losses.ranking.cases import signs


def torch_cosine_embedding(x1, x2, target, *, margin=0.0, reduction="mean"):
    return F.cosine_embedding_loss(
        x1, x2, signs(target, x1.dtype), margin=margin, reduction=reduction
    )


def _cosine_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    s = make.randint(2, (6,)) * 2 - 1
    for name, target in (("int", s), ("float", s.to(dtype)), ("bool", s > 0)):
        for margin in (0.0, 0.5, -0.3):
            kwargs = {"margin": margin} if margin else {}
            yield SampleInput(
                (make.randn(6, 8), make.randn(6, 8), target),
                kwargs,
                f"(6, 8) {name} labels {kwargs}",
                grad_args=(0, 1),
            )
    yield SampleInput(
        (make.randn(8), make.randn(8), torch.tensor(-1, device=device)),
        {"margin": 0.1},
        "unbatched (D,)",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(5, 1), make.randn(5, 1), make.randint(2, (5,)) * 2 - 1),
        {},
        "D = 1",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(0, 4), make.randn(0, 4), make.randn(0)), {}, "empty", (0, 1), reference=False
    )
    x1 = make.randn(4, 3, scale=1e4)
    x1[0] = 0.0
    yield SampleInput(
        (x1, make.randn(4, 3, scale=1e4), make.tensor([1.0, -1.0, 1.0, -1.0])),
        {},
        "a zero vector and norms of 1e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _cosine_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    a, b, y = make.randn(4, 3), make.randn(4, 3), make.randint(2, (4,)) * 2 - 1
    loss = "cosine_embedding_loss"
    yield ErrorInput(
        SampleInput((a, make.randn(4, 2), y)),
        rf"{loss}: x2 has shape \(4, 2\); expected the shape of x1, \(4, 3\)",
    )
    yield ErrorInput(
        SampleInput((a, b, make.randint(2, (4, 1)))),
        rf"{loss}: target has shape \(4, 1\); expected \(4,\), one label per pair of x1 \(4, 3\)",
    )
    yield ErrorInput(
        SampleInput((make.randn(2, 4, 3), make.randn(2, 4, 3), y[:2])),
        rf"{loss}: x1 has shape \(2, 4, 3\); expected \(N, D\) embeddings or unbatched \(D,\)",
    )
    yield ErrorInput(
        SampleInput((a, b, y), {"margin": 1.5}),
        rf"{loss}: margin is 1.5; expected a number >= -1 and <= 1",
    )
    yield ErrorInput(
        SampleInput((a, b, y), {"reduction": "batchmean"}),
        rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((a, b.half(), y)),
        rf"{loss}: x2 has dtype torch.float16; expected the dtype of x1, torch.float32",
    )
    yield ErrorInput(
        SampleInput((a, b, torch.tensor([1, 0, -1, 1]))),
        rf"{loss}: target has 1 value\(s\) other than -1 and 1 \(e.g. 0\); expected labels",
        checks="full",
    )


def _cosine_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` elements per side as (size / 64, 64) embedding pairs."""
    make = TensorMaker(dtype, device, seed=size)
    n = max(size // 64, 1)
    target = (make.randint(2, (n,)) * 2 - 1).to(dtype)
    return SampleInput(
        (make.randn(n, 64), make.randn(n, 64), target), {}, f"({n}, 64) pairs", (0, 1)
    )


CASES: dict[str, LossCases] = {
    "cosine_embedding": LossCases(
        reference=torch_cosine_embedding,
        sample_inputs=_cosine_samples,
        error_inputs=_cosine_errors,
        bench_inputs=_cosine_bench,
    ),
}
