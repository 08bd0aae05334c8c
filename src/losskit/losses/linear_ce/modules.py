"""Module form of the chunked linear cross-entropy."""

from __future__ import annotations

from losskit._checks import check_number
from losskit._module import LossModule
from losskit._reduce import Reduction
from losskit.losses.linear_ce import functional as LF
from losskit.losses.linear_ce.functional import check_chunk_size

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
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        softcap: float | None = None,
        chunk_size: int | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        loss = "linear_cross_entropy"
        check_number(loss, "label_smoothing", label_smoothing, ge=0.0, le=1.0)
        check_number(loss, "z_loss", z_loss, ge=0.0)
        if softcap is not None:
            check_number(loss, "softcap", softcap, gt=0.0)
        check_chunk_size(loss, chunk_size)
        super().__init__(
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            z_loss=z_loss,
            softcap=softcap,
            chunk_size=chunk_size,
            reduction=reduction,
        )
