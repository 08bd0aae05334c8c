"""All-gathers along the batch dimension, with and without a gradient.

``gather_with_grad`` is for losses that every process computes identically on the global batch
(``losskit.TripletLoss(gather=True)``): its backward hands each process its own slice of the
gradient of that loss, so each process's local gradient equals what one process would get for
those rows of the concatenated batch. This differs on purpose from
``torch.distributed.nn.functional.all_gather``, whose backward sums the gradients of all
processes (right when each process computes a different part of the loss; with an identical
loss everywhere it multiplies the gradient by the world size).

Batches may differ in size between processes (a last, smaller batch): sizes are exchanged first.
Outside ``torch.distributed`` (not initialised, or a single process) both are the identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx

from losskit._autograd import LossFunction, differentiable_backward
from losskit._checks import check_tensor, fail

__all__ = ["gather", "gather_with_grad", "is_distributed"]

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


def is_distributed(group: ProcessGroup | None = None) -> bool:
    """Whether ``torch.distributed`` is initialised with more than one process in ``group``."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def _gather_cat(x: Tensor, group: ProcessGroup | None) -> tuple[Tensor, list[int]]:
    """Every process's ``x`` concatenated along dim 0 in rank order, and each one's length."""
    world = dist.get_world_size(group)
    local = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
    sizes_t = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(sizes_t, local, group=group)
    sizes = [int(s) for s in sizes_t]
    longest = max(sizes)
    # collectives need equal shapes (and gloo has no bool): pad and view bytes as needed
    payload = x.view(torch.uint8) if x.dtype == torch.bool else x
    if payload.shape[0] < longest:
        pad = payload.new_zeros((longest - payload.shape[0], *payload.shape[1:]))
        payload = torch.cat([payload, pad])
    parts = [torch.empty_like(payload) for _ in range(world)]
    dist.all_gather(parts, payload.contiguous(), group=group)
    out = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
    return (out.view(torch.bool) if x.dtype == torch.bool else out), sizes


def _gather_eager(ctx: FunctionCtx, saved: tuple[Tensor, ...]) -> Tensor:
    # the gather is linear, and the other ranks' rows are constants to this rank: local x
    # padded with zeros has the same derivatives, with no collective inside a backward
    (x,) = saved
    return F.pad(x, (0, 0) * (x.dim() - 1) + (ctx.start, ctx.total - ctx.stop))


class _GatherWithGrad(LossFunction):
    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, group: ProcessGroup | None) -> Tensor:
        out, sizes = _gather_cat(x, group)
        rank = dist.get_rank(group)
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        ctx.total = out.shape[0]
        ctx.save_for_backward(x)
        return out

    @staticmethod
    @differentiable_backward(_gather_eager)
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return grad[ctx.start : ctx.stop], None


def _check(name: str, x: object) -> Tensor:
    x = check_tensor(name, "x", x)
    if x.dim() == 0:
        fail(name, "x", "is a scalar", "a tensor with a batch dimension")
    return x


def gather_with_grad(x: Tensor, *, group: ProcessGroup | None = None) -> Tensor:
    """All-gather ``x`` along dim 0 (rank order); the backward returns this process's slice of
    the incoming gradient (no sum over processes: every process is assumed to compute the same
    loss of the gathered tensor).

    Under DDP, which averages parameter gradients over processes, the parameters then receive
    ``1 / world_size`` of the single-process gradient of the global-batch loss; multiply the
    loss by the world size if you want them equal (the same applies to
    pytorch-metric-learning's ``DistributedLossWrapper``).

    >>> import torch
    >>> from losskit.distributed import gather_with_grad
    >>> gather_with_grad(torch.ones(2, 3)).shape  # not distributed: the identity
    torch.Size([2, 3])
    """
    x = _check("gather_with_grad", x)
    if not is_distributed(group):
        return x
    return _GatherWithGrad.apply(x, group)


def gather(x: Tensor, *, group: ProcessGroup | None = None) -> Tensor:
    """All-gather ``x`` along dim 0 in rank order, without a gradient (e.g. labels)."""
    x = _check("gather", x)
    if not is_distributed(group):
        return x
    with torch.no_grad():
        return _gather_cat(x, group)[0]
