"""Catalog entries for the regression losses."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._catalog import ErrorInput, HyperParam, LossSpec, SampleInput, WorkedExample
from losskit._fixtures import TensorMaker
from losskit.losses.regression import functional as LF
from losskit.losses.regression import modules as LN

_RESIDUALS = ((0.2, 0.3, -0.5, 0.1, 1.5), (0.0, 0.0, 0.0, 0.0, 0.0))
_SHAPES = ((7,), (4, 5), (2, 3, 4), ())


def _reduce_reference(elementwise: Tensor, reduction: str, weight: Tensor | None) -> Tensor:
    """The weighted-mean rule written out, for references built from elementwise values."""
    if weight is not None:
        elementwise = elementwise * weight
    if reduction == "none":
        return elementwise
    if reduction == "sum" or weight is None:
        return elementwise.sum() if reduction == "sum" else elementwise.mean()
    return elementwise.sum() / weight.sum()


def torch_reference(torch_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """torch's loss, with losskit's weighted-mean rule applied to its elementwise values."""

    def reference(input, target, *, weight=None, reduction="mean", **options):
        if weight is None:
            return torch_fn(input, target, reduction=reduction, **options)
        return _reduce_reference(
            torch_fn(input, target, reduction="none", **options), reduction, weight
        )

    return reference


def formula_reference(elementwise: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """An explicit formula evaluated in float64, for losses torch does not have."""

    def reference(input, target, *, weight=None, reduction="mean", **options):
        x, y = input.double(), target.double()
        w = None if weight is None else weight.double()
        return _reduce_reference(elementwise(x, y, **options), reduction, w).to(input.dtype)

    return reference


def regression_samples(params: dict[str, tuple]) -> Callable[..., Iterator[SampleInput]]:
    """Shapes x reductions-independent options x weights, plus an empty and an extreme case."""

    def samples(dtype: torch.dtype, device: torch.device) -> Iterator[SampleInput]:
        make = TensorMaker(dtype, device)
        option_sets = [{}]
        for name, values in params.items():
            option_sets += [{name: v} for v in values]
        for shape in _SHAPES:
            for opts in option_sets:
                yield SampleInput(
                    (make.randn(*shape), make.randn(*shape)), opts, f"{shape}", grad_args=(0, 1)
                )
        for opts in option_sets:
            yield SampleInput(
                (make.randn(3, 4), make.randn(3, 4)),
                {**opts, "weight": make.uniform(3, 4, low=0.1, high=2.0)},
                "weighted",
                grad_args=(0, 1),
            )
        yield SampleInput(
            (make.randn(6), make.randn(6)),
            {"weight": make.tensor([0.0, 1.0, 0.0, 2.0, 0.0, 0.5])},
            "some weights zero",
            grad_args=(0, 1),
        )
        yield SampleInput(
            (make.randn(4), make.randn(4)),
            {"weight": torch.zeros(4, dtype=dtype, device=device)},
            "all weights zero",
            reference=False,
        )
        yield SampleInput((make.randn(0), make.randn(0)), {}, "empty", reference=False)
        yield SampleInput(
            (make.randn(16, scale=1e4), make.randn(16, scale=1e4)),
            {},
            "extreme residuals",
            tags=frozenset({"extreme"}),
        )

    return samples


def regression_errors(
    loss: str, bad_params: dict[str, object]
) -> Callable[[], Iterator[ErrorInput]]:
    def errors() -> Iterator[ErrorInput]:
        make = TensorMaker(torch.float32, "cpu")
        x = make.randn(4)
        yield ErrorInput(
            SampleInput((make.randn(4, 1), make.randn(4))),
            rf"{loss}: target has shape \(4,\); expected the shape of input, \(4, 1\)",
        )
        yield ErrorInput(
            SampleInput((torch.arange(4), make.randn(4))),
            rf"{loss}: input has dtype torch.int64; expected a floating-point tensor",
        )
        yield ErrorInput(
            SampleInput((x, x.double())),
            rf"{loss}: target has dtype torch.float64; expected the dtype of input",
        )
        yield ErrorInput(
            SampleInput((x, [0.0, 1.0, 2.0, 3.0])),
            rf"{loss}: target is a list; expected a torch.Tensor",
        )
        yield ErrorInput(
            SampleInput((x, x), {"reduction": "avg"}),
            rf"{loss}: reduction is 'avg'; expected one of 'mean', 'sum', 'none'",
        )
        yield ErrorInput(
            SampleInput((make.randn(4, 3), make.randn(4, 3)), {"weight": make.uniform(3)}),
            rf"{loss}: weight has shape \(3,\); expected the shape of input, \(4, 3\)",
        )
        yield ErrorInput(
            SampleInput((make.tensor([1.0, float("nan")]), make.randn(2))),
            rf"{loss}: input has 1 non-finite value\(s\); expected finite values",
            checks="full",
        )
        yield ErrorInput(
            SampleInput((x, x), {"weight": make.tensor([1.0, -1.0, 1.0, 1.0])}),
            rf"{loss}: weight has a minimum of -1; expected non-negative values",
            checks="full",
        )
        for name, value in bad_params.items():
            yield ErrorInput(
                SampleInput((x, x), {name: value}),
                rf"{loss}: {name} is {value!r}; expected a number",
            )

    return errors


def regression_bench(size: int, dtype: torch.dtype, device: torch.device) -> SampleInput:
    make = TensorMaker(dtype, device, seed=size)
    return SampleInput((make.randn(size), make.randn(size)), {}, f"{size} elements", (0,))


def _residual_example(expected: float, title: str, **kwargs: float) -> WorkedExample:
    r, zero = _RESIDUALS
    return WorkedExample(title, (torch.tensor(r), torch.tensor(zero)), kwargs, expected)


_COMMON = frozenset({"nonnegative", "zero_at_perfect", "symmetric"})

SPECS = [
    LossSpec(
        name="mse",
        aliases=("mse_loss", "l2", "mean_squared_error"),
        functional=LF.mse_loss,
        module=LN.MSELoss,
        task="regression",
        summary="Mean squared error: the Gaussian log-likelihood; sensitive to outliers.",
        formula=r"\ell_i = (x_i - y_i)^2",
        reference=torch_reference(F.mse_loss),
        bench_inputs=regression_bench,
        reference_name="torch.nn.functional.mse_loss",
        sample_inputs=regression_samples({}),
        error_inputs=regression_errors("mse_loss", {}),
        examples=(
            _residual_example(0.528, "residuals (0.2, 0.3, -0.5, 0.1, 1.5)"),
            WorkedExample(
                "house prices each off by $10,000",
                (
                    torch.tensor([310_000.0, 190_000.0, 260_000.0]),
                    torch.tensor([300_000.0, 200_000.0, 250_000.0]),
                ),
                {},
                1e8,
                0,
            ),
        ),
        properties=_COMMON,
    ),
    LossSpec(
        name="l1",
        aliases=("l1_loss", "mae", "mae_loss", "mean_absolute_error"),
        functional=LF.l1_loss,
        module=LN.L1Loss,
        task="regression",
        summary="Mean absolute error: the Laplace log-likelihood; robust, estimates the median.",
        formula=r"\ell_i = |x_i - y_i|",
        reference=torch_reference(F.l1_loss),
        bench_inputs=regression_bench,
        reference_name="torch.nn.functional.l1_loss",
        sample_inputs=regression_samples({}),
        error_inputs=regression_errors("l1_loss", {}),
        examples=(_residual_example(0.52, "residuals (0.2, 0.3, -0.5, 0.1, 1.5)"),),
        properties=_COMMON,
    ),
    LossSpec(
        name="huber",
        aliases=("huber_loss",),
        functional=LF.huber_loss,
        module=LN.HuberLoss,
        task="regression",
        summary="Quadratic for small residuals, linear beyond delta: MSE's efficiency, MAE's robustness.",
        formula=(
            r"\ell_i = \begin{cases}\tfrac12 d_i^2 & |d_i|\le\delta\\"
            r"\delta(|d_i|-\tfrac12\delta) & \text{otherwise}\end{cases}"
        ),
        params=(
            HyperParam(
                "delta", 1.0, "residual where quadratic turns linear", 0.01, 10.0, True, "> 0"
            ),
        ),
        reference=torch_reference(F.huber_loss),
        bench_inputs=regression_bench,
        reference_name="torch.nn.functional.huber_loss",
        papers=("Huber, Robust Estimation of a Location Parameter, 1964",),
        sample_inputs=regression_samples({"delta": (0.3, 2.5)}),
        error_inputs=regression_errors("huber_loss", {"delta": 0.0}),
        examples=(
            _residual_example(0.239, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), delta=1", delta=1.0),
        ),
        properties=_COMMON,
    ),
    LossSpec(
        name="smooth_l1",
        aliases=("smooth_l1_loss",),
        functional=LF.smooth_l1_loss,
        module=LN.SmoothL1Loss,
        task="regression",
        summary="Huber scaled by 1/beta (Fast R-CNN's box loss); beta=0 is L1.",
        formula=(
            r"\ell_i = \begin{cases}0.5\,d_i^2/\beta & |d_i|<\beta\\"
            r"|d_i|-0.5\beta & \text{otherwise}\end{cases}"
        ),
        params=(
            HyperParam(
                "beta", 1.0, "residual where quadratic turns linear", 0.01, 10.0, True, ">= 0"
            ),
        ),
        reference=torch_reference(F.smooth_l1_loss),
        bench_inputs=regression_bench,
        reference_name="torch.nn.functional.smooth_l1_loss",
        papers=("Girshick, Fast R-CNN, ICCV 2015",),
        sample_inputs=regression_samples({"beta": (0.0, 0.4, 3.0)}),
        error_inputs=regression_errors("smooth_l1_loss", {"beta": -1.0}),
        examples=(
            _residual_example(0.239, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), beta=1", beta=1.0),
        ),
        properties=_COMMON,
    ),
    LossSpec(
        name="log_cosh",
        aliases=("log_cosh_loss", "logcosh"),
        functional=LF.log_cosh_loss,
        module=LN.LogCoshLoss,
        task="regression",
        summary="log(cosh(d)): smooth everywhere, ~d^2/2 near zero and ~|d| in the tails.",
        formula=r"\ell_i = \log\cosh(x_i - y_i)",
        reference=formula_reference(lambda x, y: torch.logaddexp(x - y, y - x) - math.log(2.0)),
        reference_name="logaddexp(d, -d) - log 2 in float64",
        sample_inputs=regression_samples({}),
        error_inputs=regression_errors("log_cosh_loss", {}),
        examples=(_residual_example(0.209, "residuals (0.2, 0.3, -0.5, 0.1, 1.5)"),),
        properties=_COMMON,
    ),
    LossSpec(
        name="quantile",
        aliases=("quantile_loss", "pinball", "pinball_loss"),
        functional=LF.quantile_loss,
        module=LN.QuantileLoss,
        task="regression",
        summary="Pinball loss: its minimiser is the q-th quantile (prediction intervals).",
        formula=r"\ell_i = \max\big(q(y_i - x_i),\,(q-1)(y_i - x_i)\big)",
        params=(HyperParam("q", 0.5, "the quantile to estimate", 0.05, 0.95, False, "0 < q < 1"),),
        reference=formula_reference(
            lambda x, y, q=0.5: torch.where(y >= x, q * (y - x), (1 - q) * (x - y))
        ),
        reference_name="explicit pinball formula in float64",
        papers=("Koenker & Bassett, Regression Quantiles, Econometrica 1978",),
        sample_inputs=regression_samples({"q": (0.1, 0.9)}),
        error_inputs=regression_errors("quantile_loss", {"q": 1.0}),
        examples=(
            WorkedExample(
                "q=0.9: under-predict by 1 costs 0.9, over-predict by 1 costs 0.1",
                (torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])),
                {"q": 0.9},
                0.5,
            ),
        ),
        properties=frozenset({"nonnegative", "zero_at_perfect"}),
    ),
]
