"""Fixtures of the ranking entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker


def signs(target: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """+-1 labels in ``dtype``; a bool label True is +1 and False -1."""
    if target.dtype == torch.bool:
        return target.to(dtype) * 2 - 1
    return target.to(dtype)


def torch_margin_ranking(x1, x2, target, *, margin=0.0, reduction="mean"):
    return F.margin_ranking_loss(
        x1, x2, signs(target, x1.dtype), margin=margin, reduction=reduction
    )


def bpr_reference(positive_scores, negative_scores, *, weight=None, reduction="mean"):
    """``log(1 + exp(-(s+ - s-)))`` in float64, pairs and weights laid out explicitly."""
    pos, neg = positive_scores.double(), negative_scores.double()
    if neg.dim() == pos.dim() + 1:
        pos = pos.unsqueeze(-1).expand_as(neg)
    loss = torch.logaddexp(torch.zeros_like(pos), neg - pos)
    if weight is not None:
        w = weight.double()
        if w.shape != neg.shape:
            w = w.unsqueeze(-1).expand_as(neg)
        loss = loss * w
        if reduction == "mean":
            return (loss.sum() / w.sum()).to(positive_scores.dtype)
    out = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return out.to(positive_scores.dtype)


def bpr_loop(positive_scores, negative_scores, *, weight=None, reduction="mean"):
    """The benchmark's reference: BPR as recommender code often writes it, a Python loop over
    the K sampled negatives, ``-logsigmoid(s+ - s-_k)`` per column, stacked and reduced."""
    pos, neg = positive_scores, negative_scores
    if neg.dim() == pos.dim():
        columns = [-F.logsigmoid(pos - neg)]
    else:
        columns = [-F.logsigmoid(pos - neg[..., k]) for k in range(neg.shape[-1])]
    loss = torch.stack(columns, -1) if neg.dim() > pos.dim() else columns[0]
    if weight is not None:
        w = weight if weight.shape == loss.shape else weight.unsqueeze(-1).expand_as(loss)
        loss = loss * w
        if reduction == "mean":
            return loss.sum() / w.sum()
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _ranking_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for shape in ((7,), (3, 4), ()):
        s = make.randint(2, shape) * 2 - 1
        for name, target in (("int", s), ("float", s.to(dtype)), ("bool", s > 0)):
            for margin in (0.0, 0.5):
                kwargs = {"margin": margin} if margin else {}
                yield SampleInput(
                    (make.randn(*shape), make.randn(*shape), target),
                    kwargs,
                    f"{shape} {name} labels {kwargs}",
                    grad_args=(0, 1),
                )
    yield SampleInput(
        (make.randn(0), make.randn(0), make.randn(0)), {}, "empty", (0, 1), reference=False
    )
    yield SampleInput(
        (make.randn(8, scale=1e4), make.randn(8, scale=1e4), make.randint(2, (8,)) * 2 - 1),
        {"margin": 1.0},
        "scores of +-1e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _ranking_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    a, b, y = make.randn(5), make.randn(5), make.randint(2, (5,)) * 2 - 1
    loss = "margin_ranking_loss"
    yield ErrorInput(
        SampleInput((a, make.randn(5, 1), y)),
        rf"{loss}: x2 has shape \(5, 1\); expected the shape of x1, \(5,\)",
    )
    yield ErrorInput(
        SampleInput((a, b, y[:1])),
        rf"{loss}: target has shape \(1,\); expected \(5,\) \(losskit never broadcasts",
    )
    yield ErrorInput(
        SampleInput((a, b.double(), y)),
        rf"{loss}: x2 has dtype torch.float64; expected the dtype of x1",
    )
    yield ErrorInput(
        SampleInput((y, b, y)), rf"{loss}: x1 has dtype torch.int64; expected a floating"
    )
    yield ErrorInput(
        SampleInput((a, b, y), {"margin": -0.1}),
        rf"{loss}: margin is -0.1; expected a number >= 0",
    )
    yield ErrorInput(
        SampleInput((a, b, y), {"reduction": "mean_pairs"}),
        rf"{loss}: reduction is 'mean_pairs'; expected one of",
    )
    yield ErrorInput(
        SampleInput((a, b, torch.tensor([1, 0, 0, -1, 1]))),
        rf"{loss}: target has 2 value\(s\) other than -1 and 1 \(e.g. 0\); expected labels -1 or 1",
        checks="full",
    )


def _bpr_samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device)
    for pos_shape, neg_shape in (((8,), (8,)), ((6,), (6, 4)), ((2, 3), (2, 3, 5)), ((), (3,))):
        pos, neg = make.randn(*pos_shape, scale=2.0), make.randn(*neg_shape, scale=2.0)
        yield SampleInput((pos, neg), {}, f"{pos_shape} vs {neg_shape}", grad_args=(0, 1))
        for per, shape in (("pair", neg_shape), ("positive", pos_shape)):
            yield SampleInput(
                (make.randn(*pos_shape), make.randn(*neg_shape)),
                {"weight": make.uniform(*shape, low=0.1, high=2.0)},
                f"{pos_shape} vs {neg_shape} weighted per {per}",
                grad_args=(0, 1),
            )
    yield SampleInput(
        (make.randn(5), make.randn(5, 2)),
        {"weight": make.tensor([0.0, 1.0, 0.0, 2.0, 0.5])},
        "some weights zero",
        grad_args=(0, 1),
    )
    yield SampleInput(
        (make.randn(4), make.randn(4, 3)),
        {"weight": torch.zeros(4, dtype=dtype, device=device)},
        "all weights zero",
        grad_args=(0, 1),
        reference=False,
    )
    yield SampleInput((make.randn(0), make.randn(0)), {}, "empty", (0, 1), reference=False)
    yield SampleInput((make.randn(0), make.randn(0, 3)), {}, "empty, K=3", (0, 1), reference=False)
    yield SampleInput(
        (make.tensor([1e4, -1e4, 0.0, 3e4]), make.tensor([-1e4, 1e4, 0.0, 3e4])),
        {},
        "score differences of +-2e4",
        grad_args=(0, 1),
        tags=frozenset({"extreme"}),
    )


def _bpr_errors() -> Iterator[ErrorInput]:
    make = TensorMaker(torch.float32, "cpu")
    pos, neg = make.randn(4), make.randn(4, 3)
    loss = "bpr_loss"
    yield ErrorInput(
        SampleInput((pos, make.randn(3, 4))),
        rf"{loss}: negative_scores has shape \(3, 4\); expected the shape of positive_scores, "
        r"\(4,\), or that shape plus K negatives per positive, e.g. \(4, 5\)",
    )
    yield ErrorInput(
        SampleInput((make.randn(4, 1), make.randn(4))),
        rf"{loss}: negative_scores has shape \(4,\); expected the shape of positive_scores",
    )
    yield ErrorInput(
        SampleInput((pos, neg), {"weight": make.uniform(3)}),
        rf"{loss}: weight has shape \(3,\); expected \(4, 3\) \(one weight per pair\) or \(4,\) "
        r"\(one per positive\)",
    )
    yield ErrorInput(
        SampleInput((pos, neg.double())),
        rf"{loss}: negative_scores has dtype torch.float64; expected the dtype of positive_scores",
    )
    yield ErrorInput(
        SampleInput((torch.arange(4), neg)),
        rf"{loss}: positive_scores has dtype torch.int64; expected a floating-point tensor",
    )
    yield ErrorInput(
        SampleInput((pos, neg), {"reduction": "batchmean"}),
        rf"{loss}: reduction is 'batchmean'; expected one of 'mean', 'sum', 'none'",
    )
    yield ErrorInput(
        SampleInput((pos, neg), {"weight": make.tensor([1.0, -1.0, 1.0, 1.0])}),
        rf"{loss}: weight has a minimum of -1; expected non-negative values",
        checks="full",
    )
    yield ErrorInput(
        SampleInput((make.tensor([0.0, float("nan")]), make.randn(2))),
        rf"{loss}: positive_scores has 1 non-finite value\(s\); expected finite values",
        checks="full",
    )


def _ranking_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    target = make.randint(2, (size,)) * 2 - 1
    return SampleInput(
        (make.randn(size), make.randn(size), target.to(dtype)), {}, f"{size} pairs", (0, 1)
    )


#: negatives per positive in the BPR benchmark (sampled softmax-free recommenders use 1 to 100)
BPR_NEGATIVES = 8


def _bpr_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """``size`` (positive, negative) pairs: ``size / K`` positives with K = 8 negatives each."""
    make = TensorMaker(dtype, device, seed=size)
    n = max(size // BPR_NEGATIVES, 1)
    return SampleInput(
        (make.randn(n, scale=2.0), make.randn(n, BPR_NEGATIVES, scale=2.0)),
        {},
        f"{n} positives x {BPR_NEGATIVES} negatives",
        (0, 1),
    )


CASES: dict[str, LossCases] = {
    "margin_ranking": LossCases(
        reference=torch_margin_ranking,
        sample_inputs=_ranking_samples,
        error_inputs=_ranking_errors,
        bench_inputs=_ranking_bench,
    ),
    "bpr": LossCases(
        reference=bpr_reference,
        sample_inputs=_bpr_samples,
        error_inputs=_bpr_errors,
        bench_inputs=_bpr_bench,
        bench_references={"Python loop over the K negatives": bpr_loop},
    ),
}
