"""Margin (hinge) losses for classification: the binary hinge of SVMs, plain or squared, and the
multi-class hinge (``multi_margin_loss``, torch's kernel)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autocast import autocast_float32
from losskit._checks import (
    check_class_weight,
    check_finite,
    check_floating,
    check_nonnegative,
    check_reduction,
    check_same_device,
    check_tensor,
    fail,
    full_checks,
    shape_str,
    values_checked,
)
from losskit._labels import check_binary_values, check_label_tensor
from losskit._reduce import REDUCTION_ENUM, REDUCTIONS, Reduction, safe_divide, upcast
from losskit.losses.classification.functional import check_constant_class_weight, check_integer
from losskit.losses.margin.autograd import signed_hinge
from losskit.losses.margin.options import MARGIN, SQUARED, WEIGHT, P

__all__ = ["hinge_loss", "multi_margin_loss"]

#: input dtypes of the metadata fast paths (half precision is upcast on the checked path)
FAST_DTYPES = frozenset({torch.float32, torch.float64})
#: torch's binding under F.multi_margin_loss
_multi_margin_kernel = torch._C._nn.multi_margin_loss
#: the fast paths' tests, bound once (module attributes cost a lookup each on every call)
_FLOAT32, _FLOAT64, _INT64 = torch.float32, torch.float64, torch.int64
_INF = math.inf
_ENUM_OF = REDUCTION_ENUM.get
_any_autocast = torch._C._is_any_autocast_enabled
_is_compiling = torch.compiler.is_compiling
#: label dtypes other than the input's own floating dtype (losskit._labels.check_label_tensor)
INTEGER_LABELS = frozenset(
    {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
)


def hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = MARGIN.default,
    squared: bool = SQUARED.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Binary hinge loss (SVM), optionally squared.

    .. math:: \ell_i = \max(0,\ m - y_i x_i)^{k}, \qquad y_i \in \{-1, +1\},\ k = 2
              \text{ if squared else } 1

    ``input`` holds real scores (the sign is the predicted class), ``target`` the labels in
    either encoding: **+1/-1**, or **1/0** (0 means the negative class, i.e. -1), or bool. The
    labels of one call must use one encoding: a target that mixes -1 and 0, or holds any other
    value, is an error under ``checks="full"``. Under the default fast checks, which read no
    values, a positive label counts as +1 and anything else as -1.

    Shapes: ``input`` any shape; ``target`` the same shape, bool, integer or floating (then in
    ``input``'s dtype). ``margin >= 0`` (0 gives the perceptron criterion). The squared hinge
    (L2-SVM) is differentiable at the margin.

    >>> import torch, losskit.functional as LF
    >>> scores = torch.tensor([0.3, 0.5, 2.0, -1.5])
    >>> LF.hinge_loss(scores, torch.tensor([1, -1, 1, -1]), reduction="none")
    tensor([0.7000, 1.5000, 0.0000, 0.0000])
    >>> round(LF.hinge_loss(scores, torch.tensor([1, 0, 1, 0])).item(), 4)   # 0/1: the same
    0.55
    """
    if (
        isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and input.dtype in FAST_DTYPES
        and (target.dtype is input.dtype or target.dtype in INTEGER_LABELS)
        and target.shape == input.shape
        and ((input.is_cpu and target.is_cpu) or target.device == input.device)
        and (type(margin) is float or type(margin) is int)
        and 0.0 <= margin < _INF
        and type(squared) is bool
        and reduction in REDUCTIONS
        and not _any_autocast()
        and not full_checks()
    ):
        # the common call, answered from its metadata: every check of the general path passes
        # and, under the default checks, none reads a value (issue 16: the checks cost as much
        # as the loss at 32 elements). No decorator on this function: the general path carries
        # the autocast policy.
        return signed_hinge(input, None, target, float(margin), squared, reduction)
    return _hinge_loss(input, target, margin=margin, squared=squared, reduction=reduction)


@autocast_float32
def _hinge_loss(
    input: Tensor, target: Tensor, *, margin: float, squared: bool, reduction: Reduction
) -> Tensor:
    """:func:`hinge_loss`, every check and option (the general path)."""
    loss = "hinge_loss"
    input = check_floating(loss, "input", input)
    target = check_label_tensor(loss, target, input.shape, input)
    m = MARGIN.check(loss, margin)
    if not isinstance(squared, bool):
        fail(loss, "squared", f"is {squared!r}", "True or False")
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    check_binary_values(loss, target)
    out = signed_hinge(upcast(input), None, target, m, squared, reduction)
    return out if out.dtype == input.dtype else out.to(input.dtype)


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    p: int = P.default,
    margin: float = MARGIN.default,
    weight: Tensor | None = WEIGHT.default,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Multi-class hinge loss (Weston & Watkins), torch's ``multi_margin_loss`` kernel.

    .. math:: \ell_n = \frac{w_{y_n}}{C} \sum_{c \ne y_n} \max(0,\ m - x_{n,y_n} + x_{n,c})^p

    Every wrong class whose score comes within ``margin`` of the true class's score adds to the
    loss. Shapes: ``input`` ``(N, C)`` or unbatched ``(C,)``; ``target`` class indices ``(N,)``
    or ``()`` of any integer dtype (not bool); ``weight`` ``(C,)`` constant class weights (cast
    to ``input``'s dtype). ``p`` is 1 or 2, ``margin >= 0``. Out-of-range indices raise
    :class:`~losskit.LossInputError` under the default checks on CPU tensors, and under
    ``checks("full")`` everywhere (on accelerators the default checks read no values).

    ``"sum"`` and ``"none"`` equal torch's. ``"mean"`` without ``weight`` equals torch's; with a
    ``weight`` it is the weighted mean :math:`\sum_n \ell_n / \sum_n w_{y_n}` (losskit's rule for
    every weighted loss, as in ``cross_entropy``), where torch divides by ``N``. An empty batch
    gives 0.0 (torch returns an arbitrary number).

    >>> import torch, losskit.functional as LF
    >>> scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])  # CS231n
    >>> LF.multi_margin_loss(scores, torch.tensor([0, 1, 2]), reduction="none") * 3
    tensor([ 2.9000,  0.0000, 12.9000])
    """
    if (
        weight is None
        and isinstance(input, Tensor)
        and isinstance(target, Tensor)
        and target.dtype is _INT64
        and input.dim() == 2
        and target.dim() == 1
        and input.is_cpu
        and target.is_cpu
        and input.numel()
        and type(p) is int
        and 0 < p < 3
        and (type(margin) is float or type(margin) is int)
        and 0.0 <= margin < _INF
        and type(reduction) is str
        and (enum := _ENUM_OF(reduction)) is not None
        and not _any_autocast()
        and not full_checks()
        and not _is_compiling()
    ):
        # the common call, (N, C) scores and int64 indices on the CPU with N, C >= 1 under the
        # default checks, outside autocast: every metadata check of the general path passes
        # or is torch's own (N of target against input's, and a floating input in float32 or
        # float64: torch raises, and the general path gives losskit's message or upcasts
        # half precision), and the one value check, the index range, is made by
        # torch's CPU kernel itself ("target out of range"), which then hands over to the
        # general path for losskit's message. torch's binding under F.multi_margin_loss;
        # "mean" over N >= 1 rows is torch's mean. No decorator on this function: its wrapper
        # cost a twentieth of the loss at (1, 32); the general path carries the autocast policy.
        try:
            return _multi_margin_kernel(input, target, p, margin, None, enum)
        except RuntimeError:
            pass
    return _multi_margin_loss(input, target, p=p, margin=margin, weight=weight, reduction=reduction)


@autocast_float32
def _multi_margin_loss(
    input: Tensor,
    target: Tensor,
    *,
    p: int,
    margin: float,
    weight: Tensor | None,
    reduction: Reduction,
) -> Tensor:
    """:func:`multi_margin_loss`, every check and option (the general path)."""
    loss = "multi_margin_loss"
    input = check_floating(loss, "input", input)
    if input.dim() not in (1, 2):
        fail(
            loss,
            "input",
            f"has shape {shape_str(input.shape)}",
            "(N, C) class scores or unbatched (C,)",
        )
    target = check_tensor(loss, "target", target)
    check_same_device(loss, "target", target, input, "input")
    index_shape = input.shape[:1] if input.dim() == 2 else torch.Size([])
    if target.is_floating_point() or target.dtype in (
        torch.bool,
        torch.complex64,
        torch.complex128,
    ):
        fail(loss, "target", f"has dtype {target.dtype}", "integer class indices")
    if target.shape != index_shape:
        fail(
            loss,
            "target",
            f"has shape {shape_str(target.shape)}",
            f"{shape_str(index_shape)} class indices for input {shape_str(input.shape)}",
        )
    num_classes = input.shape[-1]
    if num_classes == 0:
        fail(loss, "input", f"has shape {shape_str(input.shape)}", "at least one class")
    p = check_integer(loss, "p", p)
    if p not in (1, 2):
        fail(loss, "p", f"is {p!r}", "1 or 2")
    m = MARGIN.check(loss, margin)
    weight = check_class_weight(loss, weight, num_classes, input)
    check_reduction(loss, reduction, REDUCTIONS)
    check_finite(loss, "input", input)
    if weight is not None:
        check_nonnegative(loss, "weight", weight)
    check_constant_class_weight(loss, weight)
    target = target.long()  # torch's kernel takes int64 only
    if values_checked(target):
        # on the CPU even under the default checks (no device sync there): torch's kernel
        # only says "target out of range"
        lo, hi = (int(v) for v in torch.aminmax(target))
        if lo < 0 or hi >= num_classes:
            fail(
                loss,
                "target",
                f"has class indices in [{lo}, {hi}]",
                f"indices in [0, {num_classes - 1}]",
            )

    out_dtype = input.dtype
    x = upcast(input)
    w = None if weight is None else weight.to(x.dtype)
    if x.dim() == 2 and x.shape[0] == 0:
        # torch's kernel returns an arbitrary number for an empty batch
        empty = x.sum(1) * 0.0
        return (empty if reduction == "none" else empty.sum()).to(out_dtype)
    if reduction == "mean" and w is not None:
        total = F.multi_margin_loss(x, target, p=p, margin=m, weight=w, reduction="sum")
        out = safe_divide(total, w[target].sum())
    else:
        out = F.multi_margin_loss(x, target, p=p, margin=m, weight=w, reduction=reduction)
    return out.to(out_dtype)


# the public functions run the general path under losskit's float32 autocast policy
hinge_loss.autocast_policy = _hinge_loss.autocast_policy  # type: ignore[attr-defined]
multi_margin_loss.autocast_policy = _multi_margin_loss.autocast_policy  # type: ignore[attr-defined]
