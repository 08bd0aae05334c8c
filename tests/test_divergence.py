"""KL divergence and distillation: the float64 definition, the batchmean convention, torch
parity, Hinton's gradient, and properties."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losskit
import losskit.functional as LF
from losskit import LossInputError


def _distributions(n: int, c: int, seed: int, zeros: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, c, generator=g, dtype=torch.float64) + 0.01
    if zeros:
        p[:, ::3] = 0.0
    return p / p.sum(1, keepdim=True)


def kl_definition(p: torch.Tensor, q: torch.Tensor) -> list[float]:
    """sum_c p_c (log p_c - log q_c) per row, in Python floats (0 log 0 = 0)."""
    return [
        sum(pc * (math.log(pc) - math.log(qc)) for pc, qc in zip(prow, qrow, strict=True) if pc > 0)
        for prow, qrow in zip(p.tolist(), q.tolist(), strict=True)
    ]


@pytest.mark.parametrize("zeros", [False, True], ids=["dense", "p-with-zeros"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kl_matches_the_float64_definition(zeros, dtype):
    p, q = _distributions(7, 6, 0, zeros), _distributions(7, 6, 1)
    per_row = torch.tensor(kl_definition(p, q), dtype=torch.float64)
    log_q, target = q.log().to(dtype), p.to(dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    got = {r: LF.kl_div(log_q, target, reduction=r).double() for r in ("batchmean", "sum")}
    torch.testing.assert_close(got["batchmean"], per_row.mean(), **tol)
    torch.testing.assert_close(got["sum"], per_row.sum(), **tol)
    torch.testing.assert_close(
        LF.kl_div(log_q, target, reduction="none").double().sum(1), per_row, **tol
    )
    torch.testing.assert_close(
        LF.kl_div(log_q, target, reduction="mean").double(), per_row.sum() / p.numel(), **tol
    )
    # log_target=True: the same numbers from log p
    if not zeros:
        torch.testing.assert_close(
            LF.kl_div(log_q, target.log(), log_target=True).double(), per_row.mean(), **tol
        )


def test_batchmean_is_the_default_and_a_1d_input_is_one_distribution():
    p = torch.tensor([0.36, 0.48, 0.16])
    log_q = torch.full((3,), 1 / 3).log()
    expected = kl_definition(p[None], log_q.exp()[None])[0]
    assert LF.kl_div(log_q, p).item() == pytest.approx(expected, rel=1e-6)
    assert losskit.KLDivLoss()(log_q, p).item() == pytest.approx(expected, rel=1e-6)
    # torch's batchmean divides a 1-D input by C (and its default, "mean", too)
    assert F.kl_div(log_q, p, reduction="batchmean").item() == pytest.approx(expected / 3, 1e-6)
    # batched: identical to torch's batchmean
    torch.testing.assert_close(
        LF.kl_div(log_q[None].expand(4, 3), p[None].expand(4, 3)),
        F.kl_div(log_q[None].expand(4, 3), p[None].expand(4, 3), reduction="batchmean"),
    )


def test_mean_gives_torchs_number_without_its_warning():
    log_q, p = _distributions(4, 5, 2).log(), _distributions(4, 5, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch_mean = F.kl_div(log_q, p, reduction="mean")
    assert caught  # torch warns that "mean" is not a KL divergence
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(LF.kl_div(log_q, p, reduction="mean"), torch_mean)


def test_empty_batch_is_zero_with_a_graph():
    x = torch.randn(0, 4, requires_grad=True)
    for reduction in ("batchmean", "mean", "sum"):
        for loss in (
            LF.kl_div(x.log_softmax(1), torch.rand(0, 4), reduction=reduction),
            LF.kl_div_with_logits(x, torch.randn(0, 4), reduction=reduction),
        ):
            assert loss.item() == 0.0 and loss.grad_fn is not None
            loss.backward()


def test_full_checks_catch_probabilities_passed_as_input():
    p, q = _distributions(3, 4, 4).float(), _distributions(3, 4, 5).float()
    LF.kl_div(q, p)  # fast checks do not read values
    with (
        losskit.checks("full"),
        pytest.raises(LossInputError, match="kl_div: input has a maximum of"),
    ):
        LF.kl_div(q, p)


def test_module_reductions_include_batchmean():
    assert "batchmean" in losskit.KLDivLoss.reductions
    assert losskit.KLDivLoss().reduction == "batchmean"
    assert losskit.KLDivWithLogitsLoss(reduction="sum").reduction == "sum"
    with pytest.raises(LossInputError, match="kl_div: reduction is 'elementwise_mean'"):
        losskit.KLDivLoss(reduction="elementwise_mean")
    with pytest.raises(LossInputError, match="kl_div_with_logits: temperature is 0"):
        losskit.KLDivWithLogitsLoss(temperature=0)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 4.0])
def test_distillation_matches_hintons_definition(temperature):
    g = torch.Generator().manual_seed(6)
    s = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    t = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    p, q = (t / temperature).softmax(1), (s / temperature).softmax(1)
    expected = temperature**2 * torch.tensor(kl_definition(p, q), dtype=torch.float64).mean()
    torch.testing.assert_close(
        LF.kl_div_with_logits(s, t, temperature=temperature), expected, rtol=1e-10, atol=1e-12
    )
    # Hinton et al.: the gradient on the student logits is T (q - p) per sample
    s.requires_grad_(True)
    LF.kl_div_with_logits(s, t, temperature=temperature, reduction="sum").backward()
    torch.testing.assert_close(s.grad, temperature * (q - p), rtol=1e-9, atol=1e-12)


def test_distillation_on_logits_of_1e4_is_finite():
    s = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    t = torch.tensor([[-1e4, 1e4, 0.0]])
    loss = LF.kl_div_with_logits(s, t, temperature=2.0)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(4 * 1e4, rel=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all()


rows = st.lists(st.floats(-20, 20), min_size=2, max_size=8)


@settings(max_examples=30, deadline=None)
@given(student=rows, teacher=rows, shift=st.floats(-50, 50), temperature=st.floats(0.2, 8))
def test_distillation_properties(student, teacher, shift, temperature):
    n = min(len(student), len(teacher))
    s = torch.tensor(student[:n], dtype=torch.float64)[None]
    t = torch.tensor(teacher[:n], dtype=torch.float64)[None]
    loss = LF.kl_div_with_logits(s, t, temperature=temperature)
    assert loss.item() >= -1e-12  # a KL divergence of distributions
    assert LF.kl_div_with_logits(t, t, temperature=temperature).abs().item() < 1e-12
    torch.testing.assert_close(  # logits are shift-invariant
        LF.kl_div_with_logits(s + shift, t - shift, temperature=temperature),
        loss,
        rtol=1e-7,
        atol=1e-9,
    )
    # equals kl_div on the softened log-probabilities, times T^2
    torch.testing.assert_close(
        LF.kl_div_with_logits(s, t, temperature=temperature),
        temperature**2 * LF.kl_div((s / temperature).log_softmax(1), (t / temperature).softmax(1)),
    )


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_kl_nonnegative_and_zero_iff_equal(n, c, seed):
    p, q = _distributions(n, c, seed), _distributions(n, c, seed + 1)
    assert LF.kl_div(q.log(), p).item() >= 0.0
    assert LF.kl_div(p.log(), p).abs().item() < 1e-12
    torch.testing.assert_close(LF.kl_div(q.log(), p.log(), log_target=True), LF.kl_div(q.log(), p))
