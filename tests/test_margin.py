"""Hinge losses: the two label encodings, squared hinge, torch parity of multi_margin_loss, and
properties."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError

REDUCTIONS = ("mean", "sum", "none")


def _scores_and_signs(seed: int = 0, shape: tuple[int, ...] = (5, 6)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    signs = torch.randint(0, 2, shape, generator=g) * 2 - 1
    return x, signs


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_plus_minus_one_and_zero_one_labels_agree(squared, margin):
    x, signs = _scores_and_signs()
    encodings = [
        signs,
        signs.double(),
        (signs > 0).long(),
        (signs > 0).double(),
        signs > 0,
    ]
    expected = (margin - signs * x).clamp_min(0)
    if squared:
        expected = expected.square()
    for reduction in REDUCTIONS:
        want = {"none": expected, "sum": expected.sum(), "mean": expected.mean()}[reduction]
        for target in encodings:
            got = LF.hinge_loss(x, target, margin=margin, squared=squared, reduction=reduction)
            torch.testing.assert_close(got, want, msg=f"{target.dtype} {reduction}")


def test_hinge_labels_checked_under_full_checks():
    x = torch.randn(6)
    mixed = torch.tensor([1, 0, -1, 1, 0, -1])
    soft = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 0.0])
    LF.hinge_loss(x, mixed)  # fast checks read no values: positive is +1, the rest -1
    with losskit.checks("full"):
        with pytest.raises(LossInputError, match="hinge_loss: target mixes -1 and 0 labels"):
            LF.hinge_loss(x, mixed)
        with pytest.raises(LossInputError, match=r"hinge_loss: target has a value 0\.5"):
            LF.hinge_loss(x, soft)
        LF.hinge_loss(x, torch.tensor([1, 0, 0, 1, 1, 0]))
        LF.hinge_loss(x, torch.tensor([1, -1, -1, 1, 1, -1]))
        LF.hinge_loss(x, torch.ones(6, dtype=torch.long))  # one class only: either encoding


def test_hinge_module_and_examples():
    scores = torch.tensor([0.3, 0.5, 2.0, -1.5])
    assert losskit.HingeLoss()(scores, torch.tensor([1, 0, 1, 0])).item() == pytest.approx(0.55)
    assert losskit.HingeLoss(squared=True)(scores, torch.tensor([1, 0, 1, 0])).item() == (
        pytest.approx(0.685)
    )
    with pytest.raises(LossInputError, match="hinge_loss: margin is -1"):
        losskit.HingeLoss(margin=-1)


def test_hinge_refuses_to_broadcast():
    with pytest.raises(LossInputError, match=r"hinge_loss: target has shape \(4,\)"):
        LF.hinge_loss(torch.randn(4, 1), torch.ones(4))


finite = st.floats(-100, 100, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    scores=st.lists(finite, min_size=1, max_size=10),
    seed=st.integers(0, 1000),
    margin=st.floats(0.01, 5),
)
def test_hinge_properties(scores, seed, margin):
    x = torch.tensor(scores, dtype=torch.float64)
    y = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    loss = LF.hinge_loss(x, y, margin=margin, reduction="none")
    assert (loss >= 0).all()
    assert torch.equal(loss == 0, y * x >= margin)  # zero exactly beyond the margin
    squared = LF.hinge_loss(x, y, margin=margin, squared=True, reduction="none")
    torch.testing.assert_close(squared, loss.square())
    # the margin is a scale: hinge(x, m) = m * hinge(x / m, 1)
    torch.testing.assert_close(
        loss, margin * LF.hinge_loss(x / margin, y, reduction="none"), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize(
    ("p", "margin", "weighted"), list(itertools.product((1, 2), (1.0, 0.2, 3.0), (False, True)))
)
def test_multi_margin_matches_torch(p, margin, weighted):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (9,), generator=g)
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.1 if weighted else None
    for reduction in ("none", "sum"):
        torch.testing.assert_close(
            LF.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction=reduction),
            F.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction=reduction),
        )
    mean = LF.multi_margin_loss(x, y, p=p, margin=margin, weight=w)
    total = F.multi_margin_loss(x, y, p=p, margin=margin, weight=w, reduction="sum")
    if w is None:
        torch.testing.assert_close(mean, F.multi_margin_loss(x, y, p=p, margin=margin))
    else:  # losskit's weighted mean; torch divides by N
        torch.testing.assert_close(mean, total / w[y].sum())


def test_multi_margin_equals_the_written_out_formula():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    w = torch.rand(4, generator=g, dtype=torch.float64) + 0.5
    expected = []
    for n in range(6):
        yn = int(y[n])
        terms = [max(0.0, 0.5 - float(x[n, yn]) + float(x[n, c])) ** 2 for c in range(4) if c != yn]
        expected.append(float(w[yn]) * sum(terms) / 4)
    got = LF.multi_margin_loss(x, y, p=2, margin=0.5, weight=w, reduction="none")
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))


def test_multi_margin_cs231n_example():
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    per_image = LF.multi_margin_loss(scores, torch.tensor([0, 1, 2]), reduction="none") * 3
    torch.testing.assert_close(per_image, torch.tensor([2.9, 0.0, 12.9]))


def test_multi_margin_empty_batch_is_zero_and_torch_is_not_reliable():
    x = torch.randn(0, 3, requires_grad=True)
    y = torch.zeros(0, dtype=torch.long)
    for reduction in ("mean", "sum"):
        loss = LF.multi_margin_loss(x, y, reduction=reduction)
        assert loss.item() == 0.0
        loss.backward()
    assert LF.multi_margin_loss(x, y, reduction="none").shape == (0,)


def test_multi_margin_int32_targets_and_module_weight_buffer():
    x, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 1], dtype=torch.int32)
    torch.testing.assert_close(LF.multi_margin_loss(x, y), F.multi_margin_loss(x, y.long()))
    criterion = losskit.MultiMarginLoss(2, 0.5, torch.tensor([1.0, 2.0, 0.5]))
    assert "weight" in criterion.state_dict()
    torch.testing.assert_close(
        criterion(x, y),
        LF.multi_margin_loss(x, y, p=2, margin=0.5, weight=torch.tensor([1.0, 2.0, 0.5])),
    )
