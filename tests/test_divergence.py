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


# ---------------------------------------------------------------- issue 14: zeros, temperature

INF = float("inf")


def test_zero_target_probability_as_log_target_minus_inf_counts_zero():
    """A teacher that rules a class out (log-probability -inf) contributes 0 there, with finite
    gradients; torch's formula gives NaN (exp(-inf) * (-inf - x))."""
    s = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    t = torch.tensor([[2.0, 1.0, -INF]], requires_grad=True)
    loss = LF.kl_div_with_logits(s, t)
    p = torch.tensor([[2.0, 1.0]]).softmax(1)  # the teacher over the classes it allows
    log_q = s.detach().log_softmax(1)[:, :2]
    expected = (p * (p.log() - log_q)).sum()
    assert loss.item() == pytest.approx(0.6132, abs=1e-4)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(t.grad).all()
    assert t.grad[0, 2].item() == 0.0
    log_p = t.detach().log_softmax(1)
    torch.testing.assert_close(
        LF.kl_div(s.detach().log_softmax(1), log_p, log_target=True), expected
    )
    torch.testing.assert_close(  # the same as the probability target with an exact zero
        LF.kl_div(s.detach().log_softmax(1), log_p, log_target=True),
        LF.kl_div(s.detach().log_softmax(1), log_p.exp()),
    )


@pytest.mark.parametrize("log_target", [False, True])
def test_a_class_ruled_out_on_both_sides_counts_zero(log_target):
    """p = 0 with log q = -inf (a masked vocabulary on both sides): 0, not 0 * inf = NaN."""
    log_q = torch.tensor([[0.0, -INF]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    target = (p.log() if log_target else p).requires_grad_()
    loss = LF.kl_div(log_q, target, log_target=log_target)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(log_q.grad).all() and torch.isfinite(target.grad).all()
    assert LF.kl_div_with_logits(log_q.detach(), log_q.detach()).item() == 0.0
    assert LF.kl_div_with_logits(log_q.detach(), log_q.detach(), temperature=50.0).item() == 0.0


@pytest.mark.parametrize("log_target", [False, True])
def test_nan_in_is_nan_out_where_the_target_is_zero(log_target):
    log_q = torch.tensor([[0.0, float("nan")]])
    p = torch.tensor([[1.0, 0.0]])
    assert LF.kl_div(log_q, p.log() if log_target else p, log_target=log_target).isnan()
    s = torch.tensor([[0.0, float("nan")]])
    for temperature in (1.0, 50.0):
        assert LF.kl_div_with_logits(s, torch.zeros(1, 2), temperature=temperature).isnan()
        assert LF.kl_div_with_logits(torch.zeros(1, 2), s, temperature=temperature).isnan()


def _distillation_mp(s: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    """T^2 KL(softmax(t/T) || softmax(s/T)) per row, averaged, with 60 significant digits."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        total = mpmath.mpf(0)
        big_t = mpmath.mpf(temperature)
        for srow, trow in zip(s.tolist(), t.tolist(), strict=True):
            a = [mpmath.mpf(v) / big_t for v in trow]
            b = [mpmath.mpf(v) / big_t for v in srow]
            la = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in a))
            lb = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in b))
            total += mpmath.fsum(
                mpmath.exp(x - la) * (x - la - y + lb) for x, y in zip(a, b, strict=True)
            )
        return float(total * big_t**2 / len(s))


@pytest.mark.parametrize("temperature", [2.0, 17.0, 100.0, 1e3, 1e6, 1e12, 1e20])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_distillation_is_exact_at_any_temperature(temperature, dtype):
    """p log(p / q) cancels as T grows (float32 was 1% off at T = 1000, NaN at 1e20 where T^2
    overflows): the loss is exact to rounding for every T, and tends to the logit-matching
    limit sum (d - mean d)^2 / 2C."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64) * 3
    t = torch.randn(4, 6, generator=g, dtype=torch.float64) * 3
    expected = _distillation_mp(s, t, temperature)
    got = LF.kl_div_with_logits(s.to(dtype), t.to(dtype), temperature=temperature)
    rtol = 1e-13 if dtype == torch.float64 else 2e-6
    assert got.item() == pytest.approx(expected, rel=rtol)
    for reduction, scale in (("sum", 4), ("mean", 1 / 6)):
        got = LF.kl_div_with_logits(
            s.to(dtype), t.to(dtype), temperature=temperature, reduction=reduction
        )
        assert got.item() == pytest.approx(expected * scale, rel=rtol)
    # elementwise, torch's terms T^2 p (log p - log q), each O(T): their naive float64 formula
    # is good to about T^2 eps
    elements = LF.kl_div_with_logits(s, t, temperature=temperature, reduction="none")
    p, log_q = (t / temperature).softmax(1), (s / temperature).log_softmax(1)
    naive = temperature**2 * p * ((t / temperature).log_softmax(1) - log_q)
    torch.testing.assert_close(elements, naive, rtol=1e-6, atol=1e-14 * temperature**2)
    d = t - s
    limit = ((d - d.mean(1, keepdim=True)) ** 2).mean(1).mean().item() / 2
    if temperature >= 1e6:
        assert got.item() * 6 == pytest.approx(limit, rel=1e-5)


def test_distillation_gradients_at_high_temperature():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    for temperature in (40.0, 1e4):
        f = lambda a, b, temperature=temperature: LF.kl_div_with_logits(  # noqa: E731
            a, b, temperature=temperature
        )
        assert torch.autograd.gradcheck(f, (s, t))
        assert torch.autograd.gradgradcheck(f, (s, t))
    # a far-apart row takes the direct formula, a close row the expansion: both exact
    far = torch.tensor([[0.0, 60.0, -60.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    near = torch.tensor([[0.0, -60.0, 60.0], [0.3, 0.2, 0.1]], dtype=torch.float64)
    f = lambda a, b: LF.kl_div_with_logits(a, b, temperature=50.0, reduction="none")  # noqa: E731
    assert torch.autograd.gradcheck(f, (far.requires_grad_(), near.requires_grad_()))
    expected = _distillation_mp(far.detach()[1:], near.detach()[1:], 50.0)
    assert f(far, near)[1].sum().item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_zeros_gradgradcheck(log_target):
    g = torch.Generator().manual_seed(5)
    log_q = torch.randn(3, 4, generator=g, dtype=torch.float64).log_softmax(1)
    p = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.1
    target = p / p.sum(1, keepdim=True)
    target = target.log() if log_target else target
    f = lambda a, b: LF.kl_div(a, b, log_target=log_target)  # noqa: E731
    args = (log_q.requires_grad_(), target.requires_grad_())
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


def test_kl_div_accepts_a_0_dim_input_as_torch_does():
    """torch's batchmean on a 0-dim input divides by 1."""
    x, p = torch.tensor(-1.0), torch.tensor(0.5)
    for reduction in ("batchmean", "sum", "mean", "none"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = F.kl_div(x, p, reduction=reduction)
        torch.testing.assert_close(LF.kl_div(x, p, reduction=reduction), expected)
        torch.testing.assert_close(losskit.KLDivLoss(reduction=reduction)(x, p), expected)
    torch.testing.assert_close(
        LF.kl_div(x, p.log(), log_target=True),
        F.kl_div(x, p.log(), reduction="batchmean", log_target=True),
    )
    with pytest.raises(LossInputError, match="kl_div_with_logits: input is a scalar"):
        LF.kl_div_with_logits(x, p)


# ---------------------------------------------------------------- issue 16: the Functions

from losskit.losses.divergence import autograd as KA  # noqa: E402

NAN = float("nan")
REDUCTIONS = ("batchmean", "sum", "mean", "none")


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x``'s values in another memory layout: ``transposed`` (dimensions reversed in memory)
    or ``strided`` (every other element of a larger buffer)."""
    if layout == "transposed" and x.dim() > 1:
        order = list(range(x.dim()))[::-1]
        return x.permute(order).contiguous().permute(order)
    if layout == "strided" and x.dim() > 0:
        big = torch.zeros([2 * n for n in x.shape], dtype=x.dtype)
        view = big[tuple(slice(None, None, 2) for _ in x.shape)]
        return view.copy_(x)
    return x.clone()


def _value_and_grads(f, args, grad_out: float, layout: str):
    leaves = [_layout(a, layout).requires_grad_() for a in args]
    out = f(*leaves)
    grads = torch.autograd.grad(out, leaves, torch.full_like(out, grad_out), allow_unused=True)
    return out.detach(), grads


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN where NaN, but 0 == -0 (the eager formula's where cuts a gradient to
    +0 where the analytic one is -p * g = -0)."""
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and bool((a[~nan] == b[~nan]).all())


def _assert_same_as_eager(f, eager, args, grad_out=1.0, layout="contiguous"):
    out, grads = _value_and_grads(f, args, grad_out, layout)
    expected, expected_grads = _value_and_grads(eager, args, grad_out, layout)
    assert out.dtype == expected.dtype and _same(out, expected), (out, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        assert _same(g, e), (g, e)


def _kl_inputs(shape, dtype, zeros: bool, ruled_out: bool, nan: bool, log_target: bool):
    g = torch.Generator().manual_seed(sum(shape) + 10 * zeros + 100 * ruled_out)
    dim = 1 if len(shape) > 1 else 0
    log_q = torch.randn(shape, generator=g, dtype=torch.float64).log_softmax(dim)
    p = torch.rand(shape, generator=g, dtype=torch.float64) + 0.01
    if zeros:
        p.view(-1)[::3] = 0.0
    p = p / p.sum(dim, keepdim=True)
    if ruled_out:  # log q = -inf, under some p = 0 (ruled out on both sides) and some p > 0
        log_q.view(-1)[::2] = -math.inf
    if nan:
        log_q.view(-1)[-1] = NAN
    return log_q.to(dtype), (p.log() if log_target else p).to(dtype)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("case", ["dense", "zeros", "ruled out", "zeros ruled out", "nan"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 3), (5,), (1, 32)])
def test_kl_function_is_the_eager_formula_bit_for_bit(shape, case, log_target, layout):
    """KLDivFunction (value by the short formula, analytic gradients) against autograd through
    the eager formula: the same numbers to the bit, every reduction, with p = 0 (where the short
    formula's NaN sends the value back to the eager formula), log q = -inf and NaN."""
    args = _kl_inputs(
        shape, torch.float32, "zeros" in case, "ruled out" in case, case == "nan", log_target
    )
    batch = shape[0] if len(shape) > 1 else 1
    for reduction in REDUCTIONS:
        for grad_out in (1.0, 0.75):  # 1: the backward's shortcut for loss.backward()
            _assert_same_as_eager(
                lambda a, b, r=reduction: LF.kl_div(a, b, log_target=log_target, reduction=r),
                lambda a, b, r=reduction: KA.reduce_terms(KA.kl_terms(a, b, log_target), r, batch),
                args,
                grad_out,
                layout,
            )


@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("temperature", [1.0, 2.5, 16.0])
@pytest.mark.parametrize("case", ["dense", "teacher -inf", "both -inf", "nan"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 3), (5,), (1, 32), (256, 130)])
def test_distillation_function_is_the_eager_formula_bit_for_bit(
    shape, case, temperature, layout, in_place, monkeypatch
):
    """DistillationFunction against autograd through the eager formula (T <= 16; above, the
    series path is unchanged): value and both gradients to the bit. ``in_place``: log-softmax
    and its backward write over their inputs (large inputs only, so lowered to every size
    here); the transposed layout is where the backward's went wrong (found by test_fuzz)."""
    if in_place:
        monkeypatch.setattr(KA, "_IN_PLACE_MIN", 0)
    g = torch.Generator().manual_seed(sum(shape))
    s = torch.randn(shape, generator=g) * 3
    t = torch.randn(shape, generator=g) * 3
    if case != "dense":
        t.view(-1)[::4] = -math.inf
    if case == "both -inf":
        s.view(-1)[::4] = -math.inf  # a class both rule out (a shared vocabulary mask)
        s.view(-1)[1] = -math.inf  # and one only the student does: an infinite loss
    if case == "nan":
        s.view(-1)[-1] = NAN
    batch = shape[0] if len(shape) > 1 else 1
    for reduction in REDUCTIONS:
        for grad_out in (1.0, 0.75):  # 1: the backward's constants for loss.backward()
            _assert_same_as_eager(
                lambda a, b, r=reduction: LF.kl_div_with_logits(
                    a, b, temperature=temperature, reduction=r
                ),
                lambda a, b, r=reduction: KA.distillation_direct(a, b, temperature, r, batch),
                (s, t),
                grad_out,
                layout,
            )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_functions_keep_the_input_dtype(dtype):
    log_q, p = _kl_inputs((4, 6), dtype, True, False, False, False)
    x = log_q.clone().requires_grad_()
    out = LF.kl_div(x, p)
    out.backward()
    assert out.dtype == dtype and x.grad.dtype == dtype
    s = log_q.clone().requires_grad_()
    out = LF.kl_div_with_logits(s, p, temperature=2.0)
    out.backward()
    assert out.dtype == dtype and s.grad.dtype == dtype


def test_functions_save_only_what_the_gradient_needs():
    """kl_div keeps its two inputs for the backward pass (the eager formula kept about ten
    full-size intermediates); distillation its inputs, log q and p (torch's formula keeps
    log q and p too)."""
    log_q, p = _kl_inputs((8, 10), torch.float32, False, False, False, False)
    x = log_q.clone().requires_grad_()
    saved = LF.kl_div(x, p).grad_fn.saved_tensors
    assert len(saved) == 2 and saved[0] is x and saved[1] is p
    s, t = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
    assert len(LF.kl_div_with_logits(s, t, temperature=2.0).grad_fn.saved_tensors) == 4


def test_backward_twice_with_retain_graph_gives_the_same_gradients():
    """Nothing saved is overwritten by a backward (several write in place)."""
    log_q, p = _kl_inputs((5, 7), torch.float32, True, False, False, True)
    for f, args in (
        (lambda a, b: LF.kl_div(a, b, log_target=True), (log_q, p)),
        (lambda a, b: LF.kl_div_with_logits(a, b, temperature=2.5), (log_q * 3, p)),
    ):
        leaves = [a.clone().requires_grad_() for a in args]
        out = f(*leaves)
        first = torch.autograd.grad(out, leaves, retain_graph=True)
        second = torch.autograd.grad(out, leaves)
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_double_backward_through_the_functions(reduction):
    """create_graph=True goes through the eager formulas (differentiable_backward)."""
    g = torch.Generator().manual_seed(7)
    log_q = torch.randn(3, 4, generator=g, dtype=torch.float64).log_softmax(1).requires_grad_()
    p = torch.rand(3, 4, generator=g, dtype=torch.float64)
    log_p = (p / p.sum(1, keepdim=True)).log().requires_grad_()
    assert torch.autograd.gradgradcheck(
        lambda a, b: LF.kl_div(a, b, log_target=True, reduction=reduction), (log_q, log_p)
    )
    s = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 4, generator=g, dtype=torch.float64)
    t[:, 1] = -math.inf
    t.requires_grad_()
    assert torch.autograd.gradgradcheck(
        lambda a, b: LF.kl_div_with_logits(a, b, temperature=2.5, reduction=reduction), (s, t)
    )


def test_functorch_transforms_run_the_eager_formula():
    """torch.func.grad and vmap worked on the eager formulas; the Functions define no
    setup_context (which the transforms need), so inside a transform the eager formula runs."""
    log_q, p = _kl_inputs((3, 4), torch.float64, False, False, False, False)
    x = log_q.clone().requires_grad_()
    LF.kl_div(x, p).backward()
    torch.testing.assert_close(torch.func.grad(lambda a: LF.kl_div(a, p))(log_q), x.grad)
    s, t = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    batched = torch.func.vmap(lambda a, b: LF.kl_div_with_logits(a, b, temperature=2.0))(s, t)
    one_by_one = [LF.kl_div_with_logits(a, b, temperature=2.0) for a, b in zip(s, t, strict=True)]
    torch.testing.assert_close(batched, torch.stack(one_by_one))
