"""Module forms of the classification losses."""

from __future__ import annotations

from torch import Tensor

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.classification import functional as LF

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]


class CrossEntropyLoss(LossModule):
    """Cross-entropy on logits; see :func:`losskit.functional.cross_entropy`.

    >>> import torch, losskit
    >>> criterion = losskit.CrossEntropyLoss(label_smoothing=0.1, ignore_index=-1)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, -1, 1]))
    """

    functional = staticmethod(LF.cross_entropy)

    def __init__(
        self,
        weight: Tensor | None = None,
        *,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        check_number("cross_entropy", "label_smoothing", label_smoothing, ge=0.0, le=1.0)
        super().__init__(
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )


class NLLLoss(LossModule):
    """Negative log-likelihood on log-probabilities; see :func:`losskit.functional.nll_loss`."""

    functional = staticmethod(LF.nll_loss)

    def __init__(
        self,
        weight: Tensor | None = None,
        *,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)


class BCELoss(LossModule):
    """Binary cross-entropy on probabilities; see :func:`losskit.functional.binary_cross_entropy`.

    The elementwise ``weight`` is a per-call argument: ``criterion(p, y, weight=w)``.
    """

    functional = staticmethod(LF.binary_cross_entropy)

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__(reduction=reduction)


class BCEWithLogitsLoss(LossModule):
    """Binary cross-entropy on logits; see
    :func:`losskit.functional.binary_cross_entropy_with_logits`."""

    functional = staticmethod(LF.binary_cross_entropy_with_logits)

    def __init__(
        self, *, pos_weight: Tensor | float | None = None, reduction: Reduction = "mean"
    ) -> None:
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            check_number("binary_cross_entropy_with_logits", "pos_weight", pos_weight, ge=0.0)
        super().__init__(pos_weight=pos_weight, reduction=reduction)
