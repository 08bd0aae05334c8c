"""The signed hinge ``max(0, m - y (x1 - x2))^k`` as one ``torch.autograd.Function``: the body of
``hinge_loss`` (no ``x2``) and of ``margin_ranking_loss`` (``k = 1``).

Why a Function: the eager formula (torch's ``margin_ranking_loss`` is the same chain) records
four or five autograd nodes, and its ``clamp_min`` backward is a ``torch.where`` with a scalar,
which on the CPU is a scalar (unvectorised) loop: about 4 ns per element, ten times an
arithmetic kernel. Here the forward computes the loss and, in the same pass, the gradient's
sign pattern ``gs = -y * [u >= 0]`` (times ``2 max(u, 0)`` when squared); the backward is one
multiplication per input. One node instead of five at small sizes, where the autograd engine is
most of the cost, and no ``where`` over the data at large sizes.

Every number is the eager formula's, bit for bit: ``u = m + (-y) d`` is ``m - y d`` (negation is
exact); the gradient passes where ``u >= 0`` (``clamp_min``'s rule, 0 at NaN) and is
``(g / N) * (-y)`` for ``"mean"``, as autograd's chain of ``MeanBackward`` (``g / N``),
``ClampMinBackward`` and ``MulBackward`` (a factor of +-1) computes it. The mean is ``sum / N``,
which is what ``Tensor.mean`` computes on the CPU (``sum`` then ``div_``); elsewhere ``mean`` is
called.

Second derivatives: the backward is decorated with
:func:`losskit._autograd.differentiable_backward`; under ``create_graph=True`` the gradient is
taken through the eager formula (:func:`signed_hinge_eager`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autograd import LossFunction, c_apply, constants, differentiable_backward, number
from losskit._labels import as_signs
from losskit._reduce import reduce_loss

#: below this many elements the signs and the gradient's pattern are built with ``torch.where``
#: on cached 0-dim constants (the fewest dispatches); from it on with arithmetic kernels,
#: because ``where`` is a scalar loop on the CPU (4 ms per million elements, measured against
#: 0.3-0.5 ms for a multiplication). Measured on the CPU, one thread, forward and backward:
#: ``where`` 20% faster at 1024 elements, arithmetic 7% faster at 2048 and 30% at 8192.
WHERE_BELOW = 2048


def signed_hinge_eager(
    x1: Tensor,
    x2: Tensor | None,
    target: Tensor,
    margin: float,
    squared: bool,
    reduction: str,
) -> Tensor:
    """The loss with differentiable torch operations (the formula the Function reproduces): for
    ``torch.compile``, functorch transforms and double backward."""
    y = as_signs(target, x1.dtype)
    if x2 is not None:
        # torch's kernel (its own chain: -y * (x1 - x2) + m, clamp_min_, mean); a mean over
        # nothing is losskit's 0.0, where torch's is NaN
        if reduction == "mean" and x1.numel() == 0:
            return F.margin_ranking_loss(x1, x2, y, margin=margin, reduction="sum")
        return F.margin_ranking_loss(x1, x2, y, margin=margin, reduction=reduction)
    elementwise = torch.clamp_min(margin - y * x1, 0.0)
    if squared:
        elementwise = elementwise.square()
    return reduce_loss(elementwise, reduction)


def _eager_from_saved(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    x1, x2, target = saved
    return signed_hinge_eager(x1, x2, target, *ctx.options)


#: (margin, dtype, device) -> 0-dim (0, 1, -1, margin): what the small path compares with,
#: selects and adds, in one lookup; bounded like losskit._autograd's numbers
_SMALL_MAX = 256
_SMALL: dict[tuple[float, torch.dtype, torch.device], tuple[Tensor, Tensor, Tensor, Tensor]] = {}


def _small_constants(
    margin: float, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    key = (margin, dtype, device)
    found = _SMALL.get(key)
    if found is None:
        if len(_SMALL) >= _SMALL_MAX:
            _SMALL.clear()
        found = _SMALL[key] = (*constants(dtype, device), number(margin, dtype, device))
    return found


class SignedHinge(LossFunction):
    """``max(0, m - y (x1 - x2))^k`` reduced; ``x2`` may be None (then ``d = x1``). ``x1`` and
    ``x2`` in their compute dtype (float32 or float64), ``target`` labels of their shape
    (positive: +1, anything else: -1)."""

    @staticmethod
    def forward(
        ctx: Any,
        x1: Tensor,
        x2: Tensor | None,
        target: Tensor,
        options: tuple[float, bool, str],
    ) -> Tensor:
        ctx.save_for_backward(x1, x2, target)
        ctx.options = options
        margin, squared, reduction = options
        dtype, device = x1.dtype, x1.device
        d = x1 if x2 is None else torch.sub(x1, x2)
        n = d.numel()
        if n < WHERE_BELOW:
            zero, one, minus_one, m = _small_constants(margin, dtype, device)
            positive = target if target.dtype is torch.bool else torch.gt(target, zero)
            sign = torch.where(positive, minus_one, one)  # -y
            u = torch.addcmul(m, sign, d)  # m - y d
            if squared:
                out = torch.relu(u)
                slope = torch.where(torch.ge(u, zero), sign * (out + out), zero)
                out.square_()
            else:
                # [u >= 0] in one kernel: heaviside is 1 at u = 0 (its second argument) and 0
                # at NaN; relu is clamp_min(u, 0) (NaN stays NaN) with a cheaper binding
                slope = torch.heaviside(u, one).mul_(sign)
                out = u.relu_()
        else:
            # arithmetic kernels only: sign = 1 - 2 [t > 0] (a bool target: 1 - 2 t)
            if target.dtype is torch.bool:
                sign = target.to(dtype)
            else:
                sign = torch.gt(
                    target, 0, out=torch.empty(target.shape, dtype=dtype, device=device)
                )
            sign.mul_(-2.0).add_(1.0)
            u = d * sign if x2 is None else d.mul_(sign)
            u.add_(margin)
            if squared:
                # 2 max(u, 0) is already 0 where u < 0; only a NaN u needs its 0 (clamp_min's
                # gradient is 0 there, and 0 * NaN would not be)
                out = torch.clamp_min(u, 0.0)
                slope = torch.add(out, out).nan_to_num_(0.0, torch.inf, -torch.inf)
                out.square_()
            else:
                slope = torch.ge(u, 0.0, out=torch.empty_like(u))
                out = u.clamp_min_(0.0)
            slope.mul_(sign)
        ctx.slope = slope
        # the backward's divisor: autograd's MeanBackward divides the incoming gradient by N
        ctx.count = None
        if reduction == "none":
            return out
        if reduction == "sum" or n == 0:
            return out.sum()
        if x1.is_cpu:
            ctx.count = count = number(n, dtype, device)
            return out.sum().div_(count)
        ctx.count = n
        return out.mean()

    @staticmethod
    @differentiable_backward(_eager_from_saved)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        count = ctx.count
        g1 = ctx.slope * (grad if count is None else grad / count)
        needs = ctx.needs_input_grad
        return g1 if needs[0] else None, -g1 if needs[1] else None, None, None


_APPLY, _UNWRAP = c_apply(SignedHinge)
_is_compiling = torch.compiler.is_compiling
_transforms_active = torch._C._are_functorch_transforms_active


def signed_hinge(
    x1: Tensor,
    x2: Tensor | None,
    target: Tensor,
    margin: float,
    squared: bool,
    reduction: str,
) -> Tensor:
    """The loss, through :class:`SignedHinge` where autograd allows a custom Function
    (not under ``torch.compile`` or functorch transforms: there the eager formula)."""
    if _is_compiling() or _transforms_active():
        return signed_hinge_eager(x1, x2, target, margin, squared, reduction)
    unwrap = _UNWRAP
    return _APPLY(
        unwrap(x1),
        None if x2 is None else unwrap(x2),
        unwrap(target),
        (margin, squared, reduction),
    )
