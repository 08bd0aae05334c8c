"""Issue 14 (the fuzzer's findings) for the binary and divergence losses: NaN in is NaN out for
binary cross-entropy under the default checks, NaN targets refused under ``checks("full")``,
and the value checks read values without autograd's scalar-conversion warning."""

from __future__ import annotations

import warnings

import pytest
import torch

import losskit
import losskit.functional as LF
from losskit import LossInputError

NAN = float("nan")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("where", ["input", "target"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_bce_nan_in_is_nan_out(reduction, where, dtype):
    """Before: torch's CPU kernel raised "all elements of input should be between 0 and 1"
    (NaN fails its range check) although the fast checks read no values."""
    p = torch.tensor([0.3, 0.6, 0.0, 1.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.5], dtype=dtype)
    clean = LF.binary_cross_entropy(p, y, reduction="none")
    poisoned_p, poisoned_y = p.detach().clone(), y.clone()
    (poisoned_p if where == "input" else poisoned_y)[1] = NAN
    poisoned_p.requires_grad_()
    out = LF.binary_cross_entropy(poisoned_p, poisoned_y, reduction=reduction)
    assert out.dtype == dtype
    if reduction == "none":
        assert torch.equal(out.isnan(), torch.tensor([False, True, False, False]))
        torch.testing.assert_close(out[[0, 2, 3]], clean[[0, 2, 3]])
    else:
        assert out.isnan()
    out.sum().backward()  # the gradient exists (NaN or not, it does not raise)


def test_bce_weighted_nan_in_is_nan_out():
    p, y = torch.tensor([0.3, NAN]), torch.tensor([1.0, 0.0])
    assert LF.binary_cross_entropy(p, y, weight=torch.tensor([1.0, 2.0])).isnan()


def test_bce_out_of_range_probability_still_raises():
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        LF.binary_cross_entropy(torch.tensor([1.5, NAN]), torch.tensor([1.0, 0.0]))


FULL_CHECKED = {
    "binary_cross_entropy": LF.binary_cross_entropy,
    "binary_cross_entropy_with_logits": LF.binary_cross_entropy_with_logits,
    "sigmoid_focal_loss": LF.sigmoid_focal_loss,
    "asymmetric_loss": LF.asymmetric_loss,
    "kl_div": LF.kl_div,
}


def _input(name: str, requires_grad: bool = False) -> torch.Tensor:
    """Log-probabilities (logits for the logit losses, kl_div's input); probabilities for
    binary_cross_entropy."""
    x = torch.tensor([[-0.5, -1.0], [-2.0, -0.1]])
    x = x.exp() if name == "binary_cross_entropy" else x
    return x.requires_grad_(requires_grad)


@pytest.mark.parametrize("name", FULL_CHECKED)
def test_full_checks_refuse_nan_targets(name):
    """Before: a NaN target passed the [0, 1] check (min and max are NaN, and NaN < 0 is
    False), then gave NaN or torch's raw RuntimeError."""
    x = _input(name)
    y = torch.tensor([[0.2, 0.8], [NAN, 0.5]])
    with losskit.checks("full"), pytest.raises(LossInputError, match=rf"{name}: target has 1 NaN"):
        FULL_CHECKED[name](x, y)


def test_full_checks_refuse_nan_weights():
    x, y = torch.tensor([0.3, 0.6]), torch.tensor([1.0, 0.0])
    with losskit.checks("full"), pytest.raises(LossInputError, match=r"weight has 1 NaN"):
        LF.binary_cross_entropy(x, y, weight=torch.tensor([1.0, NAN]))


def test_full_checks_keep_their_range_messages():
    with losskit.checks("full"), pytest.raises(LossInputError, match=r"values in \[-0.5, 1\]"):
        LF.binary_cross_entropy_with_logits(torch.zeros(2), torch.tensor([-0.5, 1.0]))


@pytest.mark.parametrize("name", FULL_CHECKED)
def test_value_checks_do_not_warn_on_tensors_that_require_grad(name):
    """Before: "Converting a tensor with requires_grad=True to a scalar" from float(x.min())."""
    x = _input(name, requires_grad=True)
    y = torch.tensor([[0.2, 0.8], [0.3, 0.5]], requires_grad=True)
    with losskit.checks("full"), warnings.catch_warnings():
        warnings.simplefilter("error")
        FULL_CHECKED[name](x, y).backward()
