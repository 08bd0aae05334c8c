"""Module forms of the robust losses, and :class:`AdaptiveRobustLoss`, whose shape ``alpha``
and ``scale`` are learned with the model (Barron, CVPR 2019, sec. 3)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losskit._checks import check_number, check_reduction, check_tensor, fail, shape_str
from losskit._learnable import StepWatch
from losskit._module import LossModule
from losskit._options import HyperParam
from losskit._reduce import REDUCTIONS, Reduction
from losskit.losses.robust import functional as LF
from losskit.losses.robust.functional import check_hyper_number
from losskit.losses.robust.options import (
    ALPHA,
    ALPHA_INIT,
    ALPHA_RANGE,
    NLL_ALPHA,
    NLL_SCALE,
    SCALE,
    SCALE_INIT,
    SCALE_MIN,
)

__all__ = [
    "AdaptiveRobustLoss",
    "CauchyLoss",
    "CharbonnierLoss",
    "GemanMcClureLoss",
    "GeneralRobustLoss",
    "GeneralRobustNLLLoss",
    "WelschLoss",
]


def _option(loss: str, option: HyperParam, value: float | Tensor) -> float | Tensor:
    """A Python number checked now; a tensor (a buffer) is checked by the functional on each
    call, against the input it must broadcast to."""
    return value if isinstance(value, Tensor) else check_hyper_number(loss, option, value)


class GeneralRobustLoss(LossModule):
    """Barron's general robust loss with a fixed shape ``alpha`` and ``scale``; see
    :func:`losskit.functional.general_robust_loss`. To learn them, use
    :class:`AdaptiveRobustLoss`.

    >>> import torch, losskit
    >>> criterion = losskit.GeneralRobustLoss(alpha=0.0, scale=0.5)   # Cauchy
    >>> round(criterion(torch.tensor([1.0]), torch.zeros(1)).item(), 4)
    1.0986
    """

    functional = staticmethod(LF.general_robust_loss)

    def __init__(
        self,
        alpha: float | Tensor = ALPHA.default,
        scale: float | Tensor = SCALE.default,
        *,
        reduction: Reduction = "mean",
    ) -> None:
        name = "general_robust_loss"
        super().__init__(
            alpha=_option(name, ALPHA, alpha),
            scale=_option(name, SCALE, scale),
            reduction=reduction,
        )


class GeneralRobustNLLLoss(LossModule):
    """Negative log-likelihood of Barron's general distribution with fixed ``alpha`` and
    ``scale``; see :func:`losskit.functional.general_robust_nll_loss`."""

    functional = staticmethod(LF.general_robust_nll_loss)

    def __init__(
        self,
        alpha: float | Tensor = NLL_ALPHA.default,
        scale: float | Tensor = NLL_SCALE.default,
        *,
        reduction: Reduction = "mean",
    ) -> None:
        name = "general_robust_nll_loss"
        super().__init__(
            alpha=_option(name, NLL_ALPHA, alpha),
            scale=_option(name, NLL_SCALE, scale),
            reduction=reduction,
        )


class _ScaledRobustLoss(LossModule):
    def __init__(
        self, scale: float | Tensor = SCALE.default, *, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(scale=_option(self._loss_name(), SCALE, scale), reduction=reduction)


class CauchyLoss(_ScaledRobustLoss):
    """Cauchy (Lorentzian) loss; see :func:`losskit.functional.cauchy_loss`."""

    functional = staticmethod(LF.cauchy_loss)


class GemanMcClureLoss(_ScaledRobustLoss):
    """Geman-McClure loss; see :func:`losskit.functional.geman_mcclure_loss`."""

    functional = staticmethod(LF.geman_mcclure_loss)


class WelschLoss(_ScaledRobustLoss):
    """Welsch (Leclerc) loss; see :func:`losskit.functional.welsch_loss`."""

    functional = staticmethod(LF.welsch_loss)


class CharbonnierLoss(_ScaledRobustLoss):
    """Charbonnier (pseudo-Huber) loss; see :func:`losskit.functional.charbonnier_loss`."""

    functional = staticmethod(LF.charbonnier_loss)


def _inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` for ``y > 0``, stable for large and small ``y``."""
    return y + math.log(-math.expm1(-y))


class AdaptiveRobustLoss(nn.Module):
    r"""Barron's adaptive robust loss: the negative log-likelihood of the general distribution
    with a learnable shape :math:`\alpha` and scale :math:`c` per output dimension.

    .. math:: \ell_{ij} = \rho(x_{ij} - y_{ij}, \alpha_j, c_j) + \log c_j + \log Z(\alpha_j)

    Training moves :math:`\alpha` down when the residuals have heavy tails (outliers stop
    pulling the fit) and toward 2 when they are Gaussian, so the robustness need not be tuned.
    The parameters are latent, as in the paper: :math:`\alpha = \alpha_{lo} + (\alpha_{hi} -
    \alpha_{lo})\,\sigma(a)` and :math:`c = c_{min} + \operatorname{softplus}(s)`, unconstrained
    for the optimizer. **Hand them to the optimizer** (the module warns once if they never
    change after ``stale_check_calls`` training calls)::

        loss_fn = losskit.AdaptiveRobustLoss(num_dims=1)
        optimizer = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()))

    Args:
        num_dims: size of ``input``'s last dimension, each with its own ``alpha`` and
            ``scale``; with ``num_dims=1`` any input shape shares one pair. Put the dimension
            that should adapt separately last (e.g. ``x.permute(0, 2, 3, 1)`` for channels).
        alpha_range: ``(low, high)`` with ``0 <= low <= high <= 4``; ``low == high`` fixes
            ``alpha`` (then only the scale is learned). The default ``(0.001, 1.999)`` spans
            Cauchy-like to Gaussian-like tails, as in the paper.
        scale_init: the initial scale, ``>= scale_min``; ``scale_init == scale_min`` fixes
            the scale there (then only ``alpha`` is learned), as in Barron's adaptive loss.
        alpha_init: the initial alpha; the middle of ``alpha_range`` by default.
        scale_min: the scale's lower bound, ``>= 0`` (keeps :math:`\log c` finite).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the elementwise NLL.

    ``forward(input, target, *, weight=None)``: ``input`` and ``target`` of one shape
    ``(..., num_dims)``; ``weight`` elementwise, as for every regression loss.

    >>> import torch, losskit
    >>> loss_fn = losskit.AdaptiveRobustLoss(num_dims=3)
    >>> loss_fn.alpha.detach(), loss_fn.scale.detach()
    (tensor([1., 1., 1.]), tensor([1., 1., 1.]))
    >>> loss = loss_fn(torch.randn(8, 3), torch.randn(8, 3))
    >>> loss.backward()   # gradients reach loss_fn.latent_alpha and loss_fn.latent_scale
    """

    #: training calls after which unchanged parameters trigger the "not in the optimizer" warning
    stale_check_calls: ClassVar[int] = 100

    def __init__(
        self,
        num_dims: int,
        alpha_range: tuple[float, float] = ALPHA_RANGE.default,
        scale_init: float = SCALE_INIT.default,
        *,
        alpha_init: float | None = ALPHA_INIT.default,
        scale_min: float = SCALE_MIN.default,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        name = "AdaptiveRobustLoss"
        if isinstance(num_dims, bool) or not isinstance(num_dims, int) or num_dims < 1:
            fail(name, "num_dims", f"is {num_dims!r}", "an int >= 1")
        if not isinstance(alpha_range, tuple | list) or len(alpha_range) != 2:
            fail(name, "alpha_range", f"is {alpha_range!r}", "a pair (low, high)")
        # the learned alpha is the distribution's: NLL_ALPHA's bounds, with low <= high
        low = check_number(name, "alpha_range[0]", alpha_range[0], ge=NLL_ALPHA.ge, le=NLL_ALPHA.le)
        high = check_number(name, "alpha_range[1]", alpha_range[1], ge=low, le=NLL_ALPHA.le)
        scale_min = SCALE_MIN.check(name, scale_min)
        scale_init = check_number(name, "scale_init", scale_init, gt=SCALE_INIT.gt, ge=scale_min)
        if alpha_init is None:
            alpha_init = 0.5 * (low + high)
        alpha_init = check_number(name, "alpha_init", alpha_init, ge=low, le=high)
        check_reduction(name, reduction, REDUCTIONS)
        self.num_dims = num_dims
        self.alpha_range = (low, high)
        self.scale_min = scale_min
        self.reduction = reduction
        if low == high:
            self.register_buffer("fixed_alpha", torch.full((num_dims,), low))
            self.latent_alpha = None
        else:
            # alpha_init at either end of the range would need an infinite logit
            fraction = min(max((alpha_init - low) / (high - low), 1e-6), 1 - 1e-6)
            logit = math.log(fraction / (1.0 - fraction))
            self.latent_alpha = nn.Parameter(torch.full((num_dims,), logit))
        if scale_init == scale_min:
            self.register_buffer("fixed_scale", torch.full((num_dims,), scale_init))
            self.latent_scale = None
        else:
            latent = _inverse_softplus(scale_init - scale_min)
            self.latent_scale = nn.Parameter(torch.full((num_dims,), latent))
        self._watch = StepWatch(
            name,
            "torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()))",
            self.stale_check_calls,
        )

    @property
    def alpha(self) -> Tensor:
        """The current shape per dimension (attached to the graph), shape ``(num_dims,)``."""
        if self.latent_alpha is None:
            return self.fixed_alpha
        low, high = self.alpha_range
        # rounding could leave the range by an ulp, which the loss's range check refuses
        return (low + (high - low) * torch.sigmoid(self.latent_alpha)).clamp(low, high)

    @property
    def scale(self) -> Tensor:
        """The current scale per dimension (attached to the graph), shape ``(num_dims,)``."""
        if self.latent_scale is None:
            return self.fixed_scale
        return self.scale_min + F.softplus(self.latent_scale)

    def forward(self, input: Tensor, target: Tensor, *, weight: Tensor | None = None) -> Tensor:
        check_tensor("AdaptiveRobustLoss", "input", input)
        if self.num_dims > 1 and (input.dim() == 0 or input.shape[-1] != self.num_dims):
            fail(
                "AdaptiveRobustLoss",
                "input",
                f"has shape {shape_str(input.shape)}",
                f"a last dimension of num_dims={self.num_dims}",
            )
        self._watch.after = self.stale_check_calls
        self._watch.observe(self.parameters())
        alpha, scale = self.alpha, self.scale
        if self.num_dims == 1:
            alpha, scale = alpha.squeeze(0), scale.squeeze(0)
        return LF.general_robust_nll_loss(
            input, target, alpha=alpha, scale=scale, weight=weight, reduction=self.reduction
        )

    def extra_repr(self) -> str:
        return (
            f"num_dims={self.num_dims}, alpha_range={self.alpha_range}, "
            f"scale_min={self.scale_min:g}, reduction={self.reduction!r}"
        )
