"""The one reduction rule every loss uses, and the float32-compute rule for half precision.

``mean`` with weights (or an ignore mask, which is a 0/1 weight) is the weighted mean over the
elements that count, ``sum(w * l) / sum(w)``. A mean over nothing (an empty batch, every target
ignored, all weights zero) is ``0.0`` and stays attached to the graph, so ``backward()`` works
and a padding-only batch cannot poison training with NaN. None of this reads a value on the host.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")
#: torch's reduction enum (``torch.nn._reduction.get_enum``), for calling torch's loss kernels
#: (``torch._C._nn.*``) without ``torch.nn.functional``'s argument handling, which losskit has
#: already done: at 32 elements that handling is a third of the call
REDUCTION_ENUM: dict[str, int] = {"none": 0, "mean": 1, "sum": 2}

_HALF = (torch.float16, torch.bfloat16)


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, or ``numerator`` where the denominator is zero.

    Used only where a zero denominator implies a zero numerator (no element counts), so the
    result is 0 with zero gradients instead of NaN: for every input, the weights included (a
    weight that requires grad and is all zeros gets a zero gradient, not the losses). A NaN in
    the numerator still comes out as NaN.
    """
    counts = denominator != 0
    quotient = numerator / torch.where(counts, denominator, torch.ones_like(denominator))
    return torch.where(counts, quotient, numerator * 0)


def reduce_loss(loss: Tensor, reduction: str, weight: Tensor | None = None) -> Tensor:
    """Apply ``reduction`` to an elementwise loss, optionally weighted (see module docstring)."""
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is not None:
        return safe_divide(loss.sum(), weight.sum())
    return loss.sum() if loss.numel() == 0 else loss.mean()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 and bfloat16 are computed in float32; other dtypes as they are."""
    return torch.float32 if dtype in _HALF else dtype


def upcast(x: Tensor | None) -> Tensor | None:
    """``x`` in its compute dtype (float32 for half types); ``None`` passes through."""
    if x is None or x.dtype not in _HALF:
        return x
    return x.float()
