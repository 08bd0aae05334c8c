"""Module forms of the angular-margin losses.

Written by hand, not generated: a module may own the class centres, as pytorch-metric-learning's
``ArcFaceLoss(num_classes, embedding_size)`` does, so its constructor and ``forward`` differ
from the functional's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from losskit._checks import fail
from losskit._module import LossModule
from losskit._options import HyperParam
from losskit._reduce import Reduction
from losskit.losses.angular_margin import functional as LF
from losskit.losses.angular_margin.options import (
    ARC_MARGIN,
    CHUNK_SIZE,
    COS_MARGIN,
    EASY_MARGIN,
    IGNORE_INDEX,
    SCALE,
)
from losskit.losses.linear_ce.functional import check_chunk_size

__all__ = ["ArcFaceLoss", "CosFaceLoss"]


def _check_size(loss: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(loss, name, f"is {value!r}", "an int >= 1 (or None with no class centres)")


class _AngularMarginLoss(LossModule):
    """The class centres, owned (``num_classes`` and ``embedding_size`` given) or passed to
    each call; the options, checked as the functional checks them."""

    _margin: HyperParam

    def __init__(
        self,
        num_classes: int | None,
        embedding_size: int | None,
        *,
        reduction: Reduction,
        **options: Any,
    ) -> None:
        loss = self._loss_name()
        SCALE.check(loss, options["scale"])
        self._margin.check(loss, options["margin"])
        if not isinstance(options.get("easy_margin", False), bool):
            fail(loss, "easy_margin", f"is {options['easy_margin']!r}", "True or False")
        check_chunk_size(loss, options["chunk_size"])
        if (num_classes is None) != (embedding_size is None):
            fail(
                loss,
                "num_classes",
                f"is {num_classes!r} with embedding_size={embedding_size!r}",
                "both (the module owns the class centres) or neither (each call passes them)",
            )
        super().__init__(reduction=reduction, **options)
        self.weight: nn.Parameter | None = None
        if num_classes is not None:
            _check_size(loss, "num_classes", num_classes)
            _check_size(loss, "embedding_size", embedding_size)
            self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))  # type: ignore[arg-type]
            nn.init.normal_(self.weight)

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        class_weight: Tensor | None = None,
        **per_call: Any,
    ) -> Tensor:
        """The loss of ``embeddings`` ``(N, d)`` with ``labels`` ``(N,)`` against the owned
        class centres, or against ``class_weight`` ``(C, d)`` for a module that owns none."""
        loss = self._loss_name()
        if class_weight is None:
            if self.weight is None:
                fail(
                    loss,
                    "class_weight",
                    "is missing",
                    "the (C, d) class centres, or a module built with num_classes and "
                    "embedding_size, which owns them",
                )
            class_weight = self.weight
        elif self.weight is not None:
            fail(
                loss,
                "class_weight",
                "is given to a module that owns its class centres",
                "no class_weight (the module's weight is used)",
            )
        return super().forward(embeddings, labels, class_weight, **per_call)

    def extra_repr(self) -> str:
        if self.weight is None:
            return super().extra_repr()
        classes, features = self.weight.shape
        return f"num_classes={classes}, embedding_size={features}, {super().extra_repr()}"


class CosFaceLoss(_AngularMarginLoss):
    """CosFace, ``s (cos theta_y - m)`` against normalised class centres; the module form of
    :func:`losskit.functional.cosface_loss`, which documents every option.

    With ``num_classes`` and ``embedding_size`` the module owns the class centres, a
    ``(num_classes, embedding_size)`` parameter ``weight`` (train it with the model:
    ``optimizer = torch.optim.SGD([*model.parameters(), *criterion.parameters()])``);
    without them each call passes ``class_weight``.

    >>> import torch, losskit
    >>> criterion = losskit.CosFaceLoss(num_classes=1000, embedding_size=128)
    >>> embeddings, labels = torch.randn(32, 128), torch.randint(0, 1000, (32,))
    >>> criterion(embeddings, labels).backward()
    >>> criterion.weight.grad.shape
    torch.Size([1000, 128])
    """

    functional = staticmethod(LF.cosface_loss)
    _margin = COS_MARGIN

    def __init__(
        self,
        num_classes: int | None = None,
        embedding_size: int | None = None,
        *,
        scale: float = SCALE.default,
        margin: float = COS_MARGIN.default,
        ignore_index: int = IGNORE_INDEX.default,
        chunk_size: int | None = CHUNK_SIZE.default,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(
            num_classes,
            embedding_size,
            scale=scale,
            margin=margin,
            ignore_index=ignore_index,
            chunk_size=chunk_size,
            reduction=reduction,
        )


class ArcFaceLoss(_AngularMarginLoss):
    """ArcFace, ``s cos(theta_y + m)`` against normalised class centres; the module form of
    :func:`losskit.functional.arcface_loss`, which documents every option.

    With ``num_classes`` and ``embedding_size`` the module owns the class centres, a
    ``(num_classes, embedding_size)`` parameter ``weight``, as pytorch-metric-learning's
    ``ArcFaceLoss`` does (whose ``W`` is the transpose, and whose margin is in degrees: this
    one's is in radians); without them each call passes ``class_weight``.

    >>> import torch, losskit
    >>> criterion = losskit.ArcFaceLoss(num_classes=1000, embedding_size=128, margin=0.5)
    >>> embeddings, labels = torch.randn(32, 128), torch.randint(0, 1000, (32,))
    >>> criterion(embeddings, labels).backward()
    >>> criterion
    ArcFaceLoss(num_classes=1000, embedding_size=128, scale=64.0, margin=0.5, easy_margin=False, ignore_index=-100, chunk_size=None, reduction='mean')
    """

    functional = staticmethod(LF.arcface_loss)
    _margin = ARC_MARGIN

    def __init__(
        self,
        num_classes: int | None = None,
        embedding_size: int | None = None,
        *,
        scale: float = SCALE.default,
        margin: float = ARC_MARGIN.default,
        easy_margin: bool = EASY_MARGIN.default,
        ignore_index: int = IGNORE_INDEX.default,
        chunk_size: int | None = CHUNK_SIZE.default,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(
            num_classes,
            embedding_size,
            scale=scale,
            margin=margin,
            easy_margin=easy_margin,
            ignore_index=ignore_index,
            chunk_size=chunk_size,
            reduction=reduction,
        )
