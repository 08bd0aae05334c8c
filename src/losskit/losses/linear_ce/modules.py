"""Module form of the chunked linear cross-entropy."""

from __future__ import annotations

from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.linear_ce import functional as LF
from losskit.losses.linear_ce.functional import check_chunk_size
from losskit.losses.linear_ce.options import (
    CHUNK_SIZE,
    IGNORE_INDEX,
    LABEL_SMOOTHING,
    SOFTCAP,
    Z_LOSS,
)

__all__ = ["LinearCrossEntropyLoss"]


class LinearCrossEntropyLoss(LossModule):
    """Cross-entropy of ``input @ weight.T + bias`` without materialising the logits; see
    :func:`losskit.functional.linear_cross_entropy`.

    The weight is an argument of each call (typically ``lm_head.weight``), so the module holds
    only the options and the model keeps owning its parameters; ``bias`` is a per-call keyword.

    >>> import torch, losskit
    >>> lm_head = torch.nn.Linear(16, 100, bias=False)
    >>> hidden, tokens = torch.randn(2, 5, 16), torch.randint(0, 100, (2, 5))
    >>> criterion = losskit.LinearCrossEntropyLoss(z_loss=1e-4, label_smoothing=0.1)
    >>> loss = criterion(hidden, lm_head.weight, tokens)
    >>> loss.backward()
    """

    functional = staticmethod(LF.linear_cross_entropy)

    def __init__(
        self,
        *,
        ignore_index: int = IGNORE_INDEX.default,
        label_smoothing: float = LABEL_SMOOTHING.default,
        z_loss: float = Z_LOSS.default,
        softcap: float | None = SOFTCAP.default,
        chunk_size: int | None = CHUNK_SIZE.default,
        reduction: Reduction = "mean",
    ) -> None:
        loss = self._loss_name()
        LABEL_SMOOTHING.check(loss, label_smoothing)
        Z_LOSS.check(loss, z_loss)
        if softcap is not None:
            SOFTCAP.check(loss, softcap)
        check_chunk_size(loss, chunk_size)
        super().__init__(
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            chunk_size=chunk_size,
            reduction=reduction,
        )
