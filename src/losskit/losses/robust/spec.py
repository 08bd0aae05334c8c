"""Catalog entries for Barron's general robust loss, its named members and the negative
log-likelihood of the general distribution."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, HyperParam, LossSpec, SampleInput, WorkedExample
from losskit._fixtures import TensorMaker
from losskit.losses.regression.spec import regression_bench, regression_errors, regression_samples
from losskit.losses.robust import functional as LF
from losskit.losses.robust import modules as LN

_BARRON = "Barron, A General and Adaptive Robust Loss Function, CVPR 2019"
_RESIDUALS = (0.2, 0.3, -0.5, 0.1, 1.5)
_COMMON = frozenset({"nonnegative", "zero_at_perfect", "symmetric"})


# ------------------------------------------------------------------------- references


def barron_rho(d: Tensor, alpha: float | Tensor, scale: float | Tensor) -> Tensor:
    """Eq. 1 written out literally in float64 (``pow``, no rearrangement), with the paper's
    closed forms at ``alpha`` = 2, 0 and -inf; the value the losses must match."""
    z = (d.double() / (scale.double() if isinstance(scale, Tensor) else scale)).square()
    a = alpha.double() if isinstance(alpha, Tensor) else torch.tensor(alpha, dtype=torch.float64)
    a = a.to(z.device).expand_as(z)
    safe = torch.where((a == 0) | (a == 2) | torch.isinf(a), 1.0, a)
    b = (safe - 2.0).abs()
    general = b / safe * (torch.pow(z / b + 1.0, safe / 2.0) - 1.0)
    out = torch.where(a == 2, z / 2.0, general)
    out = torch.where(a == 0, torch.log(z / 2.0 + 1.0), out)
    return torch.where(torch.isneginf(a), 1.0 - torch.exp(-z / 2.0), out)


def reference_log_partition(alpha: Tensor) -> Tensor:
    """``log Z(alpha)`` by a plain trapezoidal rule in ``log x`` (2561 nodes, float64), a
    different rule from the package's exp-sinh quadrature."""
    s = torch.linspace(-40.0, 40.0, 2561, dtype=torch.float64, device=alpha.device)
    x = torch.exp(s)
    a = alpha.double().unsqueeze(-1)
    rho = barron_rho(x.expand(*a.shape[:-1], -1), a.expand(*a.shape[:-1], x.numel()), 1.0)
    h = (s[1] - s[0]).item()
    return torch.logsumexp(s - rho, dim=-1) + math.log(2.0 * h)


def _reduce(elementwise: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    if weight is not None:
        elementwise = elementwise * weight.double()
    if reduction == "none":
        return elementwise
    if reduction == "sum":
        return elementwise.sum()
    if weight is None:
        return elementwise.mean() if elementwise.numel() else elementwise.sum()
    total = weight.double().sum()
    return elementwise.sum() / total if total != 0 else elementwise.sum() * 0


def _robust_reference(alpha: float | None) -> Callable[..., Tensor]:
    """The reference of one member (``alpha`` fixed) or of the general loss (``alpha=None``)."""

    def reference(
        input,
        target,
        *,
        alpha=alpha if alpha is not None else 1.0,
        scale=1.0,
        weight=None,
        reduction="mean",
    ):
        out = barron_rho(input - target, alpha, scale)
        return _reduce(out, reduction, weight).to(input.dtype)

    return reference


def _nll_reference(input, target, *, alpha=1.0, scale=1.0, weight=None, reduction="mean"):
    d = input.double() - target.double()
    a = alpha.double() if isinstance(alpha, Tensor) else torch.tensor(alpha, dtype=torch.float64)
    c = scale.double() if isinstance(scale, Tensor) else torch.tensor(scale, dtype=torch.float64)
    a = a.to(d.device)
    out = barron_rho(d, a, c) + torch.log(c.to(d.device)) + reference_log_partition(a)
    return _reduce(out.expand_as(d), reduction, weight).to(input.dtype)


# ------------------------------------------------------------------------- samples


def _tensor_hyper_samples(nll: bool) -> Callable[..., Iterator[SampleInput]]:
    """``alpha`` and ``scale`` as tensors: one per element, one per last dimension, one in all;
    plus residuals near float32's largest square and the ``-inf`` (Welsch) element."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device, seed=8)
        low, high = (0.0, 3.0) if nll else (-4.0, 3.0)
        x, y = make.randn(4, 5), make.randn(4, 5)
        yield SampleInput(
            (x, y),
            {"alpha": make.uniform(4, 5, low=low, high=high)},
            "alpha per element",
            grad_args=(0, 1),
        )
        yield SampleInput(
            (x, y),
            {"alpha": make.uniform(5, low=low, high=high), "scale": make.uniform(5, low=0.3)},
            "alpha and scale per last dimension",
            grad_args=(0, 1),
        )
        yield SampleInput(
            (make.randn(3, 2, 4), make.randn(3, 2, 4)),
            {"alpha": make.tensor(0.5 if nll else -1.0), "scale": make.uniform(2, 1, low=0.5)},
            "0-d alpha, scale per middle dimension",
            grad_args=(0, 1),
        )
        specials = [0.0, 1.0, 2.0, 4.0] if nll else [-math.inf, -2.0, 0.0, 1.0, 2.0, 3.5]
        yield SampleInput(
            (make.randn(3, len(specials)), make.randn(3, len(specials))),
            {"alpha": make.tensor(specials)},
            "closed-form alphas as tensor values",
            grad_args=(0, 1),
        )
        yield SampleInput(
            (make.randn(2, 3, scale=1e16), make.randn(2, 3)),
            {"alpha": make.tensor([0.0, 1.0, 1.5] if nll else [-2.0, 0.5, 1.9])},
            "residuals near 1e16",
            tags=frozenset({"extreme"}),
        )

    return samples


def _chain(*generators: Callable[..., Iterator[SampleInput]]) -> Callable[..., Iterator]:
    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        for generate in generators:
            yield from generate(dtype, device)

    return samples


def _extreme_residuals(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
    make = TensorMaker(dtype, device, seed=9)
    yield SampleInput(
        (make.randn(12, scale=1e16), make.randn(12)),
        {},
        "residuals near 1e16",
        tags=frozenset({"extreme"}),
    )


# ------------------------------------------------------------------------- errors


def _hyper_errors(loss: str, nll: bool) -> Callable[[], Iterator[ErrorInput]]:
    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x = make.randn(4, 3)
        yield ErrorInput(
            SampleInput((x, x), {"alpha": make.uniform(4)}),
            rf"{loss}: alpha has shape \(4,\); expected a shape that broadcasts to input's "
            r"\(4, 3\) without enlarging it",
        )
        yield ErrorInput(
            SampleInput((x, x), {"scale": torch.ones(3, dtype=torch.int64)}),
            rf"{loss}: scale has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, x), {"alpha": "cauchy"}),
            rf"{loss}: alpha is 'cauchy'; expected a real number",
        )
        yield ErrorInput(
            SampleInput((x, x), {"scale": make.tensor([1.0, 0.0, 1.0])}),
            rf"{loss}: scale has 1 invalid value\(s\); expected finite values > 0",
            checks="full",
        )
        if nll:
            yield ErrorInput(
                SampleInput((x, x), {"alpha": -0.5}),
                rf"{loss}: alpha is -0.5; expected a number >= 0 and <= 4",
            )
            yield ErrorInput(
                SampleInput((x, x), {"alpha": make.tensor([1.0, 5.0, 1.0])}),
                rf"{loss}: alpha has 1 invalid value\(s\); expected values in \[0, 4\]",
                checks="full",
            )
        else:
            yield ErrorInput(
                SampleInput((x, x), {"alpha": math.inf}),
                rf"{loss}: alpha is inf; expected a real number < inf",
            )
            yield ErrorInput(
                SampleInput((x, x), {"alpha": make.tensor([1.0, math.nan, 1.0])}),
                rf"{loss}: alpha has 1 invalid value\(s\); expected values < inf, not NaN",
                checks="full",
            )

    return errors


def _all_errors(loss: str, nll: bool = False, general: bool = True) -> Callable[[], Iterator]:
    base = regression_errors(loss, {"scale": 0.0})

    def errors() -> Iterator[ErrorInput]:
        yield from base()
        if general:
            yield from _hyper_errors(loss, nll)()

    return errors


# ------------------------------------------------------------------------- examples


def _example(expected: float, title: str, residuals=_RESIDUALS, **kwargs) -> WorkedExample:
    r = torch.tensor(residuals)
    return WorkedExample(title, (r, torch.zeros_like(r)), kwargs, expected, 4)


def _general_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """alpha=0.5 takes the general path (the named alphas have closed forms)."""
    sample = regression_bench(size, dtype, device)
    return SampleInput(sample.args, {"alpha": 0.5}, sample.desc, sample.grad_args)


_TORCH_GAUSSIAN = "torch.nn.functional.gaussian_nll_loss(full=True)"


def _gaussian_nll_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    """alpha=2: the one case torch has, as its Gaussian NLL with variance scale^2."""
    sample = regression_bench(size, dtype, device)
    return SampleInput(sample.args, {"alpha": 2.0, "scale": 1.5}, sample.desc, sample.grad_args)


def _as_gaussian_nll_inputs(sample: SampleInput) -> SampleInput:
    x, y = sample.args
    var = torch.full_like(x, sample.kwargs["scale"] ** 2)
    return SampleInput((x, y, var), {"full": True}, sample.desc, sample.grad_args)


def _barron_autograd(input, target, *, alpha=1.0, scale=1.0, weight=None, reduction="mean"):
    """Eq. 1 by plain autograd, stabilised by clamping |alpha| and |alpha - 2| away from zero
    (the approach of the authors' reference implementation): the benchmark baseline."""
    eps = 1e-6
    z = ((input - target) / scale).square()
    if alpha == -math.inf:
        out = 1.0 - torch.exp(-0.5 * z)
    else:
        a = alpha if isinstance(alpha, Tensor) else torch.tensor(alpha, dtype=input.dtype)
        b = (a - 2.0).abs().clamp(min=eps)
        a_safe = torch.where(a >= 0, 1.0, -1.0) * a.abs().clamp(min=eps)
        out = b / a_safe * (torch.pow(z / b + 1.0, 0.5 * a) - 1.0)
    return out.mean() if reduction == "mean" else out.sum() if reduction == "sum" else out


def _member(
    name: str,
    aliases: tuple[str, ...],
    functional: Callable[..., Tensor],
    module: type,
    alpha: float,
    summary: str,
    formula: str,
    papers: tuple[str, ...],
    example: WorkedExample,
    notes: str = "",
) -> LossSpec:
    scale = HyperParam(
        "scale", 1.0, "residual size where the loss turns robust", 0.01, 100.0, True, "> 0"
    )
    return LossSpec(
        name=name,
        aliases=aliases,
        functional=functional,
        module=module,
        task="regression",
        summary=summary,
        formula=formula,
        params=(scale,),
        reference=_robust_reference(alpha),
        reference_name=f"eq. 1 of Barron (2019) at alpha={alpha:g}, float64",
        papers=(*papers, _BARRON),
        sample_inputs=_chain(regression_samples({"scale": (0.3, 2.5)}), _extreme_residuals),
        error_inputs=_all_errors(functional.__name__, general=False),
        examples=(example,),
        properties=_COMMON,
        notes=notes,
        bench_inputs=regression_bench,
        bench_sizes=(1024, 1_048_576),
        bench_references={
            "Barron eq. 1 autograd": lambda x, y, **kw: _barron_autograd(x, y, alpha=alpha, **kw)
        },
    )


_ALPHAS = (-math.inf, -2.0, -1e-6, 0.0, 1e-6, 0.5, 1.999999, 2.0, 2.000001, 3.0)

SPECS = [
    LossSpec(
        name="general_robust",
        aliases=("general_robust_loss", "barron", "barron_loss", "robust"),
        functional=LF.general_robust_loss,
        module=LN.GeneralRobustLoss,
        task="regression",
        summary="Barron's one-parameter family: alpha=2 L2, 1 Charbonnier, 0 Cauchy, -2 "
        "Geman-McClure, -inf Welsch.",
        formula=(
            r"\rho(d,\alpha,c) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(d/c)^2}{|\alpha-2|}"
            r"+1\right)^{\alpha/2}-1\right)"
        ),
        params=(
            HyperParam(
                "alpha",
                1.0,
                "shape: lower is more robust (2 L2, 1 Charbonnier, 0 Cauchy, -inf Welsch)",
                -10.0,
                2.0,
                False,
                "real, < inf (-inf allowed); a float or a tensor broadcasting to input",
            ),
            HyperParam(
                "scale",
                1.0,
                "residual size where the loss turns robust",
                0.01,
                100.0,
                True,
                "> 0; a float or a tensor broadcasting to input",
            ),
        ),
        reference=_robust_reference(None),
        reference_name="eq. 1 of Barron (2019) with its limits, float64",
        papers=(_BARRON,),
        sample_inputs=_chain(
            regression_samples({"alpha": _ALPHAS, "scale": (0.3,)}),
            _extreme_residuals,
            _tensor_hyper_samples(nll=False),
        ),
        error_inputs=_all_errors("general_robust_loss"),
        examples=(
            _example(0.1979, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), alpha=1 (Charbonnier)"),
            _example(0.264, "alpha=2 is half the MSE (0.528)", alpha=2.0),
            _example(0.1881, "alpha=0 (Cauchy)", alpha=0.0),
        ),
        properties=_COMMON,
        notes=(
            "alpha and scale may be tensors (per element or per dimension) and then get "
            "gradients; the gradient is first-order only (custom autograd function). "
            "For a learned alpha use AdaptiveRobustLoss, which minimises the NLL instead: "
            "minimising this loss over alpha just drives alpha to -inf."
        ),
        bench_inputs=_general_bench,
        bench_sizes=(1024, 1_048_576),
        bench_references={"Barron eq. 1 autograd": _barron_autograd},
    ),
    _member(
        "cauchy",
        ("cauchy_loss", "lorentzian"),
        LF.cauchy_loss,
        LN.CauchyLoss,
        0.0,
        "log(1 + (d/c)^2 / 2): the Cauchy NLL; an outlier's pull decays like 1/d.",
        r"\rho(d) = \log\left(\tfrac12 (d/c)^2 + 1\right)",
        ("Black & Anandan, The robust estimation of multiple motions, CVIU 1996",),
        _example(1.0986, "residual 2, scale 1: log 3", residuals=(2.0,)),
    ),
    _member(
        "geman_mcclure",
        ("geman_mcclure_loss", "gm"),
        LF.geman_mcclure_loss,
        LN.GemanMcClureLoss,
        -2.0,
        "2 (d/c)^2 / ((d/c)^2 + 4): bounded by 2, outliers' pull vanishes like 1/d^3.",
        r"\rho(d) = \frac{2 (d/c)^2}{(d/c)^2 + 4}",
        (
            "Geman & McClure, Bayesian image analysis: an application to single photon emission "
            "tomography, 1985",
        ),
        _example(1.0, "residual 2, scale 1: 8 / 8", residuals=(2.0,)),
        notes="Barron's normalisation; d^2/(d^2 + s^2) is this loss at scale s/2, halved.",
    ),
    _member(
        "welsch",
        ("welsch_loss", "leclerc"),
        LF.welsch_loss,
        LN.WelschLoss,
        -math.inf,
        "1 - exp(-(d/c)^2 / 2): bounded by 1, a Gaussian-shaped influence; alpha -> -inf.",
        r"\rho(d) = 1 - \exp\left(-\tfrac12 (d/c)^2\right)",
        ("Dennis & Welsch, Techniques for nonlinear least squares and robust regression, 1978",),
        _example(0.8647, "residual 2, scale 1: 1 - e^-2", residuals=(2.0,)),
    ),
    _member(
        "charbonnier",
        ("charbonnier_loss", "pseudo_huber", "pseudo_huber_loss", "l1_l2"),
        LF.charbonnier_loss,
        LN.CharbonnierLoss,
        1.0,
        "sqrt((d/c)^2 + 1) - 1: pseudo-Huber; quadratic near 0, then |d|/c, smooth everywhere.",
        r"\rho(d) = \sqrt{(d/c)^2 + 1} - 1",
        (
            "Charbonnier et al., Two deterministic half-quadratic regularization algorithms for "
            "computed imaging, ICIP 1994",
        ),
        _example(2.1623, "residual 3, scale 1: sqrt(10) - 1", residuals=(3.0,)),
        notes=(
            "sqrt(d^2 + eps^2) (super-resolution) is eps * charbonnier(scale=eps) + eps; "
            "pseudo-Huber with delta is delta^2 * charbonnier(scale=delta)."
        ),
    ),
    LossSpec(
        name="general_robust_nll",
        aliases=("general_robust_nll_loss", "robust_nll", "barron_nll"),
        functional=LF.general_robust_nll_loss,
        module=LN.GeneralRobustNLLLoss,
        task="regression",
        summary="NLL of Barron's general distribution: rho + log c + log Z(alpha); lets alpha "
        "and scale be learned (AdaptiveRobustLoss).",
        formula=r"\ell_i = \rho(x_i - y_i, \alpha, c) + \log c + \log Z(\alpha)",
        params=(
            HyperParam(
                "alpha",
                1.0,
                "shape of the distribution: 2 Gaussian, 0 Cauchy",
                0.0,
                2.0,
                False,
                "0 <= alpha <= 4; a float or a tensor broadcasting to input",
            ),
            HyperParam(
                "scale",
                1.0,
                "scale of the distribution (the standard deviation at alpha=2)",
                0.01,
                100.0,
                True,
                "> 0; a float or a tensor broadcasting to input",
            ),
        ),
        reference=_nll_reference,
        reference_name="eq. 1 + log c + log Z by a 2561-node trapezoid in log x, float64",
        papers=(_BARRON,),
        sample_inputs=_chain(
            regression_samples(
                {"alpha": (0.0, 1e-6, 0.5, 1.999999, 2.0, 3.5), "scale": (0.3, 2.5)}
            ),
            _tensor_hyper_samples(nll=True),
        ),
        error_inputs=_all_errors("general_robust_nll_loss", nll=True),
        examples=(
            _example(
                1.2314,
                "alpha=2, scale=1 is the Gaussian NLL: (0.125 + 0.5)/2 + log sqrt(2 pi)",
                residuals=(0.5, -1.0),
                alpha=2.0,
            ),
        ),
        properties=frozenset({"symmetric"}),
        notes=(
            "log Z(alpha) by exp-sinh quadrature on the fly (see losskit._robust_partition); "
            "at alpha=2 equals torch.nn.functional.gaussian_nll_loss(full=True) with "
            "var=scale**2."
        ),
        bench_inputs=_gaussian_nll_bench,
        bench_sizes=(1024, 1_048_576),
        bench_references={_TORCH_GAUSSIAN: F.gaussian_nll_loss},
        bench_reference_inputs={_TORCH_GAUSSIAN: _as_gaussian_nll_inputs},
    ),
]
