"""torch's ``cosine_embedding_loss`` as one ``torch.autograd.Function``, bit for bit.

torch composes the loss from about twenty operations in C++ (``aten/src/ATen/native/Loss.cpp``):

    prod_sum = (x1 * x2).sum(dim)
    mag1 = (x1 * x1).sum(dim) + 1e-12;  mag2 = (x2 * x2).sum(dim) + 1e-12
    denom = (mag1 * mag2).sqrt_();  cos = prod_sum / denom
    out = where(y == 1, 1 - cos, 0) + where(y == -1, (cos - margin).clamp_min_(0), 0)

and autograd records a node for each: about eighteen nodes to walk backward, which is most of
the time of a small batch (139 us for one pair of 64-vectors, against about 60 us here). This
Function computes the same forward (the same operations in the same order, so the same numbers)
and a backward that performs exactly the operations autograd's nodes would, in the order the
autograd engine runs them, so the gradients are the same numbers too:

* mean: ``g / N`` (MeanBackward); the two ``where`` branches get ``g`` where the label selects
  them (y is +-1, so exactly one branch is nonzero per pair: the ``+ zeros`` of torch's sum
  change no value);
* ``1 - cos``: ``-g``; ``clamp_min``: ``g`` where ``cos - margin >= 0``; their sum is the
  gradient of ``cos``;
* the division: ``g / denom`` to ``prod_sum`` and ``-g * ((prod_sum / denom) / denom)`` to
  ``denom``; the square root: ``g / (2 denom)``; the product: ``g * mag2`` and ``g * mag1``;
* the sums broadcast back over ``dim``; ``x * x`` gives ``g x`` twice, ``x1 * x2`` gives
  ``g x2`` and ``g x1``. Each input's three terms are added as the engine adds them: the two
  from ``x * x`` first (its node runs first: the engine runs ready nodes latest-created first),
  then the one from ``x1 * x2``.

``tests/test_embedding_cosine.py`` checks values and gradients against torch's with
``torch.equal``. Second derivatives go through the eager formula
(:func:`losskit._autograd.differentiable_backward`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losskit._autograd import LossFunction, c_apply, constants, differentiable_backward, number
from losskit._labels import as_signs

#: torch's EPSILON in cosine_embedding_loss: a float, so float64 inputs add 1e-12 rounded to float32
EPSILON = float(torch.tensor(1e-12, dtype=torch.float32))  # 1e-12 rounded to float32, as in torch


def cosine_embedding_eager(
    x1: Tensor, x2: Tensor, target: Tensor, margin: float, reduction: str
) -> Tensor:
    """torch's kernel on +-1 labels; a mean over no pairs is losskit's 0.0 (torch: NaN)."""
    y = as_signs(target, x1.dtype)
    if reduction == "mean" and y.numel() == 0:
        return F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="sum")
    return F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction=reduction)


def _eager_from_saved(ctx: Any, saved: tuple[Tensor, ...]) -> Tensor:
    x1, x2, target = saved
    return cosine_embedding_eager(x1, x2, target, *ctx.options)


class CosineEmbedding(LossFunction):
    """``x1``, ``x2``: ``(N, D)`` or ``(D,)`` in float32/float64; ``target``: ``(N,)`` or ``()``
    labels (positive: similar, anything else: dissimilar). Scalars are cached 0-dim tensors: a
    Python number is wrapped in a new tensor by every operator it is passed to, the cost of
    the operator itself at these sizes."""

    @staticmethod
    def forward(
        ctx: Any, x1: Tensor, x2: Tensor, target: Tensor, margin: float, reduction: str
    ) -> Tensor:
        ctx.save_for_backward(x1, x2, target)
        ctx.options = (margin, reduction)
        dtype, device = x1.dtype, x1.device
        zero, one, _ = constants(dtype, device)
        epsilon = number(EPSILON, dtype, device)
        dim = x1.dim() - 1
        positive = target if target.dtype is torch.bool else torch.gt(target, zero)
        prod_sum = (x1 * x2).sum(dim)
        mag1 = (x1 * x1).sum(dim).add_(epsilon)
        mag2 = (x2 * x2).sum(dim).add_(epsilon)
        denom = mag1.mul(mag2).sqrt_()
        cos = prod_sum.div_(denom)
        shifted = torch.sub(cos, number(margin, dtype, device))
        out = torch.where(positive, torch.sub(one, cos), torch.clamp_min(shifted, 0.0))
        ctx.parts = (dim, positive, cos, shifted, mag1, mag2, denom)
        if reduction == "none":
            return out
        if reduction == "sum" or out.numel() == 0:
            return out.sum()
        return out.mean()

    @staticmethod
    @differentiable_backward(_eager_from_saved)
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        dim, positive, cos, shifted, mag1, mag2, denom = ctx.parts
        x1, x2, _ = ctx.saved_tensors
        zero = constants(grad.dtype, grad.device)[0]
        if ctx.options[1] != "none":
            n = cos.numel()
            grad = grad.expand(cos.shape)
            if ctx.options[1] == "mean" and n:
                grad = grad / (number(n, grad.dtype, grad.device) if grad.is_cpu else n)
        # where(y == 1, 1 - cos, 0): -g; where(y == -1, clamp_min(cos - m, 0), 0): g masked
        g_cos = torch.where(positive, grad, zero).neg_()
        g_cos = g_cos.add_(
            torch.where(torch.ge(shifted, zero), torch.where(positive, zero, grad), zero)
        )
        g_prod_sum = g_cos / denom
        g_product = g_cos.neg_().mul_(cos / denom).div_(denom + denom)
        needs = ctx.needs_input_grad
        g1 = g2 = None
        if needs[0]:
            g1 = (g_product * mag2).unsqueeze(dim).expand_as(x1) * x1
            g1 = g1.add_(g1).add_(g_prod_sum.unsqueeze(dim).expand_as(x1) * x2)
        if needs[1]:
            g2 = (g_product * mag1).unsqueeze(dim).expand_as(x2) * x2
            g2 = g2.add_(g2).add_(g_prod_sum.unsqueeze(dim).expand_as(x2) * x1)
        return g1, g2, None, None, None


_APPLY, _UNWRAP = c_apply(CosineEmbedding)


def cosine_embedding(
    x1: Tensor, x2: Tensor, target: Tensor, margin: float, reduction: str
) -> Tensor:
    """The loss through :class:`CosineEmbedding` where autograd allows a custom Function (not
    under ``torch.compile`` or functorch transforms: there torch's kernel)."""
    if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return cosine_embedding_eager(x1, x2, target, margin, reduction)
    unwrap = _UNWRAP
    return _APPLY(unwrap(x1), unwrap(x2), unwrap(target), margin, reduction)
