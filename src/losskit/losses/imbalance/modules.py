"""Module forms of the class-imbalance losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.imbalance import functional as LF

__all__ = ["AsymmetricLoss", "FocalLoss", "Poly1CrossEntropyLoss", "SigmoidFocalLoss"]


class SigmoidFocalLoss(LossModule):
    """Focal loss on logits for binary and multi-label targets; see
    :func:`losskit.functional.sigmoid_focal_loss`. The elementwise ``weight`` is a per-call
    argument: ``criterion(logits, targets, weight=w)``.

    >>> import torch, losskit
    >>> criterion = losskit.SigmoidFocalLoss(alpha=0.25, gamma=2.0)
    >>> loss = criterion(torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float())
    """

    functional = staticmethod(LF.sigmoid_focal_loss)

    def __init__(
        self,
        *,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        pos_weight: Tensor | float | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        name = "sigmoid_focal_loss"
        if alpha is not None:
            check_number(name, "alpha", alpha, ge=0.0, le=1.0)
        check_number(name, "gamma", gamma, ge=0.0)
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            check_number(name, "pos_weight", pos_weight, ge=0.0)
        super().__init__(alpha=alpha, gamma=gamma, pos_weight=pos_weight, reduction=reduction)


class FocalLoss(LossModule):
    """Softmax focal loss on logits for multi-class targets; see
    :func:`losskit.functional.focal_loss`. A per-class ``alpha`` (sequence or tensor) is stored
    as a buffer, so it moves with ``.to(device)``.

    >>> import torch, losskit
    >>> criterion = losskit.FocalLoss(gamma=2.0, alpha=[0.25, 0.75, 0.5], ignore_index=-1)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, -1, 1]))
    """

    functional = staticmethod(LF.focal_loss)

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | Tensor | None = None,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        name = "focal_loss"
        check_number(name, "gamma", gamma, ge=0.0)
        check_number(name, "label_smoothing", label_smoothing, ge=0.0, le=1.0)
        if isinstance(alpha, Sequence) and not isinstance(alpha, str):
            alpha = torch.tensor(
                [check_number(name, f"alpha[{i}]", a, ge=0.0) for i, a in enumerate(alpha)]
            )
        elif alpha is not None and not isinstance(alpha, Tensor):
            check_number(name, "alpha", alpha, ge=0.0)
        super().__init__(
            gamma=gamma,
            alpha=alpha,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )


class Poly1CrossEntropyLoss(LossModule):
    """Poly-1 cross-entropy on logits; see :func:`losskit.functional.poly1_cross_entropy`.

    >>> import torch, losskit
    >>> criterion = losskit.Poly1CrossEntropyLoss(epsilon=1.0, label_smoothing=0.1)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, 1, 1]))
    """

    functional = staticmethod(LF.poly1_cross_entropy)

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
    ) -> None:
        name = "poly1_cross_entropy"
        check_number(name, "epsilon", epsilon, ge=-1.0)
        check_number(name, "label_smoothing", label_smoothing, ge=0.0, le=1.0)
        super().__init__(
            epsilon=epsilon,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )


class AsymmetricLoss(LossModule):
    """Asymmetric loss for multi-label logits; see :func:`losskit.functional.asymmetric_loss`.
    The elementwise ``weight`` is a per-call argument.

    >>> import torch, losskit
    >>> criterion = losskit.AsymmetricLoss(gamma_neg=4.0, gamma_pos=1.0, clip=0.05)
    >>> loss = criterion(torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float())
    """

    functional = staticmethod(LF.asymmetric_loss)

    def __init__(
        self,
        *,
        gamma_neg: float = 4.0,
        gamma_pos: float = 1.0,
        clip: float = 0.05,
        reduction: Reduction = "mean",
    ) -> None:
        name = "asymmetric_loss"
        check_number(name, "gamma_neg", gamma_neg, ge=0.0)
        check_number(name, "gamma_pos", gamma_pos, ge=0.0)
        check_number(name, "clip", clip, ge=0.0, lt=1.0)
        super().__init__(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction=reduction)
