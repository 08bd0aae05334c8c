"""Elementwise weights of the regression losses (through ``losskit/_pointwise.py``) and of
BPR: an all-zero weight is an empty mean, 0.0 with zero gradients for every input, the weight
included (issue 14); NaN in is still NaN out; the weight's gradient is exact otherwise."""

from __future__ import annotations

import pytest
import torch

import losskit.functional as LF

REGRESSION = [
    LF.mse_loss,
    LF.l1_loss,
    LF.huber_loss,
    LF.smooth_l1_loss,
    LF.log_cosh_loss,
    LF.quantile_loss,
]


def _bpr_per_pair(x, y, *, weight=None, reduction="mean"):
    return LF.bpr_loss(x, y, weight=weight, reduction=reduction)


def _bpr_per_positive(x, y, *, weight=None, reduction="mean"):
    negatives = torch.stack([y, y.flip(0), 2 * y], -1)
    return LF.bpr_loss(x, negatives, weight=weight, reduction=reduction)


LOSSES = [*REGRESSION, _bpr_per_pair, _bpr_per_positive]
IDS = [f.__name__ for f in LOSSES]


def _inputs(seed: int = 0, n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True),
    )


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_all_zero_weight_gives_zero_and_zero_gradients_for_every_input(loss):
    x, y = _inputs()
    w = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    out = loss(x, y, weight=w)
    assert out.item() == 0.0
    out.backward()
    for name, t in (("input", x), ("target", y), ("weight", w)):
        assert t.grad is not None and t.grad.abs().sum().item() == 0.0, (name, t.grad)


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
def test_nan_in_is_nan_out_even_with_an_all_zero_weight(loss):
    x, y = _inputs()
    x = x.detach().clone()
    x[1] = float("nan")
    for w in (torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)):
        assert loss(x, y.detach(), weight=w).isnan()
    w = torch.ones(5, dtype=torch.float64)
    w[2] = float("nan")
    assert loss(x.nan_to_num(), y.detach(), weight=w).isnan()


@pytest.mark.parametrize("loss", LOSSES, ids=IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weight_gradient_is_exact(loss, reduction):
    x, y = _inputs(1)
    w = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) + 0.1
    w[0] = 0.0
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: loss(a, b, weight=c, reduction=reduction), (x, y, w)
    )
    assert torch.autograd.gradgradcheck(
        lambda a, b, c: loss(a, b, weight=c, reduction=reduction), (x, y, w)
    )
