"""Catalog entries for the regression losses."""

from __future__ import annotations

import torch

from losskit._catalog import LossSpec, WorkedExample
from losskit.losses.regression import functional as LF
from losskit.losses.regression import modules as LN
from losskit.losses.regression.options import BETA, DELTA, Q

#: where this family's fixtures live (imported on first use)
_CASES = "losskit.losses.regression.cases"

_RESIDUALS = ((0.2, 0.3, -0.5, 0.1, 1.5), (0.0, 0.0, 0.0, 0.0, 0.0))


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
        reference_name="torch.nn.functional.mse_loss",
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
        cases=_CASES,
    ),
    LossSpec(
        name="l1",
        aliases=("l1_loss", "mae", "mae_loss", "mean_absolute_error"),
        functional=LF.l1_loss,
        module=LN.L1Loss,
        task="regression",
        summary="Mean absolute error: the Laplace log-likelihood; robust, estimates the median.",
        formula=r"\ell_i = |x_i - y_i|",
        reference_name="torch.nn.functional.l1_loss",
        examples=(_residual_example(0.52, "residuals (0.2, 0.3, -0.5, 0.1, 1.5)"),),
        properties=_COMMON,
        cases=_CASES,
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
        params=(DELTA,),
        reference_name="torch.nn.functional.huber_loss",
        papers=("Huber, Robust Estimation of a Location Parameter, 1964",),
        examples=(
            _residual_example(0.239, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), delta=1", delta=1.0),
        ),
        properties=_COMMON,
        cases=_CASES,
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
        params=(BETA,),
        reference_name="torch.nn.functional.smooth_l1_loss",
        papers=("Girshick, Fast R-CNN, ICCV 2015",),
        examples=(
            _residual_example(0.239, "residuals (0.2, 0.3, -0.5, 0.1, 1.5), beta=1", beta=1.0),
        ),
        properties=_COMMON,
        cases=_CASES,
    ),
    LossSpec(
        name="log_cosh",
        aliases=("log_cosh_loss", "logcosh"),
        functional=LF.log_cosh_loss,
        module=LN.LogCoshLoss,
        task="regression",
        summary="log(cosh(d)): smooth everywhere, ~d^2/2 near zero and ~|d| in the tails.",
        formula=r"\ell_i = \log\cosh(x_i - y_i)",
        reference_name="logaddexp(d, -d) - log 2 in float64",
        examples=(_residual_example(0.209, "residuals (0.2, 0.3, -0.5, 0.1, 1.5)"),),
        properties=_COMMON,
        cases=_CASES,
    ),
    LossSpec(
        name="quantile",
        aliases=("quantile_loss", "pinball", "pinball_loss"),
        functional=LF.quantile_loss,
        module=LN.QuantileLoss,
        task="regression",
        summary="Pinball loss: its minimiser is the q-th quantile (prediction intervals).",
        formula=r"\ell_i = \max\big(q(y_i - x_i),\,(q-1)(y_i - x_i)\big)",
        params=(Q,),
        reference_name="explicit pinball formula in float64",
        papers=("Koenker & Bassett, Regression Quantiles, Econometrica 1978",),
        examples=(
            WorkedExample(
                "q=0.9: under-predict by 1 costs 0.9, over-predict by 1 costs 0.1",
                (torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])),
                {"q": 0.9},
                0.5,
            ),
        ),
        properties=frozenset({"nonnegative", "zero_at_perfect"}),
        cases=_CASES,
    ),
]
