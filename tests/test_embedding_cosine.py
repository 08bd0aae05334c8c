"""Cosine embedding loss: torch parity, label encodings, zero vectors, properties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError


@pytest.mark.parametrize("margin", [0.0, 0.5, -0.4])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cosine_embedding_matches_torch(margin, unbatched):
    g = torch.Generator().manual_seed(0)
    n = 1 if unbatched else 8
    x1 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    x2 = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    if unbatched:
        x1, x2, y = x1[0], x2[0], y[0]
    for reduction in ("mean", "sum", "none"):
        expected = F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction=reduction)
        for target in (y, y.double(), y > 0):
            got = LF.cosine_embedding_loss(x1, x2, target, margin=margin, reduction=reduction)
            torch.testing.assert_close(got, expected)
        module = losskit.CosineEmbeddingLoss(margin, reduction=reduction)
        torch.testing.assert_close(module(x1, x2, y), expected)


def test_zero_vectors_give_finite_gradients():
    x1 = torch.zeros(2, 3, requires_grad=True)
    x2 = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = LF.cosine_embedding_loss(x1, x2, torch.tensor([1, -1]))
    assert loss.item() == pytest.approx(0.5)  # cosine 0: 1 - 0 and max(0, 0 - 0)
    loss.backward()
    assert torch.isfinite(x1.grad).all() and torch.isfinite(x2.grad).all()


def test_labels_other_than_plus_minus_one_are_errors_under_full_checks():
    x1, x2 = torch.randn(3, 4), torch.randn(3, 4)
    target = torch.tensor([1, 0, -1])
    assert F.cosine_embedding_loss(x1, x2, target, reduction="none")[1] == 0  # torch: silent 0
    with (
        losskit.checks("full"),
        pytest.raises(LossInputError, match="cosine_embedding_loss: target has 1 value"),
    ):
        LF.cosine_embedding_loss(x1, x2, target)


def test_shapes_are_not_broadcast():
    with pytest.raises(LossInputError, match=r"x2 has shape \(1, 4\); expected the shape of x1"):
        LF.cosine_embedding_loss(torch.randn(3, 4), torch.randn(1, 4), torch.ones(3))
    with pytest.raises(LossInputError, match=r"target has shape \(3, 1\)"):
        LF.cosine_embedding_loss(torch.randn(3, 4), torch.randn(3, 4), torch.ones(3, 1))


def test_empty_batch_mean_is_zero():
    x = torch.zeros(0, 4, requires_grad=True)
    loss = LF.cosine_embedding_loss(x, torch.zeros(0, 4), torch.ones(0))
    assert loss.item() == 0.0
    loss.backward()


vectors = st.lists(st.floats(-10, 10), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None)
@given(a=vectors, b=vectors, scale=st.floats(0.1, 100), margin=st.floats(-1, 1))
def test_cosine_embedding_properties(a, b, scale, margin):
    x1 = torch.tensor([a], dtype=torch.float64)
    x2 = torch.tensor([b], dtype=torch.float64)
    pos = LF.cosine_embedding_loss(x1, x2, torch.tensor([1]), margin=margin)
    neg = LF.cosine_embedding_loss(x1, x2, torch.tensor([-1]), margin=margin)
    assert -1e-12 <= pos.item() <= 2 + 1e-12
    assert 0 <= neg.item() <= max(0.0, 1 - margin) + 1e-12
    # invariant to the scale of either vector, away from torch's epsilon: it adds 1e-12 to each
    # squared norm, which moves the cosine by about 1e-12 / |x|^2 (beyond atol below 0.03)
    assume(x1.norm() > 0.1 and x2.norm() > 0.1)
    torch.testing.assert_close(
        LF.cosine_embedding_loss(x1 * scale, x2, torch.tensor([1]), margin=margin),
        pos,
        rtol=1e-6,
        atol=1e-9,
    )


def _values_and_grads(fn, x1, x2, target, **kwargs):
    a, b = (x.detach().clone().requires_grad_(True) for x in (x1, x2))
    out = fn(a, b, target, **kwargs)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return (out.detach(), *torch.autograd.grad((out * weights).sum(), (a, b)))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("shape", [(1, 64), (9, 5), (300, 7), (6,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cosine_embedding_function_is_torchs_kernel_bit_for_bit(shape, dtype, reduction):
    """The one-node Function (losskit.losses.embedding.autograd) repeats torch's composite and
    autograd's backward operation for operation: the same values and gradients with
    torch.equal, zero vectors, NaN, a pair at the margin and huge norms included."""
    g = torch.Generator().manual_seed(len(shape) + shape[0])
    x1 = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    x2 = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if len(shape) == 2 and shape[0] > 4:
        x1[0], x2[1, 0], x1[3] = 0.0, float("nan"), x1[3] * 1e4
        x1[2] = x2[2]  # cosine 1: at the margin 1.0 below
    y = torch.randint(0, 2, shape[:-1], generator=g) * 2 - 1
    for margin in (0.0, 0.3, 1.0):
        for target in (y, y.to(dtype), y > 0):
            got = _values_and_grads(
                LF.cosine_embedding_loss, x1, x2, target, margin=margin, reduction=reduction
            )
            expected = _values_and_grads(
                F.cosine_embedding_loss, x1, x2, y.to(dtype), margin=margin, reduction=reduction
            )
            if reduction == "mean" and y.numel() == 0:
                continue
            assert all(_same(a, b) for a, b in zip(got, expected, strict=True)), (margin, target)


def test_cosine_embedding_double_backward_goes_through_torchs_formula():
    x1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, -1, 1, -1])
    assert torch.autograd.gradgradcheck(
        lambda a, b: LF.cosine_embedding_loss(a, b, y, margin=-0.2), (x1, x2)
    )
