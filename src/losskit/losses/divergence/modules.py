"""Module forms of the divergences."""

from __future__ import annotations

from typing import ClassVar

from losskit._checks import check_number
from losskit._module import LossModule
from losskit.losses.divergence import functional as LF
from losskit.losses.divergence.functional import KL_REDUCTIONS, KLReduction

__all__ = ["KLDivLoss", "KLDivWithLogitsLoss"]


class KLDivLoss(LossModule):
    """KL divergence on log-probabilities; see :func:`losskit.functional.kl_div`.

    The default reduction is ``"batchmean"`` (the KL divergence per sample), not torch's
    ``"mean"``.

    >>> import torch, losskit
    >>> criterion = losskit.KLDivLoss()
    >>> p = torch.tensor([[0.36, 0.48, 0.16]])
    >>> round(criterion(torch.full((1, 3), 1 / 3).log(), p).item(), 4)
    0.0853
    """

    functional = staticmethod(LF.kl_div)
    reductions: ClassVar[tuple[str, ...]] = KL_REDUCTIONS

    def __init__(self, *, log_target: bool = False, reduction: KLReduction = "batchmean") -> None:
        super().__init__(log_target=log_target, reduction=reduction)


class KLDivWithLogitsLoss(LossModule):
    """Distillation loss between student and teacher logits, scaled by ``temperature ** 2``;
    see :func:`losskit.functional.kl_div_with_logits`.

    >>> import torch, losskit
    >>> criterion = losskit.KLDivWithLogitsLoss(temperature=2.0)
    >>> student, teacher = torch.randn(8, 10, requires_grad=True), torch.randn(8, 10)
    >>> criterion(student, teacher.detach()).backward()
    """

    functional = staticmethod(LF.kl_div_with_logits)
    reductions: ClassVar[tuple[str, ...]] = KL_REDUCTIONS

    def __init__(self, *, temperature: float = 1.0, reduction: KLReduction = "batchmean") -> None:
        super().__init__(
            temperature=check_number("kl_div_with_logits", "temperature", temperature, gt=0.0),
            reduction=reduction,
        )
