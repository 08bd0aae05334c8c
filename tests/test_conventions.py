"""The conventions of DESIGN.md section 3, checked directly: no broadcasting, the weighted and
empty means, check levels, half precision, modules as state."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import losskit
import losskit.functional as LF
from losskit import LossInputError


def test_mse_refuses_the_silent_n_by_n_broadcast():
    x, y = torch.randn(8, 1), torch.randn(8)
    with pytest.raises(LossInputError, match=r"mse_loss: target has shape \(8,\)"):
        LF.mse_loss(x, y)


def test_loss_input_error_is_a_value_error():
    assert issubclass(LossInputError, ValueError)


def test_all_ignored_cross_entropy_is_zero_and_backward_works():
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.full((4,), -100)
    assert torch.isnan(F.cross_entropy(logits, target))  # what torch does
    loss = LF.cross_entropy(logits, target)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))


def test_empty_batch_mean_is_zero_with_graph():
    x = torch.randn(0, requires_grad=True)
    loss = LF.mse_loss(x, torch.randn(0))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()


def test_weighted_mean_is_sum_w_l_over_sum_w():
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3)
    w = torch.tensor([1.0, 0.0, 3.0])
    assert LF.mse_loss(x, y, weight=w).item() == pytest.approx((1 + 27) / 4)
    assert LF.mse_loss(x, y, weight=w, reduction="sum").item() == pytest.approx(28)


def test_bce_weight_is_a_weighted_mean_unlike_torch():
    p, y = torch.tensor([0.9, 0.2, 0.6]), torch.tensor([1.0, 0.0, 0.0])
    w = torch.tensor([1.0, 0.0, 1.0])
    per = F.binary_cross_entropy(p, y, reduction="none")
    assert LF.binary_cross_entropy(p, y, weight=w).item() == pytest.approx(
        ((per * w).sum() / 2).item()
    )
    assert F.binary_cross_entropy(p, y, weight=w).item() == pytest.approx(
        ((per * w).sum() / 3).item()
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"weight": torch.tensor([0.2, 1.0, 3.0, 0.5], dtype=torch.float64)},
        {"ignore_index": 2},
        {"label_smoothing": 0.3},
        {
            "weight": torch.tensor([0.2, 1.0, 3.0, 0.5], dtype=torch.float64),
            "ignore_index": 1,
            "label_smoothing": 0.2,
        },
    ],
    ids=["plain", "weight", "ignore", "smoothing", "all"],
)
@pytest.mark.parametrize("shape", [(16, 4), (3, 4, 5, 2)], ids=["2d", "4d"])
def test_cross_entropy_options_combine_like_torch(options, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (shape[0], *shape[2:]), generator=g)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            LF.cross_entropy(x, t, reduction=reduction, **options),
            F.cross_entropy(x, t, reduction=reduction, **options),
        )


def test_weights_of_another_float_dtype_are_cast_to_the_input_dtype():
    x = torch.randn(6, 3, dtype=torch.float64)
    t = torch.randint(0, 3, (6,))
    w32 = torch.tensor([1.0, 2.0, 0.5])
    torch.testing.assert_close(
        LF.cross_entropy(x, t, weight=w32), F.cross_entropy(x, t, weight=w32.double())
    )
    p, y = torch.rand(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    assert LF.binary_cross_entropy(p, y, weight=torch.ones(6)).dtype == torch.float64


def test_cross_entropy_smoothing_equals_mixed_target():
    """Label smoothing is cross-entropy against (1 - eps) * onehot + eps / C."""
    x = torch.randn(10, 5, dtype=torch.float64)
    t = torch.randint(0, 5, (10,))
    eps = 0.2
    q = F.one_hot(t, 5).double() * (1 - eps) + eps / 5
    torch.testing.assert_close(LF.cross_entropy(x, t, label_smoothing=eps), LF.cross_entropy(x, q))


def test_invalid_reduction_lists_the_valid_ones():
    with pytest.raises(LossInputError, match="expected one of 'mean', 'sum', 'none'"):
        LF.l1_loss(torch.ones(2), torch.ones(2), reduction="elementwise_mean")
    with pytest.raises(LossInputError, match="huber_loss: reduction is 'avg'"):
        losskit.HuberLoss(reduction="avg")


def test_module_validates_hyper_parameters_at_construction():
    with pytest.raises(LossInputError, match=r"huber_loss: delta is -1; expected a number > 0"):
        losskit.HuberLoss(delta=-1)
    with pytest.raises(LossInputError, match=r"quantile_loss: q is 1\.5"):
        losskit.QuantileLoss(q=1.5)


def test_check_levels():
    x = torch.tensor([float("nan"), 1.0])
    assert losskit.get_checks() == "fast"
    LF.mse_loss(x, torch.ones(2))  # fast: no value inspection
    with losskit.checks("full"):
        assert losskit.get_checks() == "full"
        with pytest.raises(LossInputError, match="non-finite"):
            LF.mse_loss(x, torch.ones(2))
    assert losskit.get_checks() == "fast"
    with pytest.raises(LossInputError, match="set_checks: level is 'paranoid'"):
        losskit.set_checks("paranoid")


def test_checks_level_from_environment():
    env = {**os.environ, "LOSSKIT_CHECKS": "full"}
    code = "import losskit; print(losskit.get_checks())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "full", out.stderr
    env["LOSSKIT_CHECKS"] = "bogus"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "LOSSKIT_CHECKS is 'bogus'" in out.stderr


def test_half_precision_returns_input_dtype():
    x = torch.randn(64, 10).to(torch.bfloat16).requires_grad_()
    t = torch.randint(0, 10, (64,))
    loss = LF.cross_entropy(x, t)
    assert loss.dtype == torch.bfloat16
    loss.backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


def test_logits_of_1e4_are_finite():
    x = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    loss = LF.cross_entropy(x, torch.tensor([1]))
    assert loss.item() == pytest.approx(2e4)
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_bce_finite_at_exactly_zero_and_one():
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = LF.binary_cross_entropy(p, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(p.grad).all()


def test_module_state_round_trips():
    criterion = losskit.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]), label_smoothing=0.1)
    assert "weight" in criterion.state_dict()
    assert "label_smoothing=0.1" in repr(criterion)
    x, t = torch.randn(5, 3), torch.randint(0, 3, (5,))
    for clone in (copy.deepcopy(criterion), pickle.loads(pickle.dumps(criterion))):
        torch.testing.assert_close(clone(x, t), criterion(x, t))
    fresh = losskit.CrossEntropyLoss(weight=torch.ones(3), label_smoothing=0.1)
    fresh.load_state_dict(criterion.state_dict())
    torch.testing.assert_close(fresh(x, t), criterion(x, t))


def test_module_per_call_weight():
    criterion = losskit.MSELoss()
    x, y, w = torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([1.0, 0.0])
    assert criterion(x, y, weight=w).item() == pytest.approx(1.0)
