"""Regression losses: MSE, L1, Huber, Smooth L1, log-cosh, quantile (pinball).

All take ``(input, target)`` of the same shape and dtype (never broadcast), an optional
elementwise ``weight`` of that shape, and ``reduction`` in ``"mean" | "sum" | "none"``.
With a weight, ``"mean"`` is ``sum(w * l) / sum(w)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._C import _nn

from losskit._autocast import autocast_float32
from losskit._pointwise import pointwise_loss
from losskit._reduce import REDUCTION_ENUM, Reduction
from losskit.losses.regression.options import BETA, DELTA, Q

__all__ = [
    "huber_loss",
    "l1_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "quantile_loss",
    "smooth_l1_loss",
]

_LOG2 = math.log(2.0)


@autocast_float32
def mse_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Mean squared error, :math:`\ell_i = (x_i - y_i)^2`.

    Shapes: ``input`` and ``target`` any shape, identical; ``weight`` the same shape.
    Unlike ``torch.nn.functional.mse_loss``, an ``(N, 1)`` input against an ``(N,)`` target is an
    error, not an ``N x N`` broadcast.

    >>> import torch, losskit.functional as LF
    >>> r = torch.tensor([0.2, 0.3, -0.5, 0.1, 1.5])
    >>> round(LF.mse_loss(r, torch.zeros(5)).item(), 3)
    0.528
    """
    return pointwise_loss(
        "mse_loss",
        input,
        target,
        weight,
        reduction,
        lambda x, y: (x - y).square(),
        lambda x, y, r: _nn.mse_loss(x, y, REDUCTION_ENUM[r]),
    )


@autocast_float32
def l1_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Mean absolute error (L1), :math:`\ell_i = |x_i - y_i|`. Alias: ``mae_loss``.

    >>> import torch, losskit.functional as LF
    >>> LF.l1_loss(torch.tensor([1.0, -2.0]), torch.zeros(2)).item()
    1.5
    """
    return pointwise_loss(
        "l1_loss",
        input,
        target,
        weight,
        reduction,
        lambda x, y: (x - y).abs(),
        lambda x, y, r: _nn.l1_loss(x, y, REDUCTION_ENUM[r]),
    )


mae_loss = l1_loss


@autocast_float32
def huber_loss(
    input: Tensor,
    target: Tensor,
    *,
    delta: float = DELTA.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Huber loss: quadratic near zero, linear in the tails.

    .. math:: \ell_i = \begin{cases} \tfrac12 d_i^2 & |d_i| \le \delta \\
              \delta(|d_i| - \tfrac12\delta) & \text{otherwise}\end{cases},\quad d_i = x_i - y_i

    ``delta > 0``. As ``delta`` grows it tends to MSE/2; ``huber = delta * smooth_l1(beta=delta)``.

    >>> import torch, losskit.functional as LF
    >>> r = torch.tensor([0.2, 0.3, -0.5, 0.1, 1.5])
    >>> round(LF.huber_loss(r, torch.zeros(5), delta=1.0).item(), 3)
    0.239
    """
    delta = DELTA.check("huber_loss", delta)

    def elementwise(x: Tensor, y: Tensor) -> Tensor:
        a = (x - y).abs()
        return torch.where(a <= delta, 0.5 * a.square(), delta * (a - 0.5 * delta))

    return pointwise_loss(
        "huber_loss",
        input,
        target,
        weight,
        reduction,
        elementwise,
        lambda x, y, r: _nn.huber_loss(x, y, REDUCTION_ENUM[r], delta),
    )


@autocast_float32
def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    *,
    beta: float = BETA.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Smooth L1 (Fast R-CNN): :math:`0.5 d^2/\beta` for :math:`|d| < \beta`, else
    :math:`|d| - 0.5\beta`. ``beta >= 0``; ``beta = 0`` is L1.

    >>> import torch, losskit.functional as LF
    >>> LF.smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2)).item()
    1.3125
    """
    beta = BETA.check("smooth_l1_loss", beta)

    def elementwise(x: Tensor, y: Tensor) -> Tensor:
        a = (x - y).abs()
        if beta == 0.0:
            return a
        return torch.where(a < beta, 0.5 * a.square() / beta, a - 0.5 * beta)

    return pointwise_loss(
        "smooth_l1_loss",
        input,
        target,
        weight,
        reduction,
        elementwise,
        # as torch.nn.functional: beta = 0 is L1's kernel (smooth L1's divides by beta)
        (lambda x, y, r: _nn.l1_loss(x, y, REDUCTION_ENUM[r]))
        if beta == 0.0
        else (lambda x, y, r: _nn.smooth_l1_loss(x, y, REDUCTION_ENUM[r], beta)),
    )


@autocast_float32
def log_cosh_loss(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Log-cosh loss, :math:`\ell_i = \log\cosh(x_i - y_i)`: about :math:`d^2/2` for small
    residuals and :math:`|d| - \log 2` for large ones, smooth everywhere.

    Computed as :math:`|d| + \operatorname{softplus}(-2|d|) - \log 2`, which is finite for any
    residual (``cosh`` itself overflows float32 past ``|d| = 89``).

    >>> import torch, losskit.functional as LF
    >>> round(LF.log_cosh_loss(torch.tensor([1000.0]), torch.zeros(1)).item(), 3)
    999.307
    """

    def elementwise(x: Tensor, y: Tensor) -> Tensor:
        a = (x - y).abs()
        return a + F.softplus(-2.0 * a) - _LOG2

    return pointwise_loss("log_cosh_loss", input, target, weight, reduction, elementwise)


@autocast_float32
def quantile_loss(
    input: Tensor,
    target: Tensor,
    *,
    q: float = Q.default,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Quantile (pinball) loss for the ``q``-th quantile, ``0 < q < 1``:

    .. math:: \ell_i = \max\big(q\,(y_i - x_i),\ (q - 1)(y_i - x_i)\big)

    Under-prediction costs ``q`` per unit, over-prediction ``1 - q``; ``q = 0.5`` is L1/2.

    >>> import torch, losskit.functional as LF
    >>> LF.quantile_loss(torch.tensor([0.0, 2.0]), torch.ones(2), q=0.9).item()
    0.5
    """
    q = Q.check("quantile_loss", q)

    def elementwise(x: Tensor, y: Tensor) -> Tensor:
        d = y - x
        return torch.maximum(q * d, (q - 1.0) * d)

    return pointwise_loss("quantile_loss", input, target, weight, reduction, elementwise)
