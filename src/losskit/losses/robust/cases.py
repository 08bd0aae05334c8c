"""Fixtures of the robust entries: references, sample, error and benchmark
inputs. Loaded on demand by the tests, the benchmark harness and ``losskit tour``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, LossCases, SampleInput
from losskit._fixtures import TensorMaker, elementwise_errors, elementwise_samples
from losskit.losses.regression.cases import regression_bench

# ------------------------------------------------------------------------- references


def barron_rho(d: Tensor, alpha: float | Tensor, scale: float | Tensor) -> Tensor:
    """Eq. 1 in float64, with the paper's closed forms at ``alpha`` = 2, 0 and -inf; the value
    the losses must match.

    Written ``(b / alpha) (e^t - 1) = (b / 2) L (e^t - 1) / t`` with ``b = |alpha - 2|``,
    ``L = log(1 + z / b)`` and ``t = alpha L / 2``, through ``log1p`` and ``expm1``: the literal
    ``pow(1 + z / b, alpha / 2) - 1`` loses every digit as ``alpha -> 0`` (0 instead of Cauchy's
    value at ``alpha = 1e-20``), and ``b / alpha`` overflows for a subnormal ``alpha``."""
    z = (d.double() / (scale.double() if isinstance(scale, Tensor) else scale)).square()
    a = alpha.double() if isinstance(alpha, Tensor) else torch.tensor(alpha, dtype=torch.float64)
    a = a.to(z.device).expand_as(z)
    safe = torch.where((a == 0) | (a == 2) | torch.isinf(a), 1.0, a)
    b = (safe - 2.0).abs()
    log_ratio = torch.log1p(z / b)
    t = safe / 2.0 * log_ratio
    nonzero_t = torch.where(t == 0, 1.0, t)
    e1 = torch.where(t == 0, 1.0, torch.expm1(nonzero_t) / nonzero_t)  # (e^t - 1) / t
    general = b / 2.0 * log_ratio * e1
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
        # the NLL stays below 4 (its largest alpha), also after the serialisation tests add 1
        specials = [0.0, 1.0, 2.0, 3.0] if nll else [-math.inf, -2.0, 0.0, 1.0, 2.0, 3.5]
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
    base = elementwise_errors(loss, {"scale": 0.0})

    def errors() -> Iterator[ErrorInput]:
        yield from base()
        if general:
            yield from _hyper_errors(loss, nll)()

    return errors


# ------------------------------------------------------------------------- benchmarks


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


def _member_cases(loss: str, alpha: float) -> LossCases:
    """A fixed-alpha member of the family (cauchy, welsch, ...)."""
    return LossCases(
        reference=_robust_reference(alpha),
        sample_inputs=_chain(elementwise_samples({"scale": (0.3, 2.5)}), _extreme_residuals),
        error_inputs=_all_errors(loss, general=False),
        bench_inputs=regression_bench,
        bench_references={
            "Barron eq. 1 autograd": lambda x, y, **kw: _barron_autograd(x, y, alpha=alpha, **kw)
        },
    )


_ALPHAS = (-math.inf, -2.0, -1e-6, 0.0, 1e-6, 0.5, 1.999999, 2.0, 2.000001, 3.0)

CASES: dict[str, LossCases] = {
    "general_robust": LossCases(
        reference=_robust_reference(None),
        sample_inputs=_chain(
            elementwise_samples({"alpha": _ALPHAS, "scale": (0.3,)}),
            _extreme_residuals,
            _tensor_hyper_samples(nll=False),
        ),
        error_inputs=_all_errors("general_robust_loss"),
        bench_inputs=_general_bench,
        bench_references={"Barron eq. 1 autograd": _barron_autograd},
    ),
    "general_robust_nll": LossCases(
        reference=_nll_reference,
        sample_inputs=_chain(
            elementwise_samples(
                {"alpha": (0.0, 1e-6, 0.5, 1.999999, 2.0, 3.5), "scale": (0.3, 2.5)}
            ),
            _tensor_hyper_samples(nll=True),
        ),
        error_inputs=_all_errors("general_robust_nll_loss", nll=True),
        bench_inputs=_gaussian_nll_bench,
        bench_references={_TORCH_GAUSSIAN: F.gaussian_nll_loss},
        bench_reference_inputs={_TORCH_GAUSSIAN: _as_gaussian_nll_inputs},
    ),
    "cauchy": _member_cases("cauchy_loss", 0.0),
    "geman_mcclure": _member_cases("geman_mcclure_loss", -2.0),
    "welsch": _member_cases("welsch_loss", -math.inf),
    "charbonnier": _member_cases("charbonnier_loss", 1.0),
}
