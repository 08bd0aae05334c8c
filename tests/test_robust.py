"""Barron's general robust loss, its members, the log partition function and the adaptive loss:
closed forms, stability near alpha = 0 and 2, finite gradients, log Z against scipy, and short
real training runs."""

from __future__ import annotations

import math
import warnings

import mpmath
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, special

import losskit
import losskit.functional as LF
from losskit import LossInputError
from losskit.losses.robust.partition import log_partition

F64 = torch.float64
RESIDUALS = [0.0, 1e-12, 1e-6, 1e-3, 0.3, -0.7, 1.0, -2.5, 10.0, 1e3, -1e5]


def residuals(dtype=F64):
    return torch.tensor(RESIDUALS, dtype=dtype)


def general(d, alpha, scale=1.0, tensor_alpha=False):
    if tensor_alpha:
        alpha = torch.tensor(alpha, dtype=d.dtype)
    return LF.general_robust_loss(
        d, torch.zeros_like(d), alpha=alpha, scale=scale, reduction="none"
    )


# the closed forms, written so that float64 evaluates them to full precision at small z
CLOSED_FORMS = {
    2.0: lambda z: z / 2,
    1.0: lambda z: z / (torch.sqrt(z + 1) + 1),  # sqrt(z + 1) - 1
    0.0: lambda z: torch.log1p(z / 2),  # log(z/2 + 1)
    -2.0: lambda z: 2 * z / (z + 4),
    -math.inf: lambda z: -torch.expm1(-z / 2),  # 1 - exp(-z/2)
}
NAMED = {1.0: LF.charbonnier_loss, 0.0: LF.cauchy_loss, -2.0: LF.geman_mcclure_loss}
NAMED[-math.inf] = LF.welsch_loss


def mp_rho(x: float, alpha: float) -> mpmath.mpf:
    """Eq. 1 in mpmath arithmetic (call under ``mpmath.workdps(50)``): the reference near the
    removable singularities."""
    z = mpmath.mpf(x) ** 2
    a = mpmath.mpf(alpha)
    if a == 2:
        return z / 2
    if a == 0:
        return mpmath.log(z / 2 + 1)
    b = abs(a - 2)
    return b / a * ((z / b + 1) ** (a / 2) - 1)


# ------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("alpha", list(CLOSED_FORMS), ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("tensor_alpha", [False, True], ids=["float", "tensor"])
@pytest.mark.parametrize("scale", [1.0, 0.25, 3.0])
def test_special_cases_equal_closed_forms_float64(alpha, tensor_alpha, scale):
    d = residuals()
    expected = CLOSED_FORMS[alpha]((d / scale).square())
    got = general(d, alpha, scale, tensor_alpha)
    torch.testing.assert_close(got, expected, rtol=1e-13, atol=1e-300)
    if alpha in NAMED:
        named = NAMED[alpha](d, torch.zeros_like(d), scale=scale, reduction="none")
        torch.testing.assert_close(named, expected, rtol=1e-13, atol=1e-300)


def test_welsch_is_the_limit_of_large_negative_alpha():
    d = residuals()
    welsch = CLOSED_FORMS[-math.inf](d.square())
    for alpha in (-1e6, -1e9):
        torch.testing.assert_close(general(d, alpha), welsch, rtol=2e-5 * 1e6 / -alpha, atol=0)


@pytest.mark.parametrize("center", [0.0, 2.0])
@pytest.mark.parametrize("offset", [1e-3, 1e-6, 1e-9, 1e-13])
@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_stable_near_alpha_0_and_2(center, offset, side):
    """No 0/0: near the removable singularities the value matches 50-digit arithmetic."""
    alpha = center + side * offset
    d = torch.tensor([1e-4, 0.3, 1.0, 5.0, 1e3], dtype=F64)
    with mpmath.workdps(50):
        expected = torch.tensor([float(mp_rho(v, alpha)) for v in d.tolist()], dtype=F64)
    for tensor_alpha in (False, True):
        torch.testing.assert_close(
            general(d, alpha, 1.0, tensor_alpha), expected, rtol=1e-12, atol=0
        )


def test_alpha_gradient_matches_high_precision_derivative():
    d = torch.tensor([0.05, 0.3, 1.0, 5.0, 1e3], dtype=F64)
    for alpha in (-3.0, -1e-7, 1e-7, 0.5, 0.999, 1.0, 1.7, 1.999, 2.001, 3.0):
        a = torch.tensor(alpha, dtype=F64, requires_grad=True)
        for i, x in enumerate(d.tolist()):
            (grad,) = torch.autograd.grad(general(d, a)[i], a)
            with mpmath.workdps(50):
                expected = float(mpmath.diff(lambda t, x=x: mp_rho(x, t), mpmath.mpf(alpha)))
            assert grad.item() == pytest.approx(expected, rel=1e-9, abs=1e-15), (alpha, x)


# ------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
def test_gradients_finite_everywhere(dtype):
    """Every alpha (the singular points, their neighbours, -inf) and every residual, from 0
    to beyond the square's overflow, gives finite values and finite gradients in all three
    arguments."""
    huge = 1e30 if dtype == torch.float32 else 1e200
    d = torch.tensor([0.0, 1e-30, 1e-3, 1.0, 1e4, 1e15, huge, -huge], dtype=dtype)
    eps = torch.finfo(dtype).eps
    alphas = [-math.inf, -1e20, -2.0, -eps, 0.0, eps, 0.5, 1.0, 2.0 - 2 * eps, 2.0]
    alphas += [2.0 + 2 * eps, 1.999, 0.001]
    for alpha in alphas:
        x = d.clone().requires_grad_(True)
        a = torch.tensor(alpha, dtype=dtype, requires_grad=True)
        c = torch.tensor(0.7, dtype=dtype, requires_grad=True)
        loss = LF.general_robust_loss(x, torch.zeros_like(x), alpha=a, scale=c, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss), alpha
        for grad in (x.grad, a.grad, c.grad):
            assert torch.isfinite(grad).all(), (alpha, x.grad, a.grad, c.grad)


def test_gradcheck_alpha_and_scale_per_element_and_per_dimension():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, generator=g, dtype=F64) * 2
    y = torch.randn(4, 3, generator=g, dtype=F64)
    per_element = torch.empty(4, 3, dtype=F64).uniform_(-4, 3.5, generator=g)
    per_element[per_element.sub(2).abs() < 1e-2] = 1.5  # the alpha-derivative diverges at 2
    per_dim_scale = torch.rand(3, generator=g, dtype=F64) + 0.3
    for alpha, scale in ((per_element, per_dim_scale), (per_element[0], 0.8)):
        leaves = [t.clone().requires_grad_(True) for t in (x, y, alpha)]
        if isinstance(scale, torch.Tensor):
            leaves.append(scale.clone().requires_grad_(True))

        def fn(*args, scale=scale):
            c = args[3] if len(args) > 3 else scale
            return LF.general_robust_loss(args[0], args[1], alpha=args[2], scale=c)

        assert torch.autograd.gradcheck(fn, tuple(leaves))


def test_gradcheck_nll_and_log_partition():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, generator=g, dtype=F64, requires_grad=True)
    alpha = torch.tensor([0.3, 1.6], dtype=F64, requires_grad=True)
    scale = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)

    def nll(x, alpha, scale):
        return LF.general_robust_nll_loss(x, torch.zeros_like(x), alpha=alpha, scale=scale)

    assert torch.autograd.gradcheck(nll, (x, alpha, scale))
    a = torch.tensor([0.0, 0.01, 1.0, 2.5, 3.9], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(log_partition, (a,))


def test_gradient_of_named_members_matches_autograd_of_closed_form():
    d = torch.linspace(-20, 20, 81, dtype=F64)
    for alpha, fn in NAMED.items():
        x = d.clone().requires_grad_(True)
        fn(x, torch.zeros_like(x), scale=1.5, reduction="sum").backward()
        ref = d.clone().requires_grad_(True)
        CLOSED_FORMS[alpha]((ref / 1.5).square()).sum().backward()
        torch.testing.assert_close(x.grad, ref.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_named_members_with_learned_scale_finite_beyond_overflow(dtype, reduction):
    """A Python alpha with a tensor scale: the scale's gradient (-z w / c) stays finite where
    (d/c)^2 overflows, and every reduction agrees with the elementwise loss."""
    huge = 1e30 if dtype == torch.float32 else 1e200
    d = torch.tensor([0.0, 1e-3, 0.5, -2.0, 1e15, huge, -huge], dtype=dtype)
    for alpha, fn in NAMED.items():
        x = d.clone().requires_grad_(True)
        c = torch.tensor(0.7, dtype=dtype, requires_grad=True)
        out = fn(x, torch.zeros_like(x), scale=c, reduction=reduction)
        elementwise = fn(d, torch.zeros_like(d), scale=0.7, reduction="none")
        expected = {"none": elementwise, "sum": elementwise.sum(), "mean": elementwise.mean()}
        torch.testing.assert_close(out.detach(), expected[reduction], rtol=4e-7, atol=0)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad).all(), alpha
        assert torch.isfinite(c.grad), alpha


def test_half_precision_with_tensor_alpha():
    x = torch.randn(6, 4, dtype=torch.bfloat16)
    alpha = torch.tensor([0.0, 0.5, 1.5, 2.0], dtype=torch.bfloat16)
    out = LF.general_robust_loss(x, torch.zeros_like(x), alpha=alpha)
    expected = LF.general_robust_loss(x.float(), torch.zeros(6, 4), alpha=alpha.float())
    assert out.dtype == torch.bfloat16
    assert out == expected.to(torch.bfloat16)


# ------------------------------------------------------------------------- log Z


def scipy_log_partition(alpha: float) -> float:
    def integrand(x: float) -> float:
        with mpmath.workdps(30):
            return math.exp(-float(mp_rho(x, alpha)))

    value, _ = integrate.quad(integrand, 0, math.inf, epsabs=0, epsrel=1e-13, limit=500)
    return math.log(2 * value)


@pytest.mark.parametrize("alpha", [0.0, 0.001, 0.25, 0.5, 1.0, 1.5, 1.9, 1.999, 2.0, 3.0, 4.0])
def test_log_partition_against_scipy_quad(alpha):
    expected = scipy_log_partition(alpha)
    got64 = log_partition(torch.tensor(alpha, dtype=F64)).item()
    got32 = log_partition(torch.tensor(alpha)).item()
    assert got64 == pytest.approx(expected, abs=1e-11)
    assert got32 == pytest.approx(expected, abs=1e-6)


def test_log_partition_closed_forms():
    a = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    expected = [
        math.log(math.pi * math.sqrt(2)),  # Cauchy
        math.log(2 * math.e * special.k1(1.0)),  # int exp(-(sqrt(x^2 + 1) - 1)) = 2 e K1(1)
        0.5 * math.log(2 * math.pi),  # Gaussian
    ]
    torch.testing.assert_close(
        log_partition(a), torch.tensor(expected, dtype=F64), rtol=0, atol=1e-14
    )


def test_log_partition_derivative_against_scipy():
    for alpha in (0.2, 1.0, 1.8, 3.0):
        h = 1e-4
        expected = (scipy_log_partition(alpha + h) - scipy_log_partition(alpha - h)) / (2 * h)
        a = torch.tensor(alpha, dtype=F64, requires_grad=True)
        log_partition(a).backward()
        assert a.grad.item() == pytest.approx(expected, abs=1e-7)


def test_nll_at_alpha_2_is_torch_gaussian_nll():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 50, generator=g, dtype=F64)
    scale = torch.rand(50, generator=g, dtype=F64) + 0.2
    ours = LF.general_robust_nll_loss(x, y, alpha=2.0, scale=scale)
    torch.testing.assert_close(ours, F.gaussian_nll_loss(x, y, scale.square(), full=True))


def test_nll_of_cauchy_is_the_cauchy_density():
    d = torch.tensor([0.0, 0.5, 3.0], dtype=F64)
    c = 0.7
    ours = LF.general_robust_nll_loss(
        d, torch.zeros(3, dtype=F64), alpha=0.0, scale=c, reduction="none"
    )
    # Cauchy with scale gamma = c * sqrt(2): p = 1 / (pi gamma (1 + (d / gamma)^2))
    gamma = c * math.sqrt(2)
    expected = torch.log(math.pi * gamma * (1 + (d / gamma).square()))
    torch.testing.assert_close(ours, expected)


# ------------------------------------------------------------------------- validation


def test_hyper_parameter_shapes_broadcast_only_to_input():
    x = torch.randn(4, 3)
    LF.general_robust_loss(x, x, alpha=torch.zeros(3), scale=torch.ones(4, 1))
    with pytest.raises(LossInputError, match=r"alpha has shape \(4, 3, 1\)"):
        LF.general_robust_loss(x, x, alpha=torch.zeros(4, 3, 1))
    with pytest.raises(LossInputError, match=r"scale is -1.0; expected a number > 0"):
        LF.cauchy_loss(x, x, scale=-1.0)
    with pytest.raises(LossInputError, match=r"scale is on meta"):
        LF.general_robust_loss(x, x, scale=torch.ones(3, device="meta"))


# ------------------------------------------------------------------------- adaptive loss


@pytest.fixture
def one_thread():
    """Tiny matmuls are slowest with several threads on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fit_line(noise: torch.Tensor, steps: int = 150) -> tuple[float, float]:
    """Fit y = 2x + 1 + noise with a linear model and the adaptive loss; (alpha, slope)."""
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, noise.numel()).unsqueeze(1)
    y = 2 * x + 1 + noise.unsqueeze(1)
    model = torch.nn.Linear(1, 1)
    loss_fn = losskit.AdaptiveRobustLoss(num_dims=1)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return loss_fn.alpha.item(), model.weight.item()


def test_adaptive_alpha_goes_down_on_heavy_tails_and_toward_2_on_gaussian_noise(one_thread):
    g = torch.Generator().manual_seed(3)
    n = 1000
    gaussian = 0.3 * torch.randn(n, generator=g)
    cauchy = 0.3 * torch.tan(math.pi * (torch.rand(n, generator=g) - 0.5))
    alpha_init = losskit.AdaptiveRobustLoss(1).alpha.item()
    alpha_gauss, slope_gauss = fit_line(gaussian)
    alpha_cauchy, slope_cauchy = fit_line(cauchy)
    assert alpha_cauchy < 0.5 * alpha_init
    assert alpha_gauss > 1.5
    assert slope_gauss == pytest.approx(2.0, abs=0.05)
    assert slope_cauchy == pytest.approx(2.0, abs=0.05)


def test_adaptive_parameters_stay_in_range_and_init():
    loss_fn = losskit.AdaptiveRobustLoss(2, alpha_range=(0.5, 1.5), scale_init=0.3, alpha_init=0.6)
    torch.testing.assert_close(loss_fn.alpha.detach(), torch.tensor([0.6, 0.6]))
    torch.testing.assert_close(loss_fn.scale.detach(), torch.tensor([0.3, 0.3]))
    with torch.no_grad():
        loss_fn.latent_alpha.copy_(torch.tensor([-1e4, 1e4]))
        loss_fn.latent_scale.fill_(-1e4)
    assert loss_fn.alpha.tolist() == [0.5, 1.5]
    assert (loss_fn.scale >= loss_fn.scale_min).all()
    out = loss_fn(torch.randn(5, 2) * 100, torch.zeros(5, 2))
    assert torch.isfinite(out)


def test_adaptive_fixed_alpha_learns_scale_only():
    loss_fn = losskit.AdaptiveRobustLoss(3, alpha_range=(0.0, 0.0))
    assert [n for n, _ in loss_fn.named_parameters()] == ["latent_scale"]
    assert loss_fn.alpha.tolist() == [0.0, 0.0, 0.0]
    state = loss_fn.state_dict()
    clone = losskit.AdaptiveRobustLoss(3, alpha_range=(0.0, 0.0))
    clone.load_state_dict(state)


def test_adaptive_shapes_and_errors():
    loss_fn = losskit.AdaptiveRobustLoss(3, reduction="none")
    assert loss_fn(torch.randn(2, 5, 3), torch.zeros(2, 5, 3)).shape == (2, 5, 3)
    with pytest.raises(
        LossInputError, match=r"input has shape \(2, 4\); expected a last dimension"
    ):
        loss_fn(torch.randn(2, 4), torch.zeros(2, 4))
    assert losskit.AdaptiveRobustLoss(1)(torch.randn(7), torch.zeros(7)).shape == ()
    with pytest.raises(LossInputError, match=r"alpha_range\[1\] is 5; expected a number"):
        losskit.AdaptiveRobustLoss(1, alpha_range=(0.0, 5))
    with pytest.raises(LossInputError, match=r"num_dims is 0"):
        losskit.AdaptiveRobustLoss(0)
    with pytest.raises(LossInputError, match=r"scale_init is 0.0"):
        losskit.AdaptiveRobustLoss(1, scale_init=0.0)


def _train(loss_fn, parameters, steps, **adam):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(parameters), lr=0.01, **adam)
    x = torch.randn(16, 2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x), x).backward()
        optimizer.step()


def test_warns_once_when_parameters_never_reach_the_optimizer():
    loss_fn = losskit.AdaptiveRobustLoss(2)
    loss_fn.stale_check_calls = 5
    with pytest.warns(UserWarning, match=r"AdaptiveRobustLoss: its parameters have not changed"):
        _train(loss_fn, [], steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(loss_fn, [], steps=10)  # once only


@pytest.mark.parametrize("adam", [{"foreach": False}, {"foreach": True}, {"fused": True}])
def test_no_warning_when_parameters_are_optimised(adam):
    loss_fn = losskit.AdaptiveRobustLoss(2)
    loss_fn.stale_check_calls = 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train(loss_fn, loss_fn.parameters(), steps=8, **adam)
        with torch.no_grad():  # evaluation calls are not counted
            for _ in range(10):
                loss_fn(torch.randn(3, 2), torch.zeros(3, 2))


def test_robust_line_fit_example_recovers_the_slope(capsys, one_thread):
    import runpy
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "robust_line_fit.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    slopes = {line.split(":")[0].strip(): float(line.split("slope")[1].split()[0])
              for line in out.splitlines() if "slope" in line}  # fmt: skip
    assert abs(slopes["MSE"] - 3.0) > 0.5
    assert slopes["adaptive"] == pytest.approx(3.0, abs=0.1)


@pytest.mark.compile
def test_general_robust_compiles_fullgraph():
    torch._dynamo.reset()
    fn = torch.compile(LF.general_robust_loss, fullgraph=True)
    x, y = torch.randn(32), torch.randn(32)
    alpha = torch.tensor(0.5, requires_grad=True)
    torch.testing.assert_close(fn(x, y, alpha=alpha), LF.general_robust_loss(x, y, alpha=alpha))
