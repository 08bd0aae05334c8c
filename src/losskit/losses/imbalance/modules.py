"""Module forms of the class-imbalance losses. Poly-1 and the asymmetric loss are generated from
the functionals and their options (each declared once, in
:mod:`losskit.losses.imbalance.options`); the focal losses are written out, since their
``alpha`` and ``pos_weight`` take None, numbers, per-class sequences or tensors, which the
generated constructor cannot check, and a per-class sequence becomes a buffer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from losskit._module import LossModule, loss_module
from losskit._reduce import Reduction
from losskit.losses.imbalance import functional as LF
from losskit.losses.imbalance.options import (
    CLASS_ALPHA,
    CLIP,
    EPSILON,
    GAMMA,
    GAMMA_NEG,
    GAMMA_POS,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    SIGMOID_ALPHA,
    WEIGHT,
)

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
        alpha: float | None = SIGMOID_ALPHA.default,
        gamma: float = GAMMA.default,
        pos_weight: Tensor | float | None = POS_WEIGHT.default,
        reduction: Reduction = "mean",
    ) -> None:
        name = "sigmoid_focal_loss"
        if alpha is not None:
            SIGMOID_ALPHA.check(name, alpha)
        GAMMA.check(name, gamma)
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            POS_WEIGHT.check(name, pos_weight)
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
        gamma: float = GAMMA.default,
        alpha: float | Sequence[float] | Tensor | None = CLASS_ALPHA.default,
        weight: Tensor | None = WEIGHT.default,
        ignore_index: int = IGNORE_INDEX.default,
        label_smoothing: float = LABEL_SMOOTHING.default,
        reduction: Reduction = "mean",
    ) -> None:
        name = "focal_loss"
        GAMMA.check(name, gamma)
        LABEL_SMOOTHING.check(name, label_smoothing)
        if isinstance(alpha, Sequence) and not isinstance(alpha, str):
            alpha = torch.tensor(LF.check_alpha_values(name, alpha))
        elif alpha is not None and not isinstance(alpha, Tensor):
            CLASS_ALPHA.check(name, alpha)
        super().__init__(
            gamma=gamma,
            alpha=alpha,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )


Poly1CrossEntropyLoss = loss_module(
    "Poly1CrossEntropyLoss",
    LF.poly1_cross_entropy,
    (EPSILON, WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
    summary="Poly-1 cross-entropy on logits",
)
Poly1CrossEntropyLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.Poly1CrossEntropyLoss(epsilon=1.0, label_smoothing=0.1)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, 1, 1]))
    """

AsymmetricLoss = loss_module(
    "AsymmetricLoss",
    LF.asymmetric_loss,
    (GAMMA_NEG, GAMMA_POS, CLIP),
    summary="Asymmetric loss for multi-label logits",
)
AsymmetricLoss.__doc__ += """

    The elementwise ``weight`` is a per-call argument.

    >>> import torch, losskit
    >>> criterion = losskit.AsymmetricLoss(gamma_neg=4.0, gamma_pos=1.0, clip=0.05)
    >>> loss = criterion(torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float())
    """
