"""Issue 14 for the robust losses: exact second derivatives, alpha ranges refused where values
are checked, the alpha -> +inf limit, the bound for alpha < 0 and a fixed adaptive scale."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.losses.robust.rho import robust_rho

F64 = torch.float64


def barron(d: torch.Tensor, alpha: float, scale: float = 1.0) -> torch.Tensor:
    """Eq. 1 and its limits in plain autograd: the reference for second derivatives."""
    z = (d / scale).square()
    if alpha == 2.0:
        return z / 2
    if alpha == 0.0:
        return torch.log1p(z / 2)
    if alpha == -math.inf:
        return -torch.expm1(-z / 2)
    b = abs(alpha - 2.0)
    return b / alpha * ((z / b + 1) ** (alpha / 2) - 1)


# ------------------------------------------------------------------------- double backward


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.0, 0.5, -2.0, -3.5, -math.inf, 3.0])
def test_second_derivative_matches_eager_formula(alpha):
    """The issue's reproducer: a gradient penalty through the loss plus a cubic term (so the
    incoming gradient of the second pass is not a constant)."""
    torch.manual_seed(0)
    d = torch.randn(7, dtype=F64) * 2
    x = d.clone().requires_grad_(True)
    loss = LF.general_robust_loss(x, torch.zeros(7, dtype=F64), alpha=alpha, scale=0.7)
    (g,) = torch.autograd.grad(loss + (x**3).sum(), x, create_graph=True)
    g.square().sum().backward()
    ref = d.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(
        barron(ref, alpha, 0.7).mean() + (ref**3).sum(), ref, create_graph=True
    )
    g_ref.square().sum().backward()
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, ref.grad, rtol=1e-10, atol=1e-12)


def test_cauchy_second_derivative_alone():
    x = torch.linspace(-3, 3, 9, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(
        LF.cauchy_loss(x, torch.zeros(9, dtype=F64), reduction="sum"), x, create_graph=True
    )
    (h,) = torch.autograd.grad(g.sum(), x)
    z = x.detach().square()
    torch.testing.assert_close(h, (2 - z) / (1 + z / 2).square() / 2)  # d2/dx2 log(1 + x^2/2)


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.0, -2.0, -math.inf, 0.3, -5.0, 1.9999])
def test_gradgradcheck_float_alpha(alpha):
    torch.manual_seed(1)
    x = (torch.randn(3, 4, dtype=F64) * 2).requires_grad_(True)
    y = torch.randn(3, 4, dtype=F64).requires_grad_(True)
    fn = lambda x, y: LF.general_robust_loss(x, y, alpha=alpha, scale=0.7, reduction="none")  # noqa: E731
    assert gradgradcheck(fn, (x, y))


@pytest.mark.parametrize(
    "alpha",
    [[0.0, 0.5, -2.0, 1.0], [-math.inf, 3.0, -1e-9, 1e-9], [-30.0, 1.5, 2.5, 4.0]],
    ids=["around-0", "limits", "wide"],
)
def test_gradgradcheck_tensor_alpha_and_scale(alpha):
    torch.manual_seed(2)
    x = (torch.randn(3, 4, dtype=F64) * 2).requires_grad_(True)
    y = torch.randn(3, 4, dtype=F64)
    a = torch.tensor(alpha, dtype=F64, requires_grad=True)
    c = torch.tensor([0.5, 1.0, 2.0, 0.8], dtype=F64, requires_grad=True)
    fn = lambda x, a, c: LF.general_robust_loss(x, y, alpha=a, scale=c, reduction="none")  # noqa: E731
    assert gradcheck(fn, (x, a, c))
    assert gradgradcheck(fn, (x, a, c))


def test_gradgradcheck_tensor_alpha_2_without_alpha_gradient():
    """alpha = 2 is a kink in alpha; in the residual and the scale it is smooth."""
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    c = torch.tensor([0.5, 1.0, 2.0], dtype=F64, requires_grad=True)
    a = torch.tensor(2.0, dtype=F64)
    fn = lambda x, c: LF.general_robust_loss(x, torch.zeros_like(x), alpha=a, scale=c)  # noqa: E731
    assert gradgradcheck(fn, (x, c))


def test_gradgradcheck_nll_and_log_partition():
    torch.manual_seed(3)
    x = torch.randn(3, 4, dtype=F64, requires_grad=True)
    a = torch.tensor([0.1, 1.0, 1.5, 3.5], dtype=F64, requires_grad=True)
    c = torch.tensor([0.5, 1.0, 2.0, 0.8], dtype=F64, requires_grad=True)
    fn = lambda x, a, c: LF.general_robust_nll_loss(x, torch.zeros_like(x), alpha=a, scale=c)  # noqa: E731
    assert gradgradcheck(fn, (x, a, c))
    assert gradgradcheck(LF.robust_log_partition, (a,))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_create_graph_gradient_equals_the_analytic_one(dtype):
    """With create_graph the gradient comes from the eager formula: same numbers."""
    torch.manual_seed(4)
    x = (torch.randn(5, 4, dtype=dtype) * 3).requires_grad_(True)
    a = torch.tensor([-math.inf, -1.0, 0.0, 1.5], dtype=dtype, requires_grad=True)
    c = torch.tensor([0.5, 1.0, 2.0, 0.8], dtype=dtype, requires_grad=True)
    out = LF.general_robust_loss(x, torch.zeros_like(x), alpha=a, scale=c)
    first = torch.autograd.grad(out, (x, a, c), retain_graph=True)
    graph = torch.autograd.grad(out, (x, a, c), create_graph=True)
    assert all(g.requires_grad for g in graph)
    for g, ref in zip(graph, first, strict=True):
        torch.testing.assert_close(g, ref)


# ------------------------------------------------------------------------- alpha ranges


@pytest.mark.parametrize("level", ["fast", "full"])
def test_log_partition_refuses_alpha_outside_0_4_on_cpu(level):
    with losskit.checks(level):
        with pytest.raises(
            LossInputError,
            match=r"robust_log_partition: alpha has 1 invalid value\(s\); expected values in \[0, 4\]",
        ):
            LF.robust_log_partition(torch.tensor(-1.0))
        with pytest.raises(LossInputError, match=r"alpha has 2 invalid value"):
            LF.robust_log_partition(torch.tensor([4.5, 1.0, math.inf]))
    assert LF.robust_log_partition(torch.tensor([0.0, 4.0])).isfinite().all()


def test_log_partition_nan_alpha_is_nan_under_fast():
    assert LF.robust_log_partition(torch.tensor([math.nan])).isnan().all()


def test_nll_refuses_tensor_alpha_outside_0_4_under_fast_on_cpu():
    x = torch.randn(4, 3)
    with pytest.raises(LossInputError, match=r"general_robust_nll_loss: alpha has 1 invalid value"):
        LF.general_robust_nll_loss(x, x, alpha=torch.tensor([1.0, -0.5, 1.0]))
    with pytest.raises(LossInputError, match=r"general_robust_loss: scale has 1 invalid value"):
        LF.general_robust_loss(x, x, scale=torch.tensor([1.0, 0.0, 1.0]))


def test_tensor_alpha_plus_inf_refused_on_cpu():
    x = torch.randn(2, 2)
    with pytest.raises(LossInputError, match=r"general_robust_loss: alpha has 1 invalid value"):
        LF.general_robust_loss(x, torch.zeros(2, 2), alpha=torch.tensor(math.inf))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tensor_alpha_plus_inf_is_the_limit_where_values_are_not_checked(dtype):
    """Where values are not read (accelerators under "fast") +inf is the limit e^(z/2) - 1."""
    d = torch.tensor([0.0, 1e-3, 0.5, 2.0, 5.0], dtype=dtype, requires_grad=True)
    a = torch.tensor(math.inf, dtype=dtype, requires_grad=True)
    out = robust_rho(d, a, 0.5)
    expected = torch.expm1((d.detach() / 0.5).square() / 2)
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    assert d.grad.isfinite().all() and a.grad.isfinite().all()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("alpha", [-0.5, -1.0, -3.0, -7.3, -100.0])
@pytest.mark.parametrize("tensor_alpha", [False, True], ids=["float", "tensor"])
def test_negative_alpha_never_exceeds_its_bound(dtype, alpha, tensor_alpha):
    d = torch.logspace(0, 30, 200, dtype=dtype)
    a = torch.tensor(alpha, dtype=dtype) if tensor_alpha else alpha
    out = LF.general_robust_loss(d, torch.zeros_like(d), alpha=a, reduction="none")
    bound = torch.tensor((alpha - 2) / alpha, dtype=F64).to(dtype)
    assert (out <= bound).all()
    torch.testing.assert_close(out[-1], bound, rtol=1e-6, atol=0)  # saturated


# ------------------------------------------------------------------------- adaptive scale


def test_adaptive_scale_can_be_fixed_at_scale_min():
    loss_fn = losskit.AdaptiveRobustLoss(2, scale_init=0.5, scale_min=0.5)
    assert [n for n, _ in loss_fn.named_parameters()] == ["latent_alpha"]
    torch.testing.assert_close(loss_fn.scale, torch.full((2,), 0.5))
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=0.1)
    x = torch.randn(32, 2) * 3
    for _ in range(5):
        optimizer.zero_grad()
        loss_fn(x, torch.zeros_like(x)).backward()
        optimizer.step()
    torch.testing.assert_close(loss_fn.scale, torch.full((2,), 0.5))
    assert not torch.allclose(loss_fn.alpha, torch.ones(2))
    state = loss_fn.state_dict()
    assert "fixed_scale" in state
    clone = losskit.AdaptiveRobustLoss(2, scale_init=0.5, scale_min=0.5)
    clone.load_state_dict(state)
    torch.testing.assert_close(clone(x, x * 0), loss_fn(x, x * 0))


def test_adaptive_scale_fixed_at_zero_is_refused():
    with pytest.raises(LossInputError, match=r"AdaptiveRobustLoss: scale_init is 0.0"):
        losskit.AdaptiveRobustLoss(1, scale_init=0.0, scale_min=0.0)


def test_adaptive_alpha_stays_in_range_when_saturated():
    """Rounding of low + (high - low) sigmoid must not leave the range the loss checks."""
    loss_fn = losskit.AdaptiveRobustLoss(3, alpha_range=(0.1, 3.9))
    with torch.no_grad():
        loss_fn.latent_alpha.copy_(torch.tensor([-1e4, 0.0, 1e4]))
    alpha = loss_fn.alpha
    assert alpha.min() >= 0.1 and alpha.max() <= 3.9
    loss_fn(torch.randn(4, 3), torch.zeros(4, 3)).backward()


def test_nll_accepts_tensor_alpha_at_both_ends_of_its_range():
    x = torch.randn(3, 4, dtype=F64)
    alpha = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=F64, requires_grad=True)
    out = LF.general_robust_nll_loss(x, torch.zeros_like(x), alpha=alpha)
    out.backward()
    assert out.isfinite() and alpha.grad[[0, 1, 3]].isfinite().all()


# ------------------------------------------------- the fuzzer's findings (issue 14, last part)


@pytest.mark.parametrize("alpha", [-1e-300, -1e-40, -1e-20, 1e-300, 1e-40, 5e-324])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tiny_alpha_is_cauchy(alpha, dtype):
    """Before: alpha = -1e-300 raised a raw RuntimeError (a bound (alpha - 2) / alpha = 2e300
    given to clamp_ in float32)."""
    x = torch.tensor([0.1, 3.0, -40.0, 1e10], dtype=dtype, requires_grad=True)
    out = LF.general_robust_loss(x, torch.zeros_like(x), alpha=alpha, reduction="none")
    torch.testing.assert_close(out, LF.cauchy_loss(x, torch.zeros_like(x), reduction="none"))
    out.sum().backward()
    assert x.grad.isfinite().all()


@pytest.mark.parametrize("alpha", [1e-20, -1e-20, 1e-300, 2.2e-311, 1e-6])
def test_references_hold_their_digits_for_tiny_alpha(alpha):
    """The catalog's references: eq. 1 through expm1/log1p (``pow(...) - 1`` gave 0 at alpha =
    1e-20), and the NLL's partition function from it (40.7 at 1e-300, NaN at 2.2e-311)."""
    x = torch.tensor([0.1, 3.0, -40.0], dtype=F64)
    zero = torch.zeros_like(x)
    general = losskit.catalog["general_robust"].reference
    torch.testing.assert_close(
        general(x, zero, alpha=alpha, reduction="none"),
        LF.general_robust_loss(x, zero, alpha=alpha, reduction="none"),
    )
    if alpha >= 0:
        nll = losskit.catalog["general_robust_nll"].reference
        torch.testing.assert_close(
            nll(x, zero, alpha=alpha, reduction="none"),
            LF.general_robust_nll_loss(x, zero, alpha=alpha, reduction="none"),
        )
