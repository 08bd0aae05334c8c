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


# ---------------------------------------------------------------- the one-node hinge (issue 16)


def _poisoned_scores(n: int, dtype: torch.dtype, seed: int = 3) -> torch.Tensor:
    """Scores with a NaN, an infinity and a point exactly at the margin (u = 0)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, generator=g, dtype=torch.float64) * 2).to(dtype)
    if n > 3:
        x[0], x[1], x[2] = float("nan"), float("inf"), 1.0
    return x


def _value_and_grad(fn, x, *args, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return out.detach(), grad


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


@pytest.mark.parametrize("n", [1, 7, 2047, 2048, 5000])  # both sides of WHERE_BELOW
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_function_is_the_eager_formula_bit_for_bit(n, dtype, squared, reduction):
    """SignedHinge (one autograd node) gives the eager formula's values and gradients exactly,
    NaN and infinite scores and the kink at the margin (clamp_min passes the gradient at 0)
    included, for every label encoding."""
    from losskit.losses.margin.autograd import signed_hinge_eager

    x = _poisoned_scores(n, dtype)
    s = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(4))
    for target in (s * 2 - 1, (s * 2 - 1).to(dtype), s.to(dtype), s > 0, s.to(torch.uint8)):
        opts = {"margin": 1.0, "squared": squared, "reduction": reduction}
        got = _value_and_grad(LF.hinge_loss, x, target, **opts)
        expected = _value_and_grad(
            lambda x, t: signed_hinge_eager(x, None, t, 1.0, squared, reduction), x, target
        )
        assert all(_same(a, b) for a, b in zip(got, expected, strict=True)), (target.dtype, got)


@pytest.mark.parametrize("n", [1, 33, 2048, 4099])
@pytest.mark.parametrize("margin", [0.0, 0.7])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_function_is_torchs_kernel_bit_for_bit(n, margin, reduction):
    g = torch.Generator().manual_seed(n)
    x1, x2 = torch.randn(n, generator=g), torch.randn(n, generator=g)
    x2[: n // 3] = x1[: n // 3] - margin  # pairs exactly at the margin
    x1[-1] = float("nan")
    target = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).float()
    pair = [a.clone().requires_grad_(True) for a in (x1, x2)]
    ref = [a.clone().requires_grad_(True) for a in (x1, x2)]
    out = LF.margin_ranking_loss(*pair, target, margin=margin, reduction=reduction)
    expected = F.margin_ranking_loss(*ref, target, margin=margin, reduction=reduction)
    weights = torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)
    got_grads = torch.autograd.grad((out * weights).sum(), pair)
    ref_grads = torch.autograd.grad((expected * weights).sum(), ref)
    assert _same(out.detach(), expected.detach())
    assert all(_same(a, b) for a, b in zip(got_grads, ref_grads, strict=True))


def test_hinge_bench_reference_is_the_loss():
    """The benchmark's plain formula computes losskit's hinge on its +-1 inputs."""
    spec = losskit.catalog["hinge"]
    for size in spec.bench_sizes[:2]:
        sample = spec.bench_inputs(size, torch.float64, torch.device("cpu"))
        (reference,) = spec.benchmark_references().values()
        for squared in (False, True):
            torch.testing.assert_close(
                spec.functional(*sample.args, squared=squared),
                reference(*sample.args, squared=squared),
            )


def test_multi_margin_fast_path_still_checks_the_class_indices():
    """The metadata fast path lets torch's CPU kernel find an index out of range and hands over
    to losskit's checks for the message; no torch error escapes."""
    x = torch.randn(4, 3)
    for bad in ([0, 3, 1, 2], [0, -1, 1, 2]):
        with pytest.raises(LossInputError, match="target has class indices in"):
            LF.multi_margin_loss(x, torch.tensor(bad))
    for reduction in REDUCTIONS:
        target = torch.tensor([0, 2, 1, 2])
        assert torch.equal(
            LF.multi_margin_loss(x, target, reduction=reduction, p=2, margin=0.5),
            F.multi_margin_loss(x, target, reduction=reduction, p=2, margin=0.5),
        )
