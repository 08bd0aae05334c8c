"""Ranking losses: BPR against an explicit slow loop, its stability and properties; margin
ranking against torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError


def bpr_slow(pos: list, neg: list, weight: list | None, reduction: str):
    """One Python term per (positive, negative) pair: -log sigmoid(s+ - s-), written stably as
    max(0, -d) + log(1 + exp(-|d|))."""
    terms, weights = [], []
    for i, p in enumerate(pos):
        negatives = neg[i] if isinstance(neg[i], list) else [neg[i]]
        for k, n in enumerate(negatives):
            d = p - n
            terms.append(max(0.0, -d) + math.log1p(math.exp(-abs(d))))
            if weight is None:
                weights.append(1.0)
            elif isinstance(weight[i], list):
                weights.append(weight[i][k])
            else:
                weights.append(weight[i])
    weighted = [w * t for w, t in zip(weights, terms, strict=True)]
    if reduction == "sum":
        return sum(weighted)
    if reduction == "mean":
        return sum(weighted) / sum(weights) if weight is not None else sum(terms) / len(terms)
    return weighted


CASES = [
    ("one negative each", (7,), (7,), None),
    ("K=4 negatives", (6,), (6, 4), None),
    ("per-pair weights", (6,), (6, 4), "pair"),
    ("per-positive weights", (6,), (6, 4), "positive"),
    ("weighted, one negative each", (7,), (7,), "pair"),
]


@pytest.mark.parametrize(("pos_shape", "neg_shape", "weighting"), [c[1:] for c in CASES])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bpr_matches_a_slow_loop(pos_shape, neg_shape, weighting, reduction):
    g = torch.Generator().manual_seed(len(neg_shape) + (weighting == "pair"))
    pos = torch.randn(pos_shape, generator=g, dtype=torch.float64) * 3
    neg = torch.randn(neg_shape, generator=g, dtype=torch.float64) * 3
    weight = None
    if weighting == "pair":
        weight = torch.rand(neg_shape, generator=g, dtype=torch.float64)
    elif weighting == "positive":
        weight = torch.rand(pos_shape, generator=g, dtype=torch.float64)
    got = LF.bpr_loss(pos, neg, weight=weight, reduction=reduction)
    expected = bpr_slow(
        pos.tolist(), neg.tolist(), None if weight is None else weight.tolist(), reduction
    )
    expected_t = torch.tensor(expected, dtype=torch.float64)
    if reduction == "none":
        expected_t = expected_t.reshape(neg_shape)
    torch.testing.assert_close(got, expected_t, rtol=1e-12, atol=1e-12)


def test_bpr_is_stable_for_huge_score_differences():
    pos = torch.tensor([1e4, -1e4, 3e4], requires_grad=True)
    neg = torch.tensor([-1e4, 1e4, 3e4], requires_grad=True)
    loss = LF.bpr_loss(pos, neg, reduction="none")
    torch.testing.assert_close(loss, torch.tensor([0.0, 2e4, math.log(2.0)]))
    loss.sum().backward()
    torch.testing.assert_close(pos.grad, torch.tensor([0.0, -1.0, -0.5]))
    torch.testing.assert_close(neg.grad, -pos.grad)


def test_bpr_module_and_per_call_weight():
    pos, neg = torch.randn(5), torch.randn(5, 3)
    w = torch.rand(5)
    torch.testing.assert_close(
        losskit.BPRLoss()(pos, neg, weight=w), LF.bpr_loss(pos, neg, weight=w)
    )
    torch.testing.assert_close(
        losskit.BPRLoss(reduction="none")(pos, neg), LF.bpr_loss(pos, neg, reduction="none")
    )


scores = st.lists(st.floats(-50, 50), min_size=1, max_size=10)


@settings(max_examples=40, deadline=None)
@given(pos=scores, neg=scores)
def test_bpr_properties(pos, neg):
    n = min(len(pos), len(neg))
    p = torch.tensor(pos[:n], dtype=torch.float64)
    q = torch.tensor(neg[:n], dtype=torch.float64)
    forward = LF.bpr_loss(p, q, reduction="none")
    assert (forward >= 0).all()
    # softplus(-d) - softplus(d) = -d: swapping the roles changes each term by the difference
    torch.testing.assert_close(
        forward - LF.bpr_loss(q, p, reduction="none"), q - p, rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(LF.bpr_loss(p, p), torch.tensor(math.log(2.0), dtype=torch.float64))
    # K negatives: the mean over all N*K pairs
    many = torch.stack([q, q + 1.0], dim=1)
    torch.testing.assert_close(
        LF.bpr_loss(p, many),
        (LF.bpr_loss(p, q, reduction="sum") + LF.bpr_loss(p, q + 1.0, reduction="sum")) / (2 * n),
    )


@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("shape", [(9,), (3, 4), ()])
def test_margin_ranking_matches_torch(margin, shape):
    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(shape, generator=g, dtype=torch.float64)
    x2 = torch.randn(shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, shape, generator=g) * 2 - 1
    for reduction in ("mean", "sum", "none"):
        expected = F.margin_ranking_loss(x1, x2, y.double(), margin=margin, reduction=reduction)
        for target in (y, y.double(), y > 0):
            torch.testing.assert_close(
                LF.margin_ranking_loss(x1, x2, target, margin=margin, reduction=reduction),
                expected,
            )


def test_margin_ranking_checks():
    x = torch.randn(4)
    with pytest.raises(LossInputError, match=r"margin_ranking_loss: x2 has shape \(1, 4\)"):
        LF.margin_ranking_loss(x[:, None], x[None], torch.ones(4, 4))  # torch: a 4x4 broadcast
    with pytest.raises(LossInputError, match=r"margin_ranking_loss: target has shape \(1,\)"):
        LF.margin_ranking_loss(x, x, torch.ones(1))  # torch broadcasts a single label
    zeros = torch.tensor([1, 0, -1, 1])
    LF.margin_ranking_loss(x, x, zeros)
    with (
        losskit.checks("full"),
        pytest.raises(LossInputError, match="target has 1 value\\(s\\) other than -1 and 1"),
    ):
        LF.margin_ranking_loss(x, x, zeros)
    empty = LF.margin_ranking_loss(
        torch.zeros(0, requires_grad=True), torch.zeros(0), torch.ones(0)
    )
    assert empty.item() == 0.0
    empty.backward()


def test_bpr_bench_reference_is_the_loss():
    """The benchmark's Python loop over the K negatives computes losskit's BPR."""
    spec = losskit.catalog["bpr"]
    for size in spec.bench_sizes[:2]:
        sample = spec.bench_inputs(size, torch.float64, torch.device("cpu"))
        (reference,) = spec.benchmark_references().values()
        for reduction in ("mean", "sum", "none"):
            torch.testing.assert_close(
                spec.functional(*sample.args, reduction=reduction),
                reference(*sample.args, reduction=reduction),
            )
