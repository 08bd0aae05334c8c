"""Module forms of the classification losses. Cross-entropy and NLL are generated from the
functionals and their options (each declared once, in
:mod:`losskit.losses.classification.options`); the binary losses are written out, since they
broadcast torch's constructor ``weight`` to the input on each call."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from losskit._checks import check_floating, fail, shape_str
from losskit._module import LossModule, loss_module
from losskit._reduce import Reduction
from losskit.losses.classification import functional as LF
from losskit.losses.classification.options import (
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    POS_WEIGHT,
    WEIGHT,
)

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"]

CrossEntropyLoss = loss_module(
    "CrossEntropyLoss",
    LF.cross_entropy,
    (WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
    summary="Cross-entropy on logits",
)
CrossEntropyLoss.__doc__ += """

    >>> import torch, losskit
    >>> criterion = losskit.CrossEntropyLoss(label_smoothing=0.1, ignore_index=-1)
    >>> loss = criterion(torch.randn(4, 3), torch.tensor([0, 2, -1, 1]))
    """

NLLLoss = loss_module(
    "NLLLoss",
    LF.nll_loss,
    (WEIGHT, IGNORE_INDEX),
    summary="Negative log-likelihood on log-probabilities",
)


class _RescaledBinaryLoss(LossModule):
    """torch's constructor ``weight`` for the binary losses: a rescaling weight broadcast to the
    input as torch broadcasts it (e.g. ``(C,)`` per label of an ``(N, C)`` input), then applied
    as the per-call elementwise weight."""

    def forward(
        self, input: Tensor, target: Tensor, *, weight: Tensor | None = None, **per_call: Any
    ) -> Tensor:
        stored = self.weight
        if stored is not None and isinstance(input, Tensor):
            loss = self._loss_name()
            if weight is not None:
                fail(
                    loss,
                    "weight",
                    "is given both to the constructor and to the call",
                    "one of them (multiply them yourself to combine them)",
                )
            check_floating(loss, "weight", stored)
            if stored.dim() > input.dim() or any(
                w not in (1, n)
                for w, n in zip(reversed(stored.shape), reversed(input.shape), strict=False)
            ):
                fail(
                    loss,
                    "weight",
                    f"(given to the constructor) has shape {shape_str(stored.shape)}",
                    f"a shape that broadcasts to input {shape_str(input.shape)}",
                )
            weight = stored.expand_as(input)
        return super().forward(input, target, weight=weight, **per_call)


class BCELoss(_RescaledBinaryLoss):
    """Binary cross-entropy on probabilities; see :func:`losskit.functional.binary_cross_entropy`.

    ``weight`` is torch's rescaling weight: given to the constructor, it is broadcast to the
    input's shape as torch does (the one place losskit broadcasts a weight, since torch's
    signature asks for it); an elementwise weight of the input's shape can instead be passed per
    call, ``criterion(p, y, weight=w)``. Either way ``"mean"`` is the weighted mean
    ``sum(w l) / sum(w)`` (torch divides by the number of elements).

    >>> import torch, losskit
    >>> criterion = losskit.BCELoss(weight=torch.tensor([1.0, 3.0]))
    >>> p, y = torch.tensor([[0.8, 0.3], [0.6, 0.9]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    >>> round(criterion(p, y).item(), 4)
    0.265
    """

    functional = staticmethod(LF.binary_cross_entropy)

    def __init__(self, weight: Tensor | None = None, *, reduction: Reduction = "mean") -> None:
        super().__init__(weight=weight, reduction=reduction)


class BCEWithLogitsLoss(_RescaledBinaryLoss):
    """Binary cross-entropy on logits; see
    :func:`losskit.functional.binary_cross_entropy_with_logits`.

    ``weight`` given to the constructor is torch's rescaling weight, broadcast to the input as
    in :class:`BCELoss`; ``pos_weight`` weighs the positive term of each label.

    >>> import torch, losskit
    >>> criterion = losskit.BCEWithLogitsLoss(torch.tensor([1.0, 3.0]), pos_weight=2.0)
    >>> round(criterion(torch.zeros(2, 2), torch.eye(2)).item(), 4)
    1.0397
    """

    functional = staticmethod(LF.binary_cross_entropy_with_logits)

    def __init__(
        self,
        weight: Tensor | None = None,
        *,
        pos_weight: Tensor | float | None = POS_WEIGHT.default,
        reduction: Reduction = "mean",
    ) -> None:
        if pos_weight is not None and not isinstance(pos_weight, Tensor):
            POS_WEIGHT.check("binary_cross_entropy_with_logits", pos_weight)
        super().__init__(weight=weight, pos_weight=pos_weight, reduction=reduction)
