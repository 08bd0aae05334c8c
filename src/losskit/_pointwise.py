"""The machinery shared by elementwise ``(input, target)`` losses: validation, float32 compute
for half precision, optional elementwise weights and the reduction. Regression losses and
user-defined losses (``losskit.elementwise_loss``) go through here, so they behave alike."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from losskit._checks import (
    check_finite,
    check_floating,
    check_nonnegative,
    check_optional_weight,
    check_reduction,
    check_same_device,
    check_same_dtype,
    check_same_shape,
    same_float_tensors,
)
from losskit._reduce import REDUCTIONS, reduce_loss, upcast

Elementwise = Callable[[Tensor, Tensor], Tensor]
Fused = Callable[[Tensor, Tensor, str], Tensor]


def check_pointwise(
    loss: str, input: Tensor, target: Tensor, weight: Tensor | None, reduction: str
) -> None:
    # the common call passes every check below: answer it from the metadata in one go
    if weight is None and same_float_tensors(input, target) and reduction in REDUCTIONS:
        return
    check_floating(loss, "input", input)
    check_floating(loss, "target", target)
    check_same_shape(loss, "target", target, input, "input")
    check_same_dtype(loss, "target", target, input, "input")
    check_same_device(loss, "target", target, input, "input")
    check_optional_weight(loss, weight, input)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    check_finite(loss, "target", target)
    if weight is not None:
        check_finite(loss, "weight", weight)
        check_nonnegative(loss, "weight", weight)


def pointwise_loss(
    loss: str,
    input: Tensor,
    target: Tensor,
    weight: Tensor | None,
    reduction: str,
    elementwise: Elementwise,
    fused: Fused | None = None,
) -> Tensor:
    """Validate, then reduce ``elementwise(input, target)``.

    ``fused(input, target, reduction)``, when given, is torch's kernel for the unweighted case;
    it is used whenever it gives the same number, so we pay no more than torch does.
    """
    check_pointwise(loss, input, target, weight, reduction)
    out_dtype = input.dtype
    x, y, w = upcast(input), upcast(target), upcast(weight)
    if fused is not None and w is None and (reduction != "mean" or x.numel() > 0):
        out = fused(x, y, reduction)
    else:
        out = reduce_loss(elementwise(x, y), reduction, w)
    return out if out.dtype == out_dtype else out.to(out_dtype)
